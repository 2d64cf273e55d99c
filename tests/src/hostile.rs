//! Hostile caches and inputs (issue #5, part 4) as a reusable list.
//!
//! Every [`Case`] builds one hostile situation in a fresh [`Layout`] (a
//! workspace, a cache directory beside it, and an `outside` directory that no
//! command may write to) and states its [`Expect`]ed verdict for each step
//! of [`Step::SEQUENCE`]: `status`, `restore`, `info`, `verify`,
//! `clean --soft`, `status` again, `clear`. [`judge`] and
//! [`judge_workspace`] decide whether one host's answer is right, so the
//! native tests (`host-std/tests/cli/hostile.rs`, the real `cachet`
//! binary) and the Wasm guest tests (`host-wasi/tests/hostile/main.rs`)
//! share one list. It builds the trees with `std::fs` plus the `mkfifo`
//! command, so it runs on the host whatever runs the cache.
//!
//! Every hostile cache starts as a complete, valid entry written by
//! [`Entry::write_at`] (the [`VALID`] case proves that entry is a hit and
//! restores exactly), then one thing is changed; each edit asserts that it
//! changed something, so no case can silently degrade into the valid one.

use alloc::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;

use cachet_core::hash::{HashFunction, digest};

/// Bytes that sit outside the workspace and the cache; they must never
/// appear in a restored file or a replayed stream.
pub const SECRET: &[u8] = b"TOP SECRET: never restore or replay these bytes\n";

/// The manifest cap of `cachet_core::cache::Options::default()` (MAN-4).
pub const MANIFEST_CAP: u64 = 64 * 1024 * 1024;

/// Outputs in the huge-count manifest (about 37 MB, under the cap).
pub const HUGE_OUTPUT_COUNT: usize = 200_000;

/// The three directories of one case under `root`: side by side, or with
/// the cache directory inside the workspace for the cases that need it
/// there ([`Build::CacheInWorkspace`]).
#[derive(Debug)]
pub struct Layout {
    /// The temporary directory holding the other three.
    pub root: PathBuf,
    /// The workspace (`--workspace`).
    pub workspace: PathBuf,
    /// The cache directory (`--cache-dir`), outside the workspace unless
    /// the case asks for it inside.
    pub cache: PathBuf,
    /// A directory no command may change; secrets and planted targets live
    /// here.
    pub outside: PathBuf,
}

impl Layout {
    /// Creates `workspace/`, `cache/` and `outside/` under `root`, which
    /// should be canonical (symlinks in it would be followed by everyone).
    pub fn create(root: &Path) -> Layout {
        let layout = Layout {
            root: root.to_path_buf(),
            workspace: root.join("ws"),
            cache: root.join("cache"),
            outside: root.join("outside"),
        };
        for dir in [&layout.workspace, &layout.cache, &layout.outside] {
            fs::create_dir_all(dir).unwrap();
        }
        layout
    }

    /// As [`Layout::create`], but with the cache directory at
    /// `workspace/.cachet`, where `cachet` puts it by default.
    pub fn create_with_cache_in_workspace(root: &Path) -> Layout {
        let layout = Layout {
            cache: root.join("ws").join(".cachet"),
            ..Layout::create(root)
        };
        fs::remove_dir(root.join("cache")).unwrap();
        fs::create_dir_all(&layout.cache).unwrap();
        layout
    }

    /// The cache directory relative to the workspace (`.cachet`), when it
    /// lies inside it: what a host passes to the cache as
    /// `Options::cache_dir_in_workspace` (SAFE-8).
    pub fn cache_in_workspace(&self) -> Option<String> {
        let relative = self.cache.strip_prefix(&self.workspace).ok()?;
        Some(relative.to_str()?.to_owned())
    }

    /// [`snapshot`] of the workspace, leaving out the cache directory when
    /// it lies inside: the workspace a restore may change, not the cache
    /// the maintenance steps may.
    pub fn workspace_snapshot(&self) -> BTreeMap<String, Node> {
        let mut nodes = snapshot(&self.workspace);
        if let Some(cache) = self.cache_in_workspace() {
            nodes.retain(|path, _| {
                path.strip_prefix(&cache)
                    .is_none_or(|rest| !rest.is_empty() && !rest.starts_with('/'))
            });
        }
        nodes
    }
}

/// The key a case's entry is filed under: the BLAKE3 digest of its name.
pub fn key_for(name: &str) -> String {
    hex(name.as_bytes())
}

/// The lowercase hex BLAKE3 digest of `bytes` (KEY-2).
pub fn hex(bytes: &[u8]) -> String {
    digest(HashFunction::Blake3, bytes)
        .to_hex()
        .as_str()
        .to_owned()
}

/// A cache entry as a test writes it, byte for byte what `cachet store`
/// would publish (MAN-2 layout, DISK-1..4).
#[derive(Clone, Debug)]
pub struct Entry {
    /// The key, 64 lowercase hex digits.
    pub key: String,
    /// `(workspace path, bytes, mode)`, sorted by path as a store sorts.
    pub outputs: Vec<(String, Vec<u8>, u32)>,
    /// The recorded stdout.
    pub stdout: Vec<u8>,
    /// The recorded stderr.
    pub stderr: Vec<u8>,
}

impl Entry {
    /// Two outputs (one executable, one in a subdirectory) and both
    /// streams, filed under [`key_for`]`(name)`.
    pub fn standard(name: &str) -> Entry {
        Entry {
            key: key_for(name),
            outputs: vec![
                (
                    String::from("/out/sub/run.sh"),
                    b"#!/bin/sh\necho restored\n".to_vec(),
                    0o755,
                ),
                (String::from("/out/x"), b"built x\n".to_vec(), 0o644),
            ],
            stdout: b"recorded stdout\n".to_vec(),
            stderr: b"recorded stderr\n".to_vec(),
        }
    }

    /// The shard directory name.
    pub fn shard(&self) -> &str {
        &self.key[..2]
    }

    /// The entry directory inside `cache`.
    pub fn dir(&self, cache: &Path) -> PathBuf {
        cache.join(self.shard()).join(&self.key)
    }

    /// The blob of output `index` inside the entry directory `dir`.
    pub fn blob(&self, dir: &Path, index: usize) -> PathBuf {
        dir.join("outputs").join(hex(&self.outputs[index].1))
    }

