//! The file-hash memo: content hashes of input files kept between runs, so
//! that a hit costs a `stat` per input instead of reading every byte
//! (spec §10, MEMO-1..7).
//!
//! Everything that decides whether a memoised hash may stand in for reading
//! the file lives here, once: the on-disk codec ([`Memo::decode`],
//! [`Memo::encode`], MEMO-2), the racy-file rule ([`is_racy`], MEMO-4) and
//! the match on every field that could reveal a change ([`Memo::lookup`],
//! MEMO-3). A host only supplies a [`FileStat`] of the file it actually
//! hashed, a clock reading taken before it looked at any input, and the
//! bytes of the memo file (MEMO-1 names where it lives).
//!
//! The memo can only ever save work: a record that is missing, stale,
//! racy, for another hash function, or part of a file that does not decode
//! means the file is read and hashed as if there were no memo (MEMO-5), so
//! a key computed with the memo always equals the key computed without it.

use alloc::vec::Vec;

use crate::fs::Timestamp;
use crate::hash::{Digest, HashFunction};

/// The bytes every memo file starts with.
pub const MAGIC: &[u8; 12] = b"cachet-memo\0";

/// The version of the memo format this code reads and writes (MEMO-2).
pub const VERSION: u32 = 1;

/// The largest number of records a memo keeps; older records are dropped
/// first when there are more (MEMO-6). About 80 bytes each: 21 MiB at most.
pub const MAX_RECORDS: usize = 1 << 18;

/// Records not seen for this many days are dropped when the memo is
/// written again (MEMO-6).
pub const MAX_UNSEEN_DAYS: u32 = 30;

/// How close to the clock reading a timestamp may be before its file is
/// racy (MEMO-4), for files whose timestamps carry nanoseconds. Kernels
/// stamp files from a clock that ticks every 1 to 10 ms; this leaves room
/// for the coarsest of them.
pub const RACY_WINDOW_NANOS: u64 = 50_000_000;

/// The same, for files whose timestamps are whole seconds (filesystems that
/// keep no finer time, such as FAT's 2-second modification times).
pub const RACY_WINDOW_COARSE_NANOS: u64 = 3_000_000_000;

const HEADER_BYTES: usize = MAGIC.len() + 4 + 8;
const RECORD_BYTES: usize = 8 + 8 + 8 + 12 + 12 + 1 + 32 + 4;
const TRAILER_BYTES: usize = 32;

/// The largest memo file [`Memo::decode`] accepts; a host reads at most
/// this many bytes of it.
pub const MAX_FILE_BYTES: usize = HEADER_BYTES + MAX_RECORDS * RECORD_BYTES + TRAILER_BYTES;

/// The name prefix of a memo writer's scratch files in `memo/` (MEMO-6).
pub const SCRATCH_PREFIX: &str = ".file-hashes-";

/// How old, in seconds, a scratch file must be to belong to a writer that
/// died before its rename (MEMO-6): far longer than any write takes, so a
/// live writer never loses its file.
pub const ABANDONED_SCRATCH_SECS: u64 = 60 * 60;

/// What a host reports about a file it hashes, taken from the open file it
/// read (MEMO-3). Every field must be the file's own, never a guess:
/// a host that cannot report one of them must not use the memo.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileStat {
    /// The device the file lives on.
    pub device: u64,
    /// The file's inode number on that device.
    pub inode: u64,
    /// Its size in bytes.
    pub size: u64,
    /// Its last modification time.
    pub modified: Timestamp,
    /// Its last status change time (`ctime`), which no user call can set
    /// back, unlike the modification time (`touch -r`).
    pub changed: Timestamp,
}

/// One memoised content hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Record {
    stat: FileStat,
    function: HashFunction,
    digest: Digest,
    /// Days since the Unix epoch when the record was last used or made.
    last_seen_day: u32,
}

impl Record {
    fn slot(&self) -> (u64, u64, u8) {
        (self.stat.device, self.stat.inode, self.function.id())
    }
}

/// The memo: content hashes by file identity, sorted by (device, inode,
/// hash function) so that a lookup is a binary search.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Memo {
    records: Vec<Record>,
    changed: bool,
}

