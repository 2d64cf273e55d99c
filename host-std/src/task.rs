//! The task API: "have I already run this task?" for a task runner that
//! links cachet as a library instead of spawning the `cachet` command.
//!
//! A runner describes a task with the [`Task`] builder (a command or a
//! shell script, input globs or explicit files, host variables, set
//! variables, predecessors, outputs), opens a [`TaskCache`] over its
//! workspace, and then either
//!
//! - calls [`TaskCache::run`], which does exactly what `cachet run` does
//!   (the command runs the same function): on a hit it restores the
//!   outputs and replays the recorded streams to the writers it is given;
//!   on a miss it runs the command with its streams passed through live to
//!   those writers, and stores the result when the command exits 0; or
//! - calls [`TaskCache::lookup`], which restores a hit the same way and on
//!   a miss hands back the key, so that the runner runs the task itself
//!   and records the result with [`TaskCache::store`].
//!
//! With [`TaskCache::with_remotes`], the cache shares entries with other
//! machines exactly as `cachet run --remote` does (docs/spec.md §11,
//! REMOTE-20): a local miss is looked up in each remote under the run's
//! tenant and those it trusts, a remote hit is verified, downloaded and
//! restored, and what is stored is pushed to every writable remote. A
//! remote that fails costs a miss, never an error; each result's `remote`
//! report ([`cachet_cli::remote::ChainReport`]) names the tier that served
//! it, the remotes it was pushed to and every failure, and nothing is
//! printed.
//!
//! The key is the one `cachet key` prints for the same description
//! (SPEC §2); inputs and outputs are selected as by the command (spec §8:
//! `.gitignore` is honoured for inputs, the cache directory and `.git` are
//! never selected). Entries are shared with the `cachet` command and the
//! WASI guest over the same cache directory.
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use cachet::task::{Ran, Task, TaskCache};
//! use cachet::cachet_core::cache::Options;
//!
//! let workspace = tempfile::tempdir()?;
//! std::fs::write(workspace.path().join("name.txt"), "world")?;
//! let cache = TaskCache::open(workspace.path(), None, Options::default())?;
//! let task = Task::script("printf 'hello %s' \"$(cat name.txt)\" > greeting.txt; echo built")
//!     .input_file("name.txt")
//!     .output("greeting.txt");
//!
//! let (mut out, mut err) = (Vec::new(), Vec::new());
//! let first = cache.run(&task, &mut out, &mut err)?;
//! assert!(matches!(first, Ran::Executed { exit_code: Some(0), stored: true, .. }));
//!
//! std::fs::remove_file(workspace.path().join("greeting.txt"))?;
//! out.clear();
//! let second = cache.run(&task, &mut out, &mut err)?;
//! assert!(matches!(second, Ran::Restored { outputs: 1, .. }));
//! assert_eq!(out, b"built\n", "the recorded stdout is replayed");
//! let greeting = std::fs::read_to_string(workspace.path().join("greeting.txt"))?;
//! assert_eq!(greeting, "hello world");
//! # Ok(())
//! # }
//! ```

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use cachet_cli::remote::{Chain, ChainReport, RemoteArgs};
use cachet_cli::{
    self as cli, ActionSpec, CliError, Host, KeyArgs, KeyReport, StdRead, StdWrite, exit,
};
use cachet_core::cache::{
    Cache, CacheError, HeldContents, LookupStatus, Options, RestoreOutcome, StoreOutcome,
};
use cachet_core::key::Key;
use cachet_core::remote::RemoteStore;

use crate::exec::{CommandSpec, ExecError, Program, RunResult, run_captured_with};
use crate::fs::CapStdFilesystem;
use crate::native::{NativeError, Opened, open_at};
use crate::remote::SetupError;
use crate::remote::tier::{Messages, RemoteTier};

/// A task as the cache sees it: what runs, what it reads, what it writes.
///
/// Built with [`Task::command`] or [`Task::script`] and the methods that
/// add to it; nothing is checked until the key is computed, and then a
/// bad value (an empty variable name, a project name with `:`, a bad
/// glob) is an error naming it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Task {
    args: KeyArgs,
    /// The first value the builder could not express, reported when the
    /// key is computed: (what it was, the value, why).
    invalid: Option<(&'static str, String, &'static str)>,
}

