//! Computing a key from [`KeyArgs`] (SPEC §2), once for `run`, `key` and
//! every host.
//!
//! [`compute_key`] checks the arguments, reads the host variables named by
//! `--env` from this process's environment, reads each `--after`
//! predecessor's stream hashes from its manifest (a use of that entry,
//! which refreshes its last use, OP-5), selects the inputs with
//! [`select_inputs`], hashes them with the host's [`FileHasher`] (or
//! through the [`Filesystem`] trait, [`FsHasher`]) and derives the key.
//! The [`KeyReport`] it returns holds every component, sorted as the
//! derivation sorts them.

use std::path::PathBuf;

use cachet_core::cache::{Cache, LookupStatus, Step};
use cachet_core::fs::{self, Filesystem, Read, Root};
use cachet_core::hash::{Digest, HashFunction, Hasher};
use cachet_core::key::{
    Action, HostVariable, InputFile, Key, KeyComponents, KeyError, Override, Predecessor,
    derive_key, is_valid_shell_name,
};
use cachet_core::manifest::Manifest;

use crate::args::KeyArgs;
use crate::error::CliError;
use crate::parse;
use crate::select::select_inputs;

/// What the plumbing layer needs to know about its host besides the
/// filesystem.
#[non_exhaustive]
pub struct Host<'h> {
    /// The workspace's absolute path as the user names it: an absolute
    /// `--stdout-file` must lie below it. `None` accepts only
    /// workspace-relative paths.
    pub workspace_dir: Option<PathBuf>,
    /// Workspace-relative directories that are never inputs or outputs:
    /// the cache directory, where it lies inside the workspace
    /// ([`parse::excluded_dir`] computes it). `.git` is always excluded.
    pub excluded_dirs: Vec<String>,
    /// A faster way to hash input files than reading them through the
    /// [`Filesystem`] trait; it must give the same digests.
    pub hasher: Option<&'h dyn FileHasher>,
}

impl<'h> Host<'h> {
    /// A host with the given workspace path and excluded directories,
    /// hashing through the filesystem.
    pub fn new(workspace_dir: Option<PathBuf>, excluded_dirs: Vec<String>) -> Host<'h> {
        Host {
            workspace_dir,
            excluded_dirs,
            hasher: None,
        }
    }

    /// This host, hashing input files with `hasher`.
    pub fn with_hasher(self, hasher: &'h dyn FileHasher) -> Host<'h> {
        Host {
            hasher: Some(hasher),
            ..self
        }
    }
}

impl core::fmt::Debug for Host<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Host")
            .field("workspace_dir", &self.workspace_dir)
            .field("excluded_dirs", &self.excluded_dirs)
            .field("hasher", &self.hasher.map(|_| "custom"))
            .finish()
    }
}

/// Hashes input files for a key (KEY-2, KEY-5).
pub trait FileHasher {
    /// The content hashes of the regular files at `paths` (workspace-
    /// absolute, `/dir/file`), in the same order, under `function`.
    fn hash_files(&self, paths: &[String], function: HashFunction)
    -> Result<HashedFiles, CliError>;
}

/// What a [`FileHasher`] returns.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct HashedFiles {
    /// One content hash per path, in the order of the paths.
    pub digests: Vec<Digest>,
    /// How many of them came from the file-hash memo (MEMO-3) instead of
    /// reading the file.
    pub from_memo: u64,
}

impl HashedFiles {
    /// Digests of which `from_memo` came from the file-hash memo.
    pub fn new(digests: Vec<Digest>, from_memo: u64) -> HashedFiles {
        HashedFiles { digests, from_memo }
    }

    /// Digests that were all computed by reading the files.
    pub fn read(digests: Vec<Digest>) -> HashedFiles {
        HashedFiles::new(digests, 0)
    }
}

/// How the input files of a key were hashed (`cachet key --json`,
/// `cachet -v run`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct HashStatistics {
    /// Input files whose bytes were read and hashed.
    pub files_hashed: u64,
    /// Input files whose hash came from the file-hash memo.
    pub files_from_memo: u64,
    /// The time spent selecting and hashing the inputs.
    pub hash_time: core::time::Duration,
}

/// A [`FileHasher`] that reads each file through the [`Filesystem`] trait,
/// one after the other; every host can use it.
#[derive(Debug)]
pub struct FsHasher<'a, F>(pub &'a F);

impl<F: Filesystem> FileHasher for FsHasher<'_, F> {
    fn hash_files(
        &self,
        paths: &[String],
        function: HashFunction,
    ) -> Result<HashedFiles, CliError> {
        let mut buffer = vec![0u8; 256 * 1024];
        paths
            .iter()
            .map(|path| hash_one(self.0, path, function, &mut buffer))
            .collect::<Result<Vec<Digest>, CliError>>()
            .map(HashedFiles::read)
    }
}

