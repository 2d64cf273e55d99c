//! The chain of stores (REMOTE-1..4, REMOTE-8): lookup through the local
//! cache and the remotes in order, push to every writable remote.

use alloc::borrow::Cow;
use alloc::string::String;
use alloc::vec::Vec;

use super::blob::{BlobError, BlobReader, Codec};
use super::names::{self, Tenant};
use super::record::{InlineContent, Record, RecordError, RecordOutput, StreamRef};
use super::sign::{self, SignatureMiss};
use super::{Error, Remote, RemoteOptions, RemoteRead, RemoteStore, RemoteWrite};
use crate::cache::{
    Cache, CacheError, ContentSource, Context, HeldContents, Imported, LookupStatus, Rejection,
    SourceError, StoreOutcome,
};
use crate::fs::{Filesystem, Read, Root};
use crate::hash::{Digest, HashFunction, Hasher};
use crate::key::{CHAPTER_REVISION, Key};
use crate::layout;
use crate::manifest::{Manifest, OutputConflict, OutputSetCheck};

/// Which request to a remote failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RemoteOp {
    /// Reading an entry's record.
    GetRecord,
    /// Reading a blob.
    GetBlob,
    /// Asking whether a blob exists.
    HeadBlob,
    /// Writing a blob.
    PutBlob,
    /// Writing an entry's record.
    PutRecord,
    /// Reading, writing or removing the probe object of `cachet remote
    /// status` (REMOTE-20).
    Probe,
    /// Listing records (REMOTE-20).
    List,
}

impl core::fmt::Display for RemoteOp {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            RemoteOp::GetRecord => "read record",
            RemoteOp::GetBlob => "read blob",
            RemoteOp::HeadBlob => "look up blob",
            RemoteOp::PutBlob => "write blob",
            RemoteOp::PutRecord => "write record",
            RemoteOp::Probe => "probe",
            RemoteOp::List => "list",
        })
    }
}

/// A remote that failed: skipped, never an error of the operation
/// (REMOTE-3). Its `Display` is the one line the user sees.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteFailure {
    /// The remote, as [`Remote::label`] names it.
    pub remote: String,
    /// What was being done.
    pub op: RemoteOp,
    /// The object's name below the remote's root.
    pub object: String,
    /// What the remote said.
    pub error: Error,
}

impl core::fmt::Display for RemoteFailure {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let consequence = match self.op {
            RemoteOp::PutBlob | RemoteOp::PutRecord => "the entry is not stored there",
            RemoteOp::Probe | RemoteOp::List => "reported by remote status",
            _ => "treated as a miss",
        };
        write!(
            f,
            "remote {}: could not {} '{}': {}; {consequence}",
            self.remote, self.op, self.object, self.error
        )
    }
}

/// Why a remote did not provide an entry it was asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RemoteMiss {
    /// The remote holds no record for the key under the tenant.
    NoEntry,
    /// The record is of another chapter revision or hash function.
    Schema,
    /// The record names another key.
    OtherKey,
    /// The record is larger than [`RemoteOptions::max_record_bytes`].
    RecordTooLarge,
    /// The record is malformed (REMOTE-7).
    BadRecord(RecordError),
    /// The record's signature was refused (REMOTE-13).
    Signature(SignatureMiss),
    /// The record lists outputs no store writes together (SAFE-5..9):
    /// nothing entered the local cache.
    ConflictingOutputs {
        /// The first output found in conflict, by position in the record.
        index: usize,
        /// The rule it breaks.
        conflict: OutputConflict,
    },
    /// A content is missing, unreadable or not what the record says
    /// (REMOTE-4); nothing entered the local cache.
    Content(Rejection),
    /// A concurrent process on the local cache kept the entry from being
    /// published (OP-8).
    Contended,
}

