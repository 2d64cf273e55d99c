//! `cachet`: the std binding of the cachet cache engine.
//!
//! Everything that decides anything about the cache lives in
//! [`cachet_core`] (re-exported as [`core`]); this crate only moves bytes
//! between that engine and a Linux host:
//!
//! - [`fs`]: [`fs::CapStdFilesystem`], the core's
//!   [`Filesystem`](cachet_core::fs::Filesystem) over two `cap-std`
//!   directory capabilities (workspace and cache root), so that no path the
//!   core or a manifest names can reach outside them (SAFE-2). It syncs only
//!   when the core asks, which is what OP-2 needs.
//! - [`inputs`]: selects input files by glob, honouring `.gitignore`, and
//!   hashes them in parallel for the key (KEY-2, KEY-5). The cache directory
//!   and `.git` are never inputs.
//! - [`exec`]: runs a task's command on a miss, passing its stdout and stderr
//!   through live while capturing both to files (the streams of DISK-3 and
//!   CLAIM-1), never buffering them whole in memory.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub use cachet_core as core;

pub mod exec;
pub mod fs;
pub mod inputs;
