//! [`Embedding`]: runs the `cachet-wasi` guest command under wasmtime.
//!
//! The guest module is compiled once, when the [`Embedding`] is made, and
//! pre-linked against `wasmtime-wasi`'s preview 1 implementation; every
//! [`Embedding::run`] then only instantiates it in a fresh store. Each run
//! sees exactly two preopened directories, the workspace as
//! [`WORKSPACE_PREOPEN`](crate::WORKSPACE_PREOPEN) and the cache directory as
//! [`CACHE_PREOPEN`](crate::CACHE_PREOPEN), no inherited environment, no
//! network, and empty stdin; for the subcommands that only read (`status`,
//! `info`, `key`, `verify` without `--evict`) both are preopened read-only
//! ([`FsPerms::ReadOnly`]).
//!
//! # Why `wasmtime-wasi` preview 1 and not `wasi-common`
//!
//! `wasi-common` was wasmtime's original preview 1 implementation. Its last
//! release is 46.0.3 and it was removed from the wasmtime repository after
//! that, so it cannot follow the wasmtime 48 LTS line this crate is pinned
//! to. `wasmtime-wasi` implements preview 1 (`p1::add_to_linker_sync`) over
//! the same `cap-std` filesystem layer as preview 2, and is maintained with
//! wasmtime itself.
//!
//! # Permission bits
//!
//! Preview 1 has none (see [`crate::modes`]). The embedding, which is
//! trusted and native, bridges them: before a `store` it hands the guest
//! the modes of the files its `--output` patterns can select, and after a
//! `restore`
//! it applies the modes the guest logged, to workspace files only and never
//! through a symlink.
//!
//! # Syncing the whole filesystem
//!
//! WASI preview 1 has no `syncfs`, so a guest store would `fsync` every file
//! it writes. The embedding provides the host call
//! [`HOST_SYNC_FILESYSTEM`](crate::HOST_SYNC_FILESYSTEM) in
//! [`HOST_MODULE`](crate::HOST_MODULE), a `syncfs` of the workspace's or the
//! cache directory's filesystem; a guest built with the `host-sync` feature uses
//! it and then syncs once per store, like the native binding. The default
//! guest does not import it and runs in any WASI preview 1 host.

use core::hash::{BuildHasher, Hasher};
use core::sync::atomic::{AtomicU64, Ordering};
use std::collections::hash_map::RandomState;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, PoisonError};

use cachet_cli::PlumbingCli;
use cachet_cli::parse::excluded_dir;
use cachet_cli::select::literal_prefix;
use cap_fs_ext::{FollowSymlinks, OpenOptionsFollowExt};
use cap_std::ambient_authority;
use cap_std::fs::{Dir, OpenOptions, Permissions, PermissionsExt};
use wasmtime::{
    Caller, Config, Enabled, Engine, InstanceAllocationStrategy, InstancePre, Linker, Module,
    PoolingAllocationConfig, Store,
};
use wasmtime_wasi::p1::WasiP1Ctx;

/// What one run's store holds: the guest's WASI context, and the two roots
/// the host calls act on.
struct GuestState {
    wasi: WasiP1Ctx,
    /// The workspace and the cache directory, in the order of the
    /// `sync-filesystem` root numbers.
    roots: [PathBuf; 2],
}

/// WASI errno values the host calls return.
const ERRNO_INVAL: u32 = 28;
const ERRNO_IO: u32 = 29;

/// `syncfs(2)` of the filesystem that holds `root`. The directory is opened
/// for reading because `syncfs` refuses an `O_PATH` descriptor.
fn sync_filesystem_of(root: &Path) -> io::Result<()> {
    let dir = std::fs::File::open(root)?;
    rustix::fs::syncfs(&dir).map_err(io::Error::from)
}
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{FsPerms, I32Exit, WasiCtxBuilder};

use crate::modes::{DEFAULT_FILE_MODE, MODE_LOG_ENV, MODES_ENV, ModeTable};
use crate::{CACHE_PREOPEN, EXCLUDED_DIR_ENV, WORKSPACE_PREOPEN};

/// Default cap on each captured stream ([`Embedding::set_max_output_bytes`]).
pub const DEFAULT_MAX_OUTPUT_BYTES: usize = 1 << 30;

/// What a guest run produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuestOutput {
    /// The exit status the guest passed to `proc_exit` (0 when `_start`
    /// returned).
    pub status: i32,
    /// Everything the guest wrote to stdout.
    pub stdout: Vec<u8>,
    /// Everything the guest wrote to stderr.
    pub stderr: Vec<u8>,
}

