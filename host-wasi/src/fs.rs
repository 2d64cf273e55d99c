//! [`WasiFilesystem`]: the core's [`Filesystem`] over two WASI preview 1
//! preopened directories.
//!
//! Every call is one raw WASI call (or two) on a path relative to the
//! workspace or the cache-root preopen, so the runtime's capability checks
//! confine each one to its root (SAFE-2), exactly as `cap-std` does for the
//! native binding (`cachet::fs::CapStdFilesystem`). Lookups never pass
//! `SYMLINK_FOLLOW`, so a symlink in the last component is never followed;
//! errors go through the one mapping in [`crate::errno`], which makes the
//! same choices as the native binding.
//!
//! # Where WASI preview 1 differs, and what this binding does
//!
//! - **Permission bits.** Preview 1 has none; see [`crate::modes`].
//!   [`Filesystem::metadata`] reports modes from the host's
//!   [`ModeTable`] (or the defaults), and [`FileWriter::set_mode`] defers
//!   the mode, follows the file through renames, and hands it to the host
//!   through [`WasiFilesystem::deferred_workspace_modes`].
//! - **Directory listings.** wasmtime's `fd_readdir` re-reads the whole
//!   directory on every call and treats the cookie as an index, so an entry
//!   removed while listing would shift the rest and make the next call skip
//!   one. [`Filesystem::read_dir`] therefore reads the complete listing
//!   before calling `visit` once per entry, which keeps the trait's promise
//!   that `visit` may remove the entry it was handed. It also drops the `.`
//!   and `..` entries wasmtime synthesises.
//! - **Directory syncs.** wasmtime refuses `fd_sync` on a directory
//!   descriptor with `EBADF`; [`Filesystem::sync_dir`] tries, and treats
//!   that refusal as success. What is lost is the power-loss durability of
//!   directory entries, not crash consistency (SAFE-3): files are still
//!   synced before every rename that publishes them, and a lookup that
//!   finds a blob or stream missing, or of the wrong size, is a miss
//!   (OP-1), while restore verifies every content hash (OP-3).
//! - **FIFOs.** Opening a FIFO for reading would block until a writer
//!   appears, and preview 1 cannot ask for a non-blocking open;
//!   [`Filesystem::open_file`] stats the path first and opens only regular
//!   files, then checks the opened descriptor again.
//! - **Rename without replace.** Preview 1 has no `renameat2`;
//!   [`Filesystem::rename`] with [`Replace::Never`] is `Unsupported`, and
//!   the core falls back to its own scheme (see `cachet_core::fs`).
//! - **Non-UTF-8 names** are skipped by `read_dir`, as natively.

use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec::Vec;
use core::cell::RefCell;
use core::ops::ControlFlow;

use cachet_core::fs::{
    Directory, Error, ErrorKind, FileKind, FileReader, FileWriter, Filesystem, Metadata, Name,
    Read, Replace, Root, Timestamp, Write,
};

use crate::errno::{self, error_of_errno};
use crate::modes::{DEFAULT_DIR_MODE, DEFAULT_FILE_MODE, DEFAULT_SYMLINK_MODE, ModeTable};
use crate::sys::{self, OwnedFd};

/// Why [`WasiFilesystem::from_preopens`] could not find its roots.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PreopenError {
    /// No preopened directory has this name; the host must preopen it
    /// (`wasmtime run --dir HOST::NAME`).
    Missing {
        /// The preopen name that was looked for.
        name: String,
    },
    /// Two preopened directories have this name, so which one is meant is
    /// ambiguous.
    Ambiguous {
        /// The repeated preopen name.
        name: String,
    },
    /// The workspace and the cache directory were given the same name.
    SameName,
    /// Listing the preopens failed.
    Io {
        /// The runtime's error.
        source: Error,
    },
}

impl core::fmt::Display for PreopenError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            PreopenError::Missing { name } => write!(
                f,
                "no directory is preopened as '{name}'; run the guest with the workspace and the cache directory preopened (e.g. wasmtime run --dir HOST_DIR::{name})"
            ),
            PreopenError::Ambiguous { name } => write!(
                f,
                "more than one directory is preopened as '{name}'; preopen each root once"
            ),
            PreopenError::SameName => f.write_str(
                "the workspace and the cache directory must be preopened under different names",
            ),
            PreopenError::Io { source } => {
                write!(f, "could not list the preopened directories: {source}")
            }
        }
    }
}

