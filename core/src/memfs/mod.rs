//! An in-memory [`Filesystem`] for tests, fuzzing and crash simulation
//! (the `memfs` feature; a test double, not part of the cache's API).
//!
//! The tree model is here; `faults` holds the operation counter, fault
//! injection and crash recovery, `fs_impl` the [`Filesystem`] impl with its
//! readers, writers and directory handles, `tasks` [`PretendThreads`] (a
//! [`Tasks`](crate::tasks::Tasks) runner for tests of the core's work
//! sharing), and `tests` the model's own tests.
//!
//! [`MemFs`] models one POSIX filesystem holding two directory trees, the
//! workspace and the cache directory, as an inode arena: a directory maps names to
//! inode numbers, a file holds bytes, permission bits and a modification
//! time, a symlink holds its target text. Clones share one state
//! (`Rc<RefCell<..>>`), so a test keeps a handle to inspect what the code
//! under test did. Everything is deterministic: [`Filesystem::read_dir`]
//! visits names in ascending byte order and time only moves with
//! [`MemFs::set_now`].
//!
//! # Semantics
//!
//! Paths follow the [`crate::fs`] contract: `/`-separated, relative, the
//! empty path names the root itself. A leading `/`, an empty segment (`a//b`,
//! a trailing `/`), a `.` or `..` segment or a NUL byte is refused with
//! [`ErrorKind::InvalidInput`]. Removing a root itself is
//! [`ErrorKind::InvalidInput`] too.
//!
//! **MemFs never follows a symlink**, in any component. A symlink met in a
//! non-final component makes the call fail with
//! [`ErrorKind::SymlinkRefused`]: this models a host that refuses to resolve
//! anything that could escape its root capability (SAFE-2), which is the
//! strictest behaviour a real host may show. In the final component, calls
//! that act on the entry itself (`metadata`, `remove_file`, `rename`, the
//! `create_*` calls, which see it as existing) treat the symlink as an
//! entry; calls that would need to follow it (`open_file`, `open_dir`,
//! `read_dir`, `set_modified`, `sync_dir`) fail with
//! [`ErrorKind::SymlinkRefused`].
//!
//! Errors mirror POSIX where the cache relies on them: a missing parent is
//! [`ErrorKind::NotFound`], a parent that is a file
//! [`ErrorKind::NotADirectory`]; `rename` replaces a file or symlink, replaces
//! a directory only with a directory and only if it is empty
//! ([`ErrorKind::DirectoryNotEmpty`]), refuses a directory onto a non-directory
//! ([`ErrorKind::NotADirectory`]), a non-directory onto a directory
//! ([`ErrorKind::IsADirectory`]) and a directory into its own subtree
//! ([`ErrorKind::InvalidInput`]); renaming an entry onto itself (or onto
//! another name of the same inode) succeeds and does nothing. Renames between
//! the two roots work, as on one filesystem, unless
//! [`MemFs::set_cross_device`] is on. [`Replace::Never`] is supported
//! unless [`MemFs::set_rename_no_replace_supported`] turns it off;
//! [`Filesystem::sync_filesystem`] and [`Filesystem::copy_file`] have
//! switches of their own, so that tests take every path of the core's.
//! A [`MemDirectory`] names its inode, so a rename through it follows the
//! directory wherever it was moved.
//! `remove_file` on a directory is [`ErrorKind::IsADirectory`], `remove_dir`
//! on a non-directory [`ErrorKind::NotADirectory`].
//!
//! `read_dir` snapshots the names first and, before each visit, skips a name
//! that the callback has meanwhile removed, so the callback may remove the
//! entry it was handed (or any other). Entries added meanwhile are not
//! visited. No borrow is held while the callback runs, so it may call back
//! into the same `MemFs`.
//!
//! New files get mode [`NEW_FILE_MODE`], directories [`NEW_DIR_MODE`],
//! symlinks [`SYMLINK_MODE`]; their modification time is the clock
//! ([`MemFs::set_now`], initially the Unix epoch). A write to a file sets its
//! modification time to the clock, and so does adding or removing an entry
//! of a directory. Metadata reports size 0 for a directory and the target's
//! length for a symlink.
//!
//! # Test setup helpers
//!
//! Helpers such as [`MemFs::write_file`] bypass the operation counter and
//! fault injection, work while the filesystem is crashed, and produce
//! **durable** state: as if the setup had been written and synced long
//! before the operation under test ran.
//!
//! [`MemFs::pretend_symlink`] marks an existing file or directory so that it
//! behaves exactly like a symlink as far as the [`Filesystem`] calls see it:
//! reported as [`FileKind::Symlink`] by `metadata` and `read_dir`, refused by
//! `open_file` and by resolution through it, removed by `remove_file`, moved
//! by `rename` as a non-directory (metadata still reports the underlying
//! size, mode and time). It models a symlink planted by an attacker
//! (or a racing process) at a place where the cache expects a regular entry.
//!
//! # Fault injection
//!
//! Every [`Filesystem`] call and every call on a [`MemReader`] (`read`,
//! `metadata`), a [`MemWriter`] (`write`, `sync`, `set_mode`) or a
//! [`MemDirectory`] (`metadata`) counts as one operation
//! ([`MemFs::op_count`]), whether it succeeds or not. [`MemFs::fail_at`]
//! makes one chosen future operation fail once, doing nothing;
//! [`MemFs::crash_at`] makes one chosen operation and every later one fail
//! with [`ErrorKind::Other`] — the process is dead — until
//! [`MemFs::recover`].
//!
//! # Durability model (SAFE-3)
//!
//! Next to its current state, MemFs keeps what would survive a power loss.
//! This is the conservative model crash-consistency checkers such as ALICE
//! use: nothing is durable unless an explicit sync made it so.
//!
//! - A file's durable state (contents, mode and modification time) is its
//!   state as of its last [`FileWriter::sync`]; a file never synced has empty
//!   durable contents with its creation mode and time. Syncing a file does
//!   **not** make its directory entry durable.
//! - A directory's durable entries (name → inode) are its entries as of its
//!   last [`Filesystem::sync_dir`]; a directory never synced has no durable
//!   entries. Syncing a directory does not make its entries' contents
//!   durable, nor its own entry in its parent. Creating, renaming and
//!   removing entries changes only current entries, so an unsynced rename or
//!   removal is undone by a power loss, and an inode removed from the current
//!   tree stays in the arena as long as a durable entry names it.
//! - The two roots' top directories always exist.
//! - Directory modes and times, and [`MemFs::pretend_symlink`] marks, are not
//!   reverted (a simplification: the cache relies on neither).
//!
//! [`MemFs::recover`] with [`CrashMode::ProcessKill`] keeps the current state
//! and only ends the crash. With [`CrashMode::PowerLoss`] it replaces every
//! directory's entries with its durable entries and every file's contents,
//! mode and time with its durable ones; everything is durable afterwards.
//! Because directories are synced independently, durable entries may name
//! one directory from two places (it was moved and only one side was
//! synced); recovery keeps the name met first in a breadth-first walk from
//! the workspace root, then the cache directory (names in byte order), and drops
//! the others, so the result is always a tree. A file named from two places
//! keeps both names (a hard link), which is what a real filesystem may show
//! too. Inodes unreachable afterwards disappear. Both modes cancel pending
//! [`MemFs::fail_at`] faults and invalidate every reader and writer opened
//! before (the process that held them is gone): their calls fail with
//! [`ErrorKind::Other`].
//!
//! A power loss can be simulated at any time, not only after a crash point:
//! `recover(CrashMode::PowerLoss)` right after an operation returned shows
//! what that operation made durable.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::rc::Rc;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::cell::RefCell;

