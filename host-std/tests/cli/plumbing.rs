//! The plumbing subcommands against the reference vectors and each other.

use std::fs;
use std::path::{Path, PathBuf};

use cachet_core::hash::{HashFunction, digest};
use serde_json::Value;

use crate::support::{Outcome, Sandbox, copy_tree, snapshot};

fn vectors_dir() -> PathBuf {
    match std::env::var_os("CACHET_VECTORS_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/vectors"),
    }
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&fs::read(path).unwrap()).unwrap()
}

#[test]
fn key_9_cachet_key_matches_every_vector_it_can_express() {
    // Cases with input files or predecessors need files and cache entries
    // with given hashes, which cannot be made; every other case runs.
    let cases = read_json(&vectors_dir().join("keys.json"));
    let sandbox = Sandbox::new();
    let mut checked = 0;
    for case in cases.as_array().unwrap() {
        if !case["input_files"].as_array().unwrap().is_empty()
            || !case["predecessors"].as_array().unwrap().is_empty()
        {
            continue;
        }
        let mut command = sandbox.cachet();
        command.args([
            "--hash",
            case["hash_function"].as_str().unwrap(),
            "key",
            "--json",
        ]);
        for pair in case["env"]["from_host"].as_array().unwrap() {
            let name = pair[0].as_str().unwrap();
            command.args(["--env", name]);
            match pair[1].as_str() {
                Some(value) => command.env(name, value),
                None => command.env_remove(name),
            };
        }
        for pair in case["env"]["overrides"].as_array().unwrap() {
            let (name, value) = (pair[0].as_str().unwrap(), pair[1].as_str().unwrap());
            command.arg("--set").arg(format!("{name}={value}"));
        }
        let action = &case["action"];
        if let Some(argv) = action["command"].as_array() {
            command.arg("--");
            command.args(argv.iter().map(|arg| arg.as_str().unwrap()));
        } else {
            command.args([
                "--shell",
                action["shell"].as_str().unwrap(),
                "--script",
                action["script"].as_str().unwrap(),
            ]);
        }
        let outcome = Outcome::of(command.output().unwrap());
        assert_eq!(outcome.code, 0, "{}: {outcome:?}", case["name"]);
        let json = outcome.json();
        assert_eq!(json["key"], case["key"], "{}", case["name"]);
        assert_eq!(json["action"], case["action"], "{}", case["name"]);
        assert_eq!(json["hash_function"], case["hash_function"]);
        checked += 1;
    }
    println!("keys.json: checked {checked} cases through `cachet key`");
    assert!(checked >= 20, "only {checked} cases");
}

#[test]
fn op_1_op_3_fixture_entries_are_hits_and_restore_exactly() {
    let fixture = vectors_dir().join("fixture");
    let entries = read_json(&fixture.join("entries.json"));
    let sandbox = Sandbox::new();
    copy_tree(&fixture.join("workspace"), &sandbox.ws);
    let mut checked = 0;
    for entry in entries.as_array().unwrap() {
        let key = entry["key"].as_str().unwrap();
        let function = entry["hash_function"].as_str().unwrap();
        let status = sandbox.run(&[
            "status",
            "--cache-dir",
            ".haz/cache",
            "--hash",
            function,
            "--key",
            key,
        ]);
        assert_eq!(
            (status.code, status.stdout_text().as_str()),
            (0, "hit\n"),
            "{key}"
        );
        let other = if function == "blake3" {
            "sha256"
        } else {
            "blake3"
        };
        let schema = sandbox.run(&[
            "status",
            "--json",
            "--cache-dir",
            ".haz/cache",
            "--hash",
            other,
            "--key",
            key,
        ]);
        assert_eq!(schema.code, 1);
        assert_eq!(schema.json()["status"], "miss-schema");

        let restore = sandbox.run(&[
            "restore",
            "--cache-dir",
            ".haz/cache",
            "--hash",
            function,
            "--key",
            key,
        ]);
        assert_eq!(restore.code, 0, "{restore:?}");
        assert_eq!(restore.stdout_text(), entry["stdout"].as_str().unwrap());
        assert_eq!(restore.stderr_text(), entry["stderr"].as_str().unwrap());
        let hash_function = HashFunction::from_name(function).unwrap();
        for output in entry["outputs"].as_array().unwrap() {
            let path = output["path"].as_str().unwrap();
            let file = sandbox.ws.join(&path[1..]);
            let bytes = fs::read(&file).unwrap();
            let meta = fs::metadata(&file).unwrap();
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(meta.permissions().mode() & 0o7777, output["mode"]);
            assert_eq!(bytes.len() as u64, output["size"]);
            assert_eq!(
                digest(hash_function, &bytes).to_hex().as_str(),
                output["content_hash"]
            );
        }
        checked += 1;
    }
    assert_eq!(checked, 3);

    let info = sandbox.run(&["info", "--json", "--cache-dir", ".haz/cache"]);
    assert_eq!(info.code, 0);
    let info = info.json();
    assert_eq!(info["valid_entries"], 2);
    assert_eq!(info["schema_entries"], 1);
    let verify = sandbox.run(&["verify", "--cache-dir", ".haz/cache", "--json"]);
    assert_eq!(verify.code, 0, "{verify:?}");
    assert_eq!(verify.json()["intact"], 2);
}

