//! `cachet remote status` (REMOTE-20): what one remote allows, found by
//! the cheapest requests that say so.

use alloc::string::String;
use alloc::vec::Vec;
use core::ops::ControlFlow;

use super::names::{self, Tenant};
use super::{ErrorKind, Remote, RemoteFailure, RemoteOp, RemoteStore, RemoteWrite};
use crate::hash::HashFunction;

/// The bytes of the probe object, written and removed at once.
const PROBE: &[u8] = b"cachet remote status probe\n";

/// What [`check`] found on one remote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Health {
    /// The remote answered a request (even with a refusal).
    pub reachable: bool,
    /// Microseconds the first request took, when it was answered.
    pub latency_micros: Option<u64>,
    /// Whether objects may be read.
    pub readable: bool,
    /// Whether objects may be written and deleted; `None` when the remote
    /// is read-only and nothing was tried.
    pub writable: Option<bool>,
    /// The records of the tenant, counted up to the cap; `None` when the
    /// listing failed.
    pub entries: Option<u64>,
    /// The count stopped at the cap: there are at least that many.
    pub entries_capped: bool,
    /// What failed, each once.
    pub failures: Vec<RemoteFailure>,
}

impl Health {
    /// Whether the remote does all it is configured for: reachable,
    /// readable, and writable unless read-only.
    pub fn is_healthy(&self) -> bool {
        self.reachable && self.readable && self.writable != Some(false)
    }
}

/// REMOTE-20: checks `remote` with at most four requests: a `head` of a
/// name that does not exist (reachability, latency from `now_micros`,
/// read permission), a `put` and `delete` of a probe object named with
/// `nonce` below the namespace's `probes/` (only when writable), and one
/// listing of the tenant's records, stopped after `entry_cap` names.
pub fn check<R: RemoteStore>(
    remote: &Remote<R>,
    tenant: &Tenant,
    function: HashFunction,
    nonce: &str,
    entry_cap: u64,
    now_micros: &mut dyn FnMut() -> u64,
) -> Health {
    let namespace = names::namespace(function);
    let mut health = Health {
        reachable: false,
        latency_micros: None,
        readable: false,
        writable: None,
        entries: None,
        entries_capped: false,
        failures: Vec::new(),
    };
    let fail = |op, object: &str, error| RemoteFailure {
        remote: remote.label.clone(),
        op,
        object: String::from(object),
        error,
    };
    let probe = alloc::format!("{namespace}/probes/{nonce}");
    let started = now_micros();
    match remote.store.head(&probe) {
        Ok(_) => {
            health.reachable = true;
            health.readable = true;
            health.latency_micros = Some(now_micros().saturating_sub(started));
        }
        Err(error) => {
            if error.kind == ErrorKind::PermissionDenied {
                health.reachable = true;
                health.latency_micros = Some(now_micros().saturating_sub(started));
            }
            health.failures.push(fail(RemoteOp::Probe, &probe, error));
            if !health.reachable {
                return health;
            }
        }
    }
    if remote.writable {
        let written = remote
            .store
            .put(&probe, Some(PROBE.len() as u64))
            .and_then(|mut writer| {
                writer.write_all(PROBE)?;
                writer.finish()
            })
            .and_then(|()| remote.store.delete(&probe));
        health.writable = Some(written.is_ok());
        if let Err(error) = written {
            health.failures.push(fail(RemoteOp::Probe, &probe, error));
        }
    }
    if health.readable {
        let prefix = names::records_prefix(function, tenant);
        let mut count: u64 = 0;
        let mut capped = false;
        let listed = remote.store.list(&prefix, &mut |_, _| {
            if count >= entry_cap {
                capped = true;
                return ControlFlow::Break(());
            }
            count += 1;
            ControlFlow::Continue(())
        });
        match listed {
            Ok(()) => {
                health.entries = Some(count);
                health.entries_capped = capped;
            }
            Err(error) => health.failures.push(fail(RemoteOp::List, &prefix, error)),
        }
    }
    health
}
