//! Hostile caches and inputs (issue #5, part 4), in the Wasm guest: every
//! case of [`cases`] (shared with `host-std/tests/hostile/main.rs`, which
//! runs them through the native `cachet` binary) through the `cachet-wasi`
//! guest under the wasmtime [`Embedding`].
//!
//! Each case runs [`Step::SEQUENCE`] (`status`, `restore`, `info`,
//! `verify`, `clean --soft`, `status`, `clear`) with the same arguments as
//! natively, and demands the same things: the verdict of [`cases::judge`]
//! (a miss or a clear error; a trap counts as a crash), the secret never in
//! a stream, the workspace unchanged except by a successful restore
//! ([`cases::judge_workspace`], permission bits included, since the
//! embedding applies the modes the guest logs), the `outside` directory
//! unchanged, and `clear` emptying the cache directory.
//!
//! Where the guest differs from the native run, explicitly:
//!
//! - **Memory.** Natively every command runs under `RLIMIT_AS` with its
//!   peak resident set measured through `wait4`; both are properties of a
//!   native child process. The guest runs inside this test process, in a
//!   linear memory that the embedding does not expose, so no RSS bound is
//!   checked here; the bounded-memory cases (`manifest-of-1-gib`,
//!   `manifest-at-the-cap`, `huge-output-count`) still run and must reach
//!   the native verdict without trapping. That is weaker than natively: a
//!   1 GiB manifest fits in the guest's 4 GiB linear memory, so a guest
//!   that read it whole before refusing it would pass here. Only the
//!   native tests (same `cachet_core` reader) bound that memory.
//! - **Deadline.** The embedding has no timeout of its own; each command
//!   runs on a helper thread and the case fails if it is not back within
//!   [`DEADLINE`] (a FIFO opened for reading would block forever). A hung
//!   thread cannot be killed; it is abandoned and the process exits at the
//!   end of the run.
//! - **FIFO.** `blob-is-a-fifo` needs `mkfifo`, which the case builder
//!   runs on the host before the guest starts; the guest then meets the
//!   FIFO through its preopened cache directory, as a native run would.
//! - **Arguments.** The guest gets no `--workspace` or `--cache-dir`: the
//!   embedding preopens the two roots instead, which is what those flags
//!   mean natively.
//!
//! The guest module is built beforehand (see host-wasi/README.md); its path
//! is `$CACHET_WASI_GUEST`, else `$CARGO_TARGET_DIR` (or the workspace's
//! `target/`) + `wasm32-wasip1/release/cachet-wasi.wasm`.

extern crate alloc;

use cachet_tests::hostile as cases;

use core::time::Duration;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::Instant;

use cachet_wasi::embed::{EmbedError, Embedding, GuestOutput};

use cases::{Case, Layout, Ran, Step};

/// Deadline of one guest command (generous: the 64 MiB manifests and the
/// deep debris take a while through WASI calls).
const DEADLINE: Duration = Duration::from_secs(120);

fn guest_path() -> PathBuf {
    if let Some(path) = std::env::var_os("CACHET_WASI_GUEST") {
        return PathBuf::from(path);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("wasm32-wasip1/release/cachet-wasi.wasm")
}

fn embedding() -> &'static Embedding {
    static EMBEDDING: OnceLock<Embedding> = OnceLock::new();
    EMBEDDING.get_or_init(|| {
        let path = guest_path();
        Embedding::from_file(&path).unwrap_or_else(|e| {
            panic!(
                "{e}\n(looked for the guest at {}; set CACHET_WASI_GUEST)",
                path.display()
            )
        })
    })
}

/// A fresh layout for `case` in a temporary directory (canonical, so no
/// symlink in its own path muddles the snapshots).
fn fresh(case: &Case) -> (tempfile::TempDir, Layout) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    let layout = case.layout(&root);
    (dir, layout)
}

/// What one guest command did, as [`cases::judge`] sees it, with a note
/// when the embedding itself reported something beyond the exit status.
struct Finished {
    ran: Ran,
    note: Option<String>,
    timed_out: bool,
    elapsed: Duration,
}

