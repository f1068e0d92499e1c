"""Throughput of ``glazeish protect`` on Ray with 1 vs 2 workers (and the plain local loop for reference).

Usage::

    GLAZEISH_MODELS=../shared/models python benchmarks/ray/throughput.py --images 8 --size 256 \\
        --out benchmarks/ray/results.json

Cloaks ``--images`` crops of the shared paintings (``--size``² px) with the ``default`` preset, fp32 on CPU:

* ``local``: one in-process :class:`~glazeish.protect.Protector` (torch's default threads: every core), like
  the CLI without ``--ray``;
* ``ray WxT``: :func:`glazeish.distributed.protect_with_ray` with ``W`` workers of ``T`` torch threads each,
  on a local Ray instance started once beforehand with ``--cpus`` CPUs (its start-up is timed separately:
  a cluster is started once and then reused). The wall time includes starting the actors and loading the
  models in each, as a real run does; "steady" is the rate between the first and the last result.

Prints a Markdown table and writes the raw numbers (JSON) to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import SHARED, shared_images  # noqa: E402



def make_inputs(folder: Path, n: int, size: int) -> list[Path]:
    """``n`` ``size``×``size`` crops of the shared paintings (cycling through them, shifted each round)."""
    paintings = shared_images("paintings")
    if not paintings:
        sys.exit(f"no paintings in {SHARED / 'images' / 'paintings'} (set GLAZEISH_SHARED)")
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for i in range(n):
        p = paintings[i % len(paintings)]
        with Image.open(p) as im:
            im = im.convert("RGB")
            off = (i // len(paintings)) * 37 % max(1, min(im.size) - size)
            crop = im.crop((off, off, off + size, off + size))
        f = folder / f"img{i:03d}.png"
        crop.save(f)
        files.append(f)
    return files


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--configs", default="1x2,1x1,2x1",
                    help="comma-separated Ray configurations WORKERSxTHREADS (torch threads = CPUs per worker)")
    ap.add_argument("--cpus", type=int, default=os.cpu_count(), help="CPUs given to the local Ray instance")
    ap.add_argument("--intensity", default="default")
    ap.add_argument("--no-local", action="store_true", help="skip the in-process baseline")
    ap.add_argument("--cpu-probe", action="store_true",
                    help="also measure CPU seconds per image with one torch thread, in process (what a worker "
                    "costs on an idle core, little affected by other load) and the peak memory of that process")
    ap.add_argument("--out", type=Path, default=None, help="write the raw numbers here (JSON)")
    args = ap.parse_args()

    import torch

    from glazeish.config import ProtectConfig
    from glazeish.distributed import protect_with_ray
    from glazeish.job import Cloaker, Job

    config = ProtectConfig(intensity=args.intensity, precision="fp32", device="cpu")
    job = Job(config)

    def output_path(f: Path, out: Path) -> Path:
        return out / job.output_name(f)

    work = Path(tempfile.mkdtemp(prefix="glazeish-ray-bench-"))
    runs = []
    try:
        files = make_inputs(work / "in", args.images, args.size)
        if not args.no_local:
            out = work / "local"
            t0 = time.perf_counter()
            cloaker = Cloaker(job)
            for f in files:
                cloaker.cloak_file(f, output_path(f, out))
            wall = time.perf_counter() - t0
            runs.append({"mode": "local", "workers": 1, "threads": torch.get_num_threads(), "wall_s": wall,
                         "images": len(files), "img_per_s": len(files) / wall})
            print(f"local: {wall:.1f} s", file=sys.stderr)

        if args.cpu_probe:
            import resource

            saved = torch.get_num_threads()
            torch.set_num_threads(1)
            worker = Cloaker(job)
            cpu = []
            for f in files:
                c0 = time.process_time()
                worker.cloak_file(f, output_path(f, work / "probe"))
                cpu.append(time.process_time() - c0)
            torch.set_num_threads(saved)
            probe = {"cpu_s_per_image": float(np.mean(cpu)), "cpu_s_min": float(np.min(cpu)),
                     "load_seconds": worker.load_seconds,
                     "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
            print(f"cpu probe: {probe}", file=sys.stderr)
        else:
            probe = None

        import ray

        ray_start = float("nan")
        if args.configs:
            t0 = time.perf_counter()
            ray.init(num_cpus=args.cpus, include_dashboard=False, logging_level="WARNING")
            ray_start = time.perf_counter() - t0
            print(f"ray.init: {ray_start:.1f} s", file=sys.stderr)
        try:
            for spec in filter(None, args.configs.split(",")):
                n, threads = (int(v) for v in spec.lower().split("x"))
                out = work / f"ray{n}x{threads}"
                first: list[float] = []
                t0 = time.perf_counter()
                rows, errors = protect_with_ray(files, out, job, num_workers=n, cpus_per_worker=threads,
                                                on_row=lambda row, summary: first.append(time.perf_counter()),
                                                on_message=lambda m: None)
                wall = time.perf_counter() - t0
                if errors or len(rows) != len(files):
                    sys.exit(f"ray {spec}: {errors}")
                steady = (len(first) - 1) / (first[-1] - first[0]) if len(first) > 1 else float("nan")
                runs.append({"mode": f"ray {n}x{threads}", "workers": n, "threads": threads, "wall_s": wall,
                             "images": len(files), "img_per_s": len(files) / wall,
                             "steady_img_per_s": steady, "first_result_s": first[0] - t0,
                             "cloak_s_mean": float(np.mean([r["seconds"] for r in rows]))})
                print(f"ray {spec}: {wall:.1f} s", file=sys.stderr)
        finally:
            ray.shutdown()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    with open("/proc/loadavg") as f:
        load = f.read().split()[:3]
    meta = {"images": args.images, "size": args.size, "intensity": args.intensity, "eps": config.eps,
            "steps": config.steps, "cpus": args.cpus, "cpu_count": os.cpu_count(), "ray_init_s": ray_start,
            "loadavg_after": load, "python": platform.python_version(), "torch": torch.__version__,
            "ray": ray.__version__, "argv": sys.argv, "cpu_probe": probe}
    print(f"\n{args.images} images of {args.size}x{args.size}, preset {args.intensity} (eps {config.eps:g}, "
          f"{config.steps} steps), fp32 CPU; ray.init {ray_start:.1f} s; load average after: {' '.join(load)}\n")
    if probe:
        print(f"one thread, in process: {probe['cpu_s_per_image']:.2f} CPU s per image (min {probe['cpu_s_min']:.2f}), "
              f"models loaded in {probe['load_seconds']:.2f} s, peak RSS {probe['max_rss_mb']:.0f} MB\n")
    print("| run | workers × threads | wall s | images/s | steady images/s | first result s | cloak s/image |")
    print("|---|---|---|---|---|---|---|")
    for r in runs:
        print(f"| {r['mode']} | {r['workers']} × {r['threads']} | {r['wall_s']:.1f} | {r['img_per_s']:.3f} | "
              f"{r.get('steady_img_per_s', float('nan')):.3f} | {r.get('first_result_s', float('nan')):.1f} | "
              f"{r.get('cloak_s_mean', float('nan')):.2f} |")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"meta": meta, "runs": runs}, indent=2))


if __name__ == "__main__":
    main()
