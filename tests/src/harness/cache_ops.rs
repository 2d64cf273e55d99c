//! Fuzz target `cache_ops` (OP-1..7, SAFE-1, SAFE-3).
//!
//! The bytes decode (through `arbitrary`) into a [`Setup`] and a sequence
//! of [`Op`]s run against a [`Cache`] over a [`MemFs`]: stores of a few
//! fixed workspace files under four keys (two sharing a shard), lookups,
//! restores, cleans, clears, verifies and infos, each either plain, with
//! one injected filesystem fault, or interrupted by a crash that ends as a
//! process kill or a power loss; in between, the workspace changes and the
//! cache is tampered with (flipped, truncated or removed files, manifest
//! bytes changed, symlinks and debris planted).
//!
//! A plain model (`KeyModel`) records, per key, every content ever offered
//! to a store (its candidates) and what is known of the entry: absent,
//! present (with its exact content when known, and whether a completed
//! store made it durable), or unknown. After every step the checker reads
//! the real cache and holds it to the model:
//!
//! - a hit is never a content that was not stored for its key, and where
//!   the model knows the content, it is exactly that (CLAIM-1, SAFE-3);
//!   a miss is allowed only after something that may cause one (a fault,
//!   a crash, tampering, a clean);
//! - nothing panics (SAFE-1), and an operation with no fault injected
//!   fails only where the workspace or a tampered cache gives it a reason;
//! - a restore replays the streams and leaves every target either as it
//!   was or complete with its recorded bytes and mode, even when it crashes
//!   (OP-3, SAFE-3), and a miss writes nothing;
//! - a store that returned `Stored` survives a later power loss (OP-2);
//! - info and verify without eviction write nothing; a dry-run clean
//!   changes nothing; a soft clean removes no valid entry and, once the
//!   scratch grace period has passed, leaves no scratch or debris (OP-5,
//!   OP-6, SAFE-3).
//!
//! At the end a soft clean runs with the grace period elapsed and the cache
//! must hold no scratch, no debris and every entry the model knows.

use alloc::collections::BTreeSet;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use arbitrary::{Arbitrary, Unstructured};
use cachet_core::cache::{
    Cache, CacheError, CleanModes, CleanReason, DeterministicContext, LookupStatus, Options,
    RestoreOutcome, StoreOutcome,
};
use cachet_core::fs::{ErrorKind, FileKind, Filesystem, Root, Timestamp};
use cachet_core::hash::{Digest, HashFunction};
use cachet_core::key::Key;
use cachet_core::layout;
use cachet_core::memfs::{CrashMode, MemFs, TreeEntry};

use super::encode::{Encode, variant};
use super::memcache::{self, Content, Crash, Files};

/// The workspace files outputs are chosen from; none is an ancestor of
/// another, so every subset is a valid output list.
pub const FILES: [&str; 4] = ["/out/a.bin", "/out/b.txt", "/out/sub/c", "/d"];

/// At most this many operations run per input, so that every input runs
/// quickly.
pub const MAX_OPS: usize = 48;

const START: u64 = 1_000_000;

/// The key numbered `index` (mod 4). Keys 0 and 1 share shard `11`.
pub fn key(index: u8) -> Key {
    let mut bytes = [0u8; 32];
    match index % 4 {
        0 => bytes = [0x11; 32],
        1 => {
            bytes = [0x22; 32];
            bytes[0] = 0x11;
        }
        2 => bytes = [0xa7; 32],
        _ => {}
    }
    Key(Digest(bytes))
}

/// File and stream contents by number: empty, short texts, binary bytes,
/// and one longer than the copy buffer so copies take several chunks.
pub fn content(index: u8) -> Vec<u8> {
    match index % 6 {
        0 => Vec::new(),
        1 => b"a".to_vec(),
        2 => b"hello\n".to_vec(),
        3 => b"\x00\x01\xfe\xff binary".to_vec(),
        4 => (0..5000u32).map(|i| (i % 251) as u8).collect(),
        _ => b"other text\n".to_vec(),
    }
}

/// Permission bits by number.
pub fn mode(index: u8) -> u32 {
    [0o644, 0o755, 0o600, 0o444][usize::from(index % 4)]
}

/// Fixed choices for the whole run.
#[derive(Arbitrary, Clone, Debug, PartialEq, Eq)]
pub struct Setup {
    /// Renames between the roots fail, so restore copies (OP-3).
    pub cross_device: bool,
    /// The host cannot rename without replacing (`Replace::Never`), so
    /// store falls back (OP-2).
    pub no_rename_no_replace: bool,
    /// Scratch grace period of 60 s instead of 0 (OP-5).
    pub grace: bool,
    /// SHA-256 instead of BLAKE3 (KEY-2).
    pub sha256: bool,
}

/// A cache operation.
#[derive(Arbitrary, Clone, Debug, PartialEq, Eq)]
pub enum CacheOp {
    /// OP-2: store the [`FILES`] whose bit is set in `outputs`, with
    /// streams numbered `stdout` and `stderr` ([`content`]).
    Store {
        /// Key number.
        key: u8,
        /// Bit mask over [`FILES`].
        outputs: u8,
        /// Stdout content number.
        stdout: u8,
        /// Stderr content number.
        stderr: u8,
    },
    /// OP-1.
    Lookup {
        /// Key number.
        key: u8,
    },
    /// OP-3.
    Restore {
        /// Key number.
        key: u8,
    },
    /// OP-5.
    Clean {
        /// Soft mode.
        soft: bool,
        /// `max_age` in seconds.
        max_age: Option<u16>,
        /// `max_size` in bytes.
        max_size: Option<u16>,
        /// Report only.
        dry_run: bool,
    },
    /// OP-4.
    Clear,
    /// OP-7.
    Verify {
        /// Evict damaged entries.
        evict: bool,
    },
    /// OP-6.
    Info,
}

/// The error kinds a fault injects.
#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// [`ErrorKind::NotFound`]
    NotFound,
    /// [`ErrorKind::AlreadyExists`]
    AlreadyExists,
    /// [`ErrorKind::PermissionDenied`]
    PermissionDenied,
    /// [`ErrorKind::StorageFull`]
    StorageFull,
    /// [`ErrorKind::Unsupported`]
    Unsupported,
    /// [`ErrorKind::SymlinkRefused`]
    SymlinkRefused,
    /// [`ErrorKind::Other`]
    Other,
}

