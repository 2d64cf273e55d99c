//! Running one plumbing subcommand over any [`Filesystem`].

use std::io;

use cachet_core::cache::{Cache, CleanModes, Context, RestoreOutcome, StoreOutcome};
use cachet_core::fs::{ErrorKind, Filesystem, Root};
use cachet_core::key::Key;
use cachet_core::manifest::Manifest;

use crate::args::{CleanArgs, PlumbingCommand, RestoreArgs, StatusArgs, StoreArgs, VerifyArgs};
use crate::error::CliError;
use crate::exit;
use crate::io::{MaybeRead, StdWrite};
use crate::keying::{Host, compute_key};
use crate::parse;
use crate::remote::{Chain, ChainReport};
use crate::report;
use crate::select::select_outputs;
use cachet_core::remote::RemoteStore;

/// Runs `command` against `cache` and returns the exit code (see
/// [`crate::exit`]).
///
/// Reports go to `stdout`, as do replayed stdout bytes; replayed stderr
/// bytes and error messages (one line starting with `cachet: `) go to
/// `stderr`. `cache` must have been built with the options of the command
/// line ([`GlobalArgs::cache_options`](crate::GlobalArgs::cache_options)),
/// on a filesystem whose [`Root::Workspace`] is the workspace and whose
/// [`Root::Cache`] is the cache directory.
pub fn run_plumbing<F: Filesystem>(
    command: &PlumbingCommand,
    host: &Host<'_>,
    cache: &Cache<F>,
    ctx: &mut dyn Context,
    stdout: &mut dyn io::Write,
    stderr: &mut dyn io::Write,
) -> u8 {
    run_plumbing_with_chain(command, host, cache, &Chain::none(), ctx, stdout, stderr)
}

/// [`run_plumbing`] through the remote tier `chain` (REMOTE-1, REMOTE-2):
/// `status` and `restore` look a local miss up in the remotes (a remote hit
/// is downloaded into the local cache first), and `store` pushes what it
/// stored to every writable remote. A remote failure is one warning line
/// on `stderr` and an item of the JSON report's `remote.failures`, never
/// the exit code (REMOTE-3).
pub fn run_plumbing_with_chain<F: Filesystem, R: RemoteStore>(
    command: &PlumbingCommand,
    host: &Host<'_>,
    cache: &Cache<F>,
    chain: &Chain<'_, R>,
    ctx: &mut dyn Context,
    stdout: &mut dyn io::Write,
    stderr: &mut dyn io::Write,
) -> u8 {
    let result = execute_with_chain(command, host, cache, chain, ctx, stdout, stderr);
    finish_command(result, stdout, stderr)
}

/// The exit code of a command that ended with `result`, after flushing
/// `stdout`; an error (the command's, or the flush's) is reported on
/// `stderr`.
pub fn finish_command(
    result: Result<u8, CliError>,
    stdout: &mut dyn io::Write,
    stderr: &mut dyn io::Write,
) -> u8 {
    let flushed = stdout.flush();
    match (result, flushed) {
        (Ok(code), Ok(())) => code,
        (Ok(_), Err(source)) => {
            let error = CliError::Output {
                stream: "stdout",
                source,
            };
            report_error(stderr, &error);
            error.exit_code()
        }
        (Err(error), _) => {
            report_error(stderr, &error);
            error.exit_code()
        }
    }
}

/// The exit code of a maintenance walk: a failure on any item is one
/// (OP-5), whatever else the walk did.
fn walk_exit(failures: &[cachet_core::cache::Failure]) -> u8 {
    if failures.is_empty() {
        exit::SUCCESS
    } else {
        exit::FAILURE
    }
}

/// Prints `error` for people: `cachet: ` and the message, on one or more
/// lines.
pub fn report_error(stderr: &mut dyn io::Write, error: &dyn core::fmt::Display) {
    let _ = writeln!(stderr, "cachet: {error}");
    let _ = stderr.flush();
}

/// A failed write of a report to stdout.
pub(crate) fn to_stdout(source: io::Error) -> CliError {
    CliError::Output {
        stream: "stdout",
        source,
    }
}

