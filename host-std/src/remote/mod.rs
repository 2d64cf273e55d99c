//! The native remote stores: `cachet_core::remote::RemoteStore` over
//! OpenDAL, for the three kinds of remote the command line names
//! (docs/spec.md REMOTE-9): a shared directory, an S3-compatible bucket,
//! and a WebDAV server. No signing or retry code of cachet's own; the only
//! HTTP request cachet builds itself is the streamed WebDAV PUT.
//!
//! OpenDAL is asynchronous; every store here is driven from one
//! current-thread tokio runtime, shared by the stores of one command and
//! entered only for the length of each call, so a remote costs no thread.
//! Reads stream chunk by chunk and writes are sent as they come (S3 in
//! multipart chunks of 8 MiB; WebDAV as one streamed PUT of our own,
//! because OpenDAL 0.59.5's WebDAV writer buffers the whole object), so a
//! blob is never held in memory whole.
//!
//! Codec 1 (zstd, REMOTE-6) is [`zstd`]'s streaming encoder and decoder:
//! a blob is compressed at level [`ZSTD_LEVEL`] into an anonymous
//! temporary file (the spool) while the core reads it from the local
//! cache, and the frame is sent from there when it is smaller than the
//! raw bytes; decoding keeps a window no larger than the content's
//! recorded size.
//!
//! Time limits are the core's (`FaultPolicy`, REMOTE-15): the HTTP client
//! gives up on a connection after the connect timeout, and every request
//! and transfer step ends by the deadline the core sets
//! ([`TimeLimited`]) and within the remote timeout of its start.
//! Retries, the breaker and the statistics are the core's too
//! (`cachet_core::remote::guard`); this module only applies the limits and
//! says what kind of failure each error is.

use alloc::sync::Arc;
use core::time::Duration;
use std::io::{self, Read, Seek, Write};
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use bytes::Bytes;
use cachet_cli::remote::{RemoteConfig, RemoteLocation, RemoteSpec};
use cachet_core::remote::breaker::BreakerBook;
use cachet_core::remote::guard::{Pacer, TimeLimited};
use cachet_core::remote::{
    Error, ErrorKind, ObjectMeta, Remote, RemoteRead, RemoteStore, RemoteWrite, ZstdEncoder,
};
use core::ops::ControlFlow;
use futures_util::TryStreamExt;
use opendal::{Operator, services};
use tokio::runtime::Runtime;

/// The zstd level of blobs: zstd's default, fast enough to keep up with a
/// network link and most of the gain of the higher levels on build
/// outputs.
pub const ZSTD_LEVEL: i32 = 3;

mod breakers;
pub mod tier;
mod webdav;

/// Multipart chunk of S3 uploads.
const UPLOAD_CHUNK: usize = 8 * 1024 * 1024;

/// Where a shared directory's writes are staged before they are renamed
/// into place, inside the directory so the rename stays on its filesystem
/// (REMOTE-6: no reader ever sees a partial object).
pub const DIRECTORY_STAGING: &str = ".cachet-staging";

/// The instant [`SystemPacer`] counts its milliseconds from.
fn origin() -> Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    *ORIGIN.get_or_init(Instant::now)
}

/// The host's [`Pacer`]: the monotonic clock and `thread::sleep`.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemPacer;

