//! The file-hash memo end to end (MEMO-1..6): it saves reading files on a
//! later run, and it never changes a key.

use core::time::Duration;
use std::fs::{self, File, FileTimes};
use std::path::Path;
use std::thread::sleep;

use cachet_core::layout;
use cachet_core::memo::RACY_WINDOW_NANOS;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

use crate::support::Sandbox;

/// Long enough for a file just written to leave the racy window (MEMO-4),
/// so that the next key records it.
fn age() {
    sleep(Duration::from_nanos(RACY_WINDOW_NANOS) + Duration::from_millis(20));
}

struct KeyRun {
    key: String,
    hashed: u64,
    from_memo: u64,
}

fn key_of(sandbox: &Sandbox, extra: &[&str]) -> KeyRun {
    let mut args = vec!["key", "--json"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--", "true"]);
    let outcome = sandbox.run(&args);
    assert_eq!(outcome.code, 0, "{outcome:?}");
    let json = outcome.json();
    assert!(json["hash_seconds"].as_f64().unwrap() >= 0.0, "{json}");
    KeyRun {
        key: json["key"].as_str().unwrap().to_owned(),
        hashed: json["files_hashed"].as_u64().unwrap(),
        from_memo: json["files_from_memo"].as_u64().unwrap(),
    }
}

fn memo_path(sandbox: &Sandbox) -> std::path::PathBuf {
    sandbox.ws.join(".cachet").join(layout::MEMO_FILE)
}

#[test]
fn memo_3_a_second_key_reads_no_unchanged_file_and_no_memo_reads_all() {
    let sandbox = Sandbox::new();
    for name in ["a", "b", "c"] {
        sandbox.write(&format!("src/{name}"), name.as_bytes());
    }
    age();
    let first = key_of(&sandbox, &[]);
    assert_eq!((first.hashed, first.from_memo), (3, 0));
    assert!(memo_path(&sandbox).is_file(), "MEMO-1: the memo is written");
    let second = key_of(&sandbox, &[]);
    assert_eq!((second.hashed, second.from_memo), (0, 3));
    assert_eq!(second.key, first.key);

    let without = key_of(&sandbox, &["--no-memo"]);
    assert_eq!((without.hashed, without.from_memo), (3, 0));
    assert_eq!(without.key, first.key);
    let mut command = sandbox.cachet();
    command.env("CACHET_NO_MEMO", "1");
    let outcome = crate::support::Outcome::of(
        command
            .args(["key", "--json", "--", "true"])
            .output()
            .unwrap(),
    );
    assert_eq!(outcome.json()["files_from_memo"], 0);

    // One edited file is the only one read again.
    sandbox.write("src/b", b"B");
    let edited = key_of(&sandbox, &[]);
    assert_eq!((edited.hashed, edited.from_memo), (1, 2));
    assert_ne!(edited.key, first.key);
}

#[test]
fn memo_4_a_same_size_edit_with_the_old_mtime_put_back_is_read_again() {
    let sandbox = Sandbox::new();
    sandbox.write("in.txt", b"one");
    age();
    let first = key_of(&sandbox, &[]);
    assert_eq!(key_of(&sandbox, &[]).from_memo, 1);
    let path = sandbox.ws.join("in.txt");
    let modified = fs::metadata(&path).unwrap().modified().unwrap();
    fs::write(&path, b"two").unwrap();
    put_back_mtime(&path, modified);
    let after = key_of(&sandbox, &[]);
    assert_eq!((after.hashed, after.from_memo), (1, 0));
    assert_ne!(after.key, first.key);
    assert_eq!(after.key, key_of(&sandbox, &["--no-memo"]).key);
}

fn put_back_mtime(path: &Path, modified: std::time::SystemTime) {
    File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_times(FileTimes::new().set_modified(modified))
        .unwrap();
}

#[test]
fn memo_5_a_garbage_or_truncated_memo_is_ignored_and_rebuilt() {
    let sandbox = Sandbox::new();
    sandbox.write("a", b"a");
    sandbox.write("b", b"b");
    age();
    let first = key_of(&sandbox, &[]);
    let memo = memo_path(&sandbox);
    let good = fs::read(&memo).unwrap();
    for damaged in [
        b"garbage".to_vec(),
        good[..good.len() - 1].to_vec(),
        Vec::new(),
    ] {
        fs::write(&memo, &damaged).unwrap();
        let again = key_of(&sandbox, &[]);
        assert_eq!(again.key, first.key);
        assert_eq!((again.hashed, again.from_memo), (2, 0));
        assert_eq!(key_of(&sandbox, &[]).from_memo, 2, "rebuilt");
    }
    // A memo that cannot be read at all (a directory in its place) costs
    // a re-hash, never an error.
    fs::remove_file(&memo).unwrap();
    fs::create_dir(&memo).unwrap();
    let blocked = key_of(&sandbox, &[]);
    assert_eq!(blocked.key, first.key);
    assert_eq!(blocked.from_memo, 0);
}

#[test]
fn memo_6_a_write_removes_scratch_files_abandoned_for_an_hour_and_keeps_recent_ones() {
    let sandbox = Sandbox::new();
    sandbox.write("a", b"a");
    age();
    key_of(&sandbox, &[]);
    let dir = memo_path(&sandbox).parent().unwrap().to_path_buf();
    let abandoned = dir.join(".file-hashes-DEADxx");
    let recent = dir.join(".file-hashes-LIVExx");
    fs::write(&abandoned, b"torn").unwrap();
    fs::write(&recent, b"being written").unwrap();
    put_back_mtime(
        &abandoned,
        std::time::SystemTime::now() - Duration::from_secs(2 * 60 * 60),
    );
    // Something new to record, so that the memo is written.
    sandbox.write("b", b"b");
    age();
    key_of(&sandbox, &[]);
    assert!(
        !abandoned.exists(),
        "MEMO-6: a scratch file two hours old is removed"
    );
    assert!(
        recent.exists(),
        "a scratch file a live writer may own is kept"
    );
}

#[test]
fn memo_1_info_and_clean_leave_the_memo_alone_and_clear_removes_it() {
    let sandbox = Sandbox::new();
    sandbox.write("a", b"a");
    age();
    key_of(&sandbox, &[]);
    let memo = memo_path(&sandbox);
    assert!(memo.is_file());
    let info = sandbox.run(&["info", "--json"]).json();
    assert_eq!(info["foreign_items"], 0, "{info}");
    assert_eq!(info["corrupt_entries"], 0, "{info}");
    assert_eq!(info["scratch_items"], 0, "{info}");
    let clean = sandbox.run(&["clean", "--soft", "--max-size", "0", "--json"]);
    assert_eq!(clean.code, 0, "{clean:?}");
    assert!(memo.is_file());
    assert_eq!(sandbox.run(&["clear"]).code, 0);
    assert!(!memo.exists());
}

#[derive(Clone, Debug)]
enum Edit {
    /// New bytes, of another length.
    Rewrite(usize, Vec<u8>),
    /// Same length, then the old modification time put back (`touch -r`).
    SameSizeKeepMtime(usize),
    Rename(usize, usize),
    Delete(usize),
    /// Delete, then create anew (the inode may be reused).
    Recreate(usize, Vec<u8>),
    /// Let the racy window pass, so that the next key records files.
    Age,
}

fn edit() -> impl Strategy<Value = Edit> {
    let bytes = proptest::collection::vec(any::<u8>(), 0..16);
    prop_oneof![
        (0..4usize, bytes.clone()).prop_map(|(i, b)| Edit::Rewrite(i, b)),
        (0..4usize).prop_map(Edit::SameSizeKeepMtime),
        (0..4usize, 0..4usize).prop_map(|(a, b)| Edit::Rename(a, b)),
        (0..4usize).prop_map(Edit::Delete),
        (0..4usize, bytes).prop_map(|(i, b)| Edit::Recreate(i, b)),
        Just(Edit::Age),
        Just(Edit::Age),
    ]
}

fn apply(ws: &Path, edit: &Edit) {
    let file = |i: &usize| ws.join(format!("f{i}"));
    match edit {
        Edit::Rewrite(i, bytes) => {
            let path = file(i);
            let mut bytes = bytes.clone();
            if fs::read(&path).is_ok_and(|old| old.len() == bytes.len()) {
                bytes.push(b'+');
            }
            fs::write(path, bytes).unwrap();
        }
        Edit::SameSizeKeepMtime(i) => {
            let path = file(i);
            if let Ok(old) = fs::read(&path) {
                let modified = fs::metadata(&path).unwrap().modified().unwrap();
                let flipped: Vec<u8> = old.iter().map(|b| b ^ 0x55).collect();
                fs::write(&path, flipped).unwrap();
                put_back_mtime(&path, modified);
            }
        }
        Edit::Rename(a, b) => {
            let _ = fs::rename(file(a), file(b));
        }
        Edit::Delete(i) => {
            let _ = fs::remove_file(file(i));
        }
        Edit::Recreate(i, bytes) => {
            let _ = fs::remove_file(file(i));
            fs::write(file(i), bytes).unwrap();
        }
        Edit::Age => age(),
    }
}

/// MEMO-3..5: whatever happens to the files, the key computed with the
/// memo equals the key computed without it. The memo must actually be
/// used along the way, or this would prove nothing.
#[test]
fn memo_never_changes_a_key_whatever_the_edits() {
    let mut runner = TestRunner::new(Config {
        cases: 24,
        failure_persistence: None,
        ..Config::default()
    });
    let used = core::cell::Cell::new(0u64);
    let strategy = (
        proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..16), 4),
        proptest::collection::vec(edit(), 1..10),
    );
    runner
        .run(&strategy, |(initial, edits)| {
            let sandbox = Sandbox::new();
            for (i, bytes) in initial.iter().enumerate() {
                sandbox.write(&format!("f{i}"), bytes);
            }
            age();
            for edit in core::iter::once(&Edit::Age).chain(&edits) {
                apply(&sandbox.ws, edit);
                let with = key_of(&sandbox, &[]);
                let without = key_of(&sandbox, &["--no-memo"]);
                used.set(used.get() + with.from_memo);
                if with.key != without.key {
                    return Err(TestCaseError::fail(format!(
                        "after {edit:?}: {} with the memo, {} without",
                        with.key, without.key
                    )));
                }
            }
            Ok(())
        })
        .unwrap();
    assert!(used.get() > 0, "the memo was never used");
}
