//! The record codec (REMOTE-7): one entry as one object, with its small
//! contents inline.
//!
//! ```text
//! record  = "cachetR\0" ‖ u8(1) ‖ u8(chapter_revision) ‖ u8(hash_function_id)
//!         ‖ key (32) ‖ u64be(created_at_unix)
//!         ‖ stream(stdout) ‖ stream(stderr)
//!         ‖ u32be(number of outputs) ‖ output…
//!         ‖ u32be(number of inline contents) ‖ inline…
//!         ‖ checksum (32)
//! stream  = u64be(size) ‖ content_hash (32)
//! output  = lp(workspace path) ‖ u32be(mode) ‖ u64be(size) ‖ content_hash (32)
//! inline  = content_hash (32) ‖ lp(raw bytes)
//! ```
//!
//! [`Record::decode`] refuses anything else, without panicking and without
//! allocating more than a bounded multiple of the input's length (SAFE-1);
//! [`Record::encode`] refuses to write what decode would refuse, so the two
//! round-trip.

use alloc::vec::Vec;

use super::names::FORMAT_VERSION;
use crate::hash::{self, Digest, HashFunction};
use crate::key::Key;
use crate::path::WorkspacePath;

/// The first 8 bytes of every record.
pub const MAGIC: [u8; 8] = *b"cachetR\0";

/// Bytes of an output apart from its path.
const OUTPUT_FIXED: usize = 4 + 4 + 8 + 32;
/// Bytes of an inline content apart from its bytes.
const INLINE_FIXED: usize = 32 + 4;

/// A stream's size and content hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamRef {
    /// Length in bytes.
    pub size: u64,
    /// Content hash of the raw bytes.
    pub hash: Digest,
}

/// One output of a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordOutput<'a> {
    /// The workspace path (PATH-1, PATH-2).
    pub path: &'a str,
    /// Permission bits, at most `0o7777`.
    pub mode: u32,
    /// Length in bytes.
    pub size: u64,
    /// Content hash of the raw bytes.
    pub hash: Digest,
}

/// One content carried in the record itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InlineContent<'a> {
    /// Content hash of `bytes`.
    pub hash: Digest,
    /// The raw bytes.
    pub bytes: &'a [u8],
}

/// A decoded (or to be encoded) record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record<'a> {
    /// The chapter revision of the key (KEY-3).
    pub chapter_revision: u8,
    /// The hash function of the key, every content hash and the checksum.
    pub hash_function: HashFunction,
    /// The entry's key.
    pub key: Key,
    /// When the entry was first stored (MAN-1).
    pub created_at_unix: u64,
    /// The recorded stdout.
    pub stdout: StreamRef,
    /// The recorded stderr.
    pub stderr: StreamRef,
    /// The outputs, sorted by path bytes, each path once.
    pub outputs: Vec<RecordOutput<'a>>,
    /// The inline contents, sorted by hash, each hash once.
    pub inline: Vec<InlineContent<'a>>,
}

/// Why bytes are not a record, or a record cannot be encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecordError {
    /// The bytes end before the record does.
    Truncated,
    /// The bytes do not start with [`MAGIC`].
    BadMagic,
    /// The record is of another format version (REMOTE-10).
    OtherVersion(u8),
    /// The hash function id is not in KEY-2's registry.
    UnknownHashFunction(u8),
    /// Output number `index` has a path that is not UTF-8 or not a valid
    /// workspace path.
    BadPath {
        /// Which output.
        index: usize,
    },
    /// Output number `index` is not after the one before it in path order
    /// (so paths are unsorted or repeated).
    UnsortedOutputs {
        /// Which output.
        index: usize,
    },
    /// Output number `index` has a mode above `0o7777`.
    BadMode {
        /// Which output.
        index: usize,
    },
    /// Inline content number `index` is not after the one before it in
    /// hash order.
    UnsortedInline {
        /// Which inline content.
        index: usize,
    },
    /// Inline content number `index` does not hash to its hash.
    InlineMismatch {
        /// Which inline content.
        index: usize,
    },
    /// A length or count does not fit the format.
    TooLarge,
    /// The checksum does not match the bytes before it.
    Checksum,
    /// Bytes follow the checksum.
    TrailingBytes,
    /// The key id or tenant of a signed record's envelope is not a valid
    /// name (REMOTE-12).
    BadSignatureHeader,
}

