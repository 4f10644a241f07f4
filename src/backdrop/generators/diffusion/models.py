"""Finding, checking and fingerprinting the model a user brings, before any weight is read.

A model is a diffusers folder (``save_pretrained`` of an SD 1.5/2 or SDXL pipeline, inpainting or
not, with its ControlNet or not), a hub id already in the local Hugging Face cache, or one
``.safetensors`` checkpoint in the original (LDM / A1111) layout -- the way community fine-tunes
are shared -- whose pipeline configs come from ``config=`` (a diffusers folder of the same kind) or
from the package (:mod:`.configs`). Nothing is downloaded. Every problem is a :class:`ModelError`
naming the file to fix.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path

from ...errors import BackdropError
from .geometry import GeometryError, ModelGeometry

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".ckpt", ".pt", ".onnx")
#: files that tell a component folder is there, per kind of component
_MARKERS = {
    "scheduler": ("scheduler_config.json",),
    "tokenizer": ("vocab.json", "tokenizer.json", "tokenizer_config.json", "spiece.model"),
    "tokenizer_2": ("vocab.json", "tokenizer.json", "tokenizer_config.json", "spiece.model"),
    "feature_extractor": ("preprocessor_config.json",),
    "image_encoder": ("config.json",),
}


class ModelError(BackdropError):
    """A model that cannot be used (missing, incomplete, not a supported pipeline, not cached)."""


@dataclass(frozen=True)
class ModelSource:
    """A model found on disk: where its weights are and where its configs are."""

    path: Path  #: the folder, or the single checkpoint file
    config_dir: Path  #: model_index.json and the component configs (the folder itself, or for a single file the config folder)
    index: dict  #: model_index.json
    single_file: bool = False
    packaged: str | None = None  #: the packaged config a single file was matched to (None: the user's)

    @property
    def class_name(self) -> str:
        return str(self.index.get("_class_name", ""))

    @property
    def xl(self) -> bool:
        return "XL" in self.class_name

    @property
    def has_controlnet(self) -> bool:
        return not self.single_file and bool((self.index.get("controlnet") or [None])[0])

    def component_config(self, name: str) -> dict:
        return read_json(self.config_dir / name / "config.json")

    def geometry(self) -> ModelGeometry:
        return ModelGeometry.from_configs(self.component_config("vae"), self.component_config("unet"), model=str(self.path))

    def check_controlnet(self, controlnet_dir: Path | None) -> None:
        """:class:`ModelError` unless the ControlNet (separate or in the folder) fits the UNet."""
        if controlnet_dir is not None:
            config, where = read_json(controlnet_dir / "config.json"), controlnet_dir
        elif self.has_controlnet:
            config, where = self.component_config("controlnet"), self.config_dir / "controlnet"
        else:
            return
        try:
            self.geometry().check_controlnet(self.component_config("unet"), config, str(where))
        except GeometryError as e:
            raise ModelError(str(e)) from None

    def fingerprint(self) -> str:
        """A content fingerprint without reading GBs of weights (see :func:`folder_fingerprint`)."""
        if not self.single_file:
            return folder_fingerprint(self.path)
        return file_fingerprint(self.path) + "/" + folder_fingerprint(self.config_dir, weights=False)


def read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ModelError(f"{path}: missing; the model folder is incomplete (copy it again, or save_pretrained it again)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelError(f"{path}: not valid JSON ({e}); the model folder is damaged (copy it again)") from None
    if not isinstance(data, dict):
        raise ModelError(f"{path}: expected a JSON object, found {type(data).__name__}")
    return data


def open_model(model: str | os.PathLike, config: str | os.PathLike | None = None) -> ModelSource:
    """The :class:`ModelSource` for ``model`` (folder, single ``.safetensors`` file, or cached hub id),
    checked component by component; ``config`` is the config folder for a single file."""
    path = Path(model).expanduser()
    if path.is_file():
        return _open_single_file(path, config)
    if config is not None:
        raise ModelError(f"--model-config is for a single checkpoint file; {path} is a folder with its own configs")
    if path.is_dir():
        if not (path / "model_index.json").is_file():
            raise ModelError(f"{path}: no model_index.json; pass a folder written by save_pretrained of a diffusers pipeline")
        return ModelSource(path, path, check_folder(path))
    if path.suffix in WEIGHT_SUFFIXES:
        raise ModelError(f"{path}: no such file")
    snapshot = _cached_snapshot(str(model))
    return ModelSource(snapshot, snapshot, check_folder(snapshot))


def resolve_model_dir(model: str | os.PathLike) -> Path:
    """A folder for a separately passed component (a ControlNet): the folder or its cached hub snapshot."""
    path = Path(model).expanduser()
    if path.is_dir():
        read_json(path / "config.json")
        if not any(f.suffix in WEIGHT_SUFFIXES for f in path.iterdir()):
            raise ModelError(f"{path}: no weights (diffusion_pytorch_model.safetensors); the folder is incomplete")
        return path
    if path.exists():
        raise ModelError(f"{path}: not a folder; pass a folder written by save_pretrained")
    return _cached_snapshot(str(model))


def _cached_snapshot(model_id: str) -> Path:
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(model_id, local_files_only=True))
    except Exception as e:  # noqa: BLE001 - any hub error means "not available offline"
        raise ModelError(
            f"model '{model_id}' is not a local folder or file and not in the Hugging Face cache ({type(e).__name__}); "
            "download it where there is internet (e.g. `huggingface-cli download ID --local-dir DIR`) and pass DIR"
        ) from None


def check_folder(path: Path, weights: bool = True) -> dict:
    """model_index.json of a diffusers pipeline folder, after checking every component it lists is
    there (config and, when ``weights``, weight files); a :class:`ModelError` names what is not."""
    index = read_json(path / "model_index.json")
    cls = str(index.get("_class_name", ""))
    if not cls.startswith("StableDiffusion"):
        raise ModelError(f"{path / 'model_index.json'}: a {cls or 'unknown'} pipeline; expected Stable Diffusion 1.5/2 or SDXL")
    for name, entry in index.items():
        if name.startswith("_") or not isinstance(entry, list) or len(entry) != 2 or entry[0] is None:
            continue
        folder = path / name
        if not folder.is_dir():
            raise ModelError(f"{folder}: missing (model_index.json lists {name}: {entry[1]}); the model folder is incomplete")
        markers = _MARKERS.get(name, ("config.json",))
        if not any((folder / m).is_file() for m in markers):
            raise ModelError(f"{folder}: no {' or '.join(markers)}; the model folder is incomplete")
        if markers == ("config.json",):
            read_json(folder / "config.json")  # parses
            if weights and not any(f.suffix in WEIGHT_SUFFIXES for f in folder.iterdir()):
                raise ModelError(
                    f"{folder}: no weights (diffusion_pytorch_model.safetensors or model.safetensors); the model folder is incomplete"
                )
    for required in ("unet", "vae"):
        if required not in index:
            raise ModelError(f"{path / 'model_index.json'}: lists no {required}")
    return index


def _open_single_file(path: Path, config: str | os.PathLike | None) -> ModelSource:
    if path.suffix != ".safetensors":
        raise ModelError(
            f"{path}: only .safetensors checkpoints are loaded (a {path.suffix or 'suffix-less'} file may hold pickled code); "
            "convert it to .safetensors or pass a diffusers folder"
        )
    keys = safetensors_header(path)
    if config is not None:
        config_dir = Path(config).expanduser()
        if not config_dir.is_dir():
            raise ModelError(
                f"{config_dir}: not a folder; --model-config takes a diffusers pipeline folder of the same kind as {path.name}"
            )
    else:
        from .configs import detect_checkpoint, packaged_config

        kind = detect_checkpoint(keys, str(path))
        return ModelSource(path, packaged_config(kind), check_folder(packaged_config(kind), weights=False), True, kind)
    return ModelSource(path, config_dir, check_folder(config_dir, weights=False), single_file=True)


def safetensors_header(path: Path) -> dict[str, dict]:
    """{tensor name: {"dtype", "shape", ...}} from a .safetensors file's JSON header (the data is not read)."""
    try:
        with open(path, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            if not 2 <= n <= 100_000_000:
                raise ValueError(f"header length {n}")
            header = json.loads(f.read(n))
    except (OSError, struct.error, ValueError) as e:
        raise ModelError(f"{path}: not a readable .safetensors file ({e})") from None
    header.pop("__metadata__", None)
    return header


def file_fingerprint(path: Path) -> str:
    """A single checkpoint's fingerprint: its size and header (every tensor's name, shape and offsets)."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        head = f.read(n)
    return hashlib.sha256(f"{path.stat().st_size}\0".encode() + head).hexdigest()[:16]


def folder_fingerprint(path: Path, weights: bool = True) -> str:
    """A content fingerprint of a model folder without reading GBs of weights: every config file's
    bytes plus every weight file's name and size."""
    h = hashlib.sha256()
    for f in sorted(path.rglob("*")):
        if not f.is_file():
            continue
        rel = f.relative_to(path).as_posix()
        if f.suffix in (".json", ".txt", ".model"):
            h.update(rel.encode() + b"\0" + f.read_bytes())
        elif weights and f.suffix in WEIGHT_SUFFIXES:
            h.update(f"{rel}\0{f.stat().st_size}".encode())
    return h.hexdigest()[:16]
