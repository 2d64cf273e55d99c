//! The chain over an in-memory filesystem per "machine" and in-memory
//! remotes ([`MemoryRemote`]). Test names cite the REMOTE rule they check.

use alloc::string::String;
use alloc::vec::Vec;

use super::chain::ChainLookup;
use super::memory::{MemoryRemote, Request};
use super::names::{self, Tenant};
use super::*;
use crate::cache::{Cache, HeldContents, LookupStatus, Rejection, RestoreOutcome};
use crate::fs::{FileKind, Filesystem, Root};
use crate::hash::{self, HashFunction};
use crate::key::Key;
use crate::layout;
use crate::memfs::MemFs;

const W: Root = Root::Workspace;
const C: Root = Root::Cache;

use crate::cache::test_support::{ctx, key, machine};

fn remote<'r>(store: &'r MemoryRemote, label: &str) -> Remote<&'r MemoryRemote> {
    Remote {
        store,
        writable: true,
        label: String::from(label),
    }
}

/// Options under which every content longer than 8 bytes is a blob.
fn blobs_options() -> RemoteOptions {
    RemoteOptions {
        inline_max_bytes: 8,
        ..RemoteOptions::default()
    }
}

const BIG: &[u8] = b"a content long enough to be a blob\n";

/// Stores `k` on a fresh machine with two outputs (one big, one small),
/// the big one's bytes being `big`.
fn stored_machine(k: &Key, big: &[u8]) -> (MemFs, Cache<MemFs>) {
    let (fs, cache, _) = stored_machine_holding(k, big, HeldContents::none());
    (fs, cache)
}

fn push_to(cache: &Cache<MemFs>, remotes: &[Remote<&MemoryRemote>], k: &Key, o: &RemoteOptions) {
    let report = push(cache, remotes, &Tenant::local(), k, o).unwrap();
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    for (_, outcome) in &report.pushed {
        assert!(matches!(outcome, PushOutcome::Pushed { .. }), "{outcome:?}");
    }
}

/// Every regular file under the cache directory of `fs`.
fn cache_files(fs: &MemFs) -> Vec<String> {
    fs.tree(C)
        .into_iter()
        .filter(|entry| entry.1 == FileKind::File)
        .map(|entry| entry.0)
        .collect()
}

/// Restores `k` on `cache` and checks files, modes and streams against
/// what `stored_machine` stored with `big`.
fn assert_restores(fs: &MemFs, cache: &Cache<MemFs>, k: &Key, big: &[u8]) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let outcome = cache.restore(k, &mut out, &mut err, &mut ctx()).unwrap();
    assert!(
        matches!(outcome, RestoreOutcome::Restored { .. }),
        "{outcome:?}"
    );
    assert_eq!(fs.read_file(W, "out/big.bin").unwrap(), big);
    assert_eq!(fs.read_file(W, "out/small").unwrap(), b"tiny");
    assert_eq!(
        Filesystem::metadata(fs, W, "out/big.bin").unwrap().mode,
        0o755
    );
    assert_eq!(
        Filesystem::metadata(fs, W, "out/small").unwrap().mode,
        0o640
    );
    assert_eq!(out, b"out stream, long enough\n");
    assert_eq!(err, b"");
}

#[test]
fn remote_1_an_entry_pushed_from_one_machine_is_a_hit_on_another_in_one_request() {
    let k = key(1);
    let store = MemoryRemote::new();
    let options = RemoteOptions::default();
    let (_, a) = stored_machine(&k, BIG);
    push_to(&a, &[remote(&store, "mem://1")], &k, &options);

    let (fs, b) = machine();
    store.clear_requests();
    let report = lookup(
        &b,
        &[remote(&store, "mem://1")],
        &[Tenant::local()],
        &k,
        &options,
        &mut ctx(),
    )
    .unwrap();
    assert!(
        matches!(report.found, Some(Found::Remote { index: 0, .. })),
        "{report:?}"
    );
    assert_eq!(report.local, LookupStatus::MissNoEntry);
    // Everything is small enough to be inline: one request (REMOTE-8).
    assert_eq!(
        store.requests(),
        alloc::vec![Request::Get(names::record(
            HashFunction::Blake3,
            &Tenant::local(),
            &k
        ))]
    );
    // Backfilled: a local hit from now on, the remote gone.
    assert_eq!(b.lookup_status(&k).unwrap(), LookupStatus::Hit);
    store.set_unreachable(true);
    let again = lookup(
        &b,
        &[remote(&store, "mem://1")],
        &[Tenant::local()],
        &k,
        &options,
        &mut ctx(),
    )
    .unwrap();
    assert_eq!(again.found, Some(Found::Local));
    assert_restores(&fs, &b, &k, BIG);
}

#[test]
fn remote_1_entries_with_blobs_round_trip_and_restore_identically() {
    let k = key(2);
    let store = MemoryRemote::new();
    let options = blobs_options();
    let (_, a) = stored_machine(&k, BIG);
    push_to(&a, &[remote(&store, "mem://1")], &k, &options);
    let blob_count = store
        .objects()
        .keys()
        .filter(|name| name.contains("/blobs/"))
        .count();
    assert_eq!(blob_count, 2, "the big output and stdout");

    let (fs, b) = machine();
    let report = lookup(
        &b,
        &[remote(&store, "mem://1")],
        &[Tenant::local()],
        &k,
        &options,
        &mut ctx(),
    )
    .unwrap();
    match report.found {
        Some(Found::Remote {
            outcome: PullOutcome::Imported { blobs_fetched, .. },
            ..
        }) => assert_eq!(blobs_fetched, 2),
        other => panic!("{other:?}"),
    }
    assert_restores(&fs, &b, &k, BIG);
}

#[test]
fn remote_8_a_miss_costs_one_request_per_remote() {
    let (one, two) = (MemoryRemote::new(), MemoryRemote::new());
    let (_, b) = machine();
    let k = key(3);
    let report = lookup(
        &b,
        &[remote(&one, "mem://1"), remote(&two, "mem://2")],
        &[Tenant::local()],
        &k,
        &RemoteOptions::default(),
        &mut ctx(),
    )
    .unwrap();
    assert_eq!(report.found, None);
    assert_eq!(
        report.misses,
        alloc::vec![
            (0, Tenant::local(), RemoteMiss::NoEntry),
            (1, Tenant::local(), RemoteMiss::NoEntry)
        ]
    );
    for store in [&one, &two] {
        assert_eq!(store.requests().len(), 1);
    }
}

