"""The ``glazeish`` command line."""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path
from typing import List, Optional

import typer

from . import __version__
from .imageio import DEFAULT_MAX_PIXELS, FORMATS, ImageError, find_images, read_image, save_image
from .metadata import MetadataOptions, resolve_data_mining
from . import report as report_mod
from .protect import PRESETS, ProtectConfig, Protector, json_row, output_path
from .report import assess, jsonable, report_path, write_report
from .transforms import DEFAULT_ROBUST
from .weights import WeightsError

app = typer.Typer(
    help="Cloak artwork against diffusion-model style mimicry, and measure how well cloaks hold up.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

PRESET_HELP = "; ".join(f"{k}: eps {p.eps:g}/255, {p.steps} steps, {p.summary}" for k, p in PRESETS.items())
MODELS_HELP = "Folder with the encoder weights (default: $GLAZEISH_MODELS, then the download cache)."


def _robust(flag: bool | None, transforms: str | None) -> str | None:
    """ProtectConfig.robust from --robust/--no-robust and --transforms (None: the preset's)."""
    if transforms is not None:
        if flag is False:
            fail("--transforms and --no-robust contradict each other")
        return transforms
    if flag is None:
        return None
    return DEFAULT_ROBUST if flag else ""


def fail(msg: str, code: int = 2) -> None:
    typer.echo(f"glazeish: error: {msg}", err=True)
    raise typer.Exit(code)


def _check_writable(outdir: Path) -> None:
    try:
        outdir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=outdir):
            pass
    except OSError as e:
        fail(f"{outdir}: output folder is not writable ({e.strerror or e})")


def _progress(total: int, desc: str, disable: bool, leave: bool = True):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="step" if desc != "images" else "img", leave=leave,
                disable=disable, file=sys.stderr, dynamic_ncols=True)


def _summary(name: str, figures: dict) -> str:
    parts = [f"PSNR {figures['psnr']['cloak']:.1f} dB"]
    for enc, f in figures["encoders"].items():
        d = f["latent_displacement"]
        parts.append(f"{enc} latent moved {d['cloak'] / max(d['random'], 1e-9):.1f}x noise")
        if "mimic_psnr" in f:
            m = f["mimic_psnr"]
            parts.append(f"mimic view {m['random'] - m['cloak']:+.1f} dB vs noise")
    return f"{name}: " + ", ".join(parts)


def _protect_on_ray(files, out, config, meta, fmt, quality, overwrite, address, workers, evaluate, max_pixels,
                    as_json, quiet) -> None:
    """``protect --ray``: the same outputs, rows and messages as the local loop, from Ray workers."""
    try:
        import ray  # noqa: F401  (only to give a clear message when the extra is missing)

        from .distributed import OutdirBusyError, WorkerSetupError, protect_with_ray
    except ImportError:
        fail("--ray needs Ray: pip install 'glazeish[ray]'")
    show = not quiet and sys.stderr.isatty()
    with _progress(len(files), "images", disable=not show or len(files) < 2) as batch:
        def on_row(row: dict) -> None:
            if as_json:
                typer.echo(json.dumps(row))
            elif not quiet and "psnr" in row:
                typer.echo(_summary(Path(row["output"]).name, row), err=True)

        try:
            _, errors = protect_with_ray(files, out, config, meta, fmt, quality, overwrite, address=address,
                                         num_workers=workers, evaluate=evaluate, max_pixels=max_pixels,
                                         on_row=on_row, on_message=lambda m: typer.echo(m, err=True),
                                         on_progress=batch.update)
        except (WorkerSetupError, OutdirBusyError, ValueError, ConnectionError) as e:
            fail(str(e))
    if errors:
        raise typer.Exit(1)


