//! Input and output selection over the core's [`Filesystem`] trait, so that
//! the native binary and the WASI guest select exactly the same files.
//!
//! Both walk the workspace root ([`Root::Workspace`]) with
//! [`Filesystem::read_dir`] and match globs (`globset`) against each path
//! relative to the workspace root (`src/main.rs`). Results are
//! workspace-absolute paths (`/src/main.rs`, PATH-1), sorted by their bytes
//! as KEY-5 orders them.
//!
//! # Patterns
//!
//! - A pattern matches the path relative to the workspace root; a leading
//!   `/` or `./` and a trailing `/` are ignored (`/src/`, `./src` and `src`
//!   are the same pattern). `*` and `?` never match `/`; `**` matches any
//!   number of directories; `[ab]`, `{a,b}` and `\` escapes work as in
//!   `globset`.
//! - A pattern that matches a directory selects every file below it
//!   (`--output out` stores everything under `out/`).
//! - Only directories that could hold a match are walked: `src/**/*.rs`
//!   never lists `target/`.
//!
//! # What is never selected
//!
//! Anything named `.git` (a repository or a submodule's `.git` file) at any
//! depth and everything below it, and every directory of
//! [`Host::excluded_dirs`](crate::Host::excluded_dirs) (the cache
//! directory, when it lies inside the workspace) with everything below it.
//! Names that are not UTF-8 are not seen (the filesystem binding does not
//! report them).
//!
//! # Inputs
//!
//! - With no `--input` pattern, every file is an input, except every file
//!   an `--output` pattern matches (or that lies below a directory one
//!   matches): a run that names no inputs must not replay stale outputs
//!   (SEL-6). `--input` patterns narrow the set to what they match, and
//!   then the output patterns subtract nothing.
//! - `.gitignore` files inside the workspace are honoured as git does: the
//!   rules of a directory's `.gitignore` apply below it, deeper files take
//!   precedence, `!` re-includes, and nothing below an ignored directory is
//!   selected. `.git/info/exclude` of the workspace root applies with the
//!   lowest precedence. Files above the workspace and the user's global
//!   excludes file are not read, so the selection depends on the workspace
//!   alone, and whether the workspace is a git repository does not matter.
//!   The ignore files are parsed with the `ignore` crate's pure
//!   `gitignore` matcher, identically on every host.
//! - Only regular files are inputs. The walk never follows a symlink: a
//!   symlink matched by a pattern is an error
//!   ([`CliError::SymlinkInputs`]), because the key could not account for
//!   what it points to; an unmatched one (such as a symlink to a directory)
//!   is skipped. FIFOs, sockets and devices are skipped.
//!
//! # Outputs
//!
//! - `.gitignore` files do not apply: outputs are usually ignored by git.
//! - A symlink or special file matched (or below a matched directory) is an
//!   error ([`CliError::UnstorableOutputs`]) listing every such path: the
//!   manifest holds regular files only, and silently dropping one would make
//!   a hit differ from the run (CLAIM-1).

use alloc::rc::Rc;
use core::ops::ControlFlow;
use std::path::PathBuf;

use cachet_core::cache::Step;
use cachet_core::fs::{ErrorKind, FileKind, Filesystem, Root};
use globset::{Candidate, GlobBuilder, GlobSet, GlobSetBuilder};
use ignore::gitignore::{Gitignore, GitignoreBuilder};

use crate::error::CliError;

/// Ignore files larger than this are refused rather than read whole.
pub const MAX_IGNORE_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// Selects the input files (see the module docs), as sorted
/// workspace-absolute paths. `inputs` are the `--input` patterns; when
/// there are none, every file is an input except those the `outputs`
/// patterns match (SEL-6). `excluded` holds workspace-relative directories
/// never to select from.
pub fn select_inputs<F: Filesystem>(
    fs: &F,
    inputs: &[String],
    outputs: &[String],
    excluded: &[String],
) -> Result<Vec<String>, CliError> {
    let walked = if inputs.is_empty() {
        let outputs = compile("--output", outputs)?;
        walk(fs, Selection::AllBut(&outputs), excluded, true)?
    } else {
        let inputs = compile("--input", inputs)?;
        walk(fs, Selection::Matching(&inputs), excluded, true)?
    };
    let symlinks: Vec<String> = walked
        .others
        .into_iter()
        .filter(|(_, kind)| *kind == FileKind::Symlink)
        .map(|(path, _)| path)
        .collect();
    if !symlinks.is_empty() {
        return Err(CliError::SymlinkInputs { paths: symlinks });
    }
    Ok(walked.files)
}

