//! Unit tests of every cache operation over the in-memory filesystem,
//! including their failure paths. Test names cite the SPEC rule they check.

use alloc::string::String;
use alloc::vec::Vec;

use super::*;
use crate::fs::ErrorKind;
use crate::hash;
use crate::manifest::Manifest;
use crate::memfs::{MemFs, PretendThreads};

const W: Root = Root::Workspace;
const C: Root = Root::Cache;

use super::test_support::{ctx, key, machine as setup};

/// A workspace with a few outputs of different shapes.
fn write_outputs(fs: &MemFs) -> Vec<&'static str> {
    fs.write_file(W, "out/app.bin", b"\x00\x01binary\xff", 0o755)
        .unwrap();
    fs.write_file(W, "out/empty", b"", 0o600).unwrap();
    fs.write_file(W, "out/copy.txt", b"same bytes\n", 0o644)
        .unwrap();
    fs.write_file(
        W,
        "out/deep/nested/\u{65e5}\u{672c}.txt",
        b"same bytes\n",
        0o644,
    )
    .unwrap();
    alloc::vec![
        "/out/app.bin",
        "/out/empty",
        "/out/copy.txt",
        "/out/deep/nested/\u{65e5}\u{672c}.txt",
    ]
}

fn store(
    cache: &Cache<MemFs>,
    k: &Key,
    outputs: &[&str],
    ctx: &mut DeterministicContext,
) -> Result<StoreOutcome, CacheError> {
    let mut outputs = outputs.to_vec();
    cache.store(
        k,
        &mut outputs,
        &b"out stream\n"[..],
        &b"err stream\n"[..],
        ctx,
    )
}

fn restore(
    cache: &Cache<MemFs>,
    k: &Key,
    ctx: &mut DeterministicContext,
) -> (Result<RestoreOutcome, CacheError>, Vec<u8>, Vec<u8>) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let result = cache.restore(k, &mut out, &mut err, ctx);
    (result, out, err)
}

/// Files of a tree: path, contents, mode.
type Files = Vec<(String, Vec<u8>, u32)>;

fn workspace_files(fs: &MemFs) -> Files {
    fs.tree(W)
        .into_iter()
        .filter(|(_, kind, _, _)| *kind == FileKind::File)
        .map(|(path, _, data, mode)| (path, data, mode))
        .collect()
}

fn scratch_left(fs: &MemFs) -> Vec<String> {
    fs.tree(C)
        .into_iter()
        .map(|(path, ..)| path)
        .filter(|path| path.split('/').any(|segment| segment.starts_with('.')))
        .collect()
}

/// Removes every file and directory from the workspace.
fn wipe_workspace(fs: &MemFs) {
    let cache = Cache::new(fs.clone());
    let mut names = Vec::new();
    fs.read_dir(W, "", &mut |name, _| {
        names.push(String::from(name));
        ControlFlow::Continue(())
    })
    .unwrap();
    for name in names {
        cache.remove_tree(W, &name).unwrap();
    }
}

/// Replaces the blob of `contents` in `k`'s entry with the same bytes but
/// for one flipped bit at `at`: same size, so a lookup still hits, and only
/// hashing while copying can tell (OP-3). Returns the blob's path.
fn tamper_blob(fs: &MemFs, k: &Key, contents: &[u8], at: usize) -> layout::LayoutPath {
    let blob = layout::blob(k, &hash::digest(HashFunction::Blake3, contents));
    let mut evil = contents.to_vec();
    evil[at] ^= 1;
    fs.remove_file(C, &blob).unwrap();
    fs.write_file(C, &blob, &evil, 0o644).unwrap();
    blob
}

#[test]
fn claim_1_restore_reproduces_files_modes_and_streams() {
    let (fs, cache) = setup();
    let mut ctx = ctx();
    let outputs = write_outputs(&fs);
    let before = workspace_files(&fs);
    assert_eq!(
        store(&cache, &key(1), &outputs, &mut ctx),
        Ok(StoreOutcome::Stored)
    );
    wipe_workspace(&fs);
    assert!(workspace_files(&fs).is_empty());

    let (result, out, err) = restore(&cache, &key(1), &mut ctx);
    assert_eq!(
        result,
        Ok(RestoreOutcome::Restored {
            outputs: 4,
            stdout_len: 11,
            stderr_len: 11
        })
    );
    assert_eq!(out, b"out stream\n");
    assert_eq!(err, b"err stream\n");
    assert_eq!(workspace_files(&fs), before);
    assert!(scratch_left(&fs).is_empty(), "{:?}", scratch_left(&fs));
}

#[test]
fn op_2_store_then_lookup_hits_and_disk_4_shares_equal_blobs() {
    // With and without renames that never replace (`Replace::Never`),
    // which name blobs differently.
    for no_replace in [true, false] {
        let (fs, cache) = setup();
        fs.set_rename_no_replace_supported(no_replace);
        let mut ctx = ctx();
        let outputs = write_outputs(&fs);
        assert!(!cache.lookup(&key(1), &mut ctx).unwrap());
        store(&cache, &key(1), &outputs, &mut ctx).unwrap();
        assert!(cache.lookup(&key(1), &mut ctx).unwrap());
        let mut blobs = Vec::new();
        fs.read_dir(C, &layout::outputs_dir(&key(1)), &mut |name, _| {
            blobs.push(String::from(name));
            ControlFlow::Continue(())
        })
        .unwrap();
        // app.bin, empty, and one blob for the two equal text files; no
        // partial copy left behind.
        assert_eq!(blobs.len(), 3, "{blobs:?}");
        assert!(blobs.iter().all(|b| crate::hex::is_lowercase_hex_64(b)));
    }
}

#[test]
fn op_2_manifest_does_not_depend_on_output_order() {
    let (fs, cache) = setup();
    let mut ctx = ctx();
    let outputs = write_outputs(&fs);
    store(&cache, &key(1), &outputs, &mut ctx).unwrap();
    let mut reversed = outputs.clone();
    reversed.reverse();
    store(&cache, &key(2), &reversed, &mut ctx).unwrap();
    let one = fs.read_file(C, &layout::manifest(&key(1))).unwrap();
    let two = fs.read_file(C, &layout::manifest(&key(2))).unwrap();
    let one = Manifest::parse(&one).unwrap();
    let two = Manifest::parse(&two).unwrap();
    assert!(
        one.outputs()
            .map(|o| o.path)
            .eq(two.outputs().map(|o| o.path))
    );
}

#[test]
fn op_2_and_path_3_bad_output_lists_are_refused() {
    let (fs, cache) = setup();
    let mut ctx = ctx();
    write_outputs(&fs);
    assert!(matches!(
        store(&cache, &key(1), &["/out/../etc/passwd"], &mut ctx),
        Err(CacheError::InvalidOutputPath { .. })
    ));
    assert!(matches!(
        store(&cache, &key(1), &["/out/empty", "/out/app.bin", "/out/empty"], &mut ctx),
        Err(CacheError::DuplicateOutput { path }) if path == "/out/empty"
    ));
    assert_eq!(cache.lookup_status(&key(1)), Ok(LookupStatus::MissNoEntry));
}

#[test]
fn op_2_non_regular_output_is_reported_and_nothing_is_stored() {
    let (fs, cache) = setup();
    let mut ctx = ctx();
    let mut outputs = write_outputs(&fs);
    fs.symlink(W, "out/link", "app.bin").unwrap();
    outputs.push("/out/link");
    assert!(matches!(
        store(&cache, &key(1), &outputs, &mut ctx),
        Err(CacheError::OutputNotRegularFile {
            kind: FileKind::Symlink,
            ..
        })
    ));
    assert_eq!(cache.lookup_status(&key(1)), Ok(LookupStatus::MissNoEntry));
    assert!(scratch_left(&fs).is_empty());
}

#[test]
fn op_2_existing_valid_entry_is_kept() {
    let (fs, cache) = setup();
    let mut ctx = ctx();
    let outputs = write_outputs(&fs);
    store(&cache, &key(1), &outputs, &mut ctx).unwrap();
    let manifest_before = fs.read_file(C, &layout::manifest(&key(1)));
    ctx.now = Timestamp::from_seconds(2_000_000);
    assert_eq!(
        store(&cache, &key(1), &outputs, &mut ctx),
        Ok(StoreOutcome::AlreadyPresent)
    );
    assert_eq!(fs.read_file(C, &layout::manifest(&key(1))), manifest_before);
}

