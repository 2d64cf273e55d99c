//! `cachet`: the std binding of the cachet cache engine, and the `cachet`
//! command.
//!
//! A task runner asks it "have I already run this task?" and gets the
//! outputs back when the answer is yes:
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use cachet::task::{Ran, Task, TaskCache};
//! use cachet::cachet_core::cache::Options;
//!
//! let workspace = tempfile::tempdir()?;
//! std::fs::write(workspace.path().join("src.txt"), "cached")?;
//! let cache = TaskCache::open(workspace.path(), None, Options::default())?;
//! let task = Task::command(["cp", "src.txt", "out.txt"])
//!     .input_file("src.txt")
//!     .output("out.txt");
//!
//! let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
//! // A miss: the command runs, and its result is stored.
//! let ran = cache.run(&task, &mut stdout, &mut stderr)?;
//! assert!(matches!(ran, Ran::Executed { exit_code: Some(0), stored: true, .. }));
//!
//! // A hit: the output comes back from the cache, the command does not run.
//! std::fs::remove_file(workspace.path().join("out.txt"))?;
//! let ran = cache.run(&task, &mut stdout, &mut stderr)?;
//! assert!(matches!(ran, Ran::Restored { outputs: 1, .. }));
//! assert_eq!(std::fs::read(workspace.path().join("out.txt"))?, b"cached");
//! # Ok(())
//! # }
//! ```
//!
//! # Which API do I use?
//!
//! | you want to | use | spec |
//! |---|---|---|
//! | run a task through the cache, or ask whether it is a hit and run it yourself | [`task::Task`], [`task::TaskCache::run`], [`task::TaskCache::lookup`] and [`task::TaskCache::store`] | §2, OP-1..3 |
//! | look after entries: list them, their statistics, remove one, find its files, restore them to paths you choose, trim the cache by size with keys in use | [`task::TaskCache::cache`], then [`Cache::list`](cachet_core::cache::Cache::list), [`stats`](cachet_core::cache::Cache::stats), [`remove`](cachet_core::cache::Cache::remove), [`find`](cachet_core::cache::Cache::find), [`revive`](cachet_core::cache::Cache::revive), [`clean`](cachet_core::cache::Cache::clean) with [`CleanModes`](cachet_core::cache::CleanModes) | OP-4..15 |
//! | share entries with other machines through S3, WebDAV or a shared directory, as `cachet run --remote` does | [`task::TaskCache::with_remotes`], then `run`, `lookup` and `store` as above; each result's `remote` report says which tier served it, where it was pushed, and every remote failure | REMOTE-1..3, REMOTE-20 |
//! | restore under another root than the workspace | a [`task::TaskCache`] opened with that root as its workspace and the same cache directory | OP-12 |
//! | derive keys yourself, or run the cache over your own filesystem (in memory, in a sandbox) | [`cachet_core`]: [`key::derive_key`](cachet_core::key::derive_key), [`Cache`](cachet_core::cache::Cache) over a [`Filesystem`](cachet_core::fs::Filesystem) | §2..7 |
//! | the `cachet` command line in another host | [`cachet_cli`] | §8 |
//!
//! The operations on entries, over the cache the example above filled:
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # use cachet::task::{Task, TaskCache};
//! # use cachet::cachet_core::cache::Options;
//! # let workspace = tempfile::tempdir()?;
//! # std::fs::write(workspace.path().join("src.txt"), "cached")?;
//! # let cache = TaskCache::open(workspace.path(), None, Options::default())?;
//! # let task = Task::command(["cp", "src.txt", "out.txt"]).input_file("src.txt").output("out.txt");
//! # cache.run(&task, &mut Vec::new(), &mut Vec::new())?;
//! use cachet::cachet_cli::SystemContext;
//! use cachet::cachet_core::cache::{CleanModes, RestoreOutcome};
//!
//! let key = cache.key(&task)?.key;
//! let entries = cache.cache().list()?.entries;
//! assert_eq!(entries.len(), 1);
//! assert_eq!((entries[0].key, entries[0].outputs), (key, 1));
//!
//! // Where the entry's files are, relative to the cache directory.
//! let files = cache.cache().find(&key)?.expect("a hit");
//! assert_eq!(files.outputs[0].path, "/out.txt");
//! assert!(cache.cache_dir().join(files.outputs[0].blob.as_str()).is_file());
//!
//! // Its outputs at other paths of the workspace, in the entry's order.
//! let mut ctx = SystemContext::new();
//! let revived = cache.cache().revive(&key, &["/copies/out.txt"], Vec::new(), Vec::new(), &mut ctx)?;
//! assert!(matches!(revived, RestoreOutcome::Restored { outputs: 1, .. }));
//! assert_eq!(std::fs::read(workspace.path().join("copies/out.txt"))?, b"cached");
//!
//! // Trim to 0 bytes, entries whose keys are not in use first.
//! let modes = CleanModes {
//!     max_size_bytes: Some(0),
//!     in_use: Some([key].into_iter().collect()),
//!     ..CleanModes::default()
//! };
//! assert_eq!(cache.cache().clean(&modes, &mut ctx)?.removed.len(), 1);
//! assert!(!cache.cache().remove(&key, &mut ctx)?, "already gone");
//! # Ok(())
//! # }
//! ```
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
//! - [`task`]: the task API above; `cachet run` is built on it.
//! - [`remote`]: the remote stores over OpenDAL, and
//!   [`remote::tier::RemoteTier`], which opens them once and runs each
//!   command or task API call as one run of the chain (fault session and
//!   circuit breakers around it).
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
pub mod task;
pub mod tasks;
