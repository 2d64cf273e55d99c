//! The crate's only `unsafe` code: safe wrappers over the raw WASI preview 1
//! imports of the `wasip1` crate.
//!
//! Every function here passes Rust slices and strings whose pointers and
//! lengths describe live guest memory, which is all the imports require;
//! errors come back as raw errno codes for [`crate::errno`] to map. Nothing
//! here decides anything about the cache.
#![allow(unsafe_code)]

use alloc::vec::Vec;

/// A WASI errno code.
pub(crate) type Errno = u16;

// The binding's errno constants must be the spec's values.
const _: () = {
    assert!(crate::errno::NOENT == wasip1::ERRNO_NOENT.raw());
    assert!(crate::errno::LOOP == wasip1::ERRNO_LOOP.raw());
    assert!(crate::errno::BADF == wasip1::ERRNO_BADF.raw());
    assert!(crate::errno::NOTCAPABLE == wasip1::ERRNO_NOTCAPABLE.raw());
    assert!(crate::errno::INTR == wasip1::ERRNO_INTR.raw());
    assert!(crate::errno::XDEV == wasip1::ERRNO_XDEV.raw());
};

pub(crate) use wasip1::{
    DIRCOOKIE_START, FSTFLAGS_MTIM, OFLAGS_CREAT, OFLAGS_DIRECTORY, OFLAGS_EXCL,
    RIGHTS_FD_DATASYNC, RIGHTS_FD_FILESTAT_GET, RIGHTS_FD_READ, RIGHTS_FD_READDIR, RIGHTS_FD_SYNC,
    RIGHTS_FD_WRITE, RIGHTS_PATH_FILESTAT_GET, RIGHTS_PATH_RENAME_SOURCE,
    RIGHTS_PATH_RENAME_TARGET, Rights,
};

/// `filetype` codes, as raw bytes (as `fd_readdir` delivers them).
pub(crate) const FILETYPE_UNKNOWN: u8 = wasip1::FILETYPE_UNKNOWN.raw();
pub(crate) const FILETYPE_DIRECTORY: u8 = wasip1::FILETYPE_DIRECTORY.raw();
pub(crate) const FILETYPE_REGULAR_FILE: u8 = wasip1::FILETYPE_REGULAR_FILE.raw();
pub(crate) const FILETYPE_SYMBOLIC_LINK: u8 = wasip1::FILETYPE_SYMBOLIC_LINK.raw();

/// What the binding uses of a `filestat`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Stat {
    pub(crate) filetype: u8,
    pub(crate) size: u64,
    pub(crate) mtim: u64,
}

impl From<wasip1::Filestat> for Stat {
    fn from(stat: wasip1::Filestat) -> Stat {
        Stat {
            filetype: stat.filetype.raw(),
            size: stat.size,
            mtim: stat.mtim,
        }
    }
}

/// Lookup flags that never follow a symlink in the last component.
pub(crate) const NOFOLLOW: wasip1::Lookupflags = 0;

/// A file descriptor this process owns; closed on drop.
#[derive(Debug)]
pub(crate) struct OwnedFd(u32);

impl OwnedFd {
    pub(crate) fn raw(&self) -> u32 {
        self.0
    }
}

impl Drop for OwnedFd {
    fn drop(&mut self) {
        // SAFETY: the descriptor is owned by this value and closed once.
        // A close error leaves nothing to recover.
        let _ = unsafe { wasip1::fd_close(self.0) };
    }
}

/// The directory name of preopened descriptor `fd`: `Ok(None)` when `fd` is
/// a preopen of another kind, `Err(BADF)` past the last descriptor.
pub(crate) fn prestat_dir_name(fd: u32) -> Result<Option<Vec<u8>>, Errno> {
    // SAFETY: plain call; the result is returned by value.
    let prestat = unsafe { wasip1::fd_prestat_get(fd) }.map_err(|e| e.raw())?;
    if prestat.tag != wasip1::PREOPENTYPE_DIR.raw() {
        return Ok(None);
    }
    // SAFETY: `tag` says the union holds the `dir` variant.
    let len = unsafe { prestat.u.dir.pr_name_len };
    let mut name = alloc::vec![0u8; len];
    // SAFETY: `name` is a live, writable buffer of exactly `len` bytes.
    unsafe { wasip1::fd_prestat_dir_name(fd, name.as_mut_ptr(), name.len()) }
        .map_err(|e| e.raw())?;
    Ok(Some(name))
}

/// `path_open` relative to `dir`.
pub(crate) fn path_open(
    dir: u32,
    lookup: wasip1::Lookupflags,
    path: &str,
    oflags: wasip1::Oflags,
    rights: Rights,
    fdflags: wasip1::Fdflags,
) -> Result<OwnedFd, Errno> {
    // SAFETY: `path` is a live string; the new descriptor is owned by the
    // returned value.
    unsafe { wasip1::path_open(dir, lookup, path, oflags, rights, 0, fdflags) }
        .map(OwnedFd)
        .map_err(|e| e.raw())
}

