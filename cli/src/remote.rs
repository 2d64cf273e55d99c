//! Remote stores on the command line (docs/spec.md REMOTE-9): the flags,
//! their environment variables, and the URL forms, parsed into
//! [`RemoteSpec`]s that a host turns into stores.
//!
//! Flags win over the environment: `--remote URL` (repeatable, in lookup
//! order) else `CACHET_REMOTE` (comma-separated); `--tenant NAME` else
//! `CACHET_TENANT` else `local`; `--trust NAME` (repeatable, in reading
//! order) else `CACHET_TRUST` (comma-separated) (REMOTE-11);
//! `--remote-read-only` or `CACHET_REMOTE_READ_ONLY=1`; the signing key
//! only from `CACHET_REMOTE_SIGNING_KEY` (REMOTE-14) or a configuration
//! file's `remote.signing_key`, never a flag, so that it does not show in
//! process listings. Every variable is looked up through `env`, which
//! the configuration files (`crate::config`) stand behind. A malformed value is
//! [`CliError::InvalidValue`] (exit 65), naming the value and the forms
//! expected; a malformed signing key is [`CliError::InvalidSecret`], which
//! does not show it.

use crate::config::SIGNING_KEY_VARIABLE;
use cachet_core::remote::names::{self, Tenant};
use cachet_core::remote::policy::FaultPolicy;
use cachet_core::remote::sign::{self, SigningKey};
use std::io::Write;

use cachet_core::cache::{Cache, Context, HeldContents};
use cachet_core::fs::Filesystem;
use cachet_core::key::Key;
use cachet_core::remote::{
    self, Error, Found, ObjectMeta, PullOutcome, PushOutcome, Remote, RemoteFailure, RemoteOptions,
    RemoteRead, RemoteStore, RemoteWrite, guard::RemoteSession,
};
use clap::Args;
use serde::Serialize;

use crate::CliError;

/// What `--remote` accepts, for messages.
pub const EXPECTED_URLS: &str = "expected file:///ABSOLUTE/PATH, s3://BUCKET[/PREFIX]?endpoint=URL&region=NAME, or webdav+http(s)://HOST[:PORT]/PATH";

/// The remote-store flags of the native `cachet`, accepted by every
/// subcommand (`run`, `status`, `restore`, `store`, `push`, `pull`,
/// `remote status`).
#[derive(Args, Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RemoteArgs {
    /// A remote store to look entries up in and push them to, in lookup
    /// order: `file:///ABSOLUTE/PATH`,
    /// `s3://BUCKET[/PREFIX]?endpoint=URL&region=NAME` (credentials from
    /// AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY) or
    /// `webdav+http(s)://HOST[:PORT]/PATH`. Repeatable [default:
    /// $CACHET_REMOTE, comma-separated]
    #[arg(long = "remote", value_name = "URL", global = true)]
    pub remotes: Vec<String>,

    /// The tenant whose entry records are read and written on the remotes
    /// [default: $CACHET_TENANT, else local]
    #[arg(long, value_name = "NAME", global = true)]
    pub tenant: Option<String>,

    /// A tenant whose entry records are read after the run's own, never
    /// written; repeatable, in reading order [default: $CACHET_TRUST,
    /// comma-separated]
    #[arg(long = "trust", value_name = "NAME", global = true)]
    pub trust: Vec<String>,

    /// Never write to the remotes, only read them (also:
    /// CACHET_REMOTE_READ_ONLY=1)
    #[arg(long, global = true)]
    pub remote_read_only: bool,
}

/// Where one remote is.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RemoteLocation {
    /// A shared directory.
    Directory {
        /// Its absolute path.
        path: String,
    },
    /// An S3-compatible bucket.
    S3 {
        /// The bucket.
        bucket: String,
        /// The prefix inside it, without leading or trailing `/` (may be
        /// empty).
        prefix: String,
        /// The endpoint URL, if given.
        endpoint: Option<String>,
        /// The region [default: us-east-1].
        region: String,
    },
    /// A WebDAV server.
    Webdav {
        /// `http://HOST[:PORT]` or `https://…`.
        endpoint: String,
        /// The path on the server below which cachet owns every name.
        root: String,
    },
}

/// One remote as configured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteSpec {
    /// The URL as given: how messages name the remote (it holds no
    /// credentials, which URLs may not carry).
    pub url: String,
    /// Where it is.
    pub location: RemoteLocation,
}

