//! `cachet-core`: the engine of cachet, a content-addressed cache for the
//! outputs of build and task-runner steps.
//!
//! Everything that reasons about the cache lives here, once, without `std`:
//! hashing ([`hash`]), key derivation ([`key`], SPEC §2), hex ([`hex`]),
//! workspace paths ([`path`], SPEC §3), the on-disk layout ([`layout`],
//! SPEC §4), the manifest codec ([`manifest`], SPEC §5), the I/O boundary
//! ([`fs`]), the seam for running work on several threads ([`tasks`]) and,
//! with the `alloc` feature, the cache operations themselves
//! ([`cache`], SPEC §6), and the rules of the file-hash memo ([`memo`],
//! spec §10). Host crates (`cachet` over cap-std, `cachet-wasi`
//! over WASI preview 1) only implement [`fs::Filesystem`] (and, with
//! threads, [`tasks::Tasks`]) and move bytes.
//!
//! # Example
//!
//! ```
//! use cachet_core::hash::HashFunction;
//! use cachet_core::key::{derive_key, Action, KeyComponents};
//!
//! let argv = ["true"];
//! let key = derive_key(&mut KeyComponents {
//!     hash_function: HashFunction::Blake3,
//!     action: Action::Command(&argv),
//!     input_files: &mut [],
//!     predecessors: &mut [],
//!     from_host: &mut [],
//!     overrides: &mut [],
//! })
//! .unwrap();
//! assert_eq!(
//!     key.to_hex().as_str(),
//!     "5d9205dd5c954d42a74a5c299c18963f1377aa774fa870491f6b4a714fe1f57a"
//! );
//! ```
//!
//! # Crate features
//!
//! - `alloc` (default): the cache operations in [`cache`]. Everything else
//!   works without an allocator.
//! - `std`: `std::error::Error` impls for the error types, and the one
//!   mapping of `std::io::Error` onto [`fs::Error`].
//! - `memfs` (not default): `memfs::MemFs`, an in-memory filesystem with
//!   crash and fault injection, a test double for tests and fuzzing. Test
//!   crates enable it in `[dev-dependencies]`; the core's own cache tests
//!   need it (`cargo test -p cachet-core --features memfs`).
//!
//! # Rules
//!
//! Rule ids in these docs and in test names (`KEY-5`, `OP-3`, `SPEC §2`)
//! are those of `docs/spec.md` in the repository, the project's own
//! specification.
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

#[cfg(feature = "alloc")]
extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

#[cfg(feature = "alloc")]
pub mod cache;
pub mod fs;
pub mod hash;
pub mod hex;
pub mod key;
pub mod layout;
pub mod manifest;
#[cfg(feature = "memfs")]
pub mod memfs;
#[cfg(feature = "alloc")]
pub mod memo;
pub mod path;
#[cfg(feature = "alloc")]
pub mod remote;
pub mod tasks;
