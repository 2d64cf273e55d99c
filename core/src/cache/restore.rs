//! OP-3: restore.
//!
//! Re-validates the entry as lookup does, checks that every target can be
//! written without leaving the workspace (SAFE-2), stages every output and
//! both streams in a restore scratch directory (DISK-5) while verifying
//! content hashes and sizes, and only when all of it is staged, verified
//! and synced renames each staged file onto its target (its mode already
//! applied, so a target appears complete and with its final permissions at
//! once). A mismatch aborts before anything is published and reports the
//! entry as corrupt. The scratch directory is removed on success and
//! failure. If publishing fails midway the error is returned and the caller
//! treats the result as a miss: it runs the task, which rewrites every
//! output.
//!
//! Staged outputs go into numbered buckets of [`STAGE_BUCKET`] inside the
//! scratch directory (DISK-5 leaves its inside to us), and the buckets are
//! filled by as many tasks as the cache's [`Tasks`](crate::tasks::Tasks)
//! run at once. Nothing is renamed onto a target before
//! every task has finished and everything has verified.

use alloc::collections::BTreeSet;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write as _;

use super::lookup::LookupStatus;
use super::{
    Cache, CacheError, ChunkClaims, Context, CopyFailure, Durability, Step, copy_hashing,
    copy_into, io,
};
use crate::fs::{
    ErrorKind, FileKind, FileWriter, Filesystem, Name, Replace, Root, Write, parent_and_name,
};
use crate::hash::{Digest, HashFunction};
use crate::key::Key;
use crate::layout::{self, LayoutPath};
use crate::manifest::{Manifest, OutputRecord};
use crate::path::WorkspacePath;

/// How a restore ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestoreOutcome {
    /// Every output is in place and both streams were replayed.
    Restored {
        /// Number of outputs written.
        outputs: u64,
        /// Bytes of stdout replayed.
        stdout_len: u64,
        /// Bytes of stderr replayed.
        stderr_len: u64,
    },
    /// Nothing was written: the entry is not a hit, or its bytes did not
    /// verify while staging (reported as [`LookupStatus::MissCorrupt`]).
    Miss(LookupStatus),
}

/// What a staged copy must turn out to be, and the mode it gets.
struct Staged<'a> {
    hash: &'a Digest,
    size: u64,
    /// Permission bits for an output; streams keep the default.
    mode: Option<u32>,
}

/// Ancestor directories already checked or created, so that many outputs
/// in one directory cost one stat, not one each.
type CheckedDirs = BTreeSet<String>;

/// Staged outputs are spread over subdirectories of the scratch directory,
/// this many to each: a file created in or renamed out of a directory costs
/// a search of that directory, which on ext4 grows with its size (one
/// scratch directory for 10,000 outputs made their restore 613 ms against
/// 430 ms in buckets, on the reference VM). 128 short names fit one 4 KiB
/// directory block.
const STAGE_BUCKET: usize = 128;

/// The bucket directory of output `index`, below `scratch`.
fn stage_bucket(scratch: &str, index: usize) -> LayoutPath {
    let mut path = LayoutPath::new();
    // A 90-byte scratch name plus a decimal number fits the capacity.
    let _ = write!(path, "{scratch}/{}", index / STAGE_BUCKET);
    path
}

/// The name of output `index` inside its bucket.
fn staged_name(index: usize) -> heapless::String<20> {
    let mut name = heapless::String::new();
    // A usize has at most 20 decimal digits.
    let _ = write!(name, "{}", index % STAGE_BUCKET);
    name
}

fn staged_path(scratch: &str, index: usize) -> LayoutPath {
    let mut path = stage_bucket(scratch, index);
    let _ = write!(path, "/{}", staged_name(index));
    path
}

fn as_workspace_path(record: &OutputRecord) -> Option<WorkspacePath<'_>> {
    WorkspacePath::new(record.path.as_str()).ok()
}