/// Runs `command` and returns the exit code of a completed subcommand, or
/// the error that stopped it (not yet printed).
pub fn execute<F: Filesystem>(
    command: &PlumbingCommand,
    host: &Host<'_>,
    cache: &Cache<F>,
    ctx: &mut dyn Context,
    stdout: &mut dyn io::Write,
    stderr: &mut dyn io::Write,
) -> Result<u8, CliError> {
    execute_with_chain(command, host, cache, &Chain::none(), ctx, stdout, stderr)
}

/// [`execute`] through the remote tier `chain` (see
/// [`run_plumbing_with_chain`]).
pub fn execute_with_chain<F: Filesystem, R: RemoteStore>(
    command: &PlumbingCommand,
    host: &Host<'_>,
    cache: &Cache<F>,
    chain: &Chain<'_, R>,
    ctx: &mut dyn Context,
    stdout: &mut dyn io::Write,
    stderr: &mut dyn io::Write,
) -> Result<u8, CliError> {
    match command {
        PlumbingCommand::Key(args) => {
            let report = compute_key(&args.key, cache, host)?;
            report::write_key(stdout, &report, args.json).map_err(to_stdout)?;
            Ok(exit::SUCCESS)
        }
        PlumbingCommand::Status(args) => status(args, cache, chain, ctx, stdout, stderr),
        PlumbingCommand::Store(args) => store(args, host, cache, chain, ctx, stdout, stderr),
        PlumbingCommand::Restore(args) => restore(args, cache, chain, ctx, stdout, stderr),
        PlumbingCommand::Info(args) => {
            let info = cache.info()?;
            report::write_info(stdout, &info, args.json).map_err(to_stdout)?;
            Ok(walk_exit(&info.failures))
        }
        PlumbingCommand::Clean(args) => clean(args, host, cache, ctx, stdout),
        PlumbingCommand::Clear(args) => {
            let cleared = cache.clear(ctx)?;
            report::write_clear(stdout, &cleared, args.json).map_err(to_stdout)?;
            Ok(walk_exit(&cleared.failures))
        }
        PlumbingCommand::Verify(args) => verify(args, cache, ctx, stdout),
        PlumbingCommand::List(args) => {
            let listed = cache.list()?;
            report::write_list(stdout, &listed, args.json).map_err(to_stdout)?;
            Ok(walk_exit(&listed.failures))
        }
        PlumbingCommand::Remove(args) => {
            let key = parse::key("--key", &args.key)?;
            let removed = cache.remove(&key, ctx)?;
            report::write_remove(stdout, &key, removed, args.json).map_err(to_stdout)?;
            Ok(if removed { exit::SUCCESS } else { exit::MISS })
        }
    }
}

/// The most an in-use file may hold: a million keys and their newlines.
const MAX_IN_USE_BYTES: u64 = 64 * 1024 * 1024;

/// Reads the keys of `clean --in-use`: a workspace file, or stdin for `-`.
fn in_use_keys<F: Filesystem>(
    fs: &F,
    path: &str,
    host: &Host<'_>,
) -> Result<alloc::collections::BTreeSet<Key>, CliError> {
    const FLAG: &str = "--in-use";
    let too_large = || CliError::InvalidValue {
        flag: FLAG,
        value: path.to_owned(),
        reason: format!("the file is larger than {MAX_IN_USE_BYTES} bytes"),
    };
    let bytes = if path == "-" {
        let mut bytes = Vec::new();
        io::Read::read_to_end(
            &mut io::Read::take(io::stdin().lock(), MAX_IN_USE_BYTES + 1),
            &mut bytes,
        )
        .map_err(|source| CliError::Input { flag: FLAG, source })?;
        if bytes.len() as u64 > MAX_IN_USE_BYTES {
            return Err(too_large());
        }
        bytes
    } else {
        let relative = parse::workspace_file(FLAG, path, host.workspace_dir.as_deref())?;
        match cachet_core::fs::read_capped(fs, Root::Workspace, &relative, MAX_IN_USE_BYTES, 0) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return Err(too_large()),
            Err(error) if error.kind == ErrorKind::NotFound => {
                return Err(CliError::FileNotFound {
                    flag: FLAG,
                    path: format!("/{relative}"),
                });
            }
            Err(source) => {
                return Err(CliError::Workspace {
                    step: cachet_core::cache::Step::Read,
                    path: format!("/{relative}"),
                    source,
                });
            }
        }
    };
    parse::key_list(FLAG, path, &bytes)
}

