//! REMOTE-1's backfill: an entry another store holds, written into this
//! cache exactly as a store writes one (OP-2), with every content verified
//! on the way in (REMOTE-4).
//!
//! The entry is described by a remote record; its contents come from a
//! [`ContentSource`] (the record's inline bytes, or the remote's blobs).
//! Each content is copied into the scratch entry through a fixed buffer
//! while it is hashed and counted; the copy stops as soon as it holds more
//! bytes than the record says, and a content whose hash or size differs,
//! or that the source does not have, declines the whole entry: nothing is
//! published and the scratch directory is removed ([`Cache::write_entry`]).
//! Outputs that share a content share one blob (DISK-4), fetched once.

use alloc::collections::BTreeSet;
use core::ops::ControlFlow;

use super::store::{EntryParts, StoreOutcome};
use super::{Cache, CacheError, Context, Durability, Step, io};
use crate::fs::{FileWriter, Filesystem, Root, Write};
use crate::hash::{Digest, Hasher};
use crate::layout;
use crate::manifest::{ManifestHead, ManifestTail};
use crate::remote::record::Record;

/// Why a content cannot enter the cache: it says something about the
/// entry (a miss), not about the machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rejection {
    /// The source does not have the content.
    Missing {
        /// Its content hash.
        hash: Digest,
    },
    /// The source has the content in a form it cannot read (a damaged or
    /// foreign blob header).
    Unreadable {
        /// Its content hash.
        hash: Digest,
    },
    /// The bytes read do not hash to the content hash, or are not of the
    /// recorded size.
    Mismatch {
        /// The content hash the record names.
        hash: Digest,
    },
    /// The source has the content in a codec this host does not decode
    /// (REMOTE-6): nothing is wrong with it, so it is left alone.
    Unsupported {
        /// Its content hash.
        hash: Digest,
    },
}

/// What opening a content found.
pub(crate) enum SourceError<E> {
    /// The content cannot enter the cache.
    Rejected(Rejection),
    /// The source failed.
    Failed(E),
}

/// Where the contents of an imported entry come from.
pub(crate) trait ContentSource {
    /// How the source fails.
    type Error;

    /// Starts reading the content `hash`, of `size` bytes by the record.
    fn open(&mut self, hash: &Digest, size: u64) -> Result<(), SourceError<Self::Error>>;

    /// Reads the next bytes of the content last opened; `Ok(0)` at its end.
    /// A content found damaged on the way (a frame that does not decode)
    /// is [`SourceError::Rejected`].
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, SourceError<Self::Error>>;
}

/// How an import ended.
pub(crate) enum Imported<E> {
    /// Published, or kept a valid entry that was already there, or lost
    /// to a concurrent process (OP-2's outcomes).
    Written(StoreOutcome),
    /// A content failed verification or was missing: nothing entered the
    /// cache.
    Rejected(Rejection),
    /// The source failed: nothing entered the cache.
    Failed(E),
}

impl<F: Filesystem> Cache<F> {
    /// Writes the entry `record` describes into this cache, every content
    /// taken from `source` and verified (REMOTE-1, REMOTE-4). The caller
    /// has checked that the record's revision, function and key are the
    /// ones wanted. Errors are the local cache's own.
    pub(crate) fn import<S: ContentSource>(
        &self,
        record: &Record<'_>,
        source: &mut S,
        ctx: &mut dyn Context,
    ) -> Result<Imported<S::Error>, CacheError> {
        if self.lookup_status(&record.key)?.is_hit() {
            return Ok(Imported::Written(StoreOutcome::AlreadyPresent));
        }
        let written = self.write_entry(&record.key, ctx, |scratch, durability, _ctx| {
            self.fill_from(record, source, scratch, durability)
        })?;
        Ok(match written {
            Ok(outcome) => Imported::Written(outcome),
            Err(SourceError::Rejected(rejection)) => Imported::Rejected(rejection),
            Err(SourceError::Failed(error)) => Imported::Failed(error),
        })
    }

