//! Configuration files end to end (CONF-1..4): `cachet.toml` in the
//! workspace and in the user's configuration directory, below the
//! environment and the flags.

use std::fs;
use std::path::Path;

use std::process::Command;

use crate::support::{Outcome, Sandbox};

const STEP: &[&str] = &[
    "run",
    "--input",
    "src/**",
    "--output",
    "out.txt",
    "--",
    "sh",
    "-c",
    "echo built > out.txt; echo run >> \"$RUNS\"",
];

/// The tenants that have entry records on the `file://` remote at `dir`.
fn tenants_on(dir: &Path) -> Vec<String> {
    let Ok(namespaces) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut tenants = Vec::new();
    for namespace in namespaces {
        let Ok(listing) = fs::read_dir(namespace.unwrap().path().join("tenants")) else {
            continue;
        };
        for tenant in listing {
            tenants.push(tenant.unwrap().file_name().into_string().unwrap());
        }
    }
    tenants.sort();
    tenants
}

fn user_config(sandbox: &Sandbox, text: &str) {
    let dir = sandbox.root.join("config").join("cachet");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("cachet.toml"), text).unwrap();
}

#[test]
fn conf_1_the_workspace_file_configures_remotes_and_the_environment_overrides_it() {
    let remote = tempfile::tempdir().unwrap();
    let sandbox = Sandbox::new();
    sandbox.write("src/a", b"a");
    sandbox.write(
        "cachet.toml",
        format!(
            "[remote]\nurls = [\"file://{}\"]\ntenant = \"main\"\n",
            remote.path().display()
        )
        .as_bytes(),
    );
    let first = sandbox.run(STEP);
    assert_eq!(first.code, 0, "{first:?}");
    assert_eq!(
        tenants_on(remote.path()),
        ["main"],
        "pushed under the file's tenant"
    );

    // A second machine: the same workspace, an empty cache directory.
    let second = Sandbox::new();
    second.write("src/a", b"a");
    second.write(
        "cachet.toml",
        &fs::read(sandbox.ws.join("cachet.toml")).unwrap(),
    );
    // CONF-1: a variable that is set, even empty, hides the file.
    let without = outcome(second.cachet().env("CACHET_REMOTE", "").args(STEP));
    assert_eq!(without.code, 0, "{without:?}");
    assert_eq!(second.runs(), 1, "no remote: the command ran");
    fs::remove_dir_all(second.ws.join(".cachet")).unwrap();
    let with = second.run(STEP);
    assert_eq!(with.code, 0, "{with:?}");
    assert_eq!(second.runs(), 1, "the file's remote served a hit: {with:?}");
}

#[test]
fn conf_1_the_users_file_ranks_below_the_workspaces() {
    let remote = tempfile::tempdir().unwrap();
    let sandbox = Sandbox::new();
    sandbox.write("src/a", b"a");
    user_config(
        &sandbox,
        &format!(
            "[remote]\nurls = [\"file://{}\"]\ntenant = \"from-user\"\n",
            remote.path().display()
        ),
    );
    assert_eq!(sandbox.run(STEP).code, 0);
    assert_eq!(tenants_on(remote.path()), ["from-user"]);

    sandbox.write("src/a", b"edited");
    sandbox.write("cachet.toml", b"[remote]\ntenant = \"from-workspace\"\n");
    let run = sandbox.run(STEP);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        tenants_on(remote.path()),
        ["from-user", "from-workspace"],
        "the workspace's tenant wins, the user's remote list still applies"
    );
    let flag = sandbox.run(&[&["run", "--tenant", "from-flag"], &STEP[1..]].concat());
    assert_eq!(flag.code, 0, "{flag:?}");
    assert_eq!(
        tenants_on(remote.path()),
        ["from-user", "from-workspace"],
        "a hit pushes nothing"
    );
    sandbox.write("src/a", b"edited again");
    let flag = sandbox.run(&[&["run", "--tenant", "from-flag"], &STEP[1..]].concat());
    assert_eq!(flag.code, 0, "{flag:?}");
    assert_eq!(
        tenants_on(remote.path()),
        ["from-flag", "from-user", "from-workspace"],
        "the flag wins over both files"
    );
}

#[test]
fn conf_2_a_relative_cache_dir_is_relative_to_its_file_and_the_memo_can_be_turned_off() {
    let sandbox = Sandbox::new();
    sandbox.write("src/a", b"a");
    sandbox.write(
        "cachet.toml",
        b"cache_dir = \"../shared-cache\"\n[memo]\nenabled = false\n",
    );
    let sub = sandbox.ws.join("src");
    let run = outcome(
        sandbox
            .cachet()
            .current_dir(&sub)
            .args(["--workspace", ".."])
            .args(STEP),
    );
    assert_eq!(run.code, 0, "{run:?}");
    let shared = sandbox.root.join("shared-cache");
    assert!(
        fs::read_dir(&shared).is_ok_and(|mut entries| entries.next().is_some()),
        "the entry is in {}: {run:?}",
        shared.display()
    );
    assert!(!sandbox.ws.join(".cachet").exists());
    // Out of the racy window (MEMO-4), so a memo, were it on, would be used.
    std::thread::sleep(
        core::time::Duration::from_nanos(cachet_core::memo::RACY_WINDOW_NANOS)
            + core::time::Duration::from_millis(20),
    );
    for _ in 0..2 {
        let key = sandbox.run(&["key", "--json", "--input", "src/**", "--", "true"]);
        assert_eq!(key.code, 0, "{key:?}");
        assert_eq!(key.json()["files_from_memo"], 0, "memo.enabled = false");
        assert_eq!(key.json()["files_hashed"], 1);
    }
    assert!(!sandbox.root.join("shared-cache").join("memo").exists());
}

