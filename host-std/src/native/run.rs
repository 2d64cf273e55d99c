//! `cachet run`: a hit restores, a miss runs and stores.
//!
//! It is [`crate::task::TaskCache::run`]'s code (one function for both,
//! so a task runner that links the library and one that spawns `cachet
//! run` get the same thing); this module only turns how the run ended
//! into the exit code, and lets the warnings and `-v` lines through to
//! stderr.
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

use std::io;

use cachet_cli::remote::Chain;
use clap::Args;

use super::{NativeError, Opened};
use crate::remote::tier::Messages;
use crate::task::{self, Ran, Task};
use cachet_cli::{KeyArgs, exit};
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

/// Runs `cachet run` and returns its exit code.
pub(super) fn run<R: RemoteStore>(
    args: &RunArgs,
    opened: &Opened,
    chain: &Chain<'_, R>,
    messages: &mut Messages<'_>,
) -> Result<u8, NativeError> {
    let task = Task::from_key_args(args.key.clone());
    let ran = task::run_through(
        opened,
        &task,
        chain,
        &mut io::stdout(),
        &mut io::stderr(),
        messages,
    )?;
    Ok(match ran {
        Ran::Restored { .. } => exit::SUCCESS,
        Ran::Executed {
            exit_code, signal, ..
        } => task::exit_code(exit_code, signal),
    })
}