/// Where output `index` goes: the caller's chosen path when reviving
/// (OP-13), else the path the manifest records (OP-3).
fn target_path<'a>(
    targets: Option<&[WorkspacePath<'a>]>,
    index: usize,
    record: &'a OutputRecord,
) -> Option<WorkspacePath<'a>> {
    match targets {
        Some(targets) => targets.get(index).copied(),
        None => as_workspace_path(record),
    }
}

/// Checks the targets given to [`Cache::revive`] before the entry is
/// looked at: each a valid workspace path, none given twice, and none
/// inside another (one would have to be a file and a directory at once).
fn validate_targets<'a>(targets: &[&'a str]) -> Result<Vec<WorkspacePath<'a>>, CacheError> {
    let mut paths = Vec::with_capacity(targets.len());
    let mut seen = BTreeSet::new();
    for target in targets {
        let path = WorkspacePath::new(target).map_err(|reason| CacheError::InvalidOutputPath {
            path: String::from(*target),
            reason,
        })?;
        if !seen.insert(path.relative()) {
            return Err(CacheError::DuplicateOutput {
                path: String::from(*target),
            });
        }
        paths.push(path);
    }
    for path in &paths {
        if let Some(ancestor) = path.ancestors().find(|a| seen.contains(a)) {
            return Err(CacheError::NestedTarget {
                path: String::from(path.as_str()),
                ancestor: alloc::format!("/{ancestor}"),
            });
        }
    }
    Ok(paths)
}

impl<F: Filesystem> Cache<F> {
    /// OP-3: restores `key`'s outputs into the workspace and replays its
    /// streams into `stdout` and `stderr`.
    pub fn restore<O: Write, E: Write>(
        &self,
        key: &Key,
        stdout: O,
        stderr: E,
        ctx: &mut dyn Context,
    ) -> Result<RestoreOutcome, CacheError> {
        self.restore_to(key, None, stdout, stderr, ctx)
    }

    /// OP-13 (b0's `revive`): restores `key`'s outputs to `targets`
    /// instead of the paths its manifest records, the first output (in
    /// manifest order, see [`Cache::find`]) to the first target and so
    /// on, and replays its streams, with every guarantee of OP-3 (staged
    /// and verified before anything is renamed, no write through a symlink,
    /// SAFE-2). Targets are workspace paths (`/out/app.bin`); there must be
    /// exactly one per output, none given twice and none inside another,
    /// or nothing is written and the error says which. A miss writes
    /// nothing.
    pub fn revive<O: Write, E: Write>(
        &self,
        key: &Key,
        targets: &[&str],
        stdout: O,
        stderr: E,
        ctx: &mut dyn Context,
    ) -> Result<RestoreOutcome, CacheError> {
        let targets = validate_targets(targets)?;
        self.restore_to(key, Some(&targets), stdout, stderr, ctx)
    }