/// Selects the output files matched by `patterns` (see the module docs),
/// as sorted workspace-absolute paths. `excluded` holds workspace-relative
/// directories never to select from.
pub fn select_outputs<F: Filesystem>(
    fs: &F,
    patterns: &[String],
    excluded: &[String],
) -> Result<Vec<String>, CliError> {
    if patterns.is_empty() {
        return Ok(Vec::new());
    }
    let patterns = compile("--output", patterns)?;
    let walked = walk(fs, Selection::Matching(&patterns), excluded, false)?;
    if !walked.others.is_empty() {
        return Err(CliError::UnstorableOutputs {
            outputs: walked.others,
        });
    }
    Ok(walked.files)
}

/// Compiled patterns, with the literal leading segments of each, which say
/// which directories are worth listing.
struct Patterns {
    set: GlobSet,
    prefixes: Vec<Prefix>,
}

struct Prefix {
    /// The leading segments without glob syntax.
    literal: Vec<String>,
    /// Whether the whole pattern is literal (then it names one path).
    complete: bool,
}

/// A pattern that matches exactly the workspace path `path` (`src/a.rs`
/// or `/src/a.rs`) and nothing else: every glob metacharacter in it is
/// escaped with `\`. A directory's path still selects every file below it.
pub fn literal_pattern(path: &str) -> String {
    let mut pattern = String::with_capacity(path.len());
    for c in path.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '{' | '}' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern
}

fn compile(flag: &'static str, patterns: &[String]) -> Result<Patterns, CliError> {
    let mut builder = GlobSetBuilder::new();
    let mut prefixes = Vec::with_capacity(patterns.len());
    for pattern in patterns {
        let text = normalize_pattern(pattern);
        if text.is_empty() {
            return Err(CliError::InvalidValue {
                flag,
                value: pattern.clone(),
                reason: String::from(
                    "the pattern names the whole workspace; use '**' to select every file",
                ),
            });
        }
        let glob = GlobBuilder::new(text)
            .literal_separator(true)
            .backslash_escape(true)
            .build()
            .map_err(|error| CliError::InvalidValue {
                flag,
                value: pattern.clone(),
                reason: format!("{}; fix the glob", error.kind()),
            })?;
        builder.add(glob);
        let segments: Vec<&str> = text.split('/').collect();
        let literal = literal_segments(text);
        prefixes.push(Prefix {
            complete: literal.len() == segments.len(),
            literal,
        });
    }
    let set = builder.build().map_err(|error| CliError::InvalidValue {
        flag,
        value: patterns.join(" "),
        reason: format!("{}; fix the glob", error.kind()),
    })?;
    Ok(Patterns { set, prefixes })
}

/// The leading segments of a normalised pattern that hold no glob syntax.
fn literal_segments(text: &str) -> Vec<String> {
    text.split('/')
        .take_while(|segment| !has_glob_syntax(segment))
        .map(String::from)
        .collect()
}

/// The workspace-relative directory (or file) below which `pattern` can
/// match anything: its leading segments without glob syntax, after the
/// normalisation selection applies (a leading `/` or `./` and a trailing
/// `/` dropped). Empty means anywhere in the workspace. A host that must
/// prepare what a selection will see (the WASI embedding, which carries
/// file modes into the sandbox) walks only below it.
pub fn literal_prefix(pattern: &str) -> String {
    literal_segments(normalize_pattern(pattern)).join("/")
}

fn normalize_pattern(pattern: &str) -> &str {
    let mut text = pattern;
    loop {
        if let Some(rest) = text.strip_prefix("./") {
            text = rest;
        } else if let Some(rest) = text.strip_prefix('/') {
            text = rest;
        } else {
            break;
        }
    }
    while let Some(rest) = text.strip_suffix('/') {
        text = rest;
    }
    if text == "." { "" } else { text }
}

fn has_glob_syntax(segment: &str) -> bool {
    segment.contains(['*', '?', '[', ']', '{', '}', '\\'])
}

impl Patterns {
    fn matches(&self, relative: &str) -> bool {
        self.set.is_match_candidate(&Candidate::new(relative))
    }

