//! Crash consistency (SAFE-3, with OP-2, OP-3, OP-4 and OP-5), on the
//! in-memory filesystem's durability model.
//!
//! For store, restore, clean (soft, and eviction by `max_size`) and clear,
//! each test first counts the filesystem calls `n` of an uninterrupted
//! run, then for every `i` in `0..=n` builds the same fixture afresh, lets
//! the process die at call `i` (`i == n`: right after the operation
//! returned) and ends the crash one way: as a process kill (everything done
//! stays), as a power loss (only what was synced stays), or as a power loss
//! after the operating system wrote every directory's entries but no
//! unsynced file data (a rename reaching the disk before the renamed file's
//! contents or permission bits; see [`Crash`]). Then:
//!
//! - every key's lookup is a miss or a hit, and a hit restores, into a
//!   fresh workspace, exactly the stored bytes, modes and streams;
//! - entries the operation must not touch are still hits;
//! - no restore target is torn: each is as it was, or complete with its
//!   recorded bytes and mode (after a power loss, only with
//!   `Options::durable_restore`; without it, nothing present before is
//!   gone and nothing but outputs appears);
//! - `info` and a soft clean succeed on the debris, and a soft clean past
//!   the scratch grace period leaves no scratch or debris under the cache
//!   root and keeps every valid entry;
//! - retrying the operation succeeds, and a store that returns `Stored`
//!   survives a power loss right after (OP-2's durability).

extern crate alloc;

use alloc::collections::BTreeMap;

use cachet_core::cache::{
    Cache, CacheError, CleanModes, DeterministicContext, LookupStatus, Options, RestoreOutcome,
    StoreOutcome,
};
use cachet_core::fs::{Filesystem, Root, Timestamp};
use cachet_core::hash::Digest;
use cachet_core::key::Key;
use cachet_core::layout;
use cachet_core::memfs::{CrashMode, MemFs};
use cachet_tests::harness::memcache::{self, Content, Crash, Files};

const W: Root = Root::Workspace;
const C: Root = Root::Cache;

/// When the fixtures are built and the operations run.
const START: u64 = 1_700_000_000;
/// Ten days later: every scratch directory is past its grace period.
const LATER: u64 = START + 10 * 24 * 3600;

fn key(first: u8, rest: u8) -> Key {
    let mut bytes = [rest; 32];
    bytes[0] = first;
    Key(Digest(bytes))
}

/// Stored by the operation under test, in a shard no other entry uses.
fn key_new_shard() -> Key {
    key(0xa1, 0xa1)
}
/// Valid before the operation, in shard `b2`.
fn key_b() -> Key {
    key(0xb2, 0xb2)
}
/// Stored by the operation under test into `key_b`'s shard.
fn key_b_sibling() -> Key {
    key(0xb2, 0x02)
}
/// Valid before the operation, in shard `c3`.
fn key_c() -> Key {
    key(0xc3, 0xc3)
}
/// Corrupt before the operation (a blob lost a byte).
fn key_corrupt() -> Key {
    key(0xd4, 0xd4)
}
/// Written under SHA-256, so stale for a BLAKE3 cache.
fn key_stale() -> Key {
    key(0xe5, 0xe5)
}

fn options() -> Options {
    Options {
        copy_buffer_bytes: 4096,
        ..Options::default()
    }
}

fn ctx_at(seconds: u64, next_suffix: u64) -> DeterministicContext {
    DeterministicContext {
        now: Timestamp::from_seconds(seconds),
        next_suffix,
    }
}

/// The outputs every store in these tests records: an executable, an
/// empty file, two files with equal bytes (one blob, DISK-4), one nested
/// under directories a restore must create, and one larger than the copy
/// buffer.
fn outputs(variant: u8) -> Files {
    let big: Vec<u8> = (0..9000u32).map(|i| (i % 251) as u8 ^ variant).collect();
    [
        ("/out/app.bin", (vec![0, 1, 2, variant, 0xff], 0o755)),
        ("/out/empty", (Vec::new(), 0o600)),
        ("/out/copy.txt", (b"same bytes\n".to_vec(), 0o644)),
        (
            "/out/deep/nested/\u{65e5}.txt",
            (b"same bytes\n".to_vec(), 0o444),
        ),
        ("/out/big.dat", (big, 0o640)),
    ]
    .into_iter()
    .map(|(path, file)| (path.to_string(), file))
    .collect()
}

