//! Input selection (globs, `.gitignore`, exclusions, symlinks) and parallel
//! content hashing (KEY-2, KEY-5).

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use cachet::core::hash::{HashFunction, digest};
use cachet::inputs::{
    InputError, InputSelection, LARGE_FILE_BYTES, SelectedFile, hash_file, hash_inputs,
    hash_reader, select_inputs,
};

fn write(root: &Path, relative: &str, bytes: &[u8]) {
    let path = root.join(relative);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, bytes).unwrap();
}

fn mkfifo(path: &Path) {
    rustix::fs::mknodat(
        rustix::fs::CWD,
        path,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
}

fn paths(files: &[SelectedFile]) -> Vec<&str> {
    files.iter().map(|f| f.path.as_str()).collect()
}

fn select(root: &Path, patterns: &[&str]) -> Vec<String> {
    select_inputs(root, &InputSelection::new(patterns.iter().copied()))
        .unwrap()
        .into_iter()
        .map(|f| f.path)
        .collect()
}

#[test]
fn key_5_paths_are_workspace_absolute_and_sorted_by_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path();
    for path in [
        "b.txt", "a/z.rs", "a/b/c.rs", "B.txt", "a-b", ".hidden", "é",
    ] {
        write(ws, path, path.as_bytes());
    }
    let selected = select_inputs(ws, &InputSelection::new(["**"])).unwrap();
    assert_eq!(
        paths(&selected),
        [
            "/.hidden",
            "/B.txt",
            "/a-b",
            "/a/b/c.rs",
            "/a/z.rs",
            "/b.txt",
            "/é"
        ]
    );
    let canonical = ws.canonicalize().unwrap();
    assert_eq!(selected[3].source, canonical.join("a/b/c.rs"));
}

#[test]
fn glob_star_stays_in_one_directory_and_double_star_crosses() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path();
    for path in ["src/main.rs", "src/lib/mod.rs", "src/notes.md", "top.rs"] {
        write(ws, path, b"x");
    }
    assert_eq!(select(ws, &["src/*.rs"]), ["/src/main.rs"]);
    assert_eq!(select(ws, &["/src/*.rs"]), ["/src/main.rs"]);
    assert_eq!(
        select(ws, &["src/**/*.rs"]),
        ["/src/lib/mod.rs", "/src/main.rs"]
    );
    assert_eq!(
        select(ws, &["**/*.rs"]),
        ["/src/lib/mod.rs", "/src/main.rs", "/top.rs"]
    );
    assert_eq!(
        select(ws, &["*.rs", "src/*.md"]),
        ["/src/notes.md", "/top.rs"]
    );
    assert!(select(ws, &[]).is_empty());
    assert!(select(ws, &["nothing/*"]).is_empty());
}

#[test]
fn gitignore_is_honoured_by_default_without_a_repository_and_can_be_turned_off() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path();
    write(ws, ".gitignore", b"*.log\n!keep.log\nbuild/\n");
    write(ws, "sub/.gitignore", b"local.txt\n");
    for path in [
        "a.log",
        "keep.log",
        "build/out.o",
        "src/x.rs",
        "sub/local.txt",
        "sub/other.txt",
    ] {
        write(ws, path, b"x");
    }
    assert_eq!(
        select(ws, &["**"]),
        [
            "/.gitignore",
            "/keep.log",
            "/src/x.rs",
            "/sub/.gitignore",
            "/sub/other.txt"
        ]
    );
    let mut all = InputSelection::new(["**"]);
    all.respect_gitignore = false;
    assert_eq!(
        paths(&select_inputs(ws, &all).unwrap()),
        [
            "/.gitignore",
            "/a.log",
            "/build/out.o",
            "/keep.log",
            "/src/x.rs",
            "/sub/.gitignore",
            "/sub/local.txt",
            "/sub/other.txt"
        ]
    );
}

#[test]
fn gitignore_files_above_the_workspace_are_not_read() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), ".gitignore", b"*.txt\n");
    let ws = tmp.path().join("ws");
    write(&ws, "a.txt", b"x");
    assert_eq!(select(&ws, &["**"]), ["/a.txt"]);
}

