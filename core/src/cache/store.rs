//! OP-2: store.
//!
//! The entry is assembled in a fresh scratch directory (DISK-5): blobs are
//! copied from the workspace into temporary files, hashed while streaming
//! or, for large files the host copies itself, by reading the copy back
//! (see `copy_into`), and renamed to their content hash (equal contents
//! share one blob, DISK-4); an output smaller than the copy buffer is read
//! whole and written under its hash at once (`store_small`);
//! the manifest is written while the outputs are copied, because its
//! outputs array precedes the stream members (MAN-1) and the outputs are
//! unbounded. Every file is synced, then the directories, and only then is
//! the scratch directory renamed to the entry directory and the shard
//! synced. An existing valid entry wins (same key, equivalent content); a
//! corrupt one is renamed aside first, never deleted in place.

use super::held::HeldContents;
use super::{
    Cache, CacheError, Context, CopyFailure, Durability, Step, copy_hashing, copy_into, io,
};
use crate::fs::{
    self, Directory, ErrorKind, FileKind, FileReader, FileWriter, Filesystem, Name, Read, Replace,
    Root, Write,
};
use crate::hash::Digest;
use crate::key::{CHAPTER_REVISION, Key};
use crate::layout::{self, LayoutPath};
use crate::manifest::{ManifestHead, ManifestTail, ManifestWriter, OutputConflict, OutputSetCheck};
use crate::path::WorkspacePath;

use alloc::string::String;
use core::convert::Infallible;
use core::ops::ControlFlow;

use super::lookup::LookupStatus;

/// How a store ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreOutcome {
    /// This call published the entry.
    Stored,
    /// A valid entry for the key already existed and was kept (OP-2).
    AlreadyPresent,
    /// Nothing was published because another process interfered: it kept
    /// putting broken entries in the way, or a concurrent clear removed the
    /// scratch dir. The next lookup is a miss, the worst outcome a race may
    /// have (OP-8).
    Contended,
}

/// Temporary name of a blob inside the scratch `outputs/` directory while
/// its content hash is still being computed; the scratch directory is
/// private to this store, so one name serves every output in turn.
pub(crate) const PARTIAL_BLOB: Name<'static> = match Name::new(".partial") {
    Ok(name) => name,
    Err(_) => panic!("`.partial` is one path component"),
};

/// A scratch entry as [`Cache::begin_entry`] leaves it.
pub(super) struct EntryParts<F: Filesystem> {
    /// The scratch entry's blob directory.
    pub(super) blobs: LayoutPath,
    /// Where each blob is written before it is named by its hash.
    pub(super) partial: LayoutPath,
    /// The scratch entry's manifest.
    pub(super) manifest_path: LayoutPath,
    /// The manifest, its head written.
    pub(super) manifest: ManifestWriter<F::Writer>,
    /// The blob directory, open, when there are outputs.
    pub(super) blobs_dir: Option<F::Directory>,
}

impl<F: Filesystem> Cache<F> {
    /// OP-2: stores the result of a run that exited 0.
    ///
    /// `outputs` are workspace-absolute paths of regular files (PATH-1,
    /// PATH-2), unique within one store, none below another, in `.git` or
    /// in the cache directory (SAFE-5..8); they are sorted in place so the
    /// manifest is the same whatever order they were given in. `stdout` and
    /// `stderr` are the captured streams.
    pub fn store<O: Read, E: Read>(
        &self,
        key: &Key,
        outputs: &mut [&str],
        stdout: O,
        stderr: E,
        ctx: &mut dyn Context,
    ) -> Result<StoreOutcome, CacheError> {
        self.store_holding(key, outputs, stdout, stderr, ctx, &mut HeldContents::none())
    }