/// Why the embedding could not run the guest, or the guest did not finish.
#[derive(Debug)]
#[non_exhaustive]
pub enum EmbedError {
    /// The guest module file could not be read.
    ReadModule {
        /// The path given.
        path: PathBuf,
        /// What the operating system reported.
        source: io::Error,
    },
    /// wasmtime could not compile or link the module (not a WASI preview 1
    /// command, or a corrupt file).
    Compile {
        /// wasmtime's message.
        message: String,
    },
    /// A root directory could not be created or preopened.
    Preopen {
        /// The directory.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The guest trapped (a panic, an out-of-bounds access, a stream over
    /// the output cap) instead of exiting.
    Trap {
        /// wasmtime's description of the trap.
        message: String,
        /// What the guest wrote to stdout before the trap.
        stdout: Vec<u8>,
        /// What the guest wrote to stderr before the trap.
        stderr: Vec<u8>,
    },
    /// The modes the guest logged after a restore could not be applied, so
    /// restored files may lack their recorded permission bits (CLAIM-1);
    /// treat the restore as a miss.
    ApplyModes {
        /// The workspace-relative path, or the log file, involved.
        path: String,
        /// What went wrong.
        message: String,
        /// The guest's output, which otherwise reported success.
        output: GuestOutput,
    },
}

impl core::fmt::Display for EmbedError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            EmbedError::ReadModule { path, source } => write!(
                f,
                "cannot read the guest module {}: {source}; build it with `cargo build -p cachet-wasi --target wasm32-wasip1 --release`",
                path.display()
            ),
            EmbedError::Compile { message } => write!(
                f,
                "cannot compile the guest module: {message}; it must be the cachet-wasi wasm32-wasip1 command"
            ),
            EmbedError::Preopen { path, message } => write!(
                f,
                "cannot hand the directory {} to the guest: {message}",
                path.display()
            ),
            EmbedError::Trap { message, .. } => write!(f, "the guest trapped: {message}"),
            EmbedError::ApplyModes { path, message, .. } => write!(
                f,
                "cannot apply the recorded permission bits to '{path}' after the restore: {message}; run the task instead of trusting this restore"
            ),
        }
    }
}

impl core::error::Error for EmbedError {}

/// How many guests one [`Embedding`] runs at the same time. Instances come
/// from wasmtime's pooling allocator, which reserves address space for
/// this many linear memories up front (4 GiB plus guard pages each, never
/// committed); a further [`Embedding::run`] waits for a slot. Where that
/// reservation is refused (an address-space limit), the embedding falls
/// back to allocating each instance on demand.
const POOL_SLOTS: u32 = 16;

/// Bytes of each pooled linear memory that stay resident between runs. A
/// freed slot is reset by copying back (or zeroing) only the pages the
/// previous run dirtied, found with Linux's `PAGEMAP_SCAN` where the kernel
/// has it, instead of dropping them and taking a page fault per page on
/// the next run. Lookups measured the same with 1 MiB as with 16 MiB; the
/// larger figure leaves room for the copy buffers of store and restore.
/// Only slots that have been used hold this memory: one per run that was in
/// flight at the same time.
const KEEP_RESIDENT_BYTES: usize = 16 << 20;

/// The guest command, compiled once and run many times (see the module
/// docs).
pub struct Embedding {
    engine: Engine,
    pre: InstancePre<GuestState>,
    max_output_bytes: usize,
    slots: SlotGate,
}

/// Counts the runs in flight so that no more than [`POOL_SLOTS`] ask the
/// pooling allocator for an instance at once (it would refuse them).
#[derive(Debug)]
struct SlotGate {
    in_use: Mutex<u32>,
    freed: Condvar,
}

impl SlotGate {
    fn new() -> SlotGate {
        SlotGate {
            in_use: Mutex::new(0),
            freed: Condvar::new(),
        }
    }

    fn acquire(&self) -> SlotGuard<'_> {
        let mut in_use = self.in_use.lock().unwrap_or_else(PoisonError::into_inner);
        while *in_use >= POOL_SLOTS {
            in_use = self
                .freed
                .wait(in_use)
                .unwrap_or_else(PoisonError::into_inner);
        }
        *in_use += 1;
        SlotGuard(self)
    }
}

struct SlotGuard<'a>(&'a SlotGate);

