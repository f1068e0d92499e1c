"""The benchmark run: images × protections × purifications × metrics, written as a long-format CSV
(schema: :mod:`.results`).

For every image and protection the harness calls :func:`glazeish.evaluation.assess` — the same figures as
``glazeish check`` — with the benchmark's extended metrics, and flattens them into rows: for every purification
``p`` (``none`` first), the protection, same-PSNR noise and same-L∞ noise after ``p``, each against ``p(original)``,
and what ``p`` costs the original itself.

Resumable: a row group ``(image, protection, purification)`` already complete in the CSV is skipped, and
protected images are cached on disk (keyed by the protection's settings) so a resumed run or a run with
other purifications never recomputes an attack.
"""

from __future__ import annotations

import json
import math
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch

from ..config import MAX_EPS_LEVELS
from ..device import cpu_name
from ..evaluation import Evaluator, assess, baselines
from ..evaluation.figures import retained
from ..imageio import ImageError, find_images, read_image, save_image, to_tensor
from ..metadata import MetadataOptions
from .pipelines import PipelineConfig
from .protections import BenchContext, Protection, image_seed, make_protection, measured_eps, split_protections
from .results import CSV_FIELDS, CSV_NAME, ENV_NAME, NONE, ResultsWriter, fmt_cell, metric_info, read_rows  # noqa: F401


@dataclass
class BenchConfig:
    """One ``bench run``. Lists are names; see :mod:`.protections` and :mod:`glazeish.purify`."""

    images: list[str]
    out: str
    protections: list[str] = field(default_factory=lambda: ["none", "random", "glazeish-default"])
    purifications: list[str] = field(default_factory=lambda: ["none", "jpeg75", "resize0.75"])
    encoders: list[str] = field(default_factory=lambda: ["taef2", "taesana"])
    attacked: str = "taef2"  # the encoder spec the cloaks attack
    style_encoder: str = "taesana"  # features for the style distance: must not be attacked
    eps_levels: float = 4.0  # budget (1/255) of `random`; presets and peers keep their own
    attack_steps: int | None = None  # replaces the peers' published iteration counts (tests, smoke runs)
    mist_target: str | None = None  # target image of mist-textural-style (Mist's MIST.png)
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"
    models_dir: str | None = None
    cache: str | None = None  # protected-image cache (default OUT/cache)
    external: dict[str, str] = field(default_factory=dict)
    limit: int | None = None  # at most this many images per folder
    slow_images: int | None = None  # model-based purifications (ae, impress) on this many images per folder
    impress_steps: int = 20
    purify_pipeline: str | None = None  # img2img pipeline of diffpure / gridpure (repo id or folder)
    upscaler: str | None = None  # upscaler pipeline of the noisy-upscaling purification
    batch: int = 4
    recursive: bool = False
    pipeline: "PipelineConfig | None" = None  # full diffusers pipeline measurements (img2img, LoRA)

    def __post_init__(self):
        check_eps(self.eps_levels)
        for option, value, low in (("--limit", self.limit, 1), ("--slow-images", self.slow_images, 0),
                                   ("--batch", self.batch, 1), ("--attack-steps", self.attack_steps, 1),
                                   ("--impress-steps", self.impress_steps, 1)):
            at_least(option, value, low)


def check_eps(eps_levels: float) -> None:
    """The ``--eps`` of a benchmark's noise arms: 1/255 levels within what a cloak may use (NaN refused)."""
    if not 0 <= eps_levels <= MAX_EPS_LEVELS:
        raise ValueError(f"--eps must be between 0 and {MAX_EPS_LEVELS} (in 1/255 units), not {eps_levels:g}")


def at_least(option: str, value: float | None, low: float) -> None:
    """Refuse an option's ``value`` (None: not given) below ``low``, or NaN: before any work, not in its midst."""
    if value is not None and not value >= low:
        raise ValueError(f"{option} must be at least {low:g}, not {value:g}")


def image_key(path: Path) -> str:
    """``folder/stem``: stable across runs and unique for the shared layout (paintings/, flat/)."""
    return f"{path.parent.name}/{path.stem}"


def interleaved_images(folders: Iterable[str], limit: int | None = None, recursive: bool = False) -> list[Path]:
    """The images :func:`glazeish.imageio.find_images` lists in each folder (sorted), at most ``limit`` per
    folder, taken round-robin across folders so that a run stopped early still covers every folder (paintings,
    flat, ...); two images with the same ``folder/stem`` key are refused."""
    groups: list[list[Path]] = []
    for folder in folders:
        found = find_images([folder], recursive)
        by_parent: dict[Path, list[Path]] = {}
        for f in found:
            by_parent.setdefault(f.parent, []).append(f)
        groups.extend(files[:limit] if limit else files for files in by_parent.values())
    out: list[Path] = []
    for i in range(max((len(g) for g in groups), default=0)):
        out.extend(g[i] for g in groups if i < len(g))
    keys = [image_key(p) for p in out]
    dupes = {k for k in keys if keys.count(k) > 1}
    if dupes:
        raise ValueError(f"two images share the key folder/stem: {', '.join(sorted(dupes))}")
    return out


