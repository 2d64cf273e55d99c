//! Fuzz target `breaker_file` (REMOTE-17, SAFE-1): the circuit-breaker
//! file of a cache directory, shared by every process on it.
//!
//! [`BreakerBook::decode`] never panics, and what it reads survives a
//! write and a read: the book it decodes encodes to bytes that decode to
//! the same book and encode to the same bytes again, so that no process
//! reads back another state than the one it wrote. (A book whose encoding
//! would pass the file's size limit is not written back as is; the limit
//! is a read limit, checked first.)

use cachet_core::remote::breaker::{BreakerBook, MAX_BREAKER_FILE_BYTES};

/// Runs the `breaker_file` checks on `data`; panics on a violation.
pub fn run(data: &[u8]) {
    let book = BreakerBook::decode(data);
    let encoded = book.encode();
    if encoded.len() > MAX_BREAKER_FILE_BYTES {
        return;
    }
    let reread = BreakerBook::decode(&encoded);
    assert_eq!(
        reread, book,
        "REMOTE-17: a breaker book changed through write → read"
    );
    assert!(
        reread.encode() == encoded,
        "REMOTE-17: a breaker book's encoding is not stable"
    );
}
