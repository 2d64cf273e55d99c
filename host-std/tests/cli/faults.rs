//! Remote faults end to end (docs/spec.md REMOTE-3, REMOTE-15..19): real
//! servers on loopback (Garage, nginx WebDAV), a port that accepts and
//! never answers, and a small fault-injecting HTTP proxy written here
//! (std threads) in front of nginx. Every run must end with the task's own
//! exit code and leave a local cache that `cachet verify` finds clean.
//! Servers and proxies stop when their guards drop, even when a test
//! fails; every wait is bounded.

use alloc::sync::Arc;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use core::time::Duration;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::thread::JoinHandle;
use std::time::Instant;

use crate::remote::{Store, big_bytes, garage_store, nginx_store, run_command, workspace};
use crate::support::{Outcome, Sandbox};

/// The task: fails on purpose with `FAIL` set (exit 3), pauses `PAUSE`
/// seconds when set, else builds an output big enough to travel as a blob.
const SCRIPT: &str = r#"test -n "$FAIL" && { echo run >> "$RUNS"; exit 3; }
test -n "$PAUSE" && sleep "$PAUSE"
mkdir -p out
cp src/big out/big.bin
echo run >> "$RUNS"
echo to-stdout"#;

/// `cachet run` of [`SCRIPT`] against `url` with `store`'s environment and
/// `env`, and `extra` flags.
fn command(
    sandbox: &Sandbox,
    store: &Store,
    url: &str,
    extra: &[&str],
    env: &[(&str, &str)],
) -> std::process::Command {
    run_command(sandbox, store, url, SCRIPT, extra, env)
}

fn run(
    sandbox: &Sandbox,
    store: &Store,
    url: &str,
    extra: &[&str],
    env: &[(&str, &str)],
) -> Outcome {
    Outcome::of(command(sandbox, store, url, extra, env).output().unwrap())
}

/// The run ended with the task's code, and the local cache verifies clean.
fn assert_task_code_and_clean_cache(sandbox: &Sandbox, outcome: &Outcome, code: i32) {
    assert_eq!(outcome.code, code, "the task's own exit code: {outcome:?}");
    let verify = sandbox.run(&["verify"]);
    assert_eq!(verify.code, 0, "cachet verify: {verify:?}");
}

fn warnings(outcome: &Outcome) -> Vec<String> {
    outcome
        .stderr_text()
        .lines()
        .filter(|line| line.starts_with("cachet: warning: "))
        .map(str::to_owned)
        .collect()
}

/// A store that only names a URL (for a server that is gone or fake).
fn url_only(url: String, env: &[(String, String)]) -> Store {
    Store {
        url,
        env: env.to_vec(),
        _server: None,
    }
}

/// A loopback listener run by a thread until dropped.
struct Listener {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Accepts connections on a loopback port and hands each to `serve` on a
/// thread of its own, until dropped.
fn listen(serve: impl Fn(TcpStream) + Send + Sync + 'static) -> Listener {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let stop = Arc::new(AtomicBool::new(false));
    let serve = Arc::new(serve);
    let thread = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut held = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        stream.set_nonblocking(false).unwrap();
                        let serve = Arc::clone(&serve);
                        let kept = stream.try_clone().unwrap();
                        held.push(kept);
                        std::thread::spawn(move || serve(stream));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
            for stream in held {
                let _ = stream.shutdown(Shutdown::Both);
            }
        })
    };
    Listener {
        port,
        stop,
        thread: Some(thread),
    }
}

/// A port that accepts connections and never answers.
fn black_hole() -> Listener {
    listen(|stream| {
        // Holds the connection open, reading nothing, until the listener
        // shuts it down.
        let mut stream = stream;
        let mut sink = [0u8; 1];
        while matches!(stream.read(&mut sink), Ok(n) if n > 0) {}
    })
}

/// What the proxy does to a response.
#[derive(Clone, Copy)]
enum Fault {
    /// Answers `503` instead of forwarding, `count` times, then forwards.
    ServerError { count: usize },
    /// Forwards, then sends only half the body of each `GET` response.
    TruncateGets,
    /// Forwards after waiting this long.
    Slow(Duration),
}