fn content(variant: u8) -> Content {
    Content {
        outputs: outputs(variant),
        stdout: format!("stdout {variant}\n").into_bytes(),
        stderr: if variant.is_multiple_of(2) {
            Vec::new()
        } else {
            b"warning\n".to_vec()
        },
    }
}

/// Writes `content`'s outputs into the workspace (durably) and stores them
/// under `key`.
fn store_content(
    fs: &MemFs,
    cache: &Cache<MemFs>,
    key: &Key,
    content: &Content,
    ctx: &mut DeterministicContext,
) -> Result<StoreOutcome, CacheError> {
    for (path, (bytes, mode)) in &content.outputs {
        fs.write_file(W, &path[1..], bytes, *mode)
            .unwrap_or_else(|e| panic!("writing {path}: {e}"));
    }
    let mut paths: Vec<&str> = content.outputs.keys().map(String::as_str).collect();
    cache.store(
        key,
        &mut paths,
        content.stdout.as_slice(),
        content.stderr.as_slice(),
        ctx,
    )
}

/// A cache and workspace with entries in every state the operations meet.
struct Fixture {
    fs: MemFs,
    cache: Cache<MemFs>,
    ctx: DeterministicContext,
    /// What each key may hit with; keys not listed must never hit.
    contents: BTreeMap<Key, Content>,
    /// Keys that must hit whatever happens to the operation under test.
    untouchable: Vec<Key>,
}

impl Fixture {
    /// Valid entries `key_b` and `key_c`, a corrupt entry, a stale one,
    /// old scratch directories and debris; the workspace holds
    /// `content(9)`'s outputs. Everything is durable.
    fn new() -> Fixture {
        let fs = MemFs::new();
        let cache = Cache::with_options(fs.clone(), options());
        let mut ctx = ctx_at(START - 7200, 1);
        fs.set_now(ctx.now);
        for (key, variant) in [(key_b(), 1), (key_c(), 2), (key_corrupt(), 3)] {
            let stored = store_content(&fs, &cache, &key, &content(variant), &mut ctx);
            assert_eq!(stored, Ok(StoreOutcome::Stored), "fixture store");
        }
        let stale = Cache::with_options(
            fs.clone(),
            Options {
                hash_function: cachet_core::hash::HashFunction::Sha256,
                ..options()
            },
        );
        let stored = store_content(&fs, &stale, &key_stale(), &content(4), &mut ctx);
        assert_eq!(stored, Ok(StoreOutcome::Stored), "fixture store");
        // A blob of key_corrupt loses a byte: lookup sees the size change.
        let blob_dir = layout::outputs_dir(&key_corrupt());
        let (blob, bytes, mode) = fs
            .tree(C)
            .into_iter()
            .find(|(path, _, bytes, _)| path.starts_with(blob_dir.as_str()) && bytes.len() > 1)
            .map(|(path, _, bytes, mode)| (path, bytes, mode))
            .unwrap_or_else(|| panic!("fixture: no blob"));
        fs.write_file(C, &blob, &bytes[1..], mode)
            .unwrap_or_else(|e| panic!("fixture: {e}"));
        // Old scratch of a dead store and a dead restore, and debris.
        for (path, bytes) in [
            (
                "b2/.tmp-dead-0000000000000000/outputs/.partial",
                &b"half"[..],
            ),
            (".restore-dead-0000000000000000/0", b"staged"),
            ("c3/not-an-entry", b"junk"),
        ] {
            fs.write_file(C, path, bytes, 0o644)
                .unwrap_or_else(|e| panic!("fixture {path}: {e}"));
        }
        fs.set_now(Timestamp::from_seconds(START));
        ctx.now = Timestamp::from_seconds(START);
        for (path, (bytes, mode)) in &content(9).outputs {
            fs.write_file(W, &path[1..], bytes, *mode)
                .unwrap_or_else(|e| panic!("{e}"));
        }
        fs.write_file(W, "src/main.rs", b"fn main() {}\n", 0o644)
            .unwrap_or_else(|e| panic!("{e}"));
        fs.sync_all();
        let contents = [(key_b(), content(1)), (key_c(), content(2))]
            .into_iter()
            .collect();
        Fixture {
            cache,
            fs,
            ctx,
            contents,
            untouchable: vec![key_b(), key_c()],
        }
    }

