//! The std binding as a library, below the command line: the cap-std
//! filesystem (SAFE-2, OP-2, OP-3), command execution with live and
//! captured streams (DISK-3, CLAIM-1), and file hashing (KEY-2, KEY-5).
//! The whole command, end to end, is the `cli` test binary.

mod exec;
mod fs;
mod hashing;