/// Reads an HTTP/1.1 message head and its `Content-Length` body.
fn read_message(stream: &mut TcpStream) -> Option<(String, Vec<u8>)> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).ok()? == 0 {
            return None;
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).ok()?;
    let length = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).ok()?;
    Some((head, body))
}

/// `head` with its `Connection` header replaced by `Connection: close`.
fn closing(head: &str) -> String {
    let mut lines: Vec<&str> = head
        .trim_end()
        .split("\r\n")
        .filter(|line| {
            !line.to_ascii_lowercase().starts_with("connection:")
                && !line.to_ascii_lowercase().starts_with("keep-alive:")
        })
        .collect();
    lines.push("Connection: close");
    format!("{}\r\n\r\n", lines.join("\r\n"))
}

/// A loopback HTTP proxy in front of `upstream` that injects `fault`;
/// one request per connection. Counts the requests it saw.
fn fault_proxy(upstream: u16, fault: Fault) -> (Listener, Arc<AtomicUsize>) {
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&seen);
    let listener = listen(move |mut client| {
        let Some((head, body)) = read_message(&mut client) else {
            return;
        };
        let number = counter.fetch_add(1, Ordering::SeqCst);
        if let Fault::ServerError { count } = fault
            && number < count
        {
            let _ = client.write_all(
                b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
            return;
        }
        if let Fault::Slow(delay) = fault {
            std::thread::sleep(delay);
        }
        let Ok(mut server) = TcpStream::connect(("127.0.0.1", upstream)) else {
            return;
        };
        server
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        if server.write_all(closing(&head).as_bytes()).is_err() || server.write_all(&body).is_err()
        {
            return;
        }
        let mut response = Vec::new();
        let _ = server.read_to_end(&mut response);
        let Some(split) = response.windows(4).position(|w| w == b"\r\n\r\n") else {
            return;
        };
        let (response_head, response_body) = response.split_at(split + 4);
        let response_head = String::from_utf8_lossy(response_head).into_owned();
        let mut response_body = response_body.to_vec();
        if matches!(fault, Fault::TruncateGets)
            && head.starts_with("GET ")
            && !response_body.is_empty()
        {
            response_body.truncate(response_body.len() / 2);
        }
        let _ = client.write_all(closing(&response_head).as_bytes());
        let _ = client.write_all(&response_body);
        let _ = client.shutdown(Shutdown::Both);
    });
    (listener, seen)
}

/// The port of a `webdav+http://127.0.0.1:PORT/…` URL.
fn port_of(url: &str) -> u16 {
    let rest = url.split("127.0.0.1:").nth(1).unwrap();
    rest.split(['/', '&', '?']).next().unwrap().parse().unwrap()
}

#[test]
fn remote_15_17_five_runs_against_a_port_that_never_answers_take_at_most_20_s() {
    let hole = black_hole();
    let url = format!(
        "s3://cachet-test?endpoint=http://127.0.0.1:{}&region=garage",
        hole.port
    );
    let store = url_only(url.clone(), &[]);
    let sandbox = workspace(&big_bytes(20));
    let started = Instant::now();
    let mut each = Vec::new();
    for round in 0..5 {
        let variant = format!("VARIANT={round}");
        let one = Instant::now();
        let outcome = run(&sandbox, &store, &url, &["-v", "--set", &variant], &[]);
        each.push(one.elapsed());
        assert_task_code_and_clean_cache(&sandbox, &outcome, 0);
        assert!(outcome.stdout_text().contains("to-stdout"), "{outcome:?}");
        let text = outcome.stderr_text();
        if round == 0 {
            assert!(text.contains("timed out"), "{outcome:?}");
            assert!(
                text.contains("later runs on this cache skip it"),
                "{outcome:?}"
            );
        } else {
            assert!(text.contains("skipped for"), "REMOTE-17: {outcome:?}");
            assert!(
                text.contains("skipped (circuit breaker open)"),
                "{outcome:?}"
            );
        }
        assert!(
            text.contains("remote statistics: local 0 hits 1 miss"),
            "{outcome:?}"
        );
    }
    let total = started.elapsed();
    assert_eq!(sandbox.runs(), 5, "every run ran its task");
    eprintln!("five runs against a black hole: {total:?} ({each:?})");
    assert!(
        total <= Duration::from_secs(20),
        "REMOTE-15: {total:?} ({each:?})"
    );
}

