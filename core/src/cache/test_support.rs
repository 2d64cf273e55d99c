//! What the core's unit tests of cache operations and of the remote chain
//! share: sample keys, a fixed clock, and a machine (an in-memory workspace
//! and cache).

use super::{Cache, DeterministicContext};
use crate::fs::Timestamp;
use crate::hash::Digest;
use crate::key::Key;
use crate::memfs::MemFs;

/// A key of 32 equal bytes.
pub(crate) fn key(byte: u8) -> Key {
    Key(Digest([byte; 32]))
}

/// A context whose clock and scratch suffixes are fixed.
pub(crate) fn ctx() -> DeterministicContext {
    DeterministicContext {
        now: Timestamp::from_seconds(1_000_000),
        next_suffix: 1,
    }
}

/// A machine: its own in-memory filesystem and a cache over it, with the
/// filesystem's clock at the same time as [`ctx`]'s.
pub(crate) fn machine() -> (MemFs, Cache<MemFs>) {
    let fs = MemFs::new();
    fs.set_now(Timestamp::from_seconds(1_000_000));
    let cache = Cache::new(fs.clone());
    (fs, cache)
}