#[test]
fn remote_1_the_first_remote_that_holds_the_entry_wins() {
    let k = key(4);
    let (one, two) = (MemoryRemote::new(), MemoryRemote::new());
    let options = blobs_options();
    let (_, first) = stored_machine(&k, BIG);
    push_to(&first, &[remote(&one, "mem://1")], &k, &options);
    let other = b"other bytes under the same key, also a blob\n";
    let (_, second) = stored_machine(&k, other);
    push_to(&second, &[remote(&two, "mem://2")], &k, &options);
    two.clear_requests();

    let (fs, b) = machine();
    let remotes = [remote(&one, "mem://1"), remote(&two, "mem://2")];
    let report = lookup(&b, &remotes, &[Tenant::local()], &k, &options, &mut ctx()).unwrap();
    assert!(matches!(report.found, Some(Found::Remote { index: 0, .. })));
    assert!(two.requests().is_empty(), "the second remote is not asked");
    assert_restores(&fs, &b, &k, BIG);
}

/// What to do to a blob of remote 1.
#[derive(Clone, Copy, Debug)]
enum Damage {
    FlipByte,
    Truncate,
    Extend,
    Remove,
    BadHeader,
}

#[test]
fn remote_4_a_damaged_blob_on_remote_1_falls_through_to_remote_2() {
    for damage in [
        Damage::FlipByte,
        Damage::Truncate,
        Damage::Extend,
        Damage::Remove,
        Damage::BadHeader,
    ] {
        let k = key(5);
        let (one, two) = (MemoryRemote::new(), MemoryRemote::new());
        let options = blobs_options();
        let (_, a) = stored_machine(&k, BIG);
        let remotes = [remote(&one, "mem://1"), remote(&two, "mem://2")];
        push_to(&a, &remotes, &k, &options);
        let blob = names::blob(
            HashFunction::Blake3,
            &hash::digest(HashFunction::Blake3, BIG),
        );
        let mut bytes = one.object(&blob).unwrap();
        match damage {
            Damage::FlipByte => *bytes.last_mut().unwrap() ^= 1,
            Damage::Truncate => bytes.truncate(bytes.len() - 1),
            Damage::Extend => bytes.push(b'!'),
            Damage::Remove => {}
            Damage::BadHeader => bytes[8] = 9,
        }
        match damage {
            Damage::Remove => {
                one.remove_object(&blob);
            }
            _ => one.set_object(&blob, bytes),
        }

        let (fs, b) = machine();
        let report = lookup(&b, &remotes, &[Tenant::local()], &k, &options, &mut ctx()).unwrap();
        assert!(
            matches!(report.found, Some(Found::Remote { index: 1, .. })),
            "{damage:?}: {report:?}"
        );
        let hash = hash::digest(HashFunction::Blake3, BIG);
        let expected = match damage {
            Damage::Remove => Rejection::Missing { hash },
            Damage::BadHeader => Rejection::Unreadable { hash },
            _ => Rejection::Mismatch { hash },
        };
        assert_eq!(
            report.misses,
            alloc::vec![(0, Tenant::local(), RemoteMiss::Content(expected))],
            "{damage:?}"
        );
        assert_restores(&fs, &b, &k, BIG);
    }
}

/// Damages a remote's objects.
type Tamper<'a> = dyn Fn(&MemoryRemote) + 'a;