#[test]
fn remote_15_a_remote_timeout_of_the_environment_bounds_a_lookup() {
    let hole = black_hole();
    let url = format!("webdav+http://127.0.0.1:{}/cache", hole.port);
    let store = url_only(url.clone(), &[]);
    let sandbox = workspace(&big_bytes(21));
    let started = Instant::now();
    let outcome = run(
        &sandbox,
        &store,
        &url,
        &[],
        &[("CACHET_REMOTE_TIMEOUT", "1"), ("FAIL", "1")],
    );
    assert_task_code_and_clean_cache(&sandbox, &outcome, 3);
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
    let bad = run(
        &sandbox,
        &store,
        &url,
        &[],
        &[("CACHET_REMOTE_TIMEOUT", "soon")],
    );
    assert_eq!(bad.code, 65, "{bad:?}");
    assert!(
        bad.stderr_text().contains("CACHET_REMOTE_TIMEOUT"),
        "{bad:?}"
    );
}

#[test]
fn remote_3_garage_stopped_mid_run_and_between_runs_costs_misses_only() {
    let store = garage_store();
    let (url, env) = (store.url.clone(), store.env.clone());
    let big = big_bytes(22);
    // Stopped while the task runs: the push fails, the run does not.
    let first = workspace(&big);
    let child = command(&first, &store, &url, &[], &[("PAUSE", "2")])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    drop(store);
    let outcome = Outcome::of(child.wait_with_output().unwrap());
    assert_task_code_and_clean_cache(&first, &outcome, 0);
    assert_eq!(first.runs(), 1);
    assert_eq!(
        warnings(&outcome).len(),
        2,
        "the failed push and the trip: {outcome:?}"
    );
    // Gone between runs: a miss, and the task's exit code.
    let gone = url_only(url.clone(), &env);
    let second = workspace(&big);
    let outcome = run(&second, &gone, &url, &[], &[("FAIL", "1")]);
    assert_task_code_and_clean_cache(&second, &outcome, 3);
    // The first workspace's local entry still serves it.
    std::fs::remove_dir_all(first.ws.join("out")).unwrap();
    let local = run(&first, &gone, &url, &[], &[("FAIL", "1")]);
    assert_task_code_and_clean_cache(&first, &local, 0);
    assert_eq!(first.runs(), 1);
}

#[test]
fn remote_16_wrong_credentials_warn_once_and_stop_writes() {
    let store = garage_store();
    let wrong = url_only(
        store.url.clone(),
        &[
            ("AWS_ACCESS_KEY_ID".into(), format!("GK{}", "34".repeat(12))),
            ("AWS_SECRET_ACCESS_KEY".into(), "ef".repeat(32)),
        ],
    );
    let sandbox = workspace(&big_bytes(23));
    let outcome = run(&sandbox, &wrong, &store.url, &["-v"], &[]);
    assert_task_code_and_clean_cache(&sandbox, &outcome, 0);
    let said = warnings(&outcome);
    assert_eq!(said.len(), 1, "one warning: {outcome:?}");
    assert!(said[0].contains(&store.url), "{said:?}");
    assert!(said[0].contains("access refused"), "{said:?}");
    assert!(said[0].contains("AWS_ACCESS_KEY_ID"), "{said:?}");
    assert!(
        !outcome.stderr_text().contains(&"ef".repeat(32)),
        "no secret printed"
    );
    assert!(
        store.names("").is_empty(),
        "nothing written: {:?}",
        store.names("")
    );
    // A refusal is not an outage: the breaker stays closed.
    let again = run(
        &sandbox,
        &wrong,
        &store.url,
        &["--set", "VARIANT=2"],
        &[("FAIL", "1")],
    );
    assert_task_code_and_clean_cache(&sandbox, &again, 3);
    assert!(!again.stderr_text().contains("skipped"), "{again:?}");
}

