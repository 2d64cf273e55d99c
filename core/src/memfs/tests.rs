//! The in-memory filesystem against its own contract: every call, its
//! error kinds, fault injection and the durability model.

use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;
use core::ops::ControlFlow;

use super::*;
use crate::fs::{
    Directory, Error, ErrorKind, FileKind, FileReader, FileWriter, Filesystem, Name, Read, Replace,
    Write, rename_path,
};
use crate::hash::HashFunction;
use Root::{Cache, Workspace};

const T1: Timestamp = Timestamp::from_seconds(1_000);
const T2: Timestamp = Timestamp::from_seconds(2_000);

fn kind<T>(result: Result<T, Error>) -> ErrorKind {
    match result {
        Ok(_) => panic!("expected an error"),
        Err(error) => error.kind,
    }
}

fn name(name: &str) -> Name<'_> {
    Name::new(name).unwrap()
}

/// A rename by path: through the parents' directories, as the core does
/// ([`rename_path`]).
fn rename(fs: &MemFs, from_root: Root, from: &str, to_root: Root, to: &str) -> Result<(), Error> {
    rename_path(fs, (from_root, from), (to_root, to), Replace::Allowed)
}

/// [`rename`] with [`Replace::Never`].
fn rename_no_replace(
    fs: &MemFs,
    from_root: Root,
    from: &str,
    to_root: Root,
    to: &str,
) -> Result<(), Error> {
    rename_path(fs, (from_root, from), (to_root, to), Replace::Never)
}

fn create(fs: &MemFs, root: Root, path: &str, bytes: &[u8]) -> Result<MemWriter, Error> {
    let mut writer = fs.create_new_file(root, path)?;
    writer.write_all(bytes)?;
    Ok(writer)
}

fn read_all(fs: &MemFs, root: Root, path: &str) -> Result<Vec<u8>, Error> {
    let mut reader = fs.open_file(root, path)?;
    let mut out = Vec::new();
    let mut buf = [0u8; 3];
    loop {
        match reader.read(&mut buf)? {
            0 => return Ok(out),
            n => out.extend_from_slice(&buf[..n]),
        }
    }
}

fn names(fs: &MemFs, root: Root, path: &str) -> Vec<(String, FileKind)> {
    let mut out = Vec::new();
    fs.read_dir(root, path, &mut |name, kind| {
        out.push((name.to_string(), kind));
        ControlFlow::Continue(())
    })
    .unwrap();
    out
}

fn paths(fs: &MemFs, root: Root) -> Vec<String> {
    fs.tree(root).into_iter().map(|entry| entry.0).collect()
}

#[test]
fn create_new_file_then_open_file_reads_the_bytes_back() {
    let fs = MemFs::new();
    fs.create_dir(Workspace, "d").unwrap();
    create(&fs, Workspace, "d/f", b"hello world").unwrap();
    assert_eq!(read_all(&fs, Workspace, "d/f").unwrap(), b"hello world");
    assert_eq!(fs.read_file(Workspace, "d/f").unwrap(), b"hello world");
    // The two roots are independent trees.
    assert!(!fs.exists(Cache, "d/f"));
    assert_eq!(kind(fs.open_file(Cache, "d/f")), ErrorKind::NotFound);
}

#[test]
fn create_new_file_refuses_anything_existing_including_symlinks() {
    let fs = MemFs::new();
    fs.write_file(Cache, "file", b"x", 0o644).unwrap();
    fs.create_dir_all(Cache, "dir").unwrap();
    fs.symlink(Cache, "link", "file").unwrap();
    fs.symlink(Cache, "dangling", "nowhere").unwrap();
    fs.write_file(Cache, "pretend", b"p", 0o644).unwrap();
    fs.pretend_symlink(Cache, "pretend").unwrap();
    for path in ["file", "dir", "link", "dangling", "pretend", ""] {
        assert_eq!(
            kind(fs.create_new_file(Cache, path)),
            ErrorKind::AlreadyExists,
            "{path}"
        );
        assert_eq!(
            kind(fs.create_dir(Cache, path)),
            ErrorKind::AlreadyExists,
            "{path}"
        );
    }
    assert_eq!(fs.read_file(Cache, "file").unwrap(), b"x");
}

#[test]
fn missing_parent_is_not_found_and_file_parent_is_not_a_directory() {
    let fs = MemFs::new();
    fs.write_file(Cache, "file", b"x", 0o644).unwrap();
    assert_eq!(kind(fs.create_new_file(Cache, "no/f")), ErrorKind::NotFound);
    assert_eq!(
        kind(fs.create_new_file(Cache, "no/deeper/f")),
        ErrorKind::NotFound
    );
    assert_eq!(kind(fs.create_dir(Cache, "no/d")), ErrorKind::NotFound);
    assert_eq!(
        kind(fs.create_new_file(Cache, "file/f")),
        ErrorKind::NotADirectory
    );
    assert_eq!(
        kind(fs.create_dir(Cache, "file/d")),
        ErrorKind::NotADirectory
    );
    assert_eq!(kind(fs.metadata(Cache, "file/f")), ErrorKind::NotADirectory);
    assert_eq!(
        kind(fs.read_dir(Cache, "file", &mut |_, _| ControlFlow::Continue(()))),
        ErrorKind::NotADirectory
    );
    assert_eq!(kind(fs.sync_dir(Cache, "file")), ErrorKind::NotADirectory);
    assert_eq!(kind(fs.sync_dir(Cache, "missing")), ErrorKind::NotFound);
    assert_eq!(paths(&fs, Cache), vec!["file"]);
}

