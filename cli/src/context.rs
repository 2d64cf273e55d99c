//! [`SystemContext`]: the core's [`Context`] over the system clock and the
//! operating system's random numbers, for native and WASI hosts alike.

use std::time::{SystemTime, UNIX_EPOCH};

use cachet_core::cache::Context;
use cachet_core::fs::Timestamp;

/// A [`Context`] whose clock is [`SystemTime`] and whose scratch-name
/// suffixes (DISK-5) come from `getrandom` (the `random_get` call on
/// WASI). Successive suffixes always differ; should the random source fail,
/// suffixes are derived from the clock and a counter.
#[derive(Debug, Default)]
pub struct SystemContext {
    last_suffix: Option<u64>,
    counter: u64,
}

impl SystemContext {
    /// A new context.
    pub fn new() -> SystemContext {
        SystemContext::default()
    }
}

impl Context for SystemContext {
    fn now(&self) -> Timestamp {
        match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(since) => Timestamp {
                seconds: since.as_secs(),
                nanos: since.subsec_nanos(),
            },
            // A clock set before 1970: the epoch is the nearest value.
            Err(_) => Timestamp::default(),
        }
    }

    fn scratch_suffix(&mut self) -> u64 {
        self.counter = self.counter.wrapping_add(1);
        let mut suffix = getrandom::u64().unwrap_or_else(|_| {
            let now = self.now();
            splitmix64(
                now.seconds
                    .wrapping_mul(1_000_000_007)
                    .wrapping_add(u64::from(now.nanos))
                    ^ self.counter.rotate_left(32),
            )
        });
        if self.last_suffix == Some(suffix) {
            suffix = suffix.wrapping_add(1);
        }
        self.last_suffix = Some(suffix);
        suffix
    }
}

/// A bijective mixer, so distinct inputs give distinct suffixes.
fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffixes_differ_and_the_clock_is_recent() {
        let mut ctx = SystemContext::new();
        let a = ctx.scratch_suffix();
        let b = ctx.scratch_suffix();
        assert_ne!(a, b);
        // 2020-01-01: any working clock is later.
        assert!(ctx.now().seconds > 1_577_836_800);
    }
}