    /// The manifest exactly as MAN-2 writes it.
    pub fn manifest(&self) -> String {
        let mut text = String::new();
        text.push_str("{\n  \"chapter_revision\": 0,\n  \"hash_function\": \"blake3\",\n");
        text.push_str(&format!("  \"key\": \"{}\",\n", self.key));
        if self.outputs.is_empty() {
            text.push_str("  \"outputs\": [],\n");
        } else {
            text.push_str("  \"outputs\": [\n");
            for (i, (path, bytes, mode)) in self.outputs.iter().enumerate() {
                output_object(&mut text, path, &hex(bytes), bytes.len() as u64, *mode);
                text.push_str(if i + 1 < self.outputs.len() {
                    ",\n"
                } else {
                    "\n"
                });
            }
            text.push_str("  ],\n");
        }
        text.push_str(&format!(
            "  \"stdout_len\": {},\n  \"stderr_len\": {},\n  \"stdout_hash\": \"{}\",\n  \"stderr_hash\": \"{}\",\n  \"exit_status\": 0,\n  \"created_at_unix\": 1700000000\n}}\n",
            self.stdout.len(),
            self.stderr.len(),
            hex(&self.stdout),
            hex(&self.stderr)
        ));
        text
    }

    /// Writes the complete, valid entry directory at `dir` (inside a cache
    /// or, for planted copies, outside it).
    pub fn write_at(&self, dir: &Path) {
        fs::create_dir_all(dir.join("outputs")).unwrap();
        for (_, bytes, _) in &self.outputs {
            fs::write(dir.join("outputs").join(hex(bytes)), bytes).unwrap();
        }
        fs::write(dir.join("stdout"), &self.stdout).unwrap();
        fs::write(dir.join("stderr"), &self.stderr).unwrap();
        fs::write(dir.join("manifest.json"), self.manifest()).unwrap();
    }

    /// Writes the entry into the layout's cache and returns its directory.
    pub fn write(&self, layout: &Layout) -> PathBuf {
        let dir = self.dir(&layout.cache);
        self.write_at(&dir);
        dir
    }

    /// What a successful restore of this entry must produce.
    pub fn restored(&self) -> Restore {
        Restore::Restored {
            files: self.outputs.clone(),
            stdout: self.stdout.clone(),
            stderr: self.stderr.clone(),
        }
    }
}

/// Appends one MAN-2 output object; `path` is the JSON string's contents
/// as they appear between the quotes (escapes included).
fn output_object(text: &mut String, path: &str, hash: &str, size: u64, mode: u32) {
    text.push_str(&format!(
        "    {{\n      \"workspace_absolute_path\": \"{path}\",\n      \"content_hash\": \"{hash}\",\n      \"size\": {size},\n      \"mode\": {mode}\n    }}"
    ));
}

/// `text` with the first `from` replaced by `to`; panics if `from` is
/// absent, so an edit can never silently do nothing.
pub fn replace_once(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "{from:?} not found in the manifest");
    text.replacen(from, to, 1)
}

/// `text` with the value of the first member `name` (a number) replaced by
/// `literal`.
pub fn set_number(text: &str, name: &str, literal: &str) -> String {
    let needle = format!("\"{name}\": ");
    let start = text.find(&needle).expect("member present") + needle.len();
    let end = start
        + text[start..]
            .find([',', '\n'])
            .expect("value is followed by a comma or a newline");
    format!("{}{literal}{}", &text[..start], &text[end..])
}

/// Rewrites a file through `edit`, asserting that the contents changed.
pub fn edit_file(path: &Path, edit: impl FnOnce(String) -> String) {
    let before = fs::read_to_string(path).unwrap();
    let after = edit(before.clone());
    assert_ne!(
        before,
        after,
        "the edit of {} changed nothing",
        path.display()
    );
    fs::write(path, after).unwrap();
}

/// Replaces the file at `path` with a symlink to `target`.
fn replace_with_symlink(path: &Path, target: &Path) {
    fs::remove_file(path).unwrap();
    symlink(target, path).unwrap();
}

/// Creates a named pipe (nobody ever writes to it: opening and reading it
/// would block forever without `O_NONBLOCK`).
fn mkfifo(path: &Path) {
    let status = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(status.success(), "mkfifo {}", path.display());
}

/// What `restore` must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Restore {
    /// Exit 0: exactly these files (workspace path, bytes, mode) are
    /// written, and exactly these streams replayed.
    Restored {
        /// `(workspace path, bytes, mode)`.
        files: Vec<(String, Vec<u8>, u32)>,
        /// Replayed on stdout.
        stdout: Vec<u8>,
        /// Replayed on stderr.
        stderr: Vec<u8>,
    },
    /// Exit 1 with this status in the message, nothing written, nothing
    /// replayed.
    Miss(&'static str),
    /// Exit 70 with a message naming this workspace path in quotes;
    /// nothing written (OP-3 checks every target before writing, SAFE-2).
    Refused(String),
}

/// What `verify --json` must report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verify {
    /// Exit 0: one entry checked, intact.
    Intact,
    /// Exit 1: the entry is damaged, with this `damage` (`corrupt` or
    /// `content-mismatch`).
    Damaged(&'static str),
    /// Exit 0: nothing in the cache is an entry directory (a planted
    /// symlink is debris, not an entry), so nothing is checked.
    NotAnEntry,
}

/// The verdict of one case, step by step.
#[derive(Clone, Debug)]
pub struct Expect {
    /// The key the steps ask about.
    pub key: String,
    /// `status --json`: `hit`, `miss-corrupt`, `miss-no-entry`, ...
    pub status: &'static str,
    /// `restore`.
    pub restore: Restore,
    /// `verify --json`.
    pub verify: Verify,
    /// `info --json`'s `corrupt_entries` (corrupt entries and debris).
    pub corrupt_entries: u64,
    /// `status --json` after `clean --soft`: a soft clean removes what is
    /// corrupt (OP-5), so usually `miss-no-entry`.
    pub status_after_soft_clean: &'static str,
    /// `Some(path)`: the maintenance walks (`info`, `clean`, `clear`) cannot
    /// handle this item, exit 70 and list it (by a path starting with
    /// this) among their `failures`; `None`: they succeed.
    pub walk_failure: Option<String>,
}

impl Expect {
    /// A hostile entry that lookup must see as corrupt, and soft clean must
    /// remove.
    pub fn corrupt(key: &str) -> Expect {
        Expect {
            key: key.to_owned(),
            status: "miss-corrupt",
            restore: Restore::Miss("miss-corrupt"),
            verify: Verify::Damaged("corrupt"),
            corrupt_entries: 1,
            status_after_soft_clean: "miss-no-entry",
            walk_failure: None,
        }
    }

    /// Something planted in place of an entry or shard directory: a
    /// corrupt miss, debris to the walks, removed (the link, not its
    /// target) by a soft clean.
    pub fn planted(key: &str) -> Expect {
        Expect {
            verify: Verify::NotAnEntry,
            ..Expect::corrupt(key)
        }
    }