impl core::fmt::Display for RemoteMiss {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            RemoteMiss::NoEntry => f.write_str("no entry"),
            RemoteMiss::Schema => f.write_str("entry of another revision or hash function"),
            RemoteMiss::OtherKey => f.write_str("record of another key"),
            RemoteMiss::RecordTooLarge => f.write_str("record too large"),
            RemoteMiss::BadRecord(error) => write!(f, "corrupt record: {error}"),
            RemoteMiss::Signature(miss) => write!(f, "record refused: {miss}"),
            RemoteMiss::ConflictingOutputs { index, conflict } => {
                write!(f, "corrupt record: output {index} {conflict}")
            }
            RemoteMiss::Content(Rejection::Missing { hash }) => write!(f, "blob {hash} is missing"),
            RemoteMiss::Content(Rejection::Unreadable { hash }) => {
                write!(f, "blob {hash} is unreadable")
            }
            RemoteMiss::Content(Rejection::Mismatch { hash }) => {
                write!(f, "content {hash} does not match its hash or size")
            }
            RemoteMiss::Content(Rejection::Unsupported { hash }) => {
                write!(f, "blob {hash} is in a codec this build does not decode")
            }
            RemoteMiss::Contended => f.write_str("contended locally"),
        }
    }
}

impl RemoteMiss {
    /// Whether the user is told of this miss whatever the verbosity: a
    /// record refused for its signature means a writer without the key,
    /// or keys that differ between machines (REMOTE-13).
    pub fn warrants_warning(&self) -> bool {
        matches!(self, RemoteMiss::Signature(_))
    }
}

/// How a [`pull`] from one remote ended, when the remote did not fail.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PullOutcome {
    /// The entry was downloaded, verified and published locally.
    Imported {
        /// Blobs read from the remote (contents not inline).
        blobs_fetched: usize,
        /// Bytes of the record and of those blobs' contents.
        bytes_fetched: u64,
    },
    /// The entry verified, and a valid local entry was already there (a
    /// concurrent store): kept, as OP-2 keeps it.
    AlreadyLocal,
    /// The remote did not provide the entry.
    Miss(RemoteMiss),
}

/// Why a pull or push stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PullError {
    /// The remote failed (REMOTE-3): a miss for the caller.
    Remote(RemoteFailure),
    /// The local cache failed: an error (SAFE-4).
    Local(CacheError),
}

/// How a push to one remote ended, when the remote did not fail.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PushOutcome {
    /// The record was written, after every blob it needs.
    Pushed {
        /// Blobs uploaded.
        blobs_uploaded: usize,
        /// Blobs the remote already had, not uploaded again (REMOTE-6).
        blobs_present: usize,
        /// Bytes sent: blob objects and the record.
        bytes_sent: u64,
    },
    /// The local cache holds no valid entry for the key (or one whose
    /// content no longer matches its manifest): nothing was sent.
    NotLocal(LookupStatus),
    /// The remote is read-only: nothing was sent.
    ReadOnly,
}

/// Why a push stopped: the same two sides as a pull.
pub type PushError = PullError;

/// Which tier served a [`lookup`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Found {
    /// The local cache (OP-1).
    Local,
    /// A remote, now backfilled into the local cache.
    Remote {
        /// Its position in the chain.
        index: usize,
        /// Its label.
        label: String,
        /// The tenant whose record served the entry (REMOTE-11).
        tenant: Tenant,
        /// What the pull moved.
        outcome: PullOutcome,
    },
}

/// What a [`lookup`] through the chain found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainLookup {
    /// The tier that served the entry, or `None` for a miss everywhere.
    pub found: Option<Found>,
    /// The status of the local cache (OP-1).
    pub local: LookupStatus,
    /// Each remote and tenant asked that did not provide the entry: the
    /// remote's position, the tenant, and why.
    pub misses: Vec<(usize, Tenant, RemoteMiss)>,
    /// Each remote that failed (REMOTE-3).
    pub failures: Vec<RemoteFailure>,
}

