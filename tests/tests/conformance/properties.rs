//! Property tests for the pure parts of the core: key derivation (SPEC §2),
//! hex (KEY-1, MAN-3) and workspace path validation (SPEC §3).
//!
//! Key properties run on an owned model of the components ([`Model`]) that
//! is turned into borrowed [`KeyComponents`] for each derivation; each
//! "changes" property mutates exactly one component and checks the key
//! moves — or, for a host variable whose name is overridden, that it does not
//! (KEY-7).

use alloc::collections::{BTreeMap, BTreeSet};

use cachet_core::hash::{Digest, HashFunction};
use cachet_core::hex::{decode_32, encode_32};
use cachet_core::key::{
    Action, HostVariable, InputFile, Key, KeyComponents, KeyError, Override, Predecessor,
    derive_key,
};
use cachet_core::path::{MAX_PATH_BYTES, PathError, validate};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::FileFailurePersistence;
use unicode_general_category::{GeneralCategory, get_general_category};

/// `cases` cases; failures are persisted next to this file (the default
/// location needs a `lib.rs` or `main.rs`, which an integration test lacks).
fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        ..ProptestConfig::with_cases(cases)
    }
}

// ---------------------------------------------------------------------------
// Key derivation
// ---------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq, Eq)]
enum ActionModel {
    Command(Vec<String>),
    Shell { shell: String, script: String },
}

/// Owned key components. Lists may be in any order; names, paths and
/// (project, task) pairs are distinct unless a test adds a duplicate.
#[derive(Clone, Debug)]
struct Model {
    hash_function: HashFunction,
    action: ActionModel,
    inputs: Vec<(String, [u8; 32])>,
    predecessors: Vec<(String, String, [u8; 32], [u8; 32])>,
    host: Vec<(String, Option<String>)>,
    overrides: Vec<(String, String)>,
}

impl Model {
    fn is_overridden(&self, name: &str) -> bool {
        self.overrides.iter().any(|(n, _)| n == name)
    }
}

fn derive(model: &Model) -> Result<Key, KeyError> {
    let argv: Vec<&str>;
    let action = match &model.action {
        ActionModel::Command(args) => {
            argv = args.iter().map(String::as_str).collect();
            Action::Command(&argv)
        }
        ActionModel::Shell { shell, script } => Action::Shell { shell, script },
    };
    let mut inputs: Vec<InputFile<'_>> = model
        .inputs
        .iter()
        .map(|(path, hash)| InputFile {
            path,
            content_hash: Digest(*hash),
        })
        .collect();
    let mut predecessors: Vec<Predecessor<'_>> = model
        .predecessors
        .iter()
        .map(|(project, task, stdout, stderr)| Predecessor {
            project,
            task,
            stdout_hash: Digest(*stdout),
            stderr_hash: Digest(*stderr),
        })
        .collect();
    let mut host: Vec<HostVariable<'_>> = model
        .host
        .iter()
        .map(|(name, value)| HostVariable {
            name,
            value: value.as_deref(),
        })
        .collect();
    let mut overrides: Vec<Override<'_>> = model
        .overrides
        .iter()
        .map(|(name, value)| Override { name, value })
        .collect();
    derive_key(&mut KeyComponents {
        hash_function: model.hash_function,
        action,
        input_files: &mut inputs,
        predecessors: &mut predecessors,
        from_host: &mut host,
        overrides: &mut overrides,
    })
}

fn hash_function() -> impl Strategy<Value = HashFunction> {
    prop_oneof![Just(HashFunction::Blake3), Just(HashFunction::Sha256)]
}

/// Arguments and script text: mostly printable ASCII, sometimes any text.
fn text(max: usize) -> BoxedStrategy<String> {
    prop_oneof![
        3 => proptest::string::string_regex(&format!("[ -~]{{0,{max}}}")).unwrap(),
        1 => proptest::collection::vec(any::<char>(), 0..=max)
            .prop_map(String::from_iter),
    ]
    .boxed()
}