    /// [`Cache::store`], keeping in `held` a copy of each small output it
    /// reads whole (as far as `held`'s limits allow), for the push that
    /// follows (REMOTE-2): [`crate::remote::push_holding`] inlines those
    /// into the record without reading them back. Holds nothing unless
    /// the entry is [`StoreOutcome::Stored`].
    pub fn store_holding<O: Read, E: Read>(
        &self,
        key: &Key,
        outputs: &mut [&str],
        stdout: O,
        stderr: E,
        ctx: &mut dyn Context,
        held: &mut HeldContents,
    ) -> Result<StoreOutcome, CacheError> {
        for path in outputs.iter() {
            WorkspacePath::new(path).map_err(|reason| CacheError::InvalidOutputPath {
                path: String::from(*path),
                reason,
            })?;
        }
        outputs.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        // SAFE-5..8: the store writes no entry a lookup would take for
        // corrupt.
        let mut set = OutputSetCheck::new(self.options.cache_dir_in_workspace.as_deref());
        for path in outputs.iter() {
            match set.check(path) {
                Ok(()) => {}
                Err(OutputConflict::Repeated) => {
                    return Err(CacheError::DuplicateOutput {
                        path: String::from(*path),
                    });
                }
                Err(conflict) => {
                    return Err(CacheError::ConflictingOutput {
                        path: String::from(*path),
                        conflict,
                    });
                }
            }
        }
        if self.lookup_status(key)? == LookupStatus::Hit {
            return Ok(StoreOutcome::AlreadyPresent);
        }

        let written = self.write_entry(key, ctx, |scratch, durability, ctx| {
            self.assemble(
                key,
                scratch,
                (outputs, held),
                (stdout, stderr),
                durability,
                ctx,
            )
            .map(ControlFlow::<Infallible>::Continue)
        });
        let outcome = written.map(|written| written.unwrap_or_else(|never| match never {}));
        if !matches!(outcome, Ok(StoreOutcome::Stored)) {
            // Another process's entry won, or none was published: what the
            // push reads is not what this store read.
            *held = HeldContents::none();
        }
        outcome
    }

    /// OP-2's steps 2 and 5 to 7, for every way of filling an entry (a
    /// store from the workspace, an import from a remote, REMOTE-1): creates
    /// the shard and a fresh scratch directory, lets `fill` write the entry
    /// into it (blobs, streams, manifest, all made durable), and publishes
    /// it. `fill` may decline with [`ControlFlow::Break`], as an import
    /// does when a content fails verification (REMOTE-4): nothing is
    /// published, and its value is returned as `Err`. The scratch
    /// directory is removed whenever the call does not end in publishing
    /// it.
    pub(crate) fn write_entry<T>(
        &self,
        key: &Key,
        ctx: &mut dyn Context,
        fill: impl FnOnce(&str, Durability, &mut dyn Context) -> Result<ControlFlow<T>, CacheError>,
    ) -> Result<Result<StoreOutcome, T>, CacheError> {
        let durability = self.durability();
        let scratch = layout::store_scratch_dir(key, ctx.scratch_suffix());
        let written = self
            .ensure_shard(key, durability)
            .and_then(|()| {
                self.fs.create_dir(Root::Cache, &scratch).map_err(io(
                    Step::CreateDir,
                    Root::Cache,
                    &scratch,
                ))
            })
            .and_then(|()| fill(&scratch, durability, ctx))
            .and_then(|filled| match filled {
                ControlFlow::Continue(()) => self.publish(key, &scratch, ctx).map(Ok),
                ControlFlow::Break(declined) => Ok(Err(declined)),
            });
        let outcome = match written {
            // A concurrent clear removed the shard or our scratch dir under
            // us: nothing was published, which is a miss, not an error
            // (OP-8).
            Err(CacheError::Io {
                root: Root::Cache,
                source,
                path,
                ..
            }) if source.kind == ErrorKind::NotFound && self.lost_scratch(&scratch, &path) => {
                Ok(Ok(StoreOutcome::Contended))
            }
            other => other,
        };
        if !matches!(outcome, Ok(Ok(StoreOutcome::Stored))) {
            // The scratch dir is private; on failure or when another entry
            // won, it is debris. If even this fails, a soft clean finds it.
            let _ = self.remove_tree(Root::Cache, &scratch);
        }
        outcome
    }

