//! Collectives on any serde value (like mpi4py's lowercase methods): values travel as the
//! transport's object messages (a type fingerprint, then bincode) behind a first byte that says
//! whether the root had valid input (so a root's argument error reaches every rank as an error
//! instead of a hang).

use rmpi_transport::{typed, Error, Result};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::bcast::{children, tree_pos};
use crate::call::Call;

const OK: u8 = 1;
const ROOT_ERROR: u8 = 0;

/// `[OK] ++ typed(value)`: the transport's object message (an 8-byte fingerprint of the type's
/// name, then bincode), so a rank that asks for another type than the root sent gets
/// [`Error::Decode`] naming both.
pub(crate) fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>> {
    let mut out = vec![OK];
    typed::encode_into(value, &mut out)?;
    Ok(out)
}

/// Decodes a message made by [`encode`], or reports the root's error marker.
pub(crate) fn decode<T: DeserializeOwned>(c: &Call, bytes: &[u8], src: usize) -> Result<T> {
    match bytes.split_first() {
        Some((&OK, body)) => typed::decode(body, src),
        Some((&ROOT_ERROR, why)) => Err(
            c.invalid(format!("the root (rank {src}) reported: {}", String::from_utf8_lossy(why)))
        ),
        _ => Err(Error::Decode { source_rank: src, msg: "empty or unmarked message".into() }),
    }
}

/// A message that tells every rank the root's input was unusable.
pub(crate) fn root_error(why: &str) -> Vec<u8> {
    let mut v = vec![ROOT_ERROR];
    v.extend_from_slice(why.as_bytes());
    v
}

/// Binomial broadcast of a byte message of a length only the root knows.
pub(crate) fn bcast_bytes(c: &Call, bytes: Option<Vec<u8>>, root: usize) -> Result<Vec<u8>> {
    let (p, r) = (c.size, c.rank);
    let (vr, parent, mask) = tree_pos(r, p, root);
    let bytes = match parent {
        Some(parent) => c.recv_bytes(parent)?,
        None => bytes.unwrap_or_default(),
    };
    let dests: Vec<usize> = children(vr, mask, p).iter().map(|(v, _)| (v + root) % p).collect();
    c.send_bytes_all(&bytes, &dests)?;
    Ok(bytes)
}

/// Linear gather of byte messages at `root` (in rank order; `mine` at the root's place).
pub(crate) fn gather_bytes(c: &Call, mine: Vec<u8>, root: usize) -> Result<Option<Vec<Vec<u8>>>> {
    if c.rank != root {
        c.send_bytes(&mine, root)?;
        return Ok(None);
    }
    let mut all = Vec::with_capacity(c.size);
    let mut mine = Some(mine);
    for i in 0..c.size {
        if i == root {
            all.push(mine.take().unwrap_or_default());
        } else {
            all.push(c.recv_bytes(i)?);
        }
    }
    Ok(Some(all))
}

/// Ring allgather of byte messages of any lengths.
pub(crate) fn allgather_bytes(c: &Call, mine: Vec<u8>) -> Result<Vec<Vec<u8>>> {
    let (p, r) = (c.size, c.rank);
    let mut all: Vec<Vec<u8>> = vec![Vec::new(); p];
    all[r] = mine;
    let (right, left) = ((r + 1) % p, (r + p - 1) % p);
    for s in 0..p.saturating_sub(1) {
        let send_i = (r + p - s) % p;
        let recv_i = (r + 2 * p - s - 1) % p;
        // Odd ranks receive first: a send above the eager limit waits for its receive, and
        // a ring of ranks all sending first would wait for ever.
        if r % 2 == 1 {
            all[recv_i] = c.recv_bytes(left)?;
            c.send_bytes(&all[send_i], right)?;
        } else {
            c.send_bytes(&all[send_i], right)?;
            all[recv_i] = c.recv_bytes(left)?;
        }
    }
    Ok(all)
}
