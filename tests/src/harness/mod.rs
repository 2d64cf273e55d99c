//! The fuzz harnesses (issue #5, SPEC SAFE-1..3), shared by the cargo-fuzz
//! targets in `fuzz/` and by the stable `tests/fuzz_seeds.rs`, which replays
//! every committed seed through the same functions.
//!
//! Each target module exposes `run(data: &[u8])`: it decodes the bytes, runs
//! the code under test and panics (which libFuzzer reports as a crash) when
//! a property fails. The properties:
//!
//! - [`manifest_read`]: no input makes [`Manifest::parse`] panic; an
//!   accepted manifest writes, re-reads to the same values and re-writes to
//!   the same bytes (MAN-2, MAN-3, PATH-3, SAFE-1).
//! - [`hex_decode`]: decoding agrees with a plain model of "exactly 64 hex
//!   digits, either case" and round-trips through encoding (KEY-1, MAN-3).
//! - [`workspace_path`]: validation agrees with a plain model of PATH-1 and
//!   PATH-2 and with what the manifest codec accepts (PATH-3).
//! - [`key_derivation`]: arbitrary components never panic, the result does
//!   not depend on the order they are given in (KEY-8), and it equals the
//!   digest of a canonical string built by a plain model of KEY-3..7.
//! - [`cache_ops`]: arbitrary sequences of cache operations on a
//!   [`MemFs`] with fault injection, crashes and tampering, checked against
//!   a plain model of what each lookup may return (OP-1..7, SAFE-1, SAFE-3).
//! - [`remote_record`]: the entry records a remote sends back never panic
//!   the codec, an accepted record has one byte form, and a signed one
//!   verifies only when it is genuine (REMOTE-7, REMOTE-12, REMOTE-13).
//! - [`memo_file`]: a file-hash memo read from the cache directory never
//!   panics the decoder and one that decodes re-encodes to its own bytes
//!   (MEMO-2, MEMO-5).
//! - [`breaker_file`]: a circuit-breaker file never panics the decoder and
//!   what it reads survives a write and a read (REMOTE-17).
//!
//! [`memcache`] holds the in-memory cache helpers (reading an entry's
//! content, restoring into a fresh workspace, listing debris) that
//! [`cache_ops`] and the crash-consistency tests share; [`seeds`] builds the
//! committed seed corpora; [`encode`] writes structured inputs in the byte
//! form `arbitrary` decodes, for those seeds.
//!
//! [`Manifest::parse`]: cachet_core::manifest::Manifest::parse
//! [`MemFs`]: cachet_core::memfs::MemFs

pub mod breaker_file;
pub mod cache_ops;
pub mod encode;
pub mod hex_decode;
pub mod key_derivation;
pub mod manifest_read;
pub mod memcache;
pub mod memo_file;
pub mod remote_record;
pub mod seeds;
pub mod workspace_path;

/// Every fuzz target, by the name of its `fuzz/fuzz_targets/<name>.rs` and
/// of its seed directory `fuzz/seeds/<name>/`.
pub const TARGETS: [&str; 8] = [
    "manifest_read",
    "hex_decode",
    "workspace_path",
    "key_derivation",
    "cache_ops",
    "remote_record",
    "memo_file",
    "breaker_file",
];

/// Runs the harness of `target` (one of [`TARGETS`]) on `data`. Returns
/// `false` for an unknown target name.
pub fn run(target: &str, data: &[u8]) -> bool {
    match target {
        "manifest_read" => manifest_read::run(data),
        "hex_decode" => hex_decode::run(data),
        "workspace_path" => workspace_path::run(data),
        "key_derivation" => key_derivation::run(data),
        "cache_ops" => cache_ops::run(data),
        "remote_record" => remote_record::run(data),
        "memo_file" => memo_file::run(data),
        "breaker_file" => breaker_file::run(data),
        _ => return false,
    }
    true
}
