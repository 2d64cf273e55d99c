//! The I/O boundary: the [`Filesystem`] trait, the handles it hands out and
//! the core-owned error kinds.
//!
//! This is everything the core asks of a host's files and directories.
//! Each method is one system call's worth of work on a path relative to one
//! of two root capabilities ([`Root::Workspace`], [`Root::Cache`]), or on a
//! [`Directory`] the host opened; the cache directory may live outside the
//! workspace. A `cap_std::fs::Dir` pair and a pair of WASI preopened
//! directory descriptors each implement it directly, with no logic of their
//! own: every decision (what to check, in which order, what to sync, when to
//! rename) is made by the operations in `crate::cache`. Running the core's
//! independent work on several threads is not file I/O and is not here; it
//! is [`crate::tasks::Tasks`], which a host may implement beside this trait.
//!
//! # The trait, by group
//!
//! - **Files**: [`Filesystem::open_file`] (a regular file, never through a
//!   symlink in the last component, with [`FileReader::metadata`] of what
//!   was opened), [`Filesystem::create_new_file`] (never over anything that
//!   exists, symlinks included; [`FileWriter::set_mode`] through the handle)
//!   and, optionally, [`Filesystem::copy_file`] (a copy inside the host).
//!   Restore copies every output into scratch and renames it onto its
//!   target, mode already set, so a target is never written in place (OP-3).
//! - **Directories**: [`Filesystem::create_dir`], [`Filesystem::read_dir`]
//!   and [`Filesystem::open_dir`], whose [`Directory`] handle looks up and
//!   renames single [`Name`]s without resolving a path again: what makes a
//!   lookup of thousands of blobs cost one `stat` each (OP-1) and a restore
//!   one `rename` per output (OP-3).
//! - **Metadata**: [`Filesystem::metadata`] and [`Directory::metadata`],
//!   never following a symlink in the last component, so that a symlinked
//!   blob or stream is a miss (OP-1) and a symlinked ancestor of a restore
//!   target is refused (SAFE-2); [`Filesystem::set_modified`] refreshes an
//!   entry's "last used" time (OP-5).
//! - **Renames and removal**: one [`Filesystem::rename`], of one name in an
//!   open directory onto one name in another, with or without replacing
//!   ([`Replace`]). Entries appear only by a rename of a complete scratch
//!   directory (OP-2) and disappear only by a rename aside before anything
//!   in them is removed (OP-2, OP-5, OP-8); [`Replace::Never`] is how equal
//!   blobs are shared (DISK-4) and how a store never replaces a published
//!   entry. [`Filesystem::remove_file`] and [`Filesystem::remove_dir`] clear
//!   what was renamed aside and scratch left by crashes (SAFE-3).
//! - **Durability**: [`FileWriter::sync`], [`Filesystem::sync_dir`] and,
//!   optionally, [`Filesystem::sync_filesystem`]: everything an entry holds
//!   is durable before the rename that publishes it (OP-2, SAFE-3).
//!
//! # Optional calls
//!
//! Three things a host may lack; each returns [`ErrorKind::Unsupported`]
//! without doing anything, and the core then takes a slower path of its
//! own with the same guarantees:
//!
//! - [`Replace::Never`] in [`Filesystem::rename`]: WASI preview 1 has no
//!   `renameat2(RENAME_NOREPLACE)`, nor do some Linux filesystems. A store
//!   then names a blob after a `stat` in its private scratch directory, and
//!   publishes with a plain rename, which never replaces a non-empty
//!   directory (OP-2).
//! - [`Filesystem::sync_filesystem`] (with
//!   [`Filesystem::supports_sync_filesystem`]): WASI preview 1 has no
//!   `syncfs`. The core then syncs each file and directory as it finishes
//!   it: the same durability, one call per file.
//! - [`Filesystem::copy_file`]: WASI preview 1 has no in-kernel copy. The
//!   core then streams the bytes through its own buffer, hashing them on
//!   the way.
//!
//! # Paths and names
//!
//! Paths handed to a `Filesystem` are relative (`ab/abcd…/manifest.json`),
//! use `/` as separator and never contain `.` or `..` segments; the empty
//! path names the root itself. Implementations must not let a path resolve
//! outside its root (SAFE-2), and must not follow a symlink in the last
//! component where a method says so. A [`Name`] is one path component,
//! checked once when it is made, so a [`Directory`] call can never be
//! steered through a path.
//!
//! # Errors
//!
//! Errors carry an [`ErrorKind`] owned by the core, so the core never sees a
//! platform type; adapters map `std::io::Error` (once, here, under the `std`
//! feature) or a WASI errno onto it and keep the raw code for messages.

