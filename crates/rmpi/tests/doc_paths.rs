//! Examples are written as a user of `rmpi` writes them: no `rmpi_transport::` or
//! `rmpi_collectives::` paths in the Rust blocks of README.md and docs/*.md (which build.rs makes
//! doc tests of this crate), nor in the doc comments of what this crate re-exports.

use std::path::{Path, PathBuf};

const INNER: [&str; 2] = ["rmpi_transport::", "rmpi_collectives::"];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The ```rust blocks of a markdown text, with their first line numbers.
fn rust_blocks(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut cur: Option<(usize, bool, Vec<&str>)> = None;
    for (n, line) in text.lines().enumerate() {
        let fence = line.trim_start().strip_prefix("```");
        match (&mut cur, fence) {
            (None, Some(tag)) => {
                let tag = tag.trim();
                cur = Some((n + 1, tag == "rust" || tag.starts_with("rust,"), Vec::new()));
            }
            (Some(_), Some(_)) => {
                if let Some((at, true, body)) = cur.take() {
                    out.push((at, body.join("\n")));
                }
            }
            (Some((_, _, body)), None) => body.push(line),
            (None, None) => {}
        }
    }
    out
}

#[test]
fn markdown_examples_use_rmpi_paths_only() {
    let mut files = vec![root().join("README.md")];
    for e in std::fs::read_dir(root().join("docs")).unwrap().flatten() {
        if e.path().extension().is_some_and(|x| x == "md") {
            files.push(e.path());
        }
    }
    let mut blocks = 0;
    let mut bad = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        for (line, code) in rust_blocks(&text) {
            blocks += 1;
            if INNER.iter().any(|p| code.contains(p)) {
                bad.push(format!("{}:{line}", f.display()));
            }
        }
    }
    assert!(
        blocks >= 4,
        "found only {blocks} Rust blocks: is the scan looking in the right place?"
    );
    assert!(bad.is_empty(), "examples with inner-crate paths: {bad:?}");
}

fn strip_link_targets(line: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(at) = rest.find("](") {
        out.push_str(&rest[..at + 1]);
        rest = rest[at + 2..].find(')').map_or("", |end| &rest[at + 2 + end + 1..]);
    }
    out.push_str(rest);
    out
}

#[test]
fn doc_comments_of_re_exported_items_use_rmpi_paths() {
    let transport = root().join("crates/rmpi-transport/src");
    let mut files: Vec<PathBuf> = [
        "comm.rs",
        "request.rs",
        "local.rs",
        "select.rs",
        "clock.rs",
        "error.rs",
        "addr.rs",
        "env.rs",
        "rendezvous.rs",
        "token.rs",
        "wire.rs",
    ]
    .iter()
    .map(|f| transport.join(f))
    .collect();
    let coll = root().join("crates/rmpi-collectives/src");
    for e in std::fs::read_dir(&coll).unwrap().flatten() {
        files.push(e.path());
    }
    let mut bad = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        for (n, line) in text.lines().enumerate() {
            let l = line.trim_start();
            let doc = l.starts_with("///") || l.starts_with("//!");
            // Intra-doc link targets (`[text](rmpi_transport::X)`) are resolved by rustdoc in the
            // defining crate and never shown; only the text a reader sees counts.
            let shown = strip_link_targets(l);
            if doc && INNER.iter().any(|p| shown.contains(p)) {
                bad.push(format!("{}:{}: {l}", f.display(), n + 1));
            }
        }
    }
    assert!(bad.is_empty(), "doc comments with inner-crate paths:\n{}", bad.join("\n"));
}

/// Whether a comment line reads like a measurement: a range of numbers with a unit of time or
/// bandwidth ("8-11 µs"), or a result compared with another ("... against 17-19").
fn reads_like_a_measurement(comment: &str) -> bool {
    let units = ["µs", "us", "ms", "ns", "GB/s", "MB/s", "GiB/s"];
    let words: Vec<&str> = comment.split_whitespace().collect();
    let is_range = |w: &str| {
        let parts: Vec<&str> = w.split(['-', '–']).collect();
        parts.len() == 2 && parts.iter().all(|p| !p.is_empty() && p.parse::<f64>().is_ok())
    };
    let is_num = |w: &str| w.trim_end_matches([',', ';', ')', '.']).parse::<f64>().is_ok();
    words.windows(2).any(|w| is_range(w[0]) && units.iter().any(|u| w[1].starts_with(u)))
        || words.windows(2).any(|w| w[0] == "against" && (is_num(w[1]) || is_range(w[1])))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn measurements_live_in_performance_md_not_in_code_comments() {
    assert!(reads_like_a_measurement("/// bcast 8-11 µs against 17-19 sleeping at once"));
    assert!(reads_like_a_measurement("// barrier 10–12 µs instead of 6)."));
    assert!(reads_like_a_measurement("// allreduce 24 against 35-39."));
    assert!(!reads_like_a_measurement("/// sshd listens on 2222 instead of 22."));
    assert!(!reads_like_a_measurement("/// (default 50 µs; how it polls follows the load"));
    let mut files = Vec::new();
    for dir in ["crates", "benches/src", "examples/src"] {
        rust_files(&root().join(dir), &mut files);
    }
    let mut bad = Vec::new();
    for f in files.iter().filter(|f| !f.ends_with("doc_paths.rs")) {
        let text = std::fs::read_to_string(f).unwrap();
        for (n, line) in text.lines().enumerate() {
            let l = line.trim_start();
            if l.starts_with("//") && reads_like_a_measurement(l) {
                bad.push(format!("{}:{}: {l}", f.display(), n + 1));
            }
        }
    }
    assert!(bad.is_empty(), "move these to docs/performance.md:\n{}", bad.join("\n"));
}