    /// Writes blobs, streams and manifest of `record` into `scratch`.
    fn fill_from<S: ContentSource>(
        &self,
        record: &Record<'_>,
        source: &mut S,
        scratch: &str,
        durability: Durability,
    ) -> Result<ControlFlow<SourceError<S::Error>>, CacheError> {
        let mut buffer = self.buffer();
        let head = ManifestHead {
            chapter_revision: record.chapter_revision,
            hash_function: record.hash_function,
            key: record.key,
        };
        let EntryParts {
            blobs,
            partial,
            manifest_path,
            mut manifest,
            blobs_dir,
        } = self.begin_entry(scratch, &head, !record.outputs.is_empty())?;
        let mut fetched: BTreeSet<[u8; 32]> = BTreeSet::new();
        for output in &record.outputs {
            if !fetched.contains(&output.hash.0) {
                let mut file = self.fs.create_new_file(Root::Cache, &partial).map_err(io(
                    Step::Create,
                    Root::Cache,
                    &partial,
                ))?;
                if let ControlFlow::Break(declined) = self.fetch_into(
                    source,
                    (&output.hash, output.size),
                    (&mut file, &partial),
                    &mut buffer,
                )? {
                    return Ok(ControlFlow::Break(declined));
                }
                if durability == Durability::PerFile {
                    file.sync().map_err(io(Step::Sync, Root::Cache, &partial))?;
                }
                drop(file);
                if let Some(dir) = &blobs_dir {
                    self.name_blob(dir, &output.hash, (&blobs, &partial))?;
                }
                fetched.insert(output.hash.0);
            }
            manifest
                .output(output.path, &output.hash, output.size, output.mode)
                .map_err(io(Step::Write, Root::Cache, &manifest_path))?;
        }

        for (name, stream) in [
            (layout::STDOUT_FILE, &record.stdout),
            (layout::STDERR_FILE, &record.stderr),
        ] {
            let path = layout::join(scratch, name);
            let mut file = self.fs.create_new_file(Root::Cache, &path).map_err(io(
                Step::Create,
                Root::Cache,
                &path,
            ))?;
            if let ControlFlow::Break(declined) = self.fetch_into(
                source,
                (&stream.hash, stream.size),
                (&mut file, &path),
                &mut buffer,
            )? {
                return Ok(ControlFlow::Break(declined));
            }
            if durability == Durability::PerFile {
                file.sync().map_err(io(Step::Sync, Root::Cache, &path))?;
            }
        }

        let tail = ManifestTail {
            stdout_len: record.stdout.size,
            stderr_len: record.stderr.size,
            stdout_hash: record.stdout.hash,
            stderr_hash: record.stderr.hash,
            exit_status: 0,
            created_at_unix: record.created_at_unix,
        };
        let manifest_file =
            manifest
                .finish(&tail)
                .map_err(io(Step::Write, Root::Cache, &manifest_path))?;
        self.make_durable(manifest_file, &manifest_path, (&blobs, scratch), durability)?;
        Ok(ControlFlow::Continue(()))
    }

    /// Copies the content `hash` of `size` bytes from `source` into `file`
    /// (at `path`, for errors) through `buffer`, hashing and counting it;
    /// declines when the source lacks it, fails, or hands over other bytes.
    /// Never writes more than `size` bytes plus one buffer.
    fn fetch_into<S: ContentSource>(
        &self,
        source: &mut S,
        (hash, size): (&Digest, u64),
        (file, path): (&mut F::Writer, &str),
        buffer: &mut [u8],
    ) -> Result<ControlFlow<SourceError<S::Error>>, CacheError> {
        if let Err(declined) = source.open(hash, size) {
            return Ok(ControlFlow::Break(declined));
        }
        let mut hasher = Hasher::new(self.options.hash_function);
        let mut total: u64 = 0;
        let mismatch =
            ControlFlow::Break(SourceError::Rejected(Rejection::Mismatch { hash: *hash }));
        loop {
            let n = match source.read(buffer) {
                Ok(n) => n,
                Err(error) => return Ok(ControlFlow::Break(error)),
            };
            if n == 0 {
                break;
            }
            total = total.saturating_add(n as u64);
            if total > size {
                return Ok(mismatch);
            }
            let chunk = buffer.get(..n).unwrap_or_default();
            hasher.update(chunk);
            file.write_all(chunk)
                .map_err(io(Step::Write, Root::Cache, path))?;
        }
        if total != size || hasher.finalize() != *hash {
            return Ok(mismatch);
        }
        Ok(ControlFlow::Continue(()))
    }
}
