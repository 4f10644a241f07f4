"""Any model a user brings, through the production command: a matrix of tiny pipelines built at
test time (VAE scale factors, UNet depths, v-prediction, SDXL, ControlNets), broken folders,
single-file checkpoints, LoRAs, samplers and the img2img upscale."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the [diffusion] extra (make test installs it)")
pytest.importorskip("diffusers")

from backdrop.cli import DEMO_DIR, main
from backdrop.creative.catalog import load_catalog
from backdrop.creative.pipeline import CreativeMaker, PipelineConfig
from backdrop.creative.store import ORIGINAL, CreativeStore
from backdrop.generators.diffusion import DiffusionGenerator, GeometryError, ModelError
from backdrop.generators.diffusion.configs import PACKAGED, detect_checkpoint, packaged_config
from backdrop.generators.diffusion.schedulers import defaults
from backdrop.imaging.layout import load_placements
from backdrop.styles import StyleLibrary
from backdrop.testing.ldm import save_single_file
from backdrop.testing.tiny import TinySpec, build, save_tiny, save_tiny_lora

PLACEMENTS = load_placements()
LAX = ["--gate-min-iou", "0", "--gate-max-expansion", "1000", "--gate-max-halo", "1000", "--gate-attempts", "1"]
CATALOG = str(DEMO_DIR / "products.csv")
STYLE = "marble-counter"


@pytest.fixture(autouse=True)
def _configs_in_tmp(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("BACKDROP_MODEL_CONFIGS", str(tmp_path_factory.getbasetemp() / "model-configs"))


def generate(store, *model_args, placements=("square", "story", "landscape"), extra=(), capsys=None):
    """``backdrop generate --generator diffusion ... --json``: (exit code, summary or stderr)."""
    args = ["generate", CATALOG, "--out", str(store), "--generator", "diffusion", *model_args, "--limit", "1",
            "--placements", ",".join(placements), "--styles", STYLE, "--no-progress", "--json", *LAX, *extra]  # fmt: skip
    code = main(args)
    out = capsys.readouterr()
    return code, (json.loads(out.out) if code == 0 else out.err)


def check_store(store, options: dict, placements) -> list:
    """Every creative of the store: made by diffusion, gate scores stored, product pixels exact; and
    the baseline (the catalog photo on the canvas, no generator) on each placement. Returns the generated ones."""
    s = CreativeStore(store, readonly=True)
    product = load_catalog(DEMO_DIR / "products.csv").products[0]
    config = PipelineConfig(
        placements=tuple(PLACEMENTS[p] for p in placements),
        library=StyleLibrary.load(),
        styles=(STYLE,),
        generator="diffusion",
        generator_options=options,
        gate={"min_iou": 0, "max_expansion": 1000, "max_halo": 1000, "max_attempts": 1},
    )
    maker = CreativeMaker(config, s)
    scenes = {p.spec.key: p.scene for p in maker.prepare(product, maker.plan(product))}
    records = [r for r in s if r.style != ORIGINAL]
    assert {r.key for r in records} == set(scenes)  # the CLI and the library agree on every key
    assert sorted(r.placement for r in s.creatives(style=ORIGINAL)) == sorted(placements)
    for rec in records:
        assert rec.generator == "diffusion" and rec.metrics["gate"] == "pass"
        assert {"expansion", "iou", "halo", "attempts"} <= set(rec.metrics)
        img, scene = s.read_image(rec), scenes[rec.key]
        assert img.shape == (scene.height, scene.width, 3)
        x0, y0, x1, y1 = scene.box
        solid = scene.product_alpha == 255
        assert np.array_equal(img[y0:y1, x0:x1][solid], scene.product_rgb[solid])
    return records


MATRIX = {
    # the report: a VAE with two blocks (scale factor 2) failed every creative
    "vae2-unet2": dict(vae_blocks=2, unet_blocks=2, sample_size=32),
    "vae4-unet3": dict(vae_blocks=3, unet_blocks=3, sample_size=24),
    "vae8-unet4": dict(vae_blocks=4, unet_blocks=4, sample_size=48),
    "sd2-v-prediction": dict(prediction_type="v_prediction"),
    "sdxl": dict(sdxl=True),
    "sdxl-vae4-unet3": dict(sdxl=True, vae_blocks=3, unet_blocks=3, sample_size=24),
}


@pytest.mark.parametrize("name", list(MATRIX))
def test_model_matrix_through_the_production_command(name, tmp_path, capsys):
    shape = MATRIX[name]
    folder = save_tiny(tmp_path / "model", **shape)
    spec = TinySpec(**shape)
    multiple = math.lcm(8, 2 ** (spec.vae_blocks - 1) * 2 ** (spec.unet_blocks - 1))
    places = ("square", "story", "landscape")
    sizes = DiffusionGenerator.generation_sizes(folder, [PLACEMENTS[p] for p in places])
    for p, (w, h) in sizes.items():
        target = PLACEMENTS[p].width / PLACEMENTS[p].height
        assert w % multiple == 0 and h % multiple == 0 and abs(w / h - target) / target <= 0.06
    code, summary = generate(tmp_path / "store", "--model", str(folder), "--steps", "1", placements=places, capsys=capsys)
    assert code == 0, summary
    assert (summary["generated"], summary["failed"]) == (2 * 3, 0)  # on each placement the creative and the baseline
    records = check_store(tmp_path / "store", {"model": str(folder), "steps": 1}, places)
    expected = ("StableDiffusionXL" if spec.sdxl else "StableDiffusion") + "ControlNetInpaintPipeline"
    assert {r.params["generator"]["pipeline"] for r in records} == {expected}


@pytest.mark.parametrize("where", ["separate", "none"])
def test_controlnet_passed_separately_or_none(where, tmp_path, capsys):
    pipe = build(TinySpec(vae_blocks=3, unet_blocks=3, sample_size=24))
    from diffusers import StableDiffusionInpaintPipeline

    base = tmp_path / "base"
    StableDiffusionInpaintPipeline(
        **{k: v for k, v in pipe.components.items() if k != "controlnet"}, requires_safety_checker=False
    ).save_pretrained(base)
    args = ["--model", str(base), "--steps", "1"]
    options: dict = {"model": str(base), "steps": 1}
    if where == "separate":
        pipe.controlnet.save_pretrained(tmp_path / "cn")
        args += ["--controlnet", str(tmp_path / "cn")]
        options["controlnet"] = str(tmp_path / "cn")
    code, summary = generate(tmp_path / "store", *args, capsys=capsys)
    assert code == 0, summary
    assert summary["generated"] == 2 * 3
    records = check_store(tmp_path / "store", options, ("square", "story", "landscape"))
    spec = records[0].params["generator"]
    assert spec["pipeline"] == ("StableDiffusionControlNetInpaintPipeline" if where == "separate" else "StableDiffusionInpaintPipeline")
    assert spec["control"] == ("canny" if where == "separate" else "none")


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    return save_tiny(tmp_path_factory.mktemp("tiny") / "m", controlnet=False)


def _broken(tmp_path, tiny_folder, damage):
    folder = tmp_path / "broken"
    shutil.copytree(tiny_folder, folder)
    return folder, damage(folder)


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(
            lambda f: (shutil.rmtree(f / "unet"), [str(f / "unet"), "missing", "UNet2DConditionModel"])[1], id="missing-component"
        ),
        pytest.param(
            lambda f: ((f / "model_index.json").write_text("{not json"), [str(f / "model_index.json"), "not valid JSON"])[1],
            id="broken-index",
        ),
        pytest.param(
            lambda f: ((f / "unet" / "config.json").write_text("[1, 2"), [str(f / "unet" / "config.json"), "not valid JSON"])[1],
            id="broken-config",
        ),
        pytest.param(
            lambda f: ((f / "vae" / "diffusion_pytorch_model.safetensors").unlink(), [str(f / "vae"), "no weights"])[1],
            id="missing-weights",
        ),
        pytest.param(
            lambda f: (
                (f / "model_index.json").write_text(json.dumps({"_class_name": "FluxPipeline"})),
                ["FluxPipeline", "expected Stable Diffusion"],
            )[1],
            id="other-pipeline",
        ),
    ],
)
def test_a_broken_folder_is_an_error_naming_the_file(damage, tmp_path, tiny_folder, capsys):
    folder, expected = _broken(tmp_path, tiny_folder, damage)
    code, err = generate(tmp_path / "store", "--model", str(folder), capsys=capsys)
    assert code == 2
    for text in expected:
        assert text in err
    assert not (tmp_path / "store").exists() or not list(CreativeStore(tmp_path / "store", readonly=True))


def test_a_placement_the_model_cannot_generate_and_a_controlnet_that_does_not_fit(tmp_path, capsys):
    small = save_tiny(tmp_path / "small", vae_blocks=4, unet_blocks=4, sample_size=8)  # 64 px native, sides multiples of 64
    code, err = generate(tmp_path / "s1", "--model", str(small), placements=("square", "story"), capsys=capsys)
    assert code == 2 and "placement story" in err and str(small) in err and "multiples of 64" in err
    with pytest.raises(GeometryError):
        DiffusionGenerator.generation_sizes(small, [PLACEMENTS["story"]])
    assert DiffusionGenerator.generation_sizes(small, [PLACEMENTS["square"]]) == {"square": (64, 64)}
    # a ControlNet built for a VAE of scale factor 8, given to a model whose VAE has scale factor 2
    other = save_tiny(tmp_path / "vae2", vae_blocks=2, controlnet=False, sample_size=32)
    build(TinySpec()).controlnet.save_pretrained(tmp_path / "cn8")
    code, err = generate(tmp_path / "s2", "--model", str(other), "--controlnet", str(tmp_path / "cn8"), capsys=capsys)
    assert code == 2 and str(tmp_path / "cn8") in err and "does not fit" in err and "downsamples by 8" in err


# -- single-file checkpoints ----------------------------------------------------------------


def test_single_file_checkpoint_gives_the_same_creatives_as_its_folder(tmp_path, tiny_folder, capsys):
    ckpt = save_single_file(tiny_folder, tmp_path / "community-finetune.safetensors")
    assert detect_checkpoint(_header(ckpt)) == "sd15-inpaint"
    code, from_file = generate(tmp_path / "file", "--model", str(ckpt), "--model-config", str(tiny_folder), "--steps", "2", capsys=capsys)
    assert code == 0, from_file
    code, from_folder = generate(tmp_path / "folder", "--model", str(tiny_folder), "--steps", "2", capsys=capsys)
    assert code == 0 and from_file["generated"] == from_folder["generated"] == 2 * 3
    a, b = CreativeStore(tmp_path / "file", readonly=True), CreativeStore(tmp_path / "folder", readonly=True)
    by_place = {r.placement: r for r in b if r.style != ORIGINAL}
    for rec in (r for r in a if r.style != ORIGINAL):  # another model identity (so other keys), the same weights (so the same pixels)
        other = by_place[rec.placement]
        assert rec.key != other.key
        assert np.array_equal(a.read_image(rec), b.read_image(other))
    check_store(tmp_path / "file", {"model": str(ckpt), "model_config": str(tiny_folder), "steps": 2}, ("square", "story", "landscape"))


def _header(path):
    from backdrop.generators.diffusion.models import safetensors_header

    return safetensors_header(path)


def test_single_file_errors_are_clear(tmp_path, tiny_folder, capsys):
    ckpt = save_single_file(tiny_folder, tmp_path / "tiny.safetensors")
    # without --model-config the packaged SD 1.5 inpainting config is chosen: a tiny file does not fit it
    with pytest.raises(ModelError, match="packaged sd15-inpaint config: pass --model-config"):
        DiffusionGenerator(ckpt, steps=1)
    pickled = tmp_path / "old.ckpt"
    pickled.write_bytes(b"\x80\x04")
    code, err = generate(tmp_path / "s", "--model", str(pickled), capsys=capsys)
    assert code == 2 and "only .safetensors" in err
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\xff" * 64)
    code, err = generate(tmp_path / "s", "--model", str(garbage), capsys=capsys)
    assert code == 2 and "not a readable .safetensors" in err
    with pytest.raises(ModelError, match="Stable Diffusion 2 checkpoint; pass --model-config"):
        detect_checkpoint(
            {"model.diffusion_model.input_blocks.0.0.weight": {"shape": [320, 4, 3, 3]}, "cond_stage_model.model.ln_final.weight": {}}
        )
    with pytest.raises(ModelError, match="not a Stable Diffusion checkpoint"):
        detect_checkpoint({"transformer.blocks.0.weight": {"shape": [4]}})


def test_packaged_configs_are_the_released_architectures():
    """Built empty (no memory) from the written configs: the parameter counts of the released
    SD 1.5 / SDXL (inpainting) components, and CLIP's real token ids from the packaged merges."""
    from accelerate import init_empty_weights
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    released = {  # parameters of the published checkpoints
        "sd15": (859_520_964, 83_653_863, 123_060_480, None),
        "sd15-inpaint": (859_535_364, 83_653_863, 123_060_480, None),
        "sdxl": (2_567_463_684, 83_653_863, 123_060_480, 694_659_840),
        "sdxl-inpaint": (2_567_478_084, 83_653_863, 123_060_480, 694_659_840),
    }
    assert set(released) == set(PACKAGED)
    for kind, (unet, vae, clip, clip2) in released.items():
        folder = packaged_config(kind)
        with init_empty_weights():
            counts = [
                UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(folder / "unet")),
                AutoencoderKL.from_config(AutoencoderKL.load_config(folder / "vae")),
                CLIPTextModel(CLIPTextConfig.from_pretrained(folder / "text_encoder")),
            ]
            if clip2:
                counts.append(CLIPTextModelWithProjection(CLIPTextConfig.from_pretrained(folder / "text_encoder_2")))
        assert [sum(p.numel() for p in m.parameters()) for m in counts] == [n for n in (unet, vae, clip, clip2) if n]
        tok = CLIPTokenizer.from_pretrained(folder / "tokenizer")
        assert tok("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]
    tok2 = CLIPTokenizer.from_pretrained(packaged_config("sdxl") / "tokenizer_2")
    assert tok2("a cat", padding="max_length").input_ids[:5] == [49406, 320, 2368, 49407, 0]  # SDXL's second CLIP pads with "!"


# -- LoRAs, samplers, upscale -----------------------------------------------------------------


def _requests(placements=("square",)):
    from backdrop.creative.catalog import load_image
    from backdrop.creative.pipeline import request_for
    from backdrop.imaging.layout import layout
    from backdrop.imaging.mask import product_mask

    rgba = load_image(DEMO_DIR / "images" / "mighty-mug.png")
    style = StyleLibrary.load().for_category(("Accessories", "Homewares"))[0]
    return [request_for(layout(rgba[..., :3].copy(), product_mask(rgba), PLACEMENTS[p]), style, {"title": "Mug"}, 3) for p in placements]


def test_a_lora_changes_the_output_and_unloading_restores_it(tmp_path, tiny_folder, capsys):
    lora = save_tiny_lora(tiny_folder, tmp_path / "style-lora.safetensors")
    reqs = _requests()
    plain = DiffusionGenerator(tiny_folder, steps=2).generate_raw(reqs)[0]
    gen = DiffusionGenerator(tiny_folder, steps=2, loras=[f"{lora}:0.8"])
    assert gen.spec()["loras"][0][1] == 0.8
    gen_spec_loras = gen.spec()["loras"]
    styled = gen.generate_raw(reqs)[0]
    assert np.abs(styled.astype(int) - plain.astype(int)).mean() > 1.0
    gen.unload_loras()
    assert "loras" not in gen.spec()
    assert np.abs(gen.generate_raw(reqs)[0].astype(int) - plain.astype(int)).max() <= 1  # float re-subtraction
    # the folder form (save_lora_weights' pytorch_lora_weights.safetensors) is the same LoRA
    folder = tmp_path / "lora-folder"
    folder.mkdir()
    shutil.copy(lora, folder / "pytorch_lora_weights.safetensors")
    assert DiffusionGenerator.describe(tiny_folder, steps=2, loras=[f"{folder}:0.8"])["loras"] == gen_spec_loras
    zero = DiffusionGenerator(tiny_folder, steps=2, loras=[f"{lora}:0"]).generate_raw(reqs)[0]
    assert np.abs(zero.astype(int) - plain.astype(int)).max() <= 1
    # through the production command: its own creatives (the LoRA is part of the key)
    code, summary = generate(tmp_path / "s", "--model", str(tiny_folder), "--lora", f"{lora}:0.8", "--steps", "1", capsys=capsys)
    assert code == 0 and summary["generated"] == 2 * 3
    check_store(tmp_path / "s", {"model": str(tiny_folder), "loras": [f"{lora}:0.8"], "steps": 1}, ("square", "story", "landscape"))
    # a LoRA for another model is refused, naming the file
    xl = save_tiny(tmp_path / "xl", sdxl=True, controlnet=False)
    xl_lora = save_tiny_lora(xl, tmp_path / "xl-lora.safetensors")
    code, err = generate(tmp_path / "s2", "--model", str(tiny_folder), "--lora", str(xl_lora), capsys=capsys)
    assert code != 0 and str(xl_lora) in (err if isinstance(err, str) else json.dumps(err))
    code, err = generate(tmp_path / "s3", "--model", str(tiny_folder), "--lora", str(tmp_path / "nope.safetensors"), capsys=capsys)
    assert code == 2 and "no such LoRA" in err


@pytest.mark.parametrize("scheduler", ["lcm", "tcd", "dpm++", "euler-a"])
def test_each_sampler_runs_through_the_production_command_with_its_defaults(scheduler, tmp_path, tiny_folder, capsys):
    code, summary = generate(tmp_path / "s", "--model", str(tiny_folder), "--scheduler", scheduler, placements=("square",), capsys=capsys)
    assert code == 0 and summary["generated"] == 2, summary
    [rec] = check_store(tmp_path / "s", {"model": str(tiny_folder), "scheduler": scheduler}, ("square",))
    spec = rec.params["generator"]
    assert (spec["scheduler"], spec["steps"], spec["guidance_scale"]) == (scheduler, *defaults(scheduler))
    gen = DiffusionGenerator(tiny_folder, scheduler=scheduler, steps=2)
    assert type(gen.pipe.scheduler).__name__ == {"lcm": "LCMScheduler", "tcd": "TCDScheduler", "dpm++": "DPMSolverMultistepScheduler",
                                                 "euler-a": "EulerAncestralDiscreteScheduler"}[scheduler]  # fmt: skip
    a, b = gen.generate_raw(_requests()), gen.generate_raw(_requests())
    assert np.array_equal(a[0], b[0])  # seeded, ancestral samplers included


def test_img2img_upscale_paints_at_the_placement_size(tmp_path, tiny_folder, capsys):
    reqs = _requests(("square", "landscape"))
    lanczos = DiffusionGenerator(tiny_folder, steps=2)
    refined = DiffusionGenerator(tiny_folder, steps=2, upscale="img2img", refine_strength=0.5)
    raws = lanczos.generate_raw(reqs)
    assert [r.shape[:2] for r in raws] == [(64, 64), (48, 96)]  # the model's own size
    seen = []
    run = refined._run

    def recording(requests, prepared, **kw):
        seen.append(([p["size"] for p in prepared], kw["strength"]))
        return run(requests, prepared, **kw)

    refined._run = recording
    a, b = lanczos.to_canvas_batch(raws, reqs), refined.to_canvas_batch(raws, reqs)
    assert seen == [([(1088, 1088), (1200, 640)], 0.5)]  # the placements' sizes, rounded up to the model's multiple (16)
    for x, y, r in zip(a, b, reqs, strict=True):
        assert x.shape == y.shape == (r.scene.height, r.scene.width, 3)
        assert np.abs(x.astype(int) - y.astype(int)).mean() > 1.0  # the second pass painted
    code, summary = generate(
        tmp_path / "s", "--model", str(tiny_folder), "--steps", "2", "--upscale", "img2img", placements=("square",), capsys=capsys
    )
    assert code == 0 and summary["generated"] == 2
    [rec] = check_store(tmp_path / "s", {"model": str(tiny_folder), "steps": 2, "upscale": "img2img"}, ("square",))
    assert rec.params["generator"]["upscale"] == "img2img" and rec.params["generator"]["refine_strength"] == 0.3
