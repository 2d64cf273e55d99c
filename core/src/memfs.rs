//! An in-memory [`Filesystem`] for tests, fuzzing and crash simulation.
//!
//! [`MemFs`] models one POSIX filesystem holding two directory trees, the
//! workspace and the cache root, as an inode arena: a directory maps names to
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
//! [`ErrorKind::InvalidInput`]. Renaming or removing a root itself is
//! [`ErrorKind::InvalidInput`] too.
//!
//! **MemFs never follows a symlink**, in any component. A symlink met in a
//! non-final component makes the call fail with
//! [`ErrorKind::SymlinkRefused`]: this models a host that refuses to resolve
//! anything that could escape its root capability (SAFE-2), which is the
//! strictest behaviour a real host may show. In the final component, calls
//! that act on the entry itself (`metadata`, `remove_file`, `rename`, the
//! `create_*` calls, which see it as existing) treat the symlink as an
//! entry; calls that would need to follow it (`open_file`, `read_dir`,
//! `set_mode`, `set_modified`, `sync_dir`) fail with
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
//! [`MemFs::set_cross_device`] is on. `rename_no_replace` is supported unless
//! [`MemFs::set_rename_no_replace_supported`] turns it off.
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
//! Every [`Filesystem`] call and every call on a [`MemReader`] or
//! [`MemWriter`] (`read`, `write`, `sync`) counts as one operation
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
//! the workspace root, then the cache root (names in byte order), and drops
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

use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::rc::Rc;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::cell::RefCell;
use core::ops::ControlFlow;

use crate::fs::{
    Directory, Error, ErrorKind, FileKind, FileWriter, Filesystem, Metadata, Read, Root, Timestamp,
    Write,
};
use crate::hash::{Digest, HashFunction};

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

