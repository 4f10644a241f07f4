"""Background generators: the procedural renderer (embedded default) and diffusion."""

from __future__ import annotations

from .base import GenerationRequest, Generator

GENERATORS = ("procedural",)


def get_generator(name: str = "procedural", **options) -> Generator:
    """A generator by name; ``options`` go to its constructor."""
    if name == "procedural":
        from .procedural import ProceduralGenerator

        return ProceduralGenerator(**options)
    raise ValueError(f"unknown generator '{name}'; choose one of: {', '.join(GENERATORS)}")


__all__ = ["GENERATORS", "GenerationRequest", "Generator", "get_generator"]
