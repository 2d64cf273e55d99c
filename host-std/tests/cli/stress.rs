//! OP-8 under load (issue #5, part 3): [`WORKERS`] threads, each running
//! the real `cachet` binary [`ROUNDS`] times over — `store`, `status`,
//! `restore`, and one of `clean --soft`, `clean --max-size`, `verify` and
//! `info` — against one shared cache directory, each in its own workspace, on
//! [`KEYS`] shared keys whose outputs and streams are a deterministic
//! function of the key, so any worker can check every byte it restored.
//!
//! At most [`WORKERS`] `cachet` processes run at any moment; each is killed
//! after [`DEADLINE`], so the test cannot hang, and the whole run takes a
//! few seconds on two cores.
//!
//! Accepted: exit 0; for `status` and `restore` exit 1 (a miss). A restore
//! that exits 0 must have written exactly the key's files (bytes and
//! modes) and replayed exactly its streams; one that exits 1 must have
//! written nothing. Everything else fails the test with the command's
//! output, and so does `verify` reporting damage or a maintenance walk
//! reporting failures while only these commands run: in an untampered
//! cache, the worst outcome of a race is a miss (OP-8). Afterwards
//! `verify` finds no damage, `info` no corrupt entry, every scratch item
//! left is one a soft clean removes once past the grace period, and every
//! key still stores and restores exactly.
//!
//! [`op_8_a_concurrent_clear_costs_at_most_a_miss`] adds `clear` (OP-4),
//! which the main test leaves out: stores, restores and `run`s while
//! another process keeps clearing the cache directory.
//!
//! [`processes_share_a_remote`] runs [`REMOTE_WORKERS`] processes, each with
//! its own workspace and local cache, on one shared remote (a `file://`
//! directory, and Garage over S3): `cachet run` pushes and pulls the same
//! keys at once, and every run must be a hit from one tier or run the
//! command, with exactly the key's bytes in the end and nothing said but
//! what a hit or a miss says; afterwards every record on the remote is a
//! hit for a fresh cache.

use crate::proc;
use crate::remote::{Store, directory_store, garage_store};

use alloc::collections::BTreeMap;
use core::time::Duration;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Instant, SystemTime};

use cachet_core::hash::{HashFunction, digest};
use serde_json::Value;

/// Concurrent workers, each running one `cachet` process at a time.
const WORKERS: usize = 8;
/// Rounds per worker; each round runs four commands.
const ROUNDS: usize = 40;
/// Shared keys.
const KEYS: usize = 4;
/// Deadline of one `cachet` command.
const DEADLINE: Duration = Duration::from_secs(30);
/// `clean --max-size` limit: a bit more than one entry (the largest is
/// about 600 KB), so most of these cleans evict something.
const MAX_SIZE: &str = "700KiB";

/// The `index`-th shared key. Keys 0 and 1 share a shard, so stores race
/// to create it and cleans walk both.
fn key(index: usize) -> String {
    let hex = digest(
        HashFunction::Blake3,
        format!("stress key {index}").as_bytes(),
    );
    let hex = hex.to_hex();
    let shard = if index < 2 { "5a" } else { &hex.as_str()[..2] };
    format!("{shard}{}", &hex.as_str()[2..])
}