impl Task {
    /// A task that runs `argv` (the program and its arguments) directly,
    /// without a shell (KEY-4's command action).
    pub fn command<I, S>(argv: I) -> Task
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut args = KeyArgs::default();
        args.argv = argv.into_iter().map(Into::into).collect();
        Task {
            args,
            invalid: None,
        }
    }

    /// A task that runs `script` with a shell, `sh` unless
    /// [`Task::shell`] says otherwise (KEY-4's shell action).
    pub fn script(script: impl Into<String>) -> Task {
        let mut args = KeyArgs::default();
        args.script = Some(script.into());
        Task {
            args,
            invalid: None,
        }
    }

    /// The shell that runs the script: `sh`, `bash`, or another name of
    /// `[A-Za-z0-9_-]` found on `PATH`. Ignored by a command task.
    pub fn shell(mut self, name: impl Into<String>) -> Task {
        self.args.shell = Some(name.into());
        self
    }

    /// Input files matching `glob` over workspace paths (`src/**/*.rs`).
    /// Without any input, every file of the workspace is an input except
    /// the outputs (SEL-6).
    pub fn input(mut self, glob: impl Into<String>) -> Task {
        self.args.inputs.push(glob.into());
        self
    }

    /// The input file (or every file below the directory) at the workspace
    /// path `path`, taken literally: `*`, `?` and brackets in it are not
    /// glob syntax. A path that does not exist, or that `.gitignore`
    /// excludes, selects nothing.
    pub fn input_file(mut self, path: impl AsRef<str>) -> Task {
        self.args
            .inputs
            .push(cli::select::literal_pattern(path.as_ref()));
        self
    }

    /// Outputs matching `glob`: stored after a successful run, restored on
    /// a hit. A matched directory stores every file below it.
    pub fn output(mut self, glob: impl Into<String>) -> Task {
        self.args.outputs.push(glob.into());
        self
    }

    /// A host environment variable whose value (or absence) is part of the
    /// key (KEY-7). The command inherits the environment either way.
    pub fn env(mut self, name: impl Into<String>) -> Task {
        self.args.env.push(name.into());
        self
    }

    /// Sets `name` to `value` for the command; the pair is part of the key.
    pub fn set(mut self, name: impl AsRef<str>, value: impl AsRef<str>) -> Task {
        let name = name.as_ref();
        if name.contains('=') && self.invalid.is_none() {
            self.invalid = Some(("set", name.to_owned(), "a variable name cannot contain '='"));
        }
        self.args.set.push(format!("{name}={}", value.as_ref()));
        self
    }

    /// A predecessor whose streams this task consumes: the stdout and
    /// stderr hashes of `key`'s entry, which must be a hit, are part of the
    /// key (KEY-6).
    pub fn after(mut self, project: impl AsRef<str>, task: impl AsRef<str>, key: &Key) -> Task {
        let project = project.as_ref();
        if project.contains(':') && self.invalid.is_none() {
            self.invalid = Some((
                "after",
                project.to_owned(),
                "a project name cannot contain ':'",
            ));
        }
        self.args
            .after
            .push(format!("{project}:{}={key}", task.as_ref()));
        self
    }

    /// Hashes every input file, without the cache directory's file-hash
    /// memo (MEMO-3). The key is the same either way.
    pub fn without_memo(mut self) -> Task {
        self.args.no_memo = true;
        self
    }

    /// The task as `cachet run` and `cachet key` take it.
    pub(crate) fn from_key_args(args: KeyArgs) -> Task {
        Task {
            args,
            invalid: None,
        }
    }

    fn checked(&self) -> Result<&KeyArgs, CliError> {
        if let Some((what, value, reason)) = &self.invalid {
            return Err(CliError::InvalidValue {
                flag: what,
                value: value.clone(),
                reason: String::from(*reason),
            });
        }
        if self.args.script.is_none() && self.args.argv.is_empty() {
            return Err(CliError::InvalidValue {
                flag: "command",
                value: String::new(),
                reason: String::from("the task has no command; give at least the program"),
            });
        }
        Ok(&self.args)
    }
}

