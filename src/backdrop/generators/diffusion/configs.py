"""Pipeline configs for single-file checkpoints, written from the package (no hub access).

A community checkpoint (one ``.safetensors`` in the original LDM layout) holds weights only; to
build a diffusers pipeline around it, ``from_single_file`` needs the component configs, the
scheduler and the tokenizer of the released model it was fine-tuned from. Those are fixed and
small: they are written here from the published architectures (SD 1.5 and SDXL, base and 9-channel
inpainting), with the CLIP tokenizer built from its BPE merges shipped in ``backdrop/data/models``.
SD 2 checkpoints need ``--model-config DIR`` (a diffusers SD 2 folder): its 512 and 768 px
variants differ in ways the weights do not show (epsilon or v-prediction).

>>> sorted(PACKAGED)
['sd15', 'sd15-inpaint', 'sdxl', 'sdxl-inpaint']
>>> detect_checkpoint({"model.diffusion_model.input_blocks.0.0.weight": {"shape": [320, 9, 3, 3]},
...                    "cond_stage_model.transformer.text_model.final_layer_norm.weight": {"shape": [768]}})
'sd15-inpaint'
"""

from __future__ import annotations

import gzip
import json
import os
import tempfile
from functools import cache
from importlib import resources
from pathlib import Path

from .models import ModelError

#: bumped when a written config changes, so cached folders are rewritten
CONFIG_VERSION = "1"

_SCALED_LINEAR = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000)