fn status<F: Filesystem, R: RemoteStore>(
    args: &StatusArgs,
    cache: &Cache<F>,
    chain: &Chain<'_, R>,
    ctx: &mut dyn Context,
    stdout: &mut dyn io::Write,
    stderr: &mut dyn io::Write,
) -> Result<u8, CliError> {
    let key = parse::key("--key", &args.key)?;
    let remote = chain.fill(cache, &key, ctx, stderr)?;
    let (status, stats) = if args.json {
        cache.lookup_stats(&key)?
    } else {
        (cache.lookup_status(&key)?, None)
    };
    report::write_status(
        stdout,
        &key,
        status,
        stats.as_ref(),
        remote.as_ref(),
        args.json,
    )
    .map_err(to_stdout)?;
    Ok(if status.is_hit() {
        exit::SUCCESS
    } else {
        exit::MISS
    })
}

/// Opens a stream file named by `flag`, or an empty stream.
fn open_stream<F: Filesystem>(
    fs: &F,
    flag: &'static str,
    path: Option<&str>,
    host: &Host<'_>,
) -> Result<MaybeRead<F::Reader>, CliError> {
    let Some(path) = path else {
        return Ok(MaybeRead::Empty);
    };
    let relative = parse::workspace_file(flag, path, host.workspace_dir.as_deref())?;
    match fs.open_file(Root::Workspace, &relative) {
        Ok(reader) => Ok(MaybeRead::Some(reader)),
        Err(error) if error.kind == ErrorKind::NotFound => Err(CliError::FileNotFound {
            flag,
            path: format!("/{relative}"),
        }),
        Err(source) => Err(CliError::Workspace {
            step: cachet_core::cache::Step::Open,
            path: format!("/{relative}"),
            source,
        }),
    }
}

fn store<F: Filesystem, R: RemoteStore>(
    args: &StoreArgs,
    host: &Host<'_>,
    cache: &Cache<F>,
    chain: &Chain<'_, R>,
    ctx: &mut dyn Context,
    stdout: &mut dyn io::Write,
    stderr: &mut dyn io::Write,
) -> Result<u8, CliError> {
    let key = parse::key("--key", &args.key)?;
    let fs = cache.filesystem();
    let stdout_stream = open_stream(fs, "--stdout-file", args.stdout_file.as_deref(), host)?;
    let stderr_stream = open_stream(fs, "--stderr-file", args.stderr_file.as_deref(), host)?;
    let outputs = select_outputs(fs, &args.outputs, &host.excluded_dirs)?;
    let mut paths: Vec<&str> = outputs.iter().map(String::as_str).collect();
    let mut held = chain.holding();
    let outcome = cache.store_holding(
        &key,
        &mut paths,
        stdout_stream,
        stderr_stream,
        ctx,
        &mut held,
    )?;
    let (_, bytes) = cache.lookup_manifest(&key)?;
    let manifest = bytes
        .as_deref()
        .and_then(|bytes| Manifest::parse(bytes).ok());
    let remote = match outcome {
        StoreOutcome::Stored | StoreOutcome::AlreadyPresent => {
            chain.push_holding(cache, &key, held, stderr)?
        }
        StoreOutcome::Contended => (!chain.is_empty()).then(ChainReport::default),
    };
    report::write_store(
        stdout,
        &key,
        outcome,
        manifest.as_ref(),
        remote.as_ref(),
        args.json,
    )
    .map_err(to_stdout)?;
    // A contended store kept nothing, which is a miss for the next lookup:
    // the worst outcome a race may have (OP-8), so not a failure. The
    // outcome in the report says what happened.
    let _ = outcome;
    Ok(exit::SUCCESS)
}