impl core::error::Error for PreopenError {}

/// The most descriptors searched for preopens; runtimes number preopens
/// from 3 upwards without gaps, so this only bounds a hostile runtime.
const MAX_PREOPEN_FD: u32 = 4096;

/// Largest `fd_readdir` buffer tried for one entry, far above any name a
/// filesystem allows (255 bytes on Linux), so a runtime that never makes
/// progress ends in an error rather than endless growth (SAFE-1).
const MAX_READDIR_BUFFER: usize = 1 << 20;

/// Size of a `dirent` header in guest memory.
const DIRENT_SIZE: usize = 24;

/// The core's [`Filesystem`] over a workspace preopen and a cache-root
/// preopen (see the module docs).
#[derive(Debug)]
pub struct WasiFilesystem {
    workspace: u32,
    cache: u32,
    modes: Rc<Modes>,
}

/// What [`Filesystem::metadata`] reports as permission bits, shared with
/// every [`WasiDirectory`] so that both report the same (see
/// [`crate::modes`]).
#[derive(Debug, Default)]
struct Modes {
    known: ModeTable,
    deferred: RefCell<Vec<(Root, String, u32)>>,
}

impl Modes {
    /// Deferred modes travel with their files (see `crate::modes`).
    fn moved(&self, (from_root, from): (Root, &str), (to_root, to): (Root, &str)) {
        let mut deferred = self.deferred.borrow_mut();
        deferred.retain(|(r, p, _)| !(*r == to_root && is_at_or_below(p, to)));
        for (root, path, _) in deferred.iter_mut() {
            if *root == from_root && is_at_or_below(path, from) {
                let mut moved = String::from(to);
                moved.push_str(path.get(from.len()..).unwrap_or_default());
                *root = to_root;
                *path = moved;
            }
        }
    }

    fn deferred(&self, root: Root, path: &str) -> Option<u32> {
        self.deferred
            .borrow()
            .iter()
            .find(|(r, p, _)| *r == root && p == path)
            .map(|(_, _, mode)| *mode)
    }

    /// The metadata of a `stat` of `path`.
    fn metadata(&self, root: Root, path: &str, stat: &sys::Stat) -> Metadata {
        let kind = kind_of(stat.filetype);
        let mode = match kind {
            FileKind::Dir => DEFAULT_DIR_MODE,
            FileKind::Symlink => DEFAULT_SYMLINK_MODE,
            FileKind::File | FileKind::Other => self
                .deferred(root, path)
                .or_else(|| match root {
                    Root::Workspace => self.known.get(path),
                    Root::Cache => None,
                })
                .unwrap_or(DEFAULT_FILE_MODE),
        };
        Metadata {
            kind,
            size: stat.size,
            mode,
            modified: timestamp_of(stat.mtim),
        }
    }
}

/// A directory opened by [`Filesystem::open_dir`]: each lookup is one
/// `path_filestat_get` of a single name relative to its descriptor. Modes
/// are looked up by the path it was opened at.
#[derive(Debug)]
pub struct WasiDirectory {
    fd: OwnedFd,
    root: Root,
    path: String,
    modes: Rc<Modes>,
}

impl WasiDirectory {
    /// The root-relative path of the entry `name` of this directory, as
    /// of when it was opened.
    fn child(&self, name: &str) -> String {
        let mut path = self.path.clone();
        if !path.is_empty() {
            path.push('/');
        }
        path.push_str(name);
        path
    }
}

impl Directory for WasiDirectory {
    fn metadata(&self, name: Name<'_>) -> Result<Metadata, Error> {
        let stat = sys::path_filestat_get_nofollow(self.fd.raw(), &name).map_err(error_of_errno)?;
        Ok(self.modes.metadata(self.root, &self.child(&name), &stat))
    }
}

