//! Shared helpers for cachet's cross-crate tests.
//!
//! [`harness`] holds the logic of every fuzz target (`fuzz/`), so that the
//! fuzzers and the stable replay of their seed corpora
//! (`tests/fuzz_seeds.rs`) run exactly the same checks, and the in-memory
//! cache helpers the crash-consistency tests (`tests/crash.rs`) share with
//! the `cache_ops` fuzz target.
#![deny(missing_docs)]

extern crate alloc;

pub mod harness;
