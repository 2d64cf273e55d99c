//! One run's protection against its remotes (REMOTE-15..19): every
//! request to a remote goes through a [`Guarded`] store, which bounds its
//! time, retries transient failures with backoff, stops asking a remote
//! that failed, stops writing to one that refused the credentials, and
//! counts what happened into the run's [`RemoteStats`].
//!
//! The chain ([`super::lookup`], [`super::push`]) is unchanged: it is
//! handed guarded stores. The host supplies the clock and the sleep
//! ([`Pacer`]) and applies each time limit to the request it sends
//! ([`TimeLimited`]).

use alloc::string::String;
use alloc::vec::Vec;
use core::cell::{Cell, RefCell};
use core::ops::ControlFlow;

use super::breaker::BreakerBook;
use super::policy::FaultPolicy;
use super::stats::RemoteStats;
use super::{Error, ErrorKind, ObjectMeta, RemoteRead, RemoteStore, RemoteWrite};

/// The host's clock and sleep, in milliseconds of a monotonic clock.
pub trait Pacer {
    /// Milliseconds since some fixed point of this process.
    fn now_ms(&self) -> u64;
    /// Waits `ms` milliseconds.
    fn sleep_ms(&self, ms: u64);
}

/// A store whose requests the host bounds in time (REMOTE-15).
pub trait TimeLimited: RemoteStore {
    /// Every request and transfer step from now on, by this store and the
    /// readers and writers it hands out, ends by `deadline_ms` ([`Pacer`]
    /// time) when it is `Some`, failing with [`ErrorKind::TimedOut`]; and,
    /// always, within [`FaultPolicy::remote_timeout_ms`] of its start.
    fn set_deadline(&self, deadline_ms: Option<u64>);
}

impl<R: TimeLimited + ?Sized> TimeLimited for &R {
    fn set_deadline(&self, deadline_ms: Option<u64>) {
        (**self).set_deadline(deadline_ms);
    }
}

/// What one run knows about one of its remotes.
#[derive(Clone, Debug, Default)]
struct RemoteRun {
    /// The kind of the transient failure that made the run stop asking it.
    down: Option<ErrorKind>,
    /// Whether it refused the credentials or the access (REMOTE-16).
    writes_stopped: bool,
    /// Whether that refusal was reported already.
    refusal_reported: bool,
    /// Whether it answered at least one request (a refusal or a missing
    /// object is an answer).
    answered: bool,
    /// Whether its breaker keeps it out of this run (REMOTE-17).
    skipped: bool,
    /// Whether this run probes it after a cool-down.
    probe: bool,
}

/// The remote state of one run: its policy, its lookup deadline, what
/// each remote did, and the statistics.
pub struct RemoteSession<'p> {
    policy: FaultPolicy,
    pacer: &'p dyn Pacer,
    labels: Vec<String>,
    deadline: Cell<Option<u64>>,
    remotes: RefCell<Vec<RemoteRun>>,
    stats: RefCell<RemoteStats>,
}

impl core::fmt::Debug for RemoteSession<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RemoteSession")
            .field("labels", &self.labels)
            .field("remotes", &self.remotes)
            .finish_non_exhaustive()
    }
}

