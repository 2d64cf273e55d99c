//! OP-1: lookup and its status.
//!
//! A hit needs a readable, valid manifest (MAN-3) of the current chapter
//! revision and the active hash function, whose `key` equals the key looked
//! up (stricter than haz-cache), whose outputs a store could have written
//! together (SAFE-5..9), and every referenced blob and both streams
//! present as regular files (never symlinks) of the recorded sizes.
//! Anything else is a miss; only real I/O failures are errors.
//!
//! Blobs are checked as the manifest is validated
//! ([`Manifest::parse_visiting`]), one stat each, spread over the tasks the
//! host runs at once for manifests of several chunks of outputs.

use alloc::vec::Vec;

use super::{Cache, CacheError, ChunkClaims, Context, Step, io};
use crate::fs::{
    self, Directory, ErrorKind, FileKind, Filesystem, Metadata, Name, Root, Timestamp,
};
use crate::key::{CHAPTER_REVISION, Key};
use crate::layout::{self, LayoutPath};
use crate::manifest::{
    Manifest, ManifestError, OutputConflict, OutputRecord, OutputSetCheck, check_outputs,
};

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
    /// another key, lists outputs no store writes together (SAFE-5..9), or
    /// a blob or stream is missing, not a regular file or of the wrong
    /// size.
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

    /// OP-1: why `key` is a hit or a miss and, on a hit, the bytes of the
    /// manifest that were checked, read once and capped by
    /// [`Options::max_manifest_bytes`](super::Options), without writing
    /// anything. For callers that need what a hit recorded (a
    /// predecessor's stream hashes, KEY-6; a store's report).
    pub fn lookup_manifest(
        &self,
        key: &Key,
    ) -> Result<(LookupStatus, Option<Vec<u8>>), CacheError> {
        let inspection = self.inspect(key)?;
        let bytes = inspection.manifest.filter(|_| inspection.status.is_hit());
        Ok((inspection.status, bytes))
    }

    /// OP-1, OP-5: [`Cache::lookup_manifest`] for a caller that uses what
    /// the hit recorded (a predecessor's stream hashes go into a key,
    /// KEY-6): on a hit, the entry's last use is refreshed as
    /// [`Cache::lookup`] refreshes it, best effort, so that an entry only
    /// ever read as a predecessor does not age as if unused.
    pub fn use_manifest(
        &self,
        key: &Key,
        ctx: &mut dyn Context,
    ) -> Result<(LookupStatus, Option<Vec<u8>>), CacheError> {
        let found = self.lookup_manifest(key)?;
        if found.0.is_hit() {
            self.touch(key, ctx);
        }
        Ok(found)
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
        let (parsed, status) = self.check_manifest(key, &bytes)?;
        Ok(Inspection {
            status,
            manifest: parsed.then_some(bytes),
            manifest_modified: manifest_meta.modified,
        })
    }

    /// Parses a manifest and checks its contents against OP-1, including
    /// the blobs and streams it references; says whether it parsed.
    ///
    /// The blobs are checked while the manifest is parsed, each as its
    /// output is validated, so the outputs are decoded once, not twice.
    /// For a manifest large enough to list several chunks of outputs, that
    /// is done by as many tasks as the host runs at once: each parses the
    /// whole manifest and checks the chunks it claims, so that the threads
    /// split the stats, one system call each, and nothing waits for one
    /// task to finish parsing. What the stats found counts only once the
    /// manifest has turned out valid and of this key and schema: an entry
    /// of another schema is a schema miss whatever its blobs are.
    fn check_manifest(&self, key: &Key, bytes: &[u8]) -> Result<(bool, LookupStatus), CacheError> {
        let cache_dir = self.options.cache_dir_in_workspace.as_deref();
        let check = BlobCheck {
            key,
            bytes,
            cache_dir,
            claims: ChunkClaims::new(STAT_CHUNK),
        };
        let chunks = (bytes.len() / MIN_OUTPUT_BYTES).div_ceil(STAT_CHUNK);
        let tasks = match chunks {
            0..MIN_CHUNKS_TO_SHARE => 1,
            _ => self.parallelism().clamp(1, chunks),
        };
        let mut checked: Vec<Option<Checked<'_>>> = (0..tasks).map(|_| None).collect();
        self.run_tasks(&mut checked, &|fs: &F| Some(check.run(fs)));
        let mut checked = checked.into_iter().flatten();
        let Some(Checked {
            manifest: Ok(manifest),
            outputs,
            blobs,
        }) = checked.next()
        else {
            return Ok((false, LookupStatus::MissCorrupt));
        };
        if manifest.head.chapter_revision != CHAPTER_REVISION
            || manifest.head.hash_function != self.options.hash_function
        {
            return Ok((true, LookupStatus::MissSchema));
        }
        // Stricter than haz-cache: an entry filed under the wrong key could
        // replay another task's results.
        if manifest.head.key != *key || manifest.tail.exit_status != 0 {
            return Ok((true, LookupStatus::MissCorrupt));
        }
        // SAFE-9: outputs no store could have written together. Judged in
        // the parsing pass unless the manifest lists them out of order.
        let outputs = match outputs {
            Ok(false) => check_outputs(manifest.outputs(), cache_dir),
            Ok(true) => Ok(()),
            Err(conflict) => Err(conflict),
        };
        if outputs.is_err() {
            return Ok((true, LookupStatus::MissCorrupt));
        }
        for blobs in core::iter::once(blobs).chain(checked.map(|other| other.blobs)) {
            if !blobs? {
                return Ok((true, LookupStatus::MissCorrupt));
            }
        }
        let streams = [
            (layout::stdout(key), manifest.tail.stdout_len),
            (layout::stderr(key), manifest.tail.stderr_len),
        ];
        for (path, len) in streams {
            let found = self.fs.metadata(Root::Cache, &path);
            if !is_regular_file_of_size(found, len, || path.clone())? {
                return Ok((true, LookupStatus::MissCorrupt));
            }
        }
        Ok((true, LookupStatus::Hit))
    }
}