/// What a [`push`] to every writable remote did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainPush {
    /// Each writable remote that answered, by position, with its outcome.
    pub pushed: Vec<(usize, PushOutcome)>,
    /// Each remote that failed (REMOTE-3).
    pub failures: Vec<RemoteFailure>,
}

/// REMOTE-1, REMOTE-11: looks `key` up in the local cache, then in each
/// remote in order, and on each remote under each of `tenants` in order
/// (the run's own tenant first, then the ones it trusts:
/// [`names::reading_order`]). The first complete entry that verifies
/// fills the local cache, so a hit is always restored from the local cache
/// afterwards ([`Cache::restore`]). A remote that fails is reported once
/// and not asked for its remaining tenants; failures are collected, never
/// returned as errors (REMOTE-3); errors are the local cache's.
pub fn lookup<F: Filesystem, R: RemoteStore>(
    cache: &Cache<F>,
    remotes: &[Remote<R>],
    tenants: &[Tenant],
    key: &Key,
    options: &RemoteOptions,
    ctx: &mut dyn Context,
) -> Result<ChainLookup, CacheError> {
    let local = cache.lookup_status(key)?;
    let mut report = ChainLookup {
        found: None,
        local,
        misses: Vec::new(),
        failures: Vec::new(),
    };
    if local.is_hit() {
        report.found = Some(Found::Local);
        return Ok(report);
    }
    for (index, remote) in remotes.iter().enumerate() {
        for tenant in tenants {
            match pull(cache, remote, tenant, key, options, ctx) {
                Ok(PullOutcome::Miss(miss)) => report.misses.push((index, tenant.clone(), miss)),
                Ok(outcome) => {
                    report.found = Some(Found::Remote {
                        index,
                        label: remote.label.clone(),
                        tenant: tenant.clone(),
                        outcome,
                    });
                    return Ok(report);
                }
                Err(PullError::Remote(failure)) => {
                    report.failures.push(failure);
                    break;
                }
                Err(PullError::Local(error)) => return Err(error),
            }
        }
    }
    Ok(report)
}

/// REMOTE-2: pushes the local entry of `key` to every writable remote
/// under `tenant`, in order: the run's own tenant, the only one it writes
/// (REMOTE-11). Read-only remotes are skipped.
pub fn push<F: Filesystem, R: RemoteStore>(
    cache: &Cache<F>,
    remotes: &[Remote<R>],
    tenant: &Tenant,
    key: &Key,
    options: &RemoteOptions,
) -> Result<ChainPush, CacheError> {
    push_holding(cache, remotes, tenant, key, options, HeldContents::none())
}

/// [`push`] right after [`Cache::store_holding`]: the contents the store
/// `held` are inlined from memory, not read back from the local cache
/// (REMOTE-2); what was not held is read back as by [`push`]. The record
/// is the same either way.
pub fn push_holding<F: Filesystem, R: RemoteStore>(
    cache: &Cache<F>,
    remotes: &[Remote<R>],
    tenant: &Tenant,
    key: &Key,
    options: &RemoteOptions,
    held: HeldContents,
) -> Result<ChainPush, CacheError> {
    let mut report = ChainPush {
        pushed: Vec::new(),
        failures: Vec::new(),
    };
    let mut writable = remotes
        .iter()
        .enumerate()
        .filter(|(_, remote)| remote.writable)
        .peekable();
    let Some(&(first, _)) = writable.peek() else {
        return Ok(report);
    };
    // One record for every remote; the held contents are in it now, and
    // not kept beside it while it is sent.
    let outgoing = Outgoing::prepare(cache, tenant, key, options, &held)?;
    drop(held);
    let outgoing = match outgoing {
        Ok(outgoing) => outgoing,
        Err(status) => {
            report.pushed.push((first, PushOutcome::NotLocal(status)));
            return Ok(report);
        }
    };
    for (index, remote) in writable {
        match outgoing.send(cache, remote) {
            Ok(outcome) => {
                let stop = matches!(outcome, PushOutcome::NotLocal(_));
                report.pushed.push((index, outcome));
                if stop {
                    break;
                }
            }
            Err(PullError::Remote(failure)) => report.failures.push(failure),
            Err(PullError::Local(error)) => return Err(error),
        }
    }
    Ok(report)
}

