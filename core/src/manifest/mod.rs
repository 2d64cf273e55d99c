//! The manifest codec (SPEC MAN-1..4, PATH-3), without an allocator.
//!
//! A manifest is the JSON document that makes a cache entry visible
//! (DISK-2). This module reads and writes it:
//!
//! - **Writing (MAN-1, MAN-2).** [`ManifestWriter`] streams the exact bytes
//!   haz-cache writes (two-space indentation, `": "`, expanded arrays, `[]`
//!   when empty, final newline; strings escape only `"` and `\`). It is
//!   incremental because a store learns each output's content hash only
//!   while copying it, and outputs come before the stream members in MAN-1
//!   order: the store cannot buffer an unbounded list without an allocator,
//!   so it hands each output to the writer as soon as the blob is written.
//!   [`write_manifest`] re-encodes a parsed manifest through the same
//!   writer.
//! - **Reading (MAN-3, MAN-4, PATH-3).** [`Manifest::parse`] validates the
//!   whole document in one pass, then keeps only the fixed-size members and
//!   the byte span of the `outputs` array. [`Manifest::outputs`] re-reads
//!   that span lazily, so the number of outputs is bounded by the input's
//!   size alone and no allocator is needed. Any JSON whitespace and member
//!   order are accepted; unknown, missing and duplicate members (also inside
//!   output objects), wrong types, integers out of range or written with a
//!   fraction, an exponent or a leading zero, trailing non-whitespace, a
//!   byte order mark, raw control characters in strings, invalid UTF-8 and
//!   lone surrogates are refused. Every string, member names included, has
//!   its escapes (`\/`, `\uXXXX`, surrogate pairs) decoded before it is
//!   looked at, so `"/\u002e\u002e/x"` is validated as `/../x` (PATH-3).
//!   Hex is accepted in either case, exactly 64 digits. A duplicate output
//!   path is *not* a parse error (haz-cache accepts it); refusing to store
//!   one is the store's business (OP-2), and a lookup takes an entry that
//!   lists one for corrupt (SAFE-5).
//! - **The set of outputs (SAFE-5..8).** [`OutputSetCheck`] judges which
//!   paths an entry may list together: none twice, none below another,
//!   none in `.git` or the cache directory.
//!
//! The parser holds no stack of open containers: the manifest has a fixed
//! shape (object, array, objects) and each level is a loop in its own
//! function, so nesting depth is bounded by the code, not the input. Members
//! are never skipped (an unknown one is an error), so no generic value
//! skipper, and no recursion, is ever needed; `[[[[…` in place of an output
//! is a type error at the second `[`. The parser indexes nothing directly
//! and unwraps nothing derived from the input, so no input makes it panic
//! (SAFE-1). It takes a byte slice; capping how many bytes are read from a
//! manifest file (MAN-4) is the caller's business.
//!
//! # Where `serde-json-core` and `heapless` fit
//!
//! `serde-json-core` is the usual no-alloc JSON crate, and it is not used
//! here. Derived `Deserialize` puts a sequence into a fixed-capacity
//! container (`heapless::Vec<T, N>` or an array), which would cap the
//! number of outputs and contradict MAN-4. A hand-written `visit_seq` could
//! consume the elements one at a time, but serde reports no byte offsets,
//! so there would be no span to re-read lazily: every `outputs()` would
//! re-parse the whole document through a visitor. Its
//! strings do not fit MAN-3 either: `from_slice` hands a string field out
//! as a borrowed `&str` with its escapes still in it, so `"/a\/b"` would
//! be validated in its escaped form; `from_slice_escaped` decodes into a
//! caller buffer but turns each `\uXXXX` into a `char` on its own, so a
//! surrogate pair such as `\ud83e\udd80` (which haz-cache accepts) is
//! refused. Its `Serializer` writes compact JSON, not the indented layout
//! of MAN-2.
//!
//! `heapless` is used where a bound is part of the contract: a decoded path
//! is a `heapless::String<MAX_PATH_BYTES>` (the PATH length cap makes that
//! exact), and member names, hash-function names and hex digits are decoded
//! into small fixed buffers whose overflow is itself a verdict (unknown
//! member, unknown hash function, wrong hex length).