    fn restore_to<O: Write, E: Write>(
        &self,
        key: &Key,
        targets: Option<&[WorkspacePath<'_>]>,
        stdout: O,
        stderr: E,
        ctx: &mut dyn Context,
    ) -> Result<RestoreOutcome, CacheError> {
        let inspection = self.inspect(key)?;
        if inspection.status != LookupStatus::Hit {
            return Ok(RestoreOutcome::Miss(inspection.status));
        }
        let bytes = inspection.manifest.unwrap_or_default();
        let Ok(manifest) = Manifest::parse(&bytes) else {
            return Ok(RestoreOutcome::Miss(LookupStatus::MissCorrupt));
        };
        if let Some(targets) = targets
            && targets.len() != manifest.output_count()
        {
            return Err(CacheError::TargetCount {
                outputs: manifest.output_count() as u64,
                targets: targets.len() as u64,
            });
        }
        let mut checked = CheckedDirs::new();
        self.check_targets(&manifest, targets, &mut checked)?;

        let scratch = layout::restore_scratch_dir(key, ctx.scratch_suffix());
        // `None`: restored outputs are not synced (Options::durable_restore).
        let durability = self.options.durable_restore.then(|| self.durability());
        let outcome = self
            .fs
            .create_dir(Root::Cache, &scratch)
            .map_err(io(Step::CreateDir, Root::Cache, &scratch))
            .and_then(|()| self.stage(key, &manifest, &scratch, durability))
            .and_then(|verdict| match verdict {
                Some(miss) => Ok(RestoreOutcome::Miss(miss)),
                None => self
                    .publish_outputs(&manifest, targets, &scratch, &mut checked, ctx)
                    .and_then(|()| self.replay(&manifest, &scratch, stdout, stderr)),
            });
        let outcome = match outcome {
            // A concurrent clear removed our scratch dir under us: the
            // entry is gone too, and the caller runs the task (OP-8).
            Err(CacheError::Io {
                root: Root::Cache,
                source,
                path,
                ..
            }) if source.kind == ErrorKind::NotFound && self.lost_scratch(&scratch, &path) => {
                Ok(RestoreOutcome::Miss(LookupStatus::MissNoEntry))
            }
            other => other,
        };
        // Removing our own scratch is housekeeping: a failure here must not
        // turn a completed restore into an error, and soft clean finds it.
        let _ = self.remove_tree(Root::Cache, &scratch);
        if matches!(outcome, Ok(RestoreOutcome::Restored { .. })) {
            self.touch(key, ctx);
        }
        outcome
    }

    /// Refuses, before anything is written, targets whose ancestors are not
    /// plain directories (a symlink could lead outside the workspace) or
    /// which are directories themselves (SAFE-2).
    fn check_targets(
        &self,
        manifest: &Manifest<'_>,
        targets: Option<&[WorkspacePath<'_>]>,
        checked: &mut CheckedDirs,
    ) -> Result<(), CacheError> {
        let mut missing = CheckedDirs::new();
        for (index, record) in manifest.outputs().enumerate() {
            let Some(path) = target_path(targets, index, &record) else {
                // The parser validated every path; a failure here would be a
                // parser bug, and refusing is the safe answer.
                return Err(CacheError::InvalidOutputPath {
                    path: String::from(record.path.as_str()),
                    reason: crate::path::PathError::Empty,
                });
            };
            let mut absent = false;
            for ancestor in path.ancestors() {
                if checked.contains(ancestor) {
                    continue;
                }
                // Below a missing directory there is nothing to check; many
                // outputs usually share it.
                if missing.contains(ancestor) {
                    absent = true;
                    break;
                }
                match self.fs.metadata(Root::Workspace, ancestor) {
                    Ok(meta) if meta.kind == FileKind::Dir => {
                        checked.insert(String::from(ancestor));
                    }
                    Ok(meta) => return Err(unsafe_target(&path, ancestor, meta.kind)),
                    Err(e) if e.kind == ErrorKind::NotFound => {
                        missing.insert(String::from(ancestor));
                        absent = true;
                        break;
                    }
                    Err(e) if e.kind == ErrorKind::SymlinkRefused => {
                        return Err(unsafe_target(&path, ancestor, FileKind::Symlink));
                    }
                    Err(e) if e.kind == ErrorKind::NotADirectory => {
                        return Err(unsafe_target(&path, ancestor, FileKind::File));
                    }
                    Err(e) => return Err(io(Step::Stat, Root::Workspace, path.as_str())(e)),
                }
            }
            if absent {
                continue;
            }
            match self.fs.metadata(Root::Workspace, path.relative()) {
                Ok(meta) if meta.kind == FileKind::Dir => {
                    return Err(unsafe_target(&path, path.relative(), FileKind::Dir));
                }
                Ok(_) => {}
                Err(e) if e.kind == ErrorKind::NotFound => {}
                Err(e) => return Err(io(Step::Stat, Root::Workspace, path.as_str())(e)),
            }
        }
        Ok(())
    }

    /// Copies every blob and both streams into `scratch`, verifying hashes
    /// and sizes. `Ok(Some(status))` means the entry turned out not to be a
    /// hit after all.
    ///
    /// The outputs are staged by as many tasks as the cache's
    /// [`Tasks`](crate::tasks::Tasks) run at once: on a machine with several
    /// cores, most of a restore of many small files is the kernel creating
    /// files, and files in different directories are created in parallel.
    fn stage(
        &self,
        key: &Key,
        manifest: &Manifest<'_>,
        scratch: &str,
        durability: Option<Durability>,
    ) -> Result<Option<LookupStatus>, CacheError> {
        let staging = Staging {
            key,
            manifest,
            scratch,
            function: self.options.hash_function,
            buffer_len: self.buffer_len(),
            durability,
            claims: ChunkClaims::new(STAGE_BUCKET),
        };
        let chunks = manifest.output_count().div_ceil(STAGE_BUCKET);
        let tasks = match chunks {
            0 | 1 => 1,
            _ => self.parallelism().clamp(1, chunks),
        };
        let mut verdicts: Vec<Verdict> = (0..tasks).map(|_| Ok(None)).collect();
        self.run_tasks(&mut verdicts, &|fs: &F| staging.run(fs));
        // An I/O failure is reported before a bad blob another task found:
        // it is what the user has to act on.
        let mut miss = None;
        for verdict in verdicts {
            if let Some(status) = verdict? {
                miss = miss.or(Some(status));
            }
        }
        if miss.is_some() {
            return Ok(miss);
        }

        let mut buffer = self.buffer();
        let tail = &manifest.tail;
        let streams = [
            (
                layout::stdout(key),
                layout::STDOUT_FILE,
                &tail.stdout_hash,
                tail.stdout_len,
            ),
            (
                layout::stderr(key),
                layout::STDERR_FILE,
                &tail.stderr_hash,
                tail.stderr_len,
            ),
        ];
        for (source, name, hash, len) in streams {
            let staged = layout::join(scratch, name);
            let expected = Staged {
                hash,
                size: len,
                mode: None,
            };
            let verdict = stage_file(
                &self.fs,
                (&source, &staged),
                expected,
                (self.options.hash_function, durability),
                &mut buffer,
            )?;
            if verdict.is_some() {
                return Ok(verdict);
            }
        }
        // Everything staged must be durable before the first rename onto a
        // target, or a power loss could leave a target empty.
        if durability == Some(Durability::WholeFilesystem) {
            self.fs
                .sync_filesystem(Root::Cache)
                .map_err(io(Step::Sync, Root::Cache, scratch))?;
        }
        Ok(None)
    }

    /// Renames every staged output onto its target, creating parent
    /// directories. Each bucket of the scratch directory is opened once, and
    /// each target's parent once per run of outputs that share it (outputs
    /// are sorted by path), so each output costs one
    /// [`Filesystem::rename`] of one name.
    fn publish_outputs(
        &self,
        manifest: &Manifest<'_>,
        targets: Option<&[WorkspacePath<'_>]>,
        scratch: &str,
        checked: &mut CheckedDirs,
        ctx: &mut dyn Context,
    ) -> Result<(), CacheError> {
        let mut staged_dir: Option<(usize, F::Directory)> = None;
        let mut parent: Option<(String, F::Directory)> = None;
        for (index, record) in manifest.outputs().enumerate() {
            let Some(path) = target_path(targets, index, &record) else {
                continue;
            };
            let staged_dir = match staged_dir {
                Some((open, ref dir)) if open == index / STAGE_BUCKET => dir,
                _ => {
                    let bucket = stage_bucket(scratch, index);
                    let dir = self.fs.open_dir(Root::Cache, &bucket).map_err(io(
                        Step::Open,
                        Root::Cache,
                        &bucket,
                    ))?;
                    &staged_dir.insert((index / STAGE_BUCKET, dir)).1
                }
            };
            self.create_ancestors(&path, checked)?;
            // A validated workspace path has no empty, `.` or `..` segment.
            let (parent_path, name) = parent_and_name(path.relative()).map_err(io(
                Step::Rename,
                Root::Workspace,
                path.as_str(),
            ))?;
            let target_dir = match parent {
                Some((ref open, ref dir)) if open == parent_path => dir,
                _ => {
                    let dir = self.open_parent(&path, parent_path)?;
                    &parent.insert((String::from(parent_path), dir)).1
                }
            };
            let staged_name = staged_name(index);
            let renamed = Name::new(&staged_name).and_then(|staged_name| {
                self.fs
                    .rename(staged_dir, staged_name, target_dir, name, Replace::Allowed)
            });
            match renamed {
                Ok(()) => {}
                Err(e) if e.kind == ErrorKind::CrossesDevices => {
                    let size = record.size;
                    let staged = staged_path(scratch, index);
                    let target = (target_dir, name);
                    let meta = (size, record.mode & 0o7777);
                    self.publish_by_copy(&staged, &path, target, meta, ctx)?;
                }
                Err(e) => return Err(io(Step::Rename, Root::Workspace, path.as_str())(e)),
            }
        }
        Ok(())
    }

    /// Opens the directory a target goes into, which `create_ancestors`
    /// has just checked or made: a symlink or file swapped in since is
    /// refused, as there (SAFE-2).
    fn open_parent(
        &self,
        path: &WorkspacePath<'_>,
        parent_path: &str,
    ) -> Result<F::Directory, CacheError> {
        self.fs
            .open_dir(Root::Workspace, parent_path)
            .map_err(|e| match e.kind {
                ErrorKind::SymlinkRefused => unsafe_target(path, parent_path, FileKind::Symlink),
                ErrorKind::NotADirectory => unsafe_target(path, parent_path, FileKind::File),
                _ => io(Step::Open, Root::Workspace, parent_path)(e),
            })
    }

    fn create_ancestors(
        &self,
        path: &WorkspacePath<'_>,
        checked: &mut CheckedDirs,
    ) -> Result<(), CacheError> {
        for ancestor in path.ancestors() {
            if checked.contains(ancestor) {
                continue;
            }
            match self.fs.create_dir(Root::Workspace, ancestor) {
                Ok(()) => {}
                Err(e) if e.kind == ErrorKind::AlreadyExists => {
                    // Appeared since the check: it must still be a plain
                    // directory.
                    let meta = self.fs.metadata(Root::Workspace, ancestor).map_err(io(
                        Step::Stat,
                        Root::Workspace,
                        ancestor,
                    ))?;
                    if meta.kind != FileKind::Dir {
                        return Err(unsafe_target(path, ancestor, meta.kind));
                    }
                }
                Err(e) if e.kind == ErrorKind::SymlinkRefused => {
                    return Err(unsafe_target(path, ancestor, FileKind::Symlink));
                }
                Err(e) => return Err(io(Step::CreateDir, Root::Workspace, ancestor)(e)),
            }
            checked.insert(String::from(ancestor));
        }
        Ok(())
    }

    /// Where the cache directory is on another filesystem than the workspace, a
    /// staged file cannot be renamed onto its target; it is copied to a
    /// scratch name beside the target (`name` in the open directory
    /// `target_dir`) and renamed from there, which keeps each target's
    /// replacement atomic.
    fn publish_by_copy(
        &self,
        staged: &str,
        path: &WorkspacePath<'_>,
        (target_dir, name): (&F::Directory, Name<'_>),
        (size, mode): (u64, u32),
        ctx: &mut dyn Context,
    ) -> Result<(), CacheError> {
        let parent = path.relative().rsplit_once('/').map(|(parent, _)| parent);
        let mut beside_name = String::new();
        let _ = write!(
            beside_name,
            ".{name}.cachet-{}",
            crate::hex::encode_u64(ctx.scratch_suffix())
        );
        let mut beside = String::new();
        if let Some(parent) = parent {
            beside.push_str(parent);
            beside.push('/');
        }
        beside.push_str(&beside_name);
        let mut buffer = self.buffer();
        let result = (|| {
            let reader = self.fs.open_file(Root::Cache, staged).map_err(io(
                Step::Open,
                Root::Cache,
                staged,
            ))?;
            let mut writer = self
                .fs
                .create_new_file(Root::Workspace, &beside)
                .map_err(io(Step::Create, Root::Workspace, &beside))?;
            copy_into(
                &self.fs,
                self.options.hash_function,
                (Root::Cache, staged, reader),
                (Root::Workspace, &beside, &mut writer),
                size,
                &mut buffer,
            )?;
            // Mode before sync, as in `stage_file`.
            writer
                .set_mode(mode)
                .map_err(io(Step::SetMode, Root::Workspace, &beside))?;
            if self.options.durable_restore {
                writer
                    .sync()
                    .map_err(io(Step::Sync, Root::Workspace, &beside))?;
            }
            drop(writer);
            Name::new(&beside_name)
                .and_then(|beside_name| {
                    self.fs
                        .rename(target_dir, beside_name, target_dir, name, Replace::Allowed)
                })
                .map_err(io(Step::Rename, Root::Workspace, path.as_str()))
        })();
        if result.is_err() {
            let _ = self.fs.remove_file(Root::Workspace, &beside);
        }
        result
    }

    /// Writes the staged, verified streams to the caller's sinks.
    fn replay<O: Write, E: Write>(
        &self,
        manifest: &Manifest<'_>,
        scratch: &str,
        stdout: O,
        stderr: E,
    ) -> Result<RestoreOutcome, CacheError> {
        let mut buffer = self.buffer();
        self.replay_one(scratch, layout::STDOUT_FILE, stdout, &mut buffer)?;
        self.replay_one(scratch, layout::STDERR_FILE, stderr, &mut buffer)?;
        Ok(RestoreOutcome::Restored {
            outputs: manifest.output_count() as u64,
            stdout_len: manifest.tail.stdout_len,
            stderr_len: manifest.tail.stderr_len,
        })
    }

    fn replay_one<W: Write>(
        &self,
        scratch: &str,
        name: &'static str,
        sink: W,
        buffer: &mut [u8],
    ) -> Result<(), CacheError> {
        let staged = layout::join(scratch, name);
        let reader = self.fs.open_file(Root::Cache, &staged).map_err(io(
            Step::Open,
            Root::Cache,
            &staged,
        ))?;
        copy_hashing(reader, sink, buffer, self.options.hash_function)
            .map(|_| ())
            .map_err(|failure| match failure {
                CopyFailure::Read(e) => io(Step::Read, Root::Cache, &staged)(e),
                CopyFailure::Write(source) => CacheError::StreamWrite {
                    stream: name,
                    source,
                },
            })
    }
}

/// What one staging task returns: `Ok(Some(status))` when a blob turned out
/// not to verify.
type Verdict = Result<Option<LookupStatus>, CacheError>;

/// What the staging tasks of one restore share. Outputs are handed out in
/// chunks of [`STAGE_BUCKET`], one bucket directory each, so that tasks on
/// different threads create files in different directories.
struct Staging<'a> {
    key: &'a Key,
    manifest: &'a Manifest<'a>,
    scratch: &'a str,
    function: HashFunction,
    buffer_len: usize,
    durability: Option<Durability>,
    /// Chunks of one bucket each; stopped by a task that failed or found a
    /// bad blob, as the restore is over either way.
    claims: ChunkClaims,
}

impl Staging<'_> {
    /// One task: claims chunks until none are left.
    fn run<F: Filesystem>(&self, fs: &F) -> Verdict {
        let verdict = self.stage_chunks(fs);
        if !matches!(verdict, Ok(None)) {
            self.claims.stop();
        }
        verdict
    }

    fn stage_chunks<F: Filesystem>(&self, fs: &F) -> Verdict {
        let count = self.manifest.output_count();
        let mut buffer = Vec::new();
        let mut outputs = self.manifest.outputs();
        let mut record = OutputRecord::empty();
        // The index of the record `outputs` decodes next: the manifest is
        // read front to back, skipping the chunks other tasks claimed.
        let mut next_index = 0;
        loop {
            let chunk = self.claims.claim();
            let (start, end) = (chunk.start, chunk.end.min(count));
            if start >= count || self.claims.stopped() {
                return Ok(None);
            }
            if buffer.is_empty() {
                buffer = alloc::vec![0u8; self.buffer_len];
            }
            let bucket = stage_bucket(self.scratch, start);
            fs.create_dir(Root::Cache, &bucket).map_err(io(
                Step::CreateDir,
                Root::Cache,
                &bucket,
            ))?;
            // Outputs of chunks other tasks claimed are skipped, not decoded.
            next_index += outputs.advance(start.saturating_sub(next_index));
            while next_index < end {
                // Fewer records than the manifest counted: it cannot be
                // trusted.
                if next_index < start || !outputs.next_into(&mut record) {
                    return Ok(Some(LookupStatus::MissCorrupt));
                }
                let index = next_index;
                next_index += 1;
                if self.claims.stopped() {
                    return Ok(None);
                }
                let source = layout::blob(self.key, &record.content_hash);
                let staged = staged_path(self.scratch, index);
                let expected = Staged {
                    hash: &record.content_hash,
                    size: record.size,
                    mode: Some(record.mode & 0o7777),
                };
                let verdict = stage_file(
                    fs,
                    (&source, &staged),
                    expected,
                    (self.function, self.durability),
                    &mut buffer,
                )?;
                if verdict.is_some() {
                    return Ok(verdict);
                }
            }
        }
    }
}

/// Copies `source` to `staged`, verifying hash and size, applies the mode
/// and syncs (now, or with the whole filesystem once everything is
/// staged). `Ok(Some(status))` means the source did not verify.
fn stage_file<F: Filesystem>(
    fs: &F,
    (source, staged): (&str, &str),
    expected: Staged<'_>,
    (function, durability): (HashFunction, Option<Durability>),
    buffer: &mut [u8],
) -> Verdict {
    let reader = match fs.open_file(Root::Cache, source) {
        Ok(reader) => reader,
        // Deleted, replaced or tampered with since the lookup: a
        // concurrent clean or an attack, and either way a miss.
        Err(e) if is_entry_damage(e.kind) => return Ok(Some(LookupStatus::MissCorrupt)),
        Err(e) => return Err(io(Step::Open, Root::Cache, source)(e)),
    };
    let mut writer =
        fs.create_new_file(Root::Cache, staged)
            .map_err(io(Step::Create, Root::Cache, staged))?;
    let (hash, size) = copy_into(
        fs,
        function,
        (Root::Cache, source, reader),
        (Root::Cache, staged, &mut writer),
        expected.size,
        buffer,
    )?;
    if hash != *expected.hash || size != expected.size {
        return Ok(Some(LookupStatus::MissCorrupt));
    }
    // The mode is applied before the sync (when restores are durable), and
    // both before the file is renamed onto a target, so that after a power
    // loss a target is either the old file or the complete new one,
    // permission bits included: a mode set after the sync may be lost
    // while the rename survives.
    if let Some(mode) = expected.mode {
        writer
            .set_mode(mode)
            .map_err(io(Step::SetMode, Root::Cache, staged))?;
    }
    if durability == Some(Durability::PerFile) {
        writer.sync().map_err(io(Step::Sync, Root::Cache, staged))?;
    }
    Ok(None)
}

/// Errors on a cache path that mean the entry changed under us.
fn is_entry_damage(kind: ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::NotFound
            | ErrorKind::SymlinkRefused
            | ErrorKind::IsADirectory
            | ErrorKind::NotADirectory
    )
}

fn unsafe_target(path: &WorkspacePath<'_>, blocker: &str, kind: FileKind) -> CacheError {
    let mut shown = String::from("/");
    shown.push_str(blocker);
    CacheError::UnsafeTarget {
        path: String::from(path.as_str()),
        blocker: shown,
        kind,
    }
}