/// The remote configuration of one command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteConfig {
    /// The remotes, in lookup order; empty when none is configured.
    pub remotes: Vec<RemoteSpec>,
    /// The tenant of every push, and the first of every lookup.
    pub tenant: Tenant,
    /// The tenants read after `tenant`, in order (REMOTE-11).
    pub trusted: Vec<Tenant>,
    /// Whether the remotes are only read.
    pub read_only: bool,
    /// The key that signs and checks records (REMOTE-12, REMOTE-13).
    pub signing_key: Option<SigningKey>,
    /// The time limits and retries (REMOTE-15).
    pub policy: FaultPolicy,
}

impl RemoteConfig {
    /// The tenants a lookup reads, in order: [`names::reading_order`].
    pub fn reading_order(&self) -> Vec<Tenant> {
        names::reading_order(&self.tenant, &self.trusted)
    }
}

/// What a tenant name must be, for messages.
const EXPECTED_TENANT: &str =
    "a tenant is 1 to 64 bytes of A-Z, a-z, 0-9, '_', '-' and '.', not starting with '.'";

fn parse_tenant(name: &str, flag: &'static str) -> Result<Tenant, CliError> {
    Tenant::new(name).map_err(|reason| CliError::InvalidValue {
        flag,
        value: name.to_string(),
        reason: format!("{EXPECTED_TENANT}; {reason}"),
    })
}

impl RemoteArgs {
    /// The configuration these flags and the environment (`env` looks a
    /// variable up) give.
    pub fn resolve(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<RemoteConfig, CliError> {
        let mut remotes = Vec::new();
        if self.remotes.is_empty() {
            if let Some(list) = env("CACHET_REMOTE") {
                for url in list.split(',').map(str::trim).filter(|url| !url.is_empty()) {
                    remotes.push(parse_url(url, "CACHET_REMOTE")?);
                }
            }
        } else {
            for url in &self.remotes {
                remotes.push(parse_url(url, "--remote")?);
            }
        }
        let (tenant_name, flag) = match (&self.tenant, env("CACHET_TENANT")) {
            (Some(name), _) => (Some(name.clone()), "--tenant"),
            (None, Some(name)) if !name.is_empty() => (Some(name), "CACHET_TENANT"),
            _ => (None, "--tenant"),
        };
        let tenant = match tenant_name {
            None => Tenant::local(),
            Some(name) => parse_tenant(&name, flag)?,
        };
        let trusted = if self.trust.is_empty() {
            env("CACHET_TRUST")
                .unwrap_or_default()
                .split(',')
                .map(str::trim)
                .filter(|name| !name.is_empty())
                .map(|name| parse_tenant(name, "CACHET_TRUST"))
                .collect::<Result<Vec<_>, _>>()?
        } else {
            self.trust
                .iter()
                .map(|name| parse_tenant(name, "--trust"))
                .collect::<Result<Vec<_>, _>>()?
        };
        let signing_key = match env(SIGNING_KEY_VARIABLE) {
            None => None,
            Some(text) if text.trim().is_empty() => None,
            Some(text) => {
                Some(
                    SigningKey::parse(&text).map_err(|reason| CliError::InvalidSecret {
                        variable: SIGNING_KEY_VARIABLE,
                        reason: format!("{reason}; {}", sign::EXPECTED_FORM),
                    })?,
                )
            }
        };
        let read_only = self.remote_read_only
            || match env("CACHET_REMOTE_READ_ONLY").as_deref() {
                None | Some("") | Some("0") => false,
                Some("1") => true,
                Some(other) => {
                    return Err(CliError::InvalidValue {
                        flag: "CACHET_REMOTE_READ_ONLY",
                        value: other.to_string(),
                        reason: "expected 1 (read-only) or 0".to_string(),
                    });
                }
            };
        let mut policy = FaultPolicy::default();
        if let Some(ms) = seconds_variable(env, "CACHET_REMOTE_CONNECT_TIMEOUT")? {
            policy.connect_timeout_ms = ms;
        }
        if let Some(ms) = seconds_variable(env, "CACHET_REMOTE_TIMEOUT")? {
            policy.remote_timeout_ms = ms;
        }
        Ok(RemoteConfig {
            remotes,
            tenant,
            trusted,
            read_only,
            signing_key,
            policy,
        })
    }
}

/// The remote tier of one command (REMOTE-1..3): the stores in lookup
/// order, the tenant of every call, and the options. With no store, every
/// command is the local cache's alone.
#[derive(Debug)]
pub struct Chain<'a, R> {
    /// The remotes, in lookup order.
    pub remotes: &'a [Remote<R>],
    /// The tenant of every push (REMOTE-5).
    pub tenant: Tenant,
    /// The tenants every lookup reads, in order: `tenant`, then those it
    /// trusts (REMOTE-11).
    pub reading: Vec<Tenant>,
    /// Tunables.
    pub options: RemoteOptions,
    /// Whether `-v` was given: say which tier hit and what was pushed.
    pub verbose: bool,
    /// The run's fault session (REMOTE-15..19), when the stores are
    /// guarded by it: lookups then keep to its time budget and are counted
    /// in its statistics, and a refused access is said once per remote.
    pub session: Option<&'a RemoteSession<'a>>,
    /// For each of `remotes`, its position in the session (remotes its
    /// breaker keeps out are not in `remotes`, REMOTE-17).
    pub positions: Vec<usize>,
}

