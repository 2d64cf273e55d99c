//! Running a task's command on a miss, with its streams passed through live
//! and captured to files.
//!
//! A hit must replay the exact stdout and stderr bytes of a fresh run
//! (CLAIM-1), so both streams are captured completely; they are also shown as
//! they arrive, so a miss looks like a plain run. Each stream is read from a
//! pipe by its own thread through a fixed buffer and written both to the live
//! destination and to a temporary file in the capture directory, so memory
//! use does not grow with the output.
//!
//! The child's stdin is inherited. The run ends when the child has exited
//! and both pipes are closed: a background process that keeps a pipe open
//! keeps the run going, as with a shell's `$(…)`.
//!
//! If writing to a live destination fails (for example a closed terminal or
//! `EPIPE` from `cachet … | head`), passing through stops for that stream,
//! capturing goes on, and the failure is reported in
//! [`RunResult::live_output_error`]: the run itself is unaffected. If writing
//! a capture file fails, the child is still drained and waited for (it is
//! not killed halfway through writing its outputs), and then
//! [`ExecError::Capture`] is returned.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read, Seek, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use cachet_core::key::is_valid_shell_name;
use tempfile::NamedTempFile;

/// The buffer each stream is copied through.
const COPY_BUFFER_BYTES: usize = 64 * 1024;

/// What a task runs (SPEC KEY-4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Program {
    /// An argv vector, run directly; at least one element. A program name
    /// without `/` is looked up on `PATH`; a relative path with a `/`
    /// (`./build.sh`) is taken relative to the workspace.
    Argv(Vec<String>),
    /// A script run as `<shell> -c <script>`.
    Shell {
        /// `sh`, `bash`, or another name of `[A-Za-z0-9_-]` (looked up on
        /// `PATH`).
        shell: String,
        /// The script text.
        script: String,
    },
}

/// A command to run, with its environment.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct CommandSpec {
    /// What to run.
    pub program: Program,
    /// Variables set for the child (`--set NAME=VALUE`), on top of whatever
    /// it inherits; later entries win over earlier ones with the same name.
    pub overrides: Vec<(String, String)>,
    /// `None`: the child inherits the whole host environment. `Some(names)`:
    /// the child's environment is cleared and only these host variables
    /// (where set) and the overrides are passed, so that it sees exactly
    /// what KEY-7 hashes.
    pub allowed_host_vars: Option<Vec<String>>,
}

impl CommandSpec {
    /// A command with no overrides that inherits the host environment.
    pub fn new(program: Program) -> CommandSpec {
        CommandSpec {
            program,
            overrides: Vec::new(),
            allowed_host_vars: None,
        }
    }
}

/// One captured stream: a temporary file in the capture directory, removed
/// when this value is dropped unless kept with [`Capture::into_temp_path`].
#[derive(Debug)]
pub struct Capture {
    file: NamedTempFile,
    len: u64,
}

impl Capture {
    /// Where the captured bytes are.
    pub fn path(&self) -> &Path {
        self.file.path()
    }

    /// How many bytes were captured.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the stream was empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// A new handle to the captured bytes, positioned at the start. It
    /// duplicates the open descriptor rather than reopening the path, so a
    /// concurrent `cachet clear` that removes the capture file cannot take
    /// the bytes away (OP-8).
    pub fn open(&self) -> io::Result<File> {
        let mut file = self.file.as_file().try_clone()?;
        file.rewind()?;
        Ok(file)
    }

    /// Gives up the open handle; the file is still removed when the returned
    /// path is dropped, unless it is persisted or kept.
    pub fn into_temp_path(self) -> tempfile::TempPath {
        self.file.into_temp_path()
    }
}

