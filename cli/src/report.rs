//! Rendering every report as text (for people) or JSON (for programs),
//! once for every host. The JSON shapes are documented in [`super`].
//!
//! JSON is written by `serde_json` from structs whose field order is the
//! documented order, pretty-printed with two-space indentation and a final
//! newline; hex is lowercase; lists are sorted as documented, so the same
//! cache gives the same bytes on every host. Error texts inside JSON leave
//! out raw OS error numbers, which differ between Linux and WASI.

use std::io::{self, Write};

use bytesize::ByteSize;
use cachet_core::cache::{
    CacheError, CleanReason, CleanReport, ClearReport, Damage, EntryStats, Failure, InfoReport,
    ListReport, LookupStatus, RemovedItem, RestoreOutcome, StoreOutcome, VerifyReport,
};
use cachet_core::hash::Digest;
use cachet_core::key::Key;
use cachet_core::manifest::Manifest;
use serde::Serialize;

use crate::keying::{ActionSpec, KeyReport};
use crate::remote::ChainReport;

fn hex(digest: &Digest) -> String {
    String::from(digest.to_hex().as_str())
}

fn key_hex(key: &Key) -> String {
    String::from(key.to_hex().as_str())
}

fn size(bytes: u64) -> String {
    ByteSize(bytes).display().iec().to_string()
}

pub(crate) fn write_json<T: Serialize>(out: &mut dyn Write, value: &T) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, value).map_err(io::Error::other)?;
    out.write_all(b"\n")
}

/// A cache error's message without raw OS error numbers, for JSON.
pub fn portable_message(error: &CacheError) -> String {
    let mut error = error.clone();
    match &mut error {
        CacheError::Io { source, .. } | CacheError::StreamWrite { source, .. } => {
            source.os_code = None;
        }
        _ => {}
    }
    error.to_string()
}

#[derive(Serialize)]
struct FailureJson {
    path: String,
    error: String,
}

fn failures_json(failures: &[Failure]) -> Vec<FailureJson> {
    let mut out: Vec<FailureJson> = failures
        .iter()
        .map(|failure| FailureJson {
            path: failure.path.clone(),
            error: portable_message(&failure.error),
        })
        .collect();
    out.sort_by(|a, b| (a.path.as_bytes(), &a.error).cmp(&(b.path.as_bytes(), &b.error)));
    out
}

fn write_failures_text(out: &mut dyn Write, failures: &[Failure]) -> io::Result<()> {
    if failures.is_empty() {
        return Ok(());
    }
    writeln!(out, "could not handle {} items:", failures.len())?;
    let mut sorted: Vec<&Failure> = failures.iter().collect();
    sorted.sort_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
    for failure in sorted {
        writeln!(out, "  {}: {}", failure.path, failure.error)?;
    }
    Ok(())
}

// ---------------------------------------------------------------- key

#[derive(Serialize)]
struct KeyJson<'a> {
    key: String,
    hash_function: &'static str,
    action: ActionJson<'a>,
    input_files: Vec<InputJson<'a>>,
    predecessors: Vec<PredecessorJson<'a>>,
    env: EnvJson<'a>,
    files_hashed: u64,
    files_from_memo: u64,
    hash_seconds: f64,
}

#[derive(Serialize)]
#[serde(untagged)]
enum ActionJson<'a> {
    Command { command: &'a [String] },
    Shell { shell: &'a str, script: &'a str },
}

#[derive(Serialize)]
struct InputJson<'a> {
    path: &'a str,
    content_hash: String,
}

#[derive(Serialize)]
struct PredecessorJson<'a> {
    project: &'a str,
    task: &'a str,
    stdout_hash: String,
    stderr_hash: String,
}

#[derive(Serialize)]
struct EnvJson<'a> {
    from_host: Vec<(&'a str, Option<&'a str>)>,
    overrides: Vec<(&'a str, &'a str)>,
}

