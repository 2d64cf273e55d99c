//! `CapStdFilesystem` against the `Filesystem` contract, on a real directory
//! tree: every method, its error kinds, and SAFE-2 confinement.

use crate::mkfifo;
use core::ops::ControlFlow;
use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::PathBuf;

use cachet::fs::{CapStdFilesystem, OpenError};
use cachet::tasks::Threads;
use cachet_core::fs::{
    Directory, Error, ErrorKind, FileKind, FileReader, FileWriter, Filesystem, Name, Read, Replace,
    Root, Timestamp, Write, rename_path,
};
use cachet_core::hash::{HashFunction, digest};
use cachet_core::tasks::Tasks;
use tempfile::TempDir;

/// A workspace, a cache directory and a directory outside both holding a secret.
struct Fixture {
    _tmp: TempDir,
    workspace: PathBuf,
    cache: PathBuf,
    outside: PathBuf,
    fs: CapStdFilesystem,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let workspace = tmp.path().join("ws");
    let cache = tmp.path().join("cache-root");
    let outside = tmp.path().join("outside");
    fs::create_dir(&workspace).unwrap();
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("secret"), b"secret").unwrap();
    let fs = CapStdFilesystem::open_ambient(&workspace, &cache).unwrap();
    Fixture {
        _tmp: tmp,
        workspace,
        cache,
        outside,
        fs,
    }
}

fn kind<T: core::fmt::Debug>(result: Result<T, Error>) -> ErrorKind {
    result.expect_err("the call should fail").kind
}

fn name(name: &str) -> Name<'_> {
    Name::new(name).unwrap()
}

/// A rename by path, through the parents' directories, as the core makes
/// one ([`rename_path`]).
fn rename(
    fs: &CapStdFilesystem,
    from_root: Root,
    from: &str,
    to_root: Root,
    to: &str,
) -> Result<(), Error> {
    rename_path(fs, (from_root, from), (to_root, to), Replace::Allowed)
}

/// [`rename`] with [`Replace::Never`].
fn rename_no_replace(
    fs: &CapStdFilesystem,
    from_root: Root,
    from: &str,
    to_root: Root,
    to: &str,
) -> Result<(), Error> {
    rename_path(fs, (from_root, from), (to_root, to), Replace::Never)
}

fn read_all(fs: &CapStdFilesystem, root: Root, path: &str) -> Vec<u8> {
    let mut reader = fs.open_file(root, path).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 7];
    loop {
        match reader.read(&mut buf).unwrap() {
            0 => return out,
            n => out.extend_from_slice(&buf[..n]),
        }
    }
}

fn write_new(fs: &CapStdFilesystem, root: Root, path: &str, bytes: &[u8]) {
    let mut writer = fs.create_new_file(root, path).unwrap();
    writer.write_all(bytes).unwrap();
    writer.sync().unwrap();
}

fn list(fs: &CapStdFilesystem, root: Root, path: &str) -> Vec<(String, FileKind)> {
    let mut out = Vec::new();
    fs.read_dir(root, path, &mut |name, kind| {
        out.push((name.to_owned(), kind));
        ControlFlow::Continue(())
    })
    .unwrap();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn assert_secret_intact(f: &Fixture) {
    assert_eq!(fs::read(f.outside.join("secret")).unwrap(), b"secret");
    let names: Vec<_> = fs::read_dir(&f.outside)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["secret"], "nothing may appear outside the roots");
}

#[test]
fn open_ambient_creates_missing_cache_dir_with_parents() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("a/b/cache");
    CapStdFilesystem::open_ambient(tmp.path(), &cache).unwrap();
    assert!(cache.is_dir());
    // An existing cache directory is fine too.
    CapStdFilesystem::open_ambient(tmp.path(), &cache).unwrap();
}

#[test]
fn open_ambient_errors_name_the_path() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("no-such-workspace");
    let error = CapStdFilesystem::open_ambient(&missing, &tmp.path().join("c")).unwrap_err();
    assert!(matches!(error, OpenError::Workspace { .. }), "{error:?}");
    assert!(error.to_string().contains("no-such-workspace"), "{error}");

    let file = tmp.path().join("plain-file");
    fs::write(&file, b"x").unwrap();
    let error = CapStdFilesystem::open_ambient(tmp.path(), &file).unwrap_err();
    assert!(
        matches!(
            error,
            OpenError::CreateCacheDir { .. } | OpenError::CacheDir { .. }
        ),
        "{error:?}"
    );
    assert!(error.to_string().contains("plain-file"), "{error}");
}

#[test]
fn create_write_sync_and_read_back() {
    let f = fixture();
    write_new(&f.fs, Root::Cache, "blob", b"hello, cache");
    assert_eq!(read_all(&f.fs, Root::Cache, "blob"), b"hello, cache");
    assert_eq!(fs::read(f.cache.join("blob")).unwrap(), b"hello, cache");
    f.fs.create_dir(Root::Workspace, "d").unwrap();
    write_new(&f.fs, Root::Workspace, "d/e", b"");
    assert_eq!(read_all(&f.fs, Root::Workspace, "d/e"), b"");
}

#[test]
fn create_new_file_refuses_anything_existing() {
    let f = fixture();
    fs::write(f.workspace.join("file"), b"keep").unwrap();
    fs::create_dir(f.workspace.join("dir")).unwrap();
    symlink("does-not-exist", f.workspace.join("dangling")).unwrap();
    symlink(f.outside.join("new"), f.workspace.join("dangling-out")).unwrap();
    for path in ["file", "dir", "dangling", "dangling-out"] {
        assert_eq!(
            kind(f.fs.create_new_file(Root::Workspace, path)),
            ErrorKind::AlreadyExists,
            "{path}"
        );
    }
    assert_eq!(fs::read(f.workspace.join("file")).unwrap(), b"keep");
    assert!(!f.workspace.join("does-not-exist").exists());
    assert_eq!(
        kind(f.fs.create_new_file(Root::Workspace, "missing/x")),
        ErrorKind::NotFound
    );
    assert_eq!(
        kind(f.fs.create_new_file(Root::Workspace, "file/x")),
        ErrorKind::NotADirectory
    );
    assert_secret_intact(&f);
}

