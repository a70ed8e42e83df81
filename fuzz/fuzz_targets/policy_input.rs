#![no_main]
#![allow(
    unsafe_code,
    reason = "fuzz_target! defines the unmangled entry point libFuzzer calls"
)]
//! `cargo fuzz run policy_input`: see [`intentgate_fuzz::policy_input`] for what it checks.

libfuzzer_sys::fuzz_target!(|data: &[u8]| intentgate_fuzz::policy_input(data));
