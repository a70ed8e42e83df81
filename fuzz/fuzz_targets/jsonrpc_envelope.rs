#![no_main]
#![allow(
    unsafe_code,
    reason = "fuzz_target! defines the unmangled entry point libFuzzer calls"
)]
//! `cargo fuzz run jsonrpc_envelope`: see [`intentgate_fuzz::jsonrpc_envelope`] for what it checks.

libfuzzer_sys::fuzz_target!(|data: &[u8]| intentgate_fuzz::jsonrpc_envelope(data));
