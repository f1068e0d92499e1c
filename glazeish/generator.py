"""An image-conditioned start: a small network that maps an image to the attack's first perturbation.

The learned pattern of :mod:`glazeish.warmstart` is one perturbation for every image; it moves the mimic's view of
flat-colour and line art as far as the default's 8 steps, but barely moves a painting's (issue 19). A
*generator* looks at the image first: ``u = G(x)``, ``u`` in [-1, 1] per pixel and channel, and the attack starts
from ``δ₀ = u · eps_map`` through the attack's own projection (:func:`glazeish.attack.project`), exactly as from a
pattern. With ``steps = 0`` the generator alone is the cloak (one forward pass, about a tenth of one attack step's
time); with a few steps it is a start. This is the amortisation of FastProtect (Ahn et al., CVPR 2025) and DiffVax
(ICLR 2026) at CPU size.

:class:`Generator` is a small U-Net (4 scales, no normalisation layers, ~0.2 M parameters): fully convolutional,
it takes any ``H×W`` (padded by reflection to a multiple of 8 inside, cropped back). Besides the image it is fed
a learned *periodic code*, ``3×T×T`` tiled from the image's top-left corner like a start pattern (T = 64, a
multiple of the encoders' grid); the code is also the logit its output adds to, so a generator whose last layer is
zero *is* a pattern (``u = tanh(code)``): training starts from the shipped pattern and learns what the image
should change of it. A tile of a large image passes its ``top, left`` so that the code continues across tiles.

A generator's weights are not part of the repository (no weight file is committed). They are looked for where the
encoders' weights are (``--models``, ``$GLAZEISH_MODELS``, the cache: :func:`glazeish.weights.search_dirs`) as
``glazeish-generator-<encoder>-<objective>.safetensors`` (no pickle), made by ``benchmarks/amortised/train.py
--network --out <that folder>``; their sha256 is checked against :data:`SHIPPED` before use. The JSON note of
what it was trained on, by which command, ships in ``glazeish/assets/networks/``. Measured on the held-out images:
``benchmarks/amortised/RESULTS.md``.
"""

from __future__ import annotations

import contextlib
import json
import random
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .attack import project
from .device import autocast
from .encoders import Ensemble
from .errors import first_line
from .imageio import pad_to_multiple
from .objectives import Objective
from .warmstart import Budgeted, StartPattern, budget_map_of, resolve_start
from .weights import WeightsError, search_dirs, sha256_of

ASSETS = Path(__file__).resolve().parent / "assets" / "networks"  # the notes (text), not the weights
#: the sha256 each known generator's weights must have (the bytes train.py --network wrote; its note says how)
SHIPPED: dict[str, str] = {
    "taef2-mimic-away": "d309cee18436e72ae7d9acb5fae02898e351f7c0d8c9e393b9e18c331291930d",
}
#: the ``ProtectConfig.start`` value that names the shipped generator of (encoder, objective)
NETWORK = "network"
#: the generator's internal grid: three 2× poolings
MULTIPLE = 8


def _conv(n_in: int, n_out: int) -> nn.Conv2d:
    return nn.Conv2d(n_in, n_out, 3, padding=1)


class _Block(nn.Sequential):
    """Two 3×3 convolutions with ReLUs."""

    def __init__(self, n_in: int, n_out: int):
        super().__init__(_conv(n_in, n_out), nn.ReLU(), _conv(n_out, n_out), nn.ReLU())


