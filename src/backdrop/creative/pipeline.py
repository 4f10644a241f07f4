"""One product -> its creatives. The local process pool and Ray both call :class:`CreativeMaker`.

Stages (each usable on its own, so a distributed runner can put them on different workers):

1. :meth:`CreativeMaker.plan` — the creatives a product needs and their keys. It needs the photo
   analysis (cut sides, on-model: they decide the layout and the styles), which is cached in the
   store by image content, so planning a product seen before decodes nothing.
   :meth:`CreativeMaker.plan_originals` — the baseline on every placement (:mod:`.original`).
2. :meth:`CreativeMaker.prepare` — decode, mask, palette, layout on each placement canvas.
3. the generator renders backgrounds (batched).
4. :meth:`CreativeMaker.finish` — exact composite, quality scores, QA checks, write to the store.

:meth:`CreativeMaker.start` runs 1-2, skips what the store has and makes the baselines (CPU only,
no generator: the catalog photo on each placement's canvas); the local runner and Ray both call it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..generators import GatedGenerator, GenerationRequest, Generator, describe_generator, get_generator
from ..imaging.color import dominant_colors
from ..imaging.composite import composite, exact_region_matches
from ..imaging.decontaminate import decontaminate
from ..imaging.framing import FramingRules
from ..imaging.layout import Placement, QARules, Scene, View, layout
from ..imaging.mask import Segmenter, alpha_is_meaningful, get_segmenter, product_mask
from ..imaging.plain import photo_fill
from ..imaging.quality import Gate, procedural_quality, qa_checks
from ..imaging.subject import Subject, SubjectAnalyser
from ..overlays import OverlayLibrary, OverlayTemplate, apply_overlay
from ..styles import CategoryMatch, Style, StyleLibrary
from ..styles.params import podium_lift
from .catalog import Product, load_image
from .original import ORIGINAL_STYLE, original_key, store_original
from .overlaying import lacks, overlay_data, overlay_key, overlay_reasons, safe_area
from .specs import CreativeResult, CreativeSpec, PreparedScene, describe_error, failed_result
from .store import LOSSLESS_FORMATS, CreativeStore, creative_key


@dataclass(frozen=True)
class PipelineConfig:
    """What to make for every product. Picklable: it travels to worker processes."""

    placements: tuple[Placement, ...]
    library: StyleLibrary
    styles: tuple[str, ...] | None = None  # only these style names; None = every style of the category
    max_styles: int | None = None  # at most this many styles per product (the first ones of its category)
    generator: str = "procedural"
    generator_options: dict = field(default_factory=dict)
    segmenter: str = "auto"
    seed: int = 0
    fmt: str = "png"
    gate: dict = field(default_factory=dict)  # Gate settings, for generators that are gated
    framing: FramingRules = field(default_factory=FramingRules)  # when the photo's frame cuts the product
    qa: QARules = field(default_factory=QARules)  # the QA checks' thresholds
    #: overlay template names ("none": the plain creative); each is one more creative per scene
    overlays: tuple[str, ...] = ()
    overlay_library: OverlayLibrary | None = None  # None: the packaged templates
    locale: str = "en_US"  # prices' format where the catalog names no locale
    brand_logo: str | None = None  # the logo where the catalog names none: a file, or a folder of <brand>.png
    day: dt.date | None = None  # plan seasonal styles as on this day (None: today)

    def overlay_templates(self) -> list[OverlayTemplate | None]:
        names = self.overlays or ("none",)
        if all(name == "none" for name in names):  # the plain creative only: no library to read
            return [None]
        library = self.overlay_library or OverlayLibrary.load()
        return [None if name == "none" else library.get(name) for name in names]


def request_for(scene: Scene, style: Style, fields: dict, seed: int, *, on_model: bool = False, cropped: bool = False) -> GenerationRequest:
    """The generator's request for ``scene`` in ``style``: the style's prompts filled from ``fields``
    (as :meth:`CreativeMaker.plan` fills them) and its procedural parameters."""
    return GenerationRequest(
        scene=scene,
        prompt=style.prompt_for(fields, on_model=on_model),
        negative_prompt=style.negative_for(fields, on_model=on_model, cropped=cropped),
        params=style.procedural,
        seed=seed,
    )


def derive_seed(base: int, *parts: str) -> int:
    """A per-creative seed: same inputs, same seed; different products/styles/placements, unrelated seeds."""
    h = hashlib.sha256(("\x1f".join([str(base), *parts])).encode()).digest()
    return int.from_bytes(h[:4], "big") & 0x7FFFFFFF


class StyleSelectionError(ValueError):
    """``--styles`` names no style the product's category (or its on-model subset) has."""