mod output_set;
mod read;
mod write;

#[cfg(test)]
mod tests;

use crate::hash::{Digest, HashFunction};
use crate::hex::HexError;
use crate::key::Key;
use crate::path::{MAX_PATH_BYTES, PathError};

#[cfg(feature = "alloc")]
pub use output_set::check_outputs;
pub use output_set::{OutputConflict, OutputSetCheck};
pub use read::Outputs;
pub use write::{ManifestWriter, write_manifest};

/// The members written before the outputs (MAN-1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ManifestHead {
    /// The chapter revision the entry was written under (KEY-3). The reader
    /// accepts any `u8`; whether it is current is for lookup to decide.
    pub chapter_revision: u8,
    /// The hash function of the key and of every content hash (KEY-2).
    pub hash_function: HashFunction,
    /// The key the entry was stored under.
    pub key: Key,
}

/// The members written after the outputs (MAN-1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ManifestTail {
    /// Length of the captured stdout in bytes.
    pub stdout_len: u64,
    /// Length of the captured stderr in bytes.
    pub stderr_len: u64,
    /// Content hash of the captured stdout.
    pub stdout_hash: Digest,
    /// Content hash of the captured stderr.
    pub stderr_hash: Digest,
    /// The task's exit status; a store always writes 0 (OP-2), the reader
    /// accepts any `i32` and leaves the verdict to lookup.
    pub exit_status: i32,
    /// When the entry was stored, in seconds since the Unix epoch.
    pub created_at_unix: u64,
}

/// One output as stored in a manifest; `path` is decoded (JSON escapes
/// resolved) and already PATH-validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutputRecord {
    /// The workspace-absolute path (PATH-1, PATH-2).
    pub path: heapless::String<MAX_PATH_BYTES>,
    /// Content hash of the file's bytes, which also names its blob (DISK-4).
    pub content_hash: Digest,
    /// The file's size in bytes.
    pub size: u64,
    /// The file's permission bits.
    pub mode: u32,
}

impl OutputRecord {
    /// A record to decode into ([`Outputs::next_into`]).
    pub fn empty() -> OutputRecord {
        OutputRecord {
            path: heapless::String::new(),
            content_hash: Digest([0; 32]),
            size: 0,
            mode: 0,
        }
    }
}

/// A parsed manifest borrowing the input bytes.
///
/// Holds the head and tail members by value and the outputs as a validated
/// byte span, decoded on demand by [`Manifest::outputs`] (MAN-4).
#[derive(Clone)]
pub struct Manifest<'a> {
    /// `chapter_revision`, `hash_function` and `key`.
    pub head: ManifestHead,
    /// The stream members, `exit_status` and `created_at_unix`.
    pub tail: ManifestTail,
    /// The bytes between the `[` and `]` of the `outputs` array, every
    /// element already validated by [`Manifest::parse`].
    outputs: &'a str,
    output_count: usize,
}

impl<'a> Manifest<'a> {
    /// Parses and fully validates a manifest (MAN-3, MAN-4, PATH-3).
    ///
    /// Every output is decoded and its path validated here, so that
    /// [`Manifest::outputs`] can be infallible.
    pub fn parse(bytes: &'a [u8]) -> Result<Manifest<'a>, ManifestError> {
        read::parse(bytes, &mut |_| {})
    }

    /// [`Manifest::parse`], handing each output to `visit` as soon as it is
    /// decoded and validated, in order: a reader that needs every output
    /// once (a lookup checking blobs) gets them from the validating pass
    /// instead of decoding them all again. If parsing fails later, `visit`
    /// has seen outputs of a manifest that is not valid, and whatever it
    /// concluded must be dropped.
    pub fn parse_visiting(
        bytes: &'a [u8],
        visit: &mut dyn FnMut(&OutputRecord),
    ) -> Result<Manifest<'a>, ManifestError> {
        read::parse(bytes, visit)
    }

