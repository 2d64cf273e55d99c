//! Hostile caches and inputs (issue #5, part 4), natively: every case of
//! [`cases`] through the real `cachet` binary, and in process through
//! `Cache<CapStdFilesystem>` under a counting allocator.
//!
//! Through the binary, each case runs [`Step::SEQUENCE`] (`status`,
//! `restore`, `info`, `verify`, `clean --soft`, `status`, `clear`), each
//! command under `RLIMIT_AS` = [`ADDRESS_SPACE_LIMIT`] with a deadline, and
//! demands: the verdict of [`cases::judge`] (a miss or a clear error, never
//! a panic or a signal), the workspace unchanged except by a successful
//! restore ([`cases::judge_workspace`]), the `outside` directory (secrets,
//! planted entries, symlink targets) unchanged, and a peak resident set
//! below [`RSS_BOUND`] (measured per child with `wait4`).
//!
//! In process, [`ALLOCATION_BOUND`] bounds the peak of live heap bytes of
//! every operation on every case, [`BEYOND_MANIFEST_BOUND`] what it may
//! take beyond reading the manifest, and [`HUGE_LOOKUP_ALLOCATIONS`] the
//! number of allocations a lookup of [`cases::HUGE_OUTPUT_COUNT`] outputs
//! makes (the reader allocates nothing per output, MAN-4).
//!
//! Measured on the development machine (x86_64 Linux, test profile):
//! `cachet` peaks at about 4.5 MiB resident for small cases, 41 MiB for
//! [`cases::HUGE_OUTPUT_COUNT`] outputs (a 37 MB manifest) and 69 MiB for
//! a manifest at the 64 MiB cap; forked straight from this test binary the
//! same `cachet --version` shows 130 MiB, which is why children are
//! measured through a probe (see `proc.rs`). In process, operations peak
//! at 257 KiB beyond the manifest buffer, and at 96 MiB for a manifest at
//! the cap (64 MiB, plus the 32 MiB block it grew from).

use cachet_tests::hostile as cases;

use crate::proc;

use core::alloc::{GlobalAlloc, Layout as AllocLayout};
use core::cell::Cell;
use core::time::Duration;
use std::alloc::System;
use std::fs;
use std::process::Command;

use cachet::fs::CapStdFilesystem;
use cachet_cli::{StdWrite, SystemContext};
use cachet_core::cache::{Cache, CleanModes, Options, RestoreOutcome};
use cachet_core::key::Key;

use cases::{Case, Layout, Ran, Restore, Step};

/// `RLIMIT_AS` for every `cachet` child: far more than the binary needs
/// (under 16 MiB of address space for small cases, about 100 MiB for a
/// manifest at the cap), far less than reading a 1 GiB manifest would take.
const ADDRESS_SPACE_LIMIT: u64 = 384 << 20;

/// Peak resident set of any `cachet` child on any case: the 64 MiB
/// manifest buffer (96 MiB where the allocator cannot grow it in place)
/// and the binary's own few MiB.
const RSS_BOUND: u64 = 128 << 20;

/// Peak resident set of a `cachet` child on a case whose manifest is small
/// (everything but the cap and huge-count cases): the 1 GiB manifest must
/// not be read at all.
const SMALL_RSS_BOUND: u64 = 32 << 20;

/// Peak live heap bytes of any in-process operation on any case: the 64 MiB
/// manifest buffer, counted generously (a reallocation counts the old and
/// the new block together, as an allocator that cannot grow in place holds
/// both: 64 + 32 MiB for a manifest at the cap), plus the 256 KiB copy
/// buffer and change. Measured: 96.3 MiB.
const ALLOCATION_BOUND: i64 = 100 << 20;

/// Peak live heap bytes of an in-process operation beyond what reading the
/// manifest takes (at most three times its size, counted as above: a
/// buffer that doubles to less than twice the size, plus the block it grew
/// from), for a manifest that is read at all (not over the cap). Measured:
/// 257 KiB (the copy buffer).
const BEYOND_MANIFEST_BOUND: i64 = 1 << 20;

/// Allocations a lookup of [`cases::HUGE_OUTPUT_COUNT`] outputs may make:
/// the manifest buffer's growth steps and a few paths, nothing per output.
const HUGE_LOOKUP_ALLOCATIONS: u64 = 64;

