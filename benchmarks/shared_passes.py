"""What sharing the attack's clean passes with the figures saves (issue 31, item 2), on a CPU that cloaks in fp32.

    ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 python benchmarks/shared_passes.py --out benchmarks/shared_passes
    python benchmarks/shared_passes.py --report   # RESULTS.md's block from the committed rows

In one process, ``Cloaker.cloak_file`` (what ``glazeish protect`` runs per file: read, cloak, write, and its
default figures: quick, with the JPEG q75 re-save) on a 512² centre crop of a held-out painting, once as glazeish
runs it (``shared``: inside :func:`glazeish.encoders.sharing_passes`) and once with that block replaced by a no-op
(``alone``), in turn (A B A B ...), so that a drift in the machine's speed hits both alike; the ratio is taken pair
by pair. Each row has the seconds of the cloak, of the figures and of the whole file, the encoder and decoder passes
counted with forward hooks, and the sha256 of the file written and of the figures' JSON, which must be the same in
the two modes. The environment above holds the CPU to AVX2, where glazeish cloaks in fp32. A CPU with native bf16
cloaks in bf16, whose passes the fp32 figures cannot use, so nothing changes there.

Writes ``results.jsonl`` and ``RESULTS.md`` into --out.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import statistics
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent / "shared_passes"
sys.path.insert(0, str(HERE.parent))
from common import MODELS, SHARED, centre_crop, report_from_rows  # noqa: E402

PAINTING = SHARED / "images" / "paintings" / "00003-0-vincent-van-gogh_olive-picking-1889-2.png"


def one_file(cloaker, src: Path, dest: Path, mode: str) -> dict:
    """``cloak_file`` in ``mode`` (shared / alone): its seconds, passes and hashes."""
    from glazeish import job as job_module
    from glazeish.encoders import counting_passes, sharing_passes

    job_module.sharing_passes = sharing_passes if mode == "shared" else (lambda models: contextlib.nullcontext())
    with counting_passes(cloaker.protector.ensemble.models[0]) as n:
        r = cloaker.cloak_file(src, dest)
    figures = json.dumps(r.figures.to_dict(), sort_keys=True).encode()
    return {"mode": mode, "cloak_s": round(r.seconds, 3), "figures_s": round(r.figure_seconds, 3),
            "file_s": round(r.image_seconds, 3), **n, "output_sha256": hashlib.sha256(dest.read_bytes()).hexdigest(),
            "figures_sha256": hashlib.sha256(figures).hexdigest()}


def run(args) -> None:
    import torch
    from PIL import Image

    from glazeish.config import ProtectConfig
    from glazeish.device import cpu_name
    from glazeish.job import Cloaker, Job
    from glazeish.imageio import read_image

    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp, open(args.out / "results.jsonl", "a") as log:
        src = Path(tmp) / "painting.png"
        Image.fromarray(centre_crop(read_image(PAINTING).rgb, 512)).save(src)
        for intensity in args.intensities.split(","):
            cloaker = Cloaker(Job(config=ProtectConfig(intensity=intensity, models_dir=str(MODELS)),
                                 figures="quick", purify=("jpeg75",)))  # as `glazeish protect` runs it
            one_file(cloaker, src, Path(tmp) / "warm.png", "shared")  # not counted: first-call costs
            for i in range(args.rounds):
                for mode in ("shared", "alone") if i % 2 == 0 else ("alone", "shared"):
                    row = one_file(cloaker, src, Path(tmp) / f"{mode}.png", mode)
                    row.update(intensity=intensity, round=i, precision=cloaker.protector.precision,
                               threads=args.threads, machine=cpu_name(), torch=torch.__version__)
                    log.write(json.dumps(row) + "\n")
                    log.flush()
                    print(json.dumps(row), file=sys.stderr)
    results = args.out / "RESULTS.md"
    if not results.exists():  # a first run: the page around the generated block
        results.write_text(TEMPLATE)
    results.write_text(report(args.out))


def table(rows: list[dict]) -> str:
    """Per preset: median seconds and passes of each mode, the pair-by-pair ratio, and whether bytes agree."""
    lines = [f"Machine: {rows[0]['machine']}, {rows[0]['threads']} threads, torch {rows[0]['torch']}; medians of "
             "the rounds, ratios shared ÷ alone taken pair by pair.", "",
             "| preset | precision | rounds | passes enc/dec, alone → shared | figures s, alone → shared | figures "
             "ratio | file s, alone → shared | file ratio | same cloak, same figures |",
             "|---|---|---:|---|---|---:|---|---:|---|"]
    for intensity in dict.fromkeys(r["intensity"] for r in rows):
        sel = [r for r in rows if r["intensity"] == intensity]
        by = {m: [r for r in sel if r["mode"] == m] for m in ("alone", "shared")}
        pairs = {r["round"]: {} for r in sel}
        for r in sel:
            pairs[r["round"]][r["mode"]] = r
        whole = [p for p in pairs.values() if len(p) == 2]

        def ratio(key: str) -> float:
            return statistics.median(p["shared"][key] / p["alone"][key] for p in whole)

        def med(mode: str, key: str) -> float:
            return statistics.median(r[key] for r in by[mode])

        same = len({(r["output_sha256"], r["figures_sha256"]) for r in sel}) == 1
        lines.append(f"| {intensity} | {sel[0]['precision']} | {len(whole)} | "
                     f"{by['alone'][0]['encode']}/{by['alone'][0]['decode']} → "
                     f"{by['shared'][0]['encode']}/{by['shared'][0]['decode']} | "
                     f"{med('alone', 'figures_s'):.2f} → {med('shared', 'figures_s'):.2f} | {ratio('figures_s'):.3f} | "
                     f"{med('alone', 'file_s'):.2f} → {med('shared', 'file_s'):.2f} | {ratio('file_s'):.3f} | "
                     f"{'yes' if same else 'NO'} |")
    return "\n".join(lines)


def report(folder: Path = HERE) -> str:
    """RESULTS.md of ``folder`` with its block rebuilt from ``results.jsonl``."""
    return report_from_rows(folder, lambda rows: {"passes": lambda: table(rows)})


TEMPLATE = """# Sharing the attack's clean passes with the figures (issue 31, item 2)

Command:

    ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 python benchmarks/shared_passes.py --out benchmarks/shared_passes
    python benchmarks/shared_passes.py --report   # the table from results.jsonl

<!-- generated: passes -->
<!-- end generated -->
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=HERE)
    ap.add_argument("--intensities", default="fast,default")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--report", action="store_true", help="rebuild RESULTS.md from the committed rows")
    args = ap.parse_args()
    if args.report:
        (args.out / "RESULTS.md").write_text(report(args.out))
    else:
        run(args)


if __name__ == "__main__":
    main()
