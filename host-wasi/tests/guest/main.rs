//! The guest against the native binding (issue #4, part 4).
//!
//! Every scenario runs the same command lines through the native plumbing
//! (`cachet_cli::run_plumbing` over `CapStdFilesystem`, which is what the
//! `cachet` binary runs) and through the `cachet-wasi` guest under the
//! embedding, and demands identical exit codes, stdout and stderr, and
//! identical workspace and cache trees (apart from scratch names and
//! timestamps).
//!
//! The guest module is built beforehand (see host-wasi/README.md); its path
//! is `$CACHET_WASI_GUEST`, else `$CARGO_TARGET_DIR` (or the workspace's
//! `target/`) + `wasm32-wasip1/release/cachet-wasi.wasm`.

extern crate alloc;

use alloc::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use cachet::fs::CapStdFilesystem;
use cachet::tasks::Threads;
use cachet_cli::{self as cli, Host, PlumbingCli, SystemContext};
use cachet_core::cache::{Cache, Options};
use cachet_wasi::embed::{Embedding, GuestOutput, is_read_only};

fn guest_path() -> PathBuf {
    if let Some(path) = std::env::var_os("CACHET_WASI_GUEST") {
        return PathBuf::from(path);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("wasm32-wasip1/release/cachet-wasi.wasm")
}

fn embedding() -> &'static Embedding {
    static EMBEDDING: OnceLock<Embedding> = OnceLock::new();
    EMBEDDING.get_or_init(|| {
        let path = guest_path();
        Embedding::from_file(&path).unwrap_or_else(|e| {
            panic!(
                "{e}\n(looked for the guest at {}; set CACHET_WASI_GUEST)",
                path.display()
            )
        })
    })
}

fn guest(workspace: &Path, cache: &Path, args: &[&str]) -> GuestOutput {
    embedding()
        .run(workspace, cache, args)
        .unwrap_or_else(|e| panic!("guest {args:?}: {e}"))
}

/// What the native `cachet` binary does for a plumbing subcommand.
fn native(workspace: &Path, cache: &Path, args: &[&str]) -> GuestOutput {
    let mut argv = vec!["cachet"];
    argv.extend_from_slice(args);
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    let line = match PlumbingCli::parse_from_named("cachet", argv) {
        Ok(line) => line,
        Err(error) => {
            let status = cli::report_usage_error(&error, &mut stdout, &mut stderr);
            return GuestOutput {
                status: i32::from(status),
                stdout,
                stderr,
            };
        }
    };
    let fs = CapStdFilesystem::open_ambient(workspace, cache).expect("open roots");
    let workspace = workspace.canonicalize().unwrap();
    let cache_dir = cache.canonicalize().unwrap();
    let excluded: Vec<String> = cli::parse::excluded_dir(&workspace, &cache_dir)
        .into_iter()
        .collect();
    // As the native binary does (SAFE-8).
    let options = Options {
        cache_dir_in_workspace: excluded.first().cloned(),
        ..line.globals.cache_options()
    };
    let host = Host::new(Some(workspace), excluded);
    let cache = Cache::with_options(fs, options).with_tasks(Threads::new());
    let status = cli::run_plumbing(
        &line.command,
        &host,
        &cache,
        &mut SystemContext::new(),
        &mut stdout,
        &mut stderr,
    );
    GuestOutput {
        status: i32::from(status),
        stdout,
        stderr,
    }
}