    fn workspace(&self) -> Files {
        memcache::files(&self.fs, W)
    }

    fn status(&self, key: &Key, context: &str) -> LookupStatus {
        self.cache
            .lookup_status(key)
            .unwrap_or_else(|e| panic!("{context}: SAFE-3: lookup failed after recovery: {e}"))
    }

    /// SAFE-3: every key is a miss or a hit that restores exactly its
    /// content; the untouchable keys hit. Returns the keys that hit.
    fn check_lookups(&mut self, context: &str) -> Vec<Key> {
        let mut keys: Vec<Key> = self.contents.keys().copied().collect();
        keys.extend([key_corrupt(), key_stale(), key_new_shard(), key_b_sibling()]);
        keys.sort();
        keys.dedup();
        let mut hits = Vec::new();
        for key in keys {
            if self.status(&key, context) != LookupStatus::Hit {
                assert!(
                    !self.untouchable.contains(&key),
                    "{context}: SAFE-3: {key} was valid and no longer hits"
                );
                continue;
            }
            let Some(expected) = self.contents.get(&key) else {
                panic!("{context}: SAFE-3: {key} hits but no content was stored for it");
            };
            let (outcome, restored) =
                memcache::restore_fresh(&self.fs, &options(), &key, &mut self.ctx);
            assert!(
                matches!(outcome, Ok(RestoreOutcome::Restored { .. })),
                "{context}: SAFE-3: {key} hits but restores as {outcome:?}"
            );
            assert_eq!(
                &restored, expected,
                "{context}: CLAIM-1/SAFE-3: {key} restores other bytes, modes or streams"
            );
            hits.push(key);
        }
        hits
    }

    /// SAFE-3: info and a soft clean tolerate the debris; a soft clean past
    /// the grace period removes all of it and keeps every valid entry.
    fn check_debris_is_cleaned(&mut self, context: &str) {
        let info = self
            .cache
            .info()
            .unwrap_or_else(|e| panic!("{context}: SAFE-3: info failed: {e}"));
        assert!(
            info.failures.is_empty(),
            "{context}: SAFE-3: info failed on {:?}",
            info.failures
        );
        let hits = self.check_lookups(context);
        let mut later = ctx_at(LATER, self.ctx.next_suffix + 1000);
        self.fs.set_now(later.now);
        let soft = CleanModes {
            soft: true,
            ..CleanModes::default()
        };
        let report = self
            .cache
            .clean(&soft, &mut later)
            .unwrap_or_else(|e| panic!("{context}: SAFE-3: soft clean failed: {e}"));
        assert!(
            report.failures.is_empty(),
            "{context}: SAFE-3: soft clean failed on {:?}",
            report.failures
        );
        assert_eq!(
            memcache::scratch(&self.fs),
            Vec::<String>::new(),
            "{context}: SAFE-3: scratch left after a soft clean past the grace period"
        );
        let info = self
            .cache
            .info()
            .unwrap_or_else(|e| panic!("{context}: info failed: {e}"));
        assert_eq!(
            (
                info.corrupt_entries,
                info.schema_entries,
                info.scratch_items
            ),
            (0, 0, 0),
            "{context}: OP-5: debris left after a soft clean"
        );
        assert_eq!(
            self.check_lookups(context),
            hits,
            "{context}: OP-5: a soft clean changed which entries hit"
        );
        self.fs.set_now(self.ctx.now);
    }
}

