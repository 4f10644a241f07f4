"""Batch generation on Ray Data: the same pipeline stages as the local run, spread over a cluster.

::

    products ─> [CPU tasks] plan + skip what the store has + decode, mask, layout
                (+ the baselines, written here: the catalog photo on each placement, no generator)
             ─> [generator actors, num_gpus=1 each when the cluster has GPUs] attempt 0
             ─> [CPU tasks] gate: segment, expansion / IoU / halo
             ─> ... attempts 1..N-1 for the creatives the gate rejected ...
             ─> [CPU tasks] procedural fallback for the rest, exact composite, store write + index

Every stage calls the :class:`~backdrop.creative.pipeline.CreativeMaker` methods the local run uses, and
writes into the same content-addressed store, so a run resumes, skips, and stays idempotent the
same way. Rows travel between stages as pickled payloads (scenes hold numpy arrays). The store
must be on storage every node can reach (a shared filesystem) when the cluster has several nodes.
"""

from __future__ import annotations

import logging
import os
import pickle
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .catalog import Product
from .local import RunSummary, default_categories
from .pipeline import CreativeMaker, PipelineConfig, describe_error, failed_result
from .store import CreativeStore, as_store


def _rows(batch: dict) -> list[dict]:
    """Ray's default batch format (a dict of columns) -> the list of row payloads."""
    return [pickle.loads(p) for p in batch["payload"]]


def _batch(rows: list[dict]) -> dict:
    import numpy as np

    payload = np.empty(len(rows), dtype=object)
    payload[:] = [pickle.dumps(r, protocol=pickle.HIGHEST_PROTOCOL) for r in rows]
    pending = np.array([("item" in r and r.get("background") is None) for r in rows], dtype=bool)
    return {"payload": payload, "pending": pending}


def _maker(config: PipelineConfig, store: CreativeStore) -> CreativeMaker:
    import cv2

    cv2.setNumThreads(1)
    return CreativeMaker(config, store)


def plan_batch(batch: dict, config: PipelineConfig, store: CreativeStore) -> dict:
    """CPU task. Product -> one row per creative: finished ("skipped"/"failed" result) or to render."""
    m = _maker(config, store)
    out: list[dict] = []
    for row in _rows(batch):
        finished, prepared = m.start(row["product"])  # the local runner's plan / skip / prepare
        out += [{"result": r} for r in finished]
        out += [{"item": it, "background": None, "gate": None, "seconds": 0.0} for it in prepared]
    return _batch(out)


class Generate:
    """Actor: holds the model; renders attempt ``attempt`` for every row still without a background."""

    def __init__(self, config: PipelineConfig, store: CreativeStore, attempt: int):
        self.maker = _maker(config, store)
        self.attempt = attempt
        _ = self.maker.generator  # load the model once, when the actor starts

    def __call__(self, batch: dict) -> dict:
        rows = _rows(batch)
        todo = [r for r in rows if "item" in r and r["background"] is None]
        if todo:
            t0 = time.perf_counter()
            try:
                outs: list[tuple[np.ndarray, np.ndarray | None]]
                if self.maker.gated:
                    outs = list(self.maker.render_attempt([r["item"] for r in todo], self.attempt))
                else:
                    outs = [(bg, None) for bg in self.maker.render([r["item"] for r in todo])]
            except Exception as e:  # noqa: BLE001 - the whole batch failed: report each creative
                for r in todo:
                    r["result"] = failed_result(r["item"].spec.product, r["item"].spec, "generate", describe_error(e), e)
                    del r["item"]
                return _batch(rows)
            share = (time.perf_counter() - t0) / len(todo)
            for r, (background, raw) in zip(todo, outs, strict=True):
                r["candidate"], r["raw"] = background, raw
                r["seconds"] += share
        return _batch(rows)


def judge_batch(batch: dict, config: PipelineConfig, store: CreativeStore, attempt: int) -> dict:
    """CPU task: the gate on this attempt's candidates; passes keep their background, failures stay pending."""
    m = _maker(config, store)
    rows = _rows(batch)
    for r in rows:
        if "candidate" not in r:
            continue
        candidate, raw = r.pop("candidate"), r.pop("raw")
        if not m.gated:
            r["background"] = candidate
            continue
        verdict = m.judge(r["item"], candidate, raw, attempt)
        r["gate"] = verdict
        if verdict["gate"] == "pass":
            r["background"] = candidate
    return _batch(rows)