impl<'p> RemoteSession<'p> {
    /// A session over the remotes `labels` (their order is the chain's).
    pub fn new(policy: FaultPolicy, pacer: &'p dyn Pacer, labels: &[&str]) -> RemoteSession<'p> {
        RemoteSession {
            policy,
            pacer,
            labels: labels.iter().map(|label| String::from(*label)).collect(),
            deadline: Cell::new(None),
            remotes: RefCell::new(alloc::vec![RemoteRun::default(); labels.len()]),
            stats: RefCell::new(RemoteStats::new(labels.iter().copied())),
        }
    }

    /// The remotes' labels, in the chain's order.
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// The policy.
    pub fn policy(&self) -> &FaultPolicy {
        &self.policy
    }

    /// Applies the breakers of `book` at `now_unix_ms` (REMOTE-17): a
    /// remote whose breaker is open is skipped for the whole run. Returns,
    /// for each skipped remote, its position and when it may be tried
    /// again; the book records any probe this run makes.
    pub fn admit(&self, book: &mut BreakerBook, now_unix_ms: u64) -> Vec<(usize, u64)> {
        let mut skipped = Vec::new();
        let mut remotes = self.remotes.borrow_mut();
        for (at, (label, run)) in self.labels.iter().zip(remotes.iter_mut()).enumerate() {
            match book.admit(label, now_unix_ms, &self.policy) {
                super::breaker::Admission::Use => {}
                super::breaker::Admission::Probe => run.probe = true,
                super::breaker::Admission::Skip { until_ms } => {
                    run.skipped = true;
                    self.stats.borrow_mut().mark_skipped(at);
                    skipped.push((at, until_ms));
                }
            }
        }
        skipped
    }

    /// Whether the run still asks the remote at `remote`: not skipped by
    /// its breaker, and no transient failure yet.
    pub fn is_usable(&self, remote: usize) -> bool {
        self.remotes
            .borrow()
            .get(remote)
            .is_some_and(|run| !run.skipped && run.down.is_none())
    }

    /// Whether the run still writes to the remote at `remote`
    /// (REMOTE-16).
    pub fn is_writable(&self, remote: usize) -> bool {
        self.is_usable(remote)
            && self
                .remotes
                .borrow()
                .get(remote)
                .is_some_and(|run| !run.writes_stopped)
    }

    /// `true` exactly once per remote, the first time it refused the
    /// credentials or the access: the moment to say so (REMOTE-16).
    pub fn take_refusal_report(&self, remote: usize) -> bool {
        let mut remotes = self.remotes.borrow_mut();
        match remotes.get_mut(remote) {
            Some(run) if run.writes_stopped && !run.refusal_reported => {
                run.refusal_reported = true;
                true
            }
            _ => false,
        }
    }

    /// Starts a lookup: every request until [`RemoteSession::end_lookup`]
    /// ends within [`FaultPolicy::remote_timeout_ms`] of now, across all
    /// remotes and retries (REMOTE-15).
    pub fn begin_lookup(&self) {
        let now = self.pacer.now_ms();
        self.deadline
            .set(Some(now.saturating_add(self.policy.remote_timeout_ms)));
    }

    /// Ends the lookup's time budget.
    pub fn end_lookup(&self) {
        self.deadline.set(None);
    }

    /// Wraps `store`, the remote at position `remote`.
    pub fn guard<R: TimeLimited>(&self, remote: usize, store: R) -> Guarded<'_, 'p, R> {
        Guarded {
            inner: store,
            remote,
            session: self,
        }
    }

    /// The statistics so far.
    pub fn stats(&self) -> RemoteStats {
        self.stats.borrow().clone()
    }

    /// Counts a lookup into the statistics (REMOTE-19); `indices` maps the
    /// chain's positions to the session's.
    pub fn count_lookup(&self, chain: &super::ChainLookup, indices: &[usize]) {
        self.stats.borrow_mut().count_lookup(chain, indices);
    }

    /// Counts a lookup that only the local cache was asked (a hit, or a
    /// miss with every remote left out).
    pub fn count_local(&self, hit: bool) {
        self.stats.borrow_mut().count_local(hit);
    }

    /// Writes the run's outcome into the breakers of `book` at
    /// `now_unix_ms` (REMOTE-17): a remote that failed transiently opens,
    /// one that answered closes, and a probe that asked nothing hands the
    /// probe to the next run. Returns the remotes that tripped, with when
    /// they may be tried again.
    pub fn settle(&self, book: &mut BreakerBook, now_unix_ms: u64) -> Vec<(usize, u64)> {
        let mut tripped = Vec::new();
        for (at, (label, run)) in self
            .labels
            .iter()
            .zip(self.remotes.borrow().iter())
            .enumerate()
        {
            if run.skipped {
                continue;
            }
            if run.down.is_some() {
                tripped.push((at, book.record_failure(label, now_unix_ms, &self.policy)));
            } else if run.answered {
                book.record_success(label);
            } else if run.probe {
                book.release_probe(label, now_unix_ms);
            }
        }
        tripped
    }

    fn note_failure(&self, remote: usize, kind: ErrorKind, final_attempt: bool) {
        self.stats.borrow_mut().count_error(kind);
        let mut remotes = self.remotes.borrow_mut();
        let Some(run) = remotes.get_mut(remote) else {
            return;
        };
        if kind == ErrorKind::PermissionDenied {
            run.writes_stopped = true;
        }
        if kind.is_transient() {
            if final_attempt {
                run.down = Some(kind);
            }
        } else {
            run.answered = true;
        }
    }

    fn note_answer(&self, remote: usize) {
        if let Some(run) = self.remotes.borrow_mut().get_mut(remote) {
            run.answered = true;
        }
    }

    fn spent(&self, since: u64) {
        let elapsed = self.pacer.now_ms().saturating_sub(since);
        let mut stats = self.stats.borrow_mut();
        stats.time_ms = stats.time_ms.saturating_add(elapsed);
    }

    /// Why a request to `remote` is not sent at all, if it is not.
    fn refusal(&self, remote: usize, write: bool) -> Option<Error> {
        let remotes = self.remotes.borrow();
        let run = remotes.get(remote)?;
        if run.skipped {
            return Some(Error::new(
                ErrorKind::Unreachable,
                "left out of this run by its circuit breaker",
            ));
        }
        if let Some(kind) = run.down {
            return Some(Error::new(
                kind,
                "not asked again in this run after an earlier failure",
            ));
        }
        if write && run.writes_stopped {
            return Some(Error::new(
                ErrorKind::PermissionDenied,
                "not written to again in this run after it refused the access",
            ));
        }
        if self
            .deadline
            .get()
            .is_some_and(|deadline| self.pacer.now_ms() >= deadline)
        {
            return Some(Error::new(
                ErrorKind::TimedOut,
                "the lookup's time budget is spent",
            ));
        }
        None
    }
}

/// A remote store whose every request goes through a [`RemoteSession`]
/// (REMOTE-15, REMOTE-16, REMOTE-19).
#[derive(Debug)]
pub struct Guarded<'s, 'p, R> {
    inner: R,
    remote: usize,
    session: &'s RemoteSession<'p>,
}

impl<R: TimeLimited> Guarded<'_, '_, R> {
    /// Sends one request through the session: refused at once when the
    /// run no longer asks this remote; otherwise tried, and retried after
    /// a transient failure while attempts and the lookup budget last.
    fn call<T>(&self, write: bool, request: impl Fn(&R) -> Result<T, Error>) -> Result<T, Error> {
        self.call_retrying(write, ErrorKind::is_transient, request)
    }