    /// A valid entry restored exactly.
    pub fn hit(entry: &Entry) -> Expect {
        Expect {
            key: entry.key.clone(),
            status: "hit",
            restore: entry.restored(),
            verify: Verify::Intact,
            corrupt_entries: 0,
            status_after_soft_clean: "hit",
            walk_failure: None,
        }
    }
}

/// How a case builds its hostile situation.
#[derive(Clone, Copy, Debug)]
pub enum Build {
    /// Arbitrary construction.
    Fn(fn(&Layout) -> Expect),
    /// The standard entry with its first output path replaced by this JSON
    /// string content (escapes included).
    BadPath(&'static str),
    /// The standard entry with the first number member `.0` replaced by the
    /// literal `.1`.
    BadNumber(&'static str, &'static str),
    /// Arbitrary construction in a layout whose cache directory lies
    /// inside the workspace ([`Layout::create_with_cache_in_workspace`]).
    CacheInWorkspace(fn(&Layout) -> Expect),
}

/// One hostile situation.
#[derive(Clone, Copy, Debug)]
pub struct Case {
    /// A unique name, also the entry's key seed.
    pub name: &'static str,
    /// The SPEC rules it exercises.
    pub rules: &'static str,
    /// How it is built.
    pub build: Build,
}

impl Case {
    /// Creates the directories the case is built in, under `root`.
    pub fn layout(&self, root: &Path) -> Layout {
        match self.build {
            Build::CacheInWorkspace(_) => Layout::create_with_cache_in_workspace(root),
            _ => Layout::create(root),
        }
    }

    /// Builds the situation in `layout` (made by [`Case::layout`]) and
    /// returns the verdict.
    pub fn build(&self, layout: &Layout) -> Expect {
        match self.build {
            Build::Fn(build) | Build::CacheInWorkspace(build) => build(layout),
            Build::BadPath(literal) => {
                let entry = Entry::standard(self.name);
                let dir = entry.write(layout);
                edit_file(&dir.join("manifest.json"), |text| {
                    replace_once(&text, "\"/out/sub/run.sh\"", &format!("\"{literal}\""))
                });
                Expect::corrupt(&entry.key)
            }
            Build::BadNumber(member, literal) => {
                let entry = Entry::standard(self.name);
                let dir = entry.write(layout);
                edit_file(&dir.join("manifest.json"), |text| {
                    set_number(&text, member, literal)
                });
                Expect::corrupt(&entry.key)
            }
        }
    }

    /// Looks a case up by name.
    pub fn named(name: &str) -> &'static Case {
        ALL.iter()
            .find(|case| case.name == name)
            .unwrap_or_else(|| panic!("no case named {name}"))
    }
}

/// The control: a valid entry is a hit and restores exactly. Without it
/// every "miss" below could be the builder's fault.
pub const VALID: Case = Case {
    name: "valid-control",
    rules: "OP-1 OP-3 CLAIM-1",
    build: Build::Fn(valid),
};

fn valid(layout: &Layout) -> Expect {
    let entry = Entry::standard("valid-control");
    entry.write(layout);
    Expect::hit(&entry)
}

/// Manifest paths that escape or are not workspace paths (PATH-1, PATH-2,
/// PATH-3: a corrupt miss). JSON string contents, escapes included.
pub const TRAVERSAL_PATHS: &[&str] = &[
    "/../outside/pwned",
    "/out/../../outside/pwned",
    "/out/x/../../../outside/pwned",
    "/\\u002e\\u002e/outside/pwned",
    "\\/..\\/outside\\/pwned",
    "/..",
    "//outside/pwned",
    "/out/./x",
    "/out/x/",
    "/",
    "",
    "out/x",
    "/out/x\\u0000",
];

/// Paths with bidi overrides, invisible, unassigned, private-use and
/// control characters (PATH-2), raw and as JSON escapes, and lone
/// surrogates.
pub const BIDI_PATHS: &[&str] = &[
    "/out/\u{202e}gpj.exe",
    "/out/\\u202Egpj.exe",
    "/out/\u{2066}x\u{2069}",
    "/out/a\u{200b}b",
    "/out/a\\u200db",
    "/out/\u{feff}x",
    "/out/a\u{2028}b",
    "/out/a\\u2029b",
    "/out/\u{e000}x",
    "/out/\u{378}x",
    "/out/\u{1}x",
    "/out/\\u001bx",
    "/out/\\ud800x",
    "/out/\\udc00x",
];

