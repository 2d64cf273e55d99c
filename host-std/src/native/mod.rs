//! The native `cachet` binary: opening the workspace and the cache
//! directory with `cap-std`, the `run` subcommand, parallel input hashing
//! and progress bars. Everything else is [`cachet_cli`].
//!
//! `cachet run` and `cachet key` select inputs with the same portable code
//! ([`cachet_cli::select`]) as the WASI guest, so they always agree on a
//! key; only the hashing is native (parallel, memory-mapped for large
//! files, [`crate::inputs::hash_file`]), with the same digests. A progress
//! bar for hashing appears on stderr only when stderr is a terminal and
//! there is enough to hash to notice.
//!
//! Exit codes are those of [`cachet_cli::exit`].

mod run;

use std::io::{self, IsTerminal};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use cachet_core::cache::{Cache, Options, Step};
use cachet_core::fs::{self as core_fs, ErrorKind};
use cachet_core::hash::{Digest, HashFunction};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rayon::prelude::*;

use crate::fs::{CapStdFilesystem, OpenError};
use crate::inputs::{InputError, hash_file, hash_file_with_metadata};
use crate::memo::{self, MemoFile, Parents, file_stat};
use crate::remote::tier::{Messages, RemoteTier};
use crate::tasks::Threads;
use cachet_cli::config::Settings;
use cachet_cli::remote::{Chain, RemoteArgs};
use cachet_cli::{
    self as cli, CliError, FileHasher, GlobalArgs, HashedFiles, Host, KeyArgs, PlumbingCommand,
    PullArgs, PushArgs, RemoteCommand, SystemContext, exit,
};
use cachet_core::memo::{FileStat, Memo};

pub use run::RunArgs;

/// The native command line: `run` and the plumbing subcommands.
#[derive(Parser, Clone, Debug, PartialEq, Eq)]
#[command(
    name = "cachet",
    version,
    about = "A content-addressed cache for build and task outputs",
    after_help = "Run `cachet run -- <command>` to cache any command. Exit codes: the command's own on a miss; 0 on a hit; 64-73 for cachet's own failures (see the README)."
)]
#[non_exhaustive]
pub struct Cli {
    /// Options every subcommand takes.
    #[command(flatten)]
    pub globals: GlobalArgs,

    /// The remote stores (docs/spec.md §11), for every subcommand.
    #[command(flatten)]
    pub remote: RemoteArgs,

    /// The subcommand.
    #[command(subcommand)]
    pub command: Command,
}

/// A native subcommand.
#[derive(Subcommand, Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Command {
    /// Run a command through the cache: restore its outputs and streams on
    /// a hit, run it and store the result on a miss
    Run(RunArgs),
    /// A plumbing subcommand.
    #[command(flatten)]
    Plumbing(PlumbingCommand),
    /// Upload a local entry to every writable remote (exit 1 when the key
    /// is not a local hit, 70 when a remote failed)
    Push(PushArgs),
    /// Download an entry from the first remote that holds it into the
    /// local cache, restoring nothing (exit 1 when no remote has it)
    Pull(PullArgs),
    /// The remote stores
    #[command(subcommand)]
    Remote(RemoteCommand),
}

/// Why the native binary could not start a subcommand, or `run` failed
/// outside the shared [`CliError`]s.
#[derive(Debug)]
#[non_exhaustive]
pub enum NativeError {
    /// The current directory (the default workspace) is unusable.
    CurrentDir(io::Error),
    /// The workspace cannot be resolved.
    Workspace {
        /// The workspace as given.
        path: PathBuf,
        /// What the operating system reported.
        source: io::Error,
    },
    /// The workspace or the cache directory cannot be opened.
    Open(OpenError),
    /// The cache directory is the workspace itself.
    CacheIsWorkspace {
        /// The directory.
        path: PathBuf,
    },
    /// The command could not be run or its output captured.
    Exec(crate::exec::ExecError),
    /// A shared failure.
    Cli(CliError),
}

