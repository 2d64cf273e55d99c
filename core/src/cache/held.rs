//! Contents a store keeps in memory for the push that follows it
//! (REMOTE-2): the bytes of small outputs, read from the workspace and
//! hashed once by [`Cache::store_holding`](super::Cache::store_holding),
//! so that the push inlines them into the record (REMOTE-7) without
//! opening and hashing each blob again.
//!
//! They need no verification when the push takes them: this process read
//! them, hashed them, and wrote the local blob from the same buffer, so a
//! content found here under a hash is the content of that hash. What the
//! push reads from the local cache (every content not held) is checked as
//! before.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use crate::hash::Digest;

/// Small contents a store has read and hashed, by content hash, up to a
/// per-content and a total size (the push's inline limits): a store that
/// pushes nothing holds nothing ([`HeldContents::none`]).
#[derive(Default)]
pub struct HeldContents {
    max_bytes: u64,
    budget_bytes: u64,
    /// Every held content, one after another. One allocation rather than
    /// one per content: once it is large, the allocator maps it on its
    /// own and gives it back whole when it is dropped, where a thousand
    /// small ones would stay in the heap under later allocations (the
    /// push's peak RSS was 58 MiB with them, target 64).
    bytes: Vec<u8>,
    /// Where each content is in `bytes`.
    contents: BTreeMap<Digest, (usize, usize)>,
}

/// Counts, not the bytes: a failed assertion should not print 16 MiB.
impl core::fmt::Debug for HeldContents {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("HeldContents")
            .field("contents", &self.contents.len())
            .field("bytes", &self.bytes.len())
            .field("budget_bytes_left", &self.budget_bytes)
            .finish()
    }
}

impl HeldContents {
    /// Holds nothing: what a store without remotes gives.
    pub fn none() -> HeldContents {
        HeldContents::default()
    }

    /// Holds each content of at most `max_bytes`, while all held stay
    /// within `budget_bytes`: for a push, its
    /// [`RemoteOptions`](crate::remote::RemoteOptions)' inline limits. A
    /// `max_bytes` of 0 holds nothing.
    pub fn up_to(max_bytes: u64, budget_bytes: u64) -> HeldContents {
        HeldContents {
            max_bytes,
            budget_bytes,
            bytes: Vec::new(),
            contents: BTreeMap::new(),
        }
    }

    /// Keeps a copy of `bytes`, whose hash is `hash`, if it fits; a
    /// content held already is not held twice.
    pub(crate) fn offer(&mut self, hash: &Digest, bytes: &[u8]) {
        let size = bytes.len() as u64;
        if self.max_bytes == 0
            || size > self.max_bytes
            || size > self.budget_bytes
            || self.contents.contains_key(hash)
        {
            return;
        }
        self.budget_bytes -= size;
        let start = self.bytes.len();
        self.bytes.extend_from_slice(bytes);
        self.contents.insert(*hash, (start, bytes.len()));
    }

    /// The held bytes of the content `hash`.
    pub fn get(&self, hash: &Digest) -> Option<&[u8]> {
        let &(start, len) = self.contents.get(hash)?;
        self.bytes.get(start..start.checked_add(len)?)
    }

    /// How many contents are held.
    pub fn len(&self) -> usize {
        self.contents.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.contents.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_each_content_once_within_both_limits() {
        let mut held = HeldContents::up_to(4, 6);
        let a = Digest([1; 32]);
        let b = Digest([2; 32]);
        let c = Digest([3; 32]);
        held.offer(&a, b"abcd");
        held.offer(&a, b"abcd");
        held.offer(&b, b"too long");
        held.offer(&c, b"xyz");
        held.offer(&b, b"xy");
        assert_eq!(held.get(&a), Some(&b"abcd"[..]));
        assert_eq!(held.get(&c), None, "over the budget left after a");
        assert_eq!(held.get(&b), Some(&b"xy"[..]));
        assert_eq!(held.len(), 2);
        assert!(HeldContents::none().is_empty());
        let mut none = HeldContents::none();
        none.offer(&a, b"");
        assert!(none.is_empty(), "none holds not even an empty content");
        held.offer(&Digest([4; 32]), b"");
        assert_eq!(held.get(&Digest([4; 32])), Some(&b""[..]));
    }
}