/// How [`TaskCache::run`] ended.
#[derive(Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Ran {
    /// A hit: the outputs were restored and the recorded streams replayed.
    Restored {
        /// The task's key.
        key: Key,
        /// How many outputs were restored.
        outputs: u64,
        /// What the remote tier did, when the cache has remotes
        /// ([`TaskCache::with_remotes`]): which tier served the hit, and
        /// every remote failure (each cost a miss, REMOTE-3).
        remote: Option<ChainReport>,
    },
    /// A miss: the command ran, its streams passed through live.
    Executed {
        /// The task's key.
        key: Key,
        /// The command's exit code; `None` when a signal ended it.
        exit_code: Option<i32>,
        /// The signal that ended it, if any.
        signal: Option<i32>,
        /// Whether the cache holds its result now: only a run that exited
        /// 0 is stored, and a store another process kept from publishing
        /// (OP-8's `contended`) is not.
        stored: bool,
        /// Why a hit could not be restored and the command ran instead
        /// (a corrupt entry, an I/O failure while publishing): the run
        /// repaired it. `None` on a plain miss.
        restore_error: Option<CacheError>,
        /// What the remote tier did, when the cache has remotes: the
        /// remotes asked after the local miss, those the result was pushed
        /// to, and every remote failure (REMOTE-1..3).
        remote: Option<ChainReport>,
    },
}

/// How [`TaskCache::lookup`] ended.
#[derive(Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Lookup {
    /// A hit: the outputs were restored and the recorded streams replayed.
    Hit {
        /// The task's key.
        key: Key,
        /// How many outputs were restored.
        outputs: u64,
        /// What the remote tier did, when the cache has remotes: which
        /// tier served the hit, and every remote failure.
        remote: Option<ChainReport>,
    },
    /// A miss: nothing was written. Run the task, then
    /// [`TaskCache::store`] its result under `key` if it succeeded.
    Miss {
        /// The task's key.
        key: Key,
        /// Why it is a miss (OP-1).
        status: LookupStatus,
        /// Set when the entry was a hit but restoring it failed in a way a
        /// fresh run repairs (OP-3 step 7).
        restore_error: Option<CacheError>,
        /// What the remote tier did, when the cache has remotes: every
        /// remote asked missed or failed (each failure is in it).
        remote: Option<ChainReport>,
    },
}

/// How [`TaskCache::store`] ended.
#[derive(Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stored {
    /// What the local store did (OP-2).
    pub outcome: StoreOutcome,
    /// What the remote tier did, when the cache has remotes: the remotes
    /// the entry was pushed to, and every remote failure (REMOTE-2).
    pub remote: Option<ChainReport>,
}

/// A cache over one workspace, for running [`Task`]s.
#[derive(Debug)]
pub struct TaskCache {
    opened: Opened,
    remotes: RemoteTier,
}

impl TaskCache {
    /// Opens `workspace` and the cache directory (`cache_dir`, else
    /// `<workspace>/.cachet`; created when missing), with `options` (the
    /// hash function among them).
    pub fn open(
        workspace: impl AsRef<Path>,
        cache_dir: Option<&Path>,
        options: Options,
    ) -> Result<TaskCache, NativeError> {
        let cache_dir_of = |workspace: &Path, _: &_| match cache_dir {
            Some(dir) => dir.to_path_buf(),
            None => workspace.join(cachet_core::layout::CACHET_CACHE_DIR),
        };
        let opened = open_at(workspace.as_ref(), &cache_dir_of, options)?;
        Ok(TaskCache {
            opened,
            remotes: RemoteTier::none(),
        })
    }

