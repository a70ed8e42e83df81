//! The size limits of `intentgate_tests::layout` over the whole workspace: a file or a
//! function past them fails this test with its path and line.

use std::path::Path;

use intentgate_tests::layout::{
    MAX_FILE_LINES, MAX_FN_LINES, is_test_file, long_functions, rust_files,
};

#[test]
fn no_file_over_800_lines_and_no_function_over_100() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("the workspace root exists");
    let files = rust_files(&root);
    assert!(
        files.len() > 50,
        "the scan found only {} files",
        files.len()
    );
    let mut problems = Vec::new();
    for path in &files {
        let Ok(source) = std::fs::read_to_string(path) else {
            problems.push(format!("{}: unreadable", path.display()));
            continue;
        };
        let relative = path.strip_prefix(&root).unwrap_or(path);
        let shown = relative.display().to_string();
        let lines = source.lines().count();
        if lines > MAX_FILE_LINES {
            problems.push(format!("{shown}: {lines} lines (limit {MAX_FILE_LINES})"));
        }
        if !is_test_file(relative) {
            for f in long_functions(&source, MAX_FN_LINES) {
                problems.push(format!(
                    "{shown}:{}: fn {} is {} lines (limit {MAX_FN_LINES})",
                    f.line, f.name, f.lines
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The `§n` numbers a `COMPATIBILITY.md §a, §b` citation names.
fn cited_sections(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (at, _) in text.match_indices("COMPATIBILITY.md §") {
        let rest = &text[at + "COMPATIBILITY.md ".len()..];
        // `§4.5, §5` cites both.
        for part in rest.split(", ") {
            let Some(number) = part.strip_prefix('§') else {
                break;
            };
            let n: String = number
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '.')
                .collect();
            let n = n.trim_end_matches('.');
            if n.is_empty() {
                break;
            }
            out.push(n.to_owned());
        }
    }
    out
}

#[test]
fn every_cited_compatibility_section_exists() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let doc = std::fs::read_to_string(root.join("docs/COMPATIBILITY.md")).unwrap();
    let headings: Vec<&str> = doc
        .lines()
        .filter_map(|l| l.strip_prefix("### §"))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(headings.len() > 20, "{headings:?}");
    let mut missing = Vec::new();
    let mut cited = 0;
    for path in rust_files(&root) {
        let text = std::fs::read_to_string(&path).unwrap();
        for n in cited_sections(&text) {
            cited += 1;
            if !headings.contains(&n.as_str()) {
                missing.push(format!("{}: §{n}", path.display()));
            }
        }
    }
    assert!(cited > 30, "only {cited} citations found");
    assert!(
        missing.is_empty(),
        "cited but not in COMPATIBILITY.md: {missing:?}"
    );
    assert_eq!(
        cited_sections("see COMPATIBILITY.md §4.5, §5."),
        ["4.5", "5"]
    );
}