impl Drop for SlotGuard<'_> {
    fn drop(&mut self) {
        let mut in_use = self.0.in_use.lock().unwrap_or_else(PoisonError::into_inner);
        *in_use -= 1;
        self.0.freed.notify_one();
    }
}

/// The engine configuration: the pooling instance allocator, so that a run
/// reuses a warm slot (memory mapping, copy-on-write image, resident pages)
/// instead of mapping and unmapping a fresh 4 GiB reservation and faulting
/// in every page it touches.
fn engine_config() -> Config {
    let mut pool = PoolingAllocationConfig::new();
    pool.total_core_instances(POOL_SLOTS)
        .total_memories(POOL_SLOTS)
        .total_tables(POOL_SLOTS)
        .linear_memory_keep_resident(KEEP_RESIDENT_BYTES)
        .table_keep_resident(64 << 10)
        .pagemap_scan(Enabled::Auto);
    let mut config = Config::new();
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    config
}

impl core::fmt::Debug for Embedding {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Embedding")
            .field("max_output_bytes", &self.max_output_bytes)
            .finish_non_exhaustive()
    }
}

/// What the embedding needs to know about a guest command line, read from
/// the parsed command ([`cachet_cli::PlumbingCommand`]) so that it can
/// never disagree with what the guest will do.
struct CommandShape {
    /// Both roots may be preopened read-only. A command line that does not
    /// parse is read-only too (least privilege): the guest reports the
    /// usage error.
    read_only: bool,
    /// The subcommand's name, when it parsed.
    subcommand: Option<&'static str>,
    /// A store's `--output` patterns.
    output_patterns: Vec<String>,
}

impl CommandShape {
    fn of(args: &[&str]) -> CommandShape {
        let argv = core::iter::once("cachet").chain(args.iter().copied());
        match PlumbingCli::parse_from_named("cachet", argv) {
            Ok(line) => CommandShape {
                read_only: line.command.is_read_only(),
                subcommand: Some(line.command.name()),
                output_patterns: line.command.stored_output_patterns().to_vec(),
            },
            Err(_) => CommandShape {
                read_only: true,
                subcommand: None,
                output_patterns: Vec::new(),
            },
        }
    }
}

/// Whether `args` (without the program name) ask only to read, so that
/// both roots are preopened read-only (see
/// [`PlumbingCommand::is_read_only`](cachet_cli::PlumbingCommand::is_read_only)).
pub fn is_read_only(args: &[&str]) -> bool {
    CommandShape::of(args).read_only
}

impl Embedding {
    /// Compiles the guest module from a `.wasm` file.
    pub fn from_file(path: &Path) -> Result<Embedding, EmbedError> {
        let bytes = std::fs::read(path).map_err(|source| EmbedError::ReadModule {
            path: path.to_path_buf(),
            source,
        })?;
        Embedding::from_bytes(&bytes)
    }

