//! Writing one blob object (REMOTE-6): zstd when the host compresses and
//! the frame comes out smaller than the raw bytes, raw otherwise.
//!
//! The content is read from the local cache and hashed on the way, both
//! times it is read (once into the compressor, once more raw when the
//! frame is not smaller), so a local file damaged since it was stored is
//! never uploaded. The compressor spools its frame on the host's side; it
//! is abandoned as soon as the frame reaches the raw size or, after the
//! first [`PROBE_BYTES`], saves too little ([`gives_up`]), so an
//! incompressible blob costs at most 8 MiB of compression and spool.

use alloc::boxed::Box;

use super::blob::{self, Codec};
use super::chain::{LocalContent, RemoteSink, read_local};
use super::{Error, RemoteRead, RemoteStore, RemoteWrite, ZstdEncoder};
use crate::cache::{Cache, CacheError};
use crate::fs::Filesystem;

/// Why a blob was not written.
pub(super) enum UploadError {
    /// The remote failed.
    Remote(Error),
    /// The local cache failed.
    Local(CacheError),
}

/// How much of a content is compressed before the frame is judged
/// (REMOTE-6): enough that the bytes the compressor still holds back (one
/// zstd block, 128 KiB) cannot make incompressible bytes look compressible.
pub(crate) const PROBE_BYTES: u64 = 8 * 1024 * 1024;

/// Whether compression is given up on (REMOTE-6), after `consumed` raw
/// bytes of a content of `raw_size` made a frame of `compressed` bytes so
/// far: as soon as the frame reaches the raw size, and once
/// [`PROBE_BYTES`] were fed, unless the frame saves at least 1/32 of
/// them (about 3 %). So an incompressible blob costs its first 8 MiB of
/// compression, not all of it, before it is sent raw.
pub(crate) fn gives_up(consumed: u64, compressed: u64, raw_size: u64) -> bool {
    compressed >= raw_size || (consumed >= PROBE_BYTES && compressed >= consumed - consumed / 32)
}

/// The compressor as the core's `fs::Write`: stops the copy (with an
/// error) once [`gives_up`] says so.
struct EncoderSink {
    encoder: Box<dyn ZstdEncoder>,
    raw_size: u64,
    consumed: u64,
    stopped: bool,
}

impl crate::fs::Write for EncoderSink {
    fn write(&mut self, buf: &[u8]) -> Result<usize, crate::fs::Error> {
        let stop = || crate::fs::Error::new(crate::fs::ErrorKind::Other);
        self.consumed = self.consumed.saturating_add(buf.len() as u64);
        if self.encoder.write_all(buf).is_err()
            || gives_up(self.consumed, self.encoder.compressed_len(), self.raw_size)
        {
            self.stopped = true;
            return Err(stop());
        }
        Ok(buf.len())
    }
}

/// Writes `content` to `store` as the blob `name`: `Ok(Some(bytes sent))`,
/// or `Ok(None)` when the local file is not the content its manifest
/// names (nothing becomes visible then: the writer is dropped unfinished).
pub(super) fn upload_blob<F: Filesystem, R: RemoteStore>(
    cache: &Cache<F>,
    store: &R,
    name: &str,
    content: &LocalContent,
    buffer: &mut [u8],
) -> Result<Option<u64>, UploadError> {
    if let Some(encoder) = store.zstd_encoder(content.size) {
        let mut sink = EncoderSink {
            encoder,
            raw_size: content.size,
            consumed: 0,
            stopped: false,
        };
        match read_local(cache, content, &mut sink, buffer) {
            Ok(true) => {
                if let Ok((frame_len, frame)) = sink.encoder.finish()
                    && frame_len < content.size
                    && let Some(sent) = put_frame(store, name, frame_len, frame)?
                {
                    return Ok(Some(sent));
                }
            }
            Ok(false) => return Ok(None),
            // The compressor gave up or failed: the raw bytes are sent.
            Err(_) if sink.stopped => {}
            Err(error) => return Err(UploadError::Local(error)),
        }
    }
    put_raw(cache, store, name, content, buffer)
}

/// Starts the blob object `name` of `object_len` bytes and writes its
/// header.
fn start_blob<R: RemoteStore>(
    store: &R,
    name: &str,
    object_len: u64,
    codec: Codec,
) -> Result<R::Writer, UploadError> {
    let mut writer = store
        .put(name, Some(object_len))
        .map_err(UploadError::Remote)?;
    writer
        .write_all(&blob::header(codec))
        .map_err(UploadError::Remote)?;
    Ok(writer)
}

/// Sends a finished frame as a codec-1 blob; `Ok(None)` when the spool
/// could not be read back (the raw bytes are sent instead).
fn put_frame<R: RemoteStore>(
    store: &R,
    name: &str,
    frame_len: u64,
    mut frame: Box<dyn RemoteRead>,
) -> Result<Option<u64>, UploadError> {
    let object_len = frame_len + blob::HEADER_LEN as u64;
    let mut writer = start_blob(store, name, object_len, Codec::Zstd)?;
    let mut chunk = [0u8; 16 * 1024];
    let mut copied: u64 = 0;
    loop {
        let Ok(n) = frame.read(&mut chunk) else {
            // Dropped unfinished: nothing appears (REMOTE-6).
            return Ok(None);
        };
        if n == 0 {
            break;
        }
        copied = copied.saturating_add(n as u64);
        writer
            .write_all(chunk.get(..n).unwrap_or_default())
            .map_err(UploadError::Remote)?;
    }
    if copied != frame_len {
        return Ok(None);
    }
    writer.finish().map_err(UploadError::Remote)?;
    Ok(Some(object_len))
}

/// Sends the content as a codec-0 blob.
fn put_raw<F: Filesystem, R: RemoteStore>(
    cache: &Cache<F>,
    store: &R,
    name: &str,
    content: &LocalContent,
    buffer: &mut [u8],
) -> Result<Option<u64>, UploadError> {
    let object_len = content.size + blob::HEADER_LEN as u64;
    let mut writer = start_blob(store, name, object_len, Codec::Raw)?;
    let mut sink = RemoteSink {
        writer: &mut writer,
        error: None,
    };
    match read_local(cache, content, &mut sink, buffer) {
        Ok(true) => {}
        // The writer is dropped unfinished: nothing appears (REMOTE-6).
        Ok(false) => return Ok(None),
        Err(error) => {
            return Err(match sink.error {
                Some(remote_error) => UploadError::Remote(remote_error),
                None => UploadError::Local(error),
            });
        }
    }
    writer.finish().map_err(UploadError::Remote)?;
    Ok(Some(object_len))
}
