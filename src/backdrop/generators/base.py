"""The generator interface every background generator implements."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from ..imaging.layout import Scene


@dataclass(frozen=True)
class GenerationRequest:
    """One background to generate: the laid-out product, what to paint (the prompts, already filled
    from the product's fields, for generative models; the procedural parameters, a mapping validated
    by :mod:`backdrop.styles.params`, for the renderer) and the seed. Generators know nothing of
    styles or catalogs."""

    scene: Scene
    prompt: str
    negative_prompt: str
    params: dict
    seed: int


@runtime_checkable
class Generator(Protocol):
    """Makes the background *around* a laid-out product.

    ``generate`` returns a uint8 (H, W, 3) image at the scene's canvas size; the product is
    pasted on top afterwards (``imaging.composite``), so what a generator draws under the
    product does not matter, only around it (shadows and reflections included).
    ``name`` and ``version`` are part of every creative's key: bump ``version`` whenever the
    output for the same inputs changes.
    """

    name: str
    version: str

    def generate(self, request: GenerationRequest) -> np.ndarray: ...

    def generate_batch(self, requests: Sequence[GenerationRequest]) -> list[np.ndarray]: ...

    def spec(self) -> dict:
        """Settings that change the output (model, steps...), hashed into the creative's key."""
        ...


@runtime_checkable
class GatedGenerator(Generator, Protocol):
    """A generator whose outputs pass a quality gate before use (``needs_gate``): the gate scores
    the raw output at generation size, so it is exposed apart from the step to the canvas size
    (a resize, or a second pass of the model)."""

    needs_gate: bool

    def generate_raw(self, requests: Sequence[GenerationRequest]) -> list[np.ndarray]: ...

    def to_canvas_batch(self, raws: Sequence[np.ndarray], requests: Sequence[GenerationRequest]) -> list[np.ndarray]: ...
