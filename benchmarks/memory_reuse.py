"""What glazeish.device's kept heap does: speed of a cloak with it on and off, and memory held when idle.

    python benchmarks/memory_reuse.py --out benchmarks/memory_reuse
    python benchmarks/memory_reuse.py --report   # RESULTS.md's blocks from the committed rows

1. Paired whole processes: `glazeish protect --intensity fast --no-eval` on a 512² painting with
   ``GLAZEISH_KEEP_MEMORY=1`` and ``=0`` in turn (A B A B ...), the ratio taken pair by pair so that a drift in
   the machine's speed hits both alike. The cloak's bytes are compared too.
2. Resident memory of one process after a 512² `fast` cloak, idle: with the kept heap and its trim after the
   cloak (what glazeish does), with the kept heap but no trim, and with glibc's own settings.

Writes `results.jsonl` and `RESULTS.md` into --out.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent / "memory_reuse"
sys.path.insert(0, str(HERE.parent))
from common import ROOT, SHARED, regenerate, report_from_rows  # noqa: E402

PAINTING = SHARED / "images" / "paintings" / "00003-0-vincent-van-gogh_olive-picking-1889-2.png"

# one cloak in this process, then its resident memory while idle (mode: trim, notrim, system)
_IDLE = """
import sys, glazeish.protect as P
from glazeish.config import ProtectConfig
from glazeish.imageio import read_image
if sys.argv[2] == "notrim":
    P.release_freed_memory = lambda: None
p = P.Protector(ProtectConfig(intensity="fast"))
p.protect(read_image(sys.argv[1]))
print(int(open("/proc/self/statm").read().split()[1]) * 4096 / 1e9)
"""


def cloak_process(keep: str, outdir: Path) -> tuple[float, str]:
    env = dict(os.environ, GLAZEISH_KEEP_MEMORY=keep)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "glazeish", "protect", str(PAINTING), "-o", str(outdir), "--overwrite",
                    "--quiet", "--intensity", "fast", "--no-eval"], env=env, check=True)
    wall = time.perf_counter() - t0
    out = next(outdir.glob("*.png"))
    return wall, hashlib.sha256(out.read_bytes()).hexdigest()


def idle_gb(mode: str) -> float:
    env = dict(os.environ, GLAZEISH_KEEP_MEMORY="0" if mode == "system" else "1")
    proc = subprocess.run([sys.executable, "-c", _IDLE, str(PAINTING), mode], env=env, check=True,
                          capture_output=True, text=True)
    return float(proc.stdout.split()[-1])


def wall_table(rows: list[dict]) -> str:
    """The paired whole-process runs: median and range with the kept heap on and off, their ratio pair by pair,
    and whether every cloak has the same bytes."""
    on = [r["wall_s"] for r in rows if r.get("keep_memory") == "1"]
    off = [r["wall_s"] for r in rows if r.get("keep_memory") == "0"]
    ratios = [a / b for a, b in zip(on, off)]
    same = len({r["sha256"] for r in rows if r["kind"] == "process"}) == 1
    return f"""Whole `glazeish protect --intensity fast --no-eval` processes on a 512² painting (Python start-up included),
{len(ratios)} pairs, on then off in turn:

| | median wall s | min–max |
|---|---|---|
| kept heap (`GLAZEISH_KEEP_MEMORY=1`, the default) | {statistics.median(on):.2f} | {min(on):.2f}–{max(on):.2f} |
| glibc's own settings (`GLAZEISH_KEEP_MEMORY=0`) | {statistics.median(off):.2f} | {min(off):.2f}–{max(off):.2f} |
| ratio, pair by pair | {statistics.median(ratios):.3f} | {min(ratios):.3f}–{max(ratios):.3f} |

Every cloak has the same bytes: {"yes" if same else "NO"}."""


def idle_line(rows: list[dict]) -> str:
    idle = {r["mode"]: r["rss_gb"] for r in rows if r["kind"] == "idle"}
    return f"""Resident memory of a process idle after a 512² `fast` cloak: kept heap with the trim after the cloak
{idle["trim"]:.2f} GB; kept heap without the trim {idle["notrim"]:.2f} GB; glibc's own settings {idle["system"]:.2f} GB."""


def tables(rows: list[dict]) -> dict:
    """The generated blocks of RESULTS.md by name, from the rows."""
    return {"wall": lambda: wall_table(rows), "idle": lambda: idle_line(rows)}


def report(folder: Path = HERE) -> str:
    """RESULTS.md of ``folder`` with every generated block rebuilt from the rows beside it."""
    return report_from_rows(folder, tables)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=HERE)
    ap.add_argument("--pairs", type=int, default=5)
    ap.add_argument("--report", action="store_true",
                    help="rewrite the generated blocks of --out's RESULTS.md from its results.jsonl instead of running")
    args = ap.parse_args()
    if args.report:
        (args.out / "RESULTS.md").write_text(report(args.out))
        return
    scratch = ROOT / "benchmarks" / "_scratch" / "memory_reuse"
    rows = []
    cloak_process("1", scratch / "warm")  # page cache, first start
    for i in range(args.pairs):
        for keep in ("1", "0"):
            wall, digest = cloak_process(keep, scratch / keep)
            rows.append({"kind": "process", "pair": i, "keep_memory": keep, "wall_s": round(wall, 3), "sha256": digest})
    for mode in ("trim", "notrim", "system"):
        rows.append({"kind": "idle", "mode": mode, "rss_gb": round(idle_gb(mode), 3)})
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    from glazeish.device import cpu_name

    text = f"""# The kept heap (glazeish.device.keep_freed_memory)

Machine: {cpu_name()}, {os.cpu_count()} cores.
Command: `python benchmarks/memory_reuse.py --out benchmarks/memory_reuse`.
The blocks below: `python benchmarks/memory_reuse.py --report` rebuilds them from `results.jsonl`.

<!-- generated: wall -->
<!-- end generated -->

<!-- generated: idle -->
<!-- end generated -->
"""
    (args.out / "RESULTS.md").write_text(regenerate(text, tables(rows)))
    print((args.out / "RESULTS.md").read_text())

if __name__ == "__main__":
    main()
