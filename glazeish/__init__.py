"""glazeish: cloak artwork against diffusion-model style mimicry, and measure how well cloaks hold up."""

__version__ = "0.1.0"

from .attack import PGD, project  # noqa: E402
from .encoders import Ensemble, LatentModel, load_encoder, load_encoders, register_encoder  # noqa: E402
from .objectives import OBJECTIVES, Objective, make_objective, register_objective  # noqa: E402
from .protect import PRESETS, ProtectConfig, Protector  # noqa: E402

__all__ = [
    "PGD", "project", "Ensemble", "LatentModel", "load_encoder", "load_encoders", "register_encoder",
    "OBJECTIVES", "Objective", "make_objective", "register_objective", "PRESETS", "ProtectConfig", "Protector",
]
