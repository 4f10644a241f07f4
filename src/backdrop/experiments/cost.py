"""Cost model: GPU-hours to generate a catalog's creatives, their storage, and serving the decisions.

Pure functions over a validated :class:`CostInputs`; :func:`estimate` returns a :class:`CostEstimate`
that carries every figure it used together with where that figure came from (``assumptions``) and
whether it was measured, estimated, assumed or given by the caller (``provenance``)::

    images            = products x placements x styles
    generated images  = images x (1 + regeneration_rate)          (the artifact gate regenerates some)
    GPU-hours         = generated images / (images/s per GPU) / 3600
    storage           = images x files per image x bytes per file (the kept creative, its overlay
                        variants and the catalog photo's rendition: measured from a store, else 1)
    serving           = ceil(peak decisions/s / decisions/s per core) cores x $/core-hour x 730 h/month
    event-log growth  = decisions/day x bytes per logged decision (measured on a real SQLite event log)

Units: GB and TB are decimal (1e9, 1e12 bytes); a month is 730 hours.
"""

from __future__ import annotations

import json
import math
import sqlite3
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from ..errors import BackdropError
from .logsize import log_bytes_source, measure_log_bytes_per_decision

# -- documented defaults ----------------------------------------------------------------------

#: counted with torch.utils.flop_counter on full-size SD 1.5 inpainting + ControlNet, 512x512,
#: 20 steps with classifier-free guidance (benchmarks/RESULTS.md, bench_diffusion section)
SD15_TFLOP_PER_IMAGE = 40.0
#: NVIDIA H100 SXM dense fp16/bf16 tensor peak, TFLOP/s
H100_PEAK_TFLOPS = 989.0
#: assumed share of the peak a diffusion pipeline reaches (README "GPU throughput and cost")
ASSUMED_GPU_UTILISATION = 0.40
DEFAULT_GPU_IMAGES_PER_S = H100_PEAK_TFLOPS * ASSUMED_GPU_UTILISATION / SD15_TFLOP_PER_IMAGE  # ~9.89
GPU_ESTIMATED_SOURCE = "estimated from counted FLOPs (no GPU measurement yet)"
GPU_ESTIMATE_DETAIL = (
    f"SD 1.5 inpainting + ControlNet, 512x512, 20 steps: {SD15_TFLOP_PER_IMAGE:.1f} TFLOP/image counted "
    f"(benchmarks/RESULTS.md, bench_diffusion) at {ASSUMED_GPU_UTILISATION:.0%} of an H100's "
    f"{H100_PEAK_TFLOPS:g} TFLOP/s dense fp16 peak; replace with bench_diffusion.py's measured images/s"
)

DEFAULT_STYLES = 5
DEFAULT_REGENERATION_RATE = 0.10
DEFAULT_GPU_HOUR_USD = 3.0
DEFAULT_STORAGE_USD_PER_GB_MONTH = 0.023
DEFAULT_PEAK_TO_MEAN = 3.0
DEFAULT_CORE_HOUR_USD = 0.04
HOURS_PER_MONTH = 730.0

#: lossless PNG at 1080x1080 (README "Benchmarks": "makes the file ~1 MB"; JPEG is 0.13 MB)
FALLBACK_BYTES_PER_CREATIVE = 1_000_000
FALLBACK_BYTES_SOURCE = (
    "fallback: a lossless PNG creative at 1080x1080 is ~1 MB (README 'Benchmarks', from bench_generate.py "
    "runs; --format jpeg stores ~0.13 MB); taller placements (portrait, story) are larger in proportion "
    "to their pixels; pass a store to measure"
)

#: stored files per generated image when no store is measured: the plain creative alone
DEFAULT_FILES_PER_IMAGE = 1.0
DEFAULT_FILES_SOURCE = (
    "assumed: the kept creative alone, no overlay variants (`backdrop demo` stores 2.25 files per image: "
    "plain, price and sale variants); pass a store to measure"
)

#: until benchmarks/bench_serve.py's figure is passed in
DEFAULT_DECISIONS_PER_S_PER_CORE = 500.0
DEFAULT_SERVING_SOURCE = (
    "assumed: a conservative default (LinUCB at d=64 plus a durable event-log write per decision); "
    "not yet measured, pass benchmarks/bench_serve.py's figure"
)

