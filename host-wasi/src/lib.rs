//! `cachet-wasi`: the cachet cache inside a WebAssembly sandbox.
//!
//! Plugin hosts (editors, task-runner plugins, CI agents) run untrusted code
//! in Wasm and want the cache to work there while seeing only the
//! directories it was handed. This crate has three parts:
//!
//! - On `wasm32-wasip1`: `fs::WasiFilesystem`, the core's
//!   [`Filesystem`](cachet_core::fs::Filesystem) over raw WASI preview 1
//!   calls (the `wasip1` crate, no `std::fs`, usable from `no_std` guests),
//!   whose two roots are preopened directories found by name. All
//!   `unsafe` code sits in the private `sys` module.
//! - Anywhere: [`errno`], the one mapping of WASI errno codes onto the
//!   core's error kinds, and [`modes`], how permission bits, which
//!   preview 1 lacks, cross the sandbox boundary (MAN-1, OP-3, CLAIM-1).
//! - With the `embed` feature, on native targets: `embed::Embedding`, which
//!   runs the `cachet-wasi` guest command under wasmtime with only the
//!   workspace and the cache directory preopened.
//!
//! Everything that decides anything about the cache lives in
//! [`cachet_core`] (re-exported under its own name); the binding only moves bytes,
//! so the guest behaves like the native binding by construction, and where
//! preview 1 forces a difference, `fs` documents it.
//!
//! # Rules
//!
//! Rule ids in these docs and in test names (`KEY-5`, `OP-3`, `SPEC §2`)
//! are those of `docs/spec.md` in the repository, the project's own
//! specification.
#![cfg_attr(not(feature = "embed"), no_std)]
#![deny(missing_docs)]
#![deny(unsafe_code)]

extern crate alloc;

pub use cachet_core;

#[cfg(all(feature = "embed", not(target_arch = "wasm32")))]
pub mod embed;
pub mod errno;
#[cfg(all(target_arch = "wasm32", target_os = "wasi"))]
pub mod fs;
pub mod modes;
#[cfg(all(target_arch = "wasm32", target_os = "wasi"))]
mod sys;

/// The import module of the host calls a guest built with the `host-sync`
/// feature needs; `embed::Embedding` (feature `embed`) provides them.
pub const HOST_MODULE: &str = "cachet:host";

/// `sync-filesystem(root: u32) -> u32`, in [`HOST_MODULE`]: makes everything
/// written on the filesystem that holds the workspace (`root` 0) or the
/// cache directory (`root` 1) durable, as Linux `syncfs` does, and returns a WASI
/// errno (0 on success). WASI preview 1 has no such call, and without it a
/// guest store syncs every file it writes.
pub const HOST_SYNC_FILESYSTEM: &str = "sync-filesystem";

/// The name under which the guest expects the workspace preopened.
pub const WORKSPACE_PREOPEN: &str = "/workspace";

/// The name under which the guest expects the cache directory preopened.
pub const CACHE_PREOPEN: &str = "/cache";

/// Environment variable through which the host tells the guest where the
/// cache directory lies inside the workspace (a workspace-relative path), when
/// it does: input and output selection must skip it, as natively. The
/// guest cannot see this itself, since the two roots are separate
/// preopens.
pub const EXCLUDED_DIR_ENV: &str = "CACHET_WASI_EXCLUDED_DIR";