    /// Creates the key's shard directory if needed and makes its entry in
    /// the cache directory durable, so the entry published into it survives
    /// power loss. The root is synced even when the shard already exists:
    /// a store that died between creating the shard and syncing the root
    /// leaves a shard that is visible but not durable, and an entry
    /// published into it would be lost with it (OP-2, SAFE-3). With
    /// [`Durability::WholeFilesystem`] the sync before publishing covers it.
    fn ensure_shard(&self, key: &Key, durability: Durability) -> Result<(), CacheError> {
        let shard = layout::shard(key);
        match self.fs.create_dir(Root::Cache, &shard) {
            Ok(()) => {}
            Err(e) if e.kind == ErrorKind::AlreadyExists => {
                let meta = self.fs.metadata(Root::Cache, &shard).map_err(io(
                    Step::Stat,
                    Root::Cache,
                    &shard,
                ))?;
                if meta.kind != FileKind::Dir {
                    return Err(io(Step::CreateDir, Root::Cache, &shard)(fs::Error::new(
                        ErrorKind::NotADirectory,
                    )));
                }
            }
            Err(e) => return Err(io(Step::CreateDir, Root::Cache, &shard)(e)),
        }
        if durability == Durability::WholeFilesystem {
            return Ok(());
        }
        self.fs
            .sync_dir(Root::Cache, "")
            .map_err(io(Step::Sync, Root::Cache, ""))
    }

    /// The first steps of every entry the cache writes, stored from a
    /// workspace or imported from a remote: the blob directory and the
    /// manifest in the scratch directory, the manifest's head written, and
    /// the blob directory opened when there are blobs to name in it.
    pub(super) fn begin_entry(
        &self,
        scratch: &str,
        head: &ManifestHead,
        has_outputs: bool,
    ) -> Result<EntryParts<F>, CacheError> {
        let blobs = layout::join(scratch, layout::OUTPUTS_DIR);
        self.fs.create_dir(Root::Cache, &blobs).map_err(io(
            Step::CreateDir,
            Root::Cache,
            &blobs,
        ))?;
        let manifest_path = layout::join(scratch, layout::MANIFEST_FILE);
        let manifest_file = self
            .fs
            .create_new_file(Root::Cache, &manifest_path)
            .map_err(io(Step::Create, Root::Cache, &manifest_path))?;
        let manifest = ManifestWriter::begin(manifest_file, head).map_err(io(
            Step::Write,
            Root::Cache,
            &manifest_path,
        ))?;
        let partial = layout::join(&blobs, PARTIAL_BLOB.as_str());
        // Blobs are named inside the open blob directory, one rename each.
        let blobs_dir = match has_outputs {
            true => Some(self.fs.open_dir(Root::Cache, &blobs).map_err(io(
                Step::Open,
                Root::Cache,
                &blobs,
            ))?),
            false => None,
        };
        Ok(EntryParts {
            blobs,
            partial,
            manifest_path,
            manifest,
            blobs_dir,
        })
    }