/// Runs `op` on a fresh fixture with the process dying at every call in
/// turn, ends each crash as `crash` says and hands the fixture to `check`
/// with the call index, whether `op` finished and its result. Everything
/// runs twice: with a host that syncs the whole filesystem in one call and
/// with one that syncs file by file, since the core orders its writes
/// differently for each (OP-2).
fn crash_everywhere<R>(
    crash: Crash,
    fixture: impl Fn() -> Fixture,
    op: impl Fn(&mut Fixture) -> R,
    check: impl Fn(&mut Fixture, &str, bool, R),
) {
    for sync_filesystem in [true, false] {
        let durable_fixture = || {
            let f = fixture();
            f.fs.set_sync_filesystem_supported(sync_filesystem);
            // The host that syncs the whole filesystem also copies large
            // files itself; the other streams them through the core, so
            // both copy paths meet every crash point.
            f.fs.set_copy_file_supported(sync_filesystem);
            f
        };
        crash_everywhere_once(crash, sync_filesystem, durable_fixture, &op, &check);
    }
}

fn crash_everywhere_once<R>(
    crash: Crash,
    sync_filesystem: bool,
    fixture: impl Fn() -> Fixture,
    op: &impl Fn(&mut Fixture) -> R,
    check: &impl Fn(&mut Fixture, &str, bool, R),
) {
    let mut probe = fixture();
    let start = probe.fs.op_count();
    let _ = op(&mut probe);
    let n = probe.fs.op_count() - start;
    assert!(n > 5, "the operation made only {n} calls");
    for i in 0..=n {
        let mut f = fixture();
        f.fs.crash_at(i);
        let result = op(&mut f);
        let finished = !f.fs.is_crashed();
        if finished {
            // The crash point lies past the end: clear it, so that the
            // crash below happens right after the operation returned.
            f.fs.recover(CrashMode::ProcessKill);
        }
        memcache::recover(&f.fs, crash);
        let durability = if sync_filesystem {
            "one sync_filesystem, host copies"
        } else {
            "per-file syncs, streamed copies"
        };
        let context = format!("{crash:?} at call {i} of {n} ({durability})");
        check(&mut f, &context, finished, result);
    }
}

// ---- store (OP-2) ----

/// Which store the test runs.
#[derive(Clone, Copy)]
enum StoreCase {
    /// Into a shard created by this store.
    NewShard,
    /// Into a shard that holds another entry.
    ExistingShard,
    /// Over a corrupt entry, which must be moved aside (OP-2).
    OverCorrupt,
}

impl StoreCase {
    fn key(self) -> Key {
        match self {
            StoreCase::NewShard => key_new_shard(),
            StoreCase::ExistingShard => key_b_sibling(),
            StoreCase::OverCorrupt => key_corrupt(),
        }
    }
}

fn store_crashes(case: StoreCase, crash: Crash) {
    let new = content(5);
    let fixture = || {
        let mut f = Fixture::new();
        f.contents.insert(case.key(), new.clone());
        f
    };
    let op = |f: &mut Fixture| {
        let (fs, cache) = (f.fs.clone(), &f.cache);
        store_content(&fs, cache, &case.key(), &new, &mut f.ctx)
    };
    // Store reads the workspace and never writes it.
    let mut workspace = Fixture::new().workspace();
    workspace.extend(new.outputs.clone());
    crash_everywhere(crash, fixture, op, |f, context, finished, result| {
        assert_eq!(
            f.workspace(),
            workspace,
            "{context}: OP-2: the store changed the workspace"
        );
        if finished {
            assert_eq!(result, Ok(StoreOutcome::Stored), "{context}");
            // OP-2: a store that returned has made its entry durable.
            f.untouchable.push(case.key());
        }
        f.check_lookups(context);
        // Retrying after the crash, among its debris, succeeds, and what it
        // stores survives a power loss right after.
        let retried = store_content(&f.fs.clone(), &f.cache, &case.key(), &new, &mut f.ctx);
        assert!(
            matches!(
                retried,
                Ok(StoreOutcome::Stored | StoreOutcome::AlreadyPresent)
            ),
            "{context}: OP-2: retrying the store gave {retried:?}"
        );
        f.fs.recover(CrashMode::PowerLoss);
        if retried == Ok(StoreOutcome::Stored) && !f.untouchable.contains(&case.key()) {
            f.untouchable.push(case.key());
        }
        let context = format!("{context}, then a retried store and a power loss");
        f.check_lookups(&context);
        f.check_debris_is_cleaned(&context);
    });
}