#[test]
fn malformed_paths_are_invalid_input_for_every_call() {
    let fs = MemFs::new();
    fs.write_file(Workspace, "a/b", b"x", 0o644).unwrap();
    let before = fs.tree(Workspace);
    for bad in [
        "/a", "a//b", "a/", "/", "./a", "a/.", "a/../a", "..", "a/b\0", "a/./b",
    ] {
        let w = Workspace;
        assert_eq!(
            kind(fs.metadata(w, bad)),
            ErrorKind::InvalidInput,
            "{bad:?}"
        );
        assert_eq!(
            kind(fs.open_file(w, bad)),
            ErrorKind::InvalidInput,
            "{bad:?}"
        );
        assert_eq!(
            kind(fs.create_new_file(w, bad)),
            ErrorKind::InvalidInput,
            "{bad:?}"
        );
        assert_eq!(
            kind(fs.create_dir(w, bad)),
            ErrorKind::InvalidInput,
            "{bad:?}"
        );
        assert_eq!(
            kind(rename(&fs, w, bad, w, "c")),
            ErrorKind::InvalidInput,
            "{bad:?}"
        );
        assert_eq!(
            kind(rename(&fs, w, "a/b", w, bad)),
            ErrorKind::InvalidInput,
            "{bad:?}"
        );
        assert_eq!(
            kind(rename_no_replace(&fs, w, "a/b", w, bad)),
            ErrorKind::InvalidInput,
            "{bad:?}"
        );
        assert_eq!(
            kind(fs.remove_file(w, bad)),
            ErrorKind::InvalidInput,
            "{bad:?}"
        );
        assert_eq!(
            kind(fs.remove_dir(w, bad)),
            ErrorKind::InvalidInput,
            "{bad:?}"
        );
        assert_eq!(
            kind(fs.set_modified(w, bad, T1)),
            ErrorKind::InvalidInput,
            "{bad:?}"
        );
        assert_eq!(
            kind(fs.sync_dir(w, bad)),
            ErrorKind::InvalidInput,
            "{bad:?}"
        );
        assert_eq!(
            kind(fs.read_dir(w, bad, &mut |_, _| ControlFlow::Continue(()))),
            ErrorKind::InvalidInput,
            "{bad:?}"
        );
        assert_eq!(
            kind(fs.write_file(w, bad, b"", 0o644)),
            ErrorKind::InvalidInput,
            "{bad:?}"
        );
        assert!(!fs.exists(w, bad), "{bad:?}");
    }
    assert_eq!(fs.tree(Workspace), before);
}

#[test]
fn the_empty_path_names_the_root_which_cannot_be_removed_or_renamed() {
    let fs = MemFs::new();
    fs.write_file(Cache, "f", b"x", 0o644).unwrap();
    assert_eq!(fs.metadata(Cache, "").unwrap().kind, FileKind::Dir);
    assert_eq!(
        names(&fs, Cache, ""),
        vec![("f".to_string(), FileKind::File)]
    );
    fs.sync_dir(Cache, "").unwrap();
    assert_eq!(kind(fs.open_file(Cache, "")), ErrorKind::IsADirectory);
    assert_eq!(kind(fs.remove_dir(Cache, "")), ErrorKind::InvalidInput);
    assert_eq!(kind(fs.remove_file(Cache, "")), ErrorKind::InvalidInput);
    assert_eq!(
        kind(rename(&fs, Cache, "", Workspace, "x")),
        ErrorKind::InvalidInput
    );
    assert_eq!(
        kind(rename(&fs, Cache, "f", Workspace, "")),
        ErrorKind::InvalidInput
    );
    assert!(fs.exists(Cache, ""));
}

#[test]
fn symlink_in_a_non_final_component_is_refused() {
    let fs = MemFs::new();
    fs.write_file(Workspace, "real/f", b"x", 0o644).unwrap();
    fs.symlink(Workspace, "link", "real").unwrap();
    fs.create_dir_all(Workspace, "fake/sub").unwrap();
    fs.write_file(Workspace, "fake/f", b"y", 0o644).unwrap();
    fs.pretend_symlink(Workspace, "fake").unwrap();
    for base in ["link", "fake"] {
        let inner = alloc::format!("{base}/f");
        let deeper = alloc::format!("{base}/sub/g");
        let refused = ErrorKind::SymlinkRefused;
        assert_eq!(kind(fs.metadata(Workspace, &inner)), refused, "{base}");
        assert_eq!(kind(fs.open_file(Workspace, &inner)), refused, "{base}");
        assert_eq!(
            kind(fs.create_new_file(Workspace, &deeper)),
            refused,
            "{base}"
        );
        assert_eq!(kind(fs.create_dir(Workspace, &inner)), refused, "{base}");
        assert_eq!(kind(fs.remove_file(Workspace, &inner)), refused, "{base}");
        assert_eq!(
            kind(rename(&fs, Workspace, "real/f", Workspace, &inner)),
            refused
        );
        assert_eq!(
            kind(rename(&fs, Workspace, &inner, Workspace, "moved")),
            refused
        );
        assert_eq!(
            kind(fs.read_dir(Workspace, base, &mut |_, _| ControlFlow::Continue(()))),
            refused
        );
        assert_eq!(kind(fs.sync_dir(Workspace, base)), refused);
        assert_eq!(kind(fs.write_file(Workspace, &inner, b"z", 0o644)), refused);
        assert_eq!(fs.read_file(Workspace, &inner), None);
    }
    assert_eq!(fs.read_file(Workspace, "real/f").unwrap(), b"x");
}

#[test]
fn open_file_refuses_symlinks_and_directories() {
    let fs = MemFs::new();
    fs.write_file(Workspace, "f", b"x", 0o644).unwrap();
    fs.symlink(Workspace, "link", "f").unwrap();
    fs.create_dir_all(Workspace, "d").unwrap();
    assert_eq!(
        kind(fs.open_file(Workspace, "link")),
        ErrorKind::SymlinkRefused
    );
    assert_eq!(kind(fs.open_file(Workspace, "d")), ErrorKind::IsADirectory);
    assert_eq!(
        kind(fs.open_file(Workspace, "missing")),
        ErrorKind::NotFound
    );
    assert_eq!(read_all(&fs, Workspace, "f").unwrap(), b"x");
}

#[test]
fn rename_of_a_file_replaces_a_file_or_symlink() {
    let fs = MemFs::new();
    fs.write_file(Cache, "a", b"new", 0o600).unwrap();
    fs.write_file(Cache, "b", b"old", 0o644).unwrap();
    fs.symlink(Cache, "s", "b").unwrap();
    rename(&fs, Cache, "a", Cache, "b").unwrap();
    assert!(!fs.exists(Cache, "a"));
    assert_eq!(fs.read_file(Cache, "b").unwrap(), b"new");
    assert_eq!(fs.metadata(Cache, "b").unwrap().mode, 0o600);
    rename(&fs, Cache, "b", Cache, "s").unwrap();
    assert_eq!(fs.read_file(Cache, "s").unwrap(), b"new");
    assert_eq!(paths(&fs, Cache), vec!["s"]);
    // A symlink moves as an entry and replaces a file.
    fs.symlink(Cache, "l", "target").unwrap();
    rename(&fs, Cache, "l", Cache, "s").unwrap();
    assert_eq!(fs.metadata(Cache, "s").unwrap().kind, FileKind::Symlink);
}

#[test]
fn rename_of_a_directory_replaces_only_an_empty_directory() {
    let fs = MemFs::new();
    fs.write_file(Cache, "src/f", b"x", 0o644).unwrap();
    fs.write_file(Cache, "full/g", b"y", 0o644).unwrap();
    fs.create_dir_all(Cache, "empty").unwrap();
    assert_eq!(
        kind(rename(&fs, Cache, "src", Cache, "full")),
        ErrorKind::DirectoryNotEmpty
    );
    assert_eq!(fs.read_file(Cache, "src/f").unwrap(), b"x");
    rename(&fs, Cache, "src", Cache, "empty").unwrap();
    assert_eq!(fs.read_file(Cache, "empty/f").unwrap(), b"x");
    assert_eq!(
        paths(&fs, Cache),
        vec!["empty", "empty/f", "full", "full/g"]
    );
}

