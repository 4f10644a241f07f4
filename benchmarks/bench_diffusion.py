"""GPU benchmark of the diffusion generator at full size (random weights, real cost).

    benchmarks/gpu/run.sh                              # the one command on a fresh GPU machine (see there)
    python benchmarks/bench_diffusion.py               # on a CUDA GPU: SD 1.5 at 512, SDXL at 1024
    python benchmarks/bench_diffusion.py --cpu-check   # no GPU: full-size models on the CPU, parameters and FLOPs
    python benchmarks/bench_diffusion.py --smoke       # no GPU: every code path of the GPU run on tiny models

Models are the real architectures built from their published configs (SD 1.5 inpainting UNet with
9 input channels, its ControlNet, the VAE, CLIP ViT-L/14 text; SDXL's UNet with 9 input channels,
its ControlNet, CLIP-L + OpenCLIP bigG text), with random weights: the same FLOPs and memory
traffic as the released checkpoints, so images/s transfer, image quality does not. They run
through ``DiffusionGenerator`` itself (its input preparation, batching, seeding, samplers and
upscale), on square placements: 20 steps with classifier-free guidance (the model's scheduler) and
a 4-step LCM setting at guidance 1 (no unconditional half), fp16, SDPA attention, channels-last,
batch 1/4/8, eager and with ``torch.compile``; then the cost of each ``--upscale``: Lanczos, and
the img2img pass at the placement's size. FLOPs are counted with ``torch.utils.flop_counter`` on
1- and 2-step calls (fixed cost told apart from per-step cost); the share of the GPU's dense
fp16/bf16 peak follows. A time budget (default 420 s) skips what would not fit, and says so.
Results go to the ``bench_diffusion`` section of benchmarks/RESULTS.md, and SD 1.5's best
images/s to ``backdrop/data/measured.json``, which ``backdrop cost`` reads.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tempfile
import time
from pathlib import Path

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
    """The full-size SD 1.5 / SDXL ControlNet inpainting pipeline, built on ``device`` in ``dtype``."""
    import torch
    from diffusers import StableDiffusionControlNetInpaintPipeline, StableDiffusionXLControlNetInpaintPipeline
    from transformers import CLIPTokenizer

    from backdrop.generators.diffusion.configs import write_clip_tokenizer

    with tempfile.TemporaryDirectory() as tmp:
        write_clip_tokenizer(Path(tmp) / "l")
        write_clip_tokenizer(Path(tmp) / "g", pad_token="!")
        tok, tok2 = CLIPTokenizer.from_pretrained(Path(tmp) / "l"), CLIPTokenizer.from_pretrained(Path(tmp) / "g")
    with torch.device(device):  # random init on the GPU: seconds, where the CPU takes minutes for SDXL
        parts = sd15_components(dtype) if kind == "sd15" else sdxl_components(dtype)
    if kind == "sd15":
        pipe = StableDiffusionControlNetInpaintPipeline(
            tokenizer=tok, safety_checker=None, feature_extractor=None, requires_safety_checker=False, **parts
        )
    else:
        pipe = StableDiffusionXLControlNetInpaintPipeline(tokenizer=tok, tokenizer_2=tok2, requires_aesthetics_score=False, **parts)
    return pipe.to(device=device, dtype=dtype)


def tiny(kind: str):
    from backdrop.testing.tiny import TinySpec
    from backdrop.testing.tiny import build as build_tiny

    return build_tiny(TinySpec(sdxl=kind == "sdxl"))


def params(pipe) -> dict:
    out = {}
    for name in ("unet", "controlnet", "vae", "text_encoder", "text_encoder_2"):
        m = getattr(pipe, name, None)
        if m is not None:
            out[name] = sum(p.numel() for p in m.parameters())
    return out


def requests(n: int, placement: str = "square"):
    """``n`` generation requests of the demo mug on ``placement`` (what a catalog run sends)."""
    import backdrop
    from backdrop.creative.catalog import load_image
    from backdrop.creative.pipeline import request_for
    from backdrop.imaging.layout import layout, load_placements
    from backdrop.imaging.mask import product_mask
    from backdrop.styles import StyleLibrary

    rgba = load_image(Path(backdrop.__file__).parent / "data" / "demo" / "images" / "mighty-mug.png")
    scene = layout(rgba[..., :3].copy(), product_mask(rgba), load_placements()[placement])
    style = StyleLibrary.load().for_category(("Accessories", "Homewares"))[0]
    return [request_for(scene, style, {"title": "Mighty Mug"}, seed) for seed in range(n)]


def generator(pipe, scheduler: str, batch: int, steps: int | None = None, **options):
    from backdrop.generators.diffusion import DiffusionGenerator

    pipe.scheduler = pipe._bench_scheduler  # every setting starts from the model's own scheduler
    return DiffusionGenerator("bench", pipeline=pipe, scheduler=scheduler, steps=steps, batch_size=batch, channels_last=True, **options)


def sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def count_flops(pipe, scheduler: str, guidance: float | None) -> tuple[float, float]:
    """(fixed, per step) FLOPs of one image: a 1-step and a 2-step call counted, so text encoding
    and VAE decoding (once per call) are told apart from UNet + ControlNet (every step)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    totals = []
    for steps in (1, 2):
        gen = generator(pipe, scheduler, 1, steps=steps, guidance_scale=guidance)
        counter = FlopCounterMode(display=False)
        with counter, torch.inference_mode():
            gen.generate_raw(requests(1))
        totals.append(float(counter.get_total_flops()))
    per_step = totals[1] - totals[0]
    return totals[0] - per_step, per_step


