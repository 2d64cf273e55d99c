//! Permission bits across the sandbox boundary.
//!
//! WASI preview 1 has no permission bits: `filestat` carries none and no
//! call sets them. cachet needs them twice: `store` records each output's
//! mode in the manifest (MAN-1), and `restore` applies it (OP-3, CLAIM-1).
//! The binding therefore does neither on its own; the trusted host that runs
//! the guest does both, through two plain-text tables in this format:
//!
//! ```text
//! 755 bin/tool
//! 644 docs/readme.txt
//! ```
//!
//! one line per file: the octal permission bits (`0o7777` at most), one
//! space, and the path relative to the workspace root. A valid workspace
//! path holds no control characters (PATH-2), so a newline cannot occur
//! inside one.
//!
//! - Before a `store`, the host hands the guest a [`ModeTable`] with the
//!   modes of the outputs (the embedding passes it in the environment
//!   variable [`MODES_ENV`]); `fs::WasiFilesystem::metadata`
//!   reports them, so the manifest the guest writes is byte-identical to
//!   the one the native binding writes.
//! - During a `restore`, the `set_mode` of a `fs::WasiWriter` records
//!   the mode instead of applying it and follows the file through its
//!   renames; the guest writes the modes of the restored workspace files as
//!   a [`ModeTable`] to a file in the cache directory named by [`MODE_LOG_ENV`],
//!   and the host applies them (without following symlinks) and removes the
//!   file. The name starts with `.`, so until the host removes it, it is
//!   scratch (DISK-5) to `info` and `clean`.
//!
//! Without a host that does this (a bare `wasmtime run`), metadata reports
//! [`DEFAULT_FILE_MODE`] and [`DEFAULT_DIR_MODE`], and restored files keep
//! the mode the runtime created them with (`0o666` less the umask).

use alloc::collections::BTreeMap;
use alloc::string::String;
use core::fmt::Write as _;

/// Environment variable through which the host hands the guest the modes of
/// workspace files (a [`ModeTable`] rendering).
pub const MODES_ENV: &str = "CACHET_WASI_MODES";

/// Environment variable naming the file, relative to the cache directory, to
/// which the guest writes the modes the host must apply after a restore.
pub const MODE_LOG_ENV: &str = "CACHET_WASI_MODE_LOG";

/// The mode reported for a regular file the host gave no mode for.
pub const DEFAULT_FILE_MODE: u32 = 0o644;

/// The mode reported for a directory.
pub const DEFAULT_DIR_MODE: u32 = 0o755;

/// The mode reported for a symlink (Linux reports `0o777` for every one).
pub const DEFAULT_SYMLINK_MODE: u32 = 0o777;

/// Why a mode table could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ModeTableError {
    /// A line does not have the form `<octal mode> <path>`.
    Malformed {
        /// The 1-based line number.
        line: usize,
    },
    /// A mode has bits outside `0o7777`.
    ModeOutOfRange {
        /// The 1-based line number.
        line: usize,
    },
    /// A path is empty, absolute, or holds an empty, `.` or `..` segment,
    /// so it cannot name a file relative to the workspace root.
    InvalidPath {
        /// The 1-based line number.
        line: usize,
    },
}

impl core::fmt::Display for ModeTableError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ModeTableError::Malformed { line } => write!(
                f,
                "mode table line {line} is not '<octal mode> <relative path>'"
            ),
            ModeTableError::ModeOutOfRange { line } => {
                write!(f, "mode table line {line} has a mode above 7777 (octal)")
            }
            ModeTableError::InvalidPath { line } => write!(
                f,
                "mode table line {line} does not hold a relative path without '.' or '..' segments"
            ),
        }
    }
}

impl core::error::Error for ModeTableError {}

/// Permission bits of files relative to the workspace root (see the module
/// docs), in path order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ModeTable {
    modes: BTreeMap<String, u32>,
}

