//! The cache operations (SPEC §6, OP-1..8), written once against
//! [`Filesystem`].
//!
//! [`Cache`] owns a filesystem and [`Options`]; each operation lives in its
//! own module: [`Cache::lookup`] and [`Cache::lookup_status`] (OP-1),
//! [`Cache::store`] (OP-2), [`Cache::restore`] (OP-3), and the maintenance
//! walks [`Cache::clear`], [`Cache::clean`], [`Cache::info`] and
//! [`Cache::verify`] (OP-4..7), and the operations a task runner uses on
//! single entries: [`Cache::list`], [`Cache::stats`], [`Cache::remove`],
//! [`Cache::revive`] and [`Cache::find`] (OP-9..14; OP-12, restoring under
//! another root, is [`Cache::restore`] over a filesystem whose workspace is
//! that root). Every byte of output and stream content
//! flows through a fixed buffer of [`Options::copy_buffer_bytes`] (one per
//! task where restore's staging runs on several threads, see
//! [`Cache::with_tasks`]), so memory does not grow with output sizes or
//! counts (except what [`Cache::store_holding`] is asked to keep, within
//! its [`HeldContents`]' limits); the manifest is the only thing read whole, and it is capped by
//! [`Options::max_manifest_bytes`] (MAN-4).
//!
//! The core owns no clock and no randomness: the current time and the
//! random suffixes of scratch names (DISK-5) come from a [`Context`].
//!
//! Concurrency (OP-8) and crashes (SAFE-3) rest on three habits: an entry
//! becomes visible only by renaming a complete, synced scratch directory
//! into place; an entry disappears only by being renamed aside (to a
//! scratch name) before anything in it is deleted; and a reader that finds
//! anything missing or wrong reports a miss, never an error.

mod held;
mod import;
mod inventory;
mod lookup;
mod maintain;
mod restore;
mod store;

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::ops::ControlFlow;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::fs::{self, FileKind, Filesystem, Read, Replace, Root, Timestamp, Write};
use crate::hash::{Digest, HashFunction, Hasher};
use crate::key::Key;
use crate::layout;
use crate::manifest::OutputConflict;
use crate::path::{MAX_PATH_BYTES, PathError};
use crate::tasks::{Sequential, Tasks};

pub use held::HeldContents;
pub use import::Rejection;
pub(crate) use import::{ContentSource, Imported, SourceError};
pub use inventory::{EntryFiles, EntryStats, ListReport, OutputFile};
pub use lookup::LookupStatus;
pub use maintain::{
    CleanModes, CleanReason, CleanReport, ClearReport, Damage, DamagedEntry, Failure, InfoReport,
    RemovedItem, SchemaCount, VerifyReport,
};
pub use restore::RestoreOutcome;
pub use store::StoreOutcome;

/// Tunables, with defaults that suit a developer machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// The active hash function: keys are derived with it, and entries
    /// written under another one are schema misses (OP-1).
    pub hash_function: HashFunction,
    /// Manifests larger than this are corrupt (MAN-4). Default 64 MiB,
    /// room for about 250,000 outputs.
    pub max_manifest_bytes: u64,
    /// Size of the buffer every copy streams through (each task of a
    /// restore has its own). Default 256 KiB.
    pub copy_buffer_bytes: usize,
    /// Scratch directories younger than this are left alone by a soft
    /// clean, because a store or restore may still be using them (OP-5).
    /// Default one hour.
    pub scratch_grace_seconds: u64,
    /// Whether restore makes every output durable before renaming it onto
    /// its target, so that after a power loss each target is either as it
    /// was or complete. Default `false`: a fresh run of the task does not
    /// sync its outputs either (CLAIM-1), nor does `cp -r`, and the sync
    /// costs more than the copy. Either way the cache itself is never put
    /// at risk (SAFE-3): restore only reads entries.
    pub durable_restore: bool,
    /// The cache directory's path relative to the workspace root
    /// (`.cachet`, `.haz/cache`) when it lies inside the workspace, as the
    /// host resolved it (SEL-2). No entry may have an output there: one
    /// that does is corrupt (SAFE-8), and a store refuses to write it.
    /// Default `None`: the cache directory lies outside the workspace.
    pub cache_dir_in_workspace: Option<String>,
}

