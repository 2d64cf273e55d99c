//! Input selection and content hashing (SPEC KEY-2, KEY-5).
//!
//! [`select_inputs`] walks the workspace with `ignore`, keeps the regular
//! files whose workspace-relative path matches one of the glob patterns
//! (`globset`), and names each in the workspace-absolute form `/dir/file`
//! that KEY-5 hashes. [`hash_inputs`] then hashes the selected files in
//! parallel with the key's hash function.
//!
//! # What is selected
//!
//! - Patterns match the path relative to the workspace root (`src/*.rs`); a
//!   leading `/` is accepted and means the same (`/src/*.rs`). `*` and `?`
//!   never match `/`; `**` matches any number of directories.
//! - `.gitignore` files inside the workspace and `.git/info/exclude` are
//!   honoured unless [`InputSelection::respect_gitignore`] is false, also
//!   when the workspace is not a git repository. `.gitignore` files above the
//!   workspace and the user's global excludes file are not read, so the
//!   selection depends on the workspace alone, not on the machine.
//! - Dotfiles are selected like any other file.
//! - Never selected, whatever the patterns: anything named `.git` (a
//!   repository, or a submodule's `.git` file) at any depth and everything
//!   below it, and every directory in [`InputSelection::excluded`] (the
//!   cache root) with everything below it.
//! - Only regular files are inputs. FIFOs, sockets and devices are skipped.
//!
//! # Symlinks
//!
//! The walk never descends through a symlink to a directory: such a link is
//! skipped, and the files behind it are inputs only where a pattern matches
//! their real location. A symlink to a regular file inside the workspace is
//! an input under the link's own path, hashed by the target's content, so a
//! change to the target changes the key (this holds also when the target is
//! below `.git` or the cache root: the rule above is about paths, and the
//! link's path is neither). A dangling symlink (or a symlink
//! loop) is skipped: it has no content, and once it resolves it becomes an
//! input, which changes the key. A symlink that resolves to a file outside
//! the workspace is an error ([`InputError::SymlinkOutsideWorkspace`]),
//! because the cache could not account for content it cannot see.
//!
//! # Hashing
//!
//! Files are hashed on the `rayon` pool, several at once. A BLAKE3 hash of a
//! file of [`LARGE_FILE_BYTES`] or more memory-maps it and hashes it on
//! several threads; smaller files, and every SHA-256 hash, are read through
//! a fixed buffer. A file that changes while it is hashed gives an
//! unspecified digest (and, when mapped and truncated meanwhile, can end the
//! process with `SIGBUS`); inputs are expected to be quiet while a task's
//! key is computed.

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

use cachet_core::hash::{Digest, HashFunction, Hasher};
use cachet_core::key::InputFile;
use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use ignore::WalkBuilder;
use rayon::prelude::*;
use rustix::fs::OFlags;
use rustix::io::Errno;

/// Files at least this large are hashed with BLAKE3 over a memory map on
/// several threads; below it, threads and mapping cost more than they save.
pub const LARGE_FILE_BYTES: u64 = 128 * 1024;

/// The read buffer for files hashed by streaming.
const READ_BUFFER_BYTES: usize = 64 * 1024;

/// Which files of the workspace are a task's inputs.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct InputSelection {
    /// Glob patterns over workspace-relative paths (see the module docs).
    pub patterns: Vec<String>,
    /// Whether `.gitignore` files exclude files; true by default.
    pub respect_gitignore: bool,
    /// Directories never to select from, typically the cache root. Relative
    /// paths are taken relative to the workspace; a directory outside the
    /// workspace needs no exclusion and is ignored.
    pub excluded: Vec<PathBuf>,
}

impl InputSelection {
    /// Selects files matching `patterns`, honouring `.gitignore`, with no
    /// excluded directory besides `.git`.
    pub fn new<I, S>(patterns: I) -> InputSelection
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        InputSelection {
            patterns: patterns.into_iter().map(Into::into).collect(),
            respect_gitignore: true,
            excluded: Vec::new(),
        }
    }
}

impl Default for InputSelection {
    fn default() -> Self {
        InputSelection::new(Vec::<String>::new())
    }
}

/// One selected input file.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SelectedFile {
    /// The workspace-absolute path the key records (`/dir/file`).
    pub path: String,
    /// Where to read the content: the file itself, or, for a symlink, its
    /// resolved target (a path without symlinks, inside the workspace).
    pub source: PathBuf,
}

