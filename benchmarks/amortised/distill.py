"""Distil the default's cloaks into the generator (issue 31, item 1: "distillation from PGD outputs, then
fine-tuned on the objective itself"), for the held-out comparison with the generator trained on the objective
alone (``train.py --network``).

Teacher: the default preset's attack (``glazeish.protect.Protector``, 8 steps, masked budget, ``mimic-away`` on
TAEF2, JPEG/identity steps in turn; its random start seeded per batch) on 128² training crops, drawn exactly as
``train.py`` draws them (the train split of the shared images plus procedurally drawn art, flips, turns, colour
jitter); nothing of the held-out split is seen. Student: :class:`glazeish.generator.Generator`, started from the
shipped pattern (as ``train.py --network`` starts it), trained to give the teacher's perturbation as its first
iterate (``first_iterate``: the generator's output times the budget map, through the attack's projection) by
mean squared error in 1/255 units (``--loss cos``: by their cosine, the direction only). ``--finetune N`` then
runs ``N`` steps of ``train.py``'s objective training (``fit_generator``) from the distilled weights.

    python benchmarks/amortised/distill.py teach --batches 80          # 640 teacher cloaks -> the scratch folder
    python benchmarks/amortised/distill.py train --steps 1500          # the distilled generator
    python benchmarks/amortised/distill.py train --init benchmarks/_scratch/distill/distilled.safetensors \
        --finetune 150 --name distilled-ft
    python benchmarks/amortised/distill.py train --steps 1500 --loss cos --name distilled-cos
    python benchmarks/amortised/distill.py agree    # held out: cosines with the default's cloaks (after search.py)

Everything it writes goes to ``benchmarks/_scratch/distill/`` (git-ignored: teacher pairs, weights) except the
training logs (``distill-<name>.log``, next to this script). The held-out rows come from
``benchmarks/cloak_search/search.py`` with the ``distilled-*`` candidates (the commands are in RESULTS.md).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from common import (KINDS, MODELS, SCRATCH, centre_crop, cloak_path, crops, pick_images,  # noqa: E402
                    training_images)

FOLDER = SCRATCH / "distill"


def config():
    """The default preset on TAEF2, on the CPU: the recipe the student reproduces."""
    from glazeish.config import ProtectConfig

    return ProtectConfig(intensity="default", encoder="taef2", models_dir=str(MODELS), device="cpu")


def teach(args: argparse.Namespace) -> None:
    """The teacher's perturbations ``δ* = cloak - x`` (float, before 8-bit rounding) of ``batches × 8`` crops,
    saved with the crops as one ``teacher.pt``."""
    from glazeish.protect import Protector

    torch.set_num_threads(args.threads)
    p = Protector(config())
    xs, ds = [], []
    t0 = time.perf_counter()
    for i, x in enumerate(crops(training_images(KINDS, args.procedural, args.seed), args.crop, 8, args.batches, args.seed)):
        x = x.float()
        adv = p.attack(seed=args.seed + i)(x, p.config.eps_map(x))
        xs.append(x.half())
        ds.append((adv - x).mul(255).half())  # levels, exact enough in fp16 (|δ*| ≤ 12)
        print(f"teacher batch {i + 1}/{args.batches}  {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    FOLDER.mkdir(parents=True, exist_ok=True)
    torch.save({"x": torch.cat(xs), "delta_levels": torch.cat(ds), "crop": args.crop, "seed": args.seed,
                "precision": p.precision, "seconds": round(time.perf_counter() - t0, 1)}, FOLDER / "teacher.pt")


def _augment(x: torch.Tensor, d: torch.Tensor, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """The same flip and quarter turn for a crop and its teacher perturbation."""
    k = int(rng.integers(4))
    x, d = torch.rot90(x, k, (-2, -1)), torch.rot90(d, k, (-2, -1))
    if rng.random() < 0.5:
        x, d = x.flip(-1), d.flip(-1)
    return x, d


def distil(args: argparse.Namespace, log) -> "Generator":  # noqa: F821
    """The generator, from the shipped pattern, fitted to the teacher by MSE of its first iterate (levels²)."""
    from glazeish.generator import Generator, first_iterate
    from glazeish.warmstart import StartPattern, shipped_path

    data = torch.load(FOLDER / "teacher.pt")
    x_all, d_all = data["x"].float(), data["delta_levels"].float()
    cfg = config()
    torch.manual_seed(args.seed)
    gen = Generator.from_pattern(StartPattern.load(shipped_path("taef2", "mimic-away")))
    gen.train().requires_grad_(True)
    body = [p for n, p in gen.named_parameters() if n != "code"]
    opt = torch.optim.Adam([{"params": body, "lr": args.lr}, {"params": [gen.code], "lr": args.code_lr}])
    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()
    for step in range(1, args.steps + 1):
        idx = torch.from_numpy(rng.choice(len(x_all), args.batch, replace=False))
        x, d = _augment(x_all[idx], d_all[idx], rng)
        x = x.contiguous(memory_format=torch.channels_last)
        pred = (first_iterate(gen, x, cfg) - x) * 255
        if args.loss == "mse":
            loss = (pred - d).square().mean()
        else:  # the direction only: the attack's projection sets the size (MSE lets a weak guess shrink)
            loss = 1 - F.cosine_similarity(pred.flatten(1), d.flatten(1), dim=1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        log(step, float(loss.detach()), time.perf_counter() - t0)
    return gen.eval().requires_grad_(False)


def finetune(gen, args: argparse.Namespace, log) -> None:
    """``args.finetune`` steps of ``train.py --network``'s objective training, from the distilled weights."""
    from glazeish.device import resolve_precision
    from glazeish.encoders import load_encoders
    from glazeish.generator import fit_generator
    from glazeish.objectives import make_objective
    from glazeish.transforms import make_transforms

    cfg = config()
    ens = load_encoders("taef2", str(MODELS), torch.device("cpu"))
    batches = crops(training_images(KINDS, args.procedural, args.seed), args.crop, 6, args.finetune, args.seed + 1)
    t0 = time.perf_counter()
    fit_generator(gen, ens, make_objective(cfg.objective), batches, cfg, lr=args.lr, code_lr=args.code_lr,
                  transforms=make_transforms(cfg.robust, ens), precision=resolve_precision("auto", torch.device("cpu")),
                  seed=args.seed, log=lambda s, v: log((0 if args.init else args.steps) + s, v, time.perf_counter() - t0))