def timed(fn, reps: int) -> tuple[float, float]:
    """(best seconds of ``reps`` calls after one warm-up, peak GPU memory in GiB during them)."""
    import torch

    fn()
    sync()
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        sync()
        best = min(best, time.perf_counter() - t0)
    peak = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else float("nan")
    return best, peak


SETTINGS = {  # name -> (scheduler, steps, guidance)
    "20 steps, CFG 7.5": ("default", 20, 7.5),
    "LCM 4 steps, guidance 1": ("lcm", 4, 1.0),
}


def run_suite(kinds, batches, compile_batches, budget_s, reps, build_fn, peak, backend="inductor") -> tuple[list[str], dict]:
    """The table rows and the measured figures (``best``: SD 1.5's best 20-step images/s). Eager
    rows for every model first, then the upscale costs, then ``torch.compile`` while the budget
    leaves room for a compile (the slowest step: minutes for SDXL)."""
    import torch

    t_start = time.perf_counter()
    rows, figures = [], {"best": 0.0, "skipped": []}

    def left() -> float:
        return budget_s - (time.perf_counter() - t_start)

    def measure(kind, pipe, flops, compiled, batch_list):
        for name, (sch, steps, g) in SETTINGS.items():
            for b in batch_list:
                if left() <= 0:
                    figures["skipped"].append(f"{kind} {name} batch {b}{' compiled' if compiled else ''}")
                    continue
                gen = generator(pipe, sch, b, steps=steps, guidance_scale=g)
                reqs = requests(b)
                seconds, mem = timed(lambda gen=gen, reqs=reqs: gen.generate_raw(reqs), reps)
                ips = b / seconds
                fixed, per_step = flops[name]
                achieved = ips * (fixed + per_step * steps) / 1e12
                share = f"{100 * achieved / peak:.0f}%" if peak else "?"
                w, h = gen.size_for(reqs[0].scene)
                row = (
                    f"| {kind} | {w}x{h} | {name} | {b} | {'yes' if compiled else 'no'} | {ips:.2f} | "
                    f"{steps / seconds:.1f} | {mem:.1f} | {achieved:.0f} | {share} |"
                )
                print(row, flush=True)
                rows.append(row)
                if kind == "sd15" and sch == "default":
                    figures["best"] = max(figures["best"], ips)

    pipes = {}
    for kind in kinds:
        if left() <= 0:
            figures["skipped"].append(f"{kind} (all)")
            continue
        t0 = time.perf_counter()
        pipe = build_fn(kind)
        pipe._bench_scheduler = pipe.scheduler
        print(f"{kind}: built in {time.perf_counter() - t0:.0f} s", flush=True)
        flops = {name: count_flops(pipe, sch, g) for name, (sch, _, g) in SETTINGS.items()}
        pipes[kind] = (pipe, flops)
        measure(kind, pipe, flops, False, batches)
        if kind == "sd15":
            if left() > 0:
                figures["upscale"] = upscale_costs(pipe, max(batches), reps)
            else:
                figures["skipped"].append("upscale")
    for kind, (pipe, flops) in pipes.items():
        if not compile_batches:
            continue
        if left() < (60 if kind == "sd15" else 150):  # room for the compile itself
            figures["skipped"].append(f"{kind} compiled")
            continue
        pipe.unet = torch.compile(pipe.unet, backend=backend)
        pipe.controlnet = torch.compile(pipe.controlnet, backend=backend)
        measure(kind, pipe, flops, True, compile_batches)
    pipes.clear()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return rows, figures