use crate::fs::{Error, ErrorKind, FileKind, Metadata, Root, Timestamp};
#[cfg(doc)]
use crate::fs::{FileWriter, Filesystem, Replace};

mod faults;
mod fs_impl;
mod tasks;
#[cfg(test)]
mod tests;

pub use faults::CrashMode;
pub use fs_impl::{MemDirectory, MemReader, MemWriter};
pub use tasks::PretendThreads;

/// Permission bits of a file created by [`Filesystem::create_new_file`].
pub const NEW_FILE_MODE: u32 = 0o644;
/// Permission bits of a directory created by [`Filesystem::create_dir`].
pub const NEW_DIR_MODE: u32 = 0o755;
/// Permission bits reported for a symlink.
pub const SYMLINK_MODE: u32 = 0o777;

/// One row of [`MemFs::tree`]: path relative to the root (no leading `/`),
/// kind as observed, contents (a file's bytes, a symlink's target, empty for
/// a directory) and permission bits.
pub type TreeEntry = (String, FileKind, Vec<u8>, u32);

type Ino = u64;

#[derive(Clone, Debug, PartialEq, Eq)]
struct FileSnapshot {
    data: Vec<u8>,
    mode: u32,
    modified: Timestamp,
}

#[derive(Clone, Debug)]
enum Body {
    File {
        data: Vec<u8>,
        durable: FileSnapshot,
    },
    Dir {
        entries: BTreeMap<String, Ino>,
        durable: BTreeMap<String, Ino>,
    },
    Symlink {
        target: String,
    },
}

