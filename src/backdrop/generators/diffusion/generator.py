"""Stable Diffusion inpainting + ControlNet backgrounds, on ``diffusers`` (the production generator).

The product is laid out on the placement canvas exactly as for the procedural generator; the
canvas is brought to a size the model can generate (:mod:`.geometry`: about its native area, in
the placement's aspect ratio, sides multiples of what its VAE and UNet need); the model inpaints
everything outside the (slightly dilated) product, guided by a ControlNet image derived from the
product (its edges or its silhouette) so the product's shape does not bleed into the scene; the
prompt is the style's template filled with the product's fields and the negative prompt fights
duplicates and extra objects. The output is brought to the placement's size (``upscale``: Lanczos,
or a short img2img pass of the same model at the placement's size) and the original product is
pasted back by ``imaging.composite`` (a VAE round trip changes the kept region, blurring text and
logos, so that final paste is what keeps the product exact).

Models: see :mod:`.models` (folders, cached hub ids, single ``.safetensors`` checkpoints);
``controlnet=`` adds a separately saved ``ControlNetModel``; ``loras=`` fuses LoRAs (:mod:`.lora`);
``scheduler=`` picks the sampler, whose step count and guidance are the defaults (:mod:`.schedulers`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from ..base import GenerationRequest
from . import schedulers
from .geometry import GeometryError, ModelGeometry
from .lora import LoraSpec, apply_loras, parse_lora, remove_loras
from .models import ModelError, ModelSource, open_model, resolve_model_dir

CONTROL_MODES = ("canny", "mask", "none")
UPSCALERS = ("lanczos", "img2img")


class DiffusionGenerator:
    """``Generator`` on a diffusers SD / SDXL inpainting (+ ControlNet) pipeline."""

    name = "diffusion"
    version = "2"  # 2: sizes from the model's constraints, Lanczos to the canvas
    #: the pipeline runs the artifact gate on this generator's outputs (see imaging.quality.Gate)
    needs_gate = True

    def __init__(
        self,
        model: str | os.PathLike,
        controlnet: str | os.PathLike | None = None,
        *,
        model_config: str | os.PathLike | None = None,
        loras: Sequence[str | LoraSpec] = (),
        device: str = "auto",
        dtype: str = "auto",
        steps: int | None = None,
        guidance_scale: float | None = None,
        control: str = "canny",
        controlnet_scale: float = 0.8,
        mask_dilation: float = 0.012,
        batch_size: int = 4,
        scheduler: str = "default",
        upscale: str = "lanczos",
        refine_strength: float = 0.3,
        compile: bool = False,
        channels_last: bool = True,
        pipeline=None,
    ):
        options = _options(steps, guidance_scale, control, scheduler, upscale, refine_strength, batch_size)
        self.steps, self.guidance_scale = options["steps"], options["guidance_scale"]
        self.control = control
        self.controlnet_scale = float(controlnet_scale)
        self.mask_dilation = float(mask_dilation)
        self.batch_size = int(batch_size)
        self.scheduler_name = scheduler
        self.upscale, self.refine_strength = upscale, float(refine_strength)
        self.loras = [parse_lora(x) for x in loras]
        self.source: ModelSource | None = None
        if pipeline is None:
            self.source = open_model(model, model_config)
            self.model_dir = self.source.path
            self.controlnet_dir = resolve_model_dir(controlnet) if controlnet else None
            self.source.check_controlnet(self.controlnet_dir)
            self._fingerprint = _fingerprint(self.source, self.controlnet_dir)
            self.pipe = self._load(device, dtype)
        else:
            self.model_dir, self.controlnet_dir, self._fingerprint = Path(str(model)), None, "in-memory"
            self.pipe = pipeline
        self._finish_setup(compile, channels_last)

    # -- loading ----------------------------------------------------------------------------

    def _load(self, device: str, dtype: str):
        import diffusers
        import torch
        import transformers
        from diffusers import ControlNetModel, DiffusionPipeline

        # CLIP truncates prompts past 77 tokens (as every SD front end does); the per-call warning
        # about it, and diffusers' dtype chatter, would flood a catalog run's log.
        transformers.logging.set_verbosity_error()
        diffusers.utils.logging.set_verbosity_error()  # the same module as the lazy ``diffusers.logging``
        diffusers.utils.logging.disable_progress_bar()
        transformers.utils.logging.disable_progress_bar()

        self.device = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
        if dtype == "auto":
            dtype = "float16" if self.device.startswith("cuda") else "float32"
        if dtype not in ("float32", "float16", "bfloat16"):
            raise ValueError(f"dtype must be float32, float16 or bfloat16, got {dtype!r}")
        self.dtype_name = dtype
        torch_dtype = getattr(torch, dtype)
        source = self.source
        assert source is not None
        extra = {} if source.xl else {"safety_checker": None, "requires_safety_checker": False}
        try:
            if source.single_file:
                base = _pipeline_class(source.xl, False).from_single_file(
                    str(source.path), config=str(source.config_dir), local_files_only=True, torch_dtype=torch_dtype, **extra
                )
            else:
                base = DiffusionPipeline.from_pretrained(source.path, dtype=torch_dtype, local_files_only=True, **extra)
        except (OSError, ValueError, KeyError, RuntimeError) as e:
            hint = ""
            if source.packaged:
                hint = f"; its tensors do not fit the packaged {source.packaged} config: pass --model-config DIR (a diffusers folder of its kind)"
            raise ModelError(f"{source.path}: cannot load the pipeline: {str(e).splitlines()[0]}{hint}") from e
        cn = None
        if self.controlnet_dir is not None:
            cn = ControlNetModel.from_pretrained(self.controlnet_dir, dtype=torch_dtype, local_files_only=True)
        elif getattr(base, "controlnet", None) is not None:
            cn = base.controlnet
        if cn is None and self.control != "none":
            self.control = "none"  # an inpainting model alone: no control image
        target = _pipeline_class(source.xl, cn is not None)
        pipe = target.from_pipe(base, controlnet=cn) if cn is not None else target.from_pipe(base)
        apply_loras(pipe, self.loras)
        return pipe.to(self.device)

    def _finish_setup(self, compile: bool, channels_last: bool) -> None:
        import torch

        pipe = self.pipe
        if not hasattr(self, "device"):
            self.device = str(pipe.device)
            self.dtype_name = str(pipe.unet.dtype).replace("torch.", "")
        if getattr(pipe, "controlnet", None) is None:
            self.control = "none"
        if self.scheduler_name != "default":
            pipe.scheduler = schedulers.make_scheduler(self.scheduler_name, pipe.scheduler.config)
        pipe.set_progress_bar_config(disable=True)
        # torch 2's scaled-dot-product attention is diffusers' default processor
        if channels_last:
            pipe.unet.to(memory_format=torch.channels_last)
            if getattr(pipe, "controlnet", None) is not None:
                pipe.controlnet.to(memory_format=torch.channels_last)
        if compile:
            pipe.unet = torch.compile(pipe.unet, mode="max-autotune", fullgraph=True)
        self.xl = "XL" in type(pipe).__name__
        self.geometry = ModelGeometry.from_configs(dict(pipe.vae.config), dict(pipe.unet.config), model=str(self.model_dir))
        # a model opened from disk had its ControlNet checked on its configs, before any weight was read
        if self.source is None and getattr(pipe, "controlnet", None) is not None:
            try:
                self.geometry.check_controlnet(dict(pipe.unet.config), dict(pipe.controlnet.config), "the ControlNet")
            except GeometryError as e:
                raise ModelError(str(e)) from None
        self.compiled = compile

    @property
    def native(self) -> int:
        return self.geometry.native

    @property
    def multiple(self) -> int:
        return self.geometry.multiple

    def unload_loras(self) -> None:
        """Back to the base model's weights (the LoRAs unfused and dropped)."""
        if self.loras:
            remove_loras(self.pipe)
            self.loras = []

    def spec(self) -> dict:
        return _spec(
            self._fingerprint,
            type(self.pipe).__name__,
            self.steps,
            self.guidance_scale,
            self.control,
            self.controlnet_scale,
            self.mask_dilation,
            self.scheduler_name,
            [[lora.fingerprint(), lora.scale] for lora in self.loras],
            self.upscale,
            self.refine_strength,
        )

    @staticmethod
    def describe(
        model,
        controlnet=None,
        *,
        model_config=None,
        loras=(),
        steps: int | None = None,
        guidance_scale: float | None = None,
        control: str = "canny",
        controlnet_scale: float = 0.8,
        mask_dilation: float = 0.012,
        scheduler: str = "default",
        upscale: str = "lanczos",
        refine_strength: float = 0.3,
        batch_size: int = 4,
        **_runtime,
    ) -> dict:
        """What :meth:`spec` will return for these options, read from the model's configs without
        loading weights (every component checked, so a broken folder fails here, not in a worker).

        (Runtime settings -- device, dtype, batch size, compile -- are not part of it: they decide
        how fast, not what is asked; a creative's key names the request, and GPU kernels are not
        bit-reproducible across hardware anyway.)
        """
        options = _options(steps, guidance_scale, control, scheduler, upscale, refine_strength, batch_size)
        source = open_model(model, model_config)
        controlnet_dir = resolve_model_dir(controlnet) if controlnet else None
        source.check_controlnet(controlnet_dir)
        has_cn = controlnet_dir is not None or source.has_controlnet
        pipeline = ("StableDiffusionXL" if source.xl else "StableDiffusion") + (
            "ControlNetInpaintPipeline" if has_cn else "InpaintPipeline"
        )
        return _spec(
            _fingerprint(source, controlnet_dir),
            pipeline,
            options["steps"],
            options["guidance_scale"],
            control if has_cn else "none",
            float(controlnet_scale),
            float(mask_dilation),
            scheduler,
            [[lora.fingerprint(), lora.scale] for lora in map(parse_lora, loras)],
            upscale,
            float(refine_strength),
        )

    @staticmethod
    def generation_sizes(model, placements, *, model_config=None, **_options) -> dict[str, tuple[int, int]]:
        """{placement name: generation size} for this model, from its configs (no weights); a
        :class:`GeometryError` naming the model and the placement it cannot generate."""
        geometry = open_model(model, model_config).geometry()
        return {p.name: geometry.size_for(p.width, p.height, p.name) for p in placements}

    # -- inputs -----------------------------------------------------------------------------

    def size_for(self, scene) -> tuple[int, int]:
        return self.geometry.size_for(scene.width, scene.height, scene.placement.name)

    def refine_size(self, scene) -> tuple[int, int]:
        """The img2img pass's size: the placement's, each side rounded up to the model's multiple."""
        return self.geometry.round_up(scene.width, scene.height)

    def inputs(self, request: GenerationRequest, size: tuple[int, int] | None = None) -> dict:
        """The init image, inpaint mask and control image at generation size (numpy, uint8)."""
        scene = request.scene
        w, h = size or self.size_for(scene)
        alpha = cv2.resize(scene.canvas_alpha(), (w, h), interpolation=cv2.INTER_AREA)
        product = cv2.resize(scene.canvas_product(), (w, h), interpolation=cv2.INTER_AREA)
        solid = alpha >= 128
        init = np.full((h, w, 3), 127, np.uint8)
        init[solid] = product[solid]
        r = max(1, int(round(self.mask_dilation * min(w, h))))
        keep = cv2.dilate(solid.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
        mask = np.where(keep > 0, 0, 255).astype(np.uint8)  # white = generate
        if self.control == "canny":
            edges: np.ndarray = cv2.Canny(cv2.cvtColor(init, cv2.COLOR_RGB2GRAY), 80, 160)
            edges |= cv2.morphologyEx(solid.astype(np.uint8) * 255, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8))
            edges[~solid & (keep == 0)] = 0
            control = np.repeat(edges[..., None], 3, axis=2)
        elif self.control == "mask":
            control = np.repeat((solid * 255).astype(np.uint8)[..., None], 3, axis=2)
        else:
            control = None
        return {"size": (w, h), "init": init, "mask": mask, "control": control, "solid": solid}

    # -- generation -------------------------------------------------------------------------

    def generate(self, request: GenerationRequest) -> np.ndarray:
        return self.generate_batch([request])[0]

    def generate_raw(self, requests: Sequence[GenerationRequest]) -> list[np.ndarray]:
        """The pipeline's outputs at generation size (uint8), in request order, batched by size."""
        return self._run(requests, [self.inputs(r) for r in requests], strength=1.0, steps=self.steps, seed_offset=0)

    def to_canvas_batch(self, raws: Sequence[np.ndarray], requests: Sequence[GenerationRequest]) -> list[np.ndarray]:
        """Raw outputs brought to their placements' canvas sizes (the backgrounds the product is
        pasted on): Lanczos, then with ``upscale="img2img"`` a pass of the same model at that size
        (``refine_strength`` of the noise schedule) that paints detail a resize cannot."""
        canvases = [_resize(raw, r.scene.width, r.scene.height) for raw, r in zip(raws, requests, strict=True)]
        if self.upscale != "img2img":
            return canvases
        prepared = []
        for canvas, r in zip(canvases, requests, strict=True):
            p = self.inputs(r, self.refine_size(r.scene))
            w, h = p["size"]
            p["init"] = np.where(p["solid"][..., None], p["init"], _resize(canvas, w, h))
            prepared.append(p)
        # a strength of s runs round(s x steps) of the schedule: ask for enough steps that at least one runs
        steps = max(self.steps, math.ceil(1 / self.refine_strength))
        refined = self._run(requests, prepared, strength=self.refine_strength, steps=steps, seed_offset=1)
        return [_resize(img, r.scene.width, r.scene.height) for img, r in zip(refined, requests, strict=True)]

    def generate_batch(self, requests: Sequence[GenerationRequest]) -> list[np.ndarray]:
        return self.to_canvas_batch(self.generate_raw(requests), requests)

    def _run(self, requests, prepared, *, strength: float, steps: int, seed_offset: int) -> list[np.ndarray]:
        import torch
        from PIL import Image

        out: list[np.ndarray | None] = [None] * len(requests)
        by_size: dict[tuple[int, int], list[int]] = {}
        for i, p in enumerate(prepared):
            by_size.setdefault(p["size"], []).append(i)
        for (w, h), idx in by_size.items():
            for lo in range(0, len(idx), self.batch_size):
                chunk = idx[lo : lo + self.batch_size]
                kwargs = dict(
                    prompt=[requests[i].prompt for i in chunk],
                    negative_prompt=[requests[i].negative_prompt for i in chunk],
                    image=[Image.fromarray(prepared[i]["init"]) for i in chunk],
                    mask_image=[Image.fromarray(prepared[i]["mask"], "L") for i in chunk],
                    height=h,
                    width=w,
                    num_inference_steps=steps,
                    guidance_scale=self.guidance_scale,
                    strength=strength,
                    generator=[torch.Generator("cpu").manual_seed(int(requests[i].seed) + seed_offset) for i in chunk],
                    output_type="np",
                    **schedulers.call_options(self.scheduler_name),
                )
                if self.control != "none":
                    kwargs["control_image"] = [Image.fromarray(prepared[i]["control"]) for i in chunk]
                    kwargs["controlnet_conditioning_scale"] = self.controlnet_scale
                with torch.inference_mode():
                    images = self.pipe(**kwargs).images
                for i, img in zip(chunk, images, strict=True):
                    out[i] = np.clip(np.asarray(img) * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return out  # type: ignore[return-value]


def _resize(img: np.ndarray, width: int, height: int) -> np.ndarray:
    if img.shape[1] == width and img.shape[0] == height:
        return img
    interp = cv2.INTER_LANCZOS4 if img.shape[1] < width or img.shape[0] < height else cv2.INTER_AREA
    return cv2.resize(img, (width, height), interpolation=interp)


def _options(steps, guidance_scale, control, scheduler, upscale, refine_strength, batch_size) -> dict:
    """Checked options, with the sampler's step count and guidance where none is given."""
    if control not in CONTROL_MODES:
        raise ValueError(f"control must be one of {CONTROL_MODES}, got {control!r}")
    if scheduler not in schedulers.SCHEDULERS:
        raise ValueError(f"scheduler must be one of {schedulers.SCHEDULERS}, got {scheduler!r}")
    if upscale not in UPSCALERS:
        raise ValueError(f"upscale must be one of {UPSCALERS}, got {upscale!r}")
    if not 0.0 < float(refine_strength) <= 1.0:
        raise ValueError(f"refine_strength must be in (0, 1], got {refine_strength}")
    default_steps, default_guidance = schedulers.defaults(scheduler)
    steps = default_steps if steps is None else int(steps)
    if steps < 1 or int(batch_size) < 1:
        raise ValueError("steps and batch_size must be >= 1")
    return {"steps": steps, "guidance_scale": default_guidance if guidance_scale is None else float(guidance_scale)}


def _fingerprint(source: ModelSource, controlnet_dir: Path | None) -> str:
    from .models import folder_fingerprint

    return source.fingerprint() + ("+" + folder_fingerprint(controlnet_dir) if controlnet_dir is not None else "")


def _spec(model, pipeline, steps, guidance_scale, control, controlnet_scale, mask_dilation, scheduler, loras, upscale, refine) -> dict:
    spec = {
        "model": model,
        "pipeline": pipeline,
        "steps": steps,
        "guidance_scale": guidance_scale,
        "control": control,
        "controlnet_scale": controlnet_scale,
        "mask_dilation": mask_dilation,
        "scheduler": scheduler,
        "upscale": upscale,
    }
    if loras:
        spec["loras"] = loras
    if upscale == "img2img":
        spec["refine_strength"] = refine
    return spec


def _pipeline_class(xl: bool, controlnet: bool):
    import diffusers

    if xl:
        return diffusers.StableDiffusionXLControlNetInpaintPipeline if controlnet else diffusers.StableDiffusionXLInpaintPipeline
    return diffusers.StableDiffusionControlNetInpaintPipeline if controlnet else diffusers.StableDiffusionInpaintPipeline
