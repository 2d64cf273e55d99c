//! Hashing the content of files (KEY-2, KEY-5): input files for a key,
//! and the file-hash memo's metadata of each (MEMO-3).
//!
//! Which files are inputs is decided by [`cachet_cli::select`], once for
//! every host; this module only reads bytes. A BLAKE3 hash of a file of
//! [`LARGE_FILE_BYTES`] or more memory-maps it and hashes it on several
//! threads; smaller files, and every SHA-256 hash, are read through a fixed
//! buffer. A file that changes while it is hashed gives an unspecified
//! digest (and, when mapped and truncated meanwhile, can end the process
//! with `SIGBUS`); the memo never records such a file (MEMO-3).

use std::fs::File;
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use cachet_core::hash::{Digest, HashFunction, Hasher};
use rustix::fs::OFlags;
use rustix::io::Errno;

/// Files at least this large are hashed with BLAKE3 over a memory map on
/// several threads; below it, threads and mapping cost more than they save.
pub const LARGE_FILE_BYTES: u64 = 128 * 1024;

/// The read buffer for files hashed by streaming.
const READ_BUFFER_BYTES: usize = 64 * 1024;

/// The content hash of one file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ContentHash {
    /// The digest under the requested hash function.
    pub digest: Digest,
    /// How many bytes were hashed.
    pub size: u64,
}

/// Why a file could not be hashed.
#[derive(Debug)]
#[non_exhaustive]
pub enum InputError {
    /// A file to hash is not a regular file (any more).
    NotARegularFile {
        /// The file's path.
        path: PathBuf,
    },
    /// A file could not be inspected, opened or read.
    Read {
        /// The file's path.
        path: PathBuf,
        /// What the operating system reported.
        source: io::Error,
    },
}

impl core::fmt::Display for InputError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            InputError::NotARegularFile { path } => write!(
                f,
                "{} is not a regular file (it may have been replaced while hashing); rerun once the workspace is quiet",
                path.display()
            ),
            InputError::Read { path, source } => write!(
                f,
                "cannot read {}: {source}; check that it exists and is readable",
                path.display()
            ),
        }
    }
}

impl core::error::Error for InputError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            InputError::Read { source, .. } => Some(source),
            InputError::NotARegularFile { .. } => None,
        }
    }
}

/// Hashes the content of the regular file at `path` (a symlink in the last
/// component is refused), for inputs, outputs or captured streams alike.
pub fn hash_file(path: &Path, function: HashFunction) -> Result<ContentHash, InputError> {
    hash_file_with_metadata(path, function).map(|(content, _)| content)
}

/// [`hash_file`], with the metadata of the file it opened, taken from the
/// open file before reading it (what the file-hash memo records, MEMO-3).
pub fn hash_file_with_metadata(
    path: &Path,
    function: HashFunction,
) -> Result<(ContentHash, std::fs::Metadata), InputError> {
    let read_error = |source| InputError::Read {
        path: path.to_path_buf(),
        source,
    };
    let flags = OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY;
    // open(2) takes the flags as an int; these bits all fit.
    let flags = i32::try_from(flags.bits()).unwrap_or(0);
    let mut file = match File::options().read(true).custom_flags(flags).open(path) {
        Ok(file) => file,
        Err(error) if Errno::from_io_error(&error) == Some(Errno::LOOP) => {
            return Err(InputError::NotARegularFile {
                path: path.to_path_buf(),
            });
        }
        Err(error) => return Err(read_error(error)),
    };
    let metadata = file.metadata().map_err(read_error)?;
    if !metadata.is_file() {
        return Err(InputError::NotARegularFile {
            path: path.to_path_buf(),
        });
    }
    if function == HashFunction::Blake3 && metadata.len() >= LARGE_FILE_BYTES {
        let mut hasher = blake3::Hasher::new();
        hasher.update_mmap_rayon(path).map_err(read_error)?;
        let content = ContentHash {
            digest: Digest(*hasher.finalize().as_bytes()),
            size: hasher.count(),
        };
        return Ok((content, metadata));
    }
    let mut hasher = Hasher::new(function);
    let size = stream_into(&mut file, &mut hasher).map_err(read_error)?;
    let content = ContentHash {
        digest: hasher.finalize(),
        size,
    };
    Ok((content, metadata))
}

/// Hashes everything `reader` yields, for streams that are not files.
pub fn hash_reader(reader: &mut dyn io::Read, function: HashFunction) -> io::Result<ContentHash> {
    let mut hasher = Hasher::new(function);
    let size = stream_into(reader, &mut hasher)?;
    Ok(ContentHash {
        digest: hasher.finalize(),
        size,
    })
}

fn stream_into(reader: &mut dyn io::Read, hasher: &mut Hasher) -> io::Result<u64> {
    let mut buffer = vec![0u8; READ_BUFFER_BYTES];
    let mut size = 0u64;
    loop {
        let n = match reader.read(&mut buffer) {
            Ok(0) => return Ok(size),
            Ok(n) => n,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        };
        let chunk = buffer.get(..n).unwrap_or_default();
        hasher.update(chunk);
        size = size.saturating_add(u64::try_from(n).unwrap_or(u64::MAX));
    }
}
