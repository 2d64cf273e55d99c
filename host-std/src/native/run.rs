//! `cachet run`: a hit restores, a miss runs and stores.
//!
//! 1. The key is computed exactly as `cachet key` computes it
//!    ([`cli::compute_key`]).
//! 2. On a hit, the outputs are restored (OP-3) and the recorded stdout and
//!    stderr bytes are written to this process's stdout and stderr; the
//!    exit code is 0. If restoring fails in a way a fresh run repairs (an
//!    I/O error while publishing, or the entry turning out corrupt), a
//!    warning is printed and the command runs as on a miss. If a restore
//!    target would be written through a symlink or onto a directory
//!    (SAFE-2), nothing is written, the command does not run, and the exit
//!    code is 70.
//! 3. On a miss, the command runs in the workspace with the `--set`
//!    variables added to the inherited environment; its stdout and stderr
//!    pass through live and are captured to temporary files (in the cache
//!    directory, as scratch, else in the system's temporary directory).
//!    Its exit code is passed through. Only a run that exits 0 is stored,
//!    with the regular files matched by `--output` after the run; if one is
//!    a symlink or special file, cachet says so and exits 73 without
//!    storing.
//!
//! With remotes configured (`--remote`, `CACHET_REMOTE`; docs/spec.md
//! §11), a local miss asks each remote in order, under the run's own
//! tenant and then each tenant it trusts (REMOTE-11), and a remote hit is
//! downloaded into the local cache, then restored from there (REMOTE-1);
//! a stored result is pushed to every writable remote under the run's own
//! tenant only (REMOTE-2, REMOTE-11). With `CACHET_REMOTE_SIGNING_KEY`,
//! records pushed are signed and records read must be (REMOTE-12,
//! REMOTE-13). A remote that fails, or a record refused for its signature,
//! costs a miss and one line on stderr, never the exit code (REMOTE-3). Every request is bounded in time and retried only after a
//! transient failure (REMOTE-15); a remote that refuses the credentials is
//! not written again in the run (REMOTE-16); one that fails is left out of
//! later runs on this cache for a cool-down (REMOTE-17); `-v` ends with
//! the remote statistics (REMOTE-19).
//!
//! Nothing but the command's own streams is printed unless `-v` is given
//! (or something fails).

use std::io::{self, Write};

use cachet_cli::remote::RemoteArgs;
use cachet_core::cache::{CacheError, RestoreOutcome, StoreOutcome};
use cachet_core::remote::guard::{Guarded, RemoteSession};
use cachet_core::remote::{
    self, ErrorKind, Found, PullOutcome, PushOutcome, Remote, RemoteFailure, RemoteOptions,
};

use crate::remote::{OpendalRemote, SystemPacer};
use clap::Args;

use super::{NativeError, Opened};
use crate::exec::{CommandSpec, ExecError, Program, RunResult, run_captured};
use cachet_cli::{
    self as cli, ActionSpec, CliError, GlobalArgs, Host, KeyArgs, StdRead, StdWrite, SystemContext,
    exit,
};

/// `cachet run`.
#[derive(Args, Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RunArgs {
    /// The key's components and the outputs to store after a successful
    /// run.
    #[command(flatten)]
    pub key: KeyArgs,

    /// The remote stores to look up and push to.
    #[command(flatten)]
    pub remote: RemoteArgs,
}

/// Prints one warning line on stderr, `-v` or not (REMOTE-3).
fn warn(message: &dyn core::fmt::Display) {
    cli::report_error(&mut io::stderr(), &format_args!("warning: {message}"));
}

fn say(verbose: bool, message: core::fmt::Arguments<'_>) {
    if verbose {
        let mut stderr = io::stderr().lock();
        let _ = writeln!(stderr, "cachet: {message}");
        let _ = stderr.flush();
    }
}