/// Default for [`Options::max_manifest_bytes`].
pub const DEFAULT_MAX_MANIFEST_BYTES: u64 = 64 * 1024 * 1024;

impl Default for Options {
    fn default() -> Options {
        Options {
            hash_function: HashFunction::Blake3,
            max_manifest_bytes: DEFAULT_MAX_MANIFEST_BYTES,
            copy_buffer_bytes: 256 * 1024,
            scratch_grace_seconds: 3600,
            durable_restore: false,
            cache_dir_in_workspace: None,
        }
    }
}

/// What the operations need from the host besides a filesystem.
pub trait Context {
    /// The current time.
    fn now(&self) -> Timestamp;
    /// A fresh random value for a scratch-name suffix (DISK-5). Values must
    /// differ between concurrent processes; within one process, successive
    /// calls must differ too.
    fn scratch_suffix(&mut self) -> u64;
}

/// A deterministic [`Context`] for tests and fuzzing: a settable clock and a
/// counter for suffixes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeterministicContext {
    /// What [`Context::now`] returns.
    pub now: Timestamp,
    /// The next suffix [`Context::scratch_suffix`] hands out.
    pub next_suffix: u64,
}

impl Context for DeterministicContext {
    fn now(&self) -> Timestamp {
        self.now
    }

    fn scratch_suffix(&mut self) -> u64 {
        let suffix = self.next_suffix;
        self.next_suffix = self.next_suffix.wrapping_add(1);
        suffix
    }
}

/// Which filesystem call failed, for error messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Step {
    /// Opening a file for reading.
    Open,
    /// Creating a file.
    Create,
    /// Creating a directory.
    CreateDir,
    /// Reading file contents.
    Read,
    /// Writing file contents.
    Write,
    /// Syncing a file or directory.
    Sync,
    /// Renaming.
    Rename,
    /// Removing a file or directory.
    Remove,
    /// Listing a directory.
    List,
    /// Reading metadata.
    Stat,
    /// Setting permission bits.
    SetMode,
    /// Copying a file inside the host ([`Filesystem::copy_file`]).
    Copy,
}

impl core::fmt::Display for Step {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Step::Open => "open",
            Step::Create => "create",
            Step::CreateDir => "create directory",
            Step::Read => "read",
            Step::Write => "write",
            Step::Sync => "sync",
            Step::Rename => "rename",
            Step::Remove => "remove",
            Step::List => "list",
            Step::Stat => "inspect",
            Step::SetMode => "set permissions of",
            Step::Copy => "copy",
        })
    }
}