#[test]
fn safe_3_store_into_a_new_shard_crash_at_every_op_process_kill() {
    store_crashes(StoreCase::NewShard, Crash::ProcessKill);
}

#[test]
fn safe_3_store_into_a_new_shard_crash_at_every_op_power_loss() {
    store_crashes(StoreCase::NewShard, Crash::PowerLoss);
}

#[test]
fn safe_3_store_into_a_new_shard_crash_at_every_op_power_loss_after_dirs_flushed() {
    store_crashes(StoreCase::NewShard, Crash::PowerLossAfterDirsFlushed);
}

#[test]
fn safe_3_store_into_an_existing_shard_crash_at_every_op_process_kill() {
    store_crashes(StoreCase::ExistingShard, Crash::ProcessKill);
}

#[test]
fn safe_3_store_into_an_existing_shard_crash_at_every_op_power_loss() {
    store_crashes(StoreCase::ExistingShard, Crash::PowerLoss);
}

#[test]
fn safe_3_store_into_an_existing_shard_crash_at_every_op_power_loss_after_dirs_flushed() {
    store_crashes(StoreCase::ExistingShard, Crash::PowerLossAfterDirsFlushed);
}

#[test]
fn safe_3_store_over_a_corrupt_entry_crash_at_every_op_process_kill() {
    store_crashes(StoreCase::OverCorrupt, Crash::ProcessKill);
}

#[test]
fn safe_3_store_over_a_corrupt_entry_crash_at_every_op_power_loss() {
    store_crashes(StoreCase::OverCorrupt, Crash::PowerLoss);
}

#[test]
fn safe_3_store_over_a_corrupt_entry_crash_at_every_op_power_loss_after_dirs_flushed() {
    store_crashes(StoreCase::OverCorrupt, Crash::PowerLossAfterDirsFlushed);
}

/// OP-2: a store that returned `Stored` survives a power loss even when an
/// earlier store into the same new shard died before making the shard
/// itself durable (it created the shard directory but never synced the
/// cache directory).
#[test]
fn op_2_a_completed_store_survives_power_loss_after_an_earlier_store_died_in_its_shard() {
    let first = content(5);
    let second = content(6);
    let probe = Fixture::new();
    let start = probe.fs.op_count();
    let mut ctx = probe.ctx.clone();
    let _ = store_content(&probe.fs, &probe.cache, &key_new_shard(), &first, &mut ctx);
    let n = probe.fs.op_count() - start;
    for i in 0..n {
        let mut f = Fixture::new();
        f.fs.crash_at(i);
        let fs = f.fs.clone();
        let _ = store_content(&fs, &f.cache, &key_new_shard(), &first, &mut f.ctx);
        f.fs.recover(CrashMode::ProcessKill);
        // Another key of the same shard (a1): the first byte is the shard.
        let sibling = key(0xa1, 0x01);
        let stored = store_content(&fs, &f.cache, &sibling, &second, &mut f.ctx);
        assert_eq!(stored, Ok(StoreOutcome::Stored), "died at call {i}");
        f.fs.recover(CrashMode::PowerLoss);
        assert_eq!(
            f.cache.lookup_status(&sibling),
            Ok(LookupStatus::Hit),
            "OP-2: the first store died at call {i} of {n}; the second returned Stored, \
             and a power loss lost its entry: {:?}",
            f.fs.tree(C).iter().map(|e| &e.0).collect::<Vec<_>>()
        );
    }
}

// ---- restore (OP-3) ----