/// Runs `cachet run` and returns its exit code.
pub(super) fn run(
    args: &RunArgs,
    globals: &GlobalArgs,
    opened: &Opened,
) -> Result<u8, NativeError> {
    let verbose = globals.verbose;
    let env = |name: &str| opened.settings.var(name);
    let remote_config = args
        .remote
        .resolve(&env)
        .map_err(|error| opened.settings.attribute(error))?;
    let cache = &opened.cache;
    let hasher = opened.hasher(&args.key);
    let host = Host::new(Some(opened.workspace.clone()), opened.excluded_dirs.clone())
        .with_hasher(&hasher);
    let report = cli::compute_key(&args.key, cache, &host)?;
    let key = report.key;
    let statistics = report.statistics;
    say(
        verbose,
        format_args!(
            "inputs: {} hashed, {} from the memo, {:.3} s",
            statistics.files_hashed,
            statistics.files_from_memo,
            statistics.hash_time.as_secs_f64()
        ),
    );
    let mut ctx = SystemContext::new();

    let (opened_remotes, setup_failures) = crate::remote::open_remotes(&remote_config, &env);
    for failure in &setup_failures {
        warn(failure);
    }
    let pacer = SystemPacer;
    let labels: Vec<&str> = opened_remotes.iter().map(|r| r.label.as_str()).collect();
    let session = RemoteSession::new(remote_config.policy, &pacer, &labels);
    let mut breakers = Breakers::load(&session, &opened.cache_dir, verbose);
    let guarded: Vec<Remote<Guarded<'_, '_, &OpendalRemote>>> = opened_remotes
        .iter()
        .enumerate()
        .map(|(at, r)| Remote {
            store: session.guard(at, &r.store),
            writable: r.writable,
            label: r.label.clone(),
        })
        .collect();
    let remotes = guarded.as_slice();
    let remote_options = RemoteOptions {
        signing_key: remote_config.signing_key.clone(),
        ..RemoteOptions::default()
    };
    let mut status = cache.lookup_status(&key).map_err(CliError::from)?;
    let mut tier = String::from("local");
    let usable: Vec<usize> = (0..remotes.len())
        .filter(|&at| session.is_usable(at))
        .collect();
    if status.is_hit() || usable.is_empty() {
        session.count_local(status.is_hit());
    } else {
        let chain_remotes = chosen(remotes, &usable);
        session.begin_lookup();
        let chain = remote::lookup(
            cache,
            &chain_remotes,
            &remote_config.reading_order(),
            &key,
            &remote_options,
            &mut ctx,
        );
        session.end_lookup();
        let chain = chain.map_err(CliError::from)?;
        session.count_lookup(&chain, &usable);
        report_failures(&session, &labels, &chain.failures);
        for (index, tenant, miss) in &chain.misses {
            let label = chain_remotes.get(*index).map_or("?", |r| r.label.as_str());
            let line = format_args!("remote {label}, tenant {tenant}: miss ({miss})");
            if miss.warrants_warning() {
                warn(&line);
            } else {
                say(verbose, line);
            }
        }
        if let Some(Found::Remote {
            label,
            tenant,
            outcome,
            ..
        }) = chain.found
        {
            if let PullOutcome::Imported {
                blobs_fetched,
                bytes_fetched,
            } = outcome
            {
                say(
                    verbose,
                    format_args!(
                        "remote {label}, tenant {tenant}: hit, {blobs_fetched} blobs and {bytes_fetched} bytes fetched into the local cache"
                    ),
                );
            }
            tier = format!("remote {label}, tenant {tenant}");
            status = cache.lookup_status(&key).map_err(CliError::from)?;
        }
    }
    if status.is_hit() {
        let restored = {
            let mut stdout = io::stdout().lock();
            let mut stderr = io::stderr().lock();
            let outcome =
                cache.restore(&key, StdWrite(&mut stdout), StdWrite(&mut stderr), &mut ctx);
            let _ = stdout.flush();
            let _ = stderr.flush();
            outcome
        };
        match restored {
            Ok(RestoreOutcome::Restored { outputs, .. }) => {
                say(
                    verbose,
                    format_args!("hit {key} ({tier}): restored {outputs} outputs"),
                );
                breakers.settle(&session, verbose);
                return Ok(exit::SUCCESS);
            }
            Ok(RestoreOutcome::Miss(status)) => say(
                verbose,
                format_args!("miss ({status}) {key} while restoring; running the command"),
            ),
            Err(error @ (CacheError::UnsafeTarget { .. } | CacheError::StreamWrite { .. })) => {
                return Err(CliError::Cache(error).into());
            }
            Err(error) => cli::report_error(
                &mut io::stderr(),
                &format_args!(
                    "warning: could not restore {key} ({error}); running the command instead"
                ),
            ),
        }
    } else {
        say(
            verbose,
            format_args!("miss ({status}) {key}; running the command"),
        );
    }

    let program = match &report.action {
        ActionSpec::Command(argv) => Program::Argv(argv.clone()),
        ActionSpec::Shell { shell, script } => Program::Shell {
            shell: shell.clone(),
            script: script.clone(),
        },
    };
    let mut spec = CommandSpec::new(program);
    spec.overrides = report.overrides.clone();
    let result = capture(&spec, opened)?;
    if let Some(error) = &result.live_output_error {
        say(
            verbose,
            format_args!("could not pass the command's output through: {error}"),
        );
    }
    if !result.success() {
        let code = match (result.exit_code, result.signal) {
            (Some(code), _) => u8::try_from(code).unwrap_or(exit::FAILURE),
            (None, Some(signal)) => u8::try_from(signal)
                .ok()
                .and_then(|signal| exit::SIGNAL_BASE.checked_add(signal))
                .unwrap_or(exit::FAILURE),
            (None, None) => exit::FAILURE,
        };
        say(
            verbose,
            format_args!("the command exited with {code}; nothing was stored"),
        );
        breakers.settle(&session, verbose);
        return Ok(code);
    }

    let outputs =
        cli::select::select_outputs(cache.filesystem(), &args.key.outputs, &opened.excluded_dirs)?;
    let mut paths: Vec<&str> = outputs.iter().map(String::as_str).collect();
    let open_capture = |capture: &crate::exec::Capture| {
        capture.open().map_err(|source| {
            NativeError::Exec(ExecError::Capture {
                path: capture.path().to_path_buf(),
                source,
            })
        })
    };
    let stdout = open_capture(&result.stdout)?;
    let stderr = open_capture(&result.stderr)?;
    let outcome = cache
        .store(&key, &mut paths, StdRead(stdout), StdRead(stderr), &mut ctx)
        .map_err(CliError::from)?;
    let stored = matches!(outcome, StoreOutcome::Stored | StoreOutcome::AlreadyPresent);
    match outcome {
        StoreOutcome::Stored => say(
            verbose,
            format_args!("stored {key} with {} outputs", outputs.len()),
        ),
        StoreOutcome::AlreadyPresent => say(
            verbose,
            format_args!("{key} was stored meanwhile by another process; kept that entry"),
        ),
        StoreOutcome::Contended => say(
            verbose,
            format_args!(
                "not stored {key}: another process interfered (a concurrent clear, or broken entries kept appearing for this key)"
            ),
        ),
    }
    let writable: Vec<usize> = (0..remotes.len())
        .filter(|&at| session.is_writable(at))
        .collect();
    if stored && !writable.is_empty() && !remote_config.read_only {
        let push_remotes = chosen(remotes, &writable);
        let pushed = remote::push(
            cache,
            &push_remotes,
            &remote_config.tenant,
            &key,
            &remote_options,
        )
        .map_err(CliError::from)?;
        report_failures(&session, &labels, &pushed.failures);
        for (index, outcome) in &pushed.pushed {
            let label = push_remotes.get(*index).map_or("?", |r| r.label.as_str());
            match outcome {
                PushOutcome::Pushed {
                    blobs_uploaded,
                    blobs_present,
                    bytes_sent,
                } => say(
                    verbose,
                    format_args!(
                        "remote {label}, tenant {}: pushed {key}: {blobs_uploaded} blobs uploaded, {blobs_present} already there, {bytes_sent} bytes sent",
                        remote_config.tenant
                    ),
                ),
                PushOutcome::NotLocal(status) => warn(&format_args!(
                    "remote {label}: not pushed {key}: the local entry is {status}"
                )),
                _ => {}
            }
        }
    }
    breakers.settle(&session, verbose);
    Ok(exit::SUCCESS)
}

