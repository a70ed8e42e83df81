#![no_main]
#![allow(
    unsafe_code,
    reason = "fuzz_target! defines the unmangled entry point libFuzzer calls"
)]
//! `cargo fuzz run sse_events`: see [`intentgate_fuzz::sse_events`] for what it checks.

libfuzzer_sys::fuzz_target!(|data: &[u8]| intentgate_fuzz::sse_events(data));