#[test]
fn rename_dir_onto_file_is_not_a_directory_and_file_onto_dir_is_a_directory() {
    let fs = MemFs::new();
    fs.write_file(Cache, "f", b"x", 0o644).unwrap();
    fs.create_dir_all(Cache, "d").unwrap();
    fs.symlink(Cache, "s", "d").unwrap();
    assert_eq!(
        kind(rename(&fs, Cache, "d", Cache, "f")),
        ErrorKind::NotADirectory
    );
    assert_eq!(
        kind(rename(&fs, Cache, "d", Cache, "s")),
        ErrorKind::NotADirectory
    );
    assert_eq!(
        kind(rename(&fs, Cache, "f", Cache, "d")),
        ErrorKind::IsADirectory
    );
    assert_eq!(
        kind(rename(&fs, Cache, "s", Cache, "d")),
        ErrorKind::IsADirectory
    );
    assert_eq!(paths(&fs, Cache), vec!["d", "f", "s"]);
}

#[test]
fn rename_of_a_directory_into_its_own_subtree_is_invalid_input() {
    let fs = MemFs::new();
    fs.create_dir_all(Cache, "a/b/c").unwrap();
    let before = fs.tree(Cache);
    assert_eq!(
        kind(rename(&fs, Cache, "a", Cache, "a/x")),
        ErrorKind::InvalidInput
    );
    assert_eq!(
        kind(rename(&fs, Cache, "a", Cache, "a/b/c/x")),
        ErrorKind::InvalidInput
    );
    assert_eq!(
        kind(rename(&fs, Cache, "a", Cache, "a/b")),
        ErrorKind::InvalidInput
    );
    assert_eq!(
        kind(rename_no_replace(&fs, Cache, "a", Cache, "a/x")),
        ErrorKind::InvalidInput
    );
    assert_eq!(fs.tree(Cache), before);
    // Moving a subdirectory up is fine.
    rename(&fs, Cache, "a/b/c", Cache, "c").unwrap();
    assert_eq!(paths(&fs, Cache), vec!["a", "a/b", "c"]);
}

#[test]
fn rename_onto_itself_succeeds_and_changes_nothing() {
    let fs = MemFs::new();
    fs.write_file(Cache, "d/f", b"x", 0o644).unwrap();
    let before = fs.tree(Cache);
    rename(&fs, Cache, "d/f", Cache, "d/f").unwrap();
    rename(&fs, Cache, "d", Cache, "d").unwrap();
    assert_eq!(fs.tree(Cache), before);
}

#[test]
fn rename_of_a_missing_source_is_not_found() {
    let fs = MemFs::new();
    fs.create_dir_all(Cache, "d").unwrap();
    assert_eq!(
        kind(rename(&fs, Cache, "missing", Cache, "x")),
        ErrorKind::NotFound
    );
    assert_eq!(
        kind(rename(&fs, Cache, "d", Cache, "no/x")),
        ErrorKind::NotFound
    );
    assert_eq!(paths(&fs, Cache), vec!["d"]);
}

#[test]
fn rename_across_roots_works_unless_cross_device() {
    let fs = MemFs::new();
    fs.write_file(Cache, "staged/blob", b"bytes", 0o755)
        .unwrap();
    fs.create_dir_all(Workspace, "out").unwrap();
    rename(&fs, Cache, "staged/blob", Workspace, "out/file").unwrap();
    assert_eq!(fs.read_file(Workspace, "out/file").unwrap(), b"bytes");
    assert!(!fs.exists(Cache, "staged/blob"));
    rename(&fs, Workspace, "out", Cache, "moved").unwrap();
    assert_eq!(fs.read_file(Cache, "moved/file").unwrap(), b"bytes");

    fs.set_cross_device(true);
    assert_eq!(
        kind(rename(&fs, Cache, "moved/file", Workspace, "file")),
        ErrorKind::CrossesDevices
    );
    assert_eq!(
        kind(rename_no_replace(
            &fs,
            Cache,
            "moved/file",
            Workspace,
            "file"
        )),
        ErrorKind::CrossesDevices
    );
    assert!(fs.exists(Cache, "moved/file"));
    assert!(!fs.exists(Workspace, "file"));
    // Within one root renames still work.
    rename(&fs, Cache, "moved/file", Cache, "file").unwrap();
    assert_eq!(fs.read_file(Cache, "file").unwrap(), b"bytes");
}

#[test]
fn rename_no_replace_refuses_any_existing_target_and_can_be_unsupported() {
    let fs = MemFs::new();
    fs.write_file(Cache, "a", b"a", 0o644).unwrap();
    fs.write_file(Cache, "b", b"b", 0o644).unwrap();
    fs.create_dir_all(Cache, "d").unwrap();
    fs.create_dir_all(Cache, "e").unwrap();
    assert_eq!(
        kind(rename_no_replace(&fs, Cache, "a", Cache, "b")),
        ErrorKind::AlreadyExists
    );
    assert_eq!(
        kind(rename_no_replace(&fs, Cache, "d", Cache, "e")),
        ErrorKind::AlreadyExists
    );
    assert_eq!(
        kind(rename_no_replace(&fs, Cache, "a", Cache, "a")),
        ErrorKind::AlreadyExists
    );
    assert_eq!(fs.read_file(Cache, "b").unwrap(), b"b");
    rename_no_replace(&fs, Cache, "a", Cache, "c").unwrap();
    assert_eq!(fs.read_file(Cache, "c").unwrap(), b"a");

    fs.set_rename_no_replace_supported(false);
    let root = fs.open_dir(Cache, "").unwrap();
    let count = fs.op_count();
    assert_eq!(
        kind(fs.rename(&root, name("c"), &root, name("z"), Replace::Never)),
        ErrorKind::Unsupported
    );
    assert_eq!(fs.op_count(), count + 1);
    assert!(fs.exists(Cache, "c") && !fs.exists(Cache, "z"));
    fs.set_rename_no_replace_supported(true);
    rename_no_replace(&fs, Cache, "c", Cache, "z").unwrap();
    assert!(fs.exists(Cache, "z"));
}