/// Whether a file with `stat` is too recently modified or changed for its
/// memoised hash to be trusted, given `now`, a clock reading taken before
/// the stat (MEMO-4).
///
/// A change that lands in the same clock tick as the one recorded would
/// leave every timestamp as it was: git calls such files racily clean. A
/// file is trusted only when both its timestamps lie clearly before `now`,
/// so that any later change must move at least one of them. Timestamps
/// after `now` (a clock set back, a file from another machine) are racy
/// too.
pub fn is_racy(stat: &FileStat, now: Timestamp) -> bool {
    let coarse = stat.modified.nanos == 0 && stat.changed.nanos == 0;
    let window = if coarse {
        RACY_WINDOW_COARSE_NANOS
    } else {
        RACY_WINDOW_NANOS
    };
    let now = nanos(now);
    [stat.modified, stat.changed]
        .iter()
        .any(|time| nanos(*time).saturating_add(u128::from(window)) >= now)
}

fn nanos(time: Timestamp) -> u128 {
    u128::from(time.seconds) * 1_000_000_000 + u128::from(time.nanos)
}

fn day_of(now: Timestamp) -> u32 {
    u32::try_from(now.seconds / 86_400).unwrap_or(u32::MAX)
}

impl Memo {
    /// An empty memo.
    pub fn new() -> Memo {
        Memo::default()
    }

    /// How many records the memo holds.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether the memo holds no record.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Whether anything was recorded or refreshed since the memo was
    /// decoded, so that it is worth writing back.
    pub fn is_changed(&self) -> bool {
        self.changed
    }

    fn position(&self, slot: (u64, u64, u8)) -> Result<usize, usize> {
        self.records
            .binary_search_by(|record| record.slot().cmp(&slot))
    }

    /// The memoised hash of the file with `stat` under `function`, if a
    /// record matches every field of `stat` (MEMO-3), without marking it
    /// seen: for lookups that run on several threads at once, each
    /// followed by [`Memo::lookup`] on one.
    pub fn get(&self, stat: &FileStat, function: HashFunction) -> Option<Digest> {
        let index = self
            .position((stat.device, stat.inode, function.id()))
            .ok()?;
        self.records
            .get(index)
            .filter(|record| record.stat == *stat)
            .map(|record| record.digest)
    }

    /// The memoised hash of the file with `stat` under `function`, if a
    /// record matches every field of `stat` (MEMO-3). `now` marks the
    /// record as seen today.
    pub fn lookup(
        &mut self,
        stat: &FileStat,
        function: HashFunction,
        now: Timestamp,
    ) -> Option<Digest> {
        let index = self
            .position((stat.device, stat.inode, function.id()))
            .ok()?;
        let record = self.records.get_mut(index)?;
        if record.stat != *stat {
            return None;
        }
        let today = day_of(now);
        if record.last_seen_day != today {
            record.last_seen_day = today;
            self.changed = true;
        }
        Some(record.digest)
    }

    /// Records that the file with `stat` hashes to `digest` under
    /// `function`, unless the file is racy at `now` (MEMO-4). `stat` must
    /// describe the very bytes that were hashed: taken from the open file
    /// before reading it, and equal to a stat taken after. Returns whether
    /// it was recorded.
    pub fn record(
        &mut self,
        stat: &FileStat,
        function: HashFunction,
        digest: Digest,
        now: Timestamp,
    ) -> bool {
        if is_racy(stat, now) {
            return false;
        }
        let record = Record {
            stat: *stat,
            function,
            digest,
            last_seen_day: day_of(now),
        };
        match self.position(record.slot()) {
            Ok(index) => {
                if let Some(slot) = self.records.get_mut(index)
                    && *slot != record
                {
                    *slot = record;
                    self.changed = true;
                }
            }
            Err(index) => {
                self.records.insert(index, record);
                self.changed = true;
            }
        }
        true
    }

