//! Command-line options shared by every OSU-style program, and the size/iteration schedule.
//!
//! The options follow the OSU micro-benchmarks: `-m MIN:MAX` (also `MAX` or `MIN:`) selects the
//! message sizes (powers of two between them, starting from 0 or MIN), `-i ITERS` the timed
//! iterations for small messages, `-x WARMUP` the untimed ones, `-f` the full collective table.

use std::ffi::OsString;
use std::str::FromStr;

use clap::Parser;

/// Messages up to this size get the full iteration count; larger ones scale down as 1/size.
pub const SMALL_LIMIT: usize = 8192;

/// Largest default message: 16 MiB.
pub const DEFAULT_MAX: usize = 16 << 20;

/// What one program uses when an option is not given.
#[derive(Clone, Copy, Debug)]
pub struct Defaults {
    /// Smallest message size.
    pub min_size: usize,
    /// Timed iterations for messages up to [`SMALL_LIMIT`].
    pub iters: usize,
    /// Fewest timed iterations for the largest messages.
    pub iter_floor: usize,
}

impl Defaults {
    /// Ping-pong latency: from 0 bytes, 1000 round trips, at least 20.
    pub const LATENCY: Defaults = Defaults { min_size: 0, iters: 1000, iter_floor: 20 };
    /// Streaming bandwidth: from 1 byte, 100 windows, at least 1.
    pub const BANDWIDTH: Defaults = Defaults { min_size: 1, iters: 100, iter_floor: 1 };
    /// Collectives: from 8 bytes (one `f64`), 1000 calls, at least 10.
    pub const COLLECTIVE: Defaults = Defaults { min_size: 8, iters: 1000, iter_floor: 10 };
}

/// An inclusive range of message sizes as given to `-m`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SizeRange {
    /// Smallest size, when given.
    pub min: Option<usize>,
    /// Largest size, when given.
    pub max: Option<usize>,
}

impl FromStr for SizeRange {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let num = |t: &str, what: &str| -> Result<Option<usize>, String> {
            if t.is_empty() {
                return Ok(None);
            }
            t.parse::<usize>()
                .map(Some)
                .map_err(|_| format!("bad {what} '{t}' (want a byte count)"))
        };
        let range = match s.split_once(':') {
            Some((lo, hi)) => {
                SizeRange { min: num(lo, "minimum size")?, max: num(hi, "maximum size")? }
            }
            None => SizeRange { min: None, max: num(s, "maximum size")? },
        };
        if range.min.is_none() && range.max.is_none() {
            return Err(format!("'{s}' names no size (want MIN:MAX, MAX or MIN:)"));
        }
        Ok(range)
    }
}

fn parse_positive(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("'{s}' is not a positive whole number")),
    }
}

/// The command line of an OSU-style program.
#[derive(Debug, Parser)]
#[command(about = "OSU-style micro-benchmark of rmpi; rank 0 prints the table")]
struct Cli {
    /// Message sizes in bytes: MIN:MAX, MAX or MIN: (powers of two in between).
    #[arg(short = 'm', value_name = "MIN:MAX")]
    sizes: Option<SizeRange>,
    /// Timed iterations for messages up to 8 KiB (larger ones scale down as 1/size).
    #[arg(short = 'i', value_name = "ITERS", value_parser = parse_positive)]
    iters: Option<usize>,
    /// Untimed warm-up iterations per size (default: a tenth of the timed ones, at least 1).
    #[arg(short = 'x', value_name = "WARMUP")]
    warmup: Option<usize>,
    /// Collectives: also print the minimum and maximum over ranks and the iteration count.
    #[arg(short = 'f')]
    full: bool,
}

/// The resolved options of one run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options {
    /// Smallest message size in bytes.
    pub min_size: usize,
    /// Largest message size in bytes.
    pub max_size: usize,
    /// Timed iterations for small messages.
    pub iters: usize,
    /// Fewest timed iterations (for the largest messages).
    pub iter_floor: usize,
    /// Warm-up iterations per size; `None`: a tenth of the timed ones, at least 1.
    pub warmup: Option<usize>,
    /// Print min/max/iterations columns (collectives).
    pub full: bool,
}

impl Options {
    /// Parses the process's command line; on a bad option prints clap's message and exits 2
    /// (on `-h`, prints the help and exits 0).
    pub fn from_env(defaults: Defaults) -> Options {
        Self::parse_from(std::env::args_os(), defaults).unwrap_or_else(|e| e.exit())
    }

