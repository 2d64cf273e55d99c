//! `cachet-wasi`: the cachet command as a WASI preview 1 guest.
//!
//! It takes the plumbing subcommands of the native `cachet` (`key`,
//! `status`, `store`, `restore`, `info`, `clean`, `clear`, `verify`) with
//! the same flags, and runs them through the same code (`cachet_cli`), so
//! `--json` reports are byte-identical for the same cache. Its roots are the
//! directories preopened as `/workspace` and `/cache`
//! ([`cachet_wasi::WORKSPACE_PREOPEN`], [`cachet_wasi::CACHE_PREOPEN`]);
//! `--workspace` and `--cache-dir` name host paths the guest cannot see and
//! are ignored. The host protocol for permission bits and for a cache directory
//! inside the workspace is in `cachet_wasi::modes` and
//! [`cachet_wasi::EXCLUDED_DIR_ENV`]; the `cachet_wasi::embed` module is
//! such a host.
//!
//! Built for any other target, the binary only says how to build it.

#[cfg(all(target_arch = "wasm32", target_os = "wasi"))]
fn main() -> std::process::ExitCode {
    std::process::ExitCode::from(guest::main())
}

#[cfg(not(all(target_arch = "wasm32", target_os = "wasi")))]
fn main() -> std::process::ExitCode {
    use std::io::Write as _;
    let _ = writeln!(
        std::io::stderr(),
        "cachet-wasi is a WebAssembly guest: build it with `cargo build -p cachet-wasi --target wasm32-wasip1 --release` and run it with wasmtime (see host-wasi/README.md)"
    );
    std::process::ExitCode::from(64)
}

#[cfg(all(target_arch = "wasm32", target_os = "wasi"))]
mod guest {
    use std::io::{self, BufWriter, Write as _};

    use cachet_cli::{self as cli, Host, PlumbingCli, SystemContext, exit};
    use cachet_core::cache::{Cache, Options};
    use cachet_core::fs::{FileWriter, Filesystem, Root, Write as _};
    use cachet_wasi::fs::WasiFilesystem;
    use cachet_wasi::modes::{DEFAULT_FILE_MODE, MODE_LOG_ENV, MODES_ENV, ModeTable};
    use cachet_wasi::{CACHE_PREOPEN, EXCLUDED_DIR_ENV, WORKSPACE_PREOPEN};

    pub(crate) fn main() -> u8 {
        let stdout = io::stdout();
        let mut stdout = BufWriter::with_capacity(64 * 1024, stdout.lock());
        let mut stderr = io::stderr();
        let line = match PlumbingCli::parse_from_named("cachet-wasi", std::env::args_os()) {
            Ok(line) => line,
            Err(error) => {
                let code = cli::report_usage_error(&error, &mut stdout, &mut stderr);
                let _ = stdout.flush();
                return code;
            }
        };
        if line.command.restore_root().is_some() {
            // OP-12: the guest sees only its two preopens, so it has no
            // other root to restore under.
            cli::report_error(
                &mut stderr,
                &"restore --into needs a directory the sandbox cannot open; run the native `cachet restore --into`, or preopen that directory as /workspace",
            );
            return exit::USAGE;
        }
        let fs = match WasiFilesystem::from_preopens(WORKSPACE_PREOPEN, CACHE_PREOPEN) {
            Ok(fs) => fs,
            Err(error) => {
                cli::report_error(&mut stderr, &error);
                return exit::CACHE_UNAVAILABLE;
            }
        };
        let fs = match std::env::var(MODES_ENV) {
            Ok(text) => match ModeTable::parse(&text) {
                Ok(modes) => fs.with_workspace_modes(modes),
                Err(error) => {
                    cli::report_error(
                        &mut stderr,
                        &format_args!(
                            "the host passed unusable file modes in {MODES_ENV}: {error}"
                        ),
                    );
                    return exit::FAILURE;
                }
            },
            Err(_) => fs,
        };
        let excluded: Vec<String> = std::env::var(EXCLUDED_DIR_ENV)
            .ok()
            .filter(|dir| cachet_wasi::modes::is_relative_path(dir))
            .into_iter()
            .collect();
        // SAFE-8: the same cache directory the selection leaves out.
        let options = Options {
            cache_dir_in_workspace: excluded.first().cloned(),
            ..line.globals.cache_options()
        };
        let host = Host::new(Some(WORKSPACE_PREOPEN.into()), excluded);
        let cache = Cache::with_options(fs, options);
        let mut code = cli::run_plumbing(
            &line.command,
            &host,
            &cache,
            &mut SystemContext::new(),
            &mut stdout,
            &mut stderr,
        );
        let _ = stdout.flush();
        let deferred = cache.filesystem().deferred_workspace_modes();
        if deferred.is_empty() {
            return code;
        }
        match std::env::var(MODE_LOG_ENV) {
            Ok(name) => {
                if let Err(error) = write_mode_log(cache.filesystem(), &name, &deferred) {
                    cli::report_error(
                        &mut stderr,
                        &format_args!(
                            "could not hand the restored files' permission bits to the host ('{name}' in the cache directory): {error}"
                        ),
                    );
                    code = exit::FAILURE;
                }
            }
            Err(_) => {
                // A bare runtime: nobody can apply the modes. Say so when
                // they matter, rather than let a restore differ silently
                // from the run (CLAIM-1).
                for (path, mode) in deferred.iter() {
                    if mode != DEFAULT_FILE_MODE {
                        cli::report_error(
                            &mut stderr,
                            &format_args!(
                                "warning: WASI cannot set permission bits; /{path} should have mode {mode:o} (run the guest through the cachet-wasi embedding to apply them)"
                            ),
                        );
                    }
                }
            }
        }
        code
    }

    /// Writes the deferred modes to `name` in the cache directory for the host.
    fn write_mode_log(
        fs: &WasiFilesystem,
        name: &str,
        modes: &ModeTable,
    ) -> Result<(), cachet_core::fs::Error> {
        if !name.starts_with('.') || name.contains('/') {
            return Err(cachet_core::fs::Error::new(
                cachet_core::fs::ErrorKind::InvalidInput,
            ));
        }
        let mut file = fs.create_new_file(Root::Cache, name)?;
        file.write_all(modes.render().as_bytes())?;
        file.sync()
    }
}
