//! Running commands with live pass-through and file capture of both streams.

use std::fs;
use std::io::{self, Read, Write};
use std::path::Path;

use cachet::exec::{CommandSpec, ExecError, Program, RunResult, run_captured_with};
use cachet::inputs::hash_file;
use cachet_core::hash::{HashFunction, digest};

fn argv(args: &[&str]) -> CommandSpec {
    CommandSpec::new(Program::Argv(
        args.iter().map(|a| (*a).to_owned()).collect(),
    ))
}

fn shell(script: &str) -> CommandSpec {
    CommandSpec::new(Program::Shell {
        shell: "sh".to_owned(),
        script: script.to_owned(),
    })
}

fn run(spec: &CommandSpec, workspace: &Path) -> (RunResult, Vec<u8>, Vec<u8>) {
    let mut live_out = Vec::new();
    let mut live_err = Vec::new();
    let result =
        run_captured_with(spec, workspace, workspace, &mut live_out, &mut live_err).unwrap();
    (result, live_out, live_err)
}

fn captured(result: &RunResult) -> (Vec<u8>, Vec<u8>) {
    let mut out = Vec::new();
    result.stdout.open().unwrap().read_to_end(&mut out).unwrap();
    let mut err = Vec::new();
    result.stderr.open().unwrap().read_to_end(&mut err).unwrap();
    (out, err)
}

#[test]
fn claim_1_streams_are_passed_through_and_captured_byte_for_byte() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = argv(&[
        "sh",
        "-c",
        "printf 'out\\000put'; printf 'err' >&2; printf 'more'",
    ]);
    let (result, live_out, live_err) = run(&spec, tmp.path());
    assert!(result.success());
    assert_eq!(result.exit_code, Some(0));
    assert_eq!(result.signal, None);
    assert!(result.live_output_error.is_none());
    let (out, err) = captured(&result);
    assert_eq!(out, b"out\0putmore");
    assert_eq!(err, b"err");
    assert_eq!(live_out, out);
    assert_eq!(live_err, err);
    assert_eq!(result.stdout.len(), 11);
    assert_eq!(result.stderr.len(), 3);
    assert!(!result.stdout.is_empty());
}

#[test]
fn shell_actions_run_in_the_workspace_with_overrides() {
    let tmp = tempfile::tempdir().unwrap();
    let mut spec = shell("printf '%s|%s' \"$CACHET_TEST_A\" \"$CACHET_TEST_B\"; pwd -P >&2");
    spec.overrides = vec![
        ("CACHET_TEST_A".to_owned(), "first".to_owned()),
        ("CACHET_TEST_B".to_owned(), "x y=z".to_owned()),
        ("CACHET_TEST_A".to_owned(), "second".to_owned()),
    ];
    let (result, _, _) = run(&spec, tmp.path());
    let (out, err) = captured(&result);
    assert_eq!(out, b"second|x y=z");
    assert_eq!(
        String::from_utf8(err).unwrap().trim_end(),
        tmp.path().canonicalize().unwrap().to_str().unwrap()
    );
}

#[test]
fn relative_program_paths_are_resolved_in_the_workspace() {
    let tmp = tempfile::tempdir().unwrap();
    fs::create_dir(tmp.path().join("tools")).unwrap();
    // A link rather than a freshly written script: exec'ing a file another
    // test thread's fork may still hold open for writing fails with ETXTBSY.
    std::os::unix::fs::symlink("/bin/sh", tmp.path().join("tools/my-sh")).unwrap();
    let (result, _, _) = run(
        &argv(&["./tools/my-sh", "-c", "printf 'hello %s' \"$0\"", "there"]),
        tmp.path(),
    );
    assert!(result.success());
    assert_eq!(captured(&result).0, b"hello there");
}

#[test]
fn key_7_allowed_host_vars_restrict_the_childs_environment() {
    let tmp = tempfile::tempdir().unwrap();
    let mut spec = argv(&["env"]);
    spec.overrides = vec![("CACHET_OVERRIDE".to_owned(), "1".to_owned())];
    spec.allowed_host_vars = Some(vec![
        "PATH".to_owned(),
        "CACHET_SURELY_UNSET_VAR".to_owned(),
    ]);
    let (result, _, _) = run(&spec, tmp.path());
    let (out, _) = captured(&result);
    let mut names: Vec<String> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|line| line.split('=').next().unwrap().to_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["CACHET_OVERRIDE", "PATH"]);

    spec.allowed_host_vars = None;
    let (result, _, _) = run(&spec, tmp.path());
    let (out, _) = captured(&result);
    let text = String::from_utf8(out).unwrap();
    assert!(text.lines().any(|l| l == "CACHET_OVERRIDE=1"), "{text}");
    assert!(text.lines().any(|l| l.starts_with("PATH=")), "{text}");
}

#[test]
fn failures_report_exit_code_or_signal() {
    let tmp = tempfile::tempdir().unwrap();
    let (result, _, _) = run(&shell("echo partial; exit 3"), tmp.path());
    assert_eq!(result.exit_code, Some(3));
    assert_eq!(result.signal, None);
    assert!(!result.success());
    assert_eq!(captured(&result).0, b"partial\n");

    let (result, _, _) = run(&shell("kill -TERM $$"), tmp.path());
    assert_eq!(result.exit_code, None);
    assert_eq!(result.signal, Some(15));
    assert!(!result.success());
}

