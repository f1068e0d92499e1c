"""Speed and memory benchmark: seconds per image and peak RSS through the real CLI, next to the protection.

Every measurement is a separate `glazeish protect --json` process, so model loading, peak memory and
thread settings are those a user gets. Peak RSS comes from `os.wait4` (that child only).

    python benchmarks/speed.py --out benchmarks/speed            # the committed grid (about 30 min)
    python benchmarks/speed.py --quick --out /tmp/speed          # a smoke run
    python benchmarks/speed.py --grid amortised --out benchmarks/speed/amortised   # default vs the learned start
    python benchmarks/speed.py --grid figures --out benchmarks/speed/figures       # 2048²: sampled vs all-tile figures
    python benchmarks/speed.py --grid amortised --sizes 512x512 --out benchmarks/speed/amortised512   # its 512² rows
    python benchmarks/speed.py --grid laptop --out benchmarks/speed/laptop   # 512² natively and held to AVX2 (fp32)
    python benchmarks/speed.py --grid targets --out benchmarks/speed/targets   # issue 31's targets, held out, in U
    python benchmarks/speed.py --report   # every RESULTS.md and speed.png under benchmarks/speed/ from its rows

Writes `results.jsonl` (one row per run), `RESULTS.md` (tables) and `speed.png` (time and memory vs pixels).
`--report` runs nothing: it rewrites the generated blocks of the committed RESULTS.md files (the full grid's and
those of amortised/, amortised512/, figures/ and laptop/) from their rows and redraws their `speed.png`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from glazeish.device import cpu_name

HERE = Path(__file__).resolve().parent / "speed"
sys.path.insert(0, str(HERE.parent))
from common import ROOT, SHARED, read_rows, regenerate, report_from_rows  # noqa: E402

PAINTING = SHARED / "images" / "paintings" / "00003-0-vincent-van-gogh_olive-picking-1889-2.png"


def make_inputs(scratch: Path, sizes: list[tuple[int, int]]) -> dict[tuple[int, int], Path]:
    """Test images of each size: the painting resized (Lanczos) — real brushwork at every scale."""
    scratch.mkdir(parents=True, exist_ok=True)
    src = Image.open(PAINTING).convert("RGB")
    out = {}
    for w, h in sizes:
        p = scratch / f"painting_{w}x{h}.png"
        if not p.exists():
            src.resize((w, h), Image.LANCZOS).save(p)
        out[(w, h)] = p
    return out


#: what holds this machine's kernels to a CPU level: the laptop class is AVX2 with fp32 only
LEVELS = {"native": {}, "avx2": {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}}

#: U, the unit of the laptop grid: one forward + backward of the TAEF2 encoder on a 512² image, median of 5
_UNIT = """
import statistics, sys, time, torch
from glazeish.device import autocast, cpu_class, resolve_precision
from glazeish.encoders import load_encoder
enc, dev = load_encoder("taef2"), torch.device("cpu")
precision = resolve_precision("auto", dev)
x = torch.rand(1, 3, 512, 512, generator=torch.Generator().manual_seed(0)).contiguous(memory_format=torch.channels_last)
def once():
    xi = x.clone().requires_grad_(True)
    with autocast(dev, precision):
        z = enc.encode(xi)
    torch.autograd.grad(z.float().square().sum(), xi)
once()
times = []
for _ in range(5):
    t = time.perf_counter(); once(); times.append(time.perf_counter() - t)
print(statistics.median(times), precision, cpu_class(), sep="\t")
"""


def unit_seconds(level: str, threads: int = 2) -> dict:
    """U at a CPU level (a fresh process: the level is fixed when oneDNN loads)."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), **LEVELS[level])
    out = subprocess.run([sys.executable, "-c", _UNIT], env=env, capture_output=True, text=True, check=True)
    u, precision, cls = out.stdout.strip().split("\t")
    return {"unit": True, "level": level, "threads": threads, "u_seconds": round(float(u), 3),
            "precision": precision, "cpu_class": cls}


