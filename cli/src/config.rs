//! Configuration files (docs/spec.md CONF-1..4): `cachet.toml` in the
//! workspace, then the user's own, below the environment and the flags.
//!
//! Every key of a configuration file stands for one environment variable
//! (the table in [`KEYS`]), so a setting has one name per layer and one
//! parser: the code that resolves a setting asks [`Settings::var`] where it
//! used to ask the environment, and precedence (flags, then the
//! environment, then the workspace's file, then the user's, CONF-1) is
//! decided here once. A variable that is set, even to the empty string,
//! hides every file below it, so `CACHET_REMOTE= cachet run` turns off the
//! remotes a file configures.
//!
//! This module never reads a file: the host reads `cachet.toml` and hands
//! its text to [`Settings::new`] (this crate does no `std::fs`, so the
//! same code runs in the WASI guest).

use alloc::collections::BTreeMap;

use crate::CliError;

/// The name of the workspace's configuration file (CONF-1).
pub const WORKSPACE_CONFIG_FILE: &str = "cachet.toml";

/// How a key's TOML value becomes its variable's text (CONF-2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ValueKind {
    /// A string, taken as is.
    Text,
    /// A string naming a path; a relative one is relative to the directory
    /// of the file that holds it.
    Path,
    /// An array of strings, joined with `,` (the variable's list form).
    List,
    /// A boolean: `true` is `1`, `false` is `0`.
    Switch,
    /// A boolean whose variable says the opposite: `true` is `0`,
    /// `false` is `1` (`memo.enabled` and `CACHET_NO_MEMO`).
    NegatedSwitch,
    /// A non-negative number (integer or float), written as the variable
    /// would be.
    Number,
}

/// One configuration key: its dotted name in the file, the variable it
/// stands for, and how its value is written.
#[derive(Clone, Copy, Debug)]
pub struct ConfigKey {
    /// The dotted key, e.g. `remote.tenant`.
    pub key: &'static str,
    /// The environment variable it stands for, e.g. `CACHET_TENANT`.
    pub variable: &'static str,
    /// How its value is read.
    pub kind: ValueKind,
    /// Whether its value is a secret, which a shared file may not hold
    /// (CONF-3).
    pub secret: bool,
}

/// Every key a configuration file may hold (CONF-2); any other key is an
/// error, so that a misspelt setting is never silently ignored.
pub const KEYS: &[ConfigKey] = &[
    ConfigKey {
        key: "cache_dir",
        variable: crate::CACHE_DIR_VARIABLE,
        kind: ValueKind::Path,
        secret: false,
    },
    ConfigKey {
        key: "memo.enabled",
        variable: crate::NO_MEMO_VARIABLE,
        kind: ValueKind::NegatedSwitch,
        secret: false,
    },
    ConfigKey {
        key: "remote.urls",
        variable: "CACHET_REMOTE",
        kind: ValueKind::List,
        secret: false,
    },
    ConfigKey {
        key: "remote.tenant",
        variable: "CACHET_TENANT",
        kind: ValueKind::Text,
        secret: false,
    },
    ConfigKey {
        key: "remote.read_only",
        variable: "CACHET_REMOTE_READ_ONLY",
        kind: ValueKind::Switch,
        secret: false,
    },
    ConfigKey {
        key: "remote.trust",
        variable: "CACHET_TRUST",
        kind: ValueKind::List,
        secret: false,
    },
    ConfigKey {
        key: "remote.signing_key",
        variable: SIGNING_KEY_VARIABLE,
        kind: ValueKind::Text,
        secret: true,
    },
    ConfigKey {
        key: "remote.connect_timeout",
        variable: "CACHET_REMOTE_CONNECT_TIMEOUT",
        kind: ValueKind::Number,
        secret: false,
    },
    ConfigKey {
        key: "remote.timeout",
        variable: "CACHET_REMOTE_TIMEOUT",
        kind: ValueKind::Number,
        secret: false,
    },
];

/// The variable of the remote signing key (REMOTE-14): a secret, so
/// [`Settings`] never shows its value, even in `Debug`.
pub const SIGNING_KEY_VARIABLE: &str = "CACHET_REMOTE_SIGNING_KEY";