#[test]
fn op_2_corrupt_entry_is_moved_aside_and_replaced() {
    for no_replace in [true, false] {
        let (fs, cache) = setup();
        fs.set_rename_no_replace_supported(no_replace);
        let mut ctx = ctx();
        let outputs = write_outputs(&fs);
        fs.write_file(C, &layout::manifest(&key(1)), b"{ not json", 0o644)
            .unwrap();
        assert_eq!(cache.lookup_status(&key(1)), Ok(LookupStatus::MissCorrupt));
        assert_eq!(
            store(&cache, &key(1), &outputs, &mut ctx),
            Ok(StoreOutcome::Stored)
        );
        assert_eq!(cache.lookup_status(&key(1)), Ok(LookupStatus::Hit));
        assert!(scratch_left(&fs).is_empty(), "{:?}", scratch_left(&fs));
    }
}

#[test]
fn op_2_a_symlink_at_the_entry_path_is_moved_aside_without_rename_no_replace() {
    for no_replace in [true, false] {
        let (fs, cache) = setup();
        fs.set_rename_no_replace_supported(no_replace);
        let mut ctx = ctx();
        let outputs = write_outputs(&fs);
        fs.symlink(C, &layout::entry_dir(&key(1)), "/elsewhere")
            .unwrap();
        assert_eq!(cache.lookup_status(&key(1)), Ok(LookupStatus::MissCorrupt));
        assert_eq!(
            store(&cache, &key(1), &outputs, &mut ctx),
            Ok(StoreOutcome::Stored),
            "renames without replacing supported: {no_replace}"
        );
        assert_eq!(cache.lookup_status(&key(1)), Ok(LookupStatus::Hit));
        assert!(scratch_left(&fs).is_empty(), "{:?}", scratch_left(&fs));
    }
}

#[test]
fn op_2_a_failure_at_any_step_publishes_nothing_and_leaves_no_scratch() {
    let (fs, _) = setup();
    let outputs = write_outputs(&fs);
    let probe = Cache::new(fs.clone());
    let start = fs.op_count();
    store(&probe, &key(9), &outputs, &mut ctx()).unwrap();
    let total = fs.op_count() - start;
    assert!(total > 20);
    for n in 0..total {
        let (fs, cache) = setup();
        let outputs = write_outputs(&fs);
        fs.fail_at(n, ErrorKind::Other);
        let result = store(&cache, &key(1), &outputs, &mut ctx());
        let status = cache.lookup_status(&key(1)).unwrap();
        match result {
            Ok(StoreOutcome::Stored) => assert_eq!(status, LookupStatus::Hit, "op {n}"),
            Ok(other) => panic!("op {n}: unexpected {other:?}"),
            Err(_) => {
                // A failure after the publishing rename (syncing the shard)
                // leaves a complete entry; anything earlier leaves none.
                if status == LookupStatus::Hit {
                    wipe_workspace(&fs);
                    let (restored, out, _) = restore(&cache, &key(1), &mut ctx());
                    assert!(matches!(
                        restored,
                        Ok(RestoreOutcome::Restored { outputs: 4, .. })
                    ));
                    assert_eq!(out, b"out stream\n", "op {n}");
                } else {
                    assert_eq!(status, LookupStatus::MissNoEntry, "op {n}");
                }
                assert!(
                    scratch_left(&fs).is_empty(),
                    "op {n}: {:?}",
                    scratch_left(&fs)
                );
            }
        }
    }
}

#[test]
fn op_1_statuses_for_damaged_entries() {
    type Damage = fn(&MemFs, &Key);
    let cases: [(&str, Damage, LookupStatus); 9] = [
        (
            "manifest removed",
            |fs, k| {
                fs.remove_file(C, &layout::manifest(k)).unwrap();
            },
            LookupStatus::MissNoEntry,
        ),
        (
            "manifest garbage",
            |fs, k| {
                fs.remove_file(C, &layout::manifest(k)).unwrap();
                fs.write_file(C, &layout::manifest(k), b"[]", 0o644)
                    .unwrap();
            },
            LookupStatus::MissCorrupt,
        ),
        (
            "blob removed",
            |fs, k| {
                let blob = layout::blob(k, &hash::digest(HashFunction::Blake3, b""));
                fs.remove_file(C, &blob).unwrap();
            },
            LookupStatus::MissCorrupt,
        ),
        (
            "blob truncated",
            |fs, k| {
                let blob = layout::blob(k, &hash::digest(HashFunction::Blake3, b"same bytes\n"));
                fs.remove_file(C, &blob).unwrap();
                fs.write_file(C, &blob, b"same", 0o644).unwrap();
            },
            LookupStatus::MissCorrupt,
        ),
        (
            "blob is a symlink",
            |fs, k| {
                let blob = layout::blob(k, &hash::digest(HashFunction::Blake3, b"same bytes\n"));
                fs.pretend_symlink(C, &blob).unwrap();
            },
            LookupStatus::MissCorrupt,
        ),
        (
            "stdout removed",
            |fs, k| {
                fs.remove_file(C, &layout::stdout(k)).unwrap();
            },
            LookupStatus::MissCorrupt,
        ),
        (
            "stderr longer",
            |fs, k| {
                fs.remove_file(C, &layout::stderr(k)).unwrap();
                fs.write_file(C, &layout::stderr(k), b"err stream\n!", 0o644)
                    .unwrap();
            },
            LookupStatus::MissCorrupt,
        ),
        (
            "entry dir is a symlink",
            |fs, k| {
                fs.pretend_symlink(C, &layout::entry_dir(k)).unwrap();
            },
            LookupStatus::MissCorrupt,
        ),
        (
            "manifest is a directory",
            |fs, k| {
                let cache = Cache::new(fs.clone());
                cache.remove_tree(C, &layout::manifest(k)).unwrap();
                fs.create_dir_all(C, &layout::manifest(k)).unwrap();
            },
            LookupStatus::MissCorrupt,
        ),
    ];
    for (name, damage, expected) in cases {
        let (fs, cache) = setup();
        let outputs = write_outputs(&fs);
        store(&cache, &key(1), &outputs, &mut ctx()).unwrap();
        damage(&fs, &key(1));
        assert_eq!(cache.lookup_status(&key(1)), Ok(expected), "{name}");
        let (result, out, _) = restore(&cache, &key(1), &mut ctx());
        assert_eq!(result, Ok(RestoreOutcome::Miss(expected)), "{name}");
        assert!(out.is_empty(), "{name}");
    }
}

#[test]
fn op_1_entry_filed_under_another_key_is_corrupt() {
    let (fs, cache) = setup();
    let outputs = write_outputs(&fs);
    store(&cache, &key(1), &outputs, &mut ctx()).unwrap();
    // Copy key 1's entry under key 2's directory.
    for (path, kind, data, mode) in fs.tree(C) {
        let Some(rest) = path.strip_prefix(layout::entry_dir(&key(1)).as_str()) else {
            continue;
        };
        let target = alloc::format!("{}{rest}", layout::entry_dir(&key(2)));
        match kind {
            FileKind::File => fs.write_file(C, &target, &data, mode).unwrap(),
            _ => fs.create_dir_all(C, &target).unwrap(),
        }
    }
    assert_eq!(cache.lookup_status(&key(1)), Ok(LookupStatus::Hit));
    assert_eq!(cache.lookup_status(&key(2)), Ok(LookupStatus::MissCorrupt));
}

#[test]
fn op_1_other_hash_function_is_a_schema_miss() {
    let (fs, cache) = setup();
    let outputs = write_outputs(&fs);
    let sha = Cache::with_options(
        fs.clone(),
        Options {
            hash_function: HashFunction::Sha256,
            ..Options::default()
        },
    );
    store(&sha, &key(1), &outputs, &mut ctx()).unwrap();
    assert_eq!(sha.lookup_status(&key(1)), Ok(LookupStatus::Hit));
    assert_eq!(cache.lookup_status(&key(1)), Ok(LookupStatus::MissSchema));
}

