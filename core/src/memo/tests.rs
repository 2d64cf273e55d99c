use super::*;
use proptest::prelude::*;

const DAY: u64 = 86_400;

fn at(seconds: u64, nanos: u32) -> Timestamp {
    Timestamp { seconds, nanos }
}

fn stat(inode: u64) -> FileStat {
    FileStat {
        device: 7,
        inode,
        size: 4096,
        modified: at(1_000 * DAY, 123),
        changed: at(1_000 * DAY, 456),
    }
}

/// A clock reading well after `stat`'s timestamps.
fn later() -> Timestamp {
    at(1_000 * DAY + 60, 0)
}

fn digest(byte: u8) -> Digest {
    Digest([byte; 32])
}

#[test]
fn memo_3_a_hash_is_reused_only_when_every_field_matches() {
    let mut memo = Memo::new();
    let known = stat(1);
    assert!(memo.record(&known, HashFunction::Blake3, digest(1), later()));
    assert_eq!(
        memo.lookup(&known, HashFunction::Blake3, later()),
        Some(digest(1))
    );
    assert_eq!(memo.lookup(&known, HashFunction::Sha256, later()), None);
    let changes: [fn(&mut FileStat); 7] = [
        |s| s.device += 1,
        |s| s.inode += 1,
        |s| s.size += 1,
        |s| s.modified.nanos += 1,
        |s| s.modified.seconds -= 1,
        |s| s.changed.nanos += 1,
        |s| s.changed.seconds += 1,
    ];
    for change in changes {
        let mut other = known;
        change(&mut other);
        assert_eq!(
            memo.lookup(&other, HashFunction::Blake3, later()),
            None,
            "{other:?}"
        );
    }
}

#[test]
fn memo_4_files_changed_close_to_the_clock_reading_are_never_recorded() {
    let mut memo = Memo::new();
    let now = at(1_000 * DAY, 100_000_000);
    // Modified 10 ms before the clock reading: within one coarse tick.
    let mut recent = stat(1);
    recent.modified = at(1_000 * DAY, 90_000_000);
    recent.changed = at(900 * DAY, 1);
    assert!(is_racy(&recent, now));
    assert!(!memo.record(&recent, HashFunction::Blake3, digest(1), now));
    // ctime alone counts too (a same-size edit with `touch -r`).
    let mut touched = stat(2);
    touched.modified = at(900 * DAY, 1);
    touched.changed = at(1_000 * DAY, 99_000_000);
    assert!(!memo.record(&touched, HashFunction::Blake3, digest(2), now));
    // Timestamps from the future are racy.
    let mut future = stat(3);
    future.changed = at(2_000 * DAY, 1);
    assert!(!memo.record(&future, HashFunction::Blake3, digest(3), now));
    assert!(memo.is_empty());
    assert!(!memo.is_changed());
    // Clearly older: recorded.
    let mut old = stat(4);
    old.modified = at(1_000 * DAY, 40_000_000);
    old.changed = at(1_000 * DAY, 40_000_000);
    assert!(!is_racy(&old, now));
    assert!(memo.record(&old, HashFunction::Blake3, digest(4), now));
    // Whole-second timestamps get the coarse window.
    let mut coarse = stat(5);
    coarse.modified = at(1_000 * DAY - 2, 0);
    coarse.changed = at(1_000 * DAY - 2, 0);
    assert!(is_racy(&coarse, now));
    coarse.modified = at(1_000 * DAY - 4, 0);
    coarse.changed = at(1_000 * DAY - 4, 0);
    assert!(!is_racy(&coarse, now));
}

#[test]
fn memo_2_round_trips_and_records_replace_their_slot() {
    let mut memo = Memo::new();
    for inode in [5, 1, 3] {
        memo.record(
            &stat(inode),
            HashFunction::Blake3,
            digest(inode as u8),
            later(),
        );
        memo.record(&stat(inode), HashFunction::Sha256, digest(0x80), later());
    }
    let mut newer = stat(3);
    newer.size = 1;
    memo.record(&newer, HashFunction::Blake3, digest(9), later());
    assert_eq!(memo.len(), 6);
    let bytes = memo.encode(later());
    let decoded = Memo::decode(&bytes).unwrap();
    assert!(!decoded.is_changed());
    assert_eq!(decoded.records, memo.records);
    let mut decoded = decoded;
    assert_eq!(
        decoded.lookup(&newer, HashFunction::Blake3, later()),
        Some(digest(9))
    );
    assert_eq!(
        decoded.lookup(&stat(3), HashFunction::Blake3, later()),
        None
    );
}

