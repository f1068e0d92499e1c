"""What glazeish.device's kept heap does: speed of a cloak with it on and off, and memory held when idle.

    python benchmarks/memory_reuse.py --out benchmarks/memory_reuse

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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, SHARED  # noqa: E402

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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "memory_reuse")
    ap.add_argument("--pairs", type=int, default=5)
    args = ap.parse_args()
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
    on = [r["wall_s"] for r in rows if r.get("keep_memory") == "1"]
    off = [r["wall_s"] for r in rows if r.get("keep_memory") == "0"]
    ratios = [a / b for a, b in zip(on, off)]
    same = len({r["sha256"] for r in rows if r["kind"] == "process"}) == 1
    idle = {r["mode"]: r["rss_gb"] for r in rows if r["kind"] == "idle"}
    from glazeish.device import cpu_name

    text = f"""# The kept heap (glazeish.device.keep_freed_memory)

Machine: {cpu_name()}, {os.cpu_count()} cores.
Command: `python benchmarks/memory_reuse.py --out benchmarks/memory_reuse`.

Whole `glazeish protect --intensity fast --no-eval` processes on a 512² painting (Python start-up included),
{args.pairs} pairs, on then off in turn:

| | median wall s | min–max |
|---|---|---|
| kept heap (`GLAZEISH_KEEP_MEMORY=1`, the default) | {statistics.median(on):.2f} | {min(on):.2f}–{max(on):.2f} |
| glibc's own settings (`GLAZEISH_KEEP_MEMORY=0`) | {statistics.median(off):.2f} | {min(off):.2f}–{max(off):.2f} |
| ratio, pair by pair | {statistics.median(ratios):.3f} | {min(ratios):.3f}–{max(ratios):.3f} |

Every cloak has the same bytes: {"yes" if same else "NO"}.

Resident memory of a process idle after a 512² `fast` cloak: kept heap with the trim after the cloak
{idle["trim"]:.2f} GB; kept heap without the trim {idle["notrim"]:.2f} GB; glibc's own settings {idle["system"]:.2f} GB.
"""
    (args.out / "RESULTS.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
