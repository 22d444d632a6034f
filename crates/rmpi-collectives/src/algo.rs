//! Algorithm choice: the algorithms of each family, the size thresholds between them, and how a
//! user forces one (environment variables `RMPI_ALGO_<OP>` or [`Settings`]).
//!
//! The thresholds were measured on loopback TCP; `docs/collectives.md` has the cost model and
//! the numbers behind them.

use std::sync::OnceLock;
use std::time::Duration;

use rmpi_transport::{Error, Result};

macro_rules! algo_enum {
    ($(#[$doc:meta])* $name:ident, $env:literal, {
        $($(#[$vdoc:meta])* $v:ident => $s:literal $(| $alias:literal)*),* $(,)?
    }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub enum $name {
            /// Chosen by message size and communicator size.
            #[default]
            Auto,
            $($(#[$vdoc])* $v,)*
        }

        impl $name {
            /// The environment variable that forces this family's algorithm.
            pub const ENV: &'static str = $env;

            /// Parses a name as written in the environment variable (`auto` or an algorithm).
            pub fn parse(s: &str) -> Option<Self> {
                match s.trim().to_ascii_lowercase().replace('-', "_").as_str() {
                    "auto" | "" => Some($name::Auto),
                    $($s $(| $alias)* => Some($name::$v),)*
                    _ => None,
                }
            }

            /// Every accepted name.
            pub fn names() -> &'static [&'static str] {
                &["auto", $($s),*]
            }

            /// The algorithm's name.
            pub fn name(self) -> &'static str {
                match self {
                    $name::Auto => "auto",
                    $($name::$v => $s,)*
                }
            }
        }
    };
}

algo_enum!(
    /// Broadcast algorithms.
    BcastAlgo, "RMPI_ALGO_BCAST", {
        /// Binomial tree: ⌈log2 p⌉ rounds of the whole message.
        Binomial => "binomial",
        /// Binomial scatter then ring allgather (van de Geijn): ~2n bytes per rank.
        ScatterAllgather => "scatter_allgather",
        /// Chain root → root+1 → ... in 256 KiB segments, pipelined.
        Pipeline => "pipeline",
        /// The root sends to every rank at once.
        Linear => "linear",
        /// Two levels: across hosts among one rank per host (the root on its own host), then
        /// inside every host from that rank.
        Hier => "hier" | "two_level",
    }
);

algo_enum!(
    /// Barrier algorithms.
    BarrierAlgo, "RMPI_ALGO_BARRIER", {
        /// Dissemination: ⌈log2 p⌉ rounds of one empty message each way per rank.
        Dissemination => "dissemination",
        /// Every rank reports to rank 0, which then releases all at once: two hops, one
        /// message and one wait for every rank but rank 0.
        Linear => "linear",
        /// Every rank signals every other rank at once and waits for all of them: one hop.
        Flat => "flat",
        /// Two levels: every host's ranks report to its leader, the leaders run a dissemination
        /// barrier, each leader releases its host.
        Hier => "hier" | "two_level",
    }
);

algo_enum!(
    /// Reduce algorithms.
    ReduceAlgo, "RMPI_ALGO_REDUCE", {
        /// Binomial tree of whole-vector combines (segmented for long vectors when p > 2).
        Binomial => "binomial",
        /// Ring reduce-scatter then gather to the root (commutative operators only).
        ReduceScatterGather => "reduce_scatter_gather",
        /// Every rank sends to the root at once; the root combines in rank order.
        Linear => "linear",
        /// Two levels: inside every host to one rank (the root on its own host), then across
        /// hosts among those ranks.
        Hier => "hier" | "two_level",
    }
);

algo_enum!(
    /// Allreduce algorithms.
    AllreduceAlgo, "RMPI_ALGO_ALLREDUCE", {
        /// Recursive doubling: ⌈log2 p⌉ exchanges of the whole vector.
        RecursiveDoubling => "recursive_doubling",
        /// Ring reduce-scatter then ring allgather (commutative operators only).
        Ring => "ring",
        /// Recursive halving reduce-scatter then recursive doubling allgather (commutative only).
        Rabenseifner => "rabenseifner",
        /// Reduce to rank 0 then broadcast.
        ReduceBcast => "reduce_bcast",
        /// Every rank sends its whole vector to every other rank and combines all of them in
        /// rank order itself: one hop (any operator).
        Flat => "flat",
        /// Direct reduce-scatter (each chunk's owner combines it in rank order) then direct
        /// allgather, every message of a round posted at once.
        Direct => "direct",
        /// Two levels: reduce inside every host to its leader, allreduce among the leaders,
        /// broadcast inside every host.
        Hier => "hier" | "two_level",
    }
);

algo_enum!(
    /// Allgather algorithms (also used by allgatherv: ring only).
    AllgatherAlgo, "RMPI_ALGO_ALLGATHER", {
        /// Bruck's algorithm: ⌈log2 p⌉ rounds, one extra local rotation.
        Bruck => "bruck",
        /// Ring: p-1 rounds of one block, straight into the output.
        Ring => "ring",
        /// Every rank sends its block to every other rank at once: one round.
        Linear => "linear",
        /// Two levels: gather inside every host to its leader, allgather of the hosts' blocks
        /// among the leaders, broadcast of the whole result inside every host.
        Hier => "hier" | "two_level",
    }
);

algo_enum!(
    /// Gather algorithms.
    GatherAlgo, "RMPI_ALGO_GATHER", {
        /// Binomial tree (intermediate ranks forward their subtree's blocks).
        Binomial => "binomial",
        /// Every rank sends straight to the root.
        Linear => "linear",
    }
);

algo_enum!(
    /// Scatter algorithms.
    ScatterAlgo, "RMPI_ALGO_SCATTER", {
        /// Binomial tree (intermediate ranks forward their subtree's blocks).
        Binomial => "binomial",
        /// The root sends straight to every rank.
        Linear => "linear",
    }
);

algo_enum!(
    /// Alltoall algorithms.
    AlltoallAlgo, "RMPI_ALGO_ALLTOALL", {
        /// Every send and receive posted at once.
        Scattered => "scattered",
        /// p-1 rounds of pairwise exchange with rank ± k.
        Pairwise => "pairwise",
    }
);

algo_enum!(
    /// Reduce-scatter algorithms.
    ReduceScatterAlgo, "RMPI_ALGO_REDUCE_SCATTER", {
        /// Ring: p-1 rounds of one block (commutative operators only).
        Ring => "ring",
        /// Reduce to rank 0 then scatter (also spelled `reduce_scatter` in the variable).
        ReduceThenScatter => "reduce_then_scatter" | "reduce_scatter",
        /// Every rank sends each block straight to its owner, which combines the pieces in
        /// rank order: one hop (any operator).
        Direct => "direct",
    }
);

algo_enum!(
    /// Scan and exscan algorithms.
    ScanAlgo, "RMPI_ALGO_SCAN", {
        /// Recursive doubling: ⌈log2 p⌉ exchanges of the whole vector.
        RecursiveDoubling => "recursive_doubling",
        /// Pipelined chain 0 → 1 → ... → p-1 in 128 KiB segments.
        Chain => "chain",
    }
);

/// What the algorithm choice knows about where a communicator's ranks run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placement {
    /// Number of hosts.
    pub hosts: usize,
    /// The most ranks on one host.
    pub widest: usize,
    /// Whether every host's ranks are consecutive (as `--map-by slot` places them).
    pub contiguous: bool,
}

impl Placement {
    /// Every rank on one host (as one level of a two-level algorithm sees it).
    pub const ONE_HOST: Placement = Placement { hosts: 1, widest: usize::MAX, contiguous: true };

    /// Whether two levels differ from one: at least two hosts and two ranks on some host.
    pub fn two_level(&self) -> bool {
        self.hosts >= 2 && self.widest >= 2
    }

    /// Whether two levels keep rank order, as a non-commutative operator needs.
    fn two_level_for(&self, commutative: bool) -> bool {
        self.two_level() && (commutative || self.contiguous)
    }
}

/// Message-size thresholds (in bytes of one rank's vector) between algorithms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Thresholds {
    /// Broadcasts of at least this many bytes use scatter + allgather when p ≥ 8.
    pub bcast_long: usize,
    /// Broadcasts of at least this many bytes use the pipelined chain (when 2 < p < 8).
    pub bcast_pipeline: usize,
    /// Reductions of at least this many bytes use reduce-scatter + gather when p ≥ 16 (below
    /// that the segmented binomial tree won at every size measured here).
    pub reduce_long: usize,
    /// Reductions shorter than this go linear on 3 or 4 ranks (the root holds p − 2 copies).
    pub reduce_linear: usize,
    /// Allreduces shorter than this use reduce + bcast (both linear) on 3 or 4 ranks.
    pub allreduce_linear: usize,
    /// Allreduces of at least this many bytes use a reduce-scatter based algorithm.
    pub allreduce_long: usize,
    /// Allgathers whose total output is at least this many bytes use the ring.
    pub allgather_long: usize,
    /// Gathers/scatters whose total is at least this many bytes go linear.
    pub gather_long: usize,
    /// Alltoalls whose per-pair block is at least this many bytes use pairwise exchange.
    pub alltoall_long: usize,
    /// Reduce-scatters whose total input is at least this many bytes use the ring.
    pub reduce_scatter_long: usize,
    /// Scans of at least this many bytes use the pipelined chain.
    pub scan_long: usize,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            bcast_long: 128 << 10,
            bcast_pipeline: 128 << 10,
            reduce_long: 4 << 20,
            reduce_linear: 8 << 20,
            allreduce_long: 64 << 10,
            allreduce_linear: 128 << 10,
            allgather_long: 64 << 10,
            gather_long: 16 << 10,
            alltoall_long: 128 << 10,
            reduce_scatter_long: 32 << 10,
            scan_long: 64 << 10,
        }
    }
}