/// How a simulated crash ends, for [`MemFs::recover`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CrashMode {
    /// The process was killed: everything it did stays, synced or not.
    ProcessKill,
    /// The machine lost power: only what was synced stays (see the module
    /// docs for the exact model).
    PowerLoss,
}

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
    parallelism: usize,
    most_tasks: usize,
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
            parallelism: 1,
            most_tasks: 0,
        }
    }

    /// Counts one operation and applies crash and fault injection.
    fn begin_op(&mut self) -> Result<(), Error> {
        let index = self.ops;
        self.ops = self.ops.saturating_add(1);
        if let Some(at) = self.crash_at
            && index >= at
        {
            self.crashed = true;
            return Err(err(ErrorKind::Other));
        }
        let fault = self
            .faults
            .iter()
            .position(|&(at, _)| at == index)
            .map(|position| self.faults.remove(position).1);
        self.faults.retain(|&(at, _)| at > index);
        match fault {
            Some(kind) => Err(err(kind)),
            None => Ok(()),
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

    fn rename(
        &mut self,
        from_root: Root,
        from: &str,
        to_root: Root,
        to: &str,
        no_replace: bool,
    ) -> Result<(), Error> {
        check_path(from)?;
        check_path(to)?;
        if from.is_empty() || to.is_empty() {
            return Err(err(ErrorKind::InvalidInput));
        }
        let (from_dir, from_name) = self.parent(from_root, from)?;
        let (to_dir, to_name) = self.parent(to_root, to)?;
        self.rename_entry(
            (from_root, from_dir, from_name),
            (to_root, to_dir, to_name),
            no_replace,
        )
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

    /// Reverts everything to its durable state (see the module docs).
    fn power_loss(&mut self) {
        for node in self.nodes.values_mut() {
            match &mut node.body {
                Body::File { data, durable } => {
                    data.clone_from(&durable.data);
                    node.mode = durable.mode;
                    node.modified = durable.modified;
                }
                Body::Dir { entries, durable } => entries.clone_from(durable),
                Body::Symlink { .. } => {}
            }
        }
        // Keep the result a tree: a directory named from two places keeps
        // only the name met first, breadth-first from the workspace root.
        let mut visited = BTreeSet::from([self.workspace, self.cache]);
        let mut queue = VecDeque::from([self.workspace, self.cache]);
        while let Some(dir) = queue.pop_front() {
            let mut dropped = Vec::new();
            if let Some(Node {
                body: Body::Dir { entries, .. },
                ..
            }) = self.nodes.get(&dir)
            {
                for (name, &child) in entries {
                    match self.nodes.get(&child).map(|node| &node.body) {
                        None => dropped.push(name.clone()),
                        Some(Body::Dir { .. }) => {
                            if visited.insert(child) {
                                queue.push_back(child);
                            } else {
                                dropped.push(name.clone());
                            }
                        }
                        Some(_) => {}
                    }
                }
            }
            if let Some(Node {
                body: Body::Dir { entries, durable },
                ..
            }) = self.nodes.get_mut(&dir)
            {
                for name in dropped {
                    entries.remove(&name);
                    durable.remove(&name);
                }
            }
        }
    }

    /// Drops every inode no current or durable entry reaches from a root.
    fn collect_garbage(&mut self) {
        let mut reachable = BTreeSet::new();
        let mut stack = alloc::vec![self.workspace, self.cache];
        while let Some(ino) = stack.pop() {
            if !reachable.insert(ino) {
                continue;
            }
            if let Some(Node {
                body: Body::Dir { entries, durable },
                ..
            }) = self.nodes.get(&ino)
            {
                stack.extend(entries.values().copied());
                stack.extend(durable.values().copied());
            }
        }
        self.nodes.retain(|ino, _| reachable.contains(ino));
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
    /// renames across roots allowed, `rename_no_replace` supported.
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

    /// [`Filesystem::rename_at`] and its no-replace variant: one operation.
    fn rename_between(
        &self,
        (from, from_name): (&MemDirectory, &str),
        (to, to_name): (&MemDirectory, &str),
        no_replace: bool,
    ) -> Result<(), Error> {
        self.op(|state| {
            if no_replace && !state.rename_no_replace_supported {
                return Err(err(ErrorKind::Unsupported));
            }
            if state.epoch != from.epoch || state.epoch != to.epoch {
                return Err(err(ErrorKind::Other));
            }
            if !crate::fs::is_single_component(from_name)
                || !crate::fs::is_single_component(to_name)
            {
                return Err(err(ErrorKind::InvalidInput));
            }
            state.rename_entry(
                (from.root, from.ino, from_name),
                (to.root, to.ino, to_name),
                no_replace,
            )
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

    /// With `true`, renames between the workspace and the cache root fail
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

    /// Makes [`Filesystem::parallelism`] report `parallelism` (at least 1;
    /// the default is 1). A `MemFs` has no threads: its
    /// [`Filesystem::run_tasks`] runs the tasks on the calling thread, last
    /// first, so that tests see the core's outcome does not depend on the
    /// order in which tasks run or on how many of them find work.
    pub fn set_parallelism(&self, parallelism: usize) {
        let _ = self.with(|state| {
            state.parallelism = parallelism.max(1);
            Ok(())
        });
    }

    /// The most tasks one [`Filesystem::run_tasks`] call was given so far,
    /// so that a test can tell the core did share its work out.
    pub fn most_tasks(&self) -> usize {
        self.with(|state| Ok(state.most_tasks)).unwrap_or(0)
    }

    /// With `false`, [`Filesystem::rename_no_replace`] returns
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

    /// How many operations (trait calls, plus `read`, `write` and `sync` on
    /// readers and writers) have been made so far, failed ones included.
    pub fn op_count(&self) -> u64 {
        self.with(|state| Ok(state.ops)).unwrap_or(0)
    }

    /// Makes the `n`-th operation from now (0-based, counted as
    /// [`MemFs::op_count`] counts) fail once with `kind`, doing nothing.
    /// Several faults may be pending; a crash point takes precedence.
    pub fn fail_at(&self, n: u64, kind: ErrorKind) {
        let _ = self.with(|state| {
            let at = state.ops.saturating_add(n);
            state.faults.push((at, kind));
            Ok(())
        });
    }

    /// Makes the `n`-th operation from now (0-based) and every later one
    /// fail with [`ErrorKind::Other`], doing nothing, until
    /// [`MemFs::recover`]: the process dies there.
    pub fn crash_at(&self, n: u64) {
        let _ = self.with(|state| {
            state.crash_at = Some(state.ops.saturating_add(n));
            Ok(())
        });
    }

    /// Whether an operation has met the crash point set by
    /// [`MemFs::crash_at`] since the last [`MemFs::recover`].
    pub fn is_crashed(&self) -> bool {
        self.with(|state| Ok(state.crashed)).unwrap_or(false)
    }

    /// Ends a crash (or simulates one now, if none was set): clears the
    /// crash point and pending faults, invalidates every open reader and
    /// writer, and with [`CrashMode::PowerLoss`] reverts to the durable
    /// state (see the module docs).
    pub fn recover(&self, mode: CrashMode) {
        let _ = self.with(|state| {
            if mode == CrashMode::PowerLoss {
                state.power_loss();
            }
            state.collect_garbage();
            state.crash_at = None;
            state.crashed = false;
            state.faults.clear();
            state.epoch = state.epoch.wrapping_add(1);
            Ok(())
        });
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

/// A file of a [`MemFs`] opened for reading. It reads the inode's current
/// bytes, even after the file was renamed or removed.
#[derive(Debug)]
pub struct MemReader {
    state: Rc<RefCell<State>>,
    ino: Ino,
    pos: usize,
    epoch: u64,
}

/// A file of a [`MemFs`] created for writing.
#[derive(Debug)]
pub struct MemWriter {
    state: Rc<RefCell<State>>,
    ino: Ino,
    pos: usize,
    epoch: u64,
}

/// A directory of a [`MemFs`] opened by [`Filesystem::open_dir`]: it names
/// the inode, so it follows the directory through renames, and sees no
/// entries once the directory is removed.
#[derive(Debug)]
pub struct MemDirectory {
    state: Rc<RefCell<State>>,
    root: Root,
    ino: Ino,
    epoch: u64,
}

impl Directory for MemDirectory {
    fn metadata(&self, name: &str) -> Result<Metadata, Error> {
        let ino = self.ino;
        handle_op(&self.state, self.epoch, |state| {
            if !crate::fs::is_single_component(name) {
                return Err(err(ErrorKind::InvalidInput));
            }
            let child = *state
                .entries(ino)?
                .get(name)
                .ok_or(err(ErrorKind::NotFound))?;
            Ok(state.node(child)?.metadata())
        })
    }
}

/// Runs one reader or writer call: counts it, applies faults, and refuses a
/// handle opened before the last [`MemFs::recover`].
fn handle_op<T>(
    state: &RefCell<State>,
    epoch: u64,
    f: impl FnOnce(&mut State) -> Result<T, Error>,
) -> Result<T, Error> {
    let mut state = state.try_borrow_mut().map_err(|_| err(ErrorKind::Other))?;
    state.begin_op()?;
    if state.epoch != epoch {
        return Err(err(ErrorKind::Other));
    }
    f(&mut state)
}

impl Read for MemReader {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
        let (ino, pos) = (self.ino, self.pos);
        let n = handle_op(&self.state, self.epoch, |state| {
            let Body::File { data, .. } = &state.node(ino)?.body else {
                return Err(err(ErrorKind::Other));
            };
            let rest = data.get(pos..).unwrap_or_default();
            let n = rest.len().min(buf.len());
            buf[..n].copy_from_slice(&rest[..n]);
            Ok(n)
        })?;
        self.pos = pos.saturating_add(n);
        Ok(n)
    }
}

impl Write for MemWriter {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Error> {
        let (ino, pos) = (self.ino, self.pos);
        handle_op(&self.state, self.epoch, |state| {
            if buf.is_empty() {
                return Ok(());
            }
            let now = state.now;
            let node = state.node_mut(ino)?;
            let Body::File { data, .. } = &mut node.body else {
                return Err(err(ErrorKind::Other));
            };
            let end = pos
                .checked_add(buf.len())
                .ok_or(err(ErrorKind::StorageFull))?;
            if data.len() < end {
                data.resize(end, 0);
            }
            data[pos..end].copy_from_slice(buf);
            node.modified = now;
            Ok(())
        })?;
        self.pos = pos.saturating_add(buf.len());
        Ok(buf.len())
    }
}

impl FileWriter for MemWriter {
    fn sync(&mut self) -> Result<(), Error> {
        let ino = self.ino;
        handle_op(&self.state, self.epoch, |state| {
            state.node_mut(ino)?.sync_file();
            Ok(())
        })
    }

    fn set_mode(&mut self, mode: u32) -> Result<(), Error> {
        let ino = self.ino;
        handle_op(&self.state, self.epoch, |state| {
            state.node_mut(ino)?.mode = mode & 0o7777;
            Ok(())
        })
    }
}

impl Filesystem for MemFs {
    type Reader = MemReader;
    type Writer = MemWriter;
    type Directory = MemDirectory;

    fn open_dir(&self, root: Root, path: &str) -> Result<MemDirectory, Error> {
        let (ino, epoch) = self.op(|state| {
            check_path(path)?;
            Ok((state.walk_dir(root, path)?, state.epoch))
        })?;
        Ok(MemDirectory {
            state: self.handle_state(),
            root,
            ino,
            epoch,
        })
    }

    fn rename_at(
        &self,
        from: &MemDirectory,
        from_name: &str,
        to: &MemDirectory,
        to_name: &str,
    ) -> Result<(), Error> {
        self.rename_between((from, from_name), (to, to_name), false)
    }

    fn rename_at_no_replace(
        &self,
        from: &MemDirectory,
        from_name: &str,
        to: &MemDirectory,
        to_name: &str,
    ) -> Result<(), Error> {
        self.rename_between((from, from_name), (to, to_name), true)
    }

    /// One operation, like a single `copy_file_range` call: the copy's
    /// contents are not durable until the writer is synced.
    fn copy_file(
        &self,
        from: &mut MemReader,
        to: &mut MemWriter,
        function: HashFunction,
    ) -> Result<(Digest, u64), Error> {
        let (source, pos, target) = (from.ino, from.pos, to.ino);
        let (digest, copied) = self.op(|state| {
            if !state.copy_file_supported {
                return Err(err(ErrorKind::Unsupported));
            }
            if state.epoch != from.epoch || state.epoch != to.epoch {
                return Err(err(ErrorKind::Other));
            }
            let Body::File { data, .. } = &state.node(source)?.body else {
                return Err(err(ErrorKind::Other));
            };
            let bytes = data.get(pos..).unwrap_or_default().to_vec();
            let now = state.now;
            let node = state.node_mut(target)?;
            let Body::File { data, .. } = &mut node.body else {
                return Err(err(ErrorKind::Other));
            };
            data.clone_from(&bytes);
            node.modified = now;
            // Hashed from the target, as the trait requires.
            Ok((crate::hash::digest(function, data), data.len()))
        })?;
        from.pos = pos.saturating_add(copied);
        to.pos = copied;
        Ok((digest, copied as u64))
    }

    fn open_file(&self, root: Root, path: &str) -> Result<MemReader, Error> {
        let (ino, epoch) = self.op(|state| {
            check_path(path)?;
            let ino = state.lookup(root, path)?;
            match state.node(ino)?.kind() {
                FileKind::File => Ok((ino, state.epoch)),
                FileKind::Dir => Err(err(ErrorKind::IsADirectory)),
                FileKind::Symlink | FileKind::Other => Err(err(ErrorKind::SymlinkRefused)),
            }
        })?;
        Ok(MemReader {
            state: self.handle_state(),
            ino,
            pos: 0,
            epoch,
        })
    }

    fn create_new_file(&self, root: Root, path: &str) -> Result<MemWriter, Error> {
        let (ino, epoch) = self.op(|state| {
            check_path(path)?;
            if path.is_empty() {
                return Err(err(ErrorKind::AlreadyExists));
            }
            let (dir, name) = state.parent(root, path)?;
            if state.entries(dir)?.contains_key(name) {
                return Err(err(ErrorKind::AlreadyExists));
            }
            let ino = state.alloc(Node::new_file(state.now));
            state.link(dir, name, ino, false)?;
            Ok((ino, state.epoch))
        })?;
        Ok(MemWriter {
            state: self.handle_state(),
            ino,
            pos: 0,
            epoch,
        })
    }

    fn create_dir(&self, root: Root, path: &str) -> Result<(), Error> {
        self.op(|state| {
            check_path(path)?;
            if path.is_empty() {
                return Err(err(ErrorKind::AlreadyExists));
            }
            let (dir, name) = state.parent(root, path)?;
            if state.entries(dir)?.contains_key(name) {
                return Err(err(ErrorKind::AlreadyExists));
            }
            let ino = state.alloc(Node::new_dir(state.now));
            state.link(dir, name, ino, false)
        })
    }

    fn rename(&self, from_root: Root, from: &str, to_root: Root, to: &str) -> Result<(), Error> {
        self.op(|state| state.rename(from_root, from, to_root, to, false))
    }

    fn rename_no_replace(
        &self,
        from_root: Root,
        from: &str,
        to_root: Root,
        to: &str,
    ) -> Result<(), Error> {
        self.op(|state| {
            if !state.rename_no_replace_supported {
                return Err(err(ErrorKind::Unsupported));
            }
            state.rename(from_root, from, to_root, to, true)
        })
    }

    fn remove_file(&self, root: Root, path: &str) -> Result<(), Error> {
        self.op(|state| {
            check_path(path)?;
            if path.is_empty() {
                return Err(err(ErrorKind::InvalidInput));
            }
            let (dir, name) = state.parent(root, path)?;
            let ino = *state
                .entries(dir)?
                .get(name)
                .ok_or(err(ErrorKind::NotFound))?;
            if state.node(ino)?.kind() == FileKind::Dir {
                return Err(err(ErrorKind::IsADirectory));
            }
            state.unlink(dir, name)
        })
    }

    fn remove_dir(&self, root: Root, path: &str) -> Result<(), Error> {
        self.op(|state| {
            check_path(path)?;
            if path.is_empty() {
                return Err(err(ErrorKind::InvalidInput));
            }
            let (dir, name) = state.parent(root, path)?;
            let ino = *state
                .entries(dir)?
                .get(name)
                .ok_or(err(ErrorKind::NotFound))?;
            if state.node(ino)?.kind() != FileKind::Dir {
                return Err(err(ErrorKind::NotADirectory));
            }
            if !state.entries(ino)?.is_empty() {
                return Err(err(ErrorKind::DirectoryNotEmpty));
            }
            state.unlink(dir, name)
        })
    }

    fn read_dir(
        &self,
        root: Root,
        path: &str,
        visit: &mut dyn FnMut(&str, FileKind) -> ControlFlow<()>,
    ) -> Result<(), Error> {
        let (dir, names) = self.op(|state| {
            check_path(path)?;
            let dir = state.walk_dir(root, path)?;
            let names: Vec<String> = state.entries(dir)?.keys().cloned().collect();
            Ok((dir, names))
        })?;
        for name in names {
            // Re-check each name: the callback may have removed it (or the
            // directory) meanwhile. No borrow is held during the callback.
            let kind = self.with(|state| {
                let Some(Node {
                    body: Body::Dir { entries, .. },
                    ..
                }) = state.nodes.get(&dir)
                else {
                    return Ok(None);
                };
                match entries.get(&name) {
                    Some(&child) => Ok(Some(state.node(child)?.kind())),
                    None => Ok(None),
                }
            })?;
            if let Some(kind) = kind
                && visit(&name, kind).is_break()
            {
                break;
            }
        }
        Ok(())
    }

    fn metadata(&self, root: Root, path: &str) -> Result<Metadata, Error> {
        self.op(|state| {
            check_path(path)?;
            Ok(state.node(state.lookup(root, path)?)?.metadata())
        })
    }

    fn set_mode(&self, root: Root, path: &str, mode: u32) -> Result<(), Error> {
        self.op(|state| {
            check_path(path)?;
            let ino = state.lookup(root, path)?;
            let node = state.node_mut(ino)?;
            if node.kind() == FileKind::Symlink {
                return Err(err(ErrorKind::SymlinkRefused));
            }
            node.mode = mode & 0o7777;
            Ok(())
        })
    }

    fn set_modified(&self, root: Root, path: &str, modified: Timestamp) -> Result<(), Error> {
        self.op(|state| {
            check_path(path)?;
            if modified.nanos >= 1_000_000_000 {
                return Err(err(ErrorKind::InvalidInput));
            }
            let ino = state.lookup(root, path)?;
            let node = state.node_mut(ino)?;
            if node.kind() == FileKind::Symlink {
                return Err(err(ErrorKind::SymlinkRefused));
            }
            node.modified = modified;
            Ok(())
        })
    }

    fn sync_dir(&self, root: Root, path: &str) -> Result<(), Error> {
        self.op(|state| {
            check_path(path)?;
            let dir = state.walk_dir(root, path)?;
            match &mut state.node_mut(dir)?.body {
                Body::Dir { entries, durable } => {
                    durable.clone_from(entries);
                    Ok(())
                }
                _ => Err(err(ErrorKind::NotADirectory)),
            }
        })
    }

    fn supports_sync_filesystem(&self) -> bool {
        self.with(|state| Ok(state.sync_filesystem_supported))
            .unwrap_or(false)
    }

    /// Both roots model one filesystem, so this makes both durable, like
    /// `syncfs` would.
    fn sync_filesystem(&self, _root: Root) -> Result<(), Error> {
        self.op(|state| {
            if !state.sync_filesystem_supported {
                return Err(err(ErrorKind::Unsupported));
            }
            state.make_all_durable();
            Ok(())
        })
    }

    fn parallelism(&self) -> usize {
        self.with(|state| Ok(state.parallelism)).unwrap_or(1)
    }

    fn run_tasks<T: Send>(&self, results: &mut [T], task: &(dyn Fn(&Self, usize) -> T + Sync)) {
        let _ = self.with(|state| {
            state.most_tasks = state.most_tasks.max(results.len());
            Ok(())
        });
        for (index, result) in results.iter_mut().enumerate().rev() {
            *result = task(self, index);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Root::{Cache, Workspace};
    use alloc::vec;

    const T1: Timestamp = Timestamp::from_seconds(1_000);
    const T2: Timestamp = Timestamp::from_seconds(2_000);

    fn kind<T>(result: Result<T, Error>) -> ErrorKind {
        match result {
            Ok(_) => panic!("expected an error"),
            Err(error) => error.kind,
        }
    }

    fn create(fs: &MemFs, root: Root, path: &str, bytes: &[u8]) -> Result<MemWriter, Error> {
        let mut writer = fs.create_new_file(root, path)?;
        writer.write_all(bytes)?;
        Ok(writer)
    }

    fn read_all(fs: &MemFs, root: Root, path: &str) -> Result<Vec<u8>, Error> {
        let mut reader = fs.open_file(root, path)?;
        let mut out = Vec::new();
        let mut buf = [0u8; 3];
        loop {
            match reader.read(&mut buf)? {
                0 => return Ok(out),
                n => out.extend_from_slice(&buf[..n]),
            }
        }
    }

    fn names(fs: &MemFs, root: Root, path: &str) -> Vec<(String, FileKind)> {
        let mut out = Vec::new();
        fs.read_dir(root, path, &mut |name, kind| {
            out.push((name.to_string(), kind));
            ControlFlow::Continue(())
        })
        .unwrap();
        out
    }

    fn paths(fs: &MemFs, root: Root) -> Vec<String> {
        fs.tree(root).into_iter().map(|entry| entry.0).collect()
    }

    #[test]
    fn create_new_file_then_open_file_reads_the_bytes_back() {
        let fs = MemFs::new();
        fs.create_dir(Workspace, "d").unwrap();
        create(&fs, Workspace, "d/f", b"hello world").unwrap();
        assert_eq!(read_all(&fs, Workspace, "d/f").unwrap(), b"hello world");
        assert_eq!(fs.read_file(Workspace, "d/f").unwrap(), b"hello world");
        // The two roots are independent trees.
        assert!(!fs.exists(Cache, "d/f"));
        assert_eq!(kind(fs.open_file(Cache, "d/f")), ErrorKind::NotFound);
    }

    #[test]
    fn create_new_file_refuses_anything_existing_including_symlinks() {
        let fs = MemFs::new();
        fs.write_file(Cache, "file", b"x", 0o644).unwrap();
        fs.create_dir_all(Cache, "dir").unwrap();
        fs.symlink(Cache, "link", "file").unwrap();
        fs.symlink(Cache, "dangling", "nowhere").unwrap();
        fs.write_file(Cache, "pretend", b"p", 0o644).unwrap();
        fs.pretend_symlink(Cache, "pretend").unwrap();
        for path in ["file", "dir", "link", "dangling", "pretend", ""] {
            assert_eq!(
                kind(fs.create_new_file(Cache, path)),
                ErrorKind::AlreadyExists,
                "{path}"
            );
            assert_eq!(
                kind(fs.create_dir(Cache, path)),
                ErrorKind::AlreadyExists,
                "{path}"
            );
        }
        assert_eq!(fs.read_file(Cache, "file").unwrap(), b"x");
    }

    #[test]
    fn missing_parent_is_not_found_and_file_parent_is_not_a_directory() {
        let fs = MemFs::new();
        fs.write_file(Cache, "file", b"x", 0o644).unwrap();
        assert_eq!(kind(fs.create_new_file(Cache, "no/f")), ErrorKind::NotFound);
        assert_eq!(
            kind(fs.create_new_file(Cache, "no/deeper/f")),
            ErrorKind::NotFound
        );
        assert_eq!(kind(fs.create_dir(Cache, "no/d")), ErrorKind::NotFound);
        assert_eq!(
            kind(fs.create_new_file(Cache, "file/f")),
            ErrorKind::NotADirectory
        );
        assert_eq!(
            kind(fs.create_dir(Cache, "file/d")),
            ErrorKind::NotADirectory
        );
        assert_eq!(kind(fs.metadata(Cache, "file/f")), ErrorKind::NotADirectory);
        assert_eq!(
            kind(fs.read_dir(Cache, "file", &mut |_, _| ControlFlow::Continue(()))),
            ErrorKind::NotADirectory
        );
        assert_eq!(kind(fs.sync_dir(Cache, "file")), ErrorKind::NotADirectory);
        assert_eq!(kind(fs.sync_dir(Cache, "missing")), ErrorKind::NotFound);
        assert_eq!(paths(&fs, Cache), vec!["file"]);
    }

    #[test]
    fn malformed_paths_are_invalid_input_for_every_call() {
        let fs = MemFs::new();
        fs.write_file(Workspace, "a/b", b"x", 0o644).unwrap();
        let before = fs.tree(Workspace);
        for bad in [
            "/a", "a//b", "a/", "/", "./a", "a/.", "a/../a", "..", "a/b\0", "a/./b",
        ] {
            let w = Workspace;
            assert_eq!(
                kind(fs.metadata(w, bad)),
                ErrorKind::InvalidInput,
                "{bad:?}"
            );
            assert_eq!(
                kind(fs.open_file(w, bad)),
                ErrorKind::InvalidInput,
                "{bad:?}"
            );
            assert_eq!(
                kind(fs.create_new_file(w, bad)),
                ErrorKind::InvalidInput,
                "{bad:?}"
            );
            assert_eq!(
                kind(fs.create_dir(w, bad)),
                ErrorKind::InvalidInput,
                "{bad:?}"
            );
            assert_eq!(
                kind(fs.rename(w, bad, w, "c")),
                ErrorKind::InvalidInput,
                "{bad:?}"
            );
            assert_eq!(
                kind(fs.rename(w, "a/b", w, bad)),
                ErrorKind::InvalidInput,
                "{bad:?}"
            );
            assert_eq!(
                kind(fs.rename_no_replace(w, "a/b", w, bad)),
                ErrorKind::InvalidInput,
                "{bad:?}"
            );
            assert_eq!(
                kind(fs.remove_file(w, bad)),
                ErrorKind::InvalidInput,
                "{bad:?}"
            );
            assert_eq!(
                kind(fs.remove_dir(w, bad)),
                ErrorKind::InvalidInput,
                "{bad:?}"
            );
            assert_eq!(
                kind(fs.set_mode(w, bad, 0o600)),
                ErrorKind::InvalidInput,
                "{bad:?}"
            );
            assert_eq!(
                kind(fs.set_modified(w, bad, T1)),
                ErrorKind::InvalidInput,
                "{bad:?}"
            );
            assert_eq!(
                kind(fs.sync_dir(w, bad)),
                ErrorKind::InvalidInput,
                "{bad:?}"
            );
            assert_eq!(
                kind(fs.read_dir(w, bad, &mut |_, _| ControlFlow::Continue(()))),
                ErrorKind::InvalidInput,
                "{bad:?}"
            );
            assert_eq!(
                kind(fs.write_file(w, bad, b"", 0o644)),
                ErrorKind::InvalidInput,
                "{bad:?}"
            );
            assert!(!fs.exists(w, bad), "{bad:?}");
        }
        assert_eq!(fs.tree(Workspace), before);
    }

    #[test]
    fn the_empty_path_names_the_root_which_cannot_be_removed_or_renamed() {
        let fs = MemFs::new();
        fs.write_file(Cache, "f", b"x", 0o644).unwrap();
        assert_eq!(fs.metadata(Cache, "").unwrap().kind, FileKind::Dir);
        assert_eq!(
            names(&fs, Cache, ""),
            vec![("f".to_string(), FileKind::File)]
        );
        fs.sync_dir(Cache, "").unwrap();
        assert_eq!(kind(fs.open_file(Cache, "")), ErrorKind::IsADirectory);
        assert_eq!(kind(fs.remove_dir(Cache, "")), ErrorKind::InvalidInput);
        assert_eq!(kind(fs.remove_file(Cache, "")), ErrorKind::InvalidInput);
        assert_eq!(
            kind(fs.rename(Cache, "", Workspace, "x")),
            ErrorKind::InvalidInput
        );
        assert_eq!(
            kind(fs.rename(Cache, "f", Workspace, "")),
            ErrorKind::InvalidInput
        );
        assert!(fs.exists(Cache, ""));
    }

    #[test]
    fn symlink_in_a_non_final_component_is_refused() {
        let fs = MemFs::new();
        fs.write_file(Workspace, "real/f", b"x", 0o644).unwrap();
        fs.symlink(Workspace, "link", "real").unwrap();
        fs.create_dir_all(Workspace, "fake/sub").unwrap();
        fs.write_file(Workspace, "fake/f", b"y", 0o644).unwrap();
        fs.pretend_symlink(Workspace, "fake").unwrap();
        for base in ["link", "fake"] {
            let inner = alloc::format!("{base}/f");
            let deeper = alloc::format!("{base}/sub/g");
            let refused = ErrorKind::SymlinkRefused;
            assert_eq!(kind(fs.metadata(Workspace, &inner)), refused, "{base}");
            assert_eq!(kind(fs.open_file(Workspace, &inner)), refused, "{base}");
            assert_eq!(
                kind(fs.create_new_file(Workspace, &deeper)),
                refused,
                "{base}"
            );
            assert_eq!(kind(fs.create_dir(Workspace, &inner)), refused, "{base}");
            assert_eq!(kind(fs.remove_file(Workspace, &inner)), refused, "{base}");
            assert_eq!(
                kind(fs.rename(Workspace, "real/f", Workspace, &inner)),
                refused
            );
            assert_eq!(
                kind(fs.rename(Workspace, &inner, Workspace, "moved")),
                refused
            );
            assert_eq!(
                kind(fs.read_dir(Workspace, base, &mut |_, _| ControlFlow::Continue(()))),
                refused
            );
            assert_eq!(kind(fs.sync_dir(Workspace, base)), refused);
            assert_eq!(kind(fs.write_file(Workspace, &inner, b"z", 0o644)), refused);
            assert_eq!(fs.read_file(Workspace, &inner), None);
        }
        assert_eq!(fs.read_file(Workspace, "real/f").unwrap(), b"x");
    }

    #[test]
    fn open_file_refuses_symlinks_and_directories() {
        let fs = MemFs::new();
        fs.write_file(Workspace, "f", b"x", 0o644).unwrap();
        fs.symlink(Workspace, "link", "f").unwrap();
        fs.create_dir_all(Workspace, "d").unwrap();
        assert_eq!(
            kind(fs.open_file(Workspace, "link")),
            ErrorKind::SymlinkRefused
        );
        assert_eq!(kind(fs.open_file(Workspace, "d")), ErrorKind::IsADirectory);
        assert_eq!(
            kind(fs.open_file(Workspace, "missing")),
            ErrorKind::NotFound
        );
        assert_eq!(read_all(&fs, Workspace, "f").unwrap(), b"x");
    }

    #[test]
    fn rename_of_a_file_replaces_a_file_or_symlink() {
        let fs = MemFs::new();
        fs.write_file(Cache, "a", b"new", 0o600).unwrap();
        fs.write_file(Cache, "b", b"old", 0o644).unwrap();
        fs.symlink(Cache, "s", "b").unwrap();
        fs.rename(Cache, "a", Cache, "b").unwrap();
        assert!(!fs.exists(Cache, "a"));
        assert_eq!(fs.read_file(Cache, "b").unwrap(), b"new");
        assert_eq!(fs.metadata(Cache, "b").unwrap().mode, 0o600);
        fs.rename(Cache, "b", Cache, "s").unwrap();
        assert_eq!(fs.read_file(Cache, "s").unwrap(), b"new");
        assert_eq!(paths(&fs, Cache), vec!["s"]);
        // A symlink moves as an entry and replaces a file.
        fs.symlink(Cache, "l", "target").unwrap();
        fs.rename(Cache, "l", Cache, "s").unwrap();
        assert_eq!(fs.metadata(Cache, "s").unwrap().kind, FileKind::Symlink);
    }

    #[test]
    fn rename_of_a_directory_replaces_only_an_empty_directory() {
        let fs = MemFs::new();
        fs.write_file(Cache, "src/f", b"x", 0o644).unwrap();
        fs.write_file(Cache, "full/g", b"y", 0o644).unwrap();
        fs.create_dir_all(Cache, "empty").unwrap();
        assert_eq!(
            kind(fs.rename(Cache, "src", Cache, "full")),
            ErrorKind::DirectoryNotEmpty
        );
        assert_eq!(fs.read_file(Cache, "src/f").unwrap(), b"x");
        fs.rename(Cache, "src", Cache, "empty").unwrap();
        assert_eq!(fs.read_file(Cache, "empty/f").unwrap(), b"x");
        assert_eq!(
            paths(&fs, Cache),
            vec!["empty", "empty/f", "full", "full/g"]
        );
    }

    #[test]
    fn rename_dir_onto_file_is_not_a_directory_and_file_onto_dir_is_a_directory() {
        let fs = MemFs::new();
        fs.write_file(Cache, "f", b"x", 0o644).unwrap();
        fs.create_dir_all(Cache, "d").unwrap();
        fs.symlink(Cache, "s", "d").unwrap();
        assert_eq!(
            kind(fs.rename(Cache, "d", Cache, "f")),
            ErrorKind::NotADirectory
        );
        assert_eq!(
            kind(fs.rename(Cache, "d", Cache, "s")),
            ErrorKind::NotADirectory
        );
        assert_eq!(
            kind(fs.rename(Cache, "f", Cache, "d")),
            ErrorKind::IsADirectory
        );
        assert_eq!(
            kind(fs.rename(Cache, "s", Cache, "d")),
            ErrorKind::IsADirectory
        );
        assert_eq!(paths(&fs, Cache), vec!["d", "f", "s"]);
    }

    #[test]
    fn rename_of_a_directory_into_its_own_subtree_is_invalid_input() {
        let fs = MemFs::new();
        fs.create_dir_all(Cache, "a/b/c").unwrap();
        let before = fs.tree(Cache);
        assert_eq!(
            kind(fs.rename(Cache, "a", Cache, "a/x")),
            ErrorKind::InvalidInput
        );
        assert_eq!(
            kind(fs.rename(Cache, "a", Cache, "a/b/c/x")),
            ErrorKind::InvalidInput
        );
        assert_eq!(
            kind(fs.rename(Cache, "a", Cache, "a/b")),
            ErrorKind::InvalidInput
        );
        assert_eq!(
            kind(fs.rename_no_replace(Cache, "a", Cache, "a/x")),
            ErrorKind::InvalidInput
        );
        assert_eq!(fs.tree(Cache), before);
        // Moving a subdirectory up is fine.
        fs.rename(Cache, "a/b/c", Cache, "c").unwrap();
        assert_eq!(paths(&fs, Cache), vec!["a", "a/b", "c"]);
    }

    #[test]
    fn rename_onto_itself_succeeds_and_changes_nothing() {
        let fs = MemFs::new();
        fs.write_file(Cache, "d/f", b"x", 0o644).unwrap();
        let before = fs.tree(Cache);
        fs.rename(Cache, "d/f", Cache, "d/f").unwrap();
        fs.rename(Cache, "d", Cache, "d").unwrap();
        assert_eq!(fs.tree(Cache), before);
    }

    #[test]
    fn rename_of_a_missing_source_is_not_found() {
        let fs = MemFs::new();
        fs.create_dir_all(Cache, "d").unwrap();
        assert_eq!(
            kind(fs.rename(Cache, "missing", Cache, "x")),
            ErrorKind::NotFound
        );
        assert_eq!(
            kind(fs.rename(Cache, "d", Cache, "no/x")),
            ErrorKind::NotFound
        );
        assert_eq!(paths(&fs, Cache), vec!["d"]);
    }

    #[test]
    fn rename_across_roots_works_unless_cross_device() {
        let fs = MemFs::new();
        fs.write_file(Cache, "staged/blob", b"bytes", 0o755)
            .unwrap();
        fs.create_dir_all(Workspace, "out").unwrap();
        fs.rename(Cache, "staged/blob", Workspace, "out/file")
            .unwrap();
        assert_eq!(fs.read_file(Workspace, "out/file").unwrap(), b"bytes");
        assert!(!fs.exists(Cache, "staged/blob"));
        fs.rename(Workspace, "out", Cache, "moved").unwrap();
        assert_eq!(fs.read_file(Cache, "moved/file").unwrap(), b"bytes");

        fs.set_cross_device(true);
        assert_eq!(
            kind(fs.rename(Cache, "moved/file", Workspace, "file")),
            ErrorKind::CrossesDevices
        );
        assert_eq!(
            kind(fs.rename_no_replace(Cache, "moved/file", Workspace, "file")),
            ErrorKind::CrossesDevices
        );
        assert!(fs.exists(Cache, "moved/file"));
        assert!(!fs.exists(Workspace, "file"));
        // Within one root renames still work.
        fs.rename(Cache, "moved/file", Cache, "file").unwrap();
        assert_eq!(fs.read_file(Cache, "file").unwrap(), b"bytes");
    }

    #[test]
    fn rename_no_replace_refuses_any_existing_target_and_can_be_unsupported() {
        let fs = MemFs::new();
        fs.write_file(Cache, "a", b"a", 0o644).unwrap();
        fs.write_file(Cache, "b", b"b", 0o644).unwrap();
        fs.create_dir_all(Cache, "d").unwrap();
        fs.create_dir_all(Cache, "e").unwrap();
        assert_eq!(
            kind(fs.rename_no_replace(Cache, "a", Cache, "b")),
            ErrorKind::AlreadyExists
        );
        assert_eq!(
            kind(fs.rename_no_replace(Cache, "d", Cache, "e")),
            ErrorKind::AlreadyExists
        );
        assert_eq!(
            kind(fs.rename_no_replace(Cache, "a", Cache, "a")),
            ErrorKind::AlreadyExists
        );
        assert_eq!(fs.read_file(Cache, "b").unwrap(), b"b");
        fs.rename_no_replace(Cache, "a", Cache, "c").unwrap();
        assert_eq!(fs.read_file(Cache, "c").unwrap(), b"a");

        fs.set_rename_no_replace_supported(false);
        let count = fs.op_count();
        assert_eq!(
            kind(fs.rename_no_replace(Cache, "c", Cache, "z")),
            ErrorKind::Unsupported
        );
        assert_eq!(fs.op_count(), count + 1);
        assert!(fs.exists(Cache, "c") && !fs.exists(Cache, "z"));
        fs.set_rename_no_replace_supported(true);
        fs.rename_no_replace(Cache, "c", Cache, "z").unwrap();
        assert!(fs.exists(Cache, "z"));
    }

    #[test]
    fn remove_file_removes_files_and_symlinks_never_directories() {
        let fs = MemFs::new();
        fs.write_file(Cache, "f", b"x", 0o644).unwrap();
        fs.symlink(Cache, "s", "f").unwrap();
        fs.create_dir_all(Cache, "d").unwrap();
        fs.create_dir_all(Cache, "pd").unwrap();
        fs.pretend_symlink(Cache, "pd").unwrap();
        assert_eq!(kind(fs.remove_file(Cache, "d")), ErrorKind::IsADirectory);
        assert_eq!(kind(fs.remove_file(Cache, "missing")), ErrorKind::NotFound);
        fs.remove_file(Cache, "s").unwrap();
        assert_eq!(fs.read_file(Cache, "f").unwrap(), b"x");
        fs.remove_file(Cache, "f").unwrap();
        // A pretend symlink is unlinked like a symlink.
        fs.remove_file(Cache, "pd").unwrap();
        assert_eq!(paths(&fs, Cache), vec!["d"]);
    }

    #[test]
    fn remove_dir_refuses_non_empty_directories_and_non_directories() {
        let fs = MemFs::new();
        fs.write_file(Cache, "d/f", b"x", 0o644).unwrap();
        fs.symlink(Cache, "s", "d").unwrap();
        assert_eq!(
            kind(fs.remove_dir(Cache, "d")),
            ErrorKind::DirectoryNotEmpty
        );
        assert_eq!(kind(fs.remove_dir(Cache, "d/f")), ErrorKind::NotADirectory);
        assert_eq!(kind(fs.remove_dir(Cache, "s")), ErrorKind::NotADirectory);
        assert_eq!(kind(fs.remove_dir(Cache, "missing")), ErrorKind::NotFound);
        fs.remove_file(Cache, "d/f").unwrap();
        fs.remove_dir(Cache, "d").unwrap();
        assert_eq!(paths(&fs, Cache), vec!["s"]);
    }

    #[test]
    fn read_dir_visits_every_entry_with_its_kind_in_name_order() {
        let fs = MemFs::new();
        fs.write_file(Cache, "d/b", b"", 0o644).unwrap();
        fs.create_dir_all(Cache, "d/a").unwrap();
        fs.symlink(Cache, "d/c", "b").unwrap();
        fs.write_file(Cache, "d/p", b"", 0o644).unwrap();
        fs.pretend_symlink(Cache, "d/p").unwrap();
        assert_eq!(
            names(&fs, Cache, "d"),
            vec![
                ("a".to_string(), FileKind::Dir),
                ("b".to_string(), FileKind::File),
                ("c".to_string(), FileKind::Symlink),
                ("p".to_string(), FileKind::Symlink),
            ]
        );
        let mut seen = 0;
        fs.read_dir(Cache, "d", &mut |_, _| {
            seen += 1;
            ControlFlow::Break(())
        })
        .unwrap();
        assert_eq!(seen, 1);
        assert!(names(&fs, Cache, "d/a").is_empty());
    }

    #[test]
    fn read_dir_tolerates_the_callback_removing_entries() {
        let fs = MemFs::new();
        for name in ["a", "b", "c", "d"] {
            fs.write_file(Cache, &alloc::format!("dir/{name}"), b"x", 0o644)
                .unwrap();
        }
        let inner = fs.clone();
        let mut seen = Vec::new();
        fs.read_dir(Cache, "dir", &mut |name, _| {
            seen.push(name.to_string());
            inner
                .remove_file(Cache, &alloc::format!("dir/{name}"))
                .unwrap();
            // Removing a later entry makes read_dir skip it.
            if name == "a" {
                inner.remove_file(Cache, "dir/c").unwrap();
            }
            ControlFlow::Continue(())
        })
        .unwrap();
        assert_eq!(seen, vec!["a", "b", "d"]);
        fs.remove_dir(Cache, "dir").unwrap();
        assert!(fs.tree(Cache).is_empty());
    }

    #[test]
    fn directory_looks_up_single_names_and_follows_renames() {
        let fs = MemFs::new();
        fs.create_dir(Workspace, "d").unwrap();
        fs.write_file(Workspace, "d/f", b"12345", 0o640).unwrap();
        fs.symlink(Workspace, "d/s", "f").unwrap();
        fs.symlink(Workspace, "link", "d").unwrap();
        let dir = fs.open_dir(Workspace, "d").unwrap();
        for name in ["f", "s"] {
            assert_eq!(
                dir.metadata(name),
                fs.metadata(Workspace, &alloc::format!("d/{name}"))
            );
        }
        for name in ["", ".", "..", "f/x"] {
            assert_eq!(
                dir.metadata(name).unwrap_err().kind,
                ErrorKind::InvalidInput
            );
        }
        assert_eq!(dir.metadata("x").unwrap_err().kind, ErrorKind::NotFound);
        fs.rename(Workspace, "d", Cache, "moved").unwrap();
        assert_eq!(dir.metadata("f").unwrap().size, 5);
        assert_eq!(
            fs.open_dir(Workspace, "link").unwrap_err().kind,
            ErrorKind::SymlinkRefused
        );
        assert_eq!(
            fs.open_dir(Cache, "moved/f").unwrap_err().kind,
            ErrorKind::NotADirectory
        );
        // Like every handle, it dies with the process.
        fs.recover(CrashMode::ProcessKill);
        assert_eq!(dir.metadata("f").unwrap_err().kind, ErrorKind::Other);
    }

    #[test]
    fn rename_at_moves_by_inode_and_respects_cross_device() {
        let fs = MemFs::new();
        fs.write_file(Cache, "s/0", b"new", 0o644).unwrap();
        fs.write_file(Workspace, "out/app", b"old", 0o644).unwrap();
        let from = fs.open_dir(Cache, "s").unwrap();
        let to = fs.open_dir(Workspace, "out").unwrap();
        fs.rename(Workspace, "out", Workspace, "moved").unwrap();
        fs.rename_at(&from, "0", &to, "app").unwrap();
        assert_eq!(fs.read_file(Workspace, "moved/app").unwrap(), b"new");
        assert_eq!(
            fs.rename_at(&from, "0", &to, "x").unwrap_err().kind,
            ErrorKind::NotFound
        );
        assert_eq!(
            fs.rename_at(&from, "a/b", &to, "x").unwrap_err().kind,
            ErrorKind::InvalidInput
        );
        fs.write_file(Cache, "s/1", b"x", 0o644).unwrap();
        fs.set_cross_device(true);
        assert_eq!(
            fs.rename_at(&from, "1", &to, "x").unwrap_err().kind,
            ErrorKind::CrossesDevices
        );
    }

    #[test]
    fn copy_file_is_one_operation_and_not_durable_until_synced() {
        let fs = MemFs::new();
        fs.write_file(Workspace, "src", b"abcdef", 0o644).unwrap();
        let mut from = fs.open_file(Workspace, "src").unwrap();
        let mut to = fs.create_new_file(Cache, "dst").unwrap();
        fs.sync_all();
        let before = fs.op_count();
        assert_eq!(
            fs.copy_file(&mut from, &mut to, HashFunction::Sha256),
            Ok((crate::hash::digest(HashFunction::Sha256, b"abcdef"), 6))
        );
        assert_eq!(fs.op_count(), before + 1);
        assert_eq!(fs.read_file(Cache, "dst").unwrap(), b"abcdef");
        fs.recover(CrashMode::PowerLoss);
        assert_eq!(fs.read_file(Cache, "dst").unwrap(), b"");

        fs.set_copy_file_supported(false);
        let mut from = fs.open_file(Workspace, "src").unwrap();
        let mut to = fs.create_new_file(Cache, "dst2").unwrap();
        assert_eq!(
            fs.copy_file(&mut from, &mut to, HashFunction::Blake3)
                .unwrap_err()
                .kind,
            ErrorKind::Unsupported
        );
        assert_eq!(fs.read_file(Cache, "dst2").unwrap(), b"");
    }

    #[test]
    fn metadata_reports_kind_size_mode_and_time_without_following() {
        let fs = MemFs::new();
        fs.set_now(T1);
        fs.create_dir(Workspace, "d").unwrap();
        let mut writer = create(&fs, Workspace, "d/f", b"12345").unwrap();
        fs.symlink(Workspace, "s", "d/f").unwrap();

        let file = fs.metadata(Workspace, "d/f").unwrap();
        assert_eq!(
            file,
            Metadata {
                kind: FileKind::File,
                size: 5,
                mode: NEW_FILE_MODE,
                modified: T1
            }
        );
        let dir = fs.metadata(Workspace, "d").unwrap();
        assert_eq!(
            (dir.kind, dir.mode, dir.modified),
            (FileKind::Dir, NEW_DIR_MODE, T1)
        );
        let link = fs.metadata(Workspace, "s").unwrap();
        assert_eq!(
            (link.kind, link.size, link.mode),
            (FileKind::Symlink, 3, SYMLINK_MODE)
        );

        // A write moves the file's time to the clock; a new entry moves the
        // directory's.
        fs.set_now(T2);
        writer.write_all(b"678").unwrap();
        let file = fs.metadata(Workspace, "d/f").unwrap();
        assert_eq!((file.size, file.modified), (8, T2));
        assert_eq!(fs.metadata(Workspace, "d").unwrap().modified, T1);
        fs.create_dir(Workspace, "d/sub").unwrap();
        assert_eq!(fs.metadata(Workspace, "d").unwrap().modified, T2);
        assert_eq!(fs.now(), T2);
    }

    #[test]
    fn set_mode_and_set_modified_apply_to_files_and_dirs_not_symlinks() {
        let fs = MemFs::new();
        fs.write_file(Cache, "d/f", b"x", 0o644).unwrap();
        fs.symlink(Cache, "s", "d/f").unwrap();
        fs.set_mode(Cache, "d/f", 0o100_755).unwrap();
        assert_eq!(fs.metadata(Cache, "d/f").unwrap().mode, 0o755);
        fs.set_mode(Cache, "d", 0o700).unwrap();
        assert_eq!(fs.metadata(Cache, "d").unwrap().mode, 0o700);
        let when = Timestamp {
            seconds: 77,
            nanos: 5,
        };
        fs.set_modified(Cache, "d/f", when).unwrap();
        assert_eq!(fs.metadata(Cache, "d/f").unwrap().modified, when);
        fs.set_modified(Cache, "d", when).unwrap();
        assert_eq!(fs.metadata(Cache, "d").unwrap().modified, when);
        assert_eq!(
            kind(fs.set_mode(Cache, "s", 0o600)),
            ErrorKind::SymlinkRefused
        );
        assert_eq!(
            kind(fs.set_modified(Cache, "s", when)),
            ErrorKind::SymlinkRefused
        );
        assert_eq!(
            kind(fs.set_mode(Cache, "missing", 0o600)),
            ErrorKind::NotFound
        );
        let bad = Timestamp {
            seconds: 1,
            nanos: 1_000_000_000,
        };
        assert_eq!(
            kind(fs.set_modified(Cache, "d/f", bad)),
            ErrorKind::InvalidInput
        );
        assert_eq!(fs.metadata(Cache, "d/f").unwrap().modified, when);
    }

    #[test]
    fn pretend_symlink_is_seen_as_a_symlink_by_every_call() {
        let fs = MemFs::new();
        fs.write_file(Cache, "ab/key/manifest.json", b"{}", 0o644)
            .unwrap();
        fs.write_file(Cache, "ab/key/stdout", b"out", 0o644)
            .unwrap();
        fs.pretend_symlink(Cache, "ab/key/stdout").unwrap();
        fs.pretend_symlink(Cache, "ab").unwrap();
        assert_eq!(fs.metadata(Cache, "ab").unwrap().kind, FileKind::Symlink);
        assert_eq!(
            names(&fs, Cache, ""),
            vec![("ab".to_string(), FileKind::Symlink)]
        );
        assert_eq!(
            kind(fs.open_file(Cache, "ab/key/manifest.json")),
            ErrorKind::SymlinkRefused
        );
        assert_eq!(kind(fs.open_file(Cache, "ab")), ErrorKind::SymlinkRefused);
        assert_eq!(
            kind(fs.set_mode(Cache, "ab", 0o700)),
            ErrorKind::SymlinkRefused
        );
        assert_eq!(kind(fs.remove_dir(Cache, "ab")), ErrorKind::NotADirectory);
        assert_eq!(
            fs.tree(Cache),
            vec![(
                "ab".to_string(),
                FileKind::Symlink,
                Vec::new(),
                NEW_DIR_MODE
            )]
        );
        assert_eq!(
            kind(fs.pretend_symlink(Cache, "nothing")),
            ErrorKind::NotFound
        );

        let fs2 = MemFs::new();
        fs2.write_file(Cache, "f", b"data", 0o600).unwrap();
        fs2.pretend_symlink(Cache, "f").unwrap();
        assert_eq!(kind(fs2.open_file(Cache, "f")), ErrorKind::SymlinkRefused);
        assert_eq!(fs2.metadata(Cache, "f").unwrap().kind, FileKind::Symlink);
        assert_eq!(fs2.read_file(Cache, "f"), None);
        assert!(fs2.exists(Cache, "f"));
        assert_eq!(
            fs2.tree(Cache),
            vec![("f".to_string(), FileKind::Symlink, b"data".to_vec(), 0o600)]
        );
    }

    #[test]
    fn tree_lists_every_entry_sorted_by_path() {
        let fs = MemFs::new();
        fs.write_file(Workspace, "a/b", b"1", 0o600).unwrap();
        fs.write_file(Workspace, "a-c", b"2", 0o644).unwrap();
        fs.symlink(Workspace, "z", "a/b").unwrap();
        fs.create_dir_all(Workspace, "a/d/e").unwrap();
        assert_eq!(
            fs.tree(Workspace),
            vec![
                ("a".to_string(), FileKind::Dir, vec![], NEW_DIR_MODE),
                ("a-c".to_string(), FileKind::File, b"2".to_vec(), 0o644),
                ("a/b".to_string(), FileKind::File, b"1".to_vec(), 0o600),
                ("a/d".to_string(), FileKind::Dir, vec![], NEW_DIR_MODE),
                ("a/d/e".to_string(), FileKind::Dir, vec![], NEW_DIR_MODE),
                (
                    "z".to_string(),
                    FileKind::Symlink,
                    b"a/b".to_vec(),
                    SYMLINK_MODE
                ),
            ]
        );
        assert!(fs.tree(Cache).is_empty());
    }

    #[test]
    fn helpers_refuse_conflicting_entries() {
        let fs = MemFs::new();
        fs.write_file(Cache, "f", b"1", 0o644).unwrap();
        fs.create_dir_all(Cache, "d").unwrap();
        fs.symlink(Cache, "s", "f").unwrap();
        assert_eq!(
            kind(fs.write_file(Cache, "d", b"", 0o644)),
            ErrorKind::IsADirectory
        );
        assert_eq!(
            kind(fs.write_file(Cache, "s", b"", 0o644)),
            ErrorKind::AlreadyExists
        );
        assert_eq!(
            kind(fs.write_file(Cache, "f/g", b"", 0o644)),
            ErrorKind::NotADirectory
        );
        assert_eq!(
            kind(fs.create_dir_all(Cache, "f/g")),
            ErrorKind::NotADirectory
        );
        assert_eq!(
            kind(fs.create_dir_all(Cache, "s/g")),
            ErrorKind::SymlinkRefused
        );
        assert_eq!(kind(fs.symlink(Cache, "f", "x")), ErrorKind::AlreadyExists);
        fs.create_dir_all(Cache, "d").unwrap();
        fs.write_file(Cache, "f", b"2", 0o600).unwrap();
        assert_eq!(fs.read_file(Cache, "f").unwrap(), b"2");
        assert_eq!(fs.op_count(), 0, "helpers are not operations");
    }

    #[test]
    fn op_count_counts_every_call_including_reader_and_writer_calls() {
        let fs = MemFs::new();
        assert_eq!(fs.op_count(), 0);
        let mut writer = fs.create_new_file(Cache, "f").unwrap(); // 1
        writer.write_all(b"abc").unwrap(); // 2
        writer.sync().unwrap(); // 3
        let mut reader = fs.open_file(Cache, "f").unwrap(); // 4
        let mut buf = [0u8; 2];
        assert_eq!(reader.read(&mut buf).unwrap(), 2); // 5
        assert_eq!(reader.read(&mut buf).unwrap(), 1); // 6
        assert_eq!(reader.read(&mut buf).unwrap(), 0); // 7
        assert_eq!(kind(fs.metadata(Cache, "missing")), ErrorKind::NotFound); // 8
        fs.read_dir(Cache, "", &mut |_, _| ControlFlow::Continue(()))
            .unwrap(); // 9
        fs.sync_dir(Cache, "").unwrap(); // 10
        assert_eq!(fs.op_count(), 10);
        // A clone shares the counter.
        let clone = fs.clone();
        clone.metadata(Cache, "f").unwrap();
        assert_eq!(fs.op_count(), 11);
    }

    #[test]
    fn fail_at_fails_exactly_the_chosen_operation_once_and_performs_nothing() {
        let fs = MemFs::new();
        fs.fail_at(1, ErrorKind::StorageFull);
        fs.create_dir(Cache, "a").unwrap(); // op 0
        assert_eq!(kind(fs.create_dir(Cache, "b")), ErrorKind::StorageFull); // op 1
        assert!(!fs.exists(Cache, "b"));
        fs.create_dir(Cache, "b").unwrap(); // op 2: the fault fired once

        // Faults reach reader and writer calls too, and a failed write
        // writes nothing.
        let mut writer = fs.create_new_file(Cache, "f").unwrap();
        fs.fail_at(0, ErrorKind::StorageFull);
        assert_eq!(kind(writer.write(b"xyz")), ErrorKind::StorageFull);
        assert_eq!(fs.read_file(Cache, "f").unwrap(), b"");
        writer.write_all(b"xyz").unwrap();
        fs.fail_at(0, ErrorKind::Other);
        assert_eq!(kind(writer.sync()), ErrorKind::Other);
        let mut reader = fs.open_file(Cache, "f").unwrap();
        fs.fail_at(0, ErrorKind::PermissionDenied);
        let mut buf = [0u8; 8];
        assert_eq!(kind(reader.read(&mut buf)), ErrorKind::PermissionDenied);
        assert_eq!(reader.read(&mut buf).unwrap(), 3);

        // Several faults may be pending; each fires at its own op.
        fs.fail_at(0, ErrorKind::PermissionDenied);
        fs.fail_at(2, ErrorKind::ReadOnly);
        assert_eq!(
            kind(fs.rename(Cache, "a", Cache, "c")),
            ErrorKind::PermissionDenied
        );
        fs.rename(Cache, "a", Cache, "c").unwrap();
        assert_eq!(kind(fs.remove_dir(Cache, "c")), ErrorKind::ReadOnly);
        assert!(fs.exists(Cache, "c"));
        fs.remove_dir(Cache, "c").unwrap();
        assert_eq!(paths(&fs, Cache), vec!["b", "f"]);
    }

    #[test]
    fn crash_at_fails_the_chosen_and_every_later_operation_until_recover() {
        let fs = MemFs::new();
        let mut writer = fs.create_new_file(Cache, "f").unwrap();
        fs.crash_at(2);
        writer.write_all(b"a").unwrap(); // op 0
        fs.create_dir(Cache, "d").unwrap(); // op 1
        assert!(!fs.is_crashed());
        assert_eq!(kind(writer.write(b"b")), ErrorKind::Other); // op 2
        assert!(fs.is_crashed());
        assert_eq!(kind(fs.create_dir(Cache, "e")), ErrorKind::Other);
        assert_eq!(kind(fs.metadata(Cache, "d")), ErrorKind::Other);
        assert_eq!(kind(writer.sync()), ErrorKind::Other);
        // Helpers still see the state the process left.
        assert_eq!(fs.read_file(Cache, "f").unwrap(), b"a");
        assert!(!fs.exists(Cache, "e"));
        fs.recover(CrashMode::ProcessKill);
        assert!(!fs.is_crashed());
        fs.create_dir(Cache, "e").unwrap();
        assert_eq!(paths(&fs, Cache), vec!["d", "e", "f"]);
    }

    #[test]
    fn recover_cancels_pending_faults_and_invalidates_open_handles() {
        let fs = MemFs::new();
        fs.write_file(Cache, "f", b"data", 0o644).unwrap();
        let mut reader = fs.open_file(Cache, "f").unwrap();
        let mut writer = fs.create_new_file(Cache, "g").unwrap();
        fs.fail_at(3, ErrorKind::ReadOnly);
        fs.recover(CrashMode::ProcessKill);
        let mut buf = [0u8; 4];
        assert_eq!(kind(reader.read(&mut buf)), ErrorKind::Other);
        assert_eq!(kind(writer.write(b"x")), ErrorKind::Other);
        assert_eq!(kind(writer.sync()), ErrorKind::Other);
        // The fault that would have hit this call was cancelled.
        fs.create_dir(Cache, "d").unwrap();
        assert_eq!(read_all(&fs, Cache, "f").unwrap(), b"data");
        assert_eq!(fs.read_file(Cache, "g").unwrap(), b"");
    }

    #[test]
    fn a_reader_keeps_reading_a_file_renamed_or_removed_after_open() {
        let fs = MemFs::new();
        fs.write_file(Cache, "f", b"still here", 0o644).unwrap();
        let mut reader = fs.open_file(Cache, "f").unwrap();
        fs.rename(Cache, "f", Cache, "g").unwrap();
        fs.remove_file(Cache, "g").unwrap();
        let mut buf = [0u8; 32];
        assert_eq!(reader.read(&mut buf).unwrap(), 10);
        assert_eq!(&buf[..10], b"still here");
    }

    #[test]
    fn process_kill_keeps_everything_done_synced_or_not() {
        let fs = MemFs::new();
        fs.create_dir(Cache, "d").unwrap();
        create(&fs, Cache, "d/f", b"unsynced").unwrap();
        fs.rename(Cache, "d", Cache, "e").unwrap();
        let before = fs.tree(Cache);
        fs.crash_at(0);
        assert_eq!(kind(fs.remove_file(Cache, "e/f")), ErrorKind::Other);
        fs.recover(CrashMode::ProcessKill);
        assert_eq!(fs.tree(Cache), before);
        assert_eq!(fs.read_file(Cache, "e/f").unwrap(), b"unsynced");
    }

    #[test]
    fn power_loss_loses_unsynced_entries_and_unsynced_data() {
        let fs = MemFs::new();
        fs.write_file(Workspace, "kept", b"setup", 0o644).unwrap();
        fs.create_dir(Cache, "d").unwrap();
        fs.sync_dir(Cache, "").unwrap();
        // A new file whose directory entry was never synced disappears,
        // even though its data was synced.
        create(&fs, Cache, "lost", b"x").unwrap().sync().unwrap();
        // A file whose entry was synced but data was not comes back empty.
        create(&fs, Cache, "d/empty", b"never synced").unwrap();
        // A file synced, then appended to, comes back as synced.
        let mut writer = create(&fs, Cache, "d/partial", b"first").unwrap();
        writer.sync().unwrap();
        writer.write_all(b" second").unwrap();
        fs.set_mode(Cache, "d/partial", 0o600).unwrap();
        // A directory whose entries and parent were synced survives whole; a
        // directory created after the parent's sync does not.
        fs.create_dir(Cache, "d/sub").unwrap();
        create(&fs, Cache, "d/sub/g", b"g").unwrap().sync().unwrap();
        fs.sync_dir(Cache, "d/sub").unwrap();
        fs.sync_dir(Cache, "d").unwrap();
        fs.create_dir(Cache, "d/late").unwrap();

        fs.crash_at(0);
        fs.recover(CrashMode::PowerLoss);
        assert_eq!(
            fs.tree(Cache),
            vec![
                ("d".to_string(), FileKind::Dir, vec![], NEW_DIR_MODE),
                ("d/empty".to_string(), FileKind::File, vec![], NEW_FILE_MODE),
                (
                    "d/partial".to_string(),
                    FileKind::File,
                    b"first".to_vec(),
                    NEW_FILE_MODE
                ),
                ("d/sub".to_string(), FileKind::Dir, vec![], NEW_DIR_MODE),
                (
                    "d/sub/g".to_string(),
                    FileKind::File,
                    b"g".to_vec(),
                    NEW_FILE_MODE
                ),
            ]
        );
        assert_eq!(fs.read_file(Workspace, "kept").unwrap(), b"setup");
        // Everything is durable after recovery: a second power loss changes
        // nothing.
        let after = fs.tree(Cache);
        fs.recover(CrashMode::PowerLoss);
        assert_eq!(fs.tree(Cache), after);
    }

    #[test]
    fn power_loss_without_a_dir_sync_keeps_a_new_directory_out() {
        let fs = MemFs::new();
        fs.create_dir(Cache, "ab").unwrap();
        fs.create_dir(Cache, "ab/.tmp-x").unwrap();
        create(&fs, Cache, "ab/.tmp-x/manifest.json", b"{}")
            .unwrap()
            .sync()
            .unwrap();
        fs.sync_dir(Cache, "ab/.tmp-x").unwrap();
        fs.recover(CrashMode::PowerLoss);
        assert!(fs.tree(Cache).is_empty());
    }

    #[test]
    fn power_loss_after_the_full_publish_protocol_keeps_the_entry() {
        let publish_until_rename = || {
            let fs = MemFs::new();
            fs.create_dir_all(Cache, "ab").unwrap();
            fs.create_dir(Cache, "ab/.tmp-k").unwrap();
            create(&fs, Cache, "ab/.tmp-k/stdout", b"out")
                .unwrap()
                .sync()
                .unwrap();
            create(&fs, Cache, "ab/.tmp-k/manifest.json", b"{}")
                .unwrap()
                .sync()
                .unwrap();
            fs.sync_dir(Cache, "ab/.tmp-k").unwrap();
            fs.rename(Cache, "ab/.tmp-k", Cache, "ab/k").unwrap();
            fs
        };
        // Before the shard is synced neither the scratch dir's creation nor
        // the rename is durable: the shard comes back empty.
        let fs = publish_until_rename();
        fs.recover(CrashMode::PowerLoss);
        assert_eq!(paths(&fs, Cache), vec!["ab"]);
        // Had the shard been synced after creating the scratch dir, the
        // complete scratch dir would come back instead.
        let fs = publish_until_rename();
        fs.rename(Cache, "ab/k", Cache, "ab/.tmp-k").unwrap();
        fs.sync_dir(Cache, "ab").unwrap();
        fs.rename(Cache, "ab/.tmp-k", Cache, "ab/k").unwrap();
        fs.recover(CrashMode::PowerLoss);
        assert_eq!(
            paths(&fs, Cache),
            vec![
                "ab",
                "ab/.tmp-k",
                "ab/.tmp-k/manifest.json",
                "ab/.tmp-k/stdout"
            ]
        );
        assert_eq!(fs.read_file(Cache, "ab/.tmp-k/stdout").unwrap(), b"out");
        // After the shard sync the entry is durable.
        let fs = publish_until_rename();
        fs.sync_dir(Cache, "ab").unwrap();
        fs.recover(CrashMode::PowerLoss);
        assert_eq!(
            paths(&fs, Cache),
            vec!["ab", "ab/k", "ab/k/manifest.json", "ab/k/stdout"]
        );
        assert_eq!(fs.read_file(Cache, "ab/k/stdout").unwrap(), b"out");
    }

    #[test]
    fn power_loss_undoes_an_unsynced_rename_and_removal() {
        let fs = MemFs::new();
        fs.write_file(Cache, "ab/.tmp-k/manifest.json", b"{}", 0o644)
            .unwrap();
        fs.write_file(Cache, "old", b"old", 0o644).unwrap();
        fs.write_file(Cache, "replaced", b"before", 0o644).unwrap();
        let before = fs.tree(Cache);
        fs.rename(Cache, "ab/.tmp-k", Cache, "ab/k").unwrap();
        fs.remove_file(Cache, "old").unwrap();
        create(&fs, Cache, "new", b"after").unwrap().sync().unwrap();
        fs.rename(Cache, "new", Cache, "replaced").unwrap();
        assert_eq!(fs.read_file(Cache, "replaced").unwrap(), b"after");
        fs.recover(CrashMode::PowerLoss);
        assert_eq!(fs.tree(Cache), before);
    }

    #[test]
    fn power_loss_keeps_a_tree_when_a_moved_directory_is_durable_in_two_places() {
        // Cycle: b is durable inside a, a durable inside b.
        let fs = MemFs::new();
        fs.create_dir_all(Cache, "a/b").unwrap();
        fs.rename(Cache, "a/b", Cache, "b").unwrap();
        fs.rename(Cache, "a", Cache, "b/a").unwrap();
        fs.sync_dir(Cache, "b").unwrap();
        assert_eq!(paths(&fs, Cache), vec!["b", "b/a"]);
        fs.recover(CrashMode::PowerLoss);
        assert_eq!(paths(&fs, Cache), vec!["a", "a/b"]);
        fs.create_dir(Cache, "a/b/c").unwrap();
        fs.remove_dir(Cache, "a/b/c").unwrap();

        // A directory moved between two directories and synced only in the
        // target stays where it is met first; a file keeps both names.
        let fs = MemFs::new();
        fs.write_file(Cache, "x/d/inner", b"i", 0o644).unwrap();
        fs.write_file(Cache, "x/f", b"f", 0o644).unwrap();
        fs.create_dir_all(Cache, "y").unwrap();
        fs.rename(Cache, "x/d", Cache, "y/d").unwrap();
        fs.rename(Cache, "x/f", Cache, "y/f").unwrap();
        fs.sync_dir(Cache, "y").unwrap();
        fs.recover(CrashMode::PowerLoss);
        assert_eq!(
            paths(&fs, Cache),
            vec!["x", "x/d", "x/d/inner", "x/f", "y", "y/f"]
        );
        assert_eq!(fs.read_file(Cache, "y/f").unwrap(), b"f");
        fs.remove_file(Cache, "y/f").unwrap();
        assert_eq!(fs.read_file(Cache, "x/f").unwrap(), b"f");
    }

    #[test]
    fn power_loss_spans_both_roots() {
        let fs = MemFs::new();
        fs.write_file(Cache, "blob", b"b", 0o644).unwrap();
        fs.create_dir_all(Workspace, "out").unwrap();
        fs.rename(Cache, "blob", Workspace, "out/file").unwrap();
        fs.sync_dir(Workspace, "out").unwrap();
        fs.recover(CrashMode::PowerLoss);
        // Synced on the workspace side only: both names survive.
        assert_eq!(fs.read_file(Workspace, "out/file").unwrap(), b"b");
        assert_eq!(fs.read_file(Cache, "blob").unwrap(), b"b");
    }

    #[test]
    fn sync_all_makes_the_current_state_durable() {
        let fs = MemFs::new();
        fs.create_dir(Cache, "d").unwrap();
        create(&fs, Cache, "d/f", b"x").unwrap();
        fs.sync_all();
        let before = fs.tree(Cache);
        fs.recover(CrashMode::PowerLoss);
        assert_eq!(fs.tree(Cache), before);
        assert_eq!(fs.read_file(Cache, "d/f").unwrap(), b"x");
    }

    #[test]
    fn sync_filesystem_is_an_operation_and_makes_everything_durable() {
        let fs = MemFs::new();
        fs.create_dir(Cache, "d").unwrap();
        create(&fs, Cache, "d/f", b"x").unwrap();
        create(&fs, Workspace, "w", b"y").unwrap();
        assert!(fs.supports_sync_filesystem());
        let before = fs.op_count();
        fs.sync_filesystem(Cache).unwrap();
        assert_eq!(fs.op_count(), before + 1);
        let (cache, workspace) = (fs.tree(Cache), fs.tree(Workspace));
        fs.recover(CrashMode::PowerLoss);
        assert_eq!(fs.tree(Cache), cache);
        assert_eq!(fs.tree(Workspace), workspace);

        fs.set_sync_filesystem_supported(false);
        assert!(!fs.supports_sync_filesystem());
        assert_eq!(
            fs.sync_filesystem(Cache).map_err(|e| e.kind),
            Err(ErrorKind::Unsupported)
        );
    }

    #[test]
    fn helpers_create_durable_state() {
        let fs = MemFs::new();
        fs.write_file(Workspace, "src/a/b.rs", b"fn main() {}", 0o755)
            .unwrap();
        fs.create_dir_all(Cache, "ab/cd").unwrap();
        fs.symlink(Workspace, "src/link", "a").unwrap();
        let workspace = fs.tree(Workspace);
        let cache = fs.tree(Cache);
        fs.recover(CrashMode::PowerLoss);
        assert_eq!(fs.tree(Workspace), workspace);
        assert_eq!(fs.tree(Cache), cache);
        assert_eq!(fs.metadata(Workspace, "src/a/b.rs").unwrap().mode, 0o755);
    }
}
