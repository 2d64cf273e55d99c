//! The file-hash memo on a real filesystem: where it is read from and
//! written to, and the `stat` fields it is keyed by (spec MEMO-1..6).
//!
//! Every decision (which fields must match, which files are racy, what a
//! damaged memo means) is [`cachet_core::memo`]'s; this module only moves
//! the memo's bytes and reads the clock and `stat` data it needs.
//!
//! Several processes may share one memo: each reads it whole, and one that
//! learnt something writes a new file beside it and renames it over the
//! old one, so a reader sees one whole memo or another, never a mix. When
//! two write at once, the last rename wins and the other's new records are
//! lost, which costs a re-hash later and never a wrong key. Nothing is
//! synced: a memo torn by a crash fails its checksum and is ignored
//! (MEMO-5).

use std::io::{self, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use cachet_core::fs::Timestamp;
use cachet_core::layout;
use cachet_core::memo::{FileStat, MAX_FILE_BYTES, Memo, SCRATCH_PREFIX};

/// The memo file of one cache directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemoFile {
    path: PathBuf,
}

pub use cachet_cli::NO_MEMO_VARIABLE;

impl MemoFile {
    /// The memo of the cache directory `cache_dir` (MEMO-1).
    pub fn in_cache_dir(cache_dir: &Path) -> MemoFile {
        MemoFile {
            path: cache_dir.join(layout::MEMO_FILE),
        }
    }

    /// The memo file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the memo; a missing, unreadable, oversized or damaged file is
    /// an empty memo (MEMO-5).
    pub fn load(&self) -> Memo {
        let Ok(file) = std::fs::File::open(&self.path) else {
            return Memo::new();
        };
        let cap = u64::try_from(MAX_FILE_BYTES).unwrap_or(u64::MAX);
        let mut bytes = Vec::new();
        // One byte past the cap tells an oversized file from one at the cap.
        if file.take(cap + 1).read_to_end(&mut bytes).is_err() {
            return Memo::new();
        }
        Memo::decode(&bytes).unwrap_or_default()
    }

    /// Writes `memo` in place of the memo file: into a new file beside it,
    /// then renamed over it (see the module docs).
    pub fn save(&self, memo: &Memo, now: Timestamp) -> io::Result<()> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        match std::fs::create_dir(dir) {
            Err(error) if error.kind() != io::ErrorKind::AlreadyExists => return Err(error),
            _ => {}
        }
        let mut scratch = tempfile::Builder::new()
            .prefix(SCRATCH_PREFIX)
            .tempfile_in(dir)?;
        scratch.write_all(&memo.encode(now))?;
        scratch.persist(&self.path).map_err(|error| error.error)?;
        remove_abandoned_scratch(dir);
        Ok(())
    }
}

const ABANDONED_AFTER: core::time::Duration =
    core::time::Duration::from_secs(cachet_core::memo::ABANDONED_SCRATCH_SECS);

