//! [`WasiContext`]: the clock and the randomness the cache operations need
//! (the core's [`Context`]), from WASI preview 1.

use cachet_core::cache::Context;
use cachet_core::fs::Timestamp;

use crate::sys;

/// The realtime clock (`clock_time_get`) and random scratch suffixes
/// (`random_get`, DISK-5).
#[derive(Debug, Default)]
pub struct WasiContext {
    /// Mixed into every suffix, so successive suffixes differ even if the
    /// host's random source failed.
    counter: u64,
}

impl WasiContext {
    /// A context over the host's clock and random source.
    pub fn new() -> WasiContext {
        WasiContext::default()
    }
}

impl Context for WasiContext {
    fn now(&self) -> Timestamp {
        // A host without a realtime clock yields the epoch: entries then
        // look old to clean's max-age, which errs toward a miss.
        let nanos = sys::realtime_nanos().unwrap_or(0);
        Timestamp {
            seconds: nanos / 1_000_000_000,
            // Below 10^9, so it fits.
            nanos: (nanos % 1_000_000_000) as u32,
        }
    }

    fn scratch_suffix(&mut self) -> u64 {
        let mut bytes = [0u8; 8];
        // Without host randomness the clock and the counter still make
        // suffixes differ within this process; across processes, a clash
        // makes create_dir fail with AlreadyExists, never a mix-up.
        if sys::random_fill(&mut bytes).is_err() {
            bytes = sys::realtime_nanos().unwrap_or(0).to_le_bytes();
        }
        self.counter = self.counter.wrapping_add(1);
        u64::from_le_bytes(bytes) ^ self.counter.wrapping_mul(0x9e37_79b9_7f4a_7c15)
    }
}