/// The remotes at `positions`, in order, for one call through the chain.
fn chosen<'r, R>(remotes: &'r [Remote<R>], positions: &[usize]) -> Vec<Remote<&'r R>> {
    positions
        .iter()
        .filter_map(|&at| remotes.get(at))
        .map(|r| Remote {
            store: &r.store,
            writable: r.writable,
            label: r.label.clone(),
        })
        .collect()
}

/// One warning line per remote failure (REMOTE-3); a refused access is
/// said once per remote, with what to check (REMOTE-16).
fn report_failures(session: &RemoteSession<'_>, labels: &[&str], failures: &[RemoteFailure]) {
    for failure in failures {
        let at = labels.iter().position(|label| *label == failure.remote);
        if failure.error.kind != ErrorKind::PermissionDenied {
            warn(failure);
        } else if at.is_some_and(|at| session.take_refusal_report(at)) {
            let check = if failure.remote.starts_with("s3://") {
                "check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, and that this key may read and write the bucket"
            } else {
                "check the server's access rules for this path"
            };
            warn(&format_args!(
                "remote {}: access refused ({}) at '{}'; cachet writes nothing more to it in this run: {check}",
                failure.remote, failure.error.detail, failure.object
            ));
        }
    }
}

/// The circuit breakers of this cache's remotes (REMOTE-17), loaded when
/// the run starts and written back when it ends.
struct Breakers {
    cache_dir: std::path::PathBuf,
    book: remote::breaker::BreakerBook,
    loaded: Vec<u8>,
}