#[test]
fn remote_15_server_errors_are_retried_and_a_server_that_keeps_failing_costs_a_miss() {
    let store = nginx_store();
    let upstream = port_of(&store.url);
    // Two 503s, then answers: the retries carry the lookup and the push.
    let (proxy, _) = fault_proxy(upstream, Fault::ServerError { count: 2 });
    let url = format!("webdav+http://127.0.0.1:{}/cache", proxy.port);
    let sandbox = workspace(&big_bytes(24));
    let outcome = run(&sandbox, &store, &url, &["-v"], &[]);
    assert_task_code_and_clean_cache(&sandbox, &outcome, 0);
    assert!(warnings(&outcome).is_empty(), "{outcome:?}");
    assert!(
        outcome.stderr_text().contains("errors: 2 server error"),
        "{outcome:?}"
    );
    assert!(outcome.stderr_text().contains("pushed"), "{outcome:?}");
    assert_eq!(
        store.names("cachet-v1-blake3/tenants/local/entries/").len(),
        1
    );
    drop(proxy);
    // Always 503: a miss, the task's code, and the breaker trips.
    let (proxy, seen) = fault_proxy(upstream, Fault::ServerError { count: usize::MAX });
    let url = format!("webdav+http://127.0.0.1:{}/cache", proxy.port);
    let other = workspace(&big_bytes(24));
    let outcome = run(&other, &store, &url, &["-v"], &[("FAIL", "1")]);
    assert_task_code_and_clean_cache(&other, &outcome, 3);
    assert_eq!(
        seen.load(Ordering::SeqCst),
        3,
        "three attempts, no more: {outcome:?}"
    );
    assert!(
        outcome
            .stderr_text()
            .contains("later runs on this cache skip it"),
        "{outcome:?}"
    );
}

#[test]
fn remote_4_truncated_bodies_and_a_slow_server_cost_misses_not_failures() {
    let store = nginx_store();
    let upstream = port_of(&store.url);
    let big = big_bytes(25);
    let first = workspace(&big);
    assert_task_code_and_clean_cache(&first, &run(&first, &store, &store.url, &[], &[]), 0);

    let (proxy, _) = fault_proxy(upstream, Fault::TruncateGets);
    let url = format!("webdav+http://127.0.0.1:{}/cache", proxy.port);
    let truncated = workspace(&big);
    let outcome = run(&truncated, &store, &url, &["-v"], &[("FAIL", "1")]);
    assert_task_code_and_clean_cache(&truncated, &outcome, 3);
    assert!(!truncated.ws.join("out").exists(), "{outcome:?}");
    drop(proxy);

    // Slower than the time limit: a miss within it.
    let (proxy, _) = fault_proxy(upstream, Fault::Slow(Duration::from_millis(2_500)));
    let url = format!("webdav+http://127.0.0.1:{}/cache", proxy.port);
    let slow = workspace(&big);
    let started = Instant::now();
    let outcome = run(
        &slow,
        &store,
        &url,
        &[],
        &[("FAIL", "1"), ("CACHET_REMOTE_TIMEOUT", "1")],
    );
    assert_task_code_and_clean_cache(&slow, &outcome, 3);
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
    drop(proxy);

    // Slow but within the limit: a hit, the right bytes.
    let (proxy, _) = fault_proxy(upstream, Fault::Slow(Duration::from_millis(300)));
    let url = format!("webdav+http://127.0.0.1:{}/cache", proxy.port);
    let patient = workspace(&big);
    let outcome = run(&patient, &store, &url, &[], &[("FAIL", "1")]);
    assert_task_code_and_clean_cache(&patient, &outcome, 0);
    assert_eq!(patient.runs(), 0, "{outcome:?}");
    assert_eq!(std::fs::read(patient.ws.join("out/big.bin")).unwrap(), big);
}

#[test]
fn remote_4_every_remote_object_tampered_is_a_miss_and_enters_nothing() {
    let store = garage_store();
    let big = big_bytes(26);
    let first = workspace(&big);
    assert_task_code_and_clean_cache(&first, &run(&first, &store, &store.url, &[], &[]), 0);
    let names = store.names("");
    assert!(names.len() >= 2, "{names:?}");
    for name in &names {
        let mut bytes = store.get(name).unwrap();
        let at = bytes.len() - 1;
        bytes[at] ^= 0x55;
        store.put(name, &bytes);
    }
    let other = workspace(&big);
    let outcome = run(&other, &store, &store.url, &["-v"], &[("FAIL", "1")]);
    assert_task_code_and_clean_cache(&other, &outcome, 3);
    assert_eq!(other.runs(), 1);
    assert!(!other.ws.join("out").exists());
    let info = other.run(&["info", "--json"]);
    assert_eq!(info.json()["valid_entries"], 0, "{info:?}");
}

