//! The exit-code table, shared by `cachet` and `cachet-wasi`.
//!
//! | Code | Name | Meaning |
//! |---:|---|---|
//! | 0 | [`SUCCESS`] | Done. `run`: a hit was restored, or the command exited 0 (and its result was stored). `status`: hit. `restore`: restored. |
//! | 1 | [`MISS`] | A negative answer, not a failure. `status`: a miss of any kind. `restore`: a miss, nothing was written. `remove`: there was no such entry. `verify`: damaged entries were found (and, with `--evict`, evicted). `push`: the key is not a local hit, nothing was sent. `pull`: no tier holds the entry. |
//! | 64 | [`USAGE`] | The command line does not parse: unknown flag, missing argument, conflicting flags; or `push`, `pull`, `remote status` were given no remote to work with (`push`: no writable one). Nothing was done. |
//! | 65 | [`BAD_VALUE`] | A value is malformed or refused: a key that is not 64 hex digits, a glob, a size, a duration, `NAME=VALUE`, `PROJECT:TASK=KEY`, a shell name, a host variable that is not UTF-8, a duplicated name, an input that is a symlink, an unreadable `.gitignore` pattern, a malformed `cachet.toml`. Nothing was done. |
//! | 66 | [`NOT_FOUND`] | Something named on the command line does not exist: the workspace, a `--stdout-file`/`--stderr-file`, or an `--after` predecessor that is not a hit in the cache. Nothing was done. |
//! | 69 | [`CACHE_UNAVAILABLE`] | The cache directory cannot be created or opened. Nothing was done. |
//! | 70 | [`FAILURE`] | An I/O or internal failure while working: reading inputs, storing, restoring, writing the report. `info`, `clean`, `clear` and `verify` also exit 70 when some items could not be handled; their report lists them. `push`: a writable remote failed (the others got the entry). `remote status`: some remote is unreachable, unreadable, or not writable though not read-only. A remote's failure never changes the exit code of `run`, `status`, `restore`, `store` or `pull` (REMOTE-3). |
//! | 73 | [`NOT_STORED`] | `run` and `store`: the command succeeded but its result was not cached, because an output is a symlink or a special file, its path is not a valid workspace path (PATH-2), or the outputs cannot be stored together (SAFE-5..8: a path twice, one below another, in `.git` or in the cache directory). The outputs are left as the command wrote them. |
//! | 126 | [`CANNOT_EXECUTE`] | `run`: the command exists but could not be started. |
//! | 127 | [`COMMAND_NOT_FOUND`] | `run`: the command was not found. |
//! | 128+N | [`SIGNAL_BASE`] + N | `run`: the command was killed by signal N; nothing was stored. |
//! | other | | `run` on a miss: the command's own non-zero exit code, passed through; nothing was stored. |
//!
//! A command's own exit code can coincide with one of cachet's codes; run
//! with `-v` to tell them apart (cachet's own failures always print a
//! message starting with `cachet:` on stderr).

/// Done (see the table in the module docs).
pub const SUCCESS: u8 = 0;
/// A miss (`status`, `restore`, `push`, `pull`) or damage found
/// (`verify`).
pub const MISS: u8 = 1;
/// The command line does not parse.
pub const USAGE: u8 = 64;
/// A value on the command line or in the workspace is malformed or refused.
pub const BAD_VALUE: u8 = 65;
/// Something named on the command line does not exist.
pub const NOT_FOUND: u8 = 66;
/// The cache directory cannot be created or opened.
pub const CACHE_UNAVAILABLE: u8 = 69;
/// An I/O or internal failure.
pub const FAILURE: u8 = 70;
/// The command succeeded, but its result could not be cached.
pub const NOT_STORED: u8 = 73;
/// `run`: the command could not be started.
pub const CANNOT_EXECUTE: u8 = 126;
/// `run`: the command was not found.
pub const COMMAND_NOT_FOUND: u8 = 127;
/// `run`: the command was killed by signal N; the exit code is this plus N.
pub const SIGNAL_BASE: u8 = 128;
