"""Background generators: the procedural renderer (embedded default) and diffusion."""

from __future__ import annotations

from .base import GatedGenerator, GenerationRequest, Generator

GENERATORS = ("procedural", "diffusion")


def get_generator(name: str = "procedural", **options) -> Generator:
    """A generator by name; ``options`` go to its constructor.

    A product laid out on a placement, a background generated around it, the product pasted back
    with its pixels exactly the catalog's:

    >>> import numpy as np
    >>> from backdrop.imaging.composite import composite, exact_region_matches
    >>> from backdrop.imaging.layout import layout, load_placements
    >>> from backdrop.styles import StyleLibrary
    >>> rgb = np.full((200, 100, 3), (200, 40, 40), np.uint8)
    >>> alpha = np.zeros((200, 100), np.uint8)
    >>> alpha[20:180, 20:80] = 255
    >>> scene = layout(rgb, alpha, load_placements()["square"])
    >>> style = StyleLibrary.load().for_category("Men > Tops > Jackets")[1]
    >>> request = GenerationRequest(scene=scene, prompt="", negative_prompt="", params=style.procedural, seed=1)
    >>> background = get_generator("procedural").generate(request)
    >>> background.shape, background.dtype.name
    ((1080, 1080, 3), 'uint8')
    >>> exact_region_matches(composite(background, scene), scene)
    True
    """
    if name == "procedural":
        from .procedural import ProceduralGenerator

        return ProceduralGenerator(**options)
    if name == "diffusion":
        try:
            import diffusers  # noqa: F401
            import torch  # noqa: F401

            from .diffusion import DiffusionGenerator
        except ImportError as e:
            from ..errors import BackdropError

            raise BackdropError(
                f"the diffusion generator needs torch and diffusers ({e.name} is missing): "
                "pip install torch==2.13.0 && pip install 'backdrop[diffusion]'"
            ) from None
        if "model" not in options:
            raise ValueError("the diffusion generator needs a model: --model DIR (a diffusers folder or cached hub id)")
        return DiffusionGenerator(**options)
    raise ValueError(f"unknown generator '{name}'; choose one of: {', '.join(GENERATORS)}")


def describe_generator(name: str = "procedural", **options) -> tuple[str, str, dict, bool]:
    """(name, version, spec, gated) of the generator ``get_generator`` would build, without loading
    any weights: planning (creative keys) runs on CPU workers that never hold the model."""
    if name == "procedural":
        from .procedural import ProceduralGenerator

        g = ProceduralGenerator(**options)
        return g.name, g.version, g.spec(), False
    if name == "diffusion":
        from .diffusion import DiffusionGenerator

        if "model" not in options:
            raise ValueError("the diffusion generator needs a model: --model DIR (a diffusers folder or cached hub id)")
        return DiffusionGenerator.name, DiffusionGenerator.version, DiffusionGenerator.describe(**options), True
    raise ValueError(f"unknown generator '{name}'; choose one of: {', '.join(GENERATORS)}")


__all__ = ["GENERATORS", "GatedGenerator", "GenerationRequest", "Generator", "describe_generator", "get_generator"]
