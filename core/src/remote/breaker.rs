//! The circuit breaker of the remote tier (REMOTE-17): a remote that
//! failed transiently is left out of later runs for a cool-down instead
//! of costing each of them its time limit, then one run probes it again.
//!
//! The state of every remote lives in one small file of the cache
//! directory (`remote/breaker`, [`crate::layout::REMOTE_BREAKER_FILE`]),
//! shared by every process on that cache; this module decides and encodes,
//! the host reads and replaces the file. The file is untrusted input:
//! anything that does not parse is a closed breaker, never an error.
//!
//! Format, version 1, text: the line `cachet-breaker 1`, then one line per
//! remote whose breaker is not closed, `open <until> <trips> <label>` or
//! `probing <since> <trips> <label>`, where `<until>` and `<since>` are
//! milliseconds since the Unix epoch, `<trips>` the trips in a row, and
//! `<label>` the remote's URL (without credentials) up to the end of the
//! line. A closed remote has no line.

use alloc::string::String;
use alloc::vec::Vec;

use super::policy::FaultPolicy;

/// The first line of a breaker file.
const MAGIC: &str = "cachet-breaker 1";

/// The most bytes of a breaker file that are read; a longer file is
/// damaged (SAFE-1).
pub const MAX_BREAKER_FILE_BYTES: usize = 64 * 1024;

/// The most remotes a breaker file remembers; the lines past it are
/// dropped.
const MAX_REMOTES: usize = 256;

/// The breaker of one remote (REMOTE-17).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakerState {
    /// The remote is used.
    Closed,
    /// The remote is left out until `until_ms` (Unix milliseconds).
    Open {
        /// When the cool-down ends.
        until_ms: u64,
        /// Trips in a row, from 1.
        trips: u32,
    },
    /// One run has been probing the remote since `since_ms`; the others
    /// leave it out until the probe ends or a cool-down has passed
    /// without an answer (the prober may have died).
    Probing {
        /// When the probe began.
        since_ms: u64,
        /// Trips in a row before the probe.
        trips: u32,
    },
}

/// What a run does with a remote, by its breaker (REMOTE-17).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Use it.
    Use,
    /// Use it as the probe after a cool-down: its outcome closes the
    /// breaker or opens it again.
    Probe,
    /// Leave it out of this run.
    Skip {
        /// When it may be tried again (Unix milliseconds).
        until_ms: u64,
    },
}

/// The breakers of every remote of one cache directory, as kept in its
/// breaker file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BreakerBook {
    /// The remotes whose breaker is not closed, by label.
    entries: Vec<(String, BreakerState)>,
}

/// Whether `label` fits on one line of the file: labels that do not are
/// neither written nor read (closed).
fn is_writable_label(label: &str) -> bool {
    !label.is_empty() && !label.contains(['\n', '\r'])
}

impl BreakerBook {
    /// The book a breaker file holds. Damage of any kind (wrong first
    /// line, a malformed line, a file too long, bytes that are not UTF-8)
    /// closes the breakers it touches: a damaged file costs at most one
    /// more timeout, never an error.
    pub fn decode(bytes: &[u8]) -> BreakerBook {
        let mut book = BreakerBook::default();
        if bytes.len() > MAX_BREAKER_FILE_BYTES {
            return book;
        }
        let Ok(text) = core::str::from_utf8(bytes) else {
            return book;
        };
        let mut lines = text.split('\n');
        if lines.next() != Some(MAGIC) {
            return book;
        }
        for line in lines {
            if book.entries.len() >= MAX_REMOTES {
                break;
            }
            let mut fields = line.splitn(4, ' ');
            let (Some(state), Some(time), Some(trips), Some(label)) =
                (fields.next(), fields.next(), fields.next(), fields.next())
            else {
                continue;
            };
            let (Ok(time), Ok(trips)) = (time.parse::<u64>(), trips.parse::<u32>()) else {
                continue;
            };
            // A label `encode` would not write back (a line of a file
            // with CRLF line ends, say) is not read either, so that what a
            // process reads is what it writes.
            if !is_writable_label(label) || trips == 0 || book.position(label).is_some() {
                continue;
            }
            let state = match state {
                "open" => BreakerState::Open {
                    until_ms: time,
                    trips,
                },
                "probing" => BreakerState::Probing {
                    since_ms: time,
                    trips,
                },
                _ => continue,
            };
            book.entries.push((String::from(label), state));
        }
        book
    }

