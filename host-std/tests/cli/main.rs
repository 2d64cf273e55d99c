//! The real `cachet` binary, end to end: `run` (CLAIM-1, OP-2, SAFE-2),
//! the plumbing subcommands against the reference vectors, exit codes, and
//! the README quickstart.

extern crate alloc;

mod config;
mod example;
mod faults;
mod hostile;
mod library;
mod memo;
mod plumbing;
mod proc;
mod remote;
mod run;
mod stress;
mod support;
