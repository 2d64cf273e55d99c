//! Shared helpers for cachet's cross-crate tests.
//!
//! [`harness`] holds the logic of every fuzz target (`fuzz/`), so that the
//! fuzzers and the stable replay of their seed corpora
//! (`tests/fuzz_seeds.rs`) run exactly the same checks, and the in-memory
//! cache helpers the crash-consistency tests (`tests/crash.rs`) share with
//! the `cache_ops` fuzz target; [`hostile`] lists the hostile caches and
//! inputs that the native and the Wasm guest tests both run.
//!
//! # Rules
//!
//! Rule ids in these docs and in test names (`KEY-5`, `OP-3`, `SPEC §2`)
//! are those of `docs/spec.md` in the repository, the project's own
//! specification.
#![deny(missing_docs)]

extern crate alloc;

pub mod harness;
pub mod hostile;