/// Judges a stat of a blob or stream; `path` names it in an error.
fn is_regular_file_of_size(
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

/// Outputs per chunk of blob stats a task claims: small, so that the tasks
/// finish together (lookups of 1,000 outputs on two threads took 0.88-0.97
/// ms with chunks of 64, 0.97-1.16 ms with chunks of 256, on the reference
/// VM).
const STAT_CHUNK: usize = 64;

/// Fewer chunks than this are checked by one task: starting a thread costs
/// about 50 us, what a few chunks of stats take.
const MIN_CHUNKS_TO_SHARE: usize = 8;

/// Fewer bytes than any output takes in a manifest (its member names and
/// 64 hex digits alone take more), for estimating from a manifest's size
/// whether it lists enough outputs to share the work out.
const MIN_OUTPUT_BYTES: usize = 128;

/// What the tasks checking one entry share: each parses the manifest and
/// stats the blobs of the chunks of [`STAT_CHUNK`] outputs it claims.
struct BlobCheck<'a> {
    key: &'a Key,
    bytes: &'a [u8],
    /// The cache directory inside the workspace (SAFE-8).
    cache_dir: Option<&'a str>,
    /// Chunks of [`STAT_CHUNK`] outputs; stopped by a task that found a
    /// bad blob or failed, as the verdict is in.
    claims: ChunkClaims,
}

/// What one task found.
struct Checked<'a> {
    /// The manifest, if it parsed.
    manifest: Result<Manifest<'a>, ManifestError>,
    /// What [`OutputSetCheck`] found: a conflict (SAFE-5..8), or whether
    /// it could judge every rule in one pass.
    outputs: Result<bool, OutputConflict>,
    /// Whether every blob this task checked is a regular file of the
    /// recorded size in a plain blob directory.
    blobs: Result<bool, CacheError>,
}

impl<'a> BlobCheck<'a> {
    fn run<F: Filesystem>(&self, fs: &F) -> Checked<'a> {
        let mut blobs: Option<F::Directory> = None;
        let mut verdict = Ok(true);
        let mut index = 0usize;
        let mut mine = 0..0;
        let mut set = OutputSetCheck::new(self.cache_dir);
        let mut conflict = None;
        let manifest = Manifest::parse_visiting(self.bytes, &mut |output| {
            if conflict.is_none() {
                conflict = set.check(&output.path).err();
            }
            let at = index;
            index += 1;
            if !matches!(verdict, Ok(true)) || self.claims.stopped() {
                return;
            }
            if at >= mine.end {
                mine = self.claims.claim();
            }
            if at < mine.start {
                return;
            }
            verdict = self.check_blob(fs, &mut blobs, output);
            if !matches!(verdict, Ok(true)) {
                self.claims.stop();
            }
        });
        Checked {
            manifest,
            outputs: conflict.map_or(Ok(set.judged_every_rule()), Err),
            blobs: verdict,
        }
    }

    /// Stats the blob of `output`, opening the blob directory first if this
    /// task has not yet. `Ok(false)` when the blob is missing, not a
    /// regular file or of the wrong size, or the blob directory is not a
    /// plain directory: through a symlink, blobs could come from anywhere.
    fn check_blob<F: Filesystem>(
        &self,
        fs: &F,
        blobs: &mut Option<F::Directory>,
        output: &OutputRecord,
    ) -> Result<bool, CacheError> {
        let blobs = match blobs {
            Some(blobs) => blobs,
            None => {
                let path = layout::outputs_dir(self.key);
                match fs.open_dir(Root::Cache, &path) {
                    Ok(dir) => blobs.insert(dir),
                    // A miss (false), or an error.
                    Err(e) => {
                        return miss_or_error(e, LookupStatus::MissCorrupt, Step::Open, &path)
                            .map(|_| false);
                    }
                }
            }
        };
        let hex = output.content_hash.to_hex();
        let found = Name::new(hex.as_str()).and_then(|name| blobs.metadata(name));
        is_regular_file_of_size(found, output.size, || {
            layout::blob(self.key, &output.content_hash)
        })
    }
}