impl Pacer for SystemPacer {
    fn now_ms(&self) -> u64 {
        u64::try_from(origin().elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn sleep_ms(&self, ms: u64) {
        std::thread::sleep(Duration::from_millis(ms));
    }
}

/// When the requests of one remote must end: the core's deadline (in
/// [`SystemPacer`] time) and the longest any one may take.
#[derive(Debug)]
struct Limits {
    deadline_ms: Mutex<Option<u64>>,
    request_timeout: Duration,
}

impl Limits {
    /// Runs `future` on `runtime`, ending it with [`ErrorKind::TimedOut`]
    /// at the deadline or after the request timeout, whichever is first.
    fn run<T>(
        &self,
        runtime: &Runtime,
        future: impl Future<Output = Result<T, Error>>,
    ) -> Result<T, Error> {
        let deadline = self.deadline_ms.lock().map_or(None, |deadline| *deadline);
        let mut limit = self.request_timeout;
        if let Some(deadline) = deadline {
            let left = Duration::from_millis(deadline.saturating_sub(SystemPacer.now_ms()));
            limit = limit.min(left);
        }
        runtime
            .block_on(async { tokio::time::timeout(limit, future).await })
            .unwrap_or_else(|_| {
                Err(Error::new(
                    ErrorKind::TimedOut,
                    format!("no answer within {:.1} s", limit.as_secs_f64()),
                ))
            })
    }
}

/// One remote store over OpenDAL.
#[derive(Clone, Debug)]
pub struct OpendalRemote {
    operator: Operator,
    runtime: Arc<Runtime>,
    /// Streaming PUTs, for a WebDAV remote.
    webdav: Option<webdav::WebdavPut>,
    limits: Arc<Limits>,
}

impl TimeLimited for OpendalRemote {
    fn set_deadline(&self, deadline_ms: Option<u64>) {
        if let Ok(mut deadline) = self.limits.deadline_ms.lock() {
            *deadline = deadline_ms;
        }
    }
}

/// Why a remote could not even be set up; reported like any remote
/// failure (REMOTE-3).
#[derive(Debug)]
pub struct SetupError {
    /// The remote's URL.
    pub url: String,
    /// What went wrong.
    pub error: Error,
}

impl core::fmt::Display for SetupError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "remote {}: could not be set up: {}; it is skipped",
            self.url, self.error
        )
    }
}

impl core::error::Error for SetupError {}

/// The stores of `config`, in lookup order, with the ones that could not
/// be set up reported instead of returned. `env` looks up a variable (S3
/// credentials).
pub fn open_remotes(
    config: &RemoteConfig,
    env: &dyn Fn(&str) -> Option<String>,
) -> (Vec<Remote<OpendalRemote>>, Vec<SetupError>) {
    let mut remotes = Vec::new();
    let mut failures = Vec::new();
    if config.remotes.is_empty() {
        return (remotes, failures);
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => Arc::new(runtime),
        Err(error) => {
            for spec in &config.remotes {
                failures.push(SetupError {
                    url: spec.url.clone(),
                    error: Error::new(ErrorKind::Other, error.to_string()),
                });
            }
            return (remotes, failures);
        }
    };
    let client = http_client(config);
    for spec in &config.remotes {
        let webdav = match (&spec.location, &client) {
            (RemoteLocation::Webdav { endpoint, root }, Some(Ok(client))) => {
                Some(Ok(webdav::WebdavPut::new(client.clone(), endpoint, root)))
            }
            (RemoteLocation::Webdav { .. }, Some(Err(error))) => Some(Err(Error::new(
                ErrorKind::Config,
                format!("the HTTP client could not be built: {error}"),
            ))),
            _ => None,
        };
        let transport = match &client {
            Some(Ok(client)) => Some(opendal::HttpTransporter::new(
                opendal_http_transport_reqwest::ReqwestTransport::new(client.clone()),
            )),
            _ => None,
        };
        match (operator(spec, env, &transport), webdav.transpose()) {
            (Ok(operator), Ok(webdav)) => remotes.push(Remote {
                store: OpendalRemote {
                    operator,
                    runtime: Arc::clone(&runtime),
                    webdav,
                    limits: Arc::new(Limits {
                        deadline_ms: Mutex::new(None),
                        request_timeout: Duration::from_millis(config.policy.remote_timeout_ms),
                    }),
                },
                writable: !config.read_only,
                label: spec.url.clone(),
            }),
            (Err(error), _) | (_, Err(error)) => failures.push(SetupError {
                url: spec.url.clone(),
                error,
            }),
        }
    }
    (remotes, failures)
}

