"""Train the learned start (glazeish.warmstart) or the generator start (glazeish.generator, ``--network``) for
one encoder and objective, on CPU, once.

Training data: the *train split* of the shared images (within each kind, sorted by name, the even positions:
paintings 0,2,..,10, flat 0,2,4, line 0,2) plus procedurally drawn art (flat-colour shapes with ink outlines,
pen strokes on grainy paper), as random crops with flips, 90° turns and colour jitter. The odd positions are the
held-out split that `benchmarks/amortised/evaluate.py` scores on; nothing of them is seen here.

    python benchmarks/amortised/train.py                                  # the shipped taef2 / mimic-away pattern
    python benchmarks/amortised/train.py --steps 20 --out /tmp/p.png      # a smoke run
    python benchmarks/amortised/train.py --network    # the shipped taef2 / mimic-away generator (from the pattern)
    python benchmarks/amortised/train.py --report   # RESULTS.md's tables from the committed held-out rows

Writes the pattern PNG (or the generator's .safetensors) and its JSON note (how it was trained) and `train.log`
(`train-network.log`; one line per step) next to this script unless `--log` says otherwise. The generator starts
as the shipped pattern (its periodic code; the layer that adds the image's part zero) and is trained on the same
batches, budget, objective and JPEG/identity steps; same command, same bytes (``torch.manual_seed`` and seeded
crops, on one thread). `--report` trains nothing: it rewrites the generated tables of RESULTS.md from
the held-out rows beside it (``heldout.jsonl``, ``heldout-paintings-pattern.jsonl``, which
``benchmarks/cloak_search/search.py`` measured; the commands are in RESULTS.md).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch

from glazeish import __version__
from glazeish.config import ProtectConfig
from glazeish.device import cpu_name, resolve_precision
from glazeish.encoders import Ensemble, load_encoders
from glazeish.objectives import make_objective
from glazeish.transforms import make_transforms
from glazeish.generator import Generator, fit_generator
from glazeish.generator import file_name as network_file
from glazeish.weights import cache_dir
from glazeish.warmstart import StartPattern, fit_pattern, shipped_path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from common import KINDS, MODELS, crops, read_rows, regenerate, split, training_images  # noqa: E402


# ---------------------------------------------------------------------------------------------------------
# RESULTS.md's tables, from the held-out rows


#: the generator's Adam steps: ~40 min on one thread of the 2-core EPYC (bf16), like the pattern's 400 on the Xeon
NETWORK_STEPS = 600


#: a candidate's label in the held-out table: (on its first row, on the others)
LABELS = {"default": ("default (8 steps)", "default"), "learned-s4": ("**fast** = learned-s4", "fast"),
          "learned-s0": ("learned-s0 (the pattern alone)", "learned-s0")}
#: the visibility target (PSNR, dB) of drawings: a mean under it is set in bold with its flat RMS
PSNR_TARGET = 38.5


def _mean(rows: list[dict], key: str) -> float:
    return statistics.mean(r[key] for r in rows)


def _stats(rows: list[dict], key: str) -> str:
    """mean (min–max)."""
    vals = [r[key] for r in rows]
    return f"{statistics.mean(vals):.2f} ({min(vals):.2f}–{max(vals):.2f})"


def _share(rows: list[dict], base: list[dict]) -> str:
    """The mean gap of ``rows`` as a share of the mean gap of ``base`` (the default on the same images)."""
    return f"{100 * _mean(rows, 'gap') / _mean(base, 'gap'):.0f} %"


def heldout_table(rows: list[dict], cands: list[str], baseline: str = "default") -> str:
    """Mean (min–max) per candidate and kind; ``gap ÷ default's`` = the mean gap over the baseline's."""
    lines = ["mean (min–max) per kind", "",
             "| candidate | kind | n | PSNR | flat RMS | view PSNR | gap | JPEG view PSNR | transfer | gap ÷ default's |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for c in cands:
        first, other = LABELS.get(c, (c, c))
        for kind in KINDS:
            sel = [r for r in rows if r["candidate"] == c and r["kind"] == kind]
            if not sel:
                continue
            base = [r for r in rows if r["candidate"] == baseline and r["kind"] == kind]
            psnr, rms = _stats(sel, "psnr"), f"{_mean(sel, 'flat_rms'):.2f}"
            if _mean(sel, "psnr") < PSNR_TARGET:
                head, rest = psnr.split(" ", 1)
                psnr, rms = f"**{head}** {rest}", f"**{rms}**"
            if all(r["flat_share"] == 0 for r in sel):  # no flat pixels: no flat RMS
                rms = "–"
            lines.append(f"| {first if kind == KINDS[0] else other} | {kind} | {len(sel)} | {psnr} | {rms} | "
                         f"{_stats(sel, 'view_psnr')} | {_stats(sel, 'gap')} | {_stats(sel, 'jpeg_view_psnr')} | "
                         f"{_mean(sel, 'transfer'):.2f} | {_share(sel, base)} |")
    return "\n".join(lines)


def pattern_table(pattern: list[dict], heldout: list[dict]) -> str:
    """The painting-trained pattern (``pattern`` rows) next to ``fast`` and the default (``heldout`` rows):
    means per kind, 4 steps on every kind, the pattern alone on paintings."""
    lines = ["| candidate | kind | gap | gap ÷ default's | JPEG view PSNR | transfer |", "|---|---|---|---|---|---|"]

    def line(label: str, sel: list[dict], kind: str) -> str:
        base = [r for r in heldout if r["candidate"] == "default" and r["kind"] == kind]
        return (f"| {label} | {kind} | {_mean(sel, 'gap'):.2f} | {_share(sel, base)} | "
                f"{_mean(sel, 'jpeg_view_psnr'):.2f} | {_mean(sel, 'transfer'):.2f} |")

    for kind in KINDS:
        fast = [r for r in heldout if r["candidate"] == "learned-s4" and r["kind"] == kind]
        own = [r for r in pattern if r["candidate"] == "paintings-pattern-s4" and r["kind"] == kind]
        lines.append(line("`fast` (shipped pattern, 4 steps)" if kind == KINDS[0] else "`fast`", fast, kind))
        lines.append(line("paintings pattern, 4 steps", own, kind))
    alone = [r for r in pattern if r["candidate"] == "paintings-pattern-s0" and r["kind"] == KINDS[0]]
    lines.append(line("paintings pattern alone (0 steps)", alone, KINDS[0]))
    return "\n".join(lines)


def _time_share(sel: list[dict], base: list[dict]) -> str:
    """The candidate's cloak seconds over the baseline's on the same images (same run: images the outer loop)."""
    secs = {r["image"]: r["seconds"] for r in base}
    return f"{sum(r['seconds'] for r in sel) / sum(secs[r['image']] for r in sel):.2f}"


def network_table(rows: list[dict], cands: list[str], baseline: str = "default", timed: bool = True) -> str:
    """Mean (min–max) per candidate and kind of rows measured through ``assess`` (``grain`` = the high-pass RMS
    change on flat fills, in levels); ``÷ default's``: the mean gap, and (``timed``: candidates cloaked in the
    baseline's run) the cloak seconds, over the baseline's."""
    head = ("mean (min–max) per kind; `seconds ÷ default's`: the cloak's seconds over the default's on the same "
            "images, in the same run") if timed else "mean (min–max) per kind"
    columns = ("| candidate | kind | n | PSNR | grain | view PSNR | gap | gap ÷ default's | JPEG view PSNR | "
               "JPEG gap | ")
    lines = [head, "", columns + ("transfer | seconds ÷ default's |" if timed else "transfer |"),
             "|---" * (12 if timed else 11) + "|"]
    for c in cands:
        for kind in KINDS:
            sel = [r for r in rows if r["candidate"] == c and r["kind"] == kind]
            base = [r for r in rows if r["candidate"] == baseline and r["kind"] == kind]
            if not sel:
                continue
            psnr = _stats(sel, "psnr")
            if _mean(sel, "psnr") < PSNR_TARGET:
                head, rest = psnr.split(" ", 1)
                psnr = f"**{head}** {rest}"
            grain = [r["grain"] for r in sel if r["grain"] is not None]  # None: no flat fill to show grain on
            grain_text = f"{statistics.mean(grain):.2f}" if grain else "–"
            lines.append(f"| {c} | {kind} | {len(sel)} | {psnr} | {grain_text} | "
                         f"{_stats(sel, 'view_psnr')} | {_stats(sel, 'gap')} | {_share(sel, base)} | "
                         f"{_stats(sel, 'jpeg_view_psnr')} | {_mean(sel, 'jpeg_gap'):.2f} | "
                         f"{_mean(sel, 'transfer'):.2f} |" + (f" {_time_share(sel, base)} |" if timed else ""))
    return "\n".join(lines)


def timing_table(rows: list[dict]) -> str:
    """``search.py --timing`` rows: each candidate's median cloak seconds over interleaved rounds, and its ratio to
    the first candidate's (the baseline) in the same run."""
    lines = [f"| candidate | image | rounds | median seconds | ÷ {rows[0]['baseline']}'s |", "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['candidate']} | {r['image'][:5]}, {r['width']}×{r['height']} | {r['rounds']} | "
                     f"{r['median']:.2f} | {r['ratio']:.3f} |")
    return "\n".join(lines)


