//! [`CapStdFilesystem`]: the core's [`Filesystem`] over two `cap_std`
//! directory capabilities.
//!
//! Every path the core hands over is resolved by `cap-std` relative to one of
//! two [`Dir`] handles, so nothing — `..`, an absolute path, or a symlink in
//! any component — can make a call act outside its root (SAFE-2): `cap-std`
//! refuses such a path with `PermissionDenied`. Symlinks that stay inside the
//! root are followed in intermediate components; in the last component they
//! are never followed where the trait says so.
//!
//! Where `cap-std` has no call for what the trait asks (a [`Directory`]'s
//! lookups and [`Filesystem::rename`], with or without replacing), `rustix`
//! is called on the descriptor of a directory `cap-std` opened, with a
//! single [`Name`], so the kernel never walks a multi-component path on its
//! own.
//!
//! # Durability
//!
//! This binding syncs exactly when the core asks ([`FileWriter::sync`],
//! [`Filesystem::sync_dir`]) and never on its own: OP-2 puts the order of
//! file syncs, directory syncs and renames in the core, and extra syncs here
//! would only cost time.
//!
//! # Copies
//!
//! [`Filesystem::copy_file`] reflinks (`FICLONE`) where the filesystem can
//! share blocks, else copies with `copy_file_range` inside the kernel, and
//! hashes the copy on a second thread as it lands, reading it back with
//! `pread`. Where neither call works it reports `Unsupported` before
//! copying anything, and the core streams.

use core::ops::ControlFlow;
use core::time::Duration;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use cachet_core::fs::{
    Directory, Error, ErrorKind, FileKind, FileReader, FileWriter, Filesystem, Metadata, Name,
    Read, Replace, Root, Timestamp, Write,
};
use cachet_core::hash::{Digest, HashFunction, Hasher};
use cap_fs_ext::{
    DirExt, FollowSymlinks, OpenOptionsFollowExt, OpenOptionsMaybeDirExt, SystemTimeSpec,
};
use cap_std::fs::{
    Dir, File, MetadataExt, OpenOptions, OpenOptionsExt, Permissions, PermissionsExt,
};
use cap_std::{AmbientAuthority, ambient_authority};
use rustix::fs::{AtFlags, OFlags, RenameFlags};
use rustix::io::Errno;

/// The core's [`Filesystem`] over a workspace and a cache directory, each held as
/// a `cap_std` [`Dir`] capability.
#[derive(Debug)]
pub struct CapStdFilesystem {
    workspace: Dir,
    cache: Dir,
}

/// Why [`CapStdFilesystem::open_ambient`] could not open a root.
#[derive(Debug)]
#[non_exhaustive]
pub enum OpenError {
    /// The workspace directory could not be opened.
    Workspace {
        /// The path given for the workspace.
        path: PathBuf,
        /// What the operating system reported.
        source: io::Error,
    },
    /// The cache directory did not exist and could not be created.
    CreateCacheDir {
        /// The path given for the cache directory.
        path: PathBuf,
        /// What the operating system reported.
        source: io::Error,
    },
    /// The cache directory exists but could not be opened as a directory.
    CacheDir {
        /// The path given for the cache directory.
        path: PathBuf,
        /// What the operating system reported.
        source: io::Error,
    },
}

impl core::fmt::Display for OpenError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            OpenError::Workspace { path, source } => write!(
                f,
                "cannot open the workspace directory {}: {source}; check that it exists and is readable",
                path.display()
            ),
            OpenError::CreateCacheDir { path, source } => write!(
                f,
                "cannot create the cache directory {}: {source}; check the permissions of its parent or choose another cache directory",
                path.display()
            ),
            OpenError::CacheDir { path, source } => write!(
                f,
                "cannot open the cache directory {}: {source}; it must be a directory you can read and write",
                path.display()
            ),
        }
    }
}

