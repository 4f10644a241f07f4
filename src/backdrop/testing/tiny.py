"""Tiny random-weight diffusion pipelines, built from small configs, for tests and smoke runs.

They are the real ``diffusers`` pipelines (UNet, ControlNet, VAE, CLIP text encoders, tokenizer,
scheduler) at toy sizes: 64x64 native resolution, a few hundred KB of weights, ~0.2 s a call on
a CPU. Their images are noise; they exist so the production code path (loading a
``save_pretrained`` directory offline, outpainting, batching, seeding, the gate, Ray) runs on
any machine. ``python -m backdrop.testing.tiny DIR [--sdxl] [--no-controlnet]`` writes one.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path


def write_tokenizer(folder: Path) -> None:
    """A byte-level CLIP BPE tokenizer with no merges (every character a token)."""
    from ..generators.diffusion.configs import write_clip_tokenizer

    write_clip_tokenizer(folder, merges=())


def _tokenizer():
    """A CLIP tokenizer over the tiny byte-level vocabulary of :func:`write_tokenizer`."""
    import tempfile

    from transformers import CLIPTokenizer

    with tempfile.TemporaryDirectory() as tmp:
        write_tokenizer(Path(tmp))
        return CLIPTokenizer.from_pretrained(tmp)


def _text_encoder(projection: bool = False, hidden: int = 32, seed: int = 0):
    import torch
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    torch.manual_seed(seed)
    cfg = CLIPTextConfig(
        hidden_size=hidden,
        intermediate_size=37,
        num_attention_heads=4,
        num_hidden_layers=2,
        vocab_size=1000,
        max_position_embeddings=77,
        projection_dim=32,
        bos_token_id=512,  # <|startoftext|> in write_tokenizer's vocab
        eos_token_id=513,  # <|endoftext|>
    )
    return (CLIPTextModelWithProjection if projection else CLIPTextModel)(cfg)


def _vae(blocks: int = 4):
    import torch
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    # ``blocks`` levels: vae_scale_factor 2 ** (blocks - 1); four (8) as in the real models
    return AutoencoderKL(
        block_out_channels=(8, 8, 16, 16)[:blocks],
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * blocks,
        up_block_types=("UpDecoderBlock2D",) * blocks,
        latent_channels=4,
        norm_num_groups=8,
        sample_size=64,
    )


def _scheduler(prediction_type: str = "epsilon"):
    from diffusers import DDIMScheduler

    return DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
        prediction_type=prediction_type,
    )


@dataclass(frozen=True)
class TinySpec:
    """The shape of a tiny pipeline: the knobs real models differ in.

    ``vae_blocks`` sets the VAE scale factor (2 ** (blocks - 1)), ``unet_blocks`` the UNet's
    down blocks, ``sample_size`` its latent side (native px = sample_size x VAE scale factor);
    ``prediction_type`` "v_prediction" with linear projections is SD 2's layout; ``sdxl`` two text
    encoders and the text-time embedding.
    """

    sdxl: bool = False
    controlnet: bool = True
    vae_blocks: int = 4
    unet_blocks: int = 2
    sample_size: int = 8
    prediction_type: str = "epsilon"

    @property
    def sd2(self) -> bool:
        return self.prediction_type == "v_prediction"


def _unet_blocks(spec: TinySpec) -> dict:
    n = spec.unet_blocks
    blocks: dict = dict(
        block_out_channels=(32, 64, 64, 64)[:n],
        layers_per_block=1,
        down_block_types=("DownBlock2D",) + ("CrossAttnDownBlock2D",) * (n - 1),
        norm_num_groups=16,
    )
    if spec.sdxl:
        blocks |= dict(
            attention_head_dim=(2, 4, 4, 4)[:n],
            use_linear_projection=True,
            addition_embed_type="text_time",
            addition_time_embed_dim=8,
            transformer_layers_per_block=(1, 2, 1, 1)[:n],
            projection_class_embeddings_input_dim=80,  # 6 * 8 time ids + 32 pooled text
            cross_attention_dim=64,
        )
    elif spec.sd2:
        blocks |= dict(attention_head_dim=(2, 4, 4, 4)[:n], use_linear_projection=True, cross_attention_dim=32)
    else:
        blocks |= dict(cross_attention_dim=32)
    return blocks


def build(spec: TinySpec = TinySpec()):
    """A tiny SD 1.5 / SD 2 / SDXL-style inpainting pipeline of the given shape."""
    import diffusers
    import torch
    from diffusers import ControlNetModel, UNet2DConditionModel

    torch.manual_seed(0)
    blocks = _unet_blocks(spec)
    n = spec.unet_blocks
    up = ("CrossAttnUpBlock2D",) * (n - 1) + ("UpBlock2D",)
    unet = UNet2DConditionModel(sample_size=spec.sample_size, in_channels=9, out_channels=4, up_block_types=up, **blocks)
    tokenizer = _tokenizer()
    parts: dict = dict(vae=_vae(spec.vae_blocks), unet=unet, scheduler=_scheduler(spec.prediction_type), tokenizer=tokenizer)
    if spec.sdxl:
        parts |= dict(
            text_encoder=_text_encoder(seed=0),
            text_encoder_2=_text_encoder(projection=True, seed=1),
            tokenizer_2=tokenizer,
            requires_aesthetics_score=False,
        )
    else:
        parts |= dict(text_encoder=_text_encoder(), safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    prefix = "StableDiffusionXL" if spec.sdxl else "StableDiffusion"
    if not spec.controlnet:
        return getattr(diffusers, prefix + "InpaintPipeline")(**parts)
    torch.manual_seed(1)
    embedding = (8, 8, 8, 16)[4 - spec.vae_blocks :]  # downsamples the control image by the VAE's factor
    cn = ControlNetModel(in_channels=4, conditioning_embedding_out_channels=embedding, **blocks)
    return getattr(diffusers, prefix + "ControlNetInpaintPipeline")(controlnet=cn, **parts)


def build_sd(controlnet: bool = True):
    """A tiny SD 1.5-style inpainting pipeline (with a ControlNet when ``controlnet``)."""
    return build(TinySpec(controlnet=controlnet))


def build_sdxl(controlnet: bool = True):
    """A tiny SDXL-style inpainting pipeline (with a ControlNet when ``controlnet``)."""
    return build(TinySpec(sdxl=True, controlnet=controlnet))


def save_tiny(folder: str | Path, *, sdxl: bool = False, controlnet: bool = True, **shape) -> Path:
    """Build a tiny pipeline (:class:`TinySpec` fields) and ``save_pretrained`` it into ``folder`` (safetensors)."""
    folder = Path(folder)
    build(TinySpec(sdxl=sdxl, controlnet=controlnet, **shape)).save_pretrained(folder, safe_serialization=True)
    return folder


def save_tiny_lora(pipe_folder: str | Path, out: str | Path, *, rank: int = 4, seed: int = 0) -> Path:
    """A random LoRA (rank ``rank``) on the attention projections of the tiny pipeline saved in
    ``pipe_folder``, written as ``out`` (a .safetensors file) with ``save_lora_weights``."""
    import torch
    from diffusers import DiffusionPipeline, StableDiffusionPipeline, StableDiffusionXLPipeline
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    pipe = DiffusionPipeline.from_pretrained(pipe_folder, local_files_only=True)
    torch.manual_seed(seed)
    # init_lora_weights=False: both factors random, so the LoRA changes the output (B = 0 by default)
    config = LoraConfig(r=rank, lora_alpha=rank, target_modules=["to_q", "to_k", "to_v", "to_out.0"], init_lora_weights=False)
    pipe.unet.add_adapter(config)
    out = Path(out)
    saver = StableDiffusionXLPipeline if "XL" in type(pipe).__name__ else StableDiffusionPipeline
    saver.save_lora_weights(
        out.parent, unet_lora_layers=get_peft_model_state_dict(pipe.unet), weight_name=out.name, safe_serialization=True
    )
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", type=Path)
    ap.add_argument("--sdxl", action="store_true", help="SDXL layout (two text encoders) instead of SD 1.5")
    ap.add_argument("--no-controlnet", action="store_true", help="inpainting model only")
    ap.add_argument("--vae-blocks", type=int, default=4, help="VAE levels (scale factor 2^(n-1))")
    ap.add_argument("--unet-blocks", type=int, default=2, help="UNet down blocks")
    ap.add_argument("--sample-size", type=int, default=8, help="UNet latent side")
    ap.add_argument("--v-prediction", action="store_true", help="SD 2 style: v-prediction, linear projections")
    args = ap.parse_args(argv)
    shape = dict(
        vae_blocks=args.vae_blocks,
        unet_blocks=args.unet_blocks,
        sample_size=args.sample_size,
        prediction_type="v_prediction" if args.v_prediction else "epsilon",
    )
    print(save_tiny(args.folder, sdxl=args.sdxl, controlnet=not args.no_controlnet, **shape))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
