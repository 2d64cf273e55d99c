//! `cachet-cli`: the portable `cachet` command line, shared by the native
//! `cachet` binary and the `cachet-wasi` guest.
//!
//! It owns everything a command does between parsing its arguments and
//! printing its report: the clap definitions ([`PlumbingCli`],
//! [`KeyArgs`]), input and output selection ([`select`], spec §8), key
//! computation ([`compute_key`]), the text and JSON reports ([`report`]),
//! the exit codes ([`exit`]) and [`run_plumbing`], which runs one plumbing
//! subcommand over any [`Filesystem`](cachet_core::fs::Filesystem). What an
//! embedding needs to know about a command line (whether it only reads,
//! which outputs a store selects) it asks the parsed command
//! ([`PlumbingCommand::is_read_only`], [`PlumbingCommand::stored_output_patterns`]),
//! never a parser of its own.
//!
//! **May depend on** `cachet-core` and portable crates (clap, globset,
//! ignore's gitignore matcher, serde). **Must not** touch the operating
//! system beyond `std::env` and the standard streams: no `std::fs`, no
//! processes, no threads, so that it builds and behaves the same for
//! `wasm32-wasip1`; and it must not decide anything about the cache, which
//! is `cachet-core`'s. Rule ids are those of `docs/spec.md`.
//!
//! Everything here is portable (it builds for `wasm32-wasip1`) and works
//! over any [`Filesystem`](cachet_core::fs::Filesystem): the two hosts
//! differ only in how they open the workspace and the cache directory, and
//! the native binary adds `run`. A guest's `main` is:
//!
//! ```no_run
//! # use cachet_cli::{self as cli, Host, PlumbingCli, SystemContext};
//! # use cachet_core::cache::Cache;
//! # fn open_filesystem(_: &cli::GlobalArgs) -> cachet_core::memfs::MemFs { cachet_core::memfs::MemFs::new() }
//! let (mut stdout, mut stderr) = (std::io::stdout(), std::io::stderr());
//! let code = match PlumbingCli::parse_from_named("cachet-wasi", std::env::args_os()) {
//!     Err(error) => cli::report_usage_error(&error, &mut stdout, &mut stderr),
//!     Ok(line) => {
//!         let cache = Cache::with_options(open_filesystem(&line.globals), line.globals.cache_options());
//!         // The workspace's path, and the cache directory relative to it when inside.
//!         let host = Host::new(Some("/workspace".into()), vec![String::from(".cachet")]);
//!         cli::run_plumbing(&line.command, &host, &cache, &mut SystemContext::new(), &mut stdout, &mut stderr)
//!     }
//! };
//! std::process::exit(i32::from(code));
//! ```
//!
//! # Subcommands and flags
//!
//! Global flags, accepted before or after the subcommand:
//! `--workspace DIR` (default: the current directory), `--cache-dir DIR`
//! (default: `$CACHET_CACHE_DIR` if set and non-empty, else
//! `<workspace>/.cachet`; a relative path is relative to the current
//! directory), `--hash blake3|sha256` (default `blake3`; entries of the
//! other function are `miss-schema`), `-v`/`--verbose`.
//!
//! - `run` (native only): `[--input GLOB]... [--output GLOB]... [--env
//!   NAME]... [--set NAME=VALUE]... [--after PROJECT:TASK=KEY]... (--
//!   ARGV... | --script TEXT [--shell NAME])`.
//! - `key`: the same flags as `run` (`--output` only subtracts from the
//!   default inputs, SEL-6), plus `--json`.
//! - `status --key HEX [--json]`: exit 0 on a hit, 1 on a miss.
//! - `store --key HEX [--stdout-file F] [--stderr-file F] [--output
//!   GLOB]... [--json]`: stream files are workspace paths (relative to the
//!   workspace, or absolute below it); an absent one is an empty stream.
//! - `restore --key HEX [--into DIR] [--json]`: restores the outputs and
//!   replays stdout and stderr; with `--json`, prints the report instead of
//!   replaying the streams. Exit 1 on a miss, with nothing written. With
//!   `--into` (native only, OP-12) the outputs go under DIR instead of the
//!   workspace, with every SAFE-2 check relative to DIR.
//! - `list [--json]`: every valid entry with its statistics (OP-9).
//! - `remove --key HEX [--json]`: removes one entry, renamed aside before
//!   it is deleted (OP-11); exit 0 if it was there, 1 if not.
//! - `info [--json]`, `clear [--json]`.
//! - `clean (--soft | --max-age DURATION | --max-size SIZE | --percent
//!   P)... [--in-use FILE] [--dry-run] [--json]`: durations such as `7d`,
//!   `12h`, `1h 30m`; sizes such as `4096`, `512MiB`, `10G` (`K`/`M`/`G`/`T`
//!   are powers of 1000, `Ki`/`KiB`... powers of 1024), see [`parse`].
//!   `--percent` bounds the size to P % of what the valid entries held
//!   before the clean (the smaller bound wins); `--in-use` names a
//!   workspace file (or `-`, stdin) of keys still in use, whose entries
//!   the size bound removes last (OP-15).
//! - `verify [--evict] [--json]`: exit 1 when damage was found.
//! - native only, with the remote flags `--remote URL`, `--tenant NAME`,
//!   `--remote-read-only` (global; [`remote`]): `push --key HEX [--json]`,
//!   `pull --key HEX [--json]`, `remote status [--json]`; `status`,
//!   `restore` and `store` then work through the remotes too
//!   ([`run_plumbing_with_chain`]).
//!
//! Inputs and outputs are selected by [`select`] (its docs give the glob
//! rules, `.gitignore` handling, and what is never selected).
//!
//! # JSON output
//!
//! With `--json`, a subcommand prints exactly one JSON document on stdout:
//! pretty-printed with two-space indentation, members in the order below, a
//! final newline, lowercase hex, lists sorted as stated. The same cache and
//! workspace give the same bytes on every host, except `key`'s hashing
//! statistics (the last three members), which say how this run did the
//! work. Errors are not JSON: they go
//! to stderr as text, with a non-zero exit code.
//!
//! `key` (the shape of a case of the reference vectors' `keys.json`, without
//! `name`):
//!
//! ```json
//! {
//!   "key": "<hex>",
//!   "hash_function": "blake3",
//!   "action": {"command": ["sh", "build.sh"]},
//!   "input_files": [{"path": "/src/a.txt", "content_hash": "<hex>"}],
//!   "predecessors": [{"project": "p", "task": "t", "stdout_hash": "<hex>", "stderr_hash": "<hex>"}],
//!   "env": {"from_host": [["HOME", "/root"], ["UNSET", null]], "overrides": [["MODE", "release"]]},
//!   "files_hashed": 1,
//!   "files_from_memo": 0,
//!   "hash_seconds": 0.0012
//! }
//! ```
//!
//! `files_hashed` counts the inputs whose bytes were read, `files_from_memo`
//! those whose hash came from the file-hash memo (MEMO-3; the native
//! command only), `hash_seconds` the time spent selecting and hashing them.
//!
//! A shell action is `{"shell": "sh", "script": "..."}`. `input_files` are
//! sorted by path, `predecessors` by (project, task), both `env` lists by
//! name; `from_host` lists every `--env` name, also those an override
//! shadows (the derivation leaves them out, KEY-7); `null` means unset.
//!
//! `status`: `{"key": "<hex>", "status": "hit" | "miss-no-entry" |
//! "miss-schema" | "miss-corrupt", "entry"}` where `entry` is `null` on a
//! miss and on a hit the entry's statistics (OP-10): `{"hash_function",
//! "outputs", "bytes", "created_at_unix", "last_used_unix"}`.
//!
//! `list`: `{"entries": [{"key", "hash_function", "outputs", "bytes",
//! "created_at_unix", "last_used_unix"}], "failures"}`, entries sorted by
//! key.
//!
//! `remove`: `{"key", "removed"}`, `removed` a boolean.
//!
//! `store`: `{"key", "outcome": "stored" | "already-present" | "contended",
//! "entry"}` where `entry` is the entry as published (`null` for
//! `contended`): `{"outputs": [{"path", "content_hash", "size", "mode"}],
//! "stdout_len", "stderr_len", "stdout_hash", "stderr_hash"}`, outputs in
//! manifest order (sorted by path), `mode` the permission bits as a number.
//!
//! `restore --json`: `{"key", "status", "restored"}` where `restored` is
//! `{"outputs", "stdout_len", "stderr_len"}` on a hit and `null` on a miss.
//!
//! With remotes configured (the native command, [`remote`]), `status`,
//! `store` and `restore` add a last member `"remote": {"hit", "tenant",
//! "pushed_to", "failures"}`: `hit` is `"local"`, the URL of the remote
//! that served the entry, or `null` (a miss everywhere, or a `store`);
//! `tenant` the tenant whose record served a remote hit; `pushed_to` lists the
//! remotes the entry was pushed to (`store`), in order; `failures` holds
//! each remote failure as the one line also printed on stderr (REMOTE-3).
//!
//! `push`: `{"key", "status", "pushed_to", "failures"}`, `status` being
//! the local status (`push` sends nothing unless it is `hit`).
//!
//! `pull`: `{"key", "status", "hit", "tenant", "failures"}`, `status`
//! being the local status after the pull, `hit` and `tenant` as in
//! `remote`.
//!
//! `remote status`: `{"tenant", "remotes": [{"url", "reachable",
//! "latency_micros", "read", "write", "entries", "entries_capped",
//! "failures"}]}` in lookup order; `write` is `null` for a read-only
//! remote, `entries` `null` when listing failed (REMOTE-15).
//!
//! `info`: `{"valid_entries", "schema_entries", "corrupt_entries",
//! "scratch_items", "foreign_items", "total_bytes", "schemas":
//! [{"chapter_revision", "hash_function", "entries"}], "failures"}`, schemas
//! sorted by (revision, function).
//!
//! `clean`: `{"dry_run", "removed": [{"path", "reason", "bytes"}],
//! "removed_bytes", "kept_in_use", "remaining_entries", "remaining_bytes",
//! "failures"}`; `reason` is `corrupt`, `schema`, `scratch`, `max-age` or
//! `max-size`; removed items are ordered by phase (soft, max-age,
//! max-size), by path within the first two and from least to most recently
//! used within max-size. Paths are relative to the cache directory.
//!
//! `clear`: `{"entries_removed", "other_removed", "failures"}`.
//!
//! `verify`: `{"checked", "intact", "skipped_schema", "damaged": [{"key",
//! "damage": "corrupt" | "content-mismatch", "path", "evicted"}],
//! "failures"}`, damaged entries sorted by key, `path` (relative to the
//! cache directory) `null` unless the damage is a content mismatch.
//!
//! `failures` (every maintenance report): `[{"path", "error"}]` sorted by
//! path, for items that could not be inspected or removed; the error text
//! leaves out raw OS error numbers.
//!
//! # Exit codes
//!
//! See [`exit`] for the table.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