    /// [`Guarded::call`], retrying (with the same backoff and deadline)
    /// only failures whose kind `retryable` accepts.
    fn call_retrying<T>(
        &self,
        write: bool,
        retryable: fn(ErrorKind) -> bool,
        request: impl Fn(&R) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let session = self.session;
        if let Some(error) = session.refusal(self.remote, write) {
            return Err(error);
        }
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            let started = session.pacer.now_ms();
            self.inner.set_deadline(session.deadline.get());
            let result = request(&self.inner);
            session.spent(started);
            let error = match result {
                Ok(value) => {
                    session.note_answer(self.remote);
                    return Ok(value);
                }
                Err(error) => error,
            };
            let retry = if retryable(error.kind) {
                session.policy.backoff_ms(attempt).filter(|wait| {
                    session.deadline.get().is_none_or(|deadline| {
                        session.pacer.now_ms().saturating_add(*wait) < deadline
                    })
                })
            } else {
                None
            };
            session.note_failure(self.remote, error.kind, retry.is_none());
            match retry {
                Some(wait) => {
                    let waited = session.pacer.now_ms();
                    session.pacer.sleep_ms(wait);
                    session.spent(waited);
                }
                None => return Err(error),
            }
        }
    }

    /// Runs one transfer step of a reader or writer (never retried: the
    /// bytes before it are gone).
    fn step<T>(
        session: &RemoteSession<'_>,
        remote: usize,
        step: impl FnOnce() -> Result<T, Error>,
    ) -> Result<T, Error> {
        if let Some(error) = session.refusal(remote, false) {
            return Err(error);
        }
        let started = session.pacer.now_ms();
        let result = step();
        session.spent(started);
        match &result {
            Ok(_) => session.note_answer(remote),
            Err(error) => session.note_failure(remote, error.kind, true),
        }
        result
    }
}