/// The store type of a host without remotes: no value of it exists.
#[derive(Debug)]
pub enum NoRemote {}

impl RemoteRead for NoRemote {
    fn read(&mut self, _: &mut [u8]) -> Result<usize, Error> {
        match *self {}
    }
}

impl RemoteWrite for NoRemote {
    fn write_all(&mut self, _: &[u8]) -> Result<(), Error> {
        match *self {}
    }

    fn finish(self) -> Result<(), Error> {
        match self {}
    }
}

impl RemoteStore for NoRemote {
    type Reader = NoRemote;
    type Writer = NoRemote;

    fn get(&self, _: &str) -> Result<Option<NoRemote>, Error> {
        match *self {}
    }

    fn head(&self, _: &str) -> Result<Option<ObjectMeta>, Error> {
        match *self {}
    }

    fn put(&self, _: &str, _: Option<u64>) -> Result<NoRemote, Error> {
        match *self {}
    }

    fn delete(&self, _: &str) -> Result<(), Error> {
        match *self {}
    }

    fn list(
        &self,
        _: &str,
        _: &mut dyn FnMut(&str, u64) -> core::ops::ControlFlow<()>,
    ) -> Result<(), Error> {
        match *self {}
    }
}

impl Chain<'static, NoRemote> {
    /// The chain of a host without remotes.
    pub fn none() -> Chain<'static, NoRemote> {
        Chain {
            remotes: &[],
            tenant: Tenant::local(),
            reading: alloc::vec![Tenant::local()],
            options: RemoteOptions::default(),
            verbose: false,
            session: None,
            positions: Vec::new(),
        }
    }
}

/// What the remote tier did during one command: the `remote` member of
/// `status`, `restore` and `store` JSON reports, present when remotes are
/// configured.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ChainReport {
    /// Which tier served the entry: `local`, or the remote's URL; `null`
    /// when none did (or the command does not look up).
    pub hit: Option<String>,
    /// The tenant whose record served a remote hit; `null` otherwise.
    pub tenant: Option<String>,
    /// The remotes the entry was pushed to, in order.
    pub pushed_to: Vec<String>,
    /// Each remote failure, as the one line printed on stderr (REMOTE-3).
    pub failures: Vec<String>,
}

/// Prints one warning line on stderr (REMOTE-3), `-v` or not.
pub fn warn(stderr: &mut dyn Write, message: &dyn core::fmt::Display) {
    crate::report_error(stderr, &format_args!("warning: {message}"));
}