/// The HTTP client every HTTP remote of a command shares (OpenDAL's
/// requests and the streamed WebDAV PUTs), with the policy's connect
/// timeout (REMOTE-15); `None` when no remote speaks HTTP. If it cannot be
/// built, S3 remotes fall back to OpenDAL's default client (the request
/// time limits still hold) and WebDAV remotes cannot be set up.
///
/// Trust roots are loaded only when some remote is reached over https:
/// the platform's store reads every certificate under `SSL_CERT_DIR`,
/// several milliseconds that a plain-http remote, whose miss is one
/// request (REMOTE-8), would pay for nothing.
fn http_client(config: &RemoteConfig) -> Option<Result<reqwest::Client, reqwest::Error>> {
    let needs_tls = needs_tls(&config.remotes)?;
    let builder = reqwest::Client::builder()
        .connect_timeout(Duration::from_millis(config.policy.connect_timeout_ms));
    let builder = if needs_tls {
        builder
    } else {
        builder.tls_certs_only(Vec::new())
    };
    Some(builder.build())
}

/// `None` when none of `remotes` speaks HTTP, else whether any is reached
/// over https (an S3 remote without an endpoint is AWS itself, over https).
fn needs_tls(remotes: &[RemoteSpec]) -> Option<bool> {
    let mut endpoints = remotes
        .iter()
        .filter_map(|spec| match &spec.location {
            RemoteLocation::S3 { endpoint, .. } => Some(endpoint.as_deref()),
            RemoteLocation::Webdav { endpoint, .. } => Some(Some(endpoint.as_str())),
            _ => None,
        })
        .peekable();
    endpoints.peek()?;
    Some(endpoints.any(|endpoint| endpoint.is_none_or(|url| !url.starts_with("http://"))))
}

/// The OpenDAL operator of one remote.
fn operator(
    spec: &RemoteSpec,
    env: &dyn Fn(&str) -> Option<String>,
    client: &Option<opendal::HttpTransporter>,
) -> Result<Operator, Error> {
    opendal::install_default();
    let built = match &spec.location {
        RemoteLocation::Directory { path } => {
            let staging = format!("{}/{DIRECTORY_STAGING}", path.trim_end_matches('/'));
            Operator::new(
                services::Fs::default()
                    .root(path)
                    .atomic_write_dir(&staging),
            )
        }
        RemoteLocation::S3 {
            bucket,
            prefix,
            endpoint,
            region,
        } => {
            let mut builder = services::S3::default()
                .bucket(bucket)
                .root(&format!("/{prefix}"))
                .region(region)
                .disable_config_load()
                .disable_ec2_metadata();
            if let Some(endpoint) = endpoint {
                builder = builder.endpoint(endpoint);
            }
            match (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
                (Some(id), Some(secret)) if !id.is_empty() => {
                    builder = builder.access_key_id(&id).secret_access_key(&secret);
                }
                _ => builder = builder.skip_signature(),
            }
            Operator::new(builder)
        }
        RemoteLocation::Webdav { endpoint, root } => {
            Operator::new(services::Webdav::default().endpoint(endpoint).root(root))
        }
        _ => {
            return Err(Error::new(
                ErrorKind::Config,
                "this kind of remote is not supported by this build",
            ));
        }
    };
    let operator = built.map_err(|error| map_error(&error))?;
    Ok(match client {
        Some(client) => operator
            .with_context(opendal::OperationContext::new().with_http_transport(client.clone())),
        None => operator,
    })
}