/// The workspace before the restore: an older version of some outputs
/// (different bytes and modes), some outputs missing (their directories
/// too), and a file the restore must not touch.
fn restore_fixture(cross_device: bool, durable_restore: bool) -> Fixture {
    let mut f = Fixture::new();
    f.cache = Cache::with_options(
        f.fs.clone(),
        Options {
            durable_restore,
            ..options()
        },
    );
    f.fs.set_cross_device(cross_device);
    let fs = f.fs.clone();
    let stored = store_content(&fs, &f.cache, &key_new_shard(), &content(7), &mut f.ctx);
    assert_eq!(stored, Ok(StoreOutcome::Stored));
    f.contents.insert(key_new_shard(), content(7));
    f.untouchable.push(key_new_shard());
    // Replace the workspace: old app.bin (other bytes and mode), old
    // copy.txt, nothing under out/deep, no big.dat or empty.
    for (path, ..) in memcache::files(&fs, W) {
        fs.remove_file(W, &path[1..])
            .unwrap_or_else(|e| panic!("fixture: removing {path}: {e}"));
    }
    for dir in ["out/deep/nested", "out/deep"] {
        fs.remove_dir(W, dir)
            .unwrap_or_else(|e| panic!("fixture: removing {dir}: {e}"));
    }
    fs.write_file(W, "out/app.bin", b"old app", 0o644)
        .unwrap_or_else(|e| panic!("{e}"));
    fs.write_file(W, "out/copy.txt", b"old copy\n", 0o600)
        .unwrap_or_else(|e| panic!("{e}"));
    fs.write_file(W, "src/main.rs", b"fn main() {}\n", 0o644)
        .unwrap_or_else(|e| panic!("{e}"));
    fs.sync_all();
    f
}

/// The restored streams with the restore's result.
type Restored = (Result<RestoreOutcome, CacheError>, Vec<u8>, Vec<u8>);

fn restore(f: &mut Fixture) -> Restored {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let result = f
        .cache
        .restore(&key_new_shard(), &mut out, &mut err, &mut f.ctx);
    (result, out, err)
}

/// SAFE-3 for restore: every workspace file is as before or complete with
/// its recorded bytes and mode; nothing present before is gone; new names
/// are outputs (or, across devices, the copies made beside a target).
fn check_not_torn(before: &Files, after: &Files, expected: &Content, context: &str) {
    for path in before.keys() {
        assert!(
            after.contains_key(path),
            "{context}: SAFE-3: {path} vanished"
        );
    }
    for (path, file) in after {
        if before.get(path) == Some(file) || expected.outputs.get(path) == Some(file) {
            continue;
        }
        let name = path.rsplit('/').next().unwrap_or_default();
        let beside_copy = name.starts_with('.') && name.contains(".cachet-");
        assert!(
            beside_copy,
            "{context}: SAFE-3: {path} is torn: {} bytes with mode {:o}; before: {:?}, recorded: {:?}",
            file.0.len(),
            file.1,
            before.get(path).map(|f| (f.0.len(), f.1)),
            expected.outputs.get(path).map(|f| (f.0.len(), f.1)),
        );
    }
}

/// What a restore that does not sync its outputs still promises after a
/// power loss: nothing present before is gone, and every new name is an
/// output (or a copy beside one); an output's bytes may be lost with the
/// power, as a fresh run's would be (`Options::durable_restore`).
fn check_no_strays(before: &Files, after: &Files, expected: &Content, context: &str) {
    for path in before.keys() {
        assert!(
            after.contains_key(path),
            "{context}: SAFE-3: {path} vanished"
        );
    }
    for path in after.keys() {
        let name = path.rsplit('/').next().unwrap_or_default();
        let beside_copy = name.starts_with('.') && name.contains(".cachet-");
        assert!(
            before.contains_key(path) || expected.outputs.contains_key(path) || beside_copy,
            "{context}: SAFE-2: restore left {path}, which is neither an output nor was there before"
        );
    }
}