/// Every case. Names are unique.
pub static ALL: &[Case] = &[
    VALID,
    Case {
        name: "blob-symlink-to-secret",
        rules: "SAFE-2 OP-1",
        build: Build::Fn(blob_symlink_to_secret),
    },
    Case {
        name: "stream-symlink-to-secret",
        rules: "SAFE-2 OP-1",
        build: Build::Fn(stream_symlink_to_secret),
    },
    Case {
        name: "manifest-symlink-outside",
        rules: "SAFE-2 OP-1",
        build: Build::Fn(manifest_symlink_outside),
    },
    Case {
        name: "entry-dir-symlink-outside",
        rules: "SAFE-2 OP-1 OP-5",
        build: Build::Fn(entry_dir_symlink_outside),
    },
    Case {
        name: "shard-symlink-outside",
        rules: "SAFE-2 OP-1 OP-5",
        build: Build::Fn(shard_symlink_outside),
    },
    Case {
        name: "outputs-dir-symlink-outside",
        rules: "SAFE-2 OP-1 OP-5",
        build: Build::Fn(outputs_dir_symlink_outside),
    },
    Case {
        name: "workspace-dir-symlinked-outside",
        rules: "SAFE-2 OP-3 SAFE-4",
        build: Build::Fn(workspace_dir_symlinked_outside),
    },
    Case {
        name: "nested-workspace-dir-symlinked-outside",
        rules: "SAFE-2 OP-3 SAFE-4",
        build: Build::Fn(nested_workspace_dir_symlinked_outside),
    },
    Case {
        name: "workspace-target-symlink-to-outside-file",
        rules: "SAFE-2 OP-3",
        build: Build::Fn(workspace_target_symlink_to_outside_file),
    },
    Case {
        name: "path-segment-too-long-for-the-os",
        rules: "SAFE-4 OP-3",
        build: Build::Fn(path_segment_too_long_for_the_os),
    },
    Case {
        name: "path-longer-than-path-max",
        rules: "PATH-3 SAFE-1",
        build: Build::Fn(path_longer_than_path_max),
    },
    Case {
        name: "huge-size",
        rules: "SAFE-1 OP-1",
        build: Build::BadNumber("size", "18446744073709551615"),
    },
    Case {
        name: "size-beyond-u64",
        rules: "SAFE-1 MAN-3",
        build: Build::BadNumber("size", "18446744073709551616"),
    },
    Case {
        name: "size-with-exponent",
        rules: "MAN-3",
        build: Build::BadNumber("size", "8e0"),
    },
    Case {
        name: "negative-size",
        rules: "MAN-3",
        build: Build::BadNumber("size", "-8"),
    },
    Case {
        name: "huge-stdout-len",
        rules: "SAFE-1 OP-1",
        build: Build::BadNumber("stdout_len", "18446744073709551615"),
    },
    Case {
        name: "stderr-len-of-thirty-digits",
        rules: "SAFE-1 MAN-3",
        build: Build::BadNumber("stderr_len", "999999999999999999999999999999"),
    },
    Case {
        name: "mode-beyond-u32",
        rules: "MAN-3",
        build: Build::BadNumber("mode", "4294967296"),
    },
    Case {
        name: "exit-status-not-zero",
        rules: "CLAIM-1 OP-1",
        build: Build::BadNumber("exit_status", "1"),
    },
    Case {
        name: "huge-output-count",
        rules: "SAFE-1 MAN-4",
        build: Build::Fn(huge_output_count),
    },
    Case {
        name: "deeply-nested-outputs",
        rules: "SAFE-1 MAN-3",
        build: Build::Fn(deeply_nested_outputs),
    },
    Case {
        name: "deeply-nested-unknown-member",
        rules: "SAFE-1 MAN-3",
        build: Build::Fn(deeply_nested_unknown_member),
    },
    Case {
        name: "deeply-nested-output-object",
        rules: "SAFE-1 MAN-3",
        build: Build::Fn(deeply_nested_output_object),
    },
    Case {
        name: "manifest-of-1-gib",
        rules: "MAN-4 SAFE-1",
        build: Build::Fn(manifest_of_1_gib),
    },
    Case {
        name: "manifest-at-the-cap",
        rules: "MAN-4 SAFE-1",
        build: Build::Fn(manifest_at_the_cap),
    },
    Case {
        name: "manifest-one-byte-over-the-cap",
        rules: "MAN-4",
        build: Build::Fn(manifest_one_byte_over_the_cap),
    },
    Case {
        name: "empty-manifest",
        rules: "OP-1",
        build: Build::Fn(empty_manifest),
    },
    Case {
        name: "truncated-manifest",
        rules: "OP-1 SAFE-3",
        build: Build::Fn(truncated_manifest),
    },
    Case {
        name: "manifest-of-another-key",
        rules: "OP-1",
        build: Build::Fn(manifest_of_another_key),
    },
    Case {
        name: "manifest-is-a-directory",
        rules: "OP-1 SAFE-1",
        build: Build::Fn(manifest_is_a_directory),
    },
    Case {
        name: "truncated-blob",
        rules: "OP-1",
        build: Build::Fn(truncated_blob),
    },
    Case {
        name: "truncated-stream",
        rules: "OP-1",
        build: Build::Fn(truncated_stream),
    },
    Case {
        name: "missing-blob",
        rules: "OP-1",
        build: Build::Fn(missing_blob),
    },
    Case {
        name: "tampered-blob-same-size",
        rules: "OP-3 OP-7 CLAIM-1",
        build: Build::Fn(tampered_blob_same_size),
    },
    Case {
        name: "tampered-stream-same-size",
        rules: "OP-3 OP-7 CLAIM-1",
        build: Build::Fn(tampered_stream_same_size),
    },
    Case {
        name: "blob-is-a-fifo",
        rules: "SAFE-1 OP-1",
        build: Build::Fn(blob_is_a_fifo),
    },
    Case {
        name: "blob-is-a-directory",
        rules: "OP-1",
        build: Build::Fn(blob_is_a_directory),
    },
    Case {
        name: "deep-directory-debris",
        rules: "SAFE-1 SAFE-4 OP-5",
        build: Build::Fn(deep_directory_debris),
    },
    Case {
        name: "output-path-twice",
        rules: "SAFE-5 SAFE-9 OP-1",
        build: Build::Fn(output_path_twice),
    },
    Case {
        name: "output-path-twice-out-of-order",
        rules: "SAFE-5 SAFE-9 OP-1 MAN-1",
        build: Build::Fn(output_path_twice_out_of_order),
    },
    Case {
        name: "output-below-another-output",
        rules: "SAFE-6 SAFE-9 OP-1",
        build: Build::Fn(output_below_another_output),
    },
    Case {
        name: "output-in-git-dir",
        rules: "SAFE-7 SAFE-9 OP-1",
        build: Build::Fn(output_in_git_dir),
    },
    Case {
        name: "output-in-cache-dir",
        rules: "SAFE-8 SAFE-9 OP-1",
        build: Build::CacheInWorkspace(output_in_cache_dir),
    },
    Case {
        name: "output-above-cache-dir",
        rules: "SAFE-8 SAFE-9 OP-1",
        build: Build::CacheInWorkspace(output_above_cache_dir),
    },
    Case {
        name: "valid-control-with-cache-in-workspace",
        rules: "OP-1 OP-3 SAFE-8",
        build: Build::CacheInWorkspace(valid_with_cache_in_workspace),
    },
];

/// [`TRAVERSAL_PATHS`] as cases.
pub fn traversal_cases() -> Vec<Case> {
    path_cases("traversal", TRAVERSAL_PATHS)
}

/// [`BIDI_PATHS`] as cases.
pub fn bidi_cases() -> Vec<Case> {
    path_cases("bidi", BIDI_PATHS)
}