    /// This cache, sharing entries through the remote stores that
    /// `cachet` would use with the flags `remotes` (docs/spec.md §11):
    /// each of its flags that is empty falls back, as on the command line,
    /// to the environment (`CACHET_REMOTE`, `CACHET_TENANT`,
    /// `CACHET_TRUST`, `CACHET_REMOTE_SIGNING_KEY`, …) and the workspace's
    /// configuration files (CONF-1), so `&RemoteArgs::default()` takes
    /// the remotes of the environment. Then [`TaskCache::run`] and
    /// [`TaskCache::lookup`] ask the remotes after a local miss and
    /// [`TaskCache::store`] pushes what it stores, exactly as `cachet run`
    /// and `cachet store` do (REMOTE-1, REMOTE-2, REMOTE-20); each call is
    /// one run for the time limits, retries and circuit breakers
    /// (REMOTE-15..17). A remote failure is never an error: it costs a
    /// miss and is reported in the call's `remote` report (REMOTE-3);
    /// nothing is printed.
    ///
    /// A malformed value (a URL, a tenant, a signing key) is an error
    /// naming it. A store that cannot even be set up is left out and named
    /// by [`TaskCache::remote_setup_failures`].
    pub fn with_remotes(self, remotes: &RemoteArgs) -> Result<TaskCache, NativeError> {
        let settings = &self.opened.settings;
        let env = |name: &str| settings.var(name);
        let config = remotes
            .resolve(&env)
            .map_err(|error| settings.attribute(error))?;
        let remotes = RemoteTier::open(config, &env);
        Ok(TaskCache { remotes, ..self })
    }

    /// The remote stores [`TaskCache::with_remotes`] could not set up,
    /// which are never asked.
    pub fn remote_setup_failures(&self) -> &[SetupError] {
        self.remotes.setup_failures()
    }

    /// The cache itself, for the operations on entries (list, statistics,
    /// remove, find, revive, clean: see the crate docs).
    pub fn cache(&self) -> &Cache<CapStdFilesystem> {
        &self.opened.cache
    }

    /// The workspace, canonical.
    pub fn workspace(&self) -> &Path {
        &self.opened.workspace
    }

    /// The cache directory, canonical.
    pub fn cache_dir(&self) -> &Path {
        &self.opened.cache_dir
    }

    /// The task's key and everything it was derived from, as `cachet key
    /// --json` reports it.
    pub fn key(&self, task: &Task) -> Result<KeyReport, NativeError> {
        key(&self.opened, task)
    }

    /// Restores `task`'s entry if it is a hit, replaying its streams into
    /// `stdout` and `stderr`; on a miss (locally, and on every remote
    /// when there are remotes) writes nothing and hands back the key.
    pub fn lookup(
        &self,
        task: &Task,
        stdout: &mut dyn Write,
        stderr: &mut dyn Write,
    ) -> Result<Lookup, NativeError> {
        let key = self.key(task)?.key;
        let (found, warnings) = self.quietly(|chain, messages| {
            lookup_through(&self.opened, &key, chain, stdout, stderr, messages)
        });
        let mut found = found?;
        let (hit, remote) = match &mut found {
            Lookup::Hit { remote, .. } => (true, remote),
            Lookup::Miss { remote, .. } => (false, remote),
        };
        self.complete(remote, hit, warnings);
        Ok(found)
    }

    /// Stores the result of a successful run of `task` under `key`: its
    /// outputs as selected now, and the captured streams; then pushes it
    /// to every writable remote, when there are remotes.
    pub fn store(
        &self,
        key: &Key,
        task: &Task,
        stdout: impl io::Read,
        stderr: impl io::Read,
    ) -> Result<Stored, NativeError> {
        let streams = (StdRead(stdout), StdRead(stderr));
        let (stored, warnings) = self.quietly(|chain, messages| {
            store_through(&self.opened, key, task, streams, chain, messages)
        });
        let (mut stored, _) = stored?;
        self.complete(&mut stored.remote, false, warnings);
        Ok(stored)
    }

    /// What `cachet run` does: restore on a hit (from a remote after a
    /// local miss, when there are remotes), else run the command (streams
    /// passed through live to `stdout` and `stderr`, and captured), store
    /// the result when it exits 0, and push it.
    pub fn run(
        &self,
        task: &Task,
        stdout: &mut (dyn Write + Send),
        stderr: &mut (dyn Write + Send),
    ) -> Result<Ran, NativeError> {
        let (ran, warnings) = self.quietly(|chain, messages| {
            run_through(&self.opened, task, chain, stdout, stderr, messages)
        });
        let mut ran = ran?;
        let (hit, remote) = match &mut ran {
            Ran::Restored { remote, .. } => (true, remote),
            Ran::Executed { remote, .. } => (false, remote),
        };
        self.complete(remote, hit, warnings);
        Ok(ran)
    }