/// What key `index` stores and restores: files (workspace-relative path →
/// (bytes, mode)) and both streams.
struct Content {
    files: BTreeMap<String, (Vec<u8>, u32)>,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

fn content(index: usize) -> Content {
    // Spans one to three copy buffers (256 KiB), so a torn copy would show.
    let len = 100_000 + index * 170_001;
    let data: Vec<u8> = (0..len)
        .map(|i| ((i * 31 + index * 7) % 251) as u8)
        .collect();
    let mut files = BTreeMap::new();
    files.insert(String::from("out/data.bin"), (data, 0o644));
    files.insert(
        format!("out/k{index}/note.txt"),
        (format!("note of key {index}\n").into_bytes(), 0o600),
    );
    // Equal bytes under every key: the same blob name in every entry.
    files.insert(
        String::from("out/shared.txt"),
        (b"shared by every key\n".to_vec(), 0o644),
    );
    files.insert(
        String::from("out/tool.sh"),
        (format!("#!/bin/sh\necho {index}\n").into_bytes(), 0o755),
    );
    files.insert(String::from("out/empty"), (Vec::new(), 0o644));
    Content {
        files,
        stdout: format!("stdout of key {index}\n")
            .repeat(index * 1000 + 1)
            .into_bytes(),
        stderr: if index == 0 {
            Vec::new()
        } else {
            format!("stderr of key {index}\n").into_bytes()
        },
    }
}

/// Every regular file below `dir` (relative to `base`) with its bytes and
/// mode; anything that is neither a file nor a directory is reported as
/// an error.
fn files_below(base: &Path, dir: &Path) -> Result<BTreeMap<String, (Vec<u8>, u32)>, String> {
    let mut files = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(current) = stack.pop() {
        for entry in fs::read_dir(&current).map_err(|e| e.to_string())? {
            let path = entry.map_err(|e| e.to_string())?.path();
            let meta = fs::symlink_metadata(&path).map_err(|e| e.to_string())?;
            let relative = path
                .strip_prefix(base)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            if meta.is_dir() {
                stack.push(path);
            } else if meta.is_file() {
                let bytes = fs::read(&path).map_err(|e| e.to_string())?;
                files.insert(relative, (bytes, meta.permissions().mode() & 0o7777));
            } else {
                return Err(format!("{relative} is neither a file nor a directory"));
            }
        }
    }
    Ok(files)
}

/// The paths at which two trees of [`files_below`] differ.
fn differing<'a>(
    wanted: &'a BTreeMap<String, (Vec<u8>, u32)>,
    got: &'a BTreeMap<String, (Vec<u8>, u32)>,
) -> Vec<&'a String> {
    let mut paths: Vec<&String> = wanted
        .keys()
        .chain(got.keys())
        .filter(|k| wanted.get(*k) != got.get(*k))
        .collect();
    paths.sort();
    paths.dedup();
    paths
}

/// One worker's workspace, next to the shared cache.
struct Worker {
    id: usize,
    workspace: PathBuf,
    cache: PathBuf,
}

/// A command that ran, for messages.
struct Ran {
    what: String,
    finished: proc::Finished,
}

impl core::fmt::Debug for Ran {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}: {:?}", self.what, self.finished)
    }
}

impl Ran {
    fn json(&self) -> Result<Value, String> {
        serde_json::from_slice(&self.finished.stdout)
            .map_err(|e| format!("stdout is not JSON ({e}): {self:?}"))
    }

    /// Exit code, failing on signals, timeouts and panics.
    fn code(&self) -> Result<i32, String> {
        let stderr = self.finished.stderr_text();
        match self.finished.code {
            Some(code)
                if !self.finished.timed_out && code != 101 && !stderr.contains("panicked") =>
            {
                Ok(code)
            }
            _ => Err(format!("crashed, panicked or timed out: {self:?}")),
        }
    }
}

/// What the workers saw that is allowed but worth reporting.
#[derive(Default)]
struct Tally {
    commands: usize,
    stored: usize,
    already_present: usize,
    contended: usize,
    hits: usize,
    misses: BTreeMap<String, usize>,
    restored: usize,
    restore_misses: usize,
    removed_by_max_size: usize,
    removed_by_soft_clean: Vec<String>,
}

impl Worker {
    fn cachet(&self, args: &[&str]) -> Ran {
        let mut command = Command::new(env!("CARGO_BIN_EXE_cachet"));
        command
            .current_dir(&self.workspace)
            .env_remove("CACHET_CACHE_DIR")
            .arg("--workspace")
            .arg(&self.workspace)
            .arg("--cache-dir")
            .arg(&self.cache)
            .args(args);
        Ran {
            what: format!("worker {}: cachet {}", self.id, args.join(" ")),
            finished: proc::run(&mut command, None, DEADLINE),
        }
    }

