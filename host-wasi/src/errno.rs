//! The binding's one error mapping: WASI preview 1 errno codes onto the
//! core's [`ErrorKind`].
//!
//! The choices mirror the core's mapping of `std::io::Error` (its
//! `From<std::io::Error>` impl for [`Error`], which the native binding
//! uses) code by code, so that the core takes the same branch whichever
//! host it runs on: a symlink refused by a no-follow lookup (`ELOOP`) is
//! [`ErrorKind::SymlinkRefused`] in both, an unknown code is
//! [`ErrorKind::Other`] in both.
//!
//! [`Error::os_code`] carries the Linux `errno` that corresponds to the WASI
//! code, not the WASI number itself: error messages print it ("os error
//! 2"), and the guest's messages must read exactly like the native ones
//! (issue #4: byte-identical output). `ENOTCAPABLE` has no Linux
//! counterpart; `cap-std` reports the same refusal natively without an
//! errno, so it carries none here either.
//!
//! The codes are the fixed values of the `wasi_snapshot_preview1` `errno`
//! enumeration, written out here so the mapping is a plain function that
//! can be tested on any target.

use cachet_core::fs::{Error, ErrorKind};

/// `EACCES`: permission denied.
pub const ACCES: u16 = 2;
/// `EBADF`: bad file descriptor (also how wasmtime refuses `fd_sync` on a
/// directory descriptor).
pub const BADF: u16 = 8;
/// `EDQUOT`: disk quota exceeded.
pub const DQUOT: u16 = 19;
/// `EEXIST`: file exists.
pub const EXIST: u16 = 20;
/// `EILSEQ`: illegal byte sequence.
pub const ILSEQ: u16 = 25;
/// `EINTR`: interrupted call.
pub const INTR: u16 = 27;
/// `EINVAL`: invalid argument.
pub const INVAL: u16 = 28;
/// `EISDIR`: is a directory.
pub const ISDIR: u16 = 31;
/// `ELOOP`: a symlink was met where it is not followed, or a loop.
pub const LOOP: u16 = 32;
/// `ENAMETOOLONG`: file name too long.
pub const NAMETOOLONG: u16 = 37;
/// `ENOENT`: no such file or directory.
pub const NOENT: u16 = 44;
/// `ENOSPC`: no space left on device.
pub const NOSPC: u16 = 51;
/// `ENOSYS`: function not supported.
pub const NOSYS: u16 = 52;
/// `ENOTDIR`: not a directory.
pub const NOTDIR: u16 = 54;
/// `ENOTEMPTY`: directory not empty.
pub const NOTEMPTY: u16 = 55;
/// `ENOTSUP`: not supported.
pub const NOTSUP: u16 = 58;
/// `EPERM`: operation not permitted (how wasmtime refuses a write through a
/// read-only preopen).
pub const PERM: u16 = 63;
/// `EROFS`: read-only file system.
pub const ROFS: u16 = 69;
/// `EXDEV`: cross-device link.
pub const XDEV: u16 = 75;
/// `ENOTCAPABLE`: the capability does not allow the call.
pub const NOTCAPABLE: u16 = 76;

/// The core [`ErrorKind`] for a WASI errno code.
pub fn kind_of_errno(code: u16) -> ErrorKind {
    match code {
        NOENT => ErrorKind::NotFound,
        EXIST => ErrorKind::AlreadyExists,
        NOTDIR => ErrorKind::NotADirectory,
        ISDIR => ErrorKind::IsADirectory,
        NOTEMPTY => ErrorKind::DirectoryNotEmpty,
        // ENOTCAPABLE is WASI's own word for what cap-std reports natively as
        // PermissionDenied: a path or right outside the capability.
        ACCES | PERM | NOTCAPABLE => ErrorKind::PermissionDenied,
        ROFS => ErrorKind::ReadOnly,
        // O_NOFOLLOW on a symlink and a symlink loop both report ELOOP;
        // either way a symlink was not followed.
        LOOP => ErrorKind::SymlinkRefused,
        XDEV => ErrorKind::CrossesDevices,
        NOSPC | DQUOT => ErrorKind::StorageFull,
        NOSYS | NOTSUP => ErrorKind::Unsupported,
        INVAL | NAMETOOLONG | ILSEQ => ErrorKind::InvalidInput,
        _ => ErrorKind::Other,
    }
}

/// The Linux `errno` for a WASI errno code, where there is one.
pub fn linux_errno(code: u16) -> Option<i32> {
    let linux = match code {
        PERM => 1,
        NOENT => 2,
        INTR => 4,
        29 => 5, // EIO
        60 => 6, // ENXIO
        BADF => 9,
        6 => 11,  // EAGAIN
        48 => 12, // ENOMEM
        ACCES => 13,
        10 => 16, // EBUSY
        EXIST => 17,
        XDEV => 18,
        43 => 19, // ENODEV
        NOTDIR => 20,
        ISDIR => 21,
        INVAL => 22,
        41 => 23, // ENFILE
        33 => 24, // EMFILE
        74 => 26, // ETXTBSY
        22 => 27, // EFBIG
        NOSPC => 28,
        70 => 29, // ESPIPE
        ROFS => 30,
        34 => 31, // EMLINK
        NAMETOOLONG => 36,
        NOSYS => 38,
        NOTEMPTY => 39,
        LOOP => 40,
        61 => 75, // EOVERFLOW
        ILSEQ => 84,
        NOTSUP => 95,
        72 => 116, // ESTALE
        DQUOT => 122,
        _ => return None,
    };
    Some(linux)
}

/// A core [`Error`] for a WASI errno code (see the module docs for
/// [`Error::os_code`]).
pub fn error_of_errno(code: u16) -> Error {
    Error {
        kind: kind_of_errno(code),
        os_code: linux_errno(code),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_like_the_native_binding() {
        let expected = [
            (NOENT, ErrorKind::NotFound),
            (EXIST, ErrorKind::AlreadyExists),
            (NOTDIR, ErrorKind::NotADirectory),
            (ISDIR, ErrorKind::IsADirectory),
            (NOTEMPTY, ErrorKind::DirectoryNotEmpty),
            (ACCES, ErrorKind::PermissionDenied),
            (PERM, ErrorKind::PermissionDenied),
            (NOTCAPABLE, ErrorKind::PermissionDenied),
            (ROFS, ErrorKind::ReadOnly),
            (LOOP, ErrorKind::SymlinkRefused),
            (XDEV, ErrorKind::CrossesDevices),
            (NOSPC, ErrorKind::StorageFull),
            (DQUOT, ErrorKind::StorageFull),
            (NOSYS, ErrorKind::Unsupported),
            (NOTSUP, ErrorKind::Unsupported),
            (INVAL, ErrorKind::InvalidInput),
            (NAMETOOLONG, ErrorKind::InvalidInput),
            (ILSEQ, ErrorKind::InvalidInput),
            (BADF, ErrorKind::Other),
            (29, ErrorKind::Other),
        ];
        for (code, kind) in expected {
            assert_eq!(kind_of_errno(code), kind, "errno {code}");
        }
    }

    #[test]
    fn codes_carry_linux_errnos() {
        assert_eq!(error_of_errno(NOENT).os_code, Some(2));
        assert_eq!(error_of_errno(LOOP).os_code, Some(40));
        assert_eq!(error_of_errno(EXIST).os_code, Some(17));
        assert_eq!(error_of_errno(NOTEMPTY).os_code, Some(39));
        assert_eq!(error_of_errno(NOTCAPABLE).os_code, None);
        assert_eq!(error_of_errno(1000).os_code, None);
    }
}
