//! Conformance of the pure parts and the formats: the reference vectors
//! written by haz-cache (`vectors`), property tests of key derivation, hex
//! and workspace paths (`properties`), and the replay of every committed
//! fuzz seed through the same harnesses the fuzzers run (`fuzz_seeds`).
//! Crash consistency is the other test binary of this crate (`crash`).

extern crate alloc;

mod fuzz_seeds;
mod properties;
mod vectors;
