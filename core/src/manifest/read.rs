//! Reading manifests (MAN-3, MAN-4, PATH-3): a pull parser over UTF-8 that
//! was validated up front.
//!
//! Validating UTF-8 once for the whole input means every later slice taken
//! between ASCII delimiters is a `&str` for free, and no string can carry an
//! invalid sequence past the reader. Each level of the fixed manifest shape
//! is a loop in its own function; there is no recursion and no value
//! skipping (see the module docs of [`super`]).
#![deny(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use core::iter::FusedIterator;

use super::{
    Expected, Manifest, ManifestError, ManifestErrorKind, ManifestHead, ManifestTail, Member,
    OutputRecord, ValueType,
};
use crate::hash::{Digest, HashFunction};
use crate::hex::HexError;
use crate::key::Key;
use crate::path::{self, MAX_PATH_BYTES, PathError};

/// Longer than every member name; a longer name is unknown without looking.
const NAME_CAPACITY: usize = 32;
/// As long as the longest hash function name.
const HASH_FUNCTION_CAPACITY: usize = 8;
/// Exactly the digits of a 32-byte digest.
const HEX_CAPACITY: usize = 64;

pub(super) fn parse<'a>(
    bytes: &'a [u8],
    visit: &mut dyn FnMut(&OutputRecord),
) -> Result<Manifest<'a>, ManifestError> {
    let text = core::str::from_utf8(bytes)
        .map_err(|e| ManifestError::new(e.valid_up_to(), ManifestErrorKind::InvalidUtf8))?;
    // U+FEFF is valid UTF-8 but not JSON whitespace; naming it beats a
    // generic syntax error for a mistake editors make.
    if text.starts_with('\u{feff}') {
        return Err(ManifestError::new(0, ManifestErrorKind::ByteOrderMark));
    }
    let mut parser = Parser { text, pos: 0 };
    let manifest = parser.manifest(visit)?;
    parser.skip_whitespace();
    if parser.pos < text.len() {
        return Err(parser.error(ManifestErrorKind::TrailingCharacters));
    }
    Ok(manifest)
}

fn top_level_member(name: &str) -> Option<Member> {
    Member::TOP_LEVEL.into_iter().find(|m| m.name() == name)
}

fn output_member(name: &str) -> Option<Member> {
    Member::OUTPUT.into_iter().find(|m| m.name() == name)
}

fn bit(member: Member) -> u16 {
    // Fourteen members: every discriminant is below 16.
    1u16 << (member as u16)
}

/// Collects a decoded string into a fixed buffer, counting its full length
/// even past capacity so callers can tell "too long" from "different".
struct Sink<'o, const N: usize> {
    out: &'o mut heapless::String<N>,
    len: usize,
}

impl<const N: usize> Sink<'_, N> {
    fn push_str(&mut self, s: &str) {
        self.len = self.len.saturating_add(s.len());
        if self.len <= N {
            // Cannot fail: the running length still fits.
            let _ = self.out.push_str(s);
        }
    }

    fn push(&mut self, c: char) {
        self.len = self.len.saturating_add(c.len_utf8());
        if self.len <= N {
            let _ = self.out.push(c);
        }
    }
}

