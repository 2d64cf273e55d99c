//! The clap definitions of the command line.
//!
//! [`PlumbingCli`] is the whole command line of the `cachet-wasi` guest;
//! the native `cachet` binary adds the `run` subcommand on top of the same
//! [`GlobalArgs`] and [`PlumbingCommand`], so the two accept the same flags.
//! Values that need checking (keys, globs, sizes, durations, `NAME=VALUE`,
//! `PROJECT:TASK=KEY`) are taken as text here and checked by
//! [`crate::parse`], so that a malformed value exits with
//! [`BAD_VALUE`](crate::exit::BAD_VALUE), not with a usage error.

use std::io::Write;
use std::path::PathBuf;

use cachet_core::hash::HashFunction;
use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{ArgGroup, Args, CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::exit;

/// Options every subcommand takes, before or after the subcommand's name.
#[derive(Args, Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct GlobalArgs {
    /// The workspace: where inputs are read, outputs are stored from and
    /// restored to, and the command runs [default: the current directory]
    #[arg(long, global = true, value_name = "DIR")]
    pub workspace: Option<PathBuf>,

    /// The cache directory [default: $CACHET_CACHE_DIR, else .cachet in
    /// the workspace]
    #[arg(long, global = true, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,

    /// The hash function of keys and content hashes; entries written under
    /// the other one are misses (miss-schema)
    #[arg(
        long = "hash",
        global = true,
        value_name = "FUNCTION",
        default_value = "blake3",
        value_parser = PossibleValuesParser::new(["blake3", "sha256"])
            .try_map(|name| HashFunction::from_name(&name).ok_or("unknown hash function")),
    )]
    pub hash: HashFunction,

    /// Say on stderr whether a lookup hit or missed, in which tier (local,
    /// or which remote), and the key
    #[arg(short, long, global = true)]
    pub verbose: bool,

    /// Sync restored outputs to disk before putting them in place, so that
    /// after a power loss each is either the old file or the complete new
    /// one. Off by default: the task itself would not sync them either
    #[arg(long, global = true)]
    pub durable_restore: bool,
}

/// The command line of a host without `run`: the `cachet-wasi` guest.
#[derive(Parser, Clone, Debug, PartialEq, Eq)]
#[command(
    name = "cachet",
    version,
    about = "A content-addressed cache for build and task outputs"
)]
#[non_exhaustive]
pub struct PlumbingCli {
    /// Options every subcommand takes.
    #[command(flatten)]
    pub globals: GlobalArgs,

    /// The subcommand.
    #[command(subcommand)]
    pub command: PlumbingCommand,
}

impl PlumbingCli {
    /// Parses `args` (the first being the program name) into a command line
    /// whose help and errors call the program `bin_name`.
    pub fn parse_from_named<I, T>(bin_name: &'static str, args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let mut command = PlumbingCli::command().name(bin_name).bin_name(bin_name);
        let matches = command.try_get_matches_from_mut(args)?;
        PlumbingCli::from_arg_matches(&matches).map_err(|error| error.format(&mut command))
    }
}

/// The plumbing subcommands: each is useful on its own and takes `--json`.
#[derive(Subcommand, Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PlumbingCommand {
    /// Print the key a command would have, with everything it was derived
    /// from
    Key(KeyCommand),
    /// Print whether a key is a hit: hit, miss-no-entry, miss-schema or
    /// miss-corrupt (exit 0 on a hit, 1 on a miss)
    Status(StatusArgs),
    /// Store the outputs and streams of a successful run under a key
    Store(StoreArgs),
    /// Restore a key's outputs into the workspace and replay its stdout and
    /// stderr (exit 1 on a miss)
    Restore(RestoreArgs),
    /// Report what the cache holds
    Info(InfoArgs),
    /// Remove broken, old or least recently used entries
    Clean(CleanArgs),
    /// Remove everything in the cache directory
    Clear(ClearArgs),
    /// Re-hash every entry's contents and report the damaged ones (exit 1
    /// when there are any)
    Verify(VerifyArgs),
    /// List every valid entry: key, hash function, outputs, bytes, when
    /// created and when last used
    List(ListArgs),
    /// Remove one entry, safely for concurrent readers (exit 0 if it was
    /// there, 1 if not)
    Remove(RemoveArgs),
}

impl PlumbingCommand {
    /// Whether the command only reads the workspace and the cache, so that
    /// a sandbox may hand it both read-only: `key`, `status`, `info`, and
    /// `verify` without `--evict`.
    pub fn is_read_only(&self) -> bool {
        match self {
            PlumbingCommand::Key(_)
            | PlumbingCommand::Status(_)
            | PlumbingCommand::Info(_)
            | PlumbingCommand::List(_) => true,
            PlumbingCommand::Verify(args) => !args.evict,
            PlumbingCommand::Store(_)
            | PlumbingCommand::Restore(_)
            | PlumbingCommand::Clean(_)
            | PlumbingCommand::Clear(_)
            | PlumbingCommand::Remove(_) => false,
        }
    }