/// Algorithm choices and options for collective calls.
///
/// [`Settings::from_env`] reads `RMPI_ALGO_BARRIER`, `RMPI_ALGO_BCAST`, `RMPI_ALGO_REDUCE`, `RMPI_ALGO_ALLREDUCE`,
/// `RMPI_ALGO_ALLGATHER`, `RMPI_ALGO_GATHER`, `RMPI_ALGO_SCATTER`, `RMPI_ALGO_ALLTOALL`,
/// `RMPI_ALGO_REDUCE_SCATTER`, `RMPI_ALGO_SCAN` (an algorithm name or `auto`), `RMPI_COLL_CHECK`
/// (`1` turns on the consistency check before every call) and `RMPI_COLL_STALL_MS` (the stall
/// slice of mismatch detection). Every rank must use the same settings.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Settings {
    /// Barrier.
    pub barrier: BarrierAlgo,
    /// Broadcast.
    pub bcast: BcastAlgo,
    /// Reduce.
    pub reduce: ReduceAlgo,
    /// Allreduce.
    pub allreduce: AllreduceAlgo,
    /// Allgather.
    pub allgather: AllgatherAlgo,
    /// Gather.
    pub gather: GatherAlgo,
    /// Scatter.
    pub scatter: ScatterAlgo,
    /// Alltoall.
    pub alltoall: AlltoallAlgo,
    /// Reduce-scatter.
    pub reduce_scatter: ReduceScatterAlgo,
    /// Scan and exscan.
    pub scan: ScanAlgo,
    /// Run a consistency check (about the cost of a barrier) before every call, so that ranks
    /// in mismatched calls always get [`Error::Mismatch`], even where the calls' messages would
    /// not otherwise meet.
    pub check: bool,
    /// How long a collective wait lasts before this rank asks the peer it waits on which call
    /// it is in (the stall slice; `None`: [`DEFAULT_STALL`], or `RMPI_COLL_STALL_MS`).
    pub stall: Option<Duration>,
    /// Size thresholds for the `Auto` choices.
    pub thresholds: Thresholds,
}