#: figures the benchmarks measured, shipped inside the package (``bench_serve.py`` and, on a GPU,
#: ``bench_diffusion.py`` rewrite their sections)
MEASURED_FILE = Path(__file__).resolve().parents[1] / "data" / "measured.json"


def measured_serving() -> tuple[float, str] | None:
    """(decisions/s per core, source) as ``benchmarks/bench_serve.py`` last measured them, if recorded."""
    try:
        data = json.loads(MEASURED_FILE.read_text())["serving"]
        return float(data["decisions_per_s_per_core"]), f"{data['source']}, {data['measured_at']}"
    except (OSError, KeyError, ValueError, TypeError):
        return None


def measured_diffusion() -> tuple[float, str] | None:
    """(images/s per GPU, source) as ``benchmarks/bench_diffusion.py`` last measured them on a GPU
    (SD 1.5 inpainting + ControlNet, 512x512, 20 steps, fp16, its best batch), if recorded."""
    try:
        data = json.loads(MEASURED_FILE.read_text())["diffusion"]
        return float(data["images_per_s_per_gpu"]), f"{data['source']}, {data['measured_at']}"
    except (OSError, KeyError, ValueError, TypeError):
        return None


#: the table's default traffic: impressions (decisions) per product per day
DEFAULT_DECISIONS_PER_PRODUCT_PER_DAY = 10.0


class CostError(BackdropError, ValueError):
    """Invalid cost-model inputs, or a store that cannot be measured."""


def _default_placements() -> int:
    """The number of placements in the packaged placement file (config/placements.yaml)."""
    try:
        from ..imaging.layout import load_placements

        return len(load_placements())
    except (ImportError, BackdropError):  # pragma: no cover - the packaged file is always there
        return 4


DEFAULT_PLACEMENTS = _default_placements()