/// Writes `cachet key`'s report.
pub fn write_key(out: &mut dyn Write, report: &KeyReport, json: bool) -> io::Result<()> {
    if json {
        let value = KeyJson {
            key: key_hex(&report.key),
            hash_function: report.hash_function.name(),
            action: match &report.action {
                ActionSpec::Command(argv) => ActionJson::Command { command: argv },
                ActionSpec::Shell { shell, script } => ActionJson::Shell { shell, script },
            },
            input_files: report
                .input_files
                .iter()
                .map(|input| InputJson {
                    path: &input.path,
                    content_hash: hex(&input.content_hash),
                })
                .collect(),
            predecessors: report
                .predecessors
                .iter()
                .map(|p| PredecessorJson {
                    project: &p.project,
                    task: &p.task,
                    stdout_hash: hex(&p.stdout_hash),
                    stderr_hash: hex(&p.stderr_hash),
                })
                .collect(),
            env: EnvJson {
                from_host: report
                    .from_host
                    .iter()
                    .map(|(name, value)| (name.as_str(), value.as_deref()))
                    .collect(),
                overrides: report
                    .overrides
                    .iter()
                    .map(|(name, value)| (name.as_str(), value.as_str()))
                    .collect(),
            },
            files_hashed: report.statistics.files_hashed,
            files_from_memo: report.statistics.files_from_memo,
            hash_seconds: report.statistics.hash_time.as_secs_f64(),
        };
        return write_json(out, &value);
    }
    writeln!(out, "{}", report.key)?;
    writeln!(out, "  hash function: {}", report.hash_function)?;
    match &report.action {
        ActionSpec::Command(argv) => {
            write!(out, "  action: command")?;
            for arg in argv {
                write!(out, " {arg:?}")?;
            }
            writeln!(out)?;
        }
        ActionSpec::Shell { shell, script } => {
            writeln!(out, "  action: shell {shell} {script:?}")?;
        }
    }
    writeln!(
        out,
        "  input files: {} ({} hashed, {} from the memo, {:.3} s)",
        report.input_files.len(),
        report.statistics.files_hashed,
        report.statistics.files_from_memo,
        report.statistics.hash_time.as_secs_f64()
    )?;
    for input in &report.input_files {
        writeln!(out, "    {}  {}", input.content_hash.to_hex(), input.path)?;
    }
    writeln!(out, "  predecessors: {}", report.predecessors.len())?;
    for p in &report.predecessors {
        writeln!(
            out,
            "    {}:{} = {}  stdout {}  stderr {}",
            p.project,
            p.task,
            p.key,
            p.stdout_hash.to_hex(),
            p.stderr_hash.to_hex()
        )?;
    }
    writeln!(out, "  host variables: {}", report.from_host.len())?;
    for (name, value) in &report.from_host {
        let shadowed = report.overrides.iter().any(|(o, _)| o == name);
        let note = if shadowed {
            "  (overridden by --set)"
        } else {
            ""
        };
        match value {
            Some(value) => writeln!(out, "    {name}={value:?}{note}")?,
            None => writeln!(out, "    {name} unset{note}")?,
        }
    }
    writeln!(out, "  overrides: {}", report.overrides.len())?;
    for (name, value) in &report.overrides {
        writeln!(out, "    {name}={value:?}")?;
    }
    Ok(())
}

// ---------------------------------------------------------------- status

#[derive(Serialize)]
struct StatusJson<'a> {
    key: String,
    status: &'static str,
    entry: Option<StatsJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    remote: Option<&'a ChainReport>,
}

/// An entry's statistics (OP-10), in `status` and `list`.
#[derive(Serialize)]
struct StatsJson {
    hash_function: &'static str,
    outputs: u64,
    bytes: u64,
    created_at_unix: u64,
    last_used_unix: u64,
}

fn stats_json(stats: &EntryStats) -> StatsJson {
    StatsJson {
        hash_function: stats.hash_function.name(),
        outputs: stats.outputs,
        bytes: stats.bytes,
        created_at_unix: stats.created_at_unix,
        last_used_unix: stats.last_used.seconds,
    }
}

/// Writes `cachet status`'s report; `stats` are those of a hit (OP-10),
/// shown in JSON only.
pub fn write_status(
    out: &mut dyn Write,
    key: &Key,
    status: LookupStatus,
    stats: Option<&EntryStats>,
    remote: Option<&ChainReport>,
    json: bool,
) -> io::Result<()> {
    if json {
        return write_json(
            out,
            &StatusJson {
                key: key_hex(key),
                status: status.as_str(),
                entry: stats.map(stats_json),
                remote,
            },
        );
    }
    writeln!(out, "{status}")
}

// ---------------------------------------------------------------- list

#[derive(Serialize)]
struct ListedJson {
    key: String,
    #[serde(flatten)]
    stats: StatsJson,
}

#[derive(Serialize)]
struct ListJson {
    entries: Vec<ListedJson>,
    failures: Vec<FailureJson>,
}