impl core::error::Error for OpenError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            OpenError::Workspace { source, .. }
            | OpenError::CreateCacheDir { source, .. }
            | OpenError::CacheDir { source, .. } => Some(source),
        }
    }
}

impl CapStdFilesystem {
    /// Wraps two already-opened capabilities; no ambient authority is used.
    pub fn new(workspace: Dir, cache: Dir) -> CapStdFilesystem {
        CapStdFilesystem { workspace, cache }
    }

    /// Opens the workspace and the cache directory by ambient path, creating the
    /// cache directory (and its missing parents) if needed.
    ///
    /// This is the only place in the binding that uses
    /// [`ambient_authority`]: once the two roots are open, every later call
    /// is relative to them. Symlinks in the two paths themselves are
    /// followed, since they are the caller's choice.
    pub fn open_ambient(workspace: &Path, cache_dir: &Path) -> Result<Self, OpenError> {
        let authority: AmbientAuthority = ambient_authority();
        let workspace_dir =
            Dir::open_ambient_dir(workspace, authority).map_err(|source| OpenError::Workspace {
                path: workspace.to_path_buf(),
                source,
            })?;
        Dir::create_ambient_dir_all(cache_dir, authority).map_err(|source| {
            OpenError::CreateCacheDir {
                path: cache_dir.to_path_buf(),
                source,
            }
        })?;
        let cache =
            Dir::open_ambient_dir(cache_dir, authority).map_err(|source| OpenError::CacheDir {
                path: cache_dir.to_path_buf(),
                source,
            })?;
        Ok(CapStdFilesystem::new(workspace_dir, cache))
    }

    /// The capability for `root`.
    pub fn dir(&self, root: Root) -> &Dir {
        match root {
            Root::Workspace => &self.workspace,
            Root::Cache => &self.cache,
        }
    }

    /// Opens the entry at `path` itself (file or directory, never through a
    /// symlink in the last component) for reading, without blocking on a
    /// FIFO or acquiring a terminal.
    fn open_entry_nofollow(&self, root: Root, path: &str) -> io::Result<File> {
        let mut options = OpenOptions::new();
        options
            .read(true)
            .follow(FollowSymlinks::No)
            .maybe_dir(true)
            .custom_flags(nonblocking_flags());
        self.dir(root).open_with(relative(path), &options)
    }

    /// Opens the regular file at `path` for reading, never through a
    /// symlink in the last component, and returns it with its `fstat`.
    fn open_regular(&self, root: Root, path: &str) -> Result<(File, cap_std::fs::Metadata), Error> {
        let mut options = OpenOptions::new();
        options
            .read(true)
            .follow(FollowSymlinks::No)
            .custom_flags(nonblocking_flags());
        let file = self
            .dir(root)
            .open_with(relative(path), &options)
            .map_err(Error::from)?;
        let metadata = file.metadata().map_err(Error::from)?;
        if metadata.is_dir() {
            return Err(Error::new(ErrorKind::IsADirectory));
        }
        if !metadata.is_file() {
            // A FIFO or device is never cache content; reading one could
            // block or never end (SAFE-1).
            return Err(Error::new(ErrorKind::InvalidInput));
        }
        Ok((file, metadata))
    }

    /// Opens the directory at `path` without following a symlink in the last
    /// component, and says so when that is why it failed.
    fn open_dir_refusing_symlink(&self, root: Root, path: &str) -> Result<Dir, Error> {
        let dir = self.dir(root);
        if path.is_empty() {
            return dir.open_dir(".").map_err(Error::from);
        }
        dir.open_dir_nofollow(path).map_err(|error| {
            let error = Error::from(error);
            // O_DIRECTORY|O_NOFOLLOW on a symlink reports ENOTDIR; say what
            // was actually refused.
            if error.kind == ErrorKind::NotADirectory
                && self.metadata(root, path).map(|m| m.kind) == Ok(FileKind::Symlink)
            {
                return Error {
                    kind: ErrorKind::SymlinkRefused,
                    ..error
                };
            }
            error
        })
    }
}

