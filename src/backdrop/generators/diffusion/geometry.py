"""Which image sizes a Stable Diffusion model can generate, read from its components' configs.

Three constraints meet: the diffusers pipelines refuse sides that are not multiples of 8; the VAE
maps ``vae_scale_factor`` pixels to one latent; the UNet halves the latent at every down block but
the last and wants the result to stay whole (else it interpolates its skip connections). A side
must be a multiple of lcm(8, vae_scale_factor x 2^(down blocks - 1)): 64 for SD 1.5 and SDXL
(8 x 8), 16 for a toy VAE with two blocks and a UNet with three. A ControlNet must agree with the
UNet it steers (the same down blocks, channels and text width) and its conditioning embedding
must bring the control image down to the latent's size.

>>> g = ModelGeometry(vae_scale_factor=8, unet_down_blocks=4, sample_size=64)
>>> g.native, g.multiple
(512, 64)
>>> g.size_for(1080, 1920)
(384, 704)
>>> ModelGeometry(vae_scale_factor=2, unet_down_blocks=2, sample_size=32).size_for(1080, 1920)
(48, 88)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ...errors import BackdropError

#: how far a generation size's aspect ratio may be from the placement's; the background is resized
#: to the placement afterwards, so this is the stretch a viewer would see
MAX_ASPECT_ERROR = 0.06
#: the generation area may be this far from the model's native area (either way)
MAX_AREA_RATIO = 2.0


class GeometryError(BackdropError):
    """A placement this model cannot generate, or components that do not fit together."""


@dataclass(frozen=True)
class ModelGeometry:
    """A model's size constraints: ``native`` (the side it was trained at) and ``multiple``."""

    vae_scale_factor: int
    unet_down_blocks: int
    sample_size: int
    model: str = "the model"

    @property
    def native(self) -> int:
        return self.sample_size * self.vae_scale_factor

    @property
    def multiple(self) -> int:
        return math.lcm(8, self.vae_scale_factor * 2 ** (self.unet_down_blocks - 1))

    @classmethod
    def from_configs(cls, vae: dict, unet: dict, model: str = "the model") -> ModelGeometry:
        """From the ``config.json`` contents of the VAE and the UNet (or ``module.config``)."""
        sample = unet.get("sample_size", 64)
        if isinstance(sample, list | tuple):
            sample = min(sample)
        return cls(
            vae_scale_factor=2 ** (len(vae.get("block_out_channels", (1,) * 4)) - 1),
            unet_down_blocks=len(unet.get("down_block_types", ())) or 4,
            sample_size=int(sample),
            model=model,
        )

    def round_up(self, width: int, height: int) -> tuple[int, int]:
        """``width`` x ``height`` with each side rounded up to :attr:`multiple` (the img2img pass's size)."""
        m = self.multiple
        return math.ceil(width / m) * m, math.ceil(height / m) * m

    def size_for(self, width: int, height: int, name: str = "") -> tuple[int, int]:
        """(w, h) for a ``width`` x ``height`` placement: sides multiples of :attr:`multiple`, the
        aspect within :data:`MAX_ASPECT_ERROR` of the placement's, the area the closest to
        ``native``^2 there is; :class:`GeometryError` when no size qualifies."""
        return generation_size(self.native, width, height, self.multiple, what=f"{self.model}, placement {name or f'{width}x{height}'}")

    def check_controlnet(self, unet: dict, controlnet: dict, where: str) -> None:
        """:class:`GeometryError` (naming ``where``) unless the ControlNet fits this model."""
        problems = []
        for key in ("block_out_channels", "cross_attention_dim"):
            if key in controlnet and key in unet and _as_tuple(controlnet[key]) != _as_tuple(unet[key]):
                problems.append(f"{key} {controlnet[key]} (the UNet has {unet[key]})")
        if len(controlnet.get("down_block_types", ())) != len(unet.get("down_block_types", ())):
            problems.append(
                f"{len(controlnet.get('down_block_types', ()))} down blocks (the UNet has {len(unet.get('down_block_types', ()))})"
            )
        embedding = controlnet.get("conditioning_embedding_out_channels", (16, 32, 96, 256))
        factor = 2 ** (len(embedding) - 1)
        if factor != self.vae_scale_factor:
            problems.append(f"its conditioning embedding downsamples by {factor}, the VAE by {self.vae_scale_factor}")
        if problems:
            raise GeometryError(
                f"{where}: this ControlNet does not fit {self.model}: {'; '.join(problems)}; pass one trained for this base model"
            )


def _as_tuple(value) -> tuple:
    return tuple(value) if isinstance(value, list | tuple) else (value,)


def generation_size(native: int, width: int, height: int, multiple: int = 8, what: str = "") -> tuple[int, int]:
    """(w, h) with about ``native``^2 pixels in the aspect ratio of ``width`` x ``height``, sides
    multiples of ``multiple``, the aspect within :data:`MAX_ASPECT_ERROR`.

    >>> generation_size(512, 1080, 1080)
    (512, 512)
    >>> generation_size(64, 1080, 1920, 64)
    Traceback (most recent call last):
    ...
    backdrop.generators.diffusion.geometry.GeometryError: cannot generate 1080x1920 (aspect 0.56) at about 64 px with sides multiples of 64: the nearest size, 64x128, is 11% off the aspect ratio (6% allowed); use a placement closer to square or a model with a larger native size
    """
    aspect = width / height
    best: tuple[float, int, int] | None = None
    nearest: tuple[float, int, int] | None = None
    # every height from one multiple to the largest the area limit allows, each with its best width
    top = int(math.sqrt(MAX_AREA_RATIO) * native / math.sqrt(aspect) / multiple) + 1
    for k in range(1, max(top, 1) + 1):
        h = k * multiple
        w = max(multiple, int(round(h * aspect / multiple)) * multiple)
        error = abs(w / h - aspect) / aspect
        area = abs(math.log(w * h / native**2))
        if nearest is None or error < nearest[0]:
            nearest = (error, w, h)
        if error <= MAX_ASPECT_ERROR and area <= math.log(MAX_AREA_RATIO) and (best is None or area < best[0]):
            best = (area, w, h)
    if best is None:
        assert nearest is not None
        raise GeometryError(
            f"{what + ': ' if what else ''}cannot generate {width}x{height} (aspect {aspect:.2f}) at about {native} px with sides "
            f"multiples of {multiple}: the nearest size, {nearest[1]}x{nearest[2]}, is {nearest[0]:.0%} off the aspect ratio "
            f"({MAX_ASPECT_ERROR:.0%} allowed); use a placement closer to square or a model with a larger native size"
        )
    return best[1], best[2]