impl NativeError {
    /// The exit code (see [`cachet_cli::exit`]).
    pub fn exit_code(&self) -> u8 {
        use crate::exec::ExecError;
        match self {
            NativeError::CurrentDir(_) | NativeError::Workspace { .. } => exit::NOT_FOUND,
            NativeError::Open(OpenError::Workspace { .. }) => exit::NOT_FOUND,
            NativeError::Open(_) => exit::CACHE_UNAVAILABLE,
            NativeError::CacheIsWorkspace { .. } => exit::BAD_VALUE,
            NativeError::Exec(ExecError::Spawn { source, .. }) => {
                if source.kind() == io::ErrorKind::NotFound {
                    exit::COMMAND_NOT_FOUND
                } else {
                    exit::CANNOT_EXECUTE
                }
            }
            NativeError::Exec(ExecError::EmptyCommand | ExecError::InvalidShellName { .. }) => {
                exit::BAD_VALUE
            }
            NativeError::Exec(_) => exit::FAILURE,
            NativeError::Cli(error) => error.exit_code(),
        }
    }
}

impl core::fmt::Display for NativeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            NativeError::CurrentDir(source) => write!(
                f,
                "cannot use the current directory as the workspace: {source}; pass --workspace DIR"
            ),
            NativeError::Workspace { path, source } => write!(
                f,
                "cannot use the workspace {}: {source}; check that the directory exists",
                path.display()
            ),
            NativeError::Open(error) => write!(f, "{error}"),
            NativeError::CacheIsWorkspace { path } => write!(
                f,
                "the cache directory {} is the workspace itself; pass a --cache-dir inside or outside it",
                path.display()
            ),
            NativeError::Exec(error) => write!(f, "{error}"),
            NativeError::Cli(error) => write!(f, "{error}"),
        }
    }
}

impl core::error::Error for NativeError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            NativeError::CurrentDir(source) | NativeError::Workspace { source, .. } => Some(source),
            NativeError::Open(error) => Some(error),
            NativeError::CacheIsWorkspace { .. } => None,
            NativeError::Exec(error) => Some(error),
            NativeError::Cli(error) => Some(error),
        }
    }
}

impl From<CliError> for NativeError {
    fn from(error: CliError) -> NativeError {
        NativeError::Cli(error)
    }
}

/// The workspace and the cache directory, open.
#[derive(Debug)]
pub(crate) struct Opened {
    /// The workspace, canonical.
    pub workspace: PathBuf,
    /// The cache directory, canonical.
    pub cache_dir: PathBuf,
    /// The cache directory relative to the workspace, when inside it.
    pub excluded_dirs: Vec<String>,
    /// The cache over both.
    pub cache: Cache<CapStdFilesystem>,
    /// The environment over the configuration files (CONF-1).
    pub settings: Settings,
}

impl Opened {
    /// The input hasher for a key of `args`: with the cache directory's
    /// file-hash memo unless `--no-memo` or the environment turns it off.
    pub fn hasher(&self, args: &KeyArgs) -> ParallelHasher {
        let hasher = ParallelHasher::new(&self.workspace);
        if args.memo_disabled(&self.settings) {
            hasher
        } else {
            hasher.with_memo(MemoFile::in_cache_dir(&self.cache_dir))
        }
    }
}

fn open(globals: &GlobalArgs) -> Result<Opened, NativeError> {
    let given = given_workspace(globals)?;
    open_at(
        &given,
        &|workspace, settings| globals.cache_dir(workspace, settings),
        globals.cache_options(),
    )
}

/// `--workspace`, else the current directory.
fn given_workspace(globals: &GlobalArgs) -> Result<PathBuf, NativeError> {
    match &globals.workspace {
        Some(path) => Ok(path.clone()),
        None => std::env::current_dir().map_err(NativeError::CurrentDir),
    }
}

/// The workspace `given`, canonical: it must exist.
fn canonical_workspace(given: &Path) -> Result<PathBuf, NativeError> {
    given
        .canonicalize()
        .map_err(|source| NativeError::Workspace {
            path: given.to_path_buf(),
            source,
        })
}

/// Opens the workspace `given` and the cache directory `cache_dir_of`
/// names for its canonical path and configuration (created when missing).
pub(crate) fn open_at(
    given: &Path,
    cache_dir_of: &dyn Fn(&Path, &Settings) -> PathBuf,
    options: cachet_core::cache::Options,
) -> Result<Opened, NativeError> {
    let workspace = canonical_workspace(given)?;
    let settings = crate::config::load_settings(&workspace)?;
    let cache_dir = cache_dir_of(&workspace, &settings);
    let fs = CapStdFilesystem::open_ambient(&workspace, &cache_dir).map_err(NativeError::Open)?;
    let cache_dir = cache_dir.canonicalize().map_err(|source| {
        NativeError::Open(OpenError::CacheDir {
            path: cache_dir.clone(),
            source,
        })
    })?;
    if cache_dir == workspace {
        return Err(NativeError::CacheIsWorkspace { path: cache_dir });
    }
    let excluded = cli::parse::excluded_dir(&workspace, &cache_dir);
    // SEL-2 leaves the cache directory out of every selection; SAFE-8
    // keeps entries from restoring into it.
    let options = Options {
        cache_dir_in_workspace: excluded.clone(),
        ..options
    };
    Ok(Opened {
        workspace,
        cache_dir,
        excluded_dirs: excluded.into_iter().collect(),
        cache: Cache::with_options(fs, options).with_tasks(Threads::new()),
        settings,
    })
}

