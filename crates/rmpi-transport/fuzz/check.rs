//! The property shared by the fuzz target and `tests/decode_random.rs`: no wire decoder panics on
//! any input, and whatever decodes encodes back to the bytes it came from.

use rmpi_transport::wire::{Endpoint, FrameHeader, Hello, RendezvousReply};

/// Runs every decoder over `data` and checks the round trip of what decodes.
pub fn check(data: &[u8]) {
    if let Ok(h) = FrameHeader::decode(data, u64::MAX) {
        assert_eq!(&h.encode()[..], &data[..32]);
    }
    if let Ok(h) = Hello::decode(data) {
        assert_eq!(&h.encode()[..], &data[..32]);
    }
    if let Ok((e, used)) = Endpoint::decode(data) {
        let mut out = Vec::new();
        e.encode_into(&mut out);
        assert_eq!(&out[..], &data[..used]);
    }
    let size = data.first().copied().unwrap_or(0) as u32;
    let _ = RendezvousReply::decode(data.get(1..).unwrap_or(&[]), size);
}