/// Why an operation failed. A miss is never an error (OP-1, SAFE-4).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CacheError {
    /// A filesystem call failed.
    Io {
        /// What the operation was doing.
        step: Step,
        /// Which root `path` is relative to.
        root: Root,
        /// The path, relative to `root`.
        path: String,
        /// The host's error.
        source: fs::Error,
    },
    /// An output path given to store is not a valid workspace path (PATH-3).
    InvalidOutputPath {
        /// The path as given.
        path: String,
        /// What is wrong with it.
        reason: PathError,
    },
    /// The same output path was given twice to one store (OP-2, SAFE-5).
    DuplicateOutput {
        /// The repeated path.
        path: String,
    },
    /// An output given to store cannot be stored with the others: it lies
    /// below another one, in `.git` or in the cache directory (SAFE-6..8).
    /// Nothing was stored.
    ConflictingOutput {
        /// The output's workspace path.
        path: String,
        /// The rule it breaks.
        conflict: OutputConflict,
    },
    /// An output is not a regular file: manifests hold regular files only,
    /// so the entry is not stored rather than stored without it.
    OutputNotRegularFile {
        /// The output's workspace path.
        path: String,
        /// What it is instead.
        kind: FileKind,
    },
    /// A restore target cannot be written safely: an ancestor directory is
    /// a symlink or not a directory, or the target is a directory (SAFE-2).
    /// Nothing was written.
    UnsafeTarget {
        /// The output's workspace path.
        path: String,
        /// The workspace path of the component in the way.
        blocker: String,
        /// What that component is.
        kind: FileKind,
    },
    /// [`Cache::revive`] was given another number of targets than the
    /// entry has outputs (OP-13). Nothing was written.
    TargetCount {
        /// Outputs the entry records.
        outputs: u64,
        /// Targets given.
        targets: u64,
    },
    /// A target given to [`Cache::revive`] lies inside another target, which
    /// would have to be a file and a directory at once (OP-13). Nothing was
    /// written.
    NestedTarget {
        /// The inner target.
        path: String,
        /// The target it lies inside.
        ancestor: String,
    },
    /// Writing a replayed stream to the caller's sink failed.
    StreamWrite {
        /// `stdout` or `stderr`.
        stream: &'static str,
        /// The sink's error.
        source: fs::Error,
    },
    /// A directory in the cache is nested deeper than any path cachet
    /// creates; it was left in place.
    TooDeep {
        /// The path, relative to the cache directory, where the walk stopped.
        path: String,
    },
}

impl core::fmt::Display for CacheError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            CacheError::Io {
                step,
                root,
                path,
                source,
            } => {
                write!(f, "could not {step} '{path}' in the {root} root: {source}")
            }
            CacheError::InvalidOutputPath { path, reason } => {
                write!(
                    f,
                    "output path '{path}' is not a valid workspace path: {reason}"
                )
            }
            CacheError::DuplicateOutput { path } => {
                write!(f, "output path '{path}' is listed twice")
            }
            CacheError::ConflictingOutput { path, conflict } => write!(
                f,
                "output '{path}' {conflict}; leave it out of the outputs to store"
            ),
            CacheError::OutputNotRegularFile { path, kind } => write!(
                f,
                "output '{path}' is a {}, not a regular file; cachet stores regular files only, so this result was not cached",
                kind.name()
            ),
            CacheError::UnsafeTarget {
                path,
                blocker,
                kind,
            } => write!(
                f,
                "refusing to restore '{path}': '{blocker}' is a {}, and writing through it could leave the workspace",
                kind.name()
            ),
            CacheError::TargetCount { outputs, targets } => write!(
                f,
                "the entry has {outputs} outputs but {targets} target paths were given; give one path per output, in the entry's order"
            ),
            CacheError::NestedTarget { path, ancestor } => write!(
                f,
                "target '{path}' lies inside target '{ancestor}', which cannot be a file and a directory at once; choose paths that do not nest"
            ),
            CacheError::StreamWrite { stream, source } => {
                write!(f, "could not replay the recorded {stream}: {source}")
            }
            CacheError::TooDeep { path } => write!(
                f,
                "'{path}' in the cache directory is nested too deeply to be a cachet entry; remove it by hand"
            ),
        }
    }
}

#[cfg(feature = "std")]
impl core::error::Error for CacheError {}

/// Wraps a filesystem error with what was being done and where.
pub(crate) fn io(step: Step, root: Root, path: &str) -> impl FnOnce(fs::Error) -> CacheError {
    move |source| CacheError::Io {
        step,
        root,
        path: String::from(path),
        source,
    }
}

/// A content cache over one filesystem (see the module docs).
pub struct Cache<F: Filesystem> {
    fs: F,
    options: Options,
    /// Runs restore's staging and a large lookup's blob checks;
    /// [`Sequential`] unless [`Cache::with_tasks`] says otherwise.
    tasks: Box<dyn Tasks<F> + Send + Sync>,
}