/// An address-space limit with room for the binary but not for a manifest
/// at the cap.
const TIGHT_LIMIT: u64 = 48 << 20;

/// Deadline of one `cachet` command.
const DEADLINE: Duration = Duration::from_secs(60);

/// Cases whose manifest is large enough to be excused from
/// [`SMALL_RSS_BOUND`].
const LARGE_CASES: &[&str] = &["manifest-at-the-cap", "huge-output-count"];

// ------------------------------------------------------------ allocator

/// Counts live heap bytes per thread (the test harness runs tests on
/// several threads; each measures only its own allocations).
struct Counting;

thread_local! {
    static LIVE: Cell<i64> = const { Cell::new(0) };
    static PEAK: Cell<i64> = const { Cell::new(0) };
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn grew(bytes: usize) {
    let _ = LIVE.try_with(|live| {
        let now = live.get() + bytes as i64;
        live.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
    let _ = ALLOCATIONS.try_with(|count| count.set(count.get() + 1));
}

fn shrank(bytes: usize) {
    let _ = LIVE.try_with(|live| live.set(live.get() - bytes as i64));
}

// SAFETY: every call is forwarded to `System` unchanged; the bookkeeping
// touches only const-initialised thread-locals without destructors, which
// never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: AllocLayout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            grew(layout.size());
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: AllocLayout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            grew(layout.size());
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: AllocLayout) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.dealloc(ptr, layout) };
        shrank(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: AllocLayout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            // Generous: both blocks count at the peak.
            grew(new_size);
            shrank(layout.size());
        }
        new
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Peak live bytes above the starting level and the number of allocations
/// made while `f` ran on this thread.
fn measure<T>(f: impl FnOnce() -> T) -> (T, i64, u64) {
    let start = LIVE.with(Cell::get);
    PEAK.with(|peak| peak.set(start));
    let count = ALLOCATIONS.with(Cell::get);
    let value = f();
    let peak = PEAK.with(Cell::get) - start;
    (value, peak, ALLOCATIONS.with(Cell::get) - count)
}

// -------------------------------------------------------------- runner

/// A fresh layout for `case` in a temporary directory (canonical, so no
/// symlink in its own path muddles the snapshots).
fn fresh(case: &Case) -> (tempfile::TempDir, Layout) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    let layout = case.layout(&root);
    (dir, layout)
}

fn cachet(layout: &Layout, args: &[String]) -> proc::Finished {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cachet"));
    command
        .current_dir(&layout.workspace)
        .env_remove("CACHET_CACHE_DIR")
        .arg("--workspace")
        .arg(&layout.workspace)
        .arg("--cache-dir")
        .arg(&layout.cache)
        .args(args);
    proc::run_measured(&mut command, Some(ADDRESS_SPACE_LIMIT), DEADLINE)
}

/// Runs one case through the binary and returns every violation found
/// (empty when the case passes).
fn violations(case: &Case) -> Vec<String> {
    let (_dir, layout) = fresh(case);
    let expect = case.build(&layout);
    let outside = cases::snapshot(&layout.outside);
    let rss_bound = if LARGE_CASES.contains(&case.name) {
        RSS_BOUND
    } else {
        SMALL_RSS_BOUND
    };
    let mut found = Vec::new();
    let (mut peak_rss, mut slowest) = (0, Duration::ZERO);
    for step in Step::SEQUENCE {
        let before = layout.workspace_snapshot();
        let finished = cachet(&layout, &step.args(&expect.key));
        let ran = Ran {
            code: finished.code,
            stdout: finished.stdout.clone(),
            stderr: finished.stderr.clone(),
        };
        peak_rss = peak_rss.max(finished.max_rss_bytes);
        slowest = slowest.max(finished.elapsed);
        let mut problems = Vec::new();
        if let Err(problem) = cases::judge(step, &expect, &ran) {
            problems.push(problem);
        }
        if finished.timed_out {
            problems.push(format!("ran past {DEADLINE:?}"));
        }
        if finished.max_rss_bytes > rss_bound {
            problems.push(format!(
                "peak RSS {} KiB over {} KiB",
                finished.max_rss_bytes >> 10,
                rss_bound >> 10
            ));
        }
        let after = layout.workspace_snapshot();
        if let Err(problem) = cases::judge_workspace(step, &expect, &before, &after) {
            problems.push(problem);
        }
        if cases::snapshot(&layout.outside) != outside {
            problems.push(String::from("the outside directory changed"));
        }
        if step == Step::Clear
            && expect.walk_failure.is_none()
            && fs::read_dir(&layout.cache).unwrap().count() != 0
        {
            problems.push(String::from("clear left something in the cache directory"));
        }
        for problem in problems {
            found.push(format!(
                "{} [{}] {:?}: {problem}\n{finished:?}",
                case.name, case.rules, step
            ));
        }
    }
    println!(
        "{:40} peak RSS {:>6} KiB, slowest command {slowest:?}",
        case.name,
        peak_rss >> 10
    );
    found
}

