//! Running the real `cachet` binary in a temporary workspace.

use alloc::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use cachet_core::hash::{Digest, HashFunction, digest};

/// A temporary directory holding a workspace (`ws/`), a directory outside
/// it (`outside/`) and the log of command runs (`runs.log`).
pub struct Sandbox {
    _dir: tempfile::TempDir,
    pub root: PathBuf,
    pub ws: PathBuf,
    pub outside: PathBuf,
    pub runs_log: PathBuf,
}

impl Sandbox {
    pub fn new() -> Sandbox {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        let ws = root.join("ws");
        let outside = root.join("outside");
        fs::create_dir(&ws).unwrap();
        fs::create_dir(&outside).unwrap();
        Sandbox {
            runs_log: root.join("runs.log"),
            _dir: dir,
            root,
            ws,
            outside,
        }
    }

    /// `cachet` with the workspace as current directory, no inherited
    /// `CACHET_*` setting, the user's configuration directory inside the
    /// sandbox (`config/`, CONF-1), and `$RUNS` naming the run log.
    pub fn cachet(&self) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_cachet"));
        command.current_dir(&self.ws);
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("CACHET_") {
                command.env_remove(name);
            }
        }
        command
            .env("XDG_CONFIG_HOME", self.root.join("config"))
            .env("RUNS", &self.runs_log);
        command
    }

    /// Runs `cachet` with `args`.
    pub fn run(&self, args: &[&str]) -> Outcome {
        Outcome::of(self.cachet().args(args).output().unwrap())
    }

    /// How many times a command that appends to `$RUNS` ran.
    pub fn runs(&self) -> usize {
        fs::read_to_string(&self.runs_log)
            .map(|text| text.lines().count())
            .unwrap_or(0)
    }

    /// Writes a workspace file, creating its parents.
    pub fn write(&self, path: &str, bytes: &[u8]) {
        let path = self.ws.join(path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, bytes).unwrap();
    }

    /// The key `cachet key` prints for `args` (everything after `key`).
    pub fn key(&self, args: &[&str]) -> String {
        let mut all = vec!["key", "--json"];
        all.extend_from_slice(args);
        let outcome = self.run(&all);
        assert_eq!(outcome.code, 0, "{outcome:?}");
        outcome.json()["key"].as_str().unwrap().to_owned()
    }
}

/// What a `cachet` process did.
pub struct Outcome {
    pub code: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Outcome {
    pub fn of(output: Output) -> Outcome {
        Outcome {
            code: output.status.code().unwrap_or(-1),
            stdout: output.stdout,
            stderr: output.stderr,
        }
    }

    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }

    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.stdout)
            .unwrap_or_else(|error| panic!("not JSON ({error}): {self:?}"))
    }

    pub fn was_hit(&self) -> bool {
        self.stderr_text().contains("cachet: hit ")
    }

    pub fn was_miss(&self) -> bool {
        self.stderr_text().contains("cachet: miss (")
    }
}

impl core::fmt::Debug for Outcome {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code,
            self.stdout_text(),
            self.stderr_text()
        )
    }
}

/// A regular file's content digest, size and permission bits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileState {
    pub digest: Digest,
    pub size: u64,
    pub mode: u32,
}

/// Every regular file below `dir` (relative path → state), skipping the
/// directories named in `skip`. Panics on anything but files and
/// directories.
pub fn snapshot(dir: &Path, skip: &[&str]) -> BTreeMap<String, FileState> {
    let mut files = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(current) = stack.pop() {
        for entry in fs::read_dir(&current).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            let relative = path.strip_prefix(dir).unwrap().to_str().unwrap().to_owned();
            if skip.contains(&relative.as_str()) {
                continue;
            }
            let meta = fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                stack.push(path);
            } else {
                assert!(meta.is_file(), "{relative} is not a regular file");
                let bytes = fs::read(&path).unwrap();
                files.insert(
                    relative,
                    FileState {
                        digest: digest(HashFunction::Blake3, &bytes),
                        size: meta.len(),
                        mode: meta.permissions().mode() & 0o7777,
                    },
                );
            }
        }
    }
    files
}

/// The parsed manifest of `key` in the cache directory `cache`.
pub fn manifest(cache: &Path, key: &str) -> serde_json::Value {
    let path = cache.join(&key[..2]).join(key).join("manifest.json");
    serde_json::from_slice(&fs::read(&path).unwrap()).unwrap()
}

/// Copies a directory tree (files and directories only), leaving copies
/// writable by the owner.
pub fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        let meta = fs::symlink_metadata(entry.path()).unwrap();
        if meta.is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).unwrap();
            let mode = meta.permissions().mode() | 0o200;
            fs::set_permissions(&target, fs::Permissions::from_mode(mode)).unwrap();
        }
    }
}