impl Fault {
    fn kind(self) -> ErrorKind {
        match self {
            Fault::NotFound => ErrorKind::NotFound,
            Fault::AlreadyExists => ErrorKind::AlreadyExists,
            Fault::PermissionDenied => ErrorKind::PermissionDenied,
            Fault::StorageFull => ErrorKind::StorageFull,
            Fault::Unsupported => ErrorKind::Unsupported,
            Fault::SymlinkRefused => ErrorKind::SymlinkRefused,
            Fault::Other => ErrorKind::Other,
        }
    }

    /// Whether the fault, met while inspecting an entry, makes a valid
    /// entry look damaged (OP-1 maps these kinds to a miss), so that clean
    /// or verify may evict it.
    fn fakes_a_miss(self) -> bool {
        matches!(self, Fault::NotFound | Fault::SymlinkRefused)
    }
}

/// How a crash ends, as decoded.
#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrashEnd {
    /// [`Crash::ProcessKill`]
    ProcessKill,
    /// [`Crash::PowerLoss`]
    PowerLoss,
    /// [`Crash::PowerLossAfterDirsFlushed`]
    PowerLossAfterDirsFlushed,
}

impl CrashEnd {
    fn crash(self) -> Crash {
        match self {
            CrashEnd::ProcessKill => Crash::ProcessKill,
            CrashEnd::PowerLoss => Crash::PowerLoss,
            CrashEnd::PowerLossAfterDirsFlushed => Crash::PowerLossAfterDirsFlushed,
        }
    }
}

/// Damage done to a cache entry behind the cache's back.
#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tamper {
    /// Flips one byte of a blob or stream, keeping its size.
    FlipByte {
        /// Which file (blobs in name order, then stdout, stderr).
        file: u8,
        /// Which byte.
        at: u16,
    },
    /// Drops the last byte of a blob or stream (or adds one to an empty
    /// file).
    Resize {
        /// Which file, as for `FlipByte`.
        file: u8,
    },
    /// Removes a blob or stream.
    Remove {
        /// Which file, as for `FlipByte`.
        file: u8,
    },
    /// Overwrites one byte of the manifest: the result may even parse, so
    /// the entry's content is no longer what was stored.
    ManifestByte {
        /// Which byte.
        at: u16,
        /// Its new value.
        value: u8,
    },
    /// Truncates the manifest.
    TruncateManifest {
        /// The new length (mod the old one).
        len: u16,
    },
    /// Makes a part of the entry a symlink.
    Symlink {
        /// 0 manifest, 1 first blob, 2 stdout, 3 outputs dir, 4 entry dir,
        /// 5 the shard.
        what: u8,
    },
    /// Plants debris: a foreign file in the shard, a scratch directory in
    /// the shard and at the top, a file where a shard would be, a foreign
    /// name at the top.
    Debris,
}

/// One step.
#[derive(Arbitrary, Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Writes a workspace file (a setup helper: durable, no faults).
    Write {
        /// Index into [`FILES`].
        file: u8,
        /// Content number.
        content: u8,
        /// Mode number.
        mode: u8,
    },
    /// Removes a workspace file.
    Remove {
        /// Index into [`FILES`].
        file: u8,
    },
    /// Moves the clock forward.
    Advance {
        /// Seconds.
        seconds: u16,
    },
    /// Damages the entry of key `key`.
    Tamper {
        /// Key number.
        key: u8,
        /// How.
        how: Tamper,
    },
    /// Runs `op` with no fault.
    Plain(CacheOp),
    /// Runs `op` with its `at`-th filesystem call failing with `fault`.
    Fault {
        /// Which call, counted from the start of `op`.
        at: u8,
        /// The injected error kind.
        fault: Fault,
        /// The operation.
        op: CacheOp,
    },
    /// Runs `op` until its `at`-th filesystem call, where the process
    /// dies; the crash then ends as `end` says.
    Crash {
        /// Which call, counted from the start of `op`.
        at: u16,
        /// How the crash ends.
        end: CrashEnd,
        /// The operation.
        op: CacheOp,
    },
}

impl Op {
    /// Whether the step may change the workspace without syncing: removing
    /// a file, or a restore (which renames outputs into place and creates
    /// directories without syncing them, as OP-3 allows).
    fn may_leave_the_workspace_unsynced(&self) -> bool {
        match self {
            Op::Remove { .. } => true,
            Op::Plain(op) | Op::Fault { op, .. } | Op::Crash { op, .. } => {
                matches!(op, CacheOp::Restore { .. })
            }
            Op::Write { .. } | Op::Advance { .. } | Op::Tamper { .. } => false,
        }
    }
}

/// The decoded input.
#[derive(Arbitrary, Clone, Debug, PartialEq, Eq)]
pub struct Input {
    /// Fixed choices.
    pub setup: Setup,
    /// The steps (only the first [`MAX_OPS`] run).
    pub ops: Vec<Op>,
}

/// Decodes `data` as `arbitrary` does for the fuzz target.
pub fn decode(data: &[u8]) -> Option<Input> {
    Input::arbitrary(&mut Unstructured::new(data)).ok()
}

/// Runs the `cache_ops` checks on `data`; panics on a violation.
pub fn run(data: &[u8]) {
    if let Some(input) = decode(data) {
        run_input(&input);
    }
}

/// Runs `input`; panics on a violation, naming the step.
pub fn run_input(input: &Input) {
    let mut world = World::new(&input.setup);
    world.check_consistency("setup");
    for (step, op) in input.ops.iter().take(MAX_OPS).enumerate() {
        let context = alloc::format!("step {step}: {op:?}");
        world.step(op, &context);
        if op.may_leave_the_workspace_unsynced() {
            // The next step's checks compare the workspace after a power
            // loss with the workspace before the step: make "before" the
            // durable state, as if the user's files had long been flushed.
            memcache::make_workspace_durable(&world.fs);
        }
        world.check_consistency(&context);
    }
    world.finish();
}

/// What is known of one key's entry.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Known {
    /// No valid entry (a lookup is a miss).
    Absent,
    /// A valid entry: its exact content when known, and whether a store
    /// that returned `Stored` published it (so it survives power loss).
    Present {
        content: Option<Content>,
        durable: bool,
    },
    /// Anything allowed by the candidates; resolved by the next
    /// observation.
    Unknown,
}

