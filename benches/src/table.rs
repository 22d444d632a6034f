//! The printed tables, in the OSU layout: `#` header lines, then one row per size with the size
//! left-aligned in 10 columns and each value right-aligned in 18 with two decimals.

use std::io::Write;

/// Column headers of a latency table.
pub const LATENCY_COLUMNS: &str = "# Size          Latency (us)";
/// Column headers of a bandwidth table.
pub const BANDWIDTH_COLUMNS: &str = "# Size      Bandwidth (MB/s)";
/// Column headers of a collective table.
pub const COLLECTIVE_COLUMNS: &str = "# Size       Avg Latency(us)";
/// Column headers of a collective table with `-f`.
pub const COLLECTIVE_FULL_COLUMNS: &str =
    "# Size       Avg Latency(us)   Min Latency(us)   Max Latency(us)  Iterations";

/// Prints the title line (`# rmpi OSU-style <test> (<n> ranks)`) and the column headers.
pub fn header(impl_name: &str, test: &str, ranks: usize, columns: &str) {
    emit(&format!("# {impl_name} OSU-style {test} ({ranks} ranks)\n{columns}\n"));
}

/// Formats one row with a single value.
pub fn row(size: usize, value: f64) -> String {
    format!("{size:<10}{value:>18.2}\n")
}

/// Formats one row of the full collective table.
pub fn full_row(size: usize, avg: f64, min: f64, max: f64, iters: usize) -> String {
    format!("{size:<10}{avg:>18.2}{min:>18.2}{max:>18.2}{iters:>12}\n")
}

/// Writes `text` to standard output and flushes it, so rows appear as they are measured even
/// when the output is a pipe. A closed output is ignored (the measurement goes on).
pub fn emit(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_line_up_with_the_headers() {
        let r = row(1024, 12.345);
        assert_eq!(r, "1024                   12.35\n");
        assert_eq!(r.trim_end().len(), LATENCY_COLUMNS.len());
        assert_eq!(r.trim_end().len(), BANDWIDTH_COLUMNS.len());
        let f = full_row(8, 1.0, 0.5, 2.25, 1000);
        assert_eq!(f.trim_end().len(), COLLECTIVE_FULL_COLUMNS.len());
        assert!(f.starts_with("8                       1.00              0.50              2.25"));
    }
}
