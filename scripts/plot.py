#!/usr/bin/env python3
"""Turn the raw outputs of scripts/compare.sh into medians, CSV, markdown tables and plots.

Input (--raw DIR), as written by compare.sh:
  meta.env                       key=value facts about the run (date, versions, load, rounds)
  rmpi/TEST_P_rR.txt             rmpi's OSU-style table for TEST on P ranks, round R
  ompi/TEST_P_rR.txt             the same from ompi_bench under Open MPI over TCP
  vader/TEST_P_rR.txt            the same from ompi_bench under Open MPI's shared memory
                                 (`--mca btl vader,self`; optional)
  mpich/TEST_P_rR.txt            the same program under MPICH (collectives only; optional)
  nptcp/np_rR.out                NetPIPE output: bytes, Mbit/s, one-way seconds
  */*.missing, */*.failed        a run that could not happen or exited non-zero
  mpich/*.stopped                an MPICH run stopped after printing its whole table (it did
                                 not leave MPI_Finalize); its table counts

Output (--out DIR): one CSV per test and rank count, results.md (every table), plots.gp
(a gnuplot script compare.sh runs to draw the PNGs), and, with --doc FILE, the block between
the GENERATED markers of docs/performance.md is replaced by the summary tables.
MPICH columns, summary lines and plot curves appear only when the raw directory has MPICH
runs (or recorded failures); without them every output is as it was before MPICH was added.
The same holds for Open MPI's shared-memory path (vader): its CSV columns come last, after
MPICH's, so the older columns keep their positions.

Only the Python standard library is used.
"""

from __future__ import annotations

import argparse
import csv
import re
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, NamedTuple

BEGIN_MARK = "<!-- BEGIN GENERATED RESULTS (scripts/compare.sh) -->"
END_MARK = "<!-- END GENERATED RESULTS -->"

P2P = ["latency", "bw"]
COLLECTIVES = [
    "bcast",
    "reduce",
    "allreduce",
    "gather",
    "scatter",
    "barrier",
    "allgather",
    "alltoall",
    "reduce_scatter",
    "scan",
]
# Within this relative difference two medians are reported as "about the same".
SAME_BAND = 0.05
# The speed-up over MPICH that the rmpi vs MPICH summary measures every collective against.
MPICH_TARGET = 10.0
RAW_NAME = re.compile(r"^(?P<test>[a-z_]+)_(?P<np>\d+)_r(?P<round>\d+)\.txt$")