    /// Writes blobs, streams and manifest into `scratch` and syncs them,
    /// keeping in `held` what it can of the small outputs it reads whole.
    fn assemble<O: Read, E: Read>(
        &self,
        key: &Key,
        scratch: &str,
        (outputs, held): (&[&str], &mut HeldContents),
        (stdout, stderr): (O, E),
        durability: Durability,
        ctx: &mut dyn Context,
    ) -> Result<(), CacheError> {
        let function = self.options.hash_function;
        let mut buffer = self.buffer();
        let head = ManifestHead {
            chapter_revision: CHAPTER_REVISION,
            hash_function: function,
            key: *key,
        };
        let EntryParts {
            blobs,
            partial,
            manifest_path,
            mut manifest,
            blobs_dir,
        } = self.begin_entry(scratch, &head, !outputs.is_empty())?;
        for output in outputs {
            // Validated by the caller of assemble.
            let relative = output.get(1..).unwrap_or_default();
            let (mut reader, mut meta) = self.open_output(output, relative)?;
            let small = usize::try_from(meta.size).is_ok_and(|size| size < buffer.len());
            if small && blobs_dir.is_some() {
                if let Some((content_hash, size)) =
                    self.store_small(&blobs, output, reader, &mut buffer, durability, held)?
                {
                    manifest
                        .output(output, &content_hash, size, meta.mode & 0o7777)
                        .map_err(io(Step::Write, Root::Cache, &manifest_path))?;
                    continue;
                }
                // It grew past the buffer since its stat: copied as a
                // large one, from the start.
                (reader, meta) = self.open_output(output, relative)?;
            }
            let mut file = self.fs.create_new_file(Root::Cache, &partial).map_err(io(
                Step::Create,
                Root::Cache,
                &partial,
            ))?;
            let (content_hash, size) = copy_into(
                &self.fs,
                self.options.hash_function,
                (Root::Workspace, output, reader),
                (Root::Cache, &partial, &mut file),
                meta.size,
                &mut buffer,
            )?;
            if durability == Durability::PerFile {
                file.sync().map_err(io(Step::Sync, Root::Cache, &partial))?;
            }
            drop(file);
            if let Some(dir) = &blobs_dir {
                self.name_blob(dir, &content_hash, (&blobs, &partial))?;
            }
            manifest
                .output(output, &content_hash, size, meta.mode & 0o7777)
                .map_err(io(Step::Write, Root::Cache, &manifest_path))?;
        }

        let stdout_path = layout::join(scratch, layout::STDOUT_FILE);
        let (stdout_hash, stdout_len) =
            self.write_synced(&stdout_path, stdout, &mut buffer, "stdout", durability)?;
        let stderr_path = layout::join(scratch, layout::STDERR_FILE);
        let (stderr_hash, stderr_len) =
            self.write_synced(&stderr_path, stderr, &mut buffer, "stderr", durability)?;

        let tail = ManifestTail {
            stdout_len,
            stderr_len,
            stdout_hash,
            stderr_hash,
            exit_status: 0,
            created_at_unix: ctx.now().seconds,
        };
        let manifest_file =
            manifest
                .finish(&tail)
                .map_err(io(Step::Write, Root::Cache, &manifest_path))?;
        self.make_durable(manifest_file, &manifest_path, (&blobs, scratch), durability)
    }

    /// OP-2 step 5 once an entry's blobs and streams are written (and, per
    /// file, synced): syncs the finished manifest and the directories, or
    /// the whole filesystem at once.
    pub(crate) fn make_durable(
        &self,
        mut manifest_file: F::Writer,
        manifest_path: &str,
        (blobs, scratch): (&str, &str),
        durability: Durability,
    ) -> Result<(), CacheError> {
        match durability {
            Durability::PerFile => {
                manifest_file
                    .sync()
                    .map_err(io(Step::Sync, Root::Cache, manifest_path))?;
                drop(manifest_file);
                for dir in [blobs, scratch] {
                    self.fs
                        .sync_dir(Root::Cache, dir)
                        .map_err(io(Step::Sync, Root::Cache, dir))?;
                }
            }
            Durability::WholeFilesystem => {
                drop(manifest_file);
                self.fs
                    .sync_filesystem(Root::Cache)
                    .map_err(io(Step::Sync, Root::Cache, ""))?;
            }
        }
        Ok(())
    }

