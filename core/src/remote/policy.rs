//! How cachet bounds what a slow, failing or absent remote can cost
//! (REMOTE-15, REMOTE-16): the time limits, which failures are worth
//! another attempt, and how long to wait before it.
//!
//! The values are decided here; hosts only apply them (a connect timeout
//! on their HTTP client, a time limit on each request).

use super::ErrorKind;

/// The time limits and retry schedule of the remote tier (REMOTE-15).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FaultPolicy {
    /// How long to wait for a connection to a remote. Default 3 s.
    pub connect_timeout_ms: u64,
    /// How long a whole lookup may take, across every remote, request and
    /// retry; also the longest any one request of a push may wait.
    /// Default 10 s.
    pub remote_timeout_ms: u64,
    /// How many times one request is tried in all when it fails
    /// transiently ([`ErrorKind::is_transient`]). Default 3.
    pub max_attempts: u32,
    /// The wait before the first retry; each further retry waits twice as
    /// long as the one before, up to [`FaultPolicy::max_backoff_ms`].
    /// Default 100 ms.
    pub first_backoff_ms: u64,
    /// The longest wait between two attempts. Default 1 s.
    pub max_backoff_ms: u64,
    /// How long a tripped circuit breaker keeps a remote out (REMOTE-17)
    /// after its first trip; doubled by each further trip in a row, up to
    /// [`FaultPolicy::max_cooldown_ms`]. Default 60 s.
    pub cooldown_ms: u64,
    /// The longest cool-down. Default 15 minutes.
    pub max_cooldown_ms: u64,
}

impl Default for FaultPolicy {
    fn default() -> FaultPolicy {
        FaultPolicy {
            connect_timeout_ms: 3_000,
            remote_timeout_ms: 10_000,
            max_attempts: 3,
            first_backoff_ms: 100,
            max_backoff_ms: 1_000,
            cooldown_ms: 60_000,
            max_cooldown_ms: 15 * 60_000,
        }
    }
}

impl FaultPolicy {
    /// The wait before attempt `attempt + 1`, after `attempt` attempts
    /// (counted from 1) failed, or `None` when no attempt is left.
    pub fn backoff_ms(&self, attempt: u32) -> Option<u64> {
        if attempt == 0 || attempt >= self.max_attempts {
            return None;
        }
        let doublings = (attempt - 1).min(32);
        Some(
            self.first_backoff_ms
                .saturating_mul(1u64 << doublings)
                .min(self.max_backoff_ms),
        )
    }

    /// The cool-down of the `trips`-th trip in a row (counted from 1).
    pub fn cooldown_for(&self, trips: u32) -> u64 {
        let doublings = trips.saturating_sub(1).min(32);
        self.cooldown_ms
            .saturating_mul(1u64 << doublings)
            .min(self.max_cooldown_ms.max(self.cooldown_ms))
    }
}

impl ErrorKind {
    /// Whether a failure of this kind may pass by itself, so that another
    /// attempt, later, may succeed (REMOTE-15): the remote could not be
    /// reached, did not answer in time, or answered with a server error.
    /// A refusal of the credentials, a missing object, a malformed answer
    /// or a bad configuration is the same on every attempt.
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            ErrorKind::Unreachable | ErrorKind::TimedOut | ErrorKind::ServerError
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_15_only_unreachable_timed_out_and_server_errors_are_transient() {
        for kind in [
            ErrorKind::Unreachable,
            ErrorKind::TimedOut,
            ErrorKind::ServerError,
        ] {
            assert!(kind.is_transient(), "{kind}");
        }
        for kind in [
            ErrorKind::NotFound,
            ErrorKind::PermissionDenied,
            ErrorKind::Protocol,
            ErrorKind::Config,
            ErrorKind::Other,
        ] {
            assert!(!kind.is_transient(), "{kind}");
        }
    }

    #[test]
    fn remote_15_retries_back_off_exponentially_and_stop() {
        let policy = FaultPolicy::default();
        assert_eq!(policy.backoff_ms(0), None);
        assert_eq!(policy.backoff_ms(1), Some(100));
        assert_eq!(policy.backoff_ms(2), Some(200));
        assert_eq!(policy.backoff_ms(3), None);
        let long = FaultPolicy {
            max_attempts: 100,
            ..policy
        };
        assert_eq!(long.backoff_ms(5), Some(1_000));
        assert_eq!(long.backoff_ms(99), Some(1_000));
    }

    #[test]
    fn remote_17_cooldowns_double_up_to_the_cap() {
        let policy = FaultPolicy::default();
        assert_eq!(policy.cooldown_for(1), 60_000);
        assert_eq!(policy.cooldown_for(2), 120_000);
        assert_eq!(policy.cooldown_for(5), 900_000);
        assert_eq!(policy.cooldown_for(u32::MAX), 900_000);
    }
}