    /// Writes key `index`'s outputs and stream files into the workspace.
    fn prepare(&self, index: usize) {
        let out = self.workspace.join("out");
        if out.exists() {
            fs::remove_dir_all(&out).unwrap();
        }
        let content = content(index);
        for (path, (bytes, mode)) in &content.files {
            let path = self.workspace.join(path);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(&path, bytes).unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(*mode)).unwrap();
        }
        fs::create_dir_all(self.workspace.join("logs")).unwrap();
        fs::write(self.workspace.join("logs/stdout"), &content.stdout).unwrap();
        fs::write(self.workspace.join("logs/stderr"), &content.stderr).unwrap();
    }

    fn store(&self, index: usize, tally: &mut Tally) -> Result<(), String> {
        self.prepare(index);
        let key = key(index);
        let ran = self.cachet(&[
            "store",
            "--json",
            "--key",
            &key,
            "--stdout-file",
            "logs/stdout",
            "--stderr-file",
            "logs/stderr",
            "--output",
            "out",
        ]);
        if ran.code()? != 0 {
            return Err(format!("store failed: {ran:?}"));
        }
        let json = ran.json()?;
        match json["outcome"].as_str() {
            Some("stored") => tally.stored += 1,
            Some("already-present") => tally.already_present += 1,
            // Nothing kept because a concurrent clear removed the scratch
            // dir: a miss later, which OP-8 allows.
            Some("contended") => tally.contended += 1,
            _ => return Err(format!("store outcome: {ran:?}")),
        }
        // The entry as published (null if a clean removed it meanwhile)
        // must be this key's, whoever published it.
        if let Some(outputs) = json["entry"]["outputs"].as_array() {
            let content = content(index);
            let recorded: BTreeMap<String, (String, u64, u64)> = outputs
                .iter()
                .map(|o| {
                    (
                        o["path"].as_str().unwrap_or_default()[1..].to_owned(),
                        (
                            o["content_hash"].as_str().unwrap_or_default().to_owned(),
                            o["size"].as_u64().unwrap_or(u64::MAX),
                            o["mode"].as_u64().unwrap_or(u64::MAX),
                        ),
                    )
                })
                .collect();
            let wanted: BTreeMap<String, (String, u64, u64)> = content
                .files
                .iter()
                .map(|(path, (bytes, mode))| {
                    let hash = digest(HashFunction::Blake3, bytes);
                    (
                        path.clone(),
                        (
                            hash.to_hex().as_str().to_owned(),
                            bytes.len() as u64,
                            u64::from(*mode),
                        ),
                    )
                })
                .collect();
            if recorded != wanted {
                return Err(format!("the published entry is not key {index}'s: {ran:?}"));
            }
        }
        Ok(())
    }

    fn status(&self, index: usize, tally: &mut Tally) -> Result<(), String> {
        let ran = self.cachet(&["status", "--json", "--key", &key(index)]);
        let code = ran.code()?;
        let status = ran.json()?["status"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        match (code, status.as_str()) {
            (0, "hit") => tally.hits += 1,
            // A miss: no entry, or one a concurrent clean was removing
            // while this lookup read it.
            (1, "miss-no-entry" | "miss-corrupt") => *tally.misses.entry(status).or_default() += 1,
            _ => return Err(format!("status: {ran:?}")),
        }
        Ok(())
    }

    fn restore(&self, index: usize, tally: &mut Tally) -> Result<(), String> {
        let out = self.workspace.join("out");
        if out.exists() {
            fs::remove_dir_all(&out).unwrap();
        }
        let ran = self.cachet(&["restore", "--key", &key(index)]);
        match ran.code()? {
            0 => {
                let content = content(index);
                let restored = files_below(&self.workspace, &out)
                    .map_err(|e| format!("restored tree: {e}: {ran:?}"))?;
                if restored != content.files {
                    let differing = differing(&content.files, &restored);
                    return Err(format!(
                        "TORN OR WRONG RESTORE of key {index}: {differing:?} differ: {ran:?}"
                    ));
                }
                if ran.finished.stdout != content.stdout || ran.finished.stderr != content.stderr {
                    return Err(format!("wrong replayed streams for key {index}: {ran:?}"));
                }
                tally.restored += 1;
            }
            1 => {
                if out.exists() || !ran.finished.stdout.is_empty() {
                    return Err(format!("a restore miss wrote something: {ran:?}"));
                }
                if !ran.finished.stderr_text().contains("is a miss (miss-") {
                    return Err(format!("a restore miss says: {ran:?}"));
                }
                tally.restore_misses += 1;
            }
            _ => return Err(format!("restore: {ran:?}")),
        }
        Ok(())
    }

    fn maintain(&self, which: usize, tally: &mut Tally) -> Result<(), String> {
        let ran = match which {
            0 => self.cachet(&["clean", "--soft", "--json"]),
            1 => self.cachet(&["clean", "--max-size", MAX_SIZE, "--json"]),
            2 => self.cachet(&["verify", "--json"]),
            _ => self.cachet(&["info", "--json"]),
        };
        let code = ran.code()?;
        let json = ran.json()?;
        if which == 2 && json["damaged"].as_array().is_none_or(|d| !d.is_empty()) {
            return Err(format!(
                "VERIFY REPORTED DAMAGE in an untampered cache: {ran:?}"
            ));
        }
        if which == 3 && json["corrupt_entries"] != 0 {
            return Err(format!(
                "INFO REPORTED A CORRUPT ENTRY in an untampered cache: {ran:?}"
            ));
        }
        if code != 0 || json["failures"].as_array().is_none_or(|f| !f.is_empty()) {
            return Err(format!("maintenance failed: {ran:?}"));
        }
        match which {
            0 => {
                // Nothing is corrupt and no scratch is an hour old: a soft
                // clean that removes something has judged a live entry
                // corrupt.
                for item in json["removed"].as_array().into_iter().flatten() {
                    tally.removed_by_soft_clean.push(item.to_string());
                }
            }
            1 => tally.removed_by_max_size += json["removed"].as_array().map_or(0, Vec::len),
            _ => {}
        }
        Ok(())
    }

    /// Runs every round, stopping at the first unacceptable outcome.
    fn work(&self, tally: &mut Tally) -> Result<(), String> {
        for round in 0..ROUNDS {
            let index = (self.id + round) % KEYS;
            self.store(index, tally)?;
            self.status(index, tally)?;
            self.restore(index, tally)?;
            self.maintain((self.id + round) % 4, tally)?;
            tally.commands += 4;
        }
        Ok(())
    }
}