#[test]
fn remove_file_removes_files_and_symlinks_never_directories() {
    let fs = MemFs::new();
    fs.write_file(Cache, "f", b"x", 0o644).unwrap();
    fs.symlink(Cache, "s", "f").unwrap();
    fs.create_dir_all(Cache, "d").unwrap();
    fs.create_dir_all(Cache, "pd").unwrap();
    fs.pretend_symlink(Cache, "pd").unwrap();
    assert_eq!(kind(fs.remove_file(Cache, "d")), ErrorKind::IsADirectory);
    assert_eq!(kind(fs.remove_file(Cache, "missing")), ErrorKind::NotFound);
    fs.remove_file(Cache, "s").unwrap();
    assert_eq!(fs.read_file(Cache, "f").unwrap(), b"x");
    fs.remove_file(Cache, "f").unwrap();
    // A pretend symlink is unlinked like a symlink.
    fs.remove_file(Cache, "pd").unwrap();
    assert_eq!(paths(&fs, Cache), vec!["d"]);
}

#[test]
fn remove_dir_refuses_non_empty_directories_and_non_directories() {
    let fs = MemFs::new();
    fs.write_file(Cache, "d/f", b"x", 0o644).unwrap();
    fs.symlink(Cache, "s", "d").unwrap();
    assert_eq!(
        kind(fs.remove_dir(Cache, "d")),
        ErrorKind::DirectoryNotEmpty
    );
    assert_eq!(kind(fs.remove_dir(Cache, "d/f")), ErrorKind::NotADirectory);
    assert_eq!(kind(fs.remove_dir(Cache, "s")), ErrorKind::NotADirectory);
    assert_eq!(kind(fs.remove_dir(Cache, "missing")), ErrorKind::NotFound);
    fs.remove_file(Cache, "d/f").unwrap();
    fs.remove_dir(Cache, "d").unwrap();
    assert_eq!(paths(&fs, Cache), vec!["s"]);
}

#[test]
fn read_dir_visits_every_entry_with_its_kind_in_name_order() {
    let fs = MemFs::new();
    fs.write_file(Cache, "d/b", b"", 0o644).unwrap();
    fs.create_dir_all(Cache, "d/a").unwrap();
    fs.symlink(Cache, "d/c", "b").unwrap();
    fs.write_file(Cache, "d/p", b"", 0o644).unwrap();
    fs.pretend_symlink(Cache, "d/p").unwrap();
    assert_eq!(
        names(&fs, Cache, "d"),
        vec![
            ("a".to_string(), FileKind::Dir),
            ("b".to_string(), FileKind::File),
            ("c".to_string(), FileKind::Symlink),
            ("p".to_string(), FileKind::Symlink),
        ]
    );
    let mut seen = 0;
    fs.read_dir(Cache, "d", &mut |_, _| {
        seen += 1;
        ControlFlow::Break(())
    })
    .unwrap();
    assert_eq!(seen, 1);
    assert!(names(&fs, Cache, "d/a").is_empty());
}

#[test]
fn read_dir_tolerates_the_callback_removing_entries() {
    let fs = MemFs::new();
    for name in ["a", "b", "c", "d"] {
        fs.write_file(Cache, &alloc::format!("dir/{name}"), b"x", 0o644)
            .unwrap();
    }
    let inner = fs.clone();
    let mut seen = Vec::new();
    fs.read_dir(Cache, "dir", &mut |name, _| {
        seen.push(name.to_string());
        inner
            .remove_file(Cache, &alloc::format!("dir/{name}"))
            .unwrap();
        // Removing a later entry makes read_dir skip it.
        if name == "a" {
            inner.remove_file(Cache, "dir/c").unwrap();
        }
        ControlFlow::Continue(())
    })
    .unwrap();
    assert_eq!(seen, vec!["a", "b", "d"]);
    fs.remove_dir(Cache, "dir").unwrap();
    assert!(fs.tree(Cache).is_empty());
}

#[test]
fn directory_looks_up_single_names_and_follows_renames() {
    let fs = MemFs::new();
    fs.create_dir(Workspace, "d").unwrap();
    fs.write_file(Workspace, "d/f", b"12345", 0o640).unwrap();
    fs.symlink(Workspace, "d/s", "f").unwrap();
    fs.symlink(Workspace, "link", "d").unwrap();
    let dir = fs.open_dir(Workspace, "d").unwrap();
    for entry in ["f", "s"] {
        assert_eq!(
            dir.metadata(name(entry)),
            fs.metadata(Workspace, &alloc::format!("d/{entry}"))
        );
    }
    for bad in ["", ".", "..", "f/x", "f\0"] {
        assert_eq!(Name::new(bad).unwrap_err().kind, ErrorKind::InvalidInput);
    }
    assert_eq!(
        dir.metadata(name("x")).unwrap_err().kind,
        ErrorKind::NotFound
    );
    rename(&fs, Workspace, "d", Cache, "moved").unwrap();
    assert_eq!(dir.metadata(name("f")).unwrap().size, 5);
    assert_eq!(
        fs.open_dir(Workspace, "link").unwrap_err().kind,
        ErrorKind::SymlinkRefused
    );
    assert_eq!(
        fs.open_dir(Cache, "moved/f").unwrap_err().kind,
        ErrorKind::NotADirectory
    );
    // Like every handle, it dies with the process.
    fs.recover(CrashMode::ProcessKill);
    assert_eq!(dir.metadata(name("f")).unwrap_err().kind, ErrorKind::Other);
}

#[test]
fn rename_in_open_directories_moves_by_inode_and_respects_cross_device() {
    let fs = MemFs::new();
    fs.write_file(Cache, "s/0", b"new", 0o644).unwrap();
    fs.write_file(Workspace, "out/app", b"old", 0o644).unwrap();
    let from = fs.open_dir(Cache, "s").unwrap();
    let to = fs.open_dir(Workspace, "out").unwrap();
    rename(&fs, Workspace, "out", Workspace, "moved").unwrap();
    fs.rename(&from, name("0"), &to, name("app"), Replace::Allowed)
        .unwrap();
    assert_eq!(fs.read_file(Workspace, "moved/app").unwrap(), b"new");
    assert_eq!(
        fs.rename(&from, name("0"), &to, name("x"), Replace::Allowed)
            .unwrap_err()
            .kind,
        ErrorKind::NotFound
    );
    fs.write_file(Cache, "s/1", b"x", 0o644).unwrap();
    fs.set_cross_device(true);
    assert_eq!(
        fs.rename(&from, name("1"), &to, name("x"), Replace::Allowed)
            .unwrap_err()
            .kind,
        ErrorKind::CrossesDevices
    );
}