fn command() -> impl Strategy<Value = ActionModel> {
    proptest::collection::vec(text(6), 1..5).prop_map(ActionModel::Command)
}

fn shell() -> impl Strategy<Value = ActionModel> {
    ("[A-Za-z0-9_-]{1,6}", text(16))
        .prop_map(|(shell, script)| ActionModel::Shell { shell, script })
}

fn action() -> impl Strategy<Value = ActionModel> {
    prop_oneof![command(), shell()]
}

fn input_path() -> impl Strategy<Value = String> {
    "(/[a-c.]{1,3}){1,3}"
}

fn project_or_task() -> impl Strategy<Value = String> {
    "[a-c:]{0,3}"
}

/// Variable names from a small alphabet, so host names and override names
/// often coincide (KEY-7).
fn variable_name() -> impl Strategy<Value = String> {
    "[A-D]{1,2}"
}

fn host_value() -> impl Strategy<Value = Option<String>> {
    proptest::option::of("[a-b=]{0,3}")
}

fn model_with(
    action: impl Strategy<Value = ActionModel>,
    min_inputs: usize,
    min_predecessors: usize,
    min_host: usize,
    min_overrides: usize,
) -> impl Strategy<Value = Model> {
    (
        hash_function(),
        action,
        proptest::collection::btree_map(input_path(), any::<[u8; 32]>(), min_inputs..8),
        proptest::collection::btree_map(
            (project_or_task(), project_or_task()),
            any::<([u8; 32], [u8; 32])>(),
            min_predecessors..4,
        ),
        proptest::collection::btree_map(variable_name(), host_value(), min_host..5),
        proptest::collection::btree_map(variable_name(), "[a-b]{0,3}", min_overrides..5),
    )
        .prop_map(
            |(hash_function, action, inputs, predecessors, host, overrides)| Model {
                hash_function,
                action,
                inputs: inputs.into_iter().collect(),
                predecessors: predecessors
                    .into_iter()
                    .map(|((project, task), (stdout, stderr))| (project, task, stdout, stderr))
                    .collect(),
                host: host.into_iter().collect(),
                overrides: overrides.into_iter().collect(),
            },
        )
}

fn model() -> impl Strategy<Value = Model> {
    model_with(action(), 0, 0, 0, 0)
}

/// The same model with every list independently shuffled.
fn shuffled(model: Model) -> impl Strategy<Value = Model> {
    (
        Just(model.clone()),
        Just(model.inputs).prop_shuffle(),
        Just(model.predecessors).prop_shuffle(),
        Just(model.host).prop_shuffle(),
        Just(model.overrides).prop_shuffle(),
    )
        .prop_map(|(base, inputs, predecessors, host, overrides)| Model {
            inputs,
            predecessors,
            host,
            overrides,
            ..base
        })
}

/// A character different from `old`.
fn other_char(old: char, candidate: char) -> char {
    if candidate != old {
        candidate
    } else if old != 'a' {
        'a'
    } else {
        'b'
    }
}

/// Replaces one character of `text` (or appends one to an empty string).
fn change_one_char(text: &mut String, position: Index, candidate: char) {
    let chars: Vec<char> = text.chars().collect();
    if chars.is_empty() {
        text.push(candidate);
        return;
    }
    let at = position.index(chars.len());
    *text = chars
        .iter()
        .enumerate()
        .map(|(i, &c)| if i == at { other_char(c, candidate) } else { c })
        .collect();
}

fn flip_bit(hash: &mut [u8; 32], byte: Index, bit: u8) {
    hash[byte.index(32)] ^= 1 << (bit % 8);
}