impl<R: RemoteStore> Chain<'_, R> {
    /// Whether no remote is configured.
    pub fn is_empty(&self) -> bool {
        self.remotes.is_empty()
    }

    fn say(&self, stderr: &mut dyn Write, message: core::fmt::Arguments<'_>) {
        if self.verbose {
            let _ = writeln!(stderr, "cachet: {message}");
        }
    }

    fn label(&self, index: usize) -> &str {
        self.remotes.get(index).map_or("?", |r| r.label.as_str())
    }

    /// Warns of `failure` (REMOTE-3), except a refused access, said once
    /// per remote and run with what to check (REMOTE-16); every failure
    /// goes into `report`.
    fn report_failure(
        &self,
        stderr: &mut dyn Write,
        failure: &RemoteFailure,
        report: &mut ChainReport,
    ) {
        report.failures.push(failure.to_string());
        let Some(session) = self.session else {
            warn(stderr, failure);
            return;
        };
        if failure.error.kind != remote::ErrorKind::PermissionDenied {
            warn(stderr, failure);
            return;
        }
        let at = self
            .remotes
            .iter()
            .position(|r| r.label == failure.remote)
            .and_then(|index| self.positions.get(index).copied());
        if at.is_some_and(|at| session.take_refusal_report(at)) {
            let check = if failure.remote.starts_with("s3://") {
                "check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, and that this key may read and write the bucket"
            } else {
                "check the server's access rules for this path"
            };
            warn(
                stderr,
                &format_args!(
                    "remote {}: access refused ({}) at '{}'; cachet writes nothing more to it in this run: {check}",
                    failure.remote, failure.error.detail, failure.object
                ),
            );
        }
    }

    /// REMOTE-1: looks `key` up through the chain, so that an entry a
    /// remote holds is downloaded into the local cache; `None` when no
    /// remote is configured. Each failure is one warning line on `stderr`;
    /// with `-v`, each miss and the hit are said.
    pub fn fill<F: Filesystem>(
        &self,
        cache: &Cache<F>,
        key: &Key,
        ctx: &mut dyn Context,
        stderr: &mut dyn Write,
    ) -> Result<Option<ChainReport>, CliError> {
        if self.is_empty() {
            return Ok(None);
        }
        if let Some(session) = self.session {
            session.begin_lookup();
        }
        let chain = remote::lookup(cache, self.remotes, &self.reading, key, &self.options, ctx);
        if let Some(session) = self.session {
            session.end_lookup();
        }
        let chain = chain?;
        if let Some(session) = self.session {
            session.count_lookup(&chain, &self.positions);
        }
        let mut report = ChainReport::default();
        for failure in &chain.failures {
            self.report_failure(stderr, failure, &mut report);
        }
        for (index, tenant, miss) in &chain.misses {
            let label = self.label(*index);
            let line = format!("remote {label}, tenant {tenant}: miss ({miss})");
            if miss.warrants_warning() {
                // A refused signature says something is wrong on the
                // remote: the user hears of it, like a failure.
                warn(stderr, &line);
                report.failures.push(line);
            } else {
                self.say(stderr, format_args!("{line}"));
            }
        }
        match chain.found {
            Some(Found::Local) => {
                self.say(stderr, format_args!("hit {key} (local)"));
                report.hit = Some(String::from("local"));
            }
            Some(Found::Remote {
                label,
                tenant,
                outcome,
                ..
            }) => {
                if let PullOutcome::Imported {
                    blobs_fetched,
                    bytes_fetched,
                } = outcome
                {
                    self.say(
                        stderr,
                        format_args!(
                            "remote {label}, tenant {tenant}: hit {key}, {blobs_fetched} blobs and {bytes_fetched} bytes fetched into the local cache"
                        ),
                    );
                } else {
                    self.say(
                        stderr,
                        format_args!("remote {label}, tenant {tenant}: hit {key}"),
                    );
                }
                report.hit = Some(label);
                report.tenant = Some(String::from(tenant.as_str()));
            }
            None => self.say(
                stderr,
                format_args!("miss {key} (local {}, and every remote)", chain.local),
            ),
        }
        Ok(Some(report))
    }

    /// REMOTE-2: pushes the local entry of `key` to every writable remote;
    /// `None` when no remote is configured. Failures are warned as by
    /// [`Chain::fill`].
    pub fn push<F: Filesystem>(
        &self,
        cache: &Cache<F>,
        key: &Key,
        stderr: &mut dyn Write,
    ) -> Result<Option<ChainReport>, CliError> {
        self.push_holding(cache, key, HeldContents::none(), stderr)
    }

    /// What a store that pushes afterwards should hold for the push
    /// ([`Cache::store_holding`]): up to the inline limits when some
    /// remote is writable, else nothing.
    pub fn holding(&self) -> HeldContents {
        match self.remotes.iter().any(|remote| remote.writable) {
            true => self.options.held_contents(),
            false => HeldContents::none(),
        }
    }

    /// [`Chain::push`] right after a store that `held` contents for it
    /// (REMOTE-2, [`remote::push_holding`]).
    pub fn push_holding<F: Filesystem>(
        &self,
        cache: &Cache<F>,
        key: &Key,
        held: HeldContents,
        stderr: &mut dyn Write,
    ) -> Result<Option<ChainReport>, CliError> {
        if self.is_empty() {
            return Ok(None);
        }
        // A remote that failed or refused the access earlier in the run is
        // not written to again (REMOTE-15, REMOTE-16).
        let writable: Vec<Remote<&R>> = self
            .remotes
            .iter()
            .enumerate()
            .filter(|(index, _)| {
                self.session.is_none_or(|session| {
                    self.positions
                        .get(*index)
                        .is_some_and(|&at| session.is_writable(at))
                })
            })
            .map(|(_, r)| Remote {
                store: &r.store,
                writable: r.writable,
                label: r.label.clone(),
            })
            .collect();
        let pushed =
            remote::push_holding(cache, &writable, &self.tenant, key, &self.options, held)?;
        let mut report = ChainReport::default();
        for failure in &pushed.failures {
            self.report_failure(stderr, failure, &mut report);
        }
        for (index, outcome) in &pushed.pushed {
            let label = writable.get(*index).map_or("?", |r| r.label.as_str());
            match outcome {
                PushOutcome::Pushed {
                    blobs_uploaded,
                    blobs_present,
                    bytes_sent,
                } => {
                    self.say(
                        stderr,
                        format_args!(
                            "remote {label}, tenant {}: pushed {key}: {blobs_uploaded} blobs uploaded, {blobs_present} already there, {bytes_sent} bytes sent",
                            self.tenant
                        ),
                    );
                    report.pushed_to.push(String::from(label));
                }
                PushOutcome::NotLocal(status) => {
                    let line =
                        format!("remote {label}: not pushed {key}: the local entry is {status}");
                    warn(stderr, &line);
                    report.failures.push(line);
                }
                _ => {}
            }
        }
        Ok(Some(report))
    }
}