#[test]
fn copy_file_is_one_operation_and_not_durable_until_synced() {
    let fs = MemFs::new();
    fs.write_file(Workspace, "src", b"abcdef", 0o644).unwrap();
    let mut from = fs.open_file(Workspace, "src").unwrap();
    let mut to = fs.create_new_file(Cache, "dst").unwrap();
    fs.sync_all();
    let before = fs.op_count();
    assert_eq!(
        fs.copy_file(&mut from, &mut to, HashFunction::Sha256),
        Ok((crate::hash::digest(HashFunction::Sha256, b"abcdef"), 6))
    );
    assert_eq!(fs.op_count(), before + 1);
    assert_eq!(fs.read_file(Cache, "dst").unwrap(), b"abcdef");
    fs.recover(CrashMode::PowerLoss);
    assert_eq!(fs.read_file(Cache, "dst").unwrap(), b"");

    fs.set_copy_file_supported(false);
    let mut from = fs.open_file(Workspace, "src").unwrap();
    let mut to = fs.create_new_file(Cache, "dst2").unwrap();
    assert_eq!(
        fs.copy_file(&mut from, &mut to, HashFunction::Blake3)
            .unwrap_err()
            .kind,
        ErrorKind::Unsupported
    );
    assert_eq!(fs.read_file(Cache, "dst2").unwrap(), b"");
}

#[test]
fn metadata_reports_kind_size_mode_and_time_without_following() {
    let fs = MemFs::new();
    fs.set_now(T1);
    fs.create_dir(Workspace, "d").unwrap();
    let mut writer = create(&fs, Workspace, "d/f", b"12345").unwrap();
    fs.symlink(Workspace, "s", "d/f").unwrap();

    let file = fs.metadata(Workspace, "d/f").unwrap();
    assert_eq!(
        file,
        Metadata {
            kind: FileKind::File,
            size: 5,
            mode: NEW_FILE_MODE,
            modified: T1
        }
    );
    let dir = fs.metadata(Workspace, "d").unwrap();
    assert_eq!(
        (dir.kind, dir.mode, dir.modified),
        (FileKind::Dir, NEW_DIR_MODE, T1)
    );
    let link = fs.metadata(Workspace, "s").unwrap();
    assert_eq!(
        (link.kind, link.size, link.mode),
        (FileKind::Symlink, 3, SYMLINK_MODE)
    );

    // A write moves the file's time to the clock; a new entry moves the
    // directory's.
    fs.set_now(T2);
    writer.write_all(b"678").unwrap();
    let file = fs.metadata(Workspace, "d/f").unwrap();
    assert_eq!((file.size, file.modified), (8, T2));
    assert_eq!(fs.metadata(Workspace, "d").unwrap().modified, T1);
    fs.create_dir(Workspace, "d/sub").unwrap();
    assert_eq!(fs.metadata(Workspace, "d").unwrap().modified, T2);
    assert_eq!(fs.now(), T2);
}

#[test]
fn set_mode_through_a_writer_and_set_modified_on_files_and_dirs_not_symlinks() {
    let fs = MemFs::new();
    fs.create_dir_all(Cache, "d").unwrap();
    let mut writer = create(&fs, Cache, "d/f", b"x").unwrap();
    fs.symlink(Cache, "s", "d/f").unwrap();
    writer.set_mode(0o4755).unwrap();
    assert_eq!(fs.metadata(Cache, "d/f").unwrap().mode, 0o4755);
    assert_eq!(kind(writer.set_mode(0o100_644)), ErrorKind::InvalidInput);
    assert_eq!(fs.metadata(Cache, "d/f").unwrap().mode, 0o4755);
    let when = Timestamp {
        seconds: 77,
        nanos: 5,
    };
    fs.set_modified(Cache, "d/f", when).unwrap();
    assert_eq!(fs.metadata(Cache, "d/f").unwrap().modified, when);
    fs.set_modified(Cache, "d", when).unwrap();
    assert_eq!(fs.metadata(Cache, "d").unwrap().modified, when);
    assert_eq!(
        kind(fs.set_modified(Cache, "s", when)),
        ErrorKind::SymlinkRefused
    );
    let bad = Timestamp {
        seconds: 1,
        nanos: 1_000_000_000,
    };
    assert_eq!(
        kind(fs.set_modified(Cache, "d/f", bad)),
        ErrorKind::InvalidInput
    );
    assert_eq!(fs.metadata(Cache, "d/f").unwrap().modified, when);
}

#[test]
fn pretend_symlink_is_seen_as_a_symlink_by_every_call() {
    let fs = MemFs::new();
    fs.write_file(Cache, "ab/key/manifest.json", b"{}", 0o644)
        .unwrap();
    fs.write_file(Cache, "ab/key/stdout", b"out", 0o644)
        .unwrap();
    fs.pretend_symlink(Cache, "ab/key/stdout").unwrap();
    fs.pretend_symlink(Cache, "ab").unwrap();
    assert_eq!(fs.metadata(Cache, "ab").unwrap().kind, FileKind::Symlink);
    assert_eq!(
        names(&fs, Cache, ""),
        vec![("ab".to_string(), FileKind::Symlink)]
    );
    assert_eq!(
        kind(fs.open_file(Cache, "ab/key/manifest.json")),
        ErrorKind::SymlinkRefused
    );
    assert_eq!(kind(fs.open_file(Cache, "ab")), ErrorKind::SymlinkRefused);
    assert_eq!(kind(fs.open_dir(Cache, "ab")), ErrorKind::SymlinkRefused);
    assert_eq!(kind(fs.remove_dir(Cache, "ab")), ErrorKind::NotADirectory);
    assert_eq!(
        fs.tree(Cache),
        vec![(
            "ab".to_string(),
            FileKind::Symlink,
            Vec::new(),
            NEW_DIR_MODE
        )]
    );
    assert_eq!(
        kind(fs.pretend_symlink(Cache, "nothing")),
        ErrorKind::NotFound
    );

    let fs2 = MemFs::new();
    fs2.write_file(Cache, "f", b"data", 0o600).unwrap();
    fs2.pretend_symlink(Cache, "f").unwrap();
    assert_eq!(kind(fs2.open_file(Cache, "f")), ErrorKind::SymlinkRefused);
    assert_eq!(fs2.metadata(Cache, "f").unwrap().kind, FileKind::Symlink);
    assert_eq!(fs2.read_file(Cache, "f"), None);
    assert!(fs2.exists(Cache, "f"));
    assert_eq!(
        fs2.tree(Cache),
        vec![("f".to_string(), FileKind::Symlink, b"data".to_vec(), 0o600)]
    );
}

#[test]
fn tree_lists_every_entry_sorted_by_path() {
    let fs = MemFs::new();
    fs.write_file(Workspace, "a/b", b"1", 0o600).unwrap();
    fs.write_file(Workspace, "a-c", b"2", 0o644).unwrap();
    fs.symlink(Workspace, "z", "a/b").unwrap();
    fs.create_dir_all(Workspace, "a/d/e").unwrap();
    assert_eq!(
        fs.tree(Workspace),
        vec![
            ("a".to_string(), FileKind::Dir, vec![], NEW_DIR_MODE),
            ("a-c".to_string(), FileKind::File, b"2".to_vec(), 0o644),
            ("a/b".to_string(), FileKind::File, b"1".to_vec(), 0o600),
            ("a/d".to_string(), FileKind::Dir, vec![], NEW_DIR_MODE),
            ("a/d/e".to_string(), FileKind::Dir, vec![], NEW_DIR_MODE),
            (
                "z".to_string(),
                FileKind::Symlink,
                b"a/b".to_vec(),
                SYMLINK_MODE
            ),
        ]
    );
    assert!(fs.tree(Cache).is_empty());
}