use core::ops::ControlFlow;

use crate::hash::{Digest, HashFunction};

/// Which root capability a path is relative to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Root {
    /// The workspace: where inputs are read and outputs are restored.
    Workspace,
    /// The cache directory (SPEC §4).
    Cache,
}

impl core::fmt::Display for Root {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Root::Workspace => "workspace",
            Root::Cache => "cache",
        })
    }
}

/// What kind of failure a filesystem call met.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The path, or one of its parents, does not exist.
    NotFound,
    /// The path exists and the call needed it not to.
    AlreadyExists,
    /// A parent component is not a directory, or a directory was expected.
    NotADirectory,
    /// A file was expected and the path is a directory.
    IsADirectory,
    /// A directory to remove or replace is not empty.
    DirectoryNotEmpty,
    /// The host refused the access.
    PermissionDenied,
    /// The filesystem is mounted read-only, or the capability is read-only.
    ReadOnly,
    /// The path is a symlink where the call refuses to follow one.
    SymlinkRefused,
    /// A rename across filesystems.
    CrossesDevices,
    /// The disk or quota is full.
    StorageFull,
    /// The host does not offer this call.
    Unsupported,
    /// The path or an argument is malformed for this host.
    InvalidInput,
    /// Data ended early, or a write made no progress.
    UnexpectedEof,
    /// Any other failure.
    Other,
}

/// A failed filesystem call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Error {
    /// What kind of failure.
    pub kind: ErrorKind,
    /// The host's raw error code (errno), where there is one.
    pub os_code: Option<i32>,
}

impl Error {
    /// An error of `kind` with no raw code.
    pub const fn new(kind: ErrorKind) -> Error {
        Error {
            kind,
            os_code: None,
        }
    }
}

impl From<ErrorKind> for Error {
    fn from(kind: ErrorKind) -> Error {
        Error::new(kind)
    }
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let text = match self.kind {
            ErrorKind::NotFound => "not found",
            ErrorKind::AlreadyExists => "already exists",
            ErrorKind::NotADirectory => "not a directory",
            ErrorKind::IsADirectory => "is a directory",
            ErrorKind::DirectoryNotEmpty => "directory not empty",
            ErrorKind::PermissionDenied => "permission denied",
            ErrorKind::ReadOnly => "read-only filesystem",
            ErrorKind::SymlinkRefused => "is a symlink, which is not followed",
            ErrorKind::CrossesDevices => "crosses filesystems",
            ErrorKind::StorageFull => "no space left",
            ErrorKind::Unsupported => "not supported by this host",
            ErrorKind::InvalidInput => "invalid argument",
            ErrorKind::UnexpectedEof => "unexpected end of data",
            ErrorKind::Other => "I/O error",
        };
        f.write_str(text)?;
        if let Some(code) = self.os_code {
            write!(f, " (os error {code})")?;
        }
        Ok(())
    }
}

#[cfg(feature = "std")]
impl core::error::Error for Error {}

/// The one mapping of `std::io::ErrorKind` onto the core's kinds; kinds the
/// core has no word for are [`ErrorKind::Other`].
#[cfg(feature = "std")]
impl From<std::io::ErrorKind> for ErrorKind {
    fn from(kind: std::io::ErrorKind) -> ErrorKind {
        use std::io::ErrorKind as Io;
        match kind {
            Io::NotFound => ErrorKind::NotFound,
            Io::AlreadyExists => ErrorKind::AlreadyExists,
            Io::NotADirectory => ErrorKind::NotADirectory,
            Io::IsADirectory => ErrorKind::IsADirectory,
            Io::DirectoryNotEmpty => ErrorKind::DirectoryNotEmpty,
            Io::PermissionDenied => ErrorKind::PermissionDenied,
            Io::ReadOnlyFilesystem => ErrorKind::ReadOnly,
            Io::CrossesDevices => ErrorKind::CrossesDevices,
            Io::StorageFull | Io::QuotaExceeded => ErrorKind::StorageFull,
            Io::Unsupported => ErrorKind::Unsupported,
            Io::InvalidInput | Io::InvalidFilename => ErrorKind::InvalidInput,
            Io::UnexpectedEof | Io::WriteZero => ErrorKind::UnexpectedEof,
            _ => ErrorKind::Other,
        }
    }
}