    /// How many outputs the manifest lists.
    pub fn output_count(&self) -> usize {
        self.output_count
    }

    /// The outputs, in the order the manifest lists them, decoded lazily
    /// from the span [`Manifest::parse`] validated.
    pub fn outputs(&self) -> Outputs<'a> {
        Outputs::new(self.outputs, self.output_count)
    }
}

impl core::fmt::Debug for Manifest<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Manifest")
            .field("head", &self.head)
            .field("tail", &self.tail)
            .field("output_count", &self.output_count)
            .finish_non_exhaustive()
    }
}

/// A member a manifest may have (MAN-1): the ten top-level members and the
/// four members of an output object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Member {
    /// Top-level `chapter_revision`.
    ChapterRevision,
    /// Top-level `hash_function`.
    HashFunction,
    /// Top-level `key`.
    Key,
    /// Top-level `outputs`, and each of its elements.
    Outputs,
    /// Top-level `stdout_len`.
    StdoutLen,
    /// Top-level `stderr_len`.
    StderrLen,
    /// Top-level `stdout_hash`.
    StdoutHash,
    /// Top-level `stderr_hash`.
    StderrHash,
    /// Top-level `exit_status`.
    ExitStatus,
    /// Top-level `created_at_unix`.
    CreatedAtUnix,
    /// Output `workspace_absolute_path`.
    WorkspaceAbsolutePath,
    /// Output `content_hash`.
    ContentHash,
    /// Output `size`.
    Size,
    /// Output `mode`.
    Mode,
}

impl Member {
    /// The top-level members, in MAN-1 order.
    pub const TOP_LEVEL: [Member; 10] = [
        Member::ChapterRevision,
        Member::HashFunction,
        Member::Key,
        Member::Outputs,
        Member::StdoutLen,
        Member::StderrLen,
        Member::StdoutHash,
        Member::StderrHash,
        Member::ExitStatus,
        Member::CreatedAtUnix,
    ];

    /// The members of an output object, in MAN-1 order.
    pub const OUTPUT: [Member; 4] = [
        Member::WorkspaceAbsolutePath,
        Member::ContentHash,
        Member::Size,
        Member::Mode,
    ];

    /// The member's name as written in a manifest.
    pub const fn name(self) -> &'static str {
        match self {
            Member::ChapterRevision => "chapter_revision",
            Member::HashFunction => "hash_function",
            Member::Key => "key",
            Member::Outputs => "outputs",
            Member::StdoutLen => "stdout_len",
            Member::StderrLen => "stderr_len",
            Member::StdoutHash => "stdout_hash",
            Member::StderrHash => "stderr_hash",
            Member::ExitStatus => "exit_status",
            Member::CreatedAtUnix => "created_at_unix",
            Member::WorkspaceAbsolutePath => "workspace_absolute_path",
            Member::ContentHash => "content_hash",
            Member::Size => "size",
            Member::Mode => "mode",
        }
    }

    /// What MAN-1 requires the member's value to be, in words.
    pub const fn requirement(self) -> &'static str {
        match self {
            Member::ChapterRevision => "an integer in 0..=255",
            Member::HashFunction => "\"blake3\" or \"sha256\"",
            Member::Key | Member::StdoutHash | Member::StderrHash | Member::ContentHash => {
                "a string of 64 hex digits"
            }
            Member::Outputs => "an array of objects",
            Member::StdoutLen | Member::StderrLen | Member::CreatedAtUnix | Member::Size => {
                "an integer in 0..=18446744073709551615"
            }
            Member::ExitStatus => "an integer in -2147483648..=2147483647",
            Member::WorkspaceAbsolutePath => "a workspace-absolute path string",
            Member::Mode => "an integer in 0..=4294967295",
        }
    }
}