/// A configuration file's text, as the host read it.
#[derive(Clone, Debug)]
pub struct ConfigText {
    /// Where it was read from, for messages and relative paths.
    pub path: String,
    /// Its contents.
    pub text: String,
    /// Whether others may read it: the workspace's file is committed with
    /// the sources, so everyone who can read the repository (the author
    /// of a pull request included) reads it; it may hold no secret.
    pub shared: bool,
}

/// Where a setting's value came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// The environment variable itself.
    Environment,
    /// A configuration file.
    File {
        /// The file's path.
        path: String,
        /// The dotted key in it.
        key: &'static str,
    },
}

/// One value and where it came from.
#[derive(Clone, Debug)]
struct Value {
    text: String,
    origin: Origin,
}

/// The settings of one command: the environment over the configuration
/// files, most important first (CONF-1).
#[derive(Clone, Default)]
pub struct Settings {
    values: BTreeMap<&'static str, Value>,
}

impl core::fmt::Debug for Settings {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let mut map = f.debug_map();
        for (variable, value) in &self.values {
            if *variable == SIGNING_KEY_VARIABLE {
                map.entry(variable, &format_args!("(secret, from {:?})", value.origin));
            } else {
                map.entry(variable, value);
            }
        }
        map.finish()
    }
}

impl Settings {
    /// The settings `env` (which looks a variable up) and `files` give, the
    /// files in precedence order (the workspace's `cachet.toml` first, then
    /// the user's). A file that is not TOML, holds a key outside
    /// [`KEYS`] or a value of the wrong type is
    /// [`CliError::InvalidConfig`] (exit 65), naming the file and the key.
    pub fn new(
        env: &dyn Fn(&str) -> Option<String>,
        files: &[ConfigText],
    ) -> Result<Settings, CliError> {
        let mut values = BTreeMap::new();
        for file in files.iter().rev() {
            for (variable, value) in parse_file(file)? {
                values.insert(variable, value);
            }
        }
        for key in KEYS {
            if let Some(text) = env(key.variable) {
                values.insert(
                    key.variable,
                    Value {
                        text,
                        origin: Origin::Environment,
                    },
                );
            }
        }
        Ok(Settings { values })
    }

    /// Settings from the environment alone.
    pub fn from_env(env: &dyn Fn(&str) -> Option<String>) -> Settings {
        Settings::new(env, &[]).unwrap_or_default()
    }

    /// The value of `variable`: the environment's when it is set, else the
    /// first configuration file's that sets its key. A variable outside
    /// [`KEYS`] (credentials such as `AWS_SECRET_ACCESS_KEY`, which no file
    /// may hold) is looked up in the environment itself.
    pub fn var(&self, variable: &str) -> Option<String> {
        match self.values.get(variable) {
            Some(value) => Some(value.text.clone()),
            None if KEYS.iter().all(|key| key.variable != variable) => std::env::var(variable).ok(),
            None => None,
        }
    }

    /// Where `variable`'s value came from, if it has one.
    pub fn origin(&self, variable: &str) -> Option<&Origin> {
        self.values.get(variable).map(|value| &value.origin)
    }

    /// `error`, saying which file and key a refused value came from when it
    /// did not come from the environment: a bad value in `cachet.toml`
    /// must name the file, not a variable the user never set.
    pub fn attribute(&self, error: CliError) -> CliError {
        match error {
            CliError::InvalidValue {
                flag,
                value,
                reason,
            } => match self.origin(flag) {
                Some(Origin::File { path, key }) => CliError::InvalidConfig {
                    path: path.clone(),
                    key: (*key).to_string(),
                    reason: format!("{value:?} is refused: {reason}"),
                },
                _ => CliError::InvalidValue {
                    flag,
                    value,
                    reason,
                },
            },
            CliError::InvalidSecret { variable, reason } => match self.origin(variable) {
                Some(Origin::File { path, key }) => CliError::InvalidConfig {
                    path: path.clone(),
                    key: (*key).to_string(),
                    reason: format!("its value (not shown) is refused: {reason}"),
                },
                _ => CliError::InvalidSecret { variable, reason },
            },
            other => other,
        }
    }
}

