//! OP-9..11, OP-14: the operations a task runner uses to look after
//! single entries, after b0's file cache: list the valid entries with
//! their statistics, the statistics of one key, remove one key, and say
//! where an entry's files are. Restoring into another root (OP-12) and to
//! chosen paths (OP-13) live with restore; trimming by size with a list of
//! keys in use (OP-15) lives with clean.
//!
//! Everything here reads as lookup does (OP-1): only a hit has statistics
//! or files, and a damaged entry is reported as absent, never as an error.

use alloc::string::String;
use alloc::vec::Vec;

use super::lookup::LookupStatus;
use super::maintain::{Failure, Item};
use super::{Cache, CacheError, Context};
use crate::fs::{Filesystem, Timestamp};
use crate::hash::{Digest, HashFunction};
use crate::key::Key;
use crate::layout::{self, LayoutPath};
use crate::manifest::Manifest;

/// What a valid entry holds and when it was last used (OP-9, OP-10).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EntryStats {
    /// The entry's key.
    pub key: Key,
    /// The hash function its key and content hashes were made with.
    pub hash_function: HashFunction,
    /// How many outputs its manifest lists.
    pub outputs: u64,
    /// Bytes of the regular files in its directory: manifest, streams and
    /// blobs (the measure clean uses, OP-5).
    pub bytes: u64,
    /// The manifest's `created_at_unix`: when the entry was stored.
    pub created_at_unix: u64,
    /// Its last use: the modification time of its manifest (OP-5).
    pub last_used: Timestamp,
}

/// What [`Cache::list`] found (OP-9).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListReport {
    /// Every valid entry, sorted by key bytes.
    pub entries: Vec<EntryStats>,
    /// Items that could not be inspected.
    pub failures: Vec<Failure>,
}

/// One output of an entry and the blob that holds its bytes (OP-14).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct OutputFile {
    /// The output's workspace path, as the manifest records it.
    pub path: String,
    /// The blob, relative to the cache directory (DISK-4).
    pub blob: LayoutPath,
    /// The content hash naming the blob.
    pub content_hash: Digest,
    /// The output's size in bytes.
    pub size: u64,
    /// The output's permission bits.
    pub mode: u32,
}

/// Where a valid entry's files are, relative to the cache directory
/// (OP-14).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct EntryFiles {
    /// The entry directory (DISK-1).
    pub dir: LayoutPath,
    /// The manifest (DISK-2).
    pub manifest: LayoutPath,
    /// The recorded stdout (DISK-3).
    pub stdout: LayoutPath,
    /// The recorded stderr (DISK-3).
    pub stderr: LayoutPath,
    /// The outputs in manifest order, each with its blob; outputs with
    /// equal bytes name the same blob.
    pub outputs: Vec<OutputFile>,
}

impl<F: Filesystem> Cache<F> {
    /// OP-9: every valid entry (a hit, OP-1) with its statistics, sorted by
    /// key, without writing anything. Entries that are not hits are left
    /// out; one that vanishes while listed (a concurrent remove or clean)
    /// is simply not there.
    pub fn list(&self) -> Result<ListReport, CacheError> {
        let mut report = ListReport::default();
        let items = self.walk(&mut report.failures)?;
        for item in items {
            let Item::Entry { key, path } = item else {
                continue;
            };
            match self.stats(&key) {
                Ok(Some(stats)) => report.entries.push(stats),
                Ok(None) => {}
                Err(error) => report.failures.push(Failure { path, error }),
            }
        }
        report.entries.sort_by_key(|entry| entry.key);
        Ok(report)
    }

    /// OP-10: the statistics of `key`'s entry when it is a hit, `None` on
    /// any miss, without writing anything (not even the last use).
    pub fn stats(&self, key: &Key) -> Result<Option<EntryStats>, CacheError> {
        self.lookup_stats(key).map(|(_, stats)| stats)
    }

    /// OP-1 and OP-10 from one look at the entry: its status and, on a
    /// hit, its statistics, so that the two cannot disagree when another
    /// process removes the entry in between. Writes nothing.
    pub fn lookup_stats(
        &self,
        key: &Key,
    ) -> Result<(LookupStatus, Option<EntryStats>), CacheError> {
        let inspection = self.inspect(key)?;
        if inspection.status != LookupStatus::Hit {
            return Ok((inspection.status, None));
        }
        let bytes = inspection.manifest.unwrap_or_default();
        let Ok(manifest) = Manifest::parse(&bytes) else {
            return Ok((LookupStatus::MissCorrupt, None));
        };
        let size = self.tree_bytes(&layout::entry_dir(key))?;
        let stats = Some(EntryStats {
            key: *key,
            hash_function: manifest.head.hash_function,
            outputs: manifest.output_count() as u64,
            bytes: size,
            created_at_unix: manifest.tail.created_at_unix,
            last_used: inspection.manifest_modified,
        });
        Ok((LookupStatus::Hit, stats))
    }