/// The `cachet` binary: parses the command line, runs the subcommand and
/// returns its exit code.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            return ExitCode::from(cli::report_usage_error(
                &error,
                &mut io::stdout(),
                &mut io::stderr(),
            ));
        }
    };
    ExitCode::from(dispatch(&cli))
}

/// The roots a command works on: for `restore --into DIR` (OP-12), DIR
/// in the workspace's place, with the cache directory still found from
/// the real workspace.
fn roots(cli: &Cli) -> Result<alloc::borrow::Cow<'_, GlobalArgs>, NativeError> {
    let Command::Plumbing(command) = &cli.command else {
        return Ok(alloc::borrow::Cow::Borrowed(&cli.globals));
    };
    let Some(into) = command.restore_root() else {
        return Ok(alloc::borrow::Cow::Borrowed(&cli.globals));
    };
    let workspace = canonical_workspace(&given_workspace(&cli.globals)?)?;
    let mut globals = cli.globals.clone();
    let settings = crate::config::load_settings(&workspace)?;
    globals.cache_dir = Some(cli.globals.cache_dir(&workspace, &settings));
    globals.workspace = Some(into.to_path_buf());
    Ok(alloc::borrow::Cow::Owned(globals))
}

/// Runs a parsed command line and returns the exit code.
pub fn dispatch(cli: &Cli) -> u8 {
    let opened = match roots(cli).and_then(|globals| open(&globals)) {
        Ok(opened) => opened,
        Err(error) => {
            cli::report_error(&mut io::stderr(), &error);
            return error.exit_code();
        }
    };
    // Variables come through the configuration files (CONF-1).
    let env = |name: &str| opened.settings.var(name);
    let config = match cli
        .remote
        .resolve(&env)
        .map_err(|error| opened.settings.attribute(error))
    {
        Ok(config) => config,
        Err(error) => {
            cli::report_error(&mut io::stderr(), &error);
            return error.exit_code();
        }
    };
    let uses_remotes = match &cli.command {
        Command::Plumbing(command) => matches!(
            command,
            PlumbingCommand::Status(_) | PlumbingCommand::Restore(_) | PlumbingCommand::Store(_)
        ),
        _ => true,
    };
    let tier = if uses_remotes {
        RemoteTier::open(config, &env)
    } else {
        RemoteTier::without_stores(config)
    };
    for failure in tier.setup_failures() {
        cli::remote::warn(&mut io::stderr(), failure);
    }
    // `remote status` is how a user checks a remote: it asks each one,
    // whatever its breaker says, and leaves the breakers as they are.
    let health_check = matches!(cli.command, Command::Remote(RemoteCommand::Status(_)));
    let mut stderr = io::stderr();
    let mut messages = Messages::new(cli.globals.verbose, &mut stderr);
    tier.run(
        &opened.cache_dir,
        health_check,
        &mut messages,
        |chain, messages| dispatch_command(cli, &opened, chain, tier.setup_failures(), messages),
    )
}

