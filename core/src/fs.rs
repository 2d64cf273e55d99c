//! The I/O boundary: the [`Filesystem`] trait and the core-owned error kinds.
//!
//! This trait is everything the core asks of a host. Each method is one
//! system call's worth of work on a path relative to one of two root
//! capabilities ([`Root::Workspace`], [`Root::Cache`]); the cache root may
//! live outside the workspace. A `cap_std::fs::Dir` pair and a pair of WASI
//! preopened directory fds each implement it directly, with no logic of their
//! own: every decision (what to check, in which order, what to sync) is made
//! by the operations in [`crate::cache`]. The one method that is not a
//! system call, [`Filesystem::run_tasks`], lets a host with threads run
//! the core's own independent work (staging a restore, checking a lookup's
//! blobs) on several of them; the core has no threads of its own.
//!
//! Paths handed to a `Filesystem` are relative (`ab/abcd…/manifest.json`),
//! use `/` as separator and never contain `.` or `..` segments; the empty
//! path names the root itself. Implementations must not let a path resolve
//! outside its root (SAFE-2), and must not follow a symlink in the last
//! component where a method says so.
//!
//! Errors carry an [`ErrorKind`] owned by the core, so the core never sees a
//! platform type; adapters map `std::io::Error` or a WASI errno onto it and
//! keep the raw code for messages.

use core::ops::ControlFlow;

use crate::hash::{Digest, HashFunction};

/// Which root capability a path is relative to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Root {
    /// The workspace: where inputs are read and outputs are restored.
    Workspace,
    /// The cache root (SPEC §4).
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

/// A directory opened by [`Filesystem::open_dir`].
///
/// It names the directory itself, not a path: looking up many entries of one
/// directory costs one path resolution in total instead of one each, which
/// is what makes a lookup of an entry with thousands of blobs cheap (OP-1).
/// If the directory is renamed after it was opened, the handle follows it.
pub trait Directory {
    /// Like [`Filesystem::metadata`] for the entry `name` of this directory,
    /// without following a symlink. `name` is one path component: a name
    /// that is empty, `.`, `..` or contains `/` is
    /// [`ErrorKind::InvalidInput`].
    fn metadata(&self, name: &str) -> Result<Metadata, Error>;
}

/// Whether `name` is a single path component a [`Directory`] may look up.
pub fn is_single_component(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains('/') && !name.contains('\0')
}

/// A file opened for writing by [`Filesystem::create_new_file`].
pub trait FileWriter: Write {
    /// Makes the file's data and metadata durable (`fsync`).
    fn sync(&mut self) -> Result<(), Error>;

    /// Sets the permission bits of this file through the open handle
    /// (`fchmod`), which saves resolving its path again. Hosts that can
    /// only set modes by path return [`ErrorKind::Unsupported`] (the
    /// default), and the core calls [`Filesystem::set_mode`] instead.
    fn set_mode(&mut self, mode: u32) -> Result<(), Error> {
        let _ = mode;
        Err(Error::new(ErrorKind::Unsupported))
    }
}

/// The whole I/O boundary between the core and a host (see the module docs).
pub trait Filesystem {
    /// A file opened for reading.
    type Reader: Read;
    /// A file opened for writing.
    type Writer: FileWriter;
    /// A directory opened for looking up its entries.
    type Directory: Directory;

    /// Opens a regular file for reading. Refuses (with
    /// [`ErrorKind::SymlinkRefused`]) to follow a symlink in the last
    /// component.
    fn open_file(&self, root: Root, path: &str) -> Result<Self::Reader, Error>;

    /// [`Filesystem::open_file`] together with the file's metadata. The
    /// default stats the path and then opens it; a host that can stat the
    /// opened file instead saves a path resolution and reports the
    /// metadata of exactly the file it opened. Fails like `open_file` for
    /// anything but a regular file.
    fn open_file_with_metadata(
        &self,
        root: Root,
        path: &str,
    ) -> Result<(Self::Reader, Metadata), Error> {
        let metadata = self.metadata(root, path)?;
        match metadata.kind {
            FileKind::File => {}
            FileKind::Dir => return Err(Error::new(ErrorKind::IsADirectory)),
            FileKind::Symlink => return Err(Error::new(ErrorKind::SymlinkRefused)),
            FileKind::Other => return Err(Error::new(ErrorKind::InvalidInput)),
        }
        Ok((self.open_file(root, path)?, metadata))
    }

    /// Like [`Filesystem::rename_at`], but fails with
    /// [`ErrorKind::AlreadyExists`] instead of replacing anything. Hosts
    /// without it return [`ErrorKind::Unsupported`], the default.
    fn rename_at_no_replace(
        &self,
        from: &Self::Directory,
        from_name: &str,
        to: &Self::Directory,
        to_name: &str,
    ) -> Result<(), Error> {
        let _ = (from, from_name, to, to_name);
        Err(Error::new(ErrorKind::Unsupported))
    }

    /// Creates a new regular file for writing; fails with
    /// [`ErrorKind::AlreadyExists`] if anything exists at `path`, symlinks
    /// included.
    fn create_new_file(&self, root: Root, path: &str) -> Result<Self::Writer, Error>;