/// How a run ended, with its captured streams.
#[derive(Debug)]
#[non_exhaustive]
pub struct RunResult {
    /// The exit code, if the child exited normally.
    pub exit_code: Option<i32>,
    /// The signal that ended the child, if one did.
    pub signal: Option<i32>,
    /// Everything the child wrote to stdout.
    pub stdout: Capture,
    /// Everything the child wrote to stderr.
    pub stderr: Capture,
    /// The first failure to pass a stream through live, if any (see the
    /// module docs); the captures are complete regardless.
    pub live_output_error: Option<io::Error>,
}

impl RunResult {
    /// Whether the child exited with status 0, the only runs the cache
    /// stores (OP-2).
    pub fn success(&self) -> bool {
        self.exit_code == Some(0)
    }
}

/// Which of the child's output streams.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

impl core::fmt::Display for Stream {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        })
    }
}

/// Why a command could not be run or its output not captured.
#[derive(Debug)]
#[non_exhaustive]
pub enum ExecError {
    /// An argv action with no element.
    EmptyCommand,
    /// A shell name outside `[A-Za-z0-9_-]+` (KEY-4).
    InvalidShellName {
        /// The name as given.
        shell: String,
    },
    /// A capture file could not be created.
    CreateCapture {
        /// The capture directory.
        dir: PathBuf,
        /// What the operating system reported.
        source: io::Error,
    },
    /// The command could not be started.
    Spawn {
        /// The program that was to run.
        program: String,
        /// The working directory it was to run in.
        cwd: PathBuf,
        /// What the operating system reported.
        source: io::Error,
    },
    /// Reading one of the child's output pipes failed.
    ReadOutput {
        /// Which stream.
        stream: Stream,
        /// What the operating system reported.
        source: io::Error,
    },
    /// Writing a capture file failed; the child ran to its end.
    Capture {
        /// The capture file.
        path: PathBuf,
        /// What the operating system reported.
        source: io::Error,
    },
    /// Waiting for the child failed.
    Wait {
        /// The program that ran.
        program: String,
        /// What the operating system reported.
        source: io::Error,
    },
}

impl core::fmt::Display for ExecError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ExecError::EmptyCommand => {
                f.write_str("the command is empty; give at least a program name")
            }
            ExecError::InvalidShellName { shell } => write!(
                f,
                "invalid shell name {shell:?}: use a name of A-Z, a-z, 0-9, '_' and '-' found on PATH, such as sh or bash"
            ),
            ExecError::CreateCapture { dir, source } => write!(
                f,
                "cannot create a capture file in {}: {source}; check that the directory exists and is writable",
                dir.display()
            ),
            ExecError::Spawn {
                program,
                cwd,
                source,
            } => write!(
                f,
                "cannot run {program:?} in {}: {source}; check that the program is installed and on PATH and that the directory exists",
                cwd.display()
            ),
            ExecError::ReadOutput { stream, source } => {
                write!(f, "cannot read the command's {stream}: {source}")
            }
            ExecError::Capture { path, source } => write!(
                f,
                "cannot write the captured output to {}: {source}; free some space and rerun (the command's result was not cached)",
                path.display()
            ),
            ExecError::Wait { program, source } => {
                write!(f, "cannot wait for {program:?} to finish: {source}")
            }
        }
    }
}

impl core::error::Error for ExecError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            ExecError::EmptyCommand | ExecError::InvalidShellName { .. } => None,
            ExecError::CreateCapture { source, .. }
            | ExecError::Spawn { source, .. }
            | ExecError::ReadOutput { source, .. }
            | ExecError::Capture { source, .. }
            | ExecError::Wait { source, .. } => Some(source),
        }
    }
}

/// Runs `spec` in `workspace`, passing its stdout and stderr through to this
/// process's stdout and stderr while capturing both to files in
/// `capture_dir`.
///
/// Capture files are named `.capture-stdout-*` and `.capture-stderr-*`: a
/// leading `.` marks scratch under a cache directory (DISK-5), so leftovers from
/// a crash there are cleaned up like any other scratch.
pub fn run_captured(
    spec: &CommandSpec,
    workspace: &Path,
    capture_dir: &Path,
) -> Result<RunResult, ExecError> {
    run_captured_with(
        spec,
        workspace,
        capture_dir,
        &mut io::stdout(),
        &mut io::stderr(),
    )
}

