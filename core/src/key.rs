//! Key derivation (SPEC KEY-1..8).
//!
//! A key is the digest of a canonical byte string built from everything that
//! can influence a task's result: its action, its input files, the streams of
//! the tasks it consumes and its environment. The canonical string is never
//! materialised; it streams straight into the [`Hasher`], so derivation needs
//! no allocator. Callers may pass components in any order (KEY-8): the slices
//! are sorted in place, which is why they are borrowed mutably.

use crate::hash::{Digest, HashFunction, Hasher};
use crate::hex::{HexDigest, HexError};

/// The chapter revision this implementation writes and accepts (KEY-3).
pub const CHAPTER_REVISION: u8 = 0;

/// A cache key: 32 bytes, rendered as 64 lowercase hex characters (KEY-1).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key(pub Digest);

impl Key {
    /// The key as 64 lowercase hex characters.
    pub fn to_hex(&self) -> HexDigest {
        self.0.to_hex()
    }

    /// Parses 64 hex digits of either case.
    pub fn from_hex(text: &str) -> Result<Key, HexError> {
        Digest::from_hex(text).map(Key)
    }

    /// The key's digest.
    pub const fn digest(&self) -> &Digest {
        &self.0
    }
}

impl core::fmt::Debug for Key {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Key({})", self.to_hex().as_str())
    }
}

impl core::fmt::Display for Key {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.to_hex().as_str())
    }
}

/// What the task runs (KEY-4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action<'a> {
    /// An argv vector, run directly; at least one element.
    Command(&'a [&'a str]),
    /// A script run by a named shell.
    Shell {
        /// `sh`, `bash`, or another name of `[A-Za-z0-9_-]`.
        shell: &'a str,
        /// The script text.
        script: &'a str,
    },
}

/// One input file and the hash of its bytes (KEY-5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InputFile<'a> {
    /// Workspace-absolute path, e.g. `/src/main.rs`.
    pub path: &'a str,
    /// Content hash under the key's hash function.
    pub content_hash: Digest,
}

/// A task whose streams this one consumes (KEY-6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Predecessor<'a> {
    /// The predecessor's project.
    pub project: &'a str,
    /// The predecessor's task name.
    pub task: &'a str,
    /// Hash of its recorded stdout.
    pub stdout_hash: Digest,
    /// Hash of its recorded stderr.
    pub stderr_hash: Digest,
}

/// A host environment variable the task lets through (KEY-7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostVariable<'a> {
    /// The variable's name.
    pub name: &'a str,
    /// Its value on the host, or `None` where it is unset (which is distinct
    /// from an empty value).
    pub value: Option<&'a str>,
}

/// An environment variable the task sets itself (KEY-7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Override<'a> {
    /// The variable's name.
    pub name: &'a str,
    /// The value the task sets.
    pub value: &'a str,
}

/// Everything a key is derived from. Slices are sorted in place.
#[derive(Debug)]
pub struct KeyComponents<'c, 'a> {
    /// The active hash function (KEY-2).
    pub hash_function: HashFunction,
    /// The action (KEY-4).
    pub action: Action<'a>,
    /// Input files, in any order (KEY-5).
    pub input_files: &'c mut [InputFile<'a>],
    /// Predecessors, in any order (KEY-6).
    pub predecessors: &'c mut [Predecessor<'a>],
    /// Host variables let through, in any order (KEY-7).
    pub from_host: &'c mut [HostVariable<'a>],
    /// Variables the task sets, in any order (KEY-7).
    pub overrides: &'c mut [Override<'a>],
}

/// Why a key could not be derived: always a caller error (KEY-8).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyError {
    /// A command action with no argv element.
    EmptyCommand,
    /// A shell name outside `[A-Za-z0-9_-]+`.
    InvalidShellName,
    /// The same input path given twice.
    DuplicateInputFile,
    /// The same (project, task) predecessor given twice.
    DuplicatePredecessor,
    /// The same host variable name given twice.
    DuplicateHostVariable,
    /// The same override name given twice.
    DuplicateOverride,
    /// A length or count that does not fit the 32-bit encoding.
    TooLarge,
}