# -- inputs -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CostInputs:
    """What the estimate depends on; ``None`` means "use the documented default (or measure)".

    The ``*_source`` fields override the provenance string of a figure the caller passes (e.g.
    ``decisions_per_s_per_core_source="measured by benchmarks/bench_serve.py, sqlite-1"``); without
    one, a passed figure is labelled ``"given"``.
    """

    products: int
    placements: int = field(default=DEFAULT_PLACEMENTS)
    #: styles per product and placement (a mean: categories get different numbers of styles)
    styles: float = DEFAULT_STYLES
    regeneration_rate: float = DEFAULT_REGENERATION_RATE
    gpu_images_per_s: float | None = None
    gpu_hour_usd: float = DEFAULT_GPU_HOUR_USD
    bytes_per_creative: float | None = None
    #: stored files per generated image: the creative, its overlay variants (each a file of its own,
    #: on the same scene: no GPU work) and its share of the catalog photo's rendition
    files_per_image: float | None = None
    storage_usd_per_gb_month: float = DEFAULT_STORAGE_USD_PER_GB_MONTH
    decisions_per_day: float = 0.0
    decisions_per_s_per_core: float | None = None
    peak_to_mean: float = DEFAULT_PEAK_TO_MEAN
    core_hour_usd: float = DEFAULT_CORE_HOUR_USD
    log_bytes_per_decision: float | None = None
    gpu_images_per_s_source: str | None = None
    bytes_per_creative_source: str | None = None
    files_per_image_source: str | None = None
    decisions_per_s_per_core_source: str | None = None
    log_bytes_per_decision_source: str | None = None
    decisions_per_day_source: str | None = None
    styles_source: str | None = None

    def __post_init__(self) -> None:
        for name in ("products", "placements"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise CostError(f"{name} must be a positive whole number, got {v!r}")
        if isinstance(self.styles, bool) or not isinstance(self.styles, (int, float)) or not self.styles >= 1:
            raise CostError(f"styles must be a number >= 1 (styles per product and placement), got {self.styles!r}")

        def number(name: str, *, minimum: float, strict: bool, optional: bool = False) -> None:
            v = getattr(self, name)
            if v is None and optional:
                return
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise CostError(f"{name} must be a finite number, got {v!r}")
            if (v <= minimum) if strict else (v < minimum):
                raise CostError(f"{name} must be {'>' if strict else '>='} {minimum:g}, got {v!r}")

        number("regeneration_rate", minimum=0, strict=False)
        number("gpu_images_per_s", minimum=0, strict=True, optional=True)
        number("gpu_hour_usd", minimum=0, strict=False)
        number("bytes_per_creative", minimum=0, strict=True, optional=True)
        number("files_per_image", minimum=1, strict=False, optional=True)
        number("storage_usd_per_gb_month", minimum=0, strict=False)
        number("decisions_per_day", minimum=0, strict=False)
        number("decisions_per_s_per_core", minimum=0, strict=True, optional=True)
        number("peak_to_mean", minimum=1, strict=False)
        number("core_hour_usd", minimum=0, strict=False)
        number("log_bytes_per_decision", minimum=0, strict=True, optional=True)

    def replace(self, **changes) -> CostInputs:
        return CostInputs(**{**{f.name: getattr(self, f.name) for f in fields(self)}, **changes})


# -- measurements -----------------------------------------------------------------------------


@dataclass(frozen=True)
class StoreMeasurement:
    mean_bytes: float
    n_files: int
    total_bytes: int
    formats: tuple[str, ...]
    placements: tuple[str, ...]
    root: str
    #: generated images the files belong to: distinct (product, placement, style), the catalog
    #: photo's own rendition (style ``original``) not counted
    images: int = 0
    #: distinct (product, placement) with a generated image
    slots: int = 0

    @property
    def styles_per_slot(self) -> float | None:
        return self.images / self.slots if self.slots else None

    @property
    def source(self) -> str:
        return (
            f"measured: mean size of {self.n_files} creative file(s) in {self.root} "
            f"(formats {', '.join(self.formats)}; placements {', '.join(self.placements)})"
        )

    @property
    def files_per_image(self) -> float:
        return self.n_files / self.images if self.images else 1.0

    @property
    def files_source(self) -> str:
        return (
            f"measured: {self.n_files} stored file(s) for {self.images} generated image(s) in {self.root} "
            "(overlay variants and the catalog photo's renditions included)"
        )


def scan_store(store_dir: str | Path) -> StoreMeasurement:
    """The creatives the store's index lists whose files exist on disk, with their sizes on disk.

    Only files named by a ``creatives`` row and lying under ``creatives/`` count: the index, its WAL,
    temporary files of interrupted writes and anything else in the directory are not creatives.
    """
    from ..creative.store import CreativeStore, StoreError

    root = Path(store_dir)
    if not root.is_dir():
        raise CostError(f"{root}: not a directory (expected a creative store made by `backdrop generate`)")
    try:
        store = CreativeStore(root, readonly=True)
    except StoreError as e:
        raise CostError(str(e)) from e
    try:
        records = store.creatives()
    except sqlite3.Error as e:
        raise CostError(f"{root}: not a creative store (cannot read its index: {e})") from e
    finally:
        store.close()
    creatives_dir = (root / "creatives").resolve()
    sizes: dict[Path, int] = {}
    formats: set[str] = set()
    placements: set[str] = set()
    images: set[tuple[str, str, str]] = set()
    slots: set[tuple[str, str]] = set()
    for r in records:
        path = (root / r.path).resolve()
        if not path.is_relative_to(creatives_dir) or not path.is_file() or path in sizes:
            continue
        sizes[path] = path.stat().st_size
        formats.add(r.format)
        placements.add(r.placement)
        if r.style != "original":
            images.add((r.product_id, r.placement, r.style))
            slots.add((r.product_id, r.placement))
    if not sizes:
        what = "no creatives in its index" if not records else f"none of the {len(records)} indexed creative files exist"
        raise CostError(f"{root}: cannot measure bytes per creative: {what}")
    total = sum(sizes.values())
    return StoreMeasurement(
        total / len(sizes),
        len(sizes),
        total,
        tuple(sorted(formats)),
        tuple(sorted(placements)),
        str(root),
        images=len(images),
        slots=len(slots),
    )


def styles_from_catalog(catalog: str | Path, style_library: str | Path | None = None, on=None) -> tuple[float, int, str]:
    """(mean styles per product, products, source): what the style library gives each product's
    category in ``catalog`` on the day ``on`` (default today; seasonal styles out of season left out)."""
    import datetime as dt

    from ..creative.catalog import load_catalog
    from ..creative.pipeline import category_for
    from ..styles import StyleLibrary

    loaded = load_catalog(Path(catalog))
    if not loaded.products:
        raise CostError(f"{catalog}: no usable product to count styles for ({len(loaded.errors)} bad rows)")
    library = StyleLibrary.load(style_library)
    day = on or dt.date.today()
    default = len(library.for_category("default", on=day))
    counts = [len([s for s in category_for(p, library).styles if s.in_season(day)]) or default for p in loaded.products]
    mean = sum(counts) / len(counts)
    return (
        mean,
        len(counts),
        (
            f"measured: the style library's styles for the categories of the {len(counts)} products in {catalog} on {day.isoformat()}"
            f" ({min(counts)}-{max(counts)} per product; products photographed on a person may get fewer)"
        ),
    )


def measure_store_bytes(store_dir: str | Path) -> tuple[float, int]:
    """``(mean bytes per creative file, number of files)`` measured on disk in a creative store."""
    m = scan_store(store_dir)
    return m.mean_bytes, m.n_files


# -- the estimate -----------------------------------------------------------------------------


@dataclass(frozen=True)
class CostEstimate:
    inputs: CostInputs
    images: int
    generated_images: float
    gpu_images_per_s: float
    gpu_figure_source: str
    gpu_hours: float
    gpu_cost_usd: float
    bytes_per_creative: float
    bytes_per_creative_source: str
    files_per_image: float
    files_per_image_source: str
    storage_bytes: float
    storage_usd_per_month: float
    decisions_per_day: float
    mean_decisions_per_s: float
    peak_decisions_per_s: float
    decisions_per_s_per_core: float
    serving_figure_source: str
    serving_cores: int
    serving_usd_per_month: float
    log_bytes_per_decision: float | None
    log_bytes_source: str | None
    log_bytes_per_day: float
    #: figure -> "value: where it comes from"
    assumptions: dict[str, str]
    #: figure -> measured | estimated | assumed | given
    provenance: dict[str, str]

    @property
    def storage_tb(self) -> float:
        return self.storage_bytes / 1e12

    @property
    def total_usd_first_month(self) -> float:
        return self.gpu_cost_usd + self.storage_usd_per_month + self.serving_usd_per_month

    def to_dict(self) -> dict:
        d = asdict(self)
        d["storage_tb"] = self.storage_tb
        return d

    def to_markdown(self) -> str:
        i = self.inputs
        rows = [
            (
                "images (products x placements x styles)",
                f"{self.images:,} = {i.products:,} x {i.placements} x {i.styles:.3g}",
                self.assumptions["styles"].split(": ", 1)[1],
            ),
            ("images generated (with gate regenerations)", f"{self.generated_images:,.0f}", f"regeneration rate {i.regeneration_rate:.0%}"),
            ("images/s per GPU", f"{self.gpu_images_per_s:.2f}", self.gpu_figure_source),
            ("GPU-hours", _qty(self.gpu_hours), ""),
            ("GPU cost", _usd(self.gpu_cost_usd), f"${i.gpu_hour_usd:g}/GPU-hour (assumed)"),
            ("bytes per creative", f"{self.bytes_per_creative:,.0f}", self.bytes_per_creative_source),
            ("stored files per image", f"{self.files_per_image:,.2f}", self.files_per_image_source),
            ("storage", f"{_fmt_bytes(self.storage_bytes)}", ""),
            ("storage cost", f"{_usd(self.storage_usd_per_month)}/month", f"${i.storage_usd_per_gb_month:g}/GB-month (assumed)"),
        ]
        if self.decisions_per_day > 0:
            rows += [
                ("decisions/day", f"{self.decisions_per_day:,.0f}", ""),
                (
                    "decisions/s mean / peak",
                    f"{_qty(self.mean_decisions_per_s)} / {_qty(self.peak_decisions_per_s)}",
                    f"peak = {i.peak_to_mean:g} x mean (assumed)",
                ),
                ("decisions/s per core", f"{self.decisions_per_s_per_core:,.0f}", self.serving_figure_source),
                ("serving cores", f"{self.serving_cores:,}", ""),
                ("serving cost", f"{_usd(self.serving_usd_per_month)}/month", f"${i.core_hour_usd:g}/core-hour (assumed), 730 h/month"),
                ("bytes per logged decision", f"{self.log_bytes_per_decision:,.0f}", self.log_bytes_source or ""),
                ("event-log growth", f"{_fmt_bytes(self.log_bytes_per_day)}/day", ""),
            ]
        else:
            rows.append(("serving", "not estimated", "pass decisions_per_day"))
        out = ["| figure | value | source |", "|---|---:|---|"]
        out += [f"| {a} | {b} | {_cell(c)} |" for a, b, c in rows]
        return "\n".join(out) + "\n"


def _qty(x: float) -> str:
    """A figure as people read it: one decimal from 10 up, three significant digits below (never 0.0 for a small one).

    >>> _qty(1234.56), _qty(0.0412), _qty(0)
    ('1,234.6', '0.0412', '0')
    """
    return f"{x:,.1f}" if abs(x) >= 10 else f"{x:.3g}"


def _usd(x: float, sign: str = "$") -> str:
    return f"{sign}{x:,.2f}" if x < 10 else f"{sign}{x:,.0f}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _fmt_bytes(n: float) -> str:
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:,.2f} {unit}"
    return f"{n:,.0f} B"