/// Reads the record of `key` under `tenant` from `remote` and, if its
/// signature (with [`RemoteOptions::signing_key`], REMOTE-13) and then
/// the entry verify, downloads the entry into `cache` (REMOTE-1,
/// REMOTE-4). One request on a miss; one more per blob the entry needs
/// (REMOTE-8).
pub fn pull<F: Filesystem, R: RemoteStore>(
    cache: &Cache<F>,
    remote: &Remote<R>,
    tenant: &Tenant,
    key: &Key,
    options: &RemoteOptions,
    ctx: &mut dyn Context,
) -> Result<PullOutcome, PullError> {
    let function = cache.options().hash_function;
    let name = names::record(function, tenant, key);
    let fail = |op: RemoteOp, object: &str, error: Error| {
        PullError::Remote(RemoteFailure {
            remote: remote.label.clone(),
            op,
            object: String::from(object),
            error,
        })
    };
    let reader = match remote.store.get(&name) {
        Ok(Some(reader)) => reader,
        Ok(None) => return Ok(PullOutcome::Miss(RemoteMiss::NoEntry)),
        Err(error) => return Err(fail(RemoteOp::GetRecord, &name, error)),
    };
    let bytes = match read_capped(reader, options.max_record_bytes) {
        Ok(Some(bytes)) => bytes,
        Ok(None) => return Ok(PullOutcome::Miss(RemoteMiss::RecordTooLarge)),
        Err(error) => return Err(fail(RemoteOp::GetRecord, &name, error)),
    };
    let namespace = names::namespace(function);
    let signing_key = options.signing_key.as_ref();
    let record_bytes = match sign::open(&bytes, signing_key, &namespace, tenant, key) {
        Ok(record_bytes) => record_bytes,
        Err(miss) => return Ok(PullOutcome::Miss(RemoteMiss::Signature(miss))),
    };
    let record = match Record::decode(record_bytes) {
        Ok(record) => record,
        Err(error) => return Ok(PullOutcome::Miss(RemoteMiss::BadRecord(error))),
    };
    if record.chapter_revision != CHAPTER_REVISION || record.hash_function != function {
        return Ok(PullOutcome::Miss(RemoteMiss::Schema));
    }
    if record.key != *key {
        return Ok(PullOutcome::Miss(RemoteMiss::OtherKey));
    }
    // SAFE-9: a record lists its outputs sorted, so one pass judges them.
    let mut set = OutputSetCheck::new(cache.options().cache_dir_in_workspace.as_deref());
    for (index, output) in record.outputs.iter().enumerate() {
        if let Err(conflict) = set.check(output.path) {
            return Ok(PullOutcome::Miss(RemoteMiss::ConflictingOutputs {
                index,
                conflict,
            }));
        }
    }
    let mut source = RemoteSource {
        store: &remote.store,
        label: &remote.label,
        function,
        record: &record,
        current: Current::None,
        current_name: String::new(),
        current_hash: Digest([0; 32]),
        blobs_fetched: 0,
        bytes_fetched: bytes.len() as u64,
    };
    match cache.import(&record, &mut source, ctx) {
        Ok(Imported::Written(StoreOutcome::Stored)) => Ok(PullOutcome::Imported {
            blobs_fetched: source.blobs_fetched,
            bytes_fetched: source.bytes_fetched,
        }),
        Ok(Imported::Written(StoreOutcome::AlreadyPresent)) => Ok(PullOutcome::AlreadyLocal),
        Ok(Imported::Written(StoreOutcome::Contended)) => {
            Ok(PullOutcome::Miss(RemoteMiss::Contended))
        }
        Ok(Imported::Rejected(rejection)) => {
            // A blob that is not what its name says is garbage for every
            // reader; removing it lets the next push upload it again
            // instead of trusting the damaged copy (REMOTE-4). Best effort.
            if let Rejection::Mismatch { hash } | Rejection::Unreadable { hash } = rejection
                && remote.writable
                && record.inline_content(&hash).is_none()
            {
                let _ = remote.store.delete(&names::blob(function, &hash));
            }
            Ok(PullOutcome::Miss(RemoteMiss::Content(rejection)))
        }
        Ok(Imported::Failed(failure)) => Err(PullError::Remote(failure)),
        Err(error) => Err(PullError::Local(error)),
    }
}

