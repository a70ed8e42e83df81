#![no_main]
#![allow(
    unsafe_code,
    reason = "fuzz_target! defines the unmangled entry point libFuzzer calls"
)]
//! `cargo fuzz run audit_canonical`: see [`intentgate_fuzz::audit_canonical`] for what it checks.

libfuzzer_sys::fuzz_target!(|data: &[u8]| intentgate_fuzz::audit_canonical(data));
