//! The circuit breakers of one run's remotes (REMOTE-17) on disk, and the
//! `-v` statistics line (REMOTE-19): the decisions are
//! `cachet_core::remote::guard`'s and `breaker`'s, this only reads and
//! writes the file around a command.

use cachet_core::remote::{self, guard::RemoteSession};

use super::tier::Messages;

/// The circuit breakers of this cache's remotes (REMOTE-17), loaded when
/// the run starts and written back when it ends.
pub(crate) struct Breakers {
    cache_dir: std::path::PathBuf,
    book: remote::breaker::BreakerBook,
    loaded: Vec<u8>,
}

/// Milliseconds since the Unix epoch: breaker times are shared between
/// processes.
fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
        })
}

impl Breakers {
    /// Reads the breakers and admits the session's remotes: a remote whose
    /// breaker is open is skipped, with one line saying so; a probe is
    /// written back at once, so that concurrent runs leave it to this one.
    pub(crate) fn load(
        session: &RemoteSession<'_>,
        cache_dir: &std::path::Path,
        messages: &mut Messages<'_>,
    ) -> Breakers {
        let mut breakers = Breakers {
            cache_dir: cache_dir.to_path_buf(),
            book: remote::breaker::BreakerBook::default(),
            loaded: Vec::new(),
        };
        if session.labels().is_empty() {
            return breakers;
        }
        breakers.book = crate::remote::read_breakers(cache_dir);
        breakers.loaded = breakers.book.encode();
        let now = unix_ms();
        for (at, until) in session.admit(&mut breakers.book, now) {
            let label = session.labels().get(at).map_or("?", String::as_str);
            messages.warn(&format_args!(
                "remote {label}: skipped for {:.0} s more: it failed in an earlier run (circuit breaker in {}); treated as a miss",
                until.saturating_sub(now).div_ceil(1000),
                crate::remote::breaker_path(cache_dir).display()
            ));
        }
        breakers.save(messages);
        breakers
    }

    /// Records the run's outcome in the breakers and writes them back;
    /// with `-v`, prints the remote statistics (REMOTE-19).
    pub(crate) fn settle(&mut self, session: &RemoteSession<'_>, messages: &mut Messages<'_>) {
        if session.labels().is_empty() {
            return;
        }
        for (at, until) in session.settle(&mut self.book, unix_ms()) {
            let label = session.labels().get(at).map_or("?", String::as_str);
            messages.warn(&format_args!(
                "remote {label}: later runs on this cache skip it for {} s, then one tries it again",
                until.saturating_sub(unix_ms()).div_ceil(1000)
            ));
        }
        self.save(messages);
        messages.say(format_args!("{}", session.stats()));
    }

    fn save(&mut self, messages: &mut Messages<'_>) {
        let bytes = self.book.encode();
        if bytes == self.loaded {
            return;
        }
        match crate::remote::write_breakers(&self.cache_dir, &self.book) {
            Ok(()) => self.loaded = bytes,
            Err(error) => messages.say(format_args!(
                "could not write {}: {error}",
                crate::remote::breaker_path(&self.cache_dir).display()
            )),
        }
    }
}