impl core::fmt::Display for Member {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// The type of a JSON value, as told by its first character.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ValueType {
    /// `{`
    Object,
    /// `[`
    Array,
    /// `"`
    String,
    /// `-` or a digit
    Number,
    /// `t` or `f`
    Bool,
    /// `n`
    Null,
}

impl ValueType {
    /// The value type starting with `byte`, if any does.
    pub(crate) fn of(byte: u8) -> Option<ValueType> {
        match byte {
            b'{' => Some(ValueType::Object),
            b'[' => Some(ValueType::Array),
            b'"' => Some(ValueType::String),
            b'-' | b'0'..=b'9' => Some(ValueType::Number),
            b't' | b'f' => Some(ValueType::Bool),
            b'n' => Some(ValueType::Null),
            _ => None,
        }
    }
}

impl core::fmt::Display for ValueType {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            ValueType::Object => "an object",
            ValueType::Array => "an array",
            ValueType::String => "a string",
            ValueType::Number => "a number",
            ValueType::Bool => "a boolean",
            ValueType::Null => "null",
        })
    }
}

/// The piece of JSON syntax the reader needed where it found something else.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Expected {
    /// The start of a value.
    Value,
    /// A member name (a string).
    MemberName,
    /// `:` after a member name.
    Colon,
    /// `,` or `}` after a member.
    CommaOrObjectEnd,
    /// `,` or `]` after an array element.
    CommaOrArrayEnd,
    /// A digit in a number.
    Digit,
}

impl core::fmt::Display for Expected {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Expected::Value => "a value",
            Expected::MemberName => "a member name in double quotes",
            Expected::Colon => "':' after the member name",
            Expected::CommaOrObjectEnd => "',' or '}' after the member",
            Expected::CommaOrArrayEnd => "',' or ']' after the array element",
            Expected::Digit => "a digit",
        })
    }
}

/// What is wrong with a manifest. See [`ManifestError`] for where.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ManifestErrorKind {
    /// The bytes are not valid UTF-8 (JSON text is UTF-8).
    InvalidUtf8,
    /// The manifest starts with a UTF-8 byte order mark, which JSON forbids.
    ByteOrderMark,
    /// The input ends in the middle of the document (or is empty).
    UnexpectedEnd,
    /// The JSON syntax is broken: something else was needed here.
    Syntax {
        /// What the reader needed.
        expected: Expected,
    },
    /// The document is not an object.
    NotAnObject {
        /// What it is instead.
        found: ValueType,
    },
    /// Something other than whitespace follows the document.
    TrailingCharacters,
    /// A raw control character (below U+0020) inside a string; JSON
    /// requires it to be escaped.
    ControlCharacterInString,
    /// A backslash escape that JSON does not define, or a `\u` escape
    /// without four hex digits.
    InvalidEscape,
    /// A `\u` escape of a UTF-16 surrogate that is not half of a pair.
    LoneSurrogate,
    /// A member name MAN-1 does not define at this level.
    UnknownMember,
    /// A member that appears twice in one object.
    DuplicateMember {
        /// The member.
        member: Member,
    },
    /// A member that MAN-1 requires is absent; the offset is the object's
    /// closing `}`.
    MissingMember {
        /// The member.
        member: Member,
    },
    /// A value of the wrong JSON type.
    WrongType {
        /// The member whose value it is.
        member: Member,
        /// The type found.
        found: ValueType,
    },
    /// An integer written with a fraction or an exponent.
    NotAnInteger {
        /// The member whose value it is.
        member: Member,
    },
    /// `-0`. Refused because common JSON readers (serde_json among them)
    /// read it as a floating-point number, not as an integer.
    NegativeZero {
        /// The member whose value it is.
        member: Member,
    },
    /// A number with a leading zero (`01`), which JSON forbids.
    LeadingZero,
    /// An integer outside the member's range.
    NumberOutOfRange {
        /// The member whose value it is.
        member: Member,
    },
    /// A `hash_function` other than `"blake3"` or `"sha256"` (KEY-2).
    UnknownHashFunction,
    /// A hash or key that is not exactly 64 hex digits.
    InvalidHex {
        /// The member whose value it is.
        member: Member,
        /// What is wrong with the digits (an index counts bytes of the
        /// decoded string).
        error: HexError,
    },
    /// An output path that fails PATH-1 or PATH-2 once decoded (PATH-3).
    InvalidPath {
        /// Which rule it breaks.
        error: PathError,
    },
}