#[derive(Clone, Debug)]
struct Node {
    body: Body,
    mode: u32,
    modified: Timestamp,
    /// Seen as a symlink by every `Filesystem` call (see
    /// [`MemFs::pretend_symlink`]).
    pretend_symlink: bool,
}

impl Node {
    fn new_file(now: Timestamp) -> Node {
        Node {
            body: Body::File {
                data: Vec::new(),
                durable: FileSnapshot {
                    data: Vec::new(),
                    mode: NEW_FILE_MODE,
                    modified: now,
                },
            },
            mode: NEW_FILE_MODE,
            modified: now,
            pretend_symlink: false,
        }
    }

    fn new_dir(now: Timestamp) -> Node {
        Node {
            body: Body::Dir {
                entries: BTreeMap::new(),
                durable: BTreeMap::new(),
            },
            mode: NEW_DIR_MODE,
            modified: now,
            pretend_symlink: false,
        }
    }

    /// The kind as the `Filesystem` calls observe it.
    fn kind(&self) -> FileKind {
        if self.pretend_symlink {
            return FileKind::Symlink;
        }
        match self.body {
            Body::File { .. } => FileKind::File,
            Body::Dir { .. } => FileKind::Dir,
            Body::Symlink { .. } => FileKind::Symlink,
        }
    }

    fn size(&self) -> u64 {
        let len = match &self.body {
            Body::File { data, .. } => data.len(),
            Body::Dir { .. } => 0,
            Body::Symlink { target } => target.len(),
        };
        u64::try_from(len).unwrap_or(u64::MAX)
    }

    fn metadata(&self) -> Metadata {
        Metadata {
            kind: self.kind(),
            size: self.size(),
            mode: self.mode,
            modified: self.modified,
        }
    }

    /// Makes the file's current state durable (no-op for other kinds).
    fn sync_file(&mut self) {
        if let Body::File { data, durable } = &mut self.body {
            *durable = FileSnapshot {
                data: data.clone(),
                mode: self.mode,
                modified: self.modified,
            };
        }
    }
}

fn err(kind: ErrorKind) -> Error {
    Error::new(kind)
}

/// Refuses paths outside the [`crate::fs`] contract.
fn check_path(path: &str) -> Result<(), Error> {
    if path.is_empty() {
        return Ok(());
    }
    let valid = path.split('/').all(|segment| {
        !segment.is_empty() && segment != "." && segment != ".." && !segment.contains('\0')
    });
    if valid {
        Ok(())
    } else {
        Err(err(ErrorKind::InvalidInput))
    }
}

/// Splits a non-empty path into its parent path and last name.
fn split_parent(path: &str) -> (&str, &str) {
    path.rsplit_once('/').unwrap_or(("", path))
}

#[derive(Debug)]
struct State {
    nodes: BTreeMap<Ino, Node>,
    next_ino: Ino,
    workspace: Ino,
    cache: Ino,
    now: Timestamp,
    ops: u64,
    faults: Vec<(u64, ErrorKind)>,
    crash_at: Option<u64>,
    crashed: bool,
    epoch: u64,
    cross_device: bool,
    rename_no_replace_supported: bool,
    sync_filesystem_supported: bool,
    copy_file_supported: bool,
    /// Bytes appended to a file just before its next read through a
    /// reader ([`MemFs::grow_on_next_read`]).
    growth: Vec<(Ino, Vec<u8>)>,
}

