//! In-process benchmarks of issue #6: lookup hit and miss, key derivation
//! against hashing the same canonical bytes directly, and store and restore
//! of the 1,000 × 16 KiB shape through [`CapStdFilesystem`], each next to a
//! plain-copy baseline measured in the same run on the same files.
//!
//! Run with `cargo bench -p cachet --bench cache`; `scripts/bench.sh` runs it
//! and puts the figures into `BENCHMARKS.md` next to the whole-process
//! comparison. Everything lives in a temporary directory under Cargo's
//! target directory (`CARGO_TARGET_TMPDIR`), i.e. on the same filesystem as
//! the build, never on a tmpfs.
//!
//! Nothing is deleted between timed iterations: finished entries and copies
//! are renamed into a graveyard directory that is removed after the group.
//! On ext4 without a journal, inode allocation skips over inodes deleted in
//! the last 60 s (360 s while their inode table block is dirty), so a tree
//! deleted before each iteration would make the next one's file creations
//! pay for the previous one's deletions.
//!
//! The targets (lookup hit ≤ 1 ms on a 1,000-output entry, miss ≤ 5 µs,
//! key-derivation overhead ≤ 5 % over hashing the inputs) are checked by the
//! script against these figures, never asserted here.

use core::cell::Cell;
use core::hint::black_box;
use core::time::Duration;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use cachet::fs::CapStdFilesystem;
use cachet::tasks::Threads;
use cachet_cli::SystemContext;
use cachet_core::cache::{Cache, LookupStatus, RestoreOutcome, StoreOutcome};
use cachet_core::hash::{Digest, HashFunction, digest};
use cachet_core::key::{Action, InputFile, Key, KeyComponents, derive_key};
use cachet_core::layout;
use criterion::{BatchSize, BenchmarkId, Criterion, SamplingMode, Throughput};

/// The output shape measured in process: 1,000 files of 16 KiB.
const OUTPUTS: usize = 1_000;
const OUTPUT_BYTES: usize = 16 * 1024;
/// Files per directory below `out/`, as in `scripts/bench.sh`.
const FILES_PER_DIR: usize = 100;
/// Input-record counts for key derivation.
const KEY_INPUTS: [usize; 4] = [1, 10, 1_000, 10_000];

/// The shapes of issue #6 as (files, bytes per file), for key-derivation
/// overhead: deriving a key over that many input digests, against hashing
/// that many files' bytes.
const KEY_SHAPES: [(usize, usize); 3] = [(1, 256 << 20), (1_000, 16 << 10), (10_000, 1 << 10)];

/// A small deterministic generator, so every file and digest differs
/// without a dependency on `rand`.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut x = self.0;
        x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        x ^ (x >> 31)
    }

    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let word = self.next().to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
    }

    fn digest(&mut self) -> Digest {
        let mut bytes = [0u8; 32];
        self.fill(&mut bytes);
        Digest(bytes)
    }
}

/// A distinct key per `n`, none of which is ever derived from real inputs.
fn nth_key(n: u64) -> Key {
    Key(digest(HashFunction::Blake3, &n.to_le_bytes()))
}

/// Syncs the filesystem holding `dir`, so that the debris of the previous
/// iteration (removed trees) is not flushed inside the next timed one.
fn syncfs(dir: &Path) {
    let handle = fs::File::open(dir).expect("open the bench dir for syncfs");
    rustix::fs::syncfs(&handle).expect("syncfs");
}

/// A workspace with `out/` holding the output shape, and a cache directory next
/// to it, all in one temporary directory on the build's filesystem.
struct Bench {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    workspace: PathBuf,
    cache_dir: PathBuf,
    /// Workspace-absolute output paths (`/out/d000/f000`…).
    outputs: Vec<String>,
    /// Where finished trees are renamed to instead of being deleted.
    graveyard: PathBuf,
    buried: Cell<u64>,
}