#[derive(Clone, Debug)]
struct Parser<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn bump(&mut self) {
        // `pos` never exceeds the input length, which is below usize::MAX.
        self.pos = self.pos.saturating_add(1);
    }

    fn error(&self, kind: ManifestErrorKind) -> ManifestError {
        ManifestError::new(self.pos, kind)
    }

    /// Skips the bytes a string may hold as they are: everything but `"`,
    /// `\\` and control characters. Eight at a time, as almost every byte
    /// of a manifest is inside a string (paths and hex digests).
    fn skip_plain(&mut self) {
        const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
        const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
        let rest = self.text.as_bytes().get(self.pos..).unwrap_or_default();
        let mut skipped = 0;
        let mut words = rest.chunks_exact(8);
        for word in &mut words {
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(word);
            let w = u64::from_le_bytes(bytes);
            // High bit of each byte that is below 0x20, `"` or `\\`
            // (exact for the lowest such byte, which is all that is used).
            let quote = w ^ (ONES * u64::from(b'"'));
            let backslash = w ^ (ONES * u64::from(b'\\'));
            let special = (w.wrapping_sub(ONES * 0x20) & !w
                | quote.wrapping_sub(ONES) & !quote
                | backslash.wrapping_sub(ONES) & !backslash)
                & HIGHS;
            if special != 0 {
                self.pos += skipped + (special.trailing_zeros() / 8) as usize;
                return;
            }
            skipped += 8;
        }
        let tail = words.remainder();
        skipped += tail
            .iter()
            .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
            .unwrap_or(tail.len());
        self.pos += skipped;
    }

    /// Moves past the object starting at the current `{`, which holds no
    /// nested object or array (an output, already validated); `false` if
    /// the text ends first.
    fn skip_flat_object(&mut self) -> bool {
        if self.peek() != Some(b'{') {
            return false;
        }
        self.bump();
        loop {
            match self.peek() {
                None => return false,
                Some(b'}') => {
                    self.bump();
                    return true;
                }
                Some(b'"') => {
                    self.bump();
                    loop {
                        self.skip_plain();
                        match self.peek() {
                            None => return false,
                            Some(b'"') => {
                                self.bump();
                                break;
                            }
                            // The escaped character, whatever it is, cannot
                            // end the string; `\\u` digits are plain.
                            Some(b'\\') => {
                                self.bump();
                                self.bump();
                            }
                            Some(_) => self.bump(),
                        }
                    }
                }
                Some(_) => self.bump(),
            }
        }
    }

    fn skip_whitespace(&mut self) {
        let rest = self.text.as_bytes().get(self.pos..).unwrap_or_default();
        self.pos += rest
            .iter()
            .position(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
            .unwrap_or(rest.len());
    }

    /// The text of the string starting at the current `"`, consumed, when
    /// it holds no escape: what almost every member name, digest and path
    /// is, and then nothing needs decoding or copying. `None`, consuming
    /// nothing, otherwise; [`Parser::string`] decodes it (or reports what
    /// is wrong with it).
    fn raw_string(&mut self) -> Option<&'a str> {
        let start = self.pos.saturating_add(1);
        let mut probe = Parser {
            text: self.text,
            pos: start,
        };
        probe.skip_plain();
        if probe.peek() != Some(b'"') {
            return None;
        }
        // Both ends sit next to ASCII quotes, so always a boundary.
        let raw = self.text.get(start..probe.pos)?;
        self.pos = probe.pos.saturating_add(1);
        Some(raw)
    }

    /// Skips whitespace and returns the next byte without consuming it.
    fn next_token(&mut self) -> Result<u8, ManifestError> {
        self.skip_whitespace();
        self.peek()
            .ok_or_else(|| self.error(ManifestErrorKind::UnexpectedEnd))
    }

    fn manifest(
        &mut self,
        visit: &mut dyn FnMut(&OutputRecord),
    ) -> Result<Manifest<'a>, ManifestError> {
        let first = self.next_token()?;
        if first != b'{' {
            return Err(self.error(match ValueType::of(first) {
                Some(found) => ManifestErrorKind::NotAnObject { found },
                None => ManifestErrorKind::Syntax {
                    expected: Expected::Value,
                },
            }));
        }
        // Placeholders only: `object` refuses a manifest that lacks any
        // member, so each is overwritten before it is returned.
        let mut head = ManifestHead {
            chapter_revision: 0,
            hash_function: HashFunction::Blake3,
            key: Key(Digest([0; 32])),
        };
        let mut tail = ManifestTail {
            stdout_len: 0,
            stderr_len: 0,
            stdout_hash: Digest([0; 32]),
            stderr_hash: Digest([0; 32]),
            exit_status: 0,
            created_at_unix: 0,
        };
        let mut outputs = ("", 0);
        self.object(top_level_member, &Member::TOP_LEVEL, |p, member, at| {
            match member {
                Member::ChapterRevision => head.chapter_revision = p.unsigned(member)?,
                Member::HashFunction => head.hash_function = p.hash_function()?,
                Member::Key => head.key = Key(p.digest(member)?),
                Member::Outputs => outputs = p.outputs_array(visit)?,
                Member::StdoutLen => tail.stdout_len = p.unsigned(member)?,
                Member::StderrLen => tail.stderr_len = p.unsigned(member)?,
                Member::StdoutHash => tail.stdout_hash = p.digest(member)?,
                Member::StderrHash => tail.stderr_hash = p.digest(member)?,
                Member::ExitStatus => tail.exit_status = p.exit_status()?,
                Member::CreatedAtUnix => tail.created_at_unix = p.unsigned(member)?,
                // `top_level_member` never yields these; refusing keeps the
                // match total without a panic.
                Member::WorkspaceAbsolutePath
                | Member::ContentHash
                | Member::Size
                | Member::Mode => {
                    return Err(ManifestError::new(at, ManifestErrorKind::UnknownMember));
                }
            }
            Ok(())
        })?;
        let (outputs, output_count) = outputs;
        Ok(Manifest {
            head,
            tail,
            outputs,
            output_count,
        })
    }

    /// Reads an object whose members `lookup` names, handing each value to
    /// `value` (with the offset of the member's name), then checks that
    /// every member of `required` was present. Starts at the `{`.
    fn object(
        &mut self,
        lookup: fn(&str) -> Option<Member>,
        required: &[Member],
        mut value: impl FnMut(&mut Self, Member, usize) -> Result<(), ManifestError>,
    ) -> Result<(), ManifestError> {
        self.bump();
        let mut seen = 0u16;
        if self.next_token()? != b'}' {
            loop {
                let (member, at) = self.member_name(lookup)?;
                if seen & bit(member) != 0 {
                    return Err(ManifestError::new(
                        at,
                        ManifestErrorKind::DuplicateMember { member },
                    ));
                }
                seen |= bit(member);
                value(self, member, at)?;
                match self.next_token()? {
                    b',' => self.bump(),
                    b'}' => break,
                    _ => {
                        return Err(self.error(ManifestErrorKind::Syntax {
                            expected: Expected::CommaOrObjectEnd,
                        }));
                    }
                }
            }
        }
        let close = self.pos;
        self.bump();
        match required.iter().find(|&&m| seen & bit(m) == 0) {
            Some(&member) => Err(ManifestError::new(
                close,
                ManifestErrorKind::MissingMember { member },
            )),
            None => Ok(()),
        }
    }

    /// Reads a member name and the `:` after it.
    fn member_name(
        &mut self,
        lookup: fn(&str) -> Option<Member>,
    ) -> Result<(Member, usize), ManifestError> {
        if self.next_token()? != b'"' {
            return Err(self.error(ManifestErrorKind::Syntax {
                expected: Expected::MemberName,
            }));
        }
        let at = self.pos;
        let member = match self.raw_string() {
            Some(raw) => lookup(raw),
            None => {
                let mut name = heapless::String::<NAME_CAPACITY>::new();
                let len = self.string(&mut name)?;
                match len <= NAME_CAPACITY {
                    true => lookup(&name),
                    false => None,
                }
            }
        }
        .ok_or(ManifestError::new(at, ManifestErrorKind::UnknownMember))?;
        if self.next_token()? != b':' {
            return Err(self.error(ManifestErrorKind::Syntax {
                expected: Expected::Colon,
            }));
        }
        self.bump();
        Ok((member, at))
    }

    /// Skips whitespace and checks that a value of type `want` starts here;
    /// returns its offset.
    fn value_start(&mut self, member: Member, want: ValueType) -> Result<usize, ManifestError> {
        let first = self.next_token()?;
        match ValueType::of(first) {
            Some(found) if found == want => Ok(self.pos),
            Some(found) => Err(self.error(ManifestErrorKind::WrongType { member, found })),
            None => Err(self.error(ManifestErrorKind::Syntax {
                expected: Expected::Value,
            })),
        }
    }

    /// Reads an integer as sign and magnitude; returns its offset too.
    fn integer(&mut self, member: Member) -> Result<(usize, bool, u64), ManifestError> {
        let start = self.value_start(member, ValueType::Number)?;
        let negative = self.peek() == Some(b'-');
        if negative {
            self.bump();
        }
        // None once the magnitude overflows u64; digits are still consumed
        // so that a fraction after them is reported as such.
        let mut magnitude = Some(0u64);
        match self.peek() {
            Some(b'0') => {
                self.bump();
                if let Some(b'0'..=b'9') = self.peek() {
                    return Err(ManifestError::new(start, ManifestErrorKind::LeadingZero));
                }
            }
            Some(b'1'..=b'9') => {
                while let Some(digit @ b'0'..=b'9') = self.peek() {
                    magnitude = magnitude
                        .and_then(|m| m.checked_mul(10))
                        .and_then(|m| m.checked_add(u64::from(digit - b'0')));
                    self.bump();
                }
            }
            Some(_) => {
                return Err(self.error(ManifestErrorKind::Syntax {
                    expected: Expected::Digit,
                }));
            }
            None => return Err(self.error(ManifestErrorKind::UnexpectedEnd)),
        }
        if let Some(b'.' | b'e' | b'E') = self.peek() {
            return Err(ManifestError::new(
                start,
                ManifestErrorKind::NotAnInteger { member },
            ));
        }
        let Some(magnitude) = magnitude else {
            return Err(ManifestError::new(
                start,
                ManifestErrorKind::NumberOutOfRange { member },
            ));
        };
        if negative && magnitude == 0 {
            return Err(ManifestError::new(
                start,
                ManifestErrorKind::NegativeZero { member },
            ));
        }
        Ok((start, negative, magnitude))
    }

    fn unsigned<T: TryFrom<u64>>(&mut self, member: Member) -> Result<T, ManifestError> {
        let (start, negative, magnitude) = self.integer(member)?;
        match negative {
            true => None,
            false => T::try_from(magnitude).ok(),
        }
        .ok_or(ManifestError::new(
            start,
            ManifestErrorKind::NumberOutOfRange { member },
        ))
    }

    fn exit_status(&mut self) -> Result<i32, ManifestError> {
        let member = Member::ExitStatus;
        let (start, negative, magnitude) = self.integer(member)?;
        let signed = i64::try_from(magnitude).ok().and_then(|m| match negative {
            true => m.checked_neg(),
            false => Some(m),
        });
        signed
            .and_then(|s| i32::try_from(s).ok())
            .ok_or(ManifestError::new(
                start,
                ManifestErrorKind::NumberOutOfRange { member },
            ))
    }

    fn hash_function(&mut self) -> Result<HashFunction, ManifestError> {
        let start = self.value_start(Member::HashFunction, ValueType::String)?;
        let mut name = heapless::String::<HASH_FUNCTION_CAPACITY>::new();
        let len = self.string(&mut name)?;
        match len <= HASH_FUNCTION_CAPACITY {
            true => HashFunction::from_name(&name),
            false => None,
        }
        .ok_or(ManifestError::new(
            start,
            ManifestErrorKind::UnknownHashFunction,
        ))
    }

    fn digest(&mut self, member: Member) -> Result<Digest, ManifestError> {
        let start = self.value_start(member, ValueType::String)?;
        let result = match self.raw_string() {
            Some(raw) => Digest::from_hex(raw),
            None => {
                let mut digits = heapless::String::<HEX_CAPACITY>::new();
                let len = self.string(&mut digits)?;
                match len <= HEX_CAPACITY {
                    true => Digest::from_hex(&digits),
                    false => Err(HexError::WrongLength { len }),
                }
            }
        };
        result.map_err(|error| {
            ManifestError::new(start, ManifestErrorKind::InvalidHex { member, error })
        })
    }

    /// Decodes and validates a path into `decoded` in place: the buffer is
    /// 4 KiB, and returning it by value would copy it once per output.
    fn path_into(
        &mut self,
        decoded: &mut heapless::String<MAX_PATH_BYTES>,
    ) -> Result<(), ManifestError> {
        let start = self.value_start(Member::WorkspaceAbsolutePath, ValueType::String)?;
        let len = self.string(decoded)?;
        let verdict = match len <= MAX_PATH_BYTES {
            true => path::validate(decoded),
            false => Err(PathError::TooLong),
        };
        verdict.map_err(|error| ManifestError::new(start, ManifestErrorKind::InvalidPath { error }))
    }

    /// Reads the `outputs` array, validating every element; returns the
    /// span between its brackets and the number of elements.
    fn outputs_array(
        &mut self,
        visit: &mut dyn FnMut(&OutputRecord),
    ) -> Result<(&'a str, usize), ManifestError> {
        self.value_start(Member::Outputs, ValueType::Array)?;
        self.bump();
        let start = self.pos;
        let mut count = 0usize;
        let mut record = OutputRecord::empty();
        if self.next_token()? != b']' {
            loop {
                self.output_object_into(&mut record)?;
                visit(&record);
                // Each element takes at least two bytes of input.
                count = count.saturating_add(1);
                match self.next_token()? {
                    b',' => self.bump(),
                    b']' => break,
                    _ => {
                        return Err(self.error(ManifestErrorKind::Syntax {
                            expected: Expected::CommaOrArrayEnd,
                        }));
                    }
                }
            }
        }
        let end = self.pos;
        self.bump();
        let span = self
            .text
            .get(start..end)
            // Both ends sit next to ASCII brackets, so always a boundary.
            .ok_or(ManifestError::new(start, ManifestErrorKind::InvalidUtf8))?;
        Ok((span, count))
    }

    /// Decodes one output object into `record`, overwriting every member.
    fn output_object_into(&mut self, record: &mut OutputRecord) -> Result<(), ManifestError> {
        self.value_start(Member::Outputs, ValueType::Object)?;
        self.object(output_member, &Member::OUTPUT, |p, member, at| {
            match member {
                Member::WorkspaceAbsolutePath => p.path_into(&mut record.path)?,
                Member::ContentHash => record.content_hash = p.digest(member)?,
                Member::Size => record.size = p.unsigned(member)?,
                Member::Mode => record.mode = p.unsigned(member)?,
                _ => return Err(ManifestError::new(at, ManifestErrorKind::UnknownMember)),
            }
            Ok(())
        })
    }

    /// Decodes the string starting at the current `"` into `out`, resolving
    /// every escape. Returns the decoded length in bytes; when it exceeds
    /// `N`, `out` holds an unspecified prefix and must not be used.
    fn string<const N: usize>(
        &mut self,
        out: &mut heapless::String<N>,
    ) -> Result<usize, ManifestError> {
        out.clear();
        let mut sink = Sink { out, len: 0 };
        self.bump();
        let mut run = self.pos;
        loop {
            self.skip_plain();
            match self.peek() {
                None => return Err(self.error(ManifestErrorKind::UnexpectedEnd)),
                Some(b'"') => {
                    self.flush(run, &mut sink)?;
                    self.bump();
                    return Ok(sink.len);
                }
                Some(b'\\') => {
                    self.flush(run, &mut sink)?;
                    let c = self.escape()?;
                    sink.push(c);
                    run = self.pos;
                }
                Some(0x00..=0x1f) => {
                    return Err(self.error(ManifestErrorKind::ControlCharacterInString));
                }
                Some(_) => self.bump(),
            }
        }
    }

    /// Copies the raw text from `run` to the current position.
    fn flush<const N: usize>(
        &self,
        run: usize,
        sink: &mut Sink<'_, N>,
    ) -> Result<(), ManifestError> {
        // Runs start and end next to ASCII bytes of valid UTF-8, so `get`
        // always succeeds; the error keeps this panic-free regardless.
        let text = self
            .text
            .get(run..self.pos)
            .ok_or(ManifestError::new(run, ManifestErrorKind::InvalidUtf8))?;
        sink.push_str(text);
        Ok(())
    }

    /// Decodes the escape at the current `\`, including the second half of
    /// a surrogate pair.
    fn escape(&mut self) -> Result<char, ManifestError> {
        let at = self.pos;
        self.bump();
        let Some(kind) = self.peek() else {
            return Err(self.error(ManifestErrorKind::UnexpectedEnd));
        };
        self.bump();
        let c = match kind {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let lone = ManifestError::new(at, ManifestErrorKind::LoneSurrogate);
                let unit = self.hex4(at)?;
                let code = match unit {
                    0xd800..=0xdbff => {
                        if self.peek() != Some(b'\\') {
                            return Err(lone);
                        }
                        self.bump();
                        if self.peek() != Some(b'u') {
                            return Err(lone);
                        }
                        self.bump();
                        let low = self.hex4(at)?;
                        if !(0xdc00..=0xdfff).contains(&low) {
                            return Err(lone);
                        }
                        0x10000 + ((unit - 0xd800) << 10) + (low - 0xdc00)
                    }
                    0xdc00..=0xdfff => return Err(lone),
                    _ => unit,
                };
                char::from_u32(code).ok_or(lone)?
            }
            _ => return Err(ManifestError::new(at, ManifestErrorKind::InvalidEscape)),
        };
        Ok(c)
    }

    /// Reads the four hex digits of a `\u` escape that starts at `at`.
    fn hex4(&mut self, at: usize) -> Result<u32, ManifestError> {
        let mut unit = 0u32;
        for _ in 0..4 {
            let digit = match self.peek() {
                None => return Err(self.error(ManifestErrorKind::UnexpectedEnd)),
                Some(b) => char::from(b).to_digit(16),
            };
            let digit = digit.ok_or(ManifestError::new(at, ManifestErrorKind::InvalidEscape))?;
            unit = (unit << 4) | digit;
            self.bump();
        }
        Ok(unit)
    }
}