/// Sets the modification time of every scratch item (a name starting with
/// `.`, at the top or in a shard) two hours back, past the grace period.
fn age_scratch(cache: &Path) -> usize {
    let old = SystemTime::now() - Duration::from_secs(2 * 3600);
    let mut aged = 0;
    let mut age = |path: &Path| {
        let file = fs::File::open(path).unwrap();
        file.set_modified(old).unwrap();
        aged += 1;
    };
    for entry in fs::read_dir(cache).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            age(&entry.path());
        } else if entry.file_type().unwrap().is_dir() {
            for inner in fs::read_dir(entry.path()).unwrap() {
                let inner = inner.unwrap();
                if inner.file_name().to_string_lossy().starts_with('.') {
                    age(&inner.path());
                }
            }
        }
    }
    aged
}

#[test]
fn op_8_concurrent_processes_never_see_a_torn_restore() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    let cache = root.join("cache");
    let workers: Vec<Worker> = (0..WORKERS)
        .map(|id| {
            let workspace = root.join(format!("worker-{id}"));
            fs::create_dir_all(&workspace).unwrap();
            Worker {
                id,
                workspace,
                cache: cache.clone(),
            }
        })
        .collect();

    let start = Instant::now();
    let failures = Mutex::new(Vec::new());
    let totals = Mutex::new(Tally::default());
    std::thread::scope(|scope| {
        for worker in &workers {
            let (failures, totals) = (&failures, &totals);
            scope.spawn(move || {
                let mut tally = Tally::default();
                if let Err(failure) = worker.work(&mut tally) {
                    failures.lock().unwrap().push(failure);
                }
                let mut totals = totals.lock().unwrap();
                totals.commands += tally.commands;
                totals.stored += tally.stored;
                totals.already_present += tally.already_present;
                totals.contended += tally.contended;
                totals.hits += tally.hits;
                for (status, count) in tally.misses {
                    *totals.misses.entry(status).or_default() += count;
                }
                totals.restored += tally.restored;
                totals.restore_misses += tally.restore_misses;
                totals.removed_by_max_size += tally.removed_by_max_size;
                totals
                    .removed_by_soft_clean
                    .extend(tally.removed_by_soft_clean);
            });
        }
    });
    let elapsed = start.elapsed();
    let totals = totals.into_inner().unwrap();
    println!(
        "{} rounds of 4 commands in {elapsed:?}: stored {}, already present {}; status hits {}, misses {:?}; restored {}, restore misses {}; max-size evictions {}; soft-clean removals {:?}",
        totals.commands / 4,
        totals.stored,
        totals.already_present,
        totals.hits,
        totals.misses,
        totals.restored,
        totals.restore_misses,
        totals.removed_by_max_size,
        totals.removed_by_soft_clean
    );
    let failures = failures.into_inner().unwrap();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    // Without a concurrent clear nothing removes a store's scratch dir and
    // no broken entry is ever written, so no store may come back contended.
    assert_eq!(totals.contended, 0, "a store was contended without a clear");
    assert_eq!(totals.commands, WORKERS * ROUNDS * 4);
    assert!(
        totals.restored > 0 && totals.stored > 0,
        "the run never exercised a hit"
    );
    assert!(
        totals.removed_by_soft_clean.is_empty(),
        "a soft clean removed live entries as corrupt: {:?}",
        totals.removed_by_soft_clean
    );

    // Quiet now: the cache must be whole.
    let checker = &workers[0];
    let verify = checker.cachet(&["verify", "--json"]);
    assert_eq!(verify.code(), Ok(0), "{verify:?}");
    let json = verify.json().unwrap();
    assert_eq!(json["damaged"], serde_json::json!([]), "{verify:?}");
    let info = checker.cachet(&["info", "--json"]);
    assert_eq!(info.code(), Ok(0), "{info:?}");
    let json = info.json().unwrap();
    assert_eq!(json["corrupt_entries"], 0, "{info:?}");
    assert_eq!(json["foreign_items"], 0, "{info:?}");
    assert_eq!(json["failures"], serde_json::json!([]), "{info:?}");
    let scratch = json["scratch_items"].as_u64().unwrap();
    let aged = age_scratch(&cache);
    assert_eq!(
        aged as u64, scratch,
        "info and the tree disagree on scratch"
    );
    let clean = checker.cachet(&["clean", "--soft", "--json"]);
    assert_eq!(clean.code(), Ok(0), "{clean:?}");
    let info = checker.cachet(&["info", "--json"]);
    assert_eq!(info.json().unwrap()["scratch_items"], 0, "{info:?}");
    assert_eq!(info.json().unwrap()["corrupt_entries"], 0, "{info:?}");
    println!(
        "scratch left after the run: {scratch} (removed by a soft clean past the grace period)"
    );

    // And every key still works, exactly.
    let mut tally = Tally::default();
    for index in 0..KEYS {
        checker.store(index, &mut tally).unwrap();
        checker.restore(index, &mut tally).unwrap();
    }
    assert_eq!(tally.restored, KEYS);
}

