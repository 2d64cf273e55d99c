//! Streaming WebDAV uploads. OpenDAL 0.59.5's WebDAV writer is one-shot: it
//! buffers a whole object in memory and sends it in one PUT at `close`. A
//! blob may be larger than memory, so objects whose size is known (every
//! object the core writes) are sent here instead: one PUT with that
//! `Content-Length`, whose body is fed chunk by chunk through a channel of
//! one chunk while the request runs on the adapter's runtime.
//!
//! REMOTE-6 holds as it does for OpenDAL's PUT: a WebDAV server stores a
//! PUT body under its name only once the whole body has arrived (nginx
//! writes it to a temporary file first), and a writer dropped unfinished
//! ends the body early with an error, which no server takes for a complete
//! request of that length.
//!
//! Time limits are those of every other request (REMOTE-15): the client
//! gives up connecting after the connect timeout, and each step of the
//! upload (a chunk handed to the request, the server's answer) ends within
//! the request timeout and the core's deadline ([`super::Limits`]).

use alloc::sync::Arc;

use bytes::Bytes;
use cachet_core::remote::{Error, ErrorKind};
use tokio::runtime::Runtime;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// A chunk of the body, or the error that cuts it off.
type Chunk = Result<Bytes, std::io::Error>;

/// Where PUTs go: the server and the remote's root on it.
#[derive(Clone, Debug)]
pub(super) struct WebdavPut {
    client: reqwest::Client,
    /// `http://HOST[:PORT]/ROOT`, without a trailing `/`.
    base: String,
}

impl WebdavPut {
    /// PUTs below `root` (a path starting with `/`) on `endpoint`, sent
    /// by `client` (the one every HTTP remote of the command shares).
    pub(super) fn new(client: reqwest::Client, endpoint: &str, root: &str) -> WebdavPut {
        WebdavPut {
            client,
            base: format!("{endpoint}{}", root.trim_end_matches('/')),
        }
    }

    /// Starts the PUT of `name`, `size` bytes long.
    pub(super) fn start(
        &self,
        runtime: &Arc<Runtime>,
        limits: &Arc<super::Limits>,
        name: &str,
        size: u64,
    ) -> StreamingPut {
        let (sender, receiver) = mpsc::channel::<Chunk>(1);
        let body = futures_util::stream::unfold(receiver, |mut receiver| async move {
            receiver.recv().await.map(|chunk| (chunk, receiver))
        });
        let request = self
            .client
            .put(format!("{}/{name}", self.base))
            .header(reqwest::header::CONTENT_LENGTH, size)
            .body(reqwest::Body::wrap_stream(body));
        let task = runtime.spawn(async move {
            let response = request
                .send()
                .await
                .map_err(|error| request_error(&error))?;
            let status = response.status();
            if status.is_success() {
                Ok(())
            } else {
                let kind = match status.as_u16() {
                    401 | 403 => ErrorKind::PermissionDenied,
                    _ => ErrorKind::Protocol,
                };
                Err(Error::new(kind, format!("PUT answered {status}")))
            }
        });
        StreamingPut {
            sender: Some(sender),
            task: Some(task),
            runtime: Arc::clone(runtime),
            limits: Arc::clone(limits),
        }
    }
}

fn request_error(error: &reqwest::Error) -> Error {
    let kind = if error.is_connect() || error.is_timeout() {
        ErrorKind::Unreachable
    } else {
        ErrorKind::Protocol
    };
    let mut detail = error.to_string();
    let mut source = core::error::Error::source(error);
    while let Some(cause) = source {
        detail = format!("{detail}: {cause}");
        source = cause.source();
    }
    Error::new(kind, detail)
}

/// A PUT whose body is being sent.
pub(super) struct StreamingPut {
    sender: Option<mpsc::Sender<Chunk>>,
    task: Option<JoinHandle<Result<(), Error>>>,
    runtime: Arc<Runtime>,
    limits: Arc<super::Limits>,
}

impl StreamingPut {
    /// The request's own error, once it has ended.
    fn outcome(&mut self) -> Result<(), Error> {
        let Some(task) = self.task.take() else {
            return Err(Error::new(ErrorKind::Other, "the upload already ended"));
        };
        let abort = task.abort_handle();
        let outcome = self.limits.run(&self.runtime, async {
            match task.await {
                Ok(result) => result,
                Err(error) => Err(Error::new(ErrorKind::Other, error.to_string())),
            }
        });
        // A server that never answers: the request must not live on.
        abort.abort();
        outcome
    }

    /// Sends the next bytes of the body.
    pub(super) fn write_all(&mut self, buf: &[u8]) -> Result<(), Error> {
        let Some(sender) = self.sender.as_ref() else {
            return Err(Error::new(ErrorKind::Other, "the upload already ended"));
        };
        let sent = self.limits.run(&self.runtime, async {
            sender
                .send(Ok(Bytes::copy_from_slice(buf)))
                .await
                .map_err(|_| Error::new(ErrorKind::Other, "the request ended"))
        });
        if let Err(error) = &sent
            && error.kind == ErrorKind::TimedOut
        {
            if let Some(task) = self.task.take() {
                task.abort();
            }
            self.sender = None;
            return sent;
        }
        if sent.is_err() {
            // The request stopped reading its body: it ended, with its error.
            self.sender = None;
            self.outcome()?;
            return Err(Error::new(
                ErrorKind::Protocol,
                "the server ended the PUT before its body",
            ));
        }
        Ok(())
    }

    /// Ends the body and waits for the server's answer.
    pub(super) fn finish(mut self) -> Result<(), Error> {
        self.sender = None;
        self.outcome()
    }
}

impl Drop for StreamingPut {
    fn drop(&mut self) {
        if let Some(sender) = self.sender.take() {
            // Cut the body off: the server never sees a complete request.
            let _ = sender.try_send(Err(std::io::Error::other("upload abandoned")));
            drop(sender);
            if let Some(task) = self.task.take() {
                let abort = task.abort_handle();
                let _ = self
                    .limits
                    .run(&self.runtime, async { task.await.unwrap_or(Ok(())) });
                abort.abort();
            }
        }
    }
}