impl core::fmt::Display for RecordError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            RecordError::Truncated => f.write_str("the record is truncated"),
            RecordError::BadMagic => f.write_str("the object is not a cachet record"),
            RecordError::OtherVersion(v) => write!(f, "the record is of format version {v}"),
            RecordError::UnknownHashFunction(id) => write!(f, "unknown hash function id {id}"),
            RecordError::BadPath { index } => write!(f, "output {index} has an invalid path"),
            RecordError::UnsortedOutputs { index } => {
                write!(f, "output {index} is out of order or repeated")
            }
            RecordError::BadMode { index } => write!(f, "output {index} has a mode above 0o7777"),
            RecordError::UnsortedInline { index } => {
                write!(f, "inline content {index} is out of order or repeated")
            }
            RecordError::InlineMismatch { index } => {
                write!(f, "inline content {index} does not match its hash")
            }
            RecordError::TooLarge => f.write_str("a length or count does not fit the format"),
            RecordError::Checksum => f.write_str("the record's checksum does not match"),
            RecordError::TrailingBytes => f.write_str("bytes follow the record's checksum"),
            RecordError::BadSignatureHeader => {
                f.write_str("the signature's key id or tenant is not a valid name")
            }
        }
    }
}

#[cfg(feature = "std")]
impl core::error::Error for RecordError {}

/// Takes bytes off the front of a slice, never panicking.
struct Cursor<'a> {
    bytes: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], RecordError> {
        if n > self.bytes.len() {
            return Err(RecordError::Truncated);
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], RecordError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, RecordError> {
        Ok(self.array::<1>()?[0])
    }

    fn u32(&mut self) -> Result<u32, RecordError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, RecordError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    fn digest(&mut self) -> Result<Digest, RecordError> {
        Ok(Digest(self.array()?))
    }

    fn lp(&mut self) -> Result<&'a [u8], RecordError> {
        let len = usize::try_from(self.u32()?).map_err(|_| RecordError::TooLarge)?;
        self.take(len)
    }

    /// A count of items of at least `min_item` bytes each, refused when the
    /// remaining bytes cannot hold that many (so it bounds allocation).
    fn count(&mut self, min_item: usize) -> Result<usize, RecordError> {
        let count = usize::try_from(self.u32()?).map_err(|_| RecordError::TooLarge)?;
        if count.saturating_mul(min_item) > self.bytes.len() {
            return Err(RecordError::Truncated);
        }
        Ok(count)
    }
}