def _kind(source: str) -> str:
    for k in ("measured", "estimated", "assumed", "fallback", "given"):
        if source.lower().startswith(k):
            return k
    return "given"


def estimate(inputs: CostInputs, store: str | Path | None = None) -> CostEstimate:
    """Cost of generating, storing and serving ``inputs``' catalog.

    ``bytes_per_creative``: the caller's figure if given, else measured from ``store`` if one is
    given, else the documented PNG fallback. The bytes per logged decision are measured once per
    process (only when there is traffic to serve).
    """
    i = inputs
    images = round(i.products * i.placements * i.styles)
    generated = images * (1.0 + i.regeneration_rate)

    if i.gpu_images_per_s is None:
        gpu_ips, gpu_src = DEFAULT_GPU_IMAGES_PER_S, GPU_ESTIMATED_SOURCE
    else:
        gpu_ips, gpu_src = float(i.gpu_images_per_s), i.gpu_images_per_s_source or "given"
    gpu_hours = generated / gpu_ips / 3600.0
    gpu_cost = gpu_hours * i.gpu_hour_usd

    m = scan_store(store) if store is not None and (i.bytes_per_creative is None or i.files_per_image is None) else None
    if i.bytes_per_creative is not None:
        bpc, bpc_src = float(i.bytes_per_creative), i.bytes_per_creative_source or "given"
    elif m is not None:
        bpc, bpc_src = m.mean_bytes, m.source
    else:
        bpc, bpc_src = float(FALLBACK_BYTES_PER_CREATIVE), FALLBACK_BYTES_SOURCE
    if i.files_per_image is not None:
        fpi, fpi_src = float(i.files_per_image), i.files_per_image_source or "given"
    elif m is not None:
        fpi, fpi_src = m.files_per_image, m.files_source
    else:
        fpi, fpi_src = DEFAULT_FILES_PER_IMAGE, DEFAULT_FILES_SOURCE
    storage_bytes = images * fpi * bpc
    storage_usd = storage_bytes / 1e9 * i.storage_usd_per_gb_month

    if i.decisions_per_s_per_core is None:
        per_core, serve_src = DEFAULT_DECISIONS_PER_S_PER_CORE, DEFAULT_SERVING_SOURCE
    else:
        per_core, serve_src = float(i.decisions_per_s_per_core), i.decisions_per_s_per_core_source or "given"
    mean_dps = i.decisions_per_day / 86400.0
    peak_dps = mean_dps * i.peak_to_mean
    cores = max(1, math.ceil(peak_dps / per_core)) if i.decisions_per_day > 0 else 0
    serving_usd = cores * i.core_hour_usd * HOURS_PER_MONTH

    log_bpd: float | None = None
    log_src: str | None = None
    if i.log_bytes_per_decision is not None:
        log_bpd, log_src = float(i.log_bytes_per_decision), i.log_bytes_per_decision_source or "given"
    elif i.decisions_per_day > 0:
        log_bpd, log_src = measure_log_bytes_per_decision(), log_bytes_source()
    log_per_day = i.decisions_per_day * (log_bpd or 0.0)

    styles_src = i.styles_source or ("assumed (the default; --catalog or --store measures it)" if i.styles == DEFAULT_STYLES else "given")
    assumptions = {
        "placements": f"{i.placements}" + (" (every placement in config/placements.yaml)" if i.placements == DEFAULT_PLACEMENTS else ""),
        "styles": f"{i.styles:.3g} styles per product and placement: {styles_src}",
        "regeneration_rate": f"{i.regeneration_rate:.0%} of images regenerated by the artifact gate"
        + (" (assumed, README 'GPU throughput and cost')" if i.regeneration_rate == DEFAULT_REGENERATION_RATE else ""),
        "gpu_images_per_s": f"{gpu_ips:.2f} images/s per GPU: {gpu_src}"
        + (f"; {GPU_ESTIMATE_DETAIL}" if i.gpu_images_per_s is None else ""),
        "gpu_hour_usd": f"${i.gpu_hour_usd:g} per GPU-hour: assumed cloud price (H100 on-demand is ~$2.5-4)",
        "bytes_per_creative": f"{bpc:,.0f} bytes: {bpc_src}",
        "files_per_image": f"{fpi:,.2f} stored files per image: {fpi_src}",
        "storage_usd_per_gb_month": f"${i.storage_usd_per_gb_month:g} per GB-month: assumed object-storage price (S3 Standard list price)",
    }
    provenance = {
        "styles": _kind(styles_src),
        "gpu_images_per_s": "estimated" if i.gpu_images_per_s is None else _kind(gpu_src),
        "gpu_hour_usd": "assumed",
        "regeneration_rate": "assumed" if i.regeneration_rate == DEFAULT_REGENERATION_RATE else "given",
        "bytes_per_creative": _kind(bpc_src),
        "files_per_image": _kind(fpi_src),
        "storage_usd_per_gb_month": "assumed",
    }
    if i.decisions_per_day > 0:
        dpd_src = i.decisions_per_day_source or "given"
        assumptions.update(
            {
                "decisions_per_day": f"{i.decisions_per_day:,.0f} decisions/day: {dpd_src}",
                "peak_to_mean": f"peak traffic = {i.peak_to_mean:g} x the daily mean: assumed",
                "decisions_per_s_per_core": f"{per_core:,.0f} decisions/s per core: {serve_src}",
                "core_hour_usd": f"${i.core_hour_usd:g} per core-hour: assumed cloud price, 730 hours/month",
                "log_bytes_per_decision": f"{log_bpd:,.0f} bytes per logged decision: {log_src}",
            }
        )
        provenance.update(
            {
                "decisions_per_day": _kind(dpd_src),
                "peak_to_mean": "assumed",
                "decisions_per_s_per_core": _kind(serve_src),
                "core_hour_usd": "assumed",
                "log_bytes_per_decision": _kind(log_src or "given"),
            }
        )

    return CostEstimate(
        inputs=i,
        images=images,
        generated_images=generated,
        gpu_images_per_s=gpu_ips,
        gpu_figure_source=gpu_src,
        gpu_hours=gpu_hours,
        gpu_cost_usd=gpu_cost,
        bytes_per_creative=bpc,
        bytes_per_creative_source=bpc_src,
        files_per_image=fpi,
        files_per_image_source=fpi_src,
        storage_bytes=storage_bytes,
        storage_usd_per_month=storage_usd,
        decisions_per_day=float(i.decisions_per_day),
        mean_decisions_per_s=mean_dps,
        peak_decisions_per_s=peak_dps,
        decisions_per_s_per_core=per_core,
        serving_figure_source=serve_src,
        serving_cores=cores,
        serving_usd_per_month=serving_usd,
        log_bytes_per_decision=log_bpd,
        log_bytes_source=log_src,
        log_bytes_per_day=log_per_day,
        assumptions=assumptions,
        provenance=provenance,
    )


