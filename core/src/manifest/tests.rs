//! Unit tests for the manifest codec, named after the SPEC rules they check.

extern crate alloc;
extern crate std;

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

use proptest::prelude::*;

use super::*;
use crate::fs;
use crate::path::PathError;

/// A growable sink that exists whatever the crate's features are.
#[derive(Default)]
struct VecSink(Vec<u8>);

impl fs::Write for VecSink {
    fn write(&mut self, buf: &[u8]) -> Result<usize, fs::Error> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
}

/// Accepts one byte per call, to exercise short writes.
#[derive(Default)]
struct TrickleSink(Vec<u8>);

impl fs::Write for TrickleSink {
    fn write(&mut self, buf: &[u8]) -> Result<usize, fs::Error> {
        match buf.first() {
            Some(&b) => {
                self.0.push(b);
                Ok(1)
            }
            None => Ok(0),
        }
    }
}

struct FailingSink;

impl fs::Write for FailingSink {
    fn write(&mut self, _: &[u8]) -> Result<usize, fs::Error> {
        Err(fs::Error::new(fs::ErrorKind::StorageFull))
    }
}

fn digest(byte: u8) -> Digest {
    Digest([byte; 32])
}

fn hex(byte: u8) -> String {
    format!("\"{}\"", digest(byte).to_hex().as_str())
}

fn sample_head() -> ManifestHead {
    ManifestHead {
        chapter_revision: 0,
        hash_function: HashFunction::Blake3,
        key: Key(digest(0xab)),
    }
}

fn sample_tail() -> ManifestTail {
    ManifestTail {
        stdout_len: 5,
        stderr_len: 0,
        stdout_hash: digest(0x02),
        stderr_hash: digest(0x03),
        exit_status: 0,
        created_at_unix: 1_763_700_000,
    }
}

const SAMPLE_PATHS: [&str; 2] = [
    "/proj/out/app.bin",
    "/proj/out/notes \"v2\" \\ é 日本 🦀.txt",
];

/// `encode-sample` of vectors/manifests.json.
const SAMPLE: &str = r#"{
  "chapter_revision": 0,
  "hash_function": "blake3",
  "key": "abababababababababababababababababababababababababababababababab",
  "outputs": [
    {
      "workspace_absolute_path": "/proj/out/app.bin",
      "content_hash": "0101010101010101010101010101010101010101010101010101010101010101",
      "size": 12,
      "mode": 493
    },
    {
      "workspace_absolute_path": "/proj/out/notes \"v2\" \\ é 日本 🦀.txt",
      "content_hash": "fefefefefefefefefefefefefefefefefefefefefefefefefefefefefefefefe",
      "size": 0,
      "mode": 420
    }
  ],
  "stdout_len": 5,
  "stderr_len": 0,
  "stdout_hash": "0202020202020202020202020202020202020202020202020202020202020202",
  "stderr_hash": "0303030303030303030303030303030303030303030303030303030303030303",
  "exit_status": 0,
  "created_at_unix": 1763700000
}
"#;

/// The manifest haz-cache wrote for the fixture entry without outputs
/// (vectors/fixture, key 6395…).
const EMPTY_OUTPUTS: &str = r#"{
  "chapter_revision": 0,
  "hash_function": "blake3",
  "key": "63954041ed9a14743ce6cf7606196e422d3776078ca7e9230b29b51ad1ca614f",
  "outputs": [],
  "stdout_len": 0,
  "stderr_len": 0,
  "stdout_hash": "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262",
  "stderr_hash": "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262",
  "exit_status": 0,
  "created_at_unix": 1763700000
}
"#;

fn write_sample<W: fs::Write>(sink: W) -> Result<W, fs::Error> {
    let mut writer = ManifestWriter::begin(sink, &sample_head())?;
    writer.output(SAMPLE_PATHS[0], &digest(0x01), 12, 0o755)?;
    writer.output(SAMPLE_PATHS[1], &digest(0xfe), 0, 0o644)?;
    writer.finish(&sample_tail())
}

type Output = (String, Digest, u64, u32);

fn encode(head: &ManifestHead, outputs: &[Output], tail: &ManifestTail) -> Vec<u8> {
    let mut writer = ManifestWriter::begin(VecSink::default(), head).unwrap();
    for (path, hash, size, mode) in outputs {
        writer.output(path, hash, *size, *mode).unwrap();
    }
    writer.finish(tail).unwrap().0
}

fn reencode(bytes: &[u8]) -> Vec<u8> {
    let manifest = Manifest::parse(bytes).unwrap();
    write_manifest(&manifest, VecSink::default()).unwrap().0
}

fn collect(manifest: &Manifest<'_>) -> Vec<Output> {
    manifest
        .outputs()
        .map(|o| (o.path.as_str().to_string(), o.content_hash, o.size, o.mode))
        .collect()
}

// Compact documents assembled member by member, so that each test changes
// exactly one thing about an otherwise valid manifest.

type Members<'n> = Vec<(&'n str, String)>;

fn object(members: &[(&str, String)]) -> String {
    let body: Vec<String> = members
        .iter()
        .map(|(name, value)| format!("\"{name}\":{value}"))
        .collect();
    format!("{{{}}}", body.join(","))
}

fn output_members() -> Members<'static> {
    vec![
        ("workspace_absolute_path", "\"/a/b\"".to_string()),
        ("content_hash", hex(0x01)),
        ("size", "12".to_string()),
        ("mode", "420".to_string()),
    ]
}