impl core::fmt::Display for KeyError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            KeyError::EmptyCommand => {
                "the command has no arguments; argv needs at least one element"
            }
            KeyError::InvalidShellName => {
                "the shell name must be non-empty and use only A-Z, a-z, 0-9, '_' and '-'"
            }
            KeyError::DuplicateInputFile => "the same input file path was given twice",
            KeyError::DuplicatePredecessor => {
                "the same predecessor (project, task) was given twice"
            }
            KeyError::DuplicateHostVariable => "the same host variable name was given twice",
            KeyError::DuplicateOverride => "the same override variable name was given twice",
            KeyError::TooLarge => "a component is longer than 2^32-1 bytes or items",
        })
    }
}

#[cfg(feature = "std")]
impl core::error::Error for KeyError {}

/// Whether `name` may name a shell (KEY-4).
pub fn is_valid_shell_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Size of the stack buffer in front of the hasher.
const CANONICAL_BUFFER: usize = 16 * 1024;

/// Streams the canonical encoding primitives into a hasher. The pieces are
/// small (one byte, four bytes, a path), and a hasher call per piece costs
/// several times the hashing itself, so they gather in a stack buffer and
/// reach the hasher in large chunks; no allocator is needed.
struct Canonical {
    hasher: Hasher,
    buffer: [u8; CANONICAL_BUFFER],
    len: usize,
}

impl Canonical {
    fn new(function: HashFunction) -> Canonical {
        Canonical {
            hasher: Hasher::new(function),
            buffer: [0; CANONICAL_BUFFER],
            len: 0,
        }
    }

    /// Appends `bytes`, handing the hasher only whole buffers: BLAKE3
    /// hashes 16 chunks of 1 KiB side by side, but only when an update
    /// starts on a chunk boundary it shares with the input so far, so a
    /// buffer flushed half full would cost it that parallelism on every
    /// later update.
    fn write(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if self.len == 0 && bytes.len() >= CANONICAL_BUFFER {
                // Whole buffers' worth straight from the piece.
                let whole = bytes.len() - bytes.len() % CANONICAL_BUFFER;
                let (direct, rest) = bytes.split_at(whole);
                self.hasher.update(direct);
                bytes = rest;
                continue;
            }
            let room = CANONICAL_BUFFER - self.len;
            let (now, rest) = bytes.split_at(room.min(bytes.len()));
            if let Some(slot) = self.buffer.get_mut(self.len..self.len + now.len()) {
                slot.copy_from_slice(now);
            }
            self.len += now.len();
            bytes = rest;
            if self.len == CANONICAL_BUFFER {
                self.flush();
            }
        }
    }

    fn flush(&mut self) {
        self.hasher
            .update(self.buffer.get(..self.len).unwrap_or_default());
        self.len = 0;
    }

    fn finalize(mut self) -> Digest {
        self.flush();
        self.hasher.finalize()
    }

    fn byte(&mut self, byte: u8) {
        self.write(&[byte]);
    }

    fn count(&mut self, n: usize) -> Result<(), KeyError> {
        let n = u32::try_from(n).map_err(|_| KeyError::TooLarge)?;
        self.write(&n.to_be_bytes());
        Ok(())
    }

    fn lp(&mut self, bytes: &[u8]) -> Result<(), KeyError> {
        self.count(bytes.len())?;
        self.write(bytes);
        Ok(())
    }

    fn digest(&mut self, digest: &Digest) {
        self.write(&digest.0);
    }
}

fn reject_adjacent_duplicates<T>(
    sorted: &[T],
    same: impl Fn(&T, &T) -> bool,
    error: KeyError,
) -> Result<(), KeyError> {
    match sorted.windows(2).any(|pair| same(&pair[0], &pair[1])) {
        true => Err(error),
        false => Ok(()),
    }
}

