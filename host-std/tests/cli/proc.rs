//! Running a child process with a deadline and an optional address-space
//! limit, and measuring its own peak resident set size.
//!
//! [`run`] reaps the child with `wait4(2)`, which reports the usage of that
//! one child, unlike `getrusage(RUSAGE_CHILDREN)`, which mixes in every
//! child of every test running in parallel. Its streams go to anonymous
//! temporary files, so no pipe can fill up and no reader thread is needed.
//!
//! `ru_maxrss` has a catch: Linux carries the resident set of the image a
//! process had before `exec` over into the new one, and a child forked from
//! a test binary that holds 100 MiB starts out "holding" 100 MiB. Where the
//! figure matters, [`run_measured`] therefore starts a *probe*: the test
//! binary itself, freshly executed with [`PROBE_VAR`] set so that its test
//! named [`PROBE_TEST`] calls [`serve_probe`], which forks the command from
//! a small process, reaps it with `wait4` and writes a report. Shared by
//! the `hostile` and `stress` tests.

#![allow(dead_code)]

use core::time::Duration;
use std::fs::File;
use std::io::{Read, Seek};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

/// Set (to a JSON request) in the environment of a probe process.
pub const PROBE_VAR: &str = "CACHET_TEST_RSS_PROBE";

/// The test that serves probes: it must call [`serve_probe`] first.
pub const PROBE_TEST: &str = "hostile::rss_probe_measures_the_child_not_the_test_binary";

/// How a child ended.
#[derive(Clone)]
pub struct Finished {
    /// Exit code; `None` when a signal ended it.
    pub code: Option<i32>,
    /// The signal that ended it, if any.
    pub signal: Option<i32>,
    /// Whether it was killed for running past the deadline.
    pub timed_out: bool,
    /// What it wrote to stdout.
    pub stdout: Vec<u8>,
    /// What it wrote to stderr.
    pub stderr: Vec<u8>,
    /// Its peak resident set size, in bytes (`ru_maxrss`; see the module
    /// docs for what it includes).
    pub max_rss_bytes: u64,
    /// Wall-clock time from spawn to exit.
    pub elapsed: Duration,
}

impl Finished {
    /// Stdout as text, lossily.
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Stderr as text, lossily.
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

impl core::fmt::Debug for Finished {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "exit {:?} signal {:?}{} after {:?}, max RSS {} KiB\n--- stdout\n{}\n--- stderr\n{}",
            self.code,
            self.signal,
            if self.timed_out { " (timed out)" } else { "" },
            self.elapsed,
            self.max_rss_bytes / 1024,
            self.stdout_text(),
            self.stderr_text()
        )
    }
}

/// How [`wait`] found a child.
struct Waited {
    code: Option<i32>,
    signal: Option<i32>,
    timed_out: bool,
    max_rss_bytes: u64,
    elapsed: Duration,
}

