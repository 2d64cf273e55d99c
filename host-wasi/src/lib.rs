//! `cachet-wasi`: the WASI preview 1 binding of the cachet cache engine.
//!
//! This crate will hold the raw WASI implementation of
//! [`cachet_core::fs::Filesystem`], the `cachet-wasi` guest command and the
//! wasmtime embedding (issue: host-wasi). Until then it only re-exports the
//! core.
#![no_std]
#![deny(missing_docs)]

pub use cachet_core as core;