/// The content hash of one file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ContentHash {
    /// The digest under the requested hash function.
    pub digest: Digest,
    /// How many bytes were hashed.
    pub size: u64,
}

/// A selected file with its content hash.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HashedFile {
    /// The workspace-absolute path (`/dir/file`).
    pub path: String,
    /// The digest of its content (of the target's content, for a symlink).
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
}

impl HashedFile {
    /// This file as a key component (KEY-5).
    pub fn key_input(&self) -> InputFile<'_> {
        InputFile {
            path: &self.path,
            content_hash: self.digest,
        }
    }
}

/// Why inputs could not be selected or hashed.
#[derive(Debug)]
#[non_exhaustive]
pub enum InputError {
    /// The workspace directory could not be resolved.
    Workspace {
        /// The workspace path as given.
        path: PathBuf,
        /// What the operating system reported.
        source: io::Error,
    },
    /// A glob pattern is malformed.
    Pattern {
        /// The pattern as given.
        pattern: String,
        /// What `globset` reported.
        source: globset::Error,
    },
    /// Walking the workspace failed: a directory could not be read, or a
    /// `.gitignore` file could not be read or parsed.
    Walk {
        /// The path involved, where known.
        path: Option<PathBuf>,
        /// What the walk reported.
        source: ignore::Error,
    },
    /// A selected file's path is not UTF-8, so it cannot be keyed (KEY-5).
    NonUtf8Path {
        /// The file's path.
        path: PathBuf,
    },
    /// A selected symlink resolves to a file outside the workspace.
    SymlinkOutsideWorkspace {
        /// The link's workspace-absolute path.
        path: String,
        /// Where it resolves to.
        target: PathBuf,
    },
    /// A file to hash is not a regular file (any more).
    NotARegularFile {
        /// The file's path.
        path: PathBuf,
    },
    /// A file could not be inspected, opened or read.
    Read {
        /// The file's path.
        path: PathBuf,
        /// What the operating system reported.
        source: io::Error,
    },
}

impl core::fmt::Display for InputError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            InputError::Workspace { path, source } => write!(
                f,
                "cannot resolve the workspace directory {}: {source}; check that it exists",
                path.display()
            ),
            InputError::Pattern { pattern, source } => write!(
                f,
                "invalid input pattern {pattern:?}: {source}; fix the glob"
            ),
            // The walk's own message names the path where it knows one.
            InputError::Walk { source, .. } => write!(
                f,
                "cannot list input files: {source}; fix the permissions or the ignore file, or turn off .gitignore handling"
            ),
            InputError::NonUtf8Path { path } => write!(
                f,
                "input file {} has a name that is not UTF-8 and cannot be keyed; rename it or exclude it from the patterns",
                path.display()
            ),
            InputError::SymlinkOutsideWorkspace { path, target } => write!(
                f,
                "input {path} is a symlink to {}, outside the workspace, whose content the cache cannot track; copy the file into the workspace or exclude the link from the patterns",
                target.display()
            ),
            InputError::NotARegularFile { path } => write!(
                f,
                "{} is not a regular file (it may have been replaced while hashing); rerun once the workspace is quiet",
                path.display()
            ),
            InputError::Read { path, source } => write!(
                f,
                "cannot read {}: {source}; check that it exists and is readable",
                path.display()
            ),
        }
    }
}

impl core::error::Error for InputError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            InputError::Workspace { source, .. } | InputError::Read { source, .. } => Some(source),
            InputError::Pattern { source, .. } => Some(source),
            InputError::Walk { source, .. } => Some(source),
            InputError::NonUtf8Path { .. }
            | InputError::SymlinkOutsideWorkspace { .. }
            | InputError::NotARegularFile { .. } => None,
        }
    }
}