/// Rounds per worker of [`op_8_a_concurrent_clear_costs_at_most_a_miss`].
const CLEAR_ROUNDS: usize = 20;

#[test]
fn op_8_a_concurrent_clear_costs_at_most_a_miss() {
    // `clear` empties the cache directory (OP-4) while stores, restores and runs
    // are under way in it: their worst outcome must still be a miss (OP-8):
    // a store or run that cannot keep its result reports it and succeeds,
    // a restore restores exactly or misses.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    let cache = root.join("cache");
    let workers: Vec<Worker> = (0..2)
        .map(|id| {
            let workspace = root.join(format!("worker-{id}"));
            fs::create_dir_all(&workspace).unwrap();
            Worker {
                id,
                workspace,
                cache: cache.clone(),
            }
        })
        .collect();
    let clearer = Worker {
        id: 99,
        workspace: root.join("clearer"),
        cache: cache.clone(),
    };
    fs::create_dir_all(&clearer.workspace).unwrap();
    let done = core::sync::atomic::AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    let mut clears = 0;
    std::thread::scope(|scope| {
        for worker in &workers {
            let (failures, done) = (&failures, &done);
            scope.spawn(move || {
                let mut tally = Tally::default();
                for round in 0..CLEAR_ROUNDS {
                    let index = (worker.id + round) % KEYS;
                    let run = || {
                        let run = worker.cachet(&[
                            "run",
                            "--output",
                            "built",
                            "--",
                            "sh",
                            "-c",
                            "mkdir -p built && printf 'built\\n' > built/file",
                        ]);
                        match run.code()? {
                            0 if fs::read(worker.workspace.join("built/file"))
                                .is_ok_and(|b| b == b"built\n") =>
                            {
                                Ok(())
                            }
                            _ => Err(format!("run: {run:?}")),
                        }
                    };
                    // Every step runs, so one test run shows every kind of
                    // failure.
                    let results = [
                        worker.store(index, &mut tally),
                        worker.restore(index, &mut tally),
                        run(),
                    ];
                    failures
                        .lock()
                        .unwrap()
                        .extend(results.into_iter().filter_map(Result::err));
                }
                done.fetch_add(1, core::sync::atomic::Ordering::SeqCst);
            });
        }
        // Bounded: the workers finish within their rounds, or their
        // commands time out.
        while done.load(core::sync::atomic::Ordering::SeqCst) < workers.len() && clears < 2000 {
            let clear = clearer.cachet(&["clear", "--json"]);
            if clear.code() != Ok(0) {
                failures.lock().unwrap().push(format!("clear: {clear:?}"));
            }
            clears += 1;
        }
    });
    let failures = failures.into_inner().unwrap();
    println!("{clears} clears ran alongside; {} failures", failures.len());
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Workers of [`op_8_remote_1_processes_with_their_own_caches_share_a_remote_without_a_torn_restore`].
const REMOTE_WORKERS: usize = 6;
/// Rounds per worker of that test; each round clears the worker's local
/// cache (every other round) and runs one `cachet run`.
const REMOTE_ROUNDS: usize = 12;

/// What the shared-remote workers run for key `index`: copies the key's
/// outputs out of `fixtures` (modes kept) and prints its streams; exits 3
/// without writing anything when `$FAIL` is set, so a run that must be a
/// hit proves it by succeeding.
fn remote_task(fixtures: &Path, index: usize) -> String {
    let fixture = fixtures.join(format!("k{index}"));
    let fixture = fixture.display();
    format!(
        r#"test -n "$FAIL" && exit 3
echo run >> "$RUNS"
cp -Rp '{fixture}/out' .
cat '{fixture}/stdout'
cat '{fixture}/stderr' >&2"#
    )
}

/// Writes key `index`'s outputs and streams ([`content`]) under
/// `fixtures/k<index>/`, for [`remote_task`] to copy.
fn write_fixture(fixtures: &Path, index: usize) {
    let dir = fixtures.join(format!("k{index}"));
    let content = content(index);
    for (path, (bytes, mode)) in &content.files {
        let path = dir.join(path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, bytes).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(*mode)).unwrap();
    }
    fs::write(dir.join("stdout"), &content.stdout).unwrap();
    fs::write(dir.join("stderr"), &content.stderr).unwrap();
}