fn path_cases(prefix: &'static str, paths: &'static [&'static str]) -> Vec<Case> {
    paths
        .iter()
        .enumerate()
        .map(|(i, path)| Case {
            // Leaked once per test run: a handful of short names.
            name: Box::leak(format!("{prefix}-{i}").into_boxed_str()),
            rules: "PATH-1 PATH-2 PATH-3 SAFE-2",
            build: Build::BadPath(path),
        })
        .collect()
}

/// [`ALL`], then the path cases: everything there is.
pub fn every_case() -> Vec<Case> {
    let mut cases = ALL.to_vec();
    cases.extend(traversal_cases());
    cases.extend(bidi_cases());
    cases
}

fn blob_symlink_to_secret(layout: &Layout) -> Expect {
    // The strongest form: the manifest records the secret's own hash and
    // size, so following the link anywhere would make a complete hit that
    // restores the secret into the workspace.
    let secret = layout.outside.join("secret.txt");
    fs::write(&secret, SECRET).unwrap();
    let mut entry = Entry::standard("blob-symlink-to-secret");
    entry.outputs[1].1 = SECRET.to_vec();
    let dir = entry.write(layout);
    replace_with_symlink(&entry.blob(&dir, 1), &secret);
    Expect::corrupt(&entry.key)
}

fn stream_symlink_to_secret(layout: &Layout) -> Expect {
    let secret = layout.outside.join("secret.txt");
    fs::write(&secret, SECRET).unwrap();
    let mut entry = Entry::standard("stream-symlink-to-secret");
    entry.stdout = SECRET.to_vec();
    let dir = entry.write(layout);
    replace_with_symlink(&dir.join("stdout"), &secret);
    Expect::corrupt(&entry.key)
}

fn manifest_symlink_outside(layout: &Layout) -> Expect {
    let entry = Entry::standard("manifest-symlink-outside");
    let dir = entry.write(layout);
    let planted = layout.outside.join("manifest.json");
    fs::rename(dir.join("manifest.json"), &planted).unwrap();
    symlink(&planted, dir.join("manifest.json")).unwrap();
    Expect::corrupt(&entry.key)
}

fn entry_dir_symlink_outside(layout: &Layout) -> Expect {
    let mut entry = Entry::standard("entry-dir-symlink-outside");
    entry.outputs[1].1 = SECRET.to_vec();
    let planted = layout.outside.join("planted-entry");
    entry.write_at(&planted);
    fs::create_dir(layout.cache.join(entry.shard())).unwrap();
    symlink(&planted, entry.dir(&layout.cache)).unwrap();
    Expect::planted(&entry.key)
}

fn shard_symlink_outside(layout: &Layout) -> Expect {
    let mut entry = Entry::standard("shard-symlink-outside");
    entry.outputs[1].1 = SECRET.to_vec();
    let planted = layout.outside.join("planted-shard");
    entry.write_at(&planted.join(&entry.key));
    symlink(&planted, layout.cache.join(entry.shard())).unwrap();
    Expect::planted(&entry.key)
}

fn outputs_dir_symlink_outside(layout: &Layout) -> Expect {
    // Every blob is a regular file of the right size and hash, reached
    // through a symlinked `outputs` directory that leads out of the cache.
    let mut entry = Entry::standard("outputs-dir-symlink-outside");
    entry.outputs[1].1 = SECRET.to_vec();
    let dir = entry.write(layout);
    let planted = layout.outside.join("planted-outputs");
    fs::rename(dir.join("outputs"), &planted).unwrap();
    symlink(&planted, dir.join("outputs")).unwrap();
    Expect::corrupt(&entry.key)
}

fn workspace_dir_symlinked_outside(layout: &Layout) -> Expect {
    let entry = Entry::standard("workspace-dir-symlinked-outside");
    entry.write(layout);
    let target = layout.outside.join("target-dir");
    fs::create_dir(&target).unwrap();
    symlink(&target, layout.workspace.join("out")).unwrap();
    Expect {
        restore: Restore::Refused(String::from("/out")),
        ..Expect::hit(&entry)
    }
}

fn nested_workspace_dir_symlinked_outside(layout: &Layout) -> Expect {
    let entry = Entry::standard("nested-workspace-dir-symlinked-outside");
    entry.write(layout);
    fs::create_dir(layout.outside.join("target-dir")).unwrap();
    fs::create_dir(layout.workspace.join("out")).unwrap();
    // Relative, and leading out through `..`.
    symlink("../../outside/target-dir", layout.workspace.join("out/sub")).unwrap();
    Expect {
        restore: Restore::Refused(String::from("/out/sub")),
        ..Expect::hit(&entry)
    }
}

fn workspace_target_symlink_to_outside_file(layout: &Layout) -> Expect {
    let entry = Entry::standard("workspace-target-symlink-to-outside-file");
    entry.write(layout);
    let victim = layout.outside.join("victim.txt");
    fs::write(&victim, b"victim: must stay untouched\n").unwrap();
    fs::create_dir(layout.workspace.join("out")).unwrap();
    symlink(&victim, layout.workspace.join("out/x")).unwrap();
    // Replaced by the restored file, never written through.
    Expect::hit(&entry)
}

fn path_segment_too_long_for_the_os(layout: &Layout) -> Expect {
    // A valid workspace path (PATH-1, PATH-2) whose segment exceeds
    // NAME_MAX: a hit, but restore must fail cleanly, naming the path,
    // before writing anything.
    let mut entry = Entry::standard("path-segment-too-long-for-the-os");
    let long = format!("/out/{}", "n".repeat(300));
    entry.outputs[1].0 = long.clone();
    entry.write(layout);
    // With `out/` present the target is inspected, and refused, before
    // anything is written; without it the first output would be published
    // before the rename of this one failed (OP-3 allows that: the caller
    // treats it as a miss and runs the task).
    fs::create_dir(layout.workspace.join("out")).unwrap();
    Expect {
        restore: Restore::Refused(long),
        ..Expect::hit(&entry)
    }
}

fn path_longer_than_path_max(layout: &Layout) -> Expect {
    let entry = Entry::standard("path-longer-than-path-max");
    let dir = entry.write(layout);
    let long = format!("/out/{}", "a/".repeat(3000));
    let long = long.trim_end_matches('/');
    edit_file(&dir.join("manifest.json"), |text| {
        replace_once(&text, "\"/out/x\"", &format!("\"{long}\""))
    });
    Expect::corrupt(&entry.key)
}

fn huge_output_count(layout: &Layout) -> Expect {
    // HUGE_OUTPUT_COUNT outputs sharing one blob, under the cap; the last
    // one's blob is missing, so every output is looked at before the
    // verdict.
    let entry = Entry {
        outputs: vec![(String::from("/f"), b"o\n".to_vec(), 0o644)],
        ..Entry::standard("huge-output-count")
    };
    let dir = entry.write(layout);
    let blob = hex(b"o\n");
    let missing = hex(b"missing");
    let mut text = String::with_capacity(HUGE_OUTPUT_COUNT * 190);
    text.push_str(&format!(
        "{{\n  \"chapter_revision\": 0,\n  \"hash_function\": \"blake3\",\n  \"key\": \"{}\",\n  \"outputs\": [\n",
        entry.key
    ));
    for i in 0..HUGE_OUTPUT_COUNT {
        let last = i + 1 == HUGE_OUTPUT_COUNT;
        let hash = if last { &missing } else { &blob };
        output_object(&mut text, &format!("/out/f{i:07}"), hash, 2, 0o644);
        text.push_str(if last { "\n" } else { ",\n" });
    }
    let full = entry.manifest();
    let tail = &full[full.find("  ],\n").expect("outputs array")..];
    text.push_str(tail);
    assert!((text.len() as u64) < MANIFEST_CAP, "{} bytes", text.len());
    fs::write(dir.join("manifest.json"), text).unwrap();
    Expect::corrupt(&entry.key)
}

fn deeply_nested_outputs(layout: &Layout) -> Expect {
    let entry = Entry::standard("deeply-nested-outputs");
    let dir = entry.write(layout);
    let depth = 1_000_000;
    edit_file(&dir.join("manifest.json"), |text| {
        let start = text.find("\"outputs\": ").unwrap() + "\"outputs\": ".len();
        let end = text.find("  ],\n").unwrap() + "  ]".len();
        format!(
            "{}{}{}{}",
            &text[..start],
            "[".repeat(depth),
            "]".repeat(depth),
            &text[end..]
        )
    });
    Expect::corrupt(&entry.key)
}

fn deeply_nested_unknown_member(layout: &Layout) -> Expect {
    let entry = Entry::standard("deeply-nested-unknown-member");
    let dir = entry.write(layout);
    let depth = 500_000;
    edit_file(&dir.join("manifest.json"), |text| {
        let nested = format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth));
        replace_once(&text, "{\n", &format!("{{\n  \"deep\": {nested},\n"))
    });
    Expect::corrupt(&entry.key)
}