impl WasiFilesystem {
    /// Finds the two roots among the preopened directories by the names the
    /// host gave them (`fd_prestat_dir_name`), e.g. `/workspace` and
    /// `/cache`. A trailing `/` on either side is ignored.
    ///
    /// The preopen descriptors stay owned by the runtime's preopen table and
    /// are never closed by this value.
    pub fn from_preopens(workspace_name: &str, cache_name: &str) -> Result<Self, PreopenError> {
        let wanted_workspace = trim_name(workspace_name.as_bytes());
        let wanted_cache = trim_name(cache_name.as_bytes());
        if wanted_workspace == wanted_cache {
            return Err(PreopenError::SameName);
        }
        let mut workspace = None;
        let mut cache = None;
        for fd in 3..MAX_PREOPEN_FD {
            let name = match sys::prestat_dir_name(fd) {
                Ok(Some(name)) => name,
                Ok(None) => continue,
                Err(errno::BADF) => break,
                Err(code) => {
                    return Err(PreopenError::Io {
                        source: error_of_errno(code),
                    });
                }
            };
            let name = trim_name(&name);
            for (wanted, slot, label) in [
                (wanted_workspace, &mut workspace, workspace_name),
                (wanted_cache, &mut cache, cache_name),
            ] {
                if name == wanted {
                    if slot.is_some() {
                        return Err(PreopenError::Ambiguous {
                            name: String::from(label),
                        });
                    }
                    *slot = Some(fd);
                }
            }
        }
        let workspace = workspace.ok_or_else(|| PreopenError::Missing {
            name: String::from(workspace_name),
        })?;
        let cache = cache.ok_or_else(|| PreopenError::Missing {
            name: String::from(cache_name),
        })?;
        Ok(WasiFilesystem {
            workspace,
            cache,
            modes: Rc::new(Modes::default()),
        })
    }

    /// Sets the permission bits [`Filesystem::metadata`] reports for
    /// regular files in the workspace (paths relative to the workspace
    /// root); files not in the table report [`DEFAULT_FILE_MODE`].
    pub fn with_workspace_modes(mut self, modes: ModeTable) -> Self {
        self.modes = Rc::new(Modes {
            known: modes,
            deferred: RefCell::new(self.modes.deferred.take()),
        });
        self
    }

    /// The modes [`FileWriter::set_mode`] deferred for files that now live
    /// in the workspace, for the host to apply (see [`crate::modes`]).
    pub fn deferred_workspace_modes(&self) -> ModeTable {
        let mut table = ModeTable::new();
        for (root, path, mode) in self.modes.deferred.borrow().iter() {
            if *root == Root::Workspace {
                table.insert(path, *mode);
            }
        }
        table
    }

    fn fd(&self, root: Root) -> u32 {
        match root {
            Root::Workspace => self.workspace,
            Root::Cache => self.cache,
        }
    }

    /// Forgets deferred modes at `path` and below it (a removed or replaced
    /// entry).
    fn forget_deferred(&self, root: Root, path: &str) {
        self.modes
            .deferred
            .borrow_mut()
            .retain(|(r, p, _)| !(*r == root && is_at_or_below(p, path)));
    }

    fn open_dir_with_rights(
        &self,
        root: Root,
        path: &str,
        rights: sys::Rights,
    ) -> Result<OwnedFd, Error> {
        sys::path_open(
            self.fd(root),
            sys::NOFOLLOW,
            wasi_path(path),
            sys::OFLAGS_DIRECTORY,
            rights,
            0,
        )
        .map_err(error_of_errno)
    }

    /// Reads the complete listing of `dir` (see the module docs for why).
    fn list(&self, dir: &OwnedFd) -> Result<Vec<(Vec<u8>, u8)>, Error> {
        let mut entries = Vec::new();
        let mut buffer = alloc::vec![0u8; 64 * 1024];
        let mut cookie = sys::DIRCOOKIE_START;
        loop {
            let used = sys::fd_readdir(dir, &mut buffer, cookie).map_err(error_of_errno)?;
            let filled = buffer.get(..used).unwrap_or_default();
            let mut offset = 0;
            let mut progressed = false;
            while let Some(header) = filled.get(offset..offset + DIRENT_SIZE) {
                let next = u64::from_le_bytes(header_field(header, 0));
                let name_len = u32::from_le_bytes(header_field(header, 16)) as usize;
                let kind = header.get(20).copied().unwrap_or(0);
                let name_start = offset + DIRENT_SIZE;
                let Some(name) = filled.get(name_start..name_start + name_len) else {
                    break;
                };
                entries.push((name.to_vec(), kind));
                cookie = next;
                progressed = true;
                offset = name_start + name_len;
            }
            if used < buffer.len() {
                return Ok(entries);
            }
            if !progressed {
                // One entry does not fit: grow, within reason.
                if buffer.len() >= MAX_READDIR_BUFFER {
                    return Err(Error::new(ErrorKind::InvalidInput));
                }
                buffer.resize(buffer.len() * 2, 0);
            }
        }
    }
}