fn hash_one<F: Filesystem>(
    fs: &F,
    path: &str,
    function: HashFunction,
    buffer: &mut [u8],
) -> Result<Digest, CliError> {
    let relative = path.strip_prefix('/').unwrap_or(path);
    let failed = |step: Step| {
        move |source: fs::Error| CliError::Workspace {
            step,
            path: String::from(path),
            source,
        }
    };
    let mut reader = fs
        .open_file(Root::Workspace, relative)
        .map_err(failed(Step::Open))?;
    let mut hasher = Hasher::new(function);
    loop {
        let n = reader.read(buffer).map_err(failed(Step::Read))?;
        if n == 0 {
            return Ok(hasher.finalize());
        }
        hasher.update(buffer.get(..n).unwrap_or_default());
    }
}

/// What a task runs (KEY-4: a command or a shell script, nothing else),
/// owned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ActionSpec {
    /// An argv vector.
    Command(Vec<String>),
    /// A script run by a named shell.
    Shell {
        /// The shell's name.
        shell: String,
        /// The script.
        script: String,
    },
}

/// An input file and its content hash (KEY-5).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct InputReport {
    /// Workspace-absolute path.
    pub path: String,
    /// Content hash.
    pub content_hash: Digest,
}

/// A predecessor and its stream hashes (KEY-6).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PredecessorReport {
    /// Its project.
    pub project: String,
    /// Its task.
    pub task: String,
    /// The key its streams were read from.
    pub key: Key,
    /// Hash of its recorded stdout.
    pub stdout_hash: Digest,
    /// Hash of its recorded stderr.
    pub stderr_hash: Digest,
}

/// A key with every component it was derived from, each list sorted by
/// bytes as KEY-5..7 sort it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyReport {
    /// The key.
    pub key: Key,
    /// The hash function of the key and of every content hash.
    pub hash_function: HashFunction,
    /// The action.
    pub action: ActionSpec,
    /// The input files.
    pub input_files: Vec<InputReport>,
    /// The predecessors, by (project, task).
    pub predecessors: Vec<PredecessorReport>,
    /// The `--env` variables and their host values (`None`: unset),
    /// including names that an override shadows (the derivation leaves
    /// those out, KEY-7).
    pub from_host: Vec<(String, Option<String>)>,
    /// The `--set` pairs.
    pub overrides: Vec<(String, String)>,
    /// How the input files were hashed.
    pub statistics: HashStatistics,
}

/// Computes the key for `args` under the cache's active hash function (see
/// the module docs).
pub fn compute_key<F: Filesystem>(
    args: &KeyArgs,
    cache: &Cache<F>,
    host: &Host<'_>,
) -> Result<KeyReport, CliError> {
    let function = cache.options().hash_function;
    let action = action(args)?;

    let mut from_host: Vec<(String, Option<String>)> = Vec::with_capacity(args.env.len());
    for name in &args.env {
        let name = parse::variable_name("--env", name)?;
        let value = match std::env::var_os(name) {
            None => None,
            Some(value) => Some(
                value
                    .into_string()
                    .map_err(|_| CliError::NonUnicodeVariable {
                        name: String::from(name),
                    })?,
            ),
        };
        from_host.push((String::from(name), value));
    }

    let mut overrides: Vec<(String, String)> = Vec::with_capacity(args.set.len());
    for text in &args.set {
        let assignment = parse::assignment("--set", text)?;
        overrides.push((assignment.name, assignment.value));
    }

    let mut predecessors = Vec::with_capacity(args.after.len());
    // Reading a predecessor is a use of it (OP-5).
    let mut ctx = crate::SystemContext::new();
    for text in &args.after {
        let after = parse::after("--after", text)?;
        let (status, bytes) = cache.use_manifest(&after.key, &mut ctx)?;
        let tail = bytes
            .as_deref()
            .and_then(|bytes| Manifest::parse(bytes).ok())
            .map(|manifest| manifest.tail);
        let Some(tail) = tail else {
            return Err(CliError::PredecessorMissing {
                project: after.project,
                task: after.task,
                key: after.key,
                status: if status.is_hit() {
                    LookupStatus::MissNoEntry
                } else {
                    status
                },
            });
        };
        predecessors.push(PredecessorReport {
            project: after.project,
            task: after.task,
            key: after.key,
            stdout_hash: tail.stdout_hash,
            stderr_hash: tail.stderr_hash,
        });
    }

    let started = std::time::Instant::now();
    let paths = select_inputs(
        cache.filesystem(),
        &args.inputs,
        &args.outputs,
        &host.excluded_dirs,
    )?;
    let hashed = match host.hasher {
        Some(hasher) => hasher.hash_files(&paths, function)?,
        None => FsHasher(cache.filesystem()).hash_files(&paths, function)?,
    };
    let files = u64::try_from(paths.len()).unwrap_or(u64::MAX);
    let statistics = HashStatistics {
        files_hashed: files.saturating_sub(hashed.from_memo),
        files_from_memo: hashed.from_memo,
        hash_time: started.elapsed(),
    };
    let input_files: Vec<InputReport> = paths
        .into_iter()
        .zip(hashed.digests)
        .map(|(path, content_hash)| InputReport { path, content_hash })
        .collect();

    // The core sorts every component and refuses duplicates (KEY-5..7);
    // the report lists them in the order it derived them.
    let derived = derive(
        function,
        &action,
        &input_files,
        &predecessors,
        &from_host,
        &overrides,
    )?;
    Ok(KeyReport {
        key: derived.key,
        hash_function: function,
        action,
        input_files: derived.input_files,
        predecessors: derived.predecessors,
        from_host: derived.from_host,
        overrides: derived.overrides,
        statistics,
    })
}