#[test]
fn remote_4_nothing_of_a_bad_remote_entry_enters_the_local_cache() {
    let k = key(6);
    let options = blobs_options();
    let blob = names::blob(
        HashFunction::Blake3,
        &hash::digest(HashFunction::Blake3, BIG),
    );
    let record = names::record(HashFunction::Blake3, &Tenant::local(), &k);
    let tamperings: [(&str, &Tamper<'_>); 5] = [
        ("flipped blob", &|store| {
            let mut bytes = store.object(&blob).unwrap();
            bytes[12] ^= 0x20;
            store.set_object(&blob, bytes);
        }),
        ("truncated blob", &|store| {
            let bytes = store.object(&blob).unwrap();
            store.set_object(&blob, bytes[..bytes.len() / 2].to_vec());
        }),
        ("missing blob", &|store| {
            store.remove_object(&blob);
        }),
        ("flipped record", &|store| {
            let mut bytes = store.object(&record).unwrap();
            let at = bytes.len() / 2;
            bytes[at] ^= 1;
            store.set_object(&record, bytes);
        }),
        ("truncated record", &|store| {
            let bytes = store.object(&record).unwrap();
            store.set_object(&record, bytes[..bytes.len() - 1].to_vec());
        }),
    ];
    for (what, tamper) in tamperings {
        let store = MemoryRemote::new();
        let (_, a) = stored_machine(&k, BIG);
        push_to(&a, &[remote(&store, "mem://1")], &k, &options);
        tamper(&store);
        let (fs, b) = machine();
        let report = lookup(
            &b,
            &[remote(&store, "mem://1")],
            &[Tenant::local()],
            &k,
            &options,
            &mut ctx(),
        )
        .unwrap();
        assert_eq!(report.found, None, "{what}");
        assert_eq!(report.misses.len(), 1, "{what}");
        assert!(report.failures.is_empty(), "{what}");
        assert_eq!(cache_files(&fs), Vec::<String>::new(), "{what}");
        assert_eq!(
            b.lookup_status(&k).unwrap(),
            LookupStatus::MissNoEntry,
            "{what}"
        );
    }
}

#[test]
fn remote_4_a_record_filed_under_another_key_is_a_miss() {
    let (k, other) = (key(7), key(8));
    let store = MemoryRemote::new();
    let options = RemoteOptions::default();
    let (_, a) = stored_machine(&k, BIG);
    push_to(&a, &[remote(&store, "mem://1")], &k, &options);
    let bytes = store
        .object(&names::record(HashFunction::Blake3, &Tenant::local(), &k))
        .unwrap();
    store.set_object(
        &names::record(HashFunction::Blake3, &Tenant::local(), &other),
        bytes,
    );
    let (fs, b) = machine();
    let report = lookup(
        &b,
        &[remote(&store, "mem://1")],
        &[Tenant::local()],
        &other,
        &options,
        &mut ctx(),
    )
    .unwrap();
    assert_eq!(
        report.misses,
        alloc::vec![(0, Tenant::local(), RemoteMiss::OtherKey)]
    );
    assert!(cache_files(&fs).is_empty());
}

#[test]
fn remote_4_a_blob_that_fails_verification_is_removed_and_pushed_again() {
    let k = key(9);
    let store = MemoryRemote::new();
    let options = blobs_options();
    let (_, a) = stored_machine(&k, BIG);
    push_to(&a, &[remote(&store, "mem://1")], &k, &options);
    let blob = names::blob(
        HashFunction::Blake3,
        &hash::digest(HashFunction::Blake3, BIG),
    );
    let mut bytes = store.object(&blob).unwrap();
    bytes[15] ^= 1;
    store.set_object(&blob, bytes);

    let (fs, b) = machine();
    let miss = lookup(
        &b,
        &[remote(&store, "mem://1")],
        &[Tenant::local()],
        &k,
        &options,
        &mut ctx(),
    )
    .unwrap();
    assert_eq!(miss.found, None);
    assert_eq!(store.object(&blob), None, "the damaged blob was removed");

    push_to(&a, &[remote(&store, "mem://1")], &k, &options);
    let hit = lookup(
        &b,
        &[remote(&store, "mem://1")],
        &[Tenant::local()],
        &k,
        &options,
        &mut ctx(),
    )
    .unwrap();
    assert!(matches!(hit.found, Some(Found::Remote { .. })));
    assert_restores(&fs, &b, &k, BIG);
}

#[test]
fn remote_6_identical_outputs_of_two_entries_share_one_blob() {
    let (k1, k2) = (key(10), key(11));
    let store = MemoryRemote::new();
    let options = blobs_options();
    let (_, a) = stored_machine(&k1, BIG);
    push_to(&a, &[remote(&store, "mem://1")], &k1, &options);
    let (_, a2) = stored_machine(&k2, BIG);
    let report = push(
        &a2,
        &[remote(&store, "mem://1")],
        &Tenant::local(),
        &k2,
        &options,
    )
    .unwrap();
    assert_eq!(
        report.pushed,
        alloc::vec![(
            0,
            PushOutcome::Pushed {
                blobs_uploaded: 0,
                blobs_present: 2,
                bytes_sent: store
                    .object(&names::record(HashFunction::Blake3, &Tenant::local(), &k2))
                    .unwrap()
                    .len() as u64,
            }
        )]
    );
    let blobs: Vec<String> = store
        .objects()
        .into_keys()
        .filter(|name| name.contains("/blobs/"))
        .collect();
    assert_eq!(blobs.len(), 2, "{blobs:?}");
    for k in [k1, k2] {
        let (fs, b) = machine();
        lookup(
            &b,
            &[remote(&store, "mem://1")],
            &[Tenant::local()],
            &k,
            &options,
            &mut ctx(),
        )
        .unwrap();
        assert_restores(&fs, &b, &k, BIG);
    }
}

#[test]
fn remote_8_the_record_is_written_after_every_blob_in_one_request() {
    let k = key(12);
    let store = MemoryRemote::new();
    let (_, a) = stored_machine(&k, BIG);
    push_to(&a, &[remote(&store, "mem://1")], &k, &blobs_options());
    let writes: Vec<Request> = store
        .requests()
        .into_iter()
        .filter(|request| matches!(request, Request::Put(_) | Request::PutObject(_)))
        .collect();
    assert_eq!(writes.len(), 3, "{writes:?}");
    assert_eq!(
        writes.last(),
        Some(&Request::PutObject(names::record(
            HashFunction::Blake3,
            &Tenant::local(),
            &k
        )))
    );
    assert!(
        writes[..2]
            .iter()
            .all(|request| matches!(request, Request::Put(name) if name.contains("/blobs/")))
    );
}

#[test]
fn remote_8_a_push_that_fails_midway_leaves_no_record() {
    let k = key(13);
    let store = MemoryRemote::new();
    let (_, a) = stored_machine(&k, BIG);
    store.set_unreachable(true);
    let report = push(
        &a,
        &[remote(&store, "mem://1")],
        &Tenant::local(),
        &k,
        &blobs_options(),
    )
    .unwrap();
    assert_eq!(report.failures.len(), 1);
    assert!(store.objects().is_empty());
}

#[test]
fn remote_3_an_unreachable_remote_is_skipped_with_one_failure_not_an_error() {
    let k = key(14);
    let (one, two) = (MemoryRemote::new(), MemoryRemote::new());
    let options = RemoteOptions::default();
    let (_, a) = stored_machine(&k, BIG);
    push_to(&a, &[remote(&two, "mem://2")], &k, &options);
    one.set_unreachable(true);
    let (fs, b) = machine();
    let remotes = [remote(&one, "mem://1"), remote(&two, "mem://2")];
    let report = lookup(&b, &remotes, &[Tenant::local()], &k, &options, &mut ctx()).unwrap();
    assert!(matches!(report.found, Some(Found::Remote { index: 1, .. })));
    assert_eq!(report.failures.len(), 1);
    let line = alloc::format!("{}", report.failures[0]);
    assert!(
        line.starts_with("remote mem://1: could not read record"),
        "{line}"
    );
    assert!(line.contains("connection refused"), "{line}");
    assert_restores(&fs, &b, &k, BIG);

    two.set_unreachable(true);
    let (_, c) = machine();
    let report = lookup(&c, &remotes, &[Tenant::local()], &k, &options, &mut ctx()).unwrap();
    assert_eq!(report.found, None);
    assert_eq!(report.failures.len(), 2);
}

#[test]
fn remote_3_a_connection_lost_mid_blob_is_a_failure_and_leaves_nothing() {
    let k = key(15);
    let store = MemoryRemote::new();
    let options = blobs_options();
    let (_, a) = stored_machine(&k, BIG);
    push_to(&a, &[remote(&store, "mem://1")], &k, &options);
    // Records are read whole first; cut blobs only.
    let (fs, b) = machine();
    let record_len = store
        .object(&names::record(HashFunction::Blake3, &Tenant::local(), &k))
        .unwrap()
        .len();
    assert!(record_len > 20);
    store.fail_reads_after(Some(20));
    let report = lookup(
        &b,
        &[remote(&store, "mem://1")],
        &[Tenant::local()],
        &k,
        &options,
        &mut ctx(),
    )
    .unwrap();
    assert_eq!(report.found, None);
    assert_eq!(report.failures.len(), 1);
    assert!(cache_files(&fs).is_empty());
}

#[test]
fn remote_2_read_only_remotes_are_never_written() {
    let k = key(16);
    let store = MemoryRemote::new();
    let (_, a) = stored_machine(&k, BIG);
    let mut read_only = remote(&store, "mem://ro");
    read_only.writable = false;
    let report = push(&a, &[read_only], &Tenant::local(), &k, &blobs_options()).unwrap();
    assert!(report.pushed.is_empty());
    assert!(store.requests().is_empty());
    assert!(store.objects().is_empty());
}

#[test]
fn remote_5_records_of_another_tenant_are_not_seen() {
    let k = key(17);
    let store = MemoryRemote::new();
    let options = RemoteOptions::default();
    let (_, a) = stored_machine(&k, BIG);
    let main = Tenant::new("main").unwrap();
    let report = push(&a, &[remote(&store, "mem://1")], &main, &k, &options).unwrap();
    assert!(report.failures.is_empty());
    let (_, b) = machine();
    let miss = lookup(
        &b,
        &[remote(&store, "mem://1")],
        &[Tenant::local()],
        &k,
        &options,
        &mut ctx(),
    )
    .unwrap();
    assert_eq!(miss.found, None);
    let hit = lookup(
        &b,
        &[remote(&store, "mem://1")],
        core::slice::from_ref(&main),
        &k,
        &options,
        &mut ctx(),
    )
    .unwrap();
    assert!(matches!(hit.found, Some(Found::Remote { .. })));
}

#[test]
fn remote_2_a_local_entry_damaged_since_it_was_stored_is_not_pushed() {
    let k = key(18);
    let store = MemoryRemote::new();
    let (fs, a) = stored_machine(&k, BIG);
    let blob = crate::layout::blob(&k, &hash::digest(HashFunction::Blake3, BIG));
    let mut bytes = fs.read_file(C, &blob).unwrap();
    bytes[0] ^= 1;
    Filesystem::remove_file(&fs, C, &blob).unwrap();
    fs.write_file(C, &blob, &bytes, 0o644).unwrap();
    let report = push(
        &a,
        &[remote(&store, "mem://1")],
        &Tenant::local(),
        &k,
        &blobs_options(),
    )
    .unwrap();
    assert_eq!(
        report.pushed,
        alloc::vec![(0, PushOutcome::NotLocal(LookupStatus::MissCorrupt))]
    );
    assert!(
        !store
            .objects()
            .keys()
            .any(|name| name.contains("/tenants/")),
        "no record"
    );
}

fn tenant(name: &str) -> Tenant {
    Tenant::new(name).unwrap()
}

/// Pushes the entry `k` of a machine whose big output is `big` under
/// `tenant` with `options`.
fn push_as(store: &MemoryRemote, tenant: &Tenant, k: &Key, big: &[u8], options: &RemoteOptions) {
    let (_, a) = stored_machine(k, big);
    let report = push(&a, &[remote(store, "mem://1")], tenant, k, options).unwrap();
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert!(
        matches!(report.pushed[..], [(0, PushOutcome::Pushed { .. })]),
        "{report:?}"
    );
}

/// Looks `k` up on a fresh machine reading `tenants` with `options`.
fn lookup_as(
    store: &MemoryRemote,
    tenants: &[Tenant],
    k: &Key,
    options: &RemoteOptions,
) -> (MemFs, Cache<MemFs>, ChainLookup) {
    let (fs, b) = machine();
    let report = lookup(
        &b,
        &[remote(store, "mem://1")],
        tenants,
        k,
        options,
        &mut ctx(),
    )
    .unwrap();
    (fs, b, report)
}

const MAIN_BIG: &[u8] = b"what main builds, long enough for a blob\n";
const PR_BIG: &[u8] = b"what a pull request built, poisoned bytes\n";

/// REMOTE-11 against CREEP: a pull-request tenant that trusts `main`
/// stores, under a key `main` also computes, other bytes; it writes only
/// under its own tenant, and `main`, reading only its own, misses.
#[test]
fn remote_11_a_pull_request_tenant_writes_only_its_own_and_main_never_reads_it() {
    let k = key(30);
    let store = MemoryRemote::new();
    let options = blobs_options();
    let (main, pr) = (tenant("main"), tenant("pr-123"));
    push_as(&store, &pr, &k, PR_BIG, &options);
    let records: Vec<String> = store
        .objects()
        .into_keys()
        .filter(|name| name.contains("/tenants/"))
        .collect();
    assert_eq!(
        records,
        alloc::vec![names::record(HashFunction::Blake3, &pr, &k)]
    );

    let (fs, b, report) = lookup_as(&store, core::slice::from_ref(&main), &k, &options);
    assert_eq!(report.found, None, "{report:?}");
    assert_eq!(
        report.misses,
        alloc::vec![(0, main.clone(), RemoteMiss::NoEntry)]
    );
    assert!(cache_files(&fs).is_empty());
    assert_eq!(b.lookup_status(&k).unwrap(), LookupStatus::MissNoEntry);

    // main stores its own bytes; the pull request still reads its own
    // first, and main reads main's.
    push_as(&store, &main, &k, MAIN_BIG, &options);
    let (fs, b, report) = lookup_as(&store, core::slice::from_ref(&main), &k, &options);
    assert!(matches!(report.found, Some(Found::Remote { ref tenant, .. }) if *tenant == main));
    assert_restores(&fs, &b, &k, MAIN_BIG);
    let order = names::reading_order(&pr, core::slice::from_ref(&main));
    let (fs, b, _) = lookup_as(&store, &order, &k, &options);
    assert_restores(&fs, &b, &k, PR_BIG);
}

/// REMOTE-11: own tenant first, then each trusted tenant in order; a
/// miss everywhere costs one request per tenant, in that order.
#[test]
fn remote_11_lookup_reads_the_own_tenant_first_then_the_trusted_in_order() {
    let k = key(31);
    let store = MemoryRemote::new();
    let options = blobs_options();
    let order = [tenant("pr-7"), tenant("main"), tenant("release")];

    let (_, _, report) = lookup_as(&store, &order, &k, &options);
    assert_eq!(report.found, None);
    assert_eq!(
        store.requests(),
        order
            .iter()
            .map(|t| Request::Get(names::record(HashFunction::Blake3, t, &k)))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        report.misses,
        order
            .iter()
            .map(|t| (0, t.clone(), RemoteMiss::NoEntry))
            .collect::<Vec<_>>()
    );

    push_as(
        &store,
        &order[2],
        &k,
        b"release bytes, long enough for a blob\n",
        &options,
    );
    push_as(&store, &order[1], &k, MAIN_BIG, &options);
    let (fs, b, report) = lookup_as(&store, &order, &k, &options);
    assert!(
        matches!(report.found, Some(Found::Remote { ref tenant, .. }) if *tenant == order[1]),
        "the first trusted tenant wins over the second: {report:?}"
    );
    assert_restores(&fs, &b, &k, MAIN_BIG);
    push_as(&store, &order[0], &k, PR_BIG, &options);
    let (fs, b, report) = lookup_as(&store, &order, &k, &options);
    assert!(matches!(report.found, Some(Found::Remote { ref tenant, .. }) if *tenant == order[0]));
    assert_restores(&fs, &b, &k, PR_BIG);
    // A tenant not in the reading order is never read.
    let (_, _, report) = lookup_as(&store, &[tenant("pr-8")], &k, &options);
    assert_eq!(report.found, None);
}

/// REMOTE-11 with REMOTE-3: a remote that fails is reported once and not
/// asked for its remaining tenants.
#[test]
fn remote_11_a_failing_remote_is_reported_once_not_once_per_tenant() {
    let k = key(32);
    let store = MemoryRemote::new();
    store.set_unreachable(true);
    let order = [tenant("pr-7"), tenant("main")];
    let (_, _, report) = lookup_as(&store, &order, &k, &RemoteOptions::default());
    assert_eq!(report.found, None);
    assert_eq!(report.failures.len(), 1, "{report:?}");
    assert_eq!(store.requests().len(), 1);
}

fn signed(id: &str, secret: u8) -> RemoteOptions {
    RemoteOptions {
        signing_key: Some(sign::SigningKey::new(id, [secret; 32]).unwrap()),
        ..blobs_options()
    }
}

/// Asserts that looking `k` up under `tenants` with `options` is a miss
/// for `why`, and that nothing entered the local cache.
fn assert_signature_miss(
    store: &MemoryRemote,
    tenants: &[Tenant],
    k: &Key,
    options: &RemoteOptions,
    why: sign::SignatureMiss,
) {
    let (fs, _, report) = lookup_as(store, tenants, k, options);
    assert_eq!(report.found, None, "{why:?}: {report:?}");
    let miss = RemoteMiss::Signature(why);
    assert!(miss.warrants_warning());
    assert_eq!(report.misses, alloc::vec![(0, tenants[0].clone(), miss)]);
    assert!(report.failures.is_empty());
    assert!(cache_files(&fs).is_empty());
}

/// REMOTE-12: a signed record is a hit for a reader with the same key and
/// for a reader without one; blobs are not signed, only checked by hash.
#[test]
fn remote_12_a_signed_record_is_a_hit_with_the_key_and_without_one() {
    let k = key(33);
    let store = MemoryRemote::new();
    let main = tenant("main");
    push_as(&store, &main, &k, MAIN_BIG, &signed("ci-1", 1));
    let record = store
        .object(&names::record(HashFunction::Blake3, &main, &k))
        .unwrap();
    assert!(record.starts_with(&sign::SIGNED_MAGIC));
    for options in [signed("ci-1", 1), blobs_options()] {
        let (fs, b, report) = lookup_as(&store, core::slice::from_ref(&main), &k, &options);
        assert!(
            matches!(report.found, Some(Found::Remote { .. })),
            "{report:?}"
        );
        assert_restores(&fs, &b, &k, MAIN_BIG);
    }
}

/// REMOTE-13: with a signing key, a record that is unsigned, signed with
/// another key id, signed with another secret, tampered, signed for
/// another tenant or for another entry key is a miss, and nothing of it
/// enters the local cache.
#[test]
fn remote_13_unsigned_other_key_bad_mac_other_tenant_or_other_key_records_are_misses() {
    let store = MemoryRemote::new();
    let main = tenant("main");
    let ours = signed("ci-1", 1);

    let unsigned = key(34);
    push_as(&store, &main, &unsigned, MAIN_BIG, &blobs_options());
    assert_signature_miss(
        &store,
        core::slice::from_ref(&main),
        &unsigned,
        &ours,
        sign::SignatureMiss::Unsigned,
    );

    let other_id = key(35);
    push_as(&store, &main, &other_id, MAIN_BIG, &signed("ci-0", 1));
    assert_signature_miss(
        &store,
        core::slice::from_ref(&main),
        &other_id,
        &ours,
        sign::SignatureMiss::OtherSigningKey {
            key_id: String::from("ci-0"),
        },
    );

    let other_secret = key(36);
    push_as(&store, &main, &other_secret, MAIN_BIG, &signed("ci-1", 2));
    assert_signature_miss(
        &store,
        core::slice::from_ref(&main),
        &other_secret,
        &ours,
        sign::SignatureMiss::Mismatch,
    );

    let tampered = key(37);
    push_as(&store, &main, &tampered, MAIN_BIG, &ours);
    let name = names::record(HashFunction::Blake3, &main, &tampered);
    let mut bytes = store.object(&name).unwrap();
    // One bit of the record inside the envelope.
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    store.set_object(&name, bytes);
    assert_signature_miss(
        &store,
        core::slice::from_ref(&main),
        &tampered,
        &ours,
        sign::SignatureMiss::Mismatch,
    );

    // A record main signed, copied under another tenant or another key.
    let genuine = key(38);
    push_as(&store, &main, &genuine, MAIN_BIG, &ours);
    let bytes = store
        .object(&names::record(HashFunction::Blake3, &main, &genuine))
        .unwrap();
    let pr = tenant("pr-9");
    store.set_object(
        &names::record(HashFunction::Blake3, &pr, &genuine),
        bytes.clone(),
    );
    assert_signature_miss(
        &store,
        core::slice::from_ref(&pr),
        &genuine,
        &ours,
        sign::SignatureMiss::OtherTenant {
            tenant: String::from("main"),
        },
    );
    let elsewhere = key(39);
    store.set_object(
        &names::record(HashFunction::Blake3, &main, &elsewhere),
        bytes,
    );
    assert_signature_miss(
        &store,
        core::slice::from_ref(&main),
        &elsewhere,
        &ours,
        sign::SignatureMiss::Mismatch,
    );

    // The genuine one is still a hit.
    let (fs, b, report) = lookup_as(&store, core::slice::from_ref(&main), &genuine, &ours);
    assert!(
        matches!(report.found, Some(Found::Remote { .. })),
        "{report:?}"
    );
    assert_restores(&fs, &b, &genuine, MAIN_BIG);
}

#[test]
fn safe_9_a_record_listing_outputs_no_store_writes_together_is_a_miss_and_enters_nothing() {
    use crate::cache::Options;
    use crate::manifest::OutputConflict;
    use crate::remote::record::{Record, RecordError};

    let k = key(9);
    let options = RemoteOptions::default();
    let record_name = names::record(HashFunction::Blake3, &Tenant::local(), &k);
    // A remote holding `stored_machine`'s entry, and its record's bytes:
    // `/out/big.bin`, then `/out/small`.
    let pushed = || {
        let store = MemoryRemote::new();
        let (_, a) = stored_machine(&k, BIG);
        push_to(&a, &[remote(&store, "mem://1")], &k, &options);
        let bytes = store.object(&record_name).unwrap();
        (store, bytes)
    };
    // What a fresh machine whose cache directory is `cache_dir` finds.
    let look_up = |store: &MemoryRemote, cache_dir: Option<&str>| {
        let fs = MemFs::new();
        let options_b = Options {
            cache_dir_in_workspace: cache_dir.map(String::from),
            ..Options::default()
        };
        let b = Cache::with_options(fs.clone(), options_b);
        let report = lookup(
            &b,
            &[remote(store, "mem://1")],
            &[Tenant::local()],
            &k,
            &options,
            &mut ctx(),
        )
        .unwrap();
        assert_eq!(report.found, None, "{report:?}");
        assert!(report.failures.is_empty(), "{report:?}");
        assert!(fs.tree(C).is_empty(), "{:?}", fs.tree(C));
        assert!(fs.tree(W).is_empty(), "{:?}", fs.tree(W));
        report.misses
    };

    // Each renames the second output, keeping the order REMOTE-7 demands.
    let cases: [(&str, Option<&str>, OutputConflict); 4] = [
        ("/out/big.bin/small", None, OutputConflict::Nested),
        ("/out/small/.git/config", None, OutputConflict::InGitDir),
        (
            "/out/x/.cachet/ab/small",
            Some("out/x/.cachet"),
            OutputConflict::InCacheDir,
        ),
        ("/out/x", Some("out/x/.cachet"), OutputConflict::InCacheDir),
    ];
    for (path, cache_dir, conflict) in cases {
        let (store, bytes) = pushed();
        let mut record = Record::decode(&bytes).unwrap();
        assert_eq!(record.outputs[1].path, "/out/small");
        record.outputs[1].path = path;
        store.set_object(&record_name, record.encode().unwrap());
        assert_eq!(
            look_up(&store, cache_dir),
            alloc::vec![(
                0,
                Tenant::local(),
                RemoteMiss::ConflictingOutputs { index: 1, conflict }
            )],
            "{path}"
        );
    }

    // A path twice is refused by the codec already (REMOTE-7), which will
    // not encode it either: forged by hand, length prefix and checksum
    // included, it is the same miss, with nothing written.
    let (store, bytes) = pushed();
    let mut record = Record::decode(&bytes).unwrap();
    record.outputs[1].path = "/out/big.bin";
    assert!(record.encode().is_err());
    let small = bytes
        .windows(b"/out/small".len())
        .position(|w| w == b"/out/small")
        .unwrap();
    let mut forged = bytes[..small - 4].to_vec();
    forged.extend_from_slice(&12u32.to_be_bytes());
    forged.extend_from_slice(b"/out/big.bin");
    forged.extend_from_slice(&bytes[small + 10..bytes.len() - 32]);
    let checksum = hash::digest(HashFunction::Blake3, &forged);
    forged.extend_from_slice(&checksum.0);
    store.set_object(&record_name, forged);
    assert_eq!(
        look_up(&store, None),
        alloc::vec![(
            0,
            Tenant::local(),
            RemoteMiss::BadRecord(RecordError::UnsortedOutputs { index: 1 })
        )]
    );
}

#[test]
fn remote_6_a_zstd_blob_on_a_host_that_does_not_decode_it_is_a_miss_left_in_place() {
    // MemoryRemote keeps RemoteStore's defaults: it neither compresses nor
    // decodes codec 1.
    let k = key(40);
    let options = blobs_options();
    let (_, a) = stored_machine(&k, BIG);
    let store = MemoryRemote::new();
    let remotes = [remote(&store, "mem")];
    push_to(&a, &remotes, &k, &options);
    let hash = hash::digest(HashFunction::Blake3, BIG);
    let blob = names::blob(HashFunction::Blake3, &hash);
    let mut bytes = store.object(&blob).unwrap();
    assert_eq!(bytes[9], 0, "no compressor: raw");
    bytes[9] = 1;
    store.set_object(&blob, bytes.clone());

    let (_, b) = machine();
    let report = lookup(&b, &remotes, &[Tenant::local()], &k, &options, &mut ctx()).unwrap();
    assert_eq!(report.found, None);
    assert_eq!(
        report.misses,
        alloc::vec![(
            0,
            Tenant::local(),
            RemoteMiss::Content(Rejection::Unsupported { hash })
        )]
    );
    assert_eq!(store.object(&blob), Some(bytes), "not deleted");
    assert_eq!(b.lookup_status(&k).unwrap(), LookupStatus::MissNoEntry);
}

/// A store over a [`MemoryRemote`] whose codec 1 is a run-length code
/// (pairs of run length and byte): a stand-in for the host's zstd, to
/// check what the core decides and verifies around it (REMOTE-6).
struct RunLength<'a>(&'a MemoryRemote);