// ------------------------------------------------------------ commands

#[derive(Serialize)]
struct PushJson<'a> {
    key: String,
    status: &'static str,
    pushed_to: &'a [String],
    failures: &'a [String],
}

/// `cachet push --key HEX` (REMOTE-2): uploads the local entry to every
/// writable remote. Exit 0 when every writable remote took it, 1 when the
/// key is not a local hit (nothing sent), 70 when a remote failed.
pub fn push_command<F: Filesystem, R: RemoteStore>(
    args: &crate::PushArgs,
    cache: &Cache<F>,
    chain: &Chain<'_, R>,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> Result<u8, CliError> {
    let key = crate::parse::key("--key", &args.key)?;
    if !chain.remotes.iter().any(|remote| remote.writable) {
        return Err(CliError::NoRemote {
            command: "push",
            writable: true,
        });
    }
    let status = cache.lookup_status(&key)?;
    let report = if status.is_hit() {
        chain.push(cache, &key, stderr)?.unwrap_or_default()
    } else {
        ChainReport::default()
    };
    let out = crate::plumbing::to_stdout;
    if args.json {
        let value = PushJson {
            key: String::from(key.to_hex().as_str()),
            status: status.as_str(),
            pushed_to: &report.pushed_to,
            failures: &report.failures,
        };
        crate::report::write_json(stdout, &value).map_err(out)?;
    } else {
        for label in &report.pushed_to {
            writeln!(stdout, "pushed {key} to {label}").map_err(out)?;
        }
    }
    if !status.is_hit() {
        crate::report_error(
            stderr,
            &format_args!("{key} is a local miss ({status}); nothing was pushed"),
        );
        return Ok(crate::exit::MISS);
    }
    Ok(if report.failures.is_empty() {
        crate::exit::SUCCESS
    } else {
        crate::exit::FAILURE
    })
}

#[derive(Serialize)]
struct PullJson<'a> {
    key: String,
    status: &'static str,
    hit: Option<&'a str>,
    tenant: Option<&'a str>,
    failures: &'a [String],
}

/// `cachet pull --key HEX` (REMOTE-1): downloads the entry from the first
/// remote that holds it into the local cache, restoring nothing. Exit 0
/// when the entry is now local (or already was), 1 when no tier has it.
pub fn pull_command<F: Filesystem, R: RemoteStore>(
    args: &crate::PullArgs,
    cache: &Cache<F>,
    chain: &Chain<'_, R>,
    ctx: &mut dyn Context,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> Result<u8, CliError> {
    let key = crate::parse::key("--key", &args.key)?;
    if chain.is_empty() {
        return Err(CliError::NoRemote {
            command: "pull",
            writable: false,
        });
    }
    let report = chain.fill(cache, &key, ctx, stderr)?.unwrap_or_default();
    let status = cache.lookup_status(&key)?;
    let out = crate::plumbing::to_stdout;
    if args.json {
        let value = PullJson {
            key: String::from(key.to_hex().as_str()),
            status: status.as_str(),
            hit: report.hit.as_deref(),
            tenant: report.tenant.as_deref(),
            failures: &report.failures,
        };
        crate::report::write_json(stdout, &value).map_err(out)?;
    } else {
        match report.hit.as_deref() {
            Some("local") => writeln!(stdout, "{key} is already in the local cache"),
            Some(label) => writeln!(stdout, "pulled {key} from {label}"),
            None => Ok(()),
        }
        .map_err(out)?;
    }
    if status.is_hit() {
        Ok(crate::exit::SUCCESS)
    } else {
        crate::report_error(
            stderr,
            &format_args!("{key} is a miss on every remote; nothing was pulled"),
        );
        Ok(crate::exit::MISS)
    }
}

#[derive(Serialize)]
struct RemoteStatusJson<'a> {
    tenant: &'a str,
    remotes: Vec<RemoteHealthJson<'a>>,
}

#[derive(Serialize)]
struct RemoteHealthJson<'a> {
    url: &'a str,
    reachable: bool,
    latency_micros: Option<u64>,
    read: bool,
    write: Option<bool>,
    entries: Option<u64>,
    entries_capped: bool,
    failures: Vec<String>,
}