fn header_field<const N: usize>(header: &[u8], at: usize) -> [u8; N] {
    let mut field = [0u8; N];
    if let Some(bytes) = header.get(at..at + N) {
        field.copy_from_slice(bytes);
    }
    field
}

fn trim_name(name: &[u8]) -> &[u8] {
    match name {
        [rest @ .., b'/'] if !rest.is_empty() => rest,
        other => other,
    }
}

fn is_at_or_below(path: &str, dir: &str) -> bool {
    dir.is_empty()
        || path == dir
        || (path.len() > dir.len() && path.starts_with(dir) && path.as_bytes()[dir.len()] == b'/')
}

/// The trait's empty path names the root; WASI spells that `.`.
fn wasi_path(path: &str) -> &str {
    if path.is_empty() { "." } else { path }
}

fn kind_of(filetype: u8) -> FileKind {
    if filetype == sys::FILETYPE_REGULAR_FILE {
        FileKind::File
    } else if filetype == sys::FILETYPE_DIRECTORY {
        FileKind::Dir
    } else if filetype == sys::FILETYPE_SYMBOLIC_LINK {
        FileKind::Symlink
    } else {
        FileKind::Other
    }
}

fn timestamp_of(nanos: u64) -> Timestamp {
    Timestamp {
        seconds: nanos / 1_000_000_000,
        // Below 10^9, so it fits.
        nanos: (nanos % 1_000_000_000) as u32,
    }
}

/// Retries a call the runtime interrupted, as the native binding does.
fn retrying<T>(mut call: impl FnMut() -> Result<T, sys::Errno>) -> Result<T, Error> {
    loop {
        match call() {
            Err(errno::INTR) => {}
            other => return other.map_err(error_of_errno),
        }
    }
}

/// A file opened by [`Filesystem::open_file`], with the `fstat` taken when
/// it was opened (to refuse anything but a regular file). Its mode comes
/// from the host's table by the path it was opened at.
#[derive(Debug)]
pub struct WasiReader {
    fd: OwnedFd,
    stat: sys::Stat,
    root: Root,
    path: String,
    modes: Rc<Modes>,
}

impl FileReader for WasiReader {
    fn metadata(&self) -> Result<Metadata, Error> {
        Ok(self.modes.metadata(self.root, &self.path, &self.stat))
    }
}

impl Read for WasiReader {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
        retrying(|| sys::fd_read(&self.fd, buf))
    }
}

/// A file created by [`Filesystem::create_new_file`]; its path is where
/// [`FileWriter::set_mode`] defers the mode to.
#[derive(Debug)]
pub struct WasiWriter {
    fd: OwnedFd,
    root: Root,
    path: String,
    modes: Rc<Modes>,
}

impl Write for WasiWriter {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Error> {
        retrying(|| sys::fd_write(&self.fd, buf))
    }
}

impl FileWriter for WasiWriter {
    fn sync(&mut self) -> Result<(), Error> {
        retrying(|| sys::fd_sync(&self.fd))
    }

    /// Defers the mode (see [`crate::modes`]): preview 1 cannot set one.
    /// The deferred mode follows the file through renames. Refuses, like
    /// the native binding, bits above `0o7777`.
    fn set_mode(&mut self, mode: u32) -> Result<(), Error> {
        if mode & !0o7777 != 0 {
            return Err(Error::new(ErrorKind::InvalidInput));
        }
        let (root, path) = (self.root, self.path.as_str());
        let mut deferred = self.modes.deferred.borrow_mut();
        deferred.retain(|(r, p, _)| !(*r == root && p == path));
        deferred.push((root, String::from(path), mode));
        Ok(())
    }
}