/// The core's view of an OpenDAL error: its kind, and its message on one
/// line.
fn map_error(error: &opendal::Error) -> Error {
    use opendal::ErrorKind as Dal;
    let kind = match error.kind() {
        Dal::NotFound => ErrorKind::NotFound,
        Dal::PermissionDenied => ErrorKind::PermissionDenied,
        Dal::ConfigInvalid => ErrorKind::Config,
        // A temporary error from the HTTP client is the connection's; one
        // without is the server's own answer (a 5xx).
        Dal::Unexpected if error.is_temporary() => match transport_error(error) {
            Some(client) if client.is_timeout() => ErrorKind::TimedOut,
            Some(_) => ErrorKind::Unreachable,
            None => ErrorKind::ServerError,
        },
        Dal::RateLimited => ErrorKind::ServerError,
        Dal::Unexpected => ErrorKind::Protocol,
        _ => ErrorKind::Other,
    };
    // OpenDAL says `Kind (persistence) at op, context: { … } => message,
    // source: …`; the context repeats the object and the service, which the
    // failure names already.
    let text = error.to_string();
    let text = match text.split_once(", context: {") {
        Some((head, rest)) => match rest.split_once("} => ") {
            Some((_, tail)) => format!("{head}: {tail}"),
            None => text.clone(),
        },
        None => text.clone(),
    };
    let detail: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    Error::new(kind, detail)
}

/// The HTTP client's own error behind `error`, if there is one.
fn transport_error(error: &opendal::Error) -> Option<&reqwest::Error> {
    let mut source = core::error::Error::source(error);
    while let Some(cause) = source {
        if let Some(client) = cause.downcast_ref::<reqwest::Error>() {
            return Some(client);
        }
        source = cause.source();
    }
    None
}

/// An object being read: a stream of chunks, each handed out in turn.
pub struct OpendalReader {
    stream: opendal::FuturesBytesStream,
    pending: Bytes,
    runtime: Arc<Runtime>,
    limits: Arc<Limits>,
}

impl core::fmt::Debug for OpendalReader {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("OpendalReader").finish_non_exhaustive()
    }
}

impl RemoteRead for OpendalReader {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
        while self.pending.is_empty() {
            let stream = &mut self.stream;
            let next = self.limits.run(&self.runtime, async {
                stream
                    .try_next()
                    .await
                    .map_err(|error| map_error(&opendal_error(error)))
            })?;
            match next {
                Some(chunk) => self.pending = chunk,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.pending.len());
        buf[..n].copy_from_slice(&self.pending.split_to(n));
        Ok(n)
    }
}

/// The stream yields `std::io::Error`s that wrap OpenDAL's own.
fn opendal_error(error: std::io::Error) -> opendal::Error {
    match error.into_inner() {
        Some(inner) => match inner.downcast::<opendal::Error>() {
            Ok(error) => *error,
            Err(other) => opendal::Error::new(opendal::ErrorKind::Unexpected, other.to_string()),
        },
        None => opendal::Error::new(opendal::ErrorKind::Unexpected, "read failed"),
    }
}

/// An object being written; aborted when dropped unfinished.
pub struct OpendalWriter {
    target: WriteTarget,
}

/// An OpenDAL writer (`None` once finished), aborted when dropped
/// unfinished.
struct DalWriter {
    writer: Option<opendal::Writer>,
    runtime: Arc<Runtime>,
    limits: Arc<Limits>,
}

impl Drop for DalWriter {
    fn drop(&mut self) {
        if let Some(mut writer) = self.writer.take() {
            // Bounded too: an abort must not hang on a remote that stopped
            // answering.
            let _ = self.limits.run(&self.runtime, async {
                writer.abort().await.map_err(|error| map_error(&error))
            });
        }
    }
}

/// Where the bytes of an [`OpendalWriter`] go.
enum WriteTarget {
    /// An OpenDAL writer.
    Dal(DalWriter),
    /// A streamed WebDAV PUT.
    Webdav(webdav::StreamingPut),
}

impl core::fmt::Debug for OpendalWriter {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("OpendalWriter").finish_non_exhaustive()
    }
}

impl RemoteWrite for OpendalWriter {
    fn write_all(&mut self, buf: &[u8]) -> Result<(), Error> {
        match &mut self.target {
            WriteTarget::Dal(DalWriter {
                writer,
                runtime,
                limits,
            }) => {
                let Some(writer) = writer.as_mut() else {
                    return Err(Error::new(
                        ErrorKind::Other,
                        "the object was already finished",
                    ));
                };
                limits.run(runtime, async {
                    writer
                        .write(Bytes::copy_from_slice(buf))
                        .await
                        .map_err(|error| map_error(&error))
                })
            }
            WriteTarget::Webdav(put) => put.write_all(buf),
        }
    }