fn top_members_with(outputs: String) -> Members<'static> {
    vec![
        ("chapter_revision", "0".to_string()),
        ("hash_function", "\"blake3\"".to_string()),
        ("key", hex(0xab)),
        ("outputs", outputs),
        ("stdout_len", "5".to_string()),
        ("stderr_len", "0".to_string()),
        ("stdout_hash", hex(0x02)),
        ("stderr_hash", hex(0x03)),
        ("exit_status", "0".to_string()),
        ("created_at_unix", "1763700000".to_string()),
    ]
}

fn top_members() -> Members<'static> {
    top_members_with(format!("[{}]", object(&output_members())))
}

fn replace(members: &mut Members<'_>, name: &str, value: &str) {
    let slot = members.iter_mut().find(|(n, _)| *n == name).unwrap();
    slot.1 = value.to_string();
}

/// A valid compact manifest with top-level member `name` set to `value`.
fn with_top(name: &str, value: &str) -> String {
    let mut members = top_members();
    replace(&mut members, name, value);
    object(&members)
}

/// A valid compact manifest whose one output has `name` set to `value`.
fn with_output(name: &str, value: &str) -> String {
    let mut output = output_members();
    replace(&mut output, name, value);
    object(&top_members_with(format!("[{}]", object(&output))))
}

fn path_manifest(path_json: &str) -> String {
    with_output("workspace_absolute_path", path_json)
}

#[track_caller]
fn error(text: impl AsRef<[u8]>) -> ManifestError {
    match Manifest::parse(text.as_ref()) {
        Ok(manifest) => panic!(
            "accepted {:?}: {manifest:?}",
            String::from_utf8_lossy(text.as_ref())
        ),
        Err(e) => e,
    }
}

#[track_caller]
fn kind(text: impl AsRef<[u8]>) -> ManifestErrorKind {
    error(text).kind()
}

#[track_caller]
fn parsed(text: &str) -> Manifest<'_> {
    match Manifest::parse(text.as_bytes()) {
        Ok(manifest) => manifest,
        Err(e) => panic!("rejected {text:?}: {e}"),
    }
}

#[track_caller]
fn only_path(text: &str) -> String {
    let manifest = parsed(text);
    let outputs = collect(&manifest);
    assert_eq!(outputs.len(), 1);
    outputs[0].0.clone()
}

// ---- MAN-2: writing ----

#[test]
fn man_2_writes_sample_byte_exact() {
    let written = write_sample(VecSink::default()).unwrap().0;
    assert_eq!(String::from_utf8(written).unwrap(), SAMPLE);
}

#[test]
fn man_2_empty_outputs_written_as_brackets() {
    let head = ManifestHead {
        chapter_revision: 0,
        hash_function: HashFunction::Blake3,
        key: Key::from_hex("63954041ed9a14743ce6cf7606196e422d3776078ca7e9230b29b51ad1ca614f")
            .unwrap(),
    };
    let empty_blake3 =
        Digest::from_hex("af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262")
            .unwrap();
    let tail = ManifestTail {
        stdout_len: 0,
        stderr_len: 0,
        stdout_hash: empty_blake3,
        stderr_hash: empty_blake3,
        exit_status: 0,
        created_at_unix: 1_763_700_000,
    };
    let written = encode(&head, &[], &tail);
    assert_eq!(String::from_utf8(written).unwrap(), EMPTY_OUTPUTS);
    assert_eq!(reencode(EMPTY_OUTPUTS.as_bytes()), EMPTY_OUTPUTS.as_bytes());
}

