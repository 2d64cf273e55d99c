//! Fuzz target `key_derivation` (KEY-1..8, SAFE-1).
//!
//! The bytes decode (through `arbitrary`) into arbitrary key components:
//! any strings, any number of input files, predecessors, host variables
//! and overrides, duplicates included. [`derive_key`] must not panic, must
//! give the same result whatever order the components are passed in
//! (KEY-8; checked on the given order, its reverse and a shuffle), and must
//! agree with a plain model that builds the canonical string of KEY-3..7 in
//! a buffer and hashes it: the same key when the model accepts, an error
//! the model also sees when it refuses.

use alloc::string::String;
use alloc::vec::Vec;

use arbitrary::{Arbitrary, Unstructured};
use cachet_core::hash::{Digest, HashFunction, digest};
use cachet_core::key::{
    Action, HostVariable, InputFile, Key, KeyComponents, KeyError, Override, Predecessor,
    derive_key,
};

use super::encode::{Encode, variant};

/// A string from arbitrary bytes (invalid UTF-8 becomes U+FFFD, so any
/// input gives some text).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Text(pub String);

impl<'a> Arbitrary<'a> for Text {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let bytes: Vec<u8> = u.arbitrary()?;
        Ok(Text(String::from_utf8_lossy(&bytes).into_owned()))
    }
}

impl Encode for Text {
    fn encode(&self, out: &mut Vec<u8>) {
        self.0.as_bytes().encode(out);
    }
}

/// A digest: content hashes and stream hashes are opaque bytes to key
/// derivation.
#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hash(pub [u8; 32]);

impl Hash {
    fn digest(self) -> Digest {
        Digest(self.0)
    }
}

impl Encode for Hash {
    fn encode(&self, out: &mut Vec<u8>) {
        self.0.encode(out);
    }
}

/// KEY-4's action.
#[derive(Arbitrary, Clone, Debug, PartialEq, Eq)]
pub enum ActionInput {
    /// An argv vector (possibly empty, which is an error).
    Command(Vec<Text>),
    /// A shell script (the shell name may be invalid, which is an error).
    Shell {
        /// The shell's name.
        shell: Text,
        /// The script.
        script: Text,
    },
}

impl Encode for ActionInput {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            ActionInput::Command(argv) => {
                variant(out, 0, 2);
                argv.encode(out);
            }
            ActionInput::Shell { shell, script } => {
                variant(out, 1, 2);
                shell.encode(out);
                script.encode(out);
            }
        }
    }
}

/// The decoded input: owned components and a shuffle seed.
#[derive(Arbitrary, Clone, Debug, PartialEq, Eq)]
pub struct Input {
    /// SHA-256 instead of BLAKE3 (KEY-2).
    pub sha256: bool,
    /// KEY-4.
    pub action: ActionInput,
    /// KEY-5: (path, content hash).
    pub input_files: Vec<(Text, Hash)>,
    /// KEY-6: (project, task, stdout hash, stderr hash).
    pub predecessors: Vec<(Text, Text, Hash, Hash)>,
    /// KEY-7: host variables let through; `None` is unset on the host.
    pub from_host: Vec<(Text, Option<Text>)>,
    /// KEY-7: overrides.
    pub overrides: Vec<(Text, Text)>,
    /// Seeds the shuffle of the third derivation.
    pub shuffle: u64,
}

impl Encode for Input {
    fn encode(&self, out: &mut Vec<u8>) {
        self.sha256.encode(out);
        self.action.encode(out);
        self.input_files.encode(out);
        self.predecessors.encode(out);
        self.from_host.encode(out);
        self.overrides.encode(out);
        self.shuffle.encode(out);
    }
}

impl Input {
    fn hash_function(&self) -> HashFunction {
        if self.sha256 {
            HashFunction::Sha256
        } else {
            HashFunction::Blake3
        }
    }
}