class Generator(nn.Module):
    """``x`` (``B×3×H×W`` in [0, 1], any H, W ≥ 2) → ``u`` (``B×3×H×W`` in [-1, 1]), a fraction of the budget.

    Args:
        widths: channels at full, 1/2, 1/4 and 1/8 resolution.
        period: the side ``T`` of the periodic code (a multiple of :data:`MULTIPLE`).
    """

    def __init__(self, widths: Sequence[int] = (16, 32, 48, 64), period: int = 64):
        super().__init__()
        if len(widths) != 4 or period % MULTIPLE:
            raise ValueError(f"a generator has 4 widths and a period that is a multiple of {MULTIPLE}")
        c0, c1, c2, c3 = (int(w) for w in widths)
        self.widths, self.period = (c0, c1, c2, c3), int(period)
        self.code = nn.Parameter(torch.zeros(3, period, period))
        self.down = nn.ModuleList([_Block(6, c0), _Block(c0, c1), _Block(c1, c2), _Block(c2, c3)])
        self.up = nn.ModuleList([nn.Sequential(_conv(c3 + c2, c2), nn.ReLU()),
                                 nn.Sequential(_conv(c2 + c1, c1), nn.ReLU()),
                                 nn.Sequential(_conv(c1 + c0, c0), nn.ReLU())])
        self.out = nn.Conv2d(c0, 3, 1)
        nn.init.zeros_(self.out.weight)  # a fresh generator is its code alone: a pattern
        nn.init.zeros_(self.out.bias)

    def code_field(self, height: int, width: int, top: int = 0, left: int = 0) -> torch.Tensor:
        """The code tiled over a ``height×width`` window at (``top``, ``left``) of the image: ``1×3×h×w``."""
        rows = (torch.arange(height, device=self.code.device) + top) % self.period
        cols = (torch.arange(width, device=self.code.device) + left) % self.period
        return self.code[:, rows][:, :, cols].unsqueeze(0)

    def forward(self, x: torch.Tensor, top: int = 0, left: int = 0) -> torch.Tensor:
        h, w = x.shape[-2:]
        xp, _ = pad_to_multiple(x.float(), MULTIPLE)
        code = self.code_field(*xp.shape[-2:], top, left)
        y = torch.cat([xp * 2 - 1, code.expand(xp.shape[0], -1, -1, -1)], 1)
        y, feats = y.contiguous(memory_format=torch.channels_last), []  # CPU convolutions: 1.8x faster so (512²)
        for i, block in enumerate(self.down):
            y = block(y if i == 0 else F.avg_pool2d(y, 2))
            feats.append(y)
        for block, skip in zip(self.up, reversed(feats[:-1])):
            y = block(torch.cat([F.interpolate(y, scale_factor=2.0, mode="nearest"), skip], 1))
        return torch.tanh(code + self.out(y))[..., :h, :w]

    @classmethod
    def from_pattern(cls, pattern: StartPattern, widths: Sequence[int] = (16, 32, 48, 64),
                     squash: float = 0.95) -> "Generator":
        """A generator that starts as ``pattern`` (``u = tanh(code)``, the pattern scaled by ``squash`` < 1 so that
        its ±1 values have a finite logit)."""
        g = cls(widths, period=pattern.period[0])
        with torch.no_grad():
            g.code.copy_(torch.atanh(pattern.pattern.float().clamp(-1, 1) * squash))
        return g

    def save(self, path: str | Path, note: dict | None = None) -> str:
        """Write the weights as safetensors (fp32; the same bytes for the same weights) and ``note`` as JSON next
        to it, with the file's sha256 added; returns that sha256."""
        from safetensors.torch import save_file

        path = Path(path)
        tensors = {k: v.detach().float().cpu().contiguous() for k, v in self.state_dict().items()}
        # one metadata entry: safetensors writes several in a random order, and the bytes must not vary
        shape = json.dumps({"period": self.period, "widths": list(self.widths)}, sort_keys=True)
        save_file(tensors, str(path), metadata={"generator": shape})
        digest = sha256_of(path)
        if note is not None:
            text = json.dumps({**note, "sha256": digest}, indent=1, sort_keys=True)
            path.with_suffix(".json").write_text(text + "\n")
        return digest

    @classmethod
    def load(cls, path: str | Path, sha256: str | None = None) -> "Generator":
        """Read weights saved by :meth:`save`; with ``sha256``, the file must have it. Any problem is one
        :class:`~glazeish.weights.WeightsError` line naming the file."""
        path = check_sha256(Path(path), sha256) if sha256 is not None else Path(path)
        try:
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as f:
                shape = json.loads((f.metadata() or {})["generator"])
                state = {k: f.get_tensor(k) for k in f.keys()}
            g = cls(tuple(int(w) for w in shape["widths"]), int(shape["period"]))
            g.load_state_dict(state)
        except Exception as e:  # a damaged header, missing metadata, the wrong tensors: all one problem
            raise WeightsError(f"{path}: not a generator saved by glazeish ({first_line(e)})") from None
        return g.eval().requires_grad_(False)