    /// Opens the output at workspace path `output` (`relative` without its
    /// leading `/`) with its metadata, and says what it is when it is not a
    /// regular file: manifests hold regular files only.
    fn open_output(
        &self,
        output: &str,
        relative: &str,
    ) -> Result<(F::Reader, fs::Metadata), CacheError> {
        let opened = self
            .fs
            .open_file(Root::Workspace, relative)
            .and_then(|reader| {
                let meta = reader.metadata()?;
                Ok((reader, meta))
            });
        match opened {
            Ok(opened) => Ok(opened),
            Err(e) => match self.fs.metadata(Root::Workspace, relative) {
                Ok(meta) if meta.kind != FileKind::File => Err(CacheError::OutputNotRegularFile {
                    path: String::from(output),
                    kind: meta.kind,
                }),
                _ => Err(io(Step::Open, Root::Workspace, output)(e)),
            },
        }
    }

    /// Stores an output smaller than `buffer` (so all of it, and its end,
    /// fit in one read of it): read whole, hashed, and written at once
    /// under its content hash in `blobs`, with no temporary name and no
    /// rename, since the scratch directory is private until it is
    /// published (OP-2, DISK-5); a twin already there is kept (DISK-4).
    /// `None`, having written nothing, when the output no longer fits.
    fn store_small(
        &self,
        blobs: &str,
        output: &str,
        mut reader: F::Reader,
        buffer: &mut [u8],
        durability: Durability,
        held: &mut HeldContents,
    ) -> Result<Option<(Digest, u64)>, CacheError> {
        let mut filled = 0;
        loop {
            let rest = buffer.get_mut(filled..).unwrap_or_default();
            if rest.is_empty() {
                return Ok(None);
            }
            let n = reader
                .read(rest)
                .map_err(io(Step::Read, Root::Workspace, output))?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        let bytes = buffer.get(..filled).unwrap_or_default();
        let content_hash = crate::hash::digest(self.options.hash_function, bytes);
        let path = layout::join(blobs, content_hash.to_hex().as_str());
        match self.fs.create_new_file(Root::Cache, &path) {
            Ok(mut file) => {
                file.write_all(bytes)
                    .map_err(io(Step::Write, Root::Cache, &path))?;
                if durability == Durability::PerFile {
                    file.sync().map_err(io(Step::Sync, Root::Cache, &path))?;
                }
            }
            Err(e) if e.kind == ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io(Step::Create, Root::Cache, &path)(e)),
        }
        held.offer(&content_hash, bytes);
        Ok(Some((content_hash, filled as u64)))
    }

    /// Names the copy at [`PARTIAL_BLOB`] in the open blob directory `dir`
    /// (`blobs`; `partial` is the copy's path) after its content hash:
    /// equal contents share one blob (DISK-4), and the copy that finds its
    /// twin already there is dropped. One rename without replacing where the
    /// host has it; else a stat, then a plain rename, which cannot race with
    /// anyone: the scratch directory is private to this store.
    pub(crate) fn name_blob(
        &self,
        dir: &F::Directory,
        content_hash: &Digest,
        (blobs, partial): (&str, &str),
    ) -> Result<(), CacheError> {
        let hex = content_hash.to_hex();
        let blob = Name::new(hex.as_str()).map_err(io(Step::Rename, Root::Cache, partial))?;
        let named = match self.fs.rename(dir, PARTIAL_BLOB, dir, blob, Replace::Never) {
            Err(e) if e.kind == ErrorKind::Unsupported => match dir.metadata(blob) {
                Ok(_) => Err(fs::Error::new(ErrorKind::AlreadyExists)),
                Err(e) if e.kind == ErrorKind::NotFound => {
                    self.fs
                        .rename(dir, PARTIAL_BLOB, dir, blob, Replace::Allowed)
                }
                Err(e) => {
                    let path = layout::join(blobs, blob.as_str());
                    return Err(io(Step::Stat, Root::Cache, &path)(e));
                }
            },
            other => other,
        };
        match named {
            Ok(()) => Ok(()),
            Err(e) if e.kind == ErrorKind::AlreadyExists => self
                .fs
                .remove_file(Root::Cache, partial)
                .map_err(io(Step::Remove, Root::Cache, partial)),
            Err(e) => Err(io(Step::Rename, Root::Cache, partial)(e)),
        }
    }