/// Removes the scratch files of writers that died before their rename
/// (MEMO-6); best effort, as the memo itself is.
fn remove_abandoned_scratch(dir: &Path) {
    let Ok(listing) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in listing.flatten() {
        let abandoned = entry
            .file_name()
            .to_string_lossy()
            .starts_with(SCRATCH_PREFIX)
            && entry
                .metadata()
                .and_then(|metadata| metadata.modified())
                .ok()
                .and_then(|modified| modified.elapsed().ok())
                .is_some_and(|age| age > ABANDONED_AFTER);
        if abandoned {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// The wall clock, as the memo's racy rule reads it (MEMO-4).
pub fn now() -> Timestamp {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp {
        seconds: since.as_secs(),
        nanos: since.subsec_nanos(),
    }
}

/// The directories that hold a list of workspace files, each opened once,
/// so that the files can be looked at by name inside an open directory
/// (one `fstatat` that resolves one name) instead of by a path resolved
/// from the root every time: with 20,000 inputs, walking the path was
/// most of what a `stat` cost.
#[derive(Debug)]
pub struct Parents {
    /// Each distinct parent directory, or `None` where it could not be
    /// opened (its files are then looked at by path).
    dirs: Vec<Option<rustix::fd::OwnedFd>>,
    /// For each file, its parent's index in `dirs` and the offset of its
    /// name in its path.
    of_file: Vec<(usize, usize)>,
}

impl Parents {
    /// Opens the parents of `paths` (workspace paths starting with `/`,
    /// in any order; sorted ones share each open) below `workspace`.
    pub fn open(workspace: &Path, paths: &[String]) -> Parents {
        let mut dirs = Vec::new();
        let mut of_file = Vec::with_capacity(paths.len());
        let mut last: Option<&str> = None;
        for path in paths {
            let (parent, name_at) = match path.rfind('/') {
                Some(at) => (&path[..at], at + 1),
                None => ("", 0),
            };
            if last != Some(parent) {
                let dir = workspace.join(parent.trim_start_matches('/'));
                let flags = rustix::fs::OFlags::PATH
                    | rustix::fs::OFlags::DIRECTORY
                    | rustix::fs::OFlags::CLOEXEC;
                dirs.push(rustix::fs::open(&dir, flags, rustix::fs::Mode::empty()).ok());
                last = Some(parent);
            }
            of_file.push((dirs.len() - 1, name_at));
        }
        Parents { dirs, of_file }
    }

    /// The memo's view of the file `path`, the `index`th of the list the
    /// parents were opened for, not following a symlink in its last
    /// component: as [`file_stat`] of its `symlink_metadata`.
    pub fn stat(&self, index: usize, path: &str) -> Option<FileStat> {
        let (dir, name_at) = *self.of_file.get(index)?;
        let dir = self.dirs.get(dir)?.as_ref()?;
        // statx, as std's metadata is read, so that both give one device
        // number (makedev of its major and minor).
        let stat = rustix::fs::statx(
            dir,
            &path[name_at..],
            rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
            rustix::fs::StatxFlags::BASIC_STATS,
        )
        .ok()?;
        let mode = u32::from(stat.stx_mode);
        if rustix::fs::FileType::from_raw_mode(mode) != rustix::fs::FileType::RegularFile {
            return None;
        }
        let time = |at: rustix::fs::StatxTimestamp| -> Option<Timestamp> {
            Some(Timestamp {
                seconds: u64::try_from(at.tv_sec).ok()?,
                nanos: at.tv_nsec,
            })
        };
        Some(FileStat {
            device: rustix::fs::makedev(stat.stx_dev_major, stat.stx_dev_minor),
            inode: stat.stx_ino,
            size: stat.stx_size,
            modified: time(stat.stx_mtime)?,
            changed: time(stat.stx_ctime)?,
        })
    }
}

/// The memo's view of a regular file's metadata; `None` for anything else,
/// or for timestamps before 1970, which the memo does not record.
pub fn file_stat(metadata: &std::fs::Metadata) -> Option<FileStat> {
    if !metadata.file_type().is_file() {
        return None;
    }
    let time = |seconds: i64, nanos: i64| -> Option<Timestamp> {
        Some(Timestamp {
            seconds: u64::try_from(seconds).ok()?,
            nanos: u32::try_from(nanos).ok()?,
        })
    };
    Some(FileStat {
        device: metadata.dev(),
        inode: metadata.ino(),
        size: metadata.size(),
        modified: time(metadata.mtime(), metadata.mtime_nsec())?,
        changed: time(metadata.ctime(), metadata.ctime_nsec())?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memo_3_a_stat_inside_an_open_parent_is_the_stat_by_path() {
        let dir = tempfile::tempdir().unwrap();
        let ws = dir.path();
        std::fs::create_dir_all(ws.join("a/b")).unwrap();
        std::fs::write(ws.join("top"), b"top").unwrap();
        std::fs::write(ws.join("a/b/deep"), b"deep").unwrap();
        std::fs::write(ws.join("a/one"), b"one").unwrap();
        std::os::unix::fs::symlink("one", ws.join("a/link")).unwrap();
        let paths: Vec<String> = [
            "/a/b/deep",
            "/a/b/gone",
            "/a/link",
            "/a/one",
            "/a/b",
            "/top",
        ]
        .iter()
        .map(|path| String::from(*path))
        .collect();
        let parents = Parents::open(ws, &paths);
        for (index, path) in paths.iter().enumerate() {
            let by_path = std::fs::symlink_metadata(ws.join(&path[1..]))
                .ok()
                .and_then(|metadata| file_stat(&metadata));
            assert_eq!(parents.stat(index, path), by_path, "{path}");
        }
        assert!(parents.stat(0, "/a/b/deep").is_some());
        assert_eq!(
            parents.stat(2, "/a/link"),
            None,
            "a symlink is not followed"
        );
        assert_eq!(parents.stat(99, "/top"), None, "not in the list");
        // A parent that cannot be opened: no stat, the file is hashed.
        let missing = Parents::open(ws, &[String::from("/nowhere/file")]);
        assert_eq!(missing.stat(0, "/nowhere/file"), None);
    }
}