def file_name(encoder: str, objective: str) -> str:
    """The weights' file name of the generator of (encoder, objective)."""
    return f"glazeish-generator-{encoder}-{objective}.safetensors"


def note_path(encoder: str, objective: str) -> Path:
    """The shipped JSON note of the generator of (encoder, objective): what it was trained on and how."""
    return ASSETS / f"{encoder}-{objective}.json"


def available() -> list[str]:
    """The known generators (a pinned sha256 and a shipped note), as ``<encoder>-<objective>`` names."""
    return sorted(SHIPPED)


def verify_shipped(encoder: str, objective: str, models_dir: str | Path | None = None) -> Path:
    """The weights of the generator of (encoder, objective) from the model folders, their sha256 checked against
    :data:`SHIPPED`: ValueError if none is known for the pair or its file is in none of the folders,
    :class:`~glazeish.weights.WeightsError` (one line) if the file is damaged."""
    name, file = f"{encoder}-{objective}", file_name(encoder, objective)
    if name not in SHIPPED:
        raise ValueError(f"no network start for encoder {encoder!r} with objective {objective!r} (known: "
                         f"{', '.join(available()) or 'none'}); train one with benchmarks/amortised/train.py --network")
    dirs = search_dirs(models_dir)
    path = next((d / file for d in dirs if (d / file).is_file()), None)
    if path is None:
        raise ValueError(f"the network start needs {file} in {', '.join(map(str, dirs))}; make it with "
                         f"benchmarks/amortised/train.py --network --out <one of them>/{file}")
    return check_sha256(path, SHIPPED[name])


def check_sha256(path: Path, sha256: str) -> Path:
    """``path`` if its bytes have ``sha256``, else one :class:`~glazeish.weights.WeightsError` line."""
    try:
        digest = sha256_of(path)
    except OSError as e:
        raise WeightsError(f"{path}: cannot read the generator ({e.strerror or e})") from None
    if digest != sha256:
        raise WeightsError(f"{path}: sha256 {digest[:16]}… does not match the expected {sha256[:16]}…; the file is "
                           "damaged or from another training: make it again with benchmarks/amortised/train.py --network")
    return path


def load_shipped(encoder: str, objective: str, models_dir: str | Path | None = None) -> Generator:
    """The generator of (encoder, objective) from the model folders, checked by :func:`verify_shipped`."""
    return Generator.load(verify_shipped(encoder, objective, models_dir))


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """One intra-op thread: the generator's kernels then give the same bits on any machine's thread count
    (at 512² it takes ~0.25 s on one thread, a twelfth of one attack step, so one thread costs little)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


@dataclass
class StartNetwork:
    """A :class:`Generator` used as the attack's start (what :meth:`start_for` gives replaces PGD's random start)."""

    generator: Generator
    name: str = NETWORK

    def start_for(self, x: torch.Tensor, top: int = 0, left: int = 0) -> torch.Tensor:
        """``u`` for ``x`` (``B×3×h×w`` in [0, 1], a window at (``top``, ``left``) of the image): ``B×3×h×w`` in
        [-1, 1], fp32, on ``x``'s device."""
        g = self.generator.to(x.device)
        with torch.no_grad(), (_one_thread() if x.device.type == "cpu" else contextlib.nullcontext()):
            return g(x.detach().float(), top, left)