/// A `std::io::Error` as the core's error: its kind mapped, its raw OS code
/// kept for messages. This is the only such mapping: the std binding's
/// filesystem, its streams and the command line all go through it.
///
/// Two codes are decided by number, because std gives them no stable kind:
/// `ELOOP` (`O_NOFOLLOW` met a symlink, or a symlink loop) is
/// [`ErrorKind::SymlinkRefused`], and `EILSEQ` (a name the filesystem
/// cannot store) is [`ErrorKind::InvalidInput`], as in the WASI binding's
/// errno mapping. An error without a code (one `cap-std` or a caller made
/// up, such as `cap-std`'s refusal of a path that leads outside its root)
/// is mapped by its kind alone.
#[cfg(feature = "std")]
impl From<&std::io::Error> for Error {
    fn from(error: &std::io::Error) -> Error {
        let os_code = error.raw_os_error();
        #[cfg(any(unix, target_os = "wasi"))]
        let kind = match os_code {
            Some(libc::ELOOP) => ErrorKind::SymlinkRefused,
            Some(libc::EILSEQ) => ErrorKind::InvalidInput,
            _ => ErrorKind::from(error.kind()),
        };
        #[cfg(not(any(unix, target_os = "wasi")))]
        let kind = ErrorKind::from(error.kind());
        Error { kind, os_code }
    }
}

/// See the impl for `&std::io::Error`.
#[cfg(feature = "std")]
impl From<std::io::Error> for Error {
    fn from(error: std::io::Error) -> Error {
        Error::from(&error)
    }
}

/// What a directory entry is, as seen without following symlinks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FileKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link (never followed by the core).
    Symlink,
    /// Anything else: device, socket, FIFO.
    Other,
}

impl FileKind {
    /// The kind's name in messages: "regular file", "directory",
    /// "symlink" or "special file".
    pub const fn name(self) -> &'static str {
        match self {
            FileKind::File => "regular file",
            FileKind::Dir => "directory",
            FileKind::Symlink => "symlink",
            FileKind::Other => "special file",
        }
    }
}

/// A point in time, as seconds and nanoseconds since the Unix epoch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp {
    /// Whole seconds since 1970-01-01T00:00:00Z.
    pub seconds: u64,
    /// Nanoseconds past `seconds`, below 1,000,000,000.
    pub nanos: u32,
}

impl Timestamp {
    /// A timestamp at a whole second.
    pub const fn from_seconds(seconds: u64) -> Timestamp {
        Timestamp { seconds, nanos: 0 }
    }
}

/// What [`Filesystem::metadata`] reports, without following a symlink in the
/// last component.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Metadata {
    /// The kind of entry.
    pub kind: FileKind,
    /// Size in bytes (meaningful for files).
    pub size: u64,
    /// Permission bits (`0o7777` at most).
    pub mode: u32,
    /// Last modification time.
    pub modified: Timestamp,
}

/// A readable byte stream.
pub trait Read {
    /// Reads up to `buf.len()` bytes; `Ok(0)` means end of data.
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Error>;
}

/// A writable byte stream.
pub trait Write {
    /// Writes some of `buf`, returning how much.
    fn write(&mut self, buf: &[u8]) -> Result<usize, Error>;

    /// Writes all of `buf`.
    fn write_all(&mut self, mut buf: &[u8]) -> Result<(), Error> {
        while !buf.is_empty() {
            match self.write(buf)? {
                0 => return Err(Error::new(ErrorKind::UnexpectedEof)),
                n => buf = buf.get(n..).unwrap_or_default(),
            }
        }
        Ok(())
    }
}

impl<R: Read + ?Sized> Read for &mut R {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
        (**self).read(buf)
    }
}

impl<W: Write + ?Sized> Write for &mut W {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Error> {
        (**self).write(buf)
    }
}

impl Read for &[u8] {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
        let n = buf.len().min(self.len());
        let (head, tail) = self.split_at(n);
        buf[..n].copy_from_slice(head);
        *self = tail;
        Ok(n)
    }
}

#[cfg(feature = "alloc")]
impl Write for alloc::vec::Vec<u8> {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Error> {
        self.extend_from_slice(buf);
        Ok(buf.len())
    }
}