#[test]
fn man_2_escapes_only_quote_and_backslash() {
    let outputs = [("/q\"b\\s/é 日本 🦀/'%~".to_string(), digest(1), 1, 0o644)];
    let written = String::from_utf8(encode(&sample_head(), &outputs, &sample_tail())).unwrap();
    assert!(
        written.contains(r#""workspace_absolute_path": "/q\"b\\s/é 日本 🦀/'%~","#),
        "{written}"
    );
}

#[test]
fn man_2_writes_hex_lowercase_and_numbers_plain() {
    let head = ManifestHead {
        chapter_revision: 255,
        hash_function: HashFunction::Sha256,
        key: Key(digest(0xcd)),
    };
    let tail = ManifestTail {
        stdout_len: u64::MAX,
        stderr_len: 10,
        stdout_hash: digest(0xef),
        stderr_hash: digest(0x00),
        exit_status: i32::MIN,
        created_at_unix: 0,
    };
    let outputs = [("/x".to_string(), digest(0xa0), 0, u32::MAX)];
    let written = String::from_utf8(encode(&head, &outputs, &tail)).unwrap();
    for needle in [
        "\"chapter_revision\": 255,\n",
        "\"hash_function\": \"sha256\",\n",
        &format!("\"key\": \"{}\",\n", "cd".repeat(32)),
        &format!("\"content_hash\": \"{}\",\n", "a0".repeat(32)),
        "\"size\": 0,\n",
        "\"mode\": 4294967295\n",
        "\"stdout_len\": 18446744073709551615,\n",
        "\"stderr_len\": 10,\n",
        &format!("\"stdout_hash\": \"{}\",\n", "ef".repeat(32)),
        "\"exit_status\": -2147483648,\n",
        "\"created_at_unix\": 0\n}\n",
    ] {
        assert!(written.contains(needle), "{needle:?} not in {written}");
    }
    assert_eq!(reencode(written.as_bytes()), written.as_bytes());
}

#[test]
fn man_2_long_paths_cross_the_buffer_intact() {
    // Longer than the writer's buffer, and full of escapes.
    let mut path = String::from("/");
    while path.len() < MAX_PATH_BYTES - 4 {
        path.push_str("a\"\\日");
    }
    path.truncate(path.floor_char_boundary(MAX_PATH_BYTES));
    let outputs = [(path, digest(7), 3, 0o600)];
    let written = encode(&sample_head(), &outputs, &sample_tail());
    let manifest = Manifest::parse(&written).unwrap();
    assert_eq!(collect(&manifest), outputs);
    assert_eq!(reencode(&written), written);
}

#[test]
fn man_2_short_writes_give_the_same_bytes() {
    let trickled = write_sample(TrickleSink::default()).unwrap().0;
    assert_eq!(trickled, SAMPLE.as_bytes());
}

#[test]
fn man_2_sink_errors_are_reported() {
    let writer = ManifestWriter::begin(FailingSink, &sample_head());
    // The head fits the buffer; the failure surfaces when it is flushed.
    let result = writer.and_then(|w| w.finish(&sample_tail()));
    assert_eq!(
        result.err().map(|e| e.kind),
        Some(fs::ErrorKind::StorageFull)
    );
}

#[test]
fn path_3_writer_refuses_invalid_paths_and_writes_nothing() {
    let mut writer = ManifestWriter::begin(VecSink::default(), &sample_head()).unwrap();
    for bad in ["", "a", "/", "/a/../b", "/a\nb", "/a\u{202e}b", "/a/"] {
        assert_eq!(
            writer.output(bad, &digest(1), 1, 0o644).map_err(|e| e.kind),
            Err(fs::ErrorKind::InvalidInput),
            "{bad:?}"
        );
    }
    let written = writer.finish(&sample_tail()).unwrap().0;
    assert_eq!(written, encode(&sample_head(), &[], &sample_tail()));
}

// ---- MAN-3: reading ----

#[test]
fn man_3_reads_sample_values() {
    let manifest = parsed(SAMPLE);
    assert_eq!(manifest.head, sample_head());
    assert_eq!(manifest.tail, sample_tail());
    assert_eq!(manifest.output_count(), 2);
    assert_eq!(
        collect(&manifest),
        [
            (SAMPLE_PATHS[0].to_string(), digest(0x01), 12, 0o755),
            (SAMPLE_PATHS[1].to_string(), digest(0xfe), 0, 0o644),
        ]
    );
    assert_eq!(reencode(SAMPLE.as_bytes()), SAMPLE.as_bytes());
}

#[test]
fn man_3_accepts_any_whitespace_and_member_order() {
    let mut output = output_members();
    output.reverse();
    let mut members = top_members_with(format!("[{}]", object(&output)));
    members.reverse();
    let compact = object(&members);
    let manifest = parsed(&compact);
    assert_eq!(manifest.head, sample_head());
    assert_eq!(manifest.tail, sample_tail());
    assert_eq!(
        collect(&manifest),
        [("/a/b".to_string(), digest(1), 12, 420)]
    );

    // Every JSON whitespace character around every token.
    let spaced: String = compact
        .replace(',', " \t,\r\n ")
        .replace(':', "\n:\t")
        .replace('{', "\r{ ")
        .replace('}', " }\n")
        .replace('[', "[\t")
        .replace(']', "\r\n]");
    let spaced = format!(" \t\r\n{spaced}\n\n \t");
    let manifest = parsed(&spaced);
    assert_eq!(manifest.head, sample_head());
    assert_eq!(
        collect(&manifest),
        [("/a/b".to_string(), digest(1), 12, 420)]
    );
}

#[test]
fn man_3_rejects_non_json_whitespace() {
    // Form feed, vertical tab and NBSP are whitespace elsewhere, not in JSON.
    for ws in ["\u{c}", "\u{b}", "\u{a0}"] {
        assert!(Manifest::parse(format!("{ws}{}", object(&top_members())).as_bytes()).is_err());
        let inner = object(&top_members()).replacen(',', &format!("{ws},"), 1);
        assert!(Manifest::parse(inner.as_bytes()).is_err(), "{ws:?}");
    }
}

#[test]
fn man_3_rejects_unknown_member() {
    let mut members = top_members();
    members.push(("extra", "1".to_string()));
    assert_eq!(kind(object(&members)), ManifestErrorKind::UnknownMember);

    // An output member is unknown at the top, and the reverse.
    let mut members = top_members();
    members.push(("size", "1".to_string()));
    assert_eq!(kind(object(&members)), ManifestErrorKind::UnknownMember);
    let mut output = output_members();
    output.push(("key", hex(1)));
    let text = object(&top_members_with(format!("[{}]", object(&output))));
    assert_eq!(kind(text), ManifestErrorKind::UnknownMember);

    // Names compare exactly: case, and length beyond any known name.
    let mut members = top_members();
    members[0].0 = "Chapter_revision";
    assert_eq!(kind(object(&members)), ManifestErrorKind::UnknownMember);
    let mut members = top_members();
    members[0].0 = "chapter_revision_and_a_very_long_suffix_indeed";
    assert_eq!(kind(object(&members)), ManifestErrorKind::UnknownMember);
}

#[test]
fn man_3_rejects_missing_member() {
    for member in Member::TOP_LEVEL {
        let mut members = top_members();
        members.retain(|(name, _)| *name != member.name());
        let text = object(&members);
        let e = error(&text);
        assert_eq!(e.kind(), ManifestErrorKind::MissingMember { member });
        assert_eq!(e.offset(), text.len() - 1, "points at the closing brace");
    }
    for member in Member::OUTPUT {
        let mut output = output_members();
        output.retain(|(name, _)| *name != member.name());
        let text = object(&top_members_with(format!("[{}]", object(&output))));
        assert_eq!(kind(text), ManifestErrorKind::MissingMember { member });
    }
    assert!(matches!(
        kind("{}"),
        ManifestErrorKind::MissingMember { .. }
    ));
}

#[test]
fn man_3_rejects_duplicate_member() {
    for (index, member) in Member::TOP_LEVEL.into_iter().enumerate() {
        let mut members = top_members();
        let again = members[index].clone();
        members.push(again);
        assert_eq!(
            kind(object(&members)),
            ManifestErrorKind::DuplicateMember { member }
        );
    }
    for (index, member) in Member::OUTPUT.into_iter().enumerate() {
        let mut output = output_members();
        let again = output[index].clone();
        output.insert(0, again);
        let text = object(&top_members_with(format!("[{}]", object(&output))));
        assert_eq!(kind(text), ManifestErrorKind::DuplicateMember { member });
    }
    // A duplicate spelled differently is still a duplicate once decoded.
    let mut members = top_members();
    members.push(("k\\u0065y", hex(0xab)));
    assert_eq!(
        kind(object(&members)),
        ManifestErrorKind::DuplicateMember {
            member: Member::Key
        }
    );
}

#[test]
fn man_3_rejects_wrong_types() {
    let cases: [(&str, &str, ValueType); 10] = [
        ("chapter_revision", "\"0\"", ValueType::String),
        ("hash_function", "0", ValueType::Number),
        ("key", "1", ValueType::Number),
        ("outputs", "null", ValueType::Null),
        ("outputs", "{}", ValueType::Object),
        ("stdout_len", "true", ValueType::Bool),
        ("stderr_len", "[5]", ValueType::Array),
        ("stdout_hash", "false", ValueType::Bool),
        ("exit_status", "\"0\"", ValueType::String),
        ("created_at_unix", "null", ValueType::Null),
    ];
    for (name, value, found) in cases {
        let member = Member::TOP_LEVEL
            .into_iter()
            .find(|m| m.name() == name)
            .unwrap();
        assert_eq!(
            kind(with_top(name, value)),
            ManifestErrorKind::WrongType { member, found },
            "{name}: {value}"
        );
    }
    let cases: [(&str, &str, ValueType); 4] = [
        ("workspace_absolute_path", "1", ValueType::Number),
        ("content_hash", "[]", ValueType::Array),
        ("size", "\"1\"", ValueType::String),
        ("mode", "{}", ValueType::Object),
    ];
    for (name, value, found) in cases {
        let member = Member::OUTPUT
            .into_iter()
            .find(|m| m.name() == name)
            .unwrap();
        assert_eq!(
            kind(with_output(name, value)),
            ManifestErrorKind::WrongType { member, found },
            "{name}: {value}"
        );
    }
    // Elements of `outputs` must be objects.
    for elements in ["[1]", "[\"/a\"]", "[null]", "[[]]"] {
        assert!(matches!(
            kind(with_top("outputs", elements)),
            ManifestErrorKind::WrongType {
                member: Member::Outputs,
                ..
            }
        ));
    }
    // Not JSON at all where a value belongs.
    assert_eq!(
        kind(with_top("stdout_len", "x")),
        ManifestErrorKind::Syntax {
            expected: Expected::Value
        }
    );
}

#[test]
fn man_3_integer_ranges() {
    let accepted = [
        ("chapter_revision", "255"),
        ("stdout_len", "18446744073709551615"),
        ("stderr_len", "0"),
        ("created_at_unix", "18446744073709551615"),
        ("exit_status", "2147483647"),
        ("exit_status", "-2147483648"),
        ("exit_status", "-1"),
    ];
    for (name, value) in accepted {
        assert!(
            Manifest::parse(with_top(name, value).as_bytes()).is_ok(),
            "{name}: {value}"
        );
    }
    for (name, value) in [("size", "18446744073709551615"), ("mode", "4294967295")] {
        assert!(
            Manifest::parse(with_output(name, value).as_bytes()).is_ok(),
            "{name}: {value}"
        );
    }
    assert_eq!(
        parsed(&with_top("exit_status", "-2147483648"))
            .tail
            .exit_status,
        i32::MIN
    );

    let rejected = [
        ("chapter_revision", "256", Member::ChapterRevision),
        ("chapter_revision", "-1", Member::ChapterRevision),
        ("stdout_len", "18446744073709551616", Member::StdoutLen),
        (
            "stdout_len",
            "99999999999999999999999999",
            Member::StdoutLen,
        ),
        ("stderr_len", "-1", Member::StderrLen),
        ("created_at_unix", "-5", Member::CreatedAtUnix),
        ("exit_status", "2147483648", Member::ExitStatus),
        ("exit_status", "-2147483649", Member::ExitStatus),
        ("exit_status", "-18446744073709551616", Member::ExitStatus),
    ];
    for (name, value, member) in rejected {
        assert_eq!(
            kind(with_top(name, value)),
            ManifestErrorKind::NumberOutOfRange { member },
            "{name}: {value}"
        );
    }
    for (name, value, member) in [
        ("size", "18446744073709551616", Member::Size),
        ("size", "-1", Member::Size),
        ("mode", "4294967296", Member::Mode),
        ("mode", "-420", Member::Mode),
    ] {
        assert_eq!(
            kind(with_output(name, value)),
            ManifestErrorKind::NumberOutOfRange { member },
            "{name}: {value}"
        );
    }
}

#[test]
fn man_3_rejects_fractions_and_exponents() {
    for value in [
        "0.0",
        "5.5",
        "1e3",
        "1E3",
        "5e+0",
        "5e-0",
        "18446744073709551616.0",
    ] {
        assert_eq!(
            kind(with_top("stdout_len", value)),
            ManifestErrorKind::NotAnInteger {
                member: Member::StdoutLen
            },
            "{value}"
        );
    }
    assert_eq!(
        kind(with_output("mode", "420.0")),
        ManifestErrorKind::NotAnInteger {
            member: Member::Mode
        }
    );
}

#[test]
fn man_3_rejects_leading_zeros_and_malformed_numbers() {
    for value in ["00", "01", "-01", "007"] {
        assert_eq!(
            kind(with_top("exit_status", value)),
            ManifestErrorKind::LeadingZero,
            "{value}"
        );
    }
    for value in ["-", "-x", "+1", "--1", "- 1"] {
        assert!(
            Manifest::parse(with_top("exit_status", value).as_bytes()).is_err(),
            "{value}"
        );
    }
    assert_eq!(
        kind(with_top("exit_status", "-0")),
        ManifestErrorKind::NegativeZero {
            member: Member::ExitStatus
        }
    );
    assert_eq!(
        kind(with_top("stdout_len", "-0")),
        ManifestErrorKind::NegativeZero {
            member: Member::StdoutLen
        }
    );
    // A number runs into the next token only through a delimiter.
    assert_eq!(
        kind(with_top("stdout_len", "5x")),
        ManifestErrorKind::Syntax {
            expected: Expected::CommaOrObjectEnd
        }
    );
}

#[test]
fn man_3_rejects_trailing_non_whitespace() {
    assert!(Manifest::parse(format!("{SAMPLE} \n\t\r").as_bytes()).is_ok());
    for trailer in ["x", "{}", SAMPLE, "\0", ",", "\u{a0}"] {
        let e = error(format!("{SAMPLE}{trailer}"));
        assert_eq!(
            e.kind(),
            ManifestErrorKind::TrailingCharacters,
            "{trailer:?}"
        );
        assert_eq!(e.offset(), SAMPLE.len());
    }
}

#[test]
fn man_3_rejects_byte_order_mark() {
    assert_eq!(
        error(format!("\u{feff}{SAMPLE}")),
        ManifestError::new(0, ManifestErrorKind::ByteOrderMark)
    );
}

#[test]
fn man_3_rejects_non_objects_and_empty_input() {
    assert_eq!(kind(""), ManifestErrorKind::UnexpectedEnd);
    assert_eq!(kind(" \n\t"), ManifestErrorKind::UnexpectedEnd);
    for (text, found) in [
        ("[]", ValueType::Array),
        ("null", ValueType::Null),
        ("\"x\"", ValueType::String),
        ("1", ValueType::Number),
        ("true", ValueType::Bool),
    ] {
        assert_eq!(kind(text), ManifestErrorKind::NotAnObject { found });
    }
    assert_eq!(
        kind("x"),
        ManifestErrorKind::Syntax {
            expected: Expected::Value
        }
    );
}

#[test]
fn man_3_rejects_every_truncation() {
    // Without its final newline the sample is still complete; every shorter
    // prefix is not.
    let bytes = SAMPLE.as_bytes();
    for end in 0..bytes.len() - 1 {
        assert!(
            Manifest::parse(&bytes[..end]).is_err(),
            "prefix of {end} bytes"
        );
    }
    assert!(Manifest::parse(&bytes[..bytes.len() - 1]).is_ok());
}

#[test]
fn man_3_rejects_syntax_errors() {
    let text = object(&top_members());
    for (from, to, expected) in [
        ("\"key\":", "\"key\" ", Expected::Colon),
        (",\"key\"", " \"key\"", Expected::CommaOrObjectEnd),
        ("}],", "} {}],", Expected::CommaOrArrayEnd),
        ("{\"chapter", "{chapter", Expected::MemberName),
        ("}],", "},],", Expected::Value),
        (
            "\"created_at_unix\":1763700000}",
            "\"created_at_unix\":1763700000,}",
            Expected::MemberName,
        ),
    ] {
        let broken = text.replacen(from, to, 1);
        assert_ne!(broken, text, "{from}");
        assert_eq!(kind(broken), ManifestErrorKind::Syntax { expected }, "{to}");
    }
}

#[test]
fn man_3_rejects_raw_control_characters_in_strings() {
    for control in ['\0', '\t', '\n', '\r', '\u{1f}'] {
        let e = error(path_manifest(&format!("\"/a{control}b\"")));
        assert_eq!(
            e.kind(),
            ManifestErrorKind::ControlCharacterInString,
            "{control:?}"
        );
    }
    // In member names too.
    let mut members = top_members();
    members[0].0 = "chapter\trevision";
    assert_eq!(
        kind(object(&members)),
        ManifestErrorKind::ControlCharacterInString
    );
}

#[test]
fn man_3_rejects_invalid_utf8() {
    let good = path_manifest("\"/ab\"");
    let at = good.find("/ab").unwrap() + 1;
    for bad in [
        &[0xff][..],
        &[0xc0, 0xaf],             // overlong '/'
        &[0xed, 0xa0, 0x80],       // encoded surrogate
        &[0xe6, 0x97],             // truncated sequence
        &[0xf4, 0x90, 0x80, 0x80], // above U+10FFFF
    ] {
        let mut bytes = good.as_bytes().to_vec();
        bytes.splice(at..at, bad.iter().copied());
        let e = error(&bytes);
        assert_eq!(
            e,
            ManifestError::new(at, ManifestErrorKind::InvalidUtf8),
            "{bad:x?}"
        );
    }
}

#[test]
fn man_3_rejects_lone_surrogates() {
    for escaped in [
        "\"/\\ud83e\"",
        "\"/\\udd80\"",
        "\"/\\ud83ex\"",
        "\"/\\ud83e\\n\"",
        "\"/\\ud83e\\u0041\"",
        "\"/\\ud83e\\ud83e\"",
        "\"/\\udd80\\ud83e\"",
    ] {
        assert_eq!(
            kind(path_manifest(escaped)),
            ManifestErrorKind::LoneSurrogate,
            "{escaped}"
        );
    }
}

#[test]
fn man_3_rejects_invalid_escapes() {
    for escaped in [
        "\"/\\x41\"",
        "\"/\\'\"",
        "\"/\\U0041\"",
        "\"/\\u12\"",
        "\"/\\u12G4\"",
        "\"/\\ud83e\\udG80\"",
        "\"/\\ \"",
    ] {
        assert_eq!(
            kind(path_manifest(escaped)),
            ManifestErrorKind::InvalidEscape,
            "{escaped}"
        );
    }
}

#[test]
fn man_3_decodes_escapes_before_validation() {
    assert_eq!(only_path(&path_manifest("\"/a\\/b\"")), "/a/b");
    assert_eq!(only_path(&path_manifest("\"/\\u0041\\u00e9\"")), "/Aé");
    assert_eq!(only_path(&path_manifest("\"/\\ud83e\\udd80\"")), "/🦀");
    assert_eq!(only_path(&path_manifest("\"/\\uD83E\\uDD80\"")), "/🦀");
    assert_eq!(only_path(&path_manifest("\"/a\\\"b\\\\c\"")), "/a\"b\\c");
    assert_eq!(only_path(&path_manifest("\"\\/x\"")), "/x");
    for (escaped, error) in [
        ("\"/\\u002e\\u002e/x\"", PathError::DotDotSegment),
        ("\"/a\\/\\u002e/x\"", PathError::DotSegment),
        ("\"/a\\/\"", PathError::TrailingSlash),
        ("\"/a\\/\\/b\"", PathError::EmptySegment),
        ("\"\\u0061\"", PathError::NotAbsolute),
        (
            "\"/a\\nb\"",
            PathError::ForbiddenCharacter { character: '\n' },
        ),
        (
            "\"/a\\u0000b\"",
            PathError::ForbiddenCharacter { character: '\0' },
        ),
        (
            "\"/a\\u202eb\"",
            PathError::ForbiddenCharacter {
                character: '\u{202e}',
            },
        ),
    ] {
        assert_eq!(
            kind(path_manifest(escaped)),
            ManifestErrorKind::InvalidPath { error },
            "{escaped}"
        );
    }
    // Member names, hash function names and hex digits are decoded too.
    let mut members = top_members();
    members[2].0 = "\\u006b\\u0065\\u0079";
    members[1].1 = "\"bl\\u0061ke3\"".to_string();
    members[6].1 = format!("\"\\u0030{}\"", &"02".repeat(32)[1..]);
    let text = object(&members);
    let manifest = parsed(&text);
    assert_eq!(manifest.head, sample_head());
    assert_eq!(manifest.tail.stdout_hash, digest(0x02));
}

#[test]
fn man_3_hex_either_case_exactly_64_digits() {
    let upper = format!("\"{}\"", "AB".repeat(32));
    let mixed = format!("\"{}\"", "aB".repeat(32));
    assert_eq!(parsed(&with_top("key", &upper)).head.key, Key(digest(0xab)));
    assert_eq!(parsed(&with_top("key", &mixed)).head.key, Key(digest(0xab)));
    let cases = [
        ("a".repeat(63), HexError::WrongLength { len: 63 }),
        ("a".repeat(65), HexError::WrongLength { len: 65 }),
        ("a".repeat(200), HexError::WrongLength { len: 200 }),
        (String::new(), HexError::WrongLength { len: 0 }),
        ("z".repeat(64), HexError::InvalidDigit { index: 0 }),
        (
            format!("{} {}", "a".repeat(31), "a".repeat(32)),
            HexError::InvalidDigit { index: 31 },
        ),
    ];
    for (digits, error) in cases {
        assert_eq!(
            kind(with_top("stderr_hash", &format!("\"{digits}\""))),
            ManifestErrorKind::InvalidHex {
                member: Member::StderrHash,
                error
            },
            "{digits}"
        );
    }
    assert!(matches!(
        kind(with_output("content_hash", "\"0x01\"")),
        ManifestErrorKind::InvalidHex {
            member: Member::ContentHash,
            ..
        }
    ));
}

#[test]
fn man_1_hash_function_is_blake3_or_sha256() {
    assert_eq!(
        parsed(&with_top("hash_function", "\"sha256\""))
            .head
            .hash_function,
        HashFunction::Sha256
    );
    for name in ["BLAKE3", "Sha256", "md5", "", "blake3 ", "blake3blake3"] {
        assert_eq!(
            kind(with_top("hash_function", &format!("\"{name}\""))),
            ManifestErrorKind::UnknownHashFunction,
            "{name}"
        );
    }
}

#[test]
fn man_3_accepts_any_chapter_revision_and_exit_status() {
    // Whether they are current is lookup's verdict (OP-1), not the reader's.
    assert_eq!(
        parsed(&with_top("chapter_revision", "7"))
            .head
            .chapter_revision,
        7
    );
    assert_eq!(parsed(&with_top("exit_status", "3")).tail.exit_status, 3);
}

#[test]
fn path_3_rejects_invalid_paths() {
    for (path, error) in [
        ("", PathError::Empty),
        ("a/b", PathError::NotAbsolute),
        ("/", PathError::Root),
        ("/a//b", PathError::EmptySegment),
        ("/a/", PathError::TrailingSlash),
        ("/a/./b", PathError::DotSegment),
        ("/../etc/passwd", PathError::DotDotSegment),
        (
            "/a\u{200b}b",
            PathError::ForbiddenCharacter {
                character: '\u{200b}',
            },
        ),
        (
            "/a\u{feff}b",
            PathError::ForbiddenCharacter {
                character: '\u{feff}',
            },
        ),
        (
            "/a\u{85}b",
            PathError::ForbiddenCharacter {
                character: '\u{85}',
            },
        ),
    ] {
        let text = path_manifest(&format!("\"{path}\""));
        let e = error_at_path(&text);
        assert_eq!(
            e.kind(),
            ManifestErrorKind::InvalidPath { error },
            "{path:?}"
        );
    }
}

/// The error for a manifest whose path is invalid, checking that it points
/// at the path's opening quote.
#[track_caller]
fn error_at_path(text: &str) -> ManifestError {
    let e = error(text);
    let value = text.find("\"workspace_absolute_path\":").unwrap() + 26;
    assert_eq!(e.offset(), value);
    e
}

#[test]
fn path_3_length_cap_applies_to_the_decoded_path() {
    // 4096 decoded bytes written as 6-byte escapes is fine...
    let mut escaped = String::from("\"/");
    let mut decoded = String::from("/");
    while decoded.len() < MAX_PATH_BYTES {
        escaped.push_str("\\u0061");
        decoded.push('a');
    }
    escaped.push('"');
    assert_eq!(only_path(&path_manifest(&escaped)), decoded);
    // ...one byte more is not, whatever the spelling.
    let long = format!("\"{decoded}b\"");
    assert_eq!(
        kind(path_manifest(&long)),
        ManifestErrorKind::InvalidPath {
            error: PathError::TooLong
        }
    );
    let long = format!("\"/{}\"", "x/".repeat(100_000));
    assert_eq!(
        kind(path_manifest(&long)),
        ManifestErrorKind::InvalidPath {
            error: PathError::TooLong
        }
    );
}

#[test]
fn man_3_accepts_duplicate_output_path() {
    let one = object(&output_members());
    let text = object(&top_members_with(format!("[{one},{one}]")));
    let manifest = parsed(&text);
    assert_eq!(manifest.output_count(), 2);
    let outputs = collect(&manifest);
    assert_eq!(outputs[0], outputs[1]);
}

#[test]
fn man_3_errors_say_what_and_where() {
    let text = with_top("chapter_revision", "256");
    let e = error(&text);
    let at = text.find("256").unwrap();
    assert_eq!(e.offset(), at);
    let message = e.to_string();
    assert!(message.contains(&format!("byte {at}")), "{message}");
    assert!(message.contains("chapter_revision"), "{message}");
    assert!(message.contains("0..=255"), "{message}");

    let message = error(path_manifest("\"/a/../b\"")).to_string();
    assert!(message.contains("workspace_absolute_path"), "{message}");
    assert!(message.contains("'..'"), "{message}");
}

// ---- MAN-4 and SAFE-1 ----

#[test]
fn man_4_no_limit_on_output_count() {
    let outputs: Vec<Output> = (0..50_000u32)
        .map(|i| (format!("/out/{i}"), digest(i as u8), u64::from(i), i))
        .collect();
    let written = encode(&sample_head(), &outputs, &sample_tail());
    let manifest = Manifest::parse(&written).unwrap();
    assert_eq!(manifest.output_count(), outputs.len());
    assert_eq!(manifest.outputs().len(), outputs.len());
    assert!(
        manifest
            .outputs()
            .map(|o| (o.path.as_str().to_string(), o.content_hash, o.size, o.mode))
            .eq(outputs)
    );
    // The span is re-read, not consumed: a second pass sees the same.
    assert_eq!(manifest.outputs().count(), manifest.output_count());
    assert_eq!(
        write_manifest(&manifest, VecSink::default()).unwrap().0,
        written
    );
}

#[test]
fn safe_1_deep_nesting_is_refused_without_recursion() {
    let depth = 1_000_000;
    let deep = with_top("outputs", &"[".repeat(depth));
    let e = error(&deep);
    assert_eq!(
        e.kind(),
        ManifestErrorKind::WrongType {
            member: Member::Outputs,
            found: ValueType::Array
        }
    );
    assert_eq!(e.offset(), deep.find("[[").unwrap() + 1);
    let deep = with_output("size", &"{\"a\":".repeat(depth));
    assert!(matches!(kind(deep), ManifestErrorKind::WrongType { .. }));
    assert!(Manifest::parse("{".repeat(depth).as_bytes()).is_err());
    assert!(Manifest::parse("[".repeat(depth).as_bytes()).is_err());
}

fn path_strategy() -> impl Strategy<Value = String> {
    let character = prop_oneof![
        3 => prop::sample::select(vec![
            '"', '\\', 'a', 'Z', '0', '.', ' ', '-', '_', '\'', '%', '~', 'é', '日', '本', '🦀', '\u{a0}',
        ]),
        1 => any::<char>().prop_filter("PATH-2", |c| *c != '/' && !crate::path::is_forbidden_character(*c)),
    ];
    let segment = prop::collection::vec(character, 1..8)
        .prop_map(|chars| chars.into_iter().collect::<String>())
        .prop_filter("no . or .. segments", |s| s != "." && s != "..");
    prop::collection::vec(segment, 1..5).prop_map(|segments| format!("/{}", segments.join("/")))
}

fn digest_strategy() -> impl Strategy<Value = Digest> {
    any::<[u8; 32]>().prop_map(Digest)
}

fn head_strategy() -> impl Strategy<Value = ManifestHead> {
    (
        any::<u8>(),
        prop::sample::select(HashFunction::ALL.to_vec()),
        digest_strategy(),
    )
        .prop_map(|(chapter_revision, hash_function, key)| ManifestHead {
            chapter_revision,
            hash_function,
            key: Key(key),
        })
}

fn tail_strategy() -> impl Strategy<Value = ManifestTail> {
    (
        any::<u64>(),
        any::<u64>(),
        digest_strategy(),
        digest_strategy(),
        any::<i32>(),
        any::<u64>(),
    )
        .prop_map(
            |(stdout_len, stderr_len, stdout_hash, stderr_hash, exit_status, created_at_unix)| {
                ManifestTail {
                    stdout_len,
                    stderr_len,
                    stdout_hash,
                    stderr_hash,
                    exit_status,
                    created_at_unix,
                }
            },
        )
}

fn outputs_strategy() -> impl Strategy<Value = Vec<Output>> {
    prop::collection::vec(
        (
            path_strategy(),
            digest_strategy(),
            any::<u64>(),
            any::<u32>(),
        ),
        0..20,
    )
}

/// Checks `Outputs::advance` against decoding: skipping `k` outputs lands
/// where `k` calls of `next_into` would, for every `k`.
fn check_advance(manifest: &Manifest<'_>) -> Result<(), TestCaseError> {
    let all = collect(manifest);
    for k in 0..=all.len() + 1 {
        let mut outputs = manifest.outputs();
        prop_assert_eq!(outputs.advance(k), k.min(all.len()));
        let rest: Vec<Output> = outputs
            .map(|o| (o.path.as_str().to_string(), o.content_hash, o.size, o.mode))
            .collect();
        prop_assert_eq!(&rest[..], all.get(k..).unwrap_or_default());
    }
    Ok(())
}

#[test]
fn man_4_advance_skips_outputs_exactly_whatever_their_text_holds() {
    // Escaped quotes and backslashes, a `}` raw and escaped, a surrogate
    // pair, uppercase hex, members in another order, whitespace anywhere.
    let paths = [
        "\"/a\\\"}\\\\b\"",
        "\"/c\\u007d{\\/d\"",
        "\"/\\ud83e\\udd80 }\"",
    ];
    let mut elements = Vec::new();
    for (i, path) in paths.iter().enumerate() {
        elements.push(format!(
            " \n\t{{ \"size\" : {i} ,\"workspace_absolute_path\":{path},\r\n \"mode\":420, \"content_hash\": \"{}\" }} ",
            "AB".repeat(32)
        ));
    }
    let text = object(&top_members_with(format!("[{}]", elements.join(","))));
    let manifest = parsed(&text);
    assert_eq!(manifest.output_count(), 3);
    check_advance(&manifest).unwrap();
}

proptest! {
    #[test]
    fn man_2_man_3_write_parse_write_roundtrip(
        head in head_strategy(),
        outputs in outputs_strategy(),
        tail in tail_strategy(),
    ) {
        let written = encode(&head, &outputs, &tail);
        let manifest = Manifest::parse(&written)
            .map_err(|e| TestCaseError::fail(format!("{e}")))?;
        prop_assert_eq!(manifest.head, head);
        prop_assert_eq!(manifest.tail, tail);
        prop_assert_eq!(manifest.output_count(), outputs.len());
        prop_assert_eq!(collect(&manifest), outputs);
        // MAN-4: skipping outputs lands where decoding them would.
        check_advance(&manifest)?;
        let rewritten = write_manifest(&manifest, VecSink::default()).unwrap().0;
        prop_assert_eq!(rewritten, written);
    }

    #[test]
    fn safe_1_arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(manifest) = Manifest::parse(&bytes) {
            prop_assert_eq!(manifest.outputs().count(), manifest.output_count());
        }
    }

    #[test]
    fn safe_1_mutated_manifests_never_panic(
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0..3u8), 1..6),
    ) {
        let mut bytes = SAMPLE.as_bytes().to_vec();
        for (index, byte, op) in edits {
            let at = index.index(bytes.len() + 1);
            match op {
                0 if at < bytes.len() => bytes[at] = byte,
                1 => bytes.insert(at, byte),
                _ if at < bytes.len() => { bytes.remove(at); }
                _ => {}
            }
        }
        // Whatever is accepted re-encodes to a fixed point with the same
        // values, and its outputs iterate without loss.
        if let Ok(manifest) = Manifest::parse(&bytes) {
            prop_assert_eq!(manifest.outputs().count(), manifest.output_count());
            let once = write_manifest(&manifest, VecSink::default()).unwrap().0;
            let again = Manifest::parse(&once)
                .map_err(|e| TestCaseError::fail(format!("{e}")))?;
            prop_assert_eq!(again.head, manifest.head);
            prop_assert_eq!(again.tail, manifest.tail);
            prop_assert_eq!(collect(&again), collect(&manifest));
            prop_assert_eq!(reencode(&once), once);
        }
    }
}
