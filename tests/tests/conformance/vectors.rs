//! Conformance with the reference vectors (SPEC KEY-9, MAN-2, MAN-3,
//! DISK-1..5).
//!
//! Reads the directory named by `CACHET_VECTORS_DIR` (default: the
//! workspace's `../shared/vectors`), checks every case of every file and
//! every entry of `fixture/` (OP-1 hit, OP-3 exact restore, on a copy of
//! the directory through the native binding), fails
//! naming the first case of each file that disagrees, and prints how many
//! cases each section checked, so that a run over another directory of the
//! same format is meaningful.
//!
//! Run with `cargo test -p cachet-tests --test conformance vectors -- --nocapture`.

use core::fmt::Display;
use std::path::{Path, PathBuf};

use cachet_core::hash::{Digest, HashFunction};
use cachet_core::key::{
    Action, HostVariable, InputFile, Key, KeyComponents, Override, Predecessor, derive_key,
};
use cachet_core::layout;
use cachet_core::manifest::{Manifest, write_manifest};
use serde::Deserialize;
use serde::de::DeserializeOwned;

/// The `0123456789abcdef` of layout.json's scratch-dir names.
const SCRATCH_SUFFIX: u64 = 0x0123_4567_89ab_cdef;

fn vectors_dir() -> PathBuf {
    match std::env::var_os("CACHET_VECTORS_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/vectors")),
    }
}

fn load<T: DeserializeOwned>(dir: &Path, file: &str) -> Result<Vec<T>, String> {
    let path = dir.join(file);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let cases: Vec<T> = serde_json::from_str(&text)
        .map_err(|e| format!("{} does not have the expected format: {e}", path.display()))?;
    // An empty file would make the section pass without checking anything.
    if cases.is_empty() {
        return Err(format!("{} holds no cases", path.display()));
    }
    Ok(cases)
}

fn digest(name: &str, field: &str, hex: &str) -> Result<Digest, String> {
    Digest::from_hex(hex).map_err(|e| format!("case {name:?}: {field} {hex:?}: {e}"))
}

// ---- keys.json (KEY-1..9) ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyCase {
    name: String,
    hash_function: String,
    action: ActionCase,
    input_files: Vec<InputFileCase>,
    predecessors: Vec<PredecessorCase>,
    env: EnvCase,
    key: String,
}

