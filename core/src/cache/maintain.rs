//! OP-4..7: clear, clean, info and verify: the walks over a whole cache
//! root.
//!
//! Each walk lists the cache directory once, classifies what it finds (entries,
//! scratch, debris inside shards, foreign names at the top) and then acts.
//! Per-item failures are collected and the walk goes on (OP-5); debris left
//! by crashes is expected, not an error (SAFE-3). Removing an entry always
//! renames it aside first, so no reader ever sees a manifest whose blobs
//! are half deleted.

use alloc::collections::BTreeSet;
use alloc::string::String;
use alloc::vec::Vec;
use core::ops::ControlFlow;

use super::lookup::LookupStatus;
use super::{Cache, CacheError, Context, CopyFailure, Discard, Step, child_path, copy_hashing, io};
use crate::fs::{ErrorKind, FileKind, Filesystem, Root, Timestamp};
use crate::hash::{Digest, HashFunction};
use crate::key::Key;
use crate::layout;
use crate::manifest::Manifest;
use crate::path::MAX_PATH_BYTES;

/// A per-item failure that did not stop the walk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// The item, relative to the cache directory.
    pub path: String,
    /// What went wrong.
    pub error: CacheError,
}

/// What the cache directory holds, as one walk classifies it.
pub(super) enum Item {
    /// A directory named after its key, inside its shard.
    Entry { key: Key, path: String },
    /// A name starting with `.`, at the top or inside a shard (DISK-5).
    Scratch { path: String },
    /// Anything else inside a shard, or a shard-named non-directory.
    Debris { path: String },
    /// A name at the top that cachet never creates; only clear removes it.
    Foreign { path: String },
    /// The file-hash memo directory (MEMO-1): only clear removes it, and
    /// info leaves it out of every figure.
    Memo { path: String },
}

/// OP-5 clean modes; they apply in this order, and each removed item is
/// counted under the first that selects it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CleanModes {
    /// Remove corrupt and schema-stale entries, debris, and scratch older
    /// than [`super::Options::scratch_grace_seconds`].
    pub soft: bool,
    /// Remove valid entries created more than this many seconds ago.
    pub max_age_seconds: Option<u64>,
    /// Then remove least-recently-used valid entries until the total size
    /// of valid entries fits.
    pub max_size_bytes: Option<u64>,
    /// Also a size bound, as a percentage (0 to 100) of the bytes of the
    /// valid entries the walk found before removing anything; with
    /// `max_size_bytes`, the smaller bound applies (OP-15). Values above
    /// 100 count as 100.
    pub max_size_percent: Option<u8>,
    /// The keys in use, sorted (OP-15): when given, the size phase removes
    /// the valid entries whose keys are not in it first (least recently
    /// used first), and only then the others. `None` treats every entry
    /// alike.
    pub in_use: Option<BTreeSet<Key>>,
    /// Report only; change nothing.
    pub dry_run: bool,
}

/// Why clean removed an item.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CleanReason {
    /// A corrupt entry or debris (soft).
    Corrupt,
    /// An entry of another chapter revision or hash function (soft).
    Schema,
    /// Scratch older than the grace period (soft).
    Scratch,
    /// A valid entry older than `max_age_seconds`.
    MaxAge,
    /// A least-recently-used valid entry, over `max_size_bytes`.
    MaxSize,
}

impl CleanReason {
    /// The reason as reports print it.
    pub const fn as_str(self) -> &'static str {
        match self {
            CleanReason::Corrupt => "corrupt",
            CleanReason::Schema => "schema",
            CleanReason::Scratch => "scratch",
            CleanReason::MaxAge => "max-age",
            CleanReason::MaxSize => "max-size",
        }
    }
}

/// One item clean removed (or, in a dry run, would remove).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemovedItem {
    /// Relative to the cache directory.
    pub path: String,
    /// Why.
    pub reason: CleanReason,
    /// Bytes of regular files it held.
    pub bytes: u64,
}