/// A Garage cluster of three nodes on loopback, `replication_factor = 3`;
/// every node's process is killed when dropped.
struct Cluster {
    dir: tempfile::TempDir,
    nodes: Vec<Option<std::process::Child>>,
    api_ports: Vec<u16>,
}

const CLUSTER_KEY_ID: &str = "GK565656565656565656565656";

impl Drop for Cluster {
    fn drop(&mut self) {
        for at in 0..self.nodes.len() {
            self.kill(at);
        }
    }
}

impl Cluster {
    fn config(&self, at: usize) -> std::path::PathBuf {
        self.dir.path().join(format!("node{at}.toml"))
    }

    fn start(&mut self, at: usize) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join(format!("node{at}.log")))
            .unwrap();
        let child = std::process::Command::new(crate::remote::garage_binary())
            .arg("-c")
            .arg(self.config(at))
            .arg("server")
            .env("RUST_LOG", "warn")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.nodes[at] = Some(child);
    }

    fn kill(&mut self, at: usize) {
        if let Some(mut child) = self.nodes[at].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// `garage` against node `at`, retried (bounded) until it succeeds:
    /// the nodes need a moment to find each other.
    fn admin(&self, at: usize, args: &[&str]) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let output = std::process::Command::new(crate::remote::garage_binary())
                .arg("-c")
                .arg(self.config(at))
                .args(args)
                .output()
                .unwrap();
            if output.status.success() {
                return String::from_utf8_lossy(&output.stdout).into_owned();
            }
            assert!(
                Instant::now() < deadline,
                "garage {args:?}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The store as reached through node `at`'s S3 API.
    fn store(&self, at: usize) -> Store {
        Store {
            url: format!(
                "s3://cachet-test/team?endpoint=http://127.0.0.1:{}&region=garage",
                self.api_ports[at]
            ),
            env: vec![
                ("AWS_ACCESS_KEY_ID".into(), CLUSTER_KEY_ID.into()),
                ("AWS_SECRET_ACCESS_KEY".into(), "78".repeat(32)),
            ],
            _server: None,
        }
        .wait_ready()
    }

    fn new() -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let mut api_ports = Vec::new();
        for at in 0..3 {
            let (rpc, api) = (crate::remote::free_port(), crate::remote::free_port());
            api_ports.push(api);
            let root = dir.path().join(format!("node{at}"));
            std::fs::write(
                dir.path().join(format!("node{at}.toml")),
                crate::remote::garage_config(&root, rpc, api, 3, &"ef".repeat(32)),
            )
            .unwrap();
        }
        let mut cluster = Cluster {
            dir,
            nodes: vec![None, None, None],
            api_ports,
        };
        for at in 0..3 {
            cluster.start(at);
        }
        let ids: Vec<String> = (0..3)
            .map(|at| cluster.admin(at, &["node", "id", "-q"]).trim().to_owned())
            .collect();
        for id in &ids[1..] {
            cluster.admin(0, &["node", "connect", id]);
        }
        for id in &ids {
            let short = id.split('@').next().unwrap();
            cluster.admin(0, &["layout", "assign", "-z", "dc1", "-c", "1G", short]);
        }
        cluster.admin(0, &["layout", "apply", "--version", "1"]);
        cluster.admin(
            0,
            &[
                "key",
                "import",
                "--yes",
                "-n",
                "cachet",
                CLUSTER_KEY_ID,
                &"78".repeat(32),
            ],
        );
        cluster.admin(0, &["bucket", "create", "cachet-test"]);
        cluster.admin(
            0,
            &[
                "bucket",
                "allow",
                "--read",
                "--write",
                "--owner",
                "cachet-test",
                "--key",
                "cachet",
            ],
        );
        cluster
    }
}