extern crate alloc;

mod args;
pub mod config;
mod context;
mod error;
pub mod exit;
mod io;
mod keying;
pub mod parse;
mod plumbing;
pub mod remote;
pub mod report;
pub mod select;

use std::path::{Path, PathBuf};

use cachet_core::cache::Options;
use cachet_core::layout::CACHET_CACHE_DIR;

pub use args::{
    CleanArgs, ClearArgs, GlobalArgs, InfoArgs, KeyArgs, KeyCommand, ListArgs, PlumbingCli,
    PlumbingCommand, PullArgs, PushArgs, RemoteCommand, RemoteStatusArgs, RemoveArgs, RestoreArgs,
    StatusArgs, StoreArgs, VerifyArgs, report_usage_error,
};
pub use context::SystemContext;
pub use error::CliError;
pub use io::{StdRead, StdWrite};
pub use keying::{
    ActionSpec, FileHasher, FsHasher, HashStatistics, HashedFiles, Host, InputReport, KeyReport,
    PredecessorReport, compute_key,
};
pub use plumbing::{
    execute, execute_with_chain, finish_command, report_error, run_plumbing,
    run_plumbing_with_chain,
};

/// The environment variable that names the default cache directory.
pub const CACHE_DIR_VARIABLE: &str = "CACHET_CACHE_DIR";

