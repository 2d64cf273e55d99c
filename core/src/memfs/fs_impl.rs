//! [`MemFs`] as a [`Filesystem`]: its readers, writers and directory
//! handles, and each trait call as one counted operation.

use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec::Vec;
use core::cell::RefCell;
use core::ops::ControlFlow;

use super::{Body, Ino, MemFs, Node, State, check_path, err};
use crate::fs::{
    Directory, Error, ErrorKind, FileKind, FileReader, FileWriter, Filesystem, Metadata, Name,
    Read, Replace, Root, Timestamp, Write,
};
use crate::hash::{Digest, HashFunction};

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
    fn metadata(&self, name: Name<'_>) -> Result<Metadata, Error> {
        let ino = self.ino;
        handle_op(&self.state, self.epoch, |state| {
            let child = *state
                .entries(ino)?
                .get(name.as_str())
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
            if let Some(at) = state.growth.iter().position(|(grown, _)| *grown == ino) {
                let (_, extra) = state.growth.swap_remove(at);
                if let Some(Node {
                    body: Body::File { data, .. },
                    ..
                }) = state.nodes.get_mut(&ino)
                {
                    data.extend_from_slice(&extra);
                }
            }
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

/// One operation, like an `fstat` of the open file: the metadata of the
/// inode as it is now, wherever it was renamed since.
impl FileReader for MemReader {
    fn metadata(&self) -> Result<Metadata, Error> {
        let ino = self.ino;
        handle_op(&self.state, self.epoch, |state| {
            Ok(state.node(ino)?.metadata())
        })
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
            if mode & !0o7777 != 0 {
                return Err(err(ErrorKind::InvalidInput));
            }
            state.node_mut(ino)?.mode = mode;
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

    /// One operation. [`Replace::Never`] is [`ErrorKind::Unsupported`]
    /// (still an operation) after
    /// [`MemFs::set_rename_no_replace_supported`]`(false)`.
    fn rename(
        &self,
        from: &MemDirectory,
        from_name: Name<'_>,
        to: &MemDirectory,
        to_name: Name<'_>,
        replace: Replace,
    ) -> Result<(), Error> {
        let no_replace = replace == Replace::Never;
        self.op(|state| {
            if no_replace && !state.rename_no_replace_supported {
                return Err(err(ErrorKind::Unsupported));
            }
            if state.epoch != from.epoch || state.epoch != to.epoch {
                return Err(err(ErrorKind::Other));
            }
            state.rename_entry(
                (from.root, from.ino, from_name.as_str()),
                (to.root, to.ino, to_name.as_str()),
                no_replace,
            )
        })
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
}
