"""GPU benchmark of the diffusion generator's pipelines at full size (random weights, real cost).

    python benchmarks/bench_diffusion.py                 # on a CUDA GPU: SD 1.5 at 512, SDXL at 1024
    python benchmarks/bench_diffusion.py --cpu-check     # no GPU: build the full-size models, time one
                                                         # SD 1.5 step on the CPU, count parameters/FLOPs

Models are the real architectures built from their published configs (SD 1.5 inpainting UNet with
9 input channels, its ControlNet, the VAE, CLIP ViT-L/14 text; SDXL's UNet with 9 input channels,
its ControlNet, CLIP-L + OpenCLIP bigG text), with random weights: the same FLOPs and memory
traffic as the released checkpoints, so images/s transfer, image quality does not. They run through
``StableDiffusion(XL)ControlNetInpaintPipeline`` exactly as ``DiffusionGenerator`` calls it: 20 steps,
classifier-free guidance, fp16 (bf16 with --dtype bfloat16), SDPA attention, channels-last,
batch 1/4/8, with and without ``torch.compile``. The share of the GPU's dense bf16/fp16 peak comes
from FLOPs counted with ``torch.utils.flop_counter`` on one denoising step.
Results go to the ``bench_diffusion`` section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _results import update_section

#: dense (no sparsity) bf16/fp16 tensor-core peaks, TFLOP/s, from the vendors' datasheets
PEAK_TFLOPS = {
    "H200": 989.0,
    "H100 SXM": 989.0,
    "H100 80GB HBM3": 989.0,
    "H100 PCIe": 756.0,
    "H100 NVL": 835.0,
    "A100": 312.0,
    "L40S": 362.0,
    "L4": 121.0,
    "A10G": 125.0,
}


def peak_for(name: str) -> float | None:
    for key, value in PEAK_TFLOPS.items():
        if key.lower() in name.lower():
            return value
    if "H100" in name:
        return 989.0
    return None


def sd15_components(dtype):
    import torch
    from diffusers import ControlNetModel, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(0)
    unet_cfg = dict(
        block_out_channels=(320, 640, 1280, 1280),
        layers_per_block=2,
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        cross_attention_dim=768,
        attention_head_dim=8,
    )
    unet = UNet2DConditionModel(
        sample_size=64, in_channels=9, out_channels=4, up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3, **unet_cfg
    )
    controlnet = ControlNetModel(in_channels=4, conditioning_embedding_out_channels=(16, 32, 96, 256), **unet_cfg)
    return dict(
        unet=unet,
        controlnet=controlnet,
        vae=_vae(),
        text_encoder=CLIPTextModel(
            CLIPTextConfig(
                hidden_size=768,
                intermediate_size=3072,
                num_attention_heads=12,
                num_hidden_layers=12,
                vocab_size=49408,
                max_position_embeddings=77,
                projection_dim=768,
                hidden_act="quick_gelu",
            )
        ),
        scheduler=DDIMScheduler(
            beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False, set_alpha_to_one=False, steps_offset=1
        ),
    )


def sdxl_components(dtype):
    import torch
    from diffusers import ControlNetModel, EulerDiscreteScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    torch.manual_seed(0)
    unet_cfg = dict(
        block_out_channels=(320, 640, 1280),
        layers_per_block=2,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        transformer_layers_per_block=(1, 2, 10),
        attention_head_dim=(5, 10, 20),
        cross_attention_dim=2048,
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=256,
        projection_class_embeddings_input_dim=2816,
    )
    unet = UNet2DConditionModel(
        sample_size=128, in_channels=9, out_channels=4, up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"), **unet_cfg
    )
    controlnet = ControlNetModel(in_channels=4, conditioning_embedding_out_channels=(16, 32, 96, 256), **unet_cfg)
    clip_l = CLIPTextModel(
        CLIPTextConfig(
            hidden_size=768,
            intermediate_size=3072,
            num_attention_heads=12,
            num_hidden_layers=12,
            vocab_size=49408,
            projection_dim=768,
            hidden_act="quick_gelu",
        )
    )
    clip_g = CLIPTextModelWithProjection(
        CLIPTextConfig(
            hidden_size=1280,
            intermediate_size=5120,
            num_attention_heads=20,
            num_hidden_layers=32,
            vocab_size=49408,
            projection_dim=1280,
            hidden_act="gelu",
        )
    )
    return dict(
        unet=unet,
        controlnet=controlnet,
        vae=_vae(scaling=0.13025),
        text_encoder=clip_l,
        text_encoder_2=clip_g,
        scheduler=EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", steps_offset=1),
    )


def _vae(scaling: float = 0.18215):
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        block_out_channels=(128, 256, 512, 512),
        layers_per_block=2,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=4,
        sample_size=512,
        scaling_factor=scaling,
    )


def build(kind: str, dtype, device: str):
    import torch
    from diffusers import StableDiffusionControlNetInpaintPipeline, StableDiffusionXLControlNetInpaintPipeline
    from transformers import CLIPTokenizer

    from backdrop.testing.tiny import write_tokenizer

    with tempfile.TemporaryDirectory() as tmp:
        write_tokenizer(Path(tmp))
        tok = CLIPTokenizer.from_pretrained(tmp)
    if kind == "sd15":
        parts = sd15_components(dtype)
        pipe = StableDiffusionControlNetInpaintPipeline(
            tokenizer=tok, safety_checker=None, feature_extractor=None, requires_safety_checker=False, **parts
        )
    else:
        parts = sdxl_components(dtype)
        pipe = StableDiffusionXLControlNetInpaintPipeline(tokenizer=tok, tokenizer_2=tok, requires_aesthetics_score=False, **parts)
    pipe = pipe.to(device=device, dtype=dtype)
    pipe.set_progress_bar_config(disable=True)
    pipe.unet.to(memory_format=torch.channels_last)
    pipe.controlnet.to(memory_format=torch.channels_last)
    return pipe


def params(pipe) -> dict:
    out = {}
    for name in ("unet", "controlnet", "vae", "text_encoder", "text_encoder_2"):
        m = getattr(pipe, name, None)
        if m is not None:
            out[name] = sum(p.numel() for p in m.parameters())
    return out


def inputs(size: int, batch: int):
    from PIL import Image

    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8))
    mask = np.full((size, size), 255, np.uint8)
    mask[size // 4 : 3 * size // 4, size // 3 : 2 * size // 3] = 0
    return dict(
        prompt=["professional product photo of a blue sneaker on a marble countertop, soft light"] * batch,
        negative_prompt=["text, watermark, duplicate, extra objects"] * batch,
        image=[img] * batch,
        mask_image=[Image.fromarray(mask, "L")] * batch,
        control_image=[img] * batch,
        height=size,
        width=size,
        strength=1.0,
        guidance_scale=7.5,
        output_type="np",
    )


def count_flops(pipe, size: int, batch: int) -> tuple[float, float]:
    """(fixed, per step) FLOPs of a pipeline call: counted on a 1-step and a 2-step call, so text
    encoding and VAE decoding (once per call) are told apart from UNet + ControlNet (every step)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    totals = []
    for steps in (1, 2):
        counter = FlopCounterMode(display=False)
        with counter, torch.inference_mode():
            pipe(**inputs(size, batch), num_inference_steps=steps)
        totals.append(float(counter.get_total_flops()))
    per_step = totals[1] - totals[0]
    return totals[0] - per_step, per_step