/// The name of the check variable.
pub const CHECK_ENV: &str = "RMPI_COLL_CHECK";

/// The name of the stall slice variable (milliseconds).
pub const STALL_ENV: &str = "RMPI_COLL_STALL_MS";

/// The stall slice when neither [`Settings::stall`] nor `RMPI_COLL_STALL_MS` sets one.
pub const DEFAULT_STALL: Duration = Duration::from_millis(1000);

fn env_algo<A>(
    var: &'static str,
    parse: fn(&str) -> Option<A>,
    names: &[&str],
    get: &impl Fn(&str) -> Option<String>,
) -> Result<Option<A>> {
    match get(var) {
        None => Ok(None),
        Some(v) => parse(&v).map(Some).ok_or_else(|| Error::Env {
            var,
            msg: format!("unknown algorithm {v:?}; expected one of {}", names.join(", ")),
        }),
    }
}

impl Settings {
    /// The settings given by the environment (cached after the first call).
    pub fn from_env() -> Result<Settings> {
        static CACHE: OnceLock<std::result::Result<Settings, (&'static str, String)>> =
            OnceLock::new();
        let r = CACHE.get_or_init(|| {
            Settings::from_lookup(|k| std::env::var(k).ok()).map_err(|e| match e {
                Error::Env { var, msg } => (var, msg),
                other => ("RMPI_ALGO_*", other.to_string()),
            })
        });
        r.clone().map_err(|(var, msg)| Error::Env { var, msg })
    }

    /// The settings given by `get` (a stand-in for the environment).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Settings> {
        let mut s = Settings::default();
        macro_rules! read {
            ($field:ident, $ty:ident) => {
                if let Some(a) = env_algo($ty::ENV, $ty::parse, $ty::names(), &get)? {
                    s.$field = a;
                }
            };
        }
        read!(barrier, BarrierAlgo);
        read!(bcast, BcastAlgo);
        read!(reduce, ReduceAlgo);
        read!(allreduce, AllreduceAlgo);
        read!(allgather, AllgatherAlgo);
        read!(gather, GatherAlgo);
        read!(scatter, ScatterAlgo);
        read!(alltoall, AlltoallAlgo);
        read!(reduce_scatter, ReduceScatterAlgo);
        read!(scan, ScanAlgo);
        if let Some(v) = get(CHECK_ENV) {
            s.check = match v.trim() {
                "1" | "true" | "yes" | "on" => true,
                "0" | "false" | "no" | "off" | "" => false,
                _ => {
                    return Err(Error::Env {
                        var: CHECK_ENV,
                        msg: format!("expected 0 or 1, got {v:?}"),
                    })
                }
            };
        }
        if let Some(v) = get(STALL_ENV) {
            match v.trim().parse::<u64>() {
                Ok(ms) if ms > 0 => s.stall = Some(Duration::from_millis(ms)),
                _ => {
                    return Err(Error::Env {
                        var: STALL_ENV,
                        msg: format!("expected a positive number of milliseconds, got {v:?}"),
                    })
                }
            }
        }
        Ok(s)
    }