def category_for(product: Product, library: StyleLibrary) -> CategoryMatch:
    """The style-library category of a product, with the rule that matched."""
    return library.match(
        product.category_path,
        google_category=product.google_category,
        product_type=product.product_type,
    )


def styles_for(
    product: Product, config: PipelineConfig, subject: Subject | None = None, on: dt.date | None = None
) -> tuple[CategoryMatch, list[Style]]:
    """The category match and the styles a product gets on the day ``on`` (default: today).

    Seasonal styles (a ``season`` window in the library) are left out of season. An on-model
    product keeps the styles that suit a person standing (else the default category's that do).
    ``config.styles`` narrows them; when none of them is left, :class:`StyleSelectionError` names
    the product, its category and the styles it has (:func:`missing_styles` tells, per category,
    which requested styles it lacks).
    """
    day = on or config.day or dt.date.today()
    match = category_for(product, config.library)
    styles = [s for s in match.styles if s.in_season(day)]
    out_of_season = [s.name for s in match.styles if not s.in_season(day)]
    if not styles:
        styles = config.library.for_category("default", on=day)
    on_model = subject is not None and subject.on_model
    if on_model:
        suitable = [s for s in styles if s.suits_subject(True)]
        if not suitable:
            suitable = [s for s in config.library.for_category("default", on=day) if s.suits_subject(True)]
        styles = suitable
    if config.styles is not None:
        have = [s.name for s in styles]
        wanted = set(config.styles)
        styles = [s for s in styles if s.name in wanted]
        if not styles:
            subject_note = ", photographed on a person" if on_model else ""
            raise StyleSelectionError(
                f"product {product.product_id} ({product.category_str or '-'} -> style category "
                f"'{match.category}'{subject_note}) has none of the styles {', '.join(config.styles)}; "
                f"its styles: {', '.join(have)}"
                + (f" (out of season on {day.isoformat()}: {', '.join(out_of_season)})" if out_of_season else "")
            )
    if config.max_styles is not None:
        styles = styles[: config.max_styles]
    return match, styles


def missing_styles(products: Sequence[Product], config: PipelineConfig) -> dict[str, tuple[list[str], list[str], int]]:
    """``--styles`` a style category lacks: category -> (missing styles, its styles, products)."""
    out: dict[str, tuple[list[str], list[str], int]] = {}
    if config.styles is None:
        return out
    for p in products:
        match = category_for(p, config.library)
        have = [s.name for s in match.styles]
        missing = [n for n in config.styles if n not in have]
        if missing:
            prev = out.get(match.category)
            out[match.category] = (missing, have, (prev[2] if prev else 0) + 1)
    return out