    fn finish(self) -> Result<(), Error> {
        match self.target {
            WriteTarget::Dal(mut dal) => {
                let Some(mut writer) = dal.writer.take() else {
                    return Ok(());
                };
                dal.limits.run(&dal.runtime, async {
                    writer
                        .close()
                        .await
                        .map(|_| ())
                        .map_err(|error| map_error(&error))
                })
            }
            WriteTarget::Webdav(put) => put.finish(),
        }
    }
}

impl RemoteStore for OpendalRemote {
    type Reader = OpendalReader;
    type Writer = OpendalWriter;

    fn get(&self, name: &str) -> Result<Option<OpendalReader>, Error> {
        // The first chunk is read here, so that an absent object is `None`
        // whether the service says so when the read is opened or when it
        // is first polled.
        let opened = self.limits.run(&self.runtime, async {
            let opened = async {
                let reader = self.operator.reader(name).await?;
                let mut stream = reader.into_bytes_stream(..).await?;
                let first = stream.try_next().await.map_err(opendal_error)?;
                Ok::<_, opendal::Error>((stream, first))
            };
            match opened.await {
                Ok(opened) => Ok(Some(opened)),
                Err(error) if error.kind() == opendal::ErrorKind::NotFound => Ok(None),
                Err(error) => Err(map_error(&error)),
            }
        })?;
        Ok(opened.map(|(stream, first)| OpendalReader {
            stream,
            pending: first.unwrap_or_default(),
            runtime: Arc::clone(&self.runtime),
            limits: Arc::clone(&self.limits),
        }))
    }

    fn head(&self, name: &str) -> Result<Option<ObjectMeta>, Error> {
        self.limits.run(&self.runtime, async {
            match self.operator.stat(name).await {
                Ok(meta) => Ok(Some(ObjectMeta {
                    size: meta.content_length(),
                })),
                Err(error) if error.kind() == opendal::ErrorKind::NotFound => Ok(None),
                Err(error) => Err(map_error(&error)),
            }
        })
    }

    fn put(&self, name: &str, size_hint: Option<u64>) -> Result<OpendalWriter, Error> {
        if let (Some(webdav), Some(size)) = (&self.webdav, size_hint) {
            if let Some((parent, _)) = name.rsplit_once('/') {
                self.limits.run(&self.runtime, async {
                    self.operator
                        .create_dir(&format!("{parent}/"))
                        .await
                        .map_err(|error| map_error(&error))
                })?;
            }
            return Ok(OpendalWriter {
                target: WriteTarget::Webdav(webdav.start(&self.runtime, &self.limits, name, size)),
            });
        }
        let writer = self.limits.run(&self.runtime, async {
            self.operator
                .writer_with(name)
                .chunk(UPLOAD_CHUNK)
                .await
                .map_err(|error| map_error(&error))
        })?;
        Ok(OpendalWriter {
            target: WriteTarget::Dal(DalWriter {
                writer: Some(writer),
                runtime: Arc::clone(&self.runtime),
                limits: Arc::clone(&self.limits),
            }),
        })
    }

    fn zstd_encoder(&self, raw_size: u64) -> Option<Box<dyn ZstdEncoder>> {
        SpoolEncoder::new(raw_size)
            .ok()
            .map(|encoder| Box::new(encoder) as Box<dyn ZstdEncoder>)
    }