    /// OP-11: removes `key`'s entry, whatever state it is in (a hit, a
    /// corrupt or schema-stale entry). Like clean (OP-5), the whole entry
    /// directory is first renamed aside to
    /// `<shard>/.evicted-<hex>-<suffix>/` and only then deleted, so a
    /// concurrent reader finds the complete entry or none. Returns whether
    /// this call removed something: `false` when nothing was there (or a
    /// concurrent remover was first).
    pub fn remove(&self, key: &Key, ctx: &mut dyn Context) -> Result<bool, CacheError> {
        self.evict(key, ctx)
    }

    /// OP-14: where `key`'s files are, when it is a hit; `None` on any
    /// miss. Writes nothing. The paths are only a snapshot: a concurrent
    /// remove or clean may take the entry away at any moment, and a caller
    /// that reads them must treat a missing file as a miss.
    pub fn find(&self, key: &Key) -> Result<Option<EntryFiles>, CacheError> {
        let (status, bytes) = self.lookup_manifest(key)?;
        let (LookupStatus::Hit, Some(bytes)) = (status, bytes) else {
            return Ok(None);
        };
        let Ok(manifest) = Manifest::parse(&bytes) else {
            return Ok(None);
        };
        let outputs = manifest
            .outputs()
            .map(|record| OutputFile {
                path: String::from(record.path.as_str()),
                blob: layout::blob(key, &record.content_hash),
                content_hash: record.content_hash,
                size: record.size,
                mode: record.mode,
            })
            .collect();
        Ok(Some(EntryFiles {
            dir: layout::entry_dir(key),
            manifest: layout::manifest(key),
            stdout: layout::stdout(key),
            stderr: layout::stderr(key),
            outputs,
        }))
    }
}

#[cfg(all(test, feature = "memfs"))]
mod tests {
    use alloc::vec::Vec;

    use super::super::test_support::{ctx, key, machine};
    use super::super::{CleanModes, CleanReason, DeterministicContext, RestoreOutcome};
    use super::*;
    use crate::fs::{FileKind, Root};
    use crate::hash;
    use crate::memfs::{CrashMode, MemFs};

    const W: Root = Root::Workspace;
    const C: Root = Root::Cache;

    /// Stores `key` with two outputs of different content (one per entry
    /// byte, so entries differ) at `now`.
    fn store_at(fs: &MemFs, cache: &Cache<MemFs>, byte: u8, now: u64) {
        let mut ctx = DeterministicContext {
            now: Timestamp::from_seconds(now),
            next_suffix: u64::from(byte) << 8,
        };
        fs.set_now(ctx.now);
        fs.write_file(W, "out/b.bin", &[byte; 10], 0o755).unwrap();
        fs.write_file(W, "out/a.txt", b"a\n", 0o644).unwrap();
        let mut outputs = alloc::vec!["/out/b.bin", "/out/a.txt"];
        cache
            .store(&key(byte), &mut outputs, &b"so"[..], &b"e"[..], &mut ctx)
            .unwrap();
    }

    fn entry_bytes(fs: &MemFs, k: &Key) -> u64 {
        let dir = layout::entry_dir(k);
        fs.tree(C)
            .into_iter()
            .filter(|(path, kind, ..)| *kind == FileKind::File && path.starts_with(dir.as_str()))
            .map(|(_, _, data, _)| data.len() as u64)
            .sum()
    }

    #[test]
    fn op_9_list_gives_every_valid_entry_with_its_statistics_sorted_by_key() {
        let (fs, cache) = machine();
        store_at(&fs, &cache, 3, 1_000);
        store_at(&fs, &cache, 1, 2_000);
        store_at(&fs, &cache, 2, 3_000);
        // Key 2's stdout goes missing: a corrupt entry is not listed.
        fs.remove_file(C, &layout::stdout(&key(2))).unwrap();
        let report = cache.list().unwrap();
        assert!(report.failures.is_empty());
        let expected: Vec<EntryStats> = [(1, 2_000), (3, 1_000)]
            .into_iter()
            .map(|(byte, at)| EntryStats {
                key: key(byte),
                hash_function: HashFunction::Blake3,
                outputs: 2,
                bytes: entry_bytes(&fs, &key(byte)),
                created_at_unix: at,
                last_used: Timestamp::from_seconds(at),
            })
            .collect();
        assert_eq!(report.entries, expected);
        assert!(expected.iter().all(|e| e.bytes > 12));
    }

