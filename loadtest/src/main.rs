//! `intentgate-loadtest`: the bundled load tester. It arrives with the load-test issue; until
//! then it says so instead of pretending to measure anything.

fn main() -> std::process::ExitCode {
    eprintln!(
        "intentgate-loadtest: not built yet (arrives with the load-test issue); see docs/BENCHMARKS.md"
    );
    std::process::ExitCode::from(2)
}