/// Runs one command in the guest on a helper thread, waiting at most
/// [`DEADLINE`].
fn run_guest(layout: &Layout, args: Vec<String>) -> Finished {
    let embedding = embedding();
    let (workspace, cache) = (layout.workspace.clone(), layout.cache.clone());
    let (send, receive) = mpsc::channel();
    let start = Instant::now();
    std::thread::spawn(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let _ = send.send(embedding.run(&workspace, &cache, &args));
    });
    let result = receive.recv_timeout(DEADLINE);
    let elapsed = start.elapsed();
    let (ran, note, timed_out) = match result {
        Ok(Ok(GuestOutput {
            status,
            stdout,
            stderr,
        })) => (
            Ran {
                code: Some(status),
                stdout,
                stderr,
            },
            None,
            false,
        ),
        // A trap is the guest's crash: like a signal natively, `judge`
        // rejects it.
        Ok(Err(EmbedError::Trap {
            message,
            stdout,
            stderr,
        })) => (
            Ran {
                code: None,
                stdout,
                stderr,
            },
            Some(format!("trapped: {message}")),
            false,
        ),
        // The guest reported success but the embedding could not apply the
        // modes: the caller must treat the restore as a miss, so this is a
        // violation wherever the guest said it restored.
        Ok(Err(EmbedError::ApplyModes {
            path,
            message,
            output,
        })) => (
            Ran {
                code: Some(output.status),
                stdout: output.stdout,
                stderr: output.stderr,
            },
            Some(format!("cannot apply modes to '{path}': {message}")),
            false,
        ),
        Ok(Err(other)) => (
            Ran {
                code: None,
                stdout: Vec::new(),
                stderr: Vec::new(),
            },
            Some(format!("the embedding failed: {other}")),
            false,
        ),
        Err(_) => (
            Ran {
                code: None,
                stdout: Vec::new(),
                stderr: Vec::new(),
            },
            None,
            true,
        ),
    };
    Finished {
        ran,
        note,
        timed_out,
        elapsed,
    }
}

