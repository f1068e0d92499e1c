"""Start-up of the command line: `glazeish --help` and `glazeish protect --help` as whole processes, the time to
import glazeish's modules, and the time to load TAEF2, for this checkout and (with --before) an earlier one.

    git worktree add /tmp/startup-base <commit>     # the code to compare against
    python benchmarks/startup/startup.py --before /tmp/startup-base --out benchmarks/startup
    git worktree add /tmp/startup-after HEAD        # optional: measure a commit rather than this working tree
    python benchmarks/startup/startup.py --before /tmp/startup-base --after /tmp/startup-after
    python benchmarks/startup/startup.py --report    # RESULTS.md's blocks from the committed rows

Every figure comes from a fresh interpreter run with a checkout as its working directory (`python -m glazeish
...`, `python -c ...`), so that the checkout's own glazeish is the one imported. The checkouts take turns run by
run (before, after, after's first call, before, ...), so that a drift in the machine's speed hits them alike.
A help process is timed from outside (wall seconds; CPU seconds = user + system, as the operating system
accounts the finished child), an import or a model load from inside its process. "After" reads the help's
registry words from the kept facts (glazeish.helpfacts, primed by one call before the timed runs); "after,
first call" starts each run with an empty cache, so it gathers them (and imports torch) and keeps them.

Writes `results.jsonl` (one row per run) and `RESULTS.md` into --out.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from common import MODELS, ROOT, regenerate, report_from_rows  # noqa: E402

HELPS = (("glazeish --help", ["--help"]), ("glazeish protect --help", ["protect", "--help"]))
#: what a command imports before it can start, timed inside a fresh interpreter
IMPORTS = (("import glazeish.cli", "every command, its help included"),
           ("from glazeish.job import Cloaker", "what `protect` imports when it runs"),
           ("import torch", "PyTorch alone: the floor of any command that computes"))
_IMPORT = "import sys, time\nt = time.perf_counter()\n{stmt}\nprint(time.perf_counter() - t, 'torch' in sys.modules)"
# TAEF2 (encoder and decoder) as protect loads it: weights read and checked, modules built, on the CPU
_LOAD = """import sys, time
from glazeish.encoders import load_encoders
t = time.perf_counter()
load_encoders("taef2", sys.argv[1], "cpu")
print(time.perf_counter() - t)"""


def run(cmd: list[str], cwd: Path, cache: Path) -> tuple[float, float, str]:
    """Wall seconds, CPU seconds (user + system of the finished child) and stdout of one process."""
    env = {**os.environ, "XDG_CACHE_HOME": str(cache), "OMP_WAIT_POLICY": "PASSIVE"}
    was = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    now = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode:
        raise SystemExit(f"{' '.join(cmd)} in {cwd} failed:\n{done.stderr[-2000:]}")
    return wall, now.ru_utime - was.ru_utime + now.ru_stime - was.ru_stime, done.stdout


def checkouts(before: Path | None, after: Path, scratch: Path) -> list[tuple[str, Path, Path | None]]:
    """(version, working directory, cache folder; None: a new empty one for every run) in the order they run."""
    out = [("before", before, scratch / "cache-before")] if before else []
    return out + [("after", after, scratch / "cache-after"), ("after, first call", after, None)]


def help_rows(versions: list, pairs: int) -> list[dict]:
    rows = []
    for i in range(pairs):
        for command, args in HELPS:
            for version, cwd, cache in versions:
                with tempfile.TemporaryDirectory(prefix="glazeish-startup-") as fresh:
                    wall, cpu, out = run([sys.executable, "-m", "glazeish", *args], cwd, cache or Path(fresh))
                rows.append({"kind": "help", "command": command, "version": version, "pair": i,
                             "wall_s": round(wall, 4), "cpu_s": round(cpu, 4),
                             "stdout_sha256": hashlib.sha256(out.encode()).hexdigest()})
    return rows


def import_rows(versions: list, pairs: int) -> list[dict]:
    rows = []
    for i in range(pairs):
        for stmt, _ in IMPORTS:
            for version, cwd, cache in versions[:-1]:  # a first call's gathering is in the help rows
                _, _, out = run([sys.executable, "-c", _IMPORT.format(stmt=stmt)], cwd, cache)
                seconds, torch = out.split()
                rows.append({"kind": "import", "stmt": stmt, "version": version, "pair": i,
                             "seconds": round(float(seconds), 4), "imports_torch": torch == "True"})
    return rows


def load_rows(versions: list, pairs: int) -> list[dict]:
    rows = []
    for i in range(pairs):
        for version, cwd, cache in versions[:-1]:
            _, _, out = run([sys.executable, "-c", _LOAD, str(MODELS)], cwd, cache)
            rows.append({"kind": "load", "model": "taef2", "version": version, "pair": i,
                         "seconds": round(float(out.split()[-1]), 4)})
    return rows


def commit(folder: Path) -> str:
    """The checkout's commit, ``+local changes`` when its glazeish/ differs from it."""
    head = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=folder, capture_output=True, text=True,
                          check=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "--", "glazeish"], cwd=folder, capture_output=True,
                           text=True, check=False)
    return head.stdout.strip() + (" +local changes" if dirty.stdout.strip() else "")