impl Filesystem for WasiFilesystem {
    type Reader = WasiReader;
    type Writer = WasiWriter;
    type Directory = WasiDirectory;

    fn open_dir(&self, root: Root, path: &str) -> Result<WasiDirectory, Error> {
        let fd = self.open_dir_with_rights(
            root,
            path,
            sys::RIGHTS_PATH_FILESTAT_GET
                | sys::RIGHTS_PATH_RENAME_SOURCE
                | sys::RIGHTS_PATH_RENAME_TARGET
                | sys::RIGHTS_FD_READDIR,
        )?;
        Ok(WasiDirectory {
            fd,
            root,
            path: String::from(path),
            modes: Rc::clone(&self.modes),
        })
    }

    fn open_file(&self, root: Root, path: &str) -> Result<WasiReader, Error> {
        let dir = self.fd(root);
        // Checked before opening: a FIFO would block the open itself. A
        // symlink is left to the no-follow open, whose ELOOP is what the
        // native binding reports too.
        let before =
            sys::path_filestat_get_nofollow(dir, wasi_path(path)).map_err(error_of_errno)?;
        if before.filetype != sys::FILETYPE_SYMBOLIC_LINK {
            check_regular(before.filetype)?;
        }
        let fd = sys::path_open(
            dir,
            sys::NOFOLLOW,
            wasi_path(path),
            0,
            sys::RIGHTS_FD_READ | sys::RIGHTS_FD_FILESTAT_GET,
            0,
        )
        .map_err(error_of_errno)?;
        // Checked again on the descriptor, in case the path was swapped.
        let after = sys::fd_filestat_get(&fd).map_err(error_of_errno)?;
        check_regular(after.filetype)?;
        Ok(WasiReader {
            fd,
            stat: after,
            root,
            path: String::from(path),
            modes: Rc::clone(&self.modes),
        })
    }

    fn create_new_file(&self, root: Root, path: &str) -> Result<WasiWriter, Error> {
        // CREAT|EXCL never follows a symlink, dangling or not.
        let fd = sys::path_open(
            self.fd(root),
            sys::NOFOLLOW,
            wasi_path(path),
            sys::OFLAGS_CREAT | sys::OFLAGS_EXCL,
            sys::RIGHTS_FD_WRITE
                | sys::RIGHTS_FD_SYNC
                | sys::RIGHTS_FD_DATASYNC
                | sys::RIGHTS_FD_FILESTAT_GET,
            0,
        )
        .map_err(error_of_errno)?;
        Ok(WasiWriter {
            fd,
            root,
            path: String::from(path),
            modes: Rc::clone(&self.modes),
        })
    }

    fn create_dir(&self, root: Root, path: &str) -> Result<(), Error> {
        sys::path_create_directory(self.fd(root), wasi_path(path)).map_err(error_of_errno)
    }

    /// One `path_rename` of one name between the two descriptors.
    /// [`Replace::Never`] is `Unsupported` (see the module docs).
    fn rename(
        &self,
        from: &WasiDirectory,
        from_name: Name<'_>,
        to: &WasiDirectory,
        to_name: Name<'_>,
        replace: Replace,
    ) -> Result<(), Error> {
        if replace == Replace::Never {
            return Err(Error::new(ErrorKind::Unsupported));
        }
        sys::path_rename(from.fd.raw(), &from_name, to.fd.raw(), &to_name)
            .map_err(error_of_errno)?;
        self.modes.moved(
            (from.root, &from.child(&from_name)),
            (to.root, &to.child(&to_name)),
        );
        Ok(())
    }

    fn remove_file(&self, root: Root, path: &str) -> Result<(), Error> {
        // unlinkat never follows the last component.
        sys::path_unlink_file(self.fd(root), wasi_path(path)).map_err(error_of_errno)?;
        self.forget_deferred(root, path);
        Ok(())
    }