def run_one(image: Path, outdir: Path, threads: int, args: list[str], level: str = "native") -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), **LEVELS[level])
    cmd = [sys.executable, "-m", "glazeish", "protect", str(image), "-o", str(outdir), "--overwrite", "--json",
           "--quiet", *args]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    stdout, stderr = proc.stdout.read(), proc.stderr.read()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        return {"error": (stderr.strip().splitlines() or ["?"])[-1], "cmd": " ".join(cmd[2:]), "level": level}
    row = json.loads(stdout.strip().splitlines()[-1])
    row.update(process_wall_s=round(wall, 2), peak_rss_gb=round(usage.ru_maxrss / 1e6, 3), threads=threads,
               cmd="glazeish " + " ".join(cmd[3:]), level=level)
    return row


def laptop_grid() -> list[tuple[tuple[int, int], int, list[str], str]]:
    """512² through the CLI at this CPU's own level and held to the laptop class (AVX2, fp32): each preset with
    and without figures, the two levels neighbours in time (``--grid laptop``)."""
    runs = []
    for preset in ("fast", "default", "high"):
        for extra in ([], ["--no-eval"]):
            for level in LEVELS:
                runs.append(((512, 512), 2, ["--precision", "auto", "--intensity", preset, *extra], level))
    return runs


#: issue 31's held-out images (odd positions of each kind, as benchmarks/amortised splits them), centre-cropped
TARGET_IMAGES = {"painting": "paintings/00003-0-vincent-van-gogh_olive-picking-1889-2.png", "flat": "flat/flat_02.png",
                 "line": "line/line_02.png"}


def targets_grid() -> list[tuple]:
    """Issue 31's targets through the CLI, whole processes with figures, at both CPU levels, neighbours in time
    (``--grid targets``): ``fast`` and the default on three held-out 512² crops (with the quick figures, the
    CLI's default); on the painting also full figures, 4 steps from the network and the network alone; 2048²
    ``fast`` on the painting."""
    painting = [["--intensity", "fast"], ["--intensity", "default"], ["--intensity", "fast", "--figures", "full"],
                ["--intensity", "default", "--figures", "full"], ["--intensity", "fast", "--start", "network"],
                ["--start", "network", "--steps", "0"]]
    runs = []
    for kind, size, configs in [("painting", 512, painting), ("flat", 512, painting[:2]), ("line", 512, painting[:2]),
                                ("painting", 2048, painting[:1])]:
        for extra in configs:
            for level in LEVELS:
                runs.append(((size, size), 2, ["--precision", "auto", *extra], level, kind))
    return runs


def amortised_grid() -> list[tuple[tuple[int, int], int, list[str]]]:
    """The default next to the learned start: the ``fast`` preset (4 steps from it) and the pattern alone
    (``--start learned --steps 0``), with and without figures, at 512² and 2048², neighbours in time so that a
    load drift hits all three alike (``--grid amortised``)."""
    runs = []
    for size in [(512, 512), (2048, 2048)]:
        for extra in ([], ["--no-eval"]):
            for how in ([], ["--intensity", "fast"], ["--start", "learned", "--steps", "0"]):
                runs.append((size, 2, ["--precision", "auto", *how, *extra]))
    return runs


def figures_grid() -> list[tuple[tuple[int, int], int, list[str]]]:
    """2048² ``fast`` with the figures measured on 4 sampled tiles (the default) next to every tile, neighbours
    in time (``--grid figures``)."""
    return [((2048, 2048), 2, ["--precision", "auto", "--intensity", "fast", "--figure-tiles", n]) for n in ("4", "0")]


def grid(quick: bool) -> list[tuple[tuple[int, int], int, list[str]]]:
    """(size, threads, extra CLI args) per run: presets × encoders × precisions on small sizes, threads and
    figures on/off at 512², the default on large sizes."""
    runs = []
    small = [(256, 256), (512, 512)]
    for size in small:
        for preset in ("low", "default", "high"):
            for enc in ("taef2", "taesana"):
                obj = [] if enc == "taef2" else ["--objective", "texture"]  # taesana has no decoder
                for prec in ("fp32", "bf16"):
                    runs.append((size, 2, ["--intensity", preset, "--encoder", enc, "--precision", prec, *obj]))
        for threads in (1, 2):
            runs.append((size, threads, ["--precision", "auto"]))
    runs.append(((512, 512), 2, ["--precision", "auto", "--no-eval"]))
    for size in [(1024, 1024), (2048, 2048), (4000, 3000)]:
        runs.append((size, 2, ["--precision", "auto"]))
    runs.append(((2048, 2048), 2, ["--precision", "auto", "--no-eval"]))
    if quick:
        runs = [r for r in runs if r[0] == (256, 256)][:4]
    return runs