/// The output as text, with `key`'s `hash_seconds` blanked (how long this
/// run took, not what it computed), and an entry's `created_at_unix` and
/// `last_used_unix` (OP-10: when each host stored and used its own copy).
fn text(output: &GuestOutput) -> String {
    let stdout: String = String::from_utf8_lossy(&output.stdout)
        .split_inclusive('\n')
        .map(|line| {
            let member = line.trim_start();
            match ["hash_seconds", "created_at_unix", "last_used_unix"]
                .into_iter()
                .find(|name| member.starts_with(&format!("\"{name}\": ")))
            {
                Some(name) => format!("  \"{name}\": <blanked>\n"),
                None => line.to_owned(),
            }
        })
        .collect();
    format!(
        "status {}\n--- stdout\n{}--- stderr\n{}",
        output.status,
        stdout,
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Runs `args` on both hosts, each over its own copy, and demands the same
/// result.
fn both(native_roots: (&Path, &Path), guest_roots: (&Path, &Path), args: &[&str]) -> GuestOutput {
    let n = native(native_roots.0, native_roots.1, args);
    let g = guest(guest_roots.0, guest_roots.1, args);
    assert_eq!(text(&n), text(&g), "native vs guest for {args:?}");
    n
}

/// A file tree as (relative path → (kind, mode, bytes)), scratch names
/// (a component starting with `.cachet-`, `.tmp-`, `.restore-`) skipped and
/// the manifest's `created_at_unix` line blanked.
fn tree(root: &Path) -> BTreeMap<String, (char, u32, Vec<u8>)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            let name = entry.file_name().into_string().unwrap();
            if name.starts_with(".tmp-") || name.starts_with(".restore-") {
                continue;
            }
            let relative = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let meta = fs::symlink_metadata(&path).unwrap();
            let mode = meta.permissions().mode() & 0o7777;
            if meta.is_dir() {
                out.insert(relative, ('d', mode, Vec::new()));
                stack.push(path);
            } else if meta.is_symlink() {
                let target = fs::read_link(&path).unwrap();
                out.insert(
                    relative,
                    ('l', 0, target.to_string_lossy().into_owned().into_bytes()),
                );
            } else {
                let mut bytes = fs::read(&path).unwrap();
                if name == "manifest.json" {
                    let text = String::from_utf8(bytes).unwrap();
                    bytes = text
                        .lines()
                        .filter(|line| !line.contains("\"created_at_unix\""))
                        .collect::<Vec<_>>()
                        .join("\n")
                        .into_bytes();
                }
                out.insert(relative, ('f', mode, bytes));
            }
        }
    }
    out
}

fn write(path: &Path, bytes: &[u8], mode: u32) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, bytes).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// A workspace with sources, outputs of several modes and captured streams.
fn populate(workspace: &Path) {
    write(
        &workspace.join("src/main.c"),
        b"int main() { return 0; }\n",
        0o644,
    );
    write(&workspace.join("src/util.h"), b"#define X 1\n", 0o644);
    write(&workspace.join("out/bin/app"), b"\x7fELF pretend\n", 0o755);
    write(&workspace.join("out/lib/data.txt"), b"same bytes\n", 0o644);
    write(&workspace.join("out/lib/copy.txt"), b"same bytes\n", 0o600);
    write(&workspace.join("out/empty"), b"", 0o640);
    write(
        &workspace.join("logs/stdout.txt"),
        b"built 3 files\n",
        0o644,
    );
    write(
        &workspace.join("logs/stderr.txt"),
        b"warning: none\n",
        0o644,
    );
}

const KEY: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

struct Pair {
    _dir: tempfile::TempDir,
    nw: PathBuf,
    nc: PathBuf,
    gw: PathBuf,
    gc: PathBuf,
}

impl Pair {
    fn new() -> Pair {
        let dir = tempfile::tempdir().unwrap();
        let nw = dir.path().join("native/ws");
        let gw = dir.path().join("guest/ws");
        for ws in [&nw, &gw] {
            fs::create_dir_all(ws).unwrap();
            populate(ws);
        }
        // The cache inside the workspace, as by default (`.cachet`).
        let nc = nw.join(".cachet");
        let gc = gw.join(".cachet");
        Pair {
            _dir: dir,
            nw,
            nc,
            gw,
            gc,
        }
    }

    fn both(&self, args: &[&str]) -> GuestOutput {
        both((&self.nw, &self.nc), (&self.gw, &self.gc), args)
    }

    fn assert_same_trees(&self) {
        assert_eq!(tree(&self.nw), tree(&self.gw), "workspace and cache trees");
    }
}

const STORE: &[&str] = &[
    "store",
    "--key",
    KEY,
    "--output",
    "out",
    "--stdout-file",
    "logs/stdout.txt",
    "--stderr-file",
    "logs/stderr.txt",
    "--json",
];