/// The trait's empty path names the root; `cap-std` spells that `.`.
fn relative(path: &str) -> &Path {
    if path.is_empty() {
        Path::new(".")
    } else {
        Path::new(path)
    }
}

/// `O_NONBLOCK` keeps an open of a FIFO from hanging until a writer appears;
/// `O_NOCTTY` keeps a terminal device from becoming the controlling one.
fn nonblocking_flags() -> i32 {
    // The flag values fit in an i32 on every Linux ABI; open(2) takes an int.
    i32::try_from((OFlags::NONBLOCK | OFlags::NOCTTY).bits()).unwrap_or(0)
}

/// renameat2(2) with `RENAME_NOREPLACE`: EINVAL is how a filesystem says
/// it lacks the flag; the core then falls back to its own scheme.
fn no_replace_error(errno: Errno) -> Error {
    match errno {
        Errno::INVAL => Error {
            kind: ErrorKind::Unsupported,
            os_code: Some(errno.raw_os_error()),
        },
        other => map_errno(other),
    }
}

/// A `rustix` errno as the core's error, through the core's one mapping of
/// `std::io::Error`.
fn map_errno(errno: Errno) -> Error {
    Error::from(io::Error::from(errno))
}

fn kind_of(file_type: cap_std::fs::FileType) -> FileKind {
    if file_type.is_symlink() {
        FileKind::Symlink
    } else if file_type.is_file() {
        FileKind::File
    } else if file_type.is_dir() {
        FileKind::Dir
    } else {
        FileKind::Other
    }
}

/// The core's [`Metadata`] from the fields of a `stat`. A time before 1970
/// cannot be expressed as a [`Timestamp`]; the epoch is the nearest
/// representable value.
fn metadata_of(kind: FileKind, size: u64, mode: u32, (seconds, nanos): (i64, i64)) -> Metadata {
    let modified = match (u64::try_from(seconds), u32::try_from(nanos)) {
        (Ok(seconds), Ok(nanos)) if nanos < 1_000_000_000 => Timestamp { seconds, nanos },
        (Ok(seconds), _) => Timestamp::from_seconds(seconds),
        (Err(_), _) => Timestamp::default(),
    };
    Metadata {
        kind,
        size,
        mode: mode & 0o7777,
        modified,
    }
}

/// How much one `copy_file_range` call is asked to copy: large enough that
/// the calls cost nothing next to the copying, small enough that the
/// hashing thread can start on the first part while the rest is copied.
const COPY_CHUNK_BYTES: usize = 4 << 20;

/// How much the hashing thread reads back at a time.
const HASH_CHUNK_BYTES: usize = 1 << 20;

/// Copies `from` into `to`, reporting on `copied` how many bytes `to` holds
/// after each step. A reflink reports the whole length at once.
fn copy_reporting(
    from: &File,
    to: &File,
    copied: &std::sync::mpsc::Sender<u64>,
) -> Result<(), Error> {
    if rustix::fs::ioctl_ficlone(to, from).is_ok() {
        let len = to.metadata().map_err(Error::from)?.len();
        let _ = copied.send(len);
        return Ok(());
    }
    let mut total: u64 = 0;
    loop {
        match rustix::fs::copy_file_range(from, None, to, None, COPY_CHUNK_BYTES) {
            Ok(0) => return Ok(()),
            Ok(n) => {
                total = total.saturating_add(n as u64);
                // The hashing thread only stops early on an error of its
                // own, which `copy_file` reports.
                let _ = copied.send(total);
            }
            Err(Errno::INTR) => {}
            // copy_file_range(2): these mean the kernel or this pair of
            // filesystems cannot do it; with nothing copied yet, the core
            // streams instead.
            Err(Errno::XDEV | Errno::NOSYS | Errno::OPNOTSUPP | Errno::INVAL) if total == 0 => {
                return Err(Error::new(ErrorKind::Unsupported));
            }
            Err(errno) => return Err(map_errno(errno)),
        }
    }
}

