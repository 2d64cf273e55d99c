//! Hash functions and digests (SPEC KEY-1, KEY-2).
//!
//! One streaming [`Hasher`] covers every registered hash function, so the
//! rest of the core never branches on which one is active. Content hashes of
//! files and streams use the same function as the key (KEY-2).

use crate::hex::{self, HexDigest, HexError};

/// A registered hash function (SPEC KEY-2). The registry is append-only: an
/// id, once given, is never reused.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HashFunction {
    /// BLAKE3 with 256-bit output, id `0x00`; the default.
    #[default]
    Blake3,
    /// SHA-256, id `0x01`.
    Sha256,
}

impl HashFunction {
    /// Every registered function, in id order.
    pub const ALL: [HashFunction; 2] = [HashFunction::Blake3, HashFunction::Sha256];

    /// The one-byte id written into the canonical key string (KEY-3).
    pub const fn id(self) -> u8 {
        match self {
            HashFunction::Blake3 => 0x00,
            HashFunction::Sha256 => 0x01,
        }
    }

    /// The name used in manifests (MAN-1) and on command lines.
    pub const fn name(self) -> &'static str {
        match self {
            HashFunction::Blake3 => "blake3",
            HashFunction::Sha256 => "sha256",
        }
    }

    /// Looks a function up by its manifest name; names are case-sensitive.
    pub fn from_name(name: &str) -> Option<HashFunction> {
        HashFunction::ALL.into_iter().find(|f| f.name() == name)
    }

    /// Looks a function up by its registry id.
    pub fn from_id(id: u8) -> Option<HashFunction> {
        HashFunction::ALL.into_iter().find(|f| f.id() == id)
    }
}

impl core::fmt::Display for HashFunction {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// A 32-byte digest: a content hash or the bytes of a key.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Digest(pub [u8; 32]);

impl Digest {
    /// The digest as 64 lowercase hex characters, on the stack.
    pub fn to_hex(&self) -> HexDigest {
        hex::encode_32(&self.0)
    }

    /// Parses exactly 64 hex digits, in either case (MAN-3).
    pub fn from_hex(text: &str) -> Result<Digest, HexError> {
        hex::decode_32(text.as_bytes()).map(Digest)
    }

    /// The raw bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl core::fmt::Debug for Digest {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Digest({})", self.to_hex().as_str())
    }
}

impl core::fmt::Display for Digest {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.to_hex().as_str())
    }
}

/// A streaming hasher for whichever [`HashFunction`] is active.
#[derive(Clone)]
pub struct Hasher {
    state: State,
}

// BLAKE3's state is large (about 1.9 KiB) but boxing it would need an
// allocator, and a hasher lives on the stack for one copy at a time.
#[derive(Clone)]
#[allow(clippy::large_enum_variant)]
enum State {
    Blake3(blake3::Hasher),
    Sha256(sha2::Sha256),
}

impl Hasher {
    /// A fresh hasher for `function`.
    pub fn new(function: HashFunction) -> Hasher {
        use sha2::Digest as _;
        let state = match function {
            HashFunction::Blake3 => State::Blake3(blake3::Hasher::new()),
            HashFunction::Sha256 => State::Sha256(sha2::Sha256::new()),
        };
        Hasher { state }
    }

    /// Which function this hasher computes.
    pub fn function(&self) -> HashFunction {
        match self.state {
            State::Blake3(_) => HashFunction::Blake3,
            State::Sha256(_) => HashFunction::Sha256,
        }
    }

    /// Feeds `bytes` into the hash.
    pub fn update(&mut self, bytes: &[u8]) {
        use sha2::Digest as _;
        match &mut self.state {
            State::Blake3(h) => {
                h.update(bytes);
            }
            State::Sha256(h) => h.update(bytes),
        }
    }

    /// The digest of everything fed so far.
    pub fn finalize(self) -> Digest {
        use sha2::Digest as _;
        match self.state {
            State::Blake3(h) => Digest(*h.finalize().as_bytes()),
            State::Sha256(h) => Digest(h.finalize().into()),
        }
    }
}

/// The digest of `bytes` under `function`, in one call.
pub fn digest(function: HashFunction, bytes: &[u8]) -> Digest {
    let mut hasher = Hasher::new(function);
    hasher.update(bytes);
    hasher.finalize()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_2_registry_ids_and_names() {
        assert_eq!(HashFunction::Blake3.id(), 0);
        assert_eq!(HashFunction::Sha256.id(), 1);
        assert_eq!(
            HashFunction::from_name("blake3"),
            Some(HashFunction::Blake3)
        );
        assert_eq!(
            HashFunction::from_name("sha256"),
            Some(HashFunction::Sha256)
        );
        assert_eq!(HashFunction::from_name("BLAKE3"), None);
        assert_eq!(HashFunction::from_id(2), None);
    }

    #[test]
    fn key_2_known_answers() {
        assert_eq!(
            digest(HashFunction::Blake3, b"").to_hex().as_str(),
            "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
        );
        assert_eq!(
            digest(HashFunction::Sha256, b"abc").to_hex().as_str(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn streaming_equals_one_shot() {
        for function in HashFunction::ALL {
            let mut hasher = Hasher::new(function);
            hasher.update(b"hello ");
            hasher.update(b"world");
            assert_eq!(hasher.finalize(), digest(function, b"hello world"));
        }
    }
}