#[test]
fn open_file_error_kinds() {
    let f = fixture();
    fs::write(f.workspace.join("target"), b"t").unwrap();
    fs::create_dir(f.workspace.join("dir")).unwrap();
    symlink("target", f.workspace.join("link")).unwrap();
    mkfifo(&f.workspace.join("fifo"));
    assert_eq!(
        kind(f.fs.open_file(Root::Workspace, "missing")),
        ErrorKind::NotFound
    );
    assert_eq!(
        kind(f.fs.open_file(Root::Workspace, "link")),
        ErrorKind::SymlinkRefused
    );
    assert_eq!(
        kind(f.fs.open_file(Root::Workspace, "dir")),
        ErrorKind::IsADirectory
    );
    // Would block forever without O_NONBLOCK; must be refused instead.
    assert_eq!(
        kind(f.fs.open_file(Root::Workspace, "fifo")),
        ErrorKind::InvalidInput
    );
    assert_eq!(
        kind(f.fs.open_file(Root::Workspace, "target/x")),
        ErrorKind::NotADirectory
    );
}

#[test]
fn safe_2_intermediate_symlinks_inside_the_root_are_followed() {
    let f = fixture();
    fs::create_dir(f.workspace.join("real")).unwrap();
    fs::write(f.workspace.join("real/file"), b"inside").unwrap();
    symlink("real", f.workspace.join("alias")).unwrap();
    assert_eq!(read_all(&f.fs, Root::Workspace, "alias/file"), b"inside");
}