def time_run(pipe, size: int, batch: int, steps: int, reps: int = 3) -> float:
    import torch

    kw = inputs(size, batch)
    pipe(**kw, num_inference_steps=2)  # warm-up (and compile)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        pipe(**kw, num_inference_steps=steps)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return batch / best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cpu-check", action="store_true", help="no GPU: build the full-size SD 1.5 pipeline, time one step on the CPU")
    ap.add_argument("--dtype", default="float16", choices=["float16", "bfloat16"])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batches", default="1,4,8")
    ap.add_argument("--models", default="sd15,sdxl")
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile runs")
    args = ap.parse_args()

    import torch

    lines = ["## Diffusion generator (`bench_diffusion.py`)", ""]
    if args.cpu_check or not torch.cuda.is_available():
        if not args.cpu_check:
            print("no CUDA GPU: run with --cpu-check for the CPU validation, or on a GPU machine", file=sys.stderr)
            sys.exit(2)
        pipe = build("sd15", torch.float32, "cpu")
        counts = params(pipe)
        fixed, flops = count_flops(pipe, 512, 1)
        t0 = time.perf_counter()
        with torch.inference_mode():
            pipe(**inputs(512, 1), num_inference_steps=1)
        one = time.perf_counter() - t0
        lines += [
            "No GPU was lent to the session that ran this, so no GPU figures are here yet: on a CUDA machine",
            "`python benchmarks/bench_diffusion.py` measures images/s at batch 1/4/8, 20 steps, fp16, with and",
            "without `torch.compile`, for SD 1.5 at 512x512 and SDXL at 1024x1024, and rewrites this section.",
            "",
            "CPU check (full-size SD 1.5 inpainting + ControlNet, random weights, fp32, 512x512, batch 1):",
            "",
            "| component | parameters |",
            "|---|---:|",
            *[f"| {k} | {v / 1e6:,.0f} M |" for k, v in counts.items()],
            "",
            "Counted with torch.utils.flop_counter: one denoising step (UNet + ControlNet, both halves of",
            f"classifier-free guidance) = {flops / 1e12:.2f} TFLOP; text encoding + VAE decode = {fixed / 1e12:.2f} TFLOP per image;",
            f"a 1-step pipeline call took {one:.1f} s on this CPU. 20 steps = {(fixed + 20 * flops) / 1e12:.1f} TFLOP per image:",
            f"at 40% of an H100's 989 TFLOP/s dense fp16 peak that is ~{(0.4 * 989e12) / (fixed + 20 * flops):.0f} images/s",
            "per GPU -- an estimate from counted FLOPs and an assumed utilisation, not a measurement.",
        ]
        print("\n".join(lines))
        update_section("bench_diffusion", "\n".join(lines))
        return

    name = torch.cuda.get_device_name(0)
    peak = peak_for(name)
    dtype = getattr(torch, args.dtype)
    batches = [int(b) for b in args.batches.split(",")]
    lines += [
        f"GPU: {name} (dense {args.dtype} peak {peak or '?'} TFLOP/s), torch {torch.__version__}; "
        f"{args.steps} steps, classifier-free guidance, ControlNet, SDPA, channels-last; random weights at full size.",
        "",
        "| model | resolution | batch | compile | images/s | TFLOP/s achieved | share of peak |",
        "|---|---|---:|---|---:|---:|---:|",
    ]
    for kind in args.models.split(","):
        size = 512 if kind == "sd15" else 1024
        pipe = build(kind, dtype, "cuda")
        fixed, per_step = count_flops(pipe, size, 1)
        for compiled in [False] if args.no_compile else [False, True]:
            if compiled:
                pipe.unet = torch.compile(pipe.unet, mode="max-autotune-no-cudagraphs")
                pipe.controlnet = torch.compile(pipe.controlnet, mode="max-autotune-no-cudagraphs")
            for b in batches:
                ips = time_run(pipe, size, b, args.steps)
                achieved = ips * (fixed + per_step * args.steps) / 1e12
                share = f"{100 * achieved / peak:.0f}%" if peak else "?"
                row = f"| {kind} | {size}x{size} | {b} | {'yes' if compiled else 'no'} | {ips:.2f} | {achieved:.0f} | {share} |"
                print(row, flush=True)
                lines.append(row)
        del pipe
        torch.cuda.empty_cache()
    update_section("bench_diffusion", "\n".join(lines))


if __name__ == "__main__":
    main()