#[test]
fn helpers_refuse_conflicting_entries() {
    let fs = MemFs::new();
    fs.write_file(Cache, "f", b"1", 0o644).unwrap();
    fs.create_dir_all(Cache, "d").unwrap();
    fs.symlink(Cache, "s", "f").unwrap();
    assert_eq!(
        kind(fs.write_file(Cache, "d", b"", 0o644)),
        ErrorKind::IsADirectory
    );
    assert_eq!(
        kind(fs.write_file(Cache, "s", b"", 0o644)),
        ErrorKind::AlreadyExists
    );
    assert_eq!(
        kind(fs.write_file(Cache, "f/g", b"", 0o644)),
        ErrorKind::NotADirectory
    );
    assert_eq!(
        kind(fs.create_dir_all(Cache, "f/g")),
        ErrorKind::NotADirectory
    );
    assert_eq!(
        kind(fs.create_dir_all(Cache, "s/g")),
        ErrorKind::SymlinkRefused
    );
    assert_eq!(kind(fs.symlink(Cache, "f", "x")), ErrorKind::AlreadyExists);
    fs.create_dir_all(Cache, "d").unwrap();
    fs.write_file(Cache, "f", b"2", 0o600).unwrap();
    assert_eq!(fs.read_file(Cache, "f").unwrap(), b"2");
    assert_eq!(fs.op_count(), 0, "helpers are not operations");
}

#[test]
fn op_count_counts_every_call_including_reader_and_writer_calls() {
    let fs = MemFs::new();
    assert_eq!(fs.op_count(), 0);
    let mut writer = fs.create_new_file(Cache, "f").unwrap(); // 1
    writer.write_all(b"abc").unwrap(); // 2
    writer.sync().unwrap(); // 3
    let mut reader = fs.open_file(Cache, "f").unwrap(); // 4
    let mut buf = [0u8; 2];
    assert_eq!(reader.read(&mut buf).unwrap(), 2); // 5
    assert_eq!(reader.read(&mut buf).unwrap(), 1); // 6
    assert_eq!(reader.read(&mut buf).unwrap(), 0); // 7
    assert_eq!(kind(fs.metadata(Cache, "missing")), ErrorKind::NotFound); // 8
    fs.read_dir(Cache, "", &mut |_, _| ControlFlow::Continue(()))
        .unwrap(); // 9
    fs.sync_dir(Cache, "").unwrap(); // 10
    assert_eq!(fs.op_count(), 10);
    // A clone shares the counter.
    let clone = fs.clone();
    clone.metadata(Cache, "f").unwrap();
    assert_eq!(fs.op_count(), 11);
}

#[test]
fn fail_at_fails_exactly_the_chosen_operation_once_and_performs_nothing() {
    let fs = MemFs::new();
    fs.fail_at(1, ErrorKind::StorageFull);
    fs.create_dir(Cache, "a").unwrap(); // op 0
    assert_eq!(kind(fs.create_dir(Cache, "b")), ErrorKind::StorageFull); // op 1
    assert!(!fs.exists(Cache, "b"));
    fs.create_dir(Cache, "b").unwrap(); // op 2: the fault fired once

    // Faults reach reader and writer calls too, and a failed write
    // writes nothing.
    let mut writer = fs.create_new_file(Cache, "f").unwrap();
    fs.fail_at(0, ErrorKind::StorageFull);
    assert_eq!(kind(writer.write(b"xyz")), ErrorKind::StorageFull);
    assert_eq!(fs.read_file(Cache, "f").unwrap(), b"");
    writer.write_all(b"xyz").unwrap();
    fs.fail_at(0, ErrorKind::Other);
    assert_eq!(kind(writer.sync()), ErrorKind::Other);
    let mut reader = fs.open_file(Cache, "f").unwrap();
    fs.fail_at(0, ErrorKind::PermissionDenied);
    let mut buf = [0u8; 8];
    assert_eq!(kind(reader.read(&mut buf)), ErrorKind::PermissionDenied);
    assert_eq!(reader.read(&mut buf).unwrap(), 3);

    // Several faults may be pending; each fires at its own op.
    let root = fs.open_dir(Cache, "").unwrap();
    fs.fail_at(0, ErrorKind::PermissionDenied);
    fs.fail_at(2, ErrorKind::ReadOnly);
    let (a, c) = (name("a"), name("c"));
    assert_eq!(
        kind(fs.rename(&root, a, &root, c, Replace::Allowed)),
        ErrorKind::PermissionDenied
    );
    fs.rename(&root, a, &root, c, Replace::Allowed).unwrap();
    assert_eq!(kind(fs.remove_dir(Cache, "c")), ErrorKind::ReadOnly);
    assert!(fs.exists(Cache, "c"));
    fs.remove_dir(Cache, "c").unwrap();
    assert_eq!(paths(&fs, Cache), vec!["b", "f"]);
}

#[test]
fn crash_at_fails_the_chosen_and_every_later_operation_until_recover() {
    let fs = MemFs::new();
    let mut writer = fs.create_new_file(Cache, "f").unwrap();
    fs.crash_at(2);
    writer.write_all(b"a").unwrap(); // op 0
    fs.create_dir(Cache, "d").unwrap(); // op 1
    assert!(!fs.is_crashed());
    assert_eq!(kind(writer.write(b"b")), ErrorKind::Other); // op 2
    assert!(fs.is_crashed());
    assert_eq!(kind(fs.create_dir(Cache, "e")), ErrorKind::Other);
    assert_eq!(kind(fs.metadata(Cache, "d")), ErrorKind::Other);
    assert_eq!(kind(writer.sync()), ErrorKind::Other);
    // Helpers still see the state the process left.
    assert_eq!(fs.read_file(Cache, "f").unwrap(), b"a");
    assert!(!fs.exists(Cache, "e"));
    fs.recover(CrashMode::ProcessKill);
    assert!(!fs.is_crashed());
    fs.create_dir(Cache, "e").unwrap();
    assert_eq!(paths(&fs, Cache), vec!["d", "e", "f"]);
}