impl<F: Filesystem + core::fmt::Debug> core::fmt::Debug for Cache<F> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Cache")
            .field("fs", &self.fs)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl<F: Filesystem> Cache<F> {
    /// A cache over `fs` with default [`Options`].
    pub fn new(fs: F) -> Cache<F> {
        Cache::with_options(fs, Options::default())
    }

    /// A cache over `fs` with `options`, running everything on the calling
    /// thread ([`Sequential`]).
    pub fn with_options(fs: F, options: Options) -> Cache<F> {
        Cache {
            fs,
            options,
            tasks: Box::new(Sequential),
        }
    }

    /// This cache, running its independent work (staging a restore's
    /// outputs, checking a large entry's blobs) on `tasks`, e.g. the std
    /// binding's threads. What the operations do and report is the same
    /// whatever runs the tasks.
    pub fn with_tasks(self, tasks: impl Tasks<F> + Send + Sync + 'static) -> Cache<F> {
        Cache {
            tasks: Box::new(tasks),
            ..self
        }
    }

    /// The filesystem this cache works on.
    pub fn filesystem(&self) -> &F {
        &self.fs
    }

    /// The options in force.
    pub fn options(&self) -> &Options {
        &self.options
    }

    /// How many tasks [`Cache::run_tasks`] may be given at once.
    fn parallelism(&self) -> usize {
        self.tasks.parallelism().max(1)
    }

    /// Runs `task` once per slot of `results` on the cache's [`Tasks`],
    /// each putting what it returns in its own slot.
    fn run_tasks<R: Send>(&self, results: &mut [R], task: &(dyn Fn(&F) -> R + Sync)) {
        let mut jobs: Vec<_> = results
            .iter_mut()
            .map(|slot| move |fs: &F| *slot = task(fs))
            .collect();
        let mut jobs: Vec<&mut (dyn FnMut(&F) + Send)> = jobs
            .iter_mut()
            .map(|job| job as &mut (dyn FnMut(&F) + Send))
            .collect();
        self.tasks.run(&self.fs, &mut jobs);
    }

    /// Decided once per operation: the answer must not change between the
    /// writes and the sync that makes them durable.
    fn durability(&self) -> Durability {
        if self.fs.supports_sync_filesystem() {
            Durability::WholeFilesystem
        } else {
            Durability::PerFile
        }
    }

    fn buffer(&self) -> Vec<u8> {
        alloc::vec![0u8; self.buffer_len()]
    }

    fn buffer_len(&self) -> usize {
        self.options.copy_buffer_bytes.max(4096)
    }

    /// Whether a `NotFound` at `failed` means a concurrent clear is removing
    /// (or has removed) the private scratch dir `scratch` of a store or
    /// restore. Nobody else writes in a scratch dir, so a path inside it
    /// that vanished was taken by such a clear; a path outside it counts
    /// when the scratch dir itself is gone (its shard was removed).
    pub(crate) fn lost_scratch(&self, scratch: &str, failed: &str) -> bool {
        let inside = failed
            .strip_prefix(scratch)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'));
        inside
            || matches!(
                self.fs.metadata(Root::Cache, scratch),
                Err(e) if e.kind == fs::ErrorKind::NotFound
            )
    }

    /// Removes `path` and everything below it, without following symlinks;
    /// an absent path is fine. Iterative, so a hostile tree cannot exhaust
    /// the stack (SAFE-1).
    pub(crate) fn remove_tree(&self, root: Root, path: &str) -> Result<(), CacheError> {
        match self.fs.metadata(root, path) {
            Err(e) if e.kind == fs::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io(Step::Stat, root, path)(e)),
            Ok(meta) if meta.kind != FileKind::Dir => {
                return remove_ignoring_absent(self.fs.remove_file(root, path), root, path);
            }
            Ok(_) => {}
        }
        let mut stack: Vec<String> = alloc::vec![String::from(path)];
        while let Some(dir) = stack.last().cloned() {
            let mut subdirs: Vec<String> = Vec::new();
            let mut failure: Option<CacheError> = None;
            let listed = self.fs.read_dir(root, &dir, &mut |name, kind| {
                let child = child_path(&dir, name);
                if kind == FileKind::Dir {
                    subdirs.push(String::from(child.as_str()));
                } else if let Err(e) =
                    remove_ignoring_absent(self.fs.remove_file(root, &child), root, &child)
                {
                    failure = Some(e);
                    return ControlFlow::Break(());
                }
                ControlFlow::Continue(())
            });
            if let Some(e) = failure {
                return Err(e);
            }
            match listed {
                Err(e) if e.kind == fs::ErrorKind::NotFound => {
                    stack.pop();
                    continue;
                }
                Err(e) => return Err(io(Step::List, root, &dir)(e)),
                Ok(()) => {}
            }
            if subdirs.is_empty() {
                remove_ignoring_absent(self.fs.remove_dir(root, &dir), root, &dir)?;
                stack.pop();
            } else {
                if subdirs.iter().any(|d| d.len() > MAX_PATH_BYTES) {
                    return Err(CacheError::TooDeep { path: dir });
                }
                stack.extend(subdirs);
            }
        }
        Ok(())
    }

    /// Makes the entry for `key` invisible by renaming its directory aside,
    /// then deletes it (OP-2's "moved aside", OP-5's "invisible before its
    /// blobs go"). Returns whether this call removed it: `false` when it
    /// was already gone.
    pub(crate) fn evict(&self, key: &Key, ctx: &mut dyn Context) -> Result<bool, CacheError> {
        let entry = layout::entry_dir(key);
        let aside = layout::evicted_dir(key, ctx.scratch_suffix());
        let moved = fs::rename_path(
            &self.fs,
            (Root::Cache, &entry),
            (Root::Cache, &aside),
            Replace::Allowed,
        );
        match moved {
            Ok(()) => {}
            Err(e) if e.kind == fs::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(io(Step::Rename, Root::Cache, &entry)(e)),
        }
        self.remove_tree(Root::Cache, &aside)?;
        Ok(true)
    }
}