_SD15_UNET = dict(
    _class_name="UNet2DConditionModel",
    sample_size=64,
    in_channels=4,
    out_channels=4,
    layers_per_block=2,
    block_out_channels=[320, 640, 1280, 1280],
    down_block_types=["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    up_block_types=["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
    cross_attention_dim=768,
    attention_head_dim=8,
)
_SDXL_UNET = dict(
    _class_name="UNet2DConditionModel",
    sample_size=128,
    in_channels=4,
    out_channels=4,
    layers_per_block=2,
    block_out_channels=[320, 640, 1280],
    down_block_types=["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
    up_block_types=["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
    transformer_layers_per_block=[1, 2, 10],
    attention_head_dim=[5, 10, 20],
    cross_attention_dim=2048,
    use_linear_projection=True,
    addition_embed_type="text_time",
    addition_time_embed_dim=256,
    projection_class_embeddings_input_dim=2816,
)


def _vae(sample_size: int, scaling_factor: float, force_upcast: bool) -> dict:
    return dict(
        _class_name="AutoencoderKL",
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        layers_per_block=2,
        block_out_channels=[128, 256, 512, 512],
        down_block_types=["DownEncoderBlock2D"] * 4,
        up_block_types=["UpDecoderBlock2D"] * 4,
        sample_size=sample_size,
        scaling_factor=scaling_factor,
        force_upcast=force_upcast,
    )


def _clip(hidden: int, layers: int, heads: int, act: str, projection: bool) -> dict:
    return dict(
        architectures=["CLIPTextModelWithProjection" if projection else "CLIPTextModel"],
        model_type="clip_text_model",
        hidden_size=hidden,
        intermediate_size=4 * hidden,
        num_attention_heads=heads,
        num_hidden_layers=layers,
        hidden_act=act,
        projection_dim=hidden if projection else 768,
        vocab_size=49408,
        max_position_embeddings=77,
        # eos_token_id 2 selects transformers' legacy pooling (the position of the highest id, <|endoftext|>),
        # which is what both CLIPs were trained with
        bos_token_id=0,
        eos_token_id=2,
        pad_token_id=1,
        layer_norm_eps=1e-5,
    )


def _sd15(inpaint: bool) -> dict[str, dict]:
    pipeline = "StableDiffusionInpaintPipeline" if inpaint else "StableDiffusionPipeline"
    return {
        "model_index.json": dict(
            _class_name=pipeline,
            vae=["diffusers", "AutoencoderKL"],
            text_encoder=["transformers", "CLIPTextModel"],
            tokenizer=["transformers", "CLIPTokenizer"],
            unet=["diffusers", "UNet2DConditionModel"],
            scheduler=["diffusers", "PNDMScheduler"],
            safety_checker=[None, None],
            feature_extractor=[None, None],
            requires_safety_checker=False,
        ),
        "unet/config.json": _SD15_UNET | {"in_channels": 9 if inpaint else 4},
        "vae/config.json": _vae(512, 0.18215, force_upcast=True),
        "text_encoder/config.json": _clip(768, 12, 12, "quick_gelu", projection=False),
        "scheduler/scheduler_config.json": dict(
            _class_name="PNDMScheduler", **_SCALED_LINEAR, set_alpha_to_one=False, skip_prk_steps=True, steps_offset=1, clip_sample=False
        ),
        "tokenizer/": dict(pad_token="<|endoftext|>"),
    }


def _sdxl(inpaint: bool) -> dict[str, dict]:
    pipeline = "StableDiffusionXLInpaintPipeline" if inpaint else "StableDiffusionXLPipeline"
    return {
        "model_index.json": dict(
            _class_name=pipeline,
            vae=["diffusers", "AutoencoderKL"],
            text_encoder=["transformers", "CLIPTextModel"],
            text_encoder_2=["transformers", "CLIPTextModelWithProjection"],
            tokenizer=["transformers", "CLIPTokenizer"],
            tokenizer_2=["transformers", "CLIPTokenizer"],
            unet=["diffusers", "UNet2DConditionModel"],
            scheduler=["diffusers", "EulerDiscreteScheduler"],
            force_zeros_for_empty_prompt=True,
            requires_aesthetics_score=False,
        ),
        "unet/config.json": _SDXL_UNET | {"in_channels": 9 if inpaint else 4},
        "vae/config.json": _vae(1024, 0.13025, force_upcast=True),
        "text_encoder/config.json": _clip(768, 12, 12, "quick_gelu", projection=False),
        "text_encoder_2/config.json": _clip(1280, 32, 20, "gelu", projection=True),
        "scheduler/scheduler_config.json": dict(
            _class_name="EulerDiscreteScheduler",
            **_SCALED_LINEAR,
            steps_offset=1,
            timestep_spacing="leading",
            interpolation_type="linear",
            prediction_type="epsilon",
            use_karras_sigmas=False,
        ),
        "tokenizer/": dict(pad_token="<|endoftext|>"),
        "tokenizer_2/": dict(pad_token="!"),
    }


PACKAGED = {"sd15": _sd15(False), "sd15-inpaint": _sd15(True), "sdxl": _sdxl(False), "sdxl-inpaint": _sdxl(True)}


def detect_checkpoint(header: dict[str, dict], where: str = "the checkpoint") -> str:
    """Which packaged config fits a single-file checkpoint, from its tensor names and shapes."""
    conv_in = header.get("model.diffusion_model.input_blocks.0.0.weight")
    if conv_in is None:
        raise ModelError(f"{where}: no model.diffusion_model.* tensors; not a Stable Diffusion checkpoint in the original layout")
    inpaint = conv_in["shape"][1] == 9
    if any(k.startswith("conditioner.embedders.1.") for k in header):
        return "sdxl-inpaint" if inpaint else "sdxl"
    if any(k.startswith("cond_stage_model.model.") for k in header):
        raise ModelError(
            f"{where}: a Stable Diffusion 2 checkpoint; pass --model-config DIR, a diffusers SD 2 folder of the same variant "
            "(512 px epsilon or 768 px v-prediction: the weights do not say which)"
        )
    if any(k.startswith("cond_stage_model.transformer.") for k in header):
        return "sd15-inpaint" if inpaint else "sd15"
    raise ModelError(f"{where}: unknown text encoder layout; pass --model-config DIR (the diffusers folder it was converted from)")


def packaged_config(kind: str, root: str | os.PathLike | None = None) -> Path:
    """A diffusers config folder (no weights) for ``kind``, written once into ``root`` (default:
    ``$BACKDROP_MODEL_CONFIGS`` or ~/.cache/backdrop/model-configs) and reused."""
    if kind not in PACKAGED:
        raise ValueError(f"unknown config {kind!r}; known: {', '.join(sorted(PACKAGED))}")
    base = Path(root or os.environ.get("BACKDROP_MODEL_CONFIGS") or Path.home() / ".cache" / "backdrop" / "model-configs")
    folder = base / f"{kind}-v{CONFIG_VERSION}"
    if (folder / "model_index.json").is_file():
        return folder
    base.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{kind}-", dir=base))
    for name, content in PACKAGED[kind].items():
        if name.endswith("/"):
            write_clip_tokenizer(tmp / name, **content)
        else:
            (tmp / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp / name).write_text(json.dumps(content, indent=2))
    try:
        tmp.rename(folder)  # atomic: a concurrent writer's folder wins, ours is dropped
    except OSError:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return folder


@cache
def _clip_merges() -> tuple[str, ...]:
    data = resources.files("backdrop").joinpath("data/models/clip-bpe-16e6.txt.gz").read_bytes()
    lines = gzip.decompress(data).decode("utf-8").split("\n")
    return tuple(lines[1 : 49152 - 256 - 2 + 1])  # the merges CLIP's tokenizer uses: 48,894 of them


def byte_symbols() -> list[str]:
    """GPT-2/CLIP's 256 printable stand-ins for the bytes, in byte order of CLIP's vocabulary."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    symbols, extra = list(map(chr, printable)), 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            symbols.append(chr(256 + extra))
            extra += 1
    return symbols


def write_clip_tokenizer(folder: Path, pad_token: str = "<|endoftext|>", merges: tuple[str, ...] | None = None) -> None:
    """The CLIP ViT-L/14 tokenizer (vocab.json, merges.txt, configs) built from the packaged merges
    (or ``merges``; none: every character its own token, the test pipelines' tokenizer): the 256
    byte symbols, the same with the end-of-word mark, every merge, then the two specials."""
    from transformers import CLIPTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    symbols = byte_symbols()
    merges = _clip_merges() if merges is None else merges
    tokens = symbols + [s + "</w>" for s in symbols] + ["".join(m.split()) for m in merges] + ["<|startoftext|>", "<|endoftext|>"]
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}, ensure_ascii=False))
    (folder / "merges.txt").write_text("\n".join(["#version: 0.2", *merges]) + "\n")
    CLIPTokenizer.from_pretrained(folder, model_max_length=77, pad_token=pad_token).save_pretrained(folder)