#[test]
fn recover_cancels_pending_faults_and_invalidates_open_handles() {
    let fs = MemFs::new();
    fs.write_file(Cache, "f", b"data", 0o644).unwrap();
    let mut reader = fs.open_file(Cache, "f").unwrap();
    let mut writer = fs.create_new_file(Cache, "g").unwrap();
    fs.fail_at(3, ErrorKind::ReadOnly);
    fs.recover(CrashMode::ProcessKill);
    let mut buf = [0u8; 4];
    assert_eq!(kind(reader.read(&mut buf)), ErrorKind::Other);
    assert_eq!(kind(writer.write(b"x")), ErrorKind::Other);
    assert_eq!(kind(writer.sync()), ErrorKind::Other);
    // The fault that would have hit this call was cancelled.
    fs.create_dir(Cache, "d").unwrap();
    assert_eq!(read_all(&fs, Cache, "f").unwrap(), b"data");
    assert_eq!(fs.read_file(Cache, "g").unwrap(), b"");
}

#[test]
fn a_reader_reports_the_metadata_of_the_file_it_opened_as_one_operation() {
    let fs = MemFs::new();
    fs.write_file(Cache, "f", b"12345", 0o751).unwrap();
    let reader = fs.open_file(Cache, "f").unwrap();
    let count = fs.op_count();
    assert_eq!(reader.metadata(), fs.metadata(Cache, "f"));
    assert_eq!(fs.op_count(), count + 2);
    // Whatever the path names by now.
    rename(&fs, Cache, "f", Cache, "g").unwrap();
    fs.write_file(Cache, "f", b"other", 0o600).unwrap();
    assert_eq!(reader.metadata().unwrap().mode, 0o751);
    fs.fail_at(0, ErrorKind::PermissionDenied);
    assert_eq!(kind(reader.metadata()), ErrorKind::PermissionDenied);
}

#[test]
fn a_reader_keeps_reading_a_file_renamed_or_removed_after_open() {
    let fs = MemFs::new();
    fs.write_file(Cache, "f", b"still here", 0o644).unwrap();
    let mut reader = fs.open_file(Cache, "f").unwrap();
    rename(&fs, Cache, "f", Cache, "g").unwrap();
    fs.remove_file(Cache, "g").unwrap();
    let mut buf = [0u8; 32];
    assert_eq!(reader.read(&mut buf).unwrap(), 10);
    assert_eq!(&buf[..10], b"still here");
}

#[test]
fn process_kill_keeps_everything_done_synced_or_not() {
    let fs = MemFs::new();
    fs.create_dir(Cache, "d").unwrap();
    create(&fs, Cache, "d/f", b"unsynced").unwrap();
    rename(&fs, Cache, "d", Cache, "e").unwrap();
    let before = fs.tree(Cache);
    fs.crash_at(0);
    assert_eq!(kind(fs.remove_file(Cache, "e/f")), ErrorKind::Other);
    fs.recover(CrashMode::ProcessKill);
    assert_eq!(fs.tree(Cache), before);
    assert_eq!(fs.read_file(Cache, "e/f").unwrap(), b"unsynced");
}

#[test]
fn power_loss_loses_unsynced_entries_and_unsynced_data() {
    let fs = MemFs::new();
    fs.write_file(Workspace, "kept", b"setup", 0o644).unwrap();
    fs.create_dir(Cache, "d").unwrap();
    fs.sync_dir(Cache, "").unwrap();
    // A new file whose directory entry was never synced disappears,
    // even though its data was synced.
    create(&fs, Cache, "lost", b"x").unwrap().sync().unwrap();
    // A file whose entry was synced but data was not comes back empty.
    create(&fs, Cache, "d/empty", b"never synced").unwrap();
    // A file synced, then appended to, comes back as synced.
    let mut writer = create(&fs, Cache, "d/partial", b"first").unwrap();
    writer.sync().unwrap();
    writer.write_all(b" second").unwrap();
    writer.set_mode(0o600).unwrap();
    // A directory whose entries and parent were synced survives whole; a
    // directory created after the parent's sync does not.
    fs.create_dir(Cache, "d/sub").unwrap();
    create(&fs, Cache, "d/sub/g", b"g").unwrap().sync().unwrap();
    fs.sync_dir(Cache, "d/sub").unwrap();
    fs.sync_dir(Cache, "d").unwrap();
    fs.create_dir(Cache, "d/late").unwrap();

    fs.crash_at(0);
    fs.recover(CrashMode::PowerLoss);
    assert_eq!(
        fs.tree(Cache),
        vec![
            ("d".to_string(), FileKind::Dir, vec![], NEW_DIR_MODE),
            ("d/empty".to_string(), FileKind::File, vec![], NEW_FILE_MODE),
            (
                "d/partial".to_string(),
                FileKind::File,
                b"first".to_vec(),
                NEW_FILE_MODE
            ),
            ("d/sub".to_string(), FileKind::Dir, vec![], NEW_DIR_MODE),
            (
                "d/sub/g".to_string(),
                FileKind::File,
                b"g".to_vec(),
                NEW_FILE_MODE
            ),
        ]
    );
    assert_eq!(fs.read_file(Workspace, "kept").unwrap(), b"setup");
    // Everything is durable after recovery: a second power loss changes
    // nothing.
    let after = fs.tree(Cache);
    fs.recover(CrashMode::PowerLoss);
    assert_eq!(fs.tree(Cache), after);
}

#[test]
fn power_loss_without_a_dir_sync_keeps_a_new_directory_out() {
    let fs = MemFs::new();
    fs.create_dir(Cache, "ab").unwrap();
    fs.create_dir(Cache, "ab/.tmp-x").unwrap();
    create(&fs, Cache, "ab/.tmp-x/manifest.json", b"{}")
        .unwrap()
        .sync()
        .unwrap();
    fs.sync_dir(Cache, "ab/.tmp-x").unwrap();
    fs.recover(CrashMode::PowerLoss);
    assert!(fs.tree(Cache).is_empty());
}

