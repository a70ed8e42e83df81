#![no_main]
#![allow(
    unsafe_code,
    reason = "fuzz_target! defines the unmangled entry point libFuzzer calls"
)]
//! `cargo fuzz run export_lines`: see [`intentgate_fuzz::export_lines`] for what it checks.

libfuzzer_sys::fuzz_target!(|data: &[u8]| intentgate_fuzz::export_lines(data));
