//! Helpers for caches on a [`MemFs`], shared by the `cache_ops` fuzz target
//! and the crash-consistency tests (`tests/crash.rs`).
//!
//! They look at the cache the way a checker must: through the setup
//! helpers of [`MemFs`], which bypass fault injection and the operation
//! counter, so that inspecting a cache never changes what the code under
//! test sees next.

use alloc::collections::BTreeMap;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use cachet_core::cache::{Cache, CacheError, Context, Options, RestoreOutcome};
use cachet_core::fs::{FileKind, Filesystem, Root};
use cachet_core::key::Key;
use cachet_core::layout;
use cachet_core::manifest::Manifest;
use cachet_core::memfs::{CrashMode, MemFs};

/// Files by workspace-absolute path: bytes and permission bits.
pub type Files = BTreeMap<String, (Vec<u8>, u32)>;

/// What a hit replays: output files (bytes and modes) and both streams
/// (CLAIM-1).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Content {
    /// Outputs by workspace-absolute path.
    pub outputs: Files,
    /// The captured stdout.
    pub stdout: Vec<u8>,
    /// The captured stderr.
    pub stderr: Vec<u8>,
}

/// What a manifest promises about an entry without its bytes: output
/// paths with sizes and modes, and stream lengths. Tampering that keeps
/// sizes (a flipped byte) leaves it unchanged, which lookup cannot notice
/// (OP-1 checks sizes) and restore and verify must (OP-3, OP-7).
pub type Shape = (BTreeMap<String, (usize, u32)>, usize, usize);

impl Content {
    /// This content's [`Shape`].
    pub fn shape(&self) -> Shape {
        (
            self.outputs
                .iter()
                .map(|(path, (bytes, mode))| (path.clone(), (bytes.len(), *mode)))
                .collect(),
            self.stdout.len(),
            self.stderr.len(),
        )
    }
}

/// How a simulated crash ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Crash {
    /// The process is killed: everything it did stays.
    ProcessKill,
    /// The machine loses power: only what was synced stays.
    PowerLoss,
    /// The process is killed, the operating system then writes every
    /// directory's entries to disk but no unsynced file data, and then the
    /// power goes. This is the most adversarial order a journaling
    /// filesystem without data ordering may show: a rename may become
    /// durable before the renamed file's unsynced contents or permission
    /// bits.
    PowerLossAfterDirsFlushed,
}

impl Crash {
    /// Every way a crash may end.
    pub const ALL: [Crash; 3] = [
        Crash::ProcessKill,
        Crash::PowerLoss,
        Crash::PowerLossAfterDirsFlushed,
    ];

    /// Whether unsynced state may be lost.
    pub fn loses_power(self) -> bool {
        self != Crash::ProcessKill
    }
}

/// Ends a crash (or simulates one now) on `fs` as `crash` says.
pub fn recover(fs: &MemFs, crash: Crash) {
    match crash {
        Crash::ProcessKill => fs.recover(CrashMode::ProcessKill),
        Crash::PowerLoss => fs.recover(CrashMode::PowerLoss),
        Crash::PowerLossAfterDirsFlushed => {
            fs.recover(CrashMode::ProcessKill);
            sync_dirs(fs, Root::Cache);
            sync_dirs(fs, Root::Workspace);
            fs.recover(CrashMode::PowerLoss);
        }
    }
}

/// Makes every directory entry under `root` durable (`fsync` on each
/// directory), leaving file data alone. Directories that cannot be synced
/// (pretend symlinks) are skipped.
pub fn sync_dirs(fs: &MemFs, root: Root) {
    let _ = fs.sync_dir(root, "");
    for (path, kind, ..) in fs.tree(root) {
        if kind == FileKind::Dir {
            let _ = fs.sync_dir(root, &path);
        }
    }
}