/// The plain model of one key.
#[derive(Clone, Debug)]
struct KeyModel {
    known: Known,
    /// Every content ever offered to a store for this key: the only
    /// contents a hit may have.
    candidates: Vec<Content>,
    /// A blob or stream had a byte flipped: restore and verify may find the
    /// entry corrupt although lookup hits. Cleared when a store publishes.
    damaged: bool,
    /// The manifest's bytes were changed: a hit may describe anything.
    /// Cleared when a store publishes.
    untrusted: bool,
}

/// How an operation ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Run {
    /// No fault met (also a fault or crash point never reached).
    Plain,
    /// An injected fault was met.
    Faulted(Fault),
    /// The process died.
    Crashed,
}

struct World {
    fs: MemFs,
    cache: Cache<MemFs>,
    options: Options,
    ctx: DeterministicContext,
    keys: [KeyModel; 4],
}

impl World {
    fn new(setup: &Setup) -> World {
        let fs = MemFs::new();
        fs.set_now(Timestamp::from_seconds(START));
        fs.set_cross_device(setup.cross_device);
        fs.set_rename_no_replace_supported(!setup.no_rename_no_replace);
        let options = Options {
            hash_function: if setup.sha256 {
                HashFunction::Sha256
            } else {
                HashFunction::Blake3
            },
            copy_buffer_bytes: 4096,
            scratch_grace_seconds: if setup.grace { 60 } else { 0 },
            // The stricter mode, so that `check_not_torn` holds after a
            // power loss too; `tests/crash.rs` covers the default.
            durable_restore: true,
            ..Options::default()
        };
        // A starting workspace: every file present.
        for (i, path) in FILES.iter().enumerate() {
            let i = i as u8;
            fs.write_file(Root::Workspace, &path[1..], &content(i + 1), mode(i))
                .unwrap_or_else(|e| panic!("setup write {path}: {e}"));
        }
        let model = KeyModel {
            known: Known::Absent,
            candidates: Vec::new(),
            damaged: false,
            untrusted: false,
        };
        World {
            cache: Cache::with_options(fs.clone(), options.clone()),
            fs,
            options,
            ctx: DeterministicContext {
                now: Timestamp::from_seconds(START),
                next_suffix: 1,
            },
            keys: [model.clone(), model.clone(), model.clone(), model],
        }
    }

    fn model(&mut self, index: u8) -> &mut KeyModel {
        &mut self.keys[usize::from(index % 4)]
    }

    fn step(&mut self, op: &Op, context: &str) {
        match op {
            Op::Write {
                file,
                content: c,
                mode: m,
            } => {
                let path = FILES[usize::from(file % 4)];
                // May fail where a tampered restore left a directory; the
                // workspace is what stores read, whatever it holds.
                let _ = self
                    .fs
                    .write_file(Root::Workspace, &path[1..], &content(*c), mode(*m));
            }
            Op::Remove { file } => {
                let path = FILES[usize::from(file % 4)];
                let _ = self.fs.remove_file(Root::Workspace, &path[1..]);
            }
            Op::Advance { seconds } => {
                let now = self.ctx.now.seconds + u64::from(*seconds);
                self.ctx.now = Timestamp::from_seconds(now);
                self.fs.set_now(self.ctx.now);
            }
            Op::Tamper { key: k, how } => self.tamper(*k, *how),
            Op::Plain(op) => self.cache_op(op, Run::Plain, None, context),
            Op::Fault { at, fault, op } => {
                let start = self.fs.op_count();
                self.fs.fail_at(u64::from(*at), fault.kind());
                let before = self.prepare(op);
                let outcome = self.execute(op);
                let met = self.fs.op_count() > start + u64::from(*at);
                // Cancels the fault if it was never reached, so that the
                // checks below run fault-free.
                self.fs.recover(CrashMode::ProcessKill);
                let run = if met {
                    Run::Faulted(*fault)
                } else {
                    Run::Plain
                };
                self.judge(op, before, outcome, run, None, context);
            }
            Op::Crash { at, end, op } => {
                self.fs.crash_at(u64::from(*at));
                self.cache_op(op, Run::Crashed, Some(end.crash()), context);
            }
        }
    }

    /// Runs one cache operation, crashing it as `crash` says when given.
    fn cache_op(&mut self, op: &CacheOp, run: Run, crash: Option<Crash>, context: &str) {
        let before = self.prepare(op);
        let outcome = self.execute(op);
        let run = match run {
            Run::Crashed if !self.fs.is_crashed() => {
                // The operation finished before its crash point: clear the
                // point so the checks below run undisturbed; the crash's
                // end (a power loss right after completion) still follows.
                self.fs.recover(CrashMode::ProcessKill);
                Run::Plain
            }
            other => other,
        };
        self.judge(op, before, outcome, run, crash, context);
    }

