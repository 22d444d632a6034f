//! The property shared by the fuzz target and `tests/decode_random.rs`: no wire decoder panics on
//! any input, and whatever decodes encodes back to the bytes it came from.

use rmpi_transport::wire::{Endpoint, FrameHeader, Hello, RendezvousReply, HELLO_LEN};

/// Runs every decoder over `data` and checks the round trip of what decodes.
pub fn check(data: &[u8]) {
    if let Ok(h) = FrameHeader::decode(data, u64::MAX) {
        assert_eq!(&h.encode()[..], &data[..32]);
    }
    if let Ok(h) = Hello::decode(data) {
        assert_eq!(&h.encode()[..], &data[..HELLO_LEN]);
    }
    if let Ok((e, used)) = Endpoint::decode(data) {
        let mut out = Vec::new();
        e.encode_into(&mut out);
        assert_eq!(&out[..], &data[..used]);
    }
    let size = data.first().copied().unwrap_or(0) as u32;
    let _ = RendezvousReply::decode(data.get(1..).unwrap_or(&[]), size);
    check_pmi(data, size as usize);
}

/// The PMI codecs: no panic, and a decoded PMI-2 message that can be sent again decodes to itself.
fn check_pmi(data: &[u8], size: usize) {
    use rmpi_transport::pmi::{mapping, pmi1, pmi2};
    let _ = pmi1::decode(data);
    let _ = pmi2::decode_len(&data[..data.len().min(6)]);
    if let Ok(m) = pmi2::decode(data) {
        let fields: Vec<(&str, &str)> =
            m.fields.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        if let Ok(framed) = pmi2::encode(&m.cmd, &fields) {
            let again = pmi2::decode(&framed[6..]).expect("re-encoded message decodes");
            assert_eq!(again, m);
        }
    }
    let text = String::from_utf8_lossy(data);
    let _ = mapping::nodes(&text, size);
    let _ = rmpi_transport::pmi::decode_endpoint(&text);
}