/// Runs the command of `cli` through `chain`.
fn dispatch_command<R: cachet_core::remote::RemoteStore>(
    cli: &Cli,
    opened: &Opened,
    chain: &Chain<'_, R>,
    setup_failures: &[crate::remote::SetupError],
    messages: &mut Messages<'_>,
) -> u8 {
    if let Command::Run(args) = &cli.command {
        return match run::run(args, opened, chain, messages) {
            Ok(code) => code,
            Err(error) => {
                cli::report_error(&mut io::stderr(), &error);
                error.exit_code()
            }
        };
    }
    let mut ctx = SystemContext::new();
    let (mut stdout, mut stderr) = (io::stdout().lock(), io::stderr().lock());
    let result = match &cli.command {
        Command::Plumbing(command) => {
            let hasher = match command {
                PlumbingCommand::Key(key) => opened.hasher(&key.key),
                _ => ParallelHasher::new(&opened.workspace),
            };
            let host = Host::new(Some(opened.workspace.clone()), opened.excluded_dirs.clone())
                .with_hasher(&hasher);
            return cli::run_plumbing_with_chain(
                command,
                &host,
                &opened.cache,
                chain,
                &mut ctx,
                &mut stdout,
                &mut stderr,
            );
        }
        Command::Push(args) => {
            cli::remote::push_command(args, &opened.cache, chain, &mut stdout, &mut stderr)
        }
        Command::Pull(args) => cli::remote::pull_command(
            args,
            &opened.cache,
            chain,
            &mut ctx,
            &mut stdout,
            &mut stderr,
        ),
        Command::Remote(RemoteCommand::Status(args)) => {
            cli::remote::remote_status_command(args, &opened.cache, chain, &mut ctx, &mut stdout)
                .map(|code| {
                    // A remote that could not even be set up does not work.
                    if setup_failures.is_empty() {
                        code
                    } else {
                        exit::FAILURE
                    }
                })
        }
        _ => Ok(exit::USAGE),
    };
    cli::finish_command(result, &mut stdout, &mut stderr)
}

/// Hashing shows a progress bar (on a terminal) from this many bytes...
const PROGRESS_MIN_BYTES: u64 = 256 * 1024 * 1024;
/// ...or this many files.
const PROGRESS_MIN_FILES: usize = 2000;

/// Hashes input files on the `rayon` pool with [`hash_file`] (memory-mapped
/// BLAKE3 for large files); the digests equal those of
/// [`cli::FsHasher`].
///
/// With [`ParallelHasher::with_memo`], a file whose `stat` matches a record
/// of the file-hash memo is not read (MEMO-3), and files it did read are
/// recorded for the next run.
#[derive(Debug)]
pub struct ParallelHasher {
    workspace: PathBuf,
    progress: bool,
    memo: Option<MemoFile>,
}

/// One input's hash, and what the memo should learn from it.
struct HashedInput {
    digest: Digest,
    /// The file's stat, when the hash came from the memo (to mark it seen)
    /// or when the file was read and did not change meanwhile (to record).
    stat: Option<FileStat>,
    from_memo: bool,
}

impl ParallelHasher {
    /// A hasher for files below `workspace`, showing progress when stderr
    /// is a terminal.
    pub fn new(workspace: &Path) -> ParallelHasher {
        ParallelHasher {
            workspace: workspace.to_path_buf(),
            progress: io::stderr().is_terminal(),
            memo: None,
        }
    }

    /// This hasher, using and updating the file-hash memo `memo`.
    pub fn with_memo(self, memo: MemoFile) -> ParallelHasher {
        ParallelHasher {
            memo: Some(memo),
            ..self
        }
    }

    fn hash_one(
        &self,
        path: &str,
        function: HashFunction,
        memo: Option<(&Memo, &Parents, usize)>,
    ) -> Result<HashedInput, CliError> {
        let local = self.local(path);
        let Some((memo, parents, index)) = memo else {
            let digest = hash_file(&local, function)
                .map_err(|error| input_error(path, error))?
                .digest;
            return Ok(HashedInput {
                digest,
                stat: None,
                from_memo: false,
            });
        };
        let before = parents.stat(index, path);
        if let Some(stat) = before
            && let Some(digest) = memo.get(&stat, function)
        {
            return Ok(HashedInput {
                digest,
                stat: Some(stat),
                from_memo: true,
            });
        }
        let (content, opened) =
            hash_file_with_metadata(&local, function).map_err(|error| input_error(path, error))?;
        // Recorded only if the path still names the file that was opened,
        // unchanged since before it was read (MEMO-3).
        let after = std::fs::symlink_metadata(&local)
            .ok()
            .and_then(|metadata| file_stat(&metadata));
        let opened = file_stat(&opened);
        Ok(HashedInput {
            digest: content.digest,
            stat: opened.filter(|opened| after.as_ref() == Some(opened)),
            from_memo: false,
        })
    }