    /// Compiles the guest module from its bytes.
    pub fn from_bytes(wasm: &[u8]) -> Result<Embedding, EmbedError> {
        let compile = |e: wasmtime::Error| EmbedError::Compile {
            message: format!("{e:#}"),
        };
        // The pool is an optimisation: without the address space for it,
        // instances are mapped per run, as wasmtime does by default.
        let engine = Engine::new(&engine_config())
            .or_else(|_| Engine::new(&Config::new()))
            .map_err(compile)?;
        let module = Module::new(&engine, wasm).map_err(compile)?;
        let mut linker: Linker<GuestState> = Linker::new(&engine);
        wasmtime_wasi::p1::add_to_linker_sync(&mut linker, |state: &mut GuestState| {
            &mut state.wasi
        })
        .map_err(compile)?;
        linker
            .func_wrap(
                crate::HOST_MODULE,
                crate::HOST_SYNC_FILESYSTEM,
                |caller: Caller<'_, GuestState>, root: u32| -> u32 {
                    let Some(path) = usize::try_from(root)
                        .ok()
                        .and_then(|i| caller.data().roots.get(i))
                    else {
                        return ERRNO_INVAL;
                    };
                    match sync_filesystem_of(path) {
                        Ok(()) => 0,
                        Err(_) => ERRNO_IO,
                    }
                },
            )
            .map_err(compile)?;
        let pre = linker.instantiate_pre(&module).map_err(compile)?;
        Ok(Embedding {
            engine,
            pre,
            max_output_bytes: DEFAULT_MAX_OUTPUT_BYTES,
            slots: SlotGate::new(),
        })
    }

    /// Caps each captured stream; a guest writing more traps.
    pub fn set_max_output_bytes(&mut self, max: usize) {
        self.max_output_bytes = max;
    }

    /// Runs the guest with `args` (without the program name) over
    /// `workspace` and `cache_dir`, creating the cache directory if needed, as
    /// the native command does.
    pub fn run(
        &self,
        workspace: &Path,
        cache_dir: &Path,
        args: &[&str],
    ) -> Result<GuestOutput, EmbedError> {
        std::fs::create_dir_all(cache_dir).map_err(|e| EmbedError::Preopen {
            path: cache_dir.to_path_buf(),
            message: e.to_string(),
        })?;
        let shape = CommandShape::of(args);
        let read_only = shape.read_only;
        let perms = if read_only {
            FsPerms::ReadOnly
        } else {
            FsPerms::ReadWrite
        };
        let workspace_dir = open_root(workspace)?;
        let cache = open_root(cache_dir)?;

        let stdout = MemoryOutputPipe::new(self.max_output_bytes);
        let stderr = MemoryOutputPipe::new(self.max_output_bytes);
        let mut builder = WasiCtxBuilder::new();
        builder
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            // The guest is single-threaded and its calls are short; running
            // them on this thread avoids a thread hop per call.
            .allow_blocking_current_thread(true)
            .arg("cachet");
        for arg in args {
            builder.arg(arg);
        }
        let excluded = match (workspace.canonicalize(), cache_dir.canonicalize()) {
            (Ok(workspace), Ok(cache_dir)) => excluded_dir(&workspace, &cache_dir),
            _ => None,
        };
        if let Some(excluded) = &excluded {
            builder.env(EXCLUDED_DIR_ENV, excluded);
        }
        if shape.subcommand == Some("store") {
            let modes = output_modes(&workspace_dir, &shape.output_patterns, excluded.as_deref());
            if !modes.is_empty() {
                builder.env(MODES_ENV, modes.render());
            }
        }
        let mode_log = (shape.subcommand == Some("restore")).then(mode_log_name);
        if let Some(name) = &mode_log {
            builder.env(MODE_LOG_ENV, name);
        }
        let preopen = |builder: &mut WasiCtxBuilder, host: &Path, guest: &str| {
            builder
                .preopened_dir(host, guest, perms)
                .map(|_| ())
                .map_err(|e| EmbedError::Preopen {
                    path: host.to_path_buf(),
                    message: format!("{e:#}"),
                })
        };
        preopen(&mut builder, workspace, WORKSPACE_PREOPEN)?;
        preopen(&mut builder, cache_dir, CACHE_PREOPEN)?;

        let slot = self.slots.acquire();
        let state = GuestState {
            wasi: builder.build_p1(),
            roots: [workspace.to_path_buf(), cache_dir.to_path_buf()],
        };
        let mut store = Store::new(&self.engine, state);
        let status = self.start(&mut store);
        drop(store);
        drop(slot);
        let stdout = stdout.contents().to_vec();
        let stderr = stderr.contents().to_vec();
        let status = match status {
            Ok(status) => status,
            Err(message) => {
                return Err(EmbedError::Trap {
                    message,
                    stdout,
                    stderr,
                });
            }
        };
        let output = GuestOutput {
            status,
            stdout,
            stderr,
        };
        match mode_log {
            Some(name) => apply_logged_modes(&workspace_dir, &cache, &name, output),
            None => Ok(output),
        }
    }

    /// Instantiates and calls `_start`; `Err` carries a trap's message.
    fn start(&self, store: &mut Store<GuestState>) -> Result<i32, String> {
        let instance = self
            .pre
            .instantiate(&mut *store)
            .map_err(|e| format!("{e:#}"))?;
        let start = instance
            .get_typed_func::<(), ()>(&mut *store, "_start")
            .map_err(|e| format!("{e:#}"))?;
        match start.call(&mut *store, ()) {
            Ok(()) => Ok(0),
            Err(error) => match error.downcast_ref::<I32Exit>() {
                Some(exit) => Ok(exit.0),
                None => Err(format!("{error:#}")),
            },
        }
    }
}