def _med(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}–{max(values):.2f})"


def help_table(rows: list[dict]) -> str:
    """Median (min–max) seconds of each help per version, the ratio to before pair by pair, same bytes or not."""
    lines = [("| command | checkout | wall s, median (min–max) | CPU s, median (min–max) "
              "| CPU vs before, pair by pair | stdout the same as before |"), "|---|---|---|---|---|---|"]
    for command, _ in HELPS:
        mine = [r for r in rows if r.get("kind") == "help" and r["command"] == command]
        base = {r["pair"]: r for r in mine if r["version"] == "before"}
        for version in dict.fromkeys(r["version"] for r in mine):
            runs = [r for r in mine if r["version"] == version]
            ratio, same = "—", "—"
            if base and version != "before":
                ratio = f"{statistics.median(r['cpu_s'] / base[r['pair']]['cpu_s'] for r in runs):.3f}×"
                same = "yes" if {r["stdout_sha256"] for r in runs + list(base.values())} == {runs[0]["stdout_sha256"]} \
                    else "NO"
            lines.append(f"| `{command}` | {version} | {_med([r['wall_s'] for r in runs])} | "
                         f"{_med([r['cpu_s'] for r in runs])} | {ratio} | {same} |")
    return "\n".join(lines)


def import_table(rows: list[dict]) -> str:
    """Seconds of each import statement per version, and whether it brought torch in."""
    versions = list(dict.fromkeys(r["version"] for r in rows if r.get("kind") == "import"))
    lines = [f"| statement | what | {' | '.join(f'{v}: s, median (min–max)' for v in versions)} |",
             "|---|---|" + "---|" * len(versions)]
    for stmt, what in IMPORTS:
        cells = []
        for v in versions:
            runs = [r for r in rows if r.get("kind") == "import" and r["stmt"] == stmt and r["version"] == v]
            torch = "imports torch" if any(r["imports_torch"] for r in runs) else "no torch"
            cells.append(f"{_med([r['seconds'] for r in runs])}, {torch}")
        lines.append(f"| `{stmt}` | {what} | {' | '.join(cells)} |")
    return "\n".join(lines)


def load_line(rows: list[dict]) -> str:
    runs = [r for r in rows if r.get("kind") == "load"]
    per = {v: [r["seconds"] for r in runs if r["version"] == v] for v in dict.fromkeys(r["version"] for r in runs)}
    said = "; ".join(f"{v} {_med(s)} s" for v, s in per.items())
    return (f"Loading TAEF2 (encoder and decoder: weights read and sha256-checked, modules built, on the CPU) "
            f"inside a process that has imported glazeish.encoders, median (min–max) of {len(runs) // len(per)} "
            f"processes: {said}.")


