"""``glazeish bench``: run the protection benchmark, rebuild its report, and run the mimicry training.

Mounted on the main CLI with ``app.add_typer(bench_app, name="bench")``. With :mod:`glazeish.cli`, the only
modules that know typer: the benchmark's logic lives in :mod:`.harness`, :mod:`.report` and :mod:`.mimic`.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, List, Optional

import typer

from ..errors import first_line
from ..helpfacts import help_facts

if TYPE_CHECKING:
    from .harness import Bench
    from .pipelines import PipelineConfig

app = typer.Typer(
    help="Benchmark cloaks: visibility, latent and mimicry damage, transfer, and survival of purifications.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

#: the registries' words (kept by :mod:`glazeish.helpfacts`, so that ``--help`` imports no torch)
_FACTS = help_facts()["bench"]
DEFAULT_PROTECTIONS, QUICK_PROTECTIONS = _FACTS["default_protections"], _FACTS["quick_protections"]
DEFAULT_PURIFS = ",".join(["none", *_FACTS["default_purifications"]])
QUICK_PURIFS = ",".join(["none", *_FACTS["quick_purifications"]])


def _fail(msg: str) -> None:
    typer.echo(f"glazeish bench: error: {msg}", err=True)
    raise typer.Exit(2)


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _split(s: str) -> list[str]:
    return [p.strip() for p in s.split(",") if p.strip()]


def _check_images(images: List[Path]) -> None:
    """Every ``--images`` must exist (a folder, or a file): a typo is an option error before any work."""
    for p in images:
        if not p.exists():
            _fail(f"--images {p}: no such folder")


def _external(specs: list[str]) -> dict[str, str]:
    """``DIR`` -> ``{"external": DIR}``; ``NAME=DIR`` -> ``{"external:NAME": DIR}``."""
    out: dict[str, str] = {}
    for s in specs:
        name, sep, folder = s.partition("=")
        if sep and "/" not in name and name:
            out[f"external:{name}"] = folder
        else:
            out["external" if len(specs) == 1 else f"external:{Path(s).name}"] = s
    return out


class RunOptions:
    """``glazeish bench run``'s options: their help is what ``glazeish bench run --help`` prints."""

    images = typer.Option(..., "--images", help="Folder(s) of original images (repeat for several).",
                          show_default=False)
    out = typer.Option(Path("benchmarks/protection"), "--out", "-o", help="Results folder (CSV, tables, plots).")
    protections = typer.Option(
        None, help=f"Comma-separated; 'default' = {','.join(DEFAULT_PROTECTIONS)}. Registered: {_FACTS['protections']}.")
    purifications = typer.Option(
        None, help=f"Comma-separated (see glazeish.purify; 'none' is always measured). Default: {DEFAULT_PURIFS}.")
    encoders = typer.Option("taef2,taesana", help="Encoders whose latent displacement is reported (attacked "
                            "or not); the first with a decoder gives the mimic view.")
    attacked = typer.Option("taef2", help="Encoder spec the cloaks attack.")
    style_encoder = typer.Option("taesana", help="Encoder whose features judge style (must not be attacked).")
    eps = typer.Option(4.0, help="L-inf budget (1/255) of random; the glazeish presets and the peers keep "
                       "their own.")
    attack_steps = typer.Option(None, help="Replace the peers' published iteration counts "
                                "(photoguard-encoder-style 1000, mist-textural-style 100) with this "
                                "many: for smoke runs, not results.")
    mist_target = typer.Option(None, "--mist-target", help="Target image of mist-textural-style "
                               "(Mist's MIST.png from psyker-team/mist, GPL-3.0, not shipped); "
                               "without it the peer uses glazeish's decoy pattern and is named "
                               "mist-textural-style:decoy.")
    external = typer.Option([], "--external", help="Folder of images cloaked by another tool, paired "
                            "with the originals by file name stem; NAME=DIR to label it (repeatable).")
    quick = typer.Option(False, "--quick", help=f"Protections {','.join(QUICK_PROTECTIONS)}, purifications "
                         f"{QUICK_PURIFS}, at most 2 images per folder (explicit options still win).")
    limit = typer.Option(None, help="At most this many images per folder.")
    slow_images = typer.Option(None, help="Run model-based purifications (ae, impress) on only this "
                               "many images per folder.")
    impress_steps = typer.Option(20, help="Adam steps of the quick impress purification (impress++ keeps "
                                 "its authors' 3000).")
    purify_pipeline = typer.Option(None, "--purify-pipeline", help="diffusers img2img pipeline "
                                   "(repo id or folder) for the diffpure / gridpure purifications.")
    upscaler = typer.Option(None, help="diffusers upscaler pipeline (repo id or folder) for the "
                            "noisy-upscaling purification (upscale).")
    seed = typer.Option(0, help="Seed of every random draw (noise, attacks' random start).")
    device = typer.Option("auto", help="auto, cpu, cuda, ...")
    precision = typer.Option("auto", help="Precision of the attacks (measurements are always float32).")
    models = typer.Option(None, "--models", help="Folder with the encoder weights.")
    cache = typer.Option(None, help="Where protected images are cached (default OUT/cache).")
    batch = typer.Option(4, help="Images per forward pass when measuring.")
    grid = typer.Option(True, "--grid/--no-grid", help="Write the image grid(s).")
    report = typer.Option(True, "--report/--no-report", help="Write tables and plots at the end.")
    quiet = typer.Option(False, "--quiet", "-q", help="No progress bar.")
    pipeline = typer.Option(None, help="A diffusers pipeline (repo id or local folder): also "
                            "measure img2img on its generated images (needs the weights locally "
                            "or the HF hub).")
    prompt = typer.Option("a painting", help="Prompt of the pipeline measurements.")
    strengths = typer.Option("0.3,0.45,0.6", help="img2img strengths.")
    pipeline_steps = typer.Option(30, help="Denoising steps of the pipeline.")
    guidance = typer.Option(7.5, help="Classifier-free guidance scale.")
    pipeline_dtype = typer.Option("fp32", help="fp32, fp16 or bf16 weights for the pipeline.")
    pipeline_purifications = typer.Option("none", help="Purifications after which img2img is measured.")
    lora_steps = typer.Option(0, help="Fine-tune a LoRA for this many steps on each set (0: off; SD-style "
                              "pipelines, needs peft).")
    lora_rank = typer.Option(4, help="LoRA rank.")
    lora_lr = typer.Option(1e-4, help="LoRA learning rate.")
    lora_samples = typer.Option(4, help="Images sampled from each LoRA.")
    resolution = typer.Option(None, help="LoRA training/sampling size (default: the pipeline's).")