/// Spawns `command` (its stdio already set) under `RLIMIT_AS =
/// address_space` bytes if given, and reaps it, killing it with `SIGKILL`
/// once `deadline` has passed.
fn wait(command: &mut Command, address_space: Option<u64>, deadline: Duration) -> Waited {
    if let Some(limit) = address_space {
        // SAFETY: the closure runs in the forked child before exec and only
        // calls setrlimit(2), which is async-signal-safe; it allocates
        // nothing and takes no lock.
        unsafe {
            command.pre_exec(move || {
                let rlimit = libc::rlimit {
                    rlim_cur: limit as libc::rlim_t,
                    rlim_max: limit as libc::rlim_t,
                };
                if libc::setrlimit(libc::RLIMIT_AS, &rlimit) == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
    }
    let start = Instant::now();
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {command:?}: {e}"));
    let pid = libc::pid_t::try_from(child.id()).unwrap();
    let mut status: libc::c_int = 0;
    // SAFETY: rusage is plain old data, for which all zeroes is valid.
    let mut usage: libc::rusage = unsafe { core::mem::zeroed() };
    let mut timed_out = false;
    let mut pause = Duration::from_millis(1);
    loop {
        // SAFETY: `status` and `usage` are valid for writes; `pid` is our
        // own child, which nothing else reaps (std's `Child::wait` is never
        // called).
        let reaped = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        if reaped == pid {
            break;
        }
        assert_eq!(reaped, 0, "wait4: {}", std::io::Error::last_os_error());
        if start.elapsed() > deadline && !timed_out {
            timed_out = true;
            // Not reaped yet, so the pid still names our child.
            let _ = child.kill();
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    }
    let elapsed = start.elapsed();
    drop(child);
    Waited {
        code: libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status)),
        signal: libc::WIFSIGNALED(status).then(|| libc::WTERMSIG(status)),
        timed_out,
        max_rss_bytes: u64::try_from(usage.ru_maxrss).unwrap_or(0) * 1024,
        elapsed,
    }
}

fn read_all(file: &mut File) -> Vec<u8> {
    let mut bytes = Vec::new();
    file.rewind().unwrap();
    file.read_to_end(&mut bytes).unwrap();
    bytes
}

/// Runs `command` to completion (see [`wait`]) and collects its output.
/// `max_rss_bytes` includes whatever the calling process held when it
/// forked; use [`run_measured`] where that matters.
pub fn run(command: &mut Command, address_space: Option<u64>, deadline: Duration) -> Finished {
    let mut stdout = tempfile::tempfile().unwrap();
    let mut stderr = tempfile::tempfile().unwrap();
    command
        .stdin(Stdio::null())
        .stdout(Stdio::from(stdout.try_clone().unwrap()))
        .stderr(Stdio::from(stderr.try_clone().unwrap()));
    let waited = wait(command, address_space, deadline);
    Finished {
        code: waited.code,
        signal: waited.signal,
        timed_out: waited.timed_out,
        stdout: read_all(&mut stdout),
        stderr: read_all(&mut stderr),
        max_rss_bytes: waited.max_rss_bytes,
        elapsed: waited.elapsed,
    }
}

/// Like [`run`], but the command is forked by a fresh probe process (see
/// the module docs), so `max_rss_bytes` is the command's own peak.
/// `command` gives the program, arguments, working directory and
/// environment; the probe inherits them and passes them on.
pub fn run_measured(
    command: &mut Command,
    address_space: Option<u64>,
    deadline: Duration,
) -> Finished {
    let dir = tempfile::tempdir().unwrap();
    let (out, err, report) = (
        dir.path().join("stdout"),
        dir.path().join("stderr"),
        dir.path().join("report"),
    );
    let request = serde_json::json!({
        "program": command.get_program().to_str().unwrap(),
        "args": command.get_args().map(|a| a.to_str().unwrap()).collect::<Vec<_>>(),
        "cwd": command.get_current_dir().map(|d| d.to_str().unwrap()),
        "limit": address_space,
        "deadline_ms": u64::try_from(deadline.as_millis()).unwrap(),
        "stdout": out.to_str().unwrap(),
        "stderr": err.to_str().unwrap(),
        "report": report.to_str().unwrap(),
    });
    let mut probe = Command::new(std::env::current_exe().unwrap());
    probe
        .args([PROBE_TEST, "--exact", "--nocapture", "--test-threads=1"])
        .env(PROBE_VAR, request.to_string());
    for (name, value) in command.get_envs() {
        match value {
            Some(value) => probe.env(name, value),
            None => probe.env_remove(name),
        };
    }
    let served = run(&mut probe, None, deadline + Duration::from_secs(30));
    let report: serde_json::Value = match std::fs::read(&report) {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap(),
        Err(e) => panic!("the probe wrote no report ({e}): {served:?}"),
    };
    let number = |name: &str| report[name].as_u64();
    Finished {
        code: number("code").map(|c| i32::try_from(c).unwrap()),
        signal: number("signal").map(|s| i32::try_from(s).unwrap()),
        timed_out: report["timed_out"].as_bool().unwrap(),
        stdout: std::fs::read(&out).unwrap(),
        stderr: std::fs::read(&err).unwrap(),
        max_rss_bytes: number("max_rss_bytes").unwrap(),
        elapsed: Duration::from_millis(number("elapsed_ms").unwrap()),
    }
}

/// In a probe process (when [`PROBE_VAR`] is set): runs the requested
/// command, writes the report and exits. Otherwise returns.
pub fn serve_probe() {
    let Some(request) = std::env::var_os(PROBE_VAR) else {
        return;
    };
    let request: serde_json::Value = serde_json::from_str(request.to_str().unwrap()).unwrap();
    let text = |name: &str| request[name].as_str().unwrap().to_owned();
    let mut command = Command::new(text("program"));
    for arg in request["args"].as_array().unwrap() {
        command.arg(arg.as_str().unwrap());
    }
    if let Some(cwd) = request["cwd"].as_str() {
        command.current_dir(cwd);
    }
    command
        .env_remove(PROBE_VAR)
        .stdin(Stdio::null())
        .stdout(File::create(text("stdout")).unwrap())
        .stderr(File::create(text("stderr")).unwrap());
    let deadline = Duration::from_millis(request["deadline_ms"].as_u64().unwrap());
    let waited = wait(&mut command, request["limit"].as_u64(), deadline);
    let report = serde_json::json!({
        "code": waited.code,
        "signal": waited.signal,
        "timed_out": waited.timed_out,
        "max_rss_bytes": waited.max_rss_bytes,
        "elapsed_ms": u64::try_from(waited.elapsed.as_millis()).unwrap(),
    });
    std::fs::write(Path::new(&text("report")), report.to_string()).unwrap();
    std::process::exit(0);
}
