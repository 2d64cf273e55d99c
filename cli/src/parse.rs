//! Checking the values given on the command line: keys, human-readable
//! sizes and durations, `NAME=VALUE`, `PROJECT:TASK=KEY`, variable names
//! and paths of files in the workspace.
//!
//! Every function returns [`CliError::InvalidValue`] (or
//! [`CliError::NotInWorkspace`]) naming the flag and the value, never
//! panics, and accepts exactly what the module docs of [`super`] promise.

use std::path::{Component, Path, PathBuf};

use cachet_core::key::Key;

use crate::error::CliError;

/// Parses a key: exactly 64 hex digits, in either case (KEY-1).
pub fn key(flag: &'static str, text: &str) -> Result<Key, CliError> {
    Key::from_hex(text).map_err(|error| CliError::InvalidValue {
        flag,
        value: text.to_owned(),
        reason: format!("{error}; a key is 64 hex digits, as `cachet key` prints it"),
    })
}

/// Parses a human-readable size into bytes: a plain number of bytes
/// (`4096`), or a number with a unit, case-insensitive, optionally with a
/// fraction and a space: `K`/`KB`, `M`/`MB`, `G`/`GB`, `T`/`TB` are powers
/// of 1000; `Ki`/`KiB`, `Mi`/`MiB`, `Gi`/`GiB`, `Ti`/`TiB` powers of 1024.
pub fn size(flag: &'static str, text: &str) -> Result<u64, CliError> {
    let invalid = |reason: String| CliError::InvalidValue {
        flag,
        value: text.to_owned(),
        reason,
    };
    if !text.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(invalid(String::from(
            "expected a number of bytes with an optional unit, such as 4096, 512MiB or 10G",
        )));
    }
    text.parse::<bytesize::ByteSize>()
        .map(|size| size.as_u64())
        .map_err(|error| {
            invalid(format!(
                "{error}; use a number with an optional unit, such as 4096, 512MiB or 10G"
            ))
        })
}

/// Parses a percentage: a whole number from 0 to 100 (`--percent`, OP-15).
pub fn percent(flag: &'static str, text: &str) -> Result<u8, CliError> {
    match text.trim_end_matches('%').parse::<u8>() {
        Ok(percent) if percent <= 100 => Ok(percent),
        _ => Err(CliError::InvalidValue {
            flag,
            value: text.to_owned(),
            reason: String::from("expected a whole number from 0 to 100, such as 50"),
        }),
    }
}

/// Parses the keys listed in an in-use file (`clean --in-use`, OP-15): 64
/// hex digits each, separated by any whitespace. `source` names the file
/// in errors; a word that is not a key names its line.
pub fn key_list(
    flag: &'static str,
    source: &str,
    bytes: &[u8],
) -> Result<alloc::collections::BTreeSet<Key>, CliError> {
    let invalid = |reason: String| CliError::InvalidValue {
        flag,
        value: source.to_owned(),
        reason,
    };
    let text = core::str::from_utf8(bytes)
        .map_err(|_| invalid(String::from("the file is not UTF-8 text; list keys as hex")))?;
    let mut keys = alloc::collections::BTreeSet::new();
    for (index, line) in text.lines().enumerate() {
        for word in line.split_whitespace() {
            let key = Key::from_hex(word).map_err(|error| {
                invalid(format!(
                    "line {}: {word:?} is not a key ({error}); list one key of 64 hex digits per line",
                    index + 1
                ))
            })?;
            keys.insert(key);
        }
    }
    Ok(keys)
}

/// Parses a human-readable duration into whole seconds: `7d`, `12h`,
/// `1h 30m`, `90s`, `2w` (units as in the `humantime` crate).
pub fn duration(flag: &'static str, text: &str) -> Result<u64, CliError> {
    humantime::parse_duration(text)
        .map(|duration| duration.as_secs())
        .map_err(|error| CliError::InvalidValue {
            flag,
            value: text.to_owned(),
            reason: format!("{error}; use a duration such as 7d, 12h or 1h 30m"),
        })
}

