//! The std binding as a library, below the command line: the cap-std
//! filesystem (SAFE-2, OP-2, OP-3), command execution with live and
//! captured streams (DISK-3, CLAIM-1), and file hashing (KEY-2, KEY-5).
//! The whole command, end to end, is the `cli` test binary.

mod exec;
mod fs;
mod hashing;

/// Makes a FIFO at `path` (special files that must never be read as
/// inputs, blobs or outputs).
fn mkfifo(path: &std::path::Path) {
    rustix::fs::mknodat(
        rustix::fs::CWD,
        path,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
}