#[test]
fn memo_5_truncated_flipped_or_foreign_bytes_are_no_memo() {
    let mut memo = Memo::new();
    for inode in 0..4 {
        memo.record(&stat(inode), HashFunction::Blake3, digest(1), later());
    }
    let bytes = memo.encode(later());
    assert!(Memo::decode(&bytes).is_some());
    for cut in 0..bytes.len() {
        assert_eq!(Memo::decode(&bytes[..cut]), None, "cut at {cut}");
    }
    for index in 0..bytes.len() {
        let mut flipped = bytes.clone();
        flipped[index] ^= 0x10;
        assert_eq!(Memo::decode(&flipped), None, "flipped byte {index}");
    }
    assert_eq!(Memo::decode(b""), None);
    assert_eq!(Memo::decode(&[0u8; 4096]), None);
}

#[test]
fn memo_5_records_out_of_order_are_no_memo_even_with_a_good_checksum() {
    let mut memo = Memo::new();
    for inode in 0..3 {
        memo.record(&stat(inode), HashFunction::Blake3, digest(1), later());
    }
    memo.records.swap(0, 2);
    assert_eq!(Memo::decode(&memo.encode(later())), None);
    memo.records.swap(0, 2);
    memo.records[1] = memo.records[0];
    assert_eq!(Memo::decode(&memo.encode(later())), None);
}

#[test]
fn memo_6_records_unseen_for_a_month_are_dropped_and_lookups_refresh_them() {
    let mut memo = Memo::new();
    let recorded = later();
    memo.record(&stat(1), HashFunction::Blake3, digest(1), recorded);
    memo.record(&stat(2), HashFunction::Blake3, digest(2), recorded);
    let month_later = at(recorded.seconds + u64::from(MAX_UNSEEN_DAYS) * DAY, 0);
    let next_day = at(month_later.seconds + DAY, 0);
    let mut decoded = Memo::decode(&memo.encode(recorded)).unwrap();
    assert!(
        decoded
            .lookup(&stat(2), HashFunction::Blake3, month_later)
            .is_some()
    );
    assert!(
        decoded.is_changed(),
        "a lookup on a new day is worth writing"
    );
    let kept = Memo::decode(&decoded.encode(next_day)).unwrap();
    assert_eq!(kept.len(), 1);
    assert_eq!(kept.records[0].stat.inode, 2);
}

#[test]
fn memo_6_past_the_cap_the_least_recently_seen_go_first() {
    let mut memo = Memo::new();
    let base = later();
    for inode in 0..(MAX_RECORDS as u64 + 2) {
        // The first two records are seen a day earlier than the rest.
        let when = if inode < 2 {
            base
        } else {
            at(base.seconds + DAY, 0)
        };
        memo.record(&stat(inode), HashFunction::Blake3, digest(0), when);
    }
    let bytes = memo.encode(at(base.seconds + DAY, 0));
    assert!(bytes.len() <= MAX_FILE_BYTES);
    let kept = Memo::decode(&bytes).unwrap();
    assert_eq!(kept.len(), MAX_RECORDS);
    assert_eq!(kept.records[0].stat.inode, 2);
}

proptest! {
    #[test]
    fn memo_5_arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = Memo::decode(&bytes);
    }

    #[test]
    fn memo_2_any_recorded_set_round_trips(
        inodes in proptest::collection::btree_set(any::<u64>(), 0..40),
        size in any::<u64>(),
    ) {
        let mut memo = Memo::new();
        for inode in &inodes {
            let mut file = stat(*inode);
            file.size = size;
            prop_assert!(memo.record(&file, HashFunction::Sha256, digest(*inode as u8), later()));
        }
        let decoded = Memo::decode(&memo.encode(later())).unwrap();
        prop_assert_eq!(decoded.records, memo.records);
    }
}