/// Checks an environment variable name: non-empty, without `=` or NUL.
pub fn variable_name<'a>(flag: &'static str, name: &'a str) -> Result<&'a str, CliError> {
    let reason = if name.is_empty() {
        "the name is empty"
    } else if name.contains('=') {
        "a variable name cannot contain '='"
    } else if name.contains('\0') {
        "a variable name cannot contain a NUL character"
    } else {
        return Ok(name);
    };
    Err(CliError::InvalidValue {
        flag,
        value: name.to_owned(),
        reason: String::from(reason),
    })
}

/// A `--set NAME=VALUE` pair.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Assignment {
    /// The variable's name.
    pub name: String,
    /// Its value (may be empty, may contain `=`).
    pub value: String,
}

/// Parses `NAME=VALUE`: the name ends at the first `=`.
pub fn assignment(flag: &'static str, text: &str) -> Result<Assignment, CliError> {
    let Some((name, value)) = text.split_once('=') else {
        return Err(CliError::InvalidValue {
            flag,
            value: text.to_owned(),
            reason: String::from("expected NAME=VALUE"),
        });
    };
    let name = variable_name(flag, name)?;
    if value.contains('\0') {
        return Err(CliError::InvalidValue {
            flag,
            value: text.to_owned(),
            reason: String::from("a variable's value cannot contain a NUL character"),
        });
    }
    Ok(Assignment {
        name: name.to_owned(),
        value: value.to_owned(),
    })
}

/// An `--after PROJECT:TASK=KEY` predecessor.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct After {
    /// The predecessor's project.
    pub project: String,
    /// The predecessor's task.
    pub task: String,
    /// The key of its cache entry.
    pub key: Key,
}

/// Parses `PROJECT:TASK=KEY`: the project ends at the first `:` (so a task
/// name may contain `:`), the task at the last `=`.
pub fn after(flag: &'static str, text: &str) -> Result<After, CliError> {
    let invalid = |reason: &str| CliError::InvalidValue {
        flag,
        value: text.to_owned(),
        reason: format!("{reason}; expected PROJECT:TASK=KEY with a 64-hex-digit KEY"),
    };
    let Some((name, key_text)) = text.rsplit_once('=') else {
        return Err(invalid("no '='"));
    };
    let Some((project, task)) = name.split_once(':') else {
        return Err(invalid("no ':' between project and task"));
    };
    if project.is_empty() || task.is_empty() {
        return Err(invalid("the project and the task must not be empty"));
    }
    let key = Key::from_hex(key_text).map_err(|error| invalid(&error.to_string()))?;
    Ok(After {
        project: project.to_owned(),
        task: task.to_owned(),
        key,
    })
}

/// Resolves a file named on the command line to a path relative to the
/// workspace root, without `.`, `..` or a leading `/`.
///
/// A relative `path` is relative to the workspace; an absolute one must lie
/// below `workspace_dir` (the workspace's absolute path, where the host
/// knows it). Nothing is looked up on disk.
pub fn workspace_file(
    flag: &'static str,
    path: &str,
    workspace_dir: Option<&Path>,
) -> Result<String, CliError> {
    let outside = || CliError::NotInWorkspace {
        flag,
        path: path.to_owned(),
    };
    let given = Path::new(path);
    let relative: PathBuf = if given.has_root() {
        let workspace = workspace_dir.ok_or_else(outside)?;
        let normalized = normalize(given).ok_or_else(outside)?;
        let workspace = normalize(workspace).ok_or_else(outside)?;
        normalized
            .strip_prefix(&workspace)
            .map_err(|_| outside())?
            .to_path_buf()
    } else {
        normalize(given).ok_or_else(outside)?
    };
    let mut segments = Vec::new();
    for component in relative.components() {
        match component {
            Component::Normal(segment) => match segment.to_str() {
                Some(segment) => segments.push(segment),
                None => return Err(outside()),
            },
            _ => return Err(outside()),
        }
    }
    if segments.is_empty() {
        return Err(CliError::InvalidValue {
            flag,
            value: path.to_owned(),
            reason: String::from("this names the workspace itself, not a file in it"),
        });
    }
    Ok(segments.join("/"))
}

/// Drops `.` and resolves `..` textually; `None` if `..` climbs above the
/// start of a relative path or above `/`.
fn normalize(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    let mut depth = 0usize;
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                depth = depth.checked_sub(1)?;
                out.pop();
            }
            Component::Normal(segment) => {
                depth += 1;
                out.push(segment);
            }
            other => out.push(other),
        }
    }
    Some(out)
}