struct RunLengthEncoder {
    out: Vec<u8>,
    run: Option<(u8, u8)>,
}

impl RunLengthEncoder {
    fn flush(&mut self) {
        if let Some((byte, count)) = self.run.take() {
            self.out.extend_from_slice(&[count, byte]);
        }
    }
}

impl ZstdEncoder for RunLengthEncoder {
    fn write_all(&mut self, raw: &[u8]) -> Result<(), Error> {
        for &byte in raw {
            match &mut self.run {
                Some((current, count)) if *current == byte && *count < u8::MAX => *count += 1,
                _ => {
                    self.flush();
                    self.run = Some((byte, 1));
                }
            }
        }
        Ok(())
    }

    fn compressed_len(&self) -> u64 {
        self.out.len() as u64
    }

    fn finish(
        mut self: alloc::boxed::Box<Self>,
    ) -> Result<(u64, alloc::boxed::Box<dyn RemoteRead>), Error> {
        self.flush();
        let len = self.out.len() as u64;
        Ok((len, alloc::boxed::Box::new(Owned(self.out, 0))))
    }
}

struct Owned(Vec<u8>, usize);

impl RemoteRead for Owned {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
        let rest = &self.0[self.1..];
        let n = rest.len().min(buf.len());
        buf[..n].copy_from_slice(&rest[..n]);
        self.1 += n;
        Ok(n)
    }
}