    #[test]
    fn op_10_stats_of_a_hit_only_and_writes_nothing() {
        let (fs, cache) = machine();
        store_at(&fs, &cache, 1, 1_000);
        fs.set_now(Timestamp::from_seconds(5_000));
        let before = fs.tree(C);
        let stats = cache.stats(&key(1)).unwrap().unwrap();
        assert_eq!(stats.last_used, Timestamp::from_seconds(1_000));
        assert_eq!(stats.bytes, entry_bytes(&fs, &key(1)));
        assert_eq!(fs.tree(C), before, "stats wrote something");
        assert_eq!(cache.stats(&key(9)), Ok(None));
        fs.remove_file(
            C,
            &layout::blob(&key(1), &hash::digest(HashFunction::Blake3, b"a\n")),
        )
        .unwrap();
        assert_eq!(
            cache.stats(&key(1)),
            Ok(None),
            "a corrupt entry has no stats"
        );
    }

    #[test]
    fn op_11_remove_takes_any_entry_and_says_whether_it_was_there() {
        let (fs, cache) = machine();
        store_at(&fs, &cache, 1, 1_000);
        store_at(&fs, &cache, 2, 1_000);
        fs.remove_file(C, &layout::stderr(&key(2))).unwrap();
        let mut ctx = ctx();
        assert_eq!(cache.remove(&key(1), &mut ctx), Ok(true));
        assert_eq!(
            cache.remove(&key(2), &mut ctx),
            Ok(true),
            "corrupt entries too"
        );
        assert_eq!(cache.remove(&key(1), &mut ctx), Ok(false));
        assert_eq!(cache.remove(&key(7), &mut ctx), Ok(false));
        // Nothing is left behind, not even the renamed-aside directory.
        assert!(
            fs.tree(C)
                .iter()
                .all(|(path, kind, ..)| *kind == FileKind::Dir && path.len() == 2),
            "{:?}",
            fs.tree(C)
        );
    }

    /// OP-11 and OP-8: a remove that dies at any step leaves a whole hit or
    /// a clean miss, never a corrupt entry: the entry is renamed aside
    /// before anything in it is deleted.
    #[test]
    fn op_11_remove_killed_at_any_step_leaves_a_hit_or_no_entry() {
        let mut step = 0;
        loop {
            let (fs, cache) = machine();
            store_at(&fs, &cache, 1, 1_000);
            fs.crash_at(step);
            let result = cache.remove(&key(1), &mut ctx());
            let crashed = fs.is_crashed();
            fs.recover(CrashMode::ProcessKill);
            let status = cache.lookup_status(&key(1)).unwrap();
            assert!(
                matches!(status, LookupStatus::Hit | LookupStatus::MissNoEntry),
                "crash at step {step}: {status}"
            );
            if !crashed {
                assert_eq!(result, Ok(true));
                assert_eq!(status, LookupStatus::MissNoEntry);
                break;
            }
            step += 1;
        }
        assert!(step > 3, "the remove took {step} steps");
    }

    #[test]
    fn op_14_find_names_the_files_of_a_hit() {
        let (fs, cache) = machine();
        store_at(&fs, &cache, 1, 1_000);
        let files = cache.find(&key(1)).unwrap().unwrap();
        assert_eq!(files.manifest, layout::manifest(&key(1)));
        assert_eq!(fs.read_file(C, &files.stdout).unwrap(), b"so");
        assert_eq!(fs.read_file(C, &files.stderr).unwrap(), b"e");
        let outputs: Vec<_> = files
            .outputs
            .iter()
            .map(|o| {
                (
                    o.path.as_str(),
                    fs.read_file(C, &o.blob).unwrap(),
                    o.size,
                    o.mode,
                )
            })
            .collect();
        assert_eq!(
            outputs,
            [
                ("/out/a.txt", b"a\n".to_vec(), 2, 0o644),
                ("/out/b.bin", [1u8; 10].to_vec(), 10, 0o755),
            ]
        );
        assert!(fs.exists(C, &files.dir));
        assert_eq!(cache.find(&key(2)), Ok(None));
    }

    fn revive(
        cache: &Cache<MemFs>,
        targets: &[&str],
    ) -> (Result<RestoreOutcome, CacheError>, Vec<u8>) {
        let mut out = Vec::new();
        let result = cache.revive(&key(1), targets, &mut out, Vec::new(), &mut ctx());
        (result, out)
    }

