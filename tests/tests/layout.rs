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
