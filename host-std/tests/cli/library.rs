//! The cache operations a task runner uses (issue #15, OP-9..15) through
//! the real `cachet` binary: `list`, `status --json`'s statistics,
//! `remove`, `restore --into`, and `clean --max-size/--percent/--in-use`,
//! including `remove` and `clean --in-use` racing a reader in another
//! process.

use core::sync::atomic::{AtomicBool, Ordering};
use core::time::Duration;
use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;
use std::process::Stdio;
use std::time::Instant;

use serde_json::Value;

use crate::proc;
use crate::support::{Outcome, Sandbox, snapshot};

/// A key of 64 copies of `digit`.
fn key(digit: char) -> String {
    core::iter::repeat_n(digit, 64).collect()
}

/// Writes the workspace's `out/` for entry `digit` and stores it under
/// `key(digit)` with a stdout of `log`, which must be a new entry.
fn store(sandbox: &Sandbox, digit: char, payload: &[u8]) {
    assert_eq!(store_outcome(sandbox, digit, payload), "stored");
}

/// [`store`], returning the outcome (`stored` or `already-present`).
fn store_outcome(sandbox: &Sandbox, digit: char, payload: &[u8]) -> String {
    let _ = fs::remove_dir_all(sandbox.ws.join("out"));
    sandbox.write("out/data.bin", payload);
    sandbox.write("out/small.txt", format!("small {digit}\n").as_bytes());
    fs::set_permissions(
        sandbox.ws.join("out/data.bin"),
        fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    sandbox.write("log", format!("stdout of {digit}\n").as_bytes());
    let outcome = sandbox.run(&[
        "store",
        "--key",
        &key(digit),
        "--stdout-file",
        "log",
        "--output",
        "out",
        "--json",
    ]);
    assert_eq!(outcome.code, 0, "{outcome:?}");
    outcome.json()["outcome"].as_str().unwrap().to_owned()
}

/// Bytes of the regular files in `key`'s entry directory.
fn entry_bytes(sandbox: &Sandbox, key: &str) -> u64 {
    let dir = sandbox.ws.join(".cachet").join(&key[..2]).join(key);
    let mut total = 0;
    let mut stack = vec![dir];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let kind = entry.file_type().unwrap();
            if kind.is_dir() {
                stack.push(entry.path());
            } else if kind.is_file() {
                total += entry.metadata().unwrap().len();
            }
        }
    }
    total
}

fn payload(digit: char, len: usize) -> Vec<u8> {
    (0..len).map(|i| (i as u8) ^ (digit as u8)).collect()
}