    #[test]
    fn op_13_revive_puts_outputs_at_the_callers_paths_in_entry_order() {
        let (fs, cache) = machine();
        store_at(&fs, &cache, 1, 1_000);
        let (result, out) = revive(&cache, &["/elsewhere/first", "/second.bin"]);
        assert_eq!(
            result,
            Ok(RestoreOutcome::Restored {
                outputs: 2,
                stdout_len: 2,
                stderr_len: 1
            })
        );
        assert_eq!(out, b"so");
        assert_eq!(fs.read_file(W, "elsewhere/first").unwrap(), b"a\n");
        assert_eq!(fs.read_file(W, "second.bin").unwrap(), [1u8; 10]);
        assert_eq!(fs.metadata(W, "second.bin").unwrap().mode, 0o755);
        assert_eq!(revive(&cache, &["/x", "/y"]).0.map(|_| ()), Ok(()));
        let mut missing = Vec::new();
        assert_eq!(
            cache.revive(&key(9), &["/z"], &mut missing, Vec::new(), &mut ctx()),
            Ok(RestoreOutcome::Miss(LookupStatus::MissNoEntry))
        );
        assert!(!fs.exists(W, "z"));
    }

    #[test]
    fn op_13_revive_refuses_bad_targets_before_writing_anything() {
        let (fs, cache) = machine();
        store_at(&fs, &cache, 1, 1_000);
        let before = fs.tree(W);
        let refused = |targets: &[&str]| revive(&cache, targets).0;
        assert!(matches!(
            refused(&["/only-one"]),
            Err(CacheError::TargetCount {
                outputs: 2,
                targets: 1
            })
        ));
        assert!(matches!(
            refused(&["/t", "/t"]),
            Err(CacheError::DuplicateOutput { .. })
        ));
        assert!(matches!(
            refused(&["/t", "/t/inner"]),
            Err(CacheError::NestedTarget { ref ancestor, .. }) if ancestor == "/t"
        ));
        assert!(matches!(
            refused(&["/t", "/../escape"]),
            Err(CacheError::InvalidOutputPath { .. })
        ));
        // SAFE-2: a symlinked directory on the way is refused, as by OP-3.
        fs.symlink(W, "linked", "/etc").unwrap();
        let before_link = fs.tree(W);
        assert!(matches!(
            refused(&["/t", "/linked/passwd"]),
            Err(CacheError::UnsafeTarget {
                kind: FileKind::Symlink,
                ..
            })
        ));
        assert_eq!(fs.tree(W), before_link);
        assert_ne!(before, before_link);
    }

    #[test]
    fn op_15_clean_by_size_removes_keys_not_in_use_first_then_by_last_use() {
        let (fs, cache) = machine();
        for (byte, at) in [(1, 1_000), (2, 2_000), (3, 3_000), (4, 4_000)] {
            store_at(&fs, &cache, byte, at);
        }
        let one = entry_bytes(&fs, &key(1));
        assert!((1..=4).all(|b| entry_bytes(&fs, &key(b)) == one));
        // In use: 1 and 2 (the oldest). Not in use: 3 and 4 go first,
        // oldest use first, then 1.
        let in_use: alloc::collections::BTreeSet<Key> = [key(1), key(2)].into_iter().collect();
        let modes = CleanModes {
            max_size_bytes: Some(one),
            in_use: Some(in_use),
            dry_run: true,
            ..CleanModes::default()
        };
        let removed = |modes: &CleanModes| -> Vec<String> {
            let report = cache.clean(modes, &mut ctx()).unwrap();
            assert!(
                report
                    .removed
                    .iter()
                    .all(|r| r.reason == CleanReason::MaxSize)
            );
            report.removed.into_iter().map(|r| r.path).collect()
        };
        let dir = |byte| String::from(layout::entry_dir(&key(byte)).as_str());
        assert_eq!(removed(&modes), [dir(3), dir(4), dir(1)]);

        // P % of the size before the clean, when smaller than SIZE: 50 % of
        // four entries is two.
        let percent = CleanModes {
            max_size_bytes: Some(one * 4),
            max_size_percent: Some(50),
            ..modes.clone()
        };
        assert_eq!(removed(&percent), [dir(3), dir(4)]);
        // SIZE when smaller than P %.
        let size = CleanModes {
            max_size_percent: Some(90),
            max_size_bytes: Some(one * 2 - 1),
            ..modes.clone()
        };
        assert_eq!(removed(&size), [dir(3), dir(4), dir(1)]);
        // Without a list, plain least recent use (OP-5).
        let plain = CleanModes {
            in_use: None,
            max_size_bytes: None,
            max_size_percent: Some(50),
            dry_run: false,
            ..CleanModes::default()
        };
        assert_eq!(removed(&plain), [dir(1), dir(2)]);
        assert!(cache.stats(&key(3)).unwrap().is_some());
    }
}