/// Hashes `file` from the start, reading each part back once `copied` says
/// it is there, until the sender hangs up.
fn hash_as_copied(
    file: &File,
    function: HashFunction,
    copied: std::sync::mpsc::Receiver<u64>,
) -> Result<(Digest, u64), Error> {
    let mut hasher = Hasher::new(function);
    let mut buffer = vec![0u8; HASH_CHUNK_BYTES];
    let mut hashed: u64 = 0;
    for available in copied {
        while hashed < available {
            let want = usize::try_from(available - hashed)
                .unwrap_or(usize::MAX)
                .min(buffer.len());
            let chunk = buffer.get_mut(..want).unwrap_or_default();
            let n = match rustix::io::pread(file, &mut *chunk, hashed) {
                Ok(0) => return Err(Error::new(ErrorKind::UnexpectedEof)),
                Ok(n) => n,
                Err(Errno::INTR) => continue,
                Err(errno) => return Err(map_errno(errno)),
            };
            hasher.update(chunk.get(..n).unwrap_or_default());
            hashed = hashed.saturating_add(n as u64);
        }
    }
    Ok((hasher.finalize(), hashed))
}

/// A directory opened by [`Filesystem::open_dir`]. Each lookup is one
/// `fstatat` on a single name relative to the directory's descriptor, so
/// the kernel walks no path and no symlink is followed.
#[derive(Debug)]
pub struct CapStdDirectory {
    dir: Dir,
}

impl Directory for CapStdDirectory {
    fn metadata(&self, name: Name<'_>) -> Result<Metadata, Error> {
        let stat = rustix::fs::statat(&self.dir, name.as_str(), AtFlags::SYMLINK_NOFOLLOW)
            .map_err(map_errno)?;
        let kind = match rustix::fs::FileType::from_raw_mode(stat.st_mode) {
            rustix::fs::FileType::RegularFile => FileKind::File,
            rustix::fs::FileType::Directory => FileKind::Dir,
            rustix::fs::FileType::Symlink => FileKind::Symlink,
            _ => FileKind::Other,
        };
        Ok(metadata_of(
            kind,
            u64::try_from(stat.st_size).unwrap_or(0),
            stat.st_mode,
            (
                stat.st_mtime,
                i64::try_from(stat.st_mtime_nsec).unwrap_or(-1),
            ),
        ))
    }
}

/// A file opened by [`Filesystem::open_file`], with the `fstat` taken
/// when it was opened (to refuse anything but a regular file), which is
/// what [`FileReader::metadata`] reports.
#[derive(Debug)]
pub struct CapStdReader {
    file: File,
    metadata: Metadata,
}

impl CapStdReader {
    /// The underlying file, e.g. for `copy_file_range`.
    pub fn file(&self) -> &File {
        &self.file
    }
}

impl AsFd for CapStdReader {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

impl Read for CapStdReader {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
        loop {
            match io::Read::read(&mut self.file, buf) {
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                other => return other.map_err(Error::from),
            }
        }
    }
}

impl FileReader for CapStdReader {
    /// The `fstat` taken when the file was opened: no further system call.
    fn metadata(&self) -> Result<Metadata, Error> {
        Ok(self.metadata)
    }
}

/// A file created by [`Filesystem::create_new_file`].
#[derive(Debug)]
pub struct CapStdWriter {
    file: File,
}

impl CapStdWriter {
    /// The underlying file, e.g. for `copy_file_range`.
    pub fn file(&self) -> &File {
        &self.file
    }
}

impl AsFd for CapStdWriter {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

impl Write for CapStdWriter {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Error> {
        loop {
            match io::Write::write(&mut self.file, buf) {
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                other => return other.map_err(Error::from),
            }
        }
    }
}

impl FileWriter for CapStdWriter {
    fn sync(&mut self) -> Result<(), Error> {
        self.file.sync_all().map_err(Error::from)
    }