fn restore_crashes(cross_device: bool, durable_restore: bool, crash: Crash) {
    let expected = content(7);
    let before = restore_fixture(cross_device, durable_restore).workspace();
    let op = |f: &mut Fixture| {
        let restored = restore(f);
        if !f.fs.is_crashed() {
            // Finished: everything in place, streams replayed (CLAIM-1).
            let mut whole = before.clone();
            whole.extend(expected.outputs.clone());
            assert_eq!(f.workspace(), whole, "CLAIM-1: restore result");
        }
        restored
    };
    crash_everywhere(
        crash,
        || restore_fixture(cross_device, durable_restore),
        op,
        |f, context, finished, (result, out, err)| {
            if finished {
                assert!(
                    matches!(result, Ok(RestoreOutcome::Restored { outputs: 5, .. })),
                    "{context}: {result:?}"
                );
                assert_eq!(
                    (out, err),
                    (expected.stdout.clone(), expected.stderr.clone())
                );
            }
            if durable_restore || !crash.loses_power() {
                check_not_torn(&before, &f.workspace(), &expected, context);
            } else {
                check_no_strays(&before, &f.workspace(), &expected, context);
            }
            f.check_lookups(context);
            f.check_debris_is_cleaned(context);
            // Retrying replaces whatever the crash left with the outputs.
            let (result, out, err) = restore(f);
            assert!(
                matches!(result, Ok(RestoreOutcome::Restored { .. })),
                "{context}: OP-3: retrying the restore gave {result:?}"
            );
            assert_eq!(
                (out, err),
                (expected.stdout.clone(), expected.stderr.clone())
            );
            let after = f.workspace();
            for (path, file) in &expected.outputs {
                assert_eq!(
                    after.get(path),
                    Some(file),
                    "{context}: retried restore of {path}"
                );
            }
        },
    );
}

#[test]
fn safe_3_restore_crash_at_every_op_process_kill() {
    restore_crashes(false, false, Crash::ProcessKill);
}

#[test]
fn safe_3_restore_crash_at_every_op_power_loss() {
    restore_crashes(false, false, Crash::PowerLoss);
}

#[test]
fn safe_3_restore_crash_at_every_op_power_loss_after_dirs_flushed() {
    restore_crashes(false, false, Crash::PowerLossAfterDirsFlushed);
}

#[test]
fn safe_3_restore_across_devices_crash_at_every_op_process_kill() {
    restore_crashes(true, false, Crash::ProcessKill);
}

#[test]
fn safe_3_restore_across_devices_crash_at_every_op_power_loss() {
    restore_crashes(true, false, Crash::PowerLoss);
}

#[test]
fn safe_3_restore_across_devices_crash_at_every_op_power_loss_after_dirs_flushed() {
    restore_crashes(true, false, Crash::PowerLossAfterDirsFlushed);
}

#[test]
fn safe_3_durable_restore_crash_at_every_op_power_loss() {
    restore_crashes(false, true, Crash::PowerLoss);
}

#[test]
fn safe_3_durable_restore_crash_at_every_op_power_loss_after_dirs_flushed() {
    restore_crashes(false, true, Crash::PowerLossAfterDirsFlushed);
}

#[test]
fn safe_3_durable_restore_across_devices_crash_at_every_op_power_loss() {
    restore_crashes(true, true, Crash::PowerLoss);
}

#[test]
fn safe_3_durable_restore_across_devices_crash_at_every_op_power_loss_after_dirs_flushed() {
    restore_crashes(true, true, Crash::PowerLossAfterDirsFlushed);
}

// ---- clean (OP-5) and clear (OP-4) ----

fn soft_clean_crashes(crash: Crash) {
    let op = |f: &mut Fixture| {
        let modes = CleanModes {
            soft: true,
            ..CleanModes::default()
        };
        f.cache.clean(&modes, &mut f.ctx).map(|r| r.failures.len())
    };
    crash_everywhere(crash, Fixture::new, op, |f, context, finished, result| {
        if finished {
            assert_eq!(result, Ok(0), "{context}");
        }
        // A soft clean never removes a valid entry, even when it dies
        // midway: key_b and key_c are untouchable.
        f.check_lookups(context);
        f.check_debris_is_cleaned(context);
    });
}

#[test]
fn safe_3_soft_clean_crash_at_every_op_process_kill() {
    soft_clean_crashes(Crash::ProcessKill);
}