/// Reads into `buf`, returning how many bytes arrived (0 at end of file).
pub(crate) fn fd_read(fd: &OwnedFd, buf: &mut [u8]) -> Result<usize, Errno> {
    let iov = wasip1::Iovec {
        buf: buf.as_mut_ptr(),
        buf_len: buf.len(),
    };
    // SAFETY: the iovec describes `buf`, which is live and writable.
    unsafe { wasip1::fd_read(fd.raw(), &[iov]) }.map_err(|e| e.raw())
}

/// Writes from `buf`, returning how many bytes were taken.
pub(crate) fn fd_write(fd: &OwnedFd, buf: &[u8]) -> Result<usize, Errno> {
    let iov = wasip1::Ciovec {
        buf: buf.as_ptr(),
        buf_len: buf.len(),
    };
    // SAFETY: the iovec describes `buf`, which is live.
    unsafe { wasip1::fd_write(fd.raw(), &[iov]) }.map_err(|e| e.raw())
}

#[cfg(feature = "host-sync")]
// The names are `crate::HOST_MODULE` and `crate::HOST_SYNC_FILESYSTEM`;
// attributes take literals only. A mismatch fails instantiation in the
// embedding's tests.
#[link(wasm_import_module = "cachet:host")]
unsafe extern "C" {
    #[link_name = "sync-filesystem"]
    fn host_sync_filesystem(root: u32) -> u32;
}

/// The host's `syncfs` of the filesystem holding root `root` (0: the
/// workspace, 1: the cache directory); see `crate::HOST_SYNC_FILESYSTEM`.
#[cfg(feature = "host-sync")]
pub(crate) fn sync_filesystem(root: u32) -> Result<(), Errno> {
    // SAFETY: integers in and out; the host owns the call.
    let code = unsafe { host_sync_filesystem(root) };
    match Errno::try_from(code) {
        Ok(0) => Ok(()),
        Ok(errno) => Err(errno),
        Err(_) => Err(crate::errno::INVAL),
    }
}

/// `fsync` on `fd`.
pub(crate) fn fd_sync(fd: &OwnedFd) -> Result<(), Errno> {
    // SAFETY: plain call on an owned descriptor.
    unsafe { wasip1::fd_sync(fd.raw()) }.map_err(|e| e.raw())
}

/// `fstat` on `fd`.
pub(crate) fn fd_filestat_get(fd: &OwnedFd) -> Result<Stat, Errno> {
    // SAFETY: plain call on an owned descriptor.
    unsafe { wasip1::fd_filestat_get(fd.raw()) }
        .map(Stat::from)
        .map_err(|e| e.raw())
}

/// Fills `buf` with directory entries starting at `cookie`; returns the
/// number of bytes used (less than `buf.len()` at the end of the listing).
pub(crate) fn fd_readdir(fd: &OwnedFd, buf: &mut [u8], cookie: u64) -> Result<usize, Errno> {
    // SAFETY: `buf` is live and writable for `buf.len()` bytes.
    unsafe { wasip1::fd_readdir(fd.raw(), buf.as_mut_ptr(), buf.len(), cookie) }
        .map_err(|e| e.raw())
}

/// `mkdirat`.
pub(crate) fn path_create_directory(dir: u32, path: &str) -> Result<(), Errno> {
    // SAFETY: `path` is a live string.
    unsafe { wasip1::path_create_directory(dir, path) }.map_err(|e| e.raw())
}

/// `fstatat`, not following a symlink in the last component.
pub(crate) fn path_filestat_get_nofollow(dir: u32, path: &str) -> Result<Stat, Errno> {
    // SAFETY: `path` is a live string.
    unsafe { wasip1::path_filestat_get(dir, NOFOLLOW, path) }
        .map(Stat::from)
        .map_err(|e| e.raw())
}

/// Sets the modification time (nanoseconds since the epoch) of `path`,
/// not following a symlink in the last component.
pub(crate) fn path_set_mtime_nofollow(dir: u32, path: &str, mtime: u64) -> Result<(), Errno> {
    // SAFETY: `path` is a live string.
    unsafe { wasip1::path_filestat_set_times(dir, NOFOLLOW, path, 0, mtime, FSTFLAGS_MTIM) }
        .map_err(|e| e.raw())
}

/// `renameat` between two directories.
pub(crate) fn path_rename(from_dir: u32, from: &str, to_dir: u32, to: &str) -> Result<(), Errno> {
    // SAFETY: both paths are live strings.
    unsafe { wasip1::path_rename(from_dir, from, to_dir, to) }.map_err(|e| e.raw())
}

/// `unlinkat` of a file or symlink.
pub(crate) fn path_unlink_file(dir: u32, path: &str) -> Result<(), Errno> {
    // SAFETY: `path` is a live string.
    unsafe { wasip1::path_unlink_file(dir, path) }.map_err(|e| e.raw())
}

/// `unlinkat(AT_REMOVEDIR)`.
pub(crate) fn path_remove_directory(dir: u32, path: &str) -> Result<(), Errno> {
    // SAFETY: `path` is a live string.
    unsafe { wasip1::path_remove_directory(dir, path) }.map_err(|e| e.raw())
}
