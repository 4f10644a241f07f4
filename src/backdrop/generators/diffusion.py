"""Stable Diffusion inpainting + ControlNet backgrounds, on ``diffusers`` (the production generator).

The product is laid out on the placement canvas exactly as for the procedural generator; the
canvas is brought to the model's native resolution in the placement's aspect ratio; the model
inpaints everything outside the (slightly dilated) product, guided by a ControlNet image derived
from the product (its edges or its silhouette) so the product's shape does not bleed into the
scene; the prompt is the style's template filled with the product's fields and the negative
prompt fights duplicates and extra objects. The output is resized to the placement and the
original product is pasted back by ``imaging.composite`` (a VAE round trip changes the kept
region, blurring text and logos, so that final paste is what keeps the product exact).

Model directories: anything written by ``save_pretrained`` of an SD 1.5/2 or SDXL pipeline
(inpainting or not, with its ControlNet or not), or a hub id already in the local Hugging Face
cache. ``controlnet=`` adds a separately saved ``ControlNetModel``. Nothing is downloaded.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from ..errors import BackdropError
from .base import GenerationRequest

CONTROL_MODES = ("canny", "mask", "none")
SCHEDULERS = ("default", "ddim", "dpm", "euler", "euler-a", "unipc", "lcm")


class ModelError(BackdropError):
    """A model directory that cannot be used (missing, not a supported pipeline, not cached)."""


def resolve_model_dir(model: str | os.PathLike) -> Path:
    """A local folder for ``model``: the folder itself, or the hub id's snapshot in the HF cache (offline)."""
    path = Path(model).expanduser()
    if path.is_dir():
        if not (path / "model_index.json").is_file() and not (path / "config.json").is_file():
            raise ModelError(f"{path}: no model_index.json or config.json; pass a folder written by save_pretrained")
        return path
    if path.exists():
        raise ModelError(f"{path}: not a folder; pass a diffusers model folder")
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(str(model), local_files_only=True))
    except Exception as e:  # noqa: BLE001 - any hub error means "not available offline"
        raise ModelError(
            f"model '{model}' is not a local folder and not in the Hugging Face cache ({type(e).__name__}); "
            "download it where there is internet (e.g. `huggingface-cli download ID --local-dir DIR`) and pass DIR"
        ) from None


def model_fingerprint(path: Path) -> str:
    """A content fingerprint of a model folder without reading GBs of weights: every config file's
    bytes plus every weight file's name and size."""
    h = hashlib.sha256()
    for f in sorted(path.rglob("*")):
        if not f.is_file():
            continue
        rel = f.relative_to(path).as_posix()
        if f.suffix in (".json", ".txt", ".model"):
            h.update(rel.encode() + b"\0" + f.read_bytes())
        elif f.suffix in (".safetensors", ".bin", ".ckpt", ".pt", ".onnx"):
            h.update(f"{rel}\0{f.stat().st_size}".encode())
    return h.hexdigest()[:16]


def generation_size(native: int, width: int, height: int, multiple: int = 8) -> tuple[int, int]:
    """(w, h) with about ``native``^2 pixels in the aspect ratio of ``width`` x ``height``, sides multiples of ``multiple``."""
    aspect = width / height
    w = native * math.sqrt(aspect)
    h = native / math.sqrt(aspect)
    return max(multiple, int(round(w / multiple)) * multiple), max(multiple, int(round(h / multiple)) * multiple)