struct RunLengthDecoder<'a> {
    body: alloc::boxed::Box<dyn RemoteRead + 'a>,
    pending: (u8, u8),
}

impl RemoteRead for RunLengthDecoder<'_> {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.pending.0 == 0 {
            let mut pair = [0u8; 2];
            let mut got = 0;
            while got < 2 {
                let n = self.body.read(&mut pair[got..])?;
                if n == 0 {
                    return if got == 0 {
                        Ok(0)
                    } else {
                        Err(Error::new(ErrorKind::Corrupt, "half a pair"))
                    };
                }
                got += n;
            }
            self.pending = (pair[0], pair[1]);
        }
        let n = buf.len().min(usize::from(self.pending.0));
        buf[..n].fill(self.pending.1);
        self.pending.0 -= n as u8;
        Ok(n)
    }
}

impl<'m> RemoteStore for RunLength<'m> {
    type Reader = <&'m MemoryRemote as RemoteStore>::Reader;
    type Writer = <&'m MemoryRemote as RemoteStore>::Writer;

    fn get(&self, name: &str) -> Result<Option<Self::Reader>, Error> {
        (&self.0).get(name)
    }

    fn head(&self, name: &str) -> Result<Option<ObjectMeta>, Error> {
        (&self.0).head(name)
    }