/// Decodes `data` as `arbitrary` does for the fuzz target.
pub fn decode(data: &[u8]) -> Option<Input> {
    Input::arbitrary(&mut Unstructured::new(data)).ok()
}

/// Runs the `key_derivation` checks on `data`; panics on a violation.
pub fn run(data: &[u8]) {
    let Some(input) = decode(data) else {
        return;
    };
    let given = derive(&input, Order::Given);
    let reversed = derive(&input, Order::Reversed);
    let shuffled = derive(&input, Order::Shuffled(input.shuffle));
    assert_eq!(
        given, reversed,
        "KEY-8: the key depends on input order (reversed)"
    );
    assert_eq!(
        given, shuffled,
        "KEY-8: the key depends on input order (shuffled)"
    );

    let model = model(&input);
    match (&given, &model) {
        (Ok(key), Ok(expected)) => assert_eq!(key, expected, "the key is not the model's"),
        (Err(error), Err(seen)) => assert!(
            seen.contains(error),
            "derive_key refused with {error:?}, which the model does not see ({seen:?})"
        ),
        (Ok(key), Err(seen)) => panic!("derive_key accepted ({key:?}) what breaks {seen:?}"),
        (Err(error), Ok(_)) => panic!("derive_key refused valid components with {error:?}"),
    }
}

#[derive(Clone, Copy)]
enum Order {
    Given,
    Reversed,
    Shuffled(u64),
}

/// Reorders `items` as `order` says (a seeded Fisher-Yates shuffle with a
/// small xorshift generator for `Shuffled`).
fn reorder<T>(items: &mut [T], order: Order) {
    match order {
        Order::Given => {}
        Order::Reversed => items.reverse(),
        Order::Shuffled(seed) => {
            let mut state = seed | 1;
            for i in (1..items.len()).rev() {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let j = usize::try_from(state % (i as u64 + 1)).unwrap_or(0);
                items.swap(i, j);
            }
        }
    }
}

/// Runs [`derive_key`] on `input`'s components, in `order`.
fn derive(input: &Input, order: Order) -> Result<Key, KeyError> {
    let argv: Vec<&str>;
    let action = match &input.action {
        ActionInput::Command(args) => {
            // The argv order is meaningful and never reordered.
            argv = args.iter().map(|a| a.0.as_str()).collect();
            Action::Command(&argv)
        }
        ActionInput::Shell { shell, script } => Action::Shell {
            shell: &shell.0,
            script: &script.0,
        },
    };
    let mut input_files: Vec<InputFile<'_>> = input
        .input_files
        .iter()
        .map(|(path, hash)| InputFile {
            path: &path.0,
            content_hash: hash.digest(),
        })
        .collect();
    let mut predecessors: Vec<Predecessor<'_>> = input
        .predecessors
        .iter()
        .map(|(project, task, out, err)| Predecessor {
            project: &project.0,
            task: &task.0,
            stdout_hash: out.digest(),
            stderr_hash: err.digest(),
        })
        .collect();
    let mut from_host: Vec<HostVariable<'_>> = input
        .from_host
        .iter()
        .map(|(name, value)| HostVariable {
            name: &name.0,
            value: value.as_ref().map(|v| v.0.as_str()),
        })
        .collect();
    let mut overrides: Vec<Override<'_>> = input
        .overrides
        .iter()
        .map(|(name, value)| Override {
            name: &name.0,
            value: &value.0,
        })
        .collect();
    reorder(&mut input_files, order);
    reorder(&mut predecessors, order);
    reorder(&mut from_host, order);
    reorder(&mut overrides, order);
    derive_key(&mut KeyComponents {
        hash_function: input.hash_function(),
        action,
        input_files: &mut input_files,
        predecessors: &mut predecessors,
        from_host: &mut from_host,
        overrides: &mut overrides,
    })
}

/// The canonical string's primitives (KEY-3..7), into a buffer.
struct Canonical(Vec<u8>);

