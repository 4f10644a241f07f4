"""Tiny random-weight diffusion pipelines, built from small configs, for tests and smoke runs.

They are the real ``diffusers`` pipelines (UNet, ControlNet, VAE, CLIP text encoders, tokenizer,
scheduler) at toy sizes: 64x64 native resolution, a few hundred KB of weights, ~0.2 s a call on
a CPU. Their images are noise; they exist so the production code path (loading a
``save_pretrained`` directory offline, outpainting, batching, seeding, the gate, Ray) runs on
any machine. ``python -m backdrop.testing.tiny DIR [--sdxl] [--no-controlnet]`` writes one.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _byte_table() -> dict[int, str]:
    """GPT-2/CLIP's byte -> printable unicode table (transformers 5 no longer exports it)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs), strict=True))


def write_tokenizer(folder: Path) -> None:
    """A byte-level CLIP BPE tokenizer with no merges (every character a token)."""
    from transformers import CLIPTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    chars = list(_byte_table().values())
    vocab = {c: i for i, c in enumerate(chars)}
    for c in chars:
        vocab[c + "</w>"] = len(vocab)
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    tok = CLIPTokenizer(vocab_file=str(folder / "vocab.json"), merges_file=str(folder / "merges.txt"), model_max_length=77)
    tok.save_pretrained(folder)


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


def _vae():
    import torch
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    # four levels: vae_scale_factor 8, as in the real models
    return AutoencoderKL(
        block_out_channels=(8, 8, 16, 16),
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=4,
        norm_num_groups=8,
        sample_size=64,
    )


def _scheduler():
    from diffusers import DDIMScheduler

    return DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )


def build_sd(controlnet: bool = True):
    """A tiny SD 1.5-style inpainting pipeline (with a ControlNet when ``controlnet``)."""
    import torch
    from diffusers import (
        ControlNetModel,
        StableDiffusionControlNetInpaintPipeline,
        StableDiffusionInpaintPipeline,
        UNet2DConditionModel,
    )

    torch.manual_seed(0)
    blocks = dict(
        block_out_channels=(32, 64),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        cross_attention_dim=32,
        norm_num_groups=16,
    )
    unet = UNet2DConditionModel(sample_size=8, in_channels=9, out_channels=4, up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), **blocks)
    tokenizer = _tokenizer()
    parts = dict(
        vae=_vae(),
        text_encoder=_text_encoder(),
        tokenizer=tokenizer,
        unet=unet,
        scheduler=_scheduler(),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    if not controlnet:
        return StableDiffusionInpaintPipeline(**parts)
    torch.manual_seed(1)
    cn = ControlNetModel(in_channels=4, conditioning_embedding_out_channels=(8, 8, 8, 16), **blocks)
    return StableDiffusionControlNetInpaintPipeline(controlnet=cn, **parts)


def build_sdxl(controlnet: bool = True):
    """A tiny SDXL-style inpainting pipeline (with a ControlNet when ``controlnet``)."""
    import torch
    from diffusers import (
        ControlNetModel,
        StableDiffusionXLControlNetInpaintPipeline,
        StableDiffusionXLInpaintPipeline,
        UNet2DConditionModel,
    )

    torch.manual_seed(0)
    blocks = dict(
        block_out_channels=(32, 64),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=8,
        transformer_layers_per_block=(1, 2),
        projection_class_embeddings_input_dim=80,  # 6 * 8 time ids + 32 pooled text
        cross_attention_dim=64,
        norm_num_groups=16,
    )
    unet = UNet2DConditionModel(sample_size=8, in_channels=9, out_channels=4, up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), **blocks)
    tokenizer = _tokenizer()
    parts = dict(
        vae=_vae(),
        text_encoder=_text_encoder(seed=0),
        text_encoder_2=_text_encoder(projection=True, seed=1),
        tokenizer=tokenizer,
        tokenizer_2=tokenizer,
        unet=unet,
        scheduler=_scheduler(),
        requires_aesthetics_score=False,
    )
    if not controlnet:
        return StableDiffusionXLInpaintPipeline(**parts)
    torch.manual_seed(1)
    cn = ControlNetModel(in_channels=4, conditioning_embedding_out_channels=(8, 8, 8, 16), **blocks)
    return StableDiffusionXLControlNetInpaintPipeline(controlnet=cn, **parts)


def save_tiny(folder: str | Path, *, sdxl: bool = False, controlnet: bool = True) -> Path:
    """Build a tiny pipeline and ``save_pretrained`` it into ``folder`` (safetensors)."""
    folder = Path(folder)
    pipe = build_sdxl(controlnet) if sdxl else build_sd(controlnet)
    pipe.save_pretrained(folder, safe_serialization=True)
    return folder


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", type=Path)
    ap.add_argument("--sdxl", action="store_true", help="SDXL layout (two text encoders) instead of SD 1.5")
    ap.add_argument("--no-controlnet", action="store_true", help="inpainting model only")
    args = ap.parse_args(argv)
    print(save_tiny(args.folder, sdxl=args.sdxl, controlnet=not args.no_controlnet))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