/// Writes `cachet list`'s report (OP-9): one entry per line in text, key
/// first, sorted by key.
pub fn write_list(out: &mut dyn Write, report: &ListReport, json: bool) -> io::Result<()> {
    if json {
        let value = ListJson {
            entries: report
                .entries
                .iter()
                .map(|entry| ListedJson {
                    key: key_hex(&entry.key),
                    stats: stats_json(entry),
                })
                .collect(),
            failures: failures_json(&report.failures),
        };
        return write_json(out, &value);
    }
    for entry in &report.entries {
        writeln!(
            out,
            "{}  {}  {} outputs  {}  created {}  used {}",
            entry.key,
            entry.hash_function,
            entry.outputs,
            size(entry.bytes),
            entry.created_at_unix,
            entry.last_used.seconds
        )?;
    }
    write_failures_text(out, &report.failures)
}

// ---------------------------------------------------------------- remove

#[derive(Serialize)]
struct RemoveJson {
    key: String,
    removed: bool,
}

/// Writes `cachet remove`'s report (OP-11): `removed` or `absent`.
pub fn write_remove(out: &mut dyn Write, key: &Key, removed: bool, json: bool) -> io::Result<()> {
    if json {
        return write_json(
            out,
            &RemoveJson {
                key: key_hex(key),
                removed,
            },
        );
    }
    writeln!(out, "{}", if removed { "removed" } else { "absent" })
}

// ---------------------------------------------------------------- store

#[derive(Serialize)]
struct StoreJson<'a> {
    key: String,
    outcome: &'static str,
    entry: Option<EntryJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    remote: Option<&'a ChainReport>,
}

#[derive(Serialize)]
struct EntryJson {
    outputs: Vec<OutputJson>,
    stdout_len: u64,
    stderr_len: u64,
    stdout_hash: String,
    stderr_hash: String,
}

#[derive(Serialize)]
struct OutputJson {
    path: String,
    content_hash: String,
    size: u64,
    mode: u32,
}

fn entry_json(manifest: &Manifest<'_>) -> EntryJson {
    EntryJson {
        outputs: manifest
            .outputs()
            .map(|record| OutputJson {
                path: String::from(record.path.as_str()),
                content_hash: hex(&record.content_hash),
                size: record.size,
                mode: record.mode,
            })
            .collect(),
        stdout_len: manifest.tail.stdout_len,
        stderr_len: manifest.tail.stderr_len,
        stdout_hash: hex(&manifest.tail.stdout_hash),
        stderr_hash: hex(&manifest.tail.stderr_hash),
    }
}

/// The name of a store outcome in reports.
pub fn store_outcome_name(outcome: StoreOutcome) -> &'static str {
    match outcome {
        StoreOutcome::Stored => "stored",
        StoreOutcome::AlreadyPresent => "already-present",
        StoreOutcome::Contended => "contended",
    }
}

/// Writes `cachet store`'s report; `manifest` is the entry as published,
/// when it could be read back.
pub fn write_store(
    out: &mut dyn Write,
    key: &Key,
    outcome: StoreOutcome,
    manifest: Option<&Manifest<'_>>,
    remote: Option<&ChainReport>,
    json: bool,
) -> io::Result<()> {
    if json {
        return write_json(
            out,
            &StoreJson {
                key: key_hex(key),
                outcome: store_outcome_name(outcome),
                entry: manifest.map(entry_json),
                remote,
            },
        );
    }
    match outcome {
        StoreOutcome::Stored => write!(out, "stored {key}")?,
        StoreOutcome::AlreadyPresent => write!(out, "already present {key}")?,
        StoreOutcome::Contended => {
            return writeln!(
                out,
                "not stored {key}: other processes kept writing broken entries for this key; try again"
            );
        }
    }
    match manifest {
        Some(manifest) => {
            let bytes: u64 = manifest.outputs().map(|record| record.size).sum();
            writeln!(
                out,
                ": {} outputs ({}), stdout {}, stderr {}",
                manifest.output_count(),
                size(bytes),
                size(manifest.tail.stdout_len),
                size(manifest.tail.stderr_len)
            )?;
            for record in manifest.outputs() {
                writeln!(
                    out,
                    "  {:o}  {:>10}  {}",
                    record.mode,
                    size(record.size),
                    record.path.as_str()
                )?;
            }
            Ok(())
        }
        None => writeln!(out),
    }
}

// ---------------------------------------------------------------- restore