    /// The stall slice: [`stall`](Self::stall) or [`DEFAULT_STALL`].
    pub fn stall_slice(&self) -> Duration {
        self.stall.filter(|d| !d.is_zero()).unwrap_or(DEFAULT_STALL)
    }

    /// The barrier algorithm on `p` ranks placed as `at`.
    pub fn pick_barrier(&self, at: Placement) -> BarrierAlgo {
        match self.barrier {
            BarrierAlgo::Auto | BarrierAlgo::Hier if at.two_level() => BarrierAlgo::Hier,
            BarrierAlgo::Auto | BarrierAlgo::Hier | BarrierAlgo::Dissemination => {
                BarrierAlgo::Dissemination
            }
            BarrierAlgo::Linear | BarrierAlgo::Flat => self.barrier,
        }
    }

    /// The broadcast algorithm for `bytes` on `p` ranks placed as `at`.
    pub fn pick_bcast(&self, bytes: usize, p: usize, at: Placement) -> BcastAlgo {
        match self.bcast {
            BcastAlgo::Auto | BcastAlgo::Hier if at.two_level() => BcastAlgo::Hier,
            BcastAlgo::Auto | BcastAlgo::Hier => self.auto_bcast(bytes, p),
            BcastAlgo::Binomial
            | BcastAlgo::ScatterAllgather
            | BcastAlgo::Pipeline
            | BcastAlgo::Linear => self.bcast,
        }
    }

