//! `cachet run`: a hit restores, a miss runs and stores.
//!
//! Every step is a function of the task API ([`crate::task`]), which a
//! task runner calls as a library; this module adds only the remote
//! stores and the `-v` messages.
//!
//! 1. The key is computed exactly as `cachet key` computes it
//!    ([`cli::compute_key`]).
//! 2. On a hit, the outputs are restored (OP-3) and the recorded stdout and
//!    stderr bytes are written to this process's stdout and stderr; the
//!    exit code is 0. The restore inspects the entry as a lookup does
//!    (OP-3 step 1), so a hit inspects it once; an entry that turns out
//!    corrupt while its outputs are staged is a miss like any other. If
//!    restoring fails in a way a fresh run repairs (an I/O error while
//!    publishing), a warning is printed and the command runs as on a miss,
//!    without asking the remotes. If a restore
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

use cachet_cli::remote::Chain;
use cachet_core::cache::StoreOutcome;
use cachet_core::key::Key;
use clap::Args;

use super::{NativeError, Opened};
use crate::task::{self, Lookup, Task};
use cachet_cli::{self as cli, GlobalArgs, KeyArgs, SystemContext, exit};
use cachet_core::remote::RemoteStore;

/// `cachet run`.
#[derive(Args, Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RunArgs {
    /// The key's components and the outputs to store after a successful
    /// run.
    #[command(flatten)]
    pub key: KeyArgs,
}

pub(super) fn say(verbose: bool, message: core::fmt::Arguments<'_>) {
    if verbose {
        let mut stderr = io::stderr().lock();
        let _ = writeln!(stderr, "cachet: {message}");
        let _ = stderr.flush();
    }
}

/// Restores `key` with the streams replayed to this process's own.
fn restore(opened: &Opened, key: &Key) -> Result<Lookup, NativeError> {
    task::restore(
        opened,
        key,
        &mut io::stdout().lock(),
        &mut io::stderr().lock(),
    )
}

/// Runs `cachet run` and returns its exit code.
pub(super) fn run<R: RemoteStore>(
    args: &RunArgs,
    globals: &GlobalArgs,
    opened: &Opened,
    chain: &Chain<'_, R>,
) -> Result<u8, NativeError> {
    let verbose = globals.verbose;
    let cache = &opened.cache;
    let task = Task::from_key_args(args.key.clone());
    let report = task::key(opened, &task)?;
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

    // A restore inspects the entry exactly as a lookup does (OP-3 step 1)
    // and writes nothing on a miss, so a hit costs one inspection, not two.
    let mut restored = restore(opened, &key)?;
    let mut tier = String::from("local");
    // A restore that failed with an I/O error is repaired by running the
    // command, not by downloading the entry again.
    let asks_remotes = !chain.is_empty()
        && matches!(
            restored,
            Lookup::Miss {
                restore_error: None,
                ..
            }
        );
    if let Some(session) = chain.session
        && !asks_remotes
    {
        // Only the local cache was asked (REMOTE-19).
        session.count_local(matches!(restored, Lookup::Hit { .. }));
    }
    if asks_remotes {
        let report = chain
            .fill(cache, &key, &mut ctx, &mut io::stderr().lock())
            .map_err(NativeError::Cli)?;
        if let Some(report) = report
            && let (Some(label), Some(tenant)) = (report.hit, report.tenant)
        {
            tier = format!("remote {label}, tenant {tenant}");
            restored = restore(opened, &key)?;
        }
    }
    match restored {
        Lookup::Hit { outputs, .. } => {
            say(
                verbose,
                format_args!("hit {key} ({tier}): restored {outputs} outputs"),
            );
            return Ok(exit::SUCCESS);
        }
        Lookup::Miss {
            restore_error: Some(error),
            ..
        } => cli::report_error(
            &mut io::stderr(),
            &format_args!(
                "warning: could not restore {key} ({error}); running the command instead"
            ),
        ),
        Lookup::Miss { status, .. } => say(
            verbose,
            format_args!("miss ({status}) {key}; running the command"),
        ),
    }

    let result = task::execute(opened, &report, &mut io::stdout(), &mut io::stderr())?;
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
        return Ok(code);
    }

    let (stdout, stderr) = task::open_captures(&result)?;
    let mut held = chain.holding();
    let (outcome, outputs) = task::store(opened, &key, &task, (stdout, stderr), &mut held)?;
    let stored = matches!(outcome, StoreOutcome::Stored | StoreOutcome::AlreadyPresent);
    match outcome {
        StoreOutcome::Stored => say(verbose, format_args!("stored {key} with {outputs} outputs")),
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
    if stored {
        chain
            .push_holding(cache, &key, held, &mut io::stderr().lock())
            .map_err(NativeError::Cli)?;
    }
    Ok(exit::SUCCESS)
}