/// The cache directory's path relative to the workspace, when it lies
/// strictly inside it: the directory that input and output selection must
/// skip ([`crate::Host::excluded_dirs`]). Both paths should be absolute and
/// resolved (the native binary canonicalizes them); the comparison is
/// textual.
pub fn excluded_dir(workspace: &Path, cache_dir: &Path) -> Option<String> {
    let workspace = normalize(workspace)?;
    let cache_dir = normalize(cache_dir)?;
    let relative = cache_dir.strip_prefix(&workspace).ok()?;
    let mut segments = Vec::new();
    for component in relative.components() {
        match component {
            Component::Normal(segment) => segments.push(segment.to_str()?),
            _ => return None,
        }
    }
    (!segments.is_empty()).then(|| segments.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_human_readable_and_bad_ones_are_refused() {
        assert_eq!(size("--max-size", "4096").unwrap(), 4096);
        assert_eq!(size("--max-size", "10G").unwrap(), 10_000_000_000);
        assert_eq!(size("--max-size", "512MiB").unwrap(), 512 << 20);
        assert_eq!(size("--max-size", "1.5 KiB").unwrap(), 1536);
        assert_eq!(size("--max-size", "2gib").unwrap(), 2 << 30);
        for bad in ["", "G", "-1", "10Q", "ten", " 5", "1e9"] {
            assert!(size("--max-size", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn durations_are_human_readable_and_bad_ones_are_refused() {
        assert_eq!(duration("--max-age", "7d").unwrap(), 7 * 86_400);
        assert_eq!(duration("--max-age", "12h").unwrap(), 12 * 3600);
        assert_eq!(duration("--max-age", "1h 30m").unwrap(), 5400);
        assert_eq!(duration("--max-age", "0s").unwrap(), 0);
        for bad in ["", "7", "d", "-1d", "7 parsecs"] {
            assert!(duration("--max-age", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn assignments_split_at_the_first_equals_sign() {
        let set = assignment("--set", "A=b=c").unwrap();
        assert_eq!((set.name.as_str(), set.value.as_str()), ("A", "b=c"));
        let empty = assignment("--set", "A=").unwrap();
        assert_eq!(empty.value, "");
        for bad in ["A", "=x", "A\0=x", "A=x\0"] {
            assert!(assignment("--set", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn after_splits_project_task_and_key() {
        let hex = "ad7dbe13bf66a72b85024c895a54169e630269d951a2e9b5023324086cc1b784";
        let parsed = after("--after", &format!("web:build:release={hex}")).unwrap();
        assert_eq!(parsed.project, "web");
        assert_eq!(parsed.task, "build:release");
        assert_eq!(parsed.key.to_hex().as_str(), hex);
        for bad in [
            format!("web={hex}"),
            format!(":build={hex}"),
            format!("web:={hex}"),
            String::from("web:build=abc"),
            String::from("web:build"),
        ] {
            assert!(after("--after", &bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn workspace_files_stay_inside_the_workspace() {
        let ws = Some(Path::new("/home/u/ws"));
        let ok = |p: &str| workspace_file("--stdout-file", p, ws).unwrap();
        assert_eq!(ok("out.txt"), "out.txt");
        assert_eq!(ok("./a/../b/c.txt"), "b/c.txt");
        assert_eq!(ok("/home/u/ws/logs/out"), "logs/out");
        for bad in ["../x", "/etc/passwd", "/home/u/wsx/a", "a/../../x", ".", ""] {
            assert!(workspace_file("--stdout-file", bad, ws).is_err(), "{bad:?}");
        }
        assert!(workspace_file("--stdout-file", "/home/u/ws/a", None).is_err());
    }

    #[test]
    fn the_cache_dir_is_excluded_only_when_strictly_inside() {
        let ws = Path::new("/w");
        assert_eq!(
            excluded_dir(ws, Path::new("/w/.cachet")).as_deref(),
            Some(".cachet")
        );
        assert_eq!(
            excluded_dir(ws, Path::new("/w/a/../.haz/cache")).as_deref(),
            Some(".haz/cache")
        );
        assert_eq!(excluded_dir(ws, Path::new("/w")), None);
        assert_eq!(excluded_dir(ws, Path::new("/elsewhere")), None);
    }
}