/// The outputs of a [`Manifest`], decoded one by one from the span that
/// [`Manifest::parse`] validated (MAN-4).
///
/// Infallible: every element was decoded and checked once already. Should
/// the span somehow not parse, the iterator ends rather than panic.
#[derive(Clone, Debug)]
pub struct Outputs<'a> {
    parser: Parser<'a>,
    remaining: usize,
}

impl<'a> Outputs<'a> {
    pub(super) fn new(span: &'a str, count: usize) -> Outputs<'a> {
        Outputs {
            parser: Parser { text: span, pos: 0 },
            remaining: count,
        }
    }

    /// Decodes the next output into `record`, reusing its buffers;
    /// `false` when there is none left. What [`Iterator::next`] does
    /// without moving a 4 KiB path buffer per output.
    pub fn next_into(&mut self, record: &mut OutputRecord) -> bool {
        let Some(remaining) = self.remaining.checked_sub(1) else {
            return false;
        };
        self.remaining = remaining;
        self.parser.skip_whitespace();
        if self.parser.peek() == Some(b',') {
            self.parser.bump();
        }
        if self.parser.output_object_into(record).is_err() {
            // The span was validated by `Manifest::parse`; stop rather than
            // hand out a half-decoded record.
            self.remaining = 0;
            return false;
        }
        true
    }
}

impl Outputs<'_> {
    /// Moves past the next `count` outputs without decoding them, and
    /// returns how many there were. A reader that needs only some of the
    /// outputs (one of several tasks sharing the work) skips the others at
    /// a fraction of the cost of decoding them: the span was validated, so
    /// finding where each object ends is enough.
    pub fn advance(&mut self, count: usize) -> usize {
        let mut skipped = 0;
        while skipped < count && self.remaining > 0 {
            self.remaining -= 1;
            self.parser.skip_whitespace();
            if self.parser.peek() == Some(b',') {
                self.parser.bump();
            }
            self.parser.skip_whitespace();
            if !self.parser.skip_flat_object() {
                self.remaining = 0;
                break;
            }
            skipped += 1;
        }
        skipped
    }
}

impl Iterator for Outputs<'_> {
    type Item = OutputRecord;

    fn next(&mut self) -> Option<OutputRecord> {
        let mut record = OutputRecord::empty();
        self.next_into(&mut record).then_some(record)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl ExactSizeIterator for Outputs<'_> {}

impl FusedIterator for Outputs<'_> {}