    fn put(&self, name: &str, size_hint: Option<u64>) -> Result<Self::Writer, Error> {
        (&self.0).put(name, size_hint)
    }

    fn delete(&self, name: &str) -> Result<(), Error> {
        (&self.0).delete(name)
    }

    fn list(
        &self,
        prefix: &str,
        visit: &mut dyn FnMut(&str, u64) -> core::ops::ControlFlow<()>,
    ) -> Result<(), Error> {
        (&self.0).list(prefix, visit)
    }

    fn zstd_encoder(&self, _raw_size: u64) -> Option<alloc::boxed::Box<dyn ZstdEncoder>> {
        Some(alloc::boxed::Box::new(RunLengthEncoder {
            out: Vec::new(),
            run: None,
        }))
    }

    fn zstd_decoder<'a>(
        &self,
        body: alloc::boxed::Box<dyn RemoteRead + 'a>,
        _raw_size: u64,
    ) -> Option<alloc::boxed::Box<dyn RemoteRead + 'a>> {
        Some(alloc::boxed::Box::new(RunLengthDecoder {
            body,
            pending: (0, 0),
        }))
    }
}

/// Pushes an entry whose big output is `big` through `remotes` (over
/// `store`), checks that its blob went in `codec` and that a fresh
/// machine restores it from there; returns the blob object.
fn assert_pushed_in_codec(
    store: &MemoryRemote,
    remotes: &[Remote<RunLength<'_>>],
    k: &Key,
    big: &[u8],
    codec: u8,
) -> Vec<u8> {
    let options = blobs_options();
    let (_, a) = stored_machine(k, big);
    let pushed = push(&a, remotes, &Tenant::local(), k, &options).unwrap();
    assert!(pushed.failures.is_empty(), "{pushed:?}");
    let hash = hash::digest(HashFunction::Blake3, big);
    let object = store
        .object(&names::blob(HashFunction::Blake3, &hash))
        .unwrap();
    assert_eq!(object[9], codec, "codec of {} bytes", big.len());
    let (fs, b) = machine();
    let found = lookup(&b, remotes, &[Tenant::local()], k, &options, &mut ctx()).unwrap();
    assert!(
        matches!(found.found, Some(Found::Remote { .. })),
        "{found:?}"
    );
    assert_restores(&fs, &b, k, big);
    object
}

#[test]
fn remote_6_codec_1_only_when_smaller_and_a_frame_that_does_not_decode_is_deleted() {
    let options = blobs_options();
    let store = MemoryRemote::new();
    let remotes = [Remote {
        store: RunLength(&store),
        writable: true,
        label: String::from("rle"),
    }];
    let shrinking = [b'z'; 4000];
    for (k, big, codec) in [(key(41), &shrinking[..], 1u8), (key(42), BIG, 0u8)] {
        let object = assert_pushed_in_codec(&store, &remotes, &k, big, codec);
        if codec == 1 {
            assert!(object.len() < big.len(), "{}", object.len());
        } else {
            assert_eq!(&object[10..], big, "raw bytes");
        }
    }

    // Half a pair: the frame does not decode.
    let k = key(41);
    let hash = hash::digest(HashFunction::Blake3, &shrinking);
    let blob = names::blob(HashFunction::Blake3, &hash);
    let mut object = store.object(&blob).unwrap();
    object.pop();
    store.set_object(&blob, object);
    let (_, c) = machine();
    let report = lookup(&c, &remotes, &[Tenant::local()], &k, &options, &mut ctx()).unwrap();
    assert_eq!(
        report.misses,
        alloc::vec![(
            0,
            Tenant::local(),
            RemoteMiss::Content(Rejection::Unreadable { hash })
        )]
    );
    assert_eq!(store.object(&blob), None, "the damaged blob is deleted");
    assert_eq!(c.lookup_status(&k).unwrap(), LookupStatus::MissNoEntry);
}

/// `len` bytes that the run-length stand-in shrinks by `saving_per_mille`
/// thousandths: runs of two bytes (which it keeps at their size), with a
/// run of three in place of two where that saves enough.
fn runs(len: usize, saving_per_mille: usize) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(len);
    let mut value = 0u8;
    let mut saved = 0usize;
    while bytes.len() < len {
        // A run of three costs the pair a run of two costs: one byte saved.
        let run = if saved * 1000 < bytes.len() * saving_per_mille {
            saved += 1;
            3
        } else {
            2
        };
        value = value.wrapping_add(1);
        bytes.extend(core::iter::repeat_n(value, run));
    }
    bytes.truncate(len);
    bytes
}

