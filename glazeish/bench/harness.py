"""The benchmark run: images × protections × purifications × metrics, written as a long-format CSV.

For every image the harness computes the reference figures of the original once, then for every
purification ``p`` (``none`` first) measures, against the *unpurified* original:

* ``clean``: ``p(x)`` — what the purification alone does to the image and its mimic view;
* ``noise``: ``p(x + u)`` with ``u`` uniform noise in ``[-eps, eps]`` at the protection's L∞ budget;
* ``value``: ``p(protect(x))``.

``effect = value − noise`` (what the cloak does beyond same-budget noise) and
``retained = effect(p) / effect(none)`` (how much of it survives ``p``; 1 = all, 0 = none, < 0 = reversed).

Resumable: a row group ``(image, protection, purification)`` already complete in the CSV is skipped, and
protected images are cached on disk (keyed by the protection's settings) so a resumed run or a run with
other purifications never recomputes an attack.
"""

from __future__ import annotations

import csv
import io
import json
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch

from ..attack import cpu_name
from ..metadata import MetadataOptions
from ..imageio import ImageError, find_images, read_image, save_image, to_tensor, to_uint8
from .measure import Measurer, metric_info
from .pipelines import PipelineConfig
from .protections import BenchContext, Protection, image_seed, make_protection, measured_eps, split_protections

CSV_NAME = "results.csv"
ENV_NAME = "environment.json"
CSV_FIELDS = ["image", "folder", "width", "height", "protection", "eps", "purification", "metric",
              "value", "clean", "noise", "effect", "retained"]
NONE = "none"


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
    eps: float = 4.0
    attack_steps: int = 10
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"
    models_dir: str | None = None
    cache: str | None = None  # protected-image cache (default OUT/cache)
    external: dict[str, str] = field(default_factory=dict)
    limit: int | None = None  # at most this many images per folder
    slow_images: int | None = None  # model-based purifications (ae, impress) on this many images per folder
    impress_steps: int = 20
    batch: int = 4
    recursive: bool = False
    pipeline: "PipelineConfig | None" = None  # full diffusers pipeline measurements (img2img, LoRA)


def image_key(path: Path) -> str:
    """``folder/stem``: stable across runs and unique for the shared layout (paintings/, flat/)."""
    return f"{path.parent.name}/{path.stem}"


def list_images(folders: Iterable[str], limit: int | None = None, recursive: bool = False) -> list[Path]:
    """Images of every folder (sorted), at most ``limit`` per folder, taken round-robin across folders so
    that a run stopped early still covers every folder (paintings, flat, ...)."""
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
# CSV


def _fmt(v: float | None) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return ""
    return f"{v:.6g}"


def read_rows(path: str | Path) -> list[dict[str, str]]:
    """Rows of a results CSV as dicts of strings; a torn last line (a killed run) is dropped."""
    path = Path(path)
    if not path.is_file():
        return []
    text = path.read_text()
    if text and not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames is not None and list(reader.fieldnames) != CSV_FIELDS:
        raise ValueError(f"{path}: not a glazeish bench CSV (columns {reader.fieldnames})")
    return [r for r in reader if r.get("retained") is not None]


def to_float(s: str | None) -> float:
    """CSV cell -> float (empty -> nan; 'inf' stays inf)."""
    if s is None or s == "":
        return float("nan")
    return float(s)