@app.command()
def run(
    images: List[Path] = RunOptions.images,
    out: Path = RunOptions.out,
    protections: Optional[str] = RunOptions.protections,
    purifications: Optional[str] = RunOptions.purifications,
    encoders: str = RunOptions.encoders,
    attacked: str = RunOptions.attacked,
    style_encoder: str = RunOptions.style_encoder,
    eps: float = RunOptions.eps,
    attack_steps: Optional[int] = RunOptions.attack_steps,
    mist_target: Optional[Path] = RunOptions.mist_target,
    external: List[str] = RunOptions.external,
    quick: bool = RunOptions.quick,
    limit: Optional[int] = RunOptions.limit,
    slow_images: Optional[int] = RunOptions.slow_images,
    impress_steps: int = RunOptions.impress_steps,
    purify_pipeline: Optional[str] = RunOptions.purify_pipeline,
    upscaler: Optional[str] = RunOptions.upscaler,
    seed: int = RunOptions.seed,
    device: str = RunOptions.device,
    precision: str = RunOptions.precision,
    models: Optional[Path] = RunOptions.models,
    cache: Optional[Path] = RunOptions.cache,
    batch: int = RunOptions.batch,
    grid: bool = RunOptions.grid,
    report: bool = RunOptions.report,
    quiet: bool = RunOptions.quiet,
    pipeline: Optional[str] = RunOptions.pipeline,
    prompt: str = RunOptions.prompt,
    strengths: str = RunOptions.strengths,
    pipeline_steps: int = RunOptions.pipeline_steps,
    guidance: float = RunOptions.guidance,
    pipeline_dtype: str = RunOptions.pipeline_dtype,
    pipeline_purifications: str = RunOptions.pipeline_purifications,
    lora_steps: int = RunOptions.lora_steps,
    lora_rank: int = RunOptions.lora_rank,
    lora_lr: float = RunOptions.lora_lr,
    lora_samples: int = RunOptions.lora_samples,
    resolution: Optional[int] = RunOptions.resolution,
):
    """Measure protections on a set of images; resumable (finished rows are skipped) and seeded.

    Writes OUT/results.csv (one row per image, protection, purification and metric), OUT/results.md,
    OUT/frontier.png, OUT/retained.png, OUT/grid_*.png and OUT/environment.json.
    """
    from .harness import Bench, BenchConfig

    _check_images(images)
    chosen = Selection(protections, purifications, limit).resolved(quick)
    pcfg = PipelineOptions(pipeline, prompt, strengths, pipeline_steps, guidance, pipeline_dtype,
                           pipeline_purifications, lora_steps, lora_rank, lora_lr, lora_samples,
                           resolution).config(seed, device)
    try:
        config = BenchConfig(
            images=[str(p) for p in images], out=str(out), protections=_split(chosen.protections),
            purifications=_split(chosen.purifications), encoders=_split(encoders), attacked=attacked,
            style_encoder=style_encoder, eps_levels=eps, attack_steps=attack_steps,
            mist_target=str(mist_target) if mist_target else None, seed=seed, device=device,
            precision=precision, models_dir=str(models) if models else None, cache=str(cache) if cache else None,
            external=_external(external), limit=chosen.limit, slow_images=slow_images, impress_steps=impress_steps,
            batch=batch, purify_pipeline=purify_pipeline, upscaler=upscaler, pipeline=pcfg,
        )
        bench = Bench(config, log=lambda s: typer.echo(f"glazeish bench: {s}", err=True))
        csv_path = bench.run(progress=not quiet and sys.stderr.isatty())
    except (ValueError, OSError, RuntimeError) as e:
        _fail(first_line(e))
    typer.echo(f"results: {csv_path}", err=True)
    _write_views(bench, out, grid, report)
    if bench.errors:  # each said in its line; what could be measured is written
        raise typer.Exit(1)