    /// Decodes a memo file (MEMO-2). Anything that is not a whole memo of
    /// this version, with its checksum intact and its records in order, is
    /// `None`: the caller starts from an empty memo (MEMO-5).
    pub fn decode(bytes: &[u8]) -> Option<Memo> {
        if bytes.len() < HEADER_BYTES + TRAILER_BYTES || bytes.len() > MAX_FILE_BYTES {
            return None;
        }
        let (body, trailer) = bytes.split_at(bytes.len() - TRAILER_BYTES);
        if blake3::hash(body).as_bytes() != trailer {
            return None;
        }
        let mut reader = Reader { bytes: body };
        if reader.take(MAGIC.len())? != MAGIC || reader.u32()? != VERSION {
            return None;
        }
        let count = usize::try_from(reader.u64()?).ok()?;
        if count > MAX_RECORDS || reader.bytes.len() != count.checked_mul(RECORD_BYTES)? {
            return None;
        }
        let mut records: Vec<Record> = Vec::with_capacity(count);
        for _ in 0..count {
            let stat = FileStat {
                device: reader.u64()?,
                inode: reader.u64()?,
                size: reader.u64()?,
                modified: reader.timestamp()?,
                changed: reader.timestamp()?,
            };
            let id = *reader.take(1)?.first()?;
            let function = HashFunction::ALL
                .into_iter()
                .find(|function| function.id() == id)?;
            let mut digest = [0u8; 32];
            digest.copy_from_slice(reader.take(32)?);
            let record = Record {
                stat,
                function,
                digest: Digest(digest),
                last_seen_day: reader.u32()?,
            };
            if records
                .last()
                .is_some_and(|last| last.slot() >= record.slot())
            {
                return None;
            }
            records.push(record);
        }
        Some(Memo {
            records,
            changed: false,
        })
    }

    /// Encodes the memo for writing back (MEMO-2), first dropping records
    /// not seen for [`MAX_UNSEEN_DAYS`] before `now` and, past
    /// [`MAX_RECORDS`], the least recently seen ones (MEMO-6).
    pub fn encode(&self, now: Timestamp) -> Vec<u8> {
        let oldest_kept = day_of(now).saturating_sub(MAX_UNSEEN_DAYS);
        let mut kept: Vec<&Record> = self
            .records
            .iter()
            .filter(|record| record.last_seen_day >= oldest_kept)
            .collect();
        if kept.len() > MAX_RECORDS {
            let mut days: Vec<u32> = kept.iter().map(|record| record.last_seen_day).collect();
            days.sort_unstable_by(|a, b| b.cmp(a));
            let cutoff = days.get(MAX_RECORDS - 1).copied().unwrap_or(0);
            let mut at_cutoff = MAX_RECORDS - days.iter().take_while(|day| **day > cutoff).count();
            kept.retain(|record| {
                if record.last_seen_day > cutoff {
                    true
                } else if record.last_seen_day == cutoff && at_cutoff > 0 {
                    at_cutoff -= 1;
                    true
                } else {
                    false
                }
            });
        }
        let mut bytes =
            Vec::with_capacity(HEADER_BYTES + kept.len() * RECORD_BYTES + TRAILER_BYTES);
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&VERSION.to_le_bytes());
        bytes.extend_from_slice(&(kept.len() as u64).to_le_bytes());
        for record in kept {
            let stat = &record.stat;
            for value in [stat.device, stat.inode, stat.size] {
                bytes.extend_from_slice(&value.to_le_bytes());
            }
            for time in [stat.modified, stat.changed] {
                bytes.extend_from_slice(&time.seconds.to_le_bytes());
                bytes.extend_from_slice(&time.nanos.to_le_bytes());
            }
            bytes.push(record.function.id());
            bytes.extend_from_slice(&record.digest.0);
            bytes.extend_from_slice(&record.last_seen_day.to_le_bytes());
        }
        let checksum = blake3::hash(&bytes);
        bytes.extend_from_slice(checksum.as_bytes());
        bytes
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.bytes.len() < n {
            return None;
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Some(head)
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    fn timestamp(&mut self) -> Option<Timestamp> {
        let seconds = self.u64()?;
        let nanos = self.u32()?;
        (nanos < 1_000_000_000).then_some(Timestamp { seconds, nanos })
    }
}

#[cfg(test)]
mod tests;