class DiffusionGenerator:
    """``Generator`` on a diffusers SD / SDXL inpainting (+ ControlNet) pipeline."""

    name = "diffusion"
    version = "1"
    #: the pipeline runs the artifact gate on this generator's outputs (see imaging.quality.Gate)
    needs_gate = True

    def __init__(
        self,
        model: str | os.PathLike,
        controlnet: str | os.PathLike | None = None,
        *,
        device: str = "auto",
        dtype: str = "auto",
        steps: int = 20,
        guidance_scale: float = 7.5,
        control: str = "canny",
        controlnet_scale: float = 0.8,
        mask_dilation: float = 0.012,
        batch_size: int = 4,
        scheduler: str = "default",
        compile: bool = False,
        channels_last: bool = True,
        pipeline=None,
    ):
        if control not in CONTROL_MODES:
            raise ValueError(f"control must be one of {CONTROL_MODES}, got {control!r}")
        if scheduler not in SCHEDULERS:
            raise ValueError(f"scheduler must be one of {SCHEDULERS}, got {scheduler!r}")
        if steps < 1 or batch_size < 1:
            raise ValueError("steps and batch_size must be >= 1")
        self.model_dir = resolve_model_dir(model) if pipeline is None else Path(str(model))
        self.controlnet_dir = resolve_model_dir(controlnet) if controlnet else None
        self.steps = int(steps)
        self.guidance_scale = float(guidance_scale)
        self.control = control
        self.controlnet_scale = float(controlnet_scale)
        self.mask_dilation = float(mask_dilation)
        self.batch_size = int(batch_size)
        self.scheduler_name = scheduler
        self._fingerprint = model_fingerprint(self.model_dir) if pipeline is None else "in-memory"
        if self.controlnet_dir is not None:
            self._fingerprint += "+" + model_fingerprint(self.controlnet_dir)
        self.pipe = pipeline if pipeline is not None else self._load(device, dtype)
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
        try:
            index = json.loads((self.model_dir / "model_index.json").read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise ModelError(f"{self.model_dir}: cannot read model_index.json ({e}); pass a diffusers pipeline folder") from e
        cls_name = index.get("_class_name", "")
        if not cls_name.startswith("StableDiffusion"):
            raise ModelError(f"{self.model_dir}: a {cls_name or 'unknown'} pipeline; expected Stable Diffusion 1.5/2 or SDXL")
        xl = "XL" in cls_name
        extra = {} if xl else {"safety_checker": None, "requires_safety_checker": False}
        try:
            base = DiffusionPipeline.from_pretrained(self.model_dir, dtype=torch_dtype, local_files_only=True, **extra)
        except (OSError, ValueError) as e:
            raise ModelError(f"{self.model_dir}: cannot load the pipeline: {e}") from e
        cn = None
        if self.controlnet_dir is not None:
            cn = ControlNetModel.from_pretrained(self.controlnet_dir, dtype=torch_dtype, local_files_only=True)
        elif getattr(base, "controlnet", None) is not None:
            cn = base.controlnet
        if cn is None and self.control != "none":
            self.control = "none"  # an inpainting model alone: no control image
        target = _pipeline_class(xl, cn is not None)
        pipe = target.from_pipe(base, controlnet=cn) if cn is not None else target.from_pipe(base)
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
            pipe.scheduler = _make_scheduler(self.scheduler_name, pipe.scheduler.config)
        pipe.set_progress_bar_config(disable=True)
        # torch 2's scaled-dot-product attention is diffusers' default processor
        if channels_last:
            pipe.unet.to(memory_format=torch.channels_last)
            if getattr(pipe, "controlnet", None) is not None:
                pipe.controlnet.to(memory_format=torch.channels_last)
        if compile:
            pipe.unet = torch.compile(pipe.unet, mode="max-autotune", fullgraph=True)
        self.xl = "XL" in type(pipe).__name__
        self.native = int(pipe.unet.config.sample_size) * int(pipe.vae_scale_factor)
        self.multiple = int(pipe.vae_scale_factor)
        self.compiled = compile

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
        )

    @staticmethod
    def describe(
        model,
        controlnet=None,
        *,
        steps: int = 20,
        guidance_scale: float = 7.5,
        control: str = "canny",
        controlnet_scale: float = 0.8,
        mask_dilation: float = 0.012,
        scheduler: str = "default",
        **_runtime,
    ) -> dict:
        """What :meth:`spec` will return for these options, read from the model folder without loading weights.

        (Runtime settings -- device, dtype, batch size, compile -- are not part of it: they decide
        how fast, not what is asked; a creative's key names the request, and GPU kernels are not
        bit-reproducible across hardware anyway.)
        """
        path = resolve_model_dir(model)
        try:
            index = json.loads((path / "model_index.json").read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise ModelError(f"{path}: cannot read model_index.json ({e})") from e
        cls_name = index.get("_class_name", "")
        has_cn = controlnet is not None or bool(index.get("controlnet"))
        fingerprint = model_fingerprint(path)
        if controlnet is not None:
            fingerprint += "+" + model_fingerprint(resolve_model_dir(controlnet))
        xl = "XL" in cls_name
        pipeline = ("StableDiffusionXL" if xl else "StableDiffusion") + ("ControlNetInpaintPipeline" if has_cn else "InpaintPipeline")
        return _spec(
            fingerprint,
            pipeline,
            int(steps),
            float(guidance_scale),
            control if has_cn else "none",
            float(controlnet_scale),
            float(mask_dilation),
            scheduler,
        )

    # -- inputs -----------------------------------------------------------------------------

    def size_for(self, scene) -> tuple[int, int]:
        return generation_size(self.native, scene.width, scene.height, self.multiple)

    def inputs(self, request: GenerationRequest) -> dict:
        """The init image, inpaint mask and control image at generation size (numpy, uint8)."""
        scene = request.scene
        w, h = self.size_for(scene)
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
        return {"size": (w, h), "init": init, "mask": mask, "control": control}

    # -- generation -------------------------------------------------------------------------

    def generate(self, request: GenerationRequest) -> np.ndarray:
        return self.generate_batch([request])[0]

    def generate_raw(self, requests: Sequence[GenerationRequest]) -> list[np.ndarray]:
        """The pipeline's outputs at generation size (uint8), in request order, batched by size."""
        import torch
        from PIL import Image

        prepared = [self.inputs(r) for r in requests]
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
                    num_inference_steps=self.steps,
                    guidance_scale=self.guidance_scale,
                    strength=1.0,
                    generator=[torch.Generator("cpu").manual_seed(int(requests[i].seed)) for i in chunk],
                    output_type="np",
                )
                if self.control != "none":
                    kwargs["control_image"] = [Image.fromarray(prepared[i]["control"]) for i in chunk]
                    kwargs["controlnet_conditioning_scale"] = self.controlnet_scale
                with torch.inference_mode():
                    images = self.pipe(**kwargs).images
                for i, img in zip(chunk, images, strict=True):
                    out[i] = np.clip(np.asarray(img) * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return out  # type: ignore[return-value]

    def to_canvas(self, raw: np.ndarray, scene) -> np.ndarray:
        """A raw output brought to the placement's canvas size (the background the product is pasted on)."""
        interp = cv2.INTER_CUBIC if raw.shape[1] < scene.width else cv2.INTER_AREA
        return cv2.resize(raw, (scene.width, scene.height), interpolation=interp)

    def generate_batch(self, requests: Sequence[GenerationRequest]) -> list[np.ndarray]:
        return [self.to_canvas(raw, r.scene) for raw, r in zip(self.generate_raw(requests), requests, strict=True)]


def _spec(model, pipeline, steps, guidance_scale, control, controlnet_scale, mask_dilation, scheduler) -> dict:
    return {
        "model": model,
        "pipeline": pipeline,
        "steps": steps,
        "guidance_scale": guidance_scale,
        "control": control,
        "controlnet_scale": controlnet_scale,
        "mask_dilation": mask_dilation,
        "scheduler": scheduler,
    }


def _pipeline_class(xl: bool, controlnet: bool):
    import diffusers

    if xl:
        return diffusers.StableDiffusionXLControlNetInpaintPipeline if controlnet else diffusers.StableDiffusionXLInpaintPipeline
    return diffusers.StableDiffusionControlNetInpaintPipeline if controlnet else diffusers.StableDiffusionInpaintPipeline


def _make_scheduler(name: str, config):
    import diffusers

    cls = {
        "ddim": diffusers.DDIMScheduler,
        "dpm": diffusers.DPMSolverMultistepScheduler,
        "euler": diffusers.EulerDiscreteScheduler,
        "euler-a": diffusers.EulerAncestralDiscreteScheduler,
        "unipc": diffusers.UniPCMultistepScheduler,
        "lcm": diffusers.LCMScheduler,
    }[name]
    return cls.from_config(config)