/// What [`Cache::clean`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CleanReport {
    /// Whether this was a dry run.
    pub dry_run: bool,
    /// Items removed, in the order they were removed.
    pub removed: Vec<RemovedItem>,
    /// Entries planned for removal that were used meanwhile and kept.
    pub kept_in_use: u64,
    /// Valid entries left.
    pub remaining_entries: u64,
    /// Bytes held by the valid entries left.
    pub remaining_bytes: u64,
    /// Items that could not be inspected or removed.
    pub failures: Vec<Failure>,
}

/// What [`Cache::clear`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClearReport {
    /// Entries removed.
    pub entries_removed: u64,
    /// Other items (scratch, debris, foreign names) removed.
    pub other_removed: u64,
    /// Items that could not be removed.
    pub failures: Vec<Failure>,
}

/// Entries per (chapter revision, hash function), for [`InfoReport`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SchemaCount {
    /// The manifests' `chapter_revision`.
    pub chapter_revision: u8,
    /// The manifests' `hash_function`.
    pub hash_function: HashFunction,
    /// How many entries carry it.
    pub entries: u64,
}

/// What [`Cache::info`] found (OP-6).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InfoReport {
    /// Entries that are hits.
    pub valid_entries: u64,
    /// Entries of another chapter revision or hash function.
    pub schema_entries: u64,
    /// Corrupt entries and debris inside shards.
    pub corrupt_entries: u64,
    /// Scratch directories and files.
    pub scratch_items: u64,
    /// Names at the top of the cache directory that cachet never creates.
    pub foreign_items: u64,
    /// Bytes of every regular file under the cache directory.
    pub total_bytes: u64,
    /// Entries whose manifest parses, per schema, sorted.
    pub schemas: Vec<SchemaCount>,
    /// Items that could not be inspected.
    pub failures: Vec<Failure>,
}

/// What is wrong with an entry [`Cache::verify`] flagged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Damage {
    /// The entry fails lookup's checks (OP-1): a miss-corrupt.
    Corrupt,
    /// A blob or stream no longer hashes to what the manifest records.
    ContentMismatch {
        /// The file, relative to the cache directory.
        path: String,
    },
}

/// An entry [`Cache::verify`] flagged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DamagedEntry {
    /// The entry's key.
    pub key: Key,
    /// What is wrong.
    pub damage: Damage,
    /// Whether it was evicted.
    pub evicted: bool,
}

/// What [`Cache::verify`] found (OP-7).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Entries examined.
    pub checked: u64,
    /// Entries whose every byte matched.
    pub intact: u64,
    /// Entries of another schema, which the active hash function cannot
    /// vouch for.
    pub skipped_schema: u64,
    /// Entries that are damaged.
    pub damaged: Vec<DamagedEntry>,
    /// Items that could not be inspected or evicted.
    pub failures: Vec<Failure>,
}

/// A valid entry as clean plans around it.
pub(super) struct ValidEntry {
    pub(super) key: Key,
    pub(super) path: String,
    pub(super) created_at_unix: u64,
    pub(super) last_used: Timestamp,
    pub(super) bytes: u64,
}