/// How many records `cachet remote status` counts before it stops: one
/// listing page or a few on every store, so the count stays cheap.
pub const ENTRY_COUNT_CAP: u64 = 10_000;

/// `cachet remote status` (REMOTE-20): checks every remote. Exit 0 when
/// each is reachable, readable, and writable unless read-only; 70
/// otherwise.
pub fn remote_status_command<F: Filesystem, R: RemoteStore>(
    args: &crate::RemoteStatusArgs,
    cache: &Cache<F>,
    chain: &Chain<'_, R>,
    ctx: &mut dyn Context,
    stdout: &mut dyn Write,
) -> Result<u8, CliError> {
    if chain.is_empty() {
        return Err(CliError::NoRemote {
            command: "remote status",
            writable: false,
        });
    }
    let started = std::time::Instant::now();
    let mut now = || u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    let nonce = format!("{:016x}", ctx.scratch_suffix());
    let function = cache.options().hash_function;
    let checked: Vec<_> = chain
        .remotes
        .iter()
        .map(|remote| {
            let health = remote::health::check(
                remote,
                &chain.tenant,
                function,
                &nonce,
                ENTRY_COUNT_CAP,
                &mut now,
            );
            (remote.label.as_str(), health)
        })
        .collect();
    let out = crate::plumbing::to_stdout;
    if args.json {
        let value = RemoteStatusJson {
            tenant: chain.tenant.as_str(),
            remotes: checked
                .iter()
                .map(|(url, health)| RemoteHealthJson {
                    url,
                    reachable: health.reachable,
                    latency_micros: health.latency_micros,
                    read: health.readable,
                    write: health.writable,
                    entries: health.entries,
                    entries_capped: health.entries_capped,
                    failures: health.failures.iter().map(ToString::to_string).collect(),
                })
                .collect(),
        };
        crate::report::write_json(stdout, &value).map_err(out)?;
    } else {
        for (url, health) in &checked {
            write_health(stdout, url, chain.tenant.as_str(), health).map_err(out)?;
        }
    }
    Ok(if checked.iter().all(|(_, health)| health.is_healthy()) {
        crate::exit::SUCCESS
    } else {
        crate::exit::FAILURE
    })
}

fn write_health(
    out: &mut dyn Write,
    url: &str,
    tenant: &str,
    health: &remote::health::Health,
) -> std::io::Result<()> {
    if !health.reachable {
        writeln!(out, "{url}: unreachable")?;
    } else {
        let ok = |allowed: bool| if allowed { "ok" } else { "denied" };
        let latency = health.latency_micros.unwrap_or(0) as f64 / 1000.0;
        let write = match health.writable {
            Some(allowed) => ok(allowed),
            None => "not tried (read-only)",
        };
        let entries = match (health.entries, health.entries_capped) {
            (Some(count), false) => format!("{count} entries"),
            (Some(count), true) => format!("at least {count} entries"),
            (None, _) => String::from("entries unknown"),
        };
        writeln!(
            out,
            "{url}: reachable, {latency:.1} ms, read {}, write {write}, {entries} of tenant {tenant}",
            ok(health.readable)
        )?;
    }
    for failure in &health.failures {
        writeln!(out, "  {failure}")?;
    }
    Ok(())
}

/// The variable `name` as a time limit (REMOTE-15): seconds, a decimal
/// number above 0 and at most a day, in milliseconds; `None` when unset or
/// empty.
fn seconds_variable(
    env: &dyn Fn(&str) -> Option<String>,
    name: &'static str,
) -> Result<Option<u64>, CliError> {
    let Some(value) = env(name).filter(|value| !value.is_empty()) else {
        return Ok(None);
    };
    let seconds = value.trim().parse::<f64>().ok();
    match seconds {
        Some(seconds) if seconds > 0.0 && seconds <= 86_400.0 => {
            Ok(Some(((seconds * 1000.0).ceil() as u64).max(1)))
        }
        _ => Err(CliError::InvalidValue {
            flag: name,
            value,
            reason: "expected a number of seconds above 0 and at most 86400, such as 3 or 0.5"
                .to_string(),
        }),
    }
}