/// Reads an object whole, or `None` if it holds more than `cap` bytes;
/// memory grows with what is read, never beyond `cap` (SAFE-1).
fn read_capped<R: RemoteRead>(mut reader: R, cap: u64) -> Result<Option<Vec<u8>>, Error> {
    let cap = usize::try_from(cap).unwrap_or(usize::MAX);
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let n = reader.read(&mut chunk)?;
        if n == 0 {
            return Ok(Some(bytes));
        }
        if bytes.len().saturating_add(n) > cap {
            return Ok(None);
        }
        bytes.extend_from_slice(chunk.get(..n).unwrap_or_default());
    }
}

/// The content being read by a [`RemoteSource`].
enum Current<'r, R: RemoteStore + 'r> {
    None,
    Inline(&'r [u8]),
    Blob(BlobReader<R::Reader>),
    /// A codec-1 blob, through the host's decoder (REMOTE-6).
    Zstd(alloc::boxed::Box<dyn RemoteRead + 'r>),
}

/// A record's contents: inline bytes, else the remote's blobs.
struct RemoteSource<'r, R: RemoteStore> {
    store: &'r R,
    label: &'r str,
    function: HashFunction,
    record: &'r Record<'r>,
    current: Current<'r, R>,
    current_name: String,
    current_hash: Digest,
    blobs_fetched: usize,
    bytes_fetched: u64,
}

impl<R: RemoteStore> RemoteSource<'_, R> {
    fn failure(&self, error: Error) -> RemoteFailure {
        RemoteFailure {
            remote: String::from(self.label),
            op: RemoteOp::GetBlob,
            object: self.current_name.clone(),
            error,
        }
    }
}

impl<R: RemoteStore> ContentSource for RemoteSource<'_, R> {
    type Error = RemoteFailure;

    fn open(&mut self, hash: &Digest, size: u64) -> Result<(), SourceError<RemoteFailure>> {
        if let Some(bytes) = self.record.inline_content(hash) {
            self.current = Current::Inline(bytes);
            return Ok(());
        }
        self.current = Current::None;
        self.current_name = names::blob(self.function, hash);
        self.current_hash = *hash;
        let reader = match self.store.get(&self.current_name) {
            Ok(Some(reader)) => reader,
            Ok(None) => return Err(SourceError::Rejected(Rejection::Missing { hash: *hash })),
            Err(error) => return Err(SourceError::Failed(self.failure(error))),
        };
        match BlobReader::open(reader) {
            Ok(reader) if reader.codec() == Codec::Zstd => {
                let Some(decoder) = self
                    .store
                    .zstd_decoder(alloc::boxed::Box::new(reader), size)
                else {
                    return Err(SourceError::Rejected(Rejection::Unsupported {
                        hash: *hash,
                    }));
                };
                self.blobs_fetched += 1;
                self.current = Current::Zstd(decoder);
                Ok(())
            }
            Ok(reader) => {
                self.blobs_fetched += 1;
                self.current = Current::Blob(reader);
                Ok(())
            }
            Err(BlobError::Remote(error)) => Err(SourceError::Failed(self.failure(error))),
            Err(_) => Err(SourceError::Rejected(Rejection::Unreadable { hash: *hash })),
        }
    }

    fn read(&mut self, buf: &mut [u8]) -> Result<usize, SourceError<RemoteFailure>> {
        let read = match &mut self.current {
            Current::None => return Ok(0),
            Current::Inline(bytes) => {
                let n = buf.len().min(bytes.len());
                let (head, tail) = bytes.split_at(n);
                buf.get_mut(..n).unwrap_or_default().copy_from_slice(head);
                *bytes = tail;
                return Ok(n);
            }
            Current::Blob(reader) => reader.read(buf),
            Current::Zstd(reader) => reader.read(buf),
        };
        match read {
            Ok(n) => {
                self.bytes_fetched = self.bytes_fetched.saturating_add(n as u64);
                Ok(n)
            }
            // A frame that does not decode is a damaged blob, like one of
            // other content (REMOTE-4), not a failing remote.
            Err(error) if error.kind == super::ErrorKind::Corrupt => {
                Err(SourceError::Rejected(Rejection::Unreadable {
                    hash: self.current_hash,
                }))
            }
            Err(error) => Err(SourceError::Failed(self.failure(error))),
        }
    }
}