/// Milliseconds since the Unix epoch: breaker times are shared between
/// processes.
fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
        })
}

impl Breakers {
    /// Reads the breakers and admits the session's remotes: a remote whose
    /// breaker is open is skipped, with one line saying so; a probe is
    /// written back at once, so that concurrent runs leave it to this one.
    fn load(session: &RemoteSession<'_>, cache_dir: &std::path::Path, verbose: bool) -> Breakers {
        let mut breakers = Breakers {
            cache_dir: cache_dir.to_path_buf(),
            book: remote::breaker::BreakerBook::default(),
            loaded: Vec::new(),
        };
        if session.labels().is_empty() {
            return breakers;
        }
        breakers.book = crate::remote::read_breakers(cache_dir);
        breakers.loaded = breakers.book.encode();
        let now = unix_ms();
        for (at, until) in session.admit(&mut breakers.book, now) {
            let label = session.labels().get(at).map_or("?", String::as_str);
            warn(&format_args!(
                "remote {label}: skipped for {:.0} s more: it failed in an earlier run (circuit breaker in {}); treated as a miss",
                until.saturating_sub(now).div_ceil(1000),
                crate::remote::breaker_path(cache_dir).display()
            ));
        }
        breakers.save(verbose);
        breakers
    }

    /// Records the run's outcome in the breakers and writes them back;
    /// with `-v`, prints the remote statistics (REMOTE-19).
    fn settle(&mut self, session: &RemoteSession<'_>, verbose: bool) {
        if session.labels().is_empty() {
            return;
        }
        for (at, until) in session.settle(&mut self.book, unix_ms()) {
            let label = session.labels().get(at).map_or("?", String::as_str);
            warn(&format_args!(
                "remote {label}: later runs on this cache skip it for {} s, then one tries it again",
                until.saturating_sub(unix_ms()).div_ceil(1000)
            ));
        }
        self.save(verbose);
        say(verbose, format_args!("{}", session.stats()));
    }

    fn save(&mut self, verbose: bool) {
        let bytes = self.book.encode();
        if bytes == self.loaded {
            return;
        }
        match crate::remote::write_breakers(&self.cache_dir, &self.book) {
            Ok(()) => self.loaded = bytes,
            Err(error) => say(
                verbose,
                format_args!(
                    "could not write {}: {error}",
                    crate::remote::breaker_path(&self.cache_dir).display()
                ),
            ),
        }
    }
}

/// Runs the command, capturing into the cache directory (scratch that a
/// soft clean removes after a crash) or, if that is not writable, into the
/// system's temporary directory.
fn capture(spec: &CommandSpec, opened: &Opened) -> Result<RunResult, NativeError> {
    match run_captured(spec, &opened.workspace, &opened.cache_dir) {
        Err(ExecError::CreateCapture { .. }) => {
            run_captured(spec, &opened.workspace, &std::env::temp_dir()).map_err(NativeError::Exec)
        }
        other => other.map_err(NativeError::Exec),
    }
}