    /// Whether some pattern could match a path strictly below the directory
    /// `relative` (which no pattern matches itself).
    fn could_match_below(&self, relative: &str) -> bool {
        let dir: Vec<&str> = relative.split('/').collect();
        self.prefixes.iter().any(|prefix| {
            let shared = dir.len().min(prefix.literal.len());
            let agrees = dir
                .iter()
                .zip(prefix.literal.iter())
                .take(shared)
                .all(|(a, b)| *a == b.as_str());
            agrees && (dir.len() < prefix.literal.len() || !prefix.complete)
        })
    }
}

/// A directory's ignore rules, chained to its parent's.
struct IgnoreNode {
    matcher: Gitignore,
    parent: Option<Rc<IgnoreNode>>,
}

struct Ignores {
    /// `.git/info/exclude`, the lowest precedence.
    exclude: Option<Gitignore>,
}

impl Ignores {
    fn is_ignored(&self, chain: Option<&Rc<IgnoreNode>>, relative: &str, is_dir: bool) -> bool {
        let path = PathBuf::from(format!("/{relative}"));
        let mut node = chain;
        while let Some(current) = node {
            let found = current.matcher.matched(&path, is_dir);
            if found.is_ignore() {
                return true;
            }
            if found.is_whitelist() {
                return false;
            }
            node = current.parent.as_ref();
        }
        self.exclude
            .as_ref()
            .is_some_and(|exclude| exclude.matched(&path, is_dir).is_ignore())
    }
}

struct Frame {
    dir: String,
    /// Below a directory a pattern matched: every file is selected.
    all: bool,
    ignores: Option<Rc<IgnoreNode>>,
}

struct Walked {
    files: Vec<String>,
    /// Matched entries that are neither files nor directories.
    others: Vec<(String, FileKind)>,
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        String::from(name)
    } else {
        format!("{dir}/{name}")
    }
}

fn absolute(relative: &str) -> String {
    format!("/{relative}")
}

