//! Remote stores end to end (docs/spec.md §11) against real storage that
//! the tests start and stop themselves on loopback: a shared directory,
//! nginx with WebDAV, and a single Garage node (S3). Each server runs in a
//! temporary directory under a guard whose `Drop` kills it, so a failing
//! test stops it too; every wait is bounded.
//!
//! nginx (`nginx-light`, `libnginx-mod-http-dav-ext`) and Garage 2.5.0 are
//! installed by `scripts/test-all.sh` when missing; these tests fail,
//! saying so, where they are not.

use core::time::Duration;
use std::fs;
use std::io::Read as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use cachet::remote::{OpendalRemote, open_remotes};
use cachet_cli::remote::{RemoteConfig, parse_url};
use cachet_core::hash::{HashFunction, digest};
use cachet_core::remote::names::Tenant;
use cachet_core::remote::{Remote, RemoteRead, RemoteStore, RemoteWrite};

use crate::support::{Outcome, Sandbox, snapshot};

/// Builds an output past the inline threshold (64 KiB): it travels as a
/// blob. The small output and the streams travel inline in the record.
const SCRIPT: &str = r#"test -n "$FAIL" && { echo run >> "$RUNS"; exit 3; }
mkdir -p out
cp src/big out/big.bin
chmod 750 out/big.bin
printf tiny > out/small
echo run >> "$RUNS"
echo to-stdout
echo to-stderr >&2"#;

pub(crate) fn big_bytes(seed: u8) -> Vec<u8> {
    (0..100_000u32)
        .map(|i| (i.wrapping_mul(31) as u8) ^ seed)
        .collect()
}

/// A loopback port nothing listens on (bound, then released).
pub(crate) fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// A remote the tests can reach: its URL and the environment the
/// `cachet` process needs for it.
pub(crate) struct Store {
    pub(crate) url: String,
    pub(crate) env: Vec<(String, String)>,
    pub(crate) _server: Option<Server>,
}