@dataclass
class Series:
    """Per-size values of one implementation for one test, one list entry per round."""

    rounds: list[dict[int, float]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def sizes(self) -> set[int]:
        """Every size seen in any round."""
        return {s for r in self.rounds for s in r}

    def values(self, size: int) -> list[float]:
        """The values measured for `size`, one per round that has it."""
        return [r[size] for r in self.rounds if size in r]

    def median(self, size: int) -> float | None:
        """Median over rounds, or None when no round measured `size`."""
        vals = self.values(size)
        return statistics.median(vals) if vals else None


def parse_osu_table(path: Path) -> dict[int, float]:
    """Read an OSU-style table: '#' lines are headers; rows are 'SIZE VALUE [...]'.

    A row with a single number (osu_barrier prints no size) is size 0. Lines that are not
    numeric rows (launcher chatter) are skipped.
    """
    table: dict[int, float] = {}
    for line in path.read_text(errors="replace").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split()
        try:
            if len(fields) == 1:
                table[0] = float(fields[0])
            else:
                table[int(fields[0])] = float(fields[1])
        except ValueError:
            continue
    return table


def parse_nptcp(path: Path) -> tuple[dict[int, float], dict[int, float]]:
    """Read NetPIPE's -o file: bytes, Mbit/s, one-way time in seconds.

    Returns (one-way latency in microseconds, throughput in MB/s = 1e6 bytes/s) by size.
    """
    lat: dict[int, float] = {}
    bw: dict[int, float] = {}
    for line in path.read_text(errors="replace").splitlines():
        fields = line.split()
        if len(fields) < 3:
            continue
        try:
            size, mbit, secs = int(fields[0]), float(fields[1]), float(fields[2])
        except ValueError:
            continue
        lat[size] = secs * 1e6
        bw[size] = mbit / 8.0
    return lat, bw


def read_meta(raw: Path) -> dict[str, str]:
    """meta.env as a dict (later keys win)."""
    meta: dict[str, str] = {}
    path = raw / "meta.env"
    if path.exists():
        for line in path.read_text(errors="replace").splitlines():
            key, sep, value = line.partition("=")
            if sep:
                meta[key.strip()] = value.strip()
    return meta


def collect(raw: Path) -> dict[tuple[str, int], dict[str, Series]]:
    """All measurements, keyed by (test, ranks) then implementation."""
    data: dict[tuple[str, int], dict[str, Series]] = {}
    for impl in ("rmpi", "ompi", "mpich", "vader"):
        folder = raw / impl
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            stem = path.name.rsplit(".", 1)[0]
            m = RAW_NAME.match(stem + ".txt")
            if not m:
                continue
            key = (m["test"], int(m["np"]))
            series = data.setdefault(key, {}).setdefault(impl, Series())
            if path.suffix == ".txt":
                table = parse_osu_table(path)
                if table:
                    series.rounds.append(table)
                else:
                    series.notes.append(f"round {m['round']}: no rows")
            elif path.suffix == ".stopped":
                series.notes.append(f"round {m['round']}: stopped after its last row")
            elif path.suffix == ".failed":
                series.notes.append(f"round {m['round']}: failed")
            elif path.suffix == ".missing":
                reason = path.read_text(errors="replace").strip().splitlines()
                series.notes.append(f"round {m['round']}: skipped, "
                                    f"{reason[0] if reason else 'no reason given'}")
    nptcp = raw / "nptcp"
    if nptcp.is_dir():
        for path in sorted(nptcp.glob("np_r*.out")):
            lat, bw = parse_nptcp(path)
            if lat:
                data.setdefault(("latency", 2), {}).setdefault("nptcp", Series()).rounds.append(lat)
                data.setdefault(("bw", 2), {}).setdefault("nptcp", Series()).rounds.append(bw)
    # NPtcp alone does not make a table (e.g. --only latency still runs NPtcp, which also
    # yields ping-pong rates): keep a test only when rmpi or Open MPI was asked to run it
    return {key: impls for key, impls in data.items()
            if set(impls) - {"nptcp", "mpich", "vader"}}


def human_size(size: int) -> str:
    """Bytes as B / KiB / MiB."""
    for unit, scale in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= scale and size % scale == 0:
            return f"{size // scale} {unit}"
    return f"{size} B"


def fmt(value: float | None, two_below: float = 100, one_below: float = 10000) -> str:
    """A number with two decimals below `two_below`, one below `one_below`, none above; None is
    shown as a dash. The defaults suit measurements."""
    if value is None:
        return "—"
    if value < two_below:
        return f"{value:.2f}"
    if value < one_below:
        return f"{value:.1f}"
    return f"{value:.0f}"


def verdict(ours: float | None, theirs: float | None, higher_is_better: bool) -> tuple[str, str]:
    """(ratio ours/theirs, plain words) for one comparison."""
    if ours is None or theirs is None or theirs <= 0 or ours <= 0:
        return "—", "pending" if ours is None else "—"
    ratio = ours / theirs
    worse = ratio < 1 if higher_is_better else ratio > 1
    factor = max(ratio, 1 / ratio)
    if abs(ratio - 1) <= SAME_BAND:
        words = "about the same"
    elif worse:
        words = f"{factor:.2f}× slower"
    else:
        words = f"{factor:.2f}× faster"
    return f"{ratio:.2f}", words


def times(ratio: float | None) -> str:
    """A speed-up factor with digits that suit its size (12.3, 1.05, 240); None is a dash."""
    return fmt(ratio, 10, 100)


def ours_cell(series: Series | None, size: int) -> str:
    """rmpi's median, or 'pending' when rmpi has no result."""
    if series is None or not series.values(size):
        return "pending"
    return fmt(series.median(size))


def stat_cells(vals: list[float]) -> list[str]:
    """CSV cells median, min, max and count of values over rounds (blank when none)."""
    if not vals:
        return ["", "", "", "0"]
    return [f"{statistics.median(vals):.3f}", f"{min(vals):.3f}", f"{max(vals):.3f}",
            str(len(vals))]


def busbw(size: int, usec: float | None, ranks: int) -> float | None:
    """Allreduce bus bandwidth in MB/s: (size/time) * 2(p-1)/p."""
    if usec is None or usec <= 0:
        return None
    return size / usec * 2 * (ranks - 1) / ranks


class Row(NamedTuple):
    """One size of a comparison table: the medians (None when missing) and the verdict."""

    size: int
    ours_cell: str
    ours: float | None
    ompi: float | None
    raw: float | None
    ratio: str
    words: str
    mpich: float | None = None
    vader: float | None = None

    def vs_vader(self, higher_is_better: bool) -> tuple[str, str]:
        """(ratio rmpi / Open MPI shared memory, plain words)."""
        return verdict(self.ours, self.vader, higher_is_better)

    def mpich_over_ours(self) -> float | None:
        """How many times faster rmpi is than MPICH (MPICH time / rmpi time), or None."""
        if self.ours and self.mpich:
            return self.mpich / self.ours
        return None


@dataclass
class Report:
    """Everything plot.py writes, built from the collected data."""

    data: dict[tuple[str, int], dict[str, Series]]
    meta: dict[str, str]
    out: Path
    plot_inputs: list[str] = field(default_factory=list)
    # Each CSV file's header, so the plots find their columns by name.
    csv_headers: dict[str, list[str]] = field(default_factory=dict)

    @property
    def with_mpich(self) -> bool:
        """True when this run included MPICH (results or recorded failures)."""
        return any("mpich" in impls for impls in self.data.values())

    @property
    def with_vader(self) -> bool:
        """True when this run included Open MPI's shared-memory path (results or failures)."""
        return any("vader" in impls for impls in self.data.values())

    def series(self, test: str, ranks: int, impl: str) -> Series | None:
        """One implementation's series, if it was run."""
        return self.data.get((test, ranks), {}).get(impl)

    def sizes(self, test: str, ranks: int) -> list[int]:
        """Sizes measured by anyone for this test (NPtcp only adds sizes rmpi/ompi also have)."""
        impls = self.data.get((test, ranks), {})
        found: set[int] = set()
        for name, s in impls.items():
            if name != "nptcp":
                found |= s.sizes()
        return sorted(found)

    # ------------------------------------------------------------------ CSV
    def write_csv(self, test: str, ranks: int) -> Path | None:
        """One CSV row per size: medians, min/max over rounds and ratio for each side."""
        sizes = self.sizes(test, ranks)
        if not sizes:
            return None
        impls = ["rmpi", "ompi"] + (["nptcp"] if test in P2P else [])
        unit = "MBps" if test == "bw" else "us"
        header = ["size_bytes"]
        for impl in impls:
            header += [f"{impl}_median_{unit}", f"{impl}_min_{unit}", f"{impl}_max_{unit}",
                       f"{impl}_rounds"]
        header.append("ratio_rmpi_over_ompi")
        if test == "allreduce":
            header += ["rmpi_busbw_MBps", "ompi_busbw_MBps"]
        # MPICH goes after every older column, so their positions do not depend on it
        mpich_cols = self.with_mpich and test in COLLECTIVES
        if mpich_cols:
            header += [f"mpich_median_{unit}", f"mpich_min_{unit}", f"mpich_max_{unit}",
                       "mpich_rounds", "ratio_mpich_over_rmpi"]
        # Open MPI's shared memory after all of those, for the same reason
        if self.with_vader:
            header += [f"vader_median_{unit}", f"vader_min_{unit}", f"vader_max_{unit}",
                       "vader_rounds", "ratio_rmpi_over_vader"]
        path = self.out / f"{test}_{ranks}.csv"
        with path.open("w", newline="") as fh:
            writer = csv.writer(fh, lineterminator="\n")
            writer.writerow(header)
            for size in sizes:
                row: list[str] = [str(size)]
                for impl in impls:
                    row += stat_cells(self.values(test, ranks, impl, size))
                ours = self.median(test, ranks, "rmpi", size)
                theirs = self.median(test, ranks, "ompi", size)
                row.append(f"{ours / theirs:.4f}" if ours and theirs else "")
                if test == "allreduce":
                    for value in (busbw(size, ours, ranks), busbw(size, theirs, ranks)):
                        row.append(f"{value:.3f}" if value is not None else "")
                if mpich_cols:
                    vals = self.values(test, ranks, "mpich", size)
                    row += stat_cells(vals)
                    mpich = statistics.median(vals) if vals else None
                    row.append(f"{mpich / ours:.4f}" if ours and mpich else "")
                if self.with_vader:
                    vals = self.values(test, ranks, "vader", size)
                    row += stat_cells(vals)
                    vader = statistics.median(vals) if vals else None
                    row.append(f"{ours / vader:.4f}" if ours and vader else "")
                writer.writerow(row)
        self.plot_inputs.append(path.name)
        self.csv_headers[path.name] = header
        return path

    def values(self, test: str, ranks: int, impl: str, size: int) -> list[float]:
        """One implementation's values over rounds at one size (empty if not run)."""
        s = self.series(test, ranks, impl)
        return s.values(size) if s else []

    def median(self, test: str, ranks: int, impl: str, size: int) -> float | None:
        """Median of one implementation at one size, or None."""
        s = self.series(test, ranks, impl)
        return s.median(size) if s else None

    # ------------------------------------------------------------------ markdown
    def rows(self, test: str, ranks: int) -> Iterator[Row]:
        """Every size of one table with the three medians and the rmpi vs Open MPI verdict."""
        ours_s = self.series(test, ranks, "rmpi")
        for size in self.sizes(test, ranks):
            ours = self.median(test, ranks, "rmpi", size)
            ompi = self.median(test, ranks, "ompi", size)
            ratio, words = verdict(ours, ompi, higher_is_better=test == "bw")
            yield Row(size, ours_cell(ours_s, size), ours, ompi,
                      self.median(test, ranks, "nptcp", size), ratio, words,
                      self.median(test, ranks, "mpich", size),
                      self.median(test, ranks, "vader", size))

    def latency_table(self) -> list[str]:
        """Point-to-point latency, 2 ranks, with NPtcp as the raw TCP floor."""
        head, rule = self.vader_head("| size | rmpi (µs) | Open MPI (µs) | NPtcp (µs) "
                                     "| rmpi/Open MPI | rmpi vs Open MPI | rmpi/NPtcp "
                                     "| Open MPI/NPtcp |",
                                     "| ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: |",
                                     "µs")
        lines = [head, rule]
        for r in self.rows("latency", 2):
            vs_raw = f"{r.ours / r.raw:.2f}" if r.ours and r.raw else "—"
            ompi_raw = f"{r.ompi / r.raw:.2f}" if r.ompi and r.raw else "—"
            lines.append(
                f"| {human_size(r.size)} | {r.ours_cell} | {fmt(r.ompi)} | {fmt(r.raw)} "
                f"| {r.ratio} | {r.words} | {vs_raw} | {ompi_raw} |" + self.vader_cells(r, False)
            )
        return lines

    def vader_head(self, head: str, rule: str, unit: str) -> tuple[str, str]:
        """A table's header and rule, with the Open MPI shared-memory columns when it ran."""
        if self.with_vader:
            head += f" Open MPI shm ({unit}) | rmpi/Open MPI shm | rmpi vs Open MPI shm |"
            rule += " ---: | ---: | --- |"
        return head, rule

    def vader_cells(self, r: Row, higher_is_better: bool) -> str:
        """The Open MPI shared-memory cells of one row (nothing when it did not run)."""
        if not self.with_vader:
            return ""
        ratio, words = r.vs_vader(higher_is_better)
        return f" {fmt(r.vader)} | {ratio} | {words} |"

    def bw_table(self) -> list[str]:
        """Streaming bandwidth (window of 64), with NPtcp's ping-pong rate for reference."""
        head, rule = self.vader_head("| size | rmpi (MB/s) | Open MPI (MB/s) | rmpi/Open MPI "
                                     "| rmpi vs Open MPI | NPtcp ping-pong (MB/s) |",
                                     "| ---: | ---: | ---: | ---: | --- | ---: |", "MB/s")
        lines = [head, rule]
        for r in self.rows("bw", 2):
            lines.append(
                f"| {human_size(r.size)} | {r.ours_cell} | {fmt(r.ompi)} | {r.ratio} "
                f"| {r.words} | {fmt(r.raw)} |" + self.vader_cells(r, True)
            )
        return lines

    def coll_table(self, test: str, ranks: int) -> list[str]:
        """One collective at one rank count, all sizes."""
        busbw_cols = test == "allreduce"
        head = "| size | rmpi (µs) | Open MPI (µs) | rmpi/Open MPI | rmpi vs Open MPI |"
        rule = "| ---: | ---: | ---: | ---: | --- |"
        if busbw_cols:
            head += " rmpi busbw (MB/s) | Open MPI busbw (MB/s) |"
            rule += " ---: | ---: |"
        mpich_cols = self.with_mpich
        if mpich_cols:
            head += " MPICH (µs) | MPICH/rmpi |"
            rule += " ---: | ---: |"
        head, rule = self.vader_head(head, rule, "µs")
        lines = [head, rule]
        for r in self.rows(test, ranks):
            line = (f"| {human_size(r.size) if test != 'barrier' else '—'} "
                    f"| {r.ours_cell} | {fmt(r.ompi)} | {r.ratio} | {r.words} |")
            if busbw_cols:
                line += (f" {fmt(busbw(r.size, r.ours, ranks))} "
                         f"| {fmt(busbw(r.size, r.ompi, ranks))} |")
            if mpich_cols:
                line += f" {fmt(r.mpich)} | {times(r.mpich_over_ours())} |"
            lines.append(line + self.vader_cells(r, False))
        return lines

    def headline(self) -> list[str]:
        """Small-message latency and peak bandwidth of the three contenders."""
        def at(test: str, impl: str, size: int) -> float | None:
            return self.median(test, 2, impl, size)

        def peak(impl: str) -> tuple[float | None, int | None]:
            s = self.series("bw", 2, impl)
            if not s or not s.rounds:
                return None, None
            best = max(s.sizes(), key=lambda z: s.median(z) or 0.0)
            return s.median(best), best

        shm = self.with_vader

        def shm_cells(ours: float | None, vader: float | None, higher: bool,
                      vader_cell: str | None = None) -> str:
            if not shm:
                return ""
            return f" {vader_cell or fmt(vader)} | {verdict(ours, vader, higher)[1]} |"

        lines = [
            "| measure | rmpi | Open MPI (TCP) | NPtcp (raw TCP) | rmpi vs Open MPI |"
            + (" Open MPI (shared memory) | rmpi vs Open MPI shm |" if shm else ""),
            "| --- | ---: | ---: | ---: | --- |" + (" ---: | --- |" if shm else ""),
        ]
        for size in (0, 8):
            ours, ompi, raw, vader = (at("latency", i, size)
                                      for i in ("rmpi", "ompi", "nptcp", "vader"))
            if ompi is None and ours is None:
                continue
            lines.append(
                f"| one-way latency, {human_size(size)} (µs) | {fmt(ours) if ours else 'pending'} "
                f"| {fmt(ompi)} | {fmt(raw)} | {verdict(ours, ompi, False)[1]} |"
                + shm_cells(ours, vader, False)
            )
        cells = []
        for impl in ("rmpi", "ompi", "nptcp", "vader"):
            value, size = peak(impl)
            cells.append(f"{fmt(value)} at {human_size(size)}" if value and size is not None
                         else ("pending" if impl == "rmpi" else "—"))
        ours_peak, ompi_peak, vader_peak = peak("rmpi")[0], peak("ompi")[0], peak("vader")[0]
        lines.append(
            f"| peak bandwidth (MB/s) | {cells[0]} | {cells[1]} | {cells[2]} "
            f"| {verdict(ours_peak, ompi_peak, True)[1]} |"
            + shm_cells(ours_peak, vader_peak, True, cells[3])
        )
        for size in (8, 65536, 4 << 20):
            ours = self.median("allreduce", 2, "rmpi", size)
            ompi = self.median("allreduce", 2, "ompi", size)
            vader = self.median("allreduce", 2, "vader", size)
            if ompi is None and ours is None:
                continue
            lines.append(
                f"| allreduce, 2 ranks, {human_size(size)} (µs) "
                f"| {fmt(ours) if ours else 'pending'} | {fmt(ompi)} | — "
                f"| {verdict(ours, ompi, False)[1]} |" + shm_cells(ours, vader, False)
            )
        return lines

    def coll_summary(self, theirs: str = "ompi") -> list[str]:
        """Every collective at a few sizes: 'rmpi vs Open MPI' (`theirs`: its TCP path "ompi"
        or its shared memory "vader") per cell."""
        sizes = [8, 65536, 1 << 20, 16 << 20]
        lines = [
            "| collective | ranks | " + " | ".join(human_size(s) for s in sizes) + " |",
            "| --- | ---: |" + " --- |" * len(sizes),
        ]
        for ranks in sorted({np for (t, np) in self.data if t in COLLECTIVES}):
            for test in COLLECTIVES:
                if (test, ranks) not in self.data:
                    continue
                wanted = [0] if test == "barrier" else sizes
                cells = []
                for size in wanted:
                    ours = self.median(test, ranks, "rmpi", size)
                    ompi = self.median(test, ranks, theirs, size)
                    if ours is None and ompi is None:
                        cells.append("—")
                        continue
                    cells.append(f"{fmt(ours) if ours else 'pending'} vs {fmt(ompi)} µs"
                                 f" ({verdict(ours, ompi, False)[1]})")
                if test == "barrier":
                    cells += [""] * (len(sizes) - 1)
                lines.append(f"| {test} | {ranks} | " + " | ".join(cells) + " |")
        return lines

    def slower_summary(self, theirs: str = "ompi") -> list[str]:
        """One plain line per test: where rmpi is slower than Open MPI (`theirs`: its TCP path
        "ompi" or its shared memory "vader"), and by how much."""
        lines = []
        order = [("latency", 2), ("bw", 2)] + [
            (t, np) for np in (2, 4) for t in COLLECTIVES if (t, np) in self.data
        ]
        for test, ranks in order:
            if (test, ranks) not in self.data:
                continue
            higher = test == "bw"
            slower: list[tuple[float, int]] = []
            faster: list[tuple[float, int]] = []
            compared = 0
            last_pair: tuple[float, float] = (0.0, 0.0)
            for size in self.sizes(test, ranks):
                ours = self.median(test, ranks, "rmpi", size)
                ompi = self.median(test, ranks, theirs, size)
                if not ours or not ompi:
                    continue
                compared += 1
                last_pair = (ours, ompi)
                ratio = ours / ompi
                factor = (1 / ratio) if higher else ratio
                if factor > 1 + SAME_BAND:
                    slower.append((factor, size))
                elif factor < 1 - SAME_BAND:
                    faster.append((1 / factor, size))
            name = f"{test}, {ranks} ranks"
            if compared == 0:
                lines.append(f"- {name}: rmpi pending.")
                continue
            if compared == 1:
                ratio_words = verdict(last_pair[0], last_pair[1], higher)[1]
                single = ratio_words if not slower else f"**{ratio_words}**"
                lines.append(f"- {name}: {single}.")
                continue
            parts = []
            if slower:
                worst = max(slower)
                parts.append(f"**slower at {len(slower)} of {compared} sizes** (worst "
                             f"{worst[0]:.2f}× at {human_size(worst[1])})")
            if faster:
                best = max(faster)
                parts.append(f"faster at {len(faster)} of {compared} sizes "
                             f"(best {best[0]:.2f}× at "
                             f"{human_size(best[1])})")
            same = compared - len(slower) - len(faster)
            if same:
                parts.append(f"within ±{SAME_BAND:.0%} at {same} of {compared} sizes")
            lines.append(f"- {name}: " + "; ".join(parts) + ".")
        return lines

    def mpich_summary(self) -> list[str]:
        """Per collective and rank count: how many times faster rmpi is than MPICH.

        4 ranks first (the case the target is about), then 2; each line gives the minimum
        and the median over the sizes both measured, and the sizes below the target.
        """
        lines = [f"Speed-up = MPICH median time / rmpi median time per size; target "
                 f"{MPICH_TARGET:.0f}×.", ""]
        for ranks in (4, 2):
            every: list[tuple[float, str, int]] = []
            for test in COLLECTIVES:
                if (test, ranks) not in self.data:
                    continue
                name = f"{test}, {ranks} ranks"
                mpich_s = self.series(test, ranks, "mpich")
                if mpich_s is None or not mpich_s.rounds:
                    lines.append(f"- {name}: MPICH pending.")
                    continue
                pairs = [(r.mpich_over_ours(), r.size) for r in self.rows(test, ranks)]
                ups = [(x, size) for x, size in pairs if x is not None]
                if not ups:
                    lines.append(f"- {name}: rmpi pending.")
                    continue
                every += [(x, test, size) for x, size in ups]
                low, low_size = min(ups)
                med = statistics.median(x for x, _ in ups)
                where = "" if test == "barrier" else f" at {human_size(low_size)}"
                if low < 1:
                    where += f", where MPICH is {times(1 / low)}× faster"
                text = (f"rmpi {times(low)}× as fast as MPICH{where}" if len(ups) == 1 else
                        f"rmpi min {times(low)}×{where}, median {times(med)}× as fast as "
                        f"MPICH over {len(ups)} sizes")
                below = [size for x, size in ups if x < MPICH_TARGET]
                if below:
                    # name the sizes when they are few; "all" or a count says enough otherwise
                    sizes = (", ".join(human_size(z) for z in below)
                             if test != "barrier" and len(below) <= 4 else "")
                    text += (f"; **below {MPICH_TARGET:.0f}× at {len(below)} of {len(ups)} "
                             f"size{'s' if len(ups) > 1 else ''}**"
                             + (f" ({sizes})" if sizes else ""))
                lines.append(f"- {name}: {text}.")
            if every:
                low, test, size = min(every)
                med = statistics.median(x for x, _, _ in every)
                at = test if test == "barrier" else f"{test} {human_size(size)}"
                lines.append(f"- **all collectives, {ranks} ranks: min {times(low)}× ({at}), "
                             f"median {times(med)}× over {len(every)} test/size points.**")
        return lines

    def run_facts(self) -> list[str]:
        """Where and how the numbers were taken."""
        m = self.meta
        loads = [f"{k.removeprefix('load_')}: {v}" for k, v in m.items() if k.startswith("load_")]
        facts = [
            f"- Run: {m.get('date_utc', '?')} UTC, {m.get('host_cores', '?')} cores "
            f"({m.get('host_cpu', '?')}), Linux {m.get('kernel', '?')}, commit "
            f"{m.get('git_commit', '?')}.",
            f"- {m.get('ompi_version', 'Open MPI ?')}; {m.get('rustc_version', 'rustc ?')}"
            + (f"; Open MPI's shared memory as `{m.get('vader_cmd', '?')}`"
               if self.with_vader else "")
            + (f"; {m.get('mpich_version') or 'MPICH ?'} (collectives only, "
               f"`{m.get('mpich_cmd', '?')}`)" if self.with_mpich else "")
            + ".",
            f"- Rounds: {m.get('rounds', '?')} of {m.get('rounds_requested', '?')} requested"
            f"{' (quick mode: sizes up to 1 MiB)' if m.get('quick') == '1' else ''}; "
            f"whole script {m.get('runtime_s', '?')} s before the report step.",
            f"- Load average (1/5/15 min) — {'; '.join(loads) if loads else 'not recorded'}.",
        ]
        if m.get("ours_ok") != "1":
            facts.append(f"- rmpi: **missing** ({m.get('ours_note', 'not built')}); its columns "
                         "say pending.")
        if self.with_mpich and m.get("mpich_ok") == "0":
            facts.append(f"- MPICH: **missing** ({m.get('mpich_note', 'not built')}).")
        notes = []
        for (test, ranks), impls in sorted(self.data.items()):
            for impl, s in impls.items():
                bad = [n for n in s.notes
                       if "failed" in n or "no rows" in n or "budget" in n or "timed out" in n]
                if bad:
                    notes.append(f"{impl} {test} on {ranks} ranks ({', '.join(bad)})")
        if notes:
            facts.append("- Runs that failed or were skipped: " + "; ".join(notes) + ".")
        stopped = sorted(f"{test} on {ranks} ranks" for (test, ranks), impls in self.data.items()
                         for n in impls.get("mpich", Series()).notes if "stopped" in n)
        if stopped:
            facts.append(f"- MPICH runs that printed their whole table but did not leave "
                         f"MPI_Finalize, stopped and counted ({len(stopped)}): "
                         + ", ".join(stopped) + ".")
        return facts

    def all_tables(self) -> list[str]:
        """results.md: every table."""
        out = ["# rmpi vs Open MPI vs raw TCP: all measured tables", "",
               "Generated by `scripts/compare.sh` (see [../performance.md](../performance.md)). "
               "Medians over rounds; ratio = rmpi / Open MPI"
               + ("; MPICH/rmpi = how many times faster rmpi is than MPICH" if self.with_mpich
                  else "") + ".", ""]
        out += self.run_facts() + [""]
        out += ["## Where rmpi is slower than Open MPI", ""] + self.slower_summary() + [""]
        if self.with_vader:
            out += ["## Where rmpi is slower than Open MPI's shared memory (vader)", ""]
            out += self.slower_summary("vader") + [""]
        if self.with_mpich:
            out += ["## rmpi vs MPICH (collectives)", ""] + self.mpich_summary() + [""]
        if ("latency", 2) in self.data:
            out += ["## Latency, 2 ranks (`osu_latency`)", ""] + self.latency_table() + [""]
        if ("bw", 2) in self.data:
            out += ["## Bandwidth, 2 ranks (`osu_bw`)", ""] + self.bw_table() + [""]
        for ranks in sorted({np for (t, np) in self.data if t in COLLECTIVES}):
            for test in COLLECTIVES:
                if (test, ranks) in self.data:
                    out += [f"## {test}, {ranks} ranks (`osu_{test}`)", ""]
                    out += self.coll_table(test, ranks) + [""]
        return out

    def doc_block(self) -> list[str]:
        """The summary spliced into docs/performance.md."""
        out = ["", "### Run", ""] + self.run_facts() + [""]
        out += ["### Headline", ""] + self.headline() + [""]
        out += ["### Where rmpi is slower than Open MPI", ""] + self.slower_summary() + [""]
        if self.with_vader:
            out += ["### Where rmpi is slower than Open MPI's shared memory (vader)", ""]
            out += self.slower_summary("vader") + [""]
        if self.with_mpich:
            out += ["### rmpi vs MPICH (collectives)", ""] + self.mpich_summary() + [""]
        if ("latency", 2) in self.data:
            out += ["### Latency, 2 ranks", ""] + self.latency_table() + [""]
        if ("bw", 2) in self.data:
            out += ["### Bandwidth, 2 ranks", ""] + self.bw_table() + [""]
        if any(t in COLLECTIVES for (t, _) in self.data):
            out += ["### Collectives (median latency, rmpi vs Open MPI)", ""]
            out += self.coll_summary() + [""]
            if self.with_vader:
                out += ["### Collectives (median latency, rmpi vs Open MPI shared memory)", ""]
                out += self.coll_summary("vader") + [""]
            for ranks in (2, 4):
                if ("allreduce", ranks) in self.data:
                    out += [f"### Allreduce, {ranks} ranks, with bus bandwidth", ""]
                    out += self.coll_table("allreduce", ranks) + [""]
        out += ["Every table (all sizes, all collectives): [perf/results.md](perf/results.md). "
                "CSV files and plots: [perf/](perf/).", ""]
        return out

    # ------------------------------------------------------------------ gnuplot
    def gnuplot_script(self) -> str:
        """A gnuplot script drawing PNGs from the CSV files (columns with data only)."""
        def has(test: str, ranks: int, impl: str) -> bool:
            s = self.series(test, ranks, impl)
            return bool(s and s.rounds)

        colour = {"rmpi": "#d62728", "ompi": "#1f77b4", "nptcp": "#2ca02c", "mpich": "#ff7f0e",
                  "vader": "#9467bd"}
        title = {"rmpi": "rmpi", "ompi": "Open MPI (TCP)", "nptcp": "NPtcp (raw TCP)",
                 "mpich": "MPICH (TCP)", "vader": "Open MPI (shared memory)"}

        def col(csv_name: str, name: str) -> int:
            """The 1-based gnuplot column of CSV header `name` (see write_csv)."""
            return self.csv_headers[csv_name].index(name) + 1

        def median_col(csv_name: str, impl: str, test: str) -> int:
            unit = "MBps" if test == "bw" else "us"
            return col(csv_name, f"{impl}_median_{unit}")

        coll_impls = ["rmpi", "ompi", "vader", "mpich"]

        def curves(csv_name: str, test: str, ranks: int, impls: list[str]) -> str:
            parts = []
            if csv_name not in self.plot_inputs:
                return ""
            for impl in impls:
                if has(test, ranks, impl):
                    parts.append(
                        f"'{csv_name}' using (($1>0)?$1:NaN):{median_col(csv_name, impl, test)} "
                        "with linespoints "
                        f"lw 2 pt 7 ps 0.5 lc rgb '{colour[impl]}' title '{title[impl]}'"
                    )
            return ", \\\n     ".join(parts)

        lines = [
            "# generated by scripts/plot.py; run from docs/perf/",
            "set datafile separator comma",
            "set terminal pngcairo size 900,600 font 'sans,10'",
            "set grid",
            "set key top left",
            "set logscale x 2",
            "set format x '%.0b%B'",
            "set xlabel 'message size (bytes)'",
        ]
        if ("latency", 2) in self.data:
            c = curves("latency_2.csv", "latency", 2, ["rmpi", "ompi", "vader", "nptcp"])
            if c:
                lines += ["set output 'latency_2.png'", "set logscale y",
                          "set ylabel 'one-way latency (µs)'",
                          "set title 'Point-to-point latency, 2 ranks, loopback (median)'",
                          f"plot {c}", "unset logscale y"]
        if ("bw", 2) in self.data:
            c = curves("bw_2.csv", "bw", 2, ["rmpi", "ompi", "vader", "nptcp"])
            if c:
                lines += ["set output 'bw_2.png'", "set logscale y",
                          "set ylabel 'bandwidth (MB/s)'",
                          "set title 'Bandwidth, 2 ranks (osu\\_bw window 64; NPtcp ping-pong)'",
                          f"plot {c}", "unset logscale y"]
        for ranks in (2, 4):
            panels = [t for t in COLLECTIVES if t != "barrier" and (t, ranks) in self.data]
            panels = [t for t in panels if curves(f"{t}_{ranks}.csv", t, ranks, coll_impls)]
            if not panels:
                continue
            lines += [f"set output 'collectives_{ranks}.png'",
                      "set terminal pngcairo size 1500,1200 font 'sans,9'",
                      "set logscale y", "set ylabel 'latency (µs)'", "unset title",
                      f"set multiplot layout 3,3 title 'Collectives, {ranks} ranks, one host "
                      "(median latency)'"]
            for test in panels:
                name = test.replace("_", "\\_")
                lines += [f"set title '{name}'",
                          f"plot {curves(f'{test}_{ranks}.csv', test, ranks, coll_impls)}"]
            lines += ["unset multiplot", "unset logscale y",
                      "set terminal pngcairo size 900,600 font 'sans,10'"]
        busbw_plots = []
        for ranks in (2, 4):
            point = 7 if ranks == 2 else 5
            for impl, column, dash in (("rmpi", "rmpi_busbw_MBps", 1),
                                       ("ompi", "ompi_busbw_MBps", 2)):
                name = f"allreduce_{ranks}.csv"
                if has("allreduce", ranks, impl) and name in self.plot_inputs:
                    busbw_plots.append(
                        f"'{name}' using 1:{col(name, column)} with linespoints lw 2 pt {point} "
                        f"ps 0.5 dt {dash} lc rgb '{colour[impl]}' "
                        f"title '{title[impl]}, {ranks} ranks'"
                    )
        if busbw_plots:
            lines += ["set output 'allreduce_busbw.png'", "set logscale y",
                      "set ylabel 'bus bandwidth (MB/s) = size/t * 2(p-1)/p'",
                      "set title 'Allreduce bus bandwidth (MPI\\_DOUBLE, MPI\\_SUM)'",
                      "plot " + ", \\\n     ".join(busbw_plots)]
        lines.append("set output")
        return "\n".join(lines) + "\n"


def splice_doc(doc: Path, block: list[str]) -> None:
    """Replace the text between the GENERATED markers of `doc` with `block`."""
    text = doc.read_text()
    start, end = text.find(BEGIN_MARK), text.find(END_MARK)
    if start < 0 or end < start:
        raise SystemExit(f"plot.py: {doc} has no '{BEGIN_MARK}' ... '{END_MARK}' block")
    new = text[: start + len(BEGIN_MARK)] + "\n" + "\n".join(block) + "\n" + text[end:]
    doc.write_text(new)


def main(argv: list[str]) -> int:
    """Entry point: parse arguments, write everything, report what was written."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--raw", type=Path, required=True, help="raw output directory")
    ap.add_argument("--out", type=Path, required=True, help="where CSV/markdown/plots go")
    ap.add_argument("--doc", type=Path, help="docs/performance.md to refresh")
    args = ap.parse_args(argv)
    if not args.raw.is_dir():
        print(f"plot.py: raw directory {args.raw} does not exist", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    report = Report(collect(args.raw), read_meta(args.raw), args.out)
    if not report.data:
        print(f"plot.py: no results under {args.raw}", file=sys.stderr)
        return 1
    for test, ranks in sorted(report.data):
        report.write_csv(test, ranks)
    (args.out / "results.md").write_text("\n".join(report.all_tables()))
    (args.out / "plots.gp").write_text(report.gnuplot_script())
    if args.doc:
        splice_doc(args.doc, report.doc_block())
    print(f"plot.py: wrote {len(report.plot_inputs)} CSV files, results.md, plots.gp"
          f"{' and ' + str(args.doc) if args.doc else ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