fn restore<F: Filesystem, R: RemoteStore>(
    args: &RestoreArgs,
    cache: &Cache<F>,
    chain: &Chain<'_, R>,
    ctx: &mut dyn Context,
    stdout: &mut dyn io::Write,
    stderr: &mut dyn io::Write,
) -> Result<u8, CliError> {
    let key = parse::key("--key", &args.key)?;
    let remote = chain.fill(cache, &key, ctx, stderr)?;
    let outcome = if args.json {
        let mut sink = io::sink();
        let mut sink_err = io::sink();
        let outcome = cache.restore(&key, StdWrite(&mut sink), StdWrite(&mut sink_err), ctx)?;
        report::write_restore_json(stdout, &key, &outcome, remote.as_ref()).map_err(to_stdout)?;
        outcome
    } else {
        let outcome = cache.restore(&key, StdWrite(&mut *stdout), StdWrite(&mut *stderr), ctx)?;
        if let RestoreOutcome::Miss(status) = outcome {
            report_error(
                stderr,
                &format_args!("{key} is a miss ({status}); nothing was restored"),
            );
        }
        outcome
    };
    Ok(match outcome {
        RestoreOutcome::Restored { .. } => exit::SUCCESS,
        RestoreOutcome::Miss(_) => exit::MISS,
    })
}

fn clean<F: Filesystem>(
    args: &CleanArgs,
    host: &Host<'_>,
    cache: &Cache<F>,
    ctx: &mut dyn Context,
    stdout: &mut dyn io::Write,
) -> Result<u8, CliError> {
    let modes = CleanModes {
        soft: args.soft,
        max_age_seconds: args
            .max_age
            .as_deref()
            .map(|text| parse::duration("--max-age", text))
            .transpose()?,
        max_size_bytes: args
            .max_size
            .as_deref()
            .map(|text| parse::size("--max-size", text))
            .transpose()?,
        max_size_percent: args
            .percent
            .as_deref()
            .map(|text| parse::percent("--percent", text))
            .transpose()?,
        in_use: args
            .in_use
            .as_deref()
            .map(|path| in_use_keys(cache.filesystem(), path, host))
            .transpose()?,
        dry_run: args.dry_run,
    };
    let cleaned = cache.clean(&modes, ctx)?;
    report::write_clean(stdout, &cleaned, args.json).map_err(to_stdout)?;
    Ok(walk_exit(&cleaned.failures))
}