/// Starts `cachet run` in each workspace at once through `store`, and
/// returns their outcomes.
fn run_together(sandboxes: &[&Sandbox], store: &Store) -> Vec<Outcome> {
    let children: Vec<_> = sandboxes
        .iter()
        .map(|sandbox| {
            command(sandbox, store, &store.url, &["-v"], &[])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    children
        .into_iter()
        .map(|child| Outcome::of(child.wait_with_output().unwrap()))
        .collect()
}

/// Every run exited 0, each hit restored the bytes of its own input, and
/// the local caches verify clean.
fn assert_all_served(sandboxes: &[&Sandbox], outcomes: &[Outcome], seeds: &[u8], hits: bool) {
    for ((sandbox, outcome), seed) in sandboxes.iter().zip(outcomes).zip(seeds) {
        assert_task_code_and_clean_cache(sandbox, outcome, 0);
        assert_eq!(
            std::fs::read(sandbox.ws.join("out/big.bin")).unwrap(),
            big_bytes(*seed)
        );
        if hits {
            assert_eq!(sandbox.runs(), 0, "a hit from the cluster: {outcome:?}");
        } else {
            assert!(outcome.stderr_text().contains("pushed"), "{outcome:?}");
        }
    }
}

/// REMOTE-18 on a distributed store: a three-node Garage cluster loses a
/// node while several processes store and restore through it, then gets
/// it back. No run fails, every hit restores the right bytes, and what
/// was written while the node was down is a hit through that node after
/// it returns.
#[test]
fn remote_18_a_three_node_garage_cluster_losing_a_node_fails_no_run() {
    let started = Instant::now();
    let mut cluster = Cluster::new();
    let (first, second) = (cluster.store(0), cluster.store(1));

    let before: Vec<Sandbox> = [30, 31, 32]
        .iter()
        .map(|&s| workspace(&big_bytes(s)))
        .collect();
    let refs: Vec<&Sandbox> = before.iter().collect();
    let outcomes = run_together(&refs, &first);
    assert_all_served(&refs, &outcomes, &[30, 31, 32], false);

    // Restores of what was there, and stores of new entries, at once,
    // while the third node is killed.
    let restores: Vec<Sandbox> = [30, 31, 32]
        .iter()
        .map(|&s| workspace(&big_bytes(s)))
        .collect();
    let stores: Vec<Sandbox> = [33, 34, 35]
        .iter()
        .map(|&s| workspace(&big_bytes(s)))
        .collect();
    let (restore_refs, store_refs): (Vec<&Sandbox>, Vec<&Sandbox>) =
        (restores.iter().collect(), stores.iter().collect());
    let (restored, stored) = std::thread::scope(|scope| {
        let restoring = scope.spawn(|| run_together(&restore_refs, &first));
        let storing = scope.spawn(|| run_together(&store_refs, &second));
        std::thread::sleep(Duration::from_millis(50));
        cluster.kill(2);
        (restoring.join().unwrap(), storing.join().unwrap())
    });
    assert_all_served(&restore_refs, &restored, &[30, 31, 32], true);
    assert_all_served(&store_refs, &stored, &[33, 34, 35], false);

    // With the node down for whole runs.
    let down: Vec<Sandbox> = [36, 37].iter().map(|&s| workspace(&big_bytes(s))).collect();
    let refs: Vec<&Sandbox> = down.iter().collect();
    let outcomes = run_together(&refs, &second);
    assert_all_served(&refs, &outcomes, &[36, 37], false);

    cluster.start(2);
    let third = cluster.store(2);
    let after: Vec<Sandbox> = [33, 34, 35, 36, 37, 30]
        .iter()
        .map(|&s| workspace(&big_bytes(s)))
        .collect();
    let refs: Vec<&Sandbox> = after.iter().collect();
    let outcomes = run_together(&refs, &third);
    assert_all_served(&refs, &outcomes, &[33, 34, 35, 36, 37, 30], true);
    eprintln!("three-node cluster scenario: {:?}", started.elapsed());
    assert!(
        started.elapsed() < Duration::from_secs(120),
        "{:?}",
        started.elapsed()
    );
}