/// One distinct content of a local entry, and where the local cache keeps
/// it.
pub(super) struct LocalContent {
    pub(super) hash: Digest,
    pub(super) size: u64,
    pub(super) path: layout::LayoutPath,
}

/// Pushes the local entry of `key` to `remote` under `tenant` (REMOTE-2):
/// the blobs the remote lacks, each checked against its hash as it is
/// read from the local cache, then the record. A content in `held` is
/// inlined from there instead of being read back ([`push_holding`]).
/// Writes nothing to a remote that is not writable.
pub fn push_one<F: Filesystem, R: RemoteStore>(
    cache: &Cache<F>,
    remote: &Remote<R>,
    tenant: &Tenant,
    key: &Key,
    options: &RemoteOptions,
    held: &HeldContents,
) -> Result<PushOutcome, PushError> {
    if !remote.writable {
        return Ok(PushOutcome::ReadOnly);
    }
    match Outgoing::prepare(cache, tenant, key, options, held).map_err(PullError::Local)? {
        Ok(outgoing) => outgoing.send(cache, remote),
        Err(status) => Ok(PushOutcome::NotLocal(status)),
    }
}

/// A local entry made ready for any number of remotes: its record,
/// encoded (and signed) once, since it is the same for each, and the
/// contents that go as blobs.
struct Outgoing {
    /// The record's object name.
    name: String,
    /// The record's bytes.
    record: Vec<u8>,
    /// Every distinct content the record does not carry inline.
    blobs: Vec<LocalContent>,
    /// The hash function of the entry, naming the blobs.
    function: HashFunction,
}