@dataclass(frozen=True)
class Selection:
    """What a run measures: ``--protections``, ``--purifications`` and ``--limit`` as given (None: not given)."""

    protections: str | None
    purifications: str | None
    limit: int | None

    def resolved(self, quick: bool) -> "Selection":
        """The options not given filled in: the quick sets and 2 images per folder with ``--quick``, else the
        default sets and every image (explicit options win)."""
        return Selection(
            self.protections if self.protections is not None else ",".join(QUICK_PROTECTIONS if quick
                                                                             else DEFAULT_PROTECTIONS),
            self.purifications if self.purifications is not None else (QUICK_PURIFS if quick else DEFAULT_PURIFS),
            2 if quick and self.limit is None else self.limit,
        )


@dataclass(frozen=True)
class PipelineOptions:
    """The ``--pipeline`` options: img2img measurements on a diffusers pipeline, and its LoRA fine-tuning."""

    pipeline: str | None
    prompt: str
    strengths: str
    steps: int
    guidance: float
    dtype: str
    purifications: str
    lora_steps: int
    lora_rank: int
    lora_lr: float
    lora_samples: int
    resolution: int | None

    def config(self, seed: int, device: str) -> "PipelineConfig | None":
        """The pipeline's :class:`~glazeish.bench.pipelines.PipelineConfig` (None without ``--pipeline``); a bad
        option is an option error."""
        if not self.pipeline:
            return None
        from .pipelines import PipelineConfig

        try:
            strength_list = tuple(float(v) for v in _split(self.strengths))
        except ValueError:
            _fail(f"--strengths must be comma-separated numbers, not {self.strengths!r}")
        if self.dtype not in ("fp32", "fp16", "bf16"):
            _fail("--pipeline-dtype must be fp32, fp16 or bf16")
        return PipelineConfig(
            pipeline=self.pipeline, prompt=self.prompt, strengths=strength_list, steps=self.steps,
            guidance=self.guidance, seed=seed,
            device="cuda" if device == "auto" and _cuda() else ("cpu" if device == "auto" else device),
            dtype=self.dtype, lora_steps=self.lora_steps, lora_rank=self.lora_rank, lora_lr=self.lora_lr,
            lora_samples=self.lora_samples, resolution=self.resolution, purifications=_split(self.purifications),
        )


def _write_views(bench: "Bench", out: Path, grid: bool, report: bool) -> None:
    """The grids and the report of a run. A run whose every image failed (each said in its own line) has
    nothing to show: no report line of its own then."""
    from .report import build

    if grid:
        for p in bench.grids():
            typer.echo(f"grid: {p}", err=True)
    if not report:
        return
    try:
        written = build(out)
    except ValueError as e:  # an empty results.csv
        if bench.errors:
            return
        _fail(first_line(e))
    for name, p in written.items():
        typer.echo(f"{name}: {p}", err=True)


@app.command()
def report(
    out: Path = typer.Argument(..., help="A bench results folder (with results.csv)."),
    headline: str = typer.Option("glazeish-default", help="Protection of the headline table."),
):
    """Rebuild OUT/results.md and the plots from OUT/results.csv."""
    from .report import build

    try:
        written = build(out, headline)
    except (ValueError, OSError) as e:
        _fail(str(e))
    for name, p in written.items():
        typer.echo(f"{name}: {p}")