def upscale_costs(pipe, batch: int, reps: int) -> list[str]:
    """Seconds per image of each --upscale from SD 1.5's 512x512 output to the 1080x1080 square."""
    gen = generator(pipe, "default", batch, steps=20, upscale="lanczos")
    ref = generator(pipe, "default", batch, steps=20, upscale="img2img", refine_strength=0.3)
    reqs = requests(batch)
    raws = gen.generate_raw(reqs)
    base, _ = timed(lambda: gen.generate_raw(reqs), reps)
    lanczos, _ = timed(lambda: gen.to_canvas_batch(raws, reqs), reps)
    img2img, mem = timed(lambda: ref.to_canvas_batch(raws, reqs), reps)
    w, h = ref.refine_size(reqs[0].scene)
    lines = [
        f"| generation at {gen.size_for(reqs[0].scene)[0]} px, 20 steps | {1000 * base / batch:.0f} | 1.00 | – |",
        f"| `--upscale lanczos` to 1080x1080 (CPU, cv2) | {1000 * lanczos / batch:.1f} | {lanczos / base:.3f} | – |",
        f"| `--upscale img2img` at {w}x{h}, strength 0.3 (6 of 20 steps) | {1000 * img2img / batch:.0f} | {img2img / base:.2f} | {mem:.1f} |",
    ]
    for line in lines:
        print(line, flush=True)
    return lines


def smoke(batches: list[int], compile_batches: list[int]) -> None:
    """Every path of the GPU run on tiny models on the CPU; writes nothing."""
    # torch.compile's "eager" backend: Dynamo traces the models as on the GPU, without building kernels
    rows, figures = run_suite(["sd15", "sdxl"], batches, compile_batches, budget_s=600, reps=1, build_fn=tiny, peak=None, backend="eager")
    assert len(rows) == 2 * len(SETTINGS) * (len(batches) + len(compile_batches)), rows
    assert figures["best"] > 0 and len(figures["upscale"]) == 3, figures
    print(f"smoke: {len(rows)} rows, upscale rows {len(figures['upscale'])}: every path of the GPU run works")


