//! Content hashing of files (KEY-2, KEY-5): every path of `hash_file`
//! gives the core's digests.

use crate::mkfifo;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;

use cachet::inputs::{
    InputError, LARGE_FILE_BYTES, hash_file, hash_file_with_metadata, hash_reader,
};
use cachet_core::hash::{HashFunction, digest};

fn write(root: &Path, relative: &str, bytes: &[u8]) {
    let path = root.join(relative);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, bytes).unwrap();
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
    for function in HashFunction::ALL {
        for (name, bytes) in &contents {
            let path = ws.join(name);
            let (hashed, metadata) = hash_file_with_metadata(&path, function).unwrap();
            assert_eq!(hashed.digest, digest(function, bytes), "{function} {name}");
            assert_eq!(hashed.size, bytes.len() as u64);
            assert_eq!(metadata.len(), bytes.len() as u64);
            assert_eq!(hash_file(&path, function).unwrap(), hashed);
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
    let error = hash_file(&ws.join("gone"), HashFunction::Sha256).unwrap_err();
    assert!(matches!(&error, InputError::Read { .. }), "{error:?}");
    assert!(error.to_string().contains("gone"), "{error}");
}