/// `{"command": [...]}` or `{"shell": ..., "script": ...}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ActionCase {
    command: Option<Vec<String>>,
    shell: Option<String>,
    script: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InputFileCase {
    path: String,
    content_hash: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PredecessorCase {
    project: String,
    task: String,
    stdout_hash: String,
    stderr_hash: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EnvCase {
    from_host: Vec<(String, Option<String>)>,
    overrides: Vec<(String, String)>,
}

fn check_key_case(case: &KeyCase) -> Result<(), String> {
    let name = &case.name;
    let hash_function = HashFunction::from_name(&case.hash_function).ok_or_else(|| {
        format!(
            "case {name:?}: unknown hash_function {:?}",
            case.hash_function
        )
    })?;
    let argv: Vec<&str>;
    let action = match (
        &case.action.command,
        &case.action.shell,
        &case.action.script,
    ) {
        (Some(command), None, None) => {
            argv = command.iter().map(String::as_str).collect();
            Action::Command(&argv)
        }
        (None, Some(shell), Some(script)) => Action::Shell { shell, script },
        _ => {
            return Err(format!(
                "case {name:?}: action is neither {{command}} nor {{shell, script}}"
            ));
        }
    };
    let mut input_files = case
        .input_files
        .iter()
        .map(|f| {
            Ok(InputFile {
                path: &f.path,
                content_hash: digest(name, "input_files.content_hash", &f.content_hash)?,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    let mut predecessors = case
        .predecessors
        .iter()
        .map(|p| {
            Ok(Predecessor {
                project: &p.project,
                task: &p.task,
                stdout_hash: digest(name, "predecessors.stdout_hash", &p.stdout_hash)?,
                stderr_hash: digest(name, "predecessors.stderr_hash", &p.stderr_hash)?,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    let mut from_host: Vec<HostVariable<'_>> = case
        .env
        .from_host
        .iter()
        .map(|(name, value)| HostVariable {
            name,
            value: value.as_deref(),
        })
        .collect();
    let mut overrides: Vec<Override<'_>> = case
        .env
        .overrides
        .iter()
        .map(|(name, value)| Override { name, value })
        .collect();
    // Components go in as the file lists them: sorting is derive_key's job
    // (KEY-8).
    let key = derive_key(&mut KeyComponents {
        hash_function,
        action,
        input_files: &mut input_files,
        predecessors: &mut predecessors,
        from_host: &mut from_host,
        overrides: &mut overrides,
    })
    .map_err(|e| format!("case {name:?}: derive_key failed: {e}"))?;
    if key.to_hex().as_str() != case.key {
        return Err(format!(
            "case {name:?}: derived key {} but the vector says {}",
            key.to_hex().as_str(),
            case.key
        ));
    }
    Ok(())
}

fn check_keys(dir: &Path) -> Result<usize, String> {
    let cases: Vec<KeyCase> = load(dir, "keys.json")?;
    for case in &cases {
        check_key_case(case)?;
    }
    Ok(cases.len())
}

// ---- manifests.json (MAN-2, MAN-3) ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields, tag = "kind", rename_all = "lowercase")]
enum ManifestCase {
    Encode {
        name: String,
        bytes: String,
    },
    Parse {
        name: String,
        bytes: String,
        accepted: bool,
    },
}

/// Where two byte strings first differ, with a little context of each.
fn first_difference(written: &[u8], expected: &[u8]) -> String {
    let at = written
        .iter()
        .zip(expected)
        .position(|(a, b)| a != b)
        .unwrap_or(written.len().min(expected.len()));
    let context = |bytes: &[u8]| {
        let start = at.saturating_sub(20);
        let end = (at + 20).min(bytes.len());
        String::from_utf8_lossy(&bytes[start.min(end)..end]).into_owned()
    };
    format!(
        "first difference at byte {at} (written {} bytes, expected {}): written {:?}, expected {:?}",
        written.len(),
        expected.len(),
        context(written),
        context(expected)
    )
}

fn check_manifest_case(case: &ManifestCase) -> Result<(), String> {
    match case {
        ManifestCase::Encode { name, bytes } => {
            let manifest = Manifest::parse(bytes.as_bytes())
                .map_err(|e| format!("case {name:?} (encode): parse failed: {e}"))?;
            let written = write_manifest(&manifest, Vec::new())
                .map_err(|e| format!("case {name:?} (encode): write failed: {e}"))?;
            if written != bytes.as_bytes() {
                return Err(format!(
                    "case {name:?} (encode): re-encoded bytes differ: {}",
                    first_difference(&written, bytes.as_bytes())
                ));
            }
        }
        ManifestCase::Parse {
            name,
            bytes,
            accepted,
        } => match (Manifest::parse(bytes.as_bytes()), accepted) {
            (Ok(_), true) | (Err(_), false) => {}
            (Ok(manifest), false) => {
                return Err(format!(
                    "case {name:?} (parse): accepted, but the vector rejects it ({manifest:?})"
                ));
            }
            (Err(e), true) => {
                return Err(format!(
                    "case {name:?} (parse): rejected ({e}), but the vector accepts it"
                ));
            }
        },
    }
    Ok(())
}

fn check_manifests(dir: &Path) -> Result<usize, String> {
    let cases: Vec<ManifestCase> = load(dir, "manifests.json")?;
    for case in &cases {
        check_manifest_case(case)?;
    }
    Ok(cases.len())
}

// ---- layout.json (DISK-1..5) ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LayoutCase {
    key: String,
    cache_root_from_workspace: String,
    shard: String,
    entry_dir: String,
    manifest: String,
    stdout: String,
    stderr: String,
    outputs_dir: String,
    output_blob_for_content_hash_00ff: String,
    tmp_entry_dir_with_suffix_0123456789abcdef: String,
    restore_staging_dir_with_suffix_0123456789abcdef: String,
}

fn check_layout_case(case: &LayoutCase) -> Result<(), String> {
    let name = &case.key;
    let key = Key::from_hex(&case.key).map_err(|e| format!("case {name:?}: key: {e}"))?;
    let mut content_hash = [0u8; 32];
    content_hash[31] = 0xff;
    let content_hash = Digest(content_hash);
    let fields: [(&str, &dyn Display, &str); 10] = [
        (
            "cache_root_from_workspace",
            &layout::HAZ_CACHE_DIR,
            &case.cache_root_from_workspace,
        ),
        ("shard", &layout::shard(&key), &case.shard),
        ("entry_dir", &layout::entry_dir(&key), &case.entry_dir),
        ("manifest", &layout::manifest(&key), &case.manifest),
        ("stdout", &layout::stdout(&key), &case.stdout),
        ("stderr", &layout::stderr(&key), &case.stderr),
        ("outputs_dir", &layout::outputs_dir(&key), &case.outputs_dir),
        (
            "output_blob_for_content_hash_00ff",
            &layout::blob(&key, &content_hash),
            &case.output_blob_for_content_hash_00ff,
        ),
        (
            "tmp_entry_dir_with_suffix_0123456789abcdef",
            &layout::store_scratch_dir(&key, SCRATCH_SUFFIX),
            &case.tmp_entry_dir_with_suffix_0123456789abcdef,
        ),
        (
            "restore_staging_dir_with_suffix_0123456789abcdef",
            &layout::restore_scratch_dir(&key, SCRATCH_SUFFIX),
            &case.restore_staging_dir_with_suffix_0123456789abcdef,
        ),
    ];
    for (field, computed, expected) in fields {
        let computed = computed.to_string();
        if computed != expected {
            return Err(format!(
                "case {name:?}: {field} is {computed:?} but the vector says {expected:?}"
            ));
        }
    }
    Ok(())
}

fn check_layout(dir: &Path) -> Result<usize, String> {
    let cases: Vec<LayoutCase> = load(dir, "layout.json")?;
    for case in &cases {
        check_layout_case(case)?;
    }
    Ok(cases.len())
}

// ---- fixture/ (OP-1, OP-3, CLAIM-1 against entries haz-cache wrote) ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FixtureEntry {
    name: String,
    hash_function: String,
    key: String,
    key_case: KeyCase,
    outputs: Vec<FixtureOutput>,
    stdout: String,
    stderr: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FixtureOutput {
    path: String,
    mode: u32,
    size: u64,
    content_hash: String,
}

/// Copies `from` into `to`. Directories are created fresh (the vectors are
/// read-only, and a restore needs to write its scratch dir into the cache
/// root); files keep their bytes and modes.
fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

fn check_fixture_entry(fixture: &Path, entry: &FixtureEntry) -> Result<(), String> {
    use cachet::fs::CapStdFilesystem;
    use cachet::tasks::Threads;
    use cachet_core::cache::{Cache, DeterministicContext, LookupStatus, Options, RestoreOutcome};
    use std::os::unix::fs::PermissionsExt;

    let name = &entry.name;
    check_key_case(&entry.key_case)?;
    if entry.key_case.key != entry.key {
        return Err(format!("entry {name:?}: key_case.key differs from key"));
    }
    let hash_function = HashFunction::from_name(&entry.hash_function)
        .ok_or_else(|| format!("entry {name:?}: unknown hash_function"))?;
    let key = Key::from_hex(&entry.key).map_err(|e| format!("entry {name:?}: key: {e}"))?;

    let scratch = tempfile::tempdir().map_err(|e| format!("cannot create a temp dir: {e}"))?;
    let workspace = scratch.path().join("workspace");
    copy_tree(&fixture.join("workspace"), &workspace)
        .map_err(|e| format!("cannot copy the fixture workspace: {e}"))?;
    let fs = CapStdFilesystem::open_ambient(&workspace, &workspace.join(layout::HAZ_CACHE_DIR))
        .map_err(|e| format!("entry {name:?}: {e}"))?;
    let cache = Cache::with_options(
        fs,
        Options {
            hash_function,
            ..Options::default()
        },
    )
    .with_tasks(Threads::new());
    let status = cache
        .lookup_status(&key)
        .map_err(|e| format!("entry {name:?}: lookup failed: {e}"))?;
    if status != LookupStatus::Hit {
        return Err(format!("entry {name:?}: lookup says {status}, not hit"));
    }
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    let mut ctx = DeterministicContext::default();
    let outcome = cache
        .restore(&key, &mut stdout, &mut stderr, &mut ctx)
        .map_err(|e| format!("entry {name:?}: restore failed: {e}"))?;
    if !matches!(outcome, RestoreOutcome::Restored { .. }) {
        return Err(format!("entry {name:?}: restore gave {outcome:?}"));
    }
    if stdout != entry.stdout.as_bytes() || stderr != entry.stderr.as_bytes() {
        return Err(format!(
            "entry {name:?}: replayed streams {:?} / {:?} differ from {:?} / {:?}",
            String::from_utf8_lossy(&stdout),
            String::from_utf8_lossy(&stderr),
            entry.stdout,
            entry.stderr
        ));
    }
    for output in &entry.outputs {
        let file = workspace.join(output.path.trim_start_matches('/'));
        let bytes = std::fs::read(&file)
            .map_err(|e| format!("entry {name:?}: {} not restored: {e}", output.path))?;
        let expected = digest(name, "outputs.content_hash", &output.content_hash)?;
        let actual = cachet_core::hash::digest(hash_function, &bytes);
        if actual != expected || bytes.len() as u64 != output.size {
            return Err(format!(
                "entry {name:?}: {} restored with {} bytes hashing to {actual}, expected {} bytes hashing to {expected}",
                output.path,
                bytes.len(),
                output.size
            ));
        }
        let mode = std::fs::metadata(&file)
            .map_err(|e| format!("entry {name:?}: {}: {e}", output.path))?
            .permissions()
            .mode()
            & 0o7777;
        if mode != output.mode {
            return Err(format!(
                "entry {name:?}: {} restored with mode {mode:o}, expected {:o}",
                output.path, output.mode
            ));
        }
    }
    Ok(())
}

fn check_fixture(dir: &Path) -> Result<usize, String> {
    let fixture = dir.join("fixture");
    let entries: Vec<FixtureEntry> = load(&fixture, "entries.json")?;
    for entry in &entries {
        check_fixture_entry(&fixture, entry)?;
    }
    Ok(entries.len())
}

#[test]
fn vectors() {
    let dir = vectors_dir();
    assert!(
        dir.is_dir(),
        "vectors directory {} does not exist; set CACHET_VECTORS_DIR to the directory holding \
         keys.json, manifests.json and layout.json",
        dir.display()
    );
    // Every section runs even when an earlier one fails, so one run reports
    // the first disagreement of each file.
    let keys = check_keys(&dir);
    let manifests = check_manifests(&dir);
    let layout = check_layout(&dir);
    let fixture = check_fixture(&dir);
    let failures: Vec<String> = [
        ("keys.json", &keys),
        ("manifests.json", &manifests),
        ("layout.json", &layout),
        ("fixture/", &fixture),
    ]
    .into_iter()
    .filter_map(|(file, result)| result.as_ref().err().map(|e| format!("{file}: {e}")))
    .collect();
    assert!(
        failures.is_empty(),
        "vectors in {} disagree:\n{}",
        dir.display(),
        failures.join("\n")
    );
    let count = |result: Result<usize, String>| result.unwrap_or_default();
    println!(
        "vectors: keys={} manifests={} layout={} fixture={}",
        count(keys),
        count(manifests),
        count(layout),
        count(fixture)
    );
}
