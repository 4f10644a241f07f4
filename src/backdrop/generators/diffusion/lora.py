"""LoRAs on the generator: ``--lora DIR_OR_FILE[:scale]``, loaded, weighted and fused.

A LoRA is a folder written by ``save_lora_weights`` (``pytorch_lora_weights.safetensors``) or a
single ``.safetensors`` file (diffusers, kohya or A1111 key layout: ``load_lora_weights``
converts). Several combine with their scales; fusing folds them into the weights, so a LoRA costs
nothing per step (an unfused one adds two small matmuls per attention projection). The fused
adapters stay attached so :meth:`DiffusionGenerator.unload_loras` can restore the base model.

>>> parse_lora("styles/neon.safetensors:0.7")
LoraSpec(path=PosixPath('styles/neon.safetensors'), scale=0.7)
>>> parse_lora("lcm-lora-sdv1-5").scale
1.0
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .models import ModelError, file_fingerprint

WEIGHT_NAME = "pytorch_lora_weights.safetensors"


@dataclass(frozen=True)
class LoraSpec:
    path: Path
    scale: float = 1.0

    def resolve(self) -> tuple[Path, str]:
        """(folder, weight file name) as ``load_lora_weights`` takes them; :class:`ModelError` when missing."""
        path = self.path.expanduser()
        if path.is_file():
            if path.suffix != ".safetensors":
                raise ModelError(f"{path}: a LoRA must be a .safetensors file or a folder holding {WEIGHT_NAME}")
            return path.parent, path.name
        if path.is_dir():
            files = sorted(f.name for f in path.glob("*.safetensors"))
            if WEIGHT_NAME in files:
                return path, WEIGHT_NAME
            if len(files) == 1:
                return path, files[0]
            raise ModelError(f"{path}: {'no' if not files else 'several'} .safetensors LoRA file(s); pass the file itself")
        raise ModelError(f"{path}: no such LoRA file or folder")

    def fingerprint(self) -> str:
        folder, name = self.resolve()
        return file_fingerprint(folder / name)


def parse_lora(value: str | os.PathLike | LoraSpec) -> LoraSpec:
    """``PATH`` or ``PATH:SCALE`` (a scale is a number after the last colon)."""
    if isinstance(value, LoraSpec):
        return value
    text = os.fspath(value)
    head, sep, tail = text.rpartition(":")
    if sep and head:
        try:
            return LoraSpec(Path(head), float(tail))
        except ValueError:
            pass
    return LoraSpec(Path(text))


def apply_loras(pipe, loras: list[LoraSpec]) -> None:
    """Load every LoRA as its own adapter, weight them by their scales and fuse them into the
    UNet and text encoders; a LoRA that does not fit the model is a :class:`ModelError`."""
    if not loras:
        return
    names = []
    for i, lora in enumerate(loras):
        folder, weight_name = lora.resolve()
        name = f"lora{i}"
        try:
            pipe.load_lora_weights(str(folder), weight_name=weight_name, adapter_name=name, local_files_only=True)
        except (ValueError, KeyError, RuntimeError, OSError) as e:
            detail = " ".join(str(e).split())[:240]  # a shape mismatch lists every layer: the first says enough
            raise ModelError(
                f"{folder / weight_name}: cannot load this LoRA into {type(pipe).__name__} ({detail}...); is it for this base model?"
            ) from None
        if not any(name in found for found in pipe.get_list_adapters().values()):  # diffusers only warns
            raise ModelError(
                f"{folder / weight_name}: no tensor of this LoRA matches a layer of {type(pipe).__name__}; is it for this base model?"
            )
        names.append(name)
    pipe.set_adapters(names, adapter_weights=[lora.scale for lora in loras])
    pipe.fuse_lora(adapter_names=names, lora_scale=1.0)


def remove_loras(pipe) -> None:
    """Unfuse and drop every LoRA: the base model's weights again."""
    pipe.unfuse_lora()
    pipe.unload_lora_weights()