#[test]
fn op_9_op_10_list_and_status_give_entry_statistics() {
    let sandbox = Sandbox::new();
    store(&sandbox, 'b', &payload('b', 3000));
    store(&sandbox, 'a', &payload('a', 1000));
    // A corrupt entry is not listed.
    store(&sandbox, 'c', b"c");
    fs::remove_file(sandbox.ws.join(".cachet/cc").join(key('c')).join("stderr")).unwrap();

    let listed = sandbox.run(&["list", "--json"]);
    assert_eq!(listed.code, 0, "{listed:?}");
    let json = listed.json();
    let entries = json["entries"].as_array().unwrap();
    let keys: Vec<&str> = entries.iter().map(|e| e["key"].as_str().unwrap()).collect();
    assert_eq!(keys, [key('a'), key('b')]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    for (entry, digit) in entries.iter().zip(['a', 'b']) {
        assert_eq!(entry["hash_function"], "blake3");
        assert_eq!(entry["outputs"], 2);
        assert_eq!(entry["bytes"], entry_bytes(&sandbox, &key(digit)));
        let created = entry["created_at_unix"].as_u64().unwrap();
        assert!(now.abs_diff(created) < 600, "{entry}");
        assert!(entry["last_used_unix"].as_u64().unwrap() >= created);
    }
    // Members in the documented order.
    let text = listed.stdout_text();
    let at = |member: &str| text.find(&format!("\"{member}\":")).unwrap();
    let order = [
        "entries",
        "key",
        "hash_function",
        "outputs",
        "bytes",
        "created_at_unix",
        "last_used_unix",
        "failures",
    ];
    assert!(
        order.windows(2).all(|pair| at(pair[0]) < at(pair[1])),
        "{text}"
    );
    assert_eq!(json["failures"], Value::Array(vec![]));
    let text = sandbox.run(&["list"]).stdout_text();
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(text.starts_with(&key('a')), "{text}");

    let status = sandbox.run(&["status", "--key", &key('b'), "--json"]);
    assert_eq!(status.code, 0);
    let status = status.json();
    assert_eq!(status["status"], "hit");
    let mut listed_b = entries[1].clone();
    listed_b.as_object_mut().unwrap().remove("key");
    assert_eq!(status["entry"], listed_b);
    let miss = sandbox.run(&["status", "--key", &key('c'), "--json"]);
    assert_eq!(miss.code, 1);
    assert_eq!(miss.json()["status"], "miss-corrupt");
    assert_eq!(miss.json()["entry"], Value::Null);
}

#[test]
fn op_11_remove_exits_0_when_the_entry_was_there_and_1_when_not() {
    let sandbox = Sandbox::new();
    store(&sandbox, 'a', b"a");
    store(&sandbox, 'b', b"b");
    let removed = sandbox.run(&["remove", "--key", &key('a'), "--json"]);
    assert_eq!(removed.code, 0, "{removed:?}");
    assert_eq!(
        removed.stdout_text(),
        format!(
            "{{\n  \"key\": \"{}\",\n  \"removed\": true\n}}\n",
            key('a')
        )
    );
    assert_eq!(sandbox.run(&["status", "--key", &key('a')]).code, 1);
    assert_eq!(sandbox.run(&["status", "--key", &key('b')]).code, 0);
    let again = sandbox.run(&["remove", "--key", &key('a')]);
    assert_eq!((again.code, again.stdout_text().as_str()), (1, "absent\n"));
    let bad = sandbox.run(&["remove", "--key", "nothex"]);
    assert_eq!(bad.code, 65, "{bad:?}");
    // Nothing is left behind in the shard, not even the renamed-aside
    // directory.
    assert_eq!(
        fs::read_dir(sandbox.ws.join(".cachet/aa")).unwrap().count(),
        0
    );
}

#[test]
fn op_12_restore_into_puts_outputs_under_another_root() {
    let sandbox = Sandbox::new();
    store(&sandbox, 'a', &payload('a', 5000));
    let before = snapshot(&sandbox.ws, &[".cachet"]);
    let into = sandbox.root.join("elsewhere");
    fs::create_dir(&into).unwrap();
    let restored = sandbox.run(&["restore", "--key", &key('a'), "--into", "../elsewhere"]);
    assert_eq!(restored.code, 0, "{restored:?}");
    assert_eq!(restored.stdout_text(), "stdout of a\n");
    assert_eq!(
        snapshot(&sandbox.ws, &[".cachet"]),
        before,
        "the workspace changed"
    );
    let restored_files = snapshot(&into, &[]);
    let expected: Vec<_> = before
        .iter()
        .filter(|(path, _)| path.starts_with("out/"))
        .map(|(path, state)| (path.clone(), state.clone()))
        .collect();
    assert_eq!(restored_files.into_iter().collect::<Vec<_>>(), expected);

    // The cache directory is still the workspace's: a miss under --into is
    // a miss there, and --json reports as for a plain restore.
    let json = sandbox.run(&[
        "restore",
        "--key",
        &key('a'),
        "--into",
        "../elsewhere",
        "--json",
    ]);
    assert_eq!(json.code, 0, "{json:?}");
    assert_eq!(json.json()["restored"]["outputs"], 2);
    let miss = sandbox.run(&["restore", "--key", &key('f'), "--into", "../elsewhere"]);
    assert_eq!(miss.code, 1, "{miss:?}");
    let absent = sandbox.run(&["restore", "--key", &key('a'), "--into", "../nowhere"]);
    assert_eq!(absent.code, 66, "{absent:?}");
    assert!(absent.stderr_text().contains("nowhere"), "{absent:?}");
}

#[test]
fn op_12_safe_2_restore_into_refuses_a_symlinked_directory_under_its_root() {
    let sandbox = Sandbox::new();
    store(&sandbox, 'a', b"payload");
    let into = sandbox.root.join("elsewhere");
    fs::create_dir(&into).unwrap();
    symlink(&sandbox.outside, into.join("out")).unwrap();
    let refused = sandbox.run(&[
        "restore",
        "--key",
        &key('a'),
        "--into",
        into.to_str().unwrap(),
    ]);
    assert_eq!(refused.code, 70, "{refused:?}");
    assert!(
        refused.stderr_text().contains("'/out' is a symlink"),
        "{refused:?}"
    );
    assert_eq!(refused.stdout, b"", "no stream is replayed");
    assert_eq!(
        fs::read_dir(&sandbox.outside).unwrap().count(),
        0,
        "wrote through the link"
    );
    assert_eq!(fs::read_dir(&into).unwrap().count(), 1);
}

/// Stores entries `a`..`d` of equal size, used in that order (`a` least
/// recently), and returns the size of one.
fn four_entries(sandbox: &Sandbox) -> u64 {
    for digit in ['a', 'b', 'c', 'd'] {
        store(sandbox, digit, &payload(digit, 2000));
    }
    // Distinct last uses, a before b before c before d, one second apart
    // so that no file system's timestamp granularity ties them.
    for (seconds, digit) in [
        (1_000_000, 'a'),
        (1_000_001, 'b'),
        (1_000_002, 'c'),
        (1_000_003, 'd'),
    ] {
        let manifest = sandbox
            .ws
            .join(".cachet")
            .join(&key(digit)[..2])
            .join(key(digit))
            .join("manifest.json");
        let time = std::time::UNIX_EPOCH + Duration::from_secs(seconds);
        fs::File::options()
            .write(true)
            .open(manifest)
            .unwrap()
            .set_modified(time)
            .unwrap();
    }
    let one = entry_bytes(sandbox, &key('a'));
    assert!(
        ['b', 'c', 'd']
            .iter()
            .all(|d| entry_bytes(sandbox, &key(*d)) == one)
    );
    one
}

fn removed_keys(outcome: &Outcome) -> Vec<String> {
    assert_eq!(outcome.code, 0, "{outcome:?}");
    outcome.json()["removed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| {
            assert_eq!(item["reason"], "max-size");
            item["path"].as_str().unwrap()[3..].to_owned()
        })
        .collect()
}