# -- the table --------------------------------------------------------------------------------


def table(
    products_list=(10_000, 1_000_000, 10_000_000),
    *,
    store: str | Path | None = None,
    decisions_per_product_per_day: float | None = None,
    **inputs,
) -> list[CostEstimate]:
    """One estimate per catalog size; the other :class:`CostInputs` fields are passed through.

    Traffic: ``decisions_per_day`` if passed (the same for every row), else
    ``decisions_per_product_per_day`` x products (default 10 impressions per product per day).
    A ``store`` is measured once for all rows.
    """
    if "products" in inputs:
        raise CostError("pass the catalog sizes as products_list, not products")
    if decisions_per_product_per_day is not None and "decisions_per_day" in inputs:
        raise CostError("pass decisions_per_day or decisions_per_product_per_day, not both")
    if decisions_per_product_per_day is None and "decisions_per_day" not in inputs:
        decisions_per_product_per_day = DEFAULT_DECISIONS_PER_PRODUCT_PER_DAY
    if decisions_per_product_per_day is not None and not (
        isinstance(decisions_per_product_per_day, (int, float))
        and math.isfinite(decisions_per_product_per_day)
        and decisions_per_product_per_day >= 0
    ):
        raise CostError(f"decisions_per_product_per_day must be a finite number >= 0, got {decisions_per_product_per_day!r}")
    products_list = list(products_list)
    if not products_list:
        raise CostError("products_list is empty")
    if store is not None and (inputs.get("bytes_per_creative") is None or inputs.get("files_per_image") is None):
        m = scan_store(store)
        if inputs.get("bytes_per_creative") is None:
            inputs = {**inputs, "bytes_per_creative": m.mean_bytes, "bytes_per_creative_source": m.source}
        if inputs.get("files_per_image") is None:
            inputs = {**inputs, "files_per_image": m.files_per_image, "files_per_image_source": m.files_source}
    out = []
    for n in products_list:
        kw = dict(inputs)
        if decisions_per_product_per_day is not None and isinstance(n, int) and not isinstance(n, bool):
            kw["decisions_per_day"] = decisions_per_product_per_day * n
            kw.setdefault(
                "decisions_per_day_source",
                f"assumed: {decisions_per_product_per_day:g} decisions (impressions) per product per day",
            )
        out.append(estimate(CostInputs(products=n, **kw)))
    return out


