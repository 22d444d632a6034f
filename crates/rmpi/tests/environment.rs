//! docs/environment.md lists every `RMPI_*` variable the workspace's code reads.

use std::path::Path;

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The `"RMPI_..."` string literals of a source text (whole names only).
fn names(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for (at, _) in text.match_indices("\"RMPI_") {
        let name: String = text[at + 1..]
            .chars()
            .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        let closed = text[at + 1 + name.len()..].starts_with('"');
        if closed && !name.ends_with('_') {
            found.push(name);
        }
    }
    found
}

#[test]
fn every_variable_the_code_reads_is_in_the_table() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let doc = std::fs::read_to_string(root.join("docs/environment.md")).unwrap();
    let mut files = Vec::new();
    rust_files(&root.join("crates"), &mut files);
    rust_files(&root.join("examples"), &mut files);
    let mut missing = Vec::new();
    let mut seen = 0;
    for f in &files {
        // Tests set made-up variables of their own.
        if f.components().any(|c| c.as_os_str() == "tests") {
            continue;
        }
        let text = std::fs::read_to_string(f).unwrap();
        for name in names(&text) {
            seen += 1;
            if !doc.contains(&format!("`{name}`")) {
                missing.push(format!("{name} ({})", f.display()));
            }
        }
    }
    assert!(seen > 20, "found only {seen} variables: is the scan looking in the right place?");
    assert!(missing.is_empty(), "not in docs/environment.md: {missing:?}");
}
