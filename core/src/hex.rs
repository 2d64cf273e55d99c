//! Lowercase hex encoding and case-insensitive decoding, on the stack.
//!
//! Keys and content hashes are rendered as 64 lowercase hex characters
//! (KEY-1, DISK-1..4); readers accept either case but exactly 64 digits
//! (MAN-3).

/// 64 hex characters: a rendered key or content hash.
pub type HexDigest = heapless::String<64>;

/// 16 hex characters: a rendered `u64`, as used for scratch-name suffixes
/// (DISK-5).
pub type HexU64 = heapless::String<16>;

/// Why a hex string was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HexError {
    /// The text is not exactly the expected number of digits.
    WrongLength {
        /// How many bytes the text had.
        len: usize,
    },
    /// A byte that is not `0-9`, `a-f` or `A-F`.
    InvalidDigit {
        /// Byte offset of the first offending character.
        index: usize,
    },
}

impl core::fmt::Display for HexError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            HexError::WrongLength { len } => {
                write!(f, "expected 64 hex digits, found {len} characters")
            }
            HexError::InvalidDigit { index } => {
                write!(f, "character {index} is not a hex digit")
            }
        }
    }
}

#[cfg(feature = "std")]
impl core::error::Error for HexError {}

const DIGITS: &[u8; 16] = b"0123456789abcdef";

fn push_byte<const N: usize>(out: &mut heapless::String<N>, byte: u8) {
    for nibble in [byte >> 4, byte & 0x0f] {
        // Capacity is exactly twice the input length at every call site, so
        // the push cannot fail; ignoring the result keeps this panic-free.
        let _ = out.push(char::from(DIGITS[usize::from(nibble)]));
    }
}

/// Renders 32 bytes as 64 lowercase hex characters.
pub fn encode_32(bytes: &[u8; 32]) -> HexDigest {
    let mut out = HexDigest::new();
    for &byte in bytes {
        push_byte(&mut out, byte);
    }
    out
}

/// Renders a `u64` as 16 lowercase hex characters, most significant first.
pub fn encode_u64(value: u64) -> HexU64 {
    let mut out = HexU64::new();
    for byte in value.to_be_bytes() {
        push_byte(&mut out, byte);
    }
    out
}

/// The value of each byte as a hex digit of either case, or [`NOT_HEX`]: a
/// table lookup instead of three range tests, because manifests of
/// thousands of outputs decode tens of thousands of digits per lookup.
const DIGIT_VALUES: [u8; 256] = {
    let mut table = [NOT_HEX; 256];
    let mut i = 0;
    while i < 10 {
        table[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        table[b'a' as usize + i] = 10 + i as u8;
        table[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    table
};

const NOT_HEX: u8 = 0xff;

fn digit_value(byte: u8) -> Option<u8> {
    match DIGIT_VALUES[usize::from(byte)] {
        NOT_HEX => None,
        value => Some(value),
    }
}

/// Decodes exactly 64 hex digits of either case into 32 bytes.
pub fn decode_32(text: &[u8]) -> Result<[u8; 32], HexError> {
    let mut out = [0u8; 32];
    decode_into(text, &mut out)?;
    Ok(out)
}

/// Decodes exactly `2 * out.len()` hex digits of either case into `out`.
pub fn decode_into(text: &[u8], out: &mut [u8]) -> Result<(), HexError> {
    if text.len() != out.len() * 2 {
        return Err(HexError::WrongLength { len: text.len() });
    }
    // Decode without branching on each digit; only a bad input pays for
    // finding which digit was wrong.
    let mut bad = 0u8;
    for (pair, slot) in text.chunks_exact(2).zip(out.iter_mut()) {
        let high = DIGIT_VALUES[usize::from(pair[0])];
        let low = DIGIT_VALUES[usize::from(pair[1])];
        bad |= high | low;
        *slot = (high << 4) | (low & 0x0f);
    }
    if bad & 0xf0 == 0 {
        return Ok(());
    }
    match text.iter().position(|&b| digit_value(b).is_none()) {
        Some(index) => Err(HexError::InvalidDigit { index }),
        // Only a digit outside the table sets those bits.
        None => Err(HexError::InvalidDigit { index: 0 }),
    }
}

/// Whether `text` is exactly 64 lowercase hex digits: the form keys and
/// content hashes take in file names (DISK-1, DISK-4).
pub fn is_lowercase_hex_64(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn man_3_hex_accepts_either_case() {
        let lower = [0xabu8; 32];
        assert_eq!(decode_32(&[b'A', b'b'].repeat(32)), Ok(lower));
        assert_eq!(encode_32(&lower).as_str(), "ab".repeat(32));
    }

    #[test]
    fn man_3_hex_needs_exactly_64_digits() {
        assert_eq!(
            decode_32(&[b'a'; 63]),
            Err(HexError::WrongLength { len: 63 })
        );
        assert_eq!(
            decode_32(&[b'a'; 65]),
            Err(HexError::WrongLength { len: 65 })
        );
        let mut bad = [b'0'; 64];
        bad[17] = b'g';
        assert_eq!(decode_32(&bad), Err(HexError::InvalidDigit { index: 17 }));
    }

    #[test]
    fn disk_5_suffix_renders_big_endian() {
        assert_eq!(
            encode_u64(0x0123_4567_89ab_cdef).as_str(),
            "0123456789abcdef"
        );
        assert_eq!(encode_u64(0).as_str(), "0000000000000000");
    }
}