#[test]
fn op_15_clean_removes_keys_not_in_use_first_then_by_last_use() {
    let sandbox = Sandbox::new();
    let one = four_entries(&sandbox);
    // In use: a and b, the least recently used. Not in use go first,
    // oldest use first (c, d); then a, the older of the two in use.
    sandbox.write(
        "in-use",
        format!("{}\n\n  {}\n", key('a'), key('b').to_uppercase()).as_bytes(),
    );
    let limit = (one + one / 2).to_string();
    let dry = sandbox.run(&[
        "clean",
        "--max-size",
        &limit,
        "--in-use",
        "in-use",
        "--dry-run",
        "--json",
    ]);
    assert_eq!(removed_keys(&dry), [key('c'), key('d'), key('a')]);

    // --percent: 50 % of four entries leaves two; the smaller bound wins.
    let percent = sandbox.run(&[
        "clean",
        "--max-size",
        "1GiB",
        "--percent",
        "50",
        "--in-use",
        "in-use",
        "--dry-run",
        "--json",
    ]);
    assert_eq!(removed_keys(&percent), [key('c'), key('d')]);

    // The list may come on stdin; this clean removes for real.
    let mut command = sandbox.cachet();
    command.args(["clean", "--max-size", &limit, "--in-use", "-", "--json"]);
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        writeln!(stdin, "{}", key('d')).unwrap();
    }
    let outcome = Outcome::of(child.wait_with_output().unwrap());
    assert_eq!(removed_keys(&outcome), [key('a'), key('b'), key('c')]);
    assert_eq!(sandbox.run(&["status", "--key", &key('d')]).code, 0);
}

#[test]
fn op_15_bad_in_use_lists_and_percentages_are_refused_before_anything_goes() {
    let sandbox = Sandbox::new();
    four_entries(&sandbox);
    sandbox.write("in-use", format!("{}\nnot-a-key\n", key('a')).as_bytes());
    let bad = sandbox.run(&["clean", "--max-size", "0", "--in-use", "in-use"]);
    assert_eq!(bad.code, 65, "{bad:?}");
    assert!(bad.stderr_text().contains("line 2"), "{bad:?}");
    let missing = sandbox.run(&["clean", "--max-size", "0", "--in-use", "absent"]);
    assert_eq!(missing.code, 66, "{missing:?}");
    let percent = sandbox.run(&["clean", "--percent", "101"]);
    assert_eq!(percent.code, 65, "{percent:?}");
    // --in-use alone selects nothing to remove: it needs a size bound.
    let alone = sandbox.run(&["clean", "--soft", "--in-use", "in-use"]);
    assert_eq!(alone.code, 64, "{alone:?}");
    assert_eq!(
        sandbox.run(&["list", "--json"]).json()["entries"]
            .as_array()
            .unwrap()
            .len(),
        4
    );
}

