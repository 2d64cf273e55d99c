//! [`CliError`]: why a subcommand failed, with its exit code.

use cachet_core::cache::{CacheError, LookupStatus, Step};
use cachet_core::fs::{self, ErrorKind, FileKind};
use cachet_core::key::{Key, KeyError};

use crate::exit;

/// Why a plumbing subcommand (or the shared part of `run`) failed.
///
/// The `Display` text says what failed, on which path, and what to do; the
/// binaries print it after `cachet: `. [`CliError::exit_code`] maps each
/// variant onto the table in [`crate::exit`].
#[derive(Debug)]
#[non_exhaustive]
pub enum CliError {
    /// A value given on the command line is malformed.
    InvalidValue {
        /// The flag, e.g. `--key`.
        flag: &'static str,
        /// The value as given.
        value: String,
        /// What is wrong, and what is expected.
        reason: String,
    },
    /// A configuration file (`cachet.toml`, CONF-3) is malformed, holds
    /// an unknown key, or a value that is refused.
    InvalidConfig {
        /// The file's path.
        path: String,
        /// The dotted key (empty when the file is not TOML at all).
        key: String,
        /// What is wrong, and what is expected.
        reason: String,
    },
    /// A secret value is malformed; unlike [`CliError::InvalidValue`]
    /// the message never shows it.
    InvalidSecret {
        /// The variable, e.g. `CACHET_REMOTE_SIGNING_KEY`.
        variable: &'static str,
        /// What is wrong, and what is expected.
        reason: String,
    },
    /// The same name was given twice to a repeatable flag.
    Duplicate {
        /// The flag, e.g. `--env`.
        flag: &'static str,
        /// The repeated name.
        name: String,
    },
    /// The key's components were refused (KEY-4, KEY-8).
    Key(KeyError),
    /// A host variable named by `--env` is set to a value that is not
    /// UTF-8, which a key cannot hold (KEY-7).
    NonUnicodeVariable {
        /// The variable's name.
        name: String,
    },
    /// Inputs matched by `--input` are symlinks: the walk never follows
    /// one, and a key that ignored the target could serve a stale hit.
    SymlinkInputs {
        /// Their workspace paths (`/dir/link`), sorted.
        paths: Vec<String>,
    },
    /// A `.gitignore` (or `.git/info/exclude`) file cannot be used.
    Gitignore {
        /// Its workspace path.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An `--after` key is not a hit, so its streams are unknown (KEY-6).
    PredecessorMissing {
        /// The predecessor's project.
        project: String,
        /// The predecessor's task.
        task: String,
        /// The key given for it.
        key: Key,
        /// Why it is not a hit.
        status: LookupStatus,
    },
    /// A file named on the command line is not inside the workspace.
    NotInWorkspace {
        /// The flag, e.g. `--stdout-file`.
        flag: &'static str,
        /// The path as given.
        path: String,
    },
    /// A file named on the command line does not exist.
    FileNotFound {
        /// The flag, e.g. `--stdout-file`.
        flag: &'static str,
        /// Its workspace path.
        path: String,
    },
    /// A filesystem call in the workspace failed while selecting or hashing
    /// inputs or outputs, or reading a stream file.
    Workspace {
        /// What was being done.
        step: Step,
        /// The workspace path (`/dir/file`, `/` for the workspace itself).
        path: String,
        /// The host's error.
        source: fs::Error,
    },
    /// Outputs matched by `--output` are not regular files, so the result
    /// was not stored: a manifest holds regular files only, and an entry
    /// without them would not reproduce the run (CLAIM-1).
    UnstorableOutputs {
        /// Their workspace paths and kinds, sorted by path.
        outputs: Vec<(String, FileKind)>,
    },
    /// A cache operation failed.
    Cache(CacheError),
    /// Reading a list from this process's stdin (`--in-use -`) failed.
    Input {
        /// The flag that asked for stdin.
        flag: &'static str,
        /// The error.
        source: std::io::Error,
    },
    /// `push`, `pull` or `remote status` was given no remote it can use.
    NoRemote {
        /// The subcommand, as typed (`push`).
        command: &'static str,
        /// Whether it needs a writable remote.
        writable: bool,
    },
    /// Writing to this process's stdout or stderr failed.
    Output {
        /// `stdout` or `stderr`.
        stream: &'static str,
        /// The error.
        source: std::io::Error,
    },
}

impl CliError {
    /// The exit code for this error (see [`crate::exit`]).
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::InvalidValue { .. }
            | CliError::InvalidConfig { .. }
            | CliError::InvalidSecret { .. }
            | CliError::Duplicate { .. }
            | CliError::Key(_)
            | CliError::NonUnicodeVariable { .. }
            | CliError::SymlinkInputs { .. }
            | CliError::Gitignore { .. }
            | CliError::NotInWorkspace { .. } => exit::BAD_VALUE,
            CliError::PredecessorMissing { .. } | CliError::FileNotFound { .. } => exit::NOT_FOUND,
            CliError::NoRemote { .. } => exit::USAGE,
            CliError::UnstorableOutputs { .. }
            | CliError::Cache(
                CacheError::OutputNotRegularFile { .. }
                | CacheError::InvalidOutputPath { .. }
                | CacheError::DuplicateOutput { .. }
                | CacheError::ConflictingOutput { .. },
            ) => exit::NOT_STORED,
            CliError::Workspace { .. }
            | CliError::Cache(_)
            | CliError::Input { .. }
            | CliError::Output { .. } => exit::FAILURE,
        }
    }
}