#[test]
fn man_4_manifest_over_the_cap_is_corrupt() {
    let (fs, _) = setup();
    let outputs = write_outputs(&fs);
    let small = Cache::with_options(
        fs.clone(),
        Options {
            max_manifest_bytes: 200,
            ..Options::default()
        },
    );
    store(&small, &key(1), &outputs, &mut ctx()).unwrap();
    assert_eq!(small.lookup_status(&key(1)), Ok(LookupStatus::MissCorrupt));
    assert_eq!(Cache::new(fs).lookup_status(&key(1)), Ok(LookupStatus::Hit));
}

#[test]
fn op_1_real_io_failures_are_errors_not_misses() {
    let (fs, cache) = setup();
    let outputs = write_outputs(&fs);
    store(&cache, &key(1), &outputs, &mut ctx()).unwrap();
    fs.fail_at(0, ErrorKind::PermissionDenied);
    assert!(matches!(
        cache.lookup_status(&key(1)),
        Err(CacheError::Io { source, .. }) if source.kind == ErrorKind::PermissionDenied
    ));
    assert_eq!(cache.lookup_status(&key(1)), Ok(LookupStatus::Hit));
}

#[test]
fn op_5_lookup_hit_refreshes_last_used() {
    let (fs, cache) = setup();
    let mut ctx = ctx();
    let outputs = write_outputs(&fs);
    store(&cache, &key(1), &outputs, &mut ctx).unwrap();
    ctx.now = Timestamp::from_seconds(5_000_000);
    assert!(cache.lookup(&key(1), &mut ctx).unwrap());
    let meta = fs.metadata(C, &layout::manifest(&key(1))).unwrap();
    assert_eq!(meta.modified, ctx.now);
}

/// OP-5, KEY-6: reading a predecessor's manifest for a key is a use that
/// refreshes its last use; the status query and a miss write nothing.
#[test]
fn op_5_a_predecessor_read_for_a_key_refreshes_last_used() {
    let (fs, cache) = setup();
    let mut ctx = ctx();
    let outputs = write_outputs(&fs);
    store(&cache, &key(1), &outputs, &mut ctx).unwrap();
    let stored_at = fs.metadata(C, &layout::manifest(&key(1))).unwrap().modified;
    ctx.now = Timestamp::from_seconds(5_000_000);
    assert_eq!(cache.lookup_manifest(&key(1)).unwrap().0, LookupStatus::Hit);
    let unchanged = fs.metadata(C, &layout::manifest(&key(1))).unwrap().modified;
    assert_eq!(unchanged, stored_at, "lookup_manifest writes nothing");

    let (status, bytes) = cache.use_manifest(&key(1), &mut ctx).unwrap();
    assert_eq!(status, LookupStatus::Hit);
    assert_eq!(
        bytes.as_deref(),
        fs.read_file(C, &layout::manifest(&key(1))).as_deref()
    );
    let meta = fs.metadata(C, &layout::manifest(&key(1))).unwrap();
    assert_eq!(meta.modified, ctx.now);

    let (status, bytes) = cache.use_manifest(&key(2), &mut ctx).unwrap();
    assert_eq!((status, bytes), (LookupStatus::MissNoEntry, None));
}

#[test]
fn op_3_tampered_blob_of_same_size_aborts_before_publishing() {
    let (fs, cache) = setup();
    let outputs = write_outputs(&fs);
    store(&cache, &key(1), &outputs, &mut ctx()).unwrap();
    wipe_workspace(&fs);
    let _ = tamper_blob(&fs, &key(1), b"same bytes\n", 0);
    assert_eq!(cache.lookup_status(&key(1)), Ok(LookupStatus::Hit));
    let (result, out, err) = restore(&cache, &key(1), &mut ctx());
    assert_eq!(result, Ok(RestoreOutcome::Miss(LookupStatus::MissCorrupt)));
    assert!(out.is_empty() && err.is_empty());
    assert!(workspace_files(&fs).is_empty());
    assert!(scratch_left(&fs).is_empty());
}

#[test]
fn op_3_and_safe_2_symlinked_ancestor_is_refused() {
    let (fs, cache) = setup();
    let outputs = write_outputs(&fs);
    store(&cache, &key(1), &outputs, &mut ctx()).unwrap();
    wipe_workspace(&fs);
    fs.symlink(W, "out", "/etc").unwrap();
    let (result, _, _) = restore(&cache, &key(1), &mut ctx());
    assert!(
        matches!(
            result,
            Err(CacheError::UnsafeTarget { ref blocker, kind: FileKind::Symlink, .. }) if blocker == "/out"
        ),
        "{result:?}"
    );
    assert!(workspace_files(&fs).is_empty());
    assert!(scratch_left(&fs).is_empty());

    // A deeper ancestor that only pretends to be a directory.
    let (fs, cache) = setup();
    let outputs = write_outputs(&fs);
    store(&cache, &key(1), &outputs, &mut ctx()).unwrap();
    fs.pretend_symlink(W, "out/deep").unwrap();
    let (result, _, _) = restore(&cache, &key(1), &mut ctx());
    assert!(
        matches!(result, Err(CacheError::UnsafeTarget { .. })),
        "{result:?}"
    );
}

#[test]
fn op_3_target_that_is_a_directory_is_refused_before_writing() {
    let (fs, cache) = setup();
    let outputs = write_outputs(&fs);
    store(&cache, &key(1), &outputs, &mut ctx()).unwrap();
    wipe_workspace(&fs);
    fs.create_dir_all(W, "out/empty").unwrap();
    let (result, _, _) = restore(&cache, &key(1), &mut ctx());
    assert!(matches!(
        result,
        Err(CacheError::UnsafeTarget {
            kind: FileKind::Dir,
            ..
        })
    ));
    assert!(workspace_files(&fs).is_empty());
}

#[test]
fn op_3_restore_overwrites_existing_targets_and_symlinks_without_following() {
    let (fs, cache) = setup();
    let outputs = write_outputs(&fs);
    let before = workspace_files(&fs);
    store(&cache, &key(1), &outputs, &mut ctx()).unwrap();
    fs.remove_file(W, "out/app.bin").unwrap();
    fs.write_file(W, "secret", b"do not touch", 0o600).unwrap();
    fs.symlink(W, "out/app.bin", "../secret").unwrap();
    fs.remove_file(W, "out/copy.txt").unwrap();
    fs.write_file(W, "out/copy.txt", b"stale", 0o600).unwrap();
    let (result, ..) = restore(&cache, &key(1), &mut ctx());
    assert!(matches!(result, Ok(RestoreOutcome::Restored { .. })));
    let mut after = workspace_files(&fs);
    after.retain(|(path, ..)| path != "secret");
    assert_eq!(after, before);
    assert_eq!(fs.read_file(W, "secret").unwrap(), b"do not touch");
}

/// A machine whose workspace held the outputs `write` makes, stored under
/// `key(1)` and then wiped, as a clean leaves it before a hit. Returns the
/// workspace's files as they were.
fn stored_then_wiped(write: fn(&MemFs) -> Vec<&'static str>) -> (MemFs, Cache<MemFs>, Files) {
    let (fs, cache) = setup();
    let outputs = write(&fs);
    let before = workspace_files(&fs);
    store(&cache, &key(1), &outputs, &mut ctx()).unwrap();
    wipe_workspace(&fs);
    (fs, cache, before)
}

/// How many filesystem calls a restore of `key(1)` makes on a machine
/// that `stored_then_wiped(write)` set up.
fn calls_of_a_restore(write: fn(&MemFs) -> Vec<&'static str>) -> u64 {
    let (fs, cache, _) = stored_then_wiped(write);
    let start = fs.op_count();
    restore(&cache, &key(1), &mut ctx()).0.unwrap();
    fs.op_count() - start
}

#[test]
fn op_3_cache_on_another_filesystem_restores_by_copy() {
    let (fs, cache, before) = stored_then_wiped(write_outputs);
    fs.set_cross_device(true);
    let (result, out, _) = restore(&cache, &key(1), &mut ctx());
    assert!(
        matches!(result, Ok(RestoreOutcome::Restored { outputs: 4, .. })),
        "{result:?}"
    );
    assert_eq!(out, b"out stream\n");
    assert_eq!(workspace_files(&fs), before);
}

