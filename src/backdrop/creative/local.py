"""Run the pipeline over a catalog: a local process pool (the default) over products."""

from __future__ import annotations

import multiprocessing as mp
import os
import sys
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from ..errors import RowError
from .catalog import Product
from .pipeline import CreativeMaker, CreativeResult, PipelineConfig, category_for, styles_for
from .store import ORIGINAL, CreativeStore, as_store


@dataclass
class RunSummary:
    generated: int = 0
    skipped: int = 0
    failed: int = 0
    #: creatives of this run (generated or already in the store) that QA flagged
    flagged: int = 0
    errors: list[RowError] = field(default_factory=list)
    seconds: float = 0.0
    #: category paths that matched no style category -> their product count
    default_categories: dict[str, int] = field(default_factory=dict)
    #: failures the environment caused (disk full, permissions...): reason -> count
    environment: dict[str, int] = field(default_factory=dict)
    #: of the generated and skipped, the baselines (the catalog photo on each placement, style
    #: "original"): a run that made only those made none of what it was asked for
    baselines: int = 0

    def add(self, results: Iterable[CreativeResult]) -> None:
        for r in results:
            if r.status in ("generated", "skipped") and r.style == ORIGINAL:
                self.baselines += 1
            if r.status == "generated":
                self.generated += 1
            elif r.status == "skipped":
                self.skipped += 1
            else:
                self.failed += 1
                if r.error is not None:
                    self.errors.append(r.error)
                if r.environment:
                    self.environment[r.environment] = self.environment.get(r.environment, 0) + 1
            if r.qa_status == "flagged":
                self.flagged += 1

    def to_dict(self) -> dict:
        return {
            "generated": self.generated,
            "skipped": self.skipped,
            "failed": self.failed,
            "flagged": self.flagged,
            "baselines": self.baselines,
            "errors": [e.to_dict() for e in self.errors],
            "default_categories": dict(sorted(self.default_categories.items())),
            "environment": dict(sorted(self.environment.items())),
            "seconds": round(self.seconds, 3),
        }


def planned_count(products: Sequence[Product], config: PipelineConfig) -> int:
    """The creatives a run plans, by category (a product photographed on a person may get fewer styles),
    the baseline (the catalog photo on the canvas) of every product and placement included."""
    return sum(len(styles_for(p, config)[1]) + 1 for p in products) * len(config.placements)


def default_categories(products: Sequence[Product], config: PipelineConfig) -> dict[str, int]:
    """Category paths that reach no style category (so get the ``default`` styles) -> product count."""
    out: dict[str, int] = {}
    for p in products:
        if category_for(p, config.library).is_default:
            out[p.category_str] = out.get(p.category_str, 0) + 1
    return out


# Worker-process state: built once per process by the pool initializer, so each task only
# carries a Product (the generator and segmenter load once, not per product).
_maker: CreativeMaker | None = None


def _init_worker(config: PipelineConfig, store: CreativeStore, watch_parent: int | None = None) -> None:
    global _maker
    import cv2

    cv2.setNumThreads(1)
    if watch_parent is not None:
        _die_with_parent(watch_parent)
    _maker = CreativeMaker(config, store)


def _die_with_parent(parent: int, every_s: float = 0.25) -> None:
    """Exit as soon as ``parent`` is gone (killed with -9, it cannot tell its workers): a worker of a
    dead run must not keep writing. Files are written atomically, so exiting mid-creative is safe."""
    import threading

    def watch():
        while True:
            time.sleep(every_s)
            if os.getppid() != parent:
                os._exit(70)

    threading.Thread(target=watch, name="backdrop-parent-watch", daemon=True).start()


def _make_one(product: Product) -> list[CreativeResult]:
    assert _maker is not None
    return _maker.make(product)


def run_local(
    products: Sequence[Product],
    config: PipelineConfig,
    store_root: str | Path | CreativeStore,
    *,
    workers: int | None = None,
    progress: bool = True,
) -> RunSummary:
    """Make every missing creative of ``products`` into the store (a :class:`CreativeStore`, or the
    local folder ``store_root``).

    ``workers`` processes (default: one per core); ``workers=1`` runs in this process.
    An interrupted run loses at most the creatives being rendered: everything written is
    indexed, and the next run skips it.
    """
    global _maker
    summary = RunSummary(default_categories=default_categories(products, config))
    t0 = time.perf_counter()
    store = as_store(store_root)  # create and migrate once, before workers race to
    store.close()
    bar = tqdm(total=len(products), unit="product", disable=not progress, file=sys.stderr, dynamic_ncols=True)
    workers = workers or os.cpu_count() or 1

    def done(results: list[CreativeResult]) -> None:
        summary.add(results)
        bar.update(1)
        bar.set_postfix(new=summary.generated, skipped=summary.skipped, flagged=summary.flagged, failed=summary.failed, refresh=False)

    try:
        if workers == 1 or len(products) <= 1:
            _init_worker(config, store)
            try:
                for product in products:
                    done(_make_one(product))
            finally:  # in this process: do not keep the store's index open after the run
                if _maker is not None:
                    _maker.store.close()
                _maker = None
        else:
            ctx = mp.get_context("spawn")
            with ProcessPoolExecutor(
                max_workers=min(workers, len(products)),
                mp_context=ctx,
                initializer=_init_worker,
                initargs=(config, store, os.getpid()),
            ) as pool:
                # Keep a bounded number of products in flight so a huge catalog is not all queued at once.
                it = iter(products)
                pending = set()
                for product in it:
                    pending.add(pool.submit(_make_one, product))
                    if len(pending) >= workers * 4:
                        break
                while pending:
                    finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for fut in finished:
                        done(fut.result())
                        nxt = next(it, None)
                        if nxt is not None:
                            pending.add(pool.submit(_make_one, nxt))
    finally:
        bar.close()
    summary.seconds = time.perf_counter() - t0
    return summary
