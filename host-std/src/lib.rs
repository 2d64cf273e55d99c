//! `cachet`: the std binding of the cachet cache engine, and the `cachet`
//! command.
//!
//! It implements nothing that decides anything about the cache: the rules
//! live in [`cachet_core`], the command line in [`cachet_cli`] (both
//! re-exported under their own names). This crate only moves bytes between
//! them and the operating system:
//!
//! - [`fs`]: [`fs::CapStdFilesystem`], the core's
//!   [`Filesystem`](cachet_core::fs::Filesystem) over two `cap-std`
//!   directory capabilities (workspace and cache directory), so that no path the
//!   core or a manifest names can reach outside them (SAFE-2). It syncs only
//!   when the core asks, which is what OP-2 needs.
//! - [`inputs`]: hashes input files, large ones from a memory map on
//!   several threads (KEY-2, KEY-5); which files are inputs is
//!   [`cachet_cli::select`]'s, so the native command and the guest agree.
//! - [`memo`]: reads and writes the file-hash memo of a cache directory,
//!   whose rules are [`cachet_core::memo`]'s (MEMO-1..7).
//! - [`exec`]: runs a task's command on a miss, passing its stdout and
//!   stderr through live while capturing both to files (the streams of
//!   DISK-3 and CLAIM-1), never buffering them whole in memory.
//! - [`native`]: the `cachet` binary's entry point and the `run`
//!   subcommand.
//! - [`tasks`]: [`tasks::Threads`], the core's
//!   [`Tasks`](cachet_core::tasks::Tasks) on scoped threads, so that a
//!   restore stages, and a lookup of a large entry checks blobs, on up to
//!   one thread per core.
//!
//! **May depend on** `cachet-core`, `cachet-cli`, and std-only crates for
//! files, threads and terminals (cap-std, rustix, rayon, indicatif).
//! **Must not** decide what is a hit, what is stored or where anything
//! lives in the cache: a rule written here would make the native command
//! and the WASI guest disagree.
//!
//! # Rules
//!
//! Rule ids in these docs and in test names (`KEY-5`, `OP-3`, `SPEC §2`)
//! are those of `docs/spec.md` in the repository, the project's own
//! specification.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

extern crate alloc;

pub use cachet_cli;
pub use cachet_core;

pub mod config;
pub mod exec;
pub mod fs;
pub mod inputs;
pub mod memo;
pub mod native;
pub mod remote;
pub mod tasks;