@app.command("mimic")
def mimic(
    images: List[Path] = typer.Option([], "--images", help="Folder(s) of one artist's images (required "
                                      "unless --report).", show_default=False),
    out: Path = typer.Option(Path("benchmarks/mimic"), "--out", "-o", help="Results folder."),
    report: bool = typer.Option(False, "--report", help="Only rewrite OUT/summary.csv and OUT/results.md (and the "
                                "generated block of OUT/RESULTS.md) from OUT's rows: config.json, units.jsonl, "
                                "results.csv. No images, no models, no training."),
    work: Optional[Path] = typer.Option(None, "--work", help="Caches and checkpoints (default "
                                                      "OUT/work; e.g. benchmarks/_scratch/mimic)."),
    protections: str = typer.Option("none,random,glazeish-default", help="Comma-separated arms "
                                    "(same-psnr:<p> = noise with p's own MSE, jpeg75:<p> = p re-saved as JPEG q75, "
                                    "statnull:<p> = clean latents moved to p's per-channel latent mean/std; "
                                    "'none' is always added: the clean reference)."),
    external: List[str] = typer.Option([], "--external", help="Folder of images cloaked by another "
                                                     "tool, paired by file stem; NAME=DIR to label it (repeatable)."),
    steps: Optional[int] = typer.Option(None, help="Training steps per model [400; quick 40]."),
    seeds: str = typer.Option("0", help="Comma-separated training seeds (e.g. 0,1,2)."),
    draws: int = typer.Option(1, min=1, help="Independent draws of every seeded protection (cloak and noise "
                              "arms): each is trained with every seed."),
    samples: Optional[int] = typer.Option(None, help="Samples per model and seed [32; quick 4]."),
    crop: Optional[int] = typer.Option(None, help="Crop size in pixels [128; quick 64]."),
    width: Optional[int] = typer.Option(None, help="U-Net base width [48; quick 16]."),
    batch: Optional[int] = typer.Option(None, help="Crops per step [16; quick 8]."),
    lr: Optional[float] = typer.Option(None, help="Peak learning rate [1e-3]."),
    sample_steps: Optional[int] = typer.Option(None, help="Euler steps when sampling [30; quick 10]."),
    eps: float = typer.Option(4.0, help="L-inf budget (1/255) of 'random' (glazeish presets keep "
                                            "their own; default 4 = glazeish-default's)."),
    limit: Optional[int] = typer.Option(None, help="At most this many images per folder [quick 4]."),
    bootstrap: Optional[int] = typer.Option(None, help="Bootstrap draws [1000; quick 200]."),
    quick: bool = typer.Option(False, "--quick", help="Toy size (64 px crops, tiny model, 40 steps, "
                                             "4 images); explicit options still win."),
    models: Optional[Path] = typer.Option(None, "--models", help="Folder with the encoder weights."),
):
    """Train a small flow-matching model on each version of an artist's set (clean, cloaked, noised, ...),
    sample it, and measure how far its samples are from the artist's style. Seeded and resumable.

    Writes OUT/results.csv and OUT/units.jsonl (the rows), OUT/summary.csv and OUT/results.md (from those rows
    alone: --report recomputes them), OUT/samples_grid.png, OUT/samples_*.png and OUT/training_curves.png.
    """
    from .mimic import MimicConfig, report_from_rows, run_mimic

    if report:
        try:
            written = report_from_rows(out)
        except (ValueError, OSError, KeyError) as e:
            _fail(f"--report {out}: {first_line(e)}")
        for name, p in written.items():
            typer.echo(f"{name}: {p}", err=True)
        return
    if not images:
        _fail("--images is required (or --report to rewrite the summary from OUT's rows)")
    _check_images(images)
    try:
        seed_list = [int(s) for s in _split(seeds)]
    except ValueError:
        _fail(f"--seeds must be comma-separated integers, not {seeds!r}")
    opts = dict(steps=steps, samples=samples, crop=crop, width=width, batch=batch, lr=lr, sample_steps=sample_steps,
                limit=limit, bootstrap=bootstrap)
    common = dict(protections=_split(protections), external=_external(external), work=str(work) if work else None,
                  models_dir=str(models) if models else None, eps_levels=eps, seeds=seed_list, draws=draws)
    try:
        if quick:
            config = MimicConfig.quick([str(p) for p in images], str(out), **common, **opts)
        else:
            config = MimicConfig(images=[str(p) for p in images], out=str(out), **common,
                                 **{k: v for k, v in opts.items() if v is not None})
        result = run_mimic(config, log=lambda s: typer.echo(f"glazeish bench mimic: {s}", err=True))
    except (ValueError, OSError, RuntimeError) as e:
        _fail(first_line(e))
    typer.echo(f"trained {len(result.trained)}, skipped {len(result.skipped)} finished, in {result.seconds:.0f} s",
               err=True)
    for name, p in result.files.items():
        typer.echo(f"{name}: {p}", err=True)


if __name__ == "__main__":  # python -m glazeish.bench.cli
    app()