#[test]
fn key_json_lists_every_component_and_predecessors_come_from_the_cache() {
    let sandbox = Sandbox::new();
    sandbox.write("b.txt", b"bee");
    sandbox.write("a.txt", b"");
    let first = sandbox.run(&["run", "--", "sh", "-c", "printf out; printf err >&2"]);
    assert_eq!(first.code, 0);
    let producer = sandbox.key(&["--", "sh", "-c", "printf out; printf err >&2"]);

    let mut command = sandbox.cachet();
    command
        .env("CACHET_TEST_SET", "host value")
        .env_remove("CACHET_TEST_UNSET")
        .args([
            "key",
            "--json",
            "--input",
            "*.txt",
            "--env",
            "CACHET_TEST_UNSET",
            "--env",
            "CACHET_TEST_SET",
            "--set",
            "Z=last",
            "--set",
            "A=first=1",
            "--after",
            &format!("web:build={producer}"),
            "--script",
            "make",
            "--shell",
            "bash",
        ]);
    let outcome = Outcome::of(command.output().unwrap());
    assert_eq!(outcome.code, 0, "{outcome:?}");
    let json = outcome.json();
    let hex = |bytes: &[u8]| {
        digest(HashFunction::Blake3, bytes)
            .to_hex()
            .as_str()
            .to_owned()
    };
    let expected = serde_json::json!({
        "key": json["key"],
        "hash_function": "blake3",
        "action": {"shell": "bash", "script": "make"},
        "input_files": [
            {"path": "/a.txt", "content_hash": hex(b"")},
            {"path": "/b.txt", "content_hash": hex(b"bee")},
        ],
        "predecessors": [
            {"project": "web", "task": "build", "stdout_hash": hex(b"out"), "stderr_hash": hex(b"err")},
        ],
        "env": {
            "from_host": [["CACHET_TEST_SET", "host value"], ["CACHET_TEST_UNSET", null]],
            "overrides": [["A", "first=1"], ["Z", "last"]],
        },
        // Whether an earlier key of this test left them in the memo
        // depends on timing (MEMO-4); every input is counted once.
        "files_hashed": json["files_hashed"],
        "files_from_memo": json["files_from_memo"],
        "hash_seconds": json["hash_seconds"],
    });
    assert_eq!(json, expected);
    assert_eq!(
        json["files_hashed"].as_u64().unwrap() + json["files_from_memo"].as_u64().unwrap(),
        2
    );
    assert!(json["hash_seconds"].as_f64().unwrap() >= 0.0);
    // Field order is part of the contract.
    let text = outcome.stdout_text();
    let order: Vec<usize> = [
        "\"key\"",
        "\"hash_function\"",
        "\"action\"",
        "\"input_files\"",
        "\"predecessors\"",
        "\"env\"",
        "\"files_hashed\"",
        "\"files_from_memo\"",
        "\"hash_seconds\"",
    ]
    .iter()
    .map(|field| text.find(field).unwrap())
    .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{text}");

    let text_report = sandbox.run(&["key", "--input", "*.txt", "--", "true"]);
    let first_line = text_report.stdout_text().lines().next().unwrap().to_owned();
    assert_eq!(first_line, sandbox.key(&["--input", "*.txt", "--", "true"]));

    let missing = sandbox.run(&[
        "key",
        "--after",
        &format!("web:build={}", "0".repeat(64)),
        "--",
        "true",
    ]);
    assert_eq!(missing.code, 66, "{missing:?}");
    assert!(missing.stderr_text().contains("miss-no-entry"));
}