def centre_square(im: Image.Image) -> Image.Image:
    """The largest centred square of ``im``."""
    side = min(im.size)
    left, top = (im.width - side) // 2, (im.height - side) // 2
    return im.crop((left, top, left + side, top + side))


def make_crops(scratch: Path, sizes: list[tuple[int, int]]) -> dict[tuple, Path]:
    """The held-out images of :data:`TARGET_IMAGES`, centre-cropped square and resized (Lanczos) to each size."""
    scratch.mkdir(parents=True, exist_ok=True)
    out = {}
    for kind, rel in TARGET_IMAGES.items():
        im = centre_square(Image.open(SHARED / "images" / rel).convert("RGB"))
        for w, h in sizes:
            p = scratch / f"{kind}_{w}x{h}.png"
            if not p.exists():
                im.resize((w, h), Image.LANCZOS).save(p)
            out[(w, h), kind] = p
    return out


def make_batch(scratch: Path, n: int = 20, size: int = 512) -> Path:
    """``n`` different ``size``² images (centre crops of the shared paintings and drawings, resized)."""
    folder = scratch / f"batch{n}"
    folder.mkdir(parents=True, exist_ok=True)
    srcs = sorted((SHARED / "images").glob("*/*.png"))
    for i in range(n):
        p = folder / f"img{i:02d}.png"
        if p.exists():
            continue
        im = Image.open(srcs[i % len(srcs)]).convert("RGB")
        if i >= len(srcs):  # second pass: mirrored, so no two inputs are the same picture
            im = im.transpose(Image.FLIP_LEFT_RIGHT)
        centre_square(im).resize((size, size), Image.LANCZOS).save(p)
    return folder


def run_batch(folder: Path, outdir: Path, threads: int = 2) -> dict:
    """One process over the whole folder: per-image times from the --json rows, next to the total."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    cmd = [sys.executable, "-m", "glazeish", "protect", str(folder), "-o", str(outdir), "--overwrite", "--json",
           "--quiet", "--precision", "auto"]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    rows = [json.loads(l) for l in proc.stdout.read().splitlines() if l.startswith("{")]
    if os.waitstatus_to_exitcode(status) != 0 or not rows:
        return {"error": (proc.stderr.read().strip().splitlines() or ["?"])[-1], "cmd": " ".join(cmd[2:])}
    return {
        "batch": len(rows), "threads": threads, "process_wall_s": round(wall, 2),
        "peak_rss_gb": round(usage.ru_maxrss / 1e6, 3), "load_seconds": rows[0]["load_seconds"],
        "seconds": [r["seconds"] for r in rows], "image_seconds": [r["image_seconds"] for r in rows],
        "cmd": "glazeish " + " ".join(cmd[3:]),
    }


def runs_table(rows: list[dict]) -> str:
    """One line per run: its seconds, memory and protection."""
    lines = [
        "| size | threads | args | cloak s | figures s | image s | load s | process s | peak RSS GB | PSNR | "
        "latent ×noise | mimic gap dB |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r.get('size', '?')} | | `{r['cmd']}` | error: {r['error']} | | | | | | | | |")
            continue
        args = r["cmd"].split("--json --quiet")[-1].strip() or "(default)"
        prot = "| – | – | –"
        if r.get("figures"):
            f = r["figures"]
            s = f["summary"]
            gap = f"{s['view_gap']:.1f}" if s["view_gap"] is not None else "–"
            prot = f"| {f['before']['cloak']['psnr']:.1f} | {s['latent_ratio'][f['encoders'][0]]:.1f} | {gap}"
        lines.append(
            f"| {r['width']}×{r['height']} | {r['threads']} | `{args}` | {r['seconds']:.1f} | "
            f"{r['figure_seconds']:.1f} | {r['image_seconds']:.1f} | {r['load_seconds']:.2f} | "
            f"{r['process_wall_s']:.1f} | {r['peak_rss_gb']:.2f} {prot} |"
        )
    return "\n".join(lines)


def batch_table(batch: dict) -> str:
    """The batch run: one process over different 512² images."""
    if "error" in batch:
        return f"`{batch['cmd']}` failed: {batch['error']}"
    img, cl = np.array(batch["image_seconds"]), np.array(batch["seconds"])
    return "\n".join([
        f"`{batch['cmd']}` — {batch['batch']} different 512×512 images in one process, {batch['threads']} "
        "threads (models loaded once).",
        "",
        "| images | load s | image s: mean / median / max | cloak s: mean | process s | process s ÷ images | "
        "peak RSS GB |",
        "|---|---|---|---|---|---|---|",
        f"| {batch['batch']} | {batch['load_seconds']:.2f} | {img.mean():.1f} / {np.median(img):.1f} / "
        f"{img.max():.1f} | {cl.mean():.1f} | {batch['process_wall_s']:.1f} | "
        f"{batch['process_wall_s'] / batch['batch']:.1f} | {batch['peak_rss_gb']:.2f} |",
    ])


def plot(rows: list[dict], dest: Path) -> None:
    """``speed.png``: time and peak memory against megapixels, the default with ``--precision auto``, 2 threads."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        best = [r for r in rows if "error" not in r and r["threads"] == 2 and r["cmd"].endswith("--precision auto")]
        best.sort(key=lambda r: r["width"] * r["height"])
        px = np.array([r["width"] * r["height"] / 1e6 for r in best])
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.5))
        a1.plot(px, [r["seconds"] for r in best], "o-", label="cloak")
        a1.plot(px, [r["image_seconds"] for r in best], "s--", label="cloak + figures + I/O")
        a1.legend()
        a1.set(xlabel="megapixels", ylabel="seconds per image", title="default preset, 2 threads")
        a2.plot(px, [r["peak_rss_gb"] for r in best], "o-", color="C1")
        a2.axhline(3, ls="--", color="grey")
        a2.set(xlabel="megapixels", ylabel="peak RSS (GB)", title="memory (3 GB target dashed)")
        fig.tight_layout()
        fig.savefig(dest, dpi=90)
    except Exception as e:  # the tables matter more than the plot
        print(f"plot skipped: {e}", file=sys.stderr)