@app.command()
def protect(
    inputs: List[Path] = typer.Argument(..., help="Image files and/or folders to cloak.", show_default=False),
    out: Path = typer.Option(Path("protected"), "--out", "-o", help="Output folder; files are written as <stem>.protected.png."),
    recursive: bool = typer.Option(False, "--recursive", "-r", help="Descend into sub-folders."),
    intensity: str = typer.Option("default", "--intensity", "-i", help=f"Preset. {PRESET_HELP}."),
    eps: Optional[float] = typer.Option(None, help="L-inf budget in 1/255 units (overrides the preset)."),
    steps: Optional[int] = typer.Option(None, help="Optimisation steps (overrides the preset)."),
    encoder: str = typer.Option("taef2", help="Encoder(s) to attack: taef2, taesana, diffusers:<repo-or-path>; "
                                "comma-separated for an ensemble, name*w to weight one."),
    objective: Optional[str] = typer.Option(None, help="texture, untargeted, style or mimic (default: the preset's)."),
    target: Optional[Path] = typer.Option(None, help="Target/decoy pattern image (default: built-in pattern)."),
    seed: int = typer.Option(0, help="Random seed; the same seed gives the same cloak on one device."),
    device: str = typer.Option("auto", help="auto, cpu, cuda, cuda:1, ..."),
    precision: str = typer.Option("auto", help="auto (fastest measured here), fp32, bf16 or fp16."),
    robust: Optional[bool] = typer.Option(None, "--robust/--no-robust", help="Optimise through simulated "
                                          f"re-posting (expectation over transformation): --robust samples "
                                          f"{DEFAULT_ROBUST}; --no-robust none. Default: the preset's "
                                          "(default/high: identity,jpeg)."),
    transforms: Optional[str] = typer.Option(None, help="Exactly these transforms, one sampled per step "
                                             "(e.g. identity,jpeg,resize; implies --robust)."),
    budget: str = typer.Option("flat", help="flat (the same eps everywhere) or perceptual (less change on flat "
                               "colour and smooth gradients, up to eps on texture and edges)."),
    report: bool = typer.Option(False, "--report", help="Also write OUT/<stem>.protected.report.html: original, "
                                "cloak, amplified change, what a model learns from each, figures and verdicts."),
    models: Optional[Path] = typer.Option(None, "--models", help=MODELS_HELP),
    fmt: str = typer.Option("png", "--format", help="png (lossless, recommended), jpeg or webp."),
    quality: int = typer.Option(95, help="JPEG/WebP quality."),
    overwrite: bool = typer.Option(False, help="Replace existing outputs (inputs are never overwritten)."),
    evaluate: bool = typer.Option(True, "--eval/--no-eval", help="Measure each cloak against same-budget noise "
                                  "(costs about half the cloak's time; --no-eval skips it, also in --json)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object per image on stdout."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars or summaries."),
    max_pixels: int = typer.Option(DEFAULT_MAX_PIXELS, help="Refuse images with more pixels than this."),
    metadata: bool = typer.Option(True, "--metadata/--no-metadata", help="Write the 'no AI training' XMP reservation."),
    data_mining: str = typer.Option("aiml", help="PLUS DataMining value: aiml, genai, all, except-search, ..."),
    creator: Optional[str] = typer.Option(None, help="Artist name for the metadata."),
    copyright: Optional[str] = typer.Option(None, "--copyright", help="Copyright notice for the metadata."),
    url: Optional[str] = typer.Option(None, help="Web statement of rights (URL) for the metadata."),
    keep_gps: bool = typer.Option(False, help="Keep GPS location from the input's EXIF (dropped by default)."),
    ray: bool = typer.Option(False, "--ray", help="Run on Ray (pip install 'glazeish\\[ray]'): one task per image, "
                             "models loaded once per worker, resumable. Starts Ray on this machine's cores unless "
                             "--ray-address is given."),
    ray_address: Optional[str] = typer.Option(None, "--ray-address", metavar="ADDRESS",
                                              help="Ray cluster to run on (implies --ray): HEAD:6379, or auto "
                                              "on a cluster node. Inputs and --out must be on a filesystem every "
                                              "node sees at the same path."),
    workers: Optional[int] = typer.Option(None, "--workers", min=1, help="Ray workers (implies --ray). Default: "
                                          "one single-threaded worker per CPU of the cluster; with N, each of the N "
                                          "gets CPUs/N torch threads (fewer, bigger workers for big images)."),
):
    """Cloak images so that a diffusion model's encoder sees something else.

    Writes OUT/<stem>.protected.png for every input, never touching the input. A file that cannot be read
    is reported on stderr and skipped; the exit code is 1 if any file failed.
    """
    if fmt not in FORMATS:
        fail(f"--format must be one of {', '.join(FORMATS)}")
    try:
        config = ProtectConfig(intensity=intensity, eps=eps, steps=steps, objective=objective, encoder=encoder,
                               target=str(target) if target else None, seed=seed, device=device,
                               precision=precision, models_dir=str(models) if models else None,
                               robust=_robust(robust, transforms), budget=budget)
        meta = MetadataOptions(enabled=metadata, data_mining=resolve_data_mining(data_mining), creator=creator,
                               copyright=copyright, url=url, keep_gps=keep_gps, preset=intensity)
    except ValueError as e:
        fail(str(e))
    if fmt != "png":
        typer.echo(f"glazeish: warning: {fmt} is lossy; re-compression weakens the cloak (png keeps it intact)", err=True)
    files = find_images([str(p) for p in inputs], recursive)
    if not files:
        fail("no images found in the given inputs")
    _check_writable(out)
    if ray or ray_address or workers:
        _protect_on_ray(files, out, config, meta, fmt, quality, overwrite, ray_address, workers,
                        evaluate, max_pixels, as_json, quiet)
        return
    try:
        protector = Protector(config)
    except (WeightsError, ImageError, ValueError, OSError) as e:
        fail(str(e))
    if report and not any(m.has_decoder for m in protector.ensemble.models):
        fail("--report needs an encoder with a decoder (e.g. taef2) for the mimic's view")
    show = not quiet and sys.stderr.isatty()
    failures = 0
    inputs_resolved = {f.resolve() for f in files}
    with _progress(len(files), "images", disable=not show or len(files) < 2) as batch:
        for f in files:
            dest = output_path(f, out, fmt)
            try:
                if dest.resolve() in inputs_resolved:
                    raise ImageError(f"{f}: output {dest} would overwrite an input; choose another --out")
                if dest.exists() and not overwrite:
                    typer.echo(f"glazeish: skipped {f}: {dest} exists (use --overwrite to replace it)", err=True)
                    batch.update(1)
                    continue
                t_image = time.perf_counter()
                art = read_image(f, max_pixels=max_pixels)
                with _progress(config.steps, f.name, disable=not show, leave=False) as bar:
                    result = protector.protect(art, evaluate=evaluate and not report,
                                               callback=lambda *_: bar.update(1))
                save_image(dest, result.rgb, art.alpha, art.source, meta, fmt, quality)
                if report:
                    # judge what is on disk: jpeg/webp outputs are not result.rgb
                    saved = result.rgb if fmt == "png" else read_image(dest).rgb
                    result.figures = assess(art.rgb, saved, protector.ensemble, eps=config.eps, seed=seed)
                    write_report(report_path(dest), art.rgb, saved, result.figures, protector.ensemble,
                                 title=f"glazeish: {f.name}")
            except ImageError as e:
                failures += 1
                typer.echo(f"glazeish: error: {e}", err=True)
                batch.update(1)
                continue
            except (RuntimeError, MemoryError) as e:  # e.g. out of memory on a huge image
                failures += 1
                typer.echo(f"glazeish: error: {f}: {str(e).splitlines()[0] if str(e) else type(e).__name__}", err=True)
                batch.update(1)
                continue
            image_seconds = time.perf_counter() - t_image  # read, cloak, figures, write (and report)
            batch.update(1)
            if as_json:
                row = json_row(f, dest, art, config, result, protector.load_seconds, image_seconds)
                typer.echo(json.dumps(jsonable(row)))
            elif not quiet and result.figures:
                typer.echo(_summary(dest.name, result.figures), err=True)
    if failures:
        raise typer.Exit(1)


app.command()(report_mod.check)


def _bench_app() -> typer.Typer:
    from .bench.cli import app as bench_app
    from .bench.mimic import mimic_command

    bench_app.command("mimic")(mimic_command)
    return bench_app


app.add_typer(_bench_app(), name="bench", help="Benchmarks: protections x purifications (run, report), mimicry training (mimic).")


@app.command()
def encoders(
    models: Optional[Path] = typer.Option(None, "--models", help=MODELS_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
):
    """List the registered encoders and whether their weights are present."""
    from .encoders import status

    rows = status(models)
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        state = "ready" if r["present"] else ("CORRUPT" if r["problem"] else "missing (downloaded on first use)")
        typer.echo(f"{r['name']:<10} {state:<34} {r['description']}")
        if r["problem"]:
            typer.echo(f"{'':<10} {r['problem']}")
    typer.echo("diffusers:<repo-id-or-path>  any diffusers AutoencoderKL/Tiny/KLFlux2/DC (needs the model locally or the HF hub)")


@app.command()
def ui(
    host: str = typer.Option("127.0.0.1", help="Address to listen on (127.0.0.1: this computer only)."),
    port: int = typer.Option(7860, help="Port."),
    share: bool = typer.Option(False, help="Also make a public gradio.live link (needs the internet)."),
    models: Optional[Path] = typer.Option(None, "--models", help=MODELS_HELP),
    max_pixels: int = typer.Option(16_000_000, help="Refuse larger images."),
    max_file_mb: float = typer.Option(50, help="Refuse larger uploads (MB)."),
    device: str = typer.Option("auto", help="auto, cpu, cuda, ..."),
    precision: str = typer.Option("auto", help="auto, fp32, bf16 or fp16."),
    open_browser: bool = typer.Option(False, "--open", help="Open the page in the default browser."),
):
    """Start the local web page: drop images, pick a strength, download cloaked versions (needs glazeish[ui])."""
    from .ui import serve

    serve(host, port, share, str(models) if models else None, max_pixels=max_pixels,
          max_file_mb=max_file_mb, device=device, precision=precision, open_browser=open_browser)


@app.command()
def version():
    """Print the version."""
    typer.echo(__version__)


def main() -> None:  # pragma: no cover
    app()