/// Bound on one `cachet` process in the races.
const DEADLINE: Duration = Duration::from_secs(60);
/// Rounds of the process that removes.
const ROUNDS: usize = 25;

/// Runs `disturb` for [`ROUNDS`] rounds while another thread keeps a
/// reader process restoring `key('a')` under its own root, and checks
/// every restore: a hit with exactly the stored bytes, mode and stdout,
/// or a miss (exit 1) that wrote nothing. Returns (hits, misses).
fn race_a_reader(sandbox: &Sandbox, disturb: impl Fn(usize)) -> (usize, usize) {
    let data = payload('a', 3 << 20);
    store(sandbox, 'a', &data);
    let reader_root = sandbox.root.join("reader");
    fs::create_dir(&reader_root).unwrap();
    let done = AtomicBool::new(false);
    let (hits, misses) = std::thread::scope(|scope| {
        let reader = scope.spawn(|| {
            let (mut hits, mut misses) = (0, 0);
            let started = Instant::now();
            while !done.load(Ordering::Relaxed) && started.elapsed() < DEADLINE {
                let _ = fs::remove_dir_all(reader_root.join("out"));
                let mut command = sandbox.cachet();
                command
                    .args(["restore", "--key", &key('a'), "--into"])
                    .arg(&reader_root);
                let finished = proc::run(&mut command, None, DEADLINE);
                match finished.code {
                    Some(0) => {
                        assert_eq!(finished.stdout, b"stdout of a\n");
                        let restored = fs::read(reader_root.join("out/data.bin")).unwrap();
                        assert!(restored == data, "OP-8: a torn output after a hit");
                        let mode = fs::metadata(reader_root.join("out/data.bin")).unwrap();
                        assert_eq!(mode.permissions().mode() & 0o7777, 0o755);
                        hits += 1;
                    }
                    Some(1) => {
                        assert!(
                            !reader_root.join("out").exists(),
                            "OP-8: a miss wrote outputs"
                        );
                        misses += 1;
                    }
                    _ => panic!(
                        "OP-8: a restore racing a removal failed: {:?}\n{}",
                        finished.code,
                        finished.stderr_text()
                    ),
                }
            }
            (hits, misses)
        });
        for round in 0..ROUNDS {
            disturb(round);
        }
        done.store(true, Ordering::Relaxed);
        reader.join().unwrap()
    });
    println!("reader: {hits} hits, {misses} misses");
    assert!(hits + misses > 0, "the reader never ran");
    (hits, misses)
}

#[test]
fn op_11_remove_racing_a_reader_in_another_process_costs_at_most_a_miss() {
    let sandbox = Sandbox::new();
    let data = payload('a', 3 << 20);
    race_a_reader(&sandbox, |round| {
        if round > 0 {
            store(&sandbox, 'a', &data);
        }
        let removed = sandbox.run(&["remove", "--key", &key('a')]);
        // Exit 0: it removed the entry; the reader never takes one away.
        assert_eq!(removed.code, 0, "{removed:?}");
    });
    assert_eq!(sandbox.run(&["status", "--key", &key('a')]).code, 1);
}

#[test]
fn op_15_clean_in_use_racing_a_reader_in_another_process_costs_at_most_a_miss() {
    let sandbox = Sandbox::new();
    let data = payload('a', 3 << 20);
    sandbox.write("in-use", format!("{}\n", key('b')).as_bytes());
    race_a_reader(&sandbox, |round| {
        // Either may have survived the last clean: `b` if it was the only
        // entry left within the limit, `a` if the reader used it meanwhile.
        store_outcome(&sandbox, 'a', &data);
        store_outcome(&sandbox, 'b', b"in use");
        let cleaned = sandbox.run(&["clean", "--max-size", "1", "--in-use", "in-use", "--json"]);
        assert_eq!(cleaned.code, 0, "{cleaned:?}");
        let json = cleaned.json();
        assert_eq!(json["failures"], Value::Array(vec![]), "{cleaned:?}");
        // `a` is not in use, so it goes first, unless the reader used it
        // after the plan was made (OP-5), which keeps it.
        let first = json["removed"][0]["path"].as_str().unwrap_or_default();
        let kept = json["kept_in_use"].as_u64().unwrap();
        assert!(
            first.ends_with(&key('a')) || kept > 0,
            "round {round}: {cleaned:?}"
        );
    });
}