fn action(args: &KeyArgs) -> Result<ActionSpec, CliError> {
    match &args.script {
        Some(script) => {
            let shell = args.shell.clone().unwrap_or_else(|| String::from("sh"));
            if !is_valid_shell_name(&shell) {
                return Err(CliError::InvalidValue {
                    flag: "--shell",
                    value: shell,
                    reason: String::from(
                        "a shell name uses only A-Z, a-z, 0-9, '_' and '-', such as sh or bash",
                    ),
                });
            }
            Ok(ActionSpec::Shell {
                shell,
                script: script.clone(),
            })
        }
        None if args.argv.is_empty() => Err(CliError::Key(KeyError::EmptyCommand)),
        None => Ok(ActionSpec::Command(args.argv.clone())),
    }
}

/// A key, with its components in the order the derivation sorted them.
struct Derived {
    key: Key,
    input_files: Vec<InputReport>,
    predecessors: Vec<PredecessorReport>,
    from_host: Vec<(String, Option<String>)>,
    overrides: Vec<(String, String)>,
}

/// The first name that stands twice in a list the derivation sorted.
fn first_duplicate<T>(sorted: &[T], name: impl Fn(&T) -> String) -> String {
    sorted
        .windows(2)
        .find(|pair| name(&pair[0]) == name(&pair[1]))
        .map(|pair| name(&pair[0]))
        .unwrap_or_default()
}

fn derive(
    function: HashFunction,
    action: &ActionSpec,
    input_files: &[InputReport],
    reports: &[PredecessorReport],
    from_host: &[(String, Option<String>)],
    overrides: &[(String, String)],
) -> Result<Derived, CliError> {
    let argv: Vec<&str> = match action {
        ActionSpec::Command(argv) => argv.iter().map(String::as_str).collect(),
        ActionSpec::Shell { .. } => Vec::new(),
    };
    let action = match action {
        ActionSpec::Command(_) => Action::Command(&argv),
        ActionSpec::Shell { shell, script } => Action::Shell { shell, script },
    };
    let mut inputs: Vec<InputFile<'_>> = input_files
        .iter()
        .map(|input| InputFile {
            path: &input.path,
            content_hash: input.content_hash,
        })
        .collect();
    let mut predecessors: Vec<Predecessor<'_>> = reports
        .iter()
        .map(|p| Predecessor {
            project: &p.project,
            task: &p.task,
            stdout_hash: p.stdout_hash,
            stderr_hash: p.stderr_hash,
        })
        .collect();
    let mut from_host: Vec<HostVariable<'_>> = from_host
        .iter()
        .map(|(name, value)| HostVariable {
            name,
            value: value.as_deref(),
        })
        .collect();
    let mut overrides: Vec<Override<'_>> = overrides
        .iter()
        .map(|(name, value)| Override { name, value })
        .collect();
    let mut components = KeyComponents {
        hash_function: function,
        action,
        input_files: &mut inputs,
        predecessors: &mut predecessors,
        from_host: &mut from_host,
        overrides: &mut overrides,
    };
    let key = derive_key(&mut components).map_err(|error| {
        let (flag, name) = match error {
            KeyError::DuplicateHostVariable => (
                "--env",
                first_duplicate(components.from_host, |v| String::from(v.name)),
            ),
            KeyError::DuplicateOverride => (
                "--set",
                first_duplicate(components.overrides, |v| String::from(v.name)),
            ),
            KeyError::DuplicatePredecessor => (
                "--after",
                first_duplicate(components.predecessors, |p| {
                    format!("{}:{}", p.project, p.task)
                }),
            ),
            other => return CliError::Key(other),
        };
        CliError::Duplicate { flag, name }
    })?;
    Ok(Derived {
        key,
        input_files: components
            .input_files
            .iter()
            .map(|input| InputReport {
                path: String::from(input.path),
                content_hash: input.content_hash,
            })
            .collect(),
        predecessors: components
            .predecessors
            .iter()
            .filter_map(|sorted| {
                reports
                    .iter()
                    .find(|p| p.project == sorted.project && p.task == sorted.task)
                    .cloned()
            })
            .collect(),
        from_host: components
            .from_host
            .iter()
            .map(|v| (String::from(v.name), v.value.map(String::from)))
            .collect(),
        overrides: components
            .overrides
            .iter()
            .map(|v| (String::from(v.name), String::from(v.value)))
            .collect(),
    })
}