fn open_root(path: &Path) -> Result<Dir, EmbedError> {
    Dir::open_ambient_dir(path, ambient_authority()).map_err(|e| EmbedError::Preopen {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// Deepest directory nesting the mode walk descends into; deeper files
/// report the default mode.
const MAX_WALK_DEPTH: usize = 256;

/// The modes of the regular files a `store` may select as outputs (see
/// [`crate::modes`]): every regular file below the literal prefix of each
/// `--output` pattern whose mode is not [`DEFAULT_FILE_MODE`], which the
/// guest reports for files missing from the table. The walk never follows
/// a symlink and skips `.git` and the cache directory, as selection does.
/// Extra entries are harmless: the guest asks only about what it selected.
fn output_modes(workspace: &Dir, patterns: &[String], excluded: Option<&str>) -> ModeTable {
    let mut table = ModeTable::new();
    let mut roots: Vec<String> = patterns
        .iter()
        .map(|pattern| literal_prefix(pattern))
        .collect();
    roots.sort();
    roots.dedup();
    // A prefix below another is walked with it.
    let roots: Vec<&String> = roots
        .iter()
        .filter(|root| {
            !roots.iter().any(|other| {
                *root != other
                    && (other.is_empty()
                        || (root.starts_with(other.as_str())
                            && root.as_bytes().get(other.len()) == Some(&b'/')))
            })
        })
        .collect();
    let mut stack: Vec<(String, usize)> = roots.into_iter().map(|r| (r.clone(), 0)).collect();
    while let Some((path, depth)) = stack.pop() {
        let meta = if path.is_empty() {
            workspace.dir_metadata()
        } else {
            workspace.symlink_metadata(&path)
        };
        let Ok(meta) = meta else { continue };
        if meta.is_file() {
            let mode = meta.permissions().mode() & 0o7777;
            if mode != DEFAULT_FILE_MODE {
                table.insert(&path, mode);
            }
            continue;
        }
        if !meta.is_dir() || depth >= MAX_WALK_DEPTH {
            continue;
        }
        let entries = if path.is_empty() {
            workspace.entries()
        } else {
            workspace.read_dir(&path)
        };
        let Ok(entries) = entries else { continue };
        for entry in entries.flatten() {
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            let child = if path.is_empty() {
                name.clone()
            } else {
                format!("{path}/{name}")
            };
            if name == ".git" || Some(child.as_str()) == excluded {
                continue;
            }
            stack.push((child, depth + 1));
        }
    }
    table
}

/// A fresh scratch name (DISK-5: it starts with `.`) for the mode log.
fn mode_log_name() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.write_u32(std::process::id());
    format!(".wasi-modes-{:016x}", hasher.finish())
}

/// Applies the modes the guest logged, then removes the log.
fn apply_logged_modes(
    workspace: &Dir,
    cache: &Dir,
    log_name: &str,
    output: GuestOutput,
) -> Result<GuestOutput, EmbedError> {
    let mut options = OpenOptions::new();
    options.read(true).follow(FollowSymlinks::No);
    let text = match cache.open_with(log_name, &options) {
        Ok(mut file) => {
            let mut text = String::new();
            let read = io::Read::read_to_string(&mut file, &mut text);
            let _ = cache.remove_file(log_name);
            if let Err(e) = read {
                return Err(EmbedError::ApplyModes {
                    path: log_name.to_owned(),
                    message: e.to_string(),
                    output,
                });
            }
            text
        }
        // No log: nothing was restored (a miss, or a failure before
        // publishing).
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(output),
        Err(e) => {
            let _ = cache.remove_file(log_name);
            return Err(EmbedError::ApplyModes {
                path: log_name.to_owned(),
                message: e.to_string(),
                output,
            });
        }
    };
    let table = match ModeTable::parse(&text) {
        Ok(table) => table,
        Err(e) => {
            return Err(EmbedError::ApplyModes {
                path: log_name.to_owned(),
                message: e.to_string(),
                output,
            });
        }
    };
    for (path, mode) in table.iter() {
        // fchmod on a descriptor opened without following a symlink: a
        // symlink swapped in cannot redirect it, and cap-std keeps the path
        // inside the workspace (SAFE-2).
        let applied = workspace.open_with(path, &options).and_then(|file| {
            if file.metadata()?.is_file() {
                file.set_permissions(Permissions::from_mode(mode))
            } else {
                Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "not a regular file",
                ))
            }
        });
        if let Err(e) = applied {
            return Err(EmbedError::ApplyModes {
                path: path.to_owned(),
                message: e.to_string(),
                output,
            });
        }
    }
    Ok(output)
}
