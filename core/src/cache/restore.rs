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
//! An output whose target directory does not exist yet is staged at its
//! own path inside a mirror of the workspace in the scratch directory, and
//! the topmost missing directory is then renamed into place whole: one
//! rename publishes all the outputs below it, which appear together (the
//! usual case of a hit, `dist/` removed by a clean). Every other output is
//! staged in a numbered bucket of [`STAGE_BUCKET`] (DISK-5 leaves the
//! inside of the scratch directory to us) and renamed onto its target by
//! itself. Outputs are staged by as many tasks as the cache's
//! [`Tasks`](crate::tasks::Tasks) run at once. Nothing is renamed onto a
//! target before every task has finished and everything has verified.

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

/// The longest path below the cache root that the mirror may need: the
/// smallest `PATH_MAX` of the hosts cachet runs on (macOS, 1,024 bytes with
/// its NUL). A workspace path may be up to [`crate::path::MAX_PATH_BYTES`].
const MIRROR_PATH_BYTES: usize = 1023;

/// The directory of the scratch directory that mirrors the workspace for
/// the outputs published whole (see [`Plan`]). Not a number, so no bucket
/// takes its name, and neither stream file does.
const STAGE_TREE: &str = "tree";

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

/// `relative` (a workspace path without its leading `/`, or `""` for the
/// workspace itself) inside the mirror of the workspace below `scratch`.
fn in_tree(scratch: &str, relative: &str) -> String {
    let mut path = String::with_capacity(scratch.len() + STAGE_TREE.len() + relative.len() + 2);
    path.push_str(scratch);
    path.push('/');
    path.push_str(STAGE_TREE);
    if !relative.is_empty() {
        path.push('/');
        path.push_str(relative);
    }
    path
}

/// How the outputs of one restore are staged and published (OP-3 steps 3
/// and 4), decided by the check of the targets. An output below a target
/// directory that does not exist is staged at its own path in the mirror
/// (`<scratch>/tree/<path>`), and the topmost missing directory above it
/// is renamed into the workspace whole, never replacing anything; every
/// other output is staged in a bucket and renamed onto its target by
/// itself. A directory that cannot be published whole (it appeared since
/// the check, the host cannot rename without replacing, or the cache is on
/// another filesystem) has its outputs published one by one from the
/// mirror instead, exactly as bucketed ones are.
struct Plan {
    /// The topmost target directories missing when the targets were
    /// checked: the parent of each existed.
    missing: BTreeSet<String>,
}

impl Plan {
    /// This plan without the missing directories below which a target's
    /// path in the mirror would be longer than [`MIRROR_PATH_BYTES`]: their
    /// outputs are staged in buckets and published one by one, as a path
    /// that the workspace resolves must not fail to restore because the
    /// mirror made it longer.
    fn fitting(
        mut self,
        manifest: &Manifest<'_>,
        targets: Option<&[WorkspacePath<'_>]>,
        scratch: &str,
    ) -> Plan {
        if self.missing.is_empty() {
            return self;
        }
        let prefix = in_tree(scratch, "").len() + 1;
        let mut too_long = BTreeSet::new();
        for (index, record) in manifest.outputs().enumerate() {
            let Some(path) = target_path(targets, index, &record) else {
                continue;
            };
            if prefix + path.relative().len() > MIRROR_PATH_BYTES
                && let Some(top) = self.missing_top(&path)
            {
                too_long.insert(String::from(top));
            }
        }
        for top in &too_long {
            self.missing.remove(top);
        }
        self
    }

    /// The topmost missing directory above `path`, if there is one.
    fn missing_top<'p>(&self, path: &WorkspacePath<'p>) -> Option<&'p str> {
        if self.missing.is_empty() {
            return None;
        }
        path.ancestors()
            .find(|ancestor| self.missing.contains(*ancestor))
    }

    /// Where output `index`, bound for `path`, is staged. Fails only for
    /// a path without a final name, which a validated workspace path has.
    fn staged_at(
        &self,
        scratch: &str,
        index: usize,
        path: &WorkspacePath<'_>,
    ) -> Result<StagedAt, crate::fs::Error> {
        Ok(if self.missing_top(path).is_some() {
            let (parent, name) = parent_and_name(path.relative())?;
            StagedAt {
                dir: in_tree(scratch, parent),
                name: String::from(&*name),
                in_bucket: false,
            }
        } else {
            StagedAt {
                dir: String::from(stage_bucket(scratch, index).as_str()),
                name: String::from(staged_name(index).as_str()),
                in_bucket: true,
            }
        })
    }
}

/// Where one output is staged, below the cache root.
struct StagedAt {
    /// The directory holding it: a bucket or a directory of the mirror.
    dir: String,
    /// Its name in `dir`.
    name: String,
    /// Whether `dir` is a bucket, which is created by the task that stages
    /// the bucket's first output (the mirror is made before staging).
    in_bucket: bool,
}