#[test]
fn conformance_scenario_matches_native() {
    let pair = Pair::new();
    let key_args = [
        "key",
        "--input",
        "src/**",
        "--set",
        "MODE=release",
        "--json",
        "--",
        "cc",
        "main.c",
    ];
    let key = pair.both(&key_args);
    assert_eq!(key.status, 0, "{}", text(&key));

    assert_eq!(pair.both(&["status", "--key", KEY, "--json"]).status, 1);
    let stored = pair.both(STORE);
    assert_eq!(stored.status, 0, "{}", text(&stored));
    // The executable's mode reached the guest's manifest.
    assert!(String::from_utf8_lossy(&stored.stdout).contains("\"mode\": 493"));
    pair.assert_same_trees();
    assert_eq!(pair.both(STORE).status, 0, "already present");
    assert_eq!(pair.both(&["status", "--key", KEY, "--json"]).status, 0);
    // OP-9: the guest lists the same entry with the same statistics.
    let listed = pair.both(&["list", "--json"]);
    assert_eq!(listed.status, 0, "{}", text(&listed));
    assert!(String::from_utf8_lossy(&listed.stdout).contains(KEY));

    for ws in [&pair.nw, &pair.gw] {
        fs::remove_dir_all(ws.join("out")).unwrap();
    }
    let restored = pair.both(&["restore", "--key", KEY, "--json"]);
    assert_eq!(restored.status, 0, "{}", text(&restored));
    pair.assert_same_trees();
    let mode = |ws: &Path, p: &str| fs::metadata(ws.join(p)).unwrap().permissions().mode() & 0o7777;
    for (path, expected) in [
        ("out/bin/app", 0o755),
        ("out/lib/copy.txt", 0o600),
        ("out/empty", 0o640),
        ("out/lib/data.txt", 0o644),
    ] {
        assert_eq!(mode(&pair.gw, path), expected, "guest restored {path}");
    }

    // Restore without --json replays the streams.
    let replay = pair.both(&["restore", "--key", KEY]);
    assert_eq!(replay.stdout, b"built 3 files\n");
    assert_eq!(replay.stderr, b"warning: none\n");

    for args in [
        &["info", "--json"][..],
        &["verify", "--json"],
        &["clean", "--soft", "--json"],
        &["clean", "--max-age", "1000d", "--dry-run", "--json"],
        &["info", "--json"],
    ] {
        let out = pair.both(args);
        assert_eq!(out.status, 0, "{args:?}: {}", text(&out));
    }
    pair.assert_same_trees();

    // Damage one blob the same way on both sides: verify and evict agree.
    for cache in [&pair.nc, &pair.gc] {
        let blobs = cache.join(&KEY[..2]).join(KEY).join("outputs");
        let blob = fs::read_dir(&blobs)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let len = fs::metadata(&blob).unwrap().len() as usize;
        fs::write(&blob, vec![b'x'; len]).unwrap();
    }
    assert_eq!(pair.both(&["verify", "--json"]).status, 1);
    assert_eq!(pair.both(&["verify", "--evict", "--json"]).status, 1);
    assert_eq!(pair.both(&["status", "--key", KEY, "--json"]).status, 1);
    // OP-11: remove agrees too, and says 1 once the entry is gone.
    assert_eq!(pair.both(STORE).status, 0);
    assert_eq!(pair.both(&["remove", "--key", KEY, "--json"]).status, 0);
    assert_eq!(pair.both(&["remove", "--key", KEY, "--json"]).status, 1);
    pair.assert_same_trees();
    // OP-12: the guest has no other root to restore under.
    let into = guest(
        &pair.gw,
        &pair.gc,
        &["restore", "--key", KEY, "--into", "/elsewhere"],
    );
    assert_eq!(into.status, 64, "{}", text(&into));
    assert_eq!(pair.both(&["clear", "--json"]).status, 0);
    pair.assert_same_trees();

    // Usage and value errors read the same too.
    pair.both(&["status", "--key", "nothex", "--json"]);
}

