//! Where everything lives under the cache directory (SPEC DISK-1..5).
//!
//! One pure function per kind of path, each returning a fixed-capacity
//! string relative to the cache directory, in the form a
//! [`crate::fs::Filesystem`] takes. Nothing here touches a filesystem.

use core::fmt::Write as _;

use crate::hash::Digest;
use crate::hex;
use crate::key::Key;

/// A path relative to the cache directory. Capacity fits the longest path the
/// layout produces (a staged file in a restore scratch dir) with room to
/// spare.
pub type LayoutPath = heapless::String<192>;

/// haz's default cache directory, relative to the workspace.
pub const HAZ_CACHE_DIR: &str = ".haz/cache";
/// The `cachet` command's default cache directory, relative to the workspace.
pub const CACHET_CACHE_DIR: &str = ".cachet";

/// File name of the manifest inside an entry dir (DISK-2).
pub const MANIFEST_FILE: &str = "manifest.json";
/// File name of the captured stdout inside an entry dir (DISK-3).
pub const STDOUT_FILE: &str = "stdout";
/// File name of the captured stderr inside an entry dir (DISK-3).
pub const STDERR_FILE: &str = "stderr";
/// Name of the blob directory inside an entry dir (DISK-4).
pub const OUTPUTS_DIR: &str = "outputs";

const STORE_SCRATCH_PREFIX: &str = ".tmp-";
const RESTORE_SCRATCH_PREFIX: &str = ".restore-";
const EVICTED_PREFIX: &str = ".evicted-";

fn build(args: core::fmt::Arguments<'_>) -> LayoutPath {
    let mut path = LayoutPath::new();
    // Every caller formats fixed-width pieces whose total stays far below
    // the capacity, so this write cannot overflow.
    let _ = path.write_fmt(args);
    path
}

/// The shard: the key's first two hex characters (DISK-1).
pub fn shard(key: &Key) -> heapless::String<2> {
    let mut shard = heapless::String::new();
    let _ = shard.push_str(&key.to_hex()[..2]);
    shard
}

/// `<shard>/<hex>` (DISK-1).
pub fn entry_dir(key: &Key) -> LayoutPath {
    let hex = key.to_hex();
    build(format_args!("{}/{}", &hex[..2], hex))
}

fn in_entry(key: &Key, name: &str) -> LayoutPath {
    let hex = key.to_hex();
    build(format_args!("{}/{}/{}", &hex[..2], hex, name))
}

/// `<shard>/<hex>/manifest.json` (DISK-2).
pub fn manifest(key: &Key) -> LayoutPath {
    in_entry(key, MANIFEST_FILE)
}

/// `<shard>/<hex>/stdout` (DISK-3).
pub fn stdout(key: &Key) -> LayoutPath {
    in_entry(key, STDOUT_FILE)
}

/// `<shard>/<hex>/stderr` (DISK-3).
pub fn stderr(key: &Key) -> LayoutPath {
    in_entry(key, STDERR_FILE)
}

/// `<shard>/<hex>/outputs` (DISK-4).
pub fn outputs_dir(key: &Key) -> LayoutPath {
    in_entry(key, OUTPUTS_DIR)
}

/// `<shard>/<hex>/outputs/<content-hash-hex>` (DISK-4).
pub fn blob(key: &Key, content_hash: &Digest) -> LayoutPath {
    let hex = key.to_hex();
    build(format_args!(
        "{}/{}/{}/{}",
        &hex[..2],
        hex,
        OUTPUTS_DIR,
        content_hash.to_hex()
    ))
}

/// `<shard>/.tmp-<hex>-<suffix>`: where a store assembles an entry (DISK-5).
pub fn store_scratch_dir(key: &Key, suffix: u64) -> LayoutPath {
    let hex = key.to_hex();
    build(format_args!(
        "{}/{STORE_SCRATCH_PREFIX}{}-{}",
        &hex[..2],
        hex,
        hex::encode_u64(suffix)
    ))
}

/// `.restore-<hex>-<suffix>` directly under the cache directory: where a restore
/// stages outputs before publishing them (DISK-5).
pub fn restore_scratch_dir(key: &Key, suffix: u64) -> LayoutPath {
    build(format_args!(
        "{RESTORE_SCRATCH_PREFIX}{}-{}",
        key.to_hex(),
        hex::encode_u64(suffix)
    ))
}

/// `<shard>/.evicted-<hex>-<suffix>`: where an entry is moved to make it
/// invisible before it is deleted (OP-2 moving a corrupt entry aside, OP-5).
/// Its leading `.` makes it scratch (DISK-5).
pub fn evicted_dir(key: &Key, suffix: u64) -> LayoutPath {
    let hex = key.to_hex();
    build(format_args!(
        "{}/{EVICTED_PREFIX}{}-{}",
        &hex[..2],
        hex,
        hex::encode_u64(suffix)
    ))
}