    /// The subcommand's name on the command line.
    pub fn name(&self) -> &'static str {
        match self {
            PlumbingCommand::Key(_) => "key",
            PlumbingCommand::Status(_) => "status",
            PlumbingCommand::Store(_) => "store",
            PlumbingCommand::Restore(_) => "restore",
            PlumbingCommand::Info(_) => "info",
            PlumbingCommand::Clean(_) => "clean",
            PlumbingCommand::Clear(_) => "clear",
            PlumbingCommand::Verify(_) => "verify",
            PlumbingCommand::List(_) => "list",
            PlumbingCommand::Remove(_) => "remove",
        }
    }

    /// The directory `restore --into` restores under instead of the
    /// workspace (OP-12): the host opens it as the workspace root.
    pub fn restore_root(&self) -> Option<&std::path::Path> {
        match self {
            PlumbingCommand::Restore(args) => args.into.as_deref(),
            _ => None,
        }
    }

    /// The `--output` patterns of a `store`, whose files it reads and
    /// records with their modes; nothing for any other command.
    pub fn stored_output_patterns(&self) -> &[String] {
        match self {
            PlumbingCommand::Store(args) => &args.outputs,
            _ => &[],
        }
    }
}

/// Everything that makes a key (SPEC §2), as `run` and `key` take it.
///
/// [`KeyArgs::default`] is an empty set of flags (no action yet), for
/// callers that fill the fields in code instead of parsing a command
/// line, as `cachet::task::Task` does.
#[derive(Args, Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyArgs {
    /// Input files: a glob over workspace paths (`src/**/*.rs`; `*` stays
    /// within a directory, `**` crosses them). A directory matched selects
    /// every file below it. `.gitignore` files are honoured; `.git` and the
    /// cache directory are never inputs. Repeatable [default: every file of
    /// the workspace that .gitignore does not exclude, except the files
    /// --output matches]
    #[arg(long = "input", value_name = "GLOB", allow_hyphen_values = true)]
    pub inputs: Vec<String>,

    /// Output files: a glob over workspace paths; a directory matched
    /// stores every file below it (`run`, after a successful run). Without
    /// --input, what they match is not an input. Repeatable
    #[arg(long = "output", value_name = "GLOB", allow_hyphen_values = true)]
    pub outputs: Vec<String>,

    /// Hash every input file, without reading or updating the file-hash
    /// memo (also: CACHET_NO_MEMO=1). The key is the same either way
    #[arg(long)]
    pub no_memo: bool,

    /// A host environment variable whose value (or absence) is part of the
    /// key. Repeatable
    #[arg(long = "env", value_name = "NAME")]
    pub env: Vec<String>,

    /// Set a variable for the command; the pair is part of the key.
    /// Repeatable
    #[arg(long = "set", value_name = "NAME=VALUE", allow_hyphen_values = true)]
    pub set: Vec<String>,

    /// A task whose streams this one consumes: the stdout and stderr hashes
    /// of KEY's entry (which must be a hit) are part of the key. Repeatable
    #[arg(long = "after", value_name = "PROJECT:TASK=KEY")]
    pub after: Vec<String>,

    /// Run this script with a shell instead of `-- ARGV...`
    #[arg(
        long,
        value_name = "TEXT",
        allow_hyphen_values = true,
        conflicts_with = "argv"
    )]
    pub script: Option<String>,

    /// The shell that runs --script: sh, bash, or another name of
    /// [A-Za-z0-9_-] found on PATH [default: sh]
    #[arg(long, value_name = "NAME", requires = "script")]
    pub shell: Option<String>,

    /// The command and its arguments, after `--`
    #[arg(
        value_name = "ARGV",
        last = true,
        num_args = 1..,
        required_unless_present = "script"
    )]
    pub argv: Vec<String>,
}

/// `cachet key`.
#[derive(Args, Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyCommand {
    /// The key's components.
    #[command(flatten)]
    pub key: KeyArgs,

    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
}

/// `cachet status`.
#[derive(Args, Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct StatusArgs {
    /// The key, as 64 hex digits
    #[arg(long, value_name = "HEX")]
    pub key: String,

    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
}