/// `cachet`'s own stderr lines (`cachet: ...`) that a `-v run` against a
/// healthy remote may print. Anything else (a warning, a remote failure, a
/// damaged or corrupt record, a contended store) is not a miss but an
/// error or damage, which OP-8 rules out.
const FINE_LINES: &[&str] = &[
    "cachet: inputs: ",
    ": miss (no entry)",
    ": hit ",
    "cachet: hit ",
    "cachet: miss (miss-no-entry) ",
    "cachet: stored ",
    ": pushed ",
    // The chain's own -v lines (REMOTE-20) and statistics (REMOTE-19).
    ", and every remote)",
    "cachet: remote statistics: ",
];

/// How a shared-remote run went, for the tally.
#[derive(Default)]
struct RemoteTally {
    runs: usize,
    local_hits: usize,
    remote_hits: usize,
    commands_run: usize,
    pushes: usize,
}

impl Worker {
    /// `cachet -v run --remote URL` of `task` against `store`, with
    /// `$RUNS` at `runs` and `$FAIL` set if `fail`.
    fn run_remote(&self, store: &Store, task: &str, runs: &Path, fail: bool) -> Ran {
        let url = store.url.as_str();
        let mut command = Command::new(env!("CARGO_BIN_EXE_cachet"));
        command.envs(store.env.iter().map(|(name, value)| (name, value)));
        command
            .current_dir(&self.workspace)
            .env_remove("CACHET_CACHE_DIR")
            .env_remove("CACHET_REMOTE")
            .env_remove("CACHET_TENANT")
            .env_remove("CACHET_REMOTE_READ_ONLY")
            .env("RUNS", runs)
            .args(["--workspace"])
            .arg(&self.workspace)
            .arg("--cache-dir")
            .arg(&self.cache)
            .args([
                "-v", "run", "--remote", url, "--output", "out", "--script", task,
            ]);
        if fail {
            command.env("FAIL", "1");
        } else {
            command.env_remove("FAIL");
        }
        Ran {
            what: format!("worker {}: cachet -v run --remote {url} {task:?}", self.id),
            finished: proc::run(&mut command, None, DEADLINE),
        }
    }