    fn set_mode(&mut self, mode: u32) -> Result<(), Error> {
        if mode & !0o7777 != 0 {
            return Err(Error::new(ErrorKind::InvalidInput));
        }
        self.file
            .set_permissions(Permissions::from_mode(mode))
            .map_err(Error::from)
    }
}

impl Filesystem for CapStdFilesystem {
    type Reader = CapStdReader;
    type Writer = CapStdWriter;
    type Directory = CapStdDirectory;

    fn open_dir(&self, root: Root, path: &str) -> Result<CapStdDirectory, Error> {
        self.open_dir_refusing_symlink(root, path)
            .map(|dir| CapStdDirectory { dir })
    }

    /// `renameat` (or `renameat2` with `RENAME_NOREPLACE`) on the two
    /// descriptors with one name each: the kernel walks no path, so nothing
    /// can lead outside either directory. A filesystem without
    /// `RENAME_NOREPLACE` reports `EINVAL`, which is
    /// [`ErrorKind::Unsupported`] here.
    fn rename(
        &self,
        from: &CapStdDirectory,
        from_name: Name<'_>,
        to: &CapStdDirectory,
        to_name: Name<'_>,
        replace: Replace,
    ) -> Result<(), Error> {
        let (from_name, to_name) = (from_name.as_str(), to_name.as_str());
        match replace {
            Replace::Allowed => {
                rustix::fs::renameat(&from.dir, from_name, &to.dir, to_name).map_err(map_errno)
            }
            Replace::Never => rustix::fs::renameat_with(
                &from.dir,
                from_name,
                &to.dir,
                to_name,
                RenameFlags::NOREPLACE,
            )
            .map_err(no_replace_error),
        }
    }

    /// A reflink (`FICLONE`) where the filesystem shares blocks (Btrfs,
    /// XFS), else `copy_file_range`, which copies inside the kernel; either
    /// way the copy is read back and hashed on a second thread while the
    /// first one copies, so a large file costs about one copy, not a copy
    /// plus a hash.
    fn copy_file(
        &self,
        from: &mut CapStdReader,
        to: &mut CapStdWriter,
        function: HashFunction,
    ) -> Result<(Digest, u64), Error> {
        let (from, to) = (&from.file, &to.file);
        std::thread::scope(|scope| {
            let (copied_to, copied) = std::sync::mpsc::channel::<u64>();
            let hashing = scope.spawn(move || hash_as_copied(to, function, copied));
            let copying = copy_reporting(from, to, &copied_to);
            drop(copied_to);
            let hashed = hashing.join().unwrap_or(Err(Error::new(ErrorKind::Other)));
            copying?;
            hashed
        })
    }

    /// One open and one `fstat` of the opened file, which refuses anything
    /// but a regular file and is kept for [`FileReader::metadata`].
    fn open_file(&self, root: Root, path: &str) -> Result<CapStdReader, Error> {
        let (file, metadata) = self.open_regular(root, path)?;
        let metadata = metadata_of(
            FileKind::File,
            metadata.len(),
            metadata.mode(),
            (metadata.mtime(), metadata.mtime_nsec()),
        );
        Ok(CapStdReader { file, metadata })
    }

    fn create_new_file(&self, root: Root, path: &str) -> Result<CapStdWriter, Error> {
        let mut options = OpenOptions::new();
        // O_CREAT|O_EXCL never follows a symlink, dangling or not. Readable
        // too, so that `copy_file` can hash what it wrote.
        options.read(true).write(true).create_new(true);
        let file = self
            .dir(root)
            .open_with(relative(path), &options)
            .map_err(Error::from)?;
        Ok(CapStdWriter { file })
    }