#[test]
fn entries_cross_hosts_in_both_directions() {
    let pair = Pair::new();
    // Stored natively, restored by the guest; and the other way round.
    assert_eq!(native(&pair.nw, &pair.nc, STORE).status, 0);
    let key2 = "f".repeat(64);
    let store2: Vec<&str> = STORE
        .iter()
        .map(|arg| if *arg == KEY { key2.as_str() } else { arg })
        .collect();
    assert_eq!(guest(&pair.gw, &pair.gc, &store2).status, 0);

    fs::remove_dir_all(pair.gw.join("out")).unwrap();
    let out = guest(&pair.gw, &pair.nc, &["restore", "--key", KEY, "--json"]);
    assert_eq!(out.status, 0, "{}", text(&out));
    fs::remove_dir_all(pair.nw.join("out")).unwrap();
    let out = native(&pair.nw, &pair.gc, &["restore", "--key", &key2, "--json"]);
    assert_eq!(out.status, 0, "{}", text(&out));
    // Each workspace now has the other host's restore of the same outputs.
    let strip = |mut t: BTreeMap<String, (char, u32, Vec<u8>)>| {
        t.retain(|k, _| k.starts_with("out"));
        t
    };
    assert_eq!(strip(tree(&pair.nw)), strip(tree(&pair.gw)));
}

#[test]
fn fixture_entries_restore_through_the_guest() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/vectors/fixture");
    let entries: Vec<serde_json::Value> =
        serde_json::from_slice(&fs::read(fixture.join("entries.json")).unwrap()).unwrap();
    assert!(!entries.is_empty());
    for entry in &entries {
        let dir = tempfile::tempdir().unwrap();
        let (nw, gw) = (dir.path().join("n"), dir.path().join("g"));
        for ws in [&nw, &gw] {
            copy_tree(&fixture.join("workspace"), ws);
        }
        let key = entry["key"].as_str().unwrap();
        let hash = entry["hash_function"].as_str().unwrap();
        let args = ["restore", "--key", key, "--hash", hash];
        let out = both(
            (&nw, &nw.join(".haz/cache")),
            (&gw, &gw.join(".haz/cache")),
            &args,
        );
        assert_eq!(out.status, 0, "{}: {}", entry["name"], text(&out));
        assert_eq!(out.stdout, entry["stdout"].as_str().unwrap().as_bytes());
        assert_eq!(out.stderr, entry["stderr"].as_str().unwrap().as_bytes());
        for output in entry["outputs"].as_array().unwrap() {
            let path = gw.join(&output["path"].as_str().unwrap()[1..]);
            let meta = fs::metadata(&path).unwrap();
            assert_eq!(meta.len(), output["size"].as_u64().unwrap());
            assert_eq!(
                u64::from(meta.permissions().mode() & 0o7777),
                output["mode"].as_u64().unwrap(),
                "{}",
                path.display()
            );
        }
        assert_eq!(tree(&nw), tree(&gw));
    }
}

fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).unwrap();
        }
    }
}

#[test]
fn a_symlinked_directory_in_the_workspace_is_refused_alike() {
    let pair = Pair::new();
    assert_eq!(pair.both(STORE).status, 0);
    let outside_n = pair._dir.path().join("outside-n");
    let outside_g = pair._dir.path().join("outside-g");
    for (ws, outside) in [(&pair.nw, &outside_n), (&pair.gw, &outside_g)] {
        fs::create_dir_all(outside).unwrap();
        fs::remove_dir_all(ws.join("out")).unwrap();
        // `out` now leads outside the workspace.
        symlink(outside, ws.join("out")).unwrap();
    }
    let out = pair.both(&["restore", "--key", KEY, "--json"]);
    assert_ne!(out.status, 0, "{}", text(&out));
    for outside in [&outside_n, &outside_g] {
        assert_eq!(fs::read_dir(outside).unwrap().count(), 0, "wrote outside");
    }
    // A symlinked output directory is not stored either.
    let key2 = "e".repeat(64);
    let out = pair.both(&["store", "--key", &key2, "--output", "out", "--json"]);
    assert_ne!(out.status, 0, "{}", text(&out));
}