    fn remove_dir(&self, root: Root, path: &str) -> Result<(), Error> {
        sys::path_remove_directory(self.fd(root), wasi_path(path)).map_err(error_of_errno)?;
        self.forget_deferred(root, path);
        Ok(())
    }

    fn read_dir(
        &self,
        root: Root,
        path: &str,
        visit: &mut dyn FnMut(&str, FileKind) -> ControlFlow<()>,
    ) -> Result<(), Error> {
        let dir = self.open_dir_with_rights(root, path, sys::RIGHTS_FD_READDIR)?;
        let entries = self.list(&dir)?;
        drop(dir);
        for (name, filetype) in entries {
            // Not UTF-8: neither a cache entry nor a path the core could ask
            // about; a lossy rendering could alias a real name.
            let Ok(name) = core::str::from_utf8(&name) else {
                continue;
            };
            if name == "." || name == ".." {
                continue;
            }
            let kind = if filetype == sys::FILETYPE_UNKNOWN {
                let mut child = String::from(path);
                if !child.is_empty() {
                    child.push('/');
                }
                child.push_str(name);
                match sys::path_filestat_get_nofollow(self.fd(root), &child) {
                    Ok(stat) => kind_of(stat.filetype),
                    // Removed since the listing.
                    Err(errno::NOENT) => continue,
                    Err(code) => return Err(error_of_errno(code)),
                }
            } else {
                kind_of(filetype)
            };
            if visit(name, kind).is_break() {
                break;
            }
        }
        Ok(())
    }

    fn metadata(&self, root: Root, path: &str) -> Result<Metadata, Error> {
        let stat = sys::path_filestat_get_nofollow(self.fd(root), wasi_path(path))
            .map_err(error_of_errno)?;
        Ok(self.modes.metadata(root, path, &stat))
    }

    fn set_modified(&self, root: Root, path: &str, modified: Timestamp) -> Result<(), Error> {
        if modified.nanos >= 1_000_000_000 {
            return Err(Error::new(ErrorKind::InvalidInput));
        }
        let nanos = modified
            .seconds
            .checked_mul(1_000_000_000)
            .and_then(|n| n.checked_add(u64::from(modified.nanos)))
            .ok_or(Error::new(ErrorKind::InvalidInput))?;
        sys::path_set_mtime_nofollow(self.fd(root), wasi_path(path), nanos).map_err(error_of_errno)
    }

    fn sync_dir(&self, root: Root, path: &str) -> Result<(), Error> {
        let dir =
            self.open_dir_with_rights(root, path, sys::RIGHTS_FD_SYNC | sys::RIGHTS_FD_READDIR)?;
        loop {
            match sys::fd_sync(&dir) {
                Ok(()) => return Ok(()),
                Err(errno::INTR) => {}
                // wasmtime's preview 1 refuses fd_sync on a directory
                // descriptor (which `dir` is: it was opened with
                // O_DIRECTORY); see the module docs for what that costs.
                Err(errno::BADF) => return Ok(()),
                Err(code) => return Err(error_of_errno(code)),
            }
        }
    }

    fn supports_sync_filesystem(&self) -> bool {
        cfg!(feature = "host-sync")
    }

    /// With the `host-sync` feature, the host's `syncfs` (see
    /// [`crate::HOST_SYNC_FILESYSTEM`]); without it, `Unsupported`, and the
    /// core syncs file by file.
    fn sync_filesystem(&self, root: Root) -> Result<(), Error> {
        #[cfg(feature = "host-sync")]
        {
            let root = match root {
                Root::Workspace => 0,
                Root::Cache => 1,
            };
            retrying(|| sys::sync_filesystem(root))
        }
        #[cfg(not(feature = "host-sync"))]
        {
            let _ = root;
            Err(Error::new(ErrorKind::Unsupported))
        }
    }
}

fn check_regular(filetype: u8) -> Result<(), Error> {
    match kind_of(filetype) {
        FileKind::File => Ok(()),
        FileKind::Dir => Err(Error::new(ErrorKind::IsADirectory)),
        FileKind::Symlink => Err(Error::new(ErrorKind::SymlinkRefused)),
        // A FIFO or device is never cache content (SAFE-1), as natively.
        FileKind::Other => Err(Error::new(ErrorKind::InvalidInput)),
    }
}