/// Runs `cases` and fails listing every violation of every case.
fn run_cases(cases: &[Case]) {
    let found: Vec<String> = cases.iter().flat_map(violations).collect();
    assert!(found.is_empty(), "{}", found.join("\n\n"));
}

fn run_named(names: &[&str]) {
    let cases: Vec<Case> = names.iter().map(|name| *Case::named(name)).collect();
    run_cases(&cases);
}

// --------------------------------------------------------- binary tests

#[test]
fn op_1_op_3_the_valid_control_entry_is_a_hit_and_restores_exactly() {
    run_named(&["valid-control"]);
}

#[test]
fn safe_2_blob_symlink_to_secret_is_a_miss() {
    run_named(&["blob-symlink-to-secret"]);
}

#[test]
fn safe_2_stream_symlink_to_secret_is_a_miss_and_never_replayed() {
    run_named(&["stream-symlink-to-secret"]);
}

#[test]
fn safe_2_manifest_symlink_outside_is_a_miss() {
    run_named(&["manifest-symlink-outside"]);
}

#[test]
fn safe_2_entry_dir_symlink_is_a_miss_and_clean_removes_only_the_link() {
    run_named(&["entry-dir-symlink-outside"]);
}

#[test]
fn safe_2_shard_symlink_is_a_miss_and_clean_removes_only_the_link() {
    run_named(&["shard-symlink-outside"]);
}

#[test]
fn safe_2_outputs_dir_symlink_outside_is_a_miss() {
    run_named(&["outputs-dir-symlink-outside"]);
}

#[test]
fn safe_2_workspace_dir_symlinked_outside_is_refused_naming_it() {
    run_named(&[
        "workspace-dir-symlinked-outside",
        "nested-workspace-dir-symlinked-outside",
    ]);
}

#[test]
fn safe_2_a_target_symlink_to_an_outside_file_is_replaced_not_followed() {
    run_named(&["workspace-target-symlink-to-outside-file"]);
}

#[test]
fn safe_4_a_path_the_os_cannot_create_is_a_clear_error_before_writing() {
    run_named(&["path-segment-too-long-for-the-os"]);
}

#[test]
fn path_2_traversal_in_a_manifest_is_a_miss() {
    run_cases(&cases::traversal_cases());
}

#[test]
fn path_2_bidi_invisible_and_control_characters_in_a_manifest_are_a_miss() {
    run_cases(&cases::bidi_cases());
}

#[test]
fn safe_1_huge_and_out_of_range_numbers_in_a_manifest_are_a_miss() {
    run_named(&[
        "huge-size",
        "size-beyond-u64",
        "size-with-exponent",
        "negative-size",
        "huge-stdout-len",
        "stderr-len-of-thirty-digits",
        "mode-beyond-u32",
        "exit-status-not-zero",
        "path-longer-than-path-max",
    ]);
}

#[test]
fn safe_1_huge_output_count_is_a_miss_in_bounded_memory() {
    run_named(&["huge-output-count"]);
}

#[test]
fn safe_1_deeply_nested_manifests_are_a_miss() {
    run_named(&[
        "deeply-nested-outputs",
        "deeply-nested-unknown-member",
        "deeply-nested-output-object",
    ]);
}

#[test]
fn man_4_a_1_gib_manifest_is_a_miss_under_a_memory_limit() {
    run_named(&["manifest-of-1-gib", "manifest-one-byte-over-the-cap"]);
}

#[test]
fn man_4_a_manifest_at_the_cap_is_read_in_bounded_memory() {
    run_named(&["manifest-at-the-cap"]);
}

#[test]
fn op_1_truncated_missing_and_misfiled_parts_are_a_miss() {
    run_named(&[
        "empty-manifest",
        "truncated-manifest",
        "manifest-of-another-key",
        "manifest-is-a-directory",
        "truncated-blob",
        "truncated-stream",
        "missing-blob",
        "blob-is-a-directory",
    ]);
}

