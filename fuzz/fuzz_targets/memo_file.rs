//! Fuzz target `memo_file`: the checks live in
//! `cachet_tests::harness::memo_file`, shared with the stable seed replay
//! (`tests/tests/conformance/fuzz_seeds.rs`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    cachet_tests::harness::memo_file::run(data);
});