/// Derives the key for `components` (KEY-1..8).
///
/// Sorts the component slices in place; duplicates are an error, never
/// merged (KEY-8).
pub fn derive_key(components: &mut KeyComponents<'_, '_>) -> Result<Key, KeyError> {
    let KeyComponents {
        hash_function,
        action,
        input_files,
        predecessors,
        from_host,
        overrides,
    } = components;

    input_files.sort_unstable_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
    reject_adjacent_duplicates(
        input_files,
        |a, b| a.path == b.path,
        KeyError::DuplicateInputFile,
    )?;
    predecessors.sort_unstable_by(|a, b| {
        (a.project.as_bytes(), a.task.as_bytes()).cmp(&(b.project.as_bytes(), b.task.as_bytes()))
    });
    reject_adjacent_duplicates(
        predecessors,
        |a, b| a.project == b.project && a.task == b.task,
        KeyError::DuplicatePredecessor,
    )?;
    from_host.sort_unstable_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
    reject_adjacent_duplicates(
        from_host,
        |a, b| a.name == b.name,
        KeyError::DuplicateHostVariable,
    )?;
    overrides.sort_unstable_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
    reject_adjacent_duplicates(
        overrides,
        |a, b| a.name == b.name,
        KeyError::DuplicateOverride,
    )?;

    let mut out = Canonical::new(*hash_function);
    // KEY-3: two separate bytes, never combined.
    out.byte(CHAPTER_REVISION);
    out.byte(hash_function.id());

    // KEY-4
    match *action {
        Action::Command(argv) => {
            if argv.is_empty() {
                return Err(KeyError::EmptyCommand);
            }
            out.byte(0x01);
            out.count(argv.len())?;
            for arg in argv {
                out.lp(arg.as_bytes())?;
            }
        }
        Action::Shell { shell, script } => {
            if !is_valid_shell_name(shell) {
                return Err(KeyError::InvalidShellName);
            }
            out.byte(0x02);
            out.lp(shell.as_bytes())?;
            out.lp(script.as_bytes())?;
        }
    }

    // KEY-5
    out.count(input_files.len())?;
    for file in input_files.iter() {
        out.digest(&file.content_hash);
        out.lp(file.path.as_bytes())?;
    }

    // KEY-6
    out.count(predecessors.len())?;
    for predecessor in predecessors.iter() {
        out.lp(predecessor.project.as_bytes())?;
        out.lp(predecessor.task.as_bytes())?;
        out.digest(&predecessor.stdout_hash);
        out.digest(&predecessor.stderr_hash);
    }

    // KEY-7: host variables minus every name that also has an override.
    let overridden = |name: &str| {
        overrides
            .binary_search_by(|o| o.name.as_bytes().cmp(name.as_bytes()))
            .is_ok()
    };
    let kept = from_host.iter().filter(|v| !overridden(v.name));
    out.count(kept.clone().count())?;
    for variable in kept {
        out.lp(variable.name.as_bytes())?;
        match variable.value {
            Some(value) => out.lp(value.as_bytes())?,
            None => out.byte(0x00),
        }
    }
    out.count(overrides.len())?;
    for variable in overrides.iter() {
        out.lp(variable.name.as_bytes())?;
        out.lp(variable.value.as_bytes())?;
    }

    Ok(Key(out.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minimal(hash_function: HashFunction, argv: &[&str]) -> Result<Key, KeyError> {
        derive_key(&mut KeyComponents {
            hash_function,
            action: Action::Command(argv),
            input_files: &mut [],
            predecessors: &mut [],
            from_host: &mut [],
            overrides: &mut [],
        })
    }

    #[test]
    fn key_9_minimal_vectors() {
        assert_eq!(
            minimal(HashFunction::Blake3, &["true"])
                .unwrap()
                .to_hex()
                .as_str(),
            "5d9205dd5c954d42a74a5c299c18963f1377aa774fa870491f6b4a714fe1f57a"
        );
        assert_eq!(
            minimal(HashFunction::Sha256, &["true"])
                .unwrap()
                .to_hex()
                .as_str(),
            "1c1085a2704924f3ceeb1fafd5d5b8b2799e6956146892ab105da539d627d1cf"
        );
    }

    #[test]
    fn key_4_empty_command_and_bad_shell_are_errors() {
        assert_eq!(
            minimal(HashFunction::Blake3, &[]),
            Err(KeyError::EmptyCommand)
        );
        for shell in ["", "b sh", "/bin/sh", "sh;"] {
            let result = derive_key(&mut KeyComponents {
                hash_function: HashFunction::Blake3,
                action: Action::Shell {
                    shell,
                    script: "true",
                },
                input_files: &mut [],
                predecessors: &mut [],
                from_host: &mut [],
                overrides: &mut [],
            });
            assert_eq!(result, Err(KeyError::InvalidShellName), "{shell:?}");
        }
    }

    #[test]
    fn key_8_duplicates_are_errors() {
        let hash = Digest([7; 32]);
        let mut inputs = [
            InputFile {
                path: "/a",
                content_hash: hash,
            },
            InputFile {
                path: "/a",
                content_hash: Digest([8; 32]),
            },
        ];
        let result = derive_key(&mut KeyComponents {
            hash_function: HashFunction::Blake3,
            action: Action::Command(&["true"]),
            input_files: &mut inputs,
            predecessors: &mut [],
            from_host: &mut [],
            overrides: &mut [],
        });
        assert_eq!(result, Err(KeyError::DuplicateInputFile));

        let mut overrides = [
            Override {
                name: "X",
                value: "1",
            },
            Override {
                name: "X",
                value: "1",
            },
        ];
        let result = derive_key(&mut KeyComponents {
            hash_function: HashFunction::Blake3,
            action: Action::Command(&["true"]),
            input_files: &mut [],
            predecessors: &mut [],
            from_host: &mut [],
            overrides: &mut overrides,
        });
        assert_eq!(result, Err(KeyError::DuplicateOverride));
    }

    #[test]
    fn key_7_unset_differs_from_empty() {
        let derive = |value| {
            derive_key(&mut KeyComponents {
                hash_function: HashFunction::Blake3,
                action: Action::Command(&["true"]),
                input_files: &mut [],
                predecessors: &mut [],
                from_host: &mut [HostVariable { name: "X", value }],
                overrides: &mut [],
            })
            .unwrap()
        };
        assert_ne!(derive(None), derive(Some("")));
    }

    #[test]
    fn key_4_pieces_larger_than_the_buffer_hash_like_the_plain_canonical_string() {
        extern crate alloc;
        use alloc::vec::Vec;
        let long = [b'a'; 5000];
        let longer = [b'b'; 9000];
        let argv = [
            core::str::from_utf8(&long).unwrap(),
            "x",
            core::str::from_utf8(&longer).unwrap(),
        ];
        let mut canonical: Vec<u8> = alloc::vec![CHAPTER_REVISION, 0x00, 0x01];
        canonical.extend_from_slice(&3u32.to_be_bytes());
        for arg in argv {
            canonical.extend_from_slice(&(arg.len() as u32).to_be_bytes());
            canonical.extend_from_slice(arg.as_bytes());
        }
        for _ in 0..4 {
            canonical.extend_from_slice(&0u32.to_be_bytes());
        }
        let expected = crate::hash::digest(HashFunction::Blake3, &canonical);
        assert_eq!(minimal(HashFunction::Blake3, &argv).unwrap(), Key(expected));
    }

    #[test]
    fn claim_2_no_task_name_enters_the_key() {
        // The components have no place for a task name: two tasks with equal
        // components derive the same key.
        assert_eq!(
            minimal(HashFunction::Blake3, &["cc", "-c", "x.c"]),
            minimal(HashFunction::Blake3, &["cc", "-c", "x.c"])
        );
    }
}