fn deeply_nested_output_object(layout: &Layout) -> Expect {
    let entry = Entry::standard("deeply-nested-output-object");
    let dir = entry.write(layout);
    let depth = 500_000;
    edit_file(&dir.join("manifest.json"), |text| {
        let nested = format!("{}0{}", "[{\"size\":".repeat(depth), "}]".repeat(depth));
        set_number(&text, "size", &nested)
    });
    Expect::corrupt(&entry.key)
}

/// Makes the entry's manifest `len` bytes long: its valid text followed by
/// a sparse run of NUL bytes, which costs no disk.
fn sparse_manifest(layout: &Layout, name: &str, len: u64) -> Expect {
    let entry = Entry::standard(name);
    let dir = entry.write(layout);
    let file = fs::OpenOptions::new()
        .write(true)
        .open(dir.join("manifest.json"))
        .unwrap();
    file.set_len(len).unwrap();
    Expect::corrupt(&entry.key)
}

fn manifest_of_1_gib(layout: &Layout) -> Expect {
    sparse_manifest(layout, "manifest-of-1-gib", 1 << 30)
}

fn manifest_at_the_cap(layout: &Layout) -> Expect {
    // Read whole (it is not over the cap), then refused by the parser: the
    // largest allocation any manifest can cause.
    sparse_manifest(layout, "manifest-at-the-cap", MANIFEST_CAP)
}

fn manifest_one_byte_over_the_cap(layout: &Layout) -> Expect {
    sparse_manifest(layout, "manifest-one-byte-over-the-cap", MANIFEST_CAP + 1)
}

fn empty_manifest(layout: &Layout) -> Expect {
    let entry = Entry::standard("empty-manifest");
    let dir = entry.write(layout);
    fs::write(dir.join("manifest.json"), b"").unwrap();
    Expect::corrupt(&entry.key)
}

fn truncated_manifest(layout: &Layout) -> Expect {
    let entry = Entry::standard("truncated-manifest");
    let dir = entry.write(layout);
    let text = entry.manifest();
    fs::write(dir.join("manifest.json"), &text[..text.len() / 2]).unwrap();
    Expect::corrupt(&entry.key)
}

fn manifest_of_another_key(layout: &Layout) -> Expect {
    // A complete entry of another key copied under this one (a poisoning
    // attempt): stricter than haz-cache, a corrupt miss.
    let entry = Entry::standard("manifest-of-another-key");
    let dir = entry.write(layout);
    let other = key_for("some other task");
    edit_file(&dir.join("manifest.json"), |text| {
        replace_once(&text, &entry.key, &other)
    });
    Expect::corrupt(&entry.key)
}

fn manifest_is_a_directory(layout: &Layout) -> Expect {
    let entry = Entry::standard("manifest-is-a-directory");
    let dir = entry.write(layout);
    fs::remove_file(dir.join("manifest.json")).unwrap();
    fs::create_dir(dir.join("manifest.json")).unwrap();
    fs::write(dir.join("manifest.json/inner"), entry.manifest()).unwrap();
    Expect::corrupt(&entry.key)
}

fn truncated_blob(layout: &Layout) -> Expect {
    let entry = Entry::standard("truncated-blob");
    let dir = entry.write(layout);
    let blob = entry.blob(&dir, 0);
    let bytes = &entry.outputs[0].1;
    fs::write(&blob, &bytes[..bytes.len() - 1]).unwrap();
    Expect::corrupt(&entry.key)
}

fn truncated_stream(layout: &Layout) -> Expect {
    let entry = Entry::standard("truncated-stream");
    let dir = entry.write(layout);
    fs::write(dir.join("stderr"), &entry.stderr[..3]).unwrap();
    Expect::corrupt(&entry.key)
}

fn missing_blob(layout: &Layout) -> Expect {
    let entry = Entry::standard("missing-blob");
    let dir = entry.write(layout);
    fs::remove_file(entry.blob(&dir, 1)).unwrap();
    Expect::corrupt(&entry.key)
}

fn tampered_blob_same_size(layout: &Layout) -> Expect {
    // The sccache failure: sizes match, so lookup (which checks sizes
    // only) says hit; restore re-hashes while staging and must restore
    // nothing; verify finds the mismatch.
    let entry = Entry::standard("tampered-blob-same-size");
    let dir = entry.write(layout);
    let blob = entry.blob(&dir, 1);
    let mut bytes = fs::read(&blob).unwrap();
    bytes[0] ^= 0x20;
    fs::write(&blob, bytes).unwrap();
    Expect {
        restore: Restore::Miss("miss-corrupt"),
        verify: Verify::Damaged("content-mismatch"),
        ..Expect::hit(&entry)
    }
}

fn tampered_stream_same_size(layout: &Layout) -> Expect {
    let entry = Entry::standard("tampered-stream-same-size");
    let dir = entry.write(layout);
    fs::write(dir.join("stdout"), b"RECORDED STDOUT\n").unwrap();
    Expect {
        restore: Restore::Miss("miss-corrupt"),
        verify: Verify::Damaged("content-mismatch"),
        ..Expect::hit(&entry)
    }
}

fn blob_is_a_fifo(layout: &Layout) -> Expect {
    let entry = Entry::standard("blob-is-a-fifo");
    let dir = entry.write(layout);
    let blob = entry.blob(&dir, 1);
    fs::remove_file(&blob).unwrap();
    mkfifo(&blob);
    Expect::corrupt(&entry.key)
}

fn blob_is_a_directory(layout: &Layout) -> Expect {
    let entry = Entry::standard("blob-is-a-directory");
    let dir = entry.write(layout);
    let blob = entry.blob(&dir, 1);
    fs::remove_file(&blob).unwrap();
    fs::create_dir(&blob).unwrap();
    fs::write(blob.join("x"), &entry.outputs[1].1).unwrap();
    Expect::corrupt(&entry.key)
}