/// An object being read through a [`Guarded`] store.
#[derive(Debug)]
pub struct GuardedReader<'s, 'p, R> {
    inner: R,
    remote: usize,
    session: &'s RemoteSession<'p>,
}

impl<R: RemoteRead> RemoteRead for GuardedReader<'_, '_, R> {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
        let inner = &mut self.inner;
        let n = Guarded::<'_, '_, NeverStore>::step(self.session, self.remote, || inner.read(buf))?;
        let mut stats = self.session.stats.borrow_mut();
        stats.bytes_down = stats.bytes_down.saturating_add(n as u64);
        Ok(n)
    }
}

/// An object being written through a [`Guarded`] store.
#[derive(Debug)]
pub struct GuardedWriter<'s, 'p, W> {
    inner: W,
    remote: usize,
    session: &'s RemoteSession<'p>,
}

impl<W: RemoteWrite> RemoteWrite for GuardedWriter<'_, '_, W> {
    fn write_all(&mut self, buf: &[u8]) -> Result<(), Error> {
        let inner = &mut self.inner;
        Guarded::<'_, '_, NeverStore>::step(self.session, self.remote, || inner.write_all(buf))?;
        let mut stats = self.session.stats.borrow_mut();
        stats.bytes_up = stats.bytes_up.saturating_add(buf.len() as u64);
        Ok(())
    }

    fn finish(self) -> Result<(), Error> {
        let inner = self.inner;
        Guarded::<'_, '_, NeverStore>::step(self.session, self.remote, || inner.finish())
    }
}

/// Names [`Guarded::step`], which needs no store, for readers and writers.
#[derive(Debug)]
enum NeverStore {}

impl RemoteStore for NeverStore {
    type Reader = NeverStore;
    type Writer = NeverStore;
    fn get(&self, _: &str) -> Result<Option<NeverStore>, Error> {
        match *self {}
    }
    fn head(&self, _: &str) -> Result<Option<ObjectMeta>, Error> {
        match *self {}
    }
    fn put(&self, _: &str, _: Option<u64>) -> Result<NeverStore, Error> {
        match *self {}
    }
    fn delete(&self, _: &str) -> Result<(), Error> {
        match *self {}
    }
    fn list(&self, _: &str, _: &mut dyn FnMut(&str, u64) -> ControlFlow<()>) -> Result<(), Error> {
        match *self {}
    }
}

impl RemoteRead for NeverStore {
    fn read(&mut self, _: &mut [u8]) -> Result<usize, Error> {
        match *self {}
    }
}

impl RemoteWrite for NeverStore {
    fn write_all(&mut self, _: &[u8]) -> Result<(), Error> {
        match *self {}
    }
    fn finish(self) -> Result<(), Error> {
        match self {}
    }
}

impl TimeLimited for NeverStore {
    fn set_deadline(&self, _: Option<u64>) {
        match *self {}
    }
}

impl<'s, 'p, R: TimeLimited> RemoteStore for Guarded<'s, 'p, R> {
    type Reader = GuardedReader<'s, 'p, R::Reader>;
    type Writer = GuardedWriter<'s, 'p, R::Writer>;

    fn get(&self, name: &str) -> Result<Option<Self::Reader>, Error> {
        Ok(self
            .call(false, |store| store.get(name))?
            .map(|inner| GuardedReader {
                inner,
                remote: self.remote,
                session: self.session,
            }))
    }

    fn head(&self, name: &str) -> Result<Option<ObjectMeta>, Error> {
        self.call(false, |store| store.head(name))
    }

