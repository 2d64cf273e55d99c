//! Finding and reading the configuration files (docs/spec.md CONF-1): the
//! workspace's `cachet.toml`, then the user's
//! `$XDG_CONFIG_HOME/cachet/cachet.toml` (`~/.config/cachet/cachet.toml`
//! when `XDG_CONFIG_HOME` is unset, `%APPDATA%\cachet\cachet.toml` on
//! Windows). What they mean, and how they rank against the environment, is
//! [`cachet_cli::config`]'s; this module only reads bytes.

use std::path::{Path, PathBuf};

use cachet_cli::CliError;
use cachet_cli::config::{ConfigText, Settings, WORKSPACE_CONFIG_FILE};

/// The user's configuration file, when a configuration directory is known.
pub fn user_config_file() -> Option<PathBuf> {
    let dir = match std::env::var_os("XDG_CONFIG_HOME") {
        Some(dir) if Path::new(&dir).is_absolute() => PathBuf::from(dir),
        _ if cfg!(windows) => PathBuf::from(std::env::var_os("APPDATA")?),
        _ => PathBuf::from(std::env::var_os("HOME")?).join(".config"),
    };
    Some(dir.join("cachet").join(WORKSPACE_CONFIG_FILE))
}

/// The settings of a command in `workspace`: the process environment over
/// the workspace's `cachet.toml` and the user's (CONF-1). A file that does
/// not exist is skipped; one that exists but cannot be read, or is not
/// valid, is [`CliError::InvalidConfig`].
pub fn load_settings(workspace: &Path) -> Result<Settings, CliError> {
    let mut files = Vec::new();
    // The workspace's file is committed with the sources: shared (CONF-3).
    let candidates = [
        (Some(workspace.join(WORKSPACE_CONFIG_FILE)), true),
        (user_config_file(), false),
    ];
    for (path, shared) in candidates {
        let Some(path) = path else { continue };
        match std::fs::read_to_string(&path) {
            Ok(text) => files.push(ConfigText {
                path: path.display().to_string(),
                text,
                shared,
            }),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => {
                return Err(CliError::InvalidConfig {
                    path: path.display().to_string(),
                    key: String::new(),
                    reason: format!("it cannot be read ({error})"),
                });
            }
        }
    }
    Settings::new(&|name| std::env::var(name).ok(), &files)
}
