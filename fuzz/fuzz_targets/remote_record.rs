//! Fuzz target `remote_record`: the checks live in
//! `cachet_tests::harness::remote_record`, shared with the stable seed replay
//! (`tests/tests/conformance/fuzz_seeds.rs`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    cachet_tests::harness::remote_record::run(data);
});