impl State {
    /// Every file's contents and every directory's entries become durable.
    fn make_all_durable(&mut self) {
        for node in self.nodes.values_mut() {
            node.sync_file();
            if let Body::Dir { entries, durable } = &mut node.body {
                durable.clone_from(entries);
            }
        }
    }

    fn new() -> State {
        let now = Timestamp::default();
        let mut nodes = BTreeMap::new();
        nodes.insert(0, Node::new_dir(now));
        nodes.insert(1, Node::new_dir(now));
        State {
            nodes,
            next_ino: 2,
            workspace: 0,
            cache: 1,
            now,
            ops: 0,
            faults: Vec::new(),
            crash_at: None,
            crashed: false,
            epoch: 0,
            cross_device: false,
            rename_no_replace_supported: true,
            sync_filesystem_supported: true,
            copy_file_supported: true,
            growth: Vec::new(),
        }
    }

    fn root_ino(&self, root: Root) -> Ino {
        match root {
            Root::Workspace => self.workspace,
            Root::Cache => self.cache,
        }
    }

    fn alloc(&mut self, node: Node) -> Ino {
        let ino = self.next_ino;
        self.next_ino = self.next_ino.saturating_add(1);
        self.nodes.insert(ino, node);
        ino
    }

    // The arena never loses an inode a directory names (see
    // `collect_garbage`), so a missing one is an internal inconsistency,
    // reported as `Other` rather than a panic.
    fn node(&self, ino: Ino) -> Result<&Node, Error> {
        self.nodes.get(&ino).ok_or(err(ErrorKind::Other))
    }

    fn node_mut(&mut self, ino: Ino) -> Result<&mut Node, Error> {
        self.nodes.get_mut(&ino).ok_or(err(ErrorKind::Other))
    }

    fn entries(&self, dir: Ino) -> Result<&BTreeMap<String, Ino>, Error> {
        match &self.node(dir)?.body {
            Body::Dir { entries, .. } => Ok(entries),
            _ => Err(err(ErrorKind::NotADirectory)),
        }
    }

    /// Resolves `path` (already checked) to a directory, refusing symlinks
    /// in every component including the last.
    fn walk_dir(&self, root: Root, path: &str) -> Result<Ino, Error> {
        let mut current = self.root_ino(root);
        if path.is_empty() {
            return Ok(current);
        }
        for segment in path.split('/') {
            let child = *self
                .entries(current)?
                .get(segment)
                .ok_or(err(ErrorKind::NotFound))?;
            current = match self.node(child)?.kind() {
                FileKind::Dir => child,
                FileKind::Symlink => return Err(err(ErrorKind::SymlinkRefused)),
                FileKind::File | FileKind::Other => return Err(err(ErrorKind::NotADirectory)),
            };
        }
        Ok(current)
    }

