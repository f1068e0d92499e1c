"""``glazeish bench``: run the protection benchmark and rebuild its report.

Mounted on the main CLI with ``app.add_typer(bench_app, name="bench")``; other modules may add commands
to :data:`app` (``speed``, ``mimic``, ...) with ``@app.command()``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer

from .protections import DEFAULT_PROTECTIONS, PROTECTIONS, QUICK_PROTECTIONS

app = typer.Typer(
    help="Benchmark cloaks: visibility, latent and mimicry damage, transfer, and survival of purifications.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

DEFAULT_PURIFS = "none,jpeg75,jpeg50,webp,resize0.5,resize0.75,blur1,noise0.05,median3,tvd"
QUICK_PURIFS = "none,jpeg75,resize0.75"


def _fail(msg: str) -> None:
    typer.echo(f"glazeish bench: error: {msg}", err=True)
    raise typer.Exit(2)


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _split(s: str) -> list[str]:
    return [p.strip() for p in s.split(",") if p.strip()]


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


@app.command()
def run(
    images: List[Path] = typer.Option(..., "--images", help="Folder(s) of original images (repeat for several).",
                                      show_default=False),
    out: Path = typer.Option(Path("benchmarks/protection"), "--out", "-o", help="Results folder (CSV, tables, plots)."),
    protections: Optional[str] = typer.Option(
        None, help=f"Comma-separated; 'default' = {','.join(DEFAULT_PROTECTIONS)}. Known: {', '.join(PROTECTIONS)}."),
    purifications: Optional[str] = typer.Option(
        None, help=f"Comma-separated (see glazeish.purify; 'none' is always measured). Default: {DEFAULT_PURIFS}."),
    encoders: str = typer.Option("taef2,taesana", help="Encoders whose latent displacement is reported (attacked "
                                 "or not); the first with a decoder gives the mimic view."),
    attacked: str = typer.Option("taef2", help="Encoder spec the cloaks attack."),
    style_encoder: str = typer.Option("taesana", help="Encoder whose features judge style (must not be attacked)."),
    eps: float = typer.Option(4.0, help="L-inf budget (1/255) of random / photoguard-encoder / mist-textural; the "
                              "glazeish presets keep their own."),
    attack_steps: int = typer.Option(10, help="PGD steps of photoguard-encoder and mist-textural."),
    external: List[str] = typer.Option([], "--external", help="Folder of images cloaked by another tool, paired "
                                       "with the originals by file name stem; NAME=DIR to label it (repeatable)."),
    quick: bool = typer.Option(False, "--quick", help=f"Protections {','.join(QUICK_PROTECTIONS)}, purifications "
                               f"{QUICK_PURIFS}, at most 2 images per folder (explicit options still win)."),
    limit: Optional[int] = typer.Option(None, help="At most this many images per folder."),
    slow_images: Optional[int] = typer.Option(None, help="Run model-based purifications (ae, impress) on only this "
                                              "many images per folder."),
    impress_steps: int = typer.Option(20, help="Adam steps of the impress purification."),
    seed: int = typer.Option(0, help="Seed of every random draw (noise, attacks' random start)."),
    device: str = typer.Option("auto", help="auto, cpu, cuda, ..."),
    precision: str = typer.Option("auto", help="Precision of the attacks (measurements are always float32)."),
    models: Optional[Path] = typer.Option(None, "--models", help="Folder with the encoder weights."),
    cache: Optional[Path] = typer.Option(None, help="Where protected images are cached (default OUT/cache)."),
    batch: int = typer.Option(4, help="Images per forward pass when measuring."),
    grid: bool = typer.Option(True, "--grid/--no-grid", help="Write the image grid(s)."),
    report: bool = typer.Option(True, "--report/--no-report", help="Write tables and plots at the end."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    pipeline: Optional[str] = typer.Option(None, help="A diffusers pipeline (repo id or local folder): also "
                                           "measure img2img on its generated images (needs the weights locally "
                                           "or the HF hub)."),
    prompt: str = typer.Option("a painting", help="Prompt of the pipeline measurements."),
    strengths: str = typer.Option("0.3,0.45,0.6", help="img2img strengths."),
    pipeline_steps: int = typer.Option(30, help="Denoising steps of the pipeline."),
    guidance: float = typer.Option(7.5, help="Classifier-free guidance scale."),
    pipeline_dtype: str = typer.Option("fp32", help="fp32, fp16 or bf16 weights for the pipeline."),
    pipeline_purifications: str = typer.Option("none", help="Purifications after which img2img is measured."),
    lora_steps: int = typer.Option(0, help="Fine-tune a LoRA for this many steps on each set (0: off; SD-style "
                                   "pipelines, needs peft)."),
    lora_rank: int = typer.Option(4, help="LoRA rank."),
    lora_lr: float = typer.Option(1e-4, help="LoRA learning rate."),
    lora_samples: int = typer.Option(4, help="Images sampled from each LoRA."),
    resolution: Optional[int] = typer.Option(None, help="LoRA training/sampling size (default: the pipeline's)."),
):
    """Measure protections on a set of images; resumable (finished rows are skipped) and seeded.

    Writes OUT/results.csv (one row per image, protection, purification and metric), OUT/results.md,
    OUT/frontier.png, OUT/retained.png, OUT/grid_*.png and OUT/environment.json.
    """
    from .harness import Bench, BenchConfig

    ext = _external(external)
    if protections is None:
        protections = ",".join(QUICK_PROTECTIONS if quick else DEFAULT_PROTECTIONS)
    if purifications is None:
        purifications = QUICK_PURIFS if quick else DEFAULT_PURIFS
    if quick and limit is None:
        limit = 2
    pcfg = None
    if pipeline:
        from .pipelines import PipelineConfig

        try:
            strength_list = tuple(float(v) for v in _split(strengths))
        except ValueError:
            _fail(f"--strengths must be comma-separated numbers, not {strengths!r}")
        if pipeline_dtype not in ("fp32", "fp16", "bf16"):
            _fail("--pipeline-dtype must be fp32, fp16 or bf16")
        pcfg = PipelineConfig(
            pipeline=pipeline, prompt=prompt, strengths=strength_list, steps=pipeline_steps, guidance=guidance,
            seed=seed, device="cuda" if device == "auto" and _cuda() else ("cpu" if device == "auto" else device),
            dtype=pipeline_dtype, lora_steps=lora_steps, lora_rank=lora_rank, lora_lr=lora_lr,
            lora_samples=lora_samples, resolution=resolution, purifications=_split(pipeline_purifications),
        )
    config = BenchConfig(
        images=[str(p) for p in images], out=str(out), protections=_split(protections),
        purifications=_split(purifications), encoders=_split(encoders), attacked=attacked,
        style_encoder=style_encoder, eps=eps, attack_steps=attack_steps, seed=seed, device=device,
        precision=precision, models_dir=str(models) if models else None, cache=str(cache) if cache else None,
        external=ext, limit=limit, slow_images=slow_images, impress_steps=impress_steps, batch=batch,
        pipeline=pcfg,
    )
    try:
        bench = Bench(config, log=lambda s: typer.echo(f"glazeish bench: {s}", err=True))
        csv_path = bench.run(progress=not quiet and sys.stderr.isatty())
    except (ValueError, OSError, RuntimeError) as e:
        _fail(str(e).splitlines()[0] if str(e) else type(e).__name__)
    typer.echo(f"results: {csv_path}", err=True)
    if grid:
        for p in bench.grids():
            typer.echo(f"grid: {p}", err=True)
    if report:
        from .report import build

        for name, p in build(out).items():
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


if __name__ == "__main__":  # python -m glazeish.bench.cli
    app()