    fn put(&self, name: &str, size_hint: Option<u64>) -> Result<Self::Writer, Error> {
        let inner = self.call(true, |store| store.put(name, size_hint))?;
        Ok(GuardedWriter {
            inner,
            remote: self.remote,
            session: self.session,
        })
    }

    fn put_object(&self, name: &str, bytes: &[u8]) -> Result<(), Error> {
        // A whole transfer that was cut off or timed out may have failed
        // midway, and sending it again costs all of it: not retried. One
        // the server answered with a server error was refused whole (S3's
        // 503 Slow Down, Garage's "database is locked"): retried as any
        // request is (REMOTE-15), or the entry is missing from the remote
        // for every other machine.
        self.call_retrying(
            true,
            |kind| kind == ErrorKind::ServerError,
            |store| store.put_object(name, bytes),
        )?;
        let mut stats = self.session.stats.borrow_mut();
        stats.bytes_up = stats.bytes_up.saturating_add(bytes.len() as u64);
        Ok(())
    }

    fn delete(&self, name: &str) -> Result<(), Error> {
        self.call(true, |store| store.delete(name))
    }

    fn list(
        &self,
        prefix: &str,
        visit: &mut dyn FnMut(&str, u64) -> ControlFlow<()>,
    ) -> Result<(), Error> {
        // Not retried: `visit` has seen the names before a failure.
        let session = self.session;
        if let Some(error) = session.refusal(self.remote, false) {
            return Err(error);
        }
        self.inner.set_deadline(session.deadline.get());
        Guarded::<'_, '_, NeverStore>::step(session, self.remote, || self.inner.list(prefix, visit))
    }
    // Codec 1 is the host's (REMOTE-6): the guard only times the requests.
    fn zstd_encoder(&self, raw_size: u64) -> Option<alloc::boxed::Box<dyn super::ZstdEncoder>> {
        self.inner.zstd_encoder(raw_size)
    }