#[test]
fn remote_6_compression_that_saves_too_little_of_the_first_mebibytes_is_given_up() {
    use super::upload::{PROBE_BYTES, gives_up};
    let probe = PROBE_BYTES;
    // The rule itself: the frame may not reach the raw size, and after the
    // probe it must be 1/32 smaller than what was fed.
    assert!(gives_up(10, 100, 100));
    assert!(
        !gives_up(probe - 1, probe - 2, 1 << 30),
        "not judged before the probe"
    );
    assert!(gives_up(probe, probe - probe / 64, 1 << 30), "saves 1/64");
    assert!(!gives_up(probe, probe - probe / 16, 1 << 30), "saves 1/16");

    let store = MemoryRemote::new();
    let remotes = [Remote {
        store: RunLength(&store),
        writable: true,
        label: String::from("rle"),
    }];
    let size = usize::try_from(probe).unwrap() + (4 << 20);
    // 1 % smaller as a frame: sent raw, although the whole frame would
    // have been smaller than the content; 10 % smaller: sent as a frame.
    for (k, saving, codec) in [(key(44), 10, 0u8), (key(45), 100, 1u8)] {
        assert_pushed_in_codec(&store, &remotes, &k, &runs(size, saving), codec);
    }
}

#[test]
fn remote_20_health_reports_reachability_permissions_and_the_tenants_entries() {
    let options = blobs_options();
    let store = MemoryRemote::new();
    let (_, a) = stored_machine(&key(43), BIG);
    push_to(&a, &[remote(&store, "mem")], &key(43), &options);
    let mut clock = 0u64;
    let mut now = || {
        clock += 5;
        clock
    };
    let check = |remote: &Remote<&MemoryRemote>, now: &mut dyn FnMut() -> u64| {
        health::check(
            remote,
            &Tenant::local(),
            HashFunction::Blake3,
            "n1",
            10,
            now,
        )
    };

    let healthy = check(&remote(&store, "mem"), &mut now);
    assert!(healthy.is_healthy(), "{healthy:?}");
    assert_eq!(healthy.latency_micros, Some(5));
    assert_eq!(healthy.writable, Some(true));
    assert_eq!((healthy.entries, healthy.entries_capped), (Some(1), false));
    assert!(
        store
            .objects()
            .keys()
            .all(|name| !name.contains("/probes/")),
        "the probe is removed"
    );

    let read_only = Remote {
        writable: false,
        ..remote(&store, "mem")
    };
    store.clear_requests();
    let checked = check(&read_only, &mut now);
    assert!(checked.is_healthy());
    assert_eq!(checked.writable, None, "nothing tried");
    assert!(
        store.requests().iter().all(|request| !matches!(
            request,
            Request::Put(_) | Request::PutObject(_) | Request::Delete(_)
        )),
        "{:?}",
        store.requests()
    );

    let capped = health::check(
        &remote(&store, "mem"),
        &Tenant::local(),
        HashFunction::Blake3,
        "n2",
        0,
        &mut now,
    );
    assert_eq!((capped.entries, capped.entries_capped), (Some(0), true));

    store.set_unreachable(true);
    let down = check(&remote(&store, "mem"), &mut now);
    assert!(!down.is_healthy());
    assert!(!down.reachable && !down.readable);
    assert_eq!((down.latency_micros, down.entries), (None, None));
    assert_eq!(down.failures.len(), 1, "{:?}", down.failures);
    assert_eq!(down.failures[0].op, RemoteOp::Probe);
}