    /// What the checks of `op` need from before it runs.
    fn prepare(&self, op: &CacheOp) -> Before {
        let workspace = memcache::files(&self.fs, Root::Workspace);
        // Trees are only taken where a check needs them: copying them is
        // most of the harness's cost.
        let workspace_tree = match op {
            CacheOp::Restore { .. } => self.fs.tree(Root::Workspace),
            _ => Vec::new(),
        };
        let cache_tree = match op {
            CacheOp::Restore { .. } | CacheOp::Clear => Vec::new(),
            _ => self.fs.tree(Root::Cache),
        };
        let store = match op {
            CacheOp::Store {
                key: k,
                outputs,
                stdout,
                stderr,
            } => {
                let selected: Vec<&str> = FILES
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| outputs & (1 << i) != 0)
                    .map(|(_, path)| *path)
                    .collect();
                let mut files = Files::new();
                let mut regular = true;
                for path in &selected {
                    match workspace.get(*path) {
                        Some(file) => {
                            files.insert(path.to_string(), file.clone());
                        }
                        None => regular = false,
                    }
                }
                let shard = layout::shard(&key(*k));
                let shard_blocked = cache_tree
                    .iter()
                    .any(|(path, kind, ..)| path == shard.as_str() && *kind != FileKind::Dir);
                Some(StorePlan {
                    selected,
                    content: regular.then(|| Content {
                        outputs: files,
                        stdout: content(*stdout),
                        stderr: content(*stderr),
                    }),
                    shard_blocked,
                })
            }
            _ => None,
        };
        Before {
            workspace,
            workspace_tree,
            cache_tree,
            store,
        }
    }

    fn execute(&mut self, op: &CacheOp) -> Outcome {
        let ctx = &mut self.ctx;
        match op {
            CacheOp::Store {
                key: k,
                outputs,
                stdout,
                stderr,
            } => {
                let mut paths: Vec<&str> = FILES
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| outputs & (1 << i) != 0)
                    .map(|(_, path)| *path)
                    .collect();
                let (out, err) = (content(*stdout), content(*stderr));
                Outcome::Store(self.cache.store(
                    &key(*k),
                    &mut paths,
                    out.as_slice(),
                    err.as_slice(),
                    ctx,
                ))
            }
            CacheOp::Lookup { key: k } => Outcome::Lookup(self.cache.lookup(&key(*k), ctx)),
            CacheOp::Restore { key: k } => {
                let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
                let result = self.cache.restore(&key(*k), &mut stdout, &mut stderr, ctx);
                Outcome::Restore(Replay {
                    result,
                    stdout,
                    stderr,
                })
            }
            CacheOp::Clean {
                soft,
                max_age,
                max_size,
                dry_run,
            } => {
                let modes = CleanModes {
                    soft: *soft,
                    max_age_seconds: max_age.map(u64::from),
                    max_size_bytes: max_size.map(u64::from),
                    dry_run: *dry_run,
                    ..CleanModes::default()
                };
                Outcome::Clean(self.cache.clean(&modes, ctx).map(|report| {
                    (
                        report
                            .removed
                            .iter()
                            .map(|item| (item.path.clone(), item.reason))
                            .collect(),
                        report.failures.len(),
                        report.kept_in_use,
                        report.remaining_bytes,
                    )
                }))
            }
            CacheOp::Clear => {
                Outcome::Clear(self.cache.clear(ctx).map(|report| report.failures.len()))
            }
            CacheOp::Verify { evict } => {
                Outcome::Verify(self.cache.verify(*evict, ctx).map(|report| {
                    let damaged = report
                        .damaged
                        .iter()
                        .map(|d| {
                            let mismatch = matches!(
                                d.damage,
                                cachet_core::cache::Damage::ContentMismatch { .. }
                            );
                            (d.key, mismatch, d.evicted)
                        })
                        .collect();
                    (damaged, report.failures.len())
                }))
            }
            CacheOp::Info => Outcome::Info(
                self.cache
                    .info()
                    .map(|report| (report.valid_entries, report.failures.len())),
            ),
        }
    }

    /// Checks `op`'s outcome against the model, ends a crash, and updates
    /// the model.
    fn judge(
        &mut self,
        op: &CacheOp,
        before: Before,
        outcome: Outcome,
        run: Run,
        crash: Option<Crash>,
        context: &str,
    ) {
        let plain = run == Run::Plain;
        match (op, outcome) {
            (CacheOp::Store { key: k, .. }, Outcome::Store(result)) => {
                let Some(plan) = &before.store else {
                    panic!("{context}: no plan");
                };
                self.judge_store(*k, plan, &result, plain, context);
                assert_eq!(
                    memcache::files(&self.fs, Root::Workspace),
                    before.workspace,
                    "{context}: OP-2: a store changed the workspace"
                );
            }
            (CacheOp::Lookup { key: k }, Outcome::Lookup(result)) => {
                let present = matches!(self.model(*k).known, Known::Present { .. });
                match result {
                    Ok(hit) => assert!(
                        hit == present || (!plain && !hit),
                        "{context}: OP-1: lookup said {hit}, the model says present={present}"
                    ),
                    Err(e) => assert!(!plain, "{context}: lookup failed without a fault: {e}"),
                }
                assert_eq!(
                    self.fs.tree(Root::Cache),
                    before.cache_tree,
                    "{context}: OP-1: a lookup changed the cache's contents"
                );
            }
            (CacheOp::Restore { key: k }, Outcome::Restore(replay)) => {
                self.judge_restore(*k, &before, &replay, run, context);
            }
            (CacheOp::Clean { .. }, Outcome::Clean(result)) => {
                self.judge_clean(op, &before, &result, run, context);
            }
            (CacheOp::Clear, Outcome::Clear(result)) => {
                if plain {
                    assert_eq!(
                        result,
                        Ok(0),
                        "{context}: OP-4: clear failed without a fault"
                    );
                    assert!(
                        self.fs.tree(Root::Cache).is_empty(),
                        "{context}: OP-4: clear left {:?}",
                        self.fs.tree(Root::Cache)
                    );
                    for model in &mut self.keys {
                        model.known = Known::Absent;
                    }
                } else {
                    for model in &mut self.keys {
                        model.known = Known::Unknown;
                    }
                }
            }
            (CacheOp::Verify { evict }, Outcome::Verify(result)) => {
                self.judge_verify(*evict, &before, &result, run, context);
            }
            (CacheOp::Info, Outcome::Info(result)) => {
                if plain {
                    let present = self.present_count();
                    assert_eq!(
                        result,
                        Ok((present, 0)),
                        "{context}: OP-6: info disagrees with the model or failed"
                    );
                }
                assert_eq!(
                    self.fs.tree(Root::Cache),
                    before.cache_tree,
                    "{context}: OP-6: info wrote to the cache"
                );
            }
            (op, outcome) => panic!("{context}: outcome {outcome:?} does not belong to {op:?}"),
        }

        if let Some(crash) = crash {
            memcache::recover(&self.fs, crash);
            if crash.loses_power() {
                self.power_lost();
            }
        }
        if let CacheOp::Restore { key: k } = op {
            self.check_not_torn(*k, &before, context);
        }
    }

    fn judge_store(
        &mut self,
        k: u8,
        plan: &StorePlan,
        result: &Result<StoreOutcome, CacheError>,
        plain: bool,
        context: &str,
    ) {
        let model = self.model(k);
        let present = matches!(model.known, Known::Present { .. });
        if let Some(content) = &plan.content
            && !model.candidates.contains(content)
        {
            model.candidates.push(content.clone());
        }
        match result {
            Ok(StoreOutcome::Stored) => {
                let Some(content) = &plan.content else {
                    panic!("{context}: OP-2: stored although an output is not a regular file");
                };
                assert!(!present, "{context}: OP-2: a valid entry was replaced");
                model.known = Known::Present {
                    content: Some(content.clone()),
                    durable: true,
                };
                model.damaged = false;
                model.untrusted = false;
            }
            Ok(StoreOutcome::AlreadyPresent) => {
                assert!(
                    present,
                    "{context}: OP-2: AlreadyPresent without a valid entry"
                );
            }
            Ok(StoreOutcome::Contended) => {
                assert!(!plain, "{context}: OP-8: contended with no other process");
                model.known = Known::Unknown;
            }
            Err(e) => {
                if plain {
                    assert!(
                        !present && (plan.shard_blocked || plan.content.is_none()),
                        "{context}: store of {:?} failed with no fault and no reason: {e}",
                        plan.selected
                    );
                }
                model.known = Known::Unknown;
            }
        }
        if plain && result.is_ok() {
            assert!(
                present || (!plan.shard_blocked && plan.content.is_some()),
                "{context}: OP-2: store succeeded ({result:?}) where it could not"
            );
        }
    }

    fn judge_restore(&mut self, k: u8, before: &Before, replay: &Replay, run: Run, context: &str) {
        let Replay {
            result,
            stdout: out,
            stderr: err,
        } = replay;
        let (out, err) = (out.as_slice(), err.as_slice());
        let plain = run == Run::Plain;
        let key = key(k);
        let entry = memcache::entry_content(&self.fs, &key);
        let after = memcache::files(&self.fs, Root::Workspace);
        let model = self.keys[usize::from(k % 4)].clone();
        let present = matches!(model.known, Known::Present { .. });
        match result {
            Ok(RestoreOutcome::Restored {
                outputs,
                stdout_len,
                stderr_len,
            }) => {
                assert!(
                    present,
                    "{context}: OP-3: restored an entry the model says is absent"
                );
                let Some(entry) = entry else {
                    panic!("{context}: OP-3: restored an entry that cannot be read");
                };
                assert_eq!(
                    (out, err),
                    (entry.stdout.as_slice(), entry.stderr.as_slice()),
                    "{context}: CLAIM-1: replayed streams differ from the entry's"
                );
                assert_eq!(
                    (*stdout_len, *stderr_len),
                    (entry.stdout.len() as u64, entry.stderr.len() as u64),
                    "{context}: reported stream lengths"
                );
                if !model.untrusted {
                    assert_eq!(
                        *outputs,
                        entry.outputs.len() as u64,
                        "{context}: output count"
                    );
                    let mut expected = before.workspace.clone();
                    expected.extend(entry.outputs.clone());
                    assert_eq!(
                        after, expected,
                        "{context}: CLAIM-1: the workspace after restore is not the entry's outputs over what was there"
                    );
                    assert!(
                        model.candidates.contains(&entry),
                        "{context}: SAFE-3: restored content that was never stored for this key"
                    );
                    if let Known::Present {
                        content: Some(known),
                        ..
                    } = &model.known
                    {
                        assert_eq!(
                            &entry, known,
                            "{context}: CLAIM-1: restored another content"
                        );
                    }
                    let durable = matches!(model.known, Known::Present { durable: true, .. });
                    self.model(k).known = Known::Present {
                        content: Some(entry),
                        durable,
                    };
                }
            }
            Ok(RestoreOutcome::Miss(status)) => {
                if plain && present {
                    assert!(
                        (model.damaged || model.untrusted) && *status == LookupStatus::MissCorrupt,
                        "{context}: OP-3: restore missed ({status}) a valid, untampered entry"
                    );
                }
                assert_eq!(
                    after, before.workspace,
                    "{context}: OP-3: a restore that missed wrote to the workspace"
                );
            }
            Err(e) => {
                if plain && !model.untrusted {
                    assert!(
                        matches!(e, CacheError::UnsafeTarget { .. })
                            && self.blocked(&model, &before.workspace_tree),
                        "{context}: restore failed with no fault and no blocked target: {e}"
                    );
                }
                if matches!(e, CacheError::UnsafeTarget { .. }) && !model.untrusted {
                    assert_eq!(
                        after, before.workspace,
                        "{context}: SAFE-2: a refused restore wrote to the workspace"
                    );
                }
            }
        }
        if plain && present && !model.untrusted && !self.blocked(&model, &before.workspace_tree) {
            assert!(
                result.is_ok(),
                "{context}: restore of a valid entry failed with no fault: {result:?}"
            );
        }
    }

    /// Whether a target of any content the key may hold is blocked in the
    /// workspace: a directory or symlink at its path, or a non-directory
    /// at an ancestor (OP-3 refuses both, SAFE-2).
    fn blocked(&self, model: &KeyModel, tree: &[TreeEntry]) -> bool {
        let kind_of = |path: &str| {
            tree.iter()
                .find(|(p, ..)| p == path)
                .map(|(_, kind, ..)| *kind)
        };
        let paths: BTreeSet<&String> = match &model.known {
            Known::Present {
                content: Some(c), ..
            } => c.outputs.keys().collect(),
            _ => model
                .candidates
                .iter()
                .flat_map(|c| c.outputs.keys())
                .collect(),
        };
        paths.iter().any(|path| {
            let relative = &path[1..];
            let target_blocked = matches!(
                kind_of(relative),
                Some(FileKind::Dir | FileKind::Symlink | FileKind::Other)
            );
            let ancestor_blocked = relative
                .match_indices('/')
                .map(|(i, _)| &relative[..i])
                .any(|ancestor| matches!(kind_of(ancestor), Some(kind) if kind != FileKind::Dir));
            target_blocked || ancestor_blocked
        })
    }

    /// SAFE-3 for restore: after a crash (or a fault), every workspace file
    /// is what it was before, or complete with the bytes and mode of an
    /// output of a content stored for the key; nothing present before has
    /// gone; new names are outputs or the scratch copies of a cross-device
    /// restore.
    fn check_not_torn(&self, k: u8, before: &Before, context: &str) {
        let model = &self.keys[usize::from(k % 4)];
        if model.untrusted {
            return;
        }
        let after = memcache::files(&self.fs, Root::Workspace);
        for path in before.workspace.keys() {
            assert!(
                after.contains_key(path),
                "{context}: SAFE-3: restore lost workspace file {path}"
            );
        }
        for (path, file) in &after {
            if before.workspace.get(path) == Some(file) {
                continue;
            }
            let from_entry = model
                .candidates
                .iter()
                .any(|c| c.outputs.get(path) == Some(file));
            let scratch_copy = path
                .rsplit('/')
                .next()
                .is_some_and(|name| name.starts_with('.') && name.contains(".cachet-"));
            assert!(
                from_entry || scratch_copy,
                "{context}: SAFE-3: workspace file {path} is torn: {} bytes, mode {:o}, neither its old state nor a stored output",
                file.0.len(),
                file.1
            );
        }
    }

    fn judge_clean(
        &mut self,
        op: &CacheOp,
        before: &Before,
        result: &Result<CleanSummary, CacheError>,
        run: Run,
        context: &str,
    ) {
        let CacheOp::Clean {
            soft,
            max_age,
            max_size,
            dry_run,
        } = *op
        else {
            return;
        };
        let evicts_valid = max_age.is_some() || max_size.is_some();
        if run != Run::Plain {
            if dry_run {
                // A dry run writes nothing, fault or not.
                assert_eq!(
                    self.fs.tree(Root::Cache),
                    before.cache_tree,
                    "{context}: OP-5: a dry run changed the cache"
                );
                return;
            }
            let fakes_a_miss = matches!(run, Run::Faulted(fault) if fault.fakes_a_miss());
            for model in &mut self.keys {
                match model.known {
                    // A crash stops clean, it never fools it: a soft clean
                    // keeps every valid entry even when it dies midway.
                    Known::Present { .. } if !evicts_valid && !fakes_a_miss => {}
                    _ => model.known = Known::Unknown,
                }
            }
            return;
        }
        let Ok((removed, failures, kept_in_use, remaining_bytes)) = result else {
            panic!("{context}: OP-5: clean failed with no fault: {result:?}");
        };
        assert_eq!(
            *failures, 0,
            "{context}: OP-5: clean reported failures with no fault"
        );
        assert_eq!(
            *kept_in_use, 0,
            "{context}: OP-5: nothing used the cache meanwhile"
        );
        if let Some(max_size) = max_size {
            assert!(
                *remaining_bytes <= u64::from(max_size),
                "{context}: OP-5: {remaining_bytes} bytes remain over max_size {max_size}"
            );
        }
        for (path, reason) in removed {
            let Some(index) = (0..4u8).find(|&i| layout::entry_dir(&key(i)).as_str() == path)
            else {
                continue;
            };
            let present = matches!(self.keys[usize::from(index)].known, Known::Present { .. });
            let valid_reason = matches!(reason, CleanReason::MaxAge | CleanReason::MaxSize);
            assert_eq!(
                present, valid_reason,
                "{context}: OP-5: {path} removed as {reason:?} but the model says present={present}"
            );
            if !dry_run {
                self.keys[usize::from(index)].known = Known::Absent;
            }
        }
        if dry_run {
            assert_eq!(
                self.fs.tree(Root::Cache),
                before.cache_tree,
                "{context}: OP-5: a dry run changed the cache"
            );
            return;
        }
        if let Some(max_age) = max_age {
            for i in 0..4u8 {
                let model = &self.keys[usize::from(i)];
                if matches!(model.known, Known::Present { .. }) && !model.untrusted {
                    let created = memcache::created_at(&self.fs, &key(i)).unwrap_or(0);
                    assert!(
                        self.ctx.now.seconds.saturating_sub(created) <= u64::from(max_age),
                        "{context}: OP-5: an entry older than max_age {max_age} remains"
                    );
                }
            }
        }
        if soft {
            let info = self
                .cache
                .info()
                .unwrap_or_else(|e| panic!("{context}: info after clean: {e}"));
            assert_eq!(
                (info.corrupt_entries, info.schema_entries),
                (0, 0),
                "{context}: OP-5: a soft clean left corrupt or stale entries"
            );
            if self.options.scratch_grace_seconds == 0 {
                assert_eq!(
                    memcache::scratch(&self.fs),
                    Vec::<String>::new(),
                    "{context}: OP-5: a soft clean with no grace period left scratch"
                );
            }
        }
    }

    fn judge_verify(
        &mut self,
        evict: bool,
        before: &Before,
        result: &Result<VerifySummary, CacheError>,
        run: Run,
        context: &str,
    ) {
        if !evict {
            assert_eq!(
                self.fs.tree(Root::Cache),
                before.cache_tree,
                "{context}: OP-7: verify without eviction changed the cache"
            );
        }
        if run != Run::Plain {
            if evict {
                let fakes_a_miss = matches!(run, Run::Faulted(fault) if fault.fakes_a_miss());
                for model in &mut self.keys {
                    let tampered = model.damaged || model.untrusted;
                    match model.known {
                        Known::Present { .. } if !fakes_a_miss && !tampered => {}
                        _ => model.known = Known::Unknown,
                    }
                }
            }
            return;
        }
        let Ok((damaged, failures)) = result else {
            panic!("{context}: OP-7: verify failed with no fault: {result:?}");
        };
        assert_eq!(
            *failures, 0,
            "{context}: OP-7: verify reported failures with no fault"
        );
        for (damaged_key, mismatch, evicted) in damaged {
            let Some(index) = (0..4u8).find(|&i| key(i) == *damaged_key) else {
                panic!("{context}: verify flagged unknown key {damaged_key:?}");
            };
            let model = &mut self.keys[usize::from(index)];
            let present = matches!(model.known, Known::Present { .. });
            if *mismatch {
                assert!(
                    present && (model.damaged || model.untrusted),
                    "{context}: OP-7: content mismatch in an untampered entry"
                );
            } else {
                assert!(!present, "{context}: OP-7: a valid entry flagged corrupt");
            }
            assert_eq!(
                *evicted, evict,
                "{context}: OP-7: eviction not done as asked"
            );
            if evict {
                model.known = Known::Absent;
            }
        }
    }

    /// After a power loss, only entries a completed store published are
    /// known to be there; anything removed without a sync may be back.
    fn power_lost(&mut self) {
        for model in &mut self.keys {
            if !matches!(model.known, Known::Present { durable: true, .. }) {
                model.known = Known::Unknown;
            }
        }
    }

    fn present_count(&self) -> u64 {
        self.keys
            .iter()
            .filter(|m| matches!(m.known, Known::Present { .. }))
            .count() as u64
    }

    fn tamper(&mut self, k: u8, how: Tamper) {
        let key = key(k);
        let fs = &self.fs;
        let entry = layout::entry_dir(&key);
        // Blobs in name order, then the streams.
        let mut files: Vec<String> = fs
            .tree(Root::Cache)
            .into_iter()
            .filter(|(path, kind, ..)| {
                *kind == FileKind::File
                    && path.starts_with(alloc::format!("{entry}/outputs/").as_str())
            })
            .map(|(path, ..)| path)
            .collect();
        files.push(layout::stdout(&key).to_string());
        files.push(layout::stderr(&key).to_string());
        let pick = |index: u8| files[usize::from(index) % files.len()].clone();
        let rewrite = |path: &str, f: &dyn Fn(&mut Vec<u8>)| {
            if let Some(mut bytes) = fs.read_file(Root::Cache, path) {
                let mode = fs
                    .tree(Root::Cache)
                    .into_iter()
                    .find(|(p, ..)| p == path)
                    .map_or(0o644, |(.., mode)| mode);
                f(&mut bytes);
                let _ = fs.write_file(Root::Cache, path, &bytes, mode);
            }
        };
        let mut shard_wide = false;
        match how {
            Tamper::FlipByte { file, at } => {
                let path = pick(file);
                if fs
                    .read_file(Root::Cache, &path)
                    .is_some_and(|b| !b.is_empty())
                {
                    rewrite(&path, &|bytes| {
                        let i = usize::from(at) % bytes.len();
                        bytes[i] ^= 0x01;
                    });
                    self.model(k).damaged = true;
                }
            }
            Tamper::Resize { file } => {
                let path = pick(file);
                if fs.read_file(Root::Cache, &path).is_some() {
                    rewrite(&path, &|bytes| {
                        if bytes.pop().is_none() {
                            bytes.push(b'!');
                        }
                    });
                    // Resized twice, a one-byte file is back at its size
                    // with other bytes ("a", "", "!"): damaged like a
                    // flipped byte, not only ever a size mismatch.
                    self.model(k).damaged = true;
                }
            }
            Tamper::Remove { file } => {
                let _ = fs.remove_file(Root::Cache, &pick(file));
            }
            Tamper::ManifestByte { at, value } => {
                let path = layout::manifest(&key);
                if fs
                    .read_file(Root::Cache, &path)
                    .is_some_and(|b| !b.is_empty())
                {
                    rewrite(&path, &|bytes| {
                        let i = usize::from(at) % bytes.len();
                        bytes[i] = value;
                    });
                    self.model(k).untrusted = true;
                }
            }
            Tamper::TruncateManifest { len } => rewrite(&layout::manifest(&key), &|bytes| {
                let keep = usize::from(len) % bytes.len().max(1);
                bytes.truncate(keep);
            }),
            Tamper::Symlink { what } => {
                let path = match what % 6 {
                    0 => layout::manifest(&key).to_string(),
                    1 => pick(0),
                    2 => layout::stdout(&key).to_string(),
                    3 => layout::outputs_dir(&key).to_string(),
                    4 => entry.to_string(),
                    _ => {
                        shard_wide = true;
                        layout::shard(&key).to_string()
                    }
                };
                let _ = fs.pretend_symlink(Root::Cache, &path);
            }
            Tamper::Debris => {
                let shard = layout::shard(&key);
                let _ = fs.write_file(Root::Cache, &alloc::format!("{shard}/junk"), b"j", 0o644);
                let _ = fs.write_file(
                    Root::Cache,
                    &alloc::format!("{shard}/.tmp-junk/outputs/.partial"),
                    b"partial",
                    0o644,
                );
                let _ = fs.write_file(Root::Cache, ".restore-junk/0", b"staged", 0o644);
                let _ = fs.write_file(Root::Cache, "ff", b"not a shard", 0o644);
                let _ = fs.write_file(Root::Cache, "NOTES", b"foreign", 0o644);
            }
        }
        let shard = layout::shard(&key);
        for i in 0..4u8 {
            if i % 4 == k % 4 || (shard_wide && layout::shard(&self::key(i)) == shard) {
                self.keys[usize::from(i)].known = Known::Unknown;
            }
        }
    }

    /// Holds the real cache to the model for every key, then narrows
    /// unknown states to what was observed.
    fn check_consistency(&mut self, context: &str) {
        for i in 0..4u8 {
            let key = key(i);
            let status = self
                .cache
                .lookup_status(&key)
                .unwrap_or_else(|e| panic!("{context}: OP-1: lookup failed with no fault: {e}"));
            let hit = status == LookupStatus::Hit;
            let model = &mut self.keys[usize::from(i)];
            match &model.known {
                Known::Absent => assert!(
                    !hit,
                    "{context}: SAFE-3: key {i} hits but the model says absent"
                ),
                Known::Present { .. } => assert!(
                    hit,
                    "{context}: SAFE-3: key {i} is {status} but the model says present: {:?}",
                    self.fs
                        .tree(Root::Cache)
                        .iter()
                        .map(|e| &e.0)
                        .collect::<Vec<_>>()
                ),
                Known::Unknown => {}
            }
            if !hit {
                model.known = Known::Absent;
                continue;
            }
            if model.untrusted {
                if model.known == Known::Unknown {
                    model.known = Known::Present {
                        content: None,
                        durable: false,
                    };
                }
                continue;
            }
            let Some(found) = memcache::entry_content(&self.fs, &key) else {
                panic!("{context}: SAFE-3: key {i} hits but its files cannot be read");
            };
            if model.damaged {
                assert!(
                    model.candidates.iter().any(|c| c.shape() == found.shape()),
                    "{context}: SAFE-3: key {i} hits with a shape never stored"
                );
                if model.known == Known::Unknown {
                    model.known = Known::Present {
                        content: None,
                        durable: false,
                    };
                }
                continue;
            }
            assert!(
                model.candidates.contains(&found),
                "{context}: SAFE-3: key {i} hits with content never stored for it: {found:?}"
            );
            match &mut model.known {
                Known::Present {
                    content: Some(known),
                    ..
                } => assert_eq!(
                    &found, known,
                    "{context}: SAFE-3: key {i} hits with another content than stored"
                ),
                Known::Present { content, .. } => *content = Some(found),
                Known::Unknown => {
                    model.known = Known::Present {
                        content: Some(found),
                        durable: false,
                    }
                }
                Known::Absent => {}
            }
        }
        let present = self.present_count();
        let info = self
            .cache
            .info()
            .unwrap_or_else(|e| panic!("{context}: SAFE-3: info failed on the debris: {e}"));
        assert!(
            info.failures.is_empty(),
            "{context}: SAFE-3: info failed on items: {:?}",
            info.failures
        );
        assert_eq!(
            info.valid_entries, present,
            "{context}: OP-6: info counts another number of valid entries"
        );
    }

    /// The final soft clean: with the grace period elapsed, it removes
    /// every scratch and debris item and keeps every valid entry.
    fn finish(&mut self) {
        let context = "final soft clean";
        let later = self.ctx.now.seconds + self.options.scratch_grace_seconds + 1;
        self.ctx.now = Timestamp::from_seconds(later);
        self.fs.set_now(self.ctx.now);
        let modes = CleanModes {
            soft: true,
            ..CleanModes::default()
        };
        let report = self
            .cache
            .clean(&modes, &mut self.ctx)
            .unwrap_or_else(|e| panic!("{context}: {e}"));
        assert!(
            report.failures.is_empty(),
            "{context}: failures {:?}",
            report.failures
        );
        assert_eq!(
            memcache::scratch(&self.fs),
            Vec::<String>::new(),
            "{context}: SAFE-3: scratch left after a soft clean past the grace period"
        );
        let info = self
            .cache
            .info()
            .unwrap_or_else(|e| panic!("{context}: info: {e}"));
        assert_eq!(
            (
                info.corrupt_entries,
                info.schema_entries,
                info.scratch_items
            ),
            (0, 0, 0),
            "{context}: SAFE-3: debris left after a soft clean"
        );
        self.check_consistency(context);
    }
}

