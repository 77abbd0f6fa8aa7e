"""Benchmark runner: every benchmarks/bench_*.py defines TITLE and run(quick) -> list of row dicts.

    python benchmarks/run.py                 # all benchmarks, full sizes
    python benchmarks/run.py s4d --quick     # the ones whose file name contains "s4d", small sizes

Prints one markdown table per benchmark. Ratios are measured side by side in one run, on the
machine at hand; wall-clock numbers are for comparison within a table only.
"""

from __future__ import annotations

import argparse
import importlib.util
import platform
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent


def timed(fn, repeat: int = 3) -> float:
    """Best wall time of `repeat` calls, in seconds (one warm-up call first)."""
    fn()
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def markdown_table(rows: list[dict]) -> str:
    if not rows:
        return "(no rows)"
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    for r in rows:
        lines.append("| " + " | ".join(_fmt(r.get(k, "")) for k in keys) + " |")
    return "\n".join(lines)


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help="substrings of benchmark file names to run")
    parser.add_argument("--quick", action="store_true", help="small sizes (seconds)")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's choice)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    sys.path.insert(0, str(HERE))
    files = sorted(HERE.glob("bench_*.py"))
    if args.names:
        files = [f for f in files if any(n in f.stem for n in args.names)]
    device = "cuda" if torch.cuda.is_available() else "cpu"
    print(f"machine: {platform.machine()}, {torch.get_num_threads()} torch threads, device {device}, "
          f"torch {torch.__version__}\n")
    for f in files:
        spec = importlib.util.spec_from_file_location(f.stem, f)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        print(f"## {module.TITLE}\n")
        print(markdown_table(module.run(args.quick)))
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