impl<F: Filesystem> Cache<F> {
    /// Lists the cache directory and classifies every item. An absent root is an
    /// empty cache.
    pub(super) fn walk(&self, failures: &mut Vec<Failure>) -> Result<Vec<Item>, CacheError> {
        let mut top: Vec<(String, FileKind)> = Vec::new();
        match self.fs.read_dir(Root::Cache, "", &mut |name, kind| {
            top.push((String::from(name), kind));
            ControlFlow::Continue(())
        }) {
            Ok(()) => {}
            Err(e) if e.kind == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io(Step::List, Root::Cache, "")(e)),
        }
        let mut items = Vec::new();
        for (name, kind) in top {
            if layout::is_scratch_name(&name) {
                items.push(Item::Scratch { path: name });
            } else if layout::is_memo_name(&name) || layout::is_remote_state_name(&name) {
                // The file-hash memo and the remotes' breaker file are
                // neither entries nor debris: info and clean leave them
                // alone, clear removes them (MEMO-1, REMOTE-17).
                items.push(Item::Memo { path: name });
            } else if !layout::is_shard_name(&name) {
                items.push(Item::Foreign { path: name });
            } else if kind != FileKind::Dir {
                items.push(Item::Debris { path: name });
            } else {
                let shard = name;
                let listed = self.fs.read_dir(Root::Cache, &shard, &mut |child, kind| {
                    let path = child_path(&shard, child);
                    let item = if layout::is_scratch_name(child) {
                        Item::Scratch { path }
                    } else {
                        match (layout::entry_key(&shard, child), kind) {
                            (Some(key), FileKind::Dir) => Item::Entry { key, path },
                            _ => Item::Debris { path },
                        }
                    };
                    items.push(item);
                    ControlFlow::Continue(())
                });
                if let Err(e) = listed {
                    failures.push(Failure {
                        error: io(Step::List, Root::Cache, &shard)(e),
                        path: shard,
                    });
                }
            }
        }
        Ok(items)
    }

    /// Sums the sizes of regular files at and below `path`, iteratively.
    pub(super) fn tree_bytes(&self, path: &str) -> Result<u64, CacheError> {
        let meta = match self.fs.metadata(Root::Cache, path) {
            Ok(meta) => meta,
            Err(e) if e.kind == ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(io(Step::Stat, Root::Cache, path)(e)),
        };
        if meta.kind != FileKind::Dir {
            return Ok(if meta.kind == FileKind::File {
                meta.size
            } else {
                0
            });
        }
        let mut total: u64 = 0;
        let mut stack: Vec<String> = alloc::vec![String::from(path)];
        while let Some(dir) = stack.pop() {
            let mut files: Vec<String> = Vec::new();
            let listed = self.fs.read_dir(Root::Cache, &dir, &mut |name, kind| {
                let child = child_path(&dir, name);
                match kind {
                    FileKind::Dir => stack.push(child),
                    FileKind::File => files.push(child),
                    FileKind::Symlink | FileKind::Other => {}
                }
                ControlFlow::Continue(())
            });
            match listed {
                Ok(()) => {}
                Err(e) if e.kind == ErrorKind::NotFound => continue,
                Err(e) => return Err(io(Step::List, Root::Cache, &dir)(e)),
            }
            if stack.iter().any(|d| d.len() > MAX_PATH_BYTES) {
                return Err(CacheError::TooDeep { path: dir });
            }
            for file in files {
                match self.fs.metadata(Root::Cache, &file) {
                    Ok(meta) if meta.kind == FileKind::File => {
                        total = total.saturating_add(meta.size);
                    }
                    Ok(_) => {}
                    Err(e) if e.kind == ErrorKind::NotFound => {}
                    Err(e) => return Err(io(Step::Stat, Root::Cache, &file)(e)),
                }
            }
        }
        Ok(total)
    }

    /// OP-4: removes everything under the cache directory. Entries are renamed
    /// aside before they are deleted, so a concurrent reader sees a whole
    /// entry or none.
    pub fn clear(&self, ctx: &mut dyn Context) -> Result<ClearReport, CacheError> {
        let mut report = ClearReport::default();
        let items = self.walk(&mut report.failures)?;
        let mut shards: BTreeSet<String> = BTreeSet::new();
        // Shards with nothing in them (their last entry evicted by a clean,
        // or a store that died right after creating one) yield no item, and
        // clear removes them too (OP-4).
        let listed = self.fs.read_dir(Root::Cache, "", &mut |name, kind| {
            if kind == FileKind::Dir && layout::is_shard_name(name) {
                shards.insert(String::from(name));
            }
            ControlFlow::Continue(())
        });
        if let Err(e) = listed {
            report.failures.push(Failure {
                path: String::new(),
                error: io(Step::List, Root::Cache, "")(e),
            });
        }
        for item in items {
            let result = match &item {
                Item::Entry { key, path } => {
                    if let Some((shard, _)) = path.split_once('/') {
                        shards.insert(String::from(shard));
                    }
                    self.evict(key, ctx).map(|removed| {
                        report.entries_removed += u64::from(removed);
                    })
                }
                Item::Scratch { path }
                | Item::Debris { path }
                | Item::Foreign { path }
                | Item::Memo { path } => {
                    if let Some((shard, _)) = path.split_once('/') {
                        shards.insert(String::from(shard));
                    }
                    self.remove_tree(Root::Cache, path).map(|()| {
                        report.other_removed += 1;
                    })
                }
            };
            if let Err(error) = result.or_else(refilled_meanwhile) {
                report.failures.push(Failure {
                    path: String::from(item_path(&item)),
                    error,
                });
            }
        }
        for shard in shards {
            if let Err(error) = self
                .remove_tree(Root::Cache, &shard)
                .or_else(refilled_meanwhile)
            {
                report.failures.push(Failure { path: shard, error });
            }
        }
        Ok(report)
    }

    /// OP-5: removes what `modes` selects (see [`CleanModes`]).
    pub fn clean(
        &self,
        modes: &CleanModes,
        ctx: &mut dyn Context,
    ) -> Result<CleanReport, CacheError> {
        let mut report = CleanReport {
            dry_run: modes.dry_run,
            ..CleanReport::default()
        };
        let now = ctx.now();
        let items = self.walk(&mut report.failures)?;
        let mut valid: Vec<ValidEntry> = Vec::new();
        for item in items {
            match item {
                Item::Entry { key, path } => {
                    let inspection = match self.inspect(&key) {
                        Ok(inspection) => inspection,
                        Err(error) => {
                            report.failures.push(Failure { path, error });
                            continue;
                        }
                    };
                    let reason = match inspection.status {
                        LookupStatus::Hit => {
                            let bytes = inspection.manifest.unwrap_or_default();
                            let created_at_unix = Manifest::parse(&bytes)
                                .map(|m| m.tail.created_at_unix)
                                .unwrap_or(0);
                            match self.tree_bytes(&path) {
                                Ok(size) => valid.push(ValidEntry {
                                    key,
                                    path,
                                    created_at_unix,
                                    last_used: inspection.manifest_modified,
                                    bytes: size,
                                }),
                                Err(error) => report.failures.push(Failure { path, error }),
                            }
                            continue;
                        }
                        LookupStatus::MissSchema => CleanReason::Schema,
                        LookupStatus::MissCorrupt | LookupStatus::MissNoEntry => {
                            CleanReason::Corrupt
                        }
                    };
                    if modes.soft {
                        self.clean_entry(&key, path, reason, modes.dry_run, ctx, &mut report);
                    }
                }
                Item::Scratch { path } => {
                    if !modes.soft {
                        continue;
                    }
                    let old_enough = match self.fs.metadata(Root::Cache, &path) {
                        Ok(meta) => {
                            now.seconds.saturating_sub(meta.modified.seconds)
                                >= self.options.scratch_grace_seconds
                        }
                        Err(_) => false,
                    };
                    if old_enough {
                        self.clean_tree(path, CleanReason::Scratch, modes.dry_run, &mut report);
                    }
                }
                Item::Debris { path } => {
                    if modes.soft {
                        self.clean_tree(path, CleanReason::Corrupt, modes.dry_run, &mut report);
                    }
                }
                Item::Foreign { .. } | Item::Memo { .. } => {}
            }
        }

        let found_bytes: u64 = valid.iter().map(|e| e.bytes).sum();
        if let Some(max_age) = modes.max_age_seconds {
            let (expired, kept): (Vec<_>, Vec<_>) = valid
                .into_iter()
                .partition(|e| now.seconds.saturating_sub(e.created_at_unix) > max_age);
            valid = kept;
            for entry in expired {
                if let Some(entry) =
                    self.clean_valid(entry, CleanReason::MaxAge, modes.dry_run, ctx, &mut report)
                {
                    valid.push(entry);
                }
            }
        }

        if let Some(max_size) = size_bound(modes, found_bytes) {
            // Keys in use sort after the others: `false` before `true`.
            let in_use = |key: &Key| modes.in_use.as_ref().is_some_and(|keys| keys.contains(key));
            valid.sort_by_key(|e| (in_use(&e.key), e.last_used, e.key));
            let mut total: u64 = valid.iter().map(|e| e.bytes).sum();
            let mut kept = Vec::new();
            for entry in valid {
                if total <= max_size {
                    kept.push(entry);
                    continue;
                }
                let bytes = entry.bytes;
                match self.clean_valid(entry, CleanReason::MaxSize, modes.dry_run, ctx, &mut report)
                {
                    Some(entry) => kept.push(entry),
                    None => total = total.saturating_sub(bytes),
                }
            }
            valid = kept;
        }

        report.remaining_entries = valid.len() as u64;
        report.remaining_bytes = valid.iter().map(|e| e.bytes).sum();
        Ok(report)
    }

    /// Removes a valid entry unless it was used after clean planned its
    /// removal (OP-5); gives it back when kept or when removal failed.
    pub(super) fn clean_valid(
        &self,
        entry: ValidEntry,
        reason: CleanReason,
        dry_run: bool,
        ctx: &mut dyn Context,
        report: &mut CleanReport,
    ) -> Option<ValidEntry> {
        let used_since = match self.fs.metadata(Root::Cache, &layout::manifest(&entry.key)) {
            Ok(meta) => meta.modified > entry.last_used,
            Err(_) => false,
        };
        if used_since {
            report.kept_in_use += 1;
            return Some(entry);
        }
        let removed = RemovedItem {
            path: entry.path.clone(),
            reason,
            bytes: entry.bytes,
        };
        if dry_run {
            report.removed.push(removed);
            return None;
        }
        match self.evict(&entry.key, ctx) {
            Ok(true) => {
                report.removed.push(removed);
                None
            }
            // Someone else removed it first: it is gone, but not by us.
            Ok(false) => None,
            Err(error) => {
                report.failures.push(Failure {
                    path: entry.path.clone(),
                    error,
                });
                Some(entry)
            }
        }
    }

    fn clean_entry(
        &self,
        key: &Key,
        path: String,
        reason: CleanReason,
        dry_run: bool,
        ctx: &mut dyn Context,
        report: &mut CleanReport,
    ) {
        let bytes = self.tree_bytes(&path).unwrap_or(0);
        let result = if dry_run {
            Ok(true)
        } else {
            self.evict(key, ctx)
        };
        match result {
            Ok(true) => report.removed.push(RemovedItem {
                path,
                reason,
                bytes,
            }),
            Ok(false) => {}
            Err(error) => report.failures.push(Failure { path, error }),
        }
    }

    fn clean_tree(
        &self,
        path: String,
        reason: CleanReason,
        dry_run: bool,
        report: &mut CleanReport,
    ) {
        let bytes = self.tree_bytes(&path).unwrap_or(0);
        let result = if dry_run {
            Ok(())
        } else {
            self.remove_tree(Root::Cache, &path)
        };
        match result {
            Ok(()) => report.removed.push(RemovedItem {
                path,
                reason,
                bytes,
            }),
            Err(error) => report.failures.push(Failure { path, error }),
        }
    }

    /// OP-6: reports what the cache holds, without writing.
    pub fn info(&self) -> Result<InfoReport, CacheError> {
        let mut report = InfoReport::default();
        let items = self.walk(&mut report.failures)?;
        let mut schemas: Vec<SchemaCount> = Vec::new();
        for item in items
            .iter()
            .filter(|item| !matches!(item, Item::Memo { .. }))
        {
            match item {
                Item::Entry { key, path } => match self.inspect(key) {
                    Ok(inspection) => {
                        match inspection.status {
                            LookupStatus::Hit => report.valid_entries += 1,
                            LookupStatus::MissSchema => report.schema_entries += 1,
                            // Unless a concurrent clean, clear or store
                            // moved it aside meanwhile (OP-8).
                            LookupStatus::MissCorrupt | LookupStatus::MissNoEntry => {
                                if !self.vanished(key) {
                                    report.corrupt_entries += 1;
                                }
                            }
                        }
                        let bytes = inspection.manifest.unwrap_or_default();
                        if let Ok(manifest) = Manifest::parse(&bytes) {
                            count_schema(&mut schemas, &manifest);
                        }
                    }
                    Err(error) => report.failures.push(Failure {
                        path: path.clone(),
                        error,
                    }),
                },
                Item::Scratch { .. } => report.scratch_items += 1,
                Item::Debris { .. } => report.corrupt_entries += 1,
                Item::Foreign { .. } => report.foreign_items += 1,
                Item::Memo { .. } => {}
            }
            match self.tree_bytes(item_path(item)) {
                Ok(bytes) => report.total_bytes = report.total_bytes.saturating_add(bytes),
                Err(error) => report.failures.push(Failure {
                    path: String::from(item_path(item)),
                    error,
                }),
            }
        }
        schemas.sort();
        report.schemas = schemas;
        Ok(report)
    }

    /// OP-7: re-hashes every blob and stream of every entry; with `evict`,
    /// removes the damaged ones.
    pub fn verify(&self, evict: bool, ctx: &mut dyn Context) -> Result<VerifyReport, CacheError> {
        let mut report = VerifyReport::default();
        let items = self.walk(&mut report.failures)?;
        let mut buffer = self.buffer();
        for item in items {
            let Item::Entry { key, path } = item else {
                continue;
            };
            report.checked += 1;
            let damage = match self.inspect(&key) {
                Err(error) => {
                    report.failures.push(Failure { path, error });
                    continue;
                }
                Ok(inspection) => match inspection.status {
                    LookupStatus::MissSchema => {
                        report.skipped_schema += 1;
                        continue;
                    }
                    LookupStatus::MissCorrupt | LookupStatus::MissNoEntry => Some(Damage::Corrupt),
                    LookupStatus::Hit => {
                        let bytes = inspection.manifest.unwrap_or_default();
                        match self.rehash(&key, &bytes, &mut buffer) {
                            Ok(damage) => damage,
                            Err(error) => {
                                report.failures.push(Failure { path, error });
                                continue;
                            }
                        }
                    }
                },
            };
            let Some(damage) = damage else {
                report.intact += 1;
                continue;
            };
            // A concurrent clean, clear or store moves an entry aside as a
            // whole (OP-2, OP-5): one whose directory is gone by now was
            // removed while it was being checked, which is not damage
            // (OP-8). Content mismatches cannot come from that.
            if damage == Damage::Corrupt && self.vanished(&key) {
                report.checked -= 1;
                continue;
            }
            let evicted = evict
                && match self.evict(&key, ctx) {
                    Ok(removed) => removed,
                    Err(error) => {
                        report.failures.push(Failure {
                            path: path.clone(),
                            error,
                        });
                        false
                    }
                };
            report.damaged.push(DamagedEntry {
                key,
                damage,
                evicted,
            });
        }
        Ok(report)
    }

    /// Whether `key`'s entry directory is gone (and nothing else stands in
    /// its place).
    fn vanished(&self, key: &Key) -> bool {
        matches!(
            self.fs.metadata(Root::Cache, &layout::entry_dir(key)),
            Err(e) if e.kind == ErrorKind::NotFound
        )
    }

    /// Re-hashes the files of a valid entry; the first mismatch found.
    fn rehash(
        &self,
        key: &Key,
        manifest_bytes: &[u8],
        buffer: &mut [u8],
    ) -> Result<Option<Damage>, CacheError> {
        let Ok(manifest) = Manifest::parse(manifest_bytes) else {
            return Ok(Some(Damage::Corrupt));
        };
        let mut seen: BTreeSet<Digest> = BTreeSet::new();
        let outputs = manifest
            .outputs()
            .filter(|o| seen.insert(o.content_hash))
            .map(|o| (layout::blob(key, &o.content_hash), o.content_hash, o.size));
        let streams = [
            (
                layout::stdout(key),
                manifest.tail.stdout_hash,
                manifest.tail.stdout_len,
            ),
            (
                layout::stderr(key),
                manifest.tail.stderr_hash,
                manifest.tail.stderr_len,
            ),
        ];
        for (path, hash, size) in outputs.chain(streams) {
            let reader = match self.fs.open_file(Root::Cache, &path) {
                Ok(reader) => reader,
                Err(e) if e.kind == ErrorKind::NotFound || e.kind == ErrorKind::SymlinkRefused => {
                    return Ok(Some(Damage::Corrupt));
                }
                Err(e) => return Err(io(Step::Open, Root::Cache, &path)(e)),
            };
            let (actual, actual_size) =
                copy_hashing(reader, Discard, buffer, self.options.hash_function).map_err(
                    |failure| match failure {
                        CopyFailure::Read(e) | CopyFailure::Write(e) => {
                            io(Step::Read, Root::Cache, &path)(e)
                        }
                    },
                )?;
            if actual != hash || actual_size != size {
                return Ok(Some(Damage::ContentMismatch {
                    path: String::from(path.as_str()),
                }));
            }
        }
        Ok(None)
    }
}