/// `--into` resolves relative to the current directory, and the default
/// cache directory stays the workspace's.
#[test]
fn op_12_restore_into_keeps_the_workspace_cache_directory() {
    let sandbox = Sandbox::new();
    store(&sandbox, 'a', b"x");
    let into = sandbox.root.join("target-root");
    fs::create_dir(&into).unwrap();
    let outcome = Outcome::of(
        sandbox
            .cachet()
            .current_dir(&sandbox.root)
            .args([
                "--workspace",
                "ws",
                "restore",
                "--key",
                &key('a'),
                "--into",
                "target-root",
            ])
            .output()
            .unwrap(),
    );
    assert_eq!(outcome.code, 0, "{outcome:?}");
    assert_eq!(fs::read(into.join("out/data.bin")).unwrap(), b"x");
    assert!(!into.join(".cachet").exists());
    assert!(Path::new(&sandbox.ws.join(".cachet")).is_dir());
}

// ------------------------------------------------------------ task API

mod task_api {
    use std::fs;

    use cachet::cachet_core::cache::{LookupStatus, Options, StoreOutcome};
    use cachet::task::{Lookup, Ran, Task, TaskCache};

    use super::key;
    use crate::support::Sandbox;

    fn open(sandbox: &Sandbox) -> TaskCache {
        TaskCache::open(&sandbox.ws, None, Options::default()).unwrap()
    }

    /// SPEC §2 (KEY-4 to KEY-7): the task API derives the key `cachet key`
    /// prints for the same description, every component included.
    #[test]
    fn key_4_to_7_a_task_has_the_key_cachet_key_prints() {
        let sandbox = Sandbox::new();
        sandbox.write("src/a.rs", b"fn a() {}");
        sandbox.write("src/b.rs", b"fn b() {}");
        sandbox.write("notes.txt", b"not an input");
        sandbox.write("out/old", b"x");
        sandbox.write("log", b"predecessor stdout");
        let stored = sandbox.run(&["store", "--key", &key('e'), "--stdout-file", "log"]);
        assert_eq!(stored.code, 0, "{stored:?}");
        let cache = open(&sandbox);
        let task = Task::script("cargo build --release")
            .shell("bash")
            .input("src/**/*.rs")
            .output("out")
            .env("HOME")
            .env("CACHET_TEST_UNSET_VARIABLE")
            .set("MODE", "release=fast")
            .after(
                "proj",
                "gen",
                &cachet::cachet_core::key::Key::from_hex(&key('e')).unwrap(),
            );
        let report = cache.key(&task).unwrap();
        let cli = sandbox.key(&[
            "--input",
            "src/**/*.rs",
            "--output",
            "out",
            "--env",
            "HOME",
            "--env",
            "CACHET_TEST_UNSET_VARIABLE",
            "--set",
            "MODE=release=fast",
            "--after",
            &format!("proj:gen={}", key('e')),
            "--shell",
            "bash",
            "--script",
            "cargo build --release",
        ]);
        assert_eq!(report.key.to_hex().as_str(), cli);
        assert_eq!(report.input_files.len(), 2);
        assert_eq!(report.predecessors.len(), 1);

        // A command task, and the default inputs (SEL-6): every file but
        // the outputs.
        let command = Task::command(["make", "all"]).output("out");
        assert_eq!(
            cache.key(&command).unwrap().key.to_hex().as_str(),
            sandbox.key(&["--output", "out", "--", "make", "all"])
        );
    }

    /// SEL-1: an explicit input file is taken literally, glob characters
    /// and all.
    #[test]
    fn sel_1_an_explicit_input_file_is_not_a_glob() {
        let sandbox = Sandbox::new();
        sandbox.write("a*b.txt", b"star");
        sandbox.write("axb.txt", b"x");
        sandbox.write("a[b].txt", b"brackets");
        let cache = open(&sandbox);
        let task = Task::command(["true"])
            .input_file("a*b.txt")
            .input_file("/a[b].txt");
        let inputs: Vec<String> = cache
            .key(&task)
            .unwrap()
            .input_files
            .into_iter()
            .map(|input| input.path)
            .collect();
        assert_eq!(inputs, ["/a*b.txt", "/a[b].txt"]);
    }