def table_markdown(estimates: list[CostEstimate]) -> str:
    """A Markdown table (one row per estimate) and a footnote with every assumption and its source."""
    if not estimates:
        raise CostError("no estimates to tabulate")
    head = (
        "| products | images | GPU-hours | GPU $ | storage TB | storage $/month | decisions/day "
        "| serving cores | serving $/month | event log GB/day |"
    )
    lines = [head, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for e in estimates:
        serving = e.decisions_per_day > 0
        lines.append(
            f"| {e.inputs.products:,} | {e.images:,} | {e.gpu_hours:,.1f} | {_usd(e.gpu_cost_usd, '')} "
            f"| {e.storage_tb:,.2f} | {_usd(e.storage_usd_per_month, '')} "
            f"| {e.decisions_per_day:,.0f} | {e.serving_cores if serving else '-'} "
            f"| {_usd(e.serving_usd_per_month, '') if serving else '-'} "
            f"| {f'{e.log_bytes_per_day / 1e9:,.2f}' if serving else '-'} |"
        )
    first = estimates[0]
    i = first.inputs
    notes = [
        "",
        (
            f"Images = products x {i.placements} placements x {i.styles:.3g} styles; GPU-hours include "
            f"{i.regeneration_rate:.0%} artifact-gate regenerations; storage holds the kept creative and its stored "
            "variants (files per image); "
            "serving cores cover the peak (mean decisions/s x peak-to-mean); GB/TB are decimal, a month is 730 h."
        ),
        "",
        "Assumptions (measured / estimated / assumed / given):",
        "",
    ]
    keys: list[str] = []
    for e in estimates:
        keys += [k for k in e.assumptions if k not in keys]
    for k in keys:
        values = list(dict.fromkeys(e.assumptions[k] for e in estimates if k in e.assumptions))
        kinds = list(dict.fromkeys(e.provenance[k] for e in estimates if k in e.provenance))
        kind = "/".join(kinds)
        if len(values) == 1:
            text = values[0]
        else:
            sources = list(dict.fromkeys(v.split(": ", 1)[-1] for v in values))
            text = "per row (see the table): " + "; ".join(sources) if len(sources) == 1 else "per row: " + "; ".join(values)
        notes.append(f"- `{k}`{f' [{kind}]' if kind else ''}: {text}")
    return "\n".join(lines + notes) + "\n"