    fn zstd_decoder<'a>(
        &self,
        body: Box<dyn RemoteRead + 'a>,
        raw_size: u64,
    ) -> Option<Box<dyn RemoteRead + 'a>> {
        Some(Box::new(FrameDecoder::new(body, raw_size)))
    }

    fn put_object(&self, name: &str, bytes: &[u8]) -> Result<(), Error> {
        if self.webdav.is_some() {
            // The streamed PUT is one request already.
            return cachet_core::remote::put_through_writer(self, name, bytes);
        }
        // One write of the whole object: a single PutObject on S3 (no
        // multipart upload), a staged file renamed into place on a shared
        // directory.
        self.limits.run(&self.runtime, async {
            self.operator
                .write(name, Bytes::copy_from_slice(bytes))
                .await
                .map(|_| ())
                .map_err(|error| map_error(&error))
        })
    }

    fn delete(&self, name: &str) -> Result<(), Error> {
        self.limits.run(&self.runtime, async {
            match self.operator.delete(name).await {
                Err(error) if error.kind() != opendal::ErrorKind::NotFound => {
                    Err(map_error(&error))
                }
                _ => Ok(()),
            }
        })
    }

    fn list(
        &self,
        prefix: &str,
        visit: &mut dyn FnMut(&str, u64) -> ControlFlow<()>,
    ) -> Result<(), Error> {
        self.limits.run(&self.runtime, async {
            let mut lister = match self.operator.lister_with(prefix).recursive(true).await {
                Ok(lister) => lister,
                Err(error) if error.kind() == opendal::ErrorKind::NotFound => return Ok(()),
                Err(error) => return Err(map_error(&error)),
            };
            while let Some(entry) = lister.try_next().await.map_err(|e| map_error(&e))? {
                if entry.metadata().is_dir() {
                    continue;
                }
                let size = entry.metadata().content_length();
                if visit(entry.path(), size).is_break() {
                    break;
                }
            }
            Ok(())
        })
    }
}

/// The circuit-breaker file of the cache directory `cache_dir`
/// (REMOTE-17).
pub fn breaker_path(cache_dir: &std::path::Path) -> std::path::PathBuf {
    cache_dir.join(cachet_core::layout::REMOTE_BREAKER_FILE)
}

/// The breakers kept in `cache_dir`: empty (every breaker closed) when the
/// file is missing, unreadable or damaged (REMOTE-17).
pub fn read_breakers(cache_dir: &std::path::Path) -> BreakerBook {
    use std::io::Read;
    let mut bytes = Vec::new();
    let limit = cachet_core::remote::breaker::MAX_BREAKER_FILE_BYTES as u64 + 1;
    match std::fs::File::open(breaker_path(cache_dir)) {
        Ok(file) if (&file).take(limit).read_to_end(&mut bytes).is_ok() => {
            BreakerBook::decode(&bytes)
        }
        _ => BreakerBook::default(),
    }
}

/// Replaces the breaker file of `cache_dir` with `book`, atomically: a
/// new file in the same directory, renamed over the old one, so that a
/// concurrent reader sees one whole book or the other (REMOTE-17).
pub fn write_breakers(cache_dir: &std::path::Path, book: &BreakerBook) -> std::io::Result<()> {
    let path = breaker_path(cache_dir);
    let dir = cache_dir.join(cachet_core::layout::REMOTE_DIR);
    std::fs::create_dir_all(&dir)?;
    let mut scratch = tempfile::Builder::new()
        .prefix(".breaker-")
        .tempfile_in(&dir)?;
    std::io::Write::write_all(&mut scratch, &book.encode())?;
    scratch.persist(&path).map_err(|error| error.error)?;
    Ok(())
}

/// A file that counts the bytes written to it.
struct CountingFile {
    file: std::fs::File,
    written: u64,
}

impl Write for CountingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// Codec 1 being written: a zstd frame spooled to an anonymous temporary
/// file (removed by the system when closed, even after a crash), which
/// holds at most the raw size before the core gives up on it.
struct SpoolEncoder {
    encoder: zstd::stream::write::Encoder<'static, CountingFile>,
}

impl SpoolEncoder {
    fn new(raw_size: u64) -> io::Result<SpoolEncoder> {
        let file = CountingFile {
            file: tempfile::tempfile()?,
            written: 0,
        };
        let mut encoder = zstd::stream::write::Encoder::new(file, ZSTD_LEVEL)?;
        // The pledged size goes into the frame header and sizes its window
        // to the content, which is what readers allow (REMOTE-6).
        encoder.set_pledged_src_size(Some(raw_size))?;
        encoder.include_contentsize(true)?;
        encoder.include_checksum(false)?;
        Ok(SpoolEncoder { encoder })
    }
}