#[test]
fn op_3_a_failure_at_any_step_never_tears_a_target() {
    let total = calls_of_a_restore(write_outputs);
    for n in 0..total {
        let (fs, cache, expected) = stored_then_wiped(write_outputs);
        fs.fail_at(n, ErrorKind::Other);
        let (result, ..) = restore(&cache, &key(1), &mut ctx());
        // Every file present is complete, with its final mode.
        for file in workspace_files(&fs) {
            assert!(expected.contains(&file), "op {n}: torn {file:?}");
        }
        if matches!(result, Ok(RestoreOutcome::Restored { .. })) {
            assert_eq!(workspace_files(&fs), expected, "op {n}");
        }
        // The failure hit at most one call; cleanup of the scratch dir
        // then succeeds unless it was that call.
        let left = scratch_left(&fs);
        assert!(left.len() <= 1 || result.is_ok(), "op {n}: {left:?}");
    }
}

/// `write_outputs` plus one output at the top of the workspace, which is
/// never below a missing directory.
fn write_outputs_and_a_top_file(fs: &MemFs) -> Vec<&'static str> {
    let mut outputs = write_outputs(fs);
    fs.write_file(W, "log.txt", b"top\n", 0o644).unwrap();
    outputs.push("/log.txt");
    outputs
}

#[test]
fn op_3_outputs_below_a_missing_directory_appear_together() {
    // The process is killed at every call of the restore in turn: `out/`
    // (four outputs, one two directories deeper) is either absent or
    // whole, never part of it, as it is renamed into place at once.
    let total = calls_of_a_restore(write_outputs_and_a_top_file);
    for n in 0..=total {
        let (fs, cache, expected) = stored_then_wiped(write_outputs_and_a_top_file);
        let expected_out: Vec<_> = expected
            .into_iter()
            .filter(|(path, ..)| path.starts_with("out/"))
            .collect();
        fs.crash_at(fs.op_count() + n);
        let _ = restore(&cache, &key(1), &mut ctx());
        fs.recover(crate::memfs::CrashMode::ProcessKill);
        let out: Vec<_> = workspace_files(&fs)
            .into_iter()
            .filter(|(path, ..)| path.starts_with("out/"))
            .collect();
        assert!(
            out.is_empty() || out == expected_out,
            "killed at call {n} of {total}: out/ holds {:?}",
            out.iter().map(|(path, ..)| path).collect::<Vec<_>>()
        );
    }
}

/// Runs every task, then, once the restore is staging (its scratch
/// directory exists: the check of the targets is over), plays another
/// process that creates `out/` and a file of its own in it before the
/// restore publishes.
struct ThenAnotherProcessMakesOut;

impl Tasks<MemFs> for ThenAnotherProcessMakesOut {
    fn parallelism(&self) -> usize {
        1
    }

    fn run(&self, fs: &MemFs, tasks: &mut [&mut (dyn FnMut(&MemFs) + Send)]) {
        for task in tasks.iter_mut() {
            task(fs);
        }
        let staging = fs
            .tree(C)
            .iter()
            .any(|(path, ..)| path.starts_with(".restore-"));
        if staging && !fs.exists(W, "out") {
            fs.write_file(W, "out/theirs", b"not the cache's", 0o644)
                .unwrap();
        }
    }
}

#[test]
fn op_3_a_missing_directory_made_meanwhile_is_filled_never_replaced() {
    // `out/` was missing at the check and exists when the restore
    // publishes: the outputs go into it one by one, and what the other
    // process put there stays.
    let (fs, cache, mut expected) = stored_then_wiped(write_outputs);
    let cache = cache.with_tasks(ThenAnotherProcessMakesOut);
    let (result, out, _) = restore(&cache, &key(1), &mut ctx());
    assert!(
        matches!(result, Ok(RestoreOutcome::Restored { outputs: 4, .. })),
        "{result:?}"
    );
    assert_eq!(out, b"out stream\n");
    expected.push((
        String::from("out/theirs"),
        b"not the cache's".to_vec(),
        0o644,
    ));
    expected.sort();
    let mut after = workspace_files(&fs);
    after.sort();
    assert_eq!(after, expected);
    assert!(scratch_left(&fs).is_empty(), "{:?}", scratch_left(&fs));
}

#[test]
fn op_3_without_a_rename_that_never_replaces_missing_directories_fill_one_by_one() {
    // A host without `Replace::Never` (WASI preview 1) cannot publish a
    // directory whole without risking another process's directory; the
    // outputs staged in the mirror are renamed one by one instead.
    let (fs, cache, expected) = stored_then_wiped(write_outputs_and_a_top_file);
    fs.set_rename_no_replace_supported(false);
    let (result, ..) = restore(&cache, &key(1), &mut ctx());
    assert!(
        matches!(result, Ok(RestoreOutcome::Restored { outputs: 5, .. })),
        "{result:?}"
    );
    assert_eq!(workspace_files(&fs), expected);
    assert!(scratch_left(&fs).is_empty(), "{:?}", scratch_left(&fs));
}

#[test]
fn op_4_clear_removes_everything_and_absent_root_is_fine() {
    let (fs, cache) = setup();
    let mut ctx = ctx();
    let outputs = write_outputs(&fs);
    store(&cache, &key(1), &outputs, &mut ctx).unwrap();
    store(&cache, &key(2), &outputs, &mut ctx).unwrap();
    fs.create_dir_all(C, ".restore-junk/x").unwrap();
    fs.write_file(C, "README", b"foreign", 0o644).unwrap();
    let report = cache.clear(&mut ctx).unwrap();
    assert_eq!(report.entries_removed, 2);
    assert_eq!(report.other_removed, 2);
    assert!(report.failures.is_empty());
    assert!(fs.tree(C).is_empty(), "{:?}", fs.tree(C));
    assert_eq!(cache.clear(&mut ctx).unwrap(), ClearReport::default());
}

#[test]
fn op_4_clear_also_removes_shards_a_clean_left_empty() {
    let (fs, cache) = setup();
    let mut ctx = ctx();
    let outputs = write_outputs(&fs);
    store(&cache, &key(1), &outputs, &mut ctx).unwrap();
    fs.write_file(C, &layout::manifest(&key(1)), b"{ not json", 0o644)
        .unwrap();
    let soft = CleanModes {
        soft: true,
        ..CleanModes::default()
    };
    cache.clean(&soft, &mut ctx).unwrap();
    // The shard is all that is left, and it holds nothing.
    assert_eq!(
        fs.tree(C).into_iter().map(|e| e.0).collect::<Vec<_>>(),
        [String::from(layout::shard(&key(1)).as_str())]
    );
    let report = cache.clear(&mut ctx).unwrap();
    assert!(report.failures.is_empty());
    assert!(fs.tree(C).is_empty(), "{:?}", fs.tree(C));
}

#[test]
fn op_5_soft_clean_removes_corrupt_stale_and_old_scratch_only() {
    let (fs, cache) = setup();
    let mut ctx = ctx();
    let outputs = write_outputs(&fs);
    store(&cache, &key(1), &outputs, &mut ctx).unwrap();
    store(&cache, &key(2), &outputs, &mut ctx).unwrap();
    let sha = Cache::with_options(
        fs.clone(),
        Options {
            hash_function: HashFunction::Sha256,
            ..Options::default()
        },
    );
    store(&sha, &key(3), &outputs, &mut ctx).unwrap();
    fs.remove_file(C, &layout::stdout(&key(2))).unwrap();
    fs.set_now(Timestamp::from_seconds(1_000_000 - 7200));
    fs.create_dir_all(C, ".restore-old").unwrap();
    fs.set_now(Timestamp::from_seconds(1_000_000));
    fs.create_dir_all(C, "ab/.tmp-young").unwrap();

    let modes = CleanModes {
        soft: true,
        dry_run: true,
        ..CleanModes::default()
    };
    let dry = cache.clean(&modes, &mut ctx).unwrap();
    let tree_before = fs.tree(C);
    assert_eq!(dry.removed.len(), 3, "{dry:?}");
    assert_eq!(fs.tree(C), tree_before, "dry run changed the cache");

    let modes = CleanModes {
        soft: true,
        ..CleanModes::default()
    };
    let report = cache.clean(&modes, &mut ctx).unwrap();
    let mut reasons: Vec<_> = report.removed.iter().map(|r| r.reason).collect();
    reasons.sort_by_key(|r| r.as_str());
    assert_eq!(
        reasons,
        [
            CleanReason::Corrupt,
            CleanReason::Schema,
            CleanReason::Scratch
        ]
    );
    assert_eq!(report.remaining_entries, 1);
    assert!(report.failures.is_empty());
    assert_eq!(cache.lookup_status(&key(1)), Ok(LookupStatus::Hit));
    assert!(fs.exists(C, "ab/.tmp-young"));
    assert!(!fs.exists(C, ".restore-old"));
}

