//! [`MemoryRemote`]: a remote store in memory, with a request log and
//! fault injection. A test double (the `memfs` feature, like
//! `memfs::MemFs`), not for production use.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use core::cell::RefCell;
use core::ops::ControlFlow;

use super::{Error, ErrorKind, ObjectMeta, RemoteRead, RemoteStore, RemoteWrite};

/// One request made of a [`MemoryRemote`], in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// `get` of a name.
    Get(String),
    /// `head` of a name.
    Head(String),
    /// A `put` of a name that finished (the object became visible).
    Put(String),
    /// A `put_object` of a name: the whole object in one request.
    PutObject(String),
    /// `delete` of a name.
    Delete(String),
    /// `list` of a prefix.
    List(String),
}

#[derive(Debug, Default)]
struct State {
    objects: BTreeMap<String, Vec<u8>>,
    log: Vec<Request>,
    unreachable: bool,
    fail_reads_after: Option<usize>,
}

/// A remote store in memory. Every request is logged
/// ([`MemoryRemote::requests`]); [`MemoryRemote::set_unreachable`] makes
/// every request fail as a dead server would, and
/// [`MemoryRemote::fail_reads_after`] cuts every object read off after a
/// number of bytes, as a connection reset would.
#[derive(Debug, Default)]
pub struct MemoryRemote {
    state: RefCell<State>,
}

impl MemoryRemote {
    /// An empty remote.
    pub fn new() -> MemoryRemote {
        MemoryRemote::default()
    }

    /// Every object, by name.
    pub fn objects(&self) -> BTreeMap<String, Vec<u8>> {
        self.state.borrow().objects.clone()
    }

    /// The bytes of the object `name`.
    pub fn object(&self, name: &str) -> Option<Vec<u8>> {
        self.state.borrow().objects.get(name).cloned()
    }

    /// Replaces (or creates) the object `name`, logging nothing: how a test
    /// tampers with a remote behind cachet's back.
    pub fn set_object(&self, name: &str, bytes: Vec<u8>) {
        self.state
            .borrow_mut()
            .objects
            .insert(String::from(name), bytes);
    }

    /// Removes the object `name`, logging nothing.
    pub fn remove_object(&self, name: &str) -> Option<Vec<u8>> {
        self.state.borrow_mut().objects.remove(name)
    }

    /// The requests made so far, in order.
    pub fn requests(&self) -> Vec<Request> {
        self.state.borrow().log.clone()
    }

    /// Forgets the requests logged so far.
    pub fn clear_requests(&self) {
        self.state.borrow_mut().log.clear();
    }

    /// Makes every later request fail with [`ErrorKind::Unreachable`]
    /// (`true`), or succeed again (`false`).
    pub fn set_unreachable(&self, unreachable: bool) {
        self.state.borrow_mut().unreachable = unreachable;
    }

    /// Makes every object read opened later fail after `bytes` bytes.
    pub fn fail_reads_after(&self, bytes: Option<usize>) {
        self.state.borrow_mut().fail_reads_after = bytes;
    }

    fn request(&self, request: Request) -> Result<(), Error> {
        let mut state = self.state.borrow_mut();
        state.log.push(request);
        if state.unreachable {
            return Err(Error::new(ErrorKind::Unreachable, "connection refused"));
        }
        Ok(())
    }
}

/// An object being read from a [`MemoryRemote`].
#[derive(Debug)]
pub struct MemoryReader {
    bytes: Vec<u8>,
    at: usize,
    fail_after: Option<usize>,
}

impl RemoteRead for MemoryReader {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
        let mut end = self.bytes.len();
        if let Some(limit) = self.fail_after {
            if self.at >= limit {
                return Err(Error::new(ErrorKind::Unreachable, "connection reset"));
            }
            end = end.min(limit);
        }
        let n = buf.len().min(end.saturating_sub(self.at));
        buf[..n].copy_from_slice(&self.bytes[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// An object being written to a [`MemoryRemote`]: visible only once
/// finished.
#[derive(Debug)]
pub struct MemoryWriter<'r> {
    remote: &'r MemoryRemote,
    name: String,
    bytes: Vec<u8>,
}

impl RemoteWrite for MemoryWriter<'_> {
    fn write_all(&mut self, buf: &[u8]) -> Result<(), Error> {
        if self.remote.state.borrow().unreachable {
            return Err(Error::new(ErrorKind::Unreachable, "connection reset"));
        }
        self.bytes.extend_from_slice(buf);
        Ok(())
    }

    fn finish(self) -> Result<(), Error> {
        self.remote.request(Request::Put(self.name.clone()))?;
        self.remote
            .state
            .borrow_mut()
            .objects
            .insert(self.name, self.bytes);
        Ok(())
    }
}

impl<'r> RemoteStore for &'r MemoryRemote {
    type Reader = MemoryReader;
    type Writer = MemoryWriter<'r>;

    fn get(&self, name: &str) -> Result<Option<MemoryReader>, Error> {
        self.request(Request::Get(String::from(name)))?;
        let state = self.state.borrow();
        Ok(state.objects.get(name).map(|bytes| MemoryReader {
            bytes: bytes.clone(),
            at: 0,
            fail_after: state.fail_reads_after,
        }))
    }

    fn head(&self, name: &str) -> Result<Option<ObjectMeta>, Error> {
        self.request(Request::Head(String::from(name)))?;
        Ok(self
            .state
            .borrow()
            .objects
            .get(name)
            .map(|bytes| ObjectMeta {
                size: bytes.len() as u64,
            }))
    }

    fn put(&self, name: &str, _size_hint: Option<u64>) -> Result<MemoryWriter<'r>, Error> {
        if self.state.borrow().unreachable {
            return Err(Error::new(ErrorKind::Unreachable, "connection refused"));
        }
        Ok(MemoryWriter {
            remote: self,
            name: String::from(name),
            bytes: Vec::new(),
        })
    }

    fn put_object(&self, name: &str, bytes: &[u8]) -> Result<(), Error> {
        self.request(Request::PutObject(String::from(name)))?;
        self.state
            .borrow_mut()
            .objects
            .insert(String::from(name), bytes.to_vec());
        Ok(())
    }

    fn delete(&self, name: &str) -> Result<(), Error> {
        self.request(Request::Delete(String::from(name)))?;
        self.state.borrow_mut().objects.remove(name);
        Ok(())
    }

    fn list(
        &self,
        prefix: &str,
        visit: &mut dyn FnMut(&str, u64) -> ControlFlow<()>,
    ) -> Result<(), Error> {
        self.request(Request::List(String::from(prefix)))?;
        let objects = self.state.borrow().objects.clone();
        for (name, bytes) in objects.range(String::from(prefix)..) {
            if !name.starts_with(prefix) {
                break;
            }
            if visit(name, bytes.len() as u64).is_break() {
                break;
            }
        }
        Ok(())
    }
}