    /// Runs key `index` through the shared remote from a workspace without
    /// outputs and checks every byte that ends up there: the key's files
    /// and modes, and its streams, whether they were restored or the
    /// command ran; and that `cachet` said nothing but what a hit or a
    /// miss says.
    fn remote_round(
        &self,
        store: &Store,
        fixtures: &Path,
        index: usize,
        fail: bool,
        tally: &mut RemoteTally,
    ) -> Result<(), String> {
        let out = self.workspace.join("out");
        if out.exists() {
            fs::remove_dir_all(&out).unwrap();
        }
        let runs = self.workspace.with_extension("runs");
        let before = fs::read_to_string(&runs).map_or(0, |text| text.lines().count());
        let ran = self.run_remote(store, &remote_task(fixtures, index), &runs, fail);
        if ran.code()? != 0 {
            return Err(format!("run failed: {ran:?}"));
        }
        let content = content(index);
        let files =
            files_below(&self.workspace, &out).map_err(|e| format!("outputs: {e}: {ran:?}"))?;
        if files != content.files {
            let differing = differing(&content.files, &files);
            return Err(format!(
                "TORN OR WRONG OUTPUTS of key {index}: {differing:?} differ: {ran:?}"
            ));
        }
        let mut stderr = Vec::new();
        for line in ran.finished.stderr.split_inclusive(|b| *b == b'\n') {
            if !line.starts_with(b"cachet: ") {
                stderr.extend_from_slice(line);
                continue;
            }
            let line = String::from_utf8_lossy(line);
            if !FINE_LINES.iter().any(|fine| line.contains(fine)) {
                return Err(format!("neither a hit nor a miss: {line:?}: {ran:?}"));
            }
            tally.remote_hits +=
                usize::from(line.contains("cachet: hit ") && line.contains(" (remote "));
            tally.local_hits +=
                usize::from(line.contains("cachet: hit ") && line.contains("(local)"));
            tally.pushes += usize::from(line.contains(": pushed "));
        }
        if ran.finished.stdout != content.stdout || stderr != content.stderr {
            return Err(format!("wrong streams for key {index}: {ran:?}"));
        }
        let after = fs::read_to_string(&runs).map_or(0, |text| text.lines().count());
        tally.commands_run += after - before;
        tally.runs += 1;
        Ok(())
    }
}