#[test]
fn git_dirs_and_the_cache_dir_are_never_inputs() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path();
    write(ws, ".git/HEAD", b"ref");
    write(ws, ".git/info/exclude", b"excluded-by-git\n");
    write(ws, "vendor/sub/.git", b"gitdir: ../../.git/modules/sub");
    write(ws, "vendor/sub/lib.c", b"x");
    write(ws, ".cachet/ab/abcd/manifest.json", b"{}");
    write(ws, "other-cache/blob", b"x");
    write(ws, "excluded-by-git", b"x");
    write(ws, "src/a", b"x");

    let mut selection = InputSelection::new(["**"]);
    selection.excluded = vec![PathBuf::from(".cachet"), ws.join("other-cache")];
    assert_eq!(
        paths(&select_inputs(ws, &selection).unwrap()),
        ["/src/a", "/vendor/sub/lib.c"]
    );

    selection.respect_gitignore = false;
    assert_eq!(
        paths(&select_inputs(ws, &selection).unwrap()),
        ["/excluded-by-git", "/src/a", "/vendor/sub/lib.c"]
    );

    // Named explicitly, still never selected.
    let mut explicit = InputSelection::new([".git/HEAD", ".cachet/**", "other-cache/blob"]);
    explicit.excluded = selection.excluded.clone();
    assert!(select_inputs(ws, &explicit).unwrap().is_empty());
}

#[test]
fn excluded_dirs_match_through_other_spellings_and_outside_ones_are_ignored() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path().join("ws");
    write(&ws, "cache/blob", b"x");
    write(&ws, "cachet/keep", b"x");
    write(&ws, "src/a", b"x");
    symlink(&ws, tmp.path().join("ws-alias")).unwrap();
    let mut selection = InputSelection::new(["**"]);
    selection.excluded = vec![
        tmp.path().join("ws-alias/./src/../cache"),
        tmp.path().join("elsewhere"),
        PathBuf::from("/"),
    ];
    assert_eq!(
        paths(&select_inputs(&ws, &selection).unwrap()),
        ["/cachet/keep", "/src/a"],
        "a prefix of a name is not an excluded directory"
    );
}

#[test]
fn symlinked_files_inside_the_workspace_are_hashed_by_their_target() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path();
    write(ws, "gen/real.h", b"real content");
    fs::create_dir(ws.join("include")).unwrap();
    symlink("../gen/real.h", ws.join("include/real.h")).unwrap();
    symlink("../gen", ws.join("include/gen-dir")).unwrap();
    symlink("missing", ws.join("include/dangling")).unwrap();
    symlink("loop-b", ws.join("include/loop-a")).unwrap();
    symlink("loop-a", ws.join("include/loop-b")).unwrap();

    let selected = select_inputs(ws, &InputSelection::new(["include/**"])).unwrap();
    assert_eq!(paths(&selected), ["/include/real.h"]);
    assert_eq!(
        selected[0].source,
        ws.canonicalize().unwrap().join("gen/real.h")
    );
    let hashed = hash_inputs(&selected, HashFunction::Blake3).unwrap();
    assert_eq!(
        hashed[0].digest,
        digest(HashFunction::Blake3, b"real content")
    );
    assert_eq!(hashed[0].size, 12);
}

#[test]
fn symlinks_to_files_outside_the_workspace_are_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path().join("ws");
    write(tmp.path(), "outside.txt", b"secret");
    write(&ws, "ok", b"x");
    symlink("../outside.txt", ws.join("leak")).unwrap();
    let error = select_inputs(&ws, &InputSelection::new(["**"])).unwrap_err();
    match &error {
        InputError::SymlinkOutsideWorkspace { path, target } => {
            assert_eq!(path, "/leak");
            assert_eq!(
                target,
                &tmp.path().canonicalize().unwrap().join("outside.txt")
            );
        }
        other => panic!("unexpected error: {other:?}"),
    }
    assert!(error.to_string().contains("/leak"), "{error}");
    // Not matched, not a problem.
    assert_eq!(select(&ws, &["ok"]), ["/ok"]);
}

#[test]
fn special_files_are_skipped() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path();
    write(ws, "a", b"x");
    mkfifo(&ws.join("fifo"));
    assert_eq!(select(ws, &["**"]), ["/a"]);
}

#[test]
fn non_utf8_names_are_an_error_only_when_selected() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path();
    write(ws, "ok.txt", b"x");
    let bad = ws.join(OsStr::from_bytes(b"bad-\xff.bin"));
    fs::write(&bad, b"x").unwrap();
    assert_eq!(select(ws, &["*.txt"]), ["/ok.txt"]);
    let error = select_inputs(ws, &InputSelection::new(["**"])).unwrap_err();
    match &error {
        InputError::NonUtf8Path { path } => assert!(path.ends_with(bad.file_name().unwrap())),
        other => panic!("unexpected error: {other:?}"),
    }
    assert!(error.to_string().contains("bad-"), "{error}");
}