/// `cachet store`.
#[derive(Args, Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreArgs {
    /// The key, as 64 hex digits
    #[arg(long, value_name = "HEX")]
    pub key: String,

    /// The captured stdout, a file in the workspace (a path relative to
    /// the workspace, or absolute inside it) [default: empty]
    #[arg(long, value_name = "FILE")]
    pub stdout_file: Option<String>,

    /// The captured stderr, like --stdout-file [default: empty]
    #[arg(long, value_name = "FILE")]
    pub stderr_file: Option<String>,

    /// Output files: a glob over workspace paths; a directory matched
    /// stores every file below it. Repeatable
    #[arg(long = "output", value_name = "GLOB", allow_hyphen_values = true)]
    pub outputs: Vec<String>,

    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
}

/// `cachet restore`.
#[derive(Args, Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RestoreArgs {
    /// The key, as 64 hex digits
    #[arg(long, value_name = "HEX")]
    pub key: String,

    /// Print a JSON report instead of replaying the recorded stdout and
    /// stderr (the outputs are restored either way)
    #[arg(long)]
    pub json: bool,

    /// Restore under this directory instead of the workspace: each output's
    /// workspace path is taken relative to DIR, and nothing is written
    /// outside it or through a symlink below it (native only)
    #[arg(long, value_name = "DIR")]
    pub into: Option<PathBuf>,
}

/// `cachet list`.
#[derive(Args, Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ListArgs {
    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
}

/// `cachet remove`.
#[derive(Args, Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RemoveArgs {
    /// The key, as 64 hex digits
    #[arg(long, value_name = "HEX")]
    pub key: String,

    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
}

/// `cachet info`.
#[derive(Args, Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct InfoArgs {
    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
}

/// `cachet clean`.
#[derive(Args, Clone, Debug, PartialEq, Eq)]
#[command(group(
    ArgGroup::new("size_bound")
        .multiple(true)
        .args(["max_size", "percent"])
))]
#[command(group(
    ArgGroup::new("mode")
        .required(true)
        .multiple(true)
        .args(["soft", "max_age", "max_size", "percent"])
))]
#[non_exhaustive]
pub struct CleanArgs {
    /// Remove corrupt and outdated entries and stale scratch directories
    #[arg(long)]
    pub soft: bool,

    /// Remove entries created longer ago than this: `7d`, `12h`, `1h 30m`
    #[arg(long, value_name = "DURATION")]
    pub max_age: Option<String>,

    /// Then remove least recently used entries until the rest fit: `4096`
    /// (bytes), `10G` (10^9 bytes; K, M, G, T are powers of 1000), `512MiB`
    /// (2^20 bytes each; Ki, Mi, Gi, Ti are powers of 1024)
    #[arg(long, value_name = "SIZE")]
    pub max_size: Option<String>,

    /// Also keep at most P percent (0 to 100) of the bytes the valid
    /// entries held before the clean; with --max-size, the smaller bound
    /// applies
    #[arg(long, value_name = "P")]
    pub percent: Option<String>,

    /// The keys still in use, 64 hex digits each, separated by whitespace:
    /// a workspace file, or `-` for stdin. Size cleaning removes entries
    /// not listed first (oldest use first), then the listed ones by least
    /// recent use
    #[arg(long, value_name = "FILE", requires = "size_bound")]
    pub in_use: Option<String>,

    /// Only report what would be removed
    #[arg(long)]
    pub dry_run: bool,

    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
}

/// `cachet clear`.
#[derive(Args, Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClearArgs {
    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
}

/// `cachet verify`.
#[derive(Args, Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifyArgs {
    /// Remove the damaged entries
    #[arg(long)]
    pub evict: bool,

    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
}

/// Prints a clap error the way the `cachet` commands do and returns the
/// exit code: help and version go to `stdout` with [`exit::SUCCESS`],
/// anything else to `stderr` with [`exit::USAGE`].
pub fn report_usage_error(
    error: &clap::Error,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> u8 {
    let text = error.render().to_string();
    if error.use_stderr() {
        let _ = stderr.write_all(text.as_bytes());
        let _ = stderr.flush();
        exit::USAGE
    } else {
        let _ = stdout.write_all(text.as_bytes());
        let _ = stdout.flush();
        exit::SUCCESS
    }
}

/// `cachet push` and `cachet pull` (native only).
#[derive(Args, Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PushArgs {
    /// The key, as 64 hex digits
    #[arg(long, value_name = "HEX")]
    pub key: String,

    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
}

/// `cachet pull` (native only): the same flags as `push`.
pub type PullArgs = PushArgs;

/// `cachet remote` (native only).
#[derive(Subcommand, Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RemoteCommand {
    /// Check each remote: reachable, latency, read and write permission,
    /// and how many entries the tenant has there (exit 0 when every
    /// remote works, 70 otherwise)
    Status(RemoteStatusArgs),
}

/// `cachet remote status`.
#[derive(Args, Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RemoteStatusArgs {
    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
}