#[derive(Serialize)]
struct RestoreJson<'a> {
    key: String,
    status: &'static str,
    restored: Option<RestoredJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    remote: Option<&'a ChainReport>,
}

#[derive(Serialize)]
struct RestoredJson {
    outputs: u64,
    stdout_len: u64,
    stderr_len: u64,
}

/// Writes `cachet restore --json`'s report (without `--json`, a restore
/// prints only the replayed streams).
pub fn write_restore_json(
    out: &mut dyn Write,
    key: &Key,
    outcome: &RestoreOutcome,
    remote: Option<&ChainReport>,
) -> io::Result<()> {
    let value = match *outcome {
        RestoreOutcome::Restored {
            outputs,
            stdout_len,
            stderr_len,
        } => RestoreJson {
            key: key_hex(key),
            status: LookupStatus::Hit.as_str(),
            restored: Some(RestoredJson {
                outputs,
                stdout_len,
                stderr_len,
            }),
            remote,
        },
        RestoreOutcome::Miss(status) => RestoreJson {
            key: key_hex(key),
            status: status.as_str(),
            restored: None,
            remote,
        },
    };
    write_json(out, &value)
}

// ---------------------------------------------------------------- info

#[derive(Serialize)]
struct InfoJson {
    valid_entries: u64,
    schema_entries: u64,
    corrupt_entries: u64,
    scratch_items: u64,
    foreign_items: u64,
    total_bytes: u64,
    schemas: Vec<SchemaJson>,
    failures: Vec<FailureJson>,
}

#[derive(Serialize)]
struct SchemaJson {
    chapter_revision: u8,
    hash_function: &'static str,
    entries: u64,
}

/// Writes `cachet info`'s report.
pub fn write_info(out: &mut dyn Write, report: &InfoReport, json: bool) -> io::Result<()> {
    let mut schemas: Vec<SchemaJson> = report
        .schemas
        .iter()
        .map(|schema| SchemaJson {
            chapter_revision: schema.chapter_revision,
            hash_function: schema.hash_function.name(),
            entries: schema.entries,
        })
        .collect();
    schemas.sort_by(|a, b| {
        (a.chapter_revision, a.hash_function).cmp(&(b.chapter_revision, b.hash_function))
    });
    if json {
        return write_json(
            out,
            &InfoJson {
                valid_entries: report.valid_entries,
                schema_entries: report.schema_entries,
                corrupt_entries: report.corrupt_entries,
                scratch_items: report.scratch_items,
                foreign_items: report.foreign_items,
                total_bytes: report.total_bytes,
                schemas,
                failures: failures_json(&report.failures),
            },
        );
    }
    writeln!(out, "valid entries:    {}", report.valid_entries)?;
    writeln!(
        out,
        "outdated entries: {} (another chapter revision or hash function)",
        report.schema_entries
    )?;
    writeln!(out, "corrupt entries:  {}", report.corrupt_entries)?;
    writeln!(out, "scratch items:    {}", report.scratch_items)?;
    writeln!(out, "foreign items:    {}", report.foreign_items)?;
    writeln!(
        out,
        "total size:       {} ({} bytes)",
        size(report.total_bytes),
        report.total_bytes
    )?;
    for schema in &schemas {
        writeln!(
            out,
            "  revision {}, {}: {} entries",
            schema.chapter_revision, schema.hash_function, schema.entries
        )?;
    }
    write_failures_text(out, &report.failures)
}

// ---------------------------------------------------------------- clean

#[derive(Serialize)]
struct CleanJson {
    dry_run: bool,
    removed: Vec<RemovedJson>,
    removed_bytes: u64,
    kept_in_use: u64,
    remaining_entries: u64,
    remaining_bytes: u64,
    failures: Vec<FailureJson>,
}

#[derive(Serialize)]
struct RemovedJson {
    path: String,
    reason: &'static str,
    bytes: u64,
}

/// Clean's phases, in the order they run (OP-5).
fn phase(reason: CleanReason) -> u8 {
    match reason {
        CleanReason::Corrupt | CleanReason::Schema | CleanReason::Scratch => 0,
        CleanReason::MaxAge => 1,
        CleanReason::MaxSize => 2,
    }
}

/// Where a removed item is listed: by phase, then by path except within
/// max-size, whose (stable) order is least recently used first.
fn rank(item: &RemovedItem) -> (u8, &[u8]) {
    let phase = phase(item.reason);
    let path: &[u8] = if phase < 2 { item.path.as_bytes() } else { &[] };
    (phase, path)
}