impl<'a> Record<'a> {
    /// Decodes and checks a record (REMOTE-7). Whether its revision,
    /// function and key are the ones wanted is for the caller to judge.
    pub fn decode(bytes: &'a [u8]) -> Result<Record<'a>, RecordError> {
        let mut cursor = Cursor { bytes };
        if cursor.array::<8>()? != MAGIC {
            return Err(RecordError::BadMagic);
        }
        let version = cursor.u8()?;
        if version != FORMAT_VERSION {
            return Err(RecordError::OtherVersion(version));
        }
        let chapter_revision = cursor.u8()?;
        let function_id = cursor.u8()?;
        let hash_function = HashFunction::from_id(function_id)
            .ok_or(RecordError::UnknownHashFunction(function_id))?;
        let key = Key(cursor.digest()?);
        let created_at_unix = cursor.u64()?;
        let mut stream = || -> Result<StreamRef, RecordError> {
            let size = cursor.u64()?;
            Ok(StreamRef {
                size,
                hash: cursor.digest()?,
            })
        };
        let stdout = stream()?;
        let stderr = stream()?;

        let count = cursor.count(OUTPUT_FIXED + 2)?;
        let mut outputs: Vec<RecordOutput<'a>> = Vec::with_capacity(count);
        for index in 0..count {
            let raw = cursor.lp()?;
            let path = core::str::from_utf8(raw).map_err(|_| RecordError::BadPath { index })?;
            WorkspacePath::new(path).map_err(|_| RecordError::BadPath { index })?;
            if outputs
                .last()
                .is_some_and(|before| before.path.as_bytes() >= path.as_bytes())
            {
                return Err(RecordError::UnsortedOutputs { index });
            }
            let mode = cursor.u32()?;
            if mode > 0o7777 {
                return Err(RecordError::BadMode { index });
            }
            let size = cursor.u64()?;
            let hash = cursor.digest()?;
            outputs.push(RecordOutput {
                path,
                mode,
                size,
                hash,
            });
        }

        let count = cursor.count(INLINE_FIXED)?;
        let mut inline: Vec<InlineContent<'a>> = Vec::with_capacity(count);
        for index in 0..count {
            let hash = cursor.digest()?;
            let content = cursor.lp()?;
            if inline.last().is_some_and(|before| before.hash.0 >= hash.0) {
                return Err(RecordError::UnsortedInline { index });
            }
            if hash::digest(hash_function, content) != hash {
                return Err(RecordError::InlineMismatch { index });
            }
            inline.push(InlineContent {
                hash,
                bytes: content,
            });
        }

        let body_len = bytes.len() - cursor.bytes.len();
        let checksum = cursor.digest()?;
        let body = bytes.get(..body_len).unwrap_or_default();
        if hash::digest(hash_function, body) != checksum {
            return Err(RecordError::Checksum);
        }
        if !cursor.bytes.is_empty() {
            return Err(RecordError::TrailingBytes);
        }
        Ok(Record {
            chapter_revision,
            hash_function,
            key,
            created_at_unix,
            stdout,
            stderr,
            outputs,
            inline,
        })
    }

    /// Encodes the record, checking what [`Record::decode`] checks: valid,
    /// sorted, unique paths; modes; sorted, unique, matching inline
    /// contents; lengths and counts that fit.
    pub fn encode(&self) -> Result<Vec<u8>, RecordError> {
        // Sized exactly, so that a record of many inline contents is never
        // reallocated (and briefly held twice) while it grows.
        let fixed = MAGIC.len() + 3 + 32 + 8 + 2 * (8 + 32) + 4 + 4 + 32;
        let outputs: usize = self
            .outputs
            .iter()
            .map(|output| 4 + output.path.len() + 4 + 8 + 32)
            .sum();
        let inline: usize = self
            .inline
            .iter()
            .map(|content| 32 + 4 + content.bytes.len())
            .sum();
        let size = fixed.saturating_add(outputs).saturating_add(inline);
        let mut out = Vec::with_capacity(size);
        out.extend_from_slice(&MAGIC);
        out.push(FORMAT_VERSION);
        out.push(self.chapter_revision);
        out.push(self.hash_function.id());
        out.extend_from_slice(&self.key.0.0);
        out.extend_from_slice(&self.created_at_unix.to_be_bytes());
        for stream in [&self.stdout, &self.stderr] {
            out.extend_from_slice(&stream.size.to_be_bytes());
            out.extend_from_slice(&stream.hash.0);
        }
        let count = u32::try_from(self.outputs.len()).map_err(|_| RecordError::TooLarge)?;
        out.extend_from_slice(&count.to_be_bytes());
        let mut before: Option<&str> = None;
        for (index, output) in self.outputs.iter().enumerate() {
            WorkspacePath::new(output.path).map_err(|_| RecordError::BadPath { index })?;
            if before.is_some_and(|b| b.as_bytes() >= output.path.as_bytes()) {
                return Err(RecordError::UnsortedOutputs { index });
            }
            before = Some(output.path);
            if output.mode > 0o7777 {
                return Err(RecordError::BadMode { index });
            }
            lp(&mut out, output.path.as_bytes())?;
            out.extend_from_slice(&output.mode.to_be_bytes());
            out.extend_from_slice(&output.size.to_be_bytes());
            out.extend_from_slice(&output.hash.0);
        }
        let count = u32::try_from(self.inline.len()).map_err(|_| RecordError::TooLarge)?;
        out.extend_from_slice(&count.to_be_bytes());
        let mut before: Option<&Digest> = None;
        for (index, content) in self.inline.iter().enumerate() {
            if before.is_some_and(|b| b.0 >= content.hash.0) {
                return Err(RecordError::UnsortedInline { index });
            }
            before = Some(&content.hash);
            if hash::digest(self.hash_function, content.bytes) != content.hash {
                return Err(RecordError::InlineMismatch { index });
            }
            out.extend_from_slice(&content.hash.0);
            lp(&mut out, content.bytes)?;
        }
        let checksum = hash::digest(self.hash_function, &out);
        out.extend_from_slice(&checksum.0);
        debug_assert_eq!(
            out.len(),
            size,
            "the record's size is computed as it is encoded"
        );
        Ok(out)
    }

    /// The inline bytes of the content `hash`, if the record carries them.
    pub fn inline_content(&self, hash: &Digest) -> Option<&'a [u8]> {
        self.inline
            .binary_search_by(|content| content.hash.0.cmp(&hash.0))
            .ok()
            .and_then(|at| self.inline.get(at))
            .map(|content| content.bytes)
    }
}

