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
use clap::Args;

use crate::CliError;

/// What `--remote` accepts, for messages.
pub const EXPECTED_URLS: &str = "expected file:///ABSOLUTE/PATH, s3://BUCKET[/PREFIX]?endpoint=URL&region=NAME, or webdav+http(s)://HOST[:PORT]/PATH";

/// The remote-store flags of `cachet run`.
#[derive(Args, Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RemoteArgs {
    /// A remote store to look entries up in and push them to, in lookup
    /// order: `file:///ABSOLUTE/PATH`,
    /// `s3://BUCKET[/PREFIX]?endpoint=URL&region=NAME` (credentials from
    /// AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY) or
    /// `webdav+http(s)://HOST[:PORT]/PATH`. Repeatable [default:
    /// $CACHET_REMOTE, comma-separated]
    #[arg(long = "remote", value_name = "URL")]
    pub remotes: Vec<String>,

    /// The tenant whose entry records are read and written on the remotes
    /// [default: $CACHET_TENANT, else local]
    #[arg(long, value_name = "NAME")]
    pub tenant: Option<String>,

    /// A tenant whose entry records are read after the run's own, never
    /// written; repeatable, in reading order [default: $CACHET_TRUST,
    /// comma-separated]
    #[arg(long = "trust", value_name = "NAME")]
    pub trust: Vec<String>,

    /// Never write to the remotes, only read them (also:
    /// CACHET_REMOTE_READ_ONLY=1)
    #[arg(long)]
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
