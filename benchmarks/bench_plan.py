"""What a decision costs before its log write: ``Service.plan`` (feature checks, candidates, the
policy's choice), in process, no HTTP and no event-log write.

    python benchmarks/bench_plan.py [--store demo-out/store] [--item apple-juice] [--placement square]

Prints the median over 7 runs of 3,000 plans (microseconds per plan) after a warm-up. To compare
two versions of the code on one machine in one sitting, run it under each (for example
``PYTHONPATH=/path/to/other/checkout/src python benchmarks/bench_plan.py``) and read the medians
side by side; BLAS runs single-threaded, as in a service worker.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--store", default="demo-out/store", help="a creative store (from `make demo`)")
    ap.add_argument("--item", default="apple-juice")
    ap.add_argument("--placement", default="square")
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--plans", type=int, default=3000, help="plans per run")
    args = ap.parse_args()

    from threadpoolctl import threadpool_limits

    from backdrop.serving.schemas import DecideRequest
    from backdrop.serving.service import Service
    from backdrop.serving.settings import load_settings

    with tempfile.TemporaryDirectory() as tmp, threadpool_limits(1):
        service = Service(load_settings(None, store=args.store, db=f"{tmp}/events.sqlite", api_key="bench-key-0123456789"))
        req = DecideRequest.model_validate(
            {"item_id": args.item, "placement": args.placement, "user": {"id": "u1", "features": {"segment": "runners", "device": "ios"}}}
        )
        for _ in range(500):
            service.plan(req)
        runs = []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            for _ in range(args.plans):
                service.plan(req)
            runs.append((time.perf_counter() - t0) / args.plans * 1e6)
        service.close()
    print(f"plan(): median {statistics.median(runs):.1f} us per decision (runs: {', '.join(f'{r:.1f}' for r in runs)})")


if __name__ == "__main__":
    main()
