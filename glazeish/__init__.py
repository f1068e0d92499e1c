"""glazeish: cloak artwork against diffusion-model style mimicry, and measure how well cloaks hold up."""

from ._version import __version__  # noqa: F401  (glazeish.__version__)
from .attack import PGD, project
from .config import PRESETS, ProtectConfig
from .encoders import Ensemble, LatentModel, load_encoder, load_encoders, register_encoder
from .evaluation import Evaluator, Figures, assess, judge
from .job import Cloaker, Job
from .objectives import OBJECTIVES, Objective, make_objective, register_objective
from .protect import Protector

__all__ = [
    "PGD", "project", "PRESETS", "ProtectConfig", "Ensemble", "LatentModel", "load_encoder", "load_encoders",
    "register_encoder", "Evaluator", "Figures", "assess", "judge", "Cloaker", "Job", "OBJECTIVES", "Objective",
    "make_objective", "register_objective", "Protector",
]
