//! The remote tier as a host runs it: the stores of a configuration,
//! opened once, and for each run (one command, or one call of the task
//! API) a fault session (REMOTE-15..19), the circuit breakers read before
//! and written after it (REMOTE-17), and the [`Chain`] the run looks up
//! and pushes through (REMOTE-1, REMOTE-2).
//!
//! What a lookup or a push does, which remote is asked and what is
//! trusted are decided in `cachet_core::remote` and run by
//! [`cachet_cli::remote::Chain`]; this module only assembles them, once,
//! for the `cachet` command and for [`crate::task::TaskCache`] alike.

use std::io::Write;
use std::path::Path;

use cachet_cli::remote::{Chain, RemoteConfig};
use cachet_core::remote::guard::{Guarded, RemoteSession};
use cachet_core::remote::names::Tenant;
use cachet_core::remote::policy::FaultPolicy;
use cachet_core::remote::{Remote, RemoteOptions};

use super::breakers::Breakers;
use super::{OpendalRemote, SetupError, SystemPacer, open_remotes};

/// Where a run's messages go: warnings (REMOTE-3) always, the `-v` lines
/// only when verbose.
pub(crate) struct Messages<'w> {
    verbose: bool,
    out: &'w mut dyn Write,
    /// Where [`Messages::warn`] puts its lines instead of `out`, for a
    /// caller that reports them rather than printing them.
    kept: Option<Vec<String>>,
}

impl<'w> Messages<'w> {
    /// Messages written to `out`, the `-v` ones only when `verbose`.
    pub(crate) fn new(verbose: bool, out: &'w mut dyn Write) -> Messages<'w> {
        Messages {
            verbose,
            out,
            kept: None,
        }
    }

    /// No `-v` lines, and the warnings kept for [`Messages::into_kept`]
    /// rather than written to `out`.
    pub(crate) fn keeping(out: &'w mut dyn Write) -> Messages<'w> {
        Messages {
            verbose: false,
            out,
            kept: Some(Vec::new()),
        }
    }

    /// The warnings kept by a [`Messages::keeping`].
    pub(crate) fn into_kept(self) -> Vec<String> {
        self.kept.unwrap_or_default()
    }

    /// Whether the `-v` lines are written.
    pub(crate) fn verbose(&self) -> bool {
        self.verbose
    }

    /// Where the messages go.
    pub(crate) fn out(&mut self) -> &mut dyn Write {
        self.out
    }

    /// One warning line, `-v` or not.
    pub(crate) fn warn(&mut self, message: &dyn core::fmt::Display) {
        match &mut self.kept {
            Some(kept) => kept.push(message.to_string()),
            None => cachet_cli::remote::warn(self.out, message),
        }
    }

    /// One `-v` line.
    pub(crate) fn say(&mut self, message: core::fmt::Arguments<'_>) {
        if self.verbose {
            let _ = writeln!(self.out, "cachet: {message}");
            let _ = self.out.flush();
        }
    }
}

/// The remote stores of one configuration, opened: what a run looks
/// entries up in after a local miss and pushes its results to.
#[derive(Debug)]
pub struct RemoteTier {
    config: RemoteConfig,
    stores: Vec<Remote<OpendalRemote>>,
    setup_failures: Vec<SetupError>,
}

impl RemoteTier {
    /// Opens the stores of `config`, in lookup order; `env` looks up a
    /// variable (S3 credentials). A store that cannot be set up is left
    /// out and named in [`RemoteTier::setup_failures`], never an error
    /// (REMOTE-3).
    pub fn open(config: RemoteConfig, env: &dyn Fn(&str) -> Option<String>) -> RemoteTier {
        let (stores, setup_failures) = open_remotes(&config, env);
        RemoteTier {
            config,
            stores,
            setup_failures,
        }
    }

    /// The tier of a cache without remotes: the run's own tenant is
    /// `local`, and nothing is asked.
    pub fn none() -> RemoteTier {
        RemoteTier::without_stores(RemoteConfig {
            remotes: Vec::new(),
            tenant: Tenant::local(),
            trusted: Vec::new(),
            read_only: false,
            signing_key: None,
            policy: FaultPolicy::default(),
        })
    }

    /// The tier of `config` with none of its stores: the tenants and
    /// options stand, nothing is asked.
    pub fn without_stores(config: RemoteConfig) -> RemoteTier {
        RemoteTier {
            config: RemoteConfig {
                remotes: Vec::new(),
                ..config
            },
            stores: Vec::new(),
            setup_failures: Vec::new(),
        }
    }

    /// The configuration the tier was opened with.
    pub fn config(&self) -> &RemoteConfig {
        &self.config
    }

    /// The stores that could not be set up, each a warning line.
    pub fn setup_failures(&self) -> &[SetupError] {
        &self.setup_failures
    }

    /// Whether the tier has no store to ask.
    pub fn is_empty(&self) -> bool {
        self.stores.is_empty()
    }

    /// Runs `body` as one run of the tier: with one fault session over
    /// every store (time limits, retries, writes stopped after a refused
    /// access, statistics: REMOTE-15..19), and, unless `health_check`
    /// (`remote status`, which asks every store whatever its breaker
    /// says), the breakers of `cache_dir` keeping out the stores that
    /// failed in earlier runs and recording how this one went (REMOTE-17).
    pub(crate) fn run<T>(
        &self,
        cache_dir: &Path,
        health_check: bool,
        messages: &mut Messages<'_>,
        body: impl FnOnce(&Chain<'_, Guarded<'_, '_, &OpendalRemote>>, &mut Messages<'_>) -> T,
    ) -> T {
        let pacer = SystemPacer;
        let labels: Vec<&str> = self.stores.iter().map(|r| r.label.as_str()).collect();
        let session = RemoteSession::new(self.config.policy, &pacer, &labels);
        let mut breakers =
            (!health_check).then(|| Breakers::load(&session, cache_dir, &mut *messages));
        let positions: Vec<usize> = (0..self.stores.len())
            .filter(|&at| session.is_usable(at))
            .collect();
        let guarded: Vec<Remote<Guarded<'_, '_, &OpendalRemote>>> = positions
            .iter()
            .filter_map(|&at| self.stores.get(at).map(|r| (at, r)))
            .map(|(at, r)| Remote {
                store: session.guard(at, &r.store),
                writable: r.writable,
                label: r.label.clone(),
            })
            .collect();
        let chain = Chain {
            remotes: &guarded,
            tenant: self.config.tenant.clone(),
            reading: self.config.reading_order(),
            options: RemoteOptions {
                signing_key: self.config.signing_key.clone(),
                ..RemoteOptions::default()
            },
            verbose: messages.verbose(),
            session: Some(&session),
            positions,
        };
        let result = body(&chain, &mut *messages);
        if let Some(breakers) = breakers.as_mut() {
            breakers.settle(&session, messages);
        }
        result
    }
}
