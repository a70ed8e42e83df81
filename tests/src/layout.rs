//! The size limits a newcomer's afternoon depends on: no source file over
//! [`MAX_FILE_LINES`] lines and no function over [`MAX_FN_LINES`] lines (test code exempt
//! from the function limit). Checked over the workspace by `tests/tests/layout.rs`.
//!
//! The scan is textual and relies on rustfmt's layout (the workspace is formatted, which
//! `cargo fmt --check` enforces): a function runs from its `fn` line to the first line that
//! holds only `}` at the same indentation.

use std::path::{Path, PathBuf};

/// Longest source file, in lines.
pub const MAX_FILE_LINES: usize = 800;
/// Longest function, in lines (signature to closing brace).
pub const MAX_FN_LINES: usize = 100;

/// One function over the limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LongFn {
    /// Its name.
    pub name: String,
    /// 1-based line of its `fn`.
    pub line: usize,
    /// Its length in lines.
    pub lines: usize,
}

/// The functions of `source` longer than `max` lines, outside `#[cfg(test)]` modules.
pub fn long_functions(source: &str, max: usize) -> Vec<LongFn> {
    let lines: Vec<&str> = source.lines().collect();
    let mut found = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let indent = &line[..line.len() - line.trim_start().len()];
        if line.trim_start().starts_with("mod tests")
            && i > 0
            && lines[i - 1].trim() == "#[cfg(test)]"
            && line.trim_end().ends_with('{')
        {
            i = block_end(&lines, i, indent).unwrap_or(lines.len());
            continue;
        }
        if let Some(name) = fn_name(line)
            && !line.trim_end().ends_with(';')
            && let Some(end) = block_end(&lines, i, indent)
        {
            let n = end - i + 1;
            if n > max {
                found.push(LongFn {
                    name: name.to_owned(),
                    line: i + 1,
                    lines: n,
                });
            }
        }
        i += 1;
    }
    found
}

/// The line that closes the block opened at `start` with `indent`.
fn block_end(lines: &[&str], start: usize, indent: &str) -> Option<usize> {
    if lines[start].trim_end().ends_with('}') {
        return Some(start);
    }
    let close = format!("{indent}}}");
    (start + 1..lines.len()).find(|&j| lines[j].trim_end() == close)
}

/// The name declared by a `fn` line (any visibility, `const`, `async`, `unsafe`).
fn fn_name(line: &str) -> Option<&str> {
    let mut words = line.split_whitespace().peekable();
    while let Some(w) = words.next() {
        match w {
            "fn" => {
                let rest = words.next()?;
                let end = rest.find(['(', '<']).unwrap_or(rest.len());
                return Some(&rest[..end]);
            }
            w if w == "pub"
                || w.starts_with("pub(")
                || matches!(w, "const" | "async" | "unsafe" | "extern" | "\"C\"") => {}
            _ => return None,
        }
    }
    None
}

/// True for files that hold only tests (integration tests, `tests.rs` modules, test
/// support), exempt from the function limit.
pub fn is_test_file(path: &Path) -> bool {
    path.components().any(|c| c.as_os_str() == "tests")
        || path.file_name().is_some_and(|n| n == "tests.rs")
}

/// Every `.rs` file under `root`, skipping build output and vendored trees.
pub fn rust_files(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            let name = e.file_name();
            if p.is_dir() {
                if !matches!(
                    name.to_str(),
                    Some("target" | "node_modules" | ".git" | "corpus" | "artifacts")
                ) {
                    stack.push(p);
                }
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(n: usize) -> String {
        (0..n).map(|i| format!("    let x{i} = {i};\n")).collect()
    }

    #[test]
    fn a_long_function_is_found_and_a_short_one_is_not() {
        let src = format!(
            "fn short() {{\n{}}}\n\npub(crate) async fn long<T>(t: T) {{\n{}}}\n",
            body(3),
            body(120)
        );
        assert_eq!(
            long_functions(&src, 100),
            vec![LongFn {
                name: "long".into(),
                line: 7,
                lines: 122
            }]
        );
    }

    #[test]
    fn methods_count_to_their_own_closing_brace_and_test_modules_are_skipped() {
        let src = format!(
            "impl A {{\n    pub fn m(&self) {{\n{}    }}\n}}\n\n#[cfg(test)]\nmod tests {{\n    fn t() {{\n{}    }}\n}}\n",
            body(101),
            body(200)
        );
        let found = long_functions(&src, 100);
        assert_eq!(found.len(), 1);
        assert_eq!((found[0].name.as_str(), found[0].lines), ("m", 103));
    }

    #[test]
    fn declarations_without_bodies_and_one_liners_are_not_functions_to_measure() {
        let src = "trait T {\n    fn f(&self);\n}\nfn g() {}\n";
        let found = long_functions(src, 0);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!((found[0].name.as_str(), found[0].lines), ("g", 1));
        assert!(is_test_file(Path::new("controlplane/tests/x.rs")));
        assert!(is_test_file(Path::new("dataplane/src/http/tests.rs")));
        assert!(!is_test_file(Path::new("dataplane/src/http.rs")));
    }
}