impl core::fmt::Display for ManifestErrorKind {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ManifestErrorKind::InvalidUtf8 => f.write_str("the bytes are not valid UTF-8"),
            ManifestErrorKind::ByteOrderMark => {
                f.write_str("the manifest starts with a byte order mark, which JSON forbids")
            }
            ManifestErrorKind::UnexpectedEnd => f.write_str("the manifest ends too early"),
            ManifestErrorKind::Syntax { expected } => write!(f, "expected {expected}"),
            ManifestErrorKind::NotAnObject { found } => {
                write!(f, "the manifest must be a JSON object, found {found}")
            }
            ManifestErrorKind::TrailingCharacters => {
                f.write_str("only whitespace may follow the manifest object")
            }
            ManifestErrorKind::ControlCharacterInString => {
                f.write_str("a string contains a raw control character")
            }
            ManifestErrorKind::InvalidEscape => f.write_str("invalid escape sequence in a string"),
            ManifestErrorKind::LoneSurrogate => {
                f.write_str("a \\u escape encodes half of a UTF-16 surrogate pair")
            }
            ManifestErrorKind::UnknownMember => f.write_str("unknown member name"),
            ManifestErrorKind::DuplicateMember { member } => {
                write!(f, "member `{member}` appears twice")
            }
            ManifestErrorKind::MissingMember { member } => {
                write!(f, "member `{member}` is missing")
            }
            ManifestErrorKind::WrongType { member, found } => write!(
                f,
                "member `{member}` must be {}, found {found}",
                member.requirement()
            ),
            ManifestErrorKind::NotAnInteger { member } => write!(
                f,
                "member `{member}` must be {}, without fraction or exponent",
                member.requirement()
            ),
            ManifestErrorKind::NegativeZero { member } => write!(
                f,
                "member `{member}` is -0, which is not an integer to JSON readers"
            ),
            ManifestErrorKind::LeadingZero => f.write_str("a number has a leading zero"),
            ManifestErrorKind::NumberOutOfRange { member } => write!(
                f,
                "member `{member}` is out of range: it must be {}",
                member.requirement()
            ),
            ManifestErrorKind::UnknownHashFunction => {
                f.write_str("member `hash_function` must be \"blake3\" or \"sha256\"")
            }
            ManifestErrorKind::InvalidHex { member, error } => {
                write!(f, "member `{member}`: {error}")
            }
            ManifestErrorKind::InvalidPath { error } => {
                write!(f, "member `workspace_absolute_path`: {error}")
            }
        }
    }
}

/// Why a manifest was refused, and where (MAN-3).
///
/// A manifest that fails to parse makes its entry corrupt: a miss, never an
/// error to the user (OP-1). The message still says what and where, for
/// `info`, `verify` and debugging.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ManifestError {
    offset: usize,
    kind: ManifestErrorKind,
}

impl ManifestError {
    pub(crate) const fn new(offset: usize, kind: ManifestErrorKind) -> ManifestError {
        ManifestError { offset, kind }
    }

    /// Byte offset in the input where the problem was found: the offending
    /// character, or the start of the offending name or value.
    pub const fn offset(&self) -> usize {
        self.offset
    }

    /// What is wrong.
    pub const fn kind(&self) -> ManifestErrorKind {
        self.kind
    }
}

impl core::fmt::Display for ManifestError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "invalid manifest at byte {}: {}", self.offset, self.kind)
    }
}

#[cfg(feature = "std")]
impl core::error::Error for ManifestError {}
