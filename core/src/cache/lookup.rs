//! OP-1: lookup and its status.
//!
//! A hit needs a readable, valid manifest (MAN-3) of the current chapter
//! revision and the active hash function, whose `key` equals the key looked
//! up (stricter than haz-cache), and every referenced blob and both streams
//! present as regular files (never symlinks) of the recorded sizes.
//! Anything else is a miss; only real I/O failures are errors.

use alloc::vec::Vec;

use super::{Cache, CacheError, Context, Step, io};
use crate::fs::{self, Directory, ErrorKind, FileKind, Filesystem, Metadata, Root, Timestamp};
use crate::key::{CHAPTER_REVISION, Key};
use crate::layout::{self, LayoutPath};
use crate::manifest::{Manifest, OutputRecord};

/// What a lookup found (OP-1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LookupStatus {
    /// A complete, valid entry.
    Hit,
    /// No entry is visible for the key.
    MissNoEntry,
    /// The entry was written under another chapter revision or hash
    /// function.
    MissSchema,
    /// The entry is damaged: its manifest is unreadable or invalid, names
    /// another key, or a blob or stream is missing, not a regular file or of
    /// the wrong size.
    MissCorrupt,
}

impl LookupStatus {
    /// The status as the command line prints it.
    pub const fn as_str(self) -> &'static str {
        match self {
            LookupStatus::Hit => "hit",
            LookupStatus::MissNoEntry => "miss-no-entry",
            LookupStatus::MissSchema => "miss-schema",
            LookupStatus::MissCorrupt => "miss-corrupt",
        }
    }

    /// Whether this is [`LookupStatus::Hit`].
    pub const fn is_hit(self) -> bool {
        matches!(self, LookupStatus::Hit)
    }
}

impl core::fmt::Display for LookupStatus {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What inspecting an entry found: the status, and for entries whose
/// manifest parsed (whatever else is wrong with them), its bytes and
/// modification time.
pub(crate) struct Inspection {
    pub status: LookupStatus,
    pub manifest: Option<Vec<u8>>,
    pub manifest_modified: Timestamp,
}

impl Inspection {
    fn miss(status: LookupStatus) -> Inspection {
        Inspection {
            status,
            manifest: None,
            manifest_modified: Timestamp::default(),
        }
    }
}

/// Maps a failed stat or open on a cache path onto a miss where the failure
/// says something about the entry, and onto an error where it says
/// something about the machine.
fn miss_or_error(
    error: fs::Error,
    absent: LookupStatus,
    step: Step,
    path: &str,
) -> Result<Inspection, CacheError> {
    match error.kind {
        ErrorKind::NotFound => Ok(Inspection::miss(absent)),
        ErrorKind::NotADirectory
        | ErrorKind::IsADirectory
        | ErrorKind::SymlinkRefused
        | ErrorKind::InvalidInput => Ok(Inspection::miss(LookupStatus::MissCorrupt)),
        _ => Err(io(step, Root::Cache, path)(error)),
    }
}

impl<F: Filesystem> Cache<F> {
    /// OP-1: whether `key` is a hit. On a hit, refreshes the entry's "last
    /// used" time (the manifest's modification time, OP-5), best effort: a
    /// read-only cache still serves hits.
    pub fn lookup(&self, key: &Key, ctx: &mut dyn Context) -> Result<bool, CacheError> {
        let status = self.lookup_status(key)?;
        if status.is_hit() {
            self.touch(key, ctx);
        }
        Ok(status.is_hit())
    }

    /// OP-1: why `key` is a hit or a miss, without writing anything.
    pub fn lookup_status(&self, key: &Key) -> Result<LookupStatus, CacheError> {
        self.inspect(key).map(|inspection| inspection.status)
    }

    /// Refreshes the last-used time of `key`'s entry; failures are ignored
    /// because a hit must not depend on the cache being writable.
    pub(crate) fn touch(&self, key: &Key, ctx: &mut dyn Context) {
        let _ = self
            .fs
            .set_modified(Root::Cache, &layout::manifest(key), ctx.now());
    }

