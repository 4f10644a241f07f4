"""What one logged decision costs in bytes: measured on a real SQLite event log (for :mod:`.cost`)."""

from __future__ import annotations

import random
import sqlite3
import tempfile
import uuid
from functools import cache
from pathlib import Path

#: used only if the event log cannot be imported to measure it
FALLBACK_LOG_BYTES_PER_DECISION = 1500.0


#: 20 arms, like bench_serve.py's style library (the 18 shipped styles plus 2 variants)
_ARMS = [
    "studio-sweep", "pastel-sweep", "tone-on-tone", "color-pop", "glossy-studio", "spotlight",
    "paper-shadows", "marble-counter", "wood-table", "cosy-wood", "wooden-desk", "linen-drape",
    "urban-concrete", "sunny-terrazzo", "kitchen-counter", "sunlit-splash", "beach-gradient",
    "festive-bokeh", "studio-sweep-b", "color-pop-b",
]  # fmt: skip


def _file_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*") if p.is_file())


@cache
def _measure_log(n: int) -> tuple[float, str]:
    try:
        from ..serving.eventlog import SQLiteEventLog
        from ..serving.records import DecisionRecord
    except ImportError as e:  # pragma: no cover - the serving modules are part of the package
        return FALLBACK_LOG_BYTES_PER_DECISION, f"fallback constant (the event log could not be imported: {e})"
    rng = random.Random(0)
    with tempfile.TemporaryDirectory(prefix="backdrop-cost-") as tmp:
        path = Path(tmp) / "events.sqlite"
        log = SQLiteEventLog(path, synchronous="OFF")
        try:
            log.migrate()
            log.close()
            empty = _file_bytes(path)
            log = SQLiteEventLog(path, synchronous="OFF")
            for i in range(n):
                arm = rng.randrange(len(_ARMS))
                log.log_decision(
                    DecisionRecord(
                        decision_id=uuid.UUID(int=rng.getrandbits(128)).hex,
                        created_at=1.7e9 + i * 0.01,
                        item_id=f"SKU-{rng.randrange(10_000_000):08d}",
                        placement="square",
                        arms=list(_ARMS),
                        arm=_ARMS[arm],
                        propensity=0.95 if arm == 0 else 0.05 / len(_ARMS),
                        policy="linucb",
                        model_version=7,
                        context=[rng.gauss(0, 1) for _ in range(64)],
                        user_id=f"user-{rng.randrange(10**9)}",
                        user_features={
                            "segment": f"segment-{rng.randrange(20)}",
                            "country": rng.choice(["US", "DE", "FR", "GB", "JP"]),
                            "device": rng.choice(["mobile", "desktop", "tablet"]),
                            "age": rng.randrange(18, 80),
                        },
                        request_id=uuid.UUID(int=rng.getrandbits(128)).hex,
                        creative_key=f"{rng.getrandbits(128):032x}",
                    )
                )
        finally:
            log.close()
        # the last connection's close checkpoints the WAL into the database file; make sure of it
        conn = sqlite3.connect(path)
        try:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            conn.close()
        full = _file_bytes(path)
    per = (full - empty) / n
    return per, (
        f"measured: SQLite event log (WAL checkpointed) grew {full - empty:,} bytes for {n:,} decisions "
        "(64-float context, 20 arms, user id and 4 user features, request id, creative key; rows + indexes)"
    )


def measure_log_bytes_per_decision(n: int = 2000) -> float:
    """Bytes one logged decision adds to the SQLite event log, measured (cached per process)."""
    return _measure_log(n)[0]


def log_bytes_source(n: int = 2000) -> str:
    return _measure_log(n)[1]