    /// Opens the directory at `path` for [`Directory::metadata`]. Refuses a
    /// symlink in the last component ([`ErrorKind::SymlinkRefused`]) and
    /// anything that is not a directory ([`ErrorKind::NotADirectory`]).
    fn open_dir(&self, root: Root, path: &str) -> Result<Self::Directory, Error>;

    /// Like [`Filesystem::rename`], for the entry `from_name` of the
    /// directory `from` onto `to_name` in `to`: both names are single
    /// components ([`is_single_component`], else
    /// [`ErrorKind::InvalidInput`]), so no path is resolved again, which is
    /// what lets a restore put thousands of files in place without opening
    /// their parent directories once per file.
    fn rename_at(
        &self,
        from: &Self::Directory,
        from_name: &str,
        to: &Self::Directory,
        to_name: &str,
    ) -> Result<(), Error>;

    /// Copies all of `from`, just opened, into `to`, just created and empty,
    /// the fastest way the host has (a reflink, an in-kernel copy such as
    /// `copy_file_range`, hashing on another thread while it copies), and
    /// returns the digest under `function` and the length of what `to` now
    /// holds. The digest must be computed from `to`, read back, never from
    /// `from`: it is what names a stored blob and what verifies a restored
    /// one. Nothing is synced. Hosts without a faster way return
    /// [`ErrorKind::Unsupported`] having copied nothing (the default), and
    /// the core streams the bytes through its own buffer, hashing them on
    /// the way.
    fn copy_file(
        &self,
        from: &mut Self::Reader,
        to: &mut Self::Writer,
        function: HashFunction,
    ) -> Result<(Digest, u64), Error> {
        let _ = (from, to, function);
        Err(Error::new(ErrorKind::Unsupported))
    }

    /// Creates one directory; its parent must exist. Fails with
    /// [`ErrorKind::AlreadyExists`] if anything exists at `path`.
    fn create_dir(&self, root: Root, path: &str) -> Result<(), Error>;

    /// Renames `from` to `to` atomically, replacing a file at `to` (POSIX
    /// `rename`). A directory replaces only an empty directory. Works across
    /// the two roots where they share a filesystem; otherwise fails with
    /// [`ErrorKind::CrossesDevices`].
    fn rename(&self, from_root: Root, from: &str, to_root: Root, to: &str) -> Result<(), Error>;

    /// Like [`Filesystem::rename`], but fails with
    /// [`ErrorKind::AlreadyExists`] instead of replacing anything
    /// (`renameat2(RENAME_NOREPLACE)`). Hosts without it return
    /// [`ErrorKind::Unsupported`], which is the default.
    fn rename_no_replace(
        &self,
        from_root: Root,
        from: &str,
        to_root: Root,
        to: &str,
    ) -> Result<(), Error> {
        let _ = (from_root, from, to_root, to);
        Err(Error::new(ErrorKind::Unsupported))
    }

    /// Removes a file or symlink (never what a symlink points to).
    fn remove_file(&self, root: Root, path: &str) -> Result<(), Error>;

    /// Removes an empty directory.
    fn remove_dir(&self, root: Root, path: &str) -> Result<(), Error>;

    /// Calls `visit` with the name and kind of each entry of the directory at
    /// `path` (not `.` or `..`), in no particular order, until it returns
    /// [`ControlFlow::Break`]. `visit` may remove the entry it was handed.
    fn read_dir(
        &self,
        root: Root,
        path: &str,
        visit: &mut dyn FnMut(&str, FileKind) -> ControlFlow<()>,
    ) -> Result<(), Error>;

    /// Reports kind, size, mode and modification time, without following a
    /// symlink in the last component.
    fn metadata(&self, root: Root, path: &str) -> Result<Metadata, Error>;

    /// Sets the permission bits of a file or directory (not through a
    /// symlink).
    fn set_mode(&self, root: Root, path: &str, mode: u32) -> Result<(), Error>;

    /// Sets the modification time of a file or directory.
    fn set_modified(&self, root: Root, path: &str, modified: Timestamp) -> Result<(), Error>;

    /// Makes the directory's entries durable (`fsync` on the directory).
    fn sync_dir(&self, root: Root, path: &str) -> Result<(), Error>;

    /// Whether [`Filesystem::sync_filesystem`] is available. The core asks
    /// before it writes, because the answer decides whether it syncs each
    /// file as it goes or everything at once at the end.
    fn supports_sync_filesystem(&self) -> bool {
        false
    }

    /// Makes everything written so far on the filesystem that holds `root`
    /// durable in one call: file data, metadata and directory entries
    /// (Linux `syncfs`). One call replaces the thousands of `fsync`s a store
    /// of many small files would otherwise need. Hosts without such a call
    /// return [`ErrorKind::Unsupported`], the default.
    fn sync_filesystem(&self, root: Root) -> Result<(), Error> {
        let _ = root;
        Err(Error::new(ErrorKind::Unsupported))
    }