/// What a user can do about a filesystem error of `kind`.
pub(crate) fn advice(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::NotFound => "check that it exists",
        ErrorKind::PermissionDenied => "check its permissions",
        ErrorKind::ReadOnly => "use a writable location",
        ErrorKind::StorageFull => "free some space (`cachet clean --max-size ...` helps)",
        ErrorKind::SymlinkRefused => "replace the symlink with a real file or directory",
        ErrorKind::CrossesDevices => "put the cache directory on the workspace's filesystem",
        _ => "check the path and rerun",
    }
}

impl core::fmt::Display for CliError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            CliError::InvalidValue {
                flag,
                value,
                reason,
            } => write!(f, "invalid value {value:?} for {flag}: {reason}"),
            CliError::InvalidConfig { path, key, reason } if key.is_empty() => {
                write!(
                    f,
                    "cannot use the configuration file '{path}': {reason}; fix it or remove it"
                )
            }
            CliError::InvalidConfig { path, key, reason } => write!(
                f,
                "cannot use the configuration file '{path}': key {key}: {reason}; fix the key or remove it"
            ),
            CliError::InvalidSecret { variable, reason } => {
                write!(f, "invalid value for {variable} (not shown): {reason}")
            }
            CliError::NoRemote { command, writable } => write!(
                f,
                "`cachet {command}` needs a{} remote: pass --remote URL or set CACHET_REMOTE{}",
                if *writable { " writable" } else { "" },
                if *writable {
                    ", without --remote-read-only or CACHET_REMOTE_READ_ONLY=1"
                } else {
                    ""
                }
            ),
            CliError::Duplicate { flag, name } => {
                write!(f, "{name:?} is given to {flag} twice; give each name once")
            }
            CliError::Key(error) => write!(f, "cannot derive the key: {error}"),
            CliError::NonUnicodeVariable { name } => write!(
                f,
                "the host variable {name} (named by --env) is not valid UTF-8, so it cannot be part of a key; set it to a UTF-8 value or drop --env {name}"
            ),
            CliError::SymlinkInputs { paths } => {
                f.write_str("these inputs are symlinks, which cachet does not follow:")?;
                for path in paths {
                    write!(f, "\n  {path}")?;
                }
                f.write_str(
                    "\nselect the files they point to instead (narrow --input, or list the links in a .gitignore)",
                )
            }
            CliError::Gitignore { path, reason } => write!(
                f,
                "cannot use the ignore file '{path}': {reason}; fix or remove the offending line"
            ),
            CliError::PredecessorMissing {
                project,
                task,
                key,
                status,
            } => write!(
                f,
                "--after {project}:{task}={key}: that key is not a hit in the cache ({status}); run that task first, or check the key and --cache-dir"
            ),
            CliError::NotInWorkspace { flag, path } => write!(
                f,
                "{flag} {path:?} is not inside the workspace; give a path relative to the workspace, or an absolute path below it"
            ),
            CliError::FileNotFound { flag, path } => write!(
                f,
                "{flag}: '{path}' does not exist in the workspace; paths are relative to the workspace, not the current directory"
            ),
            CliError::Workspace { step, path, source } => write!(
                f,
                "could not {step} '{path}' in the workspace: {source}; {}",
                advice(source.kind)
            ),
            CliError::UnstorableOutputs { outputs } => {
                f.write_str("these outputs are not regular files:")?;
                for (path, kind) in outputs {
                    write!(f, "\n  {path} ({})", kind.name())?;
                }
                f.write_str(
                    "\ncachet stores regular files only, so this result was not cached; make the command write regular files, or narrow --output",
                )
            }
            CliError::Cache(error) => match error {
                CacheError::Io { source, .. } => {
                    write!(f, "{error}; {}", advice(source.kind))
                }
                CacheError::InvalidOutputPath { .. } => write!(
                    f,
                    "{error}; this result was not cached; rename the file or narrow --output"
                ),
                CacheError::UnsafeTarget { blocker, .. } => write!(
                    f,
                    "{error}; nothing was written; remove or replace '{blocker}' and rerun"
                ),
                _ => write!(f, "{error}"),
            },
            CliError::Input { flag, source } => {
                write!(f, "{flag} -: could not read stdin: {source}")
            }
            CliError::Output { stream, source } => {
                write!(f, "could not write to {stream}: {source}")
            }
        }
    }
}

impl core::error::Error for CliError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            CliError::Key(error) => Some(error),
            CliError::Workspace { source, .. } => Some(source),
            CliError::Cache(error) => Some(error),
            CliError::Input { source, .. } | CliError::Output { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl From<CacheError> for CliError {
    fn from(error: CacheError) -> CliError {
        CliError::Cache(error)
    }
}