/// Makes the whole workspace durable, data and entries, as if the user's
/// own writes had long been flushed, without touching the cache directory.
pub fn make_workspace_durable(fs: &MemFs) {
    for (path, kind, bytes, mode) in fs.tree(Root::Workspace) {
        if kind == FileKind::File {
            // Rewriting through the setup helper makes data and mode
            // durable; the entry is re-linked as durable too.
            let _ = fs.write_file(Root::Workspace, &path, &bytes, mode);
        }
    }
    sync_dirs(fs, Root::Workspace);
}

/// Every regular file under `root`, keyed by `/`-prefixed path.
pub fn files(fs: &MemFs, root: Root) -> Files {
    fs.tree(root)
        .into_iter()
        .filter(|(_, kind, ..)| *kind == FileKind::File)
        .map(|(path, _, bytes, mode)| (alloc::format!("/{path}"), (bytes, mode)))
        .collect()
}

/// Paths under the cache directory with a segment starting with `.`: scratch
/// and debris (DISK-5).
pub fn scratch(fs: &MemFs) -> Vec<String> {
    fs.tree(Root::Cache)
        .into_iter()
        .map(|(path, ..)| path)
        .filter(|path| path.split('/').any(|segment| segment.starts_with('.')))
        .collect()
}

/// The content `key`'s entry describes, read with the setup helpers:
/// `None` when the manifest or a file it names is missing, unreadable or
/// not a regular file. Hashes are not checked: callers compare the result
/// with what was stored.
pub fn entry_content(fs: &MemFs, key: &Key) -> Option<Content> {
    let bytes = fs.read_file(Root::Cache, &layout::manifest(key))?;
    let manifest = Manifest::parse(&bytes).ok()?;
    let mut outputs = Files::new();
    for output in manifest.outputs() {
        let blob = fs.read_file(Root::Cache, &layout::blob(key, &output.content_hash))?;
        outputs.insert(output.path.as_str().to_string(), (blob, output.mode));
    }
    Some(Content {
        outputs,
        stdout: fs.read_file(Root::Cache, &layout::stdout(key))?,
        stderr: fs.read_file(Root::Cache, &layout::stderr(key))?,
    })
}

/// `created_at_unix` of `key`'s manifest, if it parses.
pub fn created_at(fs: &MemFs, key: &Key) -> Option<u64> {
    let bytes = fs.read_file(Root::Cache, &layout::manifest(key))?;
    Manifest::parse(&bytes).ok().map(|m| m.tail.created_at_unix)
}

/// A new [`MemFs`] with an empty workspace and a copy of `fs`'s cache directory
/// (contents and modes; symlinks, pretend ones included, become symlinks).
pub fn copy_cache(fs: &MemFs) -> MemFs {
    let copy = MemFs::new();
    copy.set_now(fs.now());
    for (path, kind, bytes, mode) in fs.tree(Root::Cache) {
        let done = match kind {
            FileKind::Dir => copy.create_dir_all(Root::Cache, &path),
            FileKind::File => copy.write_file(Root::Cache, &path, &bytes, mode),
            FileKind::Symlink | FileKind::Other => {
                copy.symlink(Root::Cache, &path, &String::from_utf8_lossy(&bytes))
            }
        };
        if let Err(e) = done {
            panic!("copying cache path {path:?} failed: {e}");
        }
    }
    copy
}

/// Restores `key` from a copy of `fs`'s cache into an empty workspace and
/// returns the outcome with what it produced: the workspace's files and
/// the replayed streams. `fs` itself is not touched.
pub fn restore_fresh(
    fs: &MemFs,
    options: &Options,
    key: &Key,
    ctx: &mut dyn Context,
) -> (Result<RestoreOutcome, CacheError>, Content) {
    let copy = copy_cache(fs);
    let cache = Cache::with_options(copy.clone(), options.clone());
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    let outcome = cache.restore(key, &mut stdout, &mut stderr, ctx);
    let content = Content {
        outputs: files(&copy, Root::Workspace),
        stdout,
        stderr,
    };
    (outcome, content)
}
