//! The task API: "have I already run this task?" for a task runner that
//! links cachet as a library instead of spawning the `cachet` command.
//!
//! A runner describes a task with the [`Task`] builder (a command or a
//! shell script, input globs or explicit files, host variables, set
//! variables, predecessors, outputs), opens a [`TaskCache`] over its
//! workspace, and then either
//!
//! - calls [`TaskCache::run`], which does exactly what `cachet run` does
//!   (the command is built on these functions): on a hit it restores the
//!   outputs and replays the recorded streams to the writers it is given;
//!   on a miss it runs the command with its streams passed through live to
//!   those writers, and stores the result when the command exits 0; or
//! - calls [`TaskCache::lookup`], which restores a hit the same way and on
//!   a miss hands back the key, so that the runner runs the task itself
//!   and records the result with [`TaskCache::store`].
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

use cachet_cli::{self as cli, ActionSpec, CliError, Host, KeyArgs, KeyReport, StdRead, StdWrite};
use cachet_core::cache::{
    Cache, CacheError, HeldContents, LookupStatus, Options, RestoreOutcome, StoreOutcome,
};
use cachet_core::key::Key;

use crate::exec::{CommandSpec, ExecError, Program, RunResult, run_captured_with};
use crate::fs::CapStdFilesystem;
use crate::native::{NativeError, Opened, open_at};

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
    },
}

/// A cache over one workspace, for running [`Task`]s.
#[derive(Debug)]
pub struct TaskCache {
    opened: Opened,
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
        Ok(TaskCache { opened })
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
    /// `stdout` and `stderr`; on a miss writes nothing and hands back the
    /// key.
    pub fn lookup(
        &self,
        task: &Task,
        stdout: &mut dyn Write,
        stderr: &mut dyn Write,
    ) -> Result<Lookup, NativeError> {
        let key = self.key(task)?.key;
        restore(&self.opened, &key, stdout, stderr)
    }

    /// Stores the result of a successful run of `task` under `key`: its
    /// outputs as selected now, and the captured streams.
    pub fn store(
        &self,
        key: &Key,
        task: &Task,
        stdout: impl io::Read,
        stderr: impl io::Read,
    ) -> Result<StoreOutcome, NativeError> {
        let streams = (StdRead(stdout), StdRead(stderr));
        store(&self.opened, key, task, streams, &mut HeldContents::none())
            .map(|(outcome, _)| outcome)
    }

    /// What `cachet run` does: restore on a hit, else run the command
    /// (streams passed through live to `stdout` and `stderr`, and
    /// captured) and store the result when it exits 0.
    pub fn run(
        &self,
        task: &Task,
        stdout: &mut (dyn Write + Send),
        stderr: &mut (dyn Write + Send),
    ) -> Result<Ran, NativeError> {
        let report = self.key(task)?;
        let key = report.key;
        let restore_error = match restore(&self.opened, &key, stdout, stderr)? {
            Lookup::Hit { key, outputs } => return Ok(Ran::Restored { key, outputs }),
            Lookup::Miss { restore_error, .. } => restore_error,
        };
        let result = execute(&self.opened, &report, stdout, stderr)?;
        let stored = if result.success() {
            let (out, err) = open_captures(&result)?;
            let (outcome, _) = store(
                &self.opened,
                &key,
                task,
                (out, err),
                &mut HeldContents::none(),
            )?;
            matches!(outcome, StoreOutcome::Stored | StoreOutcome::AlreadyPresent)
        } else {
            false
        };
        Ok(Ran::Executed {
            key,
            exit_code: result.exit_code,
            signal: result.signal,
            stored,
            restore_error,
        })
    }
}

/// The key of `task` in `opened`'s workspace.
pub(crate) fn key(opened: &Opened, task: &Task) -> Result<KeyReport, NativeError> {
    let args = task.checked()?;
    let hasher = opened.hasher(args);
    let host = Host::new(Some(opened.workspace.clone()), opened.excluded_dirs.clone())
        .with_hasher(&hasher);
    Ok(cli::compute_key(args, &opened.cache, &host)?)
}

/// Restores `key` (OP-3), the way `cachet run` treats the outcome: a
/// target that cannot be written safely (SAFE-2) or a stream that cannot
/// be replayed is an error; any other failure is a miss that a fresh run
/// repairs, with the error handed back.
pub(crate) fn restore(
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
        Ok(RestoreOutcome::Restored { outputs, .. }) => Ok(Lookup::Hit { key: *key, outputs }),
        Ok(RestoreOutcome::Miss(status)) => Ok(Lookup::Miss {
            key: *key,
            status,
            restore_error: None,
        }),
        Err(error @ (CacheError::UnsafeTarget { .. } | CacheError::StreamWrite { .. })) => {
            Err(CliError::Cache(error).into())
        }
        Err(error) => Ok(Lookup::Miss {
            key: *key,
            status: LookupStatus::MissCorrupt,
            restore_error: Some(error),
        }),
    }
}

/// Runs the command of the task `report` describes in the workspace with
/// its set variables, streams passed through to `stdout` and `stderr` and
/// captured into the cache directory (scratch that a soft clean removes
/// after a crash) or, if that is not writable, into the system's temporary
/// directory.
pub(crate) fn execute(
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
pub(crate) fn open_captures(
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
pub(crate) fn store<O: cachet_core::fs::Read, E: cachet_core::fs::Read>(
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