/// Like [`run_captured`], passing the streams through to `live_stdout` and
/// `live_stderr` instead.
pub fn run_captured_with(
    spec: &CommandSpec,
    workspace: &Path,
    capture_dir: &Path,
    live_stdout: &mut (dyn Write + Send),
    live_stderr: &mut (dyn Write + Send),
) -> Result<RunResult, ExecError> {
    let mut command = build_command(spec, workspace)?;
    let program = match &spec.program {
        Program::Argv(argv) => argv.first().cloned().unwrap_or_default(),
        Program::Shell { shell, .. } => shell.clone(),
    };
    let mut stdout_file = create_capture(capture_dir, ".capture-stdout-")?;
    let mut stderr_file = create_capture(capture_dir, ".capture-stderr-")?;

    command
        .current_dir(workspace)
        .stdin(Stdio::inherit())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().map_err(|source| ExecError::Spawn {
        program: program.clone(),
        cwd: workspace.to_path_buf(),
        source,
    })?;
    let (stdout_pipe, stderr_pipe) = (child.stdout.take(), child.stderr.take());

    let (stdout_tee, stderr_tee, status) = std::thread::scope(|scope| {
        let stdout_capture = stdout_file.as_file_mut();
        let stderr_capture = stderr_file.as_file_mut();
        let out = scope.spawn(move || tee_optional(stdout_pipe, live_stdout, stdout_capture));
        let err = scope.spawn(move || tee_optional(stderr_pipe, live_stderr, stderr_capture));
        let stdout_tee = join_tee(out);
        let stderr_tee = join_tee(err);
        // Waited for after the pipes close, so that the exit status is not
        // collected while output is still in flight.
        let status = wait(&mut child);
        (stdout_tee, stderr_tee, status)
    });
    let status = status.map_err(|source| ExecError::Wait {
        program: program.clone(),
        source,
    })?;

    let (stdout_len, stdout_live) = finish_stream(stdout_tee, Stream::Stdout, stdout_file.path())?;
    let (stderr_len, stderr_live) = finish_stream(stderr_tee, Stream::Stderr, stderr_file.path())?;
    Ok(RunResult {
        exit_code: status.code(),
        signal: status.signal(),
        stdout: Capture {
            file: stdout_file,
            len: stdout_len,
        },
        stderr: Capture {
            file: stderr_file,
            len: stderr_len,
        },
        live_output_error: stdout_live.or(stderr_live),
    })
}

/// The captured length and any live-output failure of one stream, or the
/// error that makes its capture unusable.
fn finish_stream(
    tee: TeeOutcome,
    stream: Stream,
    path: &Path,
) -> Result<(u64, Option<io::Error>), ExecError> {
    if let Some(source) = tee.read_error {
        return Err(ExecError::ReadOutput { stream, source });
    }
    if let Some(source) = tee.capture_error {
        return Err(ExecError::Capture {
            path: path.to_path_buf(),
            source,
        });
    }
    Ok((tee.len, tee.live_error))
}

fn build_command(spec: &CommandSpec, workspace: &Path) -> Result<Command, ExecError> {
    let mut command = match &spec.program {
        Program::Argv(argv) => {
            let (first, rest) = argv.split_first().ok_or(ExecError::EmptyCommand)?;
            // std leaves open whether a relative program path is resolved
            // before or after changing directory; make it the workspace.
            let mut command = if first.contains('/') && Path::new(first).is_relative() {
                Command::new(workspace.join(first))
            } else {
                Command::new(first)
            };
            command.args(rest);
            command
        }
        Program::Shell { shell, script } => {
            if !is_valid_shell_name(shell) {
                return Err(ExecError::InvalidShellName {
                    shell: shell.clone(),
                });
            }
            let mut command = Command::new(shell);
            command.arg("-c").arg(script);
            command
        }
    };
    if let Some(allowed) = &spec.allowed_host_vars {
        command.env_clear();
        for name in allowed {
            if let Some(value) = std::env::var_os(name) {
                command.env(name, value);
            }
        }
    }
    for (name, value) in &spec.overrides {
        command.env(OsStr::new(name), OsStr::new(value));
    }
    Ok(command)
}