#[test]
fn op_5_max_age_then_max_size_by_last_use() {
    let (fs, cache) = setup();
    let mut ctx = ctx();
    let outputs = write_outputs(&fs);
    for (i, k) in [key(1), key(2), key(3), key(4)].iter().enumerate() {
        ctx.now = Timestamp::from_seconds(1_000_000 + 100 * i as u64);
        fs.set_now(ctx.now);
        store(&cache, k, &outputs, &mut ctx).unwrap();
    }
    // Key 2 was used most recently; key 3 next.
    ctx.now = Timestamp::from_seconds(2_000_000);
    cache.lookup(&key(3), &mut ctx).unwrap();
    ctx.now = Timestamp::from_seconds(2_000_100);
    cache.lookup(&key(2), &mut ctx).unwrap();
    let one_entry = cache.info().unwrap().total_bytes / 4;

    ctx.now = Timestamp::from_seconds(1_000_000 + 350);
    let modes = CleanModes {
        max_age_seconds: Some(300),
        max_size_bytes: Some(one_entry * 2),
        ..CleanModes::default()
    };
    let report = cache.clean(&modes, &mut ctx).unwrap();
    let removed: Vec<_> = report
        .removed
        .iter()
        .map(|r| (r.path.clone(), r.reason))
        .collect();
    assert_eq!(
        removed,
        [
            (
                String::from(layout::entry_dir(&key(1)).as_str()),
                CleanReason::MaxAge
            ),
            (
                String::from(layout::entry_dir(&key(4)).as_str()),
                CleanReason::MaxSize
            ),
        ]
    );
    assert_eq!(report.remaining_entries, 2);
    assert_eq!(cache.lookup_status(&key(2)), Ok(LookupStatus::Hit));
    assert_eq!(cache.lookup_status(&key(3)), Ok(LookupStatus::Hit));
}

#[test]
fn op_5_entry_used_after_planning_is_kept() {
    let (fs, cache) = setup();
    let mut ctx = ctx();
    let outputs = write_outputs(&fs);
    store(&cache, &key(1), &outputs, &mut ctx).unwrap();
    let planned = super::maintain::ValidEntry {
        key: key(1),
        path: String::from(layout::entry_dir(&key(1)).as_str()),
        created_at_unix: 0,
        last_used: fs.metadata(C, &layout::manifest(&key(1))).unwrap().modified,
        bytes: 0,
    };
    ctx.now = Timestamp::from_seconds(3_000_000);
    cache.lookup(&key(1), &mut ctx).unwrap();
    let mut report = CleanReport::default();
    let kept = cache.clean_valid(planned, CleanReason::MaxSize, false, &mut ctx, &mut report);
    assert!(kept.is_some());
    assert_eq!(report.kept_in_use, 1);
    assert_eq!(cache.lookup_status(&key(1)), Ok(LookupStatus::Hit));
}

#[test]
fn op_6_info_counts_and_writes_nothing() {
    let (fs, cache) = setup();
    let mut ctx = ctx();
    let outputs = write_outputs(&fs);
    store(&cache, &key(1), &outputs, &mut ctx).unwrap();
    store(&cache, &key(2), &outputs, &mut ctx).unwrap();
    let sha = Cache::with_options(
        fs.clone(),
        Options {
            hash_function: HashFunction::Sha256,
            ..Options::default()
        },
    );
    store(&sha, &key(3), &outputs, &mut ctx).unwrap();
    fs.remove_file(C, &layout::stdout(&key(2))).unwrap();
    fs.create_dir_all(C, ".restore-x").unwrap();
    let before = fs.tree(C);
    let info = cache.info().unwrap();
    assert_eq!(fs.tree(C), before);
    assert_eq!(
        (
            info.valid_entries,
            info.corrupt_entries,
            info.schema_entries
        ),
        (1, 1, 1)
    );
    assert_eq!(info.scratch_items, 1);
    let files: u64 = before
        .iter()
        .filter(|(_, kind, ..)| *kind == FileKind::File)
        .map(|(_, _, data, _)| data.len() as u64)
        .sum();
    assert_eq!(info.total_bytes, files);
    assert_eq!(
        info.schemas,
        [
            SchemaCount {
                chapter_revision: 0,
                hash_function: HashFunction::Blake3,
                entries: 2
            },
            SchemaCount {
                chapter_revision: 0,
                hash_function: HashFunction::Sha256,
                entries: 1
            },
        ]
    );
}

#[test]
fn op_7_verify_finds_same_size_tampering_and_evicts_on_request() {
    let (fs, cache) = setup();
    let mut ctx = ctx();
    let outputs = write_outputs(&fs);
    store(&cache, &key(1), &outputs, &mut ctx).unwrap();
    store(&cache, &key(2), &outputs, &mut ctx).unwrap();
    let blob = tamper_blob(&fs, &key(2), b"same bytes\n", 0);

    let report = cache.verify(false, &mut ctx).unwrap();
    assert_eq!((report.checked, report.intact), (2, 1));
    assert_eq!(
        report.damaged,
        [DamagedEntry {
            key: key(2),
            damage: Damage::ContentMismatch {
                path: String::from(blob.as_str())
            },
            evicted: false,
        }]
    );
    assert_eq!(cache.lookup_status(&key(2)), Ok(LookupStatus::Hit));

    let report = cache.verify(true, &mut ctx).unwrap();
    assert!(report.damaged[0].evicted);
    assert_eq!(cache.lookup_status(&key(2)), Ok(LookupStatus::MissNoEntry));
    assert_eq!(cache.lookup_status(&key(1)), Ok(LookupStatus::Hit));
    assert!(scratch_left(&fs).is_empty());
}

#[test]
fn safe_1_remove_tree_handles_deep_debris_without_recursion() {
    const DEPTH: usize = 1000;
    let (fs, cache) = setup();
    let mut path = String::from("ab/.tmp-deep");
    for _ in 0..DEPTH {
        path.push_str("/d");
    }
    fs.create_dir_all(C, &path).unwrap();
    fs.write_file(C, &alloc::format!("{path}/f"), b"x", 0o644)
        .unwrap();
    let report = cache
        .clean(
            &CleanModes {
                soft: true,
                ..CleanModes::default()
            },
            &mut DeterministicContext {
                now: Timestamp::from_seconds(u64::MAX / 2),
                next_suffix: 0,
            },
        )
        .unwrap();
    assert_eq!(report.removed.len(), 1, "{report:?}");
    assert!(!fs.exists(C, "ab/.tmp-deep"));
}

/// Outputs larger than the copy buffer, so that the host's copy and
/// digest are asked for, next to small ones that always stream.
fn write_large_outputs(fs: &MemFs) -> Vec<&'static str> {
    let big: Vec<u8> = (0..20_000u32).map(|i| (i * 7 % 251) as u8).collect();
    fs.write_file(W, "out/big.bin", &big, 0o755).unwrap();
    let mut bigger = big.clone();
    bigger.extend_from_slice(&big);
    fs.write_file(W, "out/sub/bigger.bin", &bigger, 0o644)
        .unwrap();
    let mut outputs = write_outputs(fs);
    outputs.extend(["/out/big.bin", "/out/sub/bigger.bin"]);
    outputs
}

fn small_buffer_cache(fs: &MemFs) -> Cache<MemFs> {
    Cache::with_options(
        fs.clone(),
        Options {
            copy_buffer_bytes: 4096,
            ..Options::default()
        },
    )
}