/// Which files a walk selects.
#[derive(Clone, Copy)]
enum Selection<'p> {
    /// Those the patterns match, and every file below a matched directory.
    Matching(&'p Patterns),
    /// Every file except those the patterns match, and except everything
    /// below a matched directory (SEL-6: the default inputs, less the
    /// outputs).
    AllBut(&'p Patterns),
}

fn walk<F: Filesystem>(
    fs: &F,
    selection: Selection<'_>,
    excluded: &[String],
    gitignore: bool,
) -> Result<Walked, CliError> {
    let mut walked = Walked {
        files: Vec::new(),
        others: Vec::new(),
    };
    let ignores = Ignores {
        exclude: if gitignore {
            read_ignore_file(fs, "", ".git/info/exclude")?
        } else {
            None
        },
    };
    let mut stack = vec![Frame {
        dir: String::new(),
        all: false,
        ignores: None,
    }];
    while let Some(frame) = stack.pop() {
        let Some(mut entries) = list(fs, &frame.dir)? else {
            continue;
        };
        entries.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        let chain = if gitignore
            && entries
                .iter()
                .any(|(name, kind)| name == ".gitignore" && *kind == FileKind::File)
        {
            match read_ignore_file(fs, &frame.dir, &join(&frame.dir, ".gitignore"))? {
                Some(matcher) => Some(Rc::new(IgnoreNode {
                    matcher,
                    parent: frame.ignores.clone(),
                })),
                None => frame.ignores.clone(),
            }
        } else {
            frame.ignores.clone()
        };
        for (name, kind) in entries {
            if name == ".git" {
                continue;
            }
            let relative = join(&frame.dir, &name);
            if excluded.contains(&relative) {
                continue;
            }
            if gitignore && ignores.is_ignored(chain.as_ref(), &relative, kind == FileKind::Dir) {
                continue;
            }
            let (matched, worth_listing) = match selection {
                Selection::Matching(patterns) => {
                    let matched = frame.all || patterns.matches(&relative);
                    (
                        matched,
                        matched || (kind == FileKind::Dir && patterns.could_match_below(&relative)),
                    )
                }
                Selection::AllBut(patterns) => {
                    let matched = !patterns.matches(&relative);
                    (matched, matched)
                }
            };
            match kind {
                FileKind::File => {
                    if matched {
                        walked.files.push(absolute(&relative));
                    }
                }
                FileKind::Dir => {
                    if worth_listing {
                        stack.push(Frame {
                            dir: relative,
                            all: matched,
                            ignores: chain.clone(),
                        });
                    }
                }
                FileKind::Symlink | FileKind::Other => {
                    if matched {
                        walked.others.push((absolute(&relative), kind));
                    }
                }
            }
        }
    }
    walked
        .files
        .sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    walked
        .others
        .sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    Ok(walked)
}

/// Lists a workspace directory; `None` if it vanished since its parent was
/// listed.
fn list<F: Filesystem>(fs: &F, dir: &str) -> Result<Option<Vec<(String, FileKind)>>, CliError> {
    let mut entries = Vec::new();
    let listed = fs.read_dir(Root::Workspace, dir, &mut |name, kind| {
        entries.push((String::from(name), kind));
        ControlFlow::Continue(())
    });
    match listed {
        Ok(()) => Ok(Some(entries)),
        Err(error) if error.kind == ErrorKind::NotFound && !dir.is_empty() => Ok(None),
        Err(source) => Err(CliError::Workspace {
            step: Step::List,
            path: absolute(dir),
            source,
        }),
    }
}

/// Reads and parses the ignore file at `path` (workspace-relative), whose
/// rules are relative to the directory `base`; `None` if it does not exist.
fn read_ignore_file<F: Filesystem>(
    fs: &F,
    base: &str,
    path: &str,
) -> Result<Option<Gitignore>, CliError> {
    let shown = absolute(path);
    let bytes =
        match cachet_core::fs::read_capped(fs, Root::Workspace, path, MAX_IGNORE_FILE_BYTES, 0) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => {
                return Err(CliError::Gitignore {
                    path: shown,
                    reason: format!("it is larger than {MAX_IGNORE_FILE_BYTES} bytes"),
                });
            }
            Err(error)
                if matches!(
                    error.kind,
                    ErrorKind::NotFound | ErrorKind::NotADirectory | ErrorKind::SymlinkRefused
                ) =>
            {
                return Ok(None);
            }
            Err(source) => {
                return Err(CliError::Workspace {
                    step: Step::Read,
                    path: shown,
                    source,
                });
            }
        };
    let root = PathBuf::from(absolute(base));
    let mut builder = GitignoreBuilder::new(&root);
    let text = String::from_utf8_lossy(&bytes);
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        builder
            .add_line(Some(PathBuf::from(&shown)), line)
            .map_err(|error| CliError::Gitignore {
                path: shown.clone(),
                reason: error.to_string(),
            })?;
    }
    builder
        .build()
        .map(Some)
        .map_err(|error| CliError::Gitignore {
            path: shown.clone(),
            reason: error.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use cachet_core::memfs::MemFs;

    fn write(fs: &MemFs, path: &str, bytes: &[u8]) {
        fs.write_file(Root::Workspace, path, bytes, 0o644).unwrap();
    }

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| String::from(*s)).collect()
    }

    #[test]
    fn patterns_match_relative_paths_and_directories_recurse() {
        let fs = MemFs::new();
        for path in ["src/a.rs", "src/sub/b.rs", "src/c.txt", "top.rs", "out/x/y"] {
            write(&fs, path, b"x");
        }
        let inputs = select_inputs(&fs, &strings(&["src/**/*.rs"]), &[], &[]).unwrap();
        assert_eq!(inputs, strings(&["/src/a.rs", "/src/sub/b.rs"]));
        let inputs = select_inputs(&fs, &strings(&["*.rs"]), &[], &[]).unwrap();
        assert_eq!(inputs, strings(&["/top.rs"]));
        let outputs = select_outputs(&fs, &strings(&["/out/"]), &[]).unwrap();
        assert_eq!(outputs, strings(&["/out/x/y"]));
        assert!(select_inputs(&fs, &strings(&["["]), &[], &[]).is_err());
        assert!(select_inputs(&fs, &strings(&["/"]), &[], &[]).is_err());
    }

    #[test]
    fn git_and_excluded_dirs_are_never_selected() {
        let fs = MemFs::new();
        for path in [".git/HEAD", "sub/.git/config", ".cachet/ab/x", "a", "sub/b"] {
            write(&fs, path, b"x");
        }
        let all = strings(&["**"]);
        let excluded = strings(&[".cachet"]);
        assert_eq!(
            select_inputs(&fs, &all, &[], &excluded).unwrap(),
            strings(&["/a", "/sub/b"])
        );
        assert_eq!(
            select_outputs(&fs, &all, &excluded).unwrap(),
            strings(&["/a", "/sub/b"])
        );
    }

    #[test]
    fn gitignore_rules_nest_like_git() {
        let fs = MemFs::new();
        write(&fs, ".gitignore", b"*.log\n/build/\n");
        write(&fs, "keep.log", b"x");
        write(&fs, "a.txt", b"x");
        write(&fs, "build/out", b"x");
        write(&fs, "sub/.gitignore", b"!keep.log\r\n*.txt\n");
        write(&fs, "sub/keep.log", b"x");
        write(&fs, "sub/other.log", b"x");
        write(&fs, "sub/b.txt", b"x");
        write(&fs, "sub/build/kept", b"x");
        write(&fs, ".git/info/exclude", b"a.txt\n");
        let selected = select_inputs(&fs, &strings(&["**"]), &[], &[]).unwrap();
        assert_eq!(
            selected,
            strings(&[
                "/.gitignore",
                "/sub/.gitignore",
                "/sub/build/kept",
                "/sub/keep.log"
            ])
        );
        // Outputs ignore .gitignore.
        let outputs = select_outputs(&fs, &strings(&["build"]), &[]).unwrap();
        assert_eq!(outputs, strings(&["/build/out"]));
    }

    #[test]
    fn matched_symlinks_are_refused_and_unmatched_ones_skipped() {
        let fs = MemFs::new();
        write(&fs, "src/a", b"x");
        fs.symlink(Root::Workspace, "src/link", "/etc/passwd")
            .unwrap();
        fs.symlink(Root::Workspace, "dirlink", "src").unwrap();
        let error = select_inputs(&fs, &strings(&["src/**"]), &[], &[]).unwrap_err();
        assert!(
            matches!(&error, CliError::SymlinkInputs { paths } if paths == &strings(&["/src/link"])),
            "{error:?}"
        );
        assert_eq!(
            select_inputs(&fs, &strings(&["src/a", "dirlink/**"]), &[], &[]).unwrap(),
            strings(&["/src/a"])
        );
        let error = select_outputs(&fs, &strings(&["src"]), &[]).unwrap_err();
        assert!(
            matches!(&error, CliError::UnstorableOutputs { outputs }
                if outputs == &vec![(String::from("/src/link"), FileKind::Symlink)]),
            "{error:?}"
        );
    }

    #[test]
    fn sel_6_without_input_patterns_every_file_but_the_outputs_is_an_input() {
        let fs = MemFs::new();
        for path in [
            "in.txt",
            "out.txt",
            "src/a.rs",
            "build/x/y.o",
            "ignored.log",
            ".git/HEAD",
            ".cachet/ab/x",
        ] {
            write(&fs, path, b"x");
        }
        write(&fs, ".gitignore", b"*.log\n");
        let excluded = strings(&[".cachet"]);
        let outputs = strings(&["out.txt", "build"]);
        assert_eq!(
            select_inputs(&fs, &[], &outputs, &excluded).unwrap(),
            strings(&["/.gitignore", "/in.txt", "/src/a.rs"])
        );
        assert_eq!(
            select_inputs(&fs, &[], &[], &excluded).unwrap(),
            strings(&[
                "/.gitignore",
                "/build/x/y.o",
                "/in.txt",
                "/out.txt",
                "/src/a.rs"
            ])
        );
        // --input narrows, and then outputs subtract nothing.
        assert_eq!(
            select_inputs(&fs, &strings(&["*.txt"]), &outputs, &excluded).unwrap(),
            strings(&["/in.txt", "/out.txt"])
        );
        // A bad output glob is named as an --output value.
        let error = select_inputs(&fs, &[], &strings(&["["]), &excluded).unwrap_err();
        assert!(
            matches!(
                &error,
                CliError::InvalidValue {
                    flag: "--output",
                    ..
                }
            ),
            "{error:?}"
        );
    }

    #[test]
    fn literal_prefix_is_what_the_walk_would_list_below() {
        assert_eq!(literal_prefix("./out/"), "out");
        assert_eq!(literal_prefix("/out/bin/*.o"), "out/bin");
        assert_eq!(literal_prefix("**/x"), "");
        assert_eq!(literal_prefix("a/{b,c}/d"), "a");
        assert_eq!(literal_prefix("a/b"), "a/b");
    }

    #[test]
    fn literal_prefixes_prune_the_walk() {
        let patterns = compile("--input", &strings(&["src/**/*.rs", "docs/readme"])).unwrap();
        assert!(patterns.could_match_below("src"));
        assert!(patterns.could_match_below("src/deep/er"));
        assert!(patterns.could_match_below("docs"));
        assert!(!patterns.could_match_below("docs/readme"));
        assert!(!patterns.could_match_below("target"));
        assert!(!patterns.could_match_below("doc"));
    }
}
