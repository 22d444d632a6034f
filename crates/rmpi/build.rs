//! Collects every Rust example of README.md and docs/*.md into one markdown file in OUT_DIR,
//! which lib.rs makes a doc-test module: each example compiles and runs as a doc test, written
//! as a user writes it (`rmpi::` paths). A block that has no `fn main` gets a hidden
//! `Ok::<(), rmpi::Error>(())` so that `?` works in it. Outside the workspace (a packaged
//! crate) the file is empty.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    let root =
        PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default()).join("../..");
    let mut files = vec![root.join("README.md")];
    let docs = root.join("docs");
    println!("cargo:rerun-if-changed={}", docs.display());
    if let Ok(entries) = std::fs::read_dir(&docs) {
        let mut md: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "md"))
            .collect();
        md.sort();
        files.extend(md);
    }
    let mut out = String::new();
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
        if let Ok(text) = std::fs::read_to_string(f) {
            extract(&rel(f, &root), &text, &mut out);
        }
    }
    let dest =
        PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default()).join("doc_examples.md");
    if let Err(e) = std::fs::write(&dest, out) {
        println!("cargo:warning=writing {}: {e}", dest.display());
    }
}

fn rel(f: &Path, root: &Path) -> String {
    f.strip_prefix(root).unwrap_or(f).display().to_string()
}

/// Appends each ```rust block of `text` (tags like `rust,no_run` kept) under a heading naming
/// its file and line.
fn extract(name: &str, text: &str, out: &mut String) {
    let mut lines = text.lines().enumerate();
    while let Some((n, line)) = lines.next() {
        let Some(tag) = line.trim_start().strip_prefix("```") else { continue };
        let tag = tag.trim();
        let is_rust = tag == "rust" || tag.starts_with("rust,");
        let mut body = Vec::new();
        for (_, l) in lines.by_ref() {
            if l.trim_start().starts_with("```") {
                break;
            }
            body.push(l);
        }
        if !is_rust {
            continue;
        }
        let code = body.join("\n");
        let _ = writeln!(out, "{name} line {}:\n\n```{tag}\n{code}", n + 1);
        if !code.contains("fn main") {
            let _ = writeln!(out, "# Ok::<(), rmpi::Error>(())");
        }
        let _ = writeln!(out, "```\n");
    }
}