    /// Creates `path` in the cache, streams the captured stream `source`
    /// into it while hashing, and syncs it unless the whole filesystem is
    /// synced later. `source_name` names the stream in errors.
    pub(crate) fn write_synced<R: Read>(
        &self,
        path: &LayoutPath,
        source: R,
        buffer: &mut [u8],
        source_name: &str,
        durability: Durability,
    ) -> Result<(crate::hash::Digest, u64), CacheError> {
        let mut file = self.fs.create_new_file(Root::Cache, path).map_err(io(
            Step::Create,
            Root::Cache,
            path,
        ))?;
        let copied = copy_hashing(source, &mut file, buffer, self.options.hash_function);
        let (digest, size) = copied.map_err(|failure| match failure {
            CopyFailure::Read(e) => io(Step::Read, Root::Workspace, source_name)(e),
            CopyFailure::Write(e) => io(Step::Write, Root::Cache, path)(e),
        })?;
        if durability == Durability::PerFile {
            file.sync().map_err(io(Step::Sync, Root::Cache, path))?;
        }
        Ok((digest, size))
    }

    /// Renames the assembled scratch dir into place (OP-2's publish step).
    fn publish(
        &self,
        key: &Key,
        scratch: &str,
        ctx: &mut dyn Context,
    ) -> Result<StoreOutcome, CacheError> {
        let entry = layout::entry_dir(key);
        // Two rounds: the first may find a corrupt entry in the way and move
        // it aside; if the second still finds one, another process has just
        // published, and its entry is judged like any other.
        for _round in 0..2 {
            if self.rename_into_place(scratch, &entry)? {
                let shard = layout::shard(key);
                self.fs.sync_dir(Root::Cache, &shard).map_err(io(
                    Step::Sync,
                    Root::Cache,
                    &shard,
                ))?;
                return Ok(StoreOutcome::Stored);
            }
            if self.lookup_status(key)? == LookupStatus::Hit {
                return Ok(StoreOutcome::AlreadyPresent);
            }
            self.evict(key, ctx)?;
        }
        Ok(StoreOutcome::Contended)
    }

    /// Renames the scratch dir onto the entry dir (both in the key's
    /// shard) without replacing a published entry; `Ok(false)` when one is
    /// in the way. Without [`Replace::Never`], a plain rename replaces only
    /// an empty directory, which holds no entry, so it cannot clobber a
    /// published one either; it reports a non-directory (a symlink or file
    /// planted at the entry path) as `NotADirectory`, which is in the way
    /// too and is moved aside like any corrupt entry.
    fn rename_into_place(&self, scratch: &str, entry: &str) -> Result<bool, CacheError> {
        let occupied = |e: &fs::Error| {
            matches!(
                e.kind,
                ErrorKind::AlreadyExists | ErrorKind::DirectoryNotEmpty | ErrorKind::NotADirectory
            )
        };
        let rename = |replace| {
            fs::rename_path(
                &self.fs,
                (Root::Cache, scratch),
                (Root::Cache, entry),
                replace,
            )
        };
        match rename(Replace::Never) {
            Ok(()) => return Ok(true),
            Err(e) if occupied(&e) => return Ok(false),
            Err(e) if e.kind == ErrorKind::Unsupported => {}
            Err(e) => return Err(io(Step::Rename, Root::Cache, scratch)(e)),
        }
        match rename(Replace::Allowed) {
            Ok(()) => Ok(true),
            Err(e) if occupied(&e) => Ok(false),
            Err(e) => Err(io(Step::Rename, Root::Cache, scratch)(e)),
        }
    }
}