/// Parses one remote URL (REMOTE-9); `flag` names where it came from.
pub fn parse_url(url: &str, flag: &'static str) -> Result<RemoteSpec, CliError> {
    let bad = |reason: &str| CliError::InvalidValue {
        flag,
        value: url.to_string(),
        reason: format!("{reason}; {EXPECTED_URLS}"),
    };
    let location = if let Some(path) = url.strip_prefix("file://") {
        if !path.starts_with('/') {
            return Err(bad("a file URL names an absolute path, with an empty host"));
        }
        if path.contains(['?', '#']) {
            return Err(bad("a file URL takes no query or fragment"));
        }
        RemoteLocation::Directory {
            path: path.to_string(),
        }
    } else if let Some(rest) = url.strip_prefix("s3://") {
        let (location, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (bucket, prefix) = location.split_once('/').unwrap_or((location, ""));
        let valid_bucket = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
        if !valid_bucket {
            return Err(bad("the bucket must be 3 to 63 of a-z, 0-9, '-' and '.'"));
        }
        let mut endpoint = None;
        let mut region = None;
        for pair in query.split('&').filter(|pair| !pair.is_empty()) {
            match pair.split_once('=') {
                Some(("endpoint", value))
                    if value.starts_with("http://") || value.starts_with("https://") =>
                {
                    endpoint = Some(value.trim_end_matches('/').to_string());
                }
                Some(("endpoint", _)) => {
                    return Err(bad("endpoint must be an http:// or https:// URL"));
                }
                Some(("region", value)) if !value.is_empty() => region = Some(value.to_string()),
                _ => return Err(bad("the query takes only endpoint=URL and region=NAME")),
            }
        }
        RemoteLocation::S3 {
            bucket: bucket.to_string(),
            prefix: prefix.trim_matches('/').to_string(),
            endpoint,
            region: region.unwrap_or_else(|| "us-east-1".to_string()),
        }
    } else if let Some((scheme, rest)) = url
        .strip_prefix("webdav+http://")
        .map(|rest| ("http", rest))
        .or_else(|| {
            url.strip_prefix("webdav+https://")
                .map(|rest| ("https", rest))
        })
    {
        let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
        if host.is_empty() || host.contains('@') {
            return Err(bad("a WebDAV URL needs a host, and carries no credentials"));
        }
        if path.contains(['?', '#']) {
            return Err(bad("a WebDAV URL takes no query or fragment"));
        }
        RemoteLocation::Webdav {
            endpoint: format!("{scheme}://{host}"),
            root: format!("/{}", path.trim_matches('/')),
        }
    } else {
        return Err(bad("unknown kind of remote"));
    };
    Ok(RemoteSpec {
        url: url.to_string(),
        location,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn remote_9_the_three_url_forms_parse() {
        assert_eq!(
            parse_url("file:///srv/cache", "--remote").unwrap().location,
            RemoteLocation::Directory {
                path: "/srv/cache".into()
            }
        );
        assert_eq!(
            parse_url(
                "s3://team-cache/ci/main?endpoint=http://127.0.0.1:3900&region=garage",
                "--remote"
            )
            .unwrap()
            .location,
            RemoteLocation::S3 {
                bucket: "team-cache".into(),
                prefix: "ci/main".into(),
                endpoint: Some("http://127.0.0.1:3900".into()),
                region: "garage".into()
            }
        );
        assert_eq!(
            parse_url("webdav+http://127.0.0.1:8080/dav/cache/", "--remote")
                .unwrap()
                .location,
            RemoteLocation::Webdav {
                endpoint: "http://127.0.0.1:8080".into(),
                root: "/dav/cache".into()
            }
        );
    }

    #[test]
    fn remote_9_malformed_urls_are_bad_values_that_name_the_value() {
        for url in [
            "file://relative/path",
            "file:relative",
            "/srv/cache",
            "s3://",
            "s3://Bad_Bucket",
            "s3://bucket?endpoint=ftp://x",
            "s3://bucket?colour=blue",
            "webdav+http://",
            "webdav+http://user:secret@host/x",
            "http://host/x",
        ] {
            let error = parse_url(url, "--remote").unwrap_err();
            let text = error.to_string();
            assert!(text.contains(url), "{text}");
            assert!(text.contains("expected file:///ABSOLUTE/PATH"), "{text}");
            assert_eq!(error.exit_code(), crate::exit::BAD_VALUE);
        }
    }

    #[test]
    fn remote_15_time_limits_come_from_the_environment_and_bad_ones_are_bad_values() {
        let none = RemoteArgs::default().resolve(&no_env).unwrap();
        assert_eq!(none.policy, FaultPolicy::default());
        assert_eq!(none.policy.connect_timeout_ms, 3_000);
        assert_eq!(none.policy.remote_timeout_ms, 10_000);
        let env = |name: &str| match name {
            "CACHET_REMOTE_CONNECT_TIMEOUT" => Some("0.5".to_string()),
            "CACHET_REMOTE_TIMEOUT" => Some("20".to_string()),
            _ => None,
        };
        let set = RemoteArgs::default().resolve(&env).unwrap();
        assert_eq!(set.policy.connect_timeout_ms, 500);
        assert_eq!(set.policy.remote_timeout_ms, 20_000);
        for bad in ["0", "-1", "ten", "1e9", "NaN", "inf"] {
            for variable in ["CACHET_REMOTE_CONNECT_TIMEOUT", "CACHET_REMOTE_TIMEOUT"] {
                let env = |name: &str| (name == variable).then(|| bad.to_string());
                let error = RemoteArgs::default().resolve(&env).unwrap_err();
                assert_eq!(error.exit_code(), crate::exit::BAD_VALUE, "{bad}");
                assert!(error.to_string().contains(variable), "{error}");
            }
        }
    }

    #[test]
    fn remote_9_flags_win_over_the_environment() {
        let env = |name: &str| match name {
            "CACHET_REMOTE" => Some("file:///a, file:///b,".to_string()),
            "CACHET_TENANT" => Some("ci".to_string()),
            "CACHET_REMOTE_READ_ONLY" => Some("1".to_string()),
            _ => None,
        };
        let from_env = RemoteArgs::default().resolve(&env).unwrap();
        assert_eq!(from_env.remotes.len(), 2);
        assert_eq!(from_env.tenant.as_str(), "ci");
        assert!(from_env.read_only);
        let flags = RemoteArgs {
            remotes: vec!["file:///c".into()],
            tenant: Some("pr-1".into()),
            trust: Vec::new(),
            remote_read_only: false,
        };
        let resolved = flags.resolve(&env).unwrap();
        assert_eq!(resolved.remotes[0].url, "file:///c");
        assert_eq!(resolved.tenant.as_str(), "pr-1");
        let none = RemoteArgs::default().resolve(&no_env).unwrap();
        assert!(none.remotes.is_empty());
        assert_eq!(none.tenant.as_str(), "local");
        assert!(!none.read_only);
        let bad = RemoteArgs {
            tenant: Some("../x".into()),
            ..RemoteArgs::default()
        };
        assert_eq!(
            bad.resolve(&no_env).unwrap_err().exit_code(),
            crate::exit::BAD_VALUE
        );
    }
}

#[cfg(test)]
mod trust_tests {
    use super::*;

    fn resolve(args: &RemoteArgs, vars: &[(&str, &str)]) -> Result<RemoteConfig, CliError> {
        args.resolve(&|name| {
            vars.iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| value.to_string())
        })
    }

    #[test]
    fn remote_11_trust_comes_from_the_flags_else_cachet_trust_in_order() {
        let vars = [
            ("CACHET_TENANT", "pr-5"),
            ("CACHET_TRUST", "main, release,"),
        ];
        let from_env = resolve(&RemoteArgs::default(), &vars).unwrap();
        let names: Vec<String> = from_env
            .reading_order()
            .iter()
            .map(|t| t.as_str().to_owned())
            .collect();
        assert_eq!(names, ["pr-5", "main", "release"]);
        let flags = RemoteArgs {
            trust: vec!["release".into(), "main".into()],
            ..RemoteArgs::default()
        };
        let from_flags = resolve(&flags, &vars).unwrap();
        assert_eq!(from_flags.trusted[0].as_str(), "release");
        assert_eq!(from_flags.trusted.len(), 2);
        let none = resolve(&RemoteArgs::default(), &[]).unwrap();
        assert!(none.trusted.is_empty());
        let error = resolve(&RemoteArgs::default(), &[("CACHET_TRUST", "main,../x")]).unwrap_err();
        assert_eq!(error.exit_code(), crate::exit::BAD_VALUE);
        assert!(error.to_string().contains("CACHET_TRUST"), "{error}");
    }

    #[test]
    fn remote_12_the_signing_key_is_keyid_colon_hex_and_a_bad_one_is_never_shown() {
        let good = format!("ci-2026:{}", "0f".repeat(32));
        let config = resolve(
            &RemoteArgs::default(),
            &[("CACHET_REMOTE_SIGNING_KEY", good.as_str())],
        )
        .unwrap();
        assert_eq!(config.signing_key.unwrap().id(), "ci-2026");
        let secret = "s3cr3t-passphrase-do-not-print";
        let error = resolve(
            &RemoteArgs::default(),
            &[("CACHET_REMOTE_SIGNING_KEY", secret)],
        )
        .unwrap_err();
        assert_eq!(error.exit_code(), crate::exit::BAD_VALUE);
        let text = error.to_string();
        assert!(text.contains("CACHET_REMOTE_SIGNING_KEY"), "{text}");
        assert!(text.contains("KEYID:SECRET"), "{text}");
        assert!(!text.contains("passphrase"), "{text}");
        assert!(!format!("{error:?}").contains("passphrase"));
    }
}