/// What a store was asked to do, read from the workspace before it ran.
struct StorePlan {
    selected: Vec<&'static str>,
    /// `None` when a selected output is not a regular file.
    content: Option<Content>,
    /// The shard path is taken by a non-directory.
    shard_blocked: bool,
}

/// What the checks of an operation need from before it ran.
struct Before {
    workspace: Files,
    workspace_tree: Vec<TreeEntry>,
    cache_tree: Vec<TreeEntry>,
    store: Option<StorePlan>,
}

/// What a clean reported: removed items (path, reason), number of
/// failures, entries kept in use, bytes remaining.
type CleanSummary = (Vec<(String, CleanReason)>, usize, u64, u64);

/// What a verify reported: damaged entries (key, content mismatch rather
/// than corrupt, evicted), number of failures.
type VerifySummary = (Vec<(Key, bool, bool)>, usize);

/// A restore's result with the streams it replayed.
#[derive(Debug)]
struct Replay {
    result: Result<RestoreOutcome, CacheError>,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

#[derive(Debug)]
enum Outcome {
    Store(Result<StoreOutcome, CacheError>),
    Lookup(Result<bool, CacheError>),
    Restore(Replay),
    Clean(Result<CleanSummary, CacheError>),
    Clear(Result<usize, CacheError>),
    Verify(Result<VerifySummary, CacheError>),
    Info(Result<(u64, usize), CacheError>),
}

// ---- Encoding, for seeds ----

impl Encode for Setup {
    fn encode(&self, out: &mut Vec<u8>) {
        self.cross_device.encode(out);
        self.no_rename_no_replace.encode(out);
        self.grace.encode(out);
        self.sha256.encode(out);
    }
}

impl Encode for CacheOp {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            CacheOp::Store {
                key,
                outputs,
                stdout,
                stderr,
            } => {
                variant(out, 0, 7);
                (*key, *outputs, *stdout, *stderr).encode(out);
            }
            CacheOp::Lookup { key } => {
                variant(out, 1, 7);
                key.encode(out);
            }
            CacheOp::Restore { key } => {
                variant(out, 2, 7);
                key.encode(out);
            }
            CacheOp::Clean {
                soft,
                max_age,
                max_size,
                dry_run,
            } => {
                variant(out, 3, 7);
                soft.encode(out);
                max_age.encode(out);
                max_size.encode(out);
                dry_run.encode(out);
            }
            CacheOp::Clear => variant(out, 4, 7),
            CacheOp::Verify { evict } => {
                variant(out, 5, 7);
                evict.encode(out);
            }
            CacheOp::Info => variant(out, 6, 7),
        }
    }
}