    fn progress_bar(&self, paths: &[String]) -> ProgressBar {
        if !self.progress {
            return ProgressBar::hidden();
        }
        let bytes: u64 = paths
            .iter()
            .filter_map(|path| std::fs::symlink_metadata(self.local(path)).ok())
            .map(|meta| meta.len())
            .sum();
        if bytes < PROGRESS_MIN_BYTES && paths.len() < PROGRESS_MIN_FILES {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::with_draw_target(
            Some(u64::try_from(paths.len()).unwrap_or(u64::MAX)),
            ProgressDrawTarget::stderr(),
        );
        if let Ok(style) =
            ProgressStyle::with_template("cachet: hashing inputs {bar:30} {pos}/{len} files")
        {
            bar.set_style(style);
        }
        bar
    }

    fn local(&self, path: &str) -> PathBuf {
        self.workspace.join(path.strip_prefix('/').unwrap_or(path))
    }
}

impl FileHasher for ParallelHasher {
    fn hash_files(
        &self,
        paths: &[String],
        function: HashFunction,
    ) -> Result<HashedFiles, CliError> {
        // The clock is read before any input is looked at (MEMO-4).
        let now = memo::now();
        let mut memo = self.memo.as_ref().map(MemoFile::load);
        let parents = memo.as_ref().map(|_| Parents::open(&self.workspace, paths));
        let bar = self.progress_bar(paths);
        let hashed: Vec<HashedInput> = paths
            .par_iter()
            .enumerate()
            .map(|(index, path)| {
                let memo = memo.as_ref().zip(parents.as_ref());
                let hashed = self.hash_one(
                    path,
                    function,
                    memo.map(|(memo, parents)| (memo, parents, index)),
                );
                bar.inc(1);
                hashed
            })
            .collect::<Result<_, CliError>>()?;
        bar.finish_and_clear();
        let mut from_memo = 0u64;
        if let (Some(memo), Some(file)) = (memo.as_mut(), self.memo.as_ref()) {
            for input in &hashed {
                match (&input.stat, input.from_memo) {
                    (Some(stat), true) => {
                        from_memo += 1;
                        memo.lookup(stat, function, now);
                    }
                    (Some(stat), false) => {
                        memo.record(stat, function, input.digest, now);
                    }
                    (None, _) => {}
                }
            }
            if memo.is_changed() {
                // The memo only saves work: a cache directory it cannot be
                // written to costs the next run a re-hash, nothing else.
                let _ = file.save(memo, now);
            }
        }
        Ok(HashedFiles::new(
            hashed.into_iter().map(|input| input.digest).collect(),
            from_memo,
        ))
    }
}

fn input_error(path: &str, error: InputError) -> CliError {
    let (step, source) = match &error {
        InputError::Read { source, .. } => (Step::Read, core_fs::Error::from(source)),
        InputError::NotARegularFile { .. } => {
            (Step::Open, core_fs::Error::new(ErrorKind::InvalidInput))
        }
    };
    CliError::Workspace {
        step,
        path: String::from(path),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cachet_cli::FsHasher;

    #[test]
    fn parallel_hashing_gives_the_portable_digests() {
        let dir = tempfile::tempdir().unwrap();
        let ws = dir.path().join("ws");
        std::fs::create_dir_all(ws.join("sub")).unwrap();
        std::fs::write(ws.join("empty"), b"").unwrap();
        std::fs::write(ws.join("sub/small"), b"small").unwrap();
        // Above inputs::LARGE_FILE_BYTES: hashed from a memory map.
        let large: Vec<u8> = (0..400_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(ws.join("large"), &large).unwrap();
        let fs = CapStdFilesystem::open_ambient(&ws, &dir.path().join("cache")).unwrap();
        let paths: Vec<String> = ["/empty", "/large", "/sub/small"]
            .iter()
            .map(|p| String::from(*p))
            .collect();
        for function in HashFunction::ALL {
            let portable = FsHasher(&fs).hash_files(&paths, function).unwrap();
            let parallel = ParallelHasher::new(&ws)
                .hash_files(&paths, function)
                .unwrap();
            assert_eq!(portable, parallel, "{function}");
            let memo = MemoFile::in_cache_dir(&dir.path().join("cache"));
            let memoised = ParallelHasher::new(&ws)
                .with_memo(memo)
                .hash_files(&paths, function)
                .unwrap();
            assert_eq!(memoised.digests, portable.digests, "{function}");
            assert_eq!(
                portable.digests[1],
                cachet_core::hash::digest(function, &large),
                "{function}"
            );
        }
        let missing = ParallelHasher::new(&ws)
            .hash_files(&[String::from("/gone")], HashFunction::Blake3)
            .unwrap_err();
        assert!(missing.to_string().contains("'/gone'"), "{missing}");
    }
}