def agreement_table(rows: list[dict], cands: list[str]) -> str:
    """``distill.py agree`` rows: per kind, the mean (min–max) cosine of each start's perturbation with the
    default's cloak of the same held-out crop."""
    lines = ["| start | " + " | ".join(KINDS) + " |", "|---" * (len(KINDS) + 1) + "|"]
    for c in cands:
        cells = []
        for kind in KINDS:
            v = [r[c] for r in rows if r["kind"] == kind]
            cells.append(f"{statistics.mean(v):.2f} ({min(v):.2f}–{max(v):.2f})" if v else "–")
        lines.append(f"| {c} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def tables(folder: Path = HERE) -> dict:
    """The generated tables of RESULTS.md by name; their arguments are files of ``folder`` and candidates."""
    return {"heldout": lambda file, cands: heldout_table(read_rows(folder / file), cands.split(",")),
            "pattern": lambda file, heldout: pattern_table(read_rows(folder / file), read_rows(folder / heldout)),
            "network": lambda file, cands: network_table(read_rows(folder / file), cands.split(",")),
            "network-untimed": lambda file, cands: network_table(read_rows(folder / file), cands.split(","),
                                                                 timed=False),
            "timing": lambda file: timing_table(read_rows(folder / file)),
            "agreement": lambda file, cands: agreement_table(read_rows(folder / file), cands.split(","))}


def report(folder: Path = HERE) -> str:
    """RESULTS.md of ``folder`` with every generated table rebuilt from the rows beside it."""
    return regenerate((folder / "RESULTS.md").read_text(), tables(folder))


def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--encoder", default="taef2")
    ap.add_argument("--intensity", default="default", help="the preset whose objective, budget and EOT it learns")
    ap.add_argument("--network", action="store_true",
                    help="train the image-conditioned generator (glazeish.generator) instead of the pattern")
    ap.add_argument("--steps", type=int, default=None, help="Adam steps (default: 400 for the pattern, "
                    f"{NETWORK_STEPS} for the generator)")
    ap.add_argument("--batch", type=int, default=6)
    ap.add_argument("--crop", type=int, default=128)
    ap.add_argument("--period", type=int, default=64)
    ap.add_argument("--lr", type=float, default=None, help="Adam's rate (default: 0.05 for the pattern, "
                    "0.002 for the generator's convolutions)")
    ap.add_argument("--code-lr", type=float, default=0.02, help="with --network: Adam's rate for its periodic code")
    ap.add_argument("--widths", default="16,32,48,64", help="with --network: channels at 1, 1/2, 1/4, 1/8 resolution")
    ap.add_argument("--loss", choices=("log", "plain"), default="log",
                    help="with --network: minimise -log(distance) per image (log) or the objective's mean (plain)")
    ap.add_argument("--procedural", type=int, default=12, help="procedurally drawn images added to the train split")
    ap.add_argument("--kinds", default=",".join(KINDS), help="the kinds of shared images whose train split it uses")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--init", choices=("zero", "random"), default="zero",
                    help="the first pattern (zero: the shipped one; the JPEG steps give it a gradient)")
    ap.add_argument("--models-dir", default=str(MODELS))
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--out", default=None, help="pattern PNG or generator .safetensors (default: the shipped one "
                    "for encoder + objective)")
    ap.add_argument("--log", default=None, help="per-step log (default: train.log, or train-network.log with "
                    "--network, next to this script)")
    ap.add_argument("--report", action="store_true",
                    help="rewrite the generated tables of RESULTS.md from the committed rows instead of training")
    args = ap.parse_args(argv)
    args.kinds = [k for k in args.kinds.split(",") if k]
    if not args.kinds or set(args.kinds) - set(KINDS):
        ap.error(f"--kinds takes a comma-separated list of {', '.join(KINDS)}")
    if args.steps is None:
        args.steps = NETWORK_STEPS if args.network else 400
    if args.lr is None:
        args.lr = 0.002 if args.network else 0.05
    return args


