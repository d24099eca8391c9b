#!/usr/bin/env python3
"""Plots latency distributions from HdrHistogram percentile files (.hgrm, as written by
`ledger-bench --hist-out` and `benches/pg-compare.sh`) into one PNG: latency against
percentile, the percentile axis stretched as 1/(1-p) so that the tail (99 %, 99.9 %, ...)
gets as much room as the median.

    python3 benches/plot-latency.py -o benches/results/latency-uniform.png \\
        --title "uniform transfers" \\
        benches/results/ledger-batched-uniform.hgrm="ledger, frame of 1024" \\
        benches/results/postgres-uniform.hgrm="postgres, one transfer"

Needs matplotlib (`pip install matplotlib`).
"""

import argparse
import sys


def read_hgrm(path):
    """(percentile in [0, 1), value) rows of a classic .hgrm file; the 100 % row is dropped
    (it has no finite position on the 1/(1-p) axis) and returned separately as the max."""
    rows, maximum = [], None
    with open(path) as f:
        for line in f:
            fields = line.split()
            if len(fields) < 3 or line.startswith("#"):
                continue
            try:
                value, percentile = float(fields[0]), float(fields[1])
            except ValueError:
                continue  # the header
            if percentile < 1.0:
                rows.append((percentile, value))
            else:
                maximum = value
    return rows, maximum


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="+", metavar="FILE[=LABEL]")
    parser.add_argument("-o", "--output", required=True, help="PNG to write")
    parser.add_argument("--title", default="latency by percentile")
    parser.add_argument("--unit", default="µs", help="unit of the values (default µs)")
    args = parser.parse_args()
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator
    except ImportError:
        sys.exit("plot-latency: needs matplotlib (pip install matplotlib)")

    figure, axis = plt.subplots(figsize=(9, 5.5), dpi=110)
    for spec in args.files:
        path, _, label = spec.partition("=")
        rows, maximum = read_hgrm(path)
        if not rows:
            sys.exit(f"plot-latency: no percentile rows in {path}")
        xs = [1.0 / (1.0 - percentile) for percentile, _ in rows]
        ys = [value / 1000.0 for _, value in rows] if args.unit == "µs" else [v for _, v in rows]
        name = label or path
        if maximum is not None:
            name += f" (max {maximum / 1000.0:.1f} ms)" if args.unit == "µs" else f" (max {maximum})"
        axis.plot(xs, ys, label=name, linewidth=1.8)
    axis.set_xscale("log")
    axis.set_yscale("log")
    ticks = [1, 2, 10, 100, 1000, 10000, 100000]
    labels = {1: "0%", 2: "50%", 10: "90%", 100: "99%", 1000: "99.9%", 10000: "99.99%", 100000: "99.999%"}
    axis.xaxis.set_major_locator(FixedLocator(ticks))
    axis.xaxis.set_minor_locator(NullLocator())
    axis.xaxis.set_major_formatter(FuncFormatter(lambda x, _: labels.get(round(x), "")))
    axis.yaxis.set_major_formatter(FuncFormatter(lambda y, _: f"{y:g}"))
    axis.set_xlabel("percentile")
    axis.set_ylabel("latency (ms)" if args.unit == "µs" else f"latency ({args.unit})")
    axis.set_title(args.title)
    axis.grid(True, which="both", linewidth=0.4, alpha=0.6)
    axis.legend(loc="lower right", fontsize=8.5, framealpha=0.9)
    figure.tight_layout()
    figure.savefig(args.output)
    print(f"plot-latency: wrote {args.output}")


if __name__ == "__main__":
    main()