def setup_lines(rows: list[dict]) -> str:
    (s,) = [r for r in rows if r.get("kind") == "setup"]
    before = f"before = `{s['before']}`" if s.get("before") else "no earlier checkout"
    return (f"Machine: {s['machine']}, {s['cores']} cores; Python {s['python']}, PyTorch {s['torch']}; load average "
            f"(1 min) {s['load_start']:.1f} at the start, {s['load_end']:.1f} at the end.\n"
            f"Checkouts: after = `{s['after']}`, {before}; {s['pairs']} runs of each figure per checkout.\n"
            f"Command: `{s['command']}`.")


def tables(rows: list[dict]) -> dict:
    """The generated blocks of RESULTS.md by name, from the rows."""
    return {"setup": lambda: setup_lines(rows), "help": lambda: help_table(rows),
            "imports": lambda: import_table(rows), "load": lambda: load_line(rows)}


def report(folder: Path = HERE) -> str:
    """RESULTS.md of ``folder`` with every generated block rebuilt from the rows beside it."""
    return report_from_rows(folder, tables)


TEMPLATE = """# Start-up of the command line

<!-- generated: setup -->
<!-- end generated -->

`python benchmarks/startup/startup.py --report` rebuilds the blocks from `results.jsonl`. A load average above
the number of cores means other jobs shared the processors: wall seconds grow with it, CPU seconds much less,
and the ratios are taken pair by pair (runs next to each other).

## A help, as a whole process (`python -m glazeish ...`)

<!-- generated: help -->
<!-- end generated -->

## Imports, timed inside a fresh interpreter

<!-- generated: imports -->
<!-- end generated -->

## Loading the model

<!-- generated: load -->
<!-- end generated -->
"""


def setup_row(args: argparse.Namespace, load_start: float) -> dict:
    from glazeish.device import cpu_name  # /proc/cpuinfo's model name

    torch = subprocess.run([sys.executable, "-c", "import torch; print(torch.__version__)"], capture_output=True,
                           text=True, check=True).stdout.strip()
    command = " ".join(["python benchmarks/startup/startup.py", *sys.argv[1:]])
    return {"kind": "setup", "machine": cpu_name(), "cores": os.cpu_count(), "python": platform.python_version(),
            "torch": torch, "after": commit(args.after), "before": commit(args.before) if args.before else None,
            "pairs": args.pairs, "load_start": load_start, "load_end": os.getloadavg()[0], "command": command}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=HERE)
    ap.add_argument("--before", type=Path, help="a checkout of the code to compare against (git worktree add ...)")
    ap.add_argument("--after", type=Path, default=ROOT, help="the checkout measured as 'after' (default: this one)")
    ap.add_argument("--pairs", type=int, default=5, help="runs of each figure per checkout")
    ap.add_argument("--report", action="store_true",
                    help="rewrite the generated blocks of --out's RESULTS.md from its results.jsonl instead of running")
    args = ap.parse_args()
    if args.report:
        (args.out / "RESULTS.md").write_text(report(args.out))
        return
    load_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="glazeish-startup-") as scratch:
        versions = checkouts(args.before.resolve() if args.before else None, args.after.resolve(), Path(scratch))
        for _, cwd, cache in versions:  # the page cache warm; the kept help facts primed where they are kept
            if cache is not None:
                run([sys.executable, "-m", "glazeish", "--help"], cwd, cache)
        rows = [*help_rows(versions, args.pairs), *import_rows(versions, args.pairs), *load_rows(versions, args.pairs)]
    rows.insert(0, setup_row(args, load_start))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (args.out / "RESULTS.md").write_text(regenerate(TEMPLATE, tables(rows)))
    print((args.out / "RESULTS.md").read_text())


if __name__ == "__main__":
    main()
