"""The diffusion generator: Stable Diffusion inpainting + ControlNet on ``diffusers``."""

from .generator import CONTROL_MODES, DiffusionGenerator
from .geometry import GeometryError, ModelGeometry, generation_size
from .models import ModelError, ModelSource, open_model, resolve_model_dir

__all__ = [
    "CONTROL_MODES",
    "DiffusionGenerator",
    "GeometryError",
    "ModelError",
    "ModelGeometry",
    "ModelSource",
    "generation_size",
    "open_model",
    "resolve_model_dir",
]