    /// The file's bytes for this book. Labels that could not be read back
    /// (empty, or holding a line break) are left out: closed.
    pub fn encode(&self) -> Vec<u8> {
        let mut text = String::from(MAGIC);
        for (label, state) in &self.entries {
            if !is_writable_label(label) {
                continue;
            }
            let (word, time, trips) = match *state {
                BreakerState::Closed => continue,
                BreakerState::Open { until_ms, trips } => ("open", until_ms, trips),
                BreakerState::Probing { since_ms, trips } => ("probing", since_ms, trips),
            };
            text.push('\n');
            text.push_str(&alloc::format!("{word} {time} {trips} {label}"));
        }
        text.push('\n');
        text.into_bytes()
    }

    fn position(&self, label: &str) -> Option<usize> {
        self.entries.iter().position(|(name, _)| name == label)
    }

    /// The breaker of the remote `label`.
    pub fn state(&self, label: &str) -> BreakerState {
        self.position(label)
            .and_then(|at| self.entries.get(at))
            .map_or(BreakerState::Closed, |(_, state)| *state)
    }

    fn set(&mut self, label: &str, state: BreakerState) {
        match (self.position(label), state) {
            (Some(at), BreakerState::Closed) => {
                self.entries.remove(at);
            }
            (Some(at), state) => {
                if let Some(entry) = self.entries.get_mut(at) {
                    entry.1 = state;
                }
            }
            (None, BreakerState::Closed) => {}
            (None, state) => self.entries.push((String::from(label), state)),
        }
    }

    /// Whether a run starting at `now_ms` uses the remote `label`. An open
    /// breaker whose cool-down has passed, or a probe that has not ended
    /// within a cool-down, makes this run the probe: the book then says
    /// so, for the other processes, once the host writes it back.
    pub fn admit(&mut self, label: &str, now_ms: u64, policy: &FaultPolicy) -> Admission {
        match self.state(label) {
            BreakerState::Closed => Admission::Use,
            BreakerState::Open { until_ms, .. } if now_ms < until_ms => {
                Admission::Skip { until_ms }
            }
            BreakerState::Probing { since_ms, trips }
                if now_ms < since_ms.saturating_add(policy.cooldown_for(trips)) =>
            {
                Admission::Skip {
                    until_ms: since_ms.saturating_add(policy.cooldown_for(trips)),
                }
            }
            BreakerState::Open { trips, .. } | BreakerState::Probing { trips, .. } => {
                self.set(
                    label,
                    BreakerState::Probing {
                        since_ms: now_ms,
                        trips,
                    },
                );
                Admission::Probe
            }
        }
    }

    /// The remote `label` answered in this run without a transient
    /// failure: its breaker closes.
    pub fn record_success(&mut self, label: &str) {
        self.set(label, BreakerState::Closed);
    }

    /// The probe of the remote `label` ended without asking it anything
    /// (the run needed no remote): the next run at or after `now_ms`
    /// probes instead.
    pub fn release_probe(&mut self, label: &str, now_ms: u64) {
        if let BreakerState::Probing { trips, .. } = self.state(label) {
            self.set(
                label,
                BreakerState::Open {
                    until_ms: now_ms,
                    trips,
                },
            );
        }
    }