proptest! {
    #![proptest_config(config(256))]

    /// KEY-8: callers may pass files, predecessors and variables in any
    /// order; derivation sorts.
    #[test]
    fn key_8_order_independent(
        (a, b) in model().prop_flat_map(|m| (shuffled(m.clone()), shuffled(m)))
    ) {
        let key_a = derive(&a);
        prop_assert!(key_a.is_ok(), "{:?}", key_a);
        prop_assert_eq!(key_a, derive(&b));
    }

    /// KEY-8: a duplicate path, (project, task) or name is an error, whatever
    /// else the duplicate carries.
    #[test]
    fn key_8_duplicates_are_errors(
        m in model_with(action(), 1, 1, 1, 1),
        which in 0..4usize,
        pick in any::<Index>(),
        hash in any::<[u8; 32]>(),
        value in host_value(),
    ) {
        let mut m = m;
        let expected = match which {
            0 => {
                let path = m.inputs[pick.index(m.inputs.len())].0.clone();
                m.inputs.push((path, hash));
                KeyError::DuplicateInputFile
            }
            1 => {
                let (project, task, _, _) = m.predecessors[pick.index(m.predecessors.len())].clone();
                m.predecessors.push((project, task, hash, hash));
                KeyError::DuplicatePredecessor
            }
            2 => {
                let name = m.host[pick.index(m.host.len())].0.clone();
                m.host.push((name, value));
                KeyError::DuplicateHostVariable
            }
            _ => {
                let name = m.overrides[pick.index(m.overrides.len())].0.clone();
                m.overrides.push((name, value.unwrap_or_default()));
                KeyError::DuplicateOverride
            }
        };
        prop_assert_eq!(derive(&m), Err(expected));
    }

    /// KEY-2, KEY-3: the hash function id enters the key.
    #[test]
    fn key_2_changes_with_hash_function(m in model()) {
        let mut other = m.clone();
        other.hash_function = match m.hash_function {
            HashFunction::Blake3 => HashFunction::Sha256,
            HashFunction::Sha256 => HashFunction::Blake3,
        };
        prop_assert_ne!(derive(&m).unwrap(), derive(&other).unwrap());
    }

    /// KEY-4: changing any one character of any argument, or adding or
    /// removing an argument, changes the key.
    #[test]
    fn key_4_changes_with_any_argv_byte(
        m in model_with(command(), 0, 0, 0, 0),
        arg in any::<Index>(),
        position in any::<Index>(),
        candidate in any::<char>(),
        extra in text(3),
    ) {
        let base = derive(&m).unwrap();
        let ActionModel::Command(argv) = &m.action else { unreachable!() };

        let mut changed = argv.clone();
        let at = arg.index(changed.len());
        change_one_char(&mut changed[at], position, candidate);
        prop_assert_ne!(&changed, argv);
        let other = Model { action: ActionModel::Command(changed), ..m.clone() };
        prop_assert_ne!(base, derive(&other).unwrap());

        let mut longer = argv.clone();
        longer.push(extra);
        let other = Model { action: ActionModel::Command(longer), ..m.clone() };
        prop_assert_ne!(base, derive(&other).unwrap());

        if argv.len() > 1 {
            let mut shorter = argv.clone();
            shorter.remove(at);
            let other = Model { action: ActionModel::Command(shorter), ..m.clone() };
            prop_assert_ne!(base, derive(&other).unwrap());
        }
    }

    /// KEY-4: argument boundaries are encoded (`lp`), so moving a character
    /// across a boundary changes the key.
    #[test]
    fn key_4_argument_boundaries_matter(
        m in model_with(command(), 0, 0, 0, 0),
        left in "[a-z]{1,4}",
        right in "[a-z]{0,4}",
    ) {
        let joined = format!("{left}{right}");
        let with = |argv: Vec<String>| Model { action: ActionModel::Command(argv), ..m.clone() };
        let split = derive(&with(vec![left.clone(), right.clone()])).unwrap();
        let whole = derive(&with(vec![joined])).unwrap();
        prop_assert_ne!(split, whole);
        let mut shifted = left.clone();
        let moved = shifted.pop().unwrap();
        let other = derive(&with(vec![shifted, format!("{moved}{right}")])).unwrap();
        prop_assert_ne!(split, other);
    }

    /// KEY-4: the shell name and script enter the key, and a shell action
    /// never collides with a command action.
    #[test]
    fn key_4_changes_with_shell_or_script(
        m in model_with(shell(), 0, 0, 0, 0),
        position in any::<Index>(),
        candidate in proptest::char::ranges(vec!['a'..='z', 'A'..='Z', '0'..='9'].into()),
        script_candidate in any::<char>(),
    ) {
        let base = derive(&m).unwrap();
        let ActionModel::Shell { shell, script } = &m.action else { unreachable!() };

        let mut new_shell = shell.clone();
        change_one_char(&mut new_shell, position, candidate);
        let other = Model {
            action: ActionModel::Shell { shell: new_shell, script: script.clone() },
            ..m.clone()
        };
        prop_assert_ne!(base, derive(&other).unwrap());

        let mut new_script = script.clone();
        change_one_char(&mut new_script, position, script_candidate);
        let other = Model {
            action: ActionModel::Shell { shell: shell.clone(), script: new_script },
            ..m.clone()
        };
        prop_assert_ne!(base, derive(&other).unwrap());

        let other = Model {
            action: ActionModel::Command(vec![shell.clone(), script.clone()]),
            ..m.clone()
        };
        prop_assert_ne!(base, derive(&other).unwrap());
    }

    /// KEY-5: each input's content hash and path enter the key, and so does
    /// the set of inputs.
    #[test]
    fn key_5_changes_with_any_input(
        m in model_with(action(), 1, 0, 0, 0),
        pick in any::<Index>(),
        byte in any::<Index>(),
        bit in 0u8..8,
        new_path in input_path(),
        new_hash in any::<[u8; 32]>(),
    ) {
        let base = derive(&m).unwrap();
        let at = pick.index(m.inputs.len());
        let path_is_new = m.inputs.iter().all(|(path, _)| *path != new_path);

        let mut other = m.clone();
        flip_bit(&mut other.inputs[at].1, byte, bit);
        prop_assert_ne!(base, derive(&other).unwrap());

        if path_is_new {
            let mut other = m.clone();
            other.inputs[at].0 = new_path.clone();
            prop_assert_ne!(base, derive(&other).unwrap());

            let mut other = m.clone();
            other.inputs.push((new_path, new_hash));
            prop_assert_ne!(base, derive(&other).unwrap());
        }

        let mut other = m.clone();
        other.inputs.remove(at);
        prop_assert_ne!(base, derive(&other).unwrap());
    }

    /// KEY-6: each predecessor's identity and stream hashes enter the key.
    #[test]
    fn key_6_changes_with_any_predecessor(
        m in model_with(action(), 0, 1, 0, 0),
        pick in any::<Index>(),
        byte in any::<Index>(),
        bit in 0u8..8,
        new_task in project_or_task(),
    ) {
        let base = derive(&m).unwrap();
        let at = pick.index(m.predecessors.len());

        let mut other = m.clone();
        flip_bit(&mut other.predecessors[at].2, byte, bit);
        prop_assert_ne!(base, derive(&other).unwrap());

        let mut other = m.clone();
        flip_bit(&mut other.predecessors[at].3, byte, bit);
        prop_assert_ne!(base, derive(&other).unwrap());

        // Swapping the two streams' hashes matters unless they are equal.
        let (_, _, stdout, stderr) = m.predecessors[at].clone();
        if stdout != stderr {
            let mut other = m.clone();
            other.predecessors[at].2 = stderr;
            other.predecessors[at].3 = stdout;
            prop_assert_ne!(base, derive(&other).unwrap());
        }

        let project = &m.predecessors[at].0;
        let taken = m.predecessors.iter().any(|(p, t, _, _)| p == project && *t == new_task);
        if !taken {
            let mut other = m.clone();
            other.predecessors[at].1 = new_task;
            prop_assert_ne!(base, derive(&other).unwrap());
        }

        let mut other = m.clone();
        other.predecessors.remove(at);
        prop_assert_ne!(base, derive(&other).unwrap());
    }

    /// KEY-7: a host variable's value (set or unset, empty or not) enters the
    /// key — unless an override has the same name, in which case the host
    /// variable is left out entirely and changing or dropping it changes
    /// nothing.
    #[test]
    fn key_7_host_variable_changes_key_unless_overridden(
        m in model_with(action(), 0, 0, 1, 0),
        pick in any::<Index>(),
        new_value in host_value(),
    ) {
        let base = derive(&m).unwrap();
        let at = pick.index(m.host.len());
        let overridden = m.is_overridden(&m.host[at].0);

        if new_value != m.host[at].1 {
            let mut other = m.clone();
            other.host[at].1 = new_value;
            prop_assert_eq!(base != derive(&other).unwrap(), !overridden);
        }

        // set <-> unset, the other way round from what it was.
        let mut other = m.clone();
        other.host[at].1 = match &m.host[at].1 {
            Some(_) => None,
            None => Some(String::new()),
        };
        prop_assert_eq!(base != derive(&other).unwrap(), !overridden);

        let mut other = m.clone();
        other.host.remove(at);
        prop_assert_eq!(base != derive(&other).unwrap(), !overridden);
    }

    /// KEY-7: each override's value enters the key, and so does the set of
    /// overrides.
    #[test]
    fn key_7_changes_with_any_override(
        m in model_with(action(), 0, 0, 0, 1),
        pick in any::<Index>(),
        position in any::<Index>(),
        candidate in any::<char>(),
    ) {
        let base = derive(&m).unwrap();
        let at = pick.index(m.overrides.len());

        let mut other = m.clone();
        change_one_char(&mut other.overrides[at].1, position, candidate);
        prop_assert_ne!(base, derive(&other).unwrap());

        let mut other = m.clone();
        other.overrides.remove(at);
        prop_assert_ne!(base, derive(&other).unwrap());
    }

    /// KEY-1: a key renders as 64 lowercase hex digits and parses back.
    #[test]
    fn key_1_hex_round_trip(m in model()) {
        let key = derive(&m).unwrap();
        let hex = key.to_hex();
        prop_assert_eq!(hex.len(), 64);
        prop_assert!(hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')));
        prop_assert_eq!(Key::from_hex(&hex), Ok(key));
        prop_assert_eq!(Key::from_hex(&hex.to_ascii_uppercase()), Ok(key));
    }
}

// ---------------------------------------------------------------------------
// Hex
// ---------------------------------------------------------------------------

proptest! {
    #![proptest_config(config(512))]

    /// KEY-1: encoding is 64 lowercase digits and decoding inverts it.
    #[test]
    fn key_1_hex_encode_decode_round_trip(bytes in any::<[u8; 32]>()) {
        let hex = encode_32(&bytes);
        prop_assert_eq!(hex.len(), 64);
        prop_assert!(hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')));
        prop_assert_eq!(decode_32(hex.as_bytes()), Ok(bytes));
    }

    /// MAN-3: hex is accepted in either case, also mixed, and decodes to the
    /// same bytes.
    #[test]
    fn man_3_hex_any_case_decodes_to_the_same_bytes(
        bytes in any::<[u8; 32]>(),
        upper in proptest::collection::vec(any::<bool>(), 64),
    ) {
        let hex = encode_32(&bytes);
        prop_assert_eq!(decode_32(hex.to_ascii_uppercase().as_bytes()), Ok(bytes));
        let mixed: Vec<u8> = hex
            .bytes()
            .zip(&upper)
            .map(|(b, &up)| if up { b.to_ascii_uppercase() } else { b })
            .collect();
        prop_assert_eq!(decode_32(&mixed), Ok(bytes));
    }

    /// MAN-3: exactly 64 hex digits decode, anything else is refused; what
    /// decodes re-encodes to the lowercased input.
    #[test]
    fn man_3_hex_decode_agrees_with_a_digit_model(
        text in prop_oneof![
            proptest::collection::vec(
                prop_oneof![
                    8 => proptest::sample::select(b"0123456789abcdefABCDEF".to_vec()),
                    1 => any::<u8>(),
                ],
                64,
            ),
            proptest::collection::vec(
                proptest::sample::select(b"0123456789abcdefABCDEF".to_vec()),
                0..130,
            ),
        ]
    ) {
        let valid = text.len() == 64 && text.iter().all(u8::is_ascii_hexdigit);
        match decode_32(&text) {
            Ok(bytes) => {
                prop_assert!(valid);
                let encoded = encode_32(&bytes);
                prop_assert_eq!(encoded.as_bytes(), &text.to_ascii_lowercase()[..]);
            }
            Err(_) => prop_assert!(!valid),
        }
    }
}

// ---------------------------------------------------------------------------
// Workspace paths
// ---------------------------------------------------------------------------

fn forbidden_by_path_2(c: char) -> bool {
    matches!(
        get_general_category(c),
        GeneralCategory::Control
            | GeneralCategory::Format
            | GeneralCategory::Unassigned
            | GeneralCategory::PrivateUse
            | GeneralCategory::LineSeparator
            | GeneralCategory::ParagraphSeparator
    )
}

/// PATH-1 and PATH-2 written out directly, plus cachet's length cap.
fn reference_is_valid(path: &str) -> bool {
    if path.len() > MAX_PATH_BYTES {
        return false;
    }
    // PATH-1: `/` then one or more segments joined by `/`; the bare `/`
    // splits into one empty segment, a trailing `/` or `//` into an empty
    // segment too.
    let Some(rest) = path.strip_prefix('/') else {
        return false;
    };
    rest.split('/').all(|segment| {
        !segment.is_empty()
            && segment != "."
            && segment != ".."
            && !segment.chars().any(forbidden_by_path_2)
    })
}

fn interesting_char() -> impl Strategy<Value = char> {
    prop_oneof![
        6 => Just('/'),
        4 => Just('.'),
        6 => proptest::char::range('a', 'z'),
        1 => Just(' '),
        1 => Just('\t'),
        1 => Just('\n'),
        1 => Just('\0'),
        1 => Just('\u{7f}'),
        1 => Just('\u{85}'),
        1 => Just('\u{ad}'),
        1 => Just('\u{202e}'),
        1 => Just('\u{200b}'),
        1 => Just('\u{feff}'),
        1 => Just('\u{e000}'),
        1 => Just('\u{fffe}'),
        1 => Just('\u{2028}'),
        1 => Just('\u{2029}'),
        1 => Just('\u{301}'),
        1 => Just('\u{378}'),
        1 => Just('日'),
        1 => Just('🦀'),
        1 => Just('😀'),
        1 => Just('\\'),
        2 => any::<char>(),
    ]
}

fn interesting_path() -> impl Strategy<Value = String> {
    (
        prop_oneof![3 => Just("/"), 1 => Just("")],
        proptest::collection::vec(interesting_char(), 0..16),
    )
        .prop_map(|(prefix, chars)| {
            let mut path = String::from(prefix);
            path.extend(chars);
            path
        })
}

proptest! {
    #![proptest_config(config(2048))]

    /// PATH-1, PATH-2: `validate` agrees with the rules written out directly,
    /// and every refusal names a reason the path really has.
    #[test]
    fn path_1_2_validate_agrees_with_reference_model(path in interesting_path()) {
        let verdict = validate(&path);
        prop_assert_eq!(verdict.is_ok(), reference_is_valid(&path), "{:?} -> {:?}", path, verdict);
        let segments: Vec<&str> = path.strip_prefix('/').unwrap_or("").split('/').collect();
        match verdict {
            Ok(()) => {}
            Err(PathError::Empty) => prop_assert!(path.is_empty()),
            Err(PathError::NotAbsolute) => prop_assert!(!path.starts_with('/')),
            Err(PathError::Root) => prop_assert_eq!(path.as_str(), "/"),
            Err(PathError::EmptySegment) => prop_assert!(path.contains("//")),
            Err(PathError::TrailingSlash) => prop_assert!(path.ends_with('/')),
            Err(PathError::DotSegment) => prop_assert!(segments.contains(&".")),
            Err(PathError::DotDotSegment) => prop_assert!(segments.contains(&"..")),
            Err(PathError::ForbiddenCharacter { character }) => {
                prop_assert!(path.contains(character));
                prop_assert!(forbidden_by_path_2(character));
            }
            Err(PathError::TooLong) => prop_assert!(path.len() > MAX_PATH_BYTES),
            Err(other) => {
                return Err(TestCaseError::fail(format!("unexpected error {other:?}")));
            }
        }
    }

    /// Paths built from valid segments are valid; inserting one forbidden
    /// character anywhere in a segment makes them invalid (PATH-2).
    #[test]
    fn path_2_one_forbidden_character_anywhere_invalidates(
        segments in proptest::collection::vec(
            proptest::collection::vec(
                proptest::sample::select(vec!['a', 'z', '.', ' ', '-', '_', 'é', '\u{301}', '日', '🦀', '\\', ':']),
                1..5,
            )
            .prop_map(String::from_iter),
            1..4,
        ),
        bad in prop_oneof![
            Just('\u{202e}'), Just('\u{200b}'), Just('\u{feff}'), Just('\u{e000}'),
            Just('\u{fffe}'), Just('\u{2028}'), Just('\u{2029}'), Just('\t'), Just('\0'),
        ],
        at in any::<Index>(),
    ) {
        let segments: Vec<String> = segments
            .into_iter()
            .map(|s| if s == "." || s == ".." { format!("{s}x") } else { s })
            .collect();
        let path = format!("/{}", segments.join("/"));
        prop_assert!(reference_is_valid(&path), "{:?}", path);
        prop_assert_eq!(validate(&path), Ok(()));

        let boundaries: Vec<usize> = path
            .char_indices()
            .map(|(i, _)| i)
            .chain([path.len()])
            .filter(|&i| i > 0)
            .collect();
        let insert_at = boundaries[at.index(boundaries.len())];
        let mut broken = path.clone();
        broken.insert(insert_at, bad);
        prop_assert_eq!(validate(&broken), Err(PathError::ForbiddenCharacter { character: bad }));
    }

    /// The length cap is on bytes, right at [`MAX_PATH_BYTES`].
    #[test]
    fn path_length_cap_agrees_with_reference_model(
        segment in "[a-z]{1,8}|日本|🦀",
        extra in 0usize..16,
    ) {
        let mut path = String::new();
        while path.len() + 1 + segment.len() <= MAX_PATH_BYTES - 8 {
            path.push('/');
            path.push_str(&segment);
        }
        for _ in 0..extra {
            path.push_str("/a");
        }
        prop_assert_eq!(validate(&path).is_ok(), reference_is_valid(&path));
        prop_assert_eq!(validate(&path).is_ok(), path.len() <= MAX_PATH_BYTES);
    }
}

// ---------------------------------------------------------------------------
// Examples pinning both branches of the KEY-7 rule
// ---------------------------------------------------------------------------

fn env_model(host_value: Option<&str>, override_value: Option<&str>) -> Model {
    Model {
        hash_function: HashFunction::Blake3,
        action: ActionModel::Command(vec!["true".to_string()]),
        inputs: Vec::new(),
        predecessors: Vec::new(),
        host: vec![("X".to_string(), host_value.map(str::to_string))],
        overrides: override_value
            .map(|value| vec![("X".to_string(), value.to_string())])
            .unwrap_or_default(),
    }
}

#[test]
fn key_7_overridden_host_variable_is_excluded() {
    let keys: BTreeSet<Key> = [None, Some(""), Some("a")]
        .into_iter()
        .map(|host| derive(&env_model(host, Some("o"))).unwrap())
        .collect();
    assert_eq!(keys.len(), 1, "an overridden host variable must not matter");

    let keys: BTreeMap<Option<&str>, Key> = [None, Some(""), Some("a")]
        .into_iter()
        .map(|host| (host, derive(&env_model(host, None)).unwrap()))
        .collect();
    let distinct: BTreeSet<&Key> = keys.values().collect();
    assert_eq!(distinct.len(), 3, "unset, empty and set must all differ");

    // The override itself still counts.
    assert_ne!(
        derive(&env_model(Some("a"), Some("o"))).unwrap(),
        derive(&env_model(Some("a"), Some("p"))).unwrap()
    );
}