fn verify<F: Filesystem>(
    args: &VerifyArgs,
    cache: &Cache<F>,
    ctx: &mut dyn Context,
    stdout: &mut dyn io::Write,
) -> Result<u8, CliError> {
    let verified = cache.verify(args.evict, ctx)?;
    report::write_verify(stdout, &verified, args.json).map_err(to_stdout)?;
    Ok(if !verified.failures.is_empty() {
        exit::FAILURE
    } else if !verified.damaged.is_empty() {
        exit::MISS
    } else {
        exit::SUCCESS
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PlumbingCli;
    use cachet_core::cache::DeterministicContext;
    use cachet_core::hash::{HashFunction, digest};
    use cachet_core::key::{Action, InputFile, KeyComponents, derive_key};
    use cachet_core::memfs::MemFs;

    fn run(
        cache: &Cache<MemFs>,
        ctx: &mut DeterministicContext,
        args: &[&str],
    ) -> (u8, Vec<u8>, Vec<u8>) {
        let mut argv = vec!["cachet-wasi"];
        argv.extend_from_slice(args);
        let line = PlumbingCli::parse_from_named("cachet-wasi", argv).unwrap();
        let host = Host::new(None, vec![String::from(".cachet")]);
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = run_plumbing(&line.command, &host, cache, ctx, &mut out, &mut err);
        (code, out, err)
    }

    #[test]
    fn op_3_durable_restore_is_off_unless_asked_for() {
        let options = |args: &[&str]| {
            let mut argv = vec!["cachet-wasi"];
            argv.extend_from_slice(args);
            PlumbingCli::parse_from_named("cachet-wasi", argv)
                .unwrap()
                .globals
                .cache_options()
        };
        let default = options(&["restore", "--key", &"a".repeat(64)]);
        assert!(!default.durable_restore);
        assert_eq!(default.hash_function, HashFunction::Blake3);
        let durable = options(&["--durable-restore", "restore", "--key", &"a".repeat(64)]);
        assert!(durable.durable_restore);
        let global_after = options(&["restore", "--key", &"a".repeat(64), "--durable-restore"]);
        assert!(global_after.durable_restore);
    }

    #[test]
    fn plumbing_runs_over_any_filesystem() {
        let fs = MemFs::new();
        fs.write_file(Root::Workspace, "src/a.txt", b"a", 0o644)
            .unwrap();
        fs.write_file(Root::Workspace, ".cachet/junk", b"j", 0o644)
            .unwrap();
        fs.write_file(Root::Workspace, "out/o.bin", b"\x00o", 0o755)
            .unwrap();
        fs.write_file(Root::Workspace, "log", b"stdout bytes", 0o644)
            .unwrap();
        let cache = Cache::new(fs);
        let mut ctx = DeterministicContext::default();

        let (code, out, _) = run(
            &cache,
            &mut ctx,
            &["key", "--json", "--input", "**/*.txt", "--", "build"],
        );
        assert_eq!(code, exit::SUCCESS);
        let json: serde_json::Value = serde_json::from_slice(&out).unwrap();
        let expected = derive_key(&mut KeyComponents {
            hash_function: HashFunction::Blake3,
            action: Action::Command(&["build"]),
            input_files: &mut [InputFile {
                path: "/src/a.txt",
                content_hash: digest(HashFunction::Blake3, b"a"),
            }],
            predecessors: &mut [],
            from_host: &mut [],
            overrides: &mut [],
        })
        .unwrap();
        assert_eq!(json["key"], expected.to_hex().as_str());
        let key = String::from(expected.to_hex().as_str());

        let (code, _, err) = run(
            &cache,
            &mut ctx,
            &[
                "store",
                "--key",
                &key,
                "--stdout-file",
                "/log",
                "--output",
                "out",
            ],
        );
        assert_eq!(
            code,
            exit::BAD_VALUE,
            "absolute paths need a workspace path"
        );
        assert!(String::from_utf8_lossy(&err).starts_with("cachet: --stdout-file"));
        let (code, _, err) = run(
            &cache,
            &mut ctx,
            &[
                "store",
                "--key",
                &key,
                "--stdout-file",
                "log",
                "--output",
                "out",
            ],
        );
        assert_eq!(code, exit::SUCCESS, "{}", String::from_utf8_lossy(&err));
        assert_eq!(
            run(&cache, &mut ctx, &["status", "--key", &key]).1,
            b"hit\n"
        );

        cache
            .filesystem()
            .remove_file(Root::Workspace, "out/o.bin")
            .unwrap();
        let (code, out, err) = run(&cache, &mut ctx, &["restore", "--key", &key]);
        assert_eq!(
            (code, out.as_slice(), err.as_slice()),
            (exit::SUCCESS, &b"stdout bytes"[..], &b""[..])
        );
        let fs = cache.filesystem();
        assert_eq!(
            fs.read_file(Root::Workspace, "out/o.bin").unwrap(),
            b"\x00o"
        );
        assert_eq!(
            fs.metadata(Root::Workspace, "out/o.bin").unwrap().mode,
            0o755
        );

        let (code, out, _) = run(&cache, &mut ctx, &["info", "--json"]);
        assert_eq!(code, exit::SUCCESS);
        let json: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(json["valid_entries"], 1);
        let (code, _, err) = run(&cache, &mut ctx, &["restore", "--key", &"0".repeat(64)]);
        assert_eq!(code, exit::MISS);
        assert!(String::from_utf8_lossy(&err).contains("miss-no-entry"));
    }
}