impl Encode for Fault {
    fn encode(&self, out: &mut Vec<u8>) {
        let index = match self {
            Fault::NotFound => 0,
            Fault::AlreadyExists => 1,
            Fault::PermissionDenied => 2,
            Fault::StorageFull => 3,
            Fault::Unsupported => 4,
            Fault::SymlinkRefused => 5,
            Fault::Other => 6,
        };
        variant(out, index, 7);
    }
}

impl Encode for CrashEnd {
    fn encode(&self, out: &mut Vec<u8>) {
        let index = match self {
            CrashEnd::ProcessKill => 0,
            CrashEnd::PowerLoss => 1,
            CrashEnd::PowerLossAfterDirsFlushed => 2,
        };
        variant(out, index, 3);
    }
}

impl Encode for Tamper {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Tamper::FlipByte { file, at } => {
                variant(out, 0, 7);
                file.encode(out);
                at.encode(out);
            }
            Tamper::Resize { file } => {
                variant(out, 1, 7);
                file.encode(out);
            }
            Tamper::Remove { file } => {
                variant(out, 2, 7);
                file.encode(out);
            }
            Tamper::ManifestByte { at, value } => {
                variant(out, 3, 7);
                at.encode(out);
                value.encode(out);
            }
            Tamper::TruncateManifest { len } => {
                variant(out, 4, 7);
                len.encode(out);
            }
            Tamper::Symlink { what } => {
                variant(out, 5, 7);
                what.encode(out);
            }
            Tamper::Debris => variant(out, 6, 7),
        }
    }
}

impl Encode for Op {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Op::Write {
                file,
                content,
                mode,
            } => {
                variant(out, 0, 7);
                file.encode(out);
                content.encode(out);
                mode.encode(out);
            }
            Op::Remove { file } => {
                variant(out, 1, 7);
                file.encode(out);
            }
            Op::Advance { seconds } => {
                variant(out, 2, 7);
                seconds.encode(out);
            }
            Op::Tamper { key, how } => {
                variant(out, 3, 7);
                key.encode(out);
                how.encode(out);
            }
            Op::Plain(op) => {
                variant(out, 4, 7);
                op.encode(out);
            }
            Op::Fault { at, fault, op } => {
                variant(out, 5, 7);
                at.encode(out);
                fault.encode(out);
                op.encode(out);
            }
            Op::Crash { at, end, op } => {
                variant(out, 6, 7);
                at.encode(out);
                end.encode(out);
                op.encode(out);
            }
        }
    }
}

impl Encode for Input {
    fn encode(&self, out: &mut Vec<u8>) {
        self.setup.encode(out);
        self.ops.encode(out);
    }
}
