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

from .catalog import Product
from .errors import RowError
from .pipeline import CreativeMaker, CreativeResult, PipelineConfig, styles_for
from .store import CreativeStore


@dataclass
class RunSummary:
    generated: int = 0
    skipped: int = 0
    failed: int = 0
    errors: list[RowError] = field(default_factory=list)
    seconds: float = 0.0

    def add(self, results: Iterable[CreativeResult]) -> None:
        for r in results:
            if r.status == "generated":
                self.generated += 1
            elif r.status == "skipped":
                self.skipped += 1
            else:
                self.failed += 1
                if r.error is not None:
                    self.errors.append(r.error)

    def to_dict(self) -> dict:
        return {
            "generated": self.generated,
            "skipped": self.skipped,
            "failed": self.failed,
            "errors": [e.to_dict() for e in self.errors],
            "seconds": round(self.seconds, 3),
        }


def planned_count(products: Sequence[Product], config: PipelineConfig) -> int:
    return sum(len(styles_for(p, config)) for p in products) * len(config.placements)


# Worker-process state: built once per process by the pool initializer, so each task only
# carries a Product (the generator and segmenter load once, not per product).
_maker: CreativeMaker | None = None


def _init_worker(config: PipelineConfig, store_root: str) -> None:
    global _maker
    import cv2

    cv2.setNumThreads(1)
    _maker = CreativeMaker(config, CreativeStore(store_root))


def _make_one(product: Product) -> list[CreativeResult]:
    assert _maker is not None
    return _maker.make(product)


def run_local(
    products: Sequence[Product],
    config: PipelineConfig,
    store_root: str | Path,
    *,
    workers: int | None = None,
    progress: bool = True,
) -> RunSummary:
    """Make every missing creative of ``products`` into the store at ``store_root``.

    ``workers`` processes (default: one per core); ``workers=1`` runs in this process.
    An interrupted run loses at most the creatives being rendered: everything written is
    indexed, and the next run skips it.
    """
    summary = RunSummary()
    t0 = time.perf_counter()
    CreativeStore(store_root).close()  # create and migrate once, before workers race to
    total = planned_count(products, config)
    bar = tqdm(total=total, unit="creative", disable=not progress, file=sys.stderr, dynamic_ncols=True)
    workers = workers or os.cpu_count() or 1
    try:
        if workers == 1 or len(products) <= 1:
            _init_worker(config, str(store_root))
            for product in products:
                results = _make_one(product)
                summary.add(results)
                bar.update(len(results))
        else:
            ctx = mp.get_context("spawn")
            with ProcessPoolExecutor(
                max_workers=min(workers, len(products)),
                mp_context=ctx,
                initializer=_init_worker,
                initargs=(config, str(store_root)),
            ) as pool:
                # Keep a bounded number of products in flight so a huge catalog is not all queued at once.
                it = iter(products)
                pending = set()
                for product in it:
                    pending.add(pool.submit(_make_one, product))
                    if len(pending) >= workers * 4:
                        break
                while pending:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for fut in done:
                        results = fut.result()
                        summary.add(results)
                        bar.update(len(results))
                        nxt = next(it, None)
                        if nxt is not None:
                            pending.add(pool.submit(_make_one, nxt))
    finally:
        bar.close()
    summary.seconds = time.perf_counter() - t0
    return summary