    fn auto_bcast(&self, bytes: usize, p: usize) -> BcastAlgo {
        if (3..8).contains(&p) && bytes >= self.thresholds.bcast_pipeline {
            BcastAlgo::Pipeline
        } else if p >= 8 && bytes >= self.thresholds.bcast_long {
            BcastAlgo::ScatterAllgather
        } else if p <= 4 {
            // Up to 4 ranks one hop for everybody beats a second tree level: a hop costs a
            // scheduling round when ranks share cores, the root's extra send does not.
            BcastAlgo::Linear
        } else {
            BcastAlgo::Binomial
        }
    }

    /// The reduce algorithm for `bytes` on `p` ranks placed as `at`.
    pub fn pick_reduce(
        &self,
        bytes: usize,
        p: usize,
        commutative: bool,
        at: Placement,
    ) -> ReduceAlgo {
        match self.reduce {
            ReduceAlgo::Auto | ReduceAlgo::Hier if at.two_level_for(commutative) => {
                ReduceAlgo::Hier
            }
            ReduceAlgo::Auto | ReduceAlgo::Hier => self.auto_reduce(bytes, p, commutative),
            ReduceAlgo::ReduceScatterGather if !commutative => ReduceAlgo::Binomial,
            ReduceAlgo::ReduceScatterGather | ReduceAlgo::Binomial | ReduceAlgo::Linear => {
                self.reduce
            }
        }
    }

    fn auto_reduce(&self, bytes: usize, p: usize, commutative: bool) -> ReduceAlgo {
        if p >= 16 && bytes >= self.thresholds.reduce_long && commutative {
            ReduceAlgo::ReduceScatterGather
        } else if (3..=4).contains(&p) && bytes < self.thresholds.reduce_linear {
            // One hop for everybody, as for bcast; the root's extra receive is cheaper than a
            // tree level while ranks share cores.
            ReduceAlgo::Linear
        } else {
            ReduceAlgo::Binomial
        }
    }

    /// The allreduce algorithm for `bytes` on `p` ranks placed as `at`.
    pub fn pick_allreduce(
        &self,
        bytes: usize,
        p: usize,
        commutative: bool,
        at: Placement,
    ) -> AllreduceAlgo {
        match self.allreduce {
            AllreduceAlgo::Auto | AllreduceAlgo::Hier if at.two_level_for(commutative) => {
                AllreduceAlgo::Hier
            }
            AllreduceAlgo::Auto | AllreduceAlgo::Hier => self.auto_allreduce(bytes, p, commutative),
            AllreduceAlgo::Ring | AllreduceAlgo::Rabenseifner if !commutative => {
                AllreduceAlgo::RecursiveDoubling
            }
            AllreduceAlgo::Ring
            | AllreduceAlgo::Rabenseifner
            | AllreduceAlgo::RecursiveDoubling
            | AllreduceAlgo::ReduceBcast
            | AllreduceAlgo::Direct
            | AllreduceAlgo::Flat => self.allreduce,
        }
    }

    fn auto_allreduce(&self, bytes: usize, p: usize, commutative: bool) -> AllreduceAlgo {
        if !commutative {
            AllreduceAlgo::RecursiveDoubling
        } else if (3..=4).contains(&p) && bytes < self.thresholds.allreduce_linear {
            // Up to 4 ranks: linear reduce + linear bcast, two hops, until the ring's spread of
            // the combining work pays.
            AllreduceAlgo::ReduceBcast
        } else if bytes >= self.thresholds.allreduce_long && p > 1 {
            if p.is_power_of_two() && p >= 8 {
                AllreduceAlgo::Rabenseifner
            } else {
                AllreduceAlgo::Ring
            }
        } else {
            AllreduceAlgo::RecursiveDoubling
        }
    }

    /// The allgather algorithm for a total output of `bytes` on `p` ranks placed as `at`.
    pub fn pick_allgather(&self, bytes: usize, p: usize, at: Placement) -> AllgatherAlgo {
        match self.allgather {
            AllgatherAlgo::Auto | AllgatherAlgo::Hier if at.two_level() => AllgatherAlgo::Hier,
            AllgatherAlgo::Auto | AllgatherAlgo::Hier => self.auto_allgather(bytes, p),
            AllgatherAlgo::Bruck | AllgatherAlgo::Ring | AllgatherAlgo::Linear => self.allgather,
        }
    }