/// `<dir>/<name>` for a name read from a listing, which may be arbitrarily
/// long in a damaged or hostile cache.
pub(crate) fn child_path(dir: &str, name: &str) -> String {
    let mut path = String::with_capacity(dir.len() + 1 + name.len());
    if !dir.is_empty() {
        path.push_str(dir);
        path.push('/');
    }
    path.push_str(name);
    path
}

fn remove_ignoring_absent(
    result: Result<(), fs::Error>,
    root: Root,
    path: &str,
) -> Result<(), CacheError> {
    match result {
        Err(e) if e.kind == fs::ErrorKind::NotFound => Ok(()),
        other => other.map_err(io(Step::Remove, root, path)),
    }
}

/// How store and restore make what they wrote durable before publishing
/// it (OP-2, SAFE-3). Either way every file and directory entry an entry
/// consists of is durable before the rename that publishes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Durability {
    /// `fsync` each file and directory as it is finished.
    PerFile,
    /// One [`Filesystem::sync_filesystem`] after everything is written:
    /// the same guarantee for thousands of small files in one call.
    WholeFilesystem,
}

/// Copies `reader` into the new file `writer`, and returns the digest
/// and size of what the new file now holds. `from` and `to` name both
/// ends in errors.
///
/// A file that does not fit in the copy buffer is copied by the host
/// where it can do better ([`Filesystem::copy_file`]: a reflink, or a
/// copy inside the kernel hashed on another thread); the host hashes
/// the copy, not the source, so the digest describes the bytes actually
/// written. Smaller files, and hosts without a fast copy, stream
/// through `buffer`, hashed on the way: one read and one write.
pub(crate) fn copy_into<F: Filesystem>(
    fs: &F,
    function: HashFunction,
    (from_root, from, mut reader): (Root, &str, F::Reader),
    (to_root, to, writer): (Root, &str, &mut F::Writer),
    size_hint: u64,
    buffer: &mut [u8],
) -> Result<(Digest, u64), CacheError> {
    let fits = usize::try_from(size_hint).is_ok_and(|size| size <= buffer.len());
    if !fits {
        match fs.copy_file(&mut reader, writer, function) {
            Ok(copied) => return Ok(copied),
            Err(e) if e.kind == fs::ErrorKind::Unsupported => {}
            // A full disk or a read-only cache is about the target;
            // anything else more likely about the source.
            Err(e) if matches!(e.kind, fs::ErrorKind::StorageFull | fs::ErrorKind::ReadOnly) => {
                return Err(io(Step::Copy, to_root, to)(e));
            }
            Err(e) => return Err(io(Step::Copy, from_root, from)(e)),
        }
    }
    copy_hashing(reader, writer, buffer, function).map_err(|failure| match failure {
        CopyFailure::Read(e) => io(Step::Read, from_root, from)(e),
        CopyFailure::Write(e) => io(Step::Write, to_root, to)(e),
    })
}

