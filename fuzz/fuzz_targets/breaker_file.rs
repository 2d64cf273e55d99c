//! Fuzz target `breaker_file`: the checks live in
//! `cachet_tests::harness::breaker_file`, shared with the stable seed replay
//! (`tests/tests/conformance/fuzz_seeds.rs`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    cachet_tests::harness::breaker_file::run(data);
});