class CreativeMaker:
    """Holds the per-worker state (generator, segmenter, store) and runs the stages for a product."""

    def __init__(
        self,
        config: PipelineConfig,
        store: CreativeStore,
        generator: Generator | None = None,
        segmenter: Segmenter | None = None,
    ):
        self.config = config
        self.store = store
        self._generator = generator
        if generator is not None:
            self.gen_name, self.gen_version = generator.name, generator.version
            self._gen_spec, self.gated = generator.spec(), bool(getattr(generator, "needs_gate", False))
        else:  # loaded on first use: planning and compositing workers never hold the model
            self.gen_name, self.gen_version, self._gen_spec, self.gated = describe_generator(config.generator, **config.generator_options)
        self._segmenter = segmenter
        self.gate = Gate(**config.gate)
        self._fallback: Generator | None = None
        self.analyser = SubjectAnalyser(config.framing)
        self._decoded: tuple | None = None
        self._scene_checked: tuple | None = None  # the last scene composited and checked (its overlay variants reuse it)

    @property
    def generator(self) -> Generator:
        if self._generator is None:
            self._generator = get_generator(self.config.generator, **self.config.generator_options)
        return self._generator

    @property
    def gated_generator(self) -> GatedGenerator:
        generator = self.generator
        if not isinstance(generator, GatedGenerator):
            raise TypeError(f"generator {generator.name} has no quality gate (needs_gate, generate_raw, to_canvas_batch)")
        return generator

    def generator_spec(self) -> dict:
        """The generator's settings, plus the gate's when it gates (both decide the pixels)."""
        return self._gen_spec | {"gate": self.gate.spec()} if self.gated else self._gen_spec

    @property
    def segmenter(self) -> Segmenter:
        if self._segmenter is None:
            self._segmenter = get_segmenter(self.config.segmenter)
        return self._segmenter

    def mask_method(self) -> str:
        # The segmenter's identity is part of the key (it decides the mask of images without alpha).
        return f"{self.segmenter.name}@{self.segmenter.version}"

    # -- the photo analysis (cached by image content) -----------------------------------------

    def analysis_method(self) -> str:
        return f"{self.mask_method()}|{self.analyser.method}"

    def _decode(self, product: Product, sha: str) -> tuple[np.ndarray, np.ndarray, str]:
        """(rgb, soft mask, mask source) of the product photo; the last one is kept for prepare().

        For a mask from a segmenter the rgb's soft edge band is decontaminated (the photo's
        backdrop colour taken out, so no light fringe shows on a dark scene; the fully opaque
        pixels stay the photo's); ``rgba`` (the 5th item kept) stays the photo as loaded.
        """
        if self._decoded is not None and self._decoded[0] == sha:
            return self._decoded[1:4]
        rgba = load_image(product.image_path)
        source = "alpha" if alpha_is_meaningful(rgba) else self.segmenter.name
        alpha = product_mask(rgba, self.segmenter)
        if not alpha.any():
            raise ValueError("the product mask is empty (segmentation found no product)")
        rgb = np.ascontiguousarray(rgba[..., :3])
        if source != "alpha":
            rgb = decontaminate(rgb, alpha)
        self._decoded = (sha, rgb, alpha, source, rgba)
        return rgb, alpha, source

    def subject(self, product: Product, sha: str | None = None) -> Subject:
        """What the photo says (cut sides, on-model, trapped background): from the store's cache, else analysed and cached."""
        sha = sha or product.image_sha256()
        method = self.analysis_method()
        cached = self.store.subject(sha, method)
        if cached is not None:
            return Subject.from_dict(cached)
        rgb, alpha, source = self._decode(product, sha)
        subject = self.analyser(rgb, alpha, source)
        self.store.put_subject(sha, method, subject.to_dict())
        return subject

    # -- stage 1 ----------------------------------------------------------------------------

    def plan(self, product: Product, image_sha256: str | None = None, subject: Subject | None = None) -> list[CreativeSpec]:
        """The styled creatives (and their overlay variants) of ``product``; :meth:`plan_originals` the baselines."""
        sha = image_sha256 or product.image_sha256()
        subject = subject or self.subject(product, sha)
        match, styles = styles_for(product, self.config, subject)
        fields = product.fields()
        mask_method = self.mask_method()
        gen_spec = self.generator_spec()
        data = overlay_data(product, self.config.locale, self.config.brand_logo)
        overlays = [t for t in self.config.overlay_templates() if t is None or not lacks(t, data)]
        shown = data.spec() if any(t is not None for t in overlays) else {}
        specs = []
        for placement, style, overlay in ((p, s, o) for p in self.config.placements for s in styles for o in overlays):
            # the overlay keeps the scene's seed: with and without a price, the same scene
            overlay_part = overlay_key(overlay, shown, placement)
            seed = derive_seed(self.config.seed, product.product_id, style.name, placement.name)
            prompt = style.prompt_for(fields, on_model=subject.on_model)
            negative = style.negative_for(fields, on_model=subject.on_model, cropped=bool(subject.cut))
            key = creative_key(
                image_sha256=sha,
                style_spec=style.spec(),
                placement_spec=placement.spec(),
                generator=self.gen_name,
                generator_version=self.gen_version,
                generator_spec=gen_spec,
                mask_method=mask_method,
                seed=seed,
                fmt=self.config.fmt,
                subject=subject.spec(),
                prompt=prompt,
                negative_prompt=negative,
                overlay=overlay_part,
            )
            specs.append(
                CreativeSpec(
                    key=key,
                    product=product,
                    placement=placement,
                    style=style,
                    seed=seed,
                    prompt=prompt,
                    negative_prompt=negative,
                    subject=subject,
                    category=match,
                    overlay=overlay,
                    overlay_data=data if overlay is not None else None,
                    overlay_key=overlay_part,
                )
            )
        return specs

    def plan_originals(self, product: Product, image_sha256: str | None = None, subject: Subject | None = None) -> list[CreativeSpec]:
        """The baseline of ``product`` on every placement: the catalog photo on the canvas (:mod:`.original`)."""
        sha = image_sha256 or product.image_sha256()
        subject = subject or self.subject(product, sha)
        match, mask = category_for(product, self.config.library), self.mask_method()
        return [
            CreativeSpec(
                key=original_key(
                    product_id=product.product_id, image_sha256=sha, placement=pl, mask_method=mask, subject=subject, fmt=self.config.fmt
                ),
                product=product,
                placement=pl,
                style=ORIGINAL_STYLE,
                seed=0,
                prompt="",
                negative_prompt="",
                subject=subject,
                category=match,
            )
            for pl in self.config.placements
        ]

    # -- stage 2 ----------------------------------------------------------------------------
    #
    # A staged style (a podium) lays the product out higher by the podium's height, so the podium
    # stands on the floor where the product would have; the style is in the key, so is the lift.

    def prepare(self, product: Product, specs: Sequence[CreativeSpec], image_sha256: str | None = None) -> list[PreparedScene]:
        if not specs:
            return []
        sha = image_sha256 or product.image_sha256()
        rgb, alpha, _ = self._decode(product, sha)
        palette = dominant_colors(rgb, alpha)
        subject = specs[0].subject
        cut = subject.cut
        view: View = "top" if subject.view == "top" else "front"
        scenes: dict[tuple[str, float], Scene] = {}
        prepared = []
        for spec in specs:
            standing = spec.placement.anchor == "floor" and "bottom" not in cut and view == "front"
            lift = podium_lift(spec.style.procedural) if standing else 0.0
            if (spec.placement.name, lift) not in scenes:
                placement = spec.placement.model_copy(update={"ground": spec.placement.ground - lift}) if lift else spec.placement
                scenes[spec.placement.name, lift] = layout(
                    rgb, alpha, placement, palette=palette, cut=cut, view=view, on_model=subject.on_model
                )
            prepared.append(PreparedScene(spec=spec, scene=scenes[spec.placement.name, lift]))
        return prepared

    def start(self, product: Product) -> tuple[list[CreativeResult], list[PreparedScene]]:
        """Stages 1-2 for a product: (results already final: skipped or failed, scenes to render).

        Never raises for a bad image or a style selection the product cannot have: those are
        failed results naming the product.
        """
        try:
            return self._start(product)
        finally:
            self._decoded = None  # the next product needs its own pixels; keep memory flat

    def _start(self, product: Product) -> tuple[list[CreativeResult], list[PreparedScene]]:
        results: list[CreativeResult] = []
        try:
            sha = product.image_sha256()
            subject = self.subject(product, sha)
            specs = self.plan_originals(product, sha, subject)  # every product gets its baseline, whatever its styles
            try:
                specs += self.plan(product, sha, subject)
            except StyleSelectionError as e:
                results.append(failed_result(product, None, "styles", str(e)))
        except Exception as e:  # noqa: BLE001 - reported per product, the run goes on
            return [failed_result(product, None, "image", f"cannot read: {e}", e)], []
        # an index row whose file is gone does not count as done
        done = self.store.qa_statuses(sorted(self.store.existing([s.key for s in specs])))
        results += [
            CreativeResult(product.product_id, s.key, s.style.name, s.placement.name, "skipped", qa_status=done[s.key])
            for s in specs
            if s.key in done
        ]
        todo = [s for s in specs if s.key not in done]
        if not todo:
            return results, []
        try:
            prepared = self.prepare(product, todo, sha)
            self.store.put_product(product, sha)
        except Exception as e:  # noqa: BLE001
            return results + [failed_result(product, s, "image", str(e), e) for s in todo], []
        originals = [p for p in prepared if p.spec.style == ORIGINAL_STYLE]
        if originals:
            results += self._make_originals(product, originals)
        return results, [p for p in prepared if p.spec.style != ORIGINAL_STYLE]

    def _make_originals(self, product: Product, items: Sequence[PreparedScene]) -> list[CreativeResult]:
        """Make and store the baselines (after :meth:`prepare`: the photo is decoded, the scenes laid out)."""
        assert self._decoded is not None
        alpha, rgba = self._decoded[2], self._decoded[4]
        try:
            fill, source = photo_fill(rgba, alpha)
        except Exception as e:  # noqa: BLE001
            return [failed_result(product, item.spec, "generate", describe_error(e), e) for item in items]
        out = []
        for item in items:
            spec, t0 = item.spec, time.perf_counter()
            try:
                qa_status = store_original(
                    self.store,
                    key=spec.key,
                    product_id=product.product_id,
                    rgba=rgba,
                    alpha=alpha,
                    scene=item.scene,
                    fill=fill,
                    fill_source=source,
                    subject=spec.subject,
                    category=spec.category,
                    mask_method=self.mask_method(),
                    fmt=self.config.fmt,
                    rules=self.config.qa,
                )
            except Exception as e:  # noqa: BLE001
                out.append(failed_result(product, spec, "generate", describe_error(e), e))
                continue
            seconds = time.perf_counter() - t0
            out.append(
                CreativeResult(product.product_id, spec.key, spec.style.name, spec.placement.name, "generated", None, seconds, qa_status)
            )
        return out

    # -- stage 3 ----------------------------------------------------------------------------
    #
    # A generator with ``needs_gate`` (diffusion) has every output checked by the artifact gate:
    # object expansion, IoU and halo (imaging.quality.Gate). A failing creative is regenerated
    # with the next attempt's seed, up to ``gate.max_attempts`` seeds, then gets a procedural
    # background instead. The local loop (render_gated) and Ray's unrolled stages share these
    # functions: render_attempt (generator work), judge (CPU), fallback (CPU).

    def _request(self, item: PreparedScene, attempt: int = 0) -> GenerationRequest:
        seed = item.spec.seed if attempt == 0 else derive_seed(item.spec.seed, f"attempt-{attempt}")
        spec = item.spec
        return GenerationRequest(
            scene=item.scene, prompt=spec.prompt, negative_prompt=spec.negative_prompt, params=spec.style.procedural, seed=seed
        )

    def render(self, prepared: Sequence[PreparedScene]) -> list[np.ndarray]:
        """Backgrounds at canvas size for the first attempt (no gate)."""
        return self.generator.generate_batch([self._request(p) for p in prepared])

    def render_attempt(self, items: Sequence[PreparedScene], attempt: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """(canvas background, raw output at the generator's size) per item, for attempt number ``attempt``."""
        requests = [self._request(it, attempt) for it in items]
        generator = self.gated_generator
        raws = generator.generate_raw(requests)
        return list(zip(generator.to_canvas_batch(raws, requests), raws, strict=True))

    def judge(self, item: PreparedScene, background: np.ndarray, raw: np.ndarray, attempt: int) -> dict:
        """The gate's scores of one attempt, with ``gate`` = "pass" or the reasons it failed."""
        scores = self.gate.score(raw, background, item.scene, self.segmenter)
        failures = self.gate.failures(scores)
        return scores | {"attempts": attempt + 1, "gate": "pass" if not failures else "; ".join(failures)}

    def fallback(self, item: PreparedScene) -> np.ndarray:
        if self._fallback is None:
            self._fallback = get_generator("procedural")
        return self._fallback.generate(self._request(item))

    def render_gated(self, items: Sequence[PreparedScene]) -> list[tuple[np.ndarray, dict]]:
        """(background, gate metrics) per item: regenerate failures, then fall back to procedural."""
        results: list[tuple[np.ndarray, dict] | None] = [None] * len(items)
        last: dict[int, dict] = {}
        todo = list(range(len(items)))
        for attempt in range(self.gate.max_attempts):
            outs = self.render_attempt([items[i] for i in todo], attempt)
            still = []
            for i, (background, raw) in zip(todo, outs, strict=True):
                verdict = self.judge(items[i], background, raw, attempt)
                if verdict["gate"] == "pass":
                    results[i] = (background, verdict)
                else:
                    last[i] = verdict
                    still.append(i)
            todo = still
            if not todo:
                break
        for i in todo:
            results[i] = (self.fallback(items[i]), last[i] | {"gate": "fallback", "gate_failed": last[i]["gate"]})
        return results  # type: ignore[return-value]

    # -- stage 4 ----------------------------------------------------------------------------

    def finish(
        self, item: PreparedScene, background: np.ndarray, render_seconds: float = 0.0, gate_metrics: dict | None = None
    ) -> CreativeResult:
        t0 = time.perf_counter()
        spec, scene = item.spec, item.scene
        subject = spec.subject
        last = self._scene_checked  # holds the background and scene themselves: an identity match is the same render
        if last is not None and last[0] is background and last[1] is scene and last[2] == (spec.style.name, spec.placement.name):
            # an overlay variant of the scene just finished: the same composite, the same scene checks
            creative, base_metrics, base_reasons = last[3:]
            metrics, reasons = dict(base_metrics), list(base_reasons)
        else:
            creative = composite(background, scene)
            exact = exact_region_matches(creative, scene)
            if not exact:  # composite() guarantees it; a failure here is a bug, never a stored creative
                raise AssertionError(f"product pixels changed in creative {spec.key}")
            metrics = procedural_quality(creative, scene)
            metrics["exact"] = exact
            metrics["lossless"] = self.config.fmt in LOSSLESS_FORMATS
            metrics["render_s"] = round(render_seconds, 4)
            if gate_metrics:
                metrics.update(gate_metrics)
            reasons = qa_checks(
                creative,
                scene,
                photo_cut=subject.cut,
                on_model=subject.on_model,
                style_suits=spec.style.suits,
                trapped_share=subject.trapped_share,
                metrics=metrics,
                rules=self.config.qa,
                mask_from_photo=subject.mask_source != "alpha",
                left_out_share=subject.left_out_share,
            )
            self._scene_checked = (background, scene, (spec.style.name, spec.placement.name), creative, dict(metrics), list(reasons))
        if spec.overlay is not None and spec.overlay_data is not None:  # a layer of its own, after the scene's checks
            creative, report = apply_overlay(creative, scene.canvas_mask(), spec.overlay, spec.overlay_data, safe_area(spec.placement))
            if not exact_region_matches(creative, scene):  # overlays keep clear of the product by construction
                raise AssertionError(f"the overlay touched the product in creative {spec.key}")
            metrics["overlay"] = report.to_dict()
            reasons = list(reasons) + overlay_reasons(report)
        qa_status = "flagged" if reasons else "ok"
        self.store.put(
            spec.key,
            creative,
            fmt=self.config.fmt,
            product_id=spec.product.product_id,
            style=spec.style.name,
            placement=spec.placement.name,
            generator=self.gen_name,
            generator_version=self.gen_version,
            seed=spec.seed,
            prompt=spec.prompt,
            negative_prompt=spec.negative_prompt,
            params={
                "style": spec.style.spec(),
                "placement": spec.placement.spec(),
                "generator": self.generator_spec(),
                "mask": self.mask_method(),
                "box": list(scene.box),
                "cut": list(scene.cut),
                "subject": subject.to_dict(),
                "category": {k: v for k, v in spec.category.to_dict().items() if k != "styles"} if spec.category else None,
            }
            | ({"overlay": spec.overlay_key} if spec.overlay_key is not None else {}),
            metrics=metrics,
            qa_status=qa_status,
            qa_reasons=reasons,
        )
        return CreativeResult(
            spec.product.product_id,
            spec.key,
            spec.style.name,
            spec.placement.name,
            "generated",
            seconds=render_seconds + time.perf_counter() - t0,
            qa_status=qa_status,
        )

    # -- all stages -------------------------------------------------------------------------

    def make(self, product: Product) -> list[CreativeResult]:
        """Every missing creative of ``product``; never raises for a bad image or a failed render."""
        results, prepared = self.start(product)
        if not prepared:
            return results
        if self.gated:  # one batched call for all of the product's creatives
            try:
                t0 = time.perf_counter()
                rendered = self.render_gated(prepared)
                per_item = (time.perf_counter() - t0) / len(prepared)
            except Exception as e:  # noqa: BLE001
                return results + [failed_result(product, it.spec, "generate", describe_error(e), e) for it in prepared]
            for item, (background, gate_metrics) in zip(prepared, rendered, strict=True):
                try:
                    results.append(self.finish(item, background, per_item, gate_metrics))
                except Exception as e:  # noqa: BLE001
                    results.append(failed_result(product, item.spec, "generate", describe_error(e), e))
            return results
        backgrounds: dict[tuple, np.ndarray] = {}  # one render per scene: its overlay variants share it
        for item in prepared:
            try:
                t0 = time.perf_counter()
                scene_id = (id(item.scene), item.spec.style.name, item.spec.seed)
                if scene_id not in backgrounds:
                    [backgrounds[scene_id]] = self.render([item])
                results.append(self.finish(item, backgrounds[scene_id], time.perf_counter() - t0))
            except Exception as e:  # noqa: BLE001
                results.append(failed_result(product, item.spec, "generate", describe_error(e), e))
        return results
