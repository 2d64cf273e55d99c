//! The native remote stores: `cachet_core::remote::RemoteStore` over
//! OpenDAL, for the three kinds of remote the command line names
//! (docs/spec.md REMOTE-9): a shared directory, an S3-compatible bucket,
//! and a WebDAV server. No HTTP, signing or retry code of cachet's own.
//!
//! OpenDAL is asynchronous; every store here is driven from one
//! current-thread tokio runtime, shared by the stores of one command and
//! entered only for the length of each call, so a remote costs no thread.
//! Reads stream chunk by chunk and writes are sent as they come (S3 in
//! multipart chunks of 8 MiB), so a blob is not held in memory whole,
//! except by WebDAV, whose PUT OpenDAL sends in one piece.
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
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use bytes::Bytes;
use cachet_cli::remote::{RemoteConfig, RemoteLocation, RemoteSpec};
use cachet_core::remote::breaker::BreakerBook;
use cachet_core::remote::guard::{Pacer, TimeLimited};
use cachet_core::remote::policy::FaultPolicy;
use cachet_core::remote::{
    Error, ErrorKind, ObjectMeta, Remote, RemoteRead, RemoteStore, RemoteWrite,
};
use core::ops::ControlFlow;
use futures_util::TryStreamExt;
use opendal::{Operator, services};
use tokio::runtime::Runtime;

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
    let client = http_client(&config.policy);
    for spec in &config.remotes {
        match operator(spec, env, &client) {
            Ok(operator) => remotes.push(Remote {
                store: OpendalRemote {
                    operator,
                    runtime: Arc::clone(&runtime),
                    limits: Arc::new(Limits {
                        deadline_ms: Mutex::new(None),
                        request_timeout: Duration::from_millis(config.policy.remote_timeout_ms),
                    }),
                },
                writable: !config.read_only,
                label: spec.url.clone(),
            }),
            Err(error) => failures.push(SetupError {
                url: spec.url.clone(),
                error,
            }),
        }
    }
    (remotes, failures)
}

/// The HTTP client of every remote: OpenDAL's default, with the policy's
/// connect timeout (REMOTE-15). `None` if it cannot be built (then
/// OpenDAL's default client is used, and the request time limits still
/// hold).
fn http_client(policy: &FaultPolicy) -> Option<opendal::HttpTransporter> {
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_millis(policy.connect_timeout_ms))
        .build()
        .ok()?;
    Some(opendal::HttpTransporter::new(
        opendal_http_transport_reqwest::ReqwestTransport::new(client),
    ))
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
    writer: Option<opendal::Writer>,
    runtime: Arc<Runtime>,
    limits: Arc<Limits>,
}

impl core::fmt::Debug for OpendalWriter {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("OpendalWriter").finish_non_exhaustive()
    }
}

impl RemoteWrite for OpendalWriter {
    fn write_all(&mut self, buf: &[u8]) -> Result<(), Error> {
        let Some(writer) = self.writer.as_mut() else {
            return Err(Error::new(
                ErrorKind::Other,
                "the object was already finished",
            ));
        };
        self.limits.run(&self.runtime, async {
            writer
                .write(Bytes::copy_from_slice(buf))
                .await
                .map_err(|error| map_error(&error))
        })
    }

    fn finish(mut self) -> Result<(), Error> {
        let Some(mut writer) = self.writer.take() else {
            return Ok(());
        };
        self.limits.run(&self.runtime, async {
            writer
                .close()
                .await
                .map(|_| ())
                .map_err(|error| map_error(&error))
        })
    }
}

impl Drop for OpendalWriter {
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

    fn put(&self, name: &str, _size_hint: Option<u64>) -> Result<OpendalWriter, Error> {
        let writer = self.limits.run(&self.runtime, async {
            self.operator
                .writer_with(name)
                .chunk(UPLOAD_CHUNK)
                .await
                .map_err(|error| map_error(&error))
        })?;
        Ok(OpendalWriter {
            writer: Some(writer),
            runtime: Arc::clone(&self.runtime),
            limits: Arc::clone(&self.limits),
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