#[test]
fn bad_patterns_workspaces_and_ignore_files_are_reported_with_their_path() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path();
    let error = select_inputs(ws, &InputSelection::new(["src/[a"])).unwrap_err();
    assert!(
        matches!(&error, InputError::Pattern { pattern, .. } if pattern == "src/[a"),
        "{error:?}"
    );
    assert!(error.to_string().contains("src/[a"), "{error}");

    let missing = ws.join("no-such-dir");
    let error = select_inputs(&missing, &InputSelection::new(["**"])).unwrap_err();
    assert!(matches!(&error, InputError::Workspace { .. }), "{error:?}");
    assert!(error.to_string().contains("no-such-dir"), "{error}");

    write(ws, ".gitignore", b"ok\nbroken{\n");
    write(ws, "file", b"x");
    let error = select_inputs(ws, &InputSelection::new(["**"])).unwrap_err();
    match &error {
        InputError::Walk {
            path: Some(path), ..
        } => assert!(path.ends_with(".gitignore")),
        other => panic!("unexpected error: {other:?}"),
    }
    let mut no_gitignore = InputSelection::new(["file"]);
    no_gitignore.respect_gitignore = false;
    assert_eq!(paths(&select_inputs(ws, &no_gitignore).unwrap()), ["/file"]);
}

#[test]
fn key_2_hashes_match_the_core_for_small_large_and_empty_files() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path();
    let large_len = usize::try_from(LARGE_FILE_BYTES).unwrap() * 8 + 17;
    let large: Vec<u8> = (0..large_len).map(|i| (i * 31 % 251) as u8).collect();
    let contents: Vec<(String, Vec<u8>)> = (0..40)
        .map(|i| (format!("f{i:02}"), format!("content {i}").into_bytes()))
        .chain([
            ("empty".to_owned(), Vec::new()),
            ("large".to_owned(), large.clone()),
            (
                "threshold".to_owned(),
                vec![7u8; usize::try_from(LARGE_FILE_BYTES).unwrap()],
            ),
        ])
        .collect();
    for (name, bytes) in &contents {
        write(ws, name, bytes);
    }
    let selected = select_inputs(ws, &InputSelection::new(["**"])).unwrap();
    assert_eq!(selected.len(), contents.len());
    for function in HashFunction::ALL {
        let hashed = hash_inputs(&selected, function).unwrap();
        assert_eq!(hashed.len(), selected.len());
        for (file, selected_file) in hashed.iter().zip(&selected) {
            assert_eq!(file.path, selected_file.path, "order is preserved");
            let bytes = &contents
                .iter()
                .find(|(name, _)| format!("/{name}") == file.path)
                .unwrap()
                .1;
            assert_eq!(
                file.digest,
                digest(function, bytes),
                "{function} {}",
                file.path
            );
            assert_eq!(file.size, bytes.len() as u64);
            let key_input = file.key_input();
            assert_eq!(key_input.path, file.path);
            assert_eq!(key_input.content_hash, file.digest);
        }
    }
    let reader_hash = hash_reader(&mut large.as_slice(), HashFunction::Sha256).unwrap();
    assert_eq!(reader_hash.digest, digest(HashFunction::Sha256, &large));
    assert_eq!(reader_hash.size, large.len() as u64);
}

#[test]
fn hash_file_refuses_what_is_not_a_regular_file() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path();
    write(ws, "file", b"x");
    symlink("file", ws.join("link")).unwrap();
    fs::create_dir(ws.join("dir")).unwrap();
    mkfifo(&ws.join("fifo"));
    for name in ["link", "dir", "fifo"] {
        let error = hash_file(&ws.join(name), HashFunction::Blake3).unwrap_err();
        assert!(
            matches!(&error, InputError::NotARegularFile { path } if path.ends_with(name)),
            "{name}: {error:?}"
        );
    }
    let missing = SelectedFile {
        path: "/gone".to_owned(),
        source: ws.join("gone"),
    };
    let error = hash_inputs(&[missing], HashFunction::Sha256).unwrap_err();
    assert!(matches!(&error, InputError::Read { .. }), "{error:?}");
    assert!(error.to_string().contains("gone"), "{error}");
}