#[test]
fn safe_3_soft_clean_crash_at_every_op_power_loss() {
    soft_clean_crashes(Crash::PowerLoss);
}

#[test]
fn safe_3_soft_clean_crash_at_every_op_power_loss_after_dirs_flushed() {
    soft_clean_crashes(Crash::PowerLossAfterDirsFlushed);
}

/// Three valid entries used at different times; `max_size` fits only the
/// most recently used, so clean evicts the other two (OP-5).
fn eviction_fixture() -> Fixture {
    let mut f = Fixture::new();
    let fs = f.fs.clone();
    let stored = store_content(&fs, &f.cache, &key_new_shard(), &content(8), &mut f.ctx);
    assert_eq!(stored, Ok(StoreOutcome::Stored));
    f.contents.insert(key_new_shard(), content(8));
    // Last use: key_c, then key_b, then key_new_shard (most recent).
    for (seconds, key) in [(10, key_c()), (20, key_b()), (30, key_new_shard())] {
        let mut ctx = ctx_at(START + seconds, 900);
        assert_eq!(f.cache.lookup(&key, &mut ctx), Ok(true));
    }
    fs.sync_all();
    f.untouchable = vec![key_new_shard()];
    f
}

fn max_size_crashes(crash: Crash) {
    let op = |f: &mut Fixture| {
        let modes = CleanModes {
            max_size_bytes: Some(12_000),
            ..CleanModes::default()
        };
        f.cache.clean(&modes, &mut f.ctx)
    };
    crash_everywhere(
        crash,
        eviction_fixture,
        op,
        |f, context, finished, result| {
            if finished {
                let report = result.unwrap_or_else(|e| panic!("{context}: {e}"));
                assert_eq!(report.removed.len(), 2, "{context}: {report:?}");
                assert_eq!(report.remaining_entries, 1, "{context}");
            }
            // Each evicted entry is a miss or still whole; never half deleted.
            f.check_lookups(context);
            f.check_debris_is_cleaned(context);
        },
    );
}

#[test]
fn safe_3_max_size_clean_crash_at_every_op_process_kill() {
    max_size_crashes(Crash::ProcessKill);
}

#[test]
fn safe_3_max_size_clean_crash_at_every_op_power_loss() {
    max_size_crashes(Crash::PowerLoss);
}

#[test]
fn safe_3_max_size_clean_crash_at_every_op_power_loss_after_dirs_flushed() {
    max_size_crashes(Crash::PowerLossAfterDirsFlushed);
}

fn clear_crashes(crash: Crash) {
    let fixture = || {
        let mut f = Fixture::new();
        f.untouchable.clear();
        f
    };
    let op = |f: &mut Fixture| f.cache.clear(&mut f.ctx).map(|r| r.failures.len());
    crash_everywhere(crash, fixture, op, |f, context, finished, result| {
        if finished {
            assert_eq!(result, Ok(0), "{context}");
            if crash == Crash::ProcessKill {
                assert!(
                    f.fs.tree(C).is_empty(),
                    "{context}: OP-4: clear left entries"
                );
            }
        }
        f.check_lookups(context);
        f.check_debris_is_cleaned(context);
        let report = f
            .cache
            .clear(&mut f.ctx)
            .unwrap_or_else(|e| panic!("{context}: OP-4: clear after recovery: {e}"));
        assert!(
            report.failures.is_empty(),
            "{context}: {:?}",
            report.failures
        );
        assert!(
            f.fs.tree(C).is_empty(),
            "{context}: OP-4: clear after recovery left {:?}",
            f.fs.tree(C)
        );
    });
}

#[test]
fn safe_3_clear_crash_at_every_op_process_kill() {
    clear_crashes(Crash::ProcessKill);
}

#[test]
fn safe_3_clear_crash_at_every_op_power_loss() {
    clear_crashes(Crash::PowerLoss);
}

#[test]
fn safe_3_clear_crash_at_every_op_power_loss_after_dirs_flushed() {
    clear_crashes(Crash::PowerLossAfterDirsFlushed);
}