fn spool_error(error: &io::Error) -> Error {
    Error::new(ErrorKind::Other, format!("zstd spool: {error}"))
}

impl ZstdEncoder for SpoolEncoder {
    fn write_all(&mut self, raw: &[u8]) -> Result<(), Error> {
        self.encoder
            .write_all(raw)
            .map_err(|error| spool_error(&error))
    }

    fn compressed_len(&self) -> u64 {
        self.encoder.get_ref().written
    }

    fn finish(self: Box<Self>) -> Result<(u64, Box<dyn RemoteRead>), Error> {
        let mut spool = self.encoder.finish().map_err(|error| spool_error(&error))?;
        spool.file.rewind().map_err(|error| spool_error(&error))?;
        Ok((spool.written, Box::new(SpoolReader(spool.file))))
    }
}

/// A spooled frame being read back.
struct SpoolReader(std::fs::File);

impl RemoteRead for SpoolReader {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
        self.0.read(buf).map_err(|error| spool_error(&error))
    }
}

/// A blob body as `std::io::Read`, keeping the remote's own error inside
/// the `io::Error` so that a failing remote stays a failure, not damage.
struct BodyReader<'a>(Box<dyn RemoteRead + 'a>);

impl Read for BodyReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf).map_err(io::Error::other)
    }
}

/// The smallest window log that holds `raw_size` bytes, within zstd's
/// bounds (1 KiB to 2 GiB).
fn window_log_for(raw_size: u64) -> u32 {
    let needed = raw_size.max(1).next_power_of_two().trailing_zeros();
    needed.clamp(10, 31)
}

/// Codec 1 being read: one zstd frame, decoded with a window capped at
/// the content's recorded size; anything that does not decode, or any
/// byte after the frame, is [`ErrorKind::Corrupt`].
struct FrameDecoder<'a> {
    decoder: Option<zstd::stream::read::Decoder<'static, io::BufReader<BodyReader<'a>>>>,
    raw_size: u64,
    pending: Option<BodyReader<'a>>,
}

impl<'a> FrameDecoder<'a> {
    fn new(body: Box<dyn RemoteRead + 'a>, raw_size: u64) -> FrameDecoder<'a> {
        FrameDecoder {
            decoder: None,
            raw_size,
            pending: Some(BodyReader(body)),
        }
    }
}

fn corrupt(detail: &dyn core::fmt::Display) -> Error {
    Error::new(ErrorKind::Corrupt, format!("zstd frame: {detail}"))
}

/// The remote's error inside an `io::Error` from [`BodyReader`], else the
/// decoder's complaint as damage.
fn decode_error(error: io::Error) -> Error {
    match error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<Error>())
    {
        Some(remote) => remote.clone(),
        None => corrupt(&error),
    }
}