#[test]
fn conf_3_a_bad_file_is_a_usage_error_naming_the_file_and_the_key() {
    for (text, named) in [
        ("[remote]\nurl = \"file:///tmp\"\n", "remote.url"),
        ("[remote]\ntenant = \"../up\"\n", "remote.tenant"),
        ("[remote]\nurls = [\"ftp://host/x\"]\n", "remote.urls"),
        ("[memo\n", "not valid TOML"),
        // CONF-3: a committed file is read by pull-request authors too.
        (
            "[remote]\nsigning_key = \"ci-1:3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c\"\n",
            "remote.signing_key",
        ),
    ] {
        let sandbox = Sandbox::new();
        sandbox.write("src/a", b"a");
        sandbox.write("cachet.toml", text.as_bytes());
        let run = sandbox.run(STEP);
        assert_eq!(run.code, 65, "{text}: {run:?}");
        let stderr = run.stderr_text();
        assert!(stderr.contains("cachet.toml"), "{text}: {stderr}");
        assert!(stderr.contains(named), "{text}: {stderr}");
        assert_eq!(sandbox.runs(), 0, "nothing ran");
    }
}

/// REMOTE-11 and REMOTE-14 through the user's file: a pull request's
/// machine whose file sets its tenant, `trust = ["main"]` and the signing
/// key reads `main`'s signed entry and writes nothing under `main`.
#[test]
fn remote_11_trust_and_the_signing_key_from_the_users_file() {
    let remote = tempfile::tempdir().unwrap();
    let url = format!("file://{}", remote.path().display());
    let signing_key = format!("ci-1:{}", "3c".repeat(32));
    let main = Sandbox::new();
    main.write("src/a", b"a");
    user_config(
        &main,
        &format!(
            "[remote]\nurls = [\"{url}\"]\ntenant = \"main\"\nsigning_key = \"{signing_key}\"\n"
        ),
    );
    assert_eq!(main.run(STEP).code, 0);
    assert_eq!(tenants_on(remote.path()), ["main"]);

    let pr = Sandbox::new();
    pr.write("src/a", b"a");
    user_config(
        &pr,
        &format!(
            "[remote]\nurls = [\"{url}\"]\ntenant = \"pr-9\"\ntrust = [\"main\"]\nsigning_key = \"{signing_key}\"\n"
        ),
    );
    let hit = pr.run(&[&["-v"], STEP].concat());
    assert_eq!(hit.code, 0, "{hit:?}");
    assert_eq!(
        pr.runs(),
        0,
        "main's signed entry served the pull request: {hit:?}"
    );
    assert!(hit.stderr_text().contains("tenant main: hit"), "{hit:?}");

    // A wrong key in the file: main's record is refused, the command runs,
    // and its result goes under the pull request's tenant only.
    let other = Sandbox::new();
    other.write("src/a", b"a");
    user_config(
        &other,
        &format!(
            "[remote]\nurls = [\"{url}\"]\ntenant = \"pr-9\"\ntrust = [\"main\"]\nsigning_key = \"ci-2:{}\"\n",
            "3c".repeat(32)
        ),
    );
    let miss = other.run(STEP);
    assert_eq!(miss.code, 0, "{miss:?}");
    assert_eq!(other.runs(), 1, "{miss:?}");
    assert!(
        miss.stderr_text().contains("signed with key id 'ci-1'"),
        "{miss:?}"
    );
    assert!(
        !miss.stderr_text().contains(&"3c".repeat(8)),
        "no secret printed"
    );
    assert_eq!(tenants_on(remote.path()), ["main", "pr-9"]);
}

fn outcome(command: &mut Command) -> Outcome {
    Outcome::of(command.output().unwrap())
}

/// REMOTE-19: `-v` ends with one line counting hits and misses per tier
/// and the bytes moved: a store pushes, a fresh machine's run is a remote
/// hit that brings bytes down, and its next run is a local hit.
#[test]
fn remote_19_the_v_line_counts_each_tier_and_the_bytes_moved() {
    let remote = tempfile::tempdir().unwrap();
    let url = format!("file://{}", remote.path().display());
    let stats = |outcome: &Outcome| -> String {
        let text = outcome.stderr_text();
        let last = text.lines().last().unwrap_or_default().to_owned();
        assert!(
            last.starts_with("cachet: remote statistics: "),
            "{outcome:?}"
        );
        last
    };
    let run = |sandbox: &Sandbox| {
        let outcome = sandbox.run(&[&["-v", "run", "--remote", &url], &STEP[1..]].concat());
        assert_eq!(outcome.code, 0, "{outcome:?}");
        outcome
    };
    let first = Sandbox::new();
    first.write("src/a", b"a");
    let pushed = stats(&run(&first));
    assert!(
        pushed.contains(&format!("local 0 hits 1 miss; {url} 0 hits 1 miss")),
        "{pushed}"
    );
    assert!(pushed.contains("errors: none; 0 bytes down, "), "{pushed}");
    assert!(
        !pushed.contains(", 0 bytes up"),
        "the push sent bytes: {pushed}"
    );

    let second = Sandbox::new();
    second.write("src/a", b"a");
    let fetched = stats(&run(&second));
    assert_eq!(second.runs(), 0);
    assert!(
        fetched.contains(&format!("local 0 hits 1 miss; {url} 1 hit 0 misses")),
        "{fetched}"
    );
    assert!(
        !fetched.contains("; 0 bytes down"),
        "the hit brought bytes: {fetched}"
    );
    let local = stats(&run(&second));
    assert!(
        local.contains(&format!("local 1 hit 0 misses; {url} 0 hits 0 misses")),
        "{local}"
    );
    assert!(local.contains("0 bytes down, 0 bytes up"), "{local}");
}