/// Writes `cachet clean`'s report. Removed items are listed by phase
/// (soft, max-age, max-size); within the first two by path, within
/// max-size from least to most recently used.
pub fn write_clean(out: &mut dyn Write, report: &CleanReport, json: bool) -> io::Result<()> {
    let mut removed: Vec<&RemovedItem> = report.removed.iter().collect();
    removed.sort_by(|a, b| rank(a).cmp(&rank(b)));
    let removed_bytes: u64 = removed.iter().map(|item| item.bytes).sum();
    if json {
        return write_json(
            out,
            &CleanJson {
                dry_run: report.dry_run,
                removed: removed
                    .iter()
                    .map(|item| RemovedJson {
                        path: item.path.clone(),
                        reason: item.reason.as_str(),
                        bytes: item.bytes,
                    })
                    .collect(),
                removed_bytes,
                kept_in_use: report.kept_in_use,
                remaining_entries: report.remaining_entries,
                remaining_bytes: report.remaining_bytes,
                failures: failures_json(&report.failures),
            },
        );
    }
    let verb = if report.dry_run {
        "would remove"
    } else {
        "removed"
    };
    writeln!(
        out,
        "{verb} {} items ({})",
        removed.len(),
        size(removed_bytes)
    )?;
    for item in &removed {
        writeln!(
            out,
            "  {:<8}  {:>10}  {}",
            item.reason.as_str(),
            size(item.bytes),
            item.path
        )?;
    }
    if report.kept_in_use > 0 {
        writeln!(
            out,
            "kept {} entries that were used meanwhile",
            report.kept_in_use
        )?;
    }
    writeln!(
        out,
        "remaining: {} entries ({})",
        report.remaining_entries,
        size(report.remaining_bytes)
    )?;
    write_failures_text(out, &report.failures)
}

// ---------------------------------------------------------------- clear

#[derive(Serialize)]
struct ClearJson {
    entries_removed: u64,
    other_removed: u64,
    failures: Vec<FailureJson>,
}

/// Writes `cachet clear`'s report.
pub fn write_clear(out: &mut dyn Write, report: &ClearReport, json: bool) -> io::Result<()> {
    if json {
        return write_json(
            out,
            &ClearJson {
                entries_removed: report.entries_removed,
                other_removed: report.other_removed,
                failures: failures_json(&report.failures),
            },
        );
    }
    writeln!(
        out,
        "removed {} entries and {} other items",
        report.entries_removed, report.other_removed
    )?;
    write_failures_text(out, &report.failures)
}

// ---------------------------------------------------------------- verify

#[derive(Serialize)]
struct VerifyJson {
    checked: u64,
    intact: u64,
    skipped_schema: u64,
    damaged: Vec<DamagedJson>,
    failures: Vec<FailureJson>,
}

#[derive(Serialize)]
struct DamagedJson {
    key: String,
    damage: &'static str,
    path: Option<String>,
    evicted: bool,
}

/// Writes `cachet verify`'s report; damaged entries are sorted by key.
pub fn write_verify(out: &mut dyn Write, report: &VerifyReport, json: bool) -> io::Result<()> {
    let mut damaged: Vec<DamagedJson> = report
        .damaged
        .iter()
        .map(|entry| {
            let (damage, path) = match &entry.damage {
                Damage::Corrupt => ("corrupt", None),
                Damage::ContentMismatch { path } => ("content-mismatch", Some(path.clone())),
            };
            DamagedJson {
                key: key_hex(&entry.key),
                damage,
                path,
                evicted: entry.evicted,
            }
        })
        .collect();
    damaged.sort_by(|a, b| a.key.cmp(&b.key));
    if json {
        return write_json(
            out,
            &VerifyJson {
                checked: report.checked,
                intact: report.intact,
                skipped_schema: report.skipped_schema,
                damaged,
                failures: failures_json(&report.failures),
            },
        );
    }
    writeln!(
        out,
        "checked {} entries: {} intact, {} damaged, {} of another chapter revision or hash function (not checked)",
        report.checked,
        report.intact,
        damaged.len(),
        report.skipped_schema
    )?;
    for entry in &damaged {
        let what = match &entry.path {
            Some(path) => format!("content mismatch in {path}"),
            None => String::from("corrupt"),
        };
        let evicted = if entry.evicted { " (evicted)" } else { "" };
        writeln!(out, "  {}  {what}{evicted}", entry.key)?;
    }
    write_failures_text(out, &report.failures)
}