    fn auto_allgather(&self, bytes: usize, p: usize) -> AllgatherAlgo {
        if (3..=4).contains(&p) && bytes >= self.thresholds.allgather_long {
            // Up to 4 ranks one round of p − 1 messages each way beats p − 1 ring steps.
            AllgatherAlgo::Linear
        } else if p == 2 || bytes >= self.thresholds.allgather_long {
            AllgatherAlgo::Ring
        } else {
            AllgatherAlgo::Bruck
        }
    }

    /// The gather algorithm for a total of `bytes` on `p` ranks.
    pub fn pick_gather(&self, bytes: usize, p: usize) -> GatherAlgo {
        match self.gather {
            GatherAlgo::Auto if p <= 4 || bytes >= self.thresholds.gather_long => {
                GatherAlgo::Linear
            }
            GatherAlgo::Auto => GatherAlgo::Binomial,
            GatherAlgo::Binomial | GatherAlgo::Linear => self.gather,
        }
    }

    /// The scatter algorithm for a total of `bytes` on `p` ranks.
    pub fn pick_scatter(&self, bytes: usize, p: usize) -> ScatterAlgo {
        match self.scatter {
            ScatterAlgo::Auto if p <= 4 || bytes >= self.thresholds.gather_long => {
                ScatterAlgo::Linear
            }
            ScatterAlgo::Auto => ScatterAlgo::Binomial,
            ScatterAlgo::Binomial | ScatterAlgo::Linear => self.scatter,
        }
    }

    /// The alltoall algorithm for per-pair blocks of `bytes` on `p` ranks.
    pub fn pick_alltoall(&self, bytes: usize, p: usize) -> AlltoallAlgo {
        match self.alltoall {
            // Up to 4 ranks every exchange posted at once won at every size measured.
            AlltoallAlgo::Auto if p > 4 && bytes >= self.thresholds.alltoall_long => {
                AlltoallAlgo::Pairwise
            }
            AlltoallAlgo::Auto => AlltoallAlgo::Scattered,
            AlltoallAlgo::Scattered | AlltoallAlgo::Pairwise => self.alltoall,
        }
    }

    /// The reduce-scatter algorithm for a total input of `bytes` on `p` ranks.
    pub fn pick_reduce_scatter(
        &self,
        bytes: usize,
        p: usize,
        commutative: bool,
    ) -> ReduceScatterAlgo {
        match self.reduce_scatter {
            ReduceScatterAlgo::Auto
            | ReduceScatterAlgo::Ring
            | ReduceScatterAlgo::ReduceThenScatter
                if !commutative =>
            {
                ReduceScatterAlgo::ReduceThenScatter
            }
            ReduceScatterAlgo::Auto if p == 2 || bytes >= self.thresholds.reduce_scatter_long => {
                ReduceScatterAlgo::Ring
            }
            ReduceScatterAlgo::Auto => ReduceScatterAlgo::ReduceThenScatter,
            ReduceScatterAlgo::Ring
            | ReduceScatterAlgo::ReduceThenScatter
            | ReduceScatterAlgo::Direct => self.reduce_scatter,
        }
    }