/// Writes the two outputs of [`stored_machine`] on a fresh machine.
fn machine_with_outputs(big: &[u8]) -> (MemFs, Cache<MemFs>) {
    let (fs, cache) = machine();
    fs.write_file(W, "out/big.bin", big, 0o755).unwrap();
    fs.write_file(W, "out/small", b"tiny", 0o640).unwrap();
    (fs, cache)
}

/// Stores `k` on a fresh machine as [`stored_machine`] describes, through
/// [`Cache::store_holding`] into `held`; returns what the store held.
fn stored_machine_holding(
    k: &Key,
    big: &[u8],
    mut held: HeldContents,
) -> (MemFs, Cache<MemFs>, HeldContents) {
    let (fs, cache) = machine_with_outputs(big);
    let mut outputs = alloc::vec!["/out/small", "/out/big.bin"];
    let outcome = cache
        .store_holding(
            k,
            &mut outputs,
            &b"out stream, long enough\n"[..],
            &b""[..],
            &mut ctx(),
            &mut held,
        )
        .unwrap();
    assert_eq!(outcome, crate::cache::StoreOutcome::Stored);
    (fs, cache, held)
}

#[test]
fn remote_2_contents_the_store_held_are_pushed_from_memory_into_the_same_record() {
    let k = key(40);
    let options = RemoteOptions::default();
    let record = names::record(HashFunction::Blake3, &Tenant::local(), &k);

    // Read back from the local cache, as `push` does.
    let (plain_fs, plain, _) = stored_machine_holding(&k, BIG, options.held_contents());
    let plain_store = MemoryRemote::new();
    let before = plain_fs.op_count();
    push_to(&plain, &[remote(&plain_store, "mem://1")], &k, &options);
    let plain_ops = plain_fs.op_count() - before;

    let (held_fs, cache, held) = stored_machine_holding(&k, BIG, options.held_contents());
    assert_eq!(held.len(), 2, "both outputs are small enough to hold");
    assert_eq!(
        held.get(&hash::digest(HashFunction::Blake3, BIG)),
        Some(BIG)
    );
    let store = MemoryRemote::new();
    let before = held_fs.op_count();
    let report = push_holding(
        &cache,
        &[remote(&store, "mem://1")],
        &Tenant::local(),
        &k,
        &options,
        held,
    )
    .unwrap();
    let held_ops = held_fs.op_count() - before;
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert!(matches!(
        report.pushed[..],
        [(0, PushOutcome::Pushed { .. })]
    ));
    assert_eq!(store.object(&record), plain_store.object(&record));
    assert!(store.object(&record).is_some());
    // Each held output is neither opened nor read from the local cache.
    assert!(
        held_ops + 4 <= plain_ops,
        "held {held_ops}, plain {plain_ops}"
    );

    // The held bytes are what goes out: a local blob damaged after the
    // store (same size) stops a push that reads it back, not one that
    // holds it.
    let (damaged_fs, damaged, held) = stored_machine_holding(&k, BIG, options.held_contents());
    let blob = layout::blob(&k, &hash::digest(HashFunction::Blake3, BIG));
    let wrong = alloc::vec![b'x'; BIG.len()];
    damaged_fs.write_file(C, &blob, &wrong, 0o644).unwrap();
    let read_back = MemoryRemote::new();
    let report = push(
        &damaged,
        &[remote(&read_back, "mem://1")],
        &Tenant::local(),
        &k,
        &options,
    )
    .unwrap();
    assert!(matches!(
        report.pushed[..],
        [(0, PushOutcome::NotLocal(LookupStatus::MissCorrupt))]
    ));
    assert!(read_back.objects().is_empty());
    let from_memory = MemoryRemote::new();
    push_holding(
        &damaged,
        &[remote(&from_memory, "mem://1")],
        &Tenant::local(),
        &k,
        &options,
        held,
    )
    .unwrap();
    assert_eq!(from_memory.object(&record), plain_store.object(&record));
}

#[test]
fn remote_2_a_store_that_does_not_publish_its_own_entry_holds_nothing() {
    let options = RemoteOptions::default();
    // Found already stored: nothing read, nothing held.
    let k = key(41);
    let (_, cache, _) = stored_machine_holding(&k, BIG, options.held_contents());
    let mut outputs = alloc::vec!["/out/small", "/out/big.bin"];
    let mut held = options.held_contents();
    let outcome = cache
        .store_holding(&k, &mut outputs, &b""[..], &b""[..], &mut ctx(), &mut held)
        .unwrap();
    assert_eq!(outcome, crate::cache::StoreOutcome::AlreadyPresent);
    assert!(held.is_empty());

    // Failing at every step in turn, including every one after an output
    // was read whole and held: a store that did not end `Stored` hands
    // nothing to a push (fails without the reset in `store_holding`).
    let (fs, cache) = machine_with_outputs(BIG);
    let before = fs.op_count();
    let mut outputs = alloc::vec!["/out/small", "/out/big.bin"];
    let mut held = options.held_contents();
    cache
        .store_holding(&k, &mut outputs, &b""[..], &b""[..], &mut ctx(), &mut held)
        .unwrap();
    assert_eq!(held.len(), 2);
    let steps = fs.op_count() - before;
    for step in 0..steps {
        let (fs, cache) = machine_with_outputs(BIG);
        fs.fail_at(step, crate::fs::ErrorKind::Other);
        let mut outputs = alloc::vec!["/out/small", "/out/big.bin"];
        let mut held = options.held_contents();
        let outcome =
            cache.store_holding(&k, &mut outputs, &b""[..], &b""[..], &mut ctx(), &mut held);
        if outcome != Ok(crate::cache::StoreOutcome::Stored) {
            assert!(
                held.is_empty(),
                "failing at step {step}: {outcome:?}, {held:?}"
            );
        }
    }
}

#[test]
fn remote_2_the_record_is_made_once_for_every_writable_remote() {
    let k = key(42);
    let options = RemoteOptions::default();
    let ops_to_push = |remotes: usize| {
        let (fs, cache) = stored_machine(&k, BIG);
        let stores: Vec<MemoryRemote> = (0..remotes).map(|_| MemoryRemote::new()).collect();
        let chain: Vec<Remote<&MemoryRemote>> = stores
            .iter()
            .map(|store| remote(store, "mem://n"))
            .collect();
        let before = fs.op_count();
        push_to(&cache, &chain, &k, &options);
        let ops = fs.op_count() - before;
        let record = names::record(HashFunction::Blake3, &Tenant::local(), &k);
        let first = stores.first().and_then(|store| store.object(&record));
        assert!(first.is_some());
        assert!(stores.iter().all(|store| store.object(&record) == first));
        ops
    };
    // Every content is inline: a second and third remote read nothing more.
    assert_eq!(ops_to_push(3), ops_to_push(1));
}