/// A server process, killed when dropped.
pub(crate) struct Server {
    pub(crate) child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Store {
    fn env_lookup(&self) -> impl Fn(&str) -> Option<String> + '_ {
        move |name| {
            self.env
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.clone())
        }
    }

    /// The store as the library reaches it, for looking at and tampering
    /// with objects behind `cachet`'s back.
    pub(crate) fn handle(&self) -> Remote<OpendalRemote> {
        let config = RemoteConfig {
            policy: Default::default(),
            remotes: vec![parse_url(&self.url, "--remote").unwrap()],
            tenant: Tenant::local(),
            trusted: Vec::new(),
            read_only: false,
            signing_key: None,
        };
        let (mut remotes, failures) = open_remotes(&config, &self.env_lookup());
        assert!(failures.is_empty(), "{}", failures[0]);
        remotes.remove(0)
    }

    /// Waits (bounded) until the store answers a lookup.
    pub(crate) fn wait_ready(self) -> Store {
        let handle = self.handle();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match handle.store.head("cachet-readiness-probe") {
                Ok(_) => return self,
                Err(error) if Instant::now() > deadline => {
                    panic!("{} did not become ready: {error}", self.url)
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    pub(crate) fn names(&self, prefix: &str) -> Vec<String> {
        let mut names = Vec::new();
        self.handle()
            .store
            .list(prefix, &mut |name, _| {
                names.push(name.to_owned());
                core::ops::ControlFlow::Continue(())
            })
            .unwrap();
        names.sort();
        names
    }

    pub(crate) fn get(&self, name: &str) -> Option<Vec<u8>> {
        let mut reader = self.handle().store.get(name).unwrap()?;
        let mut bytes = Vec::new();
        let mut buf = [0u8; 65536];
        loop {
            let n = reader.read(&mut buf).unwrap();
            if n == 0 {
                return Some(bytes);
            }
            bytes.extend_from_slice(&buf[..n]);
        }
    }

    pub(crate) fn put(&self, name: &str, bytes: &[u8]) {
        let handle = self.handle();
        let mut writer = handle.store.put(name, Some(bytes.len() as u64)).unwrap();
        writer.write_all(bytes).unwrap();
        writer.finish().unwrap();
    }

    pub(crate) fn delete(&self, name: &str) {
        self.handle().store.delete(name).unwrap();
    }
}

pub(crate) fn directory_store(dir: &Path) -> Store {
    Store {
        url: format!("file://{}", dir.display()),
        env: Vec::new(),
        _server: None,
    }
}

pub(crate) fn nginx_store() -> Store {
    let nginx = ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .map(PathBuf::from)
        .find(|path| path.exists())
        .expect("nginx is not installed: run scripts/test-all.sh, or apt-get install nginx-light libnginx-mod-http-dav-ext");
    let module = Path::new("/usr/lib/nginx/modules/ngx_http_dav_ext_module.so");
    assert!(
        module.exists(),
        "the WebDAV module is not installed: apt-get install libnginx-mod-http-dav-ext"
    );
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    fs::create_dir_all(root.join("dav")).unwrap();
    fs::create_dir_all(root.join("tmp")).unwrap();
    fs::create_dir_all(root.join("logs")).unwrap();
    let port = free_port();
    let conf = format!(
        "load_module {module};
user root;
daemon off;
master_process off;
worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/logs/error.log;
events {{ worker_connections 64; }}
http {{
  access_log off;
  client_body_temp_path {root}/tmp;
  server {{
    listen 127.0.0.1:{port};
    root {root}/dav;
    location / {{
      dav_methods PUT DELETE MKCOL COPY MOVE;
      dav_ext_methods PROPFIND OPTIONS;
      create_full_put_path on;
      client_max_body_size 0;
    }}
  }}
}}
",
        module = module.display(),
        root = root.display()
    );
    fs::write(root.join("nginx.conf"), conf).unwrap();
    let child = Command::new(nginx)
        .arg("-p")
        .arg(root)
        .arg("-c")
        .arg(root.join("nginx.conf"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Store {
        url: format!("webdav+http://127.0.0.1:{port}/cache"),
        env: Vec::new(),
        _server: Some(Server { child, _dir: dir }),
    }
    .wait_ready()
}

pub(crate) fn garage_binary() -> PathBuf {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("garage"))
            .find(|path| path.exists())
    });
    let in_cargo = std::env::var_os("HOME")
        .map(|home| PathBuf::from(home).join(".cargo/bin/garage"))
        .filter(|path| path.exists());
    on_path.or(in_cargo).expect(
        "garage is not installed: run scripts/test-all.sh, or cargo install garage --locked --version 2.5.0",
    )
}

/// A Garage node's configuration: data under `root`, RPC and S3 on the
/// loopback ports given, `replication` copies (REMOTE-NOTES).
pub(crate) fn garage_config(
    root: &Path,
    rpc: u16,
    api: u16,
    replication: u8,
    secret: &str,
) -> String {
    format!(
        "metadata_dir = \"{root}/meta\"
data_dir = \"{root}/data\"
db_engine = \"sqlite\"
replication_factor = {replication}
rpc_bind_addr = \"127.0.0.1:{rpc}\"
rpc_public_addr = \"127.0.0.1:{rpc}\"
rpc_secret = \"{secret}\"

[s3_api]
s3_region = \"garage\"
api_bind_addr = \"127.0.0.1:{api}\"
",
        root = root.display(),
    )
}

pub(crate) fn garage_store() -> Store {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let (rpc, api) = (free_port(), free_port());
    let conf = garage_config(root, rpc, api, 1, &"ab".repeat(32));
    fs::write(root.join("garage.toml"), conf).unwrap();
    let key_id = format!("GK{}", "12".repeat(12));
    let secret = "cd".repeat(32);
    let child = Command::new(garage_binary())
        .arg("-c")
        .arg(root.join("garage.toml"))
        .args(["server", "--single-node", "--default-bucket"])
        .env("GARAGE_DEFAULT_ACCESS_KEY", &key_id)
        .env("GARAGE_DEFAULT_SECRET_KEY", &secret)
        .env("GARAGE_DEFAULT_BUCKET", "cachet-test")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(fs::File::create(root.join("garage.log")).unwrap())
        .spawn()
        .unwrap();
    Store {
        url: format!("s3://cachet-test/team?endpoint=http://127.0.0.1:{api}&region=garage"),
        env: vec![
            ("AWS_ACCESS_KEY_ID".into(), key_id),
            ("AWS_SECRET_ACCESS_KEY".into(), secret),
        ],
        _server: Some(Server { child, _dir: dir }),
    }
    .wait_ready()
}

/// A workspace holding the inputs of [`SCRIPT`], `big` being the bytes of
/// the big output.
pub(crate) fn workspace(big: &[u8]) -> Sandbox {
    let sandbox = Sandbox::new();
    sandbox.write("src/big", big);
    sandbox
}

/// `cachet run` of [`SCRIPT`] against `url`, with `extra` flags and `env`.
fn run(
    sandbox: &Sandbox,
    store: &Store,
    url: &str,
    extra: &[&str],
    env: &[(&str, &str)],
) -> Outcome {
    run_script(sandbox, store, url, SCRIPT, extra, env)
}

/// `cachet run` of `script` against `url`, with `extra` flags and `env`
/// (the remote variables of the test's own environment left out).
fn run_script(
    sandbox: &Sandbox,
    store: &Store,
    url: &str,
    script: &str,
    extra: &[&str],
    env: &[(&str, &str)],
) -> Outcome {
    Outcome::of(
        run_command(sandbox, store, url, script, extra, env)
            .output()
            .unwrap(),
    )
}

/// The command of [`run_script`], not started.
pub(crate) fn run_command(
    sandbox: &Sandbox,
    store: &Store,
    url: &str,
    script: &str,
    extra: &[&str],
    env: &[(&str, &str)],
) -> Command {
    let mut command = sandbox.cachet();
    for variable in [
        "CACHET_REMOTE",
        "CACHET_TENANT",
        "CACHET_TRUST",
        "CACHET_REMOTE_SIGNING_KEY",
        "CACHET_REMOTE_TIMEOUT",
        "CACHET_REMOTE_CONNECT_TIMEOUT",
    ] {
        command.env_remove(variable);
    }
    for (name, value) in &store.env {
        command.env(name, value);
    }
    for (name, value) in env {
        command.env(name, value);
    }
    command
        .args([
            "run", "--remote", url, "--input", "src/**", "--output", "out",
        ])
        .args(extra)
        .args(["--script", script]);
    command
}

/// CLAIM-1 across machines, REMOTE-1 (backfill) and REMOTE-8 (record
/// last, checked by its presence after the blobs).
fn hit_from_an_empty_cache(store: Store) {
    let big = big_bytes(1);
    let first = workspace(&big);
    let stored = run(&first, &store, &store.url, &[], &[]);
    assert_eq!(stored.code, 0, "{stored:?}");
    assert_eq!(stored.stdout, b"to-stdout\n");
    assert_eq!(stored.stderr, b"to-stderr\n", "{stored:?}");
    assert_eq!(first.runs(), 1);
    assert_eq!(store.names("cachet-v1-blake3/blobs/").len(), 1);
    assert_eq!(
        store.names("cachet-v1-blake3/tenants/local/entries/").len(),
        1
    );

    let second = workspace(&big);
    let hit = run(&second, &store, &store.url, &[], &[]);
    assert_eq!(hit.code, 0, "{hit:?}");
    assert_eq!(second.runs(), 0, "the command does not run: {hit:?}");
    assert_eq!(hit.stdout, stored.stdout);
    assert_eq!(hit.stderr, stored.stderr);
    assert_eq!(
        snapshot(&second.ws, &[".cachet"]),
        snapshot(&first.ws, &[".cachet"]),
        "files and modes identical"
    );

    // Backfilled: with the remote gone, the next run is a local hit.
    let url = store.url.clone();
    drop(store);
    fs::remove_dir_all(second.ws.join("out")).unwrap();
    let local = run(
        &second,
        &Store {
            url: url.clone(),
            env: Vec::new(),
            _server: None,
        },
        &url,
        &["-v"],
        &[],
    );
    assert_eq!(local.code, 0, "{local:?}");
    assert_eq!(second.runs(), 0, "{local:?}");
    assert!(
        local.stderr_text().contains("(local): restored"),
        "{local:?}"
    );
    assert_eq!(
        snapshot(&second.ws, &[".cachet"]),
        snapshot(&first.ws, &[".cachet"])
    );
}

/// REMOTE-6: two entries whose outputs have the same bytes share a blob.
fn same_bytes_share_the_blob(store: Store) {
    let big = big_bytes(2);
    let one = workspace(&big);
    let a = run(&one, &store, &store.url, &["--set", "VARIANT=a"], &[]);
    assert_eq!(a.code, 0, "{a:?}");
    let two = workspace(&big);
    let b = run(&two, &store, &store.url, &["-v", "--set", "VARIANT=b"], &[]);
    assert_eq!(b.code, 0, "{b:?}");
    assert_eq!(two.runs(), 1, "another key: a miss, run and pushed");
    assert!(
        b.stderr_text()
            .contains("0 blobs uploaded, 1 already there"),
        "{b:?}"
    );
    assert_eq!(store.names("cachet-v1-blake3/blobs/").len(), 1);
    assert_eq!(
        store.names("cachet-v1-blake3/tenants/local/entries/").len(),
        2
    );
}

/// REMOTE-4: a tampered, truncated or missing object is a miss, and
/// nothing of it enters the local cache. The command then fails on
/// purpose (`FAIL=1`, not part of the key), so a local cache left empty
/// shows that nothing came from the remote, and the exit code is the
/// task's.
fn damaged_objects_are_misses(store: Store) {
    let big = big_bytes(3);
    let first = workspace(&big);
    assert_eq!(run(&first, &store, &store.url, &[], &[]).code, 0);
    let blob = store.names("cachet-v1-blake3/blobs/").remove(0);
    let record = store
        .names("cachet-v1-blake3/tenants/local/entries/")
        .remove(0);
    let (blob_bytes, record_bytes) = (store.get(&blob).unwrap(), store.get(&record).unwrap());

    type Tamper<'a> = &'a dyn Fn(&Store);
    let flip = |name: &str, bytes: &[u8], at: usize| {
        let mut bytes = bytes.to_vec();
        bytes[at] ^= 0x01;
        store.put(name, &bytes);
    };
    let cases: [(&str, Tamper<'_>); 5] = [
        ("tampered blob", &|_| {
            flip(&blob, &blob_bytes, blob_bytes.len() - 7)
        }),
        ("truncated blob", &|s| {
            s.put(&blob, &blob_bytes[..blob_bytes.len() / 2])
        }),
        ("missing blob", &|s| s.delete(&blob)),
        ("tampered record", &|_| {
            flip(&record, &record_bytes, record_bytes.len() / 2)
        }),
        ("truncated record", &|s| {
            s.put(&record, &record_bytes[..record_bytes.len() - 1])
        }),
    ];
    for (what, tamper) in cases {
        store.put(&blob, &blob_bytes);
        store.put(&record, &record_bytes);
        tamper(&store);
        let other = workspace(&big);
        let outcome = run(&other, &store, &store.url, &["-v"], &[("FAIL", "1")]);
        assert_missed_and_entered_nothing(&other, &outcome, what);
    }
    // Repaired objects are a hit again.
    store.put(&blob, &blob_bytes);
    store.put(&record, &record_bytes);
    let again = workspace(&big);
    assert_eq!(run(&again, &store, &store.url, &[], &[]).code, 0);
    assert_eq!(again.runs(), 0);
}

/// After a remote miss by `outcome`, a `run` of [`SCRIPT`] with `$FAIL`
/// set in `sandbox`: the command ran (and failed with its own code), and
/// nothing of the remote's entry entered the workspace or the local cache
/// (REMOTE-4).
fn assert_missed_and_entered_nothing(sandbox: &Sandbox, outcome: &Outcome, what: &str) {
    assert_eq!(outcome.code, 3, "{what}: the task's exit code: {outcome:?}");
    assert_eq!(
        sandbox.runs(),
        1,
        "{what}: a miss runs the command: {outcome:?}"
    );
    assert_eq!(
        snapshot(&sandbox.ws, &[".cachet"])
            .keys()
            .collect::<Vec<_>>(),
        ["src/big"],
        "{what}: nothing restored"
    );
    let info = sandbox.run(&["info", "--json"]);
    assert_eq!(info.json()["valid_entries"], 0, "{what}: {info:?}");
    assert_eq!(info.json()["corrupt_entries"], 0, "{what}: {info:?}");
    assert_eq!(info.json()["scratch_items"], 0, "{what}: {info:?}");
}

/// `record` (REMOTE-7) with the output path `from` renamed `to` and the
/// checksum made right again, as a hostile writer would forge it.
fn rename_output(record: &[u8], from: &str, to: &str) -> Vec<u8> {
    let mut old = (from.len() as u32).to_be_bytes().to_vec();
    old.extend_from_slice(from.as_bytes());
    let at = record
        .windows(old.len())
        .position(|window| window == old.as_slice())
        .unwrap_or_else(|| panic!("{from} is not in the record"));
    let mut forged = record[..at].to_vec();
    forged.extend_from_slice(&(to.len() as u32).to_be_bytes());
    forged.extend_from_slice(to.as_bytes());
    forged.extend_from_slice(&record[at + old.len()..record.len() - 32]);
    let checksum = digest(HashFunction::Blake3, &forged);
    forged.extend_from_slice(&checksum.0);
    forged
}

/// SAFE-9 through a remote: a record whose outputs no store writes
/// together is a miss on that remote; the command runs and nothing of the
/// record enters the workspace or the local cache (REMOTE-4).
fn conflicting_records_are_misses(store: Store) {
    let big = big_bytes(4);
    let first = workspace(&big);
    assert_eq!(run(&first, &store, &store.url, &[], &[]).code, 0);
    let record = store
        .names("cachet-v1-blake3/tenants/local/entries/")
        .remove(0);
    let record_bytes = store.get(&record).unwrap();
    // The record lists `/out/big.bin`, then `/out/small`; every forgery
    // keeps that order, so only SAFE-5..8 can refuse it. The sandbox's
    // cache directory is `<workspace>/.cachet`.
    let cases = [
        ("SAFE-5", "/out/small", "/out/big.bin"),
        ("SAFE-6", "/out/small", "/out/big.bin/small"),
        ("SAFE-7", "/out/big.bin", "/.git/hooks/post-checkout"),
        ("SAFE-7", "/out/small", "/out/vendored/.git/config"),
        ("SAFE-8", "/out/big.bin", "/.cachet/planted"),
        ("SAFE-8", "/out/big.bin", "/.cachet"),
    ];
    for (rule, from, to) in cases {
        store.put(&record, &rename_output(&record_bytes, from, to));
        let other = workspace(&big);
        fs::create_dir(other.ws.join(".git")).unwrap();
        let outcome = run(&other, &store, &store.url, &["-v"], &[("FAIL", "1")]);
        let what = format!("{rule} {to}");
        assert_missed_and_entered_nothing(&other, &outcome, &what);
        // SAFE-5 is refused by the record codec (an unsorted or repeated
        // path), the others by the rules; both say the record is corrupt.
        let stderr = outcome.stderr_text();
        assert!(
            stderr.contains(": miss (corrupt record: "),
            "{what}: {stderr}"
        );
        if rule != "SAFE-5" {
            assert!(stderr.contains(&format!("({rule})")), "{what}: {stderr}");
        }
        assert!(!other.ws.join(".cachet/planted").exists(), "{what}");
    }
    // The record as pushed is a hit.
    store.put(&record, &record_bytes);
    let again = workspace(&big);
    assert_eq!(run(&again, &store, &store.url, &[], &[]).code, 0);
    assert_eq!(again.runs(), 0);
}

/// REMOTE-3: a remote that refuses connections costs a miss and one
/// warning line, never the exit code.
fn refused_connections_cost_a_miss(url: &str) {
    let sandbox = workspace(&big_bytes(4));
    let store = Store {
        url: url.to_owned(),
        env: vec![
            (
                "AWS_ACCESS_KEY_ID".into(),
                "GK000000000000000000000000".into(),
            ),
            ("AWS_SECRET_ACCESS_KEY".into(), "00".repeat(32)),
        ],
        _server: None,
    };
    let started = Instant::now();
    let outcome = run(&sandbox, &store, url, &[], &[]);
    assert_eq!(outcome.code, 0, "{outcome:?}");
    assert_eq!(sandbox.runs(), 1);
    let warnings: Vec<String> = outcome
        .stderr_text()
        .lines()
        .filter(|line| line.starts_with("cachet: warning: remote "))
        .map(str::to_owned)
        .collect();
    assert_eq!(
        warnings.len(),
        2,
        "one for the lookup, one for the push: {outcome:?}"
    );
    assert!(warnings[0].contains("treated as a miss"), "{warnings:?}");
    assert!(
        !outcome
            .stderr_text()
            .contains("00000000000000000000000000000000"),
        "no secret printed"
    );
    assert!(started.elapsed() < Duration::from_secs(20));
    let failed = run(&sandbox, &store, url, &[], &[("FAIL", "1")]);
    assert_eq!(failed.code, 0, "a local hit now: {failed:?}");
}

/// The build of the CREEP tests: `$BUILT_BY` (not part of the key, as the
/// workflow file was not part of Nx's) decides the output's bytes.
const CREEP_SCRIPT: &str = r#"mkdir -p out
cp src/big out/big.bin
printf '%s' "$BUILT_BY" > out/built-by
echo run >> "$RUNS"
echo "built by $BUILT_BY""#;

/// One CI job of the CREEP tests: a fresh machine (empty local cache) of
/// `tenant`, trusting `trust`, whose build writes `built_by`; `variant`
/// is part of the key.
fn ci_job(
    store: &Store,
    tenant: &str,
    trust: &str,
    built_by: &str,
    variant: &str,
) -> (Sandbox, Outcome) {
    let sandbox = workspace(&big_bytes(5));
    let outcome = run_script(
        &sandbox,
        store,
        &store.url,
        CREEP_SCRIPT,
        &["-v", "--set", &format!("VARIANT={variant}")],
        &[
            ("CACHET_TENANT", tenant),
            ("CACHET_TRUST", trust),
            ("BUILT_BY", built_by),
        ],
    );
    assert_eq!(outcome.code, 0, "{tenant}: {outcome:?}");
    (sandbox, outcome)
}

fn built_by(sandbox: &Sandbox) -> String {
    fs::read_to_string(sandbox.ws.join("out/built-by")).unwrap()
}

/// REMOTE-11 against CREEP (CVE-2025-36852): a pull request trusting
/// `main` stores first, under a key `main` also computes, other output
/// bytes. Its record lands under its own tenant only; `main` then runs the
/// command and gets its own bytes, and a later `main` machine restores
/// `main`'s entry. The pull request does read `main`'s entries (for a key
/// it has not stored itself, and so does a second pull request for any),
/// and its own first.
fn a_pull_request_cannot_poison_main(store: Store) {
    let records =
        |tenant: &str| store.names(&format!("cachet-v1-blake3/tenants/{tenant}/entries/"));
    let (pr, stored) = ci_job(&store, "pr-123", "main", "pr-123", "1");
    assert_eq!(pr.runs(), 1, "{stored:?}");
    let pr_records = records("pr-123");
    assert_eq!(pr_records.len(), 1);
    let pr_record = store.get(&pr_records[0]).unwrap();
    assert!(records("main").is_empty(), "nothing written under main");

    let (main, ran) = ci_job(&store, "main", "", "main", "1");
    assert_eq!(main.runs(), 1, "main runs the command: {ran:?}");
    assert_eq!(built_by(&main), "main");
    assert_eq!(ran.stdout, b"built by main\n");
    assert_eq!(
        records("main"),
        [pr_records[0].replace("/pr-123/", "/main/")],
        "the same key as the pull request's"
    );
    assert_eq!(records("pr-123"), pr_records);
    assert_eq!(store.get(&pr_records[0]).unwrap(), pr_record);

    let (main_again, hit) = ci_job(&store, "main", "", "main", "1");
    assert_eq!(main_again.runs(), 0, "{hit:?}");
    assert_eq!(built_by(&main_again), "main");
    assert!(hit.stderr_text().contains("tenant main: hit"), "{hit:?}");

    let (main_other_key, ran) = ci_job(&store, "main", "", "main", "2");
    assert_eq!(main_other_key.runs(), 1, "{ran:?}");
    let (pr_reads_main, hit) = ci_job(&store, "pr-123", "main", "pr-123", "2");
    assert_eq!(
        pr_reads_main.runs(),
        0,
        "pr-123 reads main's entries: {hit:?}"
    );
    assert_eq!(built_by(&pr_reads_main), "main");

    let (other_pr, hit) = ci_job(&store, "pr-456", "main", "pr-456", "1");
    assert_eq!(
        other_pr.runs(),
        0,
        "a pull request reads main's entries: {hit:?}"
    );
    assert_eq!(built_by(&other_pr), "main");
    assert!(
        hit.stderr_text().contains("tenant pr-456: miss (no entry)"),
        "{hit:?}"
    );
    assert!(records("pr-456").is_empty(), "a hit pushes nothing");

    let (same_pr, hit) = ci_job(&store, "pr-123", "main", "pr-123", "1");
    assert_eq!(same_pr.runs(), 0, "{hit:?}");
    assert_eq!(built_by(&same_pr), "pr-123", "its own tenant first");
}

/// A signing key: `id`, and a secret of 32 bytes of `byte`.
fn signing_key(id: &str, byte: u8) -> String {
    format!("{id}:{}", format!("{byte:02x}").repeat(32))
}

/// REMOTE-12 and REMOTE-13 end to end: with a signing key, a record that
/// was tampered with, re-signed with another secret under the same key
/// id, signed with another key id, stripped of its signature, or signed
/// for another tenant, is a miss with one warning line, and the command
/// runs (`FAIL=1`: its exit code, and nothing stored or pushed, so the
/// remote keeps the object under test). The genuine record is a hit with
/// the key and without one.
fn signed_records_refused_unless_genuine(store: Store) {
    let key = signing_key("ci-1", 0x11);
    let job = |tenant: &str, signing: &str, fail: bool| {
        let sandbox = workspace(&big_bytes(6));
        let mut env = vec![
            ("CACHET_TENANT", tenant),
            ("CACHET_REMOTE_SIGNING_KEY", signing),
        ];
        if fail {
            env.push(("FAIL", "1"));
        }
        let outcome = run(&sandbox, &store, &store.url, &[], &env);
        (sandbox, outcome)
    };
    let (_, stored) = job("main", &key, false);
    assert_eq!(stored.code, 0, "{stored:?}");
    let name = store
        .names("cachet-v1-blake3/tenants/main/entries/")
        .remove(0);
    let genuine = store.get(&name).unwrap();
    assert!(genuine.starts_with(b"cachetS\0"), "the record is signed");

    for signing in [key.as_str(), ""] {
        let (sandbox, hit) = job("main", signing, true);
        assert_eq!(hit.code, 0, "{hit:?}");
        assert_eq!(sandbox.runs(), 0, "signed and genuine: a hit ({signing:?})");
    }

    // The envelope is 8 + 1 + lp("ci-1") + lp("main") + 32 bytes.
    let envelope_len = 8 + 1 + (4 + 4) + (4 + 4) + 32;
    let record = &genuine[envelope_len..];
    assert!(record.starts_with(b"cachetR\0"));
    let forged = {
        let forger = cachet_core::remote::sign::SigningKey::new("ci-1", [0x22; 32]).unwrap();
        let entry_key = cachet_core::key::Key(
            cachet_core::hash::Digest::from_hex(name.rsplit('/').next().unwrap()).unwrap(),
        );
        forger.sign(
            "cachet-v1-blake3",
            &Tenant::new("main").unwrap(),
            &entry_key,
            record,
        )
    };
    let mut tampered = genuine.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    let (_, pr_stored) = job("pr-123", &key, false);
    assert_eq!(pr_stored.code, 0, "{pr_stored:?}");
    let pr_record = store.get(&name.replace("/main/", "/pr-123/")).unwrap();

    let cases: [(&str, Vec<u8>, &str, String); 5] = [
        ("tampered", tampered, "does not verify", key.clone()),
        (
            "re-signed with another secret",
            forged,
            "does not verify",
            key.clone(),
        ),
        ("unsigned", record.to_vec(), "not signed", key.clone()),
        (
            "signed for another tenant",
            pr_record,
            "signed for tenant 'pr-123'",
            key.clone(),
        ),
        (
            "signed with another key id",
            genuine.clone(),
            "signed with key id 'ci-1'",
            signing_key("ci-2", 0x11),
        ),
    ];
    for (what, object, why, reader_key) in cases {
        store.put(&name, &object);
        let (sandbox, outcome) = job("main", &reader_key, true);
        assert_eq!(outcome.code, 3, "{what}: the command ran: {outcome:?}");
        assert_eq!(sandbox.runs(), 1, "{what}: {outcome:?}");
        let warnings: Vec<String> = outcome
            .stderr_text()
            .lines()
            .filter(|line| line.starts_with("cachet: warning: remote "))
            .map(str::to_owned)
            .collect();
        assert_eq!(warnings.len(), 1, "{what}: {outcome:?}");
        assert!(
            warnings[0].contains("tenant main: miss (record refused: "),
            "{what}: {warnings:?}"
        );
        assert!(warnings[0].contains(why), "{what}: {warnings:?}");
        assert!(
            !outcome.stderr_text().contains("1111111111"),
            "{what}: no secret printed"
        );
        let info = sandbox.run(&["info", "--json"]);
        assert_eq!(info.json()["valid_entries"], 0, "{what}: {info:?}");
    }
    store.put(&name, &genuine);
    let (sandbox, hit) = job("main", &key, true);
    assert_eq!((hit.code, sandbox.runs()), (0, 0), "{hit:?}");
}

#[test]
fn remote_11_directory_a_pull_request_tenant_cannot_poison_main_and_reads_main() {
    let dir = tempfile::tempdir().unwrap();
    a_pull_request_cannot_poison_main(directory_store(dir.path()));
}

#[test]
fn remote_11_s3_a_pull_request_tenant_cannot_poison_main_and_reads_main() {
    a_pull_request_cannot_poison_main(garage_store());
}

#[test]
fn remote_13_s3_altered_resigned_unsigned_or_foreign_records_are_misses() {
    signed_records_refused_unless_genuine(garage_store());
}

#[test]
fn remote_13_directory_altered_resigned_unsigned_or_foreign_records_are_misses() {
    let dir = tempfile::tempdir().unwrap();
    signed_records_refused_unless_genuine(directory_store(dir.path()));
}

#[test]
fn remote_12_a_malformed_signing_key_is_a_bad_value_and_never_printed() {
    let sandbox = Sandbox::new();
    let outcome = Outcome::of(
        sandbox
            .cachet()
            .env("CACHET_REMOTE_SIGNING_KEY", "ci-1:not-hex-secret-words")
            .args(["run", "--", "true"])
            .output()
            .unwrap(),
    );
    assert_eq!(outcome.code, 65, "{outcome:?}");
    let text = outcome.stderr_text();
    assert!(text.contains("CACHET_REMOTE_SIGNING_KEY"), "{text}");
    assert!(text.contains("KEYID:SECRET"), "{text}");
    assert!(!text.contains("not-hex-secret-words"), "{text}");
    let outcome = sandbox.run(&["run", "--trust", "../main", "--", "true"]);
    assert_eq!(outcome.code, 65, "{outcome:?}");
}

#[test]
fn remote_1_directory_an_entry_is_a_hit_from_an_empty_cache_and_is_backfilled() {
    let dir = tempfile::tempdir().unwrap();
    hit_from_an_empty_cache(directory_store(dir.path()));
}

#[test]
fn remote_6_directory_two_entries_with_the_same_output_bytes_share_the_blob() {
    let dir = tempfile::tempdir().unwrap();
    same_bytes_share_the_blob(directory_store(dir.path()));
}

#[test]
fn remote_4_directory_a_tampered_truncated_or_missing_object_is_a_miss_and_enters_nothing() {
    let dir = tempfile::tempdir().unwrap();
    damaged_objects_are_misses(directory_store(dir.path()));
}

#[test]
fn safe_9_directory_a_record_listing_outputs_no_store_writes_together_is_a_miss() {
    let dir = tempfile::tempdir().unwrap();
    conflicting_records_are_misses(directory_store(dir.path()));
}

#[test]
fn remote_1_webdav_an_entry_is_a_hit_from_an_empty_cache_and_is_backfilled() {
    hit_from_an_empty_cache(nginx_store());
}

#[test]
fn remote_6_webdav_two_entries_with_the_same_output_bytes_share_the_blob() {
    same_bytes_share_the_blob(nginx_store());
}

#[test]
fn remote_4_webdav_a_tampered_truncated_or_missing_object_is_a_miss_and_enters_nothing() {
    damaged_objects_are_misses(nginx_store());
}

#[test]
fn remote_1_s3_an_entry_is_a_hit_from_an_empty_cache_and_is_backfilled() {
    hit_from_an_empty_cache(garage_store());
}

#[test]
fn remote_6_s3_two_entries_with_the_same_output_bytes_share_the_blob() {
    same_bytes_share_the_blob(garage_store());
}

#[test]
fn remote_4_s3_a_tampered_truncated_or_missing_object_is_a_miss_and_enters_nothing() {
    damaged_objects_are_misses(garage_store());
}

#[test]
fn remote_3_a_remote_that_refuses_connections_costs_a_miss_not_a_failure() {
    let port = free_port();
    refused_connections_cost_a_miss(&format!("webdav+http://127.0.0.1:{port}/cache"));
    let port = free_port();
    refused_connections_cost_a_miss(&format!(
        "s3://cachet-test?endpoint=http://127.0.0.1:{port}&region=garage"
    ));
}

#[test]
fn remote_9_a_malformed_remote_url_is_a_bad_value() {
    let sandbox = Sandbox::new();
    let outcome = sandbox.run(&["run", "--remote", "ftp://host/x", "--", "true"]);
    assert_eq!(outcome.code, 65, "{outcome:?}");
    assert!(
        outcome.stderr_text().contains("ftp://host/x"),
        "{outcome:?}"
    );
    assert!(
        outcome
            .stderr_text()
            .contains("expected file:///ABSOLUTE/PATH")
    );
    let outcome = sandbox.run(&["run", "--tenant", "a/b", "--", "true"]);
    assert_eq!(outcome.code, 65, "{outcome:?}");
}

/// Bytes that zstd cannot shrink (a xorshift stream).
fn incompressible_bytes(len: usize) -> Vec<u8> {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// One zstd frame of `raw`, written as cachet writes them: the size
/// pledged, so the window fits the content.
fn zstd_frame(raw: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
    encoder
        .set_pledged_src_size(Some(raw.len() as u64))
        .unwrap();
    encoder.include_contentsize(true).unwrap();
    encoder.write_all(raw).unwrap();
    encoder.finish().unwrap()
}

/// A codec-1 blob object holding `frame`.
fn zstd_blob(frame: &[u8]) -> Vec<u8> {
    let mut object = b"cachetB\0\x01\x01".to_vec();
    object.extend_from_slice(frame);
    object
}

/// REMOTE-6: a blob that zstd shrinks is stored as codec 1, smaller than
/// its raw bytes, and decodes to a hit from an empty cache; a blob that
/// zstd does not shrink stays raw (codec 0).
fn compressible_blobs_are_zstd_and_others_raw(store: Store) {
    let big = big_bytes(5);
    let first = workspace(&big);
    assert_eq!(run(&first, &store, &store.url, &[], &[]).code, 0);
    let blob = store.names("cachet-v1-blake3/blobs/").remove(0);
    let object = store.get(&blob).unwrap();
    assert_eq!(&object[..10], b"cachetB\0\x01\x01", "codec 1");
    assert!(object.len() < big.len() / 10, "{} bytes", object.len());
    let second = workspace(&big);
    let hit = run(&second, &store, &store.url, &[], &[]);
    assert_eq!((hit.code, second.runs()), (0, 0), "{hit:?}");
    assert_eq!(fs::read(second.ws.join("out/big.bin")).unwrap(), big);

    let noise = incompressible_bytes(100_000);
    let third = workspace(&noise);
    assert_eq!(run(&third, &store, &store.url, &[], &[]).code, 0);
    let blobs = store.names("cachet-v1-blake3/blobs/");
    assert_eq!(blobs.len(), 2);
    let raw = blobs.iter().find(|name| **name != blob).unwrap();
    let object = store.get(raw).unwrap();
    assert_eq!(&object[..10], b"cachetB\0\x01\x00", "codec 0");
    assert_eq!(&object[10..], noise.as_slice());
    let fourth = workspace(&noise);
    let hit = run(&fourth, &store, &store.url, &[], &[]);
    assert_eq!((hit.code, fourth.runs()), (0, 0), "{hit:?}");
    assert_eq!(fs::read(fourth.ws.join("out/big.bin")).unwrap(), noise);
}

/// REMOTE-4, REMOTE-6: a codec-1 blob whose frame is corrupt, decodes to
/// more or fewer bytes than recorded, is followed by other bytes, or
/// claims a window larger than the content (a zstd bomb) is a miss;
/// nothing enters the local cache and the damaged blob is deleted.
fn bad_frames_are_misses(store: Store) {
    let big = big_bytes(6);
    let first = workspace(&big);
    assert_eq!(run(&first, &store, &store.url, &[], &[]).code, 0);
    let blob = store.names("cachet-v1-blake3/blobs/").remove(0);
    let good = store.get(&blob).unwrap();
    assert_eq!(good[9], 1, "codec 1");

    let mut flipped = good.clone();
    let middle = 10 + (good.len() - 10) / 2;
    flipped[middle] ^= 0x55;
    let mut longer = big.clone();
    longer.extend_from_slice(&[7u8; 1000]);
    let mut trailing = good.clone();
    trailing.extend_from_slice(b"more");
    // 64 MiB of zeros in a frame of a few KiB, with zstd's default window
    // (no pledged size): far past the 100 000 bytes recorded.
    let bomb = zstd::encode_all(std::io::repeat(0).take(64 << 20), 3).unwrap();
    let cases: [(&str, Vec<u8>); 6] = [
        ("corrupt frame", flipped),
        ("frame of more bytes", zstd_blob(&zstd_frame(&longer))),
        (
            "frame of fewer bytes",
            zstd_blob(&zstd_frame(&big[..50_000])),
        ),
        ("bytes after the frame", trailing),
        ("truncated frame", good[..good.len() - 3].to_vec()),
        ("zstd bomb", zstd_blob(&bomb)),
    ];
    for (what, object) in cases {
        store.put(&blob, &object);
        let other = workspace(&big);
        let outcome = run(&other, &store, &store.url, &["-v"], &[("FAIL", "1")]);
        assert_eq!(outcome.code, 3, "{what}: the task's exit code: {outcome:?}");
        assert_eq!(other.runs(), 1, "{what}: a miss runs the command");
        assert!(
            outcome.stderr_text().contains("miss"),
            "{what}: {outcome:?}"
        );
        let info = other.run(&["info", "--json"]);
        assert_eq!(info.json()["valid_entries"], 0, "{what}: {info:?}");
        assert_eq!(info.json()["scratch_items"], 0, "{what}: {info:?}");
        assert_eq!(
            store.get(&blob),
            None,
            "{what}: the damaged blob is deleted"
        );
    }
    store.put(&blob, &good);
    let again = workspace(&big);
    assert_eq!(run(&again, &store, &store.url, &[], &[]).code, 0);
    assert_eq!(again.runs(), 0);
}

#[test]
fn remote_6_directory_compressible_blobs_are_zstd_and_incompressible_ones_raw() {
    let dir = tempfile::tempdir().unwrap();
    compressible_blobs_are_zstd_and_others_raw(directory_store(dir.path()));
}

#[test]
fn remote_6_s3_compressible_blobs_are_zstd_and_incompressible_ones_raw() {
    compressible_blobs_are_zstd_and_others_raw(garage_store());
}

#[test]
fn remote_6_webdav_compressible_blobs_are_zstd_and_incompressible_ones_raw() {
    compressible_blobs_are_zstd_and_others_raw(nginx_store());
}

#[test]
fn remote_6_directory_a_bad_zstd_frame_is_a_miss_and_is_deleted() {
    let dir = tempfile::tempdir().unwrap();
    bad_frames_are_misses(directory_store(dir.path()));
}

#[test]
fn remote_6_s3_a_bad_zstd_frame_is_a_miss_and_is_deleted() {
    bad_frames_are_misses(garage_store());
}

/// `cachet ARGS --remote URL` in `sandbox`, with the store's environment.
fn cachet_with(sandbox: &Sandbox, store: &Store, url: &str, args: &[&str]) -> Outcome {
    let mut command = sandbox.cachet();
    command.env_remove("CACHET_REMOTE");
    for (name, value) in &store.env {
        command.env(name, value);
    }
    command.args(args).args(["--remote", url]);
    Outcome::of(command.output().unwrap())
}

/// A workspace with outputs and a captured stdout, and the key they are
/// stored under by `cachet store`.
fn stored_by_hand(big: &[u8]) -> (Sandbox, String) {
    let sandbox = workspace(big);
    sandbox.write("out/big.bin", big);
    sandbox.write("out/small", b"tiny");
    sandbox.write("log", b"captured stdout\n");
    let key = sandbox.key(&["--input", "src/**", "--", "build", &big.len().to_string()]);
    (sandbox, key)
}

/// REMOTE-1, REMOTE-2, REMOTE-20: `store` pushes, `status` and `restore`
/// look a local miss up in the remote, `pull` downloads without restoring,
/// `push` uploads a local entry, `remote status` reports what the remote
/// allows; `-v` says which tier hit, and each JSON report names the
/// remotes it pushed to or hit.
fn commands_through_the_chain(store: Store) {
    let url = store.url.clone();
    let big = big_bytes(7);
    let (first, key) = stored_by_hand(&big);
    let stored = cachet_with(
        &first,
        &store,
        &url,
        &[
            "store",
            "--key",
            &key,
            "--output",
            "out",
            "--stdout-file",
            "log",
            "--json",
        ],
    );
    assert_eq!(stored.code, 0, "{stored:?}");
    assert_eq!(stored.json()["remote"]["pushed_to"][0], url.as_str());
    assert_eq!(
        stored.json()["remote"]["failures"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    let record = store.names("cachet-v1-blake3/tenants/local/entries/");
    assert_eq!(record.len(), 1);

    // status from an empty cache: a hit through the remote.
    let second = workspace(&big);
    let status = cachet_with(
        &second,
        &store,
        &url,
        &["-v", "status", "--key", &key, "--json"],
    );
    assert_eq!(status.code, 0, "{status:?}");
    assert_eq!(status.json()["status"], "hit");
    assert_eq!(status.json()["remote"]["hit"], url.as_str());
    assert!(
        status
            .stderr_text()
            .contains(&format!("remote {url}, tenant local: hit {key}")),
        "{status:?}"
    );
    let again = cachet_with(&second, &store, &url, &["-v", "status", "--key", &key]);
    assert_eq!((again.code, again.stdout.as_slice()), (0, &b"hit\n"[..]));
    assert!(again.stderr_text().contains("(local)"), "{again:?}");

    // restore from an empty cache.
    let third = workspace(&big);
    let restored = cachet_with(&third, &store, &url, &["restore", "--key", &key]);
    assert_eq!(restored.code, 0, "{restored:?}");
    assert_eq!(restored.stdout, b"captured stdout\n");
    assert_eq!(fs::read(third.ws.join("out/big.bin")).unwrap(), big);
    assert_eq!(fs::read(third.ws.join("out/small")).unwrap(), b"tiny");

    // pull: downloaded, not restored; then a local hit without the remote.
    let fourth = workspace(&big);
    let pulled = cachet_with(&fourth, &store, &url, &["pull", "--key", &key, "--json"]);
    assert_eq!(pulled.code, 0, "{pulled:?}");
    assert_eq!(pulled.json()["hit"], url.as_str());
    assert!(!fourth.ws.join("out").exists(), "pull restores nothing");
    let local = fourth.run(&["status", "--key", &key]);
    assert_eq!((local.code, local.stdout.as_slice()), (0, &b"hit\n"[..]));
    let already = cachet_with(&fourth, &store, &url, &["pull", "--key", &key]);
    assert_eq!(already.code, 0, "{already:?}");
    assert!(already.stdout_text().contains("already in the local cache"));
    let other = "ab".repeat(32);
    let missing = cachet_with(&fourth, &store, &url, &["pull", "--key", &other]);
    assert_eq!(missing.code, 1, "a miss everywhere: {missing:?}");
    let status = cachet_with(&fourth, &store, &url, &["status", "--key", &other]);
    assert_eq!(status.code, 1, "{status:?}");

    // push: the record removed from the remote comes back.
    store.delete(&record[0]);
    let pushed = cachet_with(&first, &store, &url, &["push", "--key", &key, "--json"]);
    assert_eq!(pushed.code, 0, "{pushed:?}");
    assert_eq!(pushed.json()["pushed_to"][0], url.as_str());
    assert_eq!(
        store.names("cachet-v1-blake3/tenants/local/entries/"),
        record
    );
    let not_local = cachet_with(&first, &store, &url, &["push", "--key", &other]);
    assert_eq!(not_local.code, 1, "{not_local:?}");
    let read_only = cachet_with(
        &first,
        &store,
        &url,
        &["--remote-read-only", "push", "--key", &key],
    );
    assert_eq!(read_only.code, 64, "{read_only:?}");

    // remote status.
    let health = cachet_with(&first, &store, &url, &["remote", "status", "--json"]);
    assert_eq!(health.code, 0, "{health:?}");
    let remote = &health.json()["remotes"][0];
    assert_eq!(remote["url"], url.as_str());
    assert_eq!(remote["reachable"], true);
    assert_eq!(remote["read"], true);
    assert_eq!(remote["write"], true);
    assert_eq!(remote["entries"], 1);
    assert!(remote["latency_micros"].as_u64().is_some());
    assert!(
        store.names("cachet-v1-blake3/probes/").is_empty(),
        "the probe object is removed"
    );
    let text = cachet_with(
        &first,
        &store,
        &url,
        &[
            "--remote-read-only",
            "--tenant",
            "other",
            "remote",
            "status",
        ],
    );
    assert_eq!(text.code, 0, "{text:?}");
    assert!(
        text.stdout_text().contains(&format!("{url}: reachable, "))
            && text
                .stdout_text()
                .contains("read ok, write not tried (read-only), 0 entries of tenant other"),
        "{text:?}"
    );
}

#[test]
fn remote_20_directory_status_restore_store_push_pull_and_remote_status_use_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    commands_through_the_chain(directory_store(dir.path()));
}

#[test]
fn remote_20_webdav_status_restore_store_push_pull_and_remote_status_use_the_chain() {
    commands_through_the_chain(nginx_store());
}

#[test]
fn remote_20_s3_status_restore_store_push_pull_and_remote_status_use_the_chain() {
    commands_through_the_chain(garage_store());
}

/// REMOTE-3, REMOTE-20: an unreachable remote is one warning line and an
/// item of the JSON report's `remote.failures`, never the exit code of
/// `status` or `store`; `remote status` says it is unreachable and exits
/// 70; `push`, `pull` and `remote status` without a remote are usage
/// errors.
#[test]
fn remote_3_commands_report_an_unreachable_remote_once_in_stderr_and_json() {
    let url = format!("webdav+http://127.0.0.1:{}/cache", free_port());
    let store = Store {
        url: url.clone(),
        env: Vec::new(),
        _server: None,
    };
    let (sandbox, key) = stored_by_hand(&big_bytes(8));
    let stored = cachet_with(
        &sandbox,
        &store,
        &url,
        &["store", "--key", &key, "--output", "out", "--json"],
    );
    assert_eq!(stored.code, 0, "{stored:?}");
    assert_eq!(
        stored.json()["remote"]["failures"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        stored.json()["remote"]["pushed_to"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    // One line for the failure; the breaker's trip (REMOTE-17) says
    // what later runs will do, and is opened afresh for each command here
    // so that each meets the unreachable remote itself.
    let warnings = stored
        .stderr_text()
        .lines()
        .filter(|line| line.starts_with("cachet: warning: remote "))
        .filter(|line| !line.contains("later runs on this cache skip it"))
        .count();
    assert_eq!(warnings, 1, "{stored:?}");
    let reset_breaker = || {
        let _ = fs::remove_dir_all(sandbox.ws.join(".cachet").join("remote"));
    };
    reset_breaker();

    let other = "cd".repeat(32);
    let status = cachet_with(
        &sandbox,
        &store,
        &url,
        &["status", "--key", &other, "--json"],
    );
    reset_breaker();
    assert_eq!(status.code, 1, "a miss: {status:?}");
    assert_eq!(status.json()["status"], "miss-no-entry");
    let failures = status.json()["remote"]["failures"].clone();
    assert_eq!(failures.as_array().unwrap().len(), 1, "{status:?}");
    assert!(failures[0].as_str().unwrap().contains(&url), "{failures}");
    let restore = cachet_with(
        &sandbox,
        &store,
        &url,
        &["restore", "--key", &other, "--json"],
    );
    reset_breaker();
    assert_eq!(restore.code, 1, "{restore:?}");
    assert_eq!(
        restore.json()["remote"]["failures"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let pull = cachet_with(&sandbox, &store, &url, &["pull", "--key", &other, "--json"]);
    assert_eq!(pull.code, 1, "{pull:?}");
    assert_eq!(pull.json()["failures"].as_array().unwrap().len(), 1);
    reset_breaker();

    let health = cachet_with(&sandbox, &store, &url, &["remote", "status"]);
    assert_eq!(health.code, 70, "{health:?}");
    assert!(
        health
            .stdout_text()
            .contains(&format!("{url}: unreachable")),
        "{health:?}"
    );
    for args in [
        &["push", "--key", &key][..],
        &["pull", "--key", &key],
        &["remote", "status"],
    ] {
        let mut command = sandbox.cachet();
        command.env_remove("CACHET_REMOTE").args(args);
        let outcome = Outcome::of(command.output().unwrap());
        assert_eq!(outcome.code, 64, "{args:?}: {outcome:?}");
        assert!(
            outcome.stderr_text().contains("--remote URL"),
            "{outcome:?}"
        );
    }
}

/// What a blob larger than memory should be: `push` and `pull` of a blob
/// this size stay below [`STREAMING_RSS_BOUND`].
const LARGE_BLOB_BYTES: usize = 96 << 20;

/// Peak RSS allowed for moving a [`LARGE_BLOB_BYTES`] blob: well under
/// its size, so a process that held it whole would fail.
const STREAMING_RSS_BOUND: u64 = 48 << 20;

/// REMOTE-6, issue #12: a blob is streamed both ways, never held whole in
/// memory, on WebDAV (whose OpenDAL writer would buffer it) as on S3.
fn a_large_blob_streams(store: Store) {
    let noise = incompressible_bytes(LARGE_BLOB_BYTES);
    let (sandbox, key) = stored_by_hand(&noise);
    let stored = sandbox.run(&["store", "--key", &key, "--output", "out"]);
    assert_eq!(stored.code, 0, "{stored:?}");
    let measured = |sandbox: &Sandbox, args: &[&str]| {
        let mut command = sandbox.cachet();
        command.env_remove("CACHET_REMOTE");
        for (name, value) in &store.env {
            command.env(name, value);
        }
        command.args(args).args(["--remote", &store.url]);
        crate::proc::run_measured(&mut command, None, Duration::from_secs(120))
    };
    let pushed = measured(&sandbox, &["push", "--key", &key]);
    assert_eq!(pushed.code, Some(0), "{pushed:?}");
    assert!(
        pushed.max_rss_bytes < STREAMING_RSS_BOUND,
        "push peaked at {} KiB",
        pushed.max_rss_bytes >> 10
    );
    let blob = store
        .names("cachet-v1-blake3/blobs/")
        .into_iter()
        .find(|name| {
            store.handle().store.head(name).unwrap().unwrap().size == LARGE_BLOB_BYTES as u64 + 10
        });
    assert!(blob.is_some(), "the raw blob is on the remote");

    let other = workspace(&noise);
    let pulled = measured(&other, &["pull", "--key", &key]);
    assert_eq!(pulled.code, Some(0), "{pulled:?}");
    assert!(
        pulled.max_rss_bytes < STREAMING_RSS_BOUND,
        "pull peaked at {} KiB",
        pulled.max_rss_bytes >> 10
    );
    let restored = other.run(&["restore", "--key", &key]);
    assert_eq!(restored.code, 0, "{restored:?}");
    assert!(fs::read(other.ws.join("out/big.bin")).unwrap() == noise);
}

#[test]
fn remote_6_webdav_a_large_blob_is_streamed_not_held_in_memory() {
    a_large_blob_streams(nginx_store());
}

#[test]
fn remote_6_s3_a_large_blob_is_streamed_not_held_in_memory() {
    a_large_blob_streams(garage_store());
}

// ------------------------------------------------- the task API's remotes

/// A task whose script is the same in every workspace (the key covers
/// the script), logging each run to `log` outside them.
fn shared_task(log: &Path) -> cachet::task::Task {
    let script = format!(
        "mkdir -p out && cp src/big out/big.bin && printf tiny > out/small && echo run >> '{}' && echo to-stdout && echo to-stderr >&2",
        log.display()
    );
    cachet::task::Task::script(script)
        .input("src/**")
        .output("out")
}

/// A task cache over `sandbox`'s workspace whose remotes are `url` only,
/// under `tenant`.
fn task_cache(sandbox: &Sandbox, url: &str, tenant: &str) -> cachet::task::TaskCache {
    let mut remotes = cachet_cli::remote::RemoteArgs::default();
    remotes.remotes = vec![url.to_string()];
    remotes.tenant = Some(tenant.to_string());
    cachet::task::TaskCache::open(&sandbox.ws, None, Default::default())
        .unwrap()
        .with_remotes(&remotes)
        .unwrap()
}

fn lines_of(log: &Path) -> usize {
    fs::read_to_string(log).map_or(0, |text| text.lines().count())
}

/// REMOTE-1, REMOTE-2, REMOTE-20 through the task API: `TaskCache::run`
/// pushes what it stores and, in another workspace with an empty cache,
/// restores it from the remote without running the command; `lookup`
/// finds it there too, and what a runner records with `store` is pushed
/// and found by the next machine's `lookup`. Each call says in its
/// `remote` report which tier served it and where it was pushed.
fn task_api_through_the_chain(store: Store) {
    use cachet::task::{Lookup, Ran};
    use cachet_core::cache::StoreOutcome;

    let big = big_bytes(9);
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("runs.log");
    let task = shared_task(&log);
    let url = store.url.clone();
    let (mut out, mut err) = (Vec::new(), Vec::new());

    let first = workspace(&big);
    let ran = task_cache(&first, &url, "main")
        .run(&task, &mut out, &mut err)
        .unwrap();
    let Ran::Executed {
        exit_code: Some(0),
        stored: true,
        remote: Some(report),
        ..
    } = ran
    else {
        panic!("expected a stored run: {ran:?}");
    };
    assert_eq!(report.pushed_to, [url.as_str()], "{report:?}");
    assert!(report.failures.is_empty(), "{report:?}");
    assert_eq!(lines_of(&log), 1);
    assert_eq!(
        store.names("cachet-v1-blake3/tenants/main/entries/").len(),
        1
    );

    let second = workspace(&big);
    out.clear();
    err.clear();
    let ran = task_cache(&second, &url, "main")
        .run(&task, &mut out, &mut err)
        .unwrap();
    let Ran::Restored {
        outputs: 2,
        remote: Some(report),
        ..
    } = ran
    else {
        panic!("expected a hit: {ran:?}");
    };
    assert_eq!(
        (report.hit.as_deref(), report.tenant.as_deref()),
        (Some(url.as_str()), Some("main")),
        "{report:?}"
    );
    assert_eq!(lines_of(&log), 1, "the command did not run");
    assert_eq!(
        (out.as_slice(), err.as_slice()),
        (&b"to-stdout\n"[..], &b"to-stderr\n"[..])
    );
    assert_eq!(
        snapshot(&second.ws, &[".cachet"]),
        snapshot(&first.ws, &[".cachet"]),
        "files and modes identical"
    );

    // A runner that runs tasks itself: a hit from the remote...
    let third = workspace(&big);
    let cache = task_cache(&third, &url, "main");
    let found = cache
        .lookup(&task, &mut Vec::new(), &mut Vec::new())
        .unwrap();
    assert!(
        matches!(&found, Lookup::Hit { outputs: 2, remote: Some(report), .. } if report.hit.as_deref() == Some(url.as_str())),
        "{found:?}"
    );
    // ...and a miss everywhere, which it stores and pushes...
    let other = task.clone().set("VARIANT", "2");
    let Lookup::Miss {
        key,
        restore_error: None,
        remote: Some(report),
        ..
    } = cache
        .lookup(&other, &mut Vec::new(), &mut Vec::new())
        .unwrap()
    else {
        panic!("expected a miss");
    };
    assert_eq!(report.hit, None, "{report:?}");
    third.write("out/small", b"made by the runner");
    let stored = cache
        .store(&key, &other, &b"runner out\n"[..], &b""[..])
        .unwrap();
    assert_eq!(stored.outcome, StoreOutcome::Stored);
    assert_eq!(
        stored.remote.map(|report| report.pushed_to),
        Some(vec![url.clone()])
    );
    // ...for the next machine to find.
    let fourth = workspace(&big);
    let mut replayed = Vec::new();
    let found = task_cache(&fourth, &url, "main")
        .lookup(&other, &mut replayed, &mut Vec::new())
        .unwrap();
    assert!(
        matches!(found, Lookup::Hit { key: found, outputs: 2, .. } if found == key),
        "{found:?}"
    );
    assert_eq!(replayed, b"runner out\n");
    assert_eq!(
        fs::read(fourth.ws.join("out/small")).unwrap(),
        b"made by the runner"
    );
    assert_eq!(lines_of(&log), 1);
}

#[test]
fn remote_20_directory_the_task_api_looks_up_and_pushes_through_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    task_api_through_the_chain(directory_store(dir.path()));
}

#[test]
fn remote_20_webdav_the_task_api_looks_up_and_pushes_through_the_chain() {
    task_api_through_the_chain(nginx_store());
}

/// REMOTE-3, REMOTE-17 through the task API: a remote nobody answers
/// costs a miss, the task runs and is stored locally, and the failure is
/// an item of the run's report, never an error; so is the breaker that
/// keeps the remote out of the next run.
#[test]
fn remote_3_the_task_api_reports_an_unreachable_remote_and_runs_the_task() {
    use cachet::task::Ran;

    let url = format!("webdav+http://127.0.0.1:{}/cache", free_port());
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("runs.log");
    let task = shared_task(&log);
    let sandbox = workspace(&big_bytes(3));
    let cache = task_cache(&sandbox, &url, "main");
    let ran = cache.run(&task, &mut Vec::new(), &mut Vec::new()).unwrap();
    let Ran::Executed {
        exit_code: Some(0),
        stored: true,
        remote: Some(report),
        ..
    } = ran
    else {
        panic!("expected a stored run: {ran:?}");
    };
    assert!(report.pushed_to.is_empty(), "{report:?}");
    assert!(
        !report.failures.is_empty() && report.failures.iter().all(|line| line.contains(&url)),
        "{report:?}"
    );
    // The failed run opened the remote's breaker (REMOTE-17): the next
    // run, a local hit, says that it left the remote out.
    fs::remove_dir_all(sandbox.ws.join("out")).unwrap();
    let ran = cache.run(&task, &mut Vec::new(), &mut Vec::new()).unwrap();
    let Ran::Restored {
        remote: Some(report),
        ..
    } = ran
    else {
        panic!("expected a hit: {ran:?}");
    };
    assert_eq!(report.hit.as_deref(), Some("local"), "{report:?}");
    assert!(
        report
            .failures
            .iter()
            .any(|line| line.contains(&url) && line.contains("skipped")),
        "{report:?}"
    );
    assert_eq!(lines_of(&log), 1);
}

/// REMOTE-11 through the task API: an entry `main` pushed is not read
/// under a pull request's tenant unless that tenant trusts `main`.
#[test]
fn remote_11_the_task_api_reads_only_its_own_and_trusted_tenants() {
    use cachet::task::Ran;

    let dir = tempfile::tempdir().unwrap();
    let store = directory_store(dir.path());
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("runs.log");
    let task = shared_task(&log);
    let big = big_bytes(5);
    let main = workspace(&big);
    task_cache(&main, &store.url, "main")
        .run(&task, &mut Vec::new(), &mut Vec::new())
        .unwrap();
    assert_eq!(lines_of(&log), 1);

    let untrusting = workspace(&big);
    let ran = task_cache(&untrusting, &store.url, "pr-7")
        .run(&task, &mut Vec::new(), &mut Vec::new())
        .unwrap();
    assert!(matches!(ran, Ran::Executed { .. }), "{ran:?}");
    assert_eq!(lines_of(&log), 2, "main's entry is not read by pr-7");

    let trusting = workspace(&big);
    let mut remotes = cachet_cli::remote::RemoteArgs::default();
    remotes.remotes = vec![store.url.clone()];
    remotes.tenant = Some(String::from("pr-8"));
    remotes.trust = vec![String::from("main")];
    let ran = cachet::task::TaskCache::open(&trusting.ws, None, Default::default())
        .unwrap()
        .with_remotes(&remotes)
        .unwrap()
        .run(&task, &mut Vec::new(), &mut Vec::new())
        .unwrap();
    assert!(
        matches!(&ran, Ran::Restored { remote: Some(report), .. } if report.tenant.as_deref() == Some("main")),
        "{ran:?}"
    );
    assert_eq!(lines_of(&log), 2);
    assert_eq!(
        store.names("cachet-v1-blake3/tenants/pr-7/entries/").len(),
        1,
        "pr-7 pushed its own entry under its own tenant"
    );
}