/// The environment variable that turns the file-hash memo off when set to
/// anything but empty or `0` (like `--no-memo`; MEMO-7).
pub const NO_MEMO_VARIABLE: &str = "CACHET_NO_MEMO";

impl GlobalArgs {
    /// The cache options these flags ask for (the hash function, and
    /// whether restores are durable).
    pub fn cache_options(&self) -> Options {
        Options {
            hash_function: self.hash,
            durable_restore: self.durable_restore,
            ..Options::default()
        }
    }

    /// The cache directory: `--cache-dir`, else `$CACHET_CACHE_DIR` (or
    /// `cache_dir` in a configuration file, CONF-2) when set and non-empty,
    /// else `<workspace>/.cachet`. A relative `--cache-dir` or variable is
    /// returned as given (relative to the current directory).
    pub fn cache_dir(&self, workspace: &Path, settings: &config::Settings) -> PathBuf {
        if let Some(dir) = &self.cache_dir {
            return dir.clone();
        }
        match settings.var(CACHE_DIR_VARIABLE) {
            Some(dir) if !dir.is_empty() => PathBuf::from(dir),
            _ => workspace.join(CACHET_CACHE_DIR),
        }
    }
}

impl KeyArgs {
    /// Whether the file-hash memo is off: `--no-memo` was given, or
    /// `CACHET_NO_MEMO` (or `memo.enabled = false`, CONF-2) says so.
    pub fn memo_disabled(&self, settings: &config::Settings) -> bool {
        self.no_memo
            || settings
                .var(NO_MEMO_VARIABLE)
                .is_some_and(|value| !value.is_empty() && value != "0")
    }
}