/// REMOTE_WORKERS processes at a time, each with its own workspace and
/// local cache, all on one remote `store` and KEYS shared keys: stores push
/// while others pull the same records and blobs. The worst outcome of any
/// race must be a miss (OP-8): no error, no warning, no damaged record or
/// blob seen, and no restore that is not exactly the key's outputs and
/// streams (REMOTE-1, REMOTE-4). Afterwards every record on the remote is a
/// complete hit for a fresh cache (REMOTE-8: a record only ever names blobs
/// that are there).
fn processes_share_a_remote(store: &Store) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    let fixtures = root.join("fixtures");
    for index in 0..KEYS {
        write_fixture(&fixtures, index);
    }
    let worker = |id: usize| {
        let workspace = root.join(format!("worker-{id}"));
        fs::create_dir_all(&workspace).unwrap();
        Worker {
            id,
            workspace,
            cache: root.join(format!("cache-{id}")),
        }
    };
    let workers: Vec<Worker> = (0..REMOTE_WORKERS).map(worker).collect();

    let start = Instant::now();
    let failures = Mutex::new(Vec::new());
    let totals = Mutex::new(RemoteTally::default());
    std::thread::scope(|scope| {
        for worker in &workers {
            let (failures, totals, fixtures) = (&failures, &totals, &fixtures);
            scope.spawn(move || {
                let mut tally = RemoteTally::default();
                let result = (0..REMOTE_ROUNDS).try_for_each(|round| {
                    // Every other round starts from an empty local cache,
                    // so the remote is asked while others push to it; the
                    // round after it runs the same key again, a local hit.
                    if round % 2 == 0 {
                        let clear = worker.cachet(&["clear", "--json"]);
                        if clear.code()? != 0 {
                            return Err(format!("clear: {clear:?}"));
                        }
                    }
                    // Half the workers a key ahead of the others: three
                    // processes race to store a key nobody has pushed yet
                    // while three pull the one being pushed.
                    let index = (round / 2 + worker.id % 2) % KEYS;
                    worker.remote_round(store, fixtures, index, false, &mut tally)
                });
                if let Err(failure) = result {
                    failures.lock().unwrap().push(failure);
                }
                let mut totals = totals.lock().unwrap();
                totals.runs += tally.runs;
                totals.local_hits += tally.local_hits;
                totals.remote_hits += tally.remote_hits;
                totals.commands_run += tally.commands_run;
                totals.pushes += tally.pushes;
            });
        }
    });
    let elapsed = start.elapsed();
    let totals = totals.into_inner().unwrap();
    println!(
        "{}: {} runs by {REMOTE_WORKERS} processes in {elapsed:?}: {} hits from the remote, {} local hits, {} commands run, {} pushes",
        store.url,
        totals.runs,
        totals.remote_hits,
        totals.local_hits,
        totals.commands_run,
        totals.pushes
    );
    let failures = failures.into_inner().unwrap();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert_eq!(totals.runs, REMOTE_WORKERS * REMOTE_ROUNDS);
    assert_eq!(
        totals.runs,
        totals.remote_hits + totals.local_hits + totals.commands_run,
        "every run is a hit from one tier or runs the command"
    );
    assert!(
        totals.remote_hits > 0 && totals.local_hits > 0 && totals.pushes > 0,
        "the run never exercised both tiers"
    );

    // Quiet now: every record on the remote is a complete, verified hit
    // for a cache that has never seen it, and the command does not run.
    let records = store.names("cachet-v1-blake3/tenants/local/entries/");
    assert_eq!(records.len(), KEYS, "{records:?}");
    let fresh = worker(99);
    let mut tally = RemoteTally::default();
    for index in 0..KEYS {
        fs::remove_dir_all(&fresh.cache).ok();
        fresh
            .remote_round(store, &fixtures, index, true, &mut tally)
            .unwrap();
    }
    assert_eq!(tally.remote_hits, KEYS);
    assert_eq!(tally.commands_run, 0);
}

#[test]
fn op_8_remote_1_processes_with_their_own_caches_share_a_directory_remote_without_a_torn_restore() {
    let dir = tempfile::tempdir().unwrap();
    processes_share_a_remote(&directory_store(dir.path()));
}

#[test]
fn op_8_remote_1_processes_with_their_own_caches_share_an_s3_remote_without_a_torn_restore() {
    processes_share_a_remote(&garage_store());
}