/// An entry's outputs and where they go: its manifest, the caller's
/// targets when reviving (OP-13), and the plan the check of the targets
/// made.
#[derive(Clone, Copy)]
struct Outputs<'a> {
    manifest: &'a Manifest<'a>,
    targets: Option<&'a [WorkspacePath<'a>]>,
    plan: &'a Plan,
}

impl<'a> Outputs<'a> {
    /// Output `index`'s target (see [`target_path`]).
    fn target<'r>(&self, index: usize, record: &'r OutputRecord) -> Option<WorkspacePath<'r>>
    where
        'a: 'r,
    {
        target_path(self.targets, index, record)
    }
}

impl StagedAt {
    fn path(&self) -> String {
        let mut path = String::with_capacity(self.dir.len() + 1 + self.name.len());
        path.push_str(&self.dir);
        path.push('/');
        path.push_str(&self.name);
        path
    }
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
        let scratch = layout::restore_scratch_dir(key, ctx.scratch_suffix());
        let plan = self
            .check_targets(&manifest, targets, &mut checked)?
            .fitting(&manifest, targets, &scratch);
        let outputs = Outputs {
            manifest: &manifest,
            targets,
            plan: &plan,
        };

        // `None`: restored outputs are not synced (Options::durable_restore).
        let durability = self.options.durable_restore.then(|| self.durability());
        let outcome = self
            .fs
            .create_dir(Root::Cache, &scratch)
            .map_err(io(Step::CreateDir, Root::Cache, &scratch))
            .and_then(|()| self.stage(key, outputs, &scratch, durability))
            .and_then(|verdict| match verdict {
                Some(miss) => Ok(RestoreOutcome::Miss(miss)),
                None => self
                    .publish_outputs(outputs, &scratch, &mut checked, ctx)
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
    /// which are directories themselves (SAFE-2), and returns the plan of
    /// the restore: the topmost missing directories it found.
    fn check_targets(
        &self,
        manifest: &Manifest<'_>,
        targets: Option<&[WorkspacePath<'_>]>,
        checked: &mut CheckedDirs,
    ) -> Result<Plan, CacheError> {
        let mut missing = BTreeSet::new();
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
        Ok(Plan { missing })
    }

    /// Copies every blob and both streams into `scratch`, verifying hashes
    /// and sizes. `Ok(Some(status))` means the entry turned out not to be a
    /// hit after all.
    ///
    /// The outputs are staged by as many tasks as the cache's
    /// [`Tasks`](crate::tasks::Tasks) run at once: on a machine with several
    /// cores, most of a restore of many small files is the kernel creating
    /// files, and files in different directories are created in parallel.
    /// The mirror of the missing target directories is made first, here.
    fn stage(
        &self,
        key: &Key,
        outputs: Outputs<'_>,
        scratch: &str,
        durability: Option<Durability>,
    ) -> Result<Option<LookupStatus>, CacheError> {
        let manifest = outputs.manifest;
        if !outputs.plan.missing.is_empty() {
            self.make_mirror(outputs, scratch)?;
        }
        let staging = Staging {
            key,
            outputs,
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

    /// Creates the mirror of the missing target directories in `scratch`
    /// (`tree/` and every ancestor of every output staged there), in
    /// manifest order, so parents come before their children.
    fn make_mirror(&self, outputs: Outputs<'_>, scratch: &str) -> Result<(), CacheError> {
        let mut made = BTreeSet::new();
        let tree = in_tree(scratch, "");
        self.fs
            .create_dir(Root::Cache, &tree)
            .map_err(io(Step::CreateDir, Root::Cache, &tree))?;
        for (index, record) in outputs.manifest.outputs().enumerate() {
            let Some(path) = outputs.target(index, &record) else {
                continue;
            };
            if outputs.plan.missing_top(&path).is_none() {
                continue;
            }
            for ancestor in path.ancestors() {
                if made.contains(ancestor) {
                    continue;
                }
                let dir = in_tree(scratch, ancestor);
                self.fs.create_dir(Root::Cache, &dir).map_err(io(
                    Step::CreateDir,
                    Root::Cache,
                    &dir,
                ))?;
                made.insert(String::from(ancestor));
            }
        }
        Ok(())
    }

    /// Puts every staged output in place: a missing target directory whole
    /// where it can (see [`Plan`]), every other output by renaming it onto
    /// its target, creating parent directories. Each staging directory is
    /// opened once per run of outputs staged in it, and each target's
    /// parent once per run of outputs that share it (outputs are sorted by
    /// path, so the outputs below one directory are one run), so an output
    /// published by itself costs one [`Filesystem::rename`] of one name.
    fn publish_outputs(
        &self,
        outputs: Outputs<'_>,
        scratch: &str,
        checked: &mut CheckedDirs,
        ctx: &mut dyn Context,
    ) -> Result<(), CacheError> {
        let mut staged_dir: Option<(String, F::Directory)> = None;
        let mut parent: Option<(String, F::Directory)> = None;
        // Missing directories published whole, and those whose outputs
        // are published one by one instead.
        let mut whole = BTreeSet::new();
        let mut one_by_one = BTreeSet::new();
        for (index, record) in outputs.manifest.outputs().enumerate() {
            let Some(path) = outputs.target(index, &record) else {
                continue;
            };
            if let Some(top) = outputs.plan.missing_top(&path) {
                if whole.contains(top) {
                    continue;
                }
                if !one_by_one.contains(top) {
                    if self.publish_whole(&path, top, scratch)? {
                        whole.insert(String::from(top));
                        continue;
                    }
                    one_by_one.insert(String::from(top));
                }
            }
            let staged = outputs.plan.staged_at(scratch, index, &path).map_err(io(
                Step::Rename,
                Root::Workspace,
                path.as_str(),
            ))?;
            let staged_dir = match staged_dir {
                Some((ref open, ref dir)) if *open == staged.dir => dir,
                _ => {
                    let dir = self.fs.open_dir(Root::Cache, &staged.dir).map_err(io(
                        Step::Open,
                        Root::Cache,
                        &staged.dir,
                    ))?;
                    &staged_dir.insert((staged.dir.clone(), dir)).1
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
            let renamed = Name::new(&staged.name).and_then(|staged_name| {
                self.fs
                    .rename(staged_dir, staged_name, target_dir, name, Replace::Allowed)
            });
            match renamed {
                Ok(()) => {}
                Err(e) if e.kind == ErrorKind::CrossesDevices => {
                    let target = (target_dir, name);
                    let meta = (record.size, record.mode & 0o7777);
                    self.publish_by_copy(&staged.path(), &path, target, meta, ctx)?;
                }
                Err(e) => return Err(io(Step::Rename, Root::Workspace, path.as_str())(e)),
            }
        }
        Ok(())
    }

    /// Renames the mirror of the missing directory `top` (an ancestor of
    /// `path`, the first output below it) into the workspace, never
    /// replacing anything, and says whether it did. `false`, with nothing
    /// done, when the directory appeared since the check, its parent
    /// vanished, the host cannot rename without replacing, or the cache is
    /// on another filesystem: the caller then publishes the outputs below
    /// `top` one by one.
    fn publish_whole(
        &self,
        path: &WorkspacePath<'_>,
        top: &str,
        scratch: &str,
    ) -> Result<bool, CacheError> {
        // `top` is an ancestor of a validated workspace path.
        let (top_parent, top_name) =
            parent_and_name(top).map_err(io(Step::Rename, Root::Workspace, top))?;
        let mirror_parent = in_tree(scratch, top_parent);
        let from = self.fs.open_dir(Root::Cache, &mirror_parent).map_err(io(
            Step::Open,
            Root::Cache,
            &mirror_parent,
        ))?;
        // The parent existed at the check; a symlink or file swapped in
        // since is refused (SAFE-2), a parent removed since is recreated
        // by the one-by-one path.
        let to = match self.open_parent(path, top_parent) {
            Ok(to) => to,
            Err(CacheError::Io { source, .. }) if source.kind == ErrorKind::NotFound => {
                return Ok(false);
            }
            Err(e) => return Err(e),
        };
        match self
            .fs
            .rename(&from, top_name, &to, top_name, Replace::Never)
        {
            Ok(()) => Ok(true),
            Err(e)
                if matches!(
                    e.kind,
                    ErrorKind::AlreadyExists | ErrorKind::Unsupported | ErrorKind::CrossesDevices
                ) =>
            {
                Ok(false)
            }
            Err(e) => Err(io(Step::Rename, Root::Workspace, top)(e)),
        }
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
/// chunks of [`STAGE_BUCKET`], one bucket directory each (for the outputs
/// not staged in the mirror), so that tasks on different threads create
/// files in different directories.
struct Staging<'a> {
    key: &'a Key,
    outputs: Outputs<'a>,
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
        let manifest = self.outputs.manifest;
        let count = manifest.output_count();
        let mut buffer = Vec::new();
        let mut outputs = manifest.outputs();
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
            let mut bucket_made = false;
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
                // check_targets refused a record without a target.
                let Some(path) = self.outputs.target(index, &record) else {
                    return Ok(Some(LookupStatus::MissCorrupt));
                };
                let staged = self
                    .outputs
                    .plan
                    .staged_at(self.scratch, index, &path)
                    .map_err(io(Step::Create, Root::Cache, path.as_str()))?;
                if staged.in_bucket && !bucket_made {
                    fs.create_dir(Root::Cache, &staged.dir).map_err(io(
                        Step::CreateDir,
                        Root::Cache,
                        &staged.dir,
                    ))?;
                    bucket_made = true;
                }
                let staged = staged.path();
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