    fn zstd_decoder<'a>(
        &self,
        body: alloc::boxed::Box<dyn RemoteRead + 'a>,
        raw_size: u64,
    ) -> Option<alloc::boxed::Box<dyn RemoteRead + 'a>> {
        self.inner.zstd_decoder(body, raw_size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remote::breaker::Admission;

    /// A clock that only moves when slept on or told to.
    #[derive(Default)]
    struct FakeClock(Cell<u64>);

    impl Pacer for FakeClock {
        fn now_ms(&self) -> u64 {
            self.0.get()
        }
        fn sleep_ms(&self, ms: u64) {
            self.0.set(self.0.get() + ms);
        }
    }

    /// A store whose requests fail with the queued errors, then succeed;
    /// each request takes `cost_ms` of the clock.
    struct Scripted<'c> {
        clock: &'c FakeClock,
        errors: RefCell<Vec<ErrorKind>>,
        requests: Cell<u32>,
        cost_ms: u64,
    }

    impl<'c> Scripted<'c> {
        fn new(clock: &'c FakeClock, errors: &[ErrorKind], cost_ms: u64) -> Scripted<'c> {
            let mut errors = errors.to_vec();
            errors.reverse();
            Scripted {
                clock,
                errors: RefCell::new(errors),
                requests: Cell::new(0),
                cost_ms,
            }
        }

        fn request(&self) -> Result<(), Error> {
            self.requests.set(self.requests.get() + 1);
            self.clock.sleep_ms(self.cost_ms);
            match self.errors.borrow_mut().pop() {
                Some(kind) => Err(Error::new(kind, "scripted")),
                None => Ok(()),
            }
        }
    }

    impl RemoteStore for Scripted<'_> {
        type Reader = NeverStore;
        type Writer = NeverStore;
        fn get(&self, _: &str) -> Result<Option<NeverStore>, Error> {
            self.request().map(|()| None)
        }
        fn head(&self, _: &str) -> Result<Option<ObjectMeta>, Error> {
            self.request().map(|()| Some(ObjectMeta { size: 1 }))
        }
        fn put(&self, _: &str, _: Option<u64>) -> Result<NeverStore, Error> {
            self.request()?;
            Err(Error::new(ErrorKind::Other, "no writer in this test"))
        }
        fn put_object(&self, _: &str, _: &[u8]) -> Result<(), Error> {
            self.request()
        }
        fn delete(&self, _: &str) -> Result<(), Error> {
            self.request()
        }
        fn list(
            &self,
            _: &str,
            _: &mut dyn FnMut(&str, u64) -> ControlFlow<()>,
        ) -> Result<(), Error> {
            self.request()
        }
    }

    impl TimeLimited for Scripted<'_> {
        fn set_deadline(&self, _: Option<u64>) {}
    }

    #[test]
    fn remote_15_transient_failures_are_retried_with_backoff_then_succeed() {
        let clock = FakeClock::default();
        let session = RemoteSession::new(FaultPolicy::default(), &clock, &["r"]);
        let store = Scripted::new(&clock, &[ErrorKind::ServerError, ErrorKind::Unreachable], 1);
        let guarded = session.guard(0, &store);
        assert_eq!(guarded.head("x").unwrap(), Some(ObjectMeta { size: 1 }));
        assert_eq!(store.requests.get(), 3);
        assert_eq!(clock.now_ms(), 3 + 100 + 200);
        assert!(session.is_usable(0));
        let stats = session.stats();
        assert_eq!(
            stats.errors,
            [(ErrorKind::ServerError, 1), (ErrorKind::Unreachable, 1)]
        );
        assert_eq!(stats.time_ms, 303);
    }

    #[test]
    fn remote_15_a_whole_object_upload_cut_off_is_never_retried_one_refused_is() {
        let clock = FakeClock::default();
        let record = [7u8; 100];
        for cut_off in [ErrorKind::TimedOut, ErrorKind::Unreachable] {
            let session = RemoteSession::new(FaultPolicy::default(), &clock, &["r"]);
            let store = Scripted::new(&clock, &[cut_off], 1);
            let guarded = session.guard(0, &store);
            let failed = guarded.put_object("record", &record).unwrap_err();
            assert_eq!(failed.kind, cut_off);
            assert_eq!(store.requests.get(), 1, "{cut_off:?} is not retried");
            assert_eq!(session.stats().bytes_up, 0);
            assert!(
                !session.is_usable(0),
                "a transient failure ends the run's use of it"
            );
        }

        // Refused whole with a server error: tried again after 100 ms.
        let session = RemoteSession::new(FaultPolicy::default(), &clock, &["r"]);
        let store = Scripted::new(&clock, &[ErrorKind::ServerError], 1);
        let before = clock.now_ms();
        session
            .guard(0, &store)
            .put_object("record", &record)
            .unwrap();
        assert_eq!(store.requests.get(), 2);
        assert_eq!(clock.now_ms() - before, 1 + 100 + 1);
        assert_eq!(session.stats().bytes_up, 100);
        assert!(session.is_usable(0));
        // ... at most 3 times in all, like any request.
        let session = RemoteSession::new(FaultPolicy::default(), &clock, &["r"]);
        let store = Scripted::new(&clock, &[ErrorKind::ServerError; 3], 1);
        let failed = session
            .guard(0, &store)
            .put_object("record", &record)
            .unwrap_err();
        assert_eq!(failed.kind, ErrorKind::ServerError);
        assert_eq!(store.requests.get(), 3);
        assert_eq!(session.stats().bytes_up, 0);

        let session = RemoteSession::new(FaultPolicy::default(), &clock, &["r"]);
        let store = Scripted::new(&clock, &[], 1);
        session
            .guard(0, &store)
            .put_object("record", &record)
            .unwrap();
        assert_eq!(session.stats().bytes_up, 100);
    }

    #[test]
    fn remote_15_other_failures_are_not_retried_and_the_remote_stays_usable() {
        let clock = FakeClock::default();
        let session = RemoteSession::new(FaultPolicy::default(), &clock, &["r"]);
        let store = Scripted::new(&clock, &[ErrorKind::Protocol], 1);
        let guarded = session.guard(0, &store);
        assert_eq!(guarded.head("x").unwrap_err().kind, ErrorKind::Protocol);
        assert_eq!(store.requests.get(), 1);
        assert!(session.is_writable(0));
    }

    #[test]
    fn remote_15_a_remote_that_keeps_failing_is_not_asked_again_in_the_run() {
        let clock = FakeClock::default();
        let session = RemoteSession::new(FaultPolicy::default(), &clock, &["r"]);
        let store = Scripted::new(&clock, &[ErrorKind::Unreachable; 5], 1);
        let guarded = session.guard(0, &store);
        assert_eq!(guarded.get("x").unwrap_err().kind, ErrorKind::Unreachable);
        assert_eq!(store.requests.get(), 3);
        assert!(!session.is_usable(0));
        assert!(guarded.head("y").is_err());
        assert!(guarded.delete("y").is_err());
        assert_eq!(
            store.requests.get(),
            3,
            "no request after the remote failed"
        );
    }

    #[test]
    fn remote_15_the_lookup_budget_bounds_every_attempt_and_retry() {
        let clock = FakeClock::default();
        let session = RemoteSession::new(FaultPolicy::default(), &clock, &["a", "b"]);
        // Each attempt spends 9.9 s: no retry fits in the 10 s budget, and
        // the second remote is not asked once it is spent.
        let a = Scripted::new(&clock, &[ErrorKind::TimedOut; 3], 9_950);
        let b = Scripted::new(&clock, &[], 1);
        session.begin_lookup();
        assert_eq!(
            session.guard(0, &a).get("x").unwrap_err().kind,
            ErrorKind::TimedOut
        );
        assert_eq!(a.requests.get(), 1);
        clock.sleep_ms(50);
        assert_eq!(
            session.guard(1, &b).get("x").unwrap_err().kind,
            ErrorKind::TimedOut
        );
        assert_eq!(b.requests.get(), 0);
        session.end_lookup();
        assert!(
            session.guard(1, &b).get("x").is_ok(),
            "a push has no budget"
        );
    }

    #[test]
    fn remote_16_a_refused_access_stops_writes_for_the_run_and_is_reported_once() {
        let clock = FakeClock::default();
        let session = RemoteSession::new(FaultPolicy::default(), &clock, &["r"]);
        let store = Scripted::new(&clock, &[ErrorKind::PermissionDenied], 1);
        let guarded = session.guard(0, &store);
        assert_eq!(
            guarded.get("x").unwrap_err().kind,
            ErrorKind::PermissionDenied
        );
        assert!(session.is_usable(0), "reads go on");
        assert!(!session.is_writable(0));
        assert!(session.take_refusal_report(0));
        assert!(!session.take_refusal_report(0));
        assert_eq!(
            guarded.delete("x").unwrap_err().kind,
            ErrorKind::PermissionDenied
        );
        assert_eq!(store.requests.get(), 1, "no write was sent");
        assert!(guarded.head("x").is_ok());
    }

    #[test]
    fn remote_17_a_run_trips_the_breakers_of_failed_remotes_and_closes_the_others() {
        let clock = FakeClock::default();
        let policy = FaultPolicy::default();
        let session = RemoteSession::new(policy, &clock, &["down", "up"]);
        let down = Scripted::new(&clock, &[ErrorKind::Unreachable; 3], 1);
        let up = Scripted::new(&clock, &[], 1);
        let mut book = BreakerBook::default();
        book.record_failure("up", 0, &policy);
        assert_eq!(session.admit(&mut book, 60_000), []);
        assert!(session.guard(0, &down).get("x").is_err());
        assert!(session.guard(1, &up).get("x").is_ok());
        assert_eq!(session.settle(&mut book, 70_000), [(0, 130_000)]);
        let next = RemoteSession::new(policy, &clock, &["down", "up"]);
        assert_eq!(next.admit(&mut book, 70_001), [(0, 130_000)]);
        assert!(!next.is_usable(0));
        assert!(next.is_usable(1));
        assert_eq!(book.admit("up", 70_001, &policy), Admission::Use);
    }
}