    /// Resolves the parent directory of a non-empty, checked `path`.
    fn parent<'p>(&self, root: Root, path: &'p str) -> Result<(Ino, &'p str), Error> {
        let (parent, name) = split_parent(path);
        Ok((self.walk_dir(root, parent)?, name))
    }

    /// Resolves a checked `path` to its inode without following a symlink in
    /// the last component.
    fn lookup(&self, root: Root, path: &str) -> Result<Ino, Error> {
        if path.is_empty() {
            return Ok(self.root_ino(root));
        }
        let (parent, name) = self.parent(root, path)?;
        self.entries(parent)?
            .get(name)
            .copied()
            .ok_or(err(ErrorKind::NotFound))
    }

    /// Inserts (or replaces) a current entry and updates the parent's time.
    fn link(&mut self, dir: Ino, name: &str, ino: Ino, durable_too: bool) -> Result<(), Error> {
        let now = self.now;
        let node = self.node_mut(dir)?;
        node.modified = now;
        match &mut node.body {
            Body::Dir { entries, durable } => {
                entries.insert(name.to_string(), ino);
                if durable_too {
                    durable.insert(name.to_string(), ino);
                }
                Ok(())
            }
            _ => Err(err(ErrorKind::NotADirectory)),
        }
    }

    /// Removes a current entry and updates the parent's time.
    fn unlink(&mut self, dir: Ino, name: &str) -> Result<(), Error> {
        let now = self.now;
        let node = self.node_mut(dir)?;
        node.modified = now;
        match &mut node.body {
            Body::Dir { entries, .. } => {
                entries.remove(name);
                Ok(())
            }
            _ => Err(err(ErrorKind::NotADirectory)),
        }
    }

    /// Whether `target` is `dir` or lies below it in the current tree.
    fn is_within(&self, dir: Ino, target: Ino) -> bool {
        let mut stack = alloc::vec![dir];
        let mut seen = BTreeSet::new();
        while let Some(current) = stack.pop() {
            if current == target {
                return true;
            }
            if !seen.insert(current) {
                continue;
            }
            if let Some(Node {
                body: Body::Dir { entries, .. },
                ..
            }) = self.nodes.get(&current)
            {
                stack.extend(entries.values().copied());
            }
        }
        false
    }

    /// Moves the entry `from` names onto the one `to` names, each given as
    /// its root, its parent directory's inode and its name.
    fn rename_entry(
        &mut self,
        (from_root, from_dir, from_name): (Root, Ino, &str),
        (to_root, to_dir, to_name): (Root, Ino, &str),
        no_replace: bool,
    ) -> Result<(), Error> {
        if from_root != to_root && self.cross_device {
            return Err(err(ErrorKind::CrossesDevices));
        }
        let source = *self
            .entries(from_dir)?
            .get(from_name)
            .ok_or(err(ErrorKind::NotFound))?;
        let target = self.entries(to_dir)?.get(to_name).copied();
        if no_replace && target.is_some() {
            return Err(err(ErrorKind::AlreadyExists));
        }
        if target == Some(source) {
            return Ok(());
        }
        let source_kind = self.node(source)?.kind();
        if source_kind == FileKind::Dir && self.is_within(source, to_dir) {
            return Err(err(ErrorKind::InvalidInput));
        }
        if let Some(target) = target {
            let target_node = self.node(target)?;
            match (
                source_kind == FileKind::Dir,
                target_node.kind() == FileKind::Dir,
            ) {
                (true, true) => {
                    if !self.entries(target)?.is_empty() {
                        return Err(err(ErrorKind::DirectoryNotEmpty));
                    }
                }
                (true, false) => return Err(err(ErrorKind::NotADirectory)),
                (false, true) => return Err(err(ErrorKind::IsADirectory)),
                (false, false) => {}
            }
        }
        self.unlink(from_dir, from_name)?;
        self.link(to_dir, to_name, source, false)
    }

    /// Walks `path` (checked) from `root`, creating missing directories as
    /// durable entries; returns the last directory.
    fn create_dirs_durable(&mut self, root: Root, path: &str) -> Result<Ino, Error> {
        let mut current = self.root_ino(root);
        if path.is_empty() {
            return Ok(current);
        }
        for segment in path.split('/') {
            match self.entries(current)?.get(segment).copied() {
                Some(child) => {
                    current = match self.node(child)?.kind() {
                        FileKind::Dir => child,
                        FileKind::Symlink => return Err(err(ErrorKind::SymlinkRefused)),
                        FileKind::File | FileKind::Other => {
                            return Err(err(ErrorKind::NotADirectory));
                        }
                    };
                }
                None => {
                    let child = self.alloc(Node::new_dir(self.now));
                    self.link(current, segment, child, true)?;
                    current = child;
                }
            }
        }
        Ok(current)
    }
}

/// The in-memory filesystem (see the module docs). Cloning is cheap and
/// shares the state.
#[derive(Clone, Debug)]
pub struct MemFs {
    state: Rc<RefCell<State>>,
}

impl Default for MemFs {
    fn default() -> Self {
        MemFs::new()
    }
}

impl MemFs {
    /// An empty filesystem: two empty roots, clock at the Unix epoch,
    /// renames across roots allowed, renames without replacing supported.
    pub fn new() -> MemFs {
        MemFs {
            state: Rc::new(RefCell::new(State::new())),
        }
    }

    /// Runs `f` on the state. No borrow outlives a call, and no callback
    /// runs while one is held, so the borrow cannot conflict; if it ever
    /// did, the call fails with [`ErrorKind::Other`] instead of panicking.
    fn with<T>(&self, f: impl FnOnce(&mut State) -> Result<T, Error>) -> Result<T, Error> {
        let mut state = self
            .state
            .try_borrow_mut()
            .map_err(|_| err(ErrorKind::Other))?;
        f(&mut state)
    }