def unit_by_level(units: list[dict]) -> dict[str, float]:
    """U at each CPU level: the median of its measurements before and after the runs."""
    return {lv: float(np.median([r["u_seconds"] for r in units if r["level"] == lv])) for lv in LEVELS}


def units_line(units: list[dict]) -> str:
    """U at each CPU level (the laptop grid), median of its measurements before and after the runs."""
    u = unit_by_level(units)
    cls = {r["level"]: (r["cpu_class"], r["precision"]) for r in units}
    return ("U = one forward + backward of the TAEF2 encoder at 512² in the precision `auto` picks, median of 5, "
            "measured before and after the runs: " + "; ".join(
                f"{lv}: {u[lv]:.2f} s ({cls[lv][1]}, `{cls[lv][0]}`)" for lv in LEVELS) + ".")


def levels_table(rows: list[dict], units: list[dict]) -> str:
    """The laptop grid's table: each preset at each level, in seconds and in U (that level's encoder pass)."""
    u = unit_by_level(units)
    lines = ["| level | preset | figures | cloak s | cloak U | image s | process s | process U | peak RSS GB |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['level']} | `{r['cmd']}` | error: {r['error']} | | | | | | |")
            continue
        preset = r["cmd"].split("--intensity ")[1].split()[0]
        figs = "no" if "--no-eval" in r["cmd"] else "yes"
        lines.append(f"| {r['level']} | {preset} | {figs} | {r['seconds']:.1f} | {r['seconds'] / u[r['level']]:.0f} | "
                     f"{r['image_seconds']:.1f} | {r['process_wall_s']:.1f} | "
                     f"{r['process_wall_s'] / u[r['level']]:.0f} | {r['peak_rss_gb']:.2f} |")
    return "\n".join(lines)


