//! `cachet`: the std binding of the cachet cache engine.
//!
//! This crate will hold the `cap-std` implementation of
//! [`cachet_core::fs::Filesystem`], input hashing and the `cachet` command
//! (issue: host-std). Until then it only re-exports the core, so that
//! dependents can name one crate.
#![deny(missing_docs)]

pub use cachet_core as core;
