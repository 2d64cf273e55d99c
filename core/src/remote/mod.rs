//! Remote stores (SPEC §11, REMOTE-1..15): sharing entries between machines
//! through object stores, written once against a small [`RemoteStore`]
//! trait.
//!
//! A remote is a flat space of objects named by `/`-separated strings
//! (an S3 bucket, a WebDAV tree, a shared directory). The local cache stays
//! the first tier and the only place a restore reads from; a remote only
//! ever fills it, and is filled from it:
//!
//! - [`lookup`] asks the local cache, then each remote in order; the first
//!   complete entry that verifies is downloaded into the local cache
//!   through the store's own publish path, and the caller restores from
//!   there (REMOTE-1, REMOTE-4);
//! - [`push`] uploads a local entry to every writable remote: the blobs the
//!   remote lacks, then the record, last (REMOTE-2, REMOTE-8), made once
//!   for all of them; [`push_holding`] is the same right after
//!   [`Cache::store_holding`](crate::cache::Cache::store_holding), taking
//!   the small contents that store read from memory;
//! - [`pull`] and [`push_one`] do the same against one remote.
//!
//! A remote that fails is never an error of the operation: it is a
//! [`RemoteFailure`] in the report (one line for the user) and a miss
//! (REMOTE-3). Only the local cache's failures are errors.
//!
//! What a slow, failing or absent remote may cost is bounded by
//! [`guard`] (time limits, retries, the write stop after a refused
//! access), [`breaker`] (skipping a failed remote across runs) and
//! [`policy`], and counted by [`stats`] (REMOTE-15..19).
//!
//! Objects are laid out by [`names`] and encoded by [`record`] and
//! [`blob`]; the tenant ([`names::Tenant`]) is a parameter of every call:
//! a run writes only its own and reads its own, then the ones it trusts
//! (REMOTE-11). With a signing key, records are signed and checked by
//! [`sign`] (REMOTE-12, REMOTE-13).
//!
//! The module does no I/O of its own: hosts implement [`RemoteStore`] (the
//! `cachet` binary over OpenDAL), with readers and writers that stream, so
//! that a blob of any size is never held in memory.

pub mod blob;
pub mod breaker;
mod chain;
pub mod guard;
pub mod health;
#[cfg(any(test, feature = "memfs"))]
pub mod memory;
pub mod names;
pub mod policy;
pub mod record;
pub mod sign;
pub mod stats;
#[cfg(all(test, feature = "memfs"))]
mod tests;
mod upload;

use alloc::string::String;
use core::ops::ControlFlow;

pub use chain::{
    ChainLookup, ChainPush, Found, PullError, PullOutcome, PushError, PushOutcome, RemoteFailure,
    RemoteMiss, RemoteOp, lookup, pull, push, push_holding, push_one,
};

/// What kind of failure a remote call met, as the core sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The object does not exist (only where a call cannot say so in its
    /// result, e.g. an object removed between `get` and its first read).
    NotFound,
    /// The remote could not be reached: connection refused or reset, name
    /// resolution, a connection that could not be made in time.
    Unreachable,
    /// The remote did not answer within the time allowed (REMOTE-15).
    TimedOut,
    /// The remote answered with a server error (an HTTP 5xx, or a request
    /// to slow down): it may pass (REMOTE-15).
    ServerError,
    /// The remote refused the credentials or the access.
    PermissionDenied,
    /// The remote answered, but not as it should (a server error, a
    /// malformed response).
    Protocol,
    /// The configuration cannot work (a bad endpoint, a missing bucket).
    Config,
    /// The object's bytes do not decode (a damaged zstd frame, REMOTE-6):
    /// something about the object, a miss, not about the remote.
    Corrupt,
    /// Anything else.
    Other,
}

impl core::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            ErrorKind::NotFound => "not found",
            ErrorKind::Unreachable => "unreachable",
            ErrorKind::TimedOut => "timed out",
            ErrorKind::ServerError => "server error",
            ErrorKind::PermissionDenied => "permission denied",
            ErrorKind::Protocol => "unexpected response",
            ErrorKind::Config => "misconfigured",
            ErrorKind::Corrupt => "corrupt object",
            ErrorKind::Other => "failed",
        })
    }
}

/// A failed remote call: a core-owned kind, and the host's own words for
/// messages (never credentials).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    /// What kind of failure.
    pub kind: ErrorKind,
    /// What the host's client said, for the user.
    pub detail: String,
}