/// The variables one file sets.
fn parse_file(file: &ConfigText) -> Result<Vec<(&'static str, Value)>, CliError> {
    let bad = |key: &str, reason: String| CliError::InvalidConfig {
        path: file.path.clone(),
        key: key.to_string(),
        reason,
    };
    let table: toml::Table = file
        .text
        .parse()
        .map_err(|error: toml::de::Error| bad("", format!("it is not valid TOML: {error}")))?;
    let mut flat = Vec::new();
    flatten("", &table, &mut flat);
    let mut set = Vec::new();
    for (dotted, value) in flat {
        let Some(key) = KEYS.iter().find(|key| key.key == dotted) else {
            let known: Vec<&str> = KEYS.iter().map(|key| key.key).collect();
            return Err(bad(
                &dotted,
                format!("unknown key; the keys are {}", known.join(", ")),
            ));
        };
        if key.secret && file.shared {
            return Err(bad(
                key.key,
                format!(
                    "a secret in a file committed with the sources is readable by everyone who can read the repository, pull requests included; remove it and set {} or the key in your own configuration file instead",
                    key.variable
                ),
            ));
        }
        let text = value_text(key.kind, value, &file.path).map_err(|expected| {
            bad(
                key.key,
                format!("expected {expected}, found {}", value.type_str()),
            )
        })?;
        set.push((
            key.variable,
            Value {
                text,
                origin: Origin::File {
                    path: file.path.clone(),
                    key: key.key,
                },
            },
        ));
    }
    Ok(set)
}

/// Every leaf of `table` with its dotted name (arrays are leaves).
fn flatten<'t>(prefix: &str, table: &'t toml::Table, out: &mut Vec<(String, &'t toml::Value)>) {
    for (name, value) in table {
        let dotted = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        match value {
            toml::Value::Table(inner) => flatten(&dotted, inner, out),
            leaf => out.push((dotted, leaf)),
        }
    }
}

/// The variable text for `value`, or what was expected instead.
fn value_text(
    kind: ValueKind,
    value: &toml::Value,
    file_path: &str,
) -> Result<String, &'static str> {
    match (kind, value) {
        (ValueKind::Text, toml::Value::String(text)) => Ok(text.clone()),
        (ValueKind::Path, toml::Value::String(path)) => Ok(relative_to_file(path, file_path)),
        (ValueKind::List, toml::Value::Array(items)) => {
            let mut texts = Vec::with_capacity(items.len());
            for item in items {
                match item {
                    toml::Value::String(text) if !text.contains(',') => texts.push(text.as_str()),
                    _ => return Err("an array of strings without commas"),
                }
            }
            Ok(texts.join(","))
        }
        (ValueKind::Switch, toml::Value::Boolean(on)) => Ok(if *on { "1" } else { "0" }.into()),
        (ValueKind::NegatedSwitch, toml::Value::Boolean(on)) => {
            Ok(if *on { "0" } else { "1" }.into())
        }
        (ValueKind::Number, toml::Value::Integer(n)) if *n >= 0 => Ok(n.to_string()),
        (ValueKind::Number, toml::Value::Float(x)) if x.is_finite() && *x >= 0.0 => {
            Ok(x.to_string())
        }
        (ValueKind::Text, _) => Err("a string"),
        (ValueKind::Path, _) => Err("a string (a path)"),
        (ValueKind::List, _) => Err("an array of strings"),
        (ValueKind::Switch | ValueKind::NegatedSwitch, _) => Err("true or false"),
        (ValueKind::Number, _) => Err("a non-negative number"),
    }
}