#[test]
fn op_3_tampered_blob_of_the_same_size_restores_nothing_and_verify_finds_it() {
    run_named(&["tampered-blob-same-size", "tampered-stream-same-size"]);
}

#[test]
fn safe_1_a_fifo_blob_is_a_miss_without_hanging() {
    run_named(&["blob-is-a-fifo"]);
}

#[test]
fn safe_1_deep_directory_debris_is_reported_by_path_without_overflow() {
    run_named(&["deep-directory-debris"]);
}

#[test]
fn safe_5_an_entry_listing_a_path_twice_is_a_miss() {
    run_named(&["output-path-twice", "output-path-twice-out-of-order"]);
}

#[test]
fn safe_6_an_entry_listing_a_path_below_another_output_is_a_miss() {
    run_named(&["output-below-another-output"]);
}

#[test]
fn safe_7_an_entry_with_an_output_in_a_git_directory_is_a_miss() {
    run_named(&["output-in-git-dir"]);
}

#[test]
fn safe_8_an_entry_with_an_output_in_or_above_the_cache_directory_is_a_miss() {
    run_named(&[
        "output-in-cache-dir",
        "output-above-cache-dir",
        "valid-control-with-cache-in-workspace",
    ]);
}

#[test]
fn every_case_is_run_by_some_test() {
    // The named lists above must cover the whole reusable list, so a case
    // added to `cases.rs` cannot be forgotten here.
    let source = include_str!("hostile.rs");
    for case in cases::ALL {
        assert!(
            source.contains(&format!("\"{}\"", case.name)),
            "case {} is not run natively",
            case.name
        );
    }
}

// ---------------------------------------------------- in-process tests

#[test]
fn safe_1_every_case_stays_within_bounded_allocation_in_process() {
    let mut report = Vec::new();
    let mut found = Vec::new();
    for case in cases::every_case() {
        let (_dir, layout) = fresh(&case);
        let expect = case.build(&layout);
        let key = Key::from_hex(&expect.key).unwrap();
        let manifest = layout
            .cache
            .join(&expect.key[..2])
            .join(&expect.key)
            .join("manifest.json");
        let read_manifest_bytes = match fs::symlink_metadata(&manifest) {
            Ok(meta) if meta.is_file() && meta.len() <= cases::MANIFEST_CAP => {
                i64::try_from(meta.len()).unwrap()
            }
            _ => 0,
        };
        // On one thread (a cache's default, `Sequential`): the allocator
        // counts per thread, and work done by `cachet::tasks::Threads` on
        // other threads would escape it. Each further task holds one more
        // copy buffer (`MAX_DEFAULT_PARALLELISM` bounds them); the binary,
        // threads and all, is held to RSS_BOUND above.
        let fs = CapStdFilesystem::open_ambient(&layout.workspace, &layout.cache).unwrap();
        let options = Options {
            cache_dir_in_workspace: layout.cache_in_workspace(),
            ..Options::default()
        };
        let cache = Cache::with_options(fs, options);
        let mut ctx = SystemContext::new();

        let (status, lookup_peak, lookup_allocations) = measure(|| cache.lookup_status(&key));
        match status {
            Ok(status) if status.as_str() == expect.status => {}
            other => found.push(format!("{}: lookup {other:?}", case.name)),
        }
        let (restored, restore_peak, _) = measure(|| {
            let (mut out, mut err) = (std::io::sink(), std::io::sink());
            cache.restore(&key, StdWrite(&mut out), StdWrite(&mut err), &mut ctx)
        });
        let restore_ok = match (&restored, &expect.restore) {
            (Ok(RestoreOutcome::Restored { .. }), Restore::Restored { .. }) => true,
            (Ok(RestoreOutcome::Miss(status)), Restore::Miss(want)) => status.as_str() == *want,
            (Err(error), Restore::Refused(path)) => error.to_string().contains(path.as_str()),
            _ => false,
        };
        if !restore_ok {
            found.push(format!("{}: restore {restored:?}", case.name));
        }
        let (_, info_peak, _) = measure(|| cache.info());
        let (_, verify_peak, _) = measure(|| cache.verify(false, &mut ctx));
        let dry = CleanModes {
            soft: true,
            dry_run: true,
            ..CleanModes::default()
        };
        let (_, clean_peak, _) = measure(|| cache.clean(&dry, &mut ctx));

        let peaks = [
            ("lookup", lookup_peak),
            ("restore", restore_peak),
            ("info", info_peak),
            ("verify", verify_peak),
            ("clean", clean_peak),
        ];
        let bound = ALLOCATION_BOUND.min(3 * read_manifest_bytes + BEYOND_MANIFEST_BOUND);
        for (operation, peak) in peaks {
            if peak > bound {
                found.push(format!(
                    "{}: {operation} peaked at {peak} live bytes, over {bound} \
                     (manifest of {read_manifest_bytes} bytes)",
                    case.name
                ));
            }
        }
        if case.name == "huge-output-count" && lookup_allocations > HUGE_LOOKUP_ALLOCATIONS {
            found.push(format!(
                "huge-output-count: lookup made {lookup_allocations} allocations"
            ));
        }
        report.push(format!(
            "{:40} lookup {:>9} B ({lookup_allocations} allocations), max of the others {:>9} B",
            case.name,
            lookup_peak,
            peaks[1..].iter().map(|p| p.1).max().unwrap_or(0)
        ));
    }
    println!("{}", report.join("\n"));
    assert!(found.is_empty(), "{}", found.join("\n"));
}