impl Error {
    /// An error of `kind` with the host's `detail`.
    pub fn new(kind: ErrorKind, detail: impl Into<String>) -> Error {
        Error {
            kind,
            detail: detail.into(),
        }
    }
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        if self.detail.is_empty() {
            write!(f, "{}", self.kind)
        } else {
            write!(f, "{}: {}", self.kind, self.detail)
        }
    }
}

#[cfg(feature = "std")]
impl core::error::Error for Error {}

/// An object being read by [`RemoteStore::get`].
pub trait RemoteRead {
    /// Reads up to `buf.len()` bytes; `Ok(0)` means end of the object.
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Error>;
}

/// An object being written by [`RemoteStore::put`]. Nothing is visible
/// under the object's name until [`RemoteWrite::finish`] returns `Ok`;
/// a writer dropped before that leaves nothing under the name
/// (REMOTE-6): hosts write to a temporary name and rename, or send one
/// request at the end, or abort a multipart upload on drop.
pub trait RemoteWrite {
    /// Appends all of `buf` to the object.
    fn write_all(&mut self, buf: &[u8]) -> Result<(), Error>;

    /// Completes the object and makes it visible under its name, replacing
    /// any object of that name.
    fn finish(self) -> Result<(), Error>;
}

/// What [`RemoteStore::head`] reports of an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ObjectMeta {
    /// The object's length in bytes.
    pub size: u64,
}

/// Codec 1 being written: the raw bytes of one content go in, one zstd
/// frame comes out (REMOTE-6). The host compresses (the core has no zstd);
/// the core decides whether the frame is used.
pub trait ZstdEncoder {
    /// Compresses the next raw bytes.
    fn write_all(&mut self, raw: &[u8]) -> Result<(), Error>;

    /// Bytes of the frame produced so far: the core gives up on
    /// compression as soon as this reaches the raw size.
    fn compressed_len(&self) -> u64;

    /// Ends the frame and returns its length and a reader of it, from its
    /// first byte.
    fn finish(
        self: alloc::boxed::Box<Self>,
    ) -> Result<(u64, alloc::boxed::Box<dyn RemoteRead>), Error>;
}

/// A remote store: objects named by `/`-separated relative names
/// (`cachet-v1-blake3/blobs/ab/ab…`), below a root the host chose (the
/// prefix of REMOTE-5). Every call is one request's worth of work.
pub trait RemoteStore {
    /// An object being read.
    type Reader: RemoteRead;
    /// An object being written.
    type Writer: RemoteWrite;

    /// Opens the object `name` for reading, or `None` when there is none.
    fn get(&self, name: &str) -> Result<Option<Self::Reader>, Error>;

    /// The object's metadata, or `None` when there is none.
    fn head(&self, name: &str) -> Result<Option<ObjectMeta>, Error>;

    /// Starts writing the object `name`. `size_hint`, when given, is the
    /// object's exact length: a host may announce it (an HTTP
    /// `Content-Length`) and fail the object if it comes out otherwise.
    fn put(&self, name: &str, size_hint: Option<u64>) -> Result<Self::Writer, Error>;

    /// Writes the object `name` whole from `bytes`, replacing any object
    /// of that name; as with [`RemoteStore::put`], nothing is visible
    /// under the name unless it returns `Ok` (REMOTE-6). A host sends it
    /// in one request where the service allows (an S3 `PutObject` instead
    /// of a multipart upload): a record is pushed this way (REMOTE-8). The
    /// default is [`put_through_writer`].
    fn put_object(&self, name: &str, bytes: &[u8]) -> Result<(), Error> {
        put_through_writer(self, name, bytes)
    }

    /// Removes the object `name`; removing an absent object is not an
    /// error.
    fn delete(&self, name: &str) -> Result<(), Error>;

    /// Calls `visit` with the name and size of each object whose name
    /// starts with `prefix` (a name ending in `/`), at any depth, in no
    /// particular order, until it returns [`ControlFlow::Break`].
    fn list(
        &self,
        prefix: &str,
        visit: &mut dyn FnMut(&str, u64) -> ControlFlow<()>,
    ) -> Result<(), Error>;

    /// A compressor for a blob of `raw_size` bytes (REMOTE-6, codec 1),
    /// or `None` when this host does not compress (or cannot now): the
    /// blob is then written raw. The default never compresses.
    fn zstd_encoder(&self, raw_size: u64) -> Option<alloc::boxed::Box<dyn ZstdEncoder>> {
        let _ = raw_size;
        None
    }