#[test]
fn safe_2_intermediate_symlinks_leading_outside_are_never_followed() {
    let f = fixture();
    symlink("../outside", f.workspace.join("relative-escape")).unwrap();
    symlink(&f.outside, f.workspace.join("absolute-escape")).unwrap();
    fs::create_dir(f.workspace.join("sub")).unwrap();
    symlink("../../outside", f.workspace.join("sub/deep-escape")).unwrap();
    fs::write(f.workspace.join("victim"), b"v").unwrap();
    fs::create_dir(f.workspace.join("emptydir")).unwrap();

    for escape in ["relative-escape", "absolute-escape", "sub/deep-escape"] {
        let secret = format!("{escape}/secret");
        let new = format!("{escape}/new");
        let refused = |kind: ErrorKind, what: &str| {
            assert!(
                matches!(kind, ErrorKind::PermissionDenied),
                "{what} via {escape}: {kind:?}"
            );
        };
        refused(kind(f.fs.open_file(Root::Workspace, &secret)), "open_file");
        refused(kind(f.fs.metadata(Root::Workspace, &secret)), "metadata");
        refused(
            kind(f.fs.create_new_file(Root::Workspace, &new)),
            "create_new_file",
        );
        refused(kind(f.fs.create_dir(Root::Workspace, &new)), "create_dir");
        refused(
            kind(f.fs.remove_file(Root::Workspace, &secret)),
            "remove_file",
        );
        // A rename goes through the directories on either side, which are
        // opened without following a symlink in their last component.
        let symlink_refused = |kind: ErrorKind, what: &str| {
            assert_eq!(kind, ErrorKind::SymlinkRefused, "{what} via {escape}");
        };
        symlink_refused(
            kind(rename(
                &f.fs,
                Root::Workspace,
                "victim",
                Root::Workspace,
                &new,
            )),
            "rename to",
        );
        symlink_refused(
            kind(rename(
                &f.fs,
                Root::Workspace,
                &secret,
                Root::Workspace,
                "stolen",
            )),
            "rename from",
        );
        symlink_refused(
            kind(rename_no_replace(
                &f.fs,
                Root::Workspace,
                "victim",
                Root::Workspace,
                &new,
            )),
            "rename without replacing to",
        );
        symlink_refused(
            kind(rename_no_replace(
                &f.fs,
                Root::Workspace,
                &secret,
                Root::Cache,
                "stolen",
            )),
            "rename without replacing from",
        );
        // Through an escaping symlink further up, the directory is not
        // opened at all.
        let inner = format!("{escape}/inner/new");
        refused(
            kind(rename(
                &f.fs,
                Root::Workspace,
                "victim",
                Root::Workspace,
                &inner,
            )),
            "rename into a directory below",
        );
        refused(
            kind(f.fs.set_modified(Root::Workspace, &secret, Timestamp::from_seconds(1))),
            "set_modified",
        );
        refused(
            kind(
                f.fs.read_dir(Root::Workspace, &format!("{escape}/."), &mut |_, _| {
                    ControlFlow::Continue(())
                }),
            ),
            "read_dir",
        );
    }
    // A symlink to a directory in the last component is not listed, synced
    // or removed as a directory.
    for escape in ["relative-escape", "absolute-escape"] {
        assert_eq!(
            kind(f.fs.read_dir(Root::Workspace, escape, &mut |_, _| {
                ControlFlow::Continue(())
            })),
            ErrorKind::SymlinkRefused
        );
        assert_eq!(
            kind(f.fs.sync_dir(Root::Workspace, escape)),
            ErrorKind::SymlinkRefused
        );
        assert_eq!(
            kind(f.fs.remove_dir(Root::Workspace, escape)),
            ErrorKind::NotADirectory
        );
    }
    assert_eq!(
        fs::metadata(f.outside.join("secret"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o644
    );
    assert!(f.workspace.join("victim").exists());
    assert!(!f.cache.join("stolen").exists());
    assert_secret_intact(&f);
}

#[test]
fn safe_2_dot_dot_and_absolute_paths_are_refused() {
    let f = fixture();
    for path in ["../outside/secret", "/etc/passwd"] {
        assert!(f.fs.open_file(Root::Workspace, path).is_err(), "{path}");
        assert!(
            f.fs.create_new_file(Root::Workspace, &path.replace("secret", "new"))
                .is_err(),
            "{path}"
        );
    }
    assert_eq!(
        kind(f.fs.open_file(Root::Workspace, "../outside/secret")),
        ErrorKind::PermissionDenied
    );
    assert_eq!(
        kind(f.fs.open_file(Root::Cache, "../outside/secret")),
        ErrorKind::PermissionDenied
    );
    assert_secret_intact(&f);
}

#[test]
fn create_dir_error_kinds() {
    let f = fixture();
    f.fs.create_dir(Root::Cache, "ab").unwrap();
    assert!(f.cache.join("ab").is_dir());
    assert_eq!(
        kind(f.fs.create_dir(Root::Cache, "ab")),
        ErrorKind::AlreadyExists
    );
    assert_eq!(
        kind(f.fs.create_dir(Root::Cache, "missing/x")),
        ErrorKind::NotFound
    );
    fs::write(f.cache.join("file"), b"").unwrap();
    assert_eq!(
        kind(f.fs.create_dir(Root::Cache, "file")),
        ErrorKind::AlreadyExists
    );
    assert_eq!(
        kind(f.fs.create_dir(Root::Cache, "file/x")),
        ErrorKind::NotADirectory
    );
    symlink("nowhere", f.cache.join("dangling")).unwrap();
    assert_eq!(
        kind(f.fs.create_dir(Root::Cache, "dangling")),
        ErrorKind::AlreadyExists
    );
    assert!(!f.cache.join("nowhere").exists());
}

#[test]
fn rename_within_and_across_roots() {
    let f = fixture();
    write_new(&f.fs, Root::Cache, "a", b"A");
    rename(&f.fs, Root::Cache, "a", Root::Cache, "b").unwrap();
    assert_eq!(read_all(&f.fs, Root::Cache, "b"), b"A");
    assert_eq!(kind(f.fs.open_file(Root::Cache, "a")), ErrorKind::NotFound);

    // Across roots, both ways, into nested directories.
    f.fs.create_dir(Root::Workspace, "out").unwrap();
    rename(&f.fs, Root::Cache, "b", Root::Workspace, "out/b").unwrap();
    assert_eq!(fs::read(f.workspace.join("out/b")).unwrap(), b"A");
    rename(&f.fs, Root::Workspace, "out", Root::Cache, "moved-dir").unwrap();
    assert_eq!(fs::read(f.cache.join("moved-dir/b")).unwrap(), b"A");

    // Replaces a file.
    write_new(&f.fs, Root::Workspace, "new", b"new");
    write_new(&f.fs, Root::Workspace, "old", b"old");
    rename(&f.fs, Root::Workspace, "new", Root::Workspace, "old").unwrap();
    assert_eq!(read_all(&f.fs, Root::Workspace, "old"), b"new");

    // A directory replaces only an empty directory.
    f.fs.create_dir(Root::Cache, "empty").unwrap();
    rename(&f.fs, Root::Cache, "moved-dir", Root::Cache, "empty").unwrap();
    assert!(f.cache.join("empty/b").exists());
    f.fs.create_dir(Root::Cache, "other").unwrap();
    assert_eq!(
        kind(rename(&f.fs, Root::Cache, "other", Root::Cache, "empty")),
        ErrorKind::DirectoryNotEmpty
    );
    assert_eq!(
        kind(rename(&f.fs, Root::Cache, "missing", Root::Cache, "x")),
        ErrorKind::NotFound
    );
}

#[test]
fn rename_moves_a_symlink_not_its_target() {
    let f = fixture();
    fs::write(f.workspace.join("target"), b"t").unwrap();
    symlink("target", f.workspace.join("link")).unwrap();
    rename(&f.fs, Root::Workspace, "link", Root::Workspace, "link2").unwrap();
    assert!(
        fs::symlink_metadata(f.workspace.join("link2"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(fs::read(f.workspace.join("target")).unwrap(), b"t");
}

#[test]
fn rename_no_replace_never_replaces() {
    let f = fixture();
    write_new(&f.fs, Root::Cache, "src", b"src");
    write_new(&f.fs, Root::Cache, "dst", b"dst");
    assert_eq!(
        kind(rename_no_replace(
            &f.fs,
            Root::Cache,
            "src",
            Root::Cache,
            "dst"
        )),
        ErrorKind::AlreadyExists
    );
    assert_eq!(read_all(&f.fs, Root::Cache, "src"), b"src");
    assert_eq!(read_all(&f.fs, Root::Cache, "dst"), b"dst");

    // An empty directory or a dangling symlink at the target also counts.
    f.fs.create_dir(Root::Cache, "d1").unwrap();
    f.fs.create_dir(Root::Cache, "d2").unwrap();
    assert_eq!(
        kind(rename_no_replace(
            &f.fs,
            Root::Cache,
            "d1",
            Root::Cache,
            "d2"
        )),
        ErrorKind::AlreadyExists
    );
    symlink("nowhere", f.cache.join("dangling")).unwrap();
    assert_eq!(
        kind(rename_no_replace(
            &f.fs,
            Root::Cache,
            "src",
            Root::Cache,
            "dangling"
        )),
        ErrorKind::AlreadyExists
    );

    // Succeeds when nothing is there, within a root, across roots and in
    // nested directories.
    rename_no_replace(&f.fs, Root::Cache, "src", Root::Cache, "d1/src").unwrap();
    f.fs.create_dir(Root::Workspace, "w").unwrap();
    rename_no_replace(&f.fs, Root::Cache, "d1/src", Root::Workspace, "w/src").unwrap();
    assert_eq!(fs::read(f.workspace.join("w/src")).unwrap(), b"src");
    rename_no_replace(&f.fs, Root::Workspace, "w", Root::Cache, "ab").unwrap();
    assert_eq!(fs::read(f.cache.join("ab/src")).unwrap(), b"src");

    assert_eq!(
        kind(rename_no_replace(
            &f.fs,
            Root::Cache,
            "missing",
            Root::Cache,
            "x"
        )),
        ErrorKind::NotFound
    );
    assert_eq!(
        kind(rename_no_replace(
            &f.fs,
            Root::Cache,
            "dst",
            Root::Cache,
            "missing/x"
        )),
        ErrorKind::NotFound
    );
    for bad in ["", "a/", "a/..", "."] {
        assert_eq!(
            kind(rename_no_replace(&f.fs, Root::Cache, bad, Root::Cache, "y")),
            ErrorKind::InvalidInput,
            "{bad:?}"
        );
        assert_eq!(
            kind(rename_no_replace(
                &f.fs,
                Root::Cache,
                "dst",
                Root::Cache,
                bad
            )),
            ErrorKind::InvalidInput,
            "{bad:?}"
        );
    }
    assert_eq!(read_all(&f.fs, Root::Cache, "dst"), b"dst");
}

#[test]
fn remove_file_error_kinds_and_symlinks() {
    let f = fixture();
    write_new(&f.fs, Root::Cache, "f", b"x");
    f.fs.remove_file(Root::Cache, "f").unwrap();
    assert!(!f.cache.join("f").exists());
    assert_eq!(
        kind(f.fs.remove_file(Root::Cache, "f")),
        ErrorKind::NotFound
    );
    f.fs.create_dir(Root::Cache, "d").unwrap();
    assert_eq!(
        kind(f.fs.remove_file(Root::Cache, "d")),
        ErrorKind::IsADirectory
    );
    // The link goes, its target stays.
    symlink(f.outside.join("secret"), f.cache.join("link")).unwrap();
    f.fs.remove_file(Root::Cache, "link").unwrap();
    assert!(fs::symlink_metadata(f.cache.join("link")).is_err());
    assert_secret_intact(&f);
}

#[test]
fn remove_dir_error_kinds() {
    let f = fixture();
    f.fs.create_dir(Root::Cache, "d").unwrap();
    write_new(&f.fs, Root::Cache, "d/f", b"");
    assert_eq!(
        kind(f.fs.remove_dir(Root::Cache, "d")),
        ErrorKind::DirectoryNotEmpty
    );
    assert_eq!(
        kind(f.fs.remove_dir(Root::Cache, "d/f")),
        ErrorKind::NotADirectory
    );
    f.fs.remove_file(Root::Cache, "d/f").unwrap();
    f.fs.remove_dir(Root::Cache, "d").unwrap();
    assert!(!f.cache.join("d").exists());
    assert_eq!(kind(f.fs.remove_dir(Root::Cache, "d")), ErrorKind::NotFound);
}

#[test]
fn read_dir_lists_names_and_kinds_without_following() {
    let f = fixture();
    fs::write(f.cache.join("file"), b"").unwrap();
    fs::create_dir(f.cache.join("dir")).unwrap();
    fs::write(f.cache.join("dir/inner"), b"").unwrap();
    symlink("dir", f.cache.join("link")).unwrap();
    mkfifo(&f.cache.join("fifo"));
    assert_eq!(
        list(&f.fs, Root::Cache, ""),
        [
            ("dir".to_owned(), FileKind::Dir),
            ("fifo".to_owned(), FileKind::Other),
            ("file".to_owned(), FileKind::File),
            ("link".to_owned(), FileKind::Symlink),
        ]
    );
    assert_eq!(
        list(&f.fs, Root::Cache, "dir"),
        [("inner".to_owned(), FileKind::File)]
    );
    assert_eq!(
        kind(f.fs.read_dir(Root::Cache, "missing", &mut |_, _| {
            ControlFlow::Continue(())
        })),
        ErrorKind::NotFound
    );
    assert_eq!(
        kind(f.fs.read_dir(Root::Cache, "file", &mut |_, _| {
            ControlFlow::Continue(())
        })),
        ErrorKind::NotADirectory
    );
    assert_eq!(
        kind(f.fs.read_dir(Root::Cache, "link", &mut |_, _| {
            ControlFlow::Continue(())
        })),
        ErrorKind::SymlinkRefused
    );
}

#[test]
fn read_dir_stops_on_break_and_allows_removal_of_the_visited_entry() {
    let f = fixture();
    for i in 0..20 {
        fs::write(f.cache.join(format!("f{i}")), b"").unwrap();
    }
    let mut seen = 0;
    f.fs.read_dir(Root::Cache, "", &mut |_, _| {
        seen += 1;
        if seen == 3 {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })
    .unwrap();
    assert_eq!(seen, 3);

    let mut removed = 0;
    f.fs.read_dir(Root::Cache, "", &mut |name, _| {
        f.fs.remove_file(Root::Cache, name).unwrap();
        removed += 1;
        ControlFlow::Continue(())
    })
    .unwrap();
    assert_eq!(removed, 20);
    assert_eq!(fs::read_dir(&f.cache).unwrap().count(), 0);
}

#[test]
fn metadata_does_not_follow_symlinks() {
    let f = fixture();
    fs::write(f.workspace.join("file"), b"12345").unwrap();
    fs::set_permissions(f.workspace.join("file"), fs::Permissions::from_mode(0o4751)).unwrap();
    fs::create_dir(f.workspace.join("dir")).unwrap();
    symlink("file", f.workspace.join("link")).unwrap();

    let file = f.fs.metadata(Root::Workspace, "file").unwrap();
    assert_eq!(file.kind, FileKind::File);
    assert_eq!(file.size, 5);
    assert_eq!(file.mode, 0o4751);
    let std_mtime = fs::metadata(f.workspace.join("file"))
        .unwrap()
        .modified()
        .unwrap()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    assert_eq!(file.modified.seconds, std_mtime.as_secs());
    assert_eq!(file.modified.nanos, std_mtime.subsec_nanos());

    assert_eq!(
        f.fs.metadata(Root::Workspace, "dir").unwrap().kind,
        FileKind::Dir
    );
    assert_eq!(
        f.fs.metadata(Root::Workspace, "").unwrap().kind,
        FileKind::Dir
    );
    let link = f.fs.metadata(Root::Workspace, "link").unwrap();
    assert_eq!(link.kind, FileKind::Symlink);
    assert_eq!(link.size, 4, "the size of the link text, not of the target");
    assert_eq!(
        kind(f.fs.metadata(Root::Workspace, "missing")),
        ErrorKind::NotFound
    );
}

#[test]
fn directory_metadata_agrees_with_metadata_by_path_without_following() {
    let f = fixture();
    fs::create_dir_all(f.workspace.join("d/sub")).unwrap();
    fs::write(f.workspace.join("d/file"), b"12345").unwrap();
    fs::set_permissions(
        f.workspace.join("d/file"),
        fs::Permissions::from_mode(0o4751),
    )
    .unwrap();
    symlink("file", f.workspace.join("d/link")).unwrap();
    symlink(&f.outside, f.workspace.join("d/out")).unwrap();

    let dir = f.fs.open_dir(Root::Workspace, "d").unwrap();
    for entry in ["file", "sub", "link", "out"] {
        assert_eq!(
            dir.metadata(name(entry)).unwrap(),
            f.fs.metadata(Root::Workspace, &format!("d/{entry}"))
                .unwrap(),
            "{entry}"
        );
    }
    assert_eq!(kind(dir.metadata(name("missing"))), ErrorKind::NotFound);
    // One component only: nothing can walk out of the directory.
    for bad in ["", ".", "..", "sub/x", "out/secret", "../d/file", "f\0"] {
        assert_eq!(kind(Name::new(bad)), ErrorKind::InvalidInput, "{bad:?}");
    }
    // The root itself opens too.
    let root = f.fs.open_dir(Root::Workspace, "").unwrap();
    assert_eq!(root.metadata(name("d")).unwrap().kind, FileKind::Dir);
}

#[test]
fn safe_2_open_dir_refuses_symlinks_and_non_directories() {
    let f = fixture();
    fs::create_dir(f.workspace.join("d")).unwrap();
    fs::write(f.workspace.join("file"), b"x").unwrap();
    symlink("d", f.workspace.join("inside")).unwrap();
    symlink(&f.outside, f.workspace.join("outside")).unwrap();
    assert_eq!(
        kind(f.fs.open_dir(Root::Workspace, "inside")),
        ErrorKind::SymlinkRefused
    );
    assert_eq!(
        kind(f.fs.open_dir(Root::Workspace, "outside")),
        ErrorKind::SymlinkRefused
    );
    assert_eq!(
        kind(f.fs.open_dir(Root::Workspace, "file")),
        ErrorKind::NotADirectory
    );
    assert_eq!(
        kind(f.fs.open_dir(Root::Workspace, "missing")),
        ErrorKind::NotFound
    );
    // A directory handle follows its directory through a rename.
    fs::write(f.workspace.join("d/blob"), b"abc").unwrap();
    let dir = f.fs.open_dir(Root::Workspace, "d").unwrap();
    fs::rename(f.workspace.join("d"), f.workspace.join("moved")).unwrap();
    assert_eq!(dir.metadata(name("blob")).unwrap().size, 3);
}

#[test]
fn safe_2_rename_moves_one_name_between_open_directories_never_through_a_symlink() {
    let f = fixture();
    fs::create_dir_all(f.cache.join("scratch")).unwrap();
    fs::create_dir_all(f.workspace.join("out")).unwrap();
    fs::write(f.cache.join("scratch/0"), b"new").unwrap();
    fs::write(f.cache.join("scratch/1"), b"other").unwrap();
    fs::write(f.workspace.join("out/app"), b"old").unwrap();
    let from = f.fs.open_dir(Root::Cache, "scratch").unwrap();
    let to = f.fs.open_dir(Root::Workspace, "out").unwrap();
    let allowed = Replace::Allowed;
    f.fs.rename(&from, name("0"), &to, name("app"), allowed)
        .unwrap();
    assert_eq!(fs::read(f.workspace.join("out/app")).unwrap(), b"new");
    assert!(!f.cache.join("scratch/0").exists());
    assert_eq!(
        kind(f.fs.rename(&from, name("0"), &to, name("x"), allowed)),
        ErrorKind::NotFound
    );
    // One name each: nothing can be steered through a path.
    symlink(&f.outside, f.workspace.join("out/escape")).unwrap();
    for (from_name, to_name) in [
        ("1", "escape/secret"),
        ("1", ".."),
        ("../scratch/1", "y"),
        ("", "y"),
    ] {
        let names = Name::new(from_name).and_then(|from| Ok((from, Name::new(to_name)?)));
        assert_eq!(
            kind(names),
            ErrorKind::InvalidInput,
            "{from_name:?} -> {to_name:?}"
        );
    }
    // A symlink as the target name is replaced, never followed.
    f.fs.rename(&from, name("1"), &to, name("escape"), allowed)
        .unwrap();
    assert_eq!(fs::read(f.workspace.join("out/escape")).unwrap(), b"other");
    assert_secret_intact(&f);
}

#[test]
fn rename_in_open_directories_without_replacing_never_replaces() {
    let f = fixture();
    fs::create_dir_all(f.cache.join("blobs")).unwrap();
    fs::write(f.cache.join("blobs/.partial"), b"one").unwrap();
    fs::write(f.cache.join("blobs/taken"), b"two").unwrap();
    let dir = f.fs.open_dir(Root::Cache, "blobs").unwrap();
    let never = Replace::Never;
    assert_eq!(
        kind(f.fs.rename(&dir, name(".partial"), &dir, name("taken"), never)),
        ErrorKind::AlreadyExists
    );
    assert_eq!(fs::read(f.cache.join("blobs/taken")).unwrap(), b"two");
    f.fs.rename(&dir, name(".partial"), &dir, name("free"), never)
        .unwrap();
    assert_eq!(fs::read(f.cache.join("blobs/free")).unwrap(), b"one");
    assert_eq!(kind(Name::new("../x")), ErrorKind::InvalidInput);
}

#[test]
fn a_reader_reports_the_metadata_of_what_open_file_opened() {
    let f = fixture();
    fs::write(f.workspace.join("file"), b"12345").unwrap();
    fs::set_permissions(f.workspace.join("file"), fs::Permissions::from_mode(0o751)).unwrap();
    fs::create_dir(f.workspace.join("dir")).unwrap();
    symlink("file", f.workspace.join("link")).unwrap();
    mkfifo(&f.workspace.join("fifo"));
    let mut reader = f.fs.open_file(Root::Workspace, "file").unwrap();
    let meta = reader.metadata().unwrap();
    assert_eq!(meta, f.fs.metadata(Root::Workspace, "file").unwrap());
    let mut buf = [0u8; 8];
    assert_eq!(reader.read(&mut buf).unwrap(), 5);
    // The file opened, whatever the path names by now.
    fs::rename(f.workspace.join("file"), f.workspace.join("moved")).unwrap();
    fs::write(f.workspace.join("file"), b"other contents").unwrap();
    assert_eq!(reader.metadata().unwrap(), meta);
    for (path, expected) in [
        ("dir", ErrorKind::IsADirectory),
        ("link", ErrorKind::SymlinkRefused),
        ("fifo", ErrorKind::InvalidInput),
        ("missing", ErrorKind::NotFound),
    ] {
        assert_eq!(
            kind(f.fs.open_file(Root::Workspace, path)),
            expected,
            "{path}"
        );
    }
}

#[test]
fn copy_file_copies_everything_across_roots_and_hashes_the_copy() {
    let f = fixture();
    // Several copy and hash chunks, with a tail that is not a multiple of
    // any block size.
    let bytes: Vec<u8> = (0..9 * 1024 * 1024 + 17)
        .map(|i| (i * 31 % 251) as u8)
        .collect();
    fs::write(f.workspace.join("big"), &bytes).unwrap();
    fs::write(f.workspace.join("empty"), b"").unwrap();
    for function in HashFunction::ALL {
        for (name, expected) in [("big", &bytes[..]), ("empty", &b""[..])] {
            let copy = format!("{name}-{function}");
            let mut from = f.fs.open_file(Root::Workspace, name).unwrap();
            let mut to = f.fs.create_new_file(Root::Cache, &copy).unwrap();
            let copied = f.fs.copy_file(&mut from, &mut to, function).unwrap();
            to.sync().unwrap();
            drop(to);
            assert_eq!(
                copied,
                (digest(function, expected), expected.len() as u64),
                "{copy}"
            );
            assert_eq!(read_all(&f.fs, Root::Cache, &copy), expected, "{copy}");
        }
    }
}

#[test]
fn set_mode_through_the_writer_of_a_new_file() {
    let f = fixture();
    let mut writer = f.fs.create_new_file(Root::Workspace, "file").unwrap();
    writer.set_mode(0o755).unwrap();
    assert_eq!(f.fs.metadata(Root::Workspace, "file").unwrap().mode, 0o755);
    writer.set_mode(0o4751).unwrap();
    assert_eq!(f.fs.metadata(Root::Workspace, "file").unwrap().mode, 0o4751);
    // Through the handle, even without permission to open the file again.
    writer.set_mode(0o000).unwrap();
    assert_eq!(f.fs.metadata(Root::Workspace, "file").unwrap().mode, 0);
    writer.set_mode(0o640).unwrap();
    assert_eq!(f.fs.metadata(Root::Workspace, "file").unwrap().mode, 0o640);
    assert_eq!(kind(writer.set_mode(0o10000)), ErrorKind::InvalidInput);
    assert_eq!(f.fs.metadata(Root::Workspace, "file").unwrap().mode, 0o640);
}

#[test]
fn set_modified_files_dirs_and_root_without_following() {
    let f = fixture();
    write_new(&f.fs, Root::Cache, "file", b"");
    f.fs.create_dir(Root::Cache, "dir").unwrap();
    let when = Timestamp {
        seconds: 1_600_000_000,
        nanos: 123_456_789,
    };
    for path in ["file", "dir", ""] {
        f.fs.set_modified(Root::Cache, path, when).unwrap();
        assert_eq!(
            f.fs.metadata(Root::Cache, path).unwrap().modified,
            when,
            "{path:?}"
        );
    }
    symlink("file", f.cache.join("link")).unwrap();
    let later = Timestamp::from_seconds(1_700_000_000);
    f.fs.set_modified(Root::Cache, "link", later).unwrap();
    assert_eq!(f.fs.metadata(Root::Cache, "link").unwrap().modified, later);
    assert_eq!(
        f.fs.metadata(Root::Cache, "file").unwrap().modified,
        when,
        "the target is untouched"
    );
    assert_eq!(
        kind(f.fs.set_modified(
            Root::Cache,
            "file",
            Timestamp {
                seconds: 1,
                nanos: 1_000_000_000
            }
        )),
        ErrorKind::InvalidInput
    );
    assert_eq!(
        kind(f.fs.set_modified(Root::Cache, "missing", when)),
        ErrorKind::NotFound
    );
}

#[test]
fn sync_dir_root_and_subdirs() {
    let f = fixture();
    f.fs.create_dir(Root::Cache, "ab").unwrap();
    f.fs.sync_dir(Root::Cache, "").unwrap();
    f.fs.sync_dir(Root::Cache, "ab").unwrap();
    f.fs.sync_dir(Root::Workspace, "").unwrap();
    write_new(&f.fs, Root::Cache, "file", b"");
    assert_eq!(
        kind(f.fs.sync_dir(Root::Cache, "file")),
        ErrorKind::NotADirectory
    );
    assert_eq!(
        kind(f.fs.sync_dir(Root::Cache, "missing")),
        ErrorKind::NotFound
    );
}

#[test]
fn error_mapping_keeps_the_os_code() {
    let cases = [
        (libc_errno::ENOENT, ErrorKind::NotFound),
        (libc_errno::EEXIST, ErrorKind::AlreadyExists),
        (libc_errno::ENOTDIR, ErrorKind::NotADirectory),
        (libc_errno::EISDIR, ErrorKind::IsADirectory),
        (libc_errno::ENOTEMPTY, ErrorKind::DirectoryNotEmpty),
        (libc_errno::EACCES, ErrorKind::PermissionDenied),
        (libc_errno::EPERM, ErrorKind::PermissionDenied),
        (libc_errno::EROFS, ErrorKind::ReadOnly),
        (libc_errno::ELOOP, ErrorKind::SymlinkRefused),
        (libc_errno::EXDEV, ErrorKind::CrossesDevices),
        (libc_errno::ENOSPC, ErrorKind::StorageFull),
        (libc_errno::EDQUOT, ErrorKind::StorageFull),
        (libc_errno::ENOSYS, ErrorKind::Unsupported),
        (libc_errno::EINVAL, ErrorKind::InvalidInput),
        (libc_errno::EIO, ErrorKind::Other),
    ];
    for (code, expected) in cases {
        let error = Error::from(std::io::Error::from_raw_os_error(code));
        assert_eq!(error.kind, expected, "errno {code}");
        assert_eq!(error.os_code, Some(code));
    }
    // cap-std's refusal of an escape carries no errno.
    let escape = Error::from(std::io::Error::new(
        std::io::ErrorKind::PermissionDenied,
        "a path led outside of the filesystem",
    ));
    assert_eq!(escape.kind, ErrorKind::PermissionDenied);
    assert_eq!(escape.os_code, None);
    assert_eq!(
        Error::from(std::io::Error::from(std::io::ErrorKind::UnexpectedEof)).kind,
        ErrorKind::UnexpectedEof
    );
}

/// Linux errno values, spelled out so the test does not share the mapping's
/// own constants.
mod libc_errno {
    pub const EPERM: i32 = 1;
    pub const ENOENT: i32 = 2;
    pub const EIO: i32 = 5;
    pub const EACCES: i32 = 13;
    pub const EEXIST: i32 = 17;
    pub const EXDEV: i32 = 18;
    pub const ENOTDIR: i32 = 20;
    pub const EISDIR: i32 = 21;
    pub const EINVAL: i32 = 22;
    pub const ENOSPC: i32 = 28;
    pub const EROFS: i32 = 30;
    pub const ENOSYS: i32 = 38;
    pub const ENOTEMPTY: i32 = 39;
    pub const ELOOP: i32 = 40;
    pub const EDQUOT: i32 = 122;
}

#[test]
fn sync_filesystem_is_available_on_linux_and_succeeds_on_both_roots() {
    let f = fixture();
    write_new(&f.fs, Root::Cache, "blob", b"durable");
    assert!(f.fs.supports_sync_filesystem());
    f.fs.sync_filesystem(Root::Cache).unwrap();
    f.fs.sync_filesystem(Root::Workspace).unwrap();
}

/// Runs `task(index)` for every index of `results` on `threads`, each
/// keeping what it returns in its own slot, as the core does.
fn run_on<R: Send>(
    threads: &Threads,
    fs: &CapStdFilesystem,
    results: &mut [R],
    task: &(dyn Fn(usize) -> R + Sync),
) {
    let mut jobs: Vec<_> = results
        .iter_mut()
        .enumerate()
        .map(|(index, slot)| move |_: &CapStdFilesystem| *slot = task(index))
        .collect();
    let mut jobs: Vec<&mut (dyn FnMut(&CapStdFilesystem) + Send)> = jobs
        .iter_mut()
        .map(|job| job as &mut (dyn FnMut(&CapStdFilesystem) + Send))
        .collect();
    threads.run(fs, &mut jobs);
}

#[test]
fn threads_run_every_task_once_and_keep_each_result_in_its_place() {
    for parallelism in [1, 2, 8] {
        let f = fixture();
        let threads = Threads::with_parallelism(parallelism);
        assert_eq!(
            Tasks::<CapStdFilesystem>::parallelism(&threads),
            parallelism
        );
        for count in [0, 1, 3, 50] {
            let runs: Vec<core::sync::atomic::AtomicUsize> =
                (0..count).map(|_| Default::default()).collect();
            let mut results = vec![usize::MAX; count];
            run_on(&threads, &f.fs, &mut results, &|index| {
                runs[index].fetch_add(1, core::sync::atomic::Ordering::Relaxed);
                index * index
            });
            let expected: Vec<usize> = (0..count).map(|i| i * i).collect();
            assert_eq!(
                results, expected,
                "parallelism {parallelism}, {count} tasks"
            );
            assert!(
                runs.iter()
                    .all(|n| n.load(core::sync::atomic::Ordering::Relaxed) == 1)
            );
        }
    }
    // By default, one thread per core, at most eight.
    let default = Tasks::<CapStdFilesystem>::parallelism(&Threads::new());
    assert!((1..=cachet::tasks::MAX_DEFAULT_PARALLELISM).contains(&default));
}

#[test]
fn threads_run_tasks_at_once_when_parallelism_allows() {
    // Each of two tasks waits for the other to start: on one thread the
    // first would give up after the timeout, and the test would fail
    // rather than hang.
    let f = fixture();
    let threads = Threads::with_parallelism(2);
    let arrived = core::sync::atomic::AtomicUsize::new(0);
    let mut met = [false; 2];
    run_on(&threads, &f.fs, &mut met, &|_| {
        arrived.fetch_add(1, core::sync::atomic::Ordering::SeqCst);
        let deadline = std::time::Instant::now() + core::time::Duration::from_secs(10);
        while arrived.load(core::sync::atomic::Ordering::SeqCst) < 2 {
            if std::time::Instant::now() > deadline {
                return false;
            }
            std::thread::yield_now();
        }
        true
    });
    assert_eq!(met, [true, true]);
}

/// Stores `count` outputs of distinct contents in nine directories, then
/// removes them from the workspace; returns the key and each output's path
/// and contents.
fn stored_many(f: &Fixture, count: usize) -> (cachet_core::key::Key, Vec<(PathBuf, Vec<u8>)>) {
    use cachet_core::cache::{Cache, DeterministicContext};
    let mut files = Vec::new();
    let mut outputs = Vec::new();
    for i in 0..count {
        let relative = format!("out/d{}/f{i:04}", i % 9);
        let path = f.workspace.join(&relative);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        let contents = format!("output {i}\n").into_bytes();
        fs::write(&path, &contents).unwrap();
        files.push((path, contents));
        outputs.push(format!("/{relative}"));
    }
    let key = cachet_core::key::Key(digest(HashFunction::Blake3, b"many"));
    let cache = Cache::new(CapStdFilesystem::open_ambient(&f.workspace, &f.cache).unwrap())
        .with_tasks(Threads::new());
    let mut outputs: Vec<&str> = outputs.iter().map(String::as_str).collect();
    cache
        .store(
            &key,
            &mut outputs,
            &b""[..],
            &b""[..],
            &mut DeterministicContext::default(),
        )
        .unwrap();
    fs::remove_dir_all(f.workspace.join("out")).unwrap();
    (key, files)
}

/// Restores `key` through a fresh `CapStdFilesystem` on `parallelism`
/// threads, discarding the streams.
fn restore_with(
    f: &Fixture,
    key: &cachet_core::key::Key,
    parallelism: usize,
) -> Result<cachet_core::cache::RestoreOutcome, cachet_core::cache::CacheError> {
    let fs = CapStdFilesystem::open_ambient(&f.workspace, &f.cache).unwrap();
    let context = &mut cachet_core::cache::DeterministicContext::default();
    cachet_core::cache::Cache::new(fs)
        .with_tasks(Threads::with_parallelism(parallelism))
        .restore(key, Vec::new(), Vec::new(), context)
}

#[test]
fn op_3_restore_on_several_threads_puts_every_output_in_place() {
    use cachet_core::cache::RestoreOutcome;
    for parallelism in [1, 4] {
        let f = fixture();
        let (key, files) = stored_many(&f, 600);
        let restored = restore_with(&f, &key, parallelism);
        assert!(
            matches!(restored, Ok(RestoreOutcome::Restored { outputs: 600, .. })),
            "parallelism {parallelism}: {restored:?}"
        );
        for (path, contents) in &files {
            assert_eq!(&fs::read(path).unwrap(), contents, "{}", path.display());
        }
        assert!(
            list(&f.fs, Root::Cache, "")
                .iter()
                .all(|(name, _)| !name.starts_with(".restore-"))
        );
    }
}

#[test]
fn op_3_a_bad_blob_stops_every_thread_before_anything_is_published() {
    use cachet_core::cache::{LookupStatus, RestoreOutcome};
    use cachet_core::layout;
    for bad in [0, 300, 599] {
        let f = fixture();
        let (key, files) = stored_many(&f, 600);
        let blob = layout::blob(&key, &digest(HashFunction::Blake3, &files[bad].1));
        let mut evil = files[bad].1.clone();
        evil[0] ^= 1;
        fs::write(f.cache.join(blob.as_str()), &evil).unwrap();
        let restored = restore_with(&f, &key, 4);
        assert_eq!(
            restored,
            Ok(RestoreOutcome::Miss(LookupStatus::MissCorrupt)),
            "bad output {bad}"
        );
        assert!(
            !f.workspace.join("out").exists(),
            "bad output {bad}: nothing published"
        );
        assert!(
            list(&f.fs, Root::Cache, "")
                .iter()
                .all(|(name, _)| !name.starts_with(".restore-"))
        );
    }
}