#[cfg(feature = "alloc")]
/// `<dir>/<name>`, for the layout's own bounded names inside a scratch or
/// entry directory. Names read from a directory listing are unbounded and
/// are joined into heap strings instead, never here.
pub(crate) fn join(dir: &str, name: &str) -> LayoutPath {
    debug_assert!(dir.len() + 1 + name.len() <= 192, "layout path overflow");
    build(format_args!("{dir}/{name}"))
}

/// Whether a directory entry name is scratch: anything starting with `.`
/// (DISK-5).
pub fn is_scratch_name(name: &str) -> bool {
    name.starts_with('.')
}

/// The directory under the cache directory that holds the file-hash memo
/// (MEMO-1): not a shard, not scratch, so no maintenance command takes it
/// for an entry, for debris or for scratch.
pub const MEMO_DIR: &str = "memo";

/// The file-hash memo itself (MEMO-1, MEMO-2), relative to the cache directory.
pub const MEMO_FILE: &str = "memo/file-hashes";

/// Whether a name directly under the cache directory is the memo directory
/// (MEMO-1).
pub fn is_memo_name(name: &str) -> bool {
    name == MEMO_DIR
}

/// Whether a name under the cache directory is a shard: two lowercase hex digits.
pub fn is_shard_name(name: &str) -> bool {
    name.len() == 2 && name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The directory under the cache directory that holds the remote tier's
/// own state (REMOTE-17): like the memo's, neither a shard nor scratch.
pub const REMOTE_DIR: &str = "remote";

/// The circuit-breaker file of the remotes (REMOTE-17), relative to the
/// cache directory.
pub const REMOTE_BREAKER_FILE: &str = "remote/breaker";

/// Whether a name directly under the cache directory is the remote
/// tier's state directory (REMOTE-17).
pub fn is_remote_state_name(name: &str) -> bool {
    name == REMOTE_DIR
}

/// The key an entry directory name stands for, if `name` is 64 lowercase hex
/// digits starting with `shard` (DISK-1).
pub fn entry_key(shard: &str, name: &str) -> Option<Key> {
    if !hex::is_lowercase_hex_64(name) || !name.starts_with(shard) {
        return None;
    }
    Key::from_hex(name).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_1_to_5_paths_for_a_sample_key() {
        let key = Key::from_hex("0f79ba4887ae07b9e69cf1a6c55c65e8d457b14eeb4b1d9b02a7e474a40e101a")
            .unwrap();
        let hex = "0f79ba4887ae07b9e69cf1a6c55c65e8d457b14eeb4b1d9b02a7e474a40e101a";
        assert_eq!(shard(&key).as_str(), "0f");
        assert_eq!(
            entry_dir(&key).as_str(),
            alloc_free_concat(&["0f/", hex]).as_str()
        );
        assert_eq!(
            manifest(&key).as_str(),
            alloc_free_concat(&["0f/", hex, "/manifest.json"]).as_str()
        );
        let mut content = [0u8; 32];
        content[30] = 0x00;
        content[31] = 0xff;
        assert_eq!(
            blob(&key, &Digest(content)).as_str(),
            alloc_free_concat(&["0f/", hex, "/outputs/", &"0".repeat_free(62), "ff"]).as_str()
        );
        assert_eq!(
            store_scratch_dir(&key, 0x0123_4567_89ab_cdef).as_str(),
            alloc_free_concat(&["0f/.tmp-", hex, "-0123456789abcdef"]).as_str()
        );
        assert_eq!(
            restore_scratch_dir(&key, 0x0123_4567_89ab_cdef).as_str(),
            alloc_free_concat(&[".restore-", hex, "-0123456789abcdef"]).as_str()
        );
        assert!(is_scratch_name(".tmp-x"));
        assert!(is_scratch_name(&evicted_dir(&key, 1).as_str()[3..]));
        assert_eq!(entry_key("0f", hex), Some(key));
        assert_eq!(entry_key("0e", hex), None);
    }

    trait RepeatFree {
        fn repeat_free(&self, n: usize) -> heapless::String<256>;
    }
    impl RepeatFree for str {
        fn repeat_free(&self, n: usize) -> heapless::String<256> {
            let mut out = heapless::String::new();
            for _ in 0..n {
                let _ = out.push_str(self);
            }
            out
        }
    }

    fn alloc_free_concat(parts: &[&str]) -> heapless::String<256> {
        let mut out = heapless::String::new();
        for part in parts {
            let _ = out.push_str(part);
        }
        out
    }
}