#: what a trainer returns: where its result goes, and how to write it there with a note (a dict)
Trained = tuple[Path, Callable[[dict], None]]


def train_pattern(args: argparse.Namespace, cfg: ProtectConfig, ens: Ensemble, batches: Iterator[torch.Tensor],
                  note: Callable[[int, float], None], precision: str) -> Trained:
    """Fit the pattern; returns where it goes and how to write it with its note."""
    transforms = make_transforms(cfg.robust, ens) if cfg.robust else []
    pattern = fit_pattern(ens, make_objective(cfg.objective), batches, cfg, period=args.period, lr=args.lr,
                          transforms=transforms, precision=precision, seed=args.seed, init=args.init, log=note)
    out = Path(args.out) if args.out else shipped_path(args.encoder, cfg.objective)
    return out, lambda meta: pattern.save(out, note={**meta, "period": args.period, "init": args.init})


def train_network(args: argparse.Namespace, cfg: ProtectConfig, ens: Ensemble, batches: Iterator[torch.Tensor],
                  note: Callable[[int, float], None], precision: str) -> Trained:
    """Fit the generator, starting from the shipped pattern of (encoder, objective) (its code; the rest learns
    what each image changes of it); returns where it goes and how to write it with its note."""
    transforms = make_transforms(cfg.robust, ens) if cfg.robust else []
    init = shipped_path(args.encoder, cfg.objective)
    torch.manual_seed(args.seed)  # the convolutions' initial weights
    net = Generator.from_pattern(StartPattern.load(init), widths=[int(w) for w in args.widths.split(",")])
    fit_generator(net, ens, make_objective(cfg.objective), batches, cfg, lr=args.lr, code_lr=args.code_lr,
                  transforms=transforms, precision=precision, seed=args.seed, log_distance=args.loss == "log",
                  log=note)
    out = Path(args.out) if args.out else cache_dir() / network_file(args.encoder, cfg.objective)
    params = sum(p.numel() for p in net.parameters())

    def save(meta: dict) -> None:
        sha = net.save(out, note={**meta, "widths": list(net.widths), "period": net.period, "parameters": params,
                                  "code_lr": args.code_lr, "loss": args.loss,
                                  "init": f"the code from {init.parent.name}/{init.name}, the last layer zero"})
        print(f"sha256 {sha}", file=sys.stderr)

    return out, save


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    if args.report:
        (HERE / "RESULTS.md").write_text(report())
        return
    torch.manual_seed(args.seed)
    cfg = ProtectConfig(intensity=args.intensity, encoder=args.encoder)
    default_log = "train-network.log" if args.network else "train.log"
    log_path = Path(args.log) if args.log else Path(__file__).with_name(default_log)
    precision = resolve_precision(args.precision, torch.device("cpu"))
    ens = load_encoders(args.encoder, args.models_dir, torch.device("cpu"))
    train = [p for k in args.kinds for p in split(k, "train")]
    images = training_images(args.kinds, args.procedural, args.seed)
    t0 = time.perf_counter()
    losses: list[float] = []
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("w") as log:
        log.write("step\tloss\tseconds\n")

        def note(step: int, loss: float) -> None:
            losses.append(loss)
            log.write(f"{step}\t{loss:.6f}\t{time.perf_counter() - t0:.1f}\n")
            log.flush()
            if step % 25 == 0 or step == args.steps:
                print(f"step {step}/{args.steps}  loss {np.mean(losses[-25:]):.4f}  {time.perf_counter() - t0:.0f} s",
                      file=sys.stderr)

        batches = crops(images, args.crop, args.batch, args.steps, args.seed)
        out, save = (train_network if args.network else train_pattern)(args, cfg, ens, batches, note, precision)
    out.parent.mkdir(parents=True, exist_ok=True)
    save({
        "encoder": args.encoder, "objective": cfg.objective, "intensity": args.intensity,
        "budget": {"eps_levels": cfg.eps_levels, "cap": cfg.budget_cap, "floor": cfg.budget_floor,
                   "rms_levels": cfg.rms_levels}, "robust": cfg.robust,
        "steps": args.steps, "batch": args.batch, "crop": args.crop, "lr": args.lr,
        "seed": args.seed, "precision": precision, "procedural_images": args.procedural,
        "train_images": [f"{p.parent.name}/{p.name}" for p in train],
        "heldout_images": [f"{k}/{p.name}" for k in KINDS for p in split(k, "heldout")],
        "loss_first_25": float(np.mean(losses[:25])), "loss_last_25": float(np.mean(losses[-25:])),
        "seconds": round(time.perf_counter() - t0, 1), "glazeish": __version__, "torch": torch.__version__,
        "machine": f"{cpu_name()}, {os.cpu_count()} cores, {platform.python_version()}",
        "command": "python benchmarks/amortised/train.py " + " ".join(argv if argv is not None else sys.argv[1:]),
    })
    print(f"wrote {out} and {log_path}", file=sys.stderr)


if __name__ == "__main__":
    main()
