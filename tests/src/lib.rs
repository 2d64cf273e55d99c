//! Shared helpers for cachet's cross-crate tests.
#![deny(missing_docs)]