def is_generator_file(start: str) -> bool:
    """Whether a ``start`` names a generator's weights file (``.safetensors``) rather than a pattern PNG."""
    return Path(start).suffix.lower() == ".safetensors"


def make_start(start: str, encoder: str, objective: str,
               models_dir: str | Path | None = None) -> StartNetwork | StartPattern | None:
    """What a :class:`~glazeish.config.ProtectConfig` ``start`` names: the generator for ``network`` (from the model
    folders, sha256-pinned) or a generator's weights file (as it is), else :func:`glazeish.warmstart.resolve_start`'s
    pattern (or None for random/zero)."""
    if start == NETWORK:
        return StartNetwork(load_shipped(encoder, objective, models_dir))
    if is_generator_file(start):
        return StartNetwork(Generator.load(start))
    return resolve_start(start, encoder, objective)


# ------------------------------------------------------------------------------------------------
# training (offline, once per encoder and objective)


def first_iterate(generator: Generator, x: torch.Tensor, budget: Budgeted) -> torch.Tensor:
    """The attack's first iterate from the generator, differentiable in its weights: ``project(x + G(x)·eps_map)``
    under ``budget``'s map and energy bound (the projection's energy scale a constant, as in
    :func:`glazeish.warmstart.fit_pattern`)."""
    e = budget_map_of(budget, x)
    return project(x + generator(x) * e, x, e, budget.rms)


def fit_generator(
    generator: Generator,
    ensemble: Ensemble,
    objective: Objective,
    batches: Iterable[torch.Tensor],
    budget: Budgeted,
    *,
    lr: float = 2e-3,
    code_lr: float = 0.02,
    transforms: Sequence[Callable[[torch.Tensor, random.Random], torch.Tensor]] = (),
    precision: str = "fp32",
    seed: int = 0,
    log_distance: bool = True,
    log: Callable[[int, float], None] | None = None,
) -> Generator:
    """Train ``generator`` (in place; returned) on the objective of its first iterate, one Adam step per batch.

    Args:
        batches: ``B×3×h×w`` float in [0, 1] training crops (h, w multiples of the encoders' multiple).
        budget: the config whose budget each crop is cloaked under (the preset the generator is for).
        lr, code_lr: Adam's rate for the convolutions and for the periodic code (a pattern's logits).
        transforms: EOT transforms applied in turn (the default's ``cycle`` order).
        log_distance: minimise ``-log(1 - loss)`` per image instead of the loss: for an untargeted objective
            (``loss = 1 - distance``) every image's *relative* move counts alike, as the figures count it in dB,
            so paintings, whose views move least, are not outweighed by flat colour.
        log: called with (step, mean objective loss per image) after every step.
    """
    device = ensemble.device
    generator.to(device).train().requires_grad_(True)
    body = [p for n, p in generator.named_parameters() if n != "code"]
    opt = torch.optim.Adam([{"params": body, "lr": lr}, {"params": [generator.code], "lr": code_lr}])
    rng = random.Random(seed)
    ts = list(transforms)
    for step, x in enumerate(batches, 1):
        x = x.to(device).float().contiguous(memory_format=torch.channels_last)
        with autocast(device, precision):
            losses = [(objective.setup(model, x), w) for model, w in ensemble]
        x0 = first_iterate(generator, x, budget)
        inp = (ts[step % len(ts)](x0, rng) if ts else x0).contiguous(memory_format=torch.channels_last)
        with autocast(device, precision):
            per_image = sum(w * fn(inp).float() for fn, w in losses)
        total = -torch.log((1 - per_image).clamp_min(1e-6)).mean() if log_distance else per_image.mean()
        opt.zero_grad()
        total.backward()
        opt.step()
        if log is not None:
            log(step, float(per_image.detach().mean()))
    return generator.eval().requires_grad_(False)
