//! `cachet run`: CLAIM-1 end to end, misses on every key component, what is
//! never stored, and symlinks planted in the workspace (SAFE-2).

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};

use crate::support::{Sandbox, manifest, snapshot};

/// A task that writes binary, empty, nested and Unicode-named outputs with
/// distinct modes, and binary stdout and stderr.
const RICH_TASK: &str = r#"set -e
echo run >> "$RUNS"
mkdir -p out/nested/deeper "out/ünïcødé dir"
printf '\000\001\002\377binary\n' > out/bin.dat
: > out/empty
printf 'x' > "out/ünïcødé dir/ファイル ✓.txt"
printf 'deep' > out/nested/deeper/leaf.txt
cat src/in.txt > out/copy.txt
chmod 755 out/bin.dat
chmod 600 out/empty
chmod 640 out/nested/deeper/leaf.txt
printf 'to stdout\000with a NUL\n'
printf 'to stderr\377\n' >&2
"#;

fn rich_run(sandbox: &Sandbox) -> crate::support::Outcome {
    sandbox.run(&[
        "run", "-v", "--input", "src/**", "--output", "out", "--script", RICH_TASK,
    ])
}

#[test]
fn claim_1_hit_reproduces_files_modes_and_streams() {
    let sandbox = Sandbox::new();
    sandbox.write("src/in.txt", b"input bytes\n");

    let fresh = rich_run(&sandbox);
    assert_eq!(fresh.code, 0, "{fresh:?}");
    assert!(fresh.was_miss(), "{fresh:?}");
    assert_eq!(sandbox.runs(), 1);
    let after_run = snapshot(&sandbox.ws.join("out"), &[]);
    assert_eq!(after_run.len(), 5, "{after_run:?}");
    assert_eq!(after_run["bin.dat"].mode, 0o755);
    assert_eq!(after_run["empty"].size, 0);

    // A hit into a workspace without the outputs.
    fs::remove_dir_all(sandbox.ws.join("out")).unwrap();
    let hit = rich_run(&sandbox);
    assert_eq!(hit.code, 0, "{hit:?}");
    assert!(hit.was_hit(), "{hit:?}");
    assert_eq!(sandbox.runs(), 1, "a hit does not run the command");
    assert_eq!(snapshot(&sandbox.ws.join("out"), &[]), after_run);
    assert_eq!(hit.stdout, fresh.stdout);
    assert_eq!(hit.stdout, b"to stdout\0with a NUL\n");
    // -v adds cachet's own lines to stderr; the command's bytes come first
    // on a hit only after the key line, so compare without cachet's lines.
    let without_cachet = |bytes: &[u8]| -> Vec<u8> {
        bytes
            .split_inclusive(|b| *b == b'\n')
            .filter(|line| !line.starts_with(b"cachet: "))
            .flatten()
            .copied()
            .collect()
    };
    assert_eq!(without_cachet(&hit.stderr), without_cachet(&fresh.stderr));
    assert_eq!(without_cachet(&hit.stderr), b"to stderr\xff\n");

    // A hit over damaged outputs rewrites them.
    fs::write(sandbox.ws.join("out/copy.txt"), b"tampered").unwrap();
    fs::set_permissions(
        sandbox.ws.join("out/bin.dat"),
        fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    let again = rich_run(&sandbox);
    assert!(again.was_hit(), "{again:?}");
    assert_eq!(snapshot(&sandbox.ws.join("out"), &[]), after_run);
}

#[test]
fn claim_1_without_verbose_a_hit_prints_only_the_recorded_streams() {
    let sandbox = Sandbox::new();
    let args = [
        "run",
        "--output",
        "out",
        "--",
        "sh",
        "-c",
        "echo run >> \"$RUNS\"; mkdir -p out; echo built > out/a; echo hello; echo warn >&2",
    ];
    let fresh = sandbox.run(&args);
    let hit = sandbox.run(&args);
    assert_eq!((fresh.code, hit.code), (0, 0));
    assert_eq!(sandbox.runs(), 1);
    assert_eq!(fresh.stdout, b"hello\n");
    assert_eq!(fresh.stderr, b"warn\n");
    assert_eq!(hit.stdout, fresh.stdout);
    assert_eq!(hit.stderr, fresh.stderr);
}

#[test]
fn claim_1_a_100_mib_output_round_trips() {
    let sandbox = Sandbox::new();
    let args = [
        "run",
        "--output",
        "out",
        "--script",
        "echo run >> \"$RUNS\"; mkdir -p out && dd if=/dev/urandom of=out/big bs=1048576 count=100 2>/dev/null",
    ];
    let fresh = sandbox.run(&args);
    assert_eq!(fresh.code, 0, "{fresh:?}");
    let before = snapshot(&sandbox.ws.join("out"), &[]);
    assert_eq!(before["big"].size, 100 * 1024 * 1024);
    fs::remove_dir_all(sandbox.ws.join("out")).unwrap();
    let hit = sandbox.run(&args);
    assert_eq!(hit.code, 0, "{hit:?}");
    assert_eq!(sandbox.runs(), 1);
    assert_eq!(snapshot(&sandbox.ws.join("out"), &[]), before);
}

#[test]
fn claim_1_every_key_component_change_is_a_miss() {
    let sandbox = Sandbox::new();
    sandbox.write("src/a.txt", b"one");
    let script = "echo run >> \"$RUNS\"; cat src/a.txt; printf '%s' \"$MODE\"";
    let run = |env_value: Option<&str>, set: &str, extra_arg: Option<&str>| {
        let mut command = sandbox.cachet();
        command.args([
            "run", "-v", "--input", "src/**", "--env", "TOOL", "--set", set, "--", "sh", "-c",
            script,
        ]);
        if let Some(arg) = extra_arg {
            command.arg(arg);
        }
        match env_value {
            Some(value) => command.env("TOOL", value),
            None => command.env_remove("TOOL"),
        };
        crate::support::Outcome::of(command.output().unwrap())
    };

    let first = run(Some("v1"), "MODE=release", None);
    assert!(first.was_miss(), "{first:?}");
    assert_eq!(first.stdout, b"onerelease", "--set reaches the command");
    assert!(run(Some("v1"), "MODE=release", None).was_hit());

    // An input byte.
    sandbox.write("src/a.txt", b"onf");
    assert!(run(Some("v1"), "MODE=release", None).was_miss());
    assert!(run(Some("v1"), "MODE=release", None).was_hit());
    // A new input file.
    sandbox.write("src/b.txt", b"");
    assert!(run(Some("v1"), "MODE=release", None).was_miss());
    // An --env value, an empty value, and unset (distinct from empty).
    assert!(run(Some("v2"), "MODE=release", None).was_miss());
    assert!(run(Some(""), "MODE=release", None).was_miss());
    assert!(run(None, "MODE=release", None).was_miss());
    assert!(run(None, "MODE=release", None).was_hit());
    // A --set pair.
    let debug = run(None, "MODE=debug", None);
    assert!(debug.was_miss(), "{debug:?}");
    assert_eq!(debug.stdout, b"onfdebug");
    // An argv element.
    assert!(run(None, "MODE=debug", Some("extra")).was_miss());
    assert!(run(None, "MODE=debug", Some("extra")).was_hit());
    assert_eq!(sandbox.runs(), 8);
}

#[test]
fn claim_1_run_and_key_agree() {
    let sandbox = Sandbox::new();
    sandbox.write("src/a.txt", b"a");
    sandbox.write("README", b"r");
    let flags = [
        "--input", "**", "--env", "HOME", "--set", "X=1", "--", "true",
    ];
    let key = sandbox.key(&flags);
    let mut args = vec!["run", "-v"];
    args.extend_from_slice(&flags);
    let run = sandbox.run(&args);
    assert!(
        run.stderr_text()
            .contains(&format!("miss (miss-no-entry) {key}")),
        "{run:?}"
    );
    let status = sandbox.run(&["status", "--key", &key]);
    assert_eq!((status.code, status.stdout_text().as_str()), (0, "hit\n"));
}

#[test]
fn op_2_a_failing_command_is_not_stored_and_its_code_passes_through() {
    let sandbox = Sandbox::new();
    let args = [
        "run",
        "--output",
        "out",
        "--",
        "sh",
        "-c",
        "echo run >> \"$RUNS\"; mkdir -p out; echo partial > out/a; exit 3",
    ];
    assert_eq!(sandbox.run(&args).code, 3);
    assert_eq!(sandbox.run(&args).code, 3);
    assert_eq!(sandbox.runs(), 2, "a failed run is never replayed");
    let key = sandbox.key(&args[3..]);
    let status = sandbox.run(&["status", "--key", &key]);
    assert_eq!(
        (status.code, status.stdout_text().as_str()),
        (1, "miss-no-entry\n")
    );

    let killed = sandbox.run(&["run", "--", "sh", "-c", "kill -TERM $$"]);
    assert_eq!(killed.code, 128 + 15, "{killed:?}");
    let missing = sandbox.run(&["run", "--", "cachet-test-no-such-command"]);
    assert_eq!(missing.code, 127, "{missing:?}");
    assert!(
        missing
            .stderr_text()
            .contains("cachet-test-no-such-command"),
        "{missing:?}"
    );
}

#[test]
fn op_2_symlink_and_special_outputs_are_reported_and_not_stored() {
    let sandbox = Sandbox::new();
    let outside = sandbox.outside.join("secret");
    fs::write(&outside, b"secret").unwrap();
    let script = format!(
        "mkdir -p out && echo ok > out/file && ln -sf '{}' out/link && rm -f out/fifo && mkfifo out/fifo",
        outside.display()
    );
    let args = ["run", "--output", "out", "--script", &script];
    let outcome = sandbox.run(&args);
    assert_eq!(outcome.code, 73, "{outcome:?}");
    let text = outcome.stderr_text();
    assert!(text.contains("/out/link (symlink)"), "{text}");
    assert!(text.contains("/out/fifo (special file)"), "{text}");
    assert!(text.contains("not cached"), "{text}");
    let key = sandbox.key(&["--output", "out", "--script", &script]);
    assert_eq!(sandbox.run(&["status", "--key", &key]).code, 1);
}

/// OP-3: an output whose path is close to `PATH_MAX` (4,021 bytes) is
/// restored into its missing directory after a clean, although its path in
/// the restore's mirror of that directory (below the scratch directory)
/// would be longer than the kernel resolves.
#[test]
fn op_3_an_output_path_near_path_max_restores_into_a_missing_directory() {
    let sandbox = Sandbox::new();
    let deep = (0..16)
        .map(|i| format!("{i:0>250}"))
        .collect::<Vec<_>>()
        .join("/");
    let path = format!("out/{deep}/f");
    assert_eq!(path.len(), 4021);
    let script = format!("echo run >> \"$RUNS\"; mkdir -p 'out/{deep}'; echo built > '{path}'");
    let args = ["-v", "run", "--output", "out", "--", "sh", "-c", &script];
    let first = sandbox.run(&args);
    assert_eq!(first.code, 0, "{first:?}");
    fs::remove_dir_all(sandbox.ws.join("out")).unwrap();
    let hit = sandbox.run(&args);
    assert_eq!(hit.code, 0, "{hit:?}");
    assert!(hit.was_hit(), "{hit:?}");
    assert!(!hit.stderr_text().contains("warning"), "{hit:?}");
    assert_eq!(sandbox.runs(), 1, "the hit did not run the command");
    // The absolute path is longer than PATH_MAX: read it from the workspace.
    let restored = std::process::Command::new("cat")
        .arg(&path)
        .current_dir(&sandbox.ws)
        .output()
        .unwrap();
    assert_eq!(restored.stdout, b"built\n", "{restored:?}");
}

#[test]
fn safe_2_a_planted_symlink_is_never_written_through() {
    let sandbox = Sandbox::new();
    let args = [
        "run",
        "--output",
        "out",
        "--",
        "sh",
        "-c",
        "echo run >> \"$RUNS\"; mkdir -p out; echo built > out/x",
    ];
    assert_eq!(sandbox.run(&args).code, 0);
    let key = sandbox.key(&args[1..]);

    // `out` becomes a symlink to a directory outside the workspace.
    fs::remove_dir_all(sandbox.ws.join("out")).unwrap();
    symlink(&sandbox.outside, sandbox.ws.join("out")).unwrap();
    let refused = sandbox.run(&args);
    assert_eq!(refused.code, 70, "{refused:?}");
    assert!(refused.stderr_text().contains("'/out'"), "{refused:?}");
    assert_eq!(sandbox.runs(), 1, "the command does not run either");
    let restore = sandbox.run(&["restore", "--key", &key]);
    assert_eq!(restore.code, 70, "{restore:?}");
    assert_eq!(fs::read_dir(&sandbox.outside).unwrap().count(), 0);

    // `out/x` itself a symlink to a file outside: replaced, not followed.
    fs::remove_file(sandbox.ws.join("out")).unwrap();
    fs::create_dir(sandbox.ws.join("out")).unwrap();
    let target = sandbox.outside.join("victim");
    fs::write(&target, b"untouched").unwrap();
    symlink(&target, sandbox.ws.join("out/x")).unwrap();
    let hit = sandbox.run(&args);
    assert_eq!(hit.code, 0, "{hit:?}");
    assert_eq!(fs::read(&target).unwrap(), b"untouched");
    let restored = fs::symlink_metadata(sandbox.ws.join("out/x")).unwrap();
    assert!(restored.is_file());
    assert_eq!(fs::read(sandbox.ws.join("out/x")).unwrap(), b"built\n");
    assert_eq!(sandbox.runs(), 1);
}

/// The case that made SEL-6: with no `--input`, editing a file the command
/// reads must be a miss, never a replay of the old output.
#[test]
fn sel_6_without_input_an_edited_file_is_a_miss() {
    let sandbox = Sandbox::new();
    sandbox.write("in.txt", b"first\n");
    let args = [
        "run",
        "-v",
        "--output",
        "out.txt",
        "--",
        "sh",
        "-c",
        "echo run >> \"$RUNS\"; cat in.txt > out.txt",
    ];
    let first = sandbox.run(&args);
    assert!(first.was_miss(), "{first:?}");
    // The output it wrote is not an input: the same run is a hit.
    let again = sandbox.run(&args);
    assert!(again.was_hit(), "{again:?}");
    assert_eq!(sandbox.runs(), 1);

    sandbox.write("in.txt", b"second\n");
    let edited = sandbox.run(&args);
    assert!(edited.was_miss(), "{edited:?}");
    assert_eq!(sandbox.runs(), 2);
    assert_eq!(fs::read(sandbox.ws.join("out.txt")).unwrap(), b"second\n");

    // A new file is an input too.
    sandbox.write("notes/new.md", b"x");
    assert!(sandbox.run(&args).was_miss());
    assert_eq!(sandbox.runs(), 3);
}

/// `cachet key` shows the default inputs (SEL-6), agrees with `run`, and
/// `--input` narrows them.
#[test]
fn sel_6_key_shows_the_default_inputs_and_input_narrows_them() {
    let sandbox = Sandbox::new();
    sandbox.write(".gitignore", b"*.log\n");
    sandbox.write("a.txt", b"a");
    sandbox.write("debug.log", b"ignored");
    sandbox.write("out/old.bin", b"stale output");
    sandbox.write(".git/HEAD", b"ref: refs/heads/main\n");
    let inputs_of = |args: &[&str]| -> Vec<String> {
        let mut all = vec!["key", "--json"];
        all.extend_from_slice(args);
        let outcome = sandbox.run(&all);
        assert_eq!(outcome.code, 0, "{outcome:?}");
        outcome.json()["input_files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|input| input["path"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        inputs_of(&["--output", "out", "--", "true"]),
        ["/.gitignore", "/a.txt"]
    );
    assert_eq!(
        inputs_of(&["--", "true"]),
        ["/.gitignore", "/a.txt", "/out/old.bin"]
    );
    assert_eq!(
        inputs_of(&["--input", "out/**", "--output", "out", "--", "true"]),
        ["/out/old.bin"]
    );

    let key = sandbox.key(&["--output", "out", "--", "true"]);
    let run = sandbox.run(&["run", "-v", "--output", "out", "--", "true"]);
    assert!(
        run.stderr_text()
            .contains(&format!("miss (miss-no-entry) {key}")),
        "{run:?}"
    );
}

#[test]
fn cache_dir_and_git_are_never_inputs_or_outputs() {
    let sandbox = Sandbox::new();
    sandbox.write(".git/HEAD", b"ref: refs/heads/main\n");
    sandbox.write("sub/.git", b"gitdir: ../.git/modules/sub\n");
    sandbox.write(".gitignore", b"/gen/\n");
    sandbox.write("src/a.txt", b"a");
    let args = [
        "run",
        "--input",
        "**",
        "--output",
        "**",
        "--",
        "sh",
        "-c",
        "echo run >> \"$RUNS\"; mkdir -p gen; echo g > gen/g",
    ];
    assert_eq!(sandbox.run(&args).code, 0);
    // The cache gained an entry and .git changed: still a hit.
    sandbox.write(".git/HEAD", b"ref: refs/heads/other\n");
    assert_eq!(sandbox.run(&args).code, 0);
    assert_eq!(sandbox.runs(), 1);

    let key_json = sandbox.run(&["key", "--json", "--input", "**", "--", "true"]);
    let inputs: Vec<String> = key_json.json()["input_files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|input| input["path"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(inputs, ["/.gitignore", "/src/a.txt"]);

    let key = sandbox.key(&[&args[1..3], &args[5..]].concat());
    let stored = manifest(&sandbox.ws.join(".cachet"), &key);
    let outputs: Vec<&str> = stored["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|output| output["workspace_absolute_path"].as_str().unwrap())
        .collect();
    assert_eq!(outputs, ["/.gitignore", "/gen/g", "/src/a.txt"]);
}

#[test]
fn cache_dir_defaults_to_the_environment_variable() {
    let sandbox = Sandbox::new();
    let cache = sandbox.root.join("shared-cache");
    let mut command = sandbox.cachet();
    command.env("CACHET_CACHE_DIR", &cache).args([
        "run",
        "--",
        "sh",
        "-c",
        "echo run >> \"$RUNS\"",
    ]);
    assert!(command.status().unwrap().success());
    assert!(!sandbox.ws.join(".cachet").exists());
    assert_eq!(fs::read_dir(&cache).unwrap().count(), 1, "one shard");
    let hit = sandbox.run(&[
        "run",
        "--cache-dir",
        cache.to_str().unwrap(),
        "--",
        "sh",
        "-c",
        "echo run >> \"$RUNS\"",
    ]);
    assert_eq!(hit.code, 0);
    assert_eq!(sandbox.runs(), 1);
}

/// A task writing one output, `out/a`, from its input.
const FRESH_TASK: &str = r#"echo run >> "$RUNS"; mkdir -p out; cat src/in.txt > out/a; echo ran"#;

/// The key flags of [`FRESH_TASK`], for `run` and `key` alike.
const FRESH_ARGS: [&str; 6] = [
    "--input", "src/**", "--output", "out", "--script", FRESH_TASK,
];

#[test]
fn safe_9_run_over_an_entry_no_store_writes_runs_the_command_and_replaces_it() {
    use cachet_tests::hostile::Entry;

    let planted = b"planted, never to be restored\n".to_vec();
    // Each under the key `cachet run` derives, with the cache directory at
    // its default, `<workspace>/.cachet` (SAFE-8).
    let cases: [(&str, &[&str]); 6] = [
        ("SAFE-5", &["/out/a", "/out/a"]),
        ("SAFE-5 out of order", &["/out/b", "/out/a", "/out/b"]),
        ("SAFE-6", &["/out/a", "/out/a/b"]),
        ("SAFE-7", &["/.git/hooks/post-checkout", "/out/a"]),
        ("SAFE-8", &["/.cachet/planted", "/out/a"]),
        ("SAFE-8 above", &["/.cachet", "/out/a"]),
    ];
    for (rule, paths) in cases {
        let sandbox = Sandbox::new();
        sandbox.write("src/in.txt", b"fresh\n");
        fs::create_dir(sandbox.ws.join(".git")).unwrap();
        let key = sandbox.key(&FRESH_ARGS);
        let entry = Entry {
            key: key.clone(),
            outputs: paths
                .iter()
                .map(|path| (String::from(*path), planted.clone(), 0o755))
                .collect(),
            stdout: b"planted stdout\n".to_vec(),
            stderr: Vec::new(),
        };
        let cache = sandbox.ws.join(".cachet");
        entry.write_at(&entry.dir(&cache));
        let status = sandbox.run(&["status", "--json", "--key", &key]);
        assert_eq!(status.code, 1, "{rule}: {status:?}");
        assert_eq!(status.json()["status"], "miss-corrupt", "{rule}");

        let mut run_args = vec!["run", "-v"];
        run_args.extend_from_slice(&FRESH_ARGS);
        let ran = sandbox.run(&run_args);
        assert_eq!(ran.code, 0, "{rule}: {ran:?}");
        assert!(
            ran.stderr_text().contains("miss (miss-corrupt)"),
            "{rule}: {ran:?}"
        );
        assert_eq!(ran.stdout, b"ran\n", "{rule}");
        assert_eq!(sandbox.runs(), 1, "{rule}");
        // Nothing of the planted entry was written: only what the command
        // wrote is there.
        let workspace = snapshot(&sandbox.ws, &[".cachet"]);
        assert_eq!(
            workspace.keys().collect::<Vec<_>>(),
            ["out/a", "src/in.txt"],
            "{rule}"
        );
        assert_eq!(fs::read(sandbox.ws.join("out/a")).unwrap(), b"fresh\n");
        assert!(!cache.join("planted").exists(), "{rule}");

        // The store replaced the corrupt entry: a hit from now on.
        let stored = manifest(&cache, &key);
        let outputs = stored["outputs"].as_array().unwrap();
        assert_eq!(outputs.len(), 1, "{rule}: {stored}");
        assert_eq!(outputs[0]["workspace_absolute_path"], "/out/a", "{rule}");
        fs::remove_dir_all(sandbox.ws.join("out")).unwrap();
        let hit = sandbox.run(&run_args);
        assert_eq!(hit.code, 0, "{rule}: {hit:?}");
        assert!(hit.was_hit(), "{rule}: {hit:?}");
        assert_eq!(sandbox.runs(), 1, "{rule}");
        assert_eq!(hit.stdout, b"ran\n", "{rule}");
        assert_eq!(fs::read(sandbox.ws.join("out/a")).unwrap(), b"fresh\n");
    }
}