def finish_batch(batch: dict, config: PipelineConfig, store: CreativeStore) -> dict:
    """CPU task: procedural fallback where every attempt failed, exact composite, store write."""
    m = _maker(config, store)
    out = []
    for r in _rows(batch):
        if "result" in r:
            out.append({"result": r["result"]})
            continue
        item, gate = r["item"], r["gate"]
        try:
            background = r["background"]
            if background is None:
                background = m.fallback(item)
                gate = gate | {"gate": "fallback", "gate_failed": gate["gate"]}
            out.append({"result": m.finish(item, background, r["seconds"], gate)})
        except Exception as e:  # noqa: BLE001
            out.append({"result": failed_result(item.spec.product, item.spec, "generate", describe_error(e), e)})
    return _batch(out)


def run_ray(
    products: Sequence[Product],
    config: PipelineConfig,
    store_root: str | Path | CreativeStore,
    *,
    address: str | None = None,
    progress: bool = True,
    generator_actors: int | None = None,
    batch_size: int | None = None,
) -> RunSummary:
    """Make every missing creative of ``products`` on Ray Data (a local Ray when ``address`` is None).

    CPU stages are Ray tasks; generation is an actor pool (``num_gpus=1`` per actor, one actor per
    GPU, when the cluster has GPUs; else one CPU actor). Each gate attempt is one pass over the
    creatives still without a background, so a single pool holds the GPUs at a time.
    """
    import ray
    from ray.data import ActorPoolStrategy, DataContext
    from ray.data.expressions import col

    t0 = time.perf_counter()
    store = as_store(store_root)  # every node reopens it by address: a local path (shared), or object storage + index
    store.close()
    if not ray.is_initialized():
        if address is None:
            # Ray starts its workers at nice 15: beside any other busy process on the machine they got a
            # few percent of a core, and a run the user asked for crawled (minutes per stage). The
            # run's workers do the run's work, at the run's priority, as the local runner's do.
            ray.init(
                num_cpus=os.cpu_count(),
                include_dashboard=False,
                log_to_driver=False,
                logging_level="ERROR",
                _system_config={"worker_niceness": 0},
            )
        else:
            ray.init(address=address, log_to_driver=False, logging_level="ERROR")
    ctx = DataContext.get_current()
    ctx.enable_progress_bars = progress
    logging.getLogger("ray.data").setLevel(logging.WARNING)  # its per-dataset INFO lines drown the run's own output

    gpus = int(ray.cluster_resources().get("GPU", 0))
    actors = generator_actors or max(1, gpus)
    gen_batch = batch_size or max(1, int(config.generator_options.get("batch_size", 4)))
    attempts = CreativeMaker(config, store).gate.max_attempts
    common = {"config": config, "store": store}

    ds = ray.data.from_items([{"payload": pickle.dumps({"product": p})} for p in products])
    ds = ds.map_batches(plan_batch, fn_kwargs=common, batch_size=1).materialize()
    for attempt in range(attempts):
        todo = ds.filter(expr=col("pending") == True)  # noqa: E712 - an Arrow expression, not a Python comparison
        if todo.count() == 0:
            break
        rendered = todo.map_batches(
            Generate,
            fn_constructor_args=(config, store, attempt),
            batch_size=gen_batch,
            compute=ActorPoolStrategy(size=actors),
            num_gpus=1 if gpus else 0,
            num_cpus=1,
        ).map_batches(judge_batch, fn_kwargs=common | {"attempt": attempt}, batch_size=gen_batch)
        ds = ds.filter(expr=col("pending") == False).union(rendered).materialize()  # noqa: E712
    ds = ds.map_batches(finish_batch, fn_kwargs=common, batch_size=gen_batch)

    summary = RunSummary(default_categories=default_categories(products, config))
    for row in ds.iter_rows():
        summary.add([pickle.loads(row["payload"])["result"]])
    summary.seconds = time.perf_counter() - t0
    return summary
