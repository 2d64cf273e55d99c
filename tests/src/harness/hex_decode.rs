//! Fuzz target `hex_decode` (KEY-1, MAN-3, DISK-1, SAFE-1).
//!
//! Any bytes go to [`decode_32`], [`decode_into`] and the typed parsers.
//! Each verdict is compared with a plain model of MAN-3's rule ("exactly 64
//! hex digits, either case"), including which error is reported, and every
//! accepted text round-trips through [`encode_32`] to its lowercase form.

use cachet_core::hash::Digest;
use cachet_core::hex::{HexError, decode_32, decode_into, encode_32, is_lowercase_hex_64};
use cachet_core::key::Key;

/// The model's value of one hex digit.
fn digit(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

/// The model: decodes exactly `2 * N` digits, reporting the length first,
/// then the first offending byte.
fn model<const N: usize>(text: &[u8]) -> Result<[u8; N], HexError> {
    if text.len() != 2 * N {
        return Err(HexError::WrongLength { len: text.len() });
    }
    if let Some(index) = text.iter().position(|&b| digit(b).is_none()) {
        return Err(HexError::InvalidDigit { index });
    }
    let mut out = [0u8; N];
    for (slot, pair) in out.iter_mut().zip(text.chunks(2)) {
        let high = digit(pair[0]).unwrap_or(0);
        let low = digit(pair[1]).unwrap_or(0);
        *slot = high * 16 + low;
    }
    Ok(out)
}

/// Runs the `hex_decode` checks on `data`; panics on a violation.
pub fn run(data: &[u8]) {
    let decoded = decode_32(data);
    assert_eq!(
        decoded,
        model::<32>(data),
        "decode_32 disagrees with the model"
    );

    if let Ok(bytes) = decoded {
        let encoded = encode_32(&bytes);
        assert_eq!(
            encoded.as_bytes(),
            data.to_ascii_lowercase().as_slice(),
            "decode → encode does not give the lowercase input"
        );
        assert_eq!(decode_32(encoded.as_bytes()), Ok(bytes), "encode → decode");
    }
    assert_eq!(
        core::str::from_utf8(data).is_ok_and(is_lowercase_hex_64),
        decoded.is_ok() && !data.iter().any(u8::is_ascii_uppercase),
        "is_lowercase_hex_64 disagrees with decode_32 and the case of the input"
    );

    // The typed parsers are decode_32 on text.
    if let Ok(text) = core::str::from_utf8(data) {
        assert_eq!(
            Digest::from_hex(text).map(|d| d.0),
            decoded,
            "Digest::from_hex"
        );
        assert_eq!(Key::from_hex(text).map(|k| k.0.0), decoded, "Key::from_hex");
    }

    // decode_into for other lengths: an odd length is never accepted, and
    // the output slice sized from the input decides the expected length.
    let mut out = alloc::vec![0u8; data.len() / 2];
    let into = decode_into(data, &mut out);
    if data.len() % 2 == 1 {
        assert_eq!(
            into,
            Err(HexError::WrongLength { len: data.len() }),
            "an odd number of digits was not refused by length"
        );
    } else {
        match data.iter().position(|&b| digit(b).is_none()) {
            Some(index) => assert_eq!(into, Err(HexError::InvalidDigit { index })),
            None => {
                assert_eq!(into, Ok(()));
                if let Ok(bytes) = decoded {
                    assert_eq!(out.as_slice(), bytes.as_slice(), "decode_into vs decode_32");
                }
            }
        }
    }

    // Encoding any 32 bytes gives 64 lowercase digits that decode back.
    if let Some(prefix) = data.get(..32) {
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(prefix);
        let encoded = encode_32(&bytes);
        assert!(
            is_lowercase_hex_64(&encoded),
            "encode_32 output is not lowercase hex"
        );
        assert_eq!(decode_32(encoded.as_bytes()), Ok(bytes), "encode → decode");
    }
}
