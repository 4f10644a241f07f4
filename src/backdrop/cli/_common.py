"""Argument types and the help formatter every command group shares."""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path

from ..errors import BackdropError


def csv_list(value: str) -> tuple[str, ...]:
    items = tuple(v.strip() for v in value.split(",") if v.strip())
    if not items:
        raise argparse.ArgumentTypeError("expected a comma-separated list")
    return items


def day(text: str) -> dt.date:
    """An argparse type: a calendar day, YYYY-MM-DD."""
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a day (YYYY-MM-DD)") from None


def positive_int(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got '{value}'") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {n}")
    return n


class Formatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Descriptions as written; an option's default shown when it has one its help does not already give."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if action.default in (None, False, argparse.SUPPRESS) or "default" in text:
            return text
        return super()._get_help_string(action)


def existing_event_log(source: str) -> str:
    """The decision service's event log named by ``source``: a postgresql:// URL, an SQLite file, or a
    store directory (its events.sqlite). A missing file is an error: opening it would create an empty
    log, and an empty log reads as "no results" instead of a wrong path."""
    if source.startswith(("postgresql://", "postgres://")):
        return source
    path = Path(source.removeprefix("sqlite:///"))
    if path.is_dir():
        path = path / "events.sqlite"
        if not path.is_file():
            raise BackdropError(f"{source}: no events.sqlite in this directory (is it a store the service ran on?)")
    elif not path.is_file():
        raise BackdropError(f"{source}: no such event log")
    return str(path)


def planned_shares(text: str | None) -> dict[str, float] | None:
    """``--planned ARM=SHARE,...`` as arm -> share (None when not given)."""
    if not text:
        return None
    planned = {}
    for part in text.split(","):
        arm, _, share = part.partition("=")
        try:
            planned[arm.strip()] = float(share)
        except ValueError:
            raise BackdropError(f"--planned {text}: '{part}' is not ARM=SHARE") from None
    return planned


def read_key_file(path: Path, what: str) -> str:
    """The key in a ``--...-key-file`` (``what``: "API key", "console key"); an error names the file."""
    try:
        key = path.read_text().strip()
    except OSError as e:
        raise BackdropError(f"{path}: cannot read the {what}: {e.strerror}") from None
    if not key:
        raise BackdropError(f"{path}: the {what} file is empty")
    return key


def generated_key(path: Path) -> str:
    """The key in ``path`` beside a store, written there first (random, mode 600) when there is none;
    OSError when it cannot be written."""
    import os
    import secrets

    if not path.exists():
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it meanwhile: that one is the key
            return path.read_text().strip()
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(32) + "\n")
    return path.read_text().strip()