fn lp(out: &mut Vec<u8>, bytes: &[u8]) -> Result<(), RecordError> {
    let len = u32::try_from(bytes.len()).map_err(|_| RecordError::TooLarge)?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The contents [`record_of`] borrows: a small one and an empty one.
    fn sample(_function: HashFunction) -> (Vec<u8>, Vec<u8>) {
        (b"hello".to_vec(), Vec::new())
    }

    fn record_of<'a>(function: HashFunction, small: &'a [u8], empty: &'a [u8]) -> Record<'a> {
        let small_hash = hash::digest(function, small);
        let empty_hash = hash::digest(function, empty);
        let mut inline = alloc::vec![
            InlineContent {
                hash: small_hash,
                bytes: small
            },
            InlineContent {
                hash: empty_hash,
                bytes: empty
            },
        ];
        inline.sort_by_key(|content| content.hash.0);
        Record {
            chapter_revision: 0,
            hash_function: function,
            key: Key(Digest([7; 32])),
            created_at_unix: 1_763_700_000,
            stdout: StreamRef {
                size: small.len() as u64,
                hash: small_hash,
            },
            stderr: StreamRef {
                size: 0,
                hash: empty_hash,
            },
            outputs: alloc::vec![
                RecordOutput {
                    path: "/out/a",
                    mode: 0o755,
                    size: 5,
                    hash: small_hash,
                },
                RecordOutput {
                    path: "/out/big",
                    mode: 0o644,
                    size: 1 << 40,
                    hash: Digest([9; 32]),
                },
            ],
            inline,
        }
    }

    #[test]
    fn remote_7_records_round_trip_under_both_functions() {
        for function in HashFunction::ALL {
            let (small, empty) = sample(function);
            let record = record_of(function, &small, &empty);
            let bytes = record.encode().unwrap();
            let decoded = Record::decode(&bytes).unwrap();
            assert_eq!(decoded, record);
            assert_eq!(
                decoded.inline_content(&record.stdout.hash),
                Some(&b"hello"[..])
            );
            assert_eq!(decoded.inline_content(&Digest([9; 32])), None);
        }
    }

    #[test]
    fn remote_7_every_truncation_and_every_flipped_byte_is_refused() {
        let (small, empty) = sample(HashFunction::Blake3);
        let bytes = record_of(HashFunction::Blake3, &small, &empty)
            .encode()
            .unwrap();
        for len in 0..bytes.len() {
            assert!(Record::decode(&bytes[..len]).is_err(), "prefix of {len}");
        }
        for at in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[at] ^= 0x40;
            assert!(Record::decode(&bad).is_err(), "flip at {at}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(Record::decode(&longer), Err(RecordError::TrailingBytes));
    }

    #[test]
    fn remote_7_encode_refuses_what_decode_would() {
        let (small, empty) = sample(HashFunction::Blake3);
        let mut record = record_of(HashFunction::Blake3, &small, &empty);
        record.outputs.swap(0, 1);
        assert_eq!(
            record.encode(),
            Err(RecordError::UnsortedOutputs { index: 1 })
        );
        let mut record = record_of(HashFunction::Blake3, &small, &empty);
        record.outputs[1].path = "/out/a";
        assert_eq!(
            record.encode(),
            Err(RecordError::UnsortedOutputs { index: 1 })
        );
        let mut record = record_of(HashFunction::Blake3, &small, &empty);
        record.outputs[0].path = "/../etc/passwd";
        assert_eq!(record.encode(), Err(RecordError::BadPath { index: 0 }));
        let mut record = record_of(HashFunction::Blake3, &small, &empty);
        record.outputs[0].mode = 0o10000;
        assert_eq!(record.encode(), Err(RecordError::BadMode { index: 0 }));
        let mut record = record_of(HashFunction::Blake3, &small, &empty);
        record.inline[0].bytes = b"other";
        assert!(matches!(
            record.encode(),
            Err(RecordError::InlineMismatch { .. })
        ));
    }

    #[test]
    fn remote_7_a_huge_count_is_refused_without_allocating_for_it() {
        let (small, empty) = sample(HashFunction::Blake3);
        let bytes = record_of(HashFunction::Blake3, &small, &empty)
            .encode()
            .unwrap();
        // The output count sits right after the two streams.
        let at = 8 + 3 + 32 + 8 + 2 * 40;
        let mut bad = bytes.clone();
        bad[at..at + 4].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(Record::decode(&bad), Err(RecordError::Truncated));
    }

    proptest! {
        #[test]
        fn safe_1_arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = Record::decode(&bytes);
        }

        #[test]
        fn safe_1_mutated_records_never_panic(
            at in any::<prop::sample::Index>(),
            value in any::<u8>(),
            cut in any::<prop::sample::Index>(),
        ) {
            let (small, empty) = sample(HashFunction::Blake3);
            let mut bytes = record_of(HashFunction::Blake3, &small, &empty).encode().unwrap();
            let at = at.index(bytes.len());
            bytes[at] = value;
            let cut = cut.index(bytes.len() + 1);
            let _ = Record::decode(&bytes[..cut]);
            let _ = Record::decode(&bytes);
        }
    }
}
