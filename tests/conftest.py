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