#[test]
fn safe_1_the_address_space_limit_bites() {
    // The limit must be real, or the 1 GiB case would prove nothing: with
    // room for the binary but not for a manifest at the cap, the same
    // `status` that succeeds under ADDRESS_SPACE_LIMIT dies.
    let case = Case::named("manifest-at-the-cap");
    let (_dir, layout) = fresh(case);
    let expect = case.build(&layout);
    let args = Step::Status.args(&expect.key);
    let roomy = cachet(&layout, &args);
    assert_eq!(roomy.code, Some(1), "{roomy:?}");
    let mut command = Command::new(env!("CARGO_BIN_EXE_cachet"));
    command
        .arg("--workspace")
        .arg(&layout.workspace)
        .arg("--cache-dir")
        .arg(&layout.cache)
        .args(&args);
    let tight = proc::run(&mut command, Some(TIGHT_LIMIT), DEADLINE);
    assert!(
        tight.code.is_none() && tight.signal.is_some(),
        "a 64 MiB manifest was read under a {} MiB limit: {tight:?}",
        TIGHT_LIMIT >> 20
    );
    // And the binary itself fits in the tight limit.
    let case = Case::named("valid-control");
    let (_dir, small) = fresh(case);
    let expect = case.build(&small);
    let mut command = Command::new(env!("CARGO_BIN_EXE_cachet"));
    command
        .arg("--workspace")
        .arg(&small.workspace)
        .arg("--cache-dir")
        .arg(&small.cache)
        .args(Step::Status.args(&expect.key));
    let fits = proc::run(&mut command, Some(TIGHT_LIMIT), DEADLINE);
    assert_eq!(fits.code, Some(0), "{fits:?}");
}

#[test]
fn rss_probe_measures_the_child_not_the_test_binary() {
    // In a probe process (see proc.rs) this serves the request and exits.
    proc::serve_probe();
    // Otherwise: with this test binary holding 128 MiB more, a child's
    // figure must not grow by it, or RSS_BOUND and SMALL_RSS_BOUND would
    // measure the test binary.
    let ballast = vec![1u8; 128 << 20];
    let version = || {
        let mut command = Command::new(env!("CARGO_BIN_EXE_cachet"));
        command.arg("--version");
        command
    };
    let measured = proc::run_measured(&mut version(), Some(ADDRESS_SPACE_LIMIT), DEADLINE);
    let forked = proc::run(&mut version(), None, DEADLINE);
    assert_eq!(measured.code, Some(0), "{measured:?}");
    assert!(
        measured.stdout_text().starts_with("cachet "),
        "{measured:?}"
    );
    assert!(
        measured.max_rss_bytes > 0 && measured.max_rss_bytes < 16 << 20,
        "{measured:?}"
    );
    println!(
        "cachet --version: {} KiB measured by the probe, {} KiB when forked from the test binary",
        measured.max_rss_bytes >> 10,
        forked.max_rss_bytes >> 10
    );
    assert!(ballast.iter().all(|&b| b == 1));
}