    /// Runs `body` as one run of the remote tier, printing nothing: what
    /// the chain did is in the reports `body` returns, and every other
    /// warning (a breaker that kept a remote out, or opened) comes back
    /// beside its result.
    fn quietly<T>(
        &self,
        body: impl FnOnce(
            &Chain<'_, cachet_core::remote::guard::Guarded<'_, '_, &crate::remote::OpendalRemote>>,
            &mut Messages<'_>,
        ) -> T,
    ) -> (T, Vec<String>) {
        let mut sink = io::sink();
        let mut messages = Messages::keeping(&mut sink);
        let result = self
            .remotes
            .run(&self.opened.cache_dir, false, &mut messages, body);
        (result, messages.into_kept())
    }

    /// A call's remote report, present exactly when the cache has
    /// remotes: a local hit says so, and `warnings` are failures too.
    fn complete(&self, remote: &mut Option<ChainReport>, hit: bool, warnings: Vec<String>) {
        if self.remotes.is_empty() {
            return;
        }
        let report = remote.get_or_insert_with(ChainReport::default);
        if hit && report.hit.is_none() {
            report.hit = Some(String::from("local"));
        }
        report.failures.extend(warnings);
    }
}

/// One run of `task` through the local cache and `chain`, what `cachet
/// run` and [`TaskCache::run`] both do: the key; a restore, which inspects
/// the entry exactly as a lookup does (OP-3 step 1), so a hit inspects it
/// once; after a local miss the remotes (REMOTE-1); on a miss the command,
/// and when it exits 0 a store and a push (REMOTE-2). Warnings and the
/// `-v` lines go to `messages`.
pub(crate) fn run_through<R: RemoteStore>(
    opened: &Opened,
    task: &Task,
    chain: &Chain<'_, R>,
    stdout: &mut (dyn Write + Send),
    stderr: &mut (dyn Write + Send),
    messages: &mut Messages<'_>,
) -> Result<Ran, NativeError> {
    let report = key(opened, task)?;
    let key = report.key;
    let statistics = &report.statistics;
    messages.say(format_args!(
        "inputs: {} hashed, {} from the memo, {:.3} s",
        statistics.files_hashed,
        statistics.files_from_memo,
        statistics.hash_time.as_secs_f64()
    ));
    let (restore_error, looked_up) =
        match lookup_through(opened, &key, chain, &mut *stdout, &mut *stderr, messages)? {
            Lookup::Hit {
                key,
                outputs,
                remote,
            } => {
                return Ok(Ran::Restored {
                    key,
                    outputs,
                    remote,
                });
            }
            Lookup::Miss {
                restore_error,
                remote,
                ..
            } => (restore_error, remote),
        };
    let result = execute(opened, &report, stdout, stderr)?;
    if let Some(error) = &result.live_output_error {
        messages.say(format_args!(
            "could not pass the command's output through: {error}"
        ));
    }
    let executed = |stored: bool, remote: Option<ChainReport>| Ran::Executed {
        key,
        exit_code: result.exit_code,
        signal: result.signal,
        stored,
        restore_error,
        remote,
    };
    if !result.success() {
        messages.say(format_args!(
            "the command exited with {}; nothing was stored",
            exit_code(result.exit_code, result.signal)
        ));
        return Ok(executed(false, looked_up));
    }
    let (out, err) = open_captures(&result)?;
    let (stored, _) = store_through(opened, &key, task, (out, err), chain, messages)?;
    let succeeded = matches!(
        stored.outcome,
        StoreOutcome::Stored | StoreOutcome::AlreadyPresent
    );
    Ok(executed(succeeded, merged(looked_up, stored.remote)))
}

/// The exit code of `cachet run` for a command that ended with
/// `exit_code` or was killed by `signal` (128 + N).
pub(crate) fn exit_code(exit_code: Option<i32>, signal: Option<i32>) -> u8 {
    match (exit_code, signal) {
        (Some(code), _) => u8::try_from(code).unwrap_or(exit::FAILURE),
        (None, Some(signal)) => u8::try_from(signal)
            .ok()
            .and_then(|signal| exit::SIGNAL_BASE.checked_add(signal))
            .unwrap_or(exit::FAILURE),
        (None, None) => exit::FAILURE,
    }
}