/// The standard entry of `name` with its second output (`/out/x`) listed
/// at `path` instead, and `expect` about it. The blob stays, so nothing
/// but the set of paths is wrong.
fn second_output_at(layout: &Layout, name: &str, path: &str) -> Expect {
    let entry = Entry::standard(name);
    let dir = entry.write(layout);
    edit_file(&dir.join("manifest.json"), |text| {
        replace_once(&text, "\"/out/x\"", &format!("\"{path}\""))
    });
    Expect::corrupt(&entry.key)
}

fn output_path_twice(layout: &Layout) -> Expect {
    // Restored naively, the second copy would silently win over the first.
    second_output_at(layout, "output-path-twice", "/out/sub/run.sh")
}

fn output_path_twice_out_of_order(layout: &Layout) -> Expect {
    // Listed as `/out/z`, `/out/sub/run.sh`, `/out/z`: not sorted, so the
    // repeat is not next to its twin (MAN-1 lets a manifest list outputs
    // in any order, and `Entry::manifest` keeps the order given).
    let mut entry = Entry::standard("output-path-twice-out-of-order");
    entry
        .outputs
        .insert(0, (String::from("/out/z"), b"z\n".to_vec(), 0o644));
    let dir = entry.write(layout);
    edit_file(&dir.join("manifest.json"), |text| {
        replace_once(&text, "\"/out/x\"", "\"/out/z\"")
    });
    Expect::corrupt(&entry.key)
}

fn output_below_another_output(layout: &Layout) -> Expect {
    // `/out/sub/run.sh` would have to be a file and a directory at once.
    second_output_at(layout, "output-below-another-output", "/out/sub/run.sh/x")
}

fn output_in_git_dir(layout: &Layout) -> Expect {
    // A hook git would run: restoring it would run code on the next
    // checkout.
    second_output_at(layout, "output-in-git-dir", "/.git/hooks/post-checkout")
}

fn output_in_cache_dir(layout: &Layout) -> Expect {
    // The entry's own manifest, as a workspace path: restored, it would
    // rewrite the cache from the workspace side.
    let key = key_for("output-in-cache-dir");
    let target = format!("/.cachet/{}/{key}/manifest.json", &key[..2]);
    let expect = second_output_at(layout, "output-in-cache-dir", &target);
    assert_eq!(layout.cache_in_workspace().as_deref(), Some(".cachet"));
    expect
}

fn output_above_cache_dir(layout: &Layout) -> Expect {
    // A file where the cache directory is.
    second_output_at(layout, "output-above-cache-dir", "/.cachet")
}

fn valid_with_cache_in_workspace(layout: &Layout) -> Expect {
    // The control of the two above: the same layout, paths a store could
    // write, a hit.
    let entry = Entry::standard("valid-control-with-cache-in-workspace");
    entry.write(layout);
    Expect::hit(&entry)
}

/// Levels of `deep_directory_debris`, about 400 named [`DEEP_NAME`]:
/// about 4,400 bytes of path, more than `PATH_MAX`.
pub const DEEP_LEVELS: usize = 400;
/// The directory name repeated by `deep_directory_debris`.
pub const DEEP_NAME: &str = "dddddddddd";

fn deep_directory_debris(layout: &Layout) -> Expect {
    // A valid entry next to debris nested deeper than PATH_MAX in its
    // shard: no walk may recurse without bound or crash; the debris is
    // reported, by path, as an item the walk could not handle.
    let entry = Entry::standard("deep-directory-debris");
    entry.write(layout);
    // Built in pieces of 100 levels, each moved into the deepest directory
    // of the next: no single path handed to the OS is long, though the
    // result is deeper than PATH_MAX.
    let chunk = vec![DEEP_NAME; 100].join("/");
    let mut built: Option<PathBuf> = None;
    for piece in 0..DEEP_LEVELS / 100 {
        let top = layout.root.join(format!("piece-{piece}"));
        let deepest = top.join(&chunk);
        fs::create_dir_all(&deepest).unwrap();
        match built.take() {
            Some(inner) => fs::rename(inner, deepest.join(DEEP_NAME)).unwrap(),
            None => fs::write(deepest.join("leaf"), b"deepest\n").unwrap(),
        }
        built = Some(top);
    }
    fs::rename(
        built.unwrap(),
        layout.cache.join(entry.shard()).join("junk"),
    )
    .unwrap();
    Expect {
        corrupt_entries: 1,
        walk_failure: Some(format!("{}/junk", entry.shard())),
        ..Expect::hit(&entry)
    }
}

/// One step of the sequence every case goes through, in this order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// `status --json --key K`.
    Status,
    /// `restore --key K` (streams replayed).
    Restore,
    /// `info --json`.
    Info,
    /// `verify --json`.
    Verify,
    /// `clean --soft --json`.
    CleanSoft,
    /// `status --json --key K` after the soft clean.
    StatusAfterClean,
    /// `clear --json`.
    Clear,
}

impl Step {
    /// Every step, in order.
    pub const SEQUENCE: [Step; 7] = [
        Step::Status,
        Step::Restore,
        Step::Info,
        Step::Verify,
        Step::CleanSoft,
        Step::StatusAfterClean,
        Step::Clear,
    ];

    /// The subcommand and its arguments (global flags such as
    /// `--workspace` and `--cache-dir` are the runner's business).
    pub fn args(self, key: &str) -> Vec<String> {
        let args: &[&str] = match self {
            Step::Status | Step::StatusAfterClean => &["status", "--json", "--key", key],
            Step::Restore => &["restore", "--key", key],
            Step::Info => &["info", "--json"],
            Step::Verify => &["verify", "--json"],
            Step::CleanSoft => &["clean", "--soft", "--json"],
            Step::Clear => &["clear", "--json"],
        };
        args.iter().map(|arg| String::from(*arg)).collect()
    }
}

/// What one command did.
#[derive(Clone)]
pub struct Ran {
    /// Exit code; `None` when killed by a signal.
    pub code: Option<i32>,
    /// Its stdout.
    pub stdout: Vec<u8>,
    /// Its stderr.
    pub stderr: Vec<u8>,
}

impl core::fmt::Debug for Ran {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.code,
            String::from_utf8_lossy(&self.stdout),
            String::from_utf8_lossy(&self.stderr)
        )
    }
}