impl Bench {
    fn new() -> Bench {
        let tmp = tempfile::Builder::new()
            .prefix("cachet-bench-")
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .expect("create the bench dir under CARGO_TARGET_TMPDIR");
        let root = tmp.path().to_path_buf();
        let workspace = root.join("ws");
        let cache_dir = root.join("cache");
        let mut rng = SplitMix(0x00ca_c4e7);
        let mut content = vec![0u8; OUTPUT_BYTES];
        let mut outputs = Vec::with_capacity(OUTPUTS);
        for i in 0..OUTPUTS {
            let relative = format!("out/d{:03}/f{:03}", i / FILES_PER_DIR, i % FILES_PER_DIR);
            let path = workspace.join(&relative);
            fs::create_dir_all(path.parent().expect("a parent")).expect("create output dirs");
            rng.fill(&mut content);
            fs::File::create(&path)
                .and_then(|mut file| file.write_all(&content))
                .expect("write an output file");
            outputs.push(format!("/{relative}"));
        }
        fs::create_dir_all(&cache_dir).expect("create the cache directory");
        let graveyard = root.join("graveyard");
        fs::create_dir_all(&graveyard).expect("create the graveyard");
        syncfs(&root);
        Bench {
            _tmp: tmp,
            root,
            workspace,
            cache_dir,
            outputs,
            graveyard,
            buried: Cell::new(0),
        }
    }

    fn cache(&self) -> Cache<CapStdFilesystem> {
        let fs = CapStdFilesystem::open_ambient(&self.workspace, &self.cache_dir)
            .expect("open the workspace and the cache directory");
        Cache::new(fs).with_tasks(Threads::new())
    }

    fn store(&self, cache: &Cache<CapStdFilesystem>, key: &Key, ctx: &mut SystemContext) {
        let mut outputs: Vec<&str> = self.outputs.iter().map(String::as_str).collect();
        let outcome = cache
            .store(key, &mut outputs, &b""[..], &b""[..], ctx)
            .expect("store");
        assert_eq!(outcome, StoreOutcome::Stored, "each bench store is fresh");
    }

    /// Moves `path` out of the way with one rename, and syncs the
    /// filesystem so the next timed iteration starts with nothing dirty.
    fn bury(&self, path: &Path) {
        let n = self.buried.get() + 1;
        self.buried.set(n);
        fs::rename(path, self.graveyard.join(n.to_string())).expect("bury a tree");
        syncfs(&self.root);
    }

    fn bury_entry(&self, key: &Key) {
        self.bury(&self.cache_dir.join(layout::entry_dir(key).as_str()));
    }

    /// Deletes everything buried, between groups.
    fn empty_graveyard(&self) {
        fs::remove_dir_all(&self.graveyard).expect("empty the graveyard");
        fs::create_dir(&self.graveyard).expect("recreate the graveyard");
        syncfs(&self.root);
    }
}

fn lookup(c: &mut Criterion, bench: &Bench) {
    let cache = bench.cache();
    let mut ctx = SystemContext::new();
    let hit = nth_key(0);
    bench.store(&cache, &hit, &mut ctx);
    // A miss in a populated shard: the shard directory exists, the entry
    // does not, which is what a miss looks like in a cache in use.
    let miss = (1..)
        .map(nth_key)
        .find(|k| k.0.0[0] == hit.0.0[0])
        .expect("a key in the same shard");
    assert_eq!(
        cache.lookup_status(&hit).expect("status"),
        LookupStatus::Hit
    );
    assert_eq!(
        cache.lookup_status(&miss).expect("status"),
        LookupStatus::MissNoEntry
    );

    let mut group = c.benchmark_group("lookup");
    group.measurement_time(Duration::from_secs(3));
    group.warm_up_time(Duration::from_secs(1));
    // OP-1 as `run` uses it: validate, then refresh the "last used" time.
    group.bench_function("hit_1000_outputs", |b| {
        b.iter(|| cache.lookup(black_box(&hit), &mut ctx).expect("lookup"));
    });
    // The read-only variant `cachet status` uses.
    group.bench_function("status_hit_1000_outputs", |b| {
        b.iter(|| cache.lookup_status(black_box(&hit)).expect("status"));
    });
    group.bench_function("miss", |b| {
        b.iter(|| cache.lookup(black_box(&miss), &mut ctx).expect("lookup"));
    });
    group.finish();
    bench.bury_entry(&hit);
}