    /// Reads and checks everything OP-1 requires.
    pub(crate) fn inspect(&self, key: &Key) -> Result<Inspection, CacheError> {
        let shard = layout::shard(key);
        match self.fs.metadata(Root::Cache, &shard) {
            Err(e) => return miss_or_error(e, LookupStatus::MissNoEntry, Step::Stat, &shard),
            Ok(meta) if meta.kind != FileKind::Dir => {
                return Ok(Inspection::miss(LookupStatus::MissCorrupt));
            }
            Ok(_) => {}
        }
        let entry = layout::entry_dir(key);
        match self.fs.metadata(Root::Cache, &entry) {
            Err(e) => return miss_or_error(e, LookupStatus::MissNoEntry, Step::Stat, &entry),
            Ok(meta) if meta.kind != FileKind::Dir => {
                return Ok(Inspection::miss(LookupStatus::MissCorrupt));
            }
            Ok(_) => {}
        }
        let manifest_path = layout::manifest(key);
        let manifest_meta = match self.fs.metadata(Root::Cache, &manifest_path) {
            Err(e) => {
                return miss_or_error(e, LookupStatus::MissNoEntry, Step::Stat, &manifest_path);
            }
            Ok(meta) => meta,
        };
        if manifest_meta.kind != FileKind::File
            || manifest_meta.size > self.options.max_manifest_bytes
        {
            return Ok(Inspection::miss(LookupStatus::MissCorrupt));
        }
        let bytes = match fs::read_capped(
            &self.fs,
            Root::Cache,
            &manifest_path,
            self.options.max_manifest_bytes,
            manifest_meta.size,
        ) {
            Err(e) => {
                return miss_or_error(e, LookupStatus::MissNoEntry, Step::Read, &manifest_path);
            }
            Ok(None) => return Ok(Inspection::miss(LookupStatus::MissCorrupt)),
            Ok(Some(bytes)) => bytes,
        };
        let (parsed, status) = match Manifest::parse(&bytes) {
            Ok(manifest) => (true, self.check_manifest(key, &manifest)?),
            Err(_) => (false, LookupStatus::MissCorrupt),
        };
        Ok(Inspection {
            status,
            manifest: parsed.then_some(bytes),
            manifest_modified: manifest_meta.modified,
        })
    }

    /// Checks a manifest's contents against OP-1, including the blobs and
    /// streams it references.
    fn check_manifest(
        &self,
        key: &Key,
        manifest: &Manifest<'_>,
    ) -> Result<LookupStatus, CacheError> {
        if manifest.head.chapter_revision != CHAPTER_REVISION
            || manifest.head.hash_function != self.options.hash_function
        {
            return Ok(LookupStatus::MissSchema);
        }
        // Stricter than haz-cache: an entry filed under the wrong key could
        // replay another task's results.
        if manifest.head.key != *key || manifest.tail.exit_status != 0 {
            return Ok(LookupStatus::MissCorrupt);
        }
        // The blob directory itself must be a plain directory: through a
        // symlink, blobs could come from anywhere, and a host that refuses
        // to follow it would report an error where OP-1 wants a miss.
        // Opening it once makes each blob one stat by name.
        if manifest.output_count() > 0 {
            let blobs_path = layout::outputs_dir(key);
            let blobs = match self.fs.open_dir(Root::Cache, &blobs_path) {
                Ok(blobs) => blobs,
                Err(e) => {
                    return miss_or_error(e, LookupStatus::MissCorrupt, Step::Open, &blobs_path)
                        .map(|inspection| inspection.status);
                }
            };
            let mut outputs = manifest.outputs();
            let mut output = OutputRecord::empty();
            while outputs.next_into(&mut output) {
                let name = output.content_hash.to_hex();
                let found = blobs.metadata(name.as_str());
                if !self.is_regular_file_of_size(found, output.size, || {
                    layout::blob(key, &output.content_hash)
                })? {
                    return Ok(LookupStatus::MissCorrupt);
                }
            }
        }
        let streams = [
            (layout::stdout(key), manifest.tail.stdout_len),
            (layout::stderr(key), manifest.tail.stderr_len),
        ];
        for (path, len) in streams {
            let found = self.fs.metadata(Root::Cache, &path);
            if !self.is_regular_file_of_size(found, len, || path.clone())? {
                return Ok(LookupStatus::MissCorrupt);
            }
        }
        Ok(LookupStatus::Hit)
    }

    /// Judges a stat of a blob or stream; `path` names it in an error.
    fn is_regular_file_of_size(
        &self,
        found: Result<Metadata, fs::Error>,
        size: u64,
        path: impl FnOnce() -> LayoutPath,
    ) -> Result<bool, CacheError> {
        match found {
            Ok(meta) => Ok(meta.kind == FileKind::File && meta.size == size),
            Err(e) => match miss_or_error(e, LookupStatus::MissCorrupt, Step::Stat, &path()) {
                Ok(_) => Ok(false),
                Err(error) => Err(error),
            },
        }
    }
}