fn create_capture(dir: &Path, prefix: &str) -> Result<NamedTempFile, ExecError> {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempfile_in(dir)
        .map_err(|source| ExecError::CreateCapture {
            dir: dir.to_path_buf(),
            source,
        })
}

fn wait(child: &mut Child) -> io::Result<std::process::ExitStatus> {
    loop {
        match child.wait() {
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            other => return other,
        }
    }
}

/// What copying one stream did.
#[derive(Debug, Default)]
struct TeeOutcome {
    len: u64,
    read_error: Option<io::Error>,
    capture_error: Option<io::Error>,
    live_error: Option<io::Error>,
}

fn join_tee(handle: std::thread::ScopedJoinHandle<'_, TeeOutcome>) -> TeeOutcome {
    handle.join().unwrap_or_else(|_| TeeOutcome {
        read_error: Some(io::Error::other("the thread copying the stream panicked")),
        ..TeeOutcome::default()
    })
}

fn tee_optional<R: Read>(
    source: Option<R>,
    live: &mut (dyn Write + Send),
    capture: &mut File,
) -> TeeOutcome {
    match source {
        Some(source) => tee(source, live, capture),
        // Stdio::piped() always yields a pipe; nothing to copy otherwise.
        None => TeeOutcome::default(),
    }
}

/// Copies `source` to its end into both `live` and `capture`. A failing
/// destination is dropped and the copy goes on, so the child never blocks
/// on a full pipe.
fn tee(mut source: impl Read, live: &mut (dyn Write + Send), capture: &mut File) -> TeeOutcome {
    let mut outcome = TeeOutcome::default();
    let mut buffer = vec![0u8; COPY_BUFFER_BYTES];
    loop {
        let n = match source.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => {
                outcome.read_error = Some(error);
                break;
            }
        };
        let chunk = buffer.get(..n).unwrap_or_default();
        if outcome.capture_error.is_none() {
            match capture.write_all(chunk) {
                Ok(()) => outcome.len += u64::try_from(n).unwrap_or(u64::MAX),
                Err(error) => outcome.capture_error = Some(error),
            }
        }
        if outcome.live_error.is_none()
            && let Err(error) = live.write_all(chunk).and_then(|()| live.flush())
        {
            outcome.live_error = Some(error);
        }
    }
    if outcome.capture_error.is_none()
        && let Err(error) = capture.flush()
    {
        outcome.capture_error = Some(error);
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tee_keeps_draining_and_passing_through_when_the_capture_fails() {
        // /dev/full fails every write with ENOSPC, like a full disk.
        let mut full = File::options().write(true).open("/dev/full").unwrap();
        let source = vec![b'x'; 3 * COPY_BUFFER_BYTES + 5];
        let mut live = Vec::new();
        let outcome = tee(source.as_slice(), &mut live, &mut full);
        assert_eq!(
            outcome
                .capture_error
                .as_ref()
                .and_then(io::Error::raw_os_error),
            Some(rustix::io::Errno::NOSPC.raw_os_error())
        );
        assert_eq!(live, source, "the child's output is still shown in full");
        assert!(outcome.read_error.is_none());
        assert!(outcome.live_error.is_none());

        let error = finish_stream(outcome, Stream::Stdout, Path::new("/capture")).unwrap_err();
        assert!(matches!(error, ExecError::Capture { .. }), "{error:?}");
        assert!(error.to_string().contains("/capture"), "{error}");
    }
}