/// `path`, made relative to the directory of the file at `file_path` when
/// it is relative (CONF-2): a file's meaning must not depend on the
/// directory cachet happens to be started from.
fn relative_to_file(path: &str, file_path: &str) -> String {
    let absolute = path.starts_with('/') || path.get(1..3) == Some(":\\");
    if absolute {
        return path.to_string();
    }
    match file_path.rfind(['/', '\\']) {
        Some(end) => format!("{}/{path}", &file_path[..end]),
        None => path.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, text: &str) -> ConfigText {
        ConfigText {
            path: path.into(),
            text: text.into(),
            shared: path.starts_with("/ws/"),
        }
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn remote_15_the_time_limits_may_be_set_in_a_file() {
        let workspace = file(
            "/ws/cachet.toml",
            "[remote]\nconnect_timeout = 1\ntimeout = 2.5\n",
        );
        let settings = Settings::new(&no_env, &[workspace]).unwrap();
        let env = |name: &str| settings.var(name);
        let config = crate::remote::RemoteArgs::default().resolve(&env).unwrap();
        assert_eq!(config.policy.connect_timeout_ms, 1_000);
        assert_eq!(config.policy.remote_timeout_ms, 2_500);
    }

    #[test]
    fn conf_1_environment_wins_over_the_workspace_file_which_wins_over_the_users() {
        let workspace = file(
            "/ws/cachet.toml",
            "[remote]\ntenant = \"main\"\nurls = [\"file:///a\", \"file:///b\"]\n",
        );
        let user = file(
            "/home/u/.config/cachet/cachet.toml",
            "[remote]\ntenant = \"mine\"\nread_only = true\n[memo]\nenabled = false\n",
        );
        let settings = Settings::new(&no_env, &[workspace.clone(), user.clone()]).unwrap();
        assert_eq!(settings.var("CACHET_TENANT").as_deref(), Some("main"));
        assert_eq!(
            settings.var("CACHET_REMOTE").as_deref(),
            Some("file:///a,file:///b")
        );
        assert_eq!(
            settings.var("CACHET_REMOTE_READ_ONLY").as_deref(),
            Some("1")
        );
        assert_eq!(settings.var("CACHET_NO_MEMO").as_deref(), Some("1"));
        assert_eq!(
            settings.origin("CACHET_TENANT"),
            Some(&Origin::File {
                path: "/ws/cachet.toml".into(),
                key: "remote.tenant"
            })
        );

        let env = |name: &str| match name {
            "CACHET_TENANT" => Some("pr-7".to_string()),
            // Set but empty: still hides the files (turns remotes off).
            "CACHET_REMOTE" => Some(String::new()),
            _ => None,
        };
        let settings = Settings::new(&env, &[workspace, user]).unwrap();
        assert_eq!(settings.var("CACHET_TENANT").as_deref(), Some("pr-7"));
        assert_eq!(settings.var("CACHET_REMOTE").as_deref(), Some(""));
        assert_eq!(settings.origin("CACHET_TENANT"), Some(&Origin::Environment));
        assert_eq!(settings.var("CACHET_UNKNOWN_TO_ANY_TEST"), None);
    }

    #[test]
    fn conf_2_relative_paths_are_relative_to_their_file() {
        let settings = Settings::new(
            &no_env,
            &[file("/ws/cachet.toml", "cache_dir = \"../shared-cache\"\n")],
        )
        .unwrap();
        assert_eq!(
            settings.var(crate::CACHE_DIR_VARIABLE).as_deref(),
            Some("/ws/../shared-cache")
        );
        let settings =
            Settings::new(&no_env, &[file("/ws/cachet.toml", "cache_dir = \"/c\"\n")]).unwrap();
        assert_eq!(
            settings.var(crate::CACHE_DIR_VARIABLE).as_deref(),
            Some("/c")
        );
    }

    #[test]
    fn conf_3_bad_files_name_the_file_the_key_and_what_is_expected() {
        for (text, key, expected) in [
            ("[remote\n", "", "not valid TOML"),
            (
                "[remote]\ntennant = \"x\"\n",
                "remote.tennant",
                "unknown key",
            ),
            (
                "[remote]\ntenant = 3\n",
                "remote.tenant",
                "expected a string",
            ),
            ("[remote]\nurls = \"file:///a\"\n", "remote.urls", "array"),
            (
                "[remote]\nurls = [\"a,b\"]\n",
                "remote.urls",
                "without commas",
            ),
            (
                "[memo]\nenabled = \"no\"\n",
                "memo.enabled",
                "true or false",
            ),
        ] {
            let error = Settings::new(&no_env, &[file("/ws/cachet.toml", text)]).unwrap_err();
            match &error {
                CliError::InvalidConfig {
                    path,
                    key: got,
                    reason,
                } => {
                    assert_eq!(path, "/ws/cachet.toml");
                    assert_eq!(got, key, "{text}");
                    assert!(reason.contains(expected), "{text}: {reason}");
                }
                other => panic!("{text}: {other:?}"),
            }
            assert_eq!(error.exit_code(), crate::exit::BAD_VALUE);
            assert!(error.to_string().contains("/ws/cachet.toml"), "{error}");
        }
    }

    #[test]
    fn conf_3_a_refused_value_from_a_file_names_the_file_not_the_variable() {
        let settings = Settings::new(
            &no_env,
            &[file("/ws/cachet.toml", "[remote]\ntenant = \"../x\"\n")],
        )
        .unwrap();
        let env = |name: &str| settings.var(name);
        let error = crate::remote::RemoteArgs::default()
            .resolve(&env)
            .unwrap_err();
        let error = settings.attribute(error);
        let text = error.to_string();
        assert!(text.contains("/ws/cachet.toml"), "{text}");
        assert!(text.contains("remote.tenant"), "{text}");
        assert!(!text.contains("CACHET_TENANT"), "{text}");
        assert_eq!(error.exit_code(), crate::exit::BAD_VALUE);
    }

    #[test]
    fn remote_11_and_remote_14_trust_and_the_signing_key_come_from_a_file_too() {
        let secret = "5e".repeat(32);
        let user = file(
            "/home/u/.config/cachet/cachet.toml",
            &format!(
                "[remote]\ntenant = \"pr-4\"\ntrust = [\"main\", \"release\"]\nsigning_key = \"ci-1:{secret}\"\n"
            ),
        );
        let settings = Settings::new(&no_env, &[user]).unwrap();
        let env = |name: &str| settings.var(name);
        let config = crate::remote::RemoteArgs::default().resolve(&env).unwrap();
        let order: Vec<&str> = config.trusted.iter().map(|t| t.as_str()).collect();
        assert_eq!(order, ["main", "release"]);
        assert_eq!(config.signing_key.unwrap().id(), "ci-1");
        assert!(!format!("{settings:?}").contains(&secret), "{settings:?}");

        let bad = file(
            "/home/u/.config/cachet/cachet.toml",
            "[remote]\nsigning_key = \"ci-1:correct-horse-battery\"\n",
        );
        let settings = Settings::new(&no_env, &[bad]).unwrap();
        let env = |name: &str| settings.var(name);
        let error = settings.attribute(
            crate::remote::RemoteArgs::default()
                .resolve(&env)
                .unwrap_err(),
        );
        let text = error.to_string();
        assert_eq!(error.exit_code(), crate::exit::BAD_VALUE);
        assert!(
            text.contains("/home/u/.config/cachet/cachet.toml"),
            "{text}"
        );
        assert!(text.contains("remote.signing_key"), "{text}");
        assert!(!text.contains("correct-horse"), "{text}");
    }

    #[test]
    fn conf_3_the_workspace_file_holds_no_secret() {
        let committed = file(
            "/ws/cachet.toml",
            &format!("[remote]\nsigning_key = \"ci-1:{}\"\n", "5e".repeat(32)),
        );
        let error = Settings::new(&no_env, &[committed]).unwrap_err();
        let text = error.to_string();
        assert_eq!(error.exit_code(), crate::exit::BAD_VALUE);
        assert!(text.contains("/ws/cachet.toml"), "{text}");
        assert!(text.contains("remote.signing_key"), "{text}");
        assert!(text.contains("CACHET_REMOTE_SIGNING_KEY"), "{text}");
        assert!(!text.contains(&"5e".repeat(32)), "{text}");
    }
}