class ResultsWriter:
    """Appends row groups to the CSV atomically enough: one write + flush + fsync per group."""

    def __init__(self, path: Path):
        self.path = path
        rows = read_rows(path)
        # rewrite without a torn tail so that appends start on a clean line
        with open(path, "w", newline="") as f:
            w = csv.DictWriter(f, CSV_FIELDS)
            w.writeheader()
            w.writerows(rows)
        self.rows = rows

    def have(self) -> dict[tuple[str, str, str], set[str]]:
        """(image, protection, purification) -> the metrics already written for it."""
        out: dict[tuple[str, str, str], set[str]] = {}
        for r in self.rows:
            out.setdefault((r["image"], r["protection"], r["purification"]), set()).add(r["metric"])
        return out

    def effects_at_none(self) -> dict[tuple[str, str, str], float]:
        """(image, protection, metric) -> effect without purification, for the ``retained`` column."""
        return {(r["image"], r["protection"], r["metric"]): to_float(r["effect"])
                for r in self.rows if r["purification"] == NONE}

    def write(self, rows: list[dict]) -> None:
        """Append ``rows``, leaving out metrics already written for their group (a re-run adding metrics)."""
        have = self.have()
        rows = [r for r in rows if r["metric"] not in have.get((r["image"], r["protection"], r["purification"]), ())]
        buf = io.StringIO()
        w = csv.DictWriter(buf, CSV_FIELDS)
        w.writerows(rows)
        with open(self.path, "a", newline="") as f:
            f.write(buf.getvalue())
            f.flush()
            os.fsync(f.fileno())
        self.rows.extend({k: str(v) for k, v in r.items()} for r in rows)


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
        from ..attack import resolve_device
        from ..encoders import Ensemble, load_encoder
        from ..metrics import StyleFeatures
        from ..purify import make_purifications, needs_model

        self.config = c = config
        self.log = log or (lambda s: print(s, file=sys.stderr))
        self.device = resolve_device(c.device)
        self.out = Path(c.out)
        self.cache = Path(c.cache) if c.cache else self.out / "cache"
        models: dict[str, object] = {}

        def model(name: str):
            if name not in models:
                models[name] = load_encoder(name, c.models_dir).to(self.device)
            return models[name]

        self.encoders = [model(n) for n in c.encoders]
        mimic = next((m for m in self.encoders if m.has_decoder), None)
        attacked = [n.strip().partition("*")[0] for n in c.attacked.split(",") if n.strip()]
        style = None
        if c.style_encoder:
            if c.style_encoder in attacked:
                self.log(f"warning: the style encoder {c.style_encoder} is also attacked; its style distance is not "
                         "an independent judge")
            style = StyleFeatures(model(c.style_encoder).encoder)
        self.measurer = Measurer(self.encoders, mimic, style, self.device, c.batch)
        self.attacked_names = list(dict.fromkeys(attacked))
        # share the loaded models with the attacks (a weighted spec is left to the Protector to parse)
        ensemble = None if "*" in c.attacked else Ensemble([model(n) for n in self.attacked_names])
        self.ctx = BenchContext(eps=c.eps, attack_steps=c.attack_steps, seed=c.seed, encoder=c.attacked,
                                device=str(self.device), precision=c.precision, models_dir=c.models_dir,
                                external=dict(c.external), ensemble=ensemble)
        self.protections: list[Protection] = [make_protection(n, self.ctx) for n in
                                              split_protections(c.protections, c.external)]
        names = [p for p in c.purifications if p.strip().lower() != NONE]
        # model-based purifications get the mimic autoencoder: the only one with a decoder here, and the
        # one the cloaks attacked — the report labels these rows as such
        # an explicit "ae:<encoder>" / "impress:<encoder>" loads that (un-attacked) model instead
        self.purifications = [(NONE, None)]
        for n in names:
            for p in make_purifications([n], model=None if ":" in n else mimic, steps=c.impress_steps,
                                        seed=c.seed, models_dir=c.models_dir):
                if p.name not in dict(self.purifications):
                    self.purifications.append((p.name, p))
        self.slow = {name for name, p in self.purifications if p is not None and needs_model(name)}
        self.img2img = None
        if c.pipeline is not None:
            from .pipelines import Img2ImgMeasurer

            self.img2img = Img2ImgMeasurer(c.pipeline, style=style)

    def metric_names(self, purification: str) -> list[str]:
        """Metrics written for every (image, protection) after ``purification``."""
        names = list(self.measurer.metric_names)
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
        files = list_images(c.images, c.limit, c.recursive)
        if not files:
            raise ValueError(f"no images found in {', '.join(c.images)}")
        slow_ok: set[str] = set()
        per_folder: dict[str, int] = {}
        for f in files:
            k = image_key(f)
            n = per_folder.get(f.parent.name, 0)
            per_folder[f.parent.name] = n + 1
            if c.slow_images is None or n < c.slow_images:
                slow_ok.add(k)

        writer = ResultsWriter(self.out / CSV_NAME)
        have = writer.have()
        done = {k for k, v in have.items() if set(self.metric_names(k[2])) <= v}
        none_effects = writer.effects_at_none()
        started = time.time()
        env = environment(c, self.device)
        env["started"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        env["run_id"] = f"{env['started']}-{os.getpid()}"
        env["finished"] = None
        _update_env(self.out, env)
        timings: dict[str, list[float]] = {}
        errors: list[str] = []

        todo = []
        for f in files:
            k = image_key(f)
            for prot in self.protections:
                pur = [n for n, _ in self.purifications if n not in self.slow or k in slow_ok]
                if any((k, prot.name, p) not in done for p in pur):
                    todo.append((f, prot))
        bar = tqdm(total=len(todo), desc="bench", unit="cell", disable=not progress, file=sys.stderr,
                   dynamic_ncols=True)
        by_image: dict[Path, list[Protection]] = {}
        for f, prot in todo:
            by_image.setdefault(f, []).append(prot)
        for f, prots in by_image.items():
            k = image_key(f)
            try:
                art = read_image(f)
            except ImageError as e:
                errors.append(str(e))
                self.log(f"error: {e}")
                bar.update(len(prots))
                continue
            rgb = art.rgb
            x = to_tensor(rgb)
            ref = self.measurer.reference(x)
            # the same-budget noise baseline, per eps, shared by the protections with that budget
            noise_cache: dict[float, dict[str, dict[str, float]]] = {}
            clean_cache: dict[str, dict[str, float]] = {}
            pur_list = [(n, p) for n, p in self.purifications if n not in self.slow or k in slow_ok]
            for prot in prots:
                bar.set_postfix_str(f"{k.rsplit('/', 1)[-1][:24]} {prot.name}", refresh=False)
                try:
                    cloak, secs = self.protected(prot, rgb, k)
                except (ImageError, ValueError) as e:
                    errors.append(f"{k} {prot.name}: {e}")
                    self.log(f"error: {k} {prot.name}: {e}")
                    bar.update(1)
                    continue
                if secs:
                    timings.setdefault(prot.name, []).append(secs)
                eps = prot.eps if prot.eps is not None else measured_eps(rgb, cloak)
                wanted = [(n, p) for n, p in pur_list if (k, prot.name, n) not in done]
                rows = self._measure(k, f, rgb, x, ref, prot.name, eps, cloak, wanted, noise_cache, clean_cache,
                                     none_effects)
                writer.write(rows)
                bar.update(1)
        bar.close()
        if c.pipeline is not None and c.pipeline.lora_steps > 0:
            self._lora(files, writer)
        env["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        env["seconds"] = round(time.time() - started, 1)
        env["attack_seconds_mean"] = {k: round(float(np.mean(v)), 2) for k, v in timings.items()}
        env["attack_seconds_n"] = {k: len(v) for k, v in timings.items()}
        env["mimic_model"] = self.measurer.mimic.name if self.measurer.mimic else None
        env["attacked"] = self.attacked_names
        env["protections"] = {p.name: {"description": p.description, "eps": p.eps, "cache_key": p.cache_key}
                              for p in self.protections}
        env["purifications"] = {n: (p.description if p is not None else "no purification")
                                for n, p in self.purifications}
        env["slow_purifications_on"] = sorted(slow_ok) if self.slow else []
        env["errors"] = errors
        env["images"] = [str(f) for f in files]
        env["cache"] = str(self.cache)
        _update_env(self.out, env)
        return self.out / CSV_NAME

    def _lora(self, files: list[Path], writer: ResultsWriter) -> None:
        """Set-level LoRA mimicry per folder: one LoRA per protection, per noise budget and on the clean set."""
        from ..protect import uniform_noise
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
                eps = p.eps if p.eps is not None else max(measured_eps(r, i) for r, i in zip(originals, imgs))
                eps_of[p.name] = eps
                sets[p.name] = [to_tensor(i) for i in imgs]
                nkey = f"noise@{eps:g}"
                if nkey not in sets:
                    sets[nkey] = [to_tensor(to_uint8(uniform_noise(to_tensor(r), eps / 255, image_seed(self.config.seed, k)),
                                                     r, eps / 255)) for r, k in zip(originals, keys)]
            results = lora_mimic(self.img2img.pipe, sets, pcfg)
            style = self.measurer.style
            clean_m = lora_metrics(results["clean"], results["clean"], sets["clean"], style)
            rows = []
            for p in prots:
                val = lora_metrics(results[p.name], results["clean"], sets["clean"], style)
                noi = lora_metrics(results[f"noise@{eps_of[p.name]:g}"], results["clean"], sets["clean"], style)
                res_px = results[p.name].samples.shape[-1]
                for k, (v, n, cl) in enumerate(zip(val, noi, clean_m)):
                    for m in v:
                        eff = v[m] - n[m]
                        rows.append({"image": f"lora:{folder}/{k}", "folder": folder, "width": res_px, "height": res_px,
                                     "protection": p.name, "eps": _fmt(eps_of[p.name]), "purification": NONE,
                                     "metric": m, "value": _fmt(v[m]), "clean": _fmt(cl[m]), "noise": _fmt(n[m]),
                                     "effect": _fmt(eff if np.isfinite(eff) else float("nan")), "retained": ""})
            writer.write(rows)

    def grids(self, per_folder: int = 1, protections: list[str] | None = None) -> list[Path]:
        """Image grids (original / protected / mimic view / amplified δ) for the first image(s) of each folder."""
        from .report import plot_grid

        if self.measurer.mimic is None:
            return []
        files = list_images(self.config.images, per_folder, self.config.recursive)
        prots = [p for p in self.protections if p.name != NONE and (protections is None or p.name in protections)]
        written = []
        for f in files:
            k = image_key(f)
            rgb = read_image(f).rgb
            items = []
            for prot in prots:
                try:
                    cloak, _ = self.protected(prot, rgb, k)
                except (ImageError, ValueError):
                    continue
                eps = prot.eps if prot.eps is not None else measured_eps(rgb, cloak)
                view = self.measurer.mimic_view(to_tensor(cloak))[0].permute(1, 2, 0).cpu().numpy()
                items.append((f"{prot.name} (eps {eps:g})", cloak, view, rgb, eps))
            clean_view = self.measurer.mimic_view(to_tensor(rgb))[0].permute(1, 2, 0).cpu().numpy()
            path = self.out / f"grid_{f.parent.name}_{f.stem[:40]}.png"
            plot_grid(items, rgb, clean_view, path, title=k)
            written.append(path)
        return written

    def _measure(self, k, f, rgb, x, ref, prot_name, eps, cloak, wanted, noise_cache, clean_cache, none_effects):
        """Rows for one (image, protection) over the wanted purifications."""
        eps_key = float(eps)
        if eps_key not in noise_cache:
            noise_cache[eps_key] = {}
        if eps_key == 0:
            noise_rgb = rgb
        else:
            from ..protect import uniform_noise

            noise_rgb = to_uint8(uniform_noise(x, eps_key / 255, image_seed(self.config.seed, k)), rgb, eps_key / 255)
        rows = []
        for pname, pur in wanted:
            # measure each distinct image once ("none" and eps-0 noise are the clean image itself)
            need: list[tuple[str, np.ndarray]] = []
            if pname not in clean_cache:
                need.append(("clean", rgb))
            if pname not in noise_cache[eps_key] and noise_rgb is not rgb:
                need.append(("noise", noise_rgb))
            if not np.array_equal(cloak, rgb):
                need.append(("value", cloak))
            got: dict[str, dict[str, float]] = {}
            if need:
                batch = torch.cat([to_tensor(a) for _, a in need])
                if pur is not None:
                    batch = pur(batch.to(self.device))
                figs = self.measurer.measure(ref, batch)
                if self.img2img is not None and pname in self.config.pipeline.purifications:
                    figs = [{**a, **b} for a, b in zip(figs, self.img2img.measure(ref, batch))]
                got = {role: fig for (role, _), fig in zip(need, figs)}
            if "clean" in got:
                clean_cache[pname] = got["clean"]
            if "noise" in got:
                noise_cache[eps_key][pname] = got["noise"]
            clean = clean_cache[pname]
            noise = noise_cache[eps_key].get(pname, clean)
            value = got.get("value", clean)
            for m in self.metric_names(pname):
                effect = value[m] - noise[m]
                if pname == NONE:
                    none_effects[(k, prot_name, m)] = effect
                retained = float("nan")
                base = none_effects.get((k, prot_name, m))
                if metric_info(m).group != "visibility" and base is not None and np.isfinite(base) and base != 0:
                    retained = effect / base
                rows.append({
                    "image": k, "folder": f.parent.name, "width": rgb.shape[1], "height": rgb.shape[0],
                    "protection": prot_name, "eps": _fmt(eps_key), "purification": pname, "metric": m,
                    "value": _fmt(value[m]), "clean": _fmt(clean[m]), "noise": _fmt(noise[m]),
                    "effect": _fmt(effect if np.isfinite(effect) else float("nan")), "retained": _fmt(retained),
                })
        return rows