/// `count` input records with distinct paths and digests, sorted by path
/// as a host's walk hands them over.
fn key_inputs(count: usize) -> (Vec<String>, Vec<Digest>) {
    let mut rng = SplitMix(count as u64);
    let mut paths: Vec<String> = (0..count)
        .map(|i| format!("/src/module{:03}/file{i:05}.rs", i % 97))
        .collect();
    paths.sort_unstable();
    let digests = (0..count).map(|_| rng.digest()).collect();
    (paths, digests)
}

/// The canonical string of SPEC KEY-3..7 for a command action and input
/// files only, materialised, so that it can be hashed in one call.
fn canonical_bytes(argv: &[&str], inputs: &[InputFile<'_>]) -> Vec<u8> {
    fn lp(out: &mut Vec<u8>, bytes: &[u8]) {
        let len = u32::try_from(bytes.len()).expect("fits u32");
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(bytes);
    }
    let count = |n: usize| u32::try_from(n).expect("fits u32").to_be_bytes();
    let mut out = vec![0, HashFunction::Blake3.id(), 0x01];
    out.extend_from_slice(&count(argv.len()));
    for arg in argv {
        lp(&mut out, arg.as_bytes());
    }
    out.extend_from_slice(&count(inputs.len()));
    for input in inputs {
        out.extend_from_slice(&input.content_hash.0);
        lp(&mut out, input.path.as_bytes());
    }
    // No predecessors, no host variables, no overrides.
    for _ in 0..3 {
        out.extend_from_slice(&count(0));
    }
    out
}

fn key_derivation(c: &mut Criterion) {
    let argv: &[&str] = &["cargo", "build", "--release", "--locked"];
    let mut group = c.benchmark_group("key");
    group.measurement_time(Duration::from_secs(3));
    group.warm_up_time(Duration::from_secs(1));
    for count in KEY_INPUTS {
        let (paths, digests) = key_inputs(count);
        let mut inputs: Vec<InputFile<'_>> = paths
            .iter()
            .zip(&digests)
            .map(|(path, hash)| InputFile {
                path,
                content_hash: *hash,
            })
            .collect();
        let derive = |inputs: &mut [InputFile<'_>]| {
            derive_key(&mut KeyComponents {
                hash_function: HashFunction::Blake3,
                action: Action::Command(argv),
                input_files: inputs,
                predecessors: &mut [],
                from_host: &mut [],
                overrides: &mut [],
            })
            .expect("derive a key")
        };
        let canonical = canonical_bytes(argv, &inputs);
        // The reference really hashes the same bytes derive_key streams.
        assert_eq!(
            derive(&mut inputs).0,
            digest(HashFunction::Blake3, &canonical),
            "the materialised canonical string must give the same key"
        );
        group.throughput(Throughput::Bytes(canonical.len() as u64));
        group.bench_with_input(BenchmarkId::new("derive_key", count), &count, |b, _| {
            b.iter(|| derive(black_box(&mut inputs)))
        });
        group.bench_with_input(
            BenchmarkId::new("hash_canonical_bytes", count),
            &count,
            |b, _| b.iter(|| digest(HashFunction::Blake3, black_box(&canonical))),
        );
        // derive_key sorts its inputs; the two figures above see them
        // sorted already (as a sorted walk hands them over), this one pays
        // for sorting a reversed copy (the copy itself is not timed).
        let reversed: Vec<InputFile<'_>> = inputs.iter().rev().copied().collect();
        group.bench_with_input(
            BenchmarkId::new("derive_key_unsorted", count),
            &count,
            |b, _| {
                b.iter_batched_ref(
                    || reversed.clone(),
                    |inputs| derive(inputs),
                    BatchSize::SmallInput,
                );
            },
        );
    }
    group.finish();

    // What key derivation adds to the input hashing it always follows: the
    // inputs' bytes hashed from memory on one thread (no I/O, no threads:
    // the smallest denominator), against `derive_key/<files>` above.
    let mut group = c.benchmark_group("key_inputs");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(3));
    group.warm_up_time(Duration::from_secs(1));
    for (files, bytes) in KEY_SHAPES {
        let mut rng = SplitMix(bytes as u64);
        let contents: Vec<Vec<u8>> = (0..files)
            .map(|_| {
                let mut data = vec![0u8; bytes];
                rng.fill(&mut data);
                data
            })
            .collect();
        group.throughput(Throughput::Bytes((files * bytes) as u64));
        group.bench_with_input(
            BenchmarkId::new("hash", format!("{files}x{bytes}")),
            &files,
            |b, _| {
                b.iter(|| {
                    for data in &contents {
                        black_box(digest(HashFunction::Blake3, black_box(data)));
                    }
                })
            },
        );
    }
    group.finish();
}