/// How the tasks of one operation ([`Cache::run_tasks`]) share a run
/// of outputs: each claims the next chunk nobody has, until none is left or
/// one of them has settled the outcome (a bad blob, an error) and stopped
/// the rest.
pub(crate) struct ChunkClaims {
    chunk: usize,
    next: AtomicUsize,
    stopped: AtomicBool,
}

impl ChunkClaims {
    /// Claims of `chunk` outputs each (at least one).
    pub(crate) fn new(chunk: usize) -> ChunkClaims {
        ChunkClaims {
            chunk: chunk.max(1),
            next: AtomicUsize::new(0),
            stopped: AtomicBool::new(false),
        }
    }

    /// The indices of the next unclaimed chunk. Claims only grow: a task
    /// that claims again after finishing a chunk gets one that starts where
    /// that one ended or later.
    pub(crate) fn claim(&self) -> core::ops::Range<usize> {
        let start = self
            .next
            .fetch_add(1, Ordering::Relaxed)
            .saturating_mul(self.chunk);
        start..start.saturating_add(self.chunk)
    }

    /// Tells the other tasks to stop at their next output.
    pub(crate) fn stop(&self) {
        self.stopped.store(true, Ordering::Relaxed);
    }

    /// Whether a task has called [`ChunkClaims::stop`].
    pub(crate) fn stopped(&self) -> bool {
        self.stopped.load(Ordering::Relaxed)
    }
}

/// Where a streaming copy failed.
pub(crate) enum CopyFailure {
    Read(fs::Error),
    Write(fs::Error),
}

/// Copies `reader` into `writer` through `buffer`, hashing what passes.
/// Returns the digest and the number of bytes copied.
pub(crate) fn copy_hashing<R: Read, W: Write>(
    mut reader: R,
    mut writer: W,
    buffer: &mut [u8],
    function: HashFunction,
) -> Result<(Digest, u64), CopyFailure> {
    let mut hasher = Hasher::new(function);
    let mut total: u64 = 0;
    loop {
        let n = reader.read(buffer).map_err(CopyFailure::Read)?;
        if n == 0 {
            break;
        }
        let chunk = buffer.get(..n).unwrap_or_default();
        hasher.update(chunk);
        writer.write_all(chunk).map_err(CopyFailure::Write)?;
        total = total.saturating_add(n as u64);
    }
    Ok((hasher.finalize(), total))
}

/// A sink that discards what it is given, for hashing without copying.
pub(crate) struct Discard;

impl Write for Discard {
    fn write(&mut self, buf: &[u8]) -> Result<usize, fs::Error> {
        Ok(buf.len())
    }
}

#[cfg(all(test, feature = "memfs"))]
pub(crate) mod test_support;
#[cfg(all(test, feature = "memfs"))]
mod tests;
