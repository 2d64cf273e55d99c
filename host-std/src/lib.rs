//! `cachet`: the std binding of the cachet cache engine, and the `cachet`
//! command.
//!
//! Everything that decides anything about the cache lives in
//! [`cachet_core`] (re-exported as [`core`]); this crate only moves bytes
//! between that engine and a host:
//!
//! - [`cli`] (always built, also for `wasm32-wasip1`): the command line
//!   shared by the native `cachet` binary and the `cachet-wasi` guest: the
//!   clap definitions of the plumbing subcommands, input and output
//!   selection over the core's [`Filesystem`](cachet_core::fs::Filesystem)
//!   trait, key computation, the text and JSON reports, the exit-code table
//!   and [`cli::run_plumbing`], which runs one plumbing subcommand over any
//!   filesystem. Its module docs are the reference for flags, JSON shapes
//!   and exit codes.
//! - [`fs`] (`native`): [`fs::CapStdFilesystem`], the core's
//!   [`Filesystem`](cachet_core::fs::Filesystem) over two `cap-std`
//!   directory capabilities (workspace and cache root), so that no path the
//!   core or a manifest names can reach outside them (SAFE-2). It syncs only
//!   when the core asks, which is what OP-2 needs.
//! - [`inputs`] (`native`): selects input files by glob with the `ignore`
//!   walker and hashes files in parallel (KEY-2, KEY-5). The `cachet`
//!   command selects with [`cli::select`] and uses only the parallel hashing
//!   from here, so `cachet key` and `cachet run` agree with the guest.
//! - [`exec`] (`native`): runs a task's command on a miss, passing its stdout
//!   and stderr through live while capturing both to files (the streams of
//!   DISK-3 and CLAIM-1), never buffering them whole in memory.
//! - [`memo`] (`native`): reads and writes the file-hash memo of a cache
//!   directory, whose rules are [`cachet_core::memo`]'s (MEMO-1..6).
//! - [`native`] (`native`): the `cachet` binary's entry point and the `run`
//!   subcommand.
//!
//! # Crate features
//!
//! - `native` (default): `fs`, `inputs`, `exec`, `native` and the `cachet`
//!   binary. Without it the crate builds for `wasm32-wasip1`
//!   (`cargo build -p cachet --no-default-features --target wasm32-wasip1`)
//!   and offers [`cli`] only.
//!
//! # Rules
//!
//! Rule ids in these docs and in test names (`KEY-5`, `OP-3`, `SPEC §2`)
//! are those of `docs/spec.md` in the repository, the project's own
//! specification.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

extern crate alloc;

pub use cachet_core as core;

pub mod cli;
#[cfg(feature = "native")]
pub mod exec;
#[cfg(feature = "native")]
pub mod fs;
#[cfg(feature = "native")]
pub mod inputs;
#[cfg(feature = "native")]
pub mod memo;
#[cfg(feature = "native")]
pub mod native;
