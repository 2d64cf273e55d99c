//! Remote stores on the command line (docs/spec.md REMOTE-9): the flags,
//! their environment variables, and the URL forms, parsed into
//! [`RemoteSpec`]s that a host turns into stores.
//!
//! Flags win over the environment: `--remote URL` (repeatable, in lookup
//! order) else `CACHET_REMOTE` (comma-separated); `--tenant NAME` else
//! `CACHET_TENANT` else `local`; `--remote-read-only` or
//! `CACHET_REMOTE_READ_ONLY=1`. A malformed value is
//! [`CliError::InvalidValue`] (exit 65), naming the value and the forms
//! expected.

use cachet_core::remote::names::Tenant;
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
    /// The tenant of every lookup and push.
    pub tenant: Tenant,
    /// Whether the remotes are only read.
    pub read_only: bool,
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
            Some(name) => Tenant::new(&name).map_err(|reason| CliError::InvalidValue {
                flag,
                value: name.clone(),
                reason: format!(
                    "a tenant is 1 to 64 bytes of A-Z, a-z, 0-9, '_', '-' and '.', not starting with '.'; {reason}"
                ),
            })?,
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
        Ok(RemoteConfig {
            remotes,
            tenant,
            read_only,
        })
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