#[test]
fn large_interleaved_output_neither_deadlocks_nor_loses_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    // 4 MiB on each stream, alternating, far more than a pipe buffer holds.
    let script = "i=0; while [ $i -lt 64 ]; do head -c 65536 /dev/zero; head -c 65536 /dev/zero | tr '\\0' e >&2; i=$((i+1)); done";
    let mut live_out = CountingSink::default();
    let mut live_err = CountingSink::default();
    let result = run_captured_with(
        &shell(script),
        tmp.path(),
        tmp.path(),
        &mut live_out,
        &mut live_err,
    )
    .unwrap();
    assert!(result.success());
    assert_eq!(result.stdout.len(), 4 << 20);
    assert_eq!(result.stderr.len(), 4 << 20);
    assert_eq!(live_out.0, 4 << 20);
    assert_eq!(live_err.0, 4 << 20);
    assert_eq!(
        hash_file(result.stdout.path(), HashFunction::Blake3)
            .unwrap()
            .digest,
        digest(HashFunction::Blake3, &vec![0u8; 4 << 20])
    );
    assert_eq!(
        hash_file(result.stderr.path(), HashFunction::Sha256)
            .unwrap()
            .digest,
        digest(HashFunction::Sha256, &vec![b'e'; 4 << 20])
    );
}

#[derive(Default)]
struct CountingSink(u64);

impl Write for CountingSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

struct BrokenSink;

impl Write for BrokenSink {
    fn write(&mut self, _: &[u8]) -> io::Result<usize> {
        Err(io::ErrorKind::BrokenPipe.into())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_failing_live_destination_does_not_affect_the_capture() {
    let tmp = tempfile::tempdir().unwrap();
    let mut live_err = Vec::new();
    let result = run_captured_with(
        &shell("head -c 300000 /dev/zero; printf e >&2"),
        tmp.path(),
        tmp.path(),
        &mut BrokenSink,
        &mut live_err,
    )
    .unwrap();
    assert!(result.success());
    assert_eq!(result.stdout.len(), 300_000);
    assert_eq!(live_err, b"e");
    assert_eq!(
        result.live_output_error.as_ref().map(io::Error::kind),
        Some(io::ErrorKind::BrokenPipe)
    );
}

#[test]
fn capture_files_are_dot_scratch_in_the_capture_dir_and_removed_on_drop() {
    let tmp = tempfile::tempdir().unwrap();
    let capture_dir = tmp.path().join("captures");
    fs::create_dir(&capture_dir).unwrap();
    let result = run_captured_with(
        &shell("printf o; printf e >&2"),
        tmp.path(),
        &capture_dir,
        &mut Vec::new(),
        &mut Vec::new(),
    )
    .unwrap();
    let stdout_path = result.stdout.path().to_path_buf();
    assert_eq!(stdout_path.parent().unwrap(), capture_dir);
    let name = stdout_path.file_name().unwrap().to_str().unwrap();
    assert!(name.starts_with(".capture-stdout-"), "{name}");
    let stderr_name = result.stderr.path().file_name().unwrap().to_str().unwrap();
    assert!(stderr_name.starts_with(".capture-stderr-"), "{stderr_name}");

    let kept = result.stdout.into_temp_path();
    assert_eq!(fs::read(&kept).unwrap(), b"o");
    drop(result.stderr);
    assert_eq!(fs::read_dir(&capture_dir).unwrap().count(), 1);
    drop(kept);
    assert!(!stdout_path.exists());
    assert_eq!(fs::read_dir(&capture_dir).unwrap().count(), 0);
}

#[test]
fn bad_commands_are_typed_errors_that_name_what_failed() {
    let tmp = tempfile::tempdir().unwrap();
    let attempt = |spec: &CommandSpec, workspace: &Path, capture_dir: &Path| {
        run_captured_with(
            spec,
            workspace,
            capture_dir,
            &mut Vec::new(),
            &mut Vec::new(),
        )
        .unwrap_err()
    };
    let ws = tmp.path();

    let error = attempt(&argv(&[]), ws, ws);
    assert!(matches!(error, ExecError::EmptyCommand), "{error:?}");

    for bad in ["/bin/sh", "", "sh -x", "sh;"] {
        let spec = CommandSpec::new(Program::Shell {
            shell: bad.to_owned(),
            script: "true".to_owned(),
        });
        let error = attempt(&spec, ws, ws);
        assert!(
            matches!(&error, ExecError::InvalidShellName { shell } if shell == bad),
            "{error:?}"
        );
    }

    let error = attempt(&argv(&["cachet-no-such-program-xyz"]), ws, ws);
    assert!(matches!(&error, ExecError::Spawn { .. }), "{error:?}");
    assert!(
        error.to_string().contains("cachet-no-such-program-xyz"),
        "{error}"
    );

    let missing = ws.join("missing-workspace");
    let error = attempt(&argv(&["true"]), &missing, ws);
    assert!(matches!(&error, ExecError::Spawn { .. }), "{error:?}");
    assert!(error.to_string().contains("missing-workspace"), "{error}");

    let error = attempt(&argv(&["true"]), ws, &ws.join("missing-captures"));
    assert!(
        matches!(&error, ExecError::CreateCapture { .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("missing-captures"), "{error}");
    assert_eq!(
        fs::read_dir(ws).unwrap().count(),
        0,
        "failed runs leave no capture files behind"
    );
}
