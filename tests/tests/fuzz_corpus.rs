//! Every committed fuzz input is a regression test: the seed corpora (`fuzz/corpus/<target>/`)
//! and the inputs that once found a bug (`fuzz/regressions/<target>/`) run through the same
//! property checks the fuzz targets run (`intentgate_fuzz`), so a fix that regresses fails
//! here, in the normal test run, without a nightly toolchain.

#![expect(
    clippy::unwrap_used,
    reason = "test helpers fail the test by panicking; that is their job"
)]

use std::path::Path;

type Check = fn(&[u8]);

const TARGETS: [(&str, Check); 8] = [
    ("http_head", intentgate_fuzz::http_head),
    ("chunked_body", intentgate_fuzz::chunked_body),
    ("jsonrpc_envelope", intentgate_fuzz::jsonrpc_envelope),
    ("token_chain", intentgate_fuzz::token_chain),
    ("audit_canonical", intentgate_fuzz::audit_canonical),
    ("export_lines", intentgate_fuzz::export_lines),
    ("sse_events", intentgate_fuzz::sse_events),
    ("policy_input", intentgate_fuzz::policy_input),
];

fn inputs(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<(String, Vec<u8>)> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| (p.display().to_string(), std::fs::read(&p).unwrap()))
        .collect();
    out.sort();
    out
}

#[test]
fn every_committed_fuzz_input_passes_its_target() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut total = 0;
    for (target, check) in TARGETS {
        let seeds = inputs(&root.join("corpus").join(target));
        assert!(
            seeds.len() >= 3,
            "fuzz/corpus/{target} holds {} seeds; commit at least 3",
            seeds.len()
        );
        for (name, bytes) in seeds
            .iter()
            .chain(&inputs(&root.join("regressions").join(target)))
        {
            let outcome = std::panic::catch_unwind(|| check(bytes));
            assert!(outcome.is_ok(), "{target}: {name} fails its property");
            total += 1;
        }
    }
    assert!(total >= 24);
}

#[test]
fn every_fuzz_target_is_replayed_here() {
    let manifest =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/Cargo.toml"))
            .unwrap();
    let declared = manifest.matches("[[bin]]").count();
    assert_eq!(
        declared,
        TARGETS.len(),
        "a fuzz target is missing from TARGETS"
    );
    for (target, _) in TARGETS {
        assert!(
            manifest.contains(&format!("name = \"{target}\"")),
            "{target}"
        );
    }
}