/// The size bound of OP-5's third mode and OP-15: `max_size_bytes`,
/// `max_size_percent` of `found_bytes`, or the smaller of the two.
fn size_bound(modes: &CleanModes, found_bytes: u64) -> Option<u64> {
    let share = modes.max_size_percent.map(|percent| {
        let percent = u128::from(percent.min(100));
        // Rounded down: "at most P %".
        u64::try_from(u128::from(found_bytes) * percent / 100).unwrap_or(found_bytes)
    });
    match (modes.max_size_bytes, share) {
        (Some(bytes), Some(share)) => Some(bytes.min(share)),
        (bytes, share) => bytes.or(share),
    }
}

/// A directory that another process wrote into, or removed, while clear
/// was emptying it: what was written after clear began is not clear's to
/// remove (OP-8), and what vanished is already gone. Neither is a failure.
fn refilled_meanwhile(error: CacheError) -> Result<(), CacheError> {
    match &error {
        CacheError::Io { source, .. }
            if matches!(
                source.kind,
                ErrorKind::DirectoryNotEmpty | ErrorKind::NotFound
            ) =>
        {
            Ok(())
        }
        _ => Err(error),
    }
}

fn item_path(item: &Item) -> &str {
    match item {
        Item::Entry { path, .. }
        | Item::Scratch { path }
        | Item::Debris { path }
        | Item::Foreign { path }
        | Item::Memo { path } => path,
    }
}

fn count_schema(schemas: &mut Vec<SchemaCount>, manifest: &Manifest<'_>) {
    let (chapter_revision, hash_function) =
        (manifest.head.chapter_revision, manifest.head.hash_function);
    match schemas
        .iter_mut()
        .find(|s| s.chapter_revision == chapter_revision && s.hash_function == hash_function)
    {
        Some(count) => count.entries += 1,
        None => schemas.push(SchemaCount {
            chapter_revision,
            hash_function,
            entries: 1,
        }),
    }
}