    /// Like [`MemFs::with`], counting one operation first.
    fn op<T>(&self, f: impl FnOnce(&mut State) -> Result<T, Error>) -> Result<T, Error> {
        self.with(|state| {
            state.begin_op()?;
            f(state)
        })
    }

    /// Sets the clock that stamps new and modified entries.
    pub fn set_now(&self, now: Timestamp) {
        let _ = self.with(|state| {
            state.now = now;
            Ok(())
        });
    }

    /// The clock.
    pub fn now(&self) -> Timestamp {
        self.with(|state| Ok(state.now)).unwrap_or_default()
    }

    /// With `true`, renames between the workspace and the cache directory fail
    /// with [`ErrorKind::CrossesDevices`], as when the two roots live on
    /// different filesystems.
    pub fn set_cross_device(&self, cross_device: bool) {
        let _ = self.with(|state| {
            state.cross_device = cross_device;
            Ok(())
        });
    }

    /// Makes [`Filesystem::sync_filesystem`] available (the default) or
    /// [`ErrorKind::Unsupported`], so both of the core's durability paths
    /// (one sync at the end, or a sync per file) can be tested.
    pub fn set_sync_filesystem_supported(&self, supported: bool) {
        let _ = self.with(|state| {
            state.sync_filesystem_supported = supported;
            Ok(())
        });
    }

    /// Makes [`Filesystem::copy_file`] available (the default) or
    /// [`ErrorKind::Unsupported`], so both of the core's copy paths (the
    /// host copies and hashes the copy, or the core streams and hashes on
    /// the way) can be tested.
    pub fn set_copy_file_supported(&self, supported: bool) {
        let _ = self.with(|state| {
            state.copy_file_supported = supported;
            Ok(())
        });
    }

    /// With `false`, [`Filesystem::rename`] with [`Replace::Never`] returns
    /// [`ErrorKind::Unsupported`] (still counting as an operation), as on a
    /// host without `renameat2(RENAME_NOREPLACE)`.
    pub fn set_rename_no_replace_supported(&self, supported: bool) {
        let _ = self.with(|state| {
            state.rename_no_replace_supported = supported;
            Ok(())
        });
    }

    /// Setup helper: writes a durable regular file with `contents` and
    /// permission bits `mode` (masked to `0o7777`), creating missing parent
    /// directories (durable, mode [`NEW_DIR_MODE`]). Replaces the contents
    /// and mode of an existing regular file. Fails with
    /// [`ErrorKind::InvalidInput`] for an invalid or empty path,
    /// [`ErrorKind::IsADirectory`] if `path` is a directory,
    /// [`ErrorKind::AlreadyExists`] if it is a symlink, and as path
    /// resolution does for a parent that is a file or symlink.
    pub fn write_file(
        &self,
        root: Root,
        path: &str,
        contents: &[u8],
        mode: u32,
    ) -> Result<(), Error> {
        self.with(|state| {
            check_path(path)?;
            if path.is_empty() {
                return Err(err(ErrorKind::InvalidInput));
            }
            let (parent, name) = split_parent(path);
            let dir = state.create_dirs_durable(root, parent)?;
            let now = state.now;
            let ino = match state.entries(dir)?.get(name).copied() {
                Some(existing) => match state.node(existing)?.kind() {
                    FileKind::File => existing,
                    FileKind::Dir => return Err(err(ErrorKind::IsADirectory)),
                    FileKind::Symlink | FileKind::Other => {
                        return Err(err(ErrorKind::AlreadyExists));
                    }
                },
                None => {
                    let ino = state.alloc(Node::new_file(now));
                    state.link(dir, name, ino, true)?;
                    ino
                }
            };
            let node = state.node_mut(ino)?;
            if let Body::File { data, .. } = &mut node.body {
                *data = contents.to_vec();
            }
            node.mode = mode & 0o7777;
            node.modified = now;
            node.sync_file();
            Ok(())
        })
    }

