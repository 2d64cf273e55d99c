//! Replays every fuzz seed through the fuzz targets' own harness functions
//! on stable Rust (issue #5; SAFE-1, SAFE-3 and the rules each harness
//! names), and keeps the committed seeds in step with their generators.
//!
//! - Every file under `fuzz/seeds/<target>/` (and, when present, the
//!   crash/timeout artifacts a local `cargo fuzz run` left under
//!   `fuzz/artifacts/<target>/`) goes through `harness::run`. A target
//!   without seeds fails the test: an empty directory would make it pass
//!   without checking anything.
//! - The seeds built by `harness::seeds` must be committed byte for byte;
//!   `CACHET_BLESS_SEEDS=1 cargo test -p cachet-tests --test conformance fuzz_seeds`
//!   writes them.
//! - Structured seeds must decode to the values they were written from
//!   (a guard against `arbitrary` changing its byte format), and the
//!   `key_derivation` model must give every key of `vectors/keys.json`, so
//!   that agreeing with the model means agreeing with haz-cache.

use core::panic::AssertUnwindSafe;
use std::panic::catch_unwind;
use std::path::{Path, PathBuf};

use cachet_tests::harness::{self, TARGETS, cache_ops, key_derivation, seeds};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

fn vectors_dir() -> PathBuf {
    match std::env::var_os("CACHET_VECTORS_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/vectors"),
    }
}

/// The files of `dir`, sorted; none when it does not exist.
fn files_in(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    files
}

/// Runs `target`'s harness on every file, returning one line per failure.
fn replay(target: &str, files: &[PathBuf]) -> Vec<String> {
    let mut failures = Vec::new();
    for file in files {
        let bytes = match std::fs::read(file) {
            Ok(bytes) => bytes,
            Err(e) => {
                failures.push(format!("{}: cannot read: {e}", file.display()));
                continue;
            }
        };
        let outcome = catch_unwind(AssertUnwindSafe(|| harness::run(target, &bytes)));
        match outcome {
            Ok(true) => {}
            Ok(false) => failures.push(format!("{target}: no such harness")),
            Err(panic) => {
                let message = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                failures.push(format!("{}: {message}", file.display()));
            }
        }
    }
    failures
}

#[test]
fn safe_1_every_seed_of_every_target_passes_its_harness() {
    let mut failures = Vec::new();
    for target in TARGETS {
        let seeds = files_in(&fuzz_dir().join("seeds").join(target));
        assert!(
            !seeds.is_empty(),
            "fuzz/seeds/{target}/ holds no seeds; run with CACHET_BLESS_SEEDS=1 to write them"
        );
        failures.extend(replay(target, &seeds));
        let artifacts = files_in(&fuzz_dir().join("artifacts").join(target));
        failures.extend(replay(target, &artifacts));
        println!(
            "{target}: {} seeds, {} local artifacts replayed",
            seeds.len(),
            artifacts.len()
        );
    }
    assert!(
        failures.is_empty(),
        "{} inputs fail:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

#[test]
fn committed_seeds_match_their_generators() {
    let generated = seeds::generated(&vectors_dir()).unwrap_or_else(|e| panic!("{e}"));
    let bless = std::env::var_os("CACHET_BLESS_SEEDS").is_some();
    let mut stale = Vec::new();
    for seed in &generated {
        let path = fuzz_dir().join("seeds").join(seed.target).join(&seed.name);
        if bless {
            let dir = path.parent().unwrap_or(Path::new("."));
            std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
            std::fs::write(&path, &seed.bytes)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        } else if std::fs::read(&path).ok().as_deref() != Some(seed.bytes.as_slice()) {
            stale.push(format!("{}/{}", seed.target, seed.name));
        }
    }
    assert!(
        stale.is_empty(),
        "committed seeds missing or out of date (regenerate with CACHET_BLESS_SEEDS=1): {stale:?}"
    );
    for target in TARGETS {
        assert!(
            generated.iter().any(|seed| seed.target == target),
            "no generator writes seeds for {target}"
        );
    }
}

#[test]
fn structured_seeds_decode_to_the_values_they_were_written_from() {
    for (name, input) in seeds::cache_scenarios() {
        let bytes = harness::encode::to_bytes(&input);
        assert_eq!(
            cache_ops::decode(&bytes).as_ref(),
            Some(&input),
            "cache_ops seed {name}"
        );
    }
    for (name, input) in seeds::key_scenarios() {
        let bytes = harness::encode::to_bytes(&input);
        assert_eq!(
            key_derivation::decode(&bytes).as_ref(),
            Some(&input),
            "key_derivation seed {name}"
        );
    }
    let vectors = seeds::vector_keys(&vectors_dir()).unwrap_or_else(|e| panic!("{e}"));
    for (name, input, _) in &vectors {
        let bytes = harness::encode::to_bytes(input);
        assert_eq!(
            key_derivation::decode(&bytes).as_ref(),
            Some(input),
            "key_derivation vector seed {name}"
        );
    }
}

#[test]
fn key_9_the_key_derivation_model_gives_every_vector_key() {
    let vectors = seeds::vector_keys(&vectors_dir()).unwrap_or_else(|e| panic!("{e}"));
    assert!(!vectors.is_empty(), "keys.json holds no cases");
    for (name, input, expected) in &vectors {
        assert_eq!(
            key_derivation::model(input).as_ref(),
            Ok(expected),
            "case {name}: the harness's model of KEY-3..7 disagrees with the vector"
        );
    }
}