/// One path component: not empty, not `.` or `..`, without `/` or NUL.
///
/// [`Directory`] calls take names, not paths, so nothing they do can walk
/// out of the directory or through a symlink (SAFE-2); the check is made
/// once, here, instead of in every binding.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Name<'a>(&'a str);

impl<'a> Name<'a> {
    /// `name` as a [`Name`], or [`ErrorKind::InvalidInput`] if it is not a
    /// single path component.
    pub const fn new(name: &'a str) -> Result<Name<'a>, Error> {
        let bytes = name.as_bytes();
        if let [] | [b'.'] | [b'.', b'.'] = bytes {
            return Err(Error::new(ErrorKind::InvalidInput));
        }
        let mut at = 0;
        while at < bytes.len() {
            if bytes[at] == b'/' || bytes[at] == 0 {
                return Err(Error::new(ErrorKind::InvalidInput));
            }
            at += 1;
        }
        Ok(Name(name))
    }

    /// The name as a string.
    pub const fn as_str(self) -> &'a str {
        self.0
    }
}

impl core::ops::Deref for Name<'_> {
    type Target = str;

    fn deref(&self) -> &str {
        self.0
    }
}

impl core::fmt::Debug for Name<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        core::fmt::Debug::fmt(self.0, f)
    }
}

impl core::fmt::Display for Name<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.0)
    }
}

/// Whether [`Filesystem::rename`] may replace what is at the target name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Replace {
    /// POSIX `rename`: replaces a file or symlink, and a directory only
    /// with a directory and only when it is empty.
    Allowed,
    /// `renameat2(RENAME_NOREPLACE)`: fails with
    /// [`ErrorKind::AlreadyExists`] if anything is at the target name. A
    /// host without it returns [`ErrorKind::Unsupported`] having done
    /// nothing (see the module docs).
    Never,
}

/// A directory opened by [`Filesystem::open_dir`].
///
/// It names the directory itself, not a path: looking up many entries of one
/// directory costs one path resolution in total instead of one each, which
/// is what makes a lookup of an entry with thousands of blobs cheap (OP-1).
/// If the directory is renamed after it was opened, the handle follows it.
pub trait Directory {
    /// Like [`Filesystem::metadata`] for the entry `name` of this directory,
    /// without following a symlink.
    fn metadata(&self, name: Name<'_>) -> Result<Metadata, Error>;
}

/// A regular file opened by [`Filesystem::open_file`].
pub trait FileReader: Read {
    /// The metadata of the file this reader reads, as of when it was opened
    /// (an `fstat` of the open file, which the host may have made while
    /// opening it). It describes exactly the file opened, whatever the path
    /// names by now, and costs no second path resolution: store records an
    /// output's mode and size hint from it (OP-2).
    fn metadata(&self) -> Result<Metadata, Error>;
}

/// A file opened for writing by [`Filesystem::create_new_file`].
pub trait FileWriter: Write {
    /// Makes the file's data and metadata durable (`fsync`).
    fn sync(&mut self) -> Result<(), Error>;

    /// Sets the permission bits of this file (`fchmod`), at most `0o7777`
    /// (else [`ErrorKind::InvalidInput`]). Restore sets each output's
    /// recorded mode this way before the file is synced and renamed onto
    /// its target, so that a target appears with its final mode at once
    /// (OP-3, SAFE-3).
    fn set_mode(&mut self, mode: u32) -> Result<(), Error>;
}

/// The file and directory I/O the core needs from a host (see the module
/// docs for the groups and the three optional calls).
pub trait Filesystem {
    /// A regular file opened for reading.
    type Reader: FileReader;
    /// A new file opened for writing.
    type Writer: FileWriter;
    /// A directory opened for looking up and renaming its entries.
    type Directory: Directory;

    // Files: opening, creating, copying.

    /// Opens a regular file for reading. Refuses to follow a symlink in the
    /// last component ([`ErrorKind::SymlinkRefused`]), a directory
    /// ([`ErrorKind::IsADirectory`]) and anything else that is not a
    /// regular file ([`ErrorKind::InvalidInput`]: reading a FIFO or a device
    /// could block or never end, SAFE-1).
    fn open_file(&self, root: Root, path: &str) -> Result<Self::Reader, Error>;

    /// Creates a new regular file for writing; fails with
    /// [`ErrorKind::AlreadyExists`] if anything exists at `path`, symlinks
    /// included.
    fn create_new_file(&self, root: Root, path: &str) -> Result<Self::Writer, Error>;

