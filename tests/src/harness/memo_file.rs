//! Fuzz target `memo_file` (MEMO-2, MEMO-5, SAFE-1): the file-hash memo
//! as read from a cache directory, which anyone who can write there may
//! have damaged.
//!
//! - [`Memo::decode`] never panics.
//! - The input with its checksum put right (BLAKE3 of all of it,
//!   appended) gets the fuzzer past the checksum to the records. A memo
//!   that decodes encodes, with no record old enough to drop (the clock at
//!   the epoch), to exactly the bytes it was decoded from: one byte form
//!   per memo, so what one process wrote is what the next one reads.

use alloc::vec::Vec;

use cachet_core::fs::Timestamp;
use cachet_core::hash::{self, HashFunction};
use cachet_core::memo::Memo;

/// Runs the `memo_file` checks on `data`; panics on a violation.
pub fn run(data: &[u8]) {
    round_trips(data);
    let mut fixed = Vec::with_capacity(data.len() + 32);
    fixed.extend_from_slice(data);
    fixed.extend_from_slice(&hash::digest(HashFunction::Blake3, data).0);
    round_trips(&fixed);
}

fn round_trips(bytes: &[u8]) {
    let Some(memo) = Memo::decode(bytes) else {
        return;
    };
    let encoded = memo.encode(Timestamp::from_seconds(0));
    assert!(
        encoded == bytes,
        "MEMO-2: a memo that decodes encodes to other bytes ({} records)",
        memo.len()
    );
}
