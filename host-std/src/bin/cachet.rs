//! The `cachet` command: cache any command's outputs and streams.
//!
//! `cachet run [--input GLOB]... [--output GLOB]... -- ARGV...` restores a
//! hit or runs the command and stores a successful result; the plumbing
//! subcommands (`key`, `status`, `store`, `restore`, `info`, `clean`,
//! `clear`, `verify`) expose each step. See `cachet --help`, the `cachet_cli`
//! module docs (flags, JSON shapes) and `cachet_cli::exit` (exit codes).

fn main() -> std::process::ExitCode {
    cachet::native::main()
}