# ---------------------------------------------------------------------------------------------
# environment


def environment(config: BenchConfig, device: torch.device) -> dict:
    """Versions, machine and settings of a run (for ``environment.json``)."""
    import importlib.metadata as md

    versions = {}
    for pkg in ("glazeish", "torch", "numpy", "pillow", "kornia", "diffusers", "transformers", "peft", "matplotlib"):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    cpu = cpu_name()
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
        "gpu": gpu,
        "versions": versions,
        "config": asdict(config),
        "argv": sys.argv,
    }


def _update_env(out: Path, entry: dict) -> None:
    """Record this invocation in ``environment.json`` (a resumed run keeps the history): appended when it
    starts, replaced (same ``run_id``) when it finishes, so a run that was stopped is still on record."""
    path = out / ENV_NAME
    data = {"runs": []}
    if path.is_file():
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError:
            pass
    runs = [r for r in data.setdefault("runs", []) if r.get("run_id") != entry.get("run_id")]
    data["runs"] = runs + [entry]
    data["latest"] = entry
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str))
    os.replace(tmp, path)


# ---------------------------------------------------------------------------------------------
# the run


class Bench:
    """Loads the models once and runs a :class:`BenchConfig`; ``run()`` returns the CSV path."""

    def __init__(self, config: BenchConfig, log: Callable[[str], None] | None = None):
        from ..device import resolve_device, resolve_precision
        from ..encoders import Ensemble, first_with_decoder, load_encoder, parse_ensemble
        from ..metrics import StyleFeatures
        from ..purify import PURIFICATIONS, expand
        from ..registry import parse_spec

        self.config = c = config
        self.log = log or (lambda s: print(s, file=sys.stderr))
        self.device = resolve_device(c.device)
        resolve_precision(c.precision, self.device)  # a bad --precision: refused here, not by every attack
        self.out = Path(c.out)
        self.errors: list[str] = []  # one line per image or cell that failed (run())
        self.cache = Path(c.cache) if c.cache else self.out / "cache"
        models: dict[str, object] = {}

        def model(name: str):
            if name not in models:
                models[name] = load_encoder(name, c.models_dir).to(self.device)
            return models[name]

        self.encoders = [model(n) for n in c.encoders]
        mimic = first_with_decoder(self.encoders)
        attacked = [n for n, _ in parse_ensemble(c.attacked)]
        style = None
        if c.style_encoder:
            if c.style_encoder in attacked:
                self.log(f"warning: the style encoder {c.style_encoder} is also attacked; its style distance is not "
                         "an independent judge")
            style = StyleFeatures(model(c.style_encoder).encoder)
        self.evaluator = Evaluator(self.encoders, style=style, extended=True)
        self.attacked_names = list(dict.fromkeys(attacked))
        # share the loaded models with the attacks (a weighted spec is left to the Protector to parse)
        ensemble = None if "*" in c.attacked else Ensemble([model(n) for n in self.attacked_names])
        self.ctx = BenchContext(eps_levels=c.eps_levels, attack_steps=c.attack_steps, mist_target=c.mist_target,
                                seed=c.seed, encoder=c.attacked, device=str(self.device), precision=c.precision,
                                models_dir=c.models_dir, external=dict(c.external), ensemble=ensemble)
        self.protections: list[Protection] = [make_protection(n, self.ctx) for n in
                                              split_protections(c.protections, c.external)]
        # model-based purifications get the mimic autoencoder: the only one with a decoder here, and the one the
        # cloaks attacked — the report labels these rows as such; "ae:<encoder>" loads that (un-attacked) model
        self.purifiers = {}
        for spec in expand(c.purifications):
            # the quick IMPRESS takes --impress-steps; every other purifier keeps its authors' step count
            extra = {"steps": c.impress_steps} if parse_spec(spec)[0] == "impress" else {}
            p = PURIFICATIONS.build(spec, model=mimic, seed=c.seed, models_dir=c.models_dir,
                                    pipeline=c.purify_pipeline, upscaler=c.upscaler, **extra)
            self.purifiers.setdefault(p.name, p)
        self.slow = {n for n, p in self.purifiers.items() if p.needs_model}
        self.img2img = None
        if c.pipeline is not None:
            from .pipelines import Img2ImgMeasurer

            self.img2img = Img2ImgMeasurer(c.pipeline, style=style)

    @property
    def purification_names(self) -> list[str]:
        return [NONE, *self.purifiers]

    def metric_names(self, purification: str) -> list[str]:
        """Metrics written for every (image, protection) after ``purification``."""
        from ..evaluation.measure import EXTENDED

        names = ["psnr", "ssim", "flip", *(f"latent:{n}" for n in self.evaluator.names)]
        if self.evaluator.mimic is not None:
            names += ["view_psnr", "copy_psnr"]
        names += [m for m in EXTENDED if self.evaluator.mimic is not None or m in ("ms_ssim", "linf", "rms")]
        if self.evaluator.style is None:
            names = [m for m in names if m not in ("style", "copy_style")]
        if purification != NONE:
            names.remove("flip")  # the cloak's visibility is measured once, on the file itself
        if self.img2img is not None and purification in self.config.pipeline.purifications:
            names += self.img2img.metric_names
        return names

    # -- cache --------------------------------------------------------------------------------

    def _cache_path(self, prot: Protection, key: str) -> Path | None:
        if prot.cache_key is None:
            return None
        return self.cache / f"{prot.name}-{prot.cache_key}" / f"{key}.png"

    def protected(self, prot: Protection, rgb: np.ndarray, key: str) -> tuple[np.ndarray, float]:
        """Protected pixels (from the cache when present) and the seconds the protection took (0 if cached)."""
        path = self._cache_path(prot, key)
        if path is not None and path.is_file():
            try:
                cached = read_image(path).rgb
                if cached.shape == rgb.shape:
                    return cached, 0.0
            except ImageError:
                pass  # a torn cache file: recompute it
        t0 = time.perf_counter()
        out = prot.protect(rgb, key)
        seconds = time.perf_counter() - t0
        if path is not None:
            save_image(path, out, metadata=MetadataOptions(enabled=False))
            path.with_suffix(".json").write_text(json.dumps({"seconds": round(seconds, 3)}))
        return out, seconds

    # -- main loop ----------------------------------------------------------------------------

    def run(self, progress: bool = True) -> Path:
        from tqdm import tqdm

        c = self.config
        self.out.mkdir(parents=True, exist_ok=True)
        files = interleaved_images(c.images, c.limit, c.recursive)
        if not files:
            raise ValueError(f"no images found in {', '.join(c.images)}")
        slow_ok = self._slow_ok(files)
        writer = ResultsWriter(self.out / CSV_NAME)
        done = {k for k, v in writer.have().items() if set(self.metric_names(k[2])) <= v}
        started = time.time()
        env = environment(c, self.device)
        env["started"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        env["run_id"] = f"{env['started']}-{os.getpid()}"
        env["finished"] = None
        _update_env(self.out, env)
        timings: dict[str, list[float]] = {}
        by_image = self._todo(files, done, slow_ok)
        bar = tqdm(total=sum(map(len, by_image.values())), desc="bench", unit="cell", disable=not progress,
                   file=sys.stderr, dynamic_ncols=True)
        for f, prots in by_image.items():
            self._measure_image(f, prots, done, slow_ok, writer, timings, bar)
        bar.close()
        if c.pipeline is not None and c.pipeline.lora_steps > 0:
            self._lora(files, writer)
        env["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        env["seconds"] = round(time.time() - started, 1)
        env.update(self._what_ran(files, timings, slow_ok))
        _update_env(self.out, env)
        return self.out / CSV_NAME

    def _slow_ok(self, files: list[Path]) -> set[str]:
        """The images (keys) the slow purifications run on: the first ``slow_images`` of each folder (all by
        default)."""
        slow_ok: set[str] = set()
        per_folder: dict[str, int] = {}
        for f in files:
            n = per_folder.get(f.parent.name, 0)
            per_folder[f.parent.name] = n + 1
            if self.config.slow_images is None or n < self.config.slow_images:
                slow_ok.add(image_key(f))
        return slow_ok

    def _wanted(self, k: str, prot: str, done: set, slow_ok: set[str]) -> list[str]:
        """The purifications still to measure for image ``k`` under protection ``prot``."""
        return [n for n in self.purification_names
                if (n not in self.slow or k in slow_ok) and (k, prot, n) not in done]

    def _todo(self, files: list[Path], done: set, slow_ok: set[str]) -> dict[Path, list[Protection]]:
        """Per image, the protections with a row still to measure (a resumed run skips the finished ones)."""
        by_image: dict[Path, list[Protection]] = {}
        for f in files:
            for prot in self.protections:
                if self._wanted(image_key(f), prot.name, done, slow_ok):
                    by_image.setdefault(f, []).append(prot)
        return by_image

    def _measure_image(self, f: Path, prots: list[Protection], done: set, slow_ok: set[str],
                       writer: ResultsWriter, timings: dict[str, list[float]], bar) -> None:
        """Every protection's rows for one image; an image or protection that fails is said and skipped."""
        k = image_key(f)
        try:
            rgb = read_image(f).rgb
        except ImageError as e:
            self.errors.append(str(e))
            self.log(f"error: {e}")
            bar.update(len(prots))
            return
        cache: dict = {}  # what each purification does to this original, measured once
        for prot in prots:
            bar.set_postfix_str(f"{k.rsplit('/', 1)[-1][:24]} {prot.name}", refresh=False)
            try:
                cloak, secs = self.protected(prot, rgb, k)
            except (ImageError, ValueError) as e:
                self.errors.append(f"{k} {prot.name}: {e}")
                self.log(f"error: {k} {prot.name}: {e}")
                bar.update(1)
                continue
            if secs:
                timings.setdefault(prot.name, []).append(secs)
            writer.write(self._rows(f, rgb, prot, cloak, self._wanted(k, prot.name, done, slow_ok), cache))
            bar.update(1)

    def _what_ran(self, files: list[Path], timings: dict[str, list[float]], slow_ok: set[str]) -> dict:
        """What environment.json records of a finished run: timings, models, protections, purifications, errors."""
        return {
            "attack_seconds_mean": {k: round(float(np.mean(v)), 2) for k, v in timings.items()},
            "attack_seconds_n": {k: len(v) for k, v in timings.items()},
            "mimic_model": self.evaluator.mimic.name if self.evaluator.mimic else None,
            "attacked": self.attacked_names,
            "protections": {p.name: {"description": p.description, "eps_levels": p.eps_levels,
                                     "cache_key": p.cache_key} for p in self.protections},
            "purifications": {NONE: "no purification", **{n: p.description for n, p in self.purifiers.items()}},
            "slow_purifications_on": sorted(slow_ok) if self.slow else [],
            "errors": self.errors,
            "images": [str(f) for f in files],
            "cache": str(self.cache),
        }

    def _lora(self, files: list[Path], writer: ResultsWriter) -> None:
        """Set-level LoRA mimicry per folder: one LoRA per protection, one per protection's same-PSNR noise and
        one on the clean set."""
        from .pipelines import lora_metrics, lora_mimic

        pcfg = self.config.pipeline
        have = writer.have()
        by_folder: dict[str, list[Path]] = {}
        for f in files:
            by_folder.setdefault(f.parent.name, []).append(f)
        prots = [p for p in self.protections if p.name != NONE]
        for folder, group in by_folder.items():
            if all((f"lora:{folder}/0", p.name, NONE) in have for p in prots):
                continue
            originals = [read_image(f).rgb for f in group]
            keys = [image_key(f) for f in group]
            sets: dict[str, list[torch.Tensor]] = {"clean": [to_tensor(r) for r in originals]}
            eps_of: dict[str, float] = {}
            for p in prots:
                imgs = [self.protected(p, r, k)[0] for r, k in zip(originals, keys)]
                eps_of[p.name] = self._eps(p, originals, imgs)
                sets[p.name] = [to_tensor(i) for i in imgs]
                sets[f"noise:{p.name}"] = [to_tensor(baselines(r, i, eps_of[p.name], image_seed(self.config.seed, k))[0])
                                           for r, i, k in zip(originals, imgs, keys)]
            results = lora_mimic(self.img2img.pipe, sets, pcfg)
            style = self.evaluator.style
            clean_m = lora_metrics(results["clean"], results["clean"], sets["clean"], style)
            rows = []
            for p in prots:
                val = lora_metrics(results[p.name], results["clean"], sets["clean"], style)
                noi = lora_metrics(results[f"noise:{p.name}"], results["clean"], sets["clean"], style)
                res_px = results[p.name].samples.shape[-1]
                for k, (v, n, cl) in enumerate(zip(val, noi, clean_m)):
                    for m in v:
                        eff = v[m] - n[m]
                        rows.append({"image": f"lora:{folder}/{k}", "folder": folder, "width": res_px, "height": res_px,
                                     "protection": p.name, "eps": fmt_cell(eps_of[p.name]), "purification": NONE,
                                     "metric": m, "value": fmt_cell(v[m]), "clean": fmt_cell(cl[m]),
                                     "noise": fmt_cell(n[m]), "uniform": "",
                                     "effect": fmt_cell(eff if np.isfinite(eff) else float("nan")), "retained": ""})
            writer.write(rows)

    @staticmethod
    def _eps(prot: Protection, originals: list[np.ndarray], protected: list[np.ndarray]) -> float:
        """The protection's declared budget (1/255), or the largest measured on its outputs (external tools)."""
        if prot.eps_levels is not None:
            return float(prot.eps_levels)
        return max(measured_eps(r, i) for r, i in zip(originals, protected))

    def grids(self, per_folder: int = 1, protections: list[str] | None = None) -> list[Path]:
        """Image grids (original / protected / mimic view / amplified δ) for the first image(s) of each folder."""
        from .report import plot_grid

        if self.evaluator.mimic is None:
            return []
        files = interleaved_images(self.config.images, per_folder, self.config.recursive)
        prots = [p for p in self.protections if p.name != NONE and (protections is None or p.name in protections)]
        written = []
        for f in files:
            k = image_key(f)
            try:
                rgb = read_image(f).rgb
            except ImageError:  # said by run(), which met it first
                continue
            items = []
            for prot in prots:
                try:
                    cloak, _ = self.protected(prot, rgb, k)
                except (ImageError, ValueError):
                    continue
                eps = self._eps(prot, [rgb], [cloak])
                (view,) = self.evaluator.views(cloak)
                items.append((f"{prot.name} (eps {eps:g})", cloak, view, rgb, eps))
            (clean_view,) = self.evaluator.views(rgb)
            path = self.out / f"grid_{f.parent.name}_{f.stem[:40]}.png"
            plot_grid(items, rgb, clean_view, path, title=k)
            written.append(path)
        return written

    def _rows(self, f: Path, rgb: np.ndarray, prot: Protection, cloak: np.ndarray, wanted: list[str],
              cache: dict) -> list[dict]:
        """Rows for one (image, protection) over the wanted purifications: one :func:`assess`, flattened."""
        k = image_key(f)
        eps = self._eps(prot, [rgb], [cloak])
        seed = image_seed(self.config.seed, k)
        purs = [self.purifiers[n] for n in wanted if n != NONE]
        fig = assess(rgb, cloak, self.evaluator, eps_levels=eps, seed=seed, purifications=purs, cache=cache,
                     flip=("cloak", "noise", "uniform"))
        if ("cost", NONE) not in cache:  # the original against itself: the clean column without a purification
            x = to_tensor(rgb)
            cache[("cost", NONE)] = self.evaluator.compare(x, {"x": x})[0]["x"]
        before = (fig.before.cloak.metrics(), fig.before.noise.metrics())
        rows = []
        for pname in wanted:
            comp, cost = (fig.before, cache[("cost", NONE)]) if pname == NONE else \
                (fig.purified[pname].comparison, fig.purified[pname].cost)
            value, noise, uniform, clean = (v.metrics() for v in (comp.cloak, comp.noise, comp.uniform, cost))
            if self.img2img is not None and pname in self.config.pipeline.purifications:
                more = self._img2img(rgb, cloak, eps, seed, self.purifiers.get(pname), cache)
                for d, m in zip((clean, noise, value), more):
                    d.update(m)
            for m in self.metric_names(pname):
                effect = value[m] - noise.get(m, math.nan)
                up = 1.0 if metric_info(m).damage_up else -1.0  # retained compares advantages, which are > 0
                kept = None
                if metric_info(m).group not in ("visibility", "pipeline") and m in before[0]:
                    kept = retained(up * effect, up * (before[0][m] - before[1][m]))
                rows.append({
                    "image": k, "folder": f.parent.name, "width": rgb.shape[1], "height": rgb.shape[0],
                    "protection": prot.name, "eps": fmt_cell(eps), "purification": pname, "metric": m,
                    "value": fmt_cell(value[m]), "clean": fmt_cell(clean.get(m)), "noise": fmt_cell(noise.get(m)),
                    "uniform": fmt_cell(uniform.get(m)), "retained": fmt_cell(kept),
                    "effect": fmt_cell(effect if np.isfinite(effect) else float("nan")),
                })
        return rows

    def _img2img(self, rgb, cloak, eps, seed, purifier, cache) -> list[dict[str, float]]:
        """img2img metrics of (purified original, purified same-PSNR noise, purified cloak)."""
        noise, _ = baselines(rgb, cloak, eps, seed)
        batch = torch.cat([to_tensor(a) for a in (rgb, noise, cloak)]).to(self.device)
        if purifier is not None:
            batch = purifier(batch)
        return self.img2img.measure(to_tensor(rgb), batch, cache)