    /// Optional. Copies all of `from`, just opened, into `to`, just created
    /// and empty, the fastest way the host has (a reflink, an in-kernel copy
    /// such as `copy_file_range`, hashing on another thread while it
    /// copies), and returns the digest under `function` and the length of
    /// what `to` now holds. The digest must be computed from `to`, read
    /// back, never from `from`: it is what names a stored blob (DISK-4) and
    /// what verifies a restored one (OP-3). Nothing is synced. Hosts without
    /// a faster way return [`ErrorKind::Unsupported`] having copied nothing
    /// (the default), and the core streams the bytes through its own
    /// buffer, hashing them on the way.
    fn copy_file(
        &self,
        from: &mut Self::Reader,
        to: &mut Self::Writer,
        function: HashFunction,
    ) -> Result<(Digest, u64), Error> {
        let _ = (from, to, function);
        Err(Error::new(ErrorKind::Unsupported))
    }

    // Directories.

    /// Creates one directory; its parent must exist. Fails with
    /// [`ErrorKind::AlreadyExists`] if anything exists at `path`.
    fn create_dir(&self, root: Root, path: &str) -> Result<(), Error>;

    /// Opens the directory at `path` for [`Directory::metadata`] and
    /// [`Filesystem::rename`]. Refuses a symlink in the last component
    /// ([`ErrorKind::SymlinkRefused`]) and anything that is not a directory
    /// ([`ErrorKind::NotADirectory`]).
    fn open_dir(&self, root: Root, path: &str) -> Result<Self::Directory, Error>;

    /// Calls `visit` with the name and kind of each entry of the directory at
    /// `path` (not `.` or `..`), in no particular order, until it returns
    /// [`ControlFlow::Break`]. `visit` may remove the entry it was handed.
    fn read_dir(
        &self,
        root: Root,
        path: &str,
        visit: &mut dyn FnMut(&str, FileKind) -> ControlFlow<()>,
    ) -> Result<(), Error>;

    // Metadata.

    /// Reports kind, size, mode and modification time, without following a
    /// symlink in the last component.
    fn metadata(&self, root: Root, path: &str) -> Result<Metadata, Error>;

    /// Sets the modification time of a file or directory, never of what a
    /// symlink points to.
    fn set_modified(&self, root: Root, path: &str, modified: Timestamp) -> Result<(), Error>;

    // Renames and removal.

    /// Renames the entry `from_name` of the directory `from` to `to_name` in
    /// `to`, atomically, as [`Replace`] says. A symlink is moved, never
    /// followed. Works between the two roots where they share a filesystem;
    /// otherwise fails with [`ErrorKind::CrossesDevices`]. Both sides are
    /// single names in open directories, so no path is resolved again:
    /// what lets a restore put thousands of files in place without opening
    /// their parent directories once per file.
    fn rename(
        &self,
        from: &Self::Directory,
        from_name: Name<'_>,
        to: &Self::Directory,
        to_name: Name<'_>,
        replace: Replace,
    ) -> Result<(), Error>;

    /// Removes a file or symlink (never what a symlink points to).
    fn remove_file(&self, root: Root, path: &str) -> Result<(), Error>;

    /// Removes an empty directory.
    fn remove_dir(&self, root: Root, path: &str) -> Result<(), Error>;

    // Durability.

    /// Makes the directory's entries durable (`fsync` on the directory).
    fn sync_dir(&self, root: Root, path: &str) -> Result<(), Error>;

    /// Optional, with [`Filesystem::sync_filesystem`]: whether that call is
    /// available (the default is `false`). The core asks before it writes,
    /// because the answer decides whether it syncs each file as it goes or
    /// everything at once at the end.
    fn supports_sync_filesystem(&self) -> bool {
        false
    }