    /// How many [`Filesystem::run_tasks`] tasks the host runs at once. The
    /// default, 1, is for hosts without threads; the core never asks for
    /// more tasks than this.
    fn parallelism(&self) -> usize {
        1
    }

    /// Runs `task(self, index)` for every `index` in `0..results.len()`,
    /// puts what each returns in `results[index]`, and returns once every
    /// task has. The default runs them in order on the calling thread; a
    /// host with threads may run up to [`Filesystem::parallelism`] of them
    /// at once, in any order.
    ///
    /// This is how the core spreads independent file work over threads
    /// (staging a restore's outputs, checking a lookup's blobs) without
    /// owning any: the tasks are core code, they share nothing but the
    /// filesystem and what the closure captures (the core coordinates them
    /// through atomics), and each one calls the filesystem like any other
    /// caller. Only a host whose filesystem is `Sync` can run them at
    /// once, which is why the threads are the host's to start.
    fn run_tasks<T: Send>(&self, results: &mut [T], task: &(dyn Fn(&Self, usize) -> T + Sync)) {
        for (index, result) in results.iter_mut().enumerate() {
            *result = task(self, index);
        }
    }
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

/// A shared borrow of a filesystem is one too, so that callers can keep
/// theirs. Only of a `Sync` filesystem: its [`Filesystem::run_tasks`] hands
/// the borrow to the tasks, which may run on other threads.
impl<F: Filesystem + Sync + ?Sized> Filesystem for &F {
    type Reader = F::Reader;
    type Writer = F::Writer;
    type Directory = F::Directory;

    fn open_file(&self, root: Root, path: &str) -> Result<Self::Reader, Error> {
        (**self).open_file(root, path)
    }
    fn create_new_file(&self, root: Root, path: &str) -> Result<Self::Writer, Error> {
        (**self).create_new_file(root, path)
    }
    fn open_dir(&self, root: Root, path: &str) -> Result<Self::Directory, Error> {
        (**self).open_dir(root, path)
    }
    fn copy_file(
        &self,
        from: &mut Self::Reader,
        to: &mut Self::Writer,
        function: HashFunction,
    ) -> Result<(Digest, u64), Error> {
        (**self).copy_file(from, to, function)
    }
    fn rename_at(
        &self,
        from: &Self::Directory,
        from_name: &str,
        to: &Self::Directory,
        to_name: &str,
    ) -> Result<(), Error> {
        (**self).rename_at(from, from_name, to, to_name)
    }
    fn rename_at_no_replace(
        &self,
        from: &Self::Directory,
        from_name: &str,
        to: &Self::Directory,
        to_name: &str,
    ) -> Result<(), Error> {
        (**self).rename_at_no_replace(from, from_name, to, to_name)
    }
    fn open_file_with_metadata(
        &self,
        root: Root,
        path: &str,
    ) -> Result<(Self::Reader, Metadata), Error> {
        (**self).open_file_with_metadata(root, path)
    }
    fn create_dir(&self, root: Root, path: &str) -> Result<(), Error> {
        (**self).create_dir(root, path)
    }
    fn rename(&self, from_root: Root, from: &str, to_root: Root, to: &str) -> Result<(), Error> {
        (**self).rename(from_root, from, to_root, to)
    }
    fn rename_no_replace(
        &self,
        from_root: Root,
        from: &str,
        to_root: Root,
        to: &str,
    ) -> Result<(), Error> {
        (**self).rename_no_replace(from_root, from, to_root, to)
    }
    fn remove_file(&self, root: Root, path: &str) -> Result<(), Error> {
        (**self).remove_file(root, path)
    }
    fn remove_dir(&self, root: Root, path: &str) -> Result<(), Error> {
        (**self).remove_dir(root, path)
    }
    fn read_dir(
        &self,
        root: Root,
        path: &str,
        visit: &mut dyn FnMut(&str, FileKind) -> ControlFlow<()>,
    ) -> Result<(), Error> {
        (**self).read_dir(root, path, visit)
    }
    fn metadata(&self, root: Root, path: &str) -> Result<Metadata, Error> {
        (**self).metadata(root, path)
    }
    fn set_mode(&self, root: Root, path: &str, mode: u32) -> Result<(), Error> {
        (**self).set_mode(root, path, mode)
    }
    fn set_modified(&self, root: Root, path: &str, modified: Timestamp) -> Result<(), Error> {
        (**self).set_modified(root, path, modified)
    }
    fn sync_dir(&self, root: Root, path: &str) -> Result<(), Error> {
        (**self).sync_dir(root, path)
    }
    fn supports_sync_filesystem(&self) -> bool {
        (**self).supports_sync_filesystem()
    }
    fn sync_filesystem(&self, root: Root) -> Result<(), Error> {
        (**self).sync_filesystem(root)
    }
    fn parallelism(&self) -> usize {
        (**self).parallelism()
    }
    fn run_tasks<T: Send>(&self, results: &mut [T], task: &(dyn Fn(&Self, usize) -> T + Sync)) {
        (**self).run_tasks(results, &|_: &F, index| task(self, index));
    }
}