    /// Parses `args` (the first one is the program name).
    pub fn parse_from<I, T>(args: I, defaults: Defaults) -> Result<Options, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let cli = Cli::try_parse_from(args)?;
        let range = cli.sizes.unwrap_or(SizeRange { min: None, max: None });
        let opts = Options {
            min_size: range.min.unwrap_or(defaults.min_size),
            max_size: range.max.unwrap_or(DEFAULT_MAX),
            iters: cli.iters.unwrap_or(defaults.iters),
            iter_floor: defaults.iter_floor,
            warmup: cli.warmup,
            full: cli.full,
        };
        if opts.min_size > opts.max_size {
            return Err(clap::Error::raw(
                clap::error::ErrorKind::ValueValidation,
                format!("-m: MIN {} is larger than MAX {}\n", opts.min_size, opts.max_size),
            ));
        }
        Ok(opts)
    }

    /// The message sizes of the sweep: `min`, then powers of two up to `max` (0 is followed
    /// by 1).
    pub fn sizes(&self) -> Vec<usize> {
        let mut out = Vec::new();
        let mut s = self.min_size;
        while s <= self.max_size {
            out.push(s);
            s = match s {
                0 => 1,
                _ if s.is_power_of_two() => s * 2,
                _ => s.next_power_of_two(),
            };
        }
        out
    }

    /// Timed iterations for messages of `size` bytes: [`iters`](Self::iters) up to
    /// [`SMALL_LIMIT`], then scaled down as 1/size, never below the floor (nor above `iters`).
    pub fn iters_for(&self, size: usize) -> usize {
        let scaled = if size > SMALL_LIMIT {
            (self.iters as f64 * SMALL_LIMIT as f64 / size as f64) as usize
        } else {
            self.iters
        };
        scaled.max(self.iter_floor).min(self.iters)
    }

    /// Warm-up iterations before `iters` timed ones.
    pub fn warmup_for(&self, iters: usize) -> usize {
        self.warmup.unwrap_or((iters / 10).max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str], d: Defaults) -> Result<Options, clap::Error> {
        Options::parse_from(std::iter::once("osu_test").chain(args.iter().copied()), d)
    }

    #[test]
    fn defaults_give_the_osu_sweep() {
        let o = parse(&[], Defaults::LATENCY).unwrap();
        let sizes = o.sizes();
        assert_eq!(sizes[..4], [0, 1, 2, 4]);
        assert_eq!(*sizes.last().unwrap(), 16 << 20);
        assert_eq!(sizes.len(), 26);
        assert_eq!(parse(&[], Defaults::COLLECTIVE).unwrap().sizes()[0], 8);
    }

    #[test]
    fn size_range_forms() {
        let o = parse(&["-m", "4:64"], Defaults::BANDWIDTH).unwrap();
        assert_eq!(o.sizes(), vec![4, 8, 16, 32, 64]);
        let o = parse(&["-m", "16"], Defaults::LATENCY).unwrap();
        assert_eq!(o.sizes(), vec![0, 1, 2, 4, 8, 16]);
        let o = parse(&["-m", "4194304:"], Defaults::COLLECTIVE).unwrap();
        assert_eq!(o.sizes(), vec![4 << 20, 8 << 20, 16 << 20]);
        let o = parse(&["-m", "3:20"], Defaults::COLLECTIVE).unwrap();
        assert_eq!(o.sizes(), vec![3, 4, 8, 16]);
    }

    #[test]
    fn bad_options_are_rejected() {
        assert!(parse(&["-m", "64:4"], Defaults::LATENCY).is_err());
        assert!(parse(&["-m", "x"], Defaults::LATENCY).is_err());
        assert!(parse(&["-m", ":"], Defaults::LATENCY).is_err());
        assert!(parse(&["-i", "0"], Defaults::LATENCY).is_err());
        assert!(parse(&["--bogus"], Defaults::LATENCY).is_err());
    }

    #[test]
    fn iterations_scale_with_size() {
        let o = parse(&["-i", "1000"], Defaults::LATENCY).unwrap();
        assert_eq!(o.iters_for(0), 1000);
        assert_eq!(o.iters_for(8192), 1000);
        assert_eq!(o.iters_for(16384), 500);
        assert_eq!(o.iters_for(16 << 20), 20);
        assert_eq!(o.warmup_for(1000), 100);
        assert_eq!(o.warmup_for(5), 1);
        let o = parse(&["-x", "0"], Defaults::LATENCY).unwrap();
        assert_eq!(o.warmup_for(1000), 0);
    }
}