#[test]
fn op_2_and_op_3_host_copies_and_streamed_copies_give_the_same_cache_and_workspace() {
    let mut results = Vec::new();
    for host_copies in [true, false] {
        let fs = MemFs::new();
        fs.set_now(Timestamp::from_seconds(1_000_000));
        fs.set_copy_file_supported(host_copies);
        let cache = small_buffer_cache(&fs);
        let outputs = write_large_outputs(&fs);
        let before = workspace_files(&fs);
        assert_eq!(
            store(&cache, &key(1), &outputs, &mut ctx()),
            Ok(StoreOutcome::Stored)
        );
        wipe_workspace(&fs);
        let (result, ..) = restore(&cache, &key(1), &mut ctx());
        assert!(matches!(
            result,
            Ok(RestoreOutcome::Restored { outputs: 6, .. })
        ));
        assert_eq!(
            workspace_files(&fs),
            before,
            "CLAIM-1, host copies: {host_copies}"
        );
        assert!(scratch_left(&fs).is_empty());
        results.push(fs.tree(C));
    }
    assert_eq!(
        results[0], results[1],
        "DISK-1..5: same cache tree either way"
    );
}

#[test]
fn op_2_outputs_below_the_buffer_are_written_under_their_hash_at_once_the_rest_streamed() {
    // One byte short of the copy buffer goes whole (no temporary name),
    // the buffer's size and more stream through `.partial`; both kinds,
    // and a twin of each, give the same blobs and restore the same bytes.
    let fs = MemFs::new();
    let cache = small_buffer_cache(&fs);
    let sizes = [0usize, 1, 4095, 4096, 4097, 9000];
    let mut outputs = Vec::new();
    for (index, size) in sizes.iter().enumerate() {
        let bytes: Vec<u8> = (0..*size).map(|i| (i % 253) as u8 ^ index as u8).collect();
        for twin in ["a", "b"] {
            let path = alloc::format!("out/{twin}{index}");
            fs.write_file(W, &path, &bytes, 0o644).unwrap();
            outputs.push(alloc::format!("/{path}"));
        }
    }
    let outputs: Vec<&str> = outputs.iter().map(String::as_str).collect();
    let before = workspace_files(&fs);
    assert_eq!(
        store(&cache, &key(1), &outputs, &mut ctx()),
        Ok(StoreOutcome::Stored)
    );
    let mut blobs = Vec::new();
    fs.read_dir(C, &layout::outputs_dir(&key(1)), &mut |name, _| {
        blobs.push(String::from(name));
        ControlFlow::Continue(())
    })
    .unwrap();
    // Six distinct contents; each pair of twins shares one blob.
    assert_eq!(blobs.len(), sizes.len(), "{blobs:?}");
    assert!(blobs.iter().all(|b| crate::hex::is_lowercase_hex_64(b)));
    wipe_workspace(&fs);
    let (result, ..) = restore(&cache, &key(1), &mut ctx());
    assert!(
        matches!(result, Ok(RestoreOutcome::Restored { outputs: 12, .. })),
        "{result:?}"
    );
    assert_eq!(workspace_files(&fs), before, "CLAIM-1");
    assert!(scratch_left(&fs).is_empty());

    // Ten outputs one byte short of the buffer cost at least one operation
    // fewer each (the rename of `.partial`) than ten of the buffer's size.
    let ops_to_store = |size: usize| {
        let fs = MemFs::new();
        let cache = small_buffer_cache(&fs);
        let mut outputs = Vec::new();
        for index in 0..10u8 {
            let path = alloc::format!("out/{index}");
            fs.write_file(W, &path, &alloc::vec![index; size], 0o644)
                .unwrap();
            outputs.push(alloc::format!("/{path}"));
        }
        let outputs: Vec<&str> = outputs.iter().map(String::as_str).collect();
        let before = fs.op_count();
        store(&cache, &key(1), &outputs, &mut ctx()).unwrap();
        fs.op_count() - before
    };
    let (small, large) = (ops_to_store(4095), ops_to_store(4096));
    assert!(small + 10 <= large, "small {small}, large {large}");
}

#[test]
fn op_2_an_output_that_grows_past_the_buffer_while_stored_small_is_stored_whole() {
    // Stat-ed at 4,000 bytes (small for a 4,096-byte buffer), 4,200 by the
    // time it is read: the small path writes nothing and the output is
    // copied from the start as a large one, so the entry holds what the
    // file holds, never its first 4,096 bytes under a wrong size.
    let fs = MemFs::new();
    let cache = small_buffer_cache(&fs);
    let first: Vec<u8> = (0..4000u32).map(|i| (i % 251) as u8).collect();
    fs.write_file(W, "out/grows", &first, 0o644).unwrap();
    let extra = [7u8; 200];
    fs.grow_on_next_read(W, "out/grows", &extra).unwrap();
    assert_eq!(
        store(&cache, &key(1), &["/out/grows"], &mut ctx()),
        Ok(StoreOutcome::Stored)
    );
    let whole = [first.as_slice(), &extra].concat();
    let mut blobs = Vec::new();
    fs.read_dir(C, &layout::outputs_dir(&key(1)), &mut |name, _| {
        blobs.push(String::from(name));
        ControlFlow::Continue(())
    })
    .unwrap();
    let hash = hash::digest(HashFunction::Blake3, &whole);
    assert_eq!(blobs, [String::from(hash.to_hex().as_str())]);
    assert_eq!(
        fs.read_file(C, &layout::blob(&key(1), &hash)),
        Some(whole.clone())
    );
    wipe_workspace(&fs);
    let (result, ..) = restore(&cache, &key(1), &mut ctx());
    assert!(
        matches!(result, Ok(RestoreOutcome::Restored { outputs: 1, .. })),
        "{result:?}"
    );
    assert_eq!(fs.read_file(W, "out/grows"), Some(whole));
    assert!(scratch_left(&fs).is_empty());

    // Nor does a push get the first 4,096 bytes to hold (REMOTE-2).
    fs.write_file(W, "out/grows", &first, 0o644).unwrap();
    fs.grow_on_next_read(W, "out/grows", &extra).unwrap();
    let mut held = HeldContents::up_to(1 << 20, 1 << 20);
    let mut outputs = ["/out/grows"];
    let outcome = cache
        .store_holding(
            &key(2),
            &mut outputs,
            &b""[..],
            &b""[..],
            &mut ctx(),
            &mut held,
        )
        .unwrap();
    assert_eq!(outcome, StoreOutcome::Stored);
    // Only outputs read whole are held, and this one was copied as large.
    assert!(held.is_empty(), "{held:?}");
}

