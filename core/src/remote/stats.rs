//! What the remote tier did in one run, for the line `cachet -v run` ends
//! with (REMOTE-19): hits and misses per tier, failed requests by kind,
//! bytes moved and time spent.

use alloc::string::String;
use alloc::vec::Vec;

use super::{ChainLookup, ErrorKind, Found};

/// Hits and misses of one tier.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TierCount {
    /// The tier: `local`, or a remote's label.
    pub label: String,
    /// Lookups it served.
    pub hits: u32,
    /// Lookups it was asked and did not serve (failures included).
    pub misses: u32,
    /// Whether its circuit breaker kept it out of this run (REMOTE-17).
    pub skipped: bool,
}

/// The remote statistics of one run (REMOTE-19).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RemoteStats {
    /// The local cache, then each remote in lookup order.
    pub tiers: Vec<TierCount>,
    /// Failed requests (every attempt counts) by kind, in first-seen order.
    pub errors: Vec<(ErrorKind, u32)>,
    /// Bytes read from the remotes.
    pub bytes_down: u64,
    /// Bytes written to the remotes.
    pub bytes_up: u64,
    /// Milliseconds spent waiting on the remotes (requests, transfers and
    /// the waits between retries).
    pub time_ms: u64,
}

impl RemoteStats {
    /// Empty statistics for the local cache and the remotes `labels`.
    pub fn new<'a>(labels: impl IntoIterator<Item = &'a str>) -> RemoteStats {
        let mut tiers = alloc::vec![TierCount {
            label: String::from("local"),
            ..TierCount::default()
        }];
        tiers.extend(labels.into_iter().map(|label| TierCount {
            label: String::from(label),
            ..TierCount::default()
        }));
        RemoteStats {
            tiers,
            ..RemoteStats::default()
        }
    }

    /// Counts a lookup that only the local cache was asked: a hit, or a
    /// miss with every remote left out.
    pub fn count_local(&mut self, hit: bool) {
        if let Some(local) = self.tiers.first_mut() {
            if hit {
                local.hits += 1;
            } else {
                local.misses += 1;
            }
        }
    }

    /// Counts a lookup through the chain. `indices` maps the chain's
    /// positions to positions among the remotes of [`RemoteStats::new`]
    /// (a chain may leave skipped remotes out).
    pub fn count_lookup(&mut self, chain: &ChainLookup, indices: &[usize]) {
        match chain.found {
            Some(Found::Local) => self.count_local(true),
            _ => self.count_local(false),
        }
        // A remote counts one miss per lookup, however many tenants were
        // read on it (REMOTE-11).
        let mut missed: Vec<usize> = chain.misses.iter().map(|miss| miss.0).collect();
        for failure in &chain.failures {
            let position = indices.iter().position(|&remote| {
                self.tiers
                    .get(remote + 1)
                    .is_some_and(|tier| tier.label == failure.remote)
            });
            missed.extend(position);
        }
        missed.sort_unstable();
        missed.dedup();
        for at in missed {
            if let Some(remote) = indices.get(at).and_then(|&r| self.tiers.get_mut(r + 1)) {
                remote.misses += 1;
            }
        }
        if let Some(Found::Remote { index, .. }) = &chain.found
            && let Some(remote) = indices.get(*index).and_then(|&r| self.tiers.get_mut(r + 1))
        {
            remote.hits += 1;
        }
    }

    /// Marks the remote at `remote` (position among the remotes) as kept
    /// out by its breaker.
    pub fn mark_skipped(&mut self, remote: usize) {
        if let Some(tier) = self.tiers.get_mut(remote + 1) {
            tier.skipped = true;
        }
    }

    /// Counts one failed request of `kind`.
    pub fn count_error(&mut self, kind: ErrorKind) {
        match self.errors.iter_mut().find(|(seen, _)| *seen == kind) {
            Some((_, count)) => *count += 1,
            None => self.errors.push((kind, 1)),
        }
    }
}

/// One line: `remote statistics: local 0 hits 1 miss; s3://… 1 hit 0
/// misses; errors: none; 1234 bytes down, 0 bytes up; 0.042 s`.
impl core::fmt::Display for RemoteStats {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let plural =
            |n: u32, one: &'static str, many: &'static str| if n == 1 { one } else { many };
        f.write_str("remote statistics:")?;
        for (at, tier) in self.tiers.iter().enumerate() {
            let separator = if at == 0 { " " } else { "; " };
            if tier.skipped {
                write!(
                    f,
                    "{separator}{} skipped (circuit breaker open)",
                    tier.label
                )?;
            } else {
                write!(
                    f,
                    "{separator}{} {} {} {} {}",
                    tier.label,
                    tier.hits,
                    plural(tier.hits, "hit", "hits"),
                    tier.misses,
                    plural(tier.misses, "miss", "misses")
                )?;
            }
        }
        f.write_str("; errors: ")?;
        if self.errors.is_empty() {
            f.write_str("none")?;
        }
        for (at, (kind, count)) in self.errors.iter().enumerate() {
            if at > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{count} {kind}")?;
        }
        write!(
            f,
            "; {} bytes down, {} bytes up; {}.{:03} s",
            self.bytes_down,
            self.bytes_up,
            self.time_ms / 1000,
            self.time_ms % 1000
        )
    }
}