    fn create_dir(&self, root: Root, path: &str) -> Result<(), Error> {
        self.dir(root)
            .create_dir(relative(path))
            .map_err(Error::from)
    }

    fn remove_file(&self, root: Root, path: &str) -> Result<(), Error> {
        // unlinkat never follows the last component, so a symlink itself is
        // removed.
        self.dir(root)
            .remove_file(relative(path))
            .map_err(Error::from)
    }

    fn remove_dir(&self, root: Root, path: &str) -> Result<(), Error> {
        self.dir(root)
            .remove_dir(relative(path))
            .map_err(Error::from)
    }

    fn read_dir(
        &self,
        root: Root,
        path: &str,
        visit: &mut dyn FnMut(&str, FileKind) -> ControlFlow<()>,
    ) -> Result<(), Error> {
        let entries = if path.is_empty() {
            self.dir(root).entries().map_err(Error::from)?
        } else {
            self.open_dir_refusing_symlink(root, path)?
                .entries()
                .map_err(Error::from)?
        };
        for entry in entries {
            let entry = entry.map_err(Error::from)?;
            let name = entry.file_name();
            // A name that is not UTF-8 can be neither a cache entry nor a
            // path the core could ask about, so it is not reported; a lossy
            // rendering could alias a real name.
            let Some(name) = name.to_str() else {
                continue;
            };
            let kind = kind_of(entry.file_type().map_err(Error::from)?);
            if visit(name, kind).is_break() {
                break;
            }
        }
        Ok(())
    }

    fn metadata(&self, root: Root, path: &str) -> Result<Metadata, Error> {
        let metadata = self
            .dir(root)
            .symlink_metadata(relative(path))
            .map_err(Error::from)?;
        Ok(metadata_of(
            kind_of(metadata.file_type()),
            metadata.len(),
            metadata.mode(),
            (metadata.mtime(), metadata.mtime_nsec()),
        ))
    }

    fn set_modified(&self, root: Root, path: &str, modified: Timestamp) -> Result<(), Error> {
        if modified.nanos >= 1_000_000_000 {
            return Err(Error::new(ErrorKind::InvalidInput));
        }
        let time = SystemTime::UNIX_EPOCH
            .checked_add(Duration::new(modified.seconds, modified.nanos))
            .ok_or(Error::new(ErrorKind::InvalidInput))?;
        let spec = SystemTimeSpec::Absolute(cap_std::time::SystemTime::from_std(time));
        // utimensat(AT_SYMLINK_NOFOLLOW) on the parent: needs no read or
        // write permission on the entry and never touches a symlink's target.
        self.dir(root)
            .set_symlink_times(relative(path), None, Some(spec))
            .map_err(Error::from)
    }

    fn sync_dir(&self, root: Root, path: &str) -> Result<(), Error> {
        // The Dir handles are O_PATH descriptors, which fsync refuses; an
        // O_RDONLY descriptor of the same directory syncs it.
        let dir = self.open_entry_nofollow(root, path).map_err(Error::from)?;
        if !dir.metadata().map_err(Error::from)?.is_dir() {
            return Err(Error::new(ErrorKind::NotADirectory));
        }
        dir.sync_all().map_err(Error::from)
    }

    fn supports_sync_filesystem(&self) -> bool {
        cfg!(any(target_os = "linux", target_os = "android"))
    }

    /// `syncfs(2)` on the root: one call where a store or restore of many
    /// small files would otherwise `fsync` each (the same durability as
    /// `cp -r && sync -f`).
    fn sync_filesystem(&self, root: Root) -> Result<(), Error> {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            // As in sync_dir: the Dir handle is O_PATH, which syncfs refuses.
            let dir = self.open_entry_nofollow(root, "").map_err(Error::from)?;
            rustix::fs::syncfs(&dir).map_err(map_errno)
        }
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        {
            let _ = root;
            Err(Error::new(ErrorKind::Unsupported))
        }
    }
}