impl Canonical {
    fn u32be(&mut self, n: usize) {
        let n = u32::try_from(n).unwrap_or(u32::MAX);
        self.0.extend_from_slice(&n.to_be_bytes());
    }

    fn lp(&mut self, text: &str) {
        self.u32be(text.len());
        self.0.extend_from_slice(text.as_bytes());
    }
}

/// The plain model: every rule the components break, or the digest of the
/// canonical string. `tests/fuzz_seeds.rs` holds it to the reference key
/// vectors, so that agreeing with it means agreeing with haz-cache.
pub fn model(input: &Input) -> Result<Key, Vec<KeyError>> {
    let mut broken = Vec::new();
    let mut out = Canonical(alloc::vec![0, input.hash_function().id()]);
    match &input.action {
        ActionInput::Command(argv) => {
            if argv.is_empty() {
                broken.push(KeyError::EmptyCommand);
            }
            out.0.push(0x01);
            out.u32be(argv.len());
            for arg in argv {
                out.lp(&arg.0);
            }
        }
        ActionInput::Shell { shell, script } => {
            let valid = !shell.0.is_empty()
                && shell
                    .0
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if !valid {
                broken.push(KeyError::InvalidShellName);
            }
            out.0.push(0x02);
            out.lp(&shell.0);
            out.lp(&script.0);
        }
    }

    let mut files: Vec<(&str, Hash)> = input
        .input_files
        .iter()
        .map(|(path, hash)| (path.0.as_str(), *hash))
        .collect();
    files.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    if files.windows(2).any(|w| w[0].0 == w[1].0) {
        broken.push(KeyError::DuplicateInputFile);
    }
    out.u32be(files.len());
    for (path, hash) in &files {
        out.0.extend_from_slice(&hash.digest().0);
        out.lp(path);
    }

    let mut predecessors: Vec<(&str, &str, Hash, Hash)> = input
        .predecessors
        .iter()
        .map(|(p, t, o, e)| (p.0.as_str(), t.0.as_str(), *o, *e))
        .collect();
    predecessors
        .sort_by(|a, b| (a.0.as_bytes(), a.1.as_bytes()).cmp(&(b.0.as_bytes(), b.1.as_bytes())));
    if predecessors
        .windows(2)
        .any(|w| (w[0].0, w[0].1) == (w[1].0, w[1].1))
    {
        broken.push(KeyError::DuplicatePredecessor);
    }
    out.u32be(predecessors.len());
    for (project, task, stdout, stderr) in &predecessors {
        out.lp(project);
        out.lp(task);
        out.0.extend_from_slice(&stdout.digest().0);
        out.0.extend_from_slice(&stderr.digest().0);
    }

    let mut overrides: Vec<(&str, &str)> = input
        .overrides
        .iter()
        .map(|(n, v)| (n.0.as_str(), v.0.as_str()))
        .collect();
    overrides.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    if overrides.windows(2).any(|w| w[0].0 == w[1].0) {
        broken.push(KeyError::DuplicateOverride);
    }
    let mut host: Vec<(&str, Option<&str>)> = input
        .from_host
        .iter()
        .map(|(n, v)| (n.0.as_str(), v.as_ref().map(|v| v.0.as_str())))
        .collect();
    host.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    // Duplicates are judged on the list as given, before overridden names
    // are dropped (KEY-8: never silently merged).
    if host.windows(2).any(|w| w[0].0 == w[1].0) {
        broken.push(KeyError::DuplicateHostVariable);
    }
    host.retain(|(name, _)| !overrides.iter().any(|(o, _)| o == name));
    out.u32be(host.len());
    for (name, value) in &host {
        out.lp(name);
        match value {
            Some(value) => out.lp(value),
            None => out.0.push(0x00),
        }
    }
    out.u32be(overrides.len());
    for (name, value) in &overrides {
        out.lp(name);
        out.lp(value);
    }

    if broken.is_empty() {
        Ok(Key(digest(input.hash_function(), &out.0)))
    } else {
        Err(broken)
    }
}