    /// A reader of the raw bytes of the one zstd frame `body` holds, for a
    /// content of `raw_size` bytes by its record, or `None` when this host
    /// does not decode codec 1 (a miss, and the blob is left alone). The
    /// decoder never keeps a window larger than `raw_size` needs, so a
    /// frame that claims more cannot make it allocate past the content's
    /// recorded size; bytes that do not decode, or anything after the
    /// frame, are an error of kind [`ErrorKind::Corrupt`]. The default
    /// does not decode.
    fn zstd_decoder<'a>(
        &self,
        body: alloc::boxed::Box<dyn RemoteRead + 'a>,
        raw_size: u64,
    ) -> Option<alloc::boxed::Box<dyn RemoteRead + 'a>> {
        let _ = (body, raw_size);
        None
    }
}

/// Writes the object `name` whole from `bytes` through
/// [`RemoteStore::put`] (announcing its length), [`RemoteWrite::write_all`]
/// and [`RemoteWrite::finish`]: [`RemoteStore::put_object`] for a host
/// whose writer already sends one request.
pub fn put_through_writer<R: RemoteStore + ?Sized>(
    store: &R,
    name: &str,
    bytes: &[u8],
) -> Result<(), Error> {
    let mut writer = store.put(name, Some(bytes.len() as u64))?;
    writer.write_all(bytes)?;
    writer.finish()
}

impl<R: RemoteStore + ?Sized> RemoteStore for &R {
    type Reader = R::Reader;
    type Writer = R::Writer;

    fn get(&self, name: &str) -> Result<Option<Self::Reader>, Error> {
        (**self).get(name)
    }

    fn head(&self, name: &str) -> Result<Option<ObjectMeta>, Error> {
        (**self).head(name)
    }

    fn put(&self, name: &str, size_hint: Option<u64>) -> Result<Self::Writer, Error> {
        (**self).put(name, size_hint)
    }

    fn put_object(&self, name: &str, bytes: &[u8]) -> Result<(), Error> {
        (**self).put_object(name, bytes)
    }

    fn delete(&self, name: &str) -> Result<(), Error> {
        (**self).delete(name)
    }

    fn list(
        &self,
        prefix: &str,
        visit: &mut dyn FnMut(&str, u64) -> ControlFlow<()>,
    ) -> Result<(), Error> {
        (**self).list(prefix, visit)
    }

    fn zstd_encoder(&self, raw_size: u64) -> Option<alloc::boxed::Box<dyn ZstdEncoder>> {
        (**self).zstd_encoder(raw_size)
    }

    fn zstd_decoder<'a>(
        &self,
        body: alloc::boxed::Box<dyn RemoteRead + 'a>,
        raw_size: u64,
    ) -> Option<alloc::boxed::Box<dyn RemoteRead + 'a>> {
        (**self).zstd_decoder(body, raw_size)
    }
}

impl<R: RemoteRead + ?Sized> RemoteRead for alloc::boxed::Box<R> {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
        (**self).read(buf)
    }
}

/// One remote of a chain: the store, whether it may be written, and how
/// messages name it.
#[derive(Clone, Debug)]
pub struct Remote<R> {
    /// The store.
    pub store: R,
    /// Whether pushes write to it (REMOTE-2).
    pub writable: bool,
    /// How the remote is named in messages: its URL without credentials.
    pub label: String,
}

/// Tunables of the remote tier, with defaults that suit object stores.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteOptions {
    /// Records larger than this are refused (REMOTE-7). Default 128 MiB.
    pub max_record_bytes: u64,
    /// Contents of at most this many bytes go inline in the record
    /// (REMOTE-7). Default 64 KiB.
    pub inline_max_bytes: u64,
    /// The inline contents of one record stay within this many bytes.
    /// Default 16 MiB.
    pub inline_budget_bytes: u64,
    /// With a key, every record pushed is signed by it and every record
    /// read must be (REMOTE-12, REMOTE-13). Default none.
    pub signing_key: Option<sign::SigningKey>,
}

impl RemoteOptions {
    /// What a store that a push follows should hold for it
    /// ([`Cache::store_holding`](crate::cache::Cache::store_holding)):
    /// each content the push may inline (REMOTE-7), up to its budget.
    pub fn held_contents(&self) -> crate::cache::HeldContents {
        crate::cache::HeldContents::up_to(self.inline_max_bytes, self.inline_budget_bytes)
    }
}

impl Default for RemoteOptions {
    fn default() -> RemoteOptions {
        RemoteOptions {
            max_record_bytes: 128 * 1024 * 1024,
            inline_max_bytes: 64 * 1024,
            inline_budget_bytes: 16 * 1024 * 1024,
            signing_key: None,
        }
    }
}