impl Outgoing {
    /// Reads the local entry of `key` and encodes its record for
    /// `tenant`, inlining the smallest contents while they fit
    /// (REMOTE-7), from `held` where it has them, else read back and
    /// checked. `Ok(Err(status))` when the local entry is not there to
    /// push, or is damaged.
    fn prepare<F: Filesystem>(
        cache: &Cache<F>,
        tenant: &Tenant,
        key: &Key,
        options: &RemoteOptions,
        held: &HeldContents,
    ) -> Result<Result<Outgoing, LookupStatus>, CacheError> {
        let function = cache.options().hash_function;
        let (status, manifest) = cache.lookup_manifest(key)?;
        let Some(manifest_bytes) = manifest else {
            return Ok(Err(status));
        };
        let Ok(manifest) = Manifest::parse(&manifest_bytes) else {
            return Ok(Err(LookupStatus::MissCorrupt));
        };

        // Every distinct content, outputs first: an output's blob serves a
        // stream of equal bytes too.
        let mut paths: Vec<(String, u32, u64, Digest)> =
            Vec::with_capacity(manifest.output_count());
        let mut contents: Vec<LocalContent> = Vec::new();
        for output in manifest.outputs() {
            contents.push(LocalContent {
                hash: output.content_hash,
                size: output.size,
                path: layout::blob(key, &output.content_hash),
            });
            paths.push((
                String::from(output.path.as_str()),
                output.mode,
                output.size,
                output.content_hash,
            ));
        }
        let tail = manifest.tail;
        contents.push(LocalContent {
            hash: tail.stdout_hash,
            size: tail.stdout_len,
            path: layout::stdout(key),
        });
        contents.push(LocalContent {
            hash: tail.stderr_hash,
            size: tail.stderr_len,
            path: layout::stderr(key),
        });
        // Stable: among equal hashes the first (an output's blob) stays.
        contents.sort_by_key(|content| content.hash.0);
        contents.dedup_by(|later, first| later.hash == first.hash);

        // Inline the smallest contents while they fit (REMOTE-7).
        let mut by_size: Vec<usize> = (0..contents.len()).collect();
        by_size.sort_by_key(|&at| contents.get(at).map_or(0, |c| c.size));
        let mut inline_bytes: Vec<Option<Cow<'_, [u8]>>> = contents.iter().map(|_| None).collect();
        let mut budget = options.inline_budget_bytes;
        let mut buffer = alloc::vec![0u8; cache.options().copy_buffer_bytes.max(4096)];
        for at in by_size {
            let Some(content) = contents.get(at) else {
                continue;
            };
            if content.size > options.inline_max_bytes || content.size > budget {
                break;
            }
            budget -= content.size;
            let bytes = match held.get(&content.hash) {
                Some(bytes) if bytes.len() as u64 == content.size => Cow::Borrowed(bytes),
                _ => {
                    let mut bytes = Vec::new();
                    if !read_local(cache, content, &mut bytes, &mut buffer)? {
                        return Ok(Err(LookupStatus::MissCorrupt));
                    }
                    Cow::Owned(bytes)
                }
            };
            if let Some(slot) = inline_bytes.get_mut(at) {
                *slot = Some(bytes);
            }
        }

        let stream = |hash: Digest, size: u64| StreamRef { size, hash };
        let encoded = Record {
            chapter_revision: manifest.head.chapter_revision,
            hash_function: function,
            key: *key,
            created_at_unix: tail.created_at_unix,
            stdout: stream(tail.stdout_hash, tail.stdout_len),
            stderr: stream(tail.stderr_hash, tail.stderr_len),
            outputs: paths
                .iter()
                .map(|(path, mode, size, hash)| RecordOutput {
                    path,
                    mode: *mode,
                    size: *size,
                    hash: *hash,
                })
                .collect(),
            inline: contents
                .iter()
                .zip(&inline_bytes)
                .filter_map(|(content, bytes)| {
                    bytes.as_deref().map(|bytes| InlineContent {
                        hash: content.hash,
                        bytes,
                    })
                })
                .collect(),
        }
        .encode();
        let Ok(encoded) = encoded else {
            // The local manifest holds what a record cannot (unsorted or
            // repeated paths from a foreign writer): not pushed.
            return Ok(Err(LookupStatus::MissCorrupt));
        };
        let record = match &options.signing_key {
            Some(signing_key) => {
                signing_key.sign(&names::namespace(function), tenant, key, &encoded)
            }
            None => encoded,
        };
        let blobs = contents
            .into_iter()
            .zip(&inline_bytes)
            .filter(|(_, inline)| inline.is_none())
            .map(|(content, _)| content)
            .collect();
        Ok(Ok(Outgoing {
            name: names::record(function, tenant, key),
            record,
            blobs,
            function,
        }))
    }