    /// OP-1, OP-2, OP-3: a runner that runs the task itself: a miss hands
    /// back the key and writes nothing, the runner stores its result, and
    /// the next lookup restores it and replays the streams.
    #[test]
    fn op_3_lookup_miss_then_store_then_hit() {
        let sandbox = Sandbox::new();
        sandbox.write("in.txt", b"input");
        let cache = open(&sandbox);
        let task = Task::command(["my-own-runner"])
            .input_file("in.txt")
            .output("out");
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let Lookup::Miss {
            key,
            status: LookupStatus::MissNoEntry,
            restore_error: None,
            remote: None,
        } = cache.lookup(&task, &mut out, &mut err).unwrap()
        else {
            panic!("expected a miss");
        };
        assert!((out.is_empty(), err.is_empty()) == (true, true));
        sandbox.write("out/result.bin", b"\x00result");
        let stored = cache
            .store(&key, &task, &b"what it printed\n"[..], &b"warnings\n"[..])
            .unwrap();
        assert_eq!(
            (stored.outcome, stored.remote),
            (StoreOutcome::Stored, None)
        );
        fs::remove_dir_all(sandbox.ws.join("out")).unwrap();
        assert_eq!(
            cache.lookup(&task, &mut out, &mut err).unwrap(),
            Lookup::Hit {
                key,
                outputs: 1,
                remote: None
            }
        );
        assert_eq!(
            (out.as_slice(), err.as_slice()),
            (&b"what it printed\n"[..], &b"warnings\n"[..])
        );
        assert_eq!(
            fs::read(sandbox.ws.join("out/result.bin")).unwrap(),
            b"\x00result"
        );
        // The `cachet` command sees the same entry.
        assert_eq!(
            sandbox
                .run(&["status", "--key", key.to_hex().as_str()])
                .code,
            0
        );
    }

    /// CLAIM-1, OP-2: `run` passes a miss's streams through to the writers,
    /// stores only a run that exits 0, and passes the exit code on.
    #[test]
    fn claim_1_run_stores_only_success_and_streams_go_to_the_writers() {
        let sandbox = Sandbox::new();
        let cache = open(&sandbox);
        let failing =
            Task::script("echo partial > out.txt; echo oops >&2; exit 3").output("out.txt");
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let ran = cache.run(&failing, &mut out, &mut err).unwrap();
        assert!(
            matches!(
                ran,
                Ran::Executed {
                    exit_code: Some(3),
                    stored: false,
                    restore_error: None,
                    ..
                }
            ),
            "{ran:?}"
        );
        assert_eq!(err, b"oops\n");
        assert!(cache.cache().list().unwrap().entries.is_empty());

        let task = Task::script("echo \"$GREETING\" | tee out.txt")
            .set("GREETING", "hi")
            .output("out.txt");
        out.clear();
        let ran = cache.run(&task, &mut out, &mut err).unwrap();
        assert!(
            matches!(
                ran,
                Ran::Executed {
                    exit_code: Some(0),
                    stored: true,
                    ..
                }
            ),
            "{ran:?}"
        );
        assert_eq!(out, b"hi\n", "passed through live");
        out.clear();
        assert!(matches!(
            cache.run(&task, &mut out, &mut err).unwrap(),
            Ran::Restored { outputs: 1, .. }
        ));
        assert_eq!(out, b"hi\n", "replayed");
    }

    /// SAFE-4: what the builder cannot express is an error naming it when
    /// the key is computed, not a wrong key.
    #[test]
    fn safe_4_bad_task_descriptions_are_errors() {
        let sandbox = Sandbox::new();
        let cache = open(&sandbox);
        let message = |task: Task| cache.key(&task).unwrap_err().to_string();
        let k = cachet::cachet_core::key::Key::from_hex(&key('a')).unwrap();
        assert!(message(Task::command(["true"]).set("A=B", "c")).contains("'='"));
        assert!(message(Task::command(["true"]).after("a:b", "t", &k)).contains("':'"));
        assert!(message(Task::command(Vec::<String>::new())).contains("no command"));
        assert!(message(Task::command(["true"]).input("[")).contains("glob"));
        assert!(message(Task::script("true").shell("no/slash")).contains("no/slash"));
    }
}