/// Whether `path` is a relative path the binding could be handed: no empty,
/// `.` or `..` segment, no leading `/`, no control characters.
pub fn is_relative_path(path: &str) -> bool {
    !path.is_empty()
        && !path.chars().any(char::is_control)
        && path
            .split('/')
            .all(|segment| !segment.is_empty() && segment != "." && segment != "..")
}

impl ModeTable {
    /// An empty table.
    pub fn new() -> ModeTable {
        ModeTable::default()
    }

    /// Records `mode` for `path`; returns `false`, and records nothing, when
    /// the path is not [`is_relative_path`] or the mode exceeds `0o7777`.
    pub fn insert(&mut self, path: &str, mode: u32) -> bool {
        if mode & !0o7777 != 0 || !is_relative_path(path) {
            return false;
        }
        self.modes.insert(String::from(path), mode);
        true
    }

    /// The mode recorded for `path`.
    pub fn get(&self, path: &str) -> Option<u32> {
        self.modes.get(path).copied()
    }

    /// Forgets `path`, returning its mode.
    pub fn remove(&mut self, path: &str) -> Option<u32> {
        self.modes.remove(path)
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.modes.is_empty()
    }

    /// Number of paths in the table.
    pub fn len(&self) -> usize {
        self.modes.len()
    }

    /// The entries, in path byte order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, u32)> {
        self.modes.iter().map(|(path, mode)| (path.as_str(), *mode))
    }

    /// Reads the text form; blank lines are ignored.
    pub fn parse(text: &str) -> Result<ModeTable, ModeTableError> {
        let mut table = ModeTable::new();
        for (index, line) in text.split('\n').enumerate() {
            let line_number = index + 1;
            if line.is_empty() {
                continue;
            }
            let Some((mode, path)) = line.split_once(' ') else {
                return Err(ModeTableError::Malformed { line: line_number });
            };
            if mode.is_empty()
                || mode.len() > 6
                || !mode.bytes().all(|b| (b'0'..=b'7').contains(&b))
            {
                return Err(ModeTableError::Malformed { line: line_number });
            }
            let mode = u32::from_str_radix(mode, 8)
                .map_err(|_| ModeTableError::Malformed { line: line_number })?;
            if mode & !0o7777 != 0 {
                return Err(ModeTableError::ModeOutOfRange { line: line_number });
            }
            if !table.insert(path, mode) {
                return Err(ModeTableError::InvalidPath { line: line_number });
            }
        }
        Ok(table)
    }

    /// The text form [`ModeTable::parse`] reads back.
    pub fn render(&self) -> String {
        let mut text = String::new();
        for (path, mode) in self.iter() {
            // Writing to a String cannot fail.
            let _ = writeln!(text, "{mode:o} {path}");
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let mut table = ModeTable::new();
        assert!(table.insert("bin/tool", 0o755));
        assert!(table.insert("a b/...", 0o600));
        assert!(table.insert("x", 0o4711));
        let text = table.render();
        assert_eq!(text, "600 a b/...\n755 bin/tool\n4711 x\n");
        assert_eq!(ModeTable::parse(&text), Ok(table));
    }

    #[test]
    fn refuses_bad_lines() {
        assert_eq!(
            ModeTable::parse("755"),
            Err(ModeTableError::Malformed { line: 1 })
        );
        assert_eq!(
            ModeTable::parse("\n9 a"),
            Err(ModeTableError::Malformed { line: 2 })
        );
        assert_eq!(
            ModeTable::parse("17777 a"),
            Err(ModeTableError::ModeOutOfRange { line: 1 })
        );
        for path in ["/etc/passwd", "a/../b", "./a", "a//b", "a/", "", "a\rb"] {
            let text = alloc::format!("644 {path}");
            assert_eq!(
                ModeTable::parse(&text),
                Err(ModeTableError::InvalidPath { line: 1 }),
                "{path:?}"
            );
        }
    }

    #[test]
    fn insert_refuses_what_parse_refuses() {
        let mut table = ModeTable::new();
        assert!(!table.insert("../x", 0o644));
        assert!(!table.insert("x", 0o10000));
        assert!(table.is_empty());
    }
}