/// The reports of a lookup and a push in one run, as one.
fn merged(lookup: Option<ChainReport>, push: Option<ChainReport>) -> Option<ChainReport> {
    match (lookup, push) {
        (Some(mut lookup), Some(push)) => {
            lookup.pushed_to = push.pushed_to;
            lookup.failures.extend(push.failures);
            Some(lookup)
        }
        (lookup, push) => lookup.or(push),
    }
}

/// Restores `key` from the local cache, else, after a plain local miss,
/// from the first remote of `chain` that holds it (downloaded into the
/// local cache, then restored from there: REMOTE-1). A restore that failed
/// with an I/O error is repaired by running the command, not by
/// downloading the entry again, so the remotes are not asked then.
fn lookup_through<R: RemoteStore>(
    opened: &Opened,
    key: &Key,
    chain: &Chain<'_, R>,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
    messages: &mut Messages<'_>,
) -> Result<Lookup, NativeError> {
    let mut restored = restore(opened, key, &mut *stdout, &mut *stderr)?;
    let mut tier = String::from("local");
    let mut remote = None;
    let asks_remotes = !chain.is_empty()
        && matches!(
            restored,
            Lookup::Miss {
                restore_error: None,
                ..
            }
        );
    let hit = matches!(restored, Lookup::Hit { .. });
    if let Some(session) = chain.session
        && !asks_remotes
    {
        // Only the local cache was asked (REMOTE-19).
        session.count_local(hit);
    }
    if asks_remotes {
        let mut ctx = cli::SystemContext::new();
        let report = chain
            .fill(&opened.cache, key, &mut ctx, messages.out())
            .map_err(NativeError::Cli)?;
        if let Some(report) = &report
            && let (Some(label), Some(tenant)) = (&report.hit, &report.tenant)
        {
            tier = format!("remote {label}, tenant {tenant}");
            restored = restore(opened, key, stdout, stderr)?;
        }
        remote = report;
    }
    Ok(match restored {
        Lookup::Hit { key, outputs, .. } => {
            messages.say(format_args!(
                "hit {key} ({tier}): restored {outputs} outputs"
            ));
            Lookup::Hit {
                key,
                outputs,
                remote,
            }
        }
        Lookup::Miss {
            key,
            status,
            restore_error,
            ..
        } => {
            match &restore_error {
                Some(error) => messages.warn(&format_args!(
                    "could not restore {key} ({error}); running the command instead"
                )),
                None => messages.say(format_args!("miss ({status}) {key}; running the command")),
            }
            Lookup::Miss {
                key,
                status,
                restore_error,
                remote,
            }
        }
    })
}

/// Stores `task`'s result under `key` (OP-2), then pushes it through
/// `chain` (REMOTE-2); also says how many outputs were selected.
fn store_through<R: RemoteStore, O: cachet_core::fs::Read, E: cachet_core::fs::Read>(
    opened: &Opened,
    key: &Key,
    task: &Task,
    streams: (O, E),
    chain: &Chain<'_, R>,
    messages: &mut Messages<'_>,
) -> Result<(Stored, usize), NativeError> {
    let mut held = chain.holding();
    let (outcome, outputs) = store(opened, key, task, streams, &mut held)?;
    match outcome {
        StoreOutcome::Stored => {
            messages.say(format_args!("stored {key} with {outputs} outputs"));
        }
        StoreOutcome::AlreadyPresent => messages.say(format_args!(
            "{key} was stored meanwhile by another process; kept that entry"
        )),
        StoreOutcome::Contended => messages.say(format_args!(
            "not stored {key}: another process interfered (a concurrent clear, or broken entries kept appearing for this key)"
        )),
    }
    let remote = if matches!(outcome, StoreOutcome::Stored | StoreOutcome::AlreadyPresent) {
        chain
            .push_holding(&opened.cache, key, held, messages.out())
            .map_err(NativeError::Cli)?
    } else {
        None
    };
    Ok((Stored { outcome, remote }, outputs))
}

/// The key of `task` in `opened`'s workspace.
fn key(opened: &Opened, task: &Task) -> Result<KeyReport, NativeError> {
    let args = task.checked()?;
    let hasher = opened.hasher(args);
    let host = Host::new(Some(opened.workspace.clone()), opened.excluded_dirs.clone())
        .with_hasher(&hasher);
    Ok(cli::compute_key(args, &opened.cache, &host)?)
}