#[test]
fn op_2_op_3_store_then_restore_by_key() {
    let sandbox = Sandbox::new();
    sandbox.write("out/a.bin", b"\x00\x01payload");
    sandbox.write("out/sub/b", b"b");
    sandbox.write("logs/stdout.txt", b"recorded stdout\n");
    let key = "ab".repeat(32);
    let store = sandbox.run(&[
        "store",
        "--json",
        "--key",
        &key,
        "--stdout-file",
        "logs/stdout.txt",
        "--output",
        "out",
    ]);
    assert_eq!(store.code, 0, "{store:?}");
    let json = store.json();
    assert_eq!(json["outcome"], "stored");
    let paths: Vec<&str> = json["entry"]["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|output| output["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["/out/a.bin", "/out/sub/b"]);
    assert_eq!(json["entry"]["stdout_len"], 16);
    assert_eq!(json["entry"]["stderr_len"], 0);

    let before = snapshot(&sandbox.ws.join("out"), &[]);
    fs::remove_dir_all(sandbox.ws.join("out")).unwrap();
    let restore = sandbox.run(&["restore", "--key", &key]);
    assert_eq!(restore.code, 0, "{restore:?}");
    assert_eq!(restore.stdout, b"recorded stdout\n");
    assert!(restore.stderr.is_empty());
    assert_eq!(snapshot(&sandbox.ws.join("out"), &[]), before);

    let again = sandbox.run(&["store", "--json", "--key", &key, "--output", "out"]);
    assert_eq!(again.json()["outcome"], "already-present");
    let report = sandbox.run(&["restore", "--json", "--key", &key]);
    assert_eq!(report.code, 0);
    assert_eq!(
        report.json(),
        serde_json::json!({"key": key, "status": "hit",
            "restored": {"outputs": 2, "stdout_len": 16, "stderr_len": 0}})
    );
    let miss = sandbox.run(&["restore", "--json", "--key", &"cd".repeat(32)]);
    assert_eq!(miss.code, 1);
    assert_eq!(miss.json()["restored"], Value::Null);

    // Stream files must exist and lie inside the workspace.
    let absent = sandbox.run(&["store", "--key", &key, "--stdout-file", "nope.txt"]);
    assert_eq!(absent.code, 66, "{absent:?}");
    assert!(absent.stderr_text().contains("/nope.txt"));
    let outside = sandbox.run(&["store", "--key", &key, "--stderr-file", "/etc/hostname"]);
    assert_eq!(outside.code, 65, "{outside:?}");
}

#[test]
fn op_5_op_7_verify_clean_and_clear_report_as_json() {
    let sandbox = Sandbox::new();
    // Without --input every other file is an input (SEL-6), so each key is
    // taken right after its run, before the next task adds files.
    let mut keys = Vec::new();
    for name in ["one", "two"] {
        let script = format!("mkdir -p {name} && echo {name} > {name}/f");
        let args = ["--output", name, "--", "sh", "-c", &script];
        let outcome = sandbox.run(&[&["run"][..], &args].concat());
        assert_eq!(outcome.code, 0, "{outcome:?}");
        keys.push(sandbox.key(&args));
    }
    let key = keys[0].clone();
    let blob = sandbox
        .ws
        .join(".cachet")
        .join(&key[..2])
        .join(&key)
        .join("outputs")
        .join(digest(HashFunction::Blake3, b"one\n").to_hex().as_str());
    fs::write(&blob, b"ONE\n").unwrap();

    let verify = sandbox.run(&["verify", "--json"]);
    assert_eq!(verify.code, 1, "{verify:?}");
    let json = verify.json();
    assert_eq!(json["checked"], 2);
    assert_eq!(json["intact"], 1);
    assert_eq!(json["damaged"][0]["key"], key.as_str());
    assert_eq!(json["damaged"][0]["damage"], "content-mismatch");
    assert_eq!(json["damaged"][0]["evicted"], false);
    let evict = sandbox.run(&["verify", "--evict", "--json"]);
    assert_eq!(evict.json()["damaged"][0]["evicted"], true);
    assert_eq!(sandbox.run(&["status", "--key", &key]).code, 1);
    assert_eq!(sandbox.run(&["verify"]).code, 0);

    let dry = sandbox.run(&["clean", "--max-size", "0", "--dry-run", "--json"]);
    assert_eq!(dry.code, 0, "{dry:?}");
    let dry = dry.json();
    assert_eq!(dry["dry_run"], true);
    assert_eq!(dry["removed"].as_array().unwrap().len(), 1);
    assert_eq!(dry["removed"][0]["reason"], "max-size");
    assert_eq!(sandbox.run(&["info", "--json"]).json()["valid_entries"], 1);
    let clean = sandbox.run(&["clean", "--max-size", "1MiB", "--max-age", "7d", "--soft"]);
    assert_eq!(clean.code, 0, "{clean:?}");
    assert!(
        clean.stdout_text().starts_with("removed 0 items"),
        "{clean:?}"
    );
    let clean = sandbox.run(&["clean", "--max-size", "0", "--json"]);
    assert_eq!(clean.json()["remaining_entries"], 0);

    assert_eq!(sandbox.run(&["run", "--", "true"]).code, 0);
    let clear = sandbox.run(&["clear", "--json"]);
    assert_eq!(clear.code, 0);
    assert_eq!(clear.json()["entries_removed"], 1);
    let info = sandbox.run(&["info", "--json"]);
    assert_eq!(info.json()["total_bytes"], 0);
    assert_eq!(
        info.stdout,
        sandbox.run(&["info", "--json"]).stdout,
        "deterministic"
    );
}