def train(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    log_path = HERE / f"distill-{args.name}.log"
    with log_path.open("w") as f:
        f.write("step\tloss\tseconds\n")

        def log(step: int, loss: float, seconds: float) -> None:
            f.write(f"{step}\t{loss:.6f}\t{seconds:.1f}\n")
            f.flush()
            if step % 100 == 0:
                print(f"step {step}  loss {loss:.4f}  {seconds:.0f} s", file=sys.stderr)

        if args.init:  # distilled before: only the fine-tuning
            from glazeish.generator import Generator

            gen = Generator.load(args.init)
        else:
            gen = distil(args, log)
        if args.finetune:
            finetune(gen, args, log)
    out = FOLDER / f"{args.name}.safetensors"
    sha = gen.save(out, note={"command": "python benchmarks/amortised/distill.py " + " ".join(sys.argv[1:]),
                              **{k: v for k, v in vars(args).items() if k != "func"}})
    print(f"wrote {out} (sha256 {sha[:16]}…) and {log_path}", file=sys.stderr)


def agree(args: argparse.Namespace) -> None:
    """Per held-out image, how far each start's cloak points where the default's does: the cosine of the two
    8-bit perturbations (cloak - original) that ``search.py`` kept under ``--scratch``; rows to ``--out``."""
    from PIL import Image

    rows = []
    for kind, f in pick_images(args.images):
        x = centre_crop(np.asarray(Image.open(f).convert("RGB")), args.crop).astype(np.float64)

        def delta(candidate: str) -> np.ndarray:
            return np.asarray(Image.open(cloak_path(Path(args.scratch), candidate, args.crop, f))).astype(np.float64) - x

        ref = delta("default").ravel()
        row = {"image": f.name, "kind": kind, "crop": args.crop}
        for c in args.candidates.split(","):
            d = delta(c).ravel()
            row[c] = float(d @ ref / max(np.linalg.norm(d) * np.linalg.norm(ref), 1e-12))
        rows.append(row)
    Path(args.out).write_text("".join(json.dumps(r) + "\n" for r in rows))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(required=True)
    t = sub.add_parser("teach", help="the default's cloaks of training crops")
    t.add_argument("--batches", type=int, default=64, help="batches of 8 crops")
    t.set_defaults(func=teach)
    s = sub.add_parser("train", help="the generator, distilled from the teacher's cloaks")
    s.add_argument("--steps", type=int, default=1500)
    s.add_argument("--batch", type=int, default=16)
    s.add_argument("--lr", type=float, default=0.002)
    s.add_argument("--code-lr", type=float, default=0.02)
    s.add_argument("--finetune", type=int, default=0, help="objective steps after the distillation")
    s.add_argument("--name", default="distilled")
    s.add_argument("--loss", choices=("mse", "cos"), default="mse",
                   help="mean squared error in levels², or 1 - the cosine with the teacher's perturbation")
    s.add_argument("--init", default=None, help="start from this generator file instead of distilling")
    s.set_defaults(func=train)
    a = sub.add_parser("agree", help="held out: the cosine of each start's perturbation with the default's")
    a.add_argument("--images", nargs="+", default=["paintings:1::2", "flat:1::2", "line:1::2"])
    a.add_argument("--scratch", default=str(SCRATCH / "network" / "cloaks"))
    a.add_argument("--candidates", default="learned-s0,network-s0,distilled-s0,distilled-ft-s0")
    a.add_argument("--out", default=str(HERE / "distill-agreement.jsonl"))
    a.set_defaults(func=agree, crop=256)
    for p in (t, s):
        p.add_argument("--crop", type=int, default=128)
        p.add_argument("--procedural", type=int, default=12)
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