/// Runs one case through the guest and returns every violation found
/// (empty when the case passes).
fn violations(case: &Case) -> Vec<String> {
    let (temp, layout) = fresh(case);
    let expect = case.build(&layout);
    let outside = cases::snapshot(&layout.outside);
    let mut found = Vec::new();
    let mut slowest = Duration::ZERO;
    for step in Step::SEQUENCE {
        let before = layout.workspace_snapshot();
        let finished = run_guest(&layout, step.args(&expect.key));
        slowest = slowest.max(finished.elapsed);
        let mut problems = Vec::new();
        if finished.timed_out {
            problems.push(format!("ran past {DEADLINE:?} (abandoned)"));
        } else if let Err(problem) = cases::judge(step, &expect, &finished.ran) {
            problems.push(problem);
        }
        if let Some(note) = &finished.note {
            problems.push(note.clone());
        }
        // A command still running cannot be judged by what it has written
        // so far, nor may later steps run beside it.
        let timed_out = finished.timed_out;
        if !timed_out {
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
        }
        for problem in problems {
            found.push(format!(
                "{} [{}] {:?}: {problem}\n{:?}",
                case.name, case.rules, step, finished.ran
            ));
        }
        if timed_out {
            // The abandoned thread still holds the layout; keep it (leak
            // the temporary directory) rather than delete it under it.
            core::mem::forget(temp);
            break;
        }
    }
    println!("{:40} slowest command {slowest:?}", case.name);
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

// ---------------------------------------------------------------- tests

#[test]
fn op_1_op_3_the_valid_control_entry_is_a_hit_and_restores_exactly_in_the_guest() {
    run_named(&["valid-control"]);
}

#[test]
fn safe_2_symlinks_to_outside_in_the_cache_are_a_miss_in_the_guest() {
    run_named(&[
        "blob-symlink-to-secret",
        "stream-symlink-to-secret",
        "manifest-symlink-outside",
        "outputs-dir-symlink-outside",
    ]);
}

#[test]
fn safe_2_planted_entry_and_shard_links_are_a_miss_and_clean_removes_only_the_link_in_the_guest() {
    run_named(&["entry-dir-symlink-outside", "shard-symlink-outside"]);
}

#[test]
fn safe_2_workspace_dir_symlinked_outside_is_refused_naming_it_in_the_guest() {
    run_named(&[
        "workspace-dir-symlinked-outside",
        "nested-workspace-dir-symlinked-outside",
    ]);
}

#[test]
fn safe_2_a_target_symlink_to_an_outside_file_is_replaced_not_followed_in_the_guest() {
    run_named(&["workspace-target-symlink-to-outside-file"]);
}

#[test]
fn safe_4_a_path_the_os_cannot_create_is_a_clear_error_before_writing_in_the_guest() {
    run_named(&["path-segment-too-long-for-the-os"]);
}

#[test]
fn path_2_traversal_in_a_manifest_is_a_miss_in_the_guest() {
    run_cases(&cases::traversal_cases());
}

#[test]
fn path_2_bidi_invisible_and_control_characters_in_a_manifest_are_a_miss_in_the_guest() {
    run_cases(&cases::bidi_cases());
}

#[test]
fn safe_1_huge_and_out_of_range_numbers_in_a_manifest_are_a_miss_in_the_guest() {
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
fn safe_1_huge_output_count_is_a_miss_in_the_guest() {
    // No RSS bound in the guest (see the module docs).
    run_named(&["huge-output-count"]);
}

#[test]
fn safe_1_deeply_nested_manifests_are_a_miss_in_the_guest() {
    run_named(&[
        "deeply-nested-outputs",
        "deeply-nested-unknown-member",
        "deeply-nested-output-object",
    ]);
}

#[test]
fn man_4_manifests_at_and_over_the_cap_in_the_guest() {
    // No RLIMIT_AS or RSS bound in the guest (see the module docs); the
    // 1 GiB manifest must still be a miss without a trap.
    run_named(&[
        "manifest-of-1-gib",
        "manifest-one-byte-over-the-cap",
        "manifest-at-the-cap",
    ]);
}

#[test]
fn op_1_truncated_missing_and_misfiled_parts_are_a_miss_in_the_guest() {
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
fn op_3_tampered_blob_of_the_same_size_restores_nothing_and_verify_finds_it_in_the_guest() {
    run_named(&["tampered-blob-same-size", "tampered-stream-same-size"]);
}

#[test]
fn safe_1_a_fifo_blob_is_a_miss_without_hanging_in_the_guest() {
    // The FIFO is made on the host (`mkfifo`) by the case builder; the
    // guest meets it through the preopened cache directory.
    run_named(&["blob-is-a-fifo"]);
}

#[test]
fn safe_1_deep_directory_debris_is_reported_by_path_without_overflow_in_the_guest() {
    run_named(&["deep-directory-debris"]);
}

#[test]
fn safe_5_an_entry_listing_a_path_twice_is_a_miss_in_the_guest() {
    run_named(&["output-path-twice", "output-path-twice-out-of-order"]);
}

#[test]
fn safe_6_an_entry_listing_a_path_below_another_output_is_a_miss_in_the_guest() {
    run_named(&["output-below-another-output"]);
}

#[test]
fn safe_7_an_entry_with_an_output_in_a_git_directory_is_a_miss_in_the_guest() {
    run_named(&["output-in-git-dir"]);
}

#[test]
fn safe_8_an_entry_with_an_output_in_or_above_the_cache_directory_is_a_miss_in_the_guest() {
    run_named(&[
        "output-in-cache-dir",
        "output-above-cache-dir",
        "valid-control-with-cache-in-workspace",
    ]);
}

#[test]
fn every_case_is_run_by_some_test() {
    // The named lists above must cover the whole reusable list, so a case
    // added to `cases.rs` cannot be forgotten in the guest either (the
    // path cases run through `traversal_cases` and `bidi_cases`).
    let source = include_str!("main.rs");
    for case in cases::ALL {
        assert!(
            source.contains(&format!("\"{}\"", case.name)),
            "case {} is not run in the guest",
            case.name
        );
    }
    assert!(source.contains("run_cases(&cases::traversal_cases())"));
    assert!(source.contains("run_cases(&cases::bidi_cases())"));
}
