"""Write a diffusers SD 1.5 pipeline as one checkpoint in the original (LDM / A1111) layout.

Community fine-tunes are shared as such files (``model.diffusion_model.*`` for the UNet,
``first_stage_model.*`` for the VAE, ``cond_stage_model.transformer.*`` for CLIP); this turns a
tiny test pipeline into one, so ``--model FILE.safetensors`` is tested on the layout users bring.
The key mapping is the inverse of diffusers' single-file conversion; :func:`save_single_file`
checks that converting the written keys back gives every original tensor, so a mapping error is a
failure here, not a silently different model.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import cast

_RESNET = (("norm1", "in_layers.0"), ("conv1", "in_layers.2"), ("norm2", "out_layers.0"), ("conv2", "out_layers.3"),
           ("time_emb_proj", "emb_layers.1"), ("conv_shortcut", "skip_connection"))  # fmt: skip
_VAE_ATTENTION = (("group_norm", "norm"), ("to_q", "q"), ("to_k", "k"), ("to_v", "v"), ("to_out.0", "proj_out"))


def _resnet(rest: str) -> str:
    for new, old in _RESNET:
        if rest.startswith(new + "."):
            return old + rest[len(new) :]
    return rest


def unet_to_ldm(state: dict, config: dict) -> dict:
    """diffusers UNet2DConditionModel keys -> ``model.diffusion_model.*`` keys."""
    from diffusers.loaders.single_file_utils import DIFFUSERS_TO_LDM_MAPPING

    mapping = cast(dict, DIFFUSERS_TO_LDM_MAPPING["unet"])
    fixed = dict(mapping["layers"])
    if config.get("addition_embed_type") == "text_time":
        fixed |= mapping["addition_embed_type"]
    per = config["layers_per_block"] + 1
    up_attention = {i for i, t in enumerate(config["up_block_types"]) if "CrossAttn" in t}
    out = {}
    for key, value in state.items():
        if key in fixed:
            ldm = fixed[key]
        elif m := re.match(r"down_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.*)", key):
            b, kind, j, rest = int(m[1]), m[2], int(m[3]), m[4]
            ldm = f"input_blocks.{1 + b * per + j}." + ("0." + _resnet(rest) if kind == "resnets" else "1." + rest)
        elif m := re.match(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.*)", key):
            ldm = f"input_blocks.{(int(m[1]) + 1) * per}.0.op.{m[2]}"
        elif m := re.match(r"mid_block\.(resnets|attentions)\.(\d+)\.(.*)", key):
            ldm = f"middle_block.{2 * int(m[2])}.{_resnet(m[3])}" if m[1] == "resnets" else f"middle_block.1.{m[3]}"
        elif m := re.match(r"up_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.*)", key):
            b, kind, j, rest = int(m[1]), m[2], int(m[3]), m[4]
            ldm = f"output_blocks.{b * per + j}." + ("0." + _resnet(rest) if kind == "resnets" else "1." + rest)
        elif m := re.match(r"up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.*)", key):
            b = int(m[1])
            ldm = f"output_blocks.{b * per + per - 1}.{2 if b in up_attention else 1}.conv.{m[2]}"
        else:
            raise KeyError(f"no LDM name for UNet tensor {key}")
        out["model.diffusion_model." + ldm] = value
    return out


def vae_to_ldm(state: dict, config: dict) -> dict:
    """diffusers AutoencoderKL keys -> ``first_stage_model.*`` keys (attention as 1x1 convs)."""
    from diffusers.loaders.single_file_utils import DIFFUSERS_TO_LDM_MAPPING

    fixed = cast(dict, DIFFUSERS_TO_LDM_MAPPING["vae"])
    n = len(config["up_block_types"])
    out = {}
    for key, value in state.items():
        if key in fixed:
            ldm = fixed[key]
        elif m := re.match(r"encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\.(.*)", key):
            ldm = f"encoder.down.{m[1]}.block.{m[2]}.{m[3].replace('conv_shortcut', 'nin_shortcut')}"
        elif m := re.match(r"encoder\.down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.*)", key):
            ldm = f"encoder.down.{m[1]}.downsample.conv.{m[2]}"
        elif m := re.match(r"decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.(.*)", key):
            ldm = f"decoder.up.{n - 1 - int(m[1])}.block.{m[2]}.{m[3].replace('conv_shortcut', 'nin_shortcut')}"
        elif m := re.match(r"decoder\.up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.*)", key):
            ldm = f"decoder.up.{n - 1 - int(m[1])}.upsample.conv.{m[2]}"
        elif m := re.match(r"(encoder|decoder)\.mid_block\.resnets\.(\d+)\.(.*)", key):
            ldm = f"{m[1]}.mid.block_{int(m[2]) + 1}.{m[3].replace('conv_shortcut', 'nin_shortcut')}"
        elif m := re.match(r"(encoder|decoder)\.mid_block\.attentions\.0\.(.*)\.(weight|bias)", key):
            name = dict(_VAE_ATTENTION)[m[2]]
            ldm = f"{m[1]}.mid.attn_1.{name}.{m[3]}"
            if m[3] == "weight" and value.ndim == 2:
                value = value[:, :, None, None]  # LDM's attention projections are 1x1 convolutions
        else:
            raise KeyError(f"no LDM name for VAE tensor {key}")
        out["first_stage_model." + ldm] = value
    return out


def save_single_file(pipe_folder: str | Path, out: str | Path) -> Path:
    """The SD 1.5-style pipeline saved in ``pipe_folder`` as one LDM-layout ``.safetensors`` file."""
    import torch
    from diffusers import DiffusionPipeline
    from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint, convert_ldm_vae_checkpoint
    from safetensors.torch import save_file

    pipe = DiffusionPipeline.from_pretrained(pipe_folder, local_files_only=True)
    if "XL" in type(pipe).__name__:
        raise ValueError("SD 1.5-style pipelines only (SDXL's second text encoder uses OpenCLIP's layout)")
    unet, vae = pipe.unet.state_dict(), pipe.vae.state_dict()
    ldm = unet_to_ldm(unet, dict(pipe.unet.config)) | vae_to_ldm(vae, dict(pipe.vae.config))
    # the original layout nests CLIP under text_model. (transformers >= 5.6 flattened CLIPTextModel)
    text = {k if k.startswith("text_model.") else "text_model." + k: v for k, v in pipe.text_encoder.state_dict().items()}
    ldm |= {"cond_stage_model.transformer." + k: v for k, v in text.items()}
    for back, original, what in (
        (convert_ldm_unet_checkpoint(ldm, dict(pipe.unet.config)), unet, "UNet"),
        (convert_ldm_vae_checkpoint(ldm, dict(pipe.vae.config)), vae, "VAE"),
    ):
        missing = set(original) ^ set(back)
        if missing or any(not torch.equal(back[k].reshape(original[k].shape), original[k]) for k in original):
            raise AssertionError(f"the {what} does not convert back: {sorted(missing)[:5]}")
    out = Path(out)
    save_file({k: v.contiguous() for k, v in ldm.items()}, str(out))
    return out