def targets_table(rows: list[dict], units: list[dict]) -> str:
    """The targets grid: each run at each level in seconds and in U (that level's encoder pass), with its
    protection (the mimic's view of the cloak vs the original's, and that view's gap over same-PSNR noise's) and
    peak memory."""
    u = unit_by_level(units)
    lines = ["| image | size | args | level | cloak s | cloak U | process s | process U | peak RSS GB | PSNR | "
             "mimic view dB | mimic gap dB |", "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        args = r["cmd"].split("--precision auto")[-1].strip()
        head = f"| {r['image']} | {r['size']} | `{args}` | {r['level']} |"
        if "error" in r:
            lines.append(f"{head} error: {r['error']} | | | | | | | |")
            continue
        cloak = r["figures"]["before"]["cloak"]
        lines.append(f"{head} {r['seconds']:.1f} | {r['seconds'] / u[r['level']]:.1f} | {r['process_wall_s']:.1f} | "
                     f"{r['process_wall_s'] / u[r['level']]:.1f} | {r['peak_rss_gb']:.2f} | {cloak['psnr']:.1f} | "
                     f"{cloak['view_psnr']:.1f} | {r['figures']['summary']['view_gap']:.1f} |")
    return "\n".join(lines)


def split_rows(rows: list[dict]) -> tuple[list[dict], list[dict], dict | None]:
    """A results.jsonl's rows as (runs, U measurements, the batch run or None)."""
    units = [r for r in rows if r.get("unit")]
    batch = next((r for r in rows if "batch" in r or ("error" in r and "size" not in r and "level" not in r)), None)
    return [r for r in rows if not r.get("unit") and r is not batch], units, batch


def tables(rows: list[dict]) -> dict:
    """The generated blocks of a RESULTS.md by name, from one results.jsonl's rows."""
    runs, units, batch = split_rows(rows)
    return {"runs": lambda: runs_table(runs), "batch": lambda: batch_table(batch),
            "units": lambda: units_line(units), "levels": lambda: levels_table(runs, units),
            "targets": lambda: targets_table(runs, units)}


#: the folders of committed runs: the full grid and one per other grid
FOLDERS = ("", "amortised", "amortised512", "figures", "laptop", "targets")


def report(folder: Path) -> str:
    """RESULTS.md of ``folder`` with every generated block rebuilt from the rows beside it."""
    return report_from_rows(folder, tables)


def report_all(root: Path = HERE) -> None:
    """Rewrite every committed RESULTS.md of the suite from its rows, and redraw the ``speed.png`` of each
    folder with a table of runs."""
    for sub in FOLDERS:
        folder = root / sub
        (folder / "RESULTS.md").write_text(report(folder))
        if "<!-- generated: runs" in (folder / "RESULTS.md").read_text():
            plot(split_rows(read_rows(folder / "results.jsonl"))[0], folder / "speed.png")


def machine() -> str:
    return (f"Machine: {platform.machine()}, {os.cpu_count()} cores, {cpu_name()}, Python {platform.python_version()}, "
            f"{platform.platform()}.")


def summarise(rows: list[dict], out: Path, batch: dict | None = None) -> None:
    """A fresh RESULTS.md (the machine written here once, the tables generated) and ``speed.png``."""
    lines = [
        "# Speed and memory",
        "",
        machine() + "  ",
        "Every row is one `glazeish protect --json` process on the van Gogh painting resized to the size. "
        "`cloak s` = attack + 8-bit rounding (`seconds` in `--json`); `figures s` = measuring the cloak next to "
        "same-budget noise (`--no-eval` skips it); `image s` = everything for the image (read, cloak, figures, "
        "write); `load s` = model loading (once per process; precision `auto` is read off the CPU's native "
        "support — bf16 with AMX or AVX-512 BF16, else fp32 — never timed); `process s` = the whole command "
        "including Python and torch start-up. "
        "Protection: the taef2 (or taesana) latent displacement as a multiple of same-PSNR noise's, "
        "and the mimic-view gap vs same-PSNR noise (dB; taef2 only).",
        "",
        REPORT_NOTE,
        "",
        "<!-- generated: runs -->",
        "<!-- end generated -->",
        "",
    ]
    if batch:
        lines += ["## Batch", "", "<!-- generated: batch -->", "<!-- end generated -->", ""]
    all_rows = rows + ([batch] if batch else [])
    (out / "RESULTS.md").write_text(regenerate("\n".join(lines), tables(all_rows)))
    plot(rows, out / "speed.png")


def _write_levelled(out: Path, title: str, setup: str, table: str, rows: list[dict]) -> None:
    """A fresh RESULTS.md of a grid run at both CPU levels: the machine and ``setup`` written here once, the U
    line and the ``table`` block generated."""
    machine_line = (f"Machine: {platform.machine()}, {os.cpu_count()} cores, {cpu_name()}, "
                    f"Python {platform.python_version()}.")
    lines = [f"# {title}", "", f"{machine_line} {setup}", "", REPORT_NOTE, "",
             "<!-- generated: units -->", "<!-- end generated -->", "",
             f"<!-- generated: {table} -->", "<!-- end generated -->", ""]
    (out / "RESULTS.md").write_text(regenerate("\n".join(lines), tables(rows)))


def summarise_targets(rows: list[dict], units: list[dict], out: Path) -> None:
    """A fresh RESULTS.md of the targets grid."""
    _write_levelled(out, "Issue 31's targets: whole processes at both CPU levels, in U", (
        "Each row is one `glazeish protect --json` process (read, cloak, figures, write, Python and torch "
        "start-up) on a held-out image (odd position of its kind, centre-cropped square, Lanczos), 2 threads; "
        "`avx2` rows hold oneDNN and ATen to AVX2 (`ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2`): an "
        "AVX2 laptop's kernels and fp32. The two levels of a run are neighbours in time.\n\n"
        "Command: `python benchmarks/speed.py --grid targets --out benchmarks/speed/targets`"), "targets", rows + units)


def summarise_levels(rows: list[dict], units: list[dict], out: Path) -> None:
    """A fresh RESULTS.md of the laptop grid."""
    _write_levelled(out, "Speed on the laptop class", (
        "Each row is one `glazeish protect --json` process on the van Gogh painting at 512², 2 threads; "
        "`avx2` rows hold oneDNN and ATen to AVX2 (`ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2`): the "
        "kernels and precision (fp32) of an AVX2 laptop, on this machine's cores and caches."), "levels", rows + units)


#: the sentence under a RESULTS.md's set-up that says how its blocks are rebuilt
REPORT_NOTE = "The blocks below: `python benchmarks/speed.py --report` rebuilds them from `results.jsonl`."


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=HERE)
    ap.add_argument("--scratch", type=Path, default=ROOT / "benchmarks" / "_scratch" / "speed")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--grid", choices=("full", "amortised", "figures", "laptop", "targets"), default="full",
                    help="full: the committed grid; amortised: the default next to --start learned; figures: 2048² "
                    "with sampled vs all-tile figures (no batch run for either)")
    ap.add_argument("--sizes", default="", help="only the grid's runs at these sizes (WxH, comma-separated)")
    ap.add_argument("--report", action="store_true",
                    help="rewrite every committed RESULTS.md and speed.png of the suite from its rows instead of running")
    args = ap.parse_args()
    if args.report:
        report_all()
        return
    args.out.mkdir(parents=True, exist_ok=True)
    runs = {"amortised": amortised_grid, "figures": figures_grid, "laptop": laptop_grid, "targets": targets_grid}.get(
        args.grid, lambda: grid(args.quick))()
    if args.sizes:
        keep = {tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")}
        runs = [r for r in runs if r[0] in keep]
    sizes = sorted({r[0] for r in runs})
    images = make_crops(args.scratch, sizes) if args.grid == "targets" else make_inputs(args.scratch, sizes)
    levelled = args.grid in ("laptop", "targets")
    rows, units = [], []
    with open(args.out / "results.jsonl", "w") as log:
        if levelled:  # U before and after the runs, at each level
            units += [unit_seconds(level) for level in LEVELS]
        for i, (size, threads, extra, *rest) in enumerate(runs, 1):
            image = images[size, rest[1]] if len(rest) > 1 else images[size]
            row = run_one(image, args.scratch / "out", threads, extra, *rest[:1])
            row["size"] = f"{size[0]}×{size[1]}"
            if len(rest) > 1:
                row["image"] = rest[1]
            rows.append(row)
            log.write(json.dumps(row) + "\n")
            log.flush()
            print(f"[{i}/{len(runs)}] {row['size']} t={threads} {' '.join(extra)} {row['level']}: "
                  f"{row.get('image_seconds', row.get('error'))}", file=sys.stderr, flush=True)
        if levelled:
            units += [unit_seconds(level) for level in LEVELS]
            for u in units:
                log.write(json.dumps(u) + "\n")
        batch = None
        if not args.quick and args.grid == "full":
            batch = run_batch(make_batch(args.scratch), args.scratch / "out-batch")
            log.write(json.dumps(batch) + "\n")
    if levelled:
        (summarise_targets if args.grid == "targets" else summarise_levels)(rows, units, args.out)
    else:
        summarise(rows, args.out, batch)
    print((args.out / "RESULTS.md").read_text())


if __name__ == "__main__":
    main()