#[test]
fn op_3_tampered_large_blob_is_caught_whoever_copies() {
    for host_copies in [true, false] {
        let fs = MemFs::new();
        fs.set_copy_file_supported(host_copies);
        let cache = small_buffer_cache(&fs);
        let outputs = write_large_outputs(&fs);
        store(&cache, &key(1), &outputs, &mut ctx()).unwrap();
        wipe_workspace(&fs);
        let big: Vec<u8> = (0..20_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let _ = tamper_blob(&fs, &key(1), &big, 19_999);
        assert_eq!(cache.lookup_status(&key(1)), Ok(LookupStatus::Hit));
        let (result, out, err) = restore(&cache, &key(1), &mut ctx());
        assert_eq!(result, Ok(RestoreOutcome::Miss(LookupStatus::MissCorrupt)));
        assert!(out.is_empty() && err.is_empty());
        assert!(workspace_files(&fs).is_empty(), "nothing published");
        assert!(scratch_left(&fs).is_empty());
    }
}

#[test]
fn op_1_blob_directory_that_is_a_symlink_or_file_is_corrupt() {
    for replace_with_file in [true, false] {
        let (fs, cache) = setup();
        let outputs = write_outputs(&fs);
        store(&cache, &key(1), &outputs, &mut ctx()).unwrap();
        let blobs = layout::outputs_dir(&key(1));
        if replace_with_file {
            cache.remove_tree(C, &blobs).unwrap();
            fs.write_file(C, &blobs, b"not a directory", 0o644).unwrap();
        } else {
            fs.pretend_symlink(C, &blobs).unwrap();
        }
        assert_eq!(cache.lookup_status(&key(1)), Ok(LookupStatus::MissCorrupt));
    }
}

/// A workspace with `count` outputs of distinct contents spread over a few
/// directories, enough to fill several staging buckets.
fn write_many_outputs(fs: &MemFs, count: usize) -> Vec<String> {
    (0..count)
        .map(|i| {
            let path = alloc::format!("out/d{}/f{i:04}", i % 7);
            let contents = alloc::format!("output {i}\n");
            fs.write_file(
                W,
                &path,
                contents.as_bytes(),
                if i % 2 == 0 { 0o600 } else { 0o700 },
            )
            .unwrap();
            alloc::format!("/{path}")
        })
        .collect()
}

#[test]
fn op_3_many_outputs_are_staged_in_buckets_by_any_number_of_tasks() {
    // 300 outputs fill three staging buckets; with three tasks,
    // PretendThreads runs the last one first, and it claims every chunk.
    for parallelism in [1, 2, 3, 8] {
        let (fs, cache) = setup();
        let tasks = PretendThreads::new(parallelism);
        let cache = cache.with_tasks(tasks.clone());
        let outputs = write_many_outputs(&fs, 300);
        let before = workspace_files(&fs);
        let paths: Vec<&str> = outputs.iter().map(String::as_str).collect();
        store(&cache, &key(1), &paths, &mut ctx()).unwrap();
        wipe_workspace(&fs);
        let (result, out, _) = restore(&cache, &key(1), &mut ctx());
        assert_eq!(
            result,
            Ok(RestoreOutcome::Restored {
                outputs: 300,
                stdout_len: 11,
                stderr_len: 11
            }),
            "parallelism {parallelism}"
        );
        assert_eq!(out, b"out stream\n");
        assert_eq!(
            tasks.most_tasks(),
            parallelism.min(3),
            "three buckets to share"
        );
        assert_eq!(workspace_files(&fs), before, "parallelism {parallelism}");
        assert!(scratch_left(&fs).is_empty(), "{:?}", scratch_left(&fs));
    }
}

#[test]
fn op_3_a_bad_blob_in_any_bucket_aborts_before_anything_is_published() {
    for parallelism in [1, 3] {
        for bad in [0, 127, 128, 299] {
            let (fs, cache) = setup();
            let cache = cache.with_tasks(PretendThreads::new(parallelism));
            let outputs = write_many_outputs(&fs, 300);
            let paths: Vec<&str> = outputs.iter().map(String::as_str).collect();
            store(&cache, &key(1), &paths, &mut ctx()).unwrap();
            wipe_workspace(&fs);
            let contents = alloc::format!("output {bad}\n");
            let _ = tamper_blob(&fs, &key(1), contents.as_bytes(), 0);
            assert_eq!(cache.lookup_status(&key(1)), Ok(LookupStatus::Hit));
            let (result, out, err) = restore(&cache, &key(1), &mut ctx());
            let case = alloc::format!("parallelism {parallelism}, bad output {bad}");
            assert_eq!(
                result,
                Ok(RestoreOutcome::Miss(LookupStatus::MissCorrupt)),
                "{case}"
            );
            assert!(out.is_empty() && err.is_empty(), "{case}");
            assert!(workspace_files(&fs).is_empty(), "{case}: nothing published");
            assert!(scratch_left(&fs).is_empty(), "{case}");
        }
    }
}

/// Stores 600 outputs under `k` with `cache` (manifests of that size are
/// checked by several tasks where the filesystem allows), and returns the
/// digest of output `i`'s contents for each `i`.
fn store_many(fs: &MemFs, cache: &Cache<MemFs>, k: &Key) -> Vec<Digest> {
    let outputs = write_many_outputs(fs, 600);
    let paths: Vec<&str> = outputs.iter().map(String::as_str).collect();
    store(cache, k, &paths, &mut ctx()).unwrap();
    (0..600)
        .map(|i| {
            let contents = alloc::format!("output {i}\n");
            hash::digest(cache.options().hash_function, contents.as_bytes())
        })
        .collect()
}

#[test]
fn op_1_blobs_of_a_large_entry_are_checked_by_any_number_of_tasks() {
    type Damage = fn(&MemFs, &str);
    let damages: [(&str, Damage); 3] = [
        ("removed", |fs, blob| fs.remove_file(C, blob).unwrap()),
        ("truncated", |fs, blob| {
            fs.remove_file(C, blob).unwrap();
            fs.write_file(C, blob, b"out", 0o644).unwrap();
        }),
        ("a symlink", |fs, blob| fs.pretend_symlink(C, blob).unwrap()),
    ];
    for parallelism in [1, 2, 3] {
        let (fs, cache) = setup();
        let tasks = PretendThreads::new(parallelism);
        let cache = cache.with_tasks(tasks.clone());
        store_many(&fs, &cache, &key(1));
        assert_eq!(cache.lookup_status(&key(1)), Ok(LookupStatus::Hit));
        assert_eq!(
            tasks.most_tasks(),
            parallelism,
            "the lookup shared its work out"
        );
        for (name, damage) in damages {
            for bad in [0, 63, 64, 599] {
                let (fs, cache) = setup();
                let cache = cache.with_tasks(PretendThreads::new(parallelism));
                let digests = store_many(&fs, &cache, &key(1));
                damage(&fs, &layout::blob(&key(1), &digests[bad]));
                assert_eq!(
                    cache.lookup_status(&key(1)),
                    Ok(LookupStatus::MissCorrupt),
                    "parallelism {parallelism}: blob of output {bad} {name}"
                );
            }
        }
    }
}

#[test]
fn op_1_a_failed_blob_stat_is_an_error_only_for_an_entry_of_this_schema() {
    // Every operation of a lookup fails in turn. For an entry of the active
    // hash function, a failure anywhere is an error (or, once the verdict
    // is in, no failure at all); for an entry of the other one, the
    // outcome is a schema miss unless the failure came before the manifest
    // was read, whatever happened to the blobs.
    let sha256 = Options {
        hash_function: HashFunction::Sha256,
        ..Options::default()
    };
    for parallelism in [1, 3] {
        for (stored_with, expected) in [
            (Options::default(), LookupStatus::Hit),
            (sha256.clone(), LookupStatus::MissSchema),
        ] {
            let (fs, cache) = setup();
            let cache = cache.with_tasks(PretendThreads::new(parallelism));
            let writer = Cache::with_options(fs.clone(), stored_with)
                .with_tasks(PretendThreads::new(parallelism));
            store_many(&fs, &writer, &key(1));
            let start = fs.op_count();
            assert_eq!(cache.lookup_status(&key(1)), Ok(expected));
            let total = fs.op_count() - start;
            let mut blob_errors = 0;
            for n in 0..total {
                fs.fail_at(n, ErrorKind::PermissionDenied);
                match cache.lookup_status(&key(1)) {
                    Ok(status) => assert_eq!(status, expected, "op {n}"),
                    Err(CacheError::Io { path, .. }) => {
                        let blob = path.contains("/outputs");
                        blob_errors += usize::from(blob);
                        assert!(
                            expected == LookupStatus::Hit || !blob,
                            "parallelism {parallelism}, op {n}: {path}"
                        );
                    }
                    Err(other) => panic!("op {n}: {other:?}"),
                }
            }
            assert_eq!(
                blob_errors > 0,
                expected == LookupStatus::Hit,
                "parallelism {parallelism}"
            );
        }
    }
}

/// Writes, without a store, an otherwise complete and valid entry of `k`
/// whose manifest lists `outputs` (path, bytes) in the order given, each
/// blob present; both streams empty.
fn plant_entry(fs: &MemFs, k: &Key, outputs: &[(&str, &[u8])]) {
    let hex = |bytes: &[u8]| hash::digest(HashFunction::Blake3, bytes).to_hex();
    let mut listed = Vec::new();
    for (path, bytes) in outputs {
        let blob = layout::blob(k, &hash::digest(HashFunction::Blake3, bytes));
        if fs.read_file(C, &blob).is_none() {
            fs.write_file(C, &blob, bytes, 0o644).unwrap();
        }
        listed.push(alloc::format!(
            "{{\"workspace_absolute_path\": \"{path}\", \"content_hash\": \"{}\", \"size\": {}, \"mode\": 420}}",
            hex(bytes),
            bytes.len()
        ));
    }
    fs.write_file(C, &layout::stdout(k), b"", 0o644).unwrap();
    fs.write_file(C, &layout::stderr(k), b"", 0o644).unwrap();
    let manifest = alloc::format!(
        "{{\"chapter_revision\": 0, \"hash_function\": \"blake3\", \"key\": \"{}\", \"outputs\": [{}], \"stdout_len\": 0, \"stderr_len\": 0, \"stdout_hash\": \"{}\", \"stderr_hash\": \"{}\", \"exit_status\": 0, \"created_at_unix\": 1}}",
        k.to_hex(),
        listed.join(", "),
        hex(b""),
        hex(b"")
    );
    fs.write_file(C, &layout::manifest(k), manifest.as_bytes(), 0o644)
        .unwrap();
}

/// A machine whose cache directory lies at `cache_dir` inside the
/// workspace, as far as the cache is told (SAFE-8).
fn machine_with_cache_dir(cache_dir: Option<&str>) -> (MemFs, Cache<MemFs>) {
    let (fs, _) = setup();
    let options = Options {
        cache_dir_in_workspace: cache_dir.map(String::from),
        ..Options::default()
    };
    (fs.clone(), Cache::with_options(fs, options))
}

/// An entry listing `outputs` is corrupt to every reader (SAFE-9): lookup,
/// restore (which writes nothing), info and verify; a soft clean removes
/// it, and a store of the same key replaces it.
fn assert_corrupt_entry(outputs: &[(&str, &[u8])], cache_dir: Option<&str>) {
    let (fs, cache) = machine_with_cache_dir(cache_dir);
    let mut ctx = ctx();
    let k = key(5);
    plant_entry(&fs, &k, outputs);
    let what = alloc::format!("{outputs:?} with the cache at {cache_dir:?}");
    assert_eq!(
        cache.lookup_status(&k),
        Ok(LookupStatus::MissCorrupt),
        "{what}"
    );
    assert_eq!(cache.lookup(&k, &mut ctx), Ok(false), "{what}");
    let (result, out, err) = restore(&cache, &k, &mut ctx);
    assert_eq!(
        result,
        Ok(RestoreOutcome::Miss(LookupStatus::MissCorrupt)),
        "{what}"
    );
    assert!(out.is_empty() && err.is_empty(), "{what}");
    assert!(fs.tree(W).is_empty(), "{what}: {:?}", fs.tree(W));
    assert_eq!(cache.info().unwrap().corrupt_entries, 1, "{what}");
    let report = cache.verify(false, &mut ctx).unwrap();
    assert_eq!(
        report.damaged,
        [DamagedEntry {
            key: k,
            damage: Damage::Corrupt,
            evicted: false,
        }],
        "{what}"
    );
    fs.write_file(W, "fresh", b"fresh\n", 0o644).unwrap();
    assert_eq!(
        store(&cache, &k, &["/fresh"], &mut ctx),
        Ok(StoreOutcome::Stored),
        "{what}"
    );
    assert_eq!(cache.lookup_status(&k), Ok(LookupStatus::Hit), "{what}");
}

/// The same entry shape with outputs a store could have written: a hit
/// that restores, so that the corrupt cases above fail for their paths
/// alone.
fn assert_hit_entry(outputs: &[(&str, &[u8])], cache_dir: Option<&str>) {
    let (fs, cache) = machine_with_cache_dir(cache_dir);
    let k = key(5);
    plant_entry(&fs, &k, outputs);
    assert_eq!(
        cache.lookup_status(&k),
        Ok(LookupStatus::Hit),
        "{outputs:?}"
    );
    let (result, ..) = restore(&cache, &k, &mut ctx());
    assert_eq!(
        result,
        Ok(RestoreOutcome::Restored {
            outputs: outputs.len() as u64,
            stdout_len: 0,
            stderr_len: 0
        }),
        "{outputs:?}"
    );
    for (path, bytes) in outputs {
        assert_eq!(fs.read_file(W, &path[1..]).unwrap(), *bytes, "{path}");
    }
}

#[test]
fn safe_9_outputs_a_store_could_write_together_are_a_hit_in_any_order() {
    assert_hit_entry(
        &[("/out/a", b"a"), ("/out/a!x", b"x"), ("/out/ab", b"b")],
        None,
    );
    assert_hit_entry(
        &[("/out/b", b"b"), ("/out/a.b", b"x"), ("/out/a", b"a")],
        None,
    );
    assert_hit_entry(&[("/.gitignore", b"g"), ("/x.git/y", b"y")], None);
    assert_hit_entry(&[("/.cachet/x", b"x")], None);
    assert_hit_entry(
        &[("/.cachetx", b"x"), ("/.haz/other", b"o")],
        Some(".haz/cache"),
    );
}

#[test]
fn safe_5_an_entry_listing_a_path_twice_is_corrupt() {
    assert_corrupt_entry(&[("/out/a", b"a"), ("/out/a", b"a")], None);
    assert_corrupt_entry(&[("/out/a", b"a"), ("/out/a", b"other")], None);
    // Out of order, so the reader has to sort to see it.
    assert_corrupt_entry(
        &[("/out/b", b"b"), ("/out/a", b"a"), ("/out/b", b"b")],
        None,
    );
}

#[test]
fn safe_6_an_entry_listing_a_path_below_another_output_is_corrupt() {
    assert_corrupt_entry(&[("/out/a", b"a"), ("/out/a/b", b"b")], None);
    assert_corrupt_entry(
        &[("/out/a", b"a"), ("/out/a!x", b"x"), ("/out/a/b/c", b"c")],
        None,
    );
    assert_corrupt_entry(
        &[("/out/a/b", b"b"), ("/out/z", b"z"), ("/out/a", b"a")],
        None,
    );
}

#[test]
fn safe_7_an_entry_with_an_output_in_a_git_directory_is_corrupt() {
    assert_corrupt_entry(&[("/.git/hooks/pre-commit", b"#!/bin/sh\n")], None);
    assert_corrupt_entry(
        &[("/out/a", b"a"), ("/vendor/lib/.git", b"gitdir: x\n")],
        None,
    );
}

#[test]
fn safe_8_an_entry_with_an_output_in_or_above_the_cache_directory_is_corrupt() {
    assert_corrupt_entry(&[("/.cachet/ab/planted", b"x")], Some(".cachet"));
    assert_corrupt_entry(&[("/.cachet", b"x")], Some(".cachet"));
    assert_corrupt_entry(&[("/.haz", b"x")], Some(".haz/cache"));
    assert_corrupt_entry(
        &[("/out/a", b"a"), ("/.haz/cache/x", b"x")],
        Some(".haz/cache"),
    );
}

#[test]
fn safe_5_to_8_a_store_refuses_outputs_it_could_not_list_together() {
    let (fs, cache) = machine_with_cache_dir(Some(".cachet"));
    let mut ctx = ctx();
    fs.write_file(W, "a", b"a", 0o644).unwrap();
    fs.write_file(W, ".git/config", b"c", 0o644).unwrap();
    fs.write_file(W, ".cachet/x", b"x", 0o644).unwrap();
    fs.write_file(W, "d/e", b"e", 0o644).unwrap();
    let refused = |outputs: &[&str], ctx: &mut DeterministicContext| {
        store(&cache, &key(1), outputs, ctx).unwrap_err()
    };
    assert_eq!(
        refused(&["/d/e", "/d"], &mut ctx),
        CacheError::ConflictingOutput {
            path: String::from("/d/e"),
            conflict: OutputConflict::Nested
        }
    );
    assert_eq!(
        refused(&["/a", "/.git/config"], &mut ctx),
        CacheError::ConflictingOutput {
            path: String::from("/.git/config"),
            conflict: OutputConflict::InGitDir
        }
    );
    assert_eq!(
        refused(&["/a", "/.cachet/x"], &mut ctx),
        CacheError::ConflictingOutput {
            path: String::from("/.cachet/x"),
            conflict: OutputConflict::InCacheDir
        }
    );
    assert_eq!(cache.lookup_status(&key(1)), Ok(LookupStatus::MissNoEntry));
    assert!(scratch_left(&fs).is_empty());
}