    /// The remote `label` failed transiently in this run, after its
    /// retries: its breaker opens (REMOTE-17), for a cool-down that doubles
    /// with each trip in a row. Returns when it may be tried again.
    pub fn record_failure(&mut self, label: &str, now_ms: u64, policy: &FaultPolicy) -> u64 {
        let trips = match self.state(label) {
            BreakerState::Closed => 1,
            BreakerState::Open { trips, .. } | BreakerState::Probing { trips, .. } => {
                trips.saturating_add(1)
            }
        };
        let until_ms = now_ms.saturating_add(policy.cooldown_for(trips));
        self.set(label, BreakerState::Open { until_ms, trips });
        until_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S3: &str = "s3://team-cache?endpoint=http://127.0.0.1:3900&region=garage";

    #[test]
    fn remote_17_a_failure_opens_the_breaker_for_a_cooldown_then_one_probe() {
        let policy = FaultPolicy::default();
        let mut book = BreakerBook::default();
        assert_eq!(book.admit(S3, 1_000, &policy), Admission::Use);
        assert_eq!(book.record_failure(S3, 1_000, &policy), 61_000);
        assert_eq!(
            book.admit(S3, 60_999, &policy),
            Admission::Skip { until_ms: 61_000 }
        );
        assert_eq!(book.admit(S3, 61_000, &policy), Admission::Probe);
        // While one run probes, the others stay out.
        assert_eq!(
            book.admit(S3, 61_001, &policy),
            Admission::Skip { until_ms: 121_000 }
        );
        // A failed probe opens it again, for twice as long.
        assert_eq!(book.record_failure(S3, 62_000, &policy), 182_000);
        assert_eq!(book.admit(S3, 182_000, &policy), Admission::Probe);
        book.record_success(S3);
        assert_eq!(book.state(S3), BreakerState::Closed);
        assert_eq!(book.admit(S3, 182_001, &policy), Admission::Use);
    }

    #[test]
    fn remote_17_a_probe_that_never_ends_is_retried_after_a_cooldown() {
        let policy = FaultPolicy::default();
        let mut book = BreakerBook::default();
        book.record_failure(S3, 0, &policy);
        assert_eq!(book.admit(S3, 60_000, &policy), Admission::Probe);
        assert_eq!(book.admit(S3, 120_000, &policy), Admission::Probe);
    }

    /// Found by the `breaker_file` fuzz target: a line with a carriage
    /// return in its label was read, and then left out when written back.
    #[test]
    fn remote_17_a_label_with_a_carriage_return_is_a_closed_breaker() {
        let bytes = b"cachet-breaker 1\r\nopen 5 1 file:///d\r\nopen 6 1 file:///e\n";
        let book = BreakerBook::decode(bytes);
        assert_eq!(book.state("file:///d\r"), BreakerState::Closed);
        assert_eq!(book.state("file:///d"), BreakerState::Closed);
        assert_eq!(
            BreakerBook::decode(b"cachet-breaker 1\nopen 5 1 file:///d\r\nopen 6 1 file:///e\n")
                .entries
                .len(),
            1
        );
        assert_eq!(BreakerBook::decode(&book.encode()), book);
    }

    #[test]
    fn remote_17_the_book_round_trips_through_its_file() {
        let policy = FaultPolicy::default();
        let mut book = BreakerBook::default();
        book.record_failure(S3, 5, &policy);
        book.record_failure("webdav+http://127.0.0.1:8080/dav a b", 7, &policy);
        book.record_failure("webdav+http://127.0.0.1:8080/dav a b", 8, &policy);
        book.record_failure("file:///x", 9, &policy);
        assert_eq!(book.admit("file:///x", 60_009, &policy), Admission::Probe);
        let bytes = book.encode();
        assert_eq!(
            core::str::from_utf8(&bytes).unwrap(),
            "cachet-breaker 1\nopen 60005 1 s3://team-cache?endpoint=http://127.0.0.1:3900&region=garage\nopen 120008 2 webdav+http://127.0.0.1:8080/dav a b\nprobing 60009 1 file:///x\n"
        );
        assert_eq!(BreakerBook::decode(&bytes), book);
        book.record_success(S3);
        book.record_success("file:///x");
        book.record_success("webdav+http://127.0.0.1:8080/dav a b");
        assert_eq!(book.encode(), b"cachet-breaker 1\n");
    }

    #[test]
    fn remote_17_damage_closes_the_breakers_it_touches_and_never_panics() {
        let good = b"cachet-breaker 1\nopen 100 1 file:///a\nopen 100 1 file:///b\n";
        assert_eq!(
            BreakerBook::decode(good).state("file:///b"),
            BreakerState::Open {
                until_ms: 100,
                trips: 1
            }
        );
        for damaged in [
            &b""[..],
            b"cachet-breaker 2\nopen 100 1 file:///b\n",
            b"\xff\xfe",
            b"cachet-breaker 1\nopen x 1 file:///b\n",
            b"cachet-breaker 1\nopen 100 0 file:///b\n",
            b"cachet-breaker 1\nshut 100 1 file:///b\n",
            b"cachet-breaker 1\nopen 100 1\n",
            b"cachet-breaker 1\nopen 100 1 \n",
            b"cachet-breaker 1\nopen 99999999999999999999999 1 file:///b\n",
        ] {
            assert_eq!(
                BreakerBook::decode(damaged).state("file:///b"),
                BreakerState::Closed,
                "{damaged:?}"
            );
        }
        let long = alloc::vec![b'x'; MAX_BREAKER_FILE_BYTES + 1];
        assert_eq!(BreakerBook::decode(&long), BreakerBook::default());
        // Every prefix and every single-byte change of a good file decodes.
        for end in 0..good.len() {
            let _ = BreakerBook::decode(&good[..end]);
        }
        for at in 0..good.len() {
            for value in [0u8, b' ', b'\n', 0xff] {
                let mut bytes = good.to_vec();
                bytes[at] = value;
                let _ = BreakerBook::decode(&bytes);
            }
        }
    }

    #[test]
    fn remote_17_a_label_with_a_line_break_is_never_written() {
        let policy = FaultPolicy::default();
        let mut book = BreakerBook::default();
        book.record_failure("file:///a\nopen 1 1 file:///b", 0, &policy);
        assert_eq!(book.encode(), b"cachet-breaker 1\n");
    }
}