#[test]
fn power_loss_after_the_full_publish_protocol_keeps_the_entry() {
    let publish_until_rename = || {
        let fs = MemFs::new();
        fs.create_dir_all(Cache, "ab").unwrap();
        fs.create_dir(Cache, "ab/.tmp-k").unwrap();
        create(&fs, Cache, "ab/.tmp-k/stdout", b"out")
            .unwrap()
            .sync()
            .unwrap();
        create(&fs, Cache, "ab/.tmp-k/manifest.json", b"{}")
            .unwrap()
            .sync()
            .unwrap();
        fs.sync_dir(Cache, "ab/.tmp-k").unwrap();
        rename(&fs, Cache, "ab/.tmp-k", Cache, "ab/k").unwrap();
        fs
    };
    // Before the shard is synced neither the scratch dir's creation nor
    // the rename is durable: the shard comes back empty.
    let fs = publish_until_rename();
    fs.recover(CrashMode::PowerLoss);
    assert_eq!(paths(&fs, Cache), vec!["ab"]);
    // Had the shard been synced after creating the scratch dir, the
    // complete scratch dir would come back instead.
    let fs = publish_until_rename();
    rename(&fs, Cache, "ab/k", Cache, "ab/.tmp-k").unwrap();
    fs.sync_dir(Cache, "ab").unwrap();
    rename(&fs, Cache, "ab/.tmp-k", Cache, "ab/k").unwrap();
    fs.recover(CrashMode::PowerLoss);
    assert_eq!(
        paths(&fs, Cache),
        vec![
            "ab",
            "ab/.tmp-k",
            "ab/.tmp-k/manifest.json",
            "ab/.tmp-k/stdout"
        ]
    );
    assert_eq!(fs.read_file(Cache, "ab/.tmp-k/stdout").unwrap(), b"out");
    // After the shard sync the entry is durable.
    let fs = publish_until_rename();
    fs.sync_dir(Cache, "ab").unwrap();
    fs.recover(CrashMode::PowerLoss);
    assert_eq!(
        paths(&fs, Cache),
        vec!["ab", "ab/k", "ab/k/manifest.json", "ab/k/stdout"]
    );
    assert_eq!(fs.read_file(Cache, "ab/k/stdout").unwrap(), b"out");
}

#[test]
fn power_loss_undoes_an_unsynced_rename_and_removal() {
    let fs = MemFs::new();
    fs.write_file(Cache, "ab/.tmp-k/manifest.json", b"{}", 0o644)
        .unwrap();
    fs.write_file(Cache, "old", b"old", 0o644).unwrap();
    fs.write_file(Cache, "replaced", b"before", 0o644).unwrap();
    let before = fs.tree(Cache);
    rename(&fs, Cache, "ab/.tmp-k", Cache, "ab/k").unwrap();
    fs.remove_file(Cache, "old").unwrap();
    create(&fs, Cache, "new", b"after").unwrap().sync().unwrap();
    rename(&fs, Cache, "new", Cache, "replaced").unwrap();
    assert_eq!(fs.read_file(Cache, "replaced").unwrap(), b"after");
    fs.recover(CrashMode::PowerLoss);
    assert_eq!(fs.tree(Cache), before);
}

#[test]
fn power_loss_keeps_a_tree_when_a_moved_directory_is_durable_in_two_places() {
    // Cycle: b is durable inside a, a durable inside b.
    let fs = MemFs::new();
    fs.create_dir_all(Cache, "a/b").unwrap();
    rename(&fs, Cache, "a/b", Cache, "b").unwrap();
    rename(&fs, Cache, "a", Cache, "b/a").unwrap();
    fs.sync_dir(Cache, "b").unwrap();
    assert_eq!(paths(&fs, Cache), vec!["b", "b/a"]);
    fs.recover(CrashMode::PowerLoss);
    assert_eq!(paths(&fs, Cache), vec!["a", "a/b"]);
    fs.create_dir(Cache, "a/b/c").unwrap();
    fs.remove_dir(Cache, "a/b/c").unwrap();

    // A directory moved between two directories and synced only in the
    // target stays where it is met first; a file keeps both names.
    let fs = MemFs::new();
    fs.write_file(Cache, "x/d/inner", b"i", 0o644).unwrap();
    fs.write_file(Cache, "x/f", b"f", 0o644).unwrap();
    fs.create_dir_all(Cache, "y").unwrap();
    rename(&fs, Cache, "x/d", Cache, "y/d").unwrap();
    rename(&fs, Cache, "x/f", Cache, "y/f").unwrap();
    fs.sync_dir(Cache, "y").unwrap();
    fs.recover(CrashMode::PowerLoss);
    assert_eq!(
        paths(&fs, Cache),
        vec!["x", "x/d", "x/d/inner", "x/f", "y", "y/f"]
    );
    assert_eq!(fs.read_file(Cache, "y/f").unwrap(), b"f");
    fs.remove_file(Cache, "y/f").unwrap();
    assert_eq!(fs.read_file(Cache, "x/f").unwrap(), b"f");
}

#[test]
fn power_loss_spans_both_roots() {
    let fs = MemFs::new();
    fs.write_file(Cache, "blob", b"b", 0o644).unwrap();
    fs.create_dir_all(Workspace, "out").unwrap();
    rename(&fs, Cache, "blob", Workspace, "out/file").unwrap();
    fs.sync_dir(Workspace, "out").unwrap();
    fs.recover(CrashMode::PowerLoss);
    // Synced on the workspace side only: both names survive.
    assert_eq!(fs.read_file(Workspace, "out/file").unwrap(), b"b");
    assert_eq!(fs.read_file(Cache, "blob").unwrap(), b"b");
}

#[test]
fn sync_all_makes_the_current_state_durable() {
    let fs = MemFs::new();
    fs.create_dir(Cache, "d").unwrap();
    create(&fs, Cache, "d/f", b"x").unwrap();
    fs.sync_all();
    let before = fs.tree(Cache);
    fs.recover(CrashMode::PowerLoss);
    assert_eq!(fs.tree(Cache), before);
    assert_eq!(fs.read_file(Cache, "d/f").unwrap(), b"x");
}

#[test]
fn sync_filesystem_is_an_operation_and_makes_everything_durable() {
    let fs = MemFs::new();
    fs.create_dir(Cache, "d").unwrap();
    create(&fs, Cache, "d/f", b"x").unwrap();
    create(&fs, Workspace, "w", b"y").unwrap();
    assert!(fs.supports_sync_filesystem());
    let before = fs.op_count();
    fs.sync_filesystem(Cache).unwrap();
    assert_eq!(fs.op_count(), before + 1);
    let (cache, workspace) = (fs.tree(Cache), fs.tree(Workspace));
    fs.recover(CrashMode::PowerLoss);
    assert_eq!(fs.tree(Cache), cache);
    assert_eq!(fs.tree(Workspace), workspace);

    fs.set_sync_filesystem_supported(false);
    assert!(!fs.supports_sync_filesystem());
    assert_eq!(
        fs.sync_filesystem(Cache).map_err(|e| e.kind),
        Err(ErrorKind::Unsupported)
    );
}

#[test]
fn helpers_create_durable_state() {
    let fs = MemFs::new();
    fs.write_file(Workspace, "src/a/b.rs", b"fn main() {}", 0o755)
        .unwrap();
    fs.create_dir_all(Cache, "ab/cd").unwrap();
    fs.symlink(Workspace, "src/link", "a").unwrap();
    let workspace = fs.tree(Workspace);
    let cache = fs.tree(Cache);
    fs.recover(CrashMode::PowerLoss);
    assert_eq!(fs.tree(Workspace), workspace);
    assert_eq!(fs.tree(Cache), cache);
    assert_eq!(fs.metadata(Workspace, "src/a/b.rs").unwrap().mode, 0o755);
}