#[test]
fn safe_4_bad_arguments_have_distinct_exit_codes_and_name_the_value() {
    let sandbox = Sandbox::new();
    let cases: [(&[&str], i32, &str); 9] = [
        (&["status", "--key", "xyz"], 65, "\"xyz\""),
        (&["status"], 64, "--key"),
        (&["frobnicate"], 64, "frobnicate"),
        (&["clean"], 64, "--soft"),
        (&["clean", "--max-size", "10Q"], 65, "\"10Q\""),
        (&["clean", "--max-age", "soon"], 65, "\"soon\""),
        (&["key", "--set", "NOEQUALS", "--", "true"], 65, "NOEQUALS"),
        (&["key", "--input", "src/[", "--", "true"], 65, "src/["),
        (
            &["key", "--env", "A", "--env", "A", "--", "true"],
            65,
            "--env",
        ),
    ];
    for (args, code, needle) in cases {
        let outcome = sandbox.run(args);
        assert_eq!(outcome.code, code, "{args:?}: {outcome:?}");
        assert!(
            outcome.stderr_text().contains(needle),
            "{args:?}: {outcome:?}"
        );
    }
    let help = sandbox.run(&["--help"]);
    assert_eq!(help.code, 0);
    assert!(help.stdout_text().contains("Usage"));
    let missing_ws = sandbox.run(&["--workspace", "/nonexistent/ws", "info"]);
    assert_eq!(missing_ws.code, 66, "{missing_ws:?}");
    assert!(missing_ws.stderr_text().contains("/nonexistent/ws"));
    fs::write(sandbox.root.join("file"), b"").unwrap();
    let bad_cache = sandbox.run(&[
        "--cache-dir",
        sandbox.root.join("file/cache").to_str().unwrap(),
        "info",
    ]);
    assert_eq!(bad_cache.code, 69, "{bad_cache:?}");
}

/// OP-5, KEY-6: `cachet key --after` reads the predecessor's entry, which
/// is a use of it: a clean by size, least recently used first, keeps it
/// and removes an entry last used at the same time that nothing read
/// (which, on a tie, would have gone second: its key sorts after).
#[test]
fn op_5_an_entry_read_as_a_predecessor_is_kept_by_a_clean_by_size() {
    let sandbox = Sandbox::new();
    sandbox.write("out/a", b"a");
    let (producer, unused) = ("cd".repeat(32), "ef".repeat(32));
    let ten_days_ago = std::time::SystemTime::now() - core::time::Duration::from_secs(10 * 86_400);
    for key in [&producer, &unused] {
        let stored = sandbox.run(&["store", "--key", key, "--output", "out/**"]);
        assert_eq!(stored.code, 0, "{stored:?}");
        let manifest = sandbox
            .ws
            .join(".cachet")
            .join(&key[..2])
            .join(key)
            .join("manifest.json");
        fs::File::open(&manifest)
            .unwrap()
            .set_modified(ten_days_ago)
            .unwrap();
    }
    let keyed = sandbox.run(&[
        "key",
        "--after",
        &format!("web:build={producer}"),
        "--",
        "true",
    ]);
    assert_eq!(keyed.code, 0, "{keyed:?}");
    // Room for one of the two entries (about 0.6 KiB each).
    let clean = sandbox.run(&["clean", "--max-size", "1KiB"]);
    assert_eq!(clean.code, 0, "{clean:?}");
    assert!(clean.stdout_text().contains("removed 1 "), "{clean:?}");
    let status = |key: &str| sandbox.run(&["status", "--key", key]).code;
    assert_eq!(status(&producer), 0, "the predecessor is kept: {clean:?}");
    assert_eq!(status(&unused), 1, "the unused entry is removed: {clean:?}");
}