/// Restores `key` from the local cache (OP-3), the way `cachet run` treats the outcome: a
/// target that cannot be written safely (SAFE-2) or a stream that cannot
/// be replayed is an error; any other failure is a miss that a fresh run
/// repairs, with the error handed back.
fn restore(
    opened: &Opened,
    key: &Key,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> Result<Lookup, NativeError> {
    let mut ctx = cli::SystemContext::new();
    let outcome = opened.cache.restore(
        key,
        StdWrite(&mut *stdout),
        StdWrite(&mut *stderr),
        &mut ctx,
    );
    let _ = stdout.flush();
    let _ = stderr.flush();
    match outcome {
        Ok(RestoreOutcome::Restored { outputs, .. }) => Ok(Lookup::Hit {
            key: *key,
            outputs,
            remote: None,
        }),
        Ok(RestoreOutcome::Miss(status)) => Ok(Lookup::Miss {
            key: *key,
            status,
            restore_error: None,
            remote: None,
        }),
        Err(error @ (CacheError::UnsafeTarget { .. } | CacheError::StreamWrite { .. })) => {
            Err(CliError::Cache(error).into())
        }
        Err(error) => Ok(Lookup::Miss {
            key: *key,
            status: LookupStatus::MissCorrupt,
            restore_error: Some(error),
            remote: None,
        }),
    }
}

/// Runs the command of the task `report` describes in the workspace with
/// its set variables, streams passed through to `stdout` and `stderr` and
/// captured into the cache directory (scratch that a soft clean removes
/// after a crash) or, if that is not writable, into the system's temporary
/// directory.
fn execute(
    opened: &Opened,
    report: &KeyReport,
    stdout: &mut (dyn Write + Send),
    stderr: &mut (dyn Write + Send),
) -> Result<RunResult, NativeError> {
    let program = match &report.action {
        ActionSpec::Command(argv) => Program::Argv(argv.clone()),
        ActionSpec::Shell { shell, script } => Program::Shell {
            shell: shell.clone(),
            script: script.clone(),
        },
    };
    let mut spec = CommandSpec::new(program);
    spec.overrides = report.overrides.clone();
    let run = |dir: &Path, out: &mut (dyn Write + Send), err: &mut (dyn Write + Send)| {
        run_captured_with(&spec, &opened.workspace, dir, out, err)
    };
    match run(&opened.cache_dir, stdout, stderr) {
        Err(ExecError::CreateCapture { .. }) => {
            run(&std::env::temp_dir(), stdout, stderr).map_err(NativeError::Exec)
        }
        other => other.map_err(NativeError::Exec),
    }
}

/// Opens a run's captured streams for storing.
fn open_captures(
    result: &RunResult,
) -> Result<(StdRead<std::fs::File>, StdRead<std::fs::File>), NativeError> {
    let open = |capture: &crate::exec::Capture| {
        capture.open().map(StdRead).map_err(|source| {
            NativeError::Exec(ExecError::Capture {
                path: PathBuf::from(capture.path()),
                source,
            })
        })
    };
    Ok((open(&result.stdout)?, open(&result.stderr)?))
}

/// Stores `task`'s outputs (selected now) and the streams under `key`
/// (OP-2), keeping in `held` what a push should take from memory
/// ([`cachet_core::cache::Cache::store_holding`]); also says how many
/// outputs were selected.
fn store<O: cachet_core::fs::Read, E: cachet_core::fs::Read>(
    opened: &Opened,
    key: &Key,
    task: &Task,
    (stdout, stderr): (O, E),
    held: &mut HeldContents,
) -> Result<(StoreOutcome, usize), NativeError> {
    let args = task.checked()?;
    let outputs = cli::select::select_outputs(
        opened.cache.filesystem(),
        &args.outputs,
        &opened.excluded_dirs,
    )?;
    let mut paths: Vec<&str> = outputs.iter().map(String::as_str).collect();
    let mut ctx = cli::SystemContext::new();
    let outcome = opened
        .cache
        .store_holding(key, &mut paths, stdout, stderr, &mut ctx, held)
        .map_err(CliError::from)?;
    Ok((outcome, paths.len()))
}