/// Copies every output of the workspace to `dest`, as `cp -r` would.
fn copy_outputs(bench: &Bench, dest: &Path) {
    for output in &bench.outputs {
        let to = dest.join(&output[1..]);
        if let Some(parent) = to.parent() {
            fs::create_dir_all(parent).expect("create a copy dir");
        }
        fs::copy(bench.workspace.join(&output[1..]), &to).expect("copy an output");
    }
}

fn store_restore(c: &mut Criterion, bench: &Bench) {
    let cache = bench.cache();
    let mut ctx = SystemContext::new();
    let mut group = c.benchmark_group("store_restore_1000x16KiB");
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(5));
    group.warm_up_time(Duration::from_secs(1));
    group.throughput(Throughput::Bytes((OUTPUTS * OUTPUT_BYTES) as u64));

    // Each store gets a fresh key (a second store of one key finds the
    // entry and stops); the entry is removed and the filesystem synced
    // outside the timed region.
    let mut next = 1_000_000u64;
    group.bench_function("store", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                next += 1;
                let key = nth_key(next);
                let start = Instant::now();
                bench.store(&cache, &key, &mut ctx);
                total += start.elapsed();
                bench.bury_entry(&key);
            }
            total
        });
    });
    let copy_dest = bench.root.join("copy");
    group.bench_function("baseline_copy_syncfs", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                copy_outputs(bench, &copy_dest);
                syncfs(&copy_dest);
                total += start.elapsed();
                bench.bury(&copy_dest);
            }
            total
        });
    });

    // Restore into an emptied `out/`: the original outputs are moved aside
    // once and put back at the end.
    let key = nth_key(2_000_000);
    bench.store(&cache, &key, &mut ctx);
    let out = bench.workspace.join("out");
    let original = bench.root.join("original-out");
    fs::rename(&out, &original).expect("move the outputs aside");
    group.bench_function("restore", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                let outcome = cache
                    .restore(&key, Vec::new(), Vec::new(), &mut ctx)
                    .expect("restore");
                total += start.elapsed();
                assert!(matches!(outcome, RestoreOutcome::Restored { .. }));
                bench.bury(&out);
            }
            total
        });
    });
    group.bench_function("baseline_copy", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                copy_outputs_from(&original, &out, &bench.outputs);
                total += start.elapsed();
                bench.bury(&out);
            }
            total
        });
    });
    group.finish();
    fs::rename(&original, &out).expect("put the outputs back");
    bench.bury_entry(&key);
    bench.empty_graveyard();
}

/// Copies `outputs` (workspace-absolute paths below `out/`) from the tree
/// at `from` (an `out/` moved aside) to `to`.
fn copy_outputs_from(from: &Path, to: &Path, outputs: &[String]) {
    for output in outputs {
        let relative = output.strip_prefix("/out/").expect("below out/");
        let dest = to.join(relative);
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent).expect("create a copy dir");
        }
        fs::copy(from.join(relative), &dest).expect("copy an output");
    }
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    key_derivation(&mut c);
    let bench = Bench::new();
    lookup(&mut c, &bench);
    store_restore(&mut c, &bench);
    c.final_summary();
}