impl RemoteRead for FrameDecoder<'_> {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
        if let Some(body) = self.pending.take() {
            // Built on first read: creating the context is the only
            // allocation, and the window cap is set before any byte of
            // the frame is looked at.
            let mut decoder = zstd::stream::read::Decoder::new(body)
                .map_err(|error| Error::new(ErrorKind::Other, error.to_string()))?
                .single_frame();
            decoder
                .window_log_max(window_log_for(self.raw_size))
                .map_err(|error| Error::new(ErrorKind::Other, error.to_string()))?;
            self.decoder = Some(decoder);
        }
        let Some(decoder) = self.decoder.as_mut() else {
            return Ok(0);
        };
        let n = decoder.read(buf).map_err(decode_error)?;
        if n == 0 && !buf.is_empty() {
            // The frame ended: the object must end with it.
            let Some(decoder) = self.decoder.take() else {
                return Ok(0);
            };
            let mut rest = decoder.finish();
            let mut one = [0u8; 1];
            if rest.read(&mut one).map_err(decode_error)? != 0 {
                return Err(corrupt(&"bytes after the frame"));
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Bytes(io::Cursor<Vec<u8>>);

    impl RemoteRead for Bytes {
        fn read(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
            Ok(Read::read(&mut self.0, buf).unwrap())
        }
    }

    fn decode(frame: Vec<u8>, raw_size: u64) -> Result<Vec<u8>, Error> {
        let mut decoder = FrameDecoder::new(Box::new(Bytes(io::Cursor::new(frame))), raw_size);
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = decoder.read(&mut buf)?;
            if n == 0 {
                return Ok(out);
            }
            out.extend_from_slice(&buf[..n]);
            assert!(out.len() <= 8 << 20, "bounded");
        }
    }

    fn encode(raw: &[u8]) -> Vec<u8> {
        let mut encoder = SpoolEncoder::new(raw.len() as u64).unwrap();
        ZstdEncoder::write_all(&mut encoder, raw).unwrap();
        let (len, mut frame) = Box::new(encoder).finish().unwrap();
        let mut bytes = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = frame.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            bytes.extend_from_slice(&buf[..n]);
        }
        assert_eq!(bytes.len() as u64, len);
        bytes
    }

    #[test]
    fn remote_9_trust_roots_are_loaded_only_for_a_remote_reached_over_https() {
        let specs = |urls: &[&str]| -> Vec<RemoteSpec> {
            urls.iter()
                .map(|url| cachet_cli::remote::parse_url(url, "--remote").unwrap())
                .collect()
        };
        assert_eq!(needs_tls(&specs(&[])), None);
        assert_eq!(needs_tls(&specs(&["file:///srv/cache"])), None);
        let http = "s3://bucket/p?endpoint=http://127.0.0.1:3900&region=garage";
        let dav = "webdav+http://127.0.0.1:8080/cache";
        assert_eq!(
            needs_tls(&specs(&["file:///srv/cache", http, dav])),
            Some(false)
        );
        assert_eq!(
            needs_tls(&specs(&[http, "s3://bucket"])),
            Some(true),
            "AWS itself"
        );
        assert_eq!(
            needs_tls(&specs(&[dav, "webdav+https://dav.example/cache"])),
            Some(true)
        );
    }

    #[test]
    fn remote_6_spooled_frames_round_trip_and_fit_the_window_of_their_size() {
        for len in [0usize, 1, 1000, 100_000, 3 << 20] {
            let raw: Vec<u8> = (0..len).map(|i| (i % 97) as u8).collect();
            let frame = encode(&raw);
            assert_eq!(decode(frame, len as u64).unwrap(), raw, "{len}");
        }
    }

    #[test]
    fn remote_6_a_frame_claiming_a_window_past_the_recorded_size_is_corrupt() {
        // 64 MiB of zeros without a pledged size: zstd's default window
        // (2 MiB at level 3), far past what 100 000 bytes need.
        let bomb = zstd::encode_all(io::repeat(0).take(64 << 20), ZSTD_LEVEL).unwrap();
        let error = decode(bomb, 100_000).unwrap_err();
        assert_eq!(error.kind, ErrorKind::Corrupt, "{error}");
        assert_eq!(window_log_for(0), 10);
        assert_eq!(window_log_for(100_000), 17);
        assert_eq!(window_log_for(1 << 40), 31);
    }

    #[test]
    fn remote_6_damaged_frames_and_trailing_bytes_are_corrupt() {
        let raw: Vec<u8> = (0..50_000u32).map(|i| (i % 13) as u8).collect();
        let frame = encode(&raw);
        let mut trailing = frame.clone();
        trailing.push(0);
        let truncated = frame[..frame.len() - 2].to_vec();
        let mut flipped = frame.clone();
        flipped[4] ^= 0xff;
        for (what, bytes) in [
            ("trailing", trailing),
            ("truncated", truncated),
            ("flipped", flipped),
        ] {
            let error = decode(bytes, raw.len() as u64).unwrap_err();
            assert_eq!(error.kind, ErrorKind::Corrupt, "{what}: {error}");
        }
    }
}