def cpu_check(lines: list[str]) -> None:
    import torch

    pipe = build("sd15", torch.float32, "cpu")
    pipe._bench_scheduler = pipe.scheduler
    counts = params(pipe)
    fixed, flops = count_flops(pipe, "default", 7.5)
    t0 = time.perf_counter()
    with torch.inference_mode():
        generator(pipe, "default", 1, steps=1).generate_raw(requests(1))
    one = time.perf_counter() - t0
    lines += [
        "No GPU was lent to the session that ran this, so no GPU figures are here yet: on a CUDA machine",
        "`benchmarks/gpu/run.sh` measures images/s, it/s and peak memory at batch 1/4/8, 20 steps with CFG and",
        "4-step LCM, fp16, with and without `torch.compile`, for SD 1.5 at 512x512 and SDXL at 1024x1024, and the",
        "cost of each `--upscale`, and rewrites this section (and `backdrop cost`'s GPU figure).",
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
        "",
        f"Cost of `--upscale`: `lanczos` (cv2, 512 -> 1080x1080) took {lanczos_ms():.1f} ms per image on this CPU. `img2img`,",
        "counted on the meta device for SD 1.5 + ControlNet (text encoding left out of both; the pass runs at",
        "the placement's size rounded up to the model's multiple, 64):",
        "",
        *upscale_flops(),
        "",
        "The img2img pass costs more than the generation it refines: UNet attention grows with the square of",
        "the latent's pixels. (The meta count of a 512x512 generation is above the one counted on",
        "the pipeline: the two count attention differently; the ratio uses one method for both.) Measured",
        "seconds come with the GPU run.",
    ]