    /// Uploads the blobs `remote` lacks, each checked against its hash as
    /// it is read from the local cache, then the record, in one request
    /// (REMOTE-8).
    fn send<F: Filesystem, R: RemoteStore>(
        &self,
        cache: &Cache<F>,
        remote: &Remote<R>,
    ) -> Result<PushOutcome, PushError> {
        let fail = |op: RemoteOp, object: &str, error: Error| {
            PullError::Remote(RemoteFailure {
                remote: remote.label.clone(),
                op,
                object: String::from(object),
                error,
            })
        };
        let mut blobs_uploaded = 0;
        let mut blobs_present = 0;
        let mut bytes_sent: u64 = 0;
        let mut buffer = Vec::new();
        for content in &self.blobs {
            let name = names::blob(self.function, &content.hash);
            match remote.store.head(&name) {
                Ok(Some(_)) => {
                    blobs_present += 1;
                    continue;
                }
                Ok(None) => {}
                Err(error) => return Err(fail(RemoteOp::HeadBlob, &name, error)),
            }
            if buffer.is_empty() {
                buffer = alloc::vec![0u8; cache.options().copy_buffer_bytes.max(4096)];
            }
            match super::upload::upload_blob(cache, &remote.store, &name, content, &mut buffer) {
                Ok(Some(sent)) => bytes_sent = bytes_sent.saturating_add(sent),
                Ok(None) => return Ok(PushOutcome::NotLocal(LookupStatus::MissCorrupt)),
                Err(super::upload::UploadError::Remote(error)) => {
                    return Err(fail(RemoteOp::PutBlob, &name, error));
                }
                Err(super::upload::UploadError::Local(error)) => {
                    return Err(PullError::Local(error));
                }
            }
            blobs_uploaded += 1;
        }
        remote
            .store
            .put_object(&self.name, &self.record)
            .map_err(|error| fail(RemoteOp::PutRecord, &self.name, error))?;
        bytes_sent = bytes_sent.saturating_add(self.record.len() as u64);
        Ok(PushOutcome::Pushed {
            blobs_uploaded,
            blobs_present,
            bytes_sent,
        })
    }
}

/// Streams the local file of `content` into `sink` through `buffer`,
/// hashing it: `Ok(false)` when its bytes are not those of the manifest
/// (a local entry damaged since it was stored is not pushed).
pub(super) fn read_local<F: Filesystem, W: crate::fs::Write>(
    cache: &Cache<F>,
    content: &LocalContent,
    mut sink: W,
    buffer: &mut [u8],
) -> Result<bool, CacheError> {
    let io = |step, error| CacheError::Io {
        step,
        root: Root::Cache,
        path: String::from(content.path.as_str()),
        source: error,
    };
    let mut reader = match cache.filesystem().open_file(Root::Cache, &content.path) {
        Ok(reader) => reader,
        Err(error) if error.kind == crate::fs::ErrorKind::NotFound => return Ok(false),
        Err(error) => return Err(io(crate::cache::Step::Open, error)),
    };
    let mut hasher = Hasher::new(cache.options().hash_function);
    let mut total: u64 = 0;
    loop {
        let n = reader
            .read(buffer)
            .map_err(|error| io(crate::cache::Step::Read, error))?;
        if n == 0 {
            break;
        }
        total = total.saturating_add(n as u64);
        if total > content.size {
            return Ok(false);
        }
        let chunk = buffer.get(..n).unwrap_or_default();
        hasher.update(chunk);
        sink.write_all(chunk)
            .map_err(|error| io(crate::cache::Step::Write, error))?;
    }
    Ok(total == content.size && hasher.finalize() == content.hash)
}

/// A remote writer as the core's `fs::Write`, keeping the remote's own
/// error for the message.
pub(super) struct RemoteSink<'w, W: RemoteWrite> {
    pub(super) writer: &'w mut W,
    pub(super) error: Option<Error>,
}

impl<W: RemoteWrite> crate::fs::Write for RemoteSink<'_, W> {
    fn write(&mut self, buf: &[u8]) -> Result<usize, crate::fs::Error> {
        match self.writer.write_all(buf) {
            Ok(()) => Ok(buf.len()),
            Err(error) => {
                self.error = Some(error);
                Err(crate::fs::Error::new(crate::fs::ErrorKind::Other))
            }
        }
    }
}