    /// Setup helper: the current contents of the regular file at `path`, or
    /// `None` if nothing is there or it is not a regular file as the
    /// [`Filesystem`] calls see it (symlinks and pretend symlinks give
    /// `None`, as does a path through one).
    pub fn read_file(&self, root: Root, path: &str) -> Option<Vec<u8>> {
        self.with(|state| {
            check_path(path)?;
            let node = state.node(state.lookup(root, path)?)?;
            match (&node.body, node.pretend_symlink) {
                (Body::File { data, .. }, false) => Ok(data.clone()),
                _ => Err(err(ErrorKind::InvalidInput)),
            }
        })
        .ok()
    }

    /// Setup helper: creates `path` and its missing parents as durable
    /// directories. Succeeds if they already exist; fails like path
    /// resolution where a component is a file or symlink.
    pub fn create_dir_all(&self, root: Root, path: &str) -> Result<(), Error> {
        self.with(|state| {
            check_path(path)?;
            state.create_dirs_durable(root, path).map(|_| ())
        })
    }

    /// Setup helper: creates a durable symlink at `path` pointing to
    /// `target` (never resolved by MemFs), creating missing parents. Fails
    /// with [`ErrorKind::AlreadyExists`] if anything is at `path`.
    pub fn symlink(&self, root: Root, path: &str, target: &str) -> Result<(), Error> {
        self.with(|state| {
            check_path(path)?;
            if path.is_empty() {
                return Err(err(ErrorKind::AlreadyExists));
            }
            let (parent, name) = split_parent(path);
            let dir = state.create_dirs_durable(root, parent)?;
            if state.entries(dir)?.contains_key(name) {
                return Err(err(ErrorKind::AlreadyExists));
            }
            let now = state.now;
            let ino = state.alloc(Node {
                body: Body::Symlink {
                    target: target.to_string(),
                },
                mode: SYMLINK_MODE,
                modified: now,
                pretend_symlink: false,
            });
            state.link(dir, name, ino, true)
        })
    }

    /// Setup helper: makes the existing file or directory at `path` behave
    /// as a symlink for every [`Filesystem`] call (see the module docs).
    /// Fails with [`ErrorKind::NotFound`] if nothing is there and
    /// [`ErrorKind::InvalidInput`] for a root.
    pub fn pretend_symlink(&self, root: Root, path: &str) -> Result<(), Error> {
        self.with(|state| {
            check_path(path)?;
            if path.is_empty() {
                return Err(err(ErrorKind::InvalidInput));
            }
            let ino = state.lookup(root, path)?;
            state.node_mut(ino)?.pretend_symlink = true;
            Ok(())
        })
    }

    /// Setup helper: whether anything (a symlink included) is at `path`.
    pub fn exists(&self, root: Root, path: &str) -> bool {
        self.with(|state| {
            check_path(path)?;
            state.lookup(root, path)
        })
        .is_ok()
    }

    /// Setup helper: every entry below `root` (the root itself excluded),
    /// sorted by path, for comparing whole trees. Directories are listed and
    /// descended into; symlinks and pretend symlinks are listed as
    /// [`FileKind::Symlink`] and not descended into (a pretend symlink's
    /// contents are its underlying file's bytes, or empty for a directory).
    pub fn tree(&self, root: Root) -> Vec<TreeEntry> {
        self.with(|state| {
            let mut out = Vec::new();
            let mut stack = alloc::vec![(String::new(), state.root_ino(root))];
            while let Some((prefix, dir)) = stack.pop() {
                for (name, &child) in state.entries(dir)? {
                    let path = if prefix.is_empty() {
                        name.clone()
                    } else {
                        alloc::format!("{prefix}/{name}")
                    };
                    let node = state.node(child)?;
                    let contents = match &node.body {
                        Body::File { data, .. } => data.clone(),
                        Body::Dir { .. } => Vec::new(),
                        Body::Symlink { target } => target.as_bytes().to_vec(),
                    };
                    if node.kind() == FileKind::Dir {
                        stack.push((path.clone(), child));
                    }
                    out.push((path, node.kind(), contents, node.mode));
                }
            }
            out.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            Ok(out)
        })
        .unwrap_or_default()
    }

    /// Setup helper: makes the whole current state durable, as if every
    /// file and directory had been synced.
    pub fn sync_all(&self) {
        let _ = self.with(|state| {
            state.make_all_durable();
            Ok(())
        });
    }

    fn handle_state(&self) -> Rc<RefCell<State>> {
        Rc::clone(&self.state)
    }
}
