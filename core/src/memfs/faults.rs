//! Crash and fault injection for [`MemFs`]: the operation counter,
//! [`MemFs::fail_at`], [`MemFs::crash_at`] and recovery, by process kill or
//! power loss, to the durable state (see the [module docs](super) for the
//! model).

use alloc::collections::{BTreeSet, VecDeque};
use alloc::vec::Vec;

use super::{Body, MemFs, Node, State, err};
use crate::fs::{Error, ErrorKind, Root};

/// How a simulated crash ends, for [`MemFs::recover`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CrashMode {
    /// The process was killed: everything it did stays, synced or not.
    ProcessKill,
    /// The machine lost power: only what was synced stays (see the module
    /// docs for the exact model).
    PowerLoss,
}

impl State {
    /// Counts one operation and applies crash and fault injection.
    pub(super) fn begin_op(&mut self) -> Result<(), Error> {
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

    /// Reverts everything to its durable state (see the module docs).
    pub(super) fn power_loss(&mut self) {
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
    pub(super) fn collect_garbage(&mut self) {
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

impl MemFs {
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

    /// Appends `extra` to the file at `path` just before the next `read`
    /// of it through any reader, as a writer racing with that reader
    /// would: what was opened and stat-ed is then longer when it is read.
    pub fn grow_on_next_read(&self, root: Root, path: &str, extra: &[u8]) -> Result<(), Error> {
        self.with(|state| {
            let ino = state.lookup(root, path)?;
            state.growth.push((ino, Vec::from(extra)));
            Ok(())
        })
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
}