    /// The scan/exscan algorithm for `bytes` on `p` ranks.
    pub fn pick_scan(&self, bytes: usize, p: usize) -> ScanAlgo {
        match self.scan {
            ScanAlgo::Auto if p <= 4 || bytes >= self.thresholds.scan_long => ScanAlgo::Chain,
            ScanAlgo::Auto => ScanAlgo::RecursiveDoubling,
            ScanAlgo::RecursiveDoubling | ScanAlgo::Chain => self.scan,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE: Placement = Placement::ONE_HOST;

    #[test]
    fn env_parsing() {
        let s = Settings::from_lookup(|k| match k {
            "RMPI_ALGO_ALLREDUCE" => Some("Ring".into()),
            "RMPI_ALGO_BCAST" => Some("scatter-allgather".into()),
            "RMPI_COLL_CHECK" => Some("1".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(s.allreduce, AllreduceAlgo::Ring);
        assert_eq!(s.bcast, BcastAlgo::ScatterAllgather);
        assert!(s.check);
        // The variant's own spelling and the documented one both work.
        for spelling in ["reduce_then_scatter", "reduce_scatter", "Reduce-Scatter"] {
            assert_eq!(
                ReduceScatterAlgo::parse(spelling),
                Some(ReduceScatterAlgo::ReduceThenScatter),
                "{spelling}"
            );
        }
        assert_eq!(ReduceScatterAlgo::ReduceThenScatter.name(), "reduce_then_scatter");
        assert_eq!(ReduceAlgo::parse("linear"), Some(ReduceAlgo::Linear));
        let e = Settings::from_lookup(|k| (k == "RMPI_ALGO_GATHER").then(|| "tree".into()));
        match e {
            Err(Error::Env { var, msg }) => {
                assert_eq!(var, "RMPI_ALGO_GATHER");
                assert!(msg.contains("binomial"), "{msg}");
            }
            other => panic!("expected an env error, got {other:?}"),
        }
    }

    #[test]
    fn the_docs_list_every_algorithm_name() {
        let doc = include_str!("../../../docs/collectives.md");
        let row = |env: &str| {
            doc.lines()
                .find(|l| l.split('|').nth(1).is_some_and(|c| c.contains(&format!("`{env}`"))))
                .unwrap_or_else(|| panic!("no row for {env} in docs/collectives.md"))
                .to_string()
        };
        let families: [(&str, &[&str]); 10] = [
            (BarrierAlgo::ENV, BarrierAlgo::names()),
            (BcastAlgo::ENV, BcastAlgo::names()),
            (ReduceAlgo::ENV, ReduceAlgo::names()),
            (AllreduceAlgo::ENV, AllreduceAlgo::names()),
            (AllgatherAlgo::ENV, AllgatherAlgo::names()),
            (GatherAlgo::ENV, GatherAlgo::names()),
            (ScatterAlgo::ENV, ScatterAlgo::names()),
            (AlltoallAlgo::ENV, AlltoallAlgo::names()),
            (ReduceScatterAlgo::ENV, ReduceScatterAlgo::names()),
            (ScanAlgo::ENV, ScanAlgo::names()),
        ];
        for (env, names) in families {
            let row = row(env);
            for name in names {
                assert!(row.contains(&format!("`{name}`")), "{env}: `{name}` missing in: {row}");
            }
        }
    }

    #[test]
    fn stall_slice_parsing() {
        assert_eq!(Settings::default().stall_slice(), DEFAULT_STALL);
        let s = Settings::from_lookup(|k| (k == STALL_ENV).then(|| " 50 ".into())).unwrap();
        assert_eq!(s.stall_slice(), Duration::from_millis(50));
        for bad in ["0", "-3", "1s", ""] {
            match Settings::from_lookup(|k| (k == STALL_ENV).then(|| bad.into())) {
                Err(Error::Env { var, .. }) => assert_eq!(var, STALL_ENV),
                other => panic!("{bad:?}: expected an env error, got {other:?}"),
            }
        }
    }

    #[test]
    fn non_commutative_never_gets_ring() {
        let s = Settings { allreduce: AllreduceAlgo::Ring, ..Settings::default() };
        assert_eq!(s.pick_allreduce(1 << 20, 4, false, ONE), AllreduceAlgo::RecursiveDoubling);
        assert_eq!(s.pick_allreduce(1 << 20, 4, true, ONE), AllreduceAlgo::Ring);
        let d = Settings::default();
        assert_eq!(d.pick_allreduce(8, 4, true, ONE), AllreduceAlgo::ReduceBcast);
        assert_eq!(d.pick_allreduce(8, 4, false, ONE), AllreduceAlgo::RecursiveDoubling);
        // The flat allreduce runs on request only, for any operator.
        let flat = Settings { allreduce: AllreduceAlgo::Flat, ..d };
        assert_eq!(flat.pick_allreduce(8, 4, false, ONE), AllreduceAlgo::Flat);
        assert_eq!(d.pick_allreduce(8, 8, true, ONE), AllreduceAlgo::RecursiveDoubling);
        assert_eq!(d.pick_allreduce(1 << 20, 4, true, ONE), AllreduceAlgo::Ring);
    }

    #[test]
    fn reduce_choice_follows_size_and_ranks() {
        let d = Settings::default();
        assert_eq!(d.pick_reduce(8, 4, false, ONE), ReduceAlgo::Linear);
        assert_eq!(d.pick_reduce(8, 2, true, ONE), ReduceAlgo::Binomial);
        assert_eq!(d.pick_reduce(16 << 20, 4, true, ONE), ReduceAlgo::Binomial);
        assert_eq!(d.pick_reduce(8, 8, true, ONE), ReduceAlgo::Binomial);
        assert_eq!(d.pick_reduce(16 << 20, 16, true, ONE), ReduceAlgo::ReduceScatterGather);
        assert_eq!(d.pick_reduce(16 << 20, 16, false, ONE), ReduceAlgo::Binomial);
        let forced = Settings { reduce: ReduceAlgo::ReduceScatterGather, ..d };
        assert_eq!(forced.pick_reduce(8, 4, false, ONE), ReduceAlgo::Binomial);
    }

    #[test]
    fn two_levels_when_hosts_hold_several_ranks() {
        let d = Settings::default();
        let slot = Placement { hosts: 8, widest: 4, contiguous: true };
        let node = Placement { contiguous: false, ..slot };
        let single = Placement { hosts: 8, widest: 1, contiguous: true };
        assert_eq!(d.pick_barrier(slot), BarrierAlgo::Hier);
        assert_eq!(d.pick_barrier(single), BarrierAlgo::Dissemination);
        assert_eq!(d.pick_barrier(ONE), BarrierAlgo::Dissemination);
        let forced = Settings { barrier: BarrierAlgo::Flat, ..d };
        assert_eq!(forced.pick_barrier(ONE), BarrierAlgo::Flat);
        assert_eq!(forced.pick_barrier(slot), BarrierAlgo::Flat);
        assert_eq!(d.pick_bcast(8, 32, node), BcastAlgo::Hier);
        assert_eq!(d.pick_bcast(8, 8, single), BcastAlgo::Binomial);
        assert_eq!(d.pick_allreduce(8, 32, true, node), AllreduceAlgo::Hier);
        assert_eq!(d.pick_allreduce(8, 32, false, slot), AllreduceAlgo::Hier);
        // Rank order across hosts is lost when hosts interleave: flat for non-commutative.
        assert_eq!(d.pick_allreduce(8, 32, false, node), AllreduceAlgo::RecursiveDoubling);
        assert_eq!(d.pick_reduce(8, 32, false, node), ReduceAlgo::Binomial);
        // Forced two levels on one host is the flat choice; forced flat stays flat.
        let hier = Settings { allreduce: AllreduceAlgo::Hier, ..d };
        assert_eq!(hier.pick_allreduce(8, 4, true, ONE), AllreduceAlgo::ReduceBcast);
        let flat = Settings { allreduce: AllreduceAlgo::Ring, ..d };
        assert_eq!(flat.pick_allreduce(8, 32, true, slot), AllreduceAlgo::Ring);
        assert_eq!(BcastAlgo::parse("two-level"), Some(BcastAlgo::Hier));
        assert_eq!(d.pick_allgather(8 * 32, 32, node), AllgatherAlgo::Hier);
        assert_eq!(d.pick_allgather(8 * 8, 8, single), AllgatherAlgo::Bruck);
    }

    #[test]
    fn few_ranks_post_everything_at_once() {
        let d = Settings::default();
        assert_eq!(d.pick_allgather(8, 4, ONE), AllgatherAlgo::Bruck);
        assert_eq!(d.pick_reduce_scatter(8, 4, false), ReduceScatterAlgo::ReduceThenScatter);
        let direct = Settings { reduce_scatter: ReduceScatterAlgo::Direct, ..d };
        assert_eq!(direct.pick_reduce_scatter(8, 4, false), ReduceScatterAlgo::Direct);
        assert_eq!(d.pick_allgather(1 << 20, 4, ONE), AllgatherAlgo::Linear);
        assert_eq!(d.pick_allgather(1 << 20, 8, ONE), AllgatherAlgo::Ring);
        assert_eq!(d.pick_alltoall(1 << 20, 4), AlltoallAlgo::Scattered);
        assert_eq!(d.pick_alltoall(1 << 20, 8), AlltoallAlgo::Pairwise);
    }
}