#[test]
fn a_manifest_pointing_outside_is_a_miss_alike() {
    let pair = Pair::new();
    assert_eq!(pair.both(STORE).status, 0);
    for cache in [&pair.nc, &pair.gc] {
        let manifest = cache.join(&KEY[..2]).join(KEY).join("manifest.json");
        let text = fs::read_to_string(&manifest).unwrap();
        assert!(text.contains("\"/out/bin/app\""));
        fs::write(
            &manifest,
            text.replace("\"/out/bin/app\"", "\"/../escaped\""),
        )
        .unwrap();
    }
    let status = pair.both(&["status", "--key", KEY, "--json"]);
    assert!(String::from_utf8_lossy(&status.stdout).contains("miss-corrupt"));
    let out = pair.both(&["restore", "--key", KEY, "--json"]);
    assert_eq!(out.status, 1);
    assert!(!pair._dir.path().join("native/escaped").exists());
    assert!(!pair._dir.path().join("guest/escaped").exists());
}

#[test]
fn the_guest_sees_only_its_preopens() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    // One cache per host, so each run starts from the same state.
    let cache_n = dir.path().join("cache-n");
    let cache = dir.path().join("cache");
    let secret = dir.path().join("secret");
    write(&secret.join("key.pem"), b"secret\n", 0o600);
    write(&ws.join("a.txt"), b"a\n", 0o644);
    symlink(&secret, ws.join("escape")).unwrap();
    symlink(secret.join("key.pem"), ws.join("key-link")).unwrap();
    // A symlink matched by a pattern is refused; one on the way is never
    // followed, so nothing behind it is selected; a pattern climbing out is
    // refused. Each with a fresh key, so every store starts from scratch.
    for (index, output) in ["escape", "escape/key.pem", "key-link", "/../secret/key.pem"]
        .into_iter()
        .enumerate()
    {
        let key = format!("{:064x}", index + 1);
        let args = ["store", "--key", &key, "--output", output, "--json"];
        let out = guest(&ws, &cache, &args);
        let n = native(&ws, &cache_n, &args);
        assert_eq!(text(&out), text(&n), "{output}");
        for cache in [&cache, &cache_n] {
            assert!(
                tree(cache)
                    .values()
                    .all(|(_, _, bytes)| bytes != b"secret\n"),
                "{output}: the secret reached the cache"
            );
        }
    }
    // The stream files cannot be read from outside either.
    for file in ["/etc/hostname", "../secret/key.pem", "key-link"] {
        let args = ["store", "--key", KEY, "--stdout-file", file, "--json"];
        let out = guest(&ws, &cache, &args);
        assert_ne!(out.status, 0, "{file}: {}", text(&out));
    }
}

#[test]
fn read_only_subcommands_get_a_read_only_cache() {
    assert!(is_read_only(&["status", "--key", KEY]));
    assert!(is_read_only(&["info"]));
    assert!(is_read_only(&["verify", "--json"]));
    assert!(is_read_only(&["key", "--", "true"]));
    assert!(is_read_only(&["list"]));
    assert!(!is_read_only(&["remove", "--key", KEY]));
    assert!(!is_read_only(&["verify", "--evict"]));
    assert!(!is_read_only(&["--hash", "sha256", "store", "--key", KEY]));
    assert!(!is_read_only(&["restore", "--key", KEY]));
    assert!(!is_read_only(&["clean", "--soft"]));
    assert!(!is_read_only(&["clear"]));
    assert!(!is_read_only(&[
        "--cache-dir",
        "info",
        "restore",
        "--key",
        KEY
    ]));
    assert!(is_read_only(&["--hash", "sha256", "status", "--key", KEY]));

    let pair = Pair::new();
    assert_eq!(pair.both(STORE).status, 0);
    // A hit refreshes the manifest's time only best-effort: a read-only
    // status still answers, and leaves the cache as it was.
    let before = tree(&pair.gc);
    assert_eq!(
        guest(&pair.gw, &pair.gc, &["status", "--key", KEY]).status,
        0
    );
    assert_eq!(guest(&pair.gw, &pair.gc, &["verify", "--json"]).status, 0);
    assert_eq!(tree(&pair.gc), before);
}
