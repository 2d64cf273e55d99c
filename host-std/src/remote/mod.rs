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

use alloc::sync::Arc;

use bytes::Bytes;
use cachet_cli::remote::{RemoteConfig, RemoteLocation, RemoteSpec};
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

/// One remote store over OpenDAL.
#[derive(Clone, Debug)]
pub struct OpendalRemote {
    operator: Operator,
    runtime: Arc<Runtime>,
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
    for spec in &config.remotes {
        match operator(spec, env) {
            Ok(operator) => remotes.push(Remote {
                store: OpendalRemote {
                    operator,
                    runtime: Arc::clone(&runtime),
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

/// The OpenDAL operator of one remote.
fn operator(spec: &RemoteSpec, env: &dyn Fn(&str) -> Option<String>) -> Result<Operator, Error> {
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
    built.map_err(|error| map_error(&error))
}

/// The core's view of an OpenDAL error: its kind, and its message on one
/// line.
fn map_error(error: &opendal::Error) -> Error {
    use opendal::ErrorKind as Dal;
    let kind = match error.kind() {
        Dal::NotFound => ErrorKind::NotFound,
        Dal::PermissionDenied => ErrorKind::PermissionDenied,
        Dal::ConfigInvalid => ErrorKind::Config,
        Dal::Unexpected if error.is_temporary() => ErrorKind::Unreachable,
        Dal::Unexpected | Dal::RateLimited => ErrorKind::Protocol,
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

/// An object being read: a stream of chunks, each handed out in turn.
pub struct OpendalReader {
    stream: opendal::FuturesBytesStream,
    pending: Bytes,
    runtime: Arc<Runtime>,
}

impl core::fmt::Debug for OpendalReader {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("OpendalReader").finish_non_exhaustive()
    }
}

impl RemoteRead for OpendalReader {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
        while self.pending.is_empty() {
            let next = self
                .runtime
                .block_on(self.stream.try_next())
                .map_err(|error| map_error(&opendal_error(error)))?;
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
        self.runtime
            .block_on(writer.write(Bytes::copy_from_slice(buf)))
            .map_err(|error| map_error(&error))
    }

    fn finish(mut self) -> Result<(), Error> {
        let Some(mut writer) = self.writer.take() else {
            return Ok(());
        };
        self.runtime
            .block_on(writer.close())
            .map(|_| ())
            .map_err(|error| map_error(&error))
    }
}

impl Drop for OpendalWriter {
    fn drop(&mut self) {
        if let Some(mut writer) = self.writer.take() {
            let _ = self.runtime.block_on(writer.abort());
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
        let opened = self.runtime.block_on(async {
            let reader = self.operator.reader(name).await?;
            let mut stream = reader.into_bytes_stream(..).await?;
            let first = stream.try_next().await.map_err(opendal_error)?;
            Ok::<_, opendal::Error>((stream, first))
        });
        match opened {
            Ok((stream, first)) => Ok(Some(OpendalReader {
                stream,
                pending: first.unwrap_or_default(),
                runtime: Arc::clone(&self.runtime),
            })),
            Err(error) if error.kind() == opendal::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(map_error(&error)),
        }
    }

    fn head(&self, name: &str) -> Result<Option<ObjectMeta>, Error> {
        match self.runtime.block_on(self.operator.stat(name)) {
            Ok(meta) => Ok(Some(ObjectMeta {
                size: meta.content_length(),
            })),
            Err(error) if error.kind() == opendal::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(map_error(&error)),
        }
    }

    fn put(&self, name: &str, _size_hint: Option<u64>) -> Result<OpendalWriter, Error> {
        let writer = self
            .runtime
            .block_on(async { self.operator.writer_with(name).chunk(UPLOAD_CHUNK).await })
            .map_err(|error| map_error(&error))?;
        Ok(OpendalWriter {
            writer: Some(writer),
            runtime: Arc::clone(&self.runtime),
        })
    }

    fn delete(&self, name: &str) -> Result<(), Error> {
        match self.runtime.block_on(self.operator.delete(name)) {
            Err(error) if error.kind() != opendal::ErrorKind::NotFound => Err(map_error(&error)),
            _ => Ok(()),
        }
    }

    fn list(
        &self,
        prefix: &str,
        visit: &mut dyn FnMut(&str, u64) -> ControlFlow<()>,
    ) -> Result<(), Error> {
        self.runtime.block_on(async {
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