/// Selects the input files of `workspace` (see the module docs for the
/// rules), sorted by path bytes as KEY-5 orders them.
pub fn select_inputs(
    workspace: &Path,
    selection: &InputSelection,
) -> Result<Vec<SelectedFile>, InputError> {
    let globs = build_globs(&selection.patterns)?;
    if selection.patterns.is_empty() {
        return Ok(Vec::new());
    }
    // Canonical, so that relative paths come out without `.`/`..` and a
    // symlink target's canonical path can be compared against it.
    let root = workspace
        .canonicalize()
        .map_err(|source| InputError::Workspace {
            path: workspace.to_path_buf(),
            source,
        })?;
    let excluded = excluded_relative(&root, &selection.excluded);

    let respect = selection.respect_gitignore;
    let mut builder = WalkBuilder::new(&root);
    builder
        .standard_filters(false)
        .hidden(false)
        .parents(false)
        .ignore(false)
        .git_global(false)
        .git_ignore(respect)
        .git_exclude(respect)
        .require_git(false)
        .follow_links(false);
    let filter_root = root.clone();
    builder.filter_entry(move |entry| {
        if entry.depth() == 0 {
            return true;
        }
        if entry.file_name() == OsStr::new(".git") {
            return false;
        }
        match entry.path().strip_prefix(&filter_root) {
            Ok(relative) => !excluded.iter().any(|ex| relative.starts_with(ex)),
            Err(_) => true,
        }
    });

    let mut selected = Vec::new();
    for entry in builder.build() {
        let entry = entry.map_err(walk_error)?;
        // A directory whose ignore file could not be read or parsed comes
        // with the error attached; selecting around a half-read ignore file
        // would silently differ from what the user wrote.
        if let Some(error) = entry.error() {
            return Err(attached_walk_error(error, entry.path()));
        }
        if entry.depth() == 0 {
            continue;
        }
        let Some(file_type) = entry.file_type() else {
            continue;
        };
        if file_type.is_dir() {
            continue;
        }
        let Ok(relative) = entry.path().strip_prefix(&root) else {
            continue;
        };
        if !globs.is_match(relative) {
            continue;
        }
        let Some(relative_str) = relative.to_str() else {
            return Err(InputError::NonUtf8Path {
                path: entry.path().to_path_buf(),
            });
        };
        let path = format!("/{relative_str}");
        if file_type.is_file() {
            selected.push(SelectedFile {
                path,
                source: entry.path().to_path_buf(),
            });
        } else if file_type.is_symlink()
            && let Some(target) = resolve_file_symlink(&root, entry.path(), &path)?
        {
            selected.push(SelectedFile {
                path,
                source: target,
            });
        }
    }
    selected.sort();
    Ok(selected)
}

fn build_globs(patterns: &[String]) -> Result<GlobSet, InputError> {
    let mut builder = GlobSetBuilder::new();
    for pattern in patterns {
        let text = pattern.strip_prefix('/').unwrap_or(pattern);
        let glob = GlobBuilder::new(text)
            .literal_separator(true)
            .backslash_escape(true)
            .build()
            .map_err(|source| InputError::Pattern {
                pattern: pattern.clone(),
                source,
            })?;
        builder.add(glob);
    }
    builder.build().map_err(|source| InputError::Pattern {
        pattern: patterns.join(" "),
        source,
    })
}

/// The excluded directories as paths relative to `root`, in both their
/// given and their resolved spelling; those outside `root` are dropped.
fn excluded_relative(root: &Path, excluded: &[PathBuf]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for path in excluded {
        let absolute = if path.is_absolute() {
            path.clone()
        } else {
            root.join(path)
        };
        let lexical = normalize_lexically(&absolute);
        for candidate in [Some(lexical), absolute.canonicalize().ok()]
            .into_iter()
            .flatten()
        {
            if let Ok(relative) = candidate.strip_prefix(root)
                && !relative.as_os_str().is_empty()
                && !out.iter().any(|known: &PathBuf| known == relative)
            {
                out.push(relative.to_path_buf());
            }
        }
    }
    out
}