    /// Optional. Makes everything written so far on the filesystem that
    /// holds `root` durable in one call: file data, metadata and directory
    /// entries (Linux `syncfs`). One call replaces the thousands of `fsync`s
    /// a store of many small files would otherwise need. Hosts without such
    /// a call return [`ErrorKind::Unsupported`], the default.
    fn sync_filesystem(&self, root: Root) -> Result<(), Error> {
        let _ = root;
        Err(Error::new(ErrorKind::Unsupported))
    }
}

/// The parent directory's path and the last component of `path`, a path of
/// at least one component in the form a [`Filesystem`] takes (`ab/cd` is
/// `ab` and `cd`, `ab` is the root's `""` and `ab`).
/// [`ErrorKind::InvalidInput`] for the empty path (the root has no parent),
/// a leading `/` or a last component that is not a [`Name`].
pub fn parent_and_name(path: &str) -> Result<(&str, Name<'_>), Error> {
    let (parent, name) = match path.rsplit_once('/') {
        Some(("", _)) => return Err(Error::new(ErrorKind::InvalidInput)),
        Some(split) => split,
        None => ("", path),
    };
    Ok((parent, Name::new(name)?))
}

/// Renames the entry at `from` onto `to` (each a root and a path of at
/// least one component) through their parent directories: opens them (one
/// directory when both share it) and makes the one [`Filesystem::rename`]
/// of one name. For callers that hold paths rather than open directories:
/// the core's publishing of a store and moving an entry aside (OP-2, OP-5),
/// both within one shard.
pub fn rename_path<F: Filesystem + ?Sized>(
    fs: &F,
    (from_root, from): (Root, &str),
    (to_root, to): (Root, &str),
    replace: Replace,
) -> Result<(), Error> {
    let (from_parent, from_name) = parent_and_name(from)?;
    let (to_parent, to_name) = parent_and_name(to)?;
    let from_dir = fs.open_dir(from_root, from_parent)?;
    if (from_root, from_parent) == (to_root, to_parent) {
        return fs.rename(&from_dir, from_name, &from_dir, to_name, replace);
    }
    let to_dir = fs.open_dir(to_root, to_parent)?;
    fs.rename(&from_dir, from_name, &to_dir, to_name, replace)
}

/// Reads the file at `path` whole, or `None` if it holds more than `cap`
/// bytes. Memory grows with what is actually read, never beyond `cap`, so a
/// file that grows while it is read cannot make this allocate without bound
/// (SAFE-1, MAN-4). `expected_len` (from a `stat`) sizes the first
/// allocation, up to `cap`.
#[cfg(feature = "alloc")]
pub fn read_capped<F: Filesystem + ?Sized>(
    fs: &F,
    root: Root,
    path: &str,
    cap: u64,
    expected_len: u64,
) -> Result<Option<alloc::vec::Vec<u8>>, Error> {
    let cap = usize::try_from(cap).unwrap_or(usize::MAX);
    let mut reader = fs.open_file(root, path)?;
    let expected = usize::try_from(expected_len).unwrap_or(usize::MAX).min(cap);
    let mut bytes = alloc::vec::Vec::with_capacity(expected);
    // A file of the expected length is read straight into `bytes`; the
    // end (or whatever the file grew by since the stat) is found through a
    // small buffer, so `bytes` only grows for a file longer than expected.
    let mut chunk = [0u8; 8192];
    loop {
        let len = bytes.len();
        let n = if len < bytes.capacity() {
            bytes.resize(bytes.capacity(), 0);
            let read = reader.read(bytes.get_mut(len..).unwrap_or_default());
            bytes.truncate(len + read.as_ref().map_or(0, |n| *n));
            if bytes.len() > cap {
                return Ok(None);
            }
            read?
        } else {
            let n = reader.read(&mut chunk)?;
            if bytes.len().saturating_add(n) > cap {
                return Ok(None);
            }
            bytes.extend_from_slice(chunk.get(..n).unwrap_or_default());
            n
        };
        if n == 0 {
            return Ok(Some(bytes));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_2_a_name_is_exactly_one_path_component() {
        for name in ["a", ".partial", "..a", "a.", "0", "日本.txt", "a b", "\\"] {
            assert_eq!(Name::new(name).map(Name::as_str), Ok(name), "{name:?}");
        }
        for bad in ["", ".", "..", "/", "a/b", "/a", "a/", "a\0", "\0"] {
            assert_eq!(
                Name::new(bad).map(Name::as_str),
                Err(Error::new(ErrorKind::InvalidInput)),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn parent_and_name_splits_off_the_last_component() {
        let split = |path| parent_and_name(path).map(|(parent, name)| (parent, name.as_str()));
        assert_eq!(split("ab"), Ok(("", "ab")));
        assert_eq!(split("ab/cd"), Ok(("ab", "cd")));
        assert_eq!(split("ab/cd/.tmp-1"), Ok(("ab/cd", ".tmp-1")));
        for bad in ["", "/ab", "ab/", "ab/..", "."] {
            assert_eq!(
                split(bad),
                Err(Error::new(ErrorKind::InvalidInput)),
                "{bad:?}"
            );
        }
    }
}
