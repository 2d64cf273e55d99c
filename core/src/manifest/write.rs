//! Writing manifests (MAN-1, MAN-2), byte-exact with haz-cache.
//!
//! The layout is fixed, so it is spelled out as literal text here rather
//! than produced by a general JSON serializer: each piece below is exactly
//! what haz-cache's pretty printer emits for that position.
#![deny(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use super::{Manifest, ManifestHead, ManifestTail};
use crate::fs::{self, ErrorKind};
use crate::hash::Digest;
use crate::path;

/// Small enough to live on any stack (a page), large enough that about
/// eight output records (~500 bytes each) go to the sink in one write
/// call: a manifest of 1,000 outputs took some 2,000 calls at 512 bytes.
const BUFFER: usize = 4096;

/// Streams a manifest, byte-exact with haz-cache (MAN-2), to a sink.
///
/// Call [`ManifestWriter::begin`], then [`ManifestWriter::output`] once per
/// output in the order they are to be listed, then
/// [`ManifestWriter::finish`]. No allocator is needed and there is no limit
/// on the number of outputs. Writes go through a small internal buffer, so
/// the sink only holds the complete manifest once `finish` has returned;
/// dropping the writer early leaves a truncated manifest, which no reader
/// accepts.
pub struct ManifestWriter<W: fs::Write> {
    sink: W,
    buffer: [u8; BUFFER],
    buffered: usize,
    any_output: bool,
}

impl<W: fs::Write> ManifestWriter<W> {
    /// Writes everything up to and including `"outputs": [`.
    pub fn begin(sink: W, head: &ManifestHead) -> Result<Self, fs::Error> {
        let mut writer = ManifestWriter {
            sink,
            buffer: [0; BUFFER],
            buffered: 0,
            any_output: false,
        };
        writer.put(b"{\n  \"chapter_revision\": ")?;
        writer.put_u64(u64::from(head.chapter_revision))?;
        writer.put(b",\n  \"hash_function\": \"")?;
        writer.put(head.hash_function.name().as_bytes())?;
        writer.put(b"\",\n  \"key\": \"")?;
        writer.put(head.key.to_hex().as_bytes())?;
        writer.put(b"\",\n  \"outputs\": [")?;
        Ok(writer)
    }

    /// Writes one output object.
    ///
    /// Fails with [`ErrorKind::InvalidInput`], writing nothing, if `path`
    /// breaks PATH-1 or PATH-2: such a manifest would be corrupt (PATH-3),
    /// and a path with a control character would not even be valid JSON
    /// under MAN-2's escaping.
    pub fn output(
        &mut self,
        path: &str,
        content_hash: &Digest,
        size: u64,
        mode: u32,
    ) -> Result<(), fs::Error> {
        if path::validate(path).is_err() {
            return Err(fs::Error::new(ErrorKind::InvalidInput));
        }
        self.put(match self.any_output {
            true => b",\n    {\n      \"workspace_absolute_path\": \"",
            false => b"\n    {\n      \"workspace_absolute_path\": \"",
        })?;
        self.any_output = true;
        self.put_escaped(path)?;
        self.put(b"\",\n      \"content_hash\": \"")?;
        self.put(content_hash.to_hex().as_bytes())?;
        self.put(b"\",\n      \"size\": ")?;
        self.put_u64(size)?;
        self.put(b",\n      \"mode\": ")?;
        self.put_u64(u64::from(mode))?;
        self.put(b"\n    }")
    }

    /// Closes the outputs array (`[]` when there were none), writes the
    /// tail and the final newline, and hands the sink back.
    ///
    /// `tail.exit_status` is written as given; a store passes 0 (MAN-1).
    pub fn finish(mut self, tail: &ManifestTail) -> Result<W, fs::Error> {
        self.put(match self.any_output {
            true => b"\n  ],\n  \"stdout_len\": ",
            false => b"],\n  \"stdout_len\": ",
        })?;
        self.put_u64(tail.stdout_len)?;
        self.put(b",\n  \"stderr_len\": ")?;
        self.put_u64(tail.stderr_len)?;
        self.put(b",\n  \"stdout_hash\": \"")?;
        self.put(tail.stdout_hash.to_hex().as_bytes())?;
        self.put(b"\",\n  \"stderr_hash\": \"")?;
        self.put(tail.stderr_hash.to_hex().as_bytes())?;
        self.put(b"\",\n  \"exit_status\": ")?;
        self.put_i32(tail.exit_status)?;
        self.put(b",\n  \"created_at_unix\": ")?;
        self.put_u64(tail.created_at_unix)?;
        self.put(b"\n}\n")?;
        self.flush()?;
        Ok(self.sink)
    }

    fn flush(&mut self) -> Result<(), fs::Error> {
        let pending = self.buffer.get(..self.buffered).unwrap_or_default();
        self.sink.write_all(pending)?;
        self.buffered = 0;
        Ok(())
    }

    fn put(&mut self, bytes: &[u8]) -> Result<(), fs::Error> {
        let end = self.buffered.saturating_add(bytes.len());
        if end > BUFFER {
            self.flush()?;
            if bytes.len() >= BUFFER {
                return self.sink.write_all(bytes);
            }
        }
        let end = self.buffered.saturating_add(bytes.len());
        match self.buffer.get_mut(self.buffered..end) {
            Some(slot) => {
                slot.copy_from_slice(bytes);
                self.buffered = end;
                Ok(())
            }
            // Unreachable after the flush above; writing through keeps the
            // bytes in order without a panic.
            None => {
                self.flush()?;
                self.sink.write_all(bytes)
            }
        }
    }

    /// MAN-2: only `"` and `\` are escaped; validated paths hold no
    /// character that would need more.
    fn put_escaped(&mut self, text: &str) -> Result<(), fs::Error> {
        let mut rest = text;
        while let Some(index) = rest.find(['"', '\\']) {
            let (run, special) = rest.split_at(index);
            self.put(run.as_bytes())?;
            let mut chars = special.chars();
            let escaped: &[u8] = match chars.next() {
                Some('"') => b"\\\"",
                _ => b"\\\\",
            };
            self.put(escaped)?;
            rest = chars.as_str();
        }
        self.put(rest.as_bytes())
    }

    fn put_u64(&mut self, mut value: u64) -> Result<(), fs::Error> {
        // u64::MAX has 20 decimal digits.
        let mut digits = [0u8; 20];
        let mut start = digits.len();
        for slot in digits.iter_mut().rev() {
            // `value % 10` is below 10, so the cast is exact.
            *slot = b'0' + (value % 10) as u8;
            value /= 10;
            start -= 1;
            if value == 0 {
                break;
            }
        }
        self.put(digits.get(start..).unwrap_or_default())
    }

    fn put_i32(&mut self, value: i32) -> Result<(), fs::Error> {
        if value < 0 {
            self.put(b"-")?;
        }
        self.put_u64(u64::from(value.unsigned_abs()))
    }
}

/// Re-encodes a parsed manifest (MAN-2) into `sink` and hands it back.
///
/// For a manifest haz-cache wrote, the bytes are identical to the input.
pub fn write_manifest<W: fs::Write>(manifest: &Manifest<'_>, sink: W) -> Result<W, fs::Error> {
    let mut writer = ManifestWriter::begin(sink, &manifest.head)?;
    for output in manifest.outputs() {
        writer.output(&output.path, &output.content_hash, output.size, output.mode)?;
    }
    writer.finish(&manifest.tail)
}