/// Drops `.` and resolves `..` textually, for a path that may not exist yet.
fn normalize_lexically(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

fn walk_error(error: ignore::Error) -> InputError {
    let path = walk_error_path(&error).map(Path::to_path_buf);
    InputError::Walk {
        path,
        source: error,
    }
}

/// `ignore::Error` is not `Clone`; an attached error is rebuilt from its
/// message (which names the ignore file), keeping the path for callers.
fn attached_walk_error(error: &ignore::Error, dir: &Path) -> InputError {
    InputError::Walk {
        path: Some(walk_error_path(error).unwrap_or(dir).to_path_buf()),
        source: ignore::Error::Io(io::Error::other(error.to_string())),
    }
}

fn walk_error_path(error: &ignore::Error) -> Option<&Path> {
    match error {
        ignore::Error::WithPath { path, .. } => Some(path),
        ignore::Error::WithLineNumber { err, .. } | ignore::Error::WithDepth { err, .. } => {
            walk_error_path(err)
        }
        ignore::Error::Partial(errors) => errors.iter().find_map(walk_error_path),
        ignore::Error::Loop { child, .. } => Some(child),
        _ => None,
    }
}

/// Where a matched symlink's content comes from: `Some(target)` for a
/// regular file inside the workspace, `None` for a link to skip.
fn resolve_file_symlink(
    root: &Path,
    link: &Path,
    key_path: &str,
) -> Result<Option<PathBuf>, InputError> {
    let target = match link.canonicalize() {
        Ok(target) => target,
        Err(error)
            if error.kind() == io::ErrorKind::NotFound
                || Errno::from_io_error(&error) == Some(Errno::LOOP) =>
        {
            return Ok(None);
        }
        Err(source) => {
            return Err(InputError::Read {
                path: link.to_path_buf(),
                source,
            });
        }
    };
    let metadata = std::fs::metadata(&target).map_err(|source| InputError::Read {
        path: target.clone(),
        source,
    })?;
    if !metadata.is_file() {
        return Ok(None);
    }
    if !target.starts_with(root) {
        return Err(InputError::SymlinkOutsideWorkspace {
            path: key_path.to_owned(),
            target,
        });
    }
    Ok(Some(target))
}

/// Hashes every file's [`SelectedFile::source`] in parallel; the result is
/// in the order of `files`.
pub fn hash_inputs(
    files: &[SelectedFile],
    function: HashFunction,
) -> Result<Vec<HashedFile>, InputError> {
    files
        .par_iter()
        .map(|file| {
            hash_file(&file.source, function).map(|content| HashedFile {
                path: file.path.clone(),
                digest: content.digest,
                size: content.size,
            })
        })
        .collect()
}

/// Hashes the content of the regular file at `path` (a symlink in the last
/// component is refused), for inputs, outputs or captured streams alike.
pub fn hash_file(path: &Path, function: HashFunction) -> Result<ContentHash, InputError> {
    hash_file_with_metadata(path, function).map(|(content, _)| content)
}

/// [`hash_file`], with the metadata of the file it opened, taken from the
/// open file before reading it (what the file-hash memo records, MEMO-3).
pub fn hash_file_with_metadata(
    path: &Path,
    function: HashFunction,
) -> Result<(ContentHash, std::fs::Metadata), InputError> {
    let read_error = |source| InputError::Read {
        path: path.to_path_buf(),
        source,
    };
    let flags = OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY;
    // open(2) takes the flags as an int; these bits all fit.
    let flags = i32::try_from(flags.bits()).unwrap_or(0);
    let mut file = match File::options().read(true).custom_flags(flags).open(path) {
        Ok(file) => file,
        Err(error) if Errno::from_io_error(&error) == Some(Errno::LOOP) => {
            return Err(InputError::NotARegularFile {
                path: path.to_path_buf(),
            });
        }
        Err(error) => return Err(read_error(error)),
    };
    let metadata = file.metadata().map_err(read_error)?;
    if !metadata.is_file() {
        return Err(InputError::NotARegularFile {
            path: path.to_path_buf(),
        });
    }
    if function == HashFunction::Blake3 && metadata.len() >= LARGE_FILE_BYTES {
        let mut hasher = blake3::Hasher::new();
        hasher.update_mmap_rayon(path).map_err(read_error)?;
        let content = ContentHash {
            digest: Digest(*hasher.finalize().as_bytes()),
            size: hasher.count(),
        };
        return Ok((content, metadata));
    }
    let mut hasher = Hasher::new(function);
    let size = stream_into(&mut file, &mut hasher).map_err(read_error)?;
    let content = ContentHash {
        digest: hasher.finalize(),
        size,
    };
    Ok((content, metadata))
}

/// Hashes everything `reader` yields, for streams that are not files.
pub fn hash_reader(reader: &mut dyn io::Read, function: HashFunction) -> io::Result<ContentHash> {
    let mut hasher = Hasher::new(function);
    let size = stream_into(reader, &mut hasher)?;
    Ok(ContentHash {
        digest: hasher.finalize(),
        size,
    })
}

fn stream_into(reader: &mut dyn io::Read, hasher: &mut Hasher) -> io::Result<u64> {
    let mut buffer = vec![0u8; READ_BUFFER_BYTES];
    let mut size = 0u64;
    loop {
        let n = match reader.read(&mut buffer) {
            Ok(0) => return Ok(size),
            Ok(n) => n,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        };
        let chunk = buffer.get(..n).unwrap_or_default();
        hasher.update(chunk);
        size = size.saturating_add(u64::try_from(n).unwrap_or(u64::MAX));
    }
}