def upscale_flops(placements=("square", "story")) -> list[str]:
    """The ``--upscale img2img`` pass's FLOPs next to the generation's, for full-size SD 1.5 +
    ControlNet, counted on the meta device (shapes only: seconds, no memory)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from backdrop.generators.diffusion import ModelGeometry
    from backdrop.imaging.layout import load_placements

    with torch.device("meta"):
        parts = sd15_components(torch.float32)
    unet, controlnet, vae = parts["unet"], parts["controlnet"], parts["vae"]
    geometry = ModelGeometry.from_configs(dict(vae.config), dict(unet.config))

    def counted(fn) -> float:
        counter = FlopCounterMode(display=False)
        with counter, torch.no_grad():
            fn()
        return float(counter.get_total_flops())

    def costs(w: int, h: int) -> tuple[float, float]:
        """(one denoising step with guidance: UNet + ControlNet on a batch of 2; VAE encode + decode)."""
        meta = dict(device="meta")
        x, x9 = torch.empty(2, 4, h // 8, w // 8, **meta), torch.empty(2, 9, h // 8, w // 8, **meta)
        ctx, t, img = torch.empty(2, 77, 768, **meta), torch.tensor([500, 500], **meta), torch.empty(2, 3, h, w, **meta)

        def denoise():
            down, mid = controlnet(x, t, encoder_hidden_states=ctx, controlnet_cond=img, return_dict=False)
            unet(x9, t, encoder_hidden_states=ctx, down_block_additional_residuals=down, mid_block_additional_residual=mid)

        return counted(denoise), counted(lambda: (vae.encode(torch.empty(1, 3, h, w, **meta)), vae.decode(x[:1])))

    lines = [
        "| placement | generation (20 steps) | TFLOP | img2img pass (0.3: 6 steps) | TFLOP | pass / generation |",
        "|---|---|---:|---|---:|---:|",
    ]
    for name in placements:
        p = load_placements()[name]
        gw, gh = geometry.size_for(p.width, p.height, name)
        rw, rh = geometry.round_up(p.width, p.height)
        step, vae_cost = costs(gw, gh)
        generation = 20 * step + vae_cost
        rstep, rvae = costs(rw, rh)
        refine = 6 * rstep + rvae
        lines.append(
            f"| {name} {p.width}x{p.height} | {gw}x{gh} | {generation / 1e12:.0f} | {rw}x{rh} | {refine / 1e12:.0f} | {refine / generation:.1f}x |"
        )
    return lines


def lanczos_ms(reps: int = 20) -> float:
    import cv2
    import numpy as np

    raw = np.random.default_rng(0).integers(0, 255, (512, 512, 3), dtype=np.uint8)
    t0 = time.perf_counter()
    for _ in range(reps):
        cv2.resize(raw, (1080, 1080), interpolation=cv2.INTER_LANCZOS4)
    return 1000 * (time.perf_counter() - t0) / reps


def write_measured(name: str, ips: float) -> None:
    from backdrop.experiments.cost import MEASURED_FILE

    data = json.loads(MEASURED_FILE.read_text()) if MEASURED_FILE.exists() else {}
    data["diffusion"] = {
        "images_per_s_per_gpu": round(ips, 2),
        "source": f"measured by benchmarks/bench_diffusion.py on {name} (SD 1.5 inpainting + ControlNet, 512x512, 20 steps, fp16, best batch)",
        "measured_at": f"{dt.date.today():%Y-%m-%d}",
    }
    MEASURED_FILE.write_text(json.dumps(data, indent=2) + "\n")
    print(f"wrote {MEASURED_FILE}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cpu-check", action="store_true", help="no GPU: build the full-size SD 1.5 pipeline, time one step on the CPU")
    ap.add_argument("--smoke", action="store_true", help="no GPU: run every path of the GPU benchmark on tiny models")
    ap.add_argument("--dtype", default="float16", choices=["float16", "bfloat16"])
    ap.add_argument("--batches", default="1,4,8")
    ap.add_argument("--compile-batches", default="4", help="batches timed with torch.compile (each one compiles; '' for none)")
    ap.add_argument("--models", default="sd15,sdxl")
    ap.add_argument("--budget-s", type=float, default=420, help="skip (and report) what starts after this many seconds")
    ap.add_argument("--reps", type=int, default=2)
    args = ap.parse_args()

    import diffusers
    import torch
    import transformers

    transformers.logging.set_verbosity_error()  # CLIP's 77-token truncation notice, per call
    diffusers.utils.logging.set_verbosity_error()
    # the UNet and the ControlNet share diffusers' wrapper function: without room, Dynamo stops
    # compiling after 8 shapes and the remaining "compiled" rows would silently run eager
    torch._dynamo.config.recompile_limit = 64
    batches = [int(b) for b in args.batches.split(",")]
    compile_batches = [int(b) for b in args.compile_batches.split(",") if b]
    if args.smoke:
        smoke(batches, compile_batches)
        return
    lines = ["## Diffusion generator (`bench_diffusion.py`)", ""]
    if args.cpu_check or not torch.cuda.is_available():
        if not args.cpu_check:
            print("no CUDA GPU: run with --cpu-check or --smoke, or on a GPU machine (benchmarks/gpu/run.sh)", file=sys.stderr)
            sys.exit(2)
        cpu_check(lines)
        print("\n".join(lines))
        update_section("bench_diffusion", "\n".join(lines))
        return

    name = torch.cuda.get_device_name(0)
    peak = peak_for(name)
    dtype = getattr(torch, args.dtype)
    t0 = time.perf_counter()
    rows, figures = run_suite(
        args.models.split(","), batches, compile_batches, args.budget_s, args.reps, lambda k: build(k, dtype, "cuda"), peak
    )
    lines += [
        f"GPU: {name} (dense {args.dtype} peak {peak or '?'} TFLOP/s), torch {torch.__version__}; ControlNet inpainting through "
        f"`DiffusionGenerator` (square placement), SDPA, channels-last, random weights at full size; best of {args.reps} timed calls "
        f"after a warm-up; {time.perf_counter() - t0:.0f} s in all.",
        "",
        "| model | generation size | setting | batch | compile | images/s | it/s | peak GiB | TFLOP/s achieved | share of peak |",
        "|---|---|---|---:|---|---:|---:|---:|---:|---:|",
        *rows,
    ]
    if figures.get("upscale"):
        lines += ["", "Upscale from SD 1.5's output to the 1080x1080 square:", "",
                  "| step | ms per image | relative to generation | peak GiB |", "|---|---:|---:|---:|", *figures["upscale"]]  # fmt: skip
    if figures["skipped"]:
        lines += ["", f"Skipped for the {args.budget_s:.0f} s budget: {', '.join(figures['skipped'])}."]
    update_section("bench_diffusion", "\n".join(lines))
    if figures["best"]:
        write_measured(name, figures["best"])


if __name__ == "__main__":
    main()
