"""What a planned creative is and what came of it: shared by the pipeline, the baseline
(:mod:`.original`) and the runners (local, Ray)."""

from __future__ import annotations

import errno
import traceback
from dataclasses import dataclass, field

from ..errors import RowError
from ..imaging.layout import Placement, Scene
from ..imaging.subject import Subject
from ..overlays import OverlayData, OverlayTemplate
from ..styles import CategoryMatch, Style
from .catalog import Product


@dataclass(frozen=True)
class CreativeSpec:
    """A planned creative: everything that determines it, and its key."""

    key: str
    product: Product
    placement: Placement
    style: Style
    seed: int
    prompt: str
    negative_prompt: str
    subject: Subject = field(default_factory=Subject)
    category: CategoryMatch | None = None
    overlay: OverlayTemplate | None = None
    overlay_data: OverlayData | None = None
    overlay_key: dict | None = None  #: the overlay's part of the key, stored with the creative


@dataclass
class PreparedScene:
    spec: CreativeSpec
    scene: Scene


@dataclass(frozen=True)
class CreativeResult:
    product_id: str
    key: str | None
    style: str | None
    placement: str | None
    status: str  # "generated" | "skipped" | "failed"
    error: RowError | None = None
    seconds: float = 0.0
    qa_status: str | None = None  # "ok" | "flagged" (None when failed)
    #: a failure the environment caused (disk full, permissions, read-only media), not the data: its reason
    environment: str | None = None


def describe_error(e: Exception) -> str:
    """One line for a creative's error: the exception, and where it came from when it is a bug."""
    detail = f"{type(e).__name__}: {e}"
    if not isinstance(e, (ValueError, OSError)):
        detail += " | " + traceback.format_exc(limit=3).strip().splitlines()[-1]
    return detail


#: errno values that say the machine, not the catalog, is at fault
_ENV_ERRNO = {
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EIO: "input/output error",
    errno.EMFILE: "too many open files",
}


def environment_problem(e: BaseException | None) -> str | None:
    """A short reason when ``e`` is the environment's fault (a full disk, permissions, read-only
    media, the store's index unwritable), else None: those failures must not pass as bad rows."""
    import sqlite3

    if isinstance(e, OSError) and e.errno in _ENV_ERRNO:
        return f"{_ENV_ERRNO[e.errno]} ({errno.errorcode.get(e.errno, e.errno)})"
    if isinstance(e, sqlite3.OperationalError):
        msg = str(e).lower()
        for needle, why in (
            ("disk is full", "no space left on device (the store's index)"),
            ("readonly", "read-only store index"),
            ("disk i/o", "input/output error (the store's index)"),
            ("unable to open", "cannot open the store's index"),
        ):
            if needle in msg:
                return why
    cause = e.__cause__ if e is not None else None
    return environment_problem(cause) if cause is not None and cause is not e else None


def failed_result(
    product: Product, spec: CreativeSpec | None, fieldname: str, reason: str, exc: BaseException | None = None
) -> CreativeResult:
    """A "failed" result naming the catalog row and field; ``exc`` tells the environment's faults apart."""
    where = f" [{spec.style.name} @ {spec.placement.name}]" if spec is not None else ""
    return CreativeResult(
        product.product_id,
        spec.key if spec else None,
        spec.style.name if spec else None,
        spec.placement.name if spec else None,
        "failed",
        error=RowError(product.source_file, product.source_row, fieldname, reason + where),
        environment=environment_problem(exc),
    )