fn json(ran: &Ran) -> Result<serde_json::Value, String> {
    serde_json::from_slice(&ran.stdout).map_err(|e| format!("stdout is not JSON ({e})"))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// Whether `step`'s result agrees with `expect`. Checks first that the
/// command ended by itself (no signal), without a panic (exit 101 or
/// "panicked" on stderr), and without replaying [`SECRET`].
pub fn judge(step: Step, expect: &Expect, ran: &Ran) -> Result<(), String> {
    let code = ran
        .code
        .ok_or_else(|| String::from("killed by a signal (a crash, or the memory limit)"))?;
    if code == 101 || contains(&ran.stderr, b"panicked") {
        return Err(String::from("panicked"));
    }
    if contains(&ran.stdout, SECRET) || contains(&ran.stderr, SECRET) {
        return Err(String::from("the secret was replayed"));
    }
    let want = |want: i32| {
        if code == want {
            Ok(())
        } else {
            Err(format!("exit {code}, expected {want}"))
        }
    };
    match step {
        Step::Status | Step::StatusAfterClean => {
            let status = if step == Step::Status {
                expect.status
            } else {
                expect.status_after_soft_clean
            };
            want(if status == "hit" { 0 } else { 1 })?;
            let json = json(ran)?;
            if json["status"] != status || json["key"] != expect.key.as_str() {
                return Err(format!("status {}, expected {status}", json["status"]));
            }
        }
        Step::Restore => match &expect.restore {
            Restore::Restored { stdout, stderr, .. } => {
                want(0)?;
                if ran.stdout != *stdout || ran.stderr != *stderr {
                    return Err(String::from("the replayed streams differ"));
                }
            }
            Restore::Miss(status) => {
                want(1)?;
                if !ran.stdout.is_empty() {
                    return Err(String::from("a miss replayed stdout"));
                }
                let stderr = String::from_utf8_lossy(&ran.stderr);
                if !stderr.starts_with("cachet: ") || !stderr.contains(&format!("({status})")) {
                    return Err(format!("the message does not say {status}"));
                }
            }
            Restore::Refused(path) => {
                want(70)?;
                if !ran.stdout.is_empty() {
                    return Err(String::from("a refused restore replayed stdout"));
                }
                let stderr = String::from_utf8_lossy(&ran.stderr);
                if !stderr.starts_with("cachet: ") || !stderr.contains(&format!("'{path}'")) {
                    return Err(format!("the message does not name '{path}'"));
                }
            }
        },
        Step::Info | Step::CleanSoft | Step::Clear => {
            let json = json(ran)?;
            let failures = json["failures"].as_array().cloned().unwrap_or_default();
            match &expect.walk_failure {
                None => {
                    want(0)?;
                    if !failures.is_empty() {
                        return Err(format!("failures: {failures:?}"));
                    }
                }
                Some(prefix) => {
                    want(70)?;
                    let named = failures.iter().any(|f| {
                        f["path"].as_str().is_some_and(|p| p.starts_with(prefix))
                            && f["error"].as_str().is_some_and(|e| !e.is_empty())
                    });
                    if !named {
                        return Err(format!("no failure names {prefix}: {failures:?}"));
                    }
                }
            }
            if step == Step::Info && json["corrupt_entries"] != expect.corrupt_entries {
                return Err(format!(
                    "corrupt_entries {}, expected {}",
                    json["corrupt_entries"], expect.corrupt_entries
                ));
            }
        }
        Step::Verify => {
            let json = json(ran)?;
            let damaged = json["damaged"].as_array().cloned().unwrap_or_default();
            if json["failures"].as_array().is_none_or(|f| !f.is_empty()) {
                return Err(format!("failures: {}", json["failures"]));
            }
            match expect.verify {
                Verify::Intact => {
                    want(0)?;
                    if json["checked"] != 1 || json["intact"] != 1 {
                        return Err(String::from("not one intact entry"));
                    }
                }
                Verify::NotAnEntry => {
                    want(0)?;
                    if json["checked"] != 0 {
                        return Err(String::from("a planted link was checked as an entry"));
                    }
                }
                Verify::Damaged(damage) => {
                    want(1)?;
                    if damaged.len() != 1
                        || damaged[0]["key"] != expect.key.as_str()
                        || damaged[0]["damage"] != damage
                        || damaged[0]["evicted"] != false
                    {
                        return Err(format!("damaged {damaged:?}, expected {damage}"));
                    }
                }
            }
        }
    }
    Ok(())
}

/// A node of a snapshot: what `symlink_metadata` sees, with contents.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Node {
    /// A regular file: mode bits and bytes.
    File(u32, Vec<u8>),
    /// A directory: mode bits.
    Dir(u32),
    /// A symlink: its target, never followed.
    Symlink(PathBuf),
    /// Anything else (a FIFO, a device).
    Other,
}

/// Every node below `dir` by relative path, never following symlinks.
pub fn snapshot(dir: &Path) -> BTreeMap<String, Node> {
    let mut nodes = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(current) = stack.pop() {
        for entry in fs::read_dir(&current).unwrap() {
            let path = entry.unwrap().path();
            let relative = path
                .strip_prefix(dir)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let meta = fs::symlink_metadata(&path).unwrap();
            let mode = meta.permissions().mode() & 0o7777;
            let node = if meta.file_type().is_symlink() {
                Node::Symlink(fs::read_link(&path).unwrap())
            } else if meta.is_dir() {
                stack.push(path);
                Node::Dir(mode)
            } else if meta.is_file() {
                Node::File(mode, fs::read(&path).unwrap())
            } else {
                Node::Other
            };
            nodes.insert(relative, node);
        }
    }
    nodes
}

/// Whether the workspace after `step` is what `expect` allows, given the
/// workspace before it: unchanged, except that a successful restore
/// replaces exactly its targets with regular files of the recorded bytes
/// and modes (creating their parent directories).
pub fn judge_workspace(
    step: Step,
    expect: &Expect,
    before: &BTreeMap<String, Node>,
    after: &BTreeMap<String, Node>,
) -> Result<(), String> {
    let mut wanted = before.clone();
    if let (Step::Restore, Restore::Restored { files, .. }) = (step, &expect.restore) {
        for (path, bytes, mode) in files {
            let relative = path.trim_start_matches('/');
            let mut parent = Path::new(relative).parent();
            while let Some(dir) = parent.filter(|d| !d.as_os_str().is_empty()) {
                let name = dir.to_string_lossy().into_owned();
                match after.get(&name) {
                    Some(node @ Node::Dir(_)) => {
                        wanted.insert(name, node.clone());
                    }
                    other => return Err(format!("{name} is {other:?}, not a directory")),
                }
                parent = dir.parent();
            }
            wanted.insert(relative.to_owned(), Node::File(*mode, bytes.clone()));
        }
    }
    if *after == wanted {
        return Ok(());
    }
    let changed: Vec<&String> = wanted
        .keys()
        .chain(after.keys())
        .filter(|k| wanted.get(*k) != after.get(*k))
        .collect();
    Err(format!("the workspace differs at {changed:?}"))
}
