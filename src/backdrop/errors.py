"""Errors a user can cause, carrying the file/row/field they come from."""

from __future__ import annotations

from dataclasses import asdict, dataclass


class BackdropError(Exception):
    """Base class for errors the CLI turns into a one-line message and a non-zero exit."""


class ConfigError(BackdropError):
    """A configuration file (placements, styles) is missing or invalid."""


class EnvironmentFailure(BackdropError):
    """The machine, not the input, failed: a full disk, permissions, read-only media (exit code 3)."""


@dataclass(frozen=True)
class RowError:
    """One bad catalog row: ``FILE:ROW: FIELD: reason`` (ROW is the line number, header = 1; in an
    XML feed, the item's number, and ``where`` says ``item 3 (id SKU-3)``)."""

    file: str
    row: int
    field: str
    reason: str
    where: str = ""

    def __str__(self) -> str:
        return f"{self.file}:{self.where or self.row}: {self.field}: {self.reason}"

    def to_dict(self) -> dict:
        return asdict(self)


class CatalogError(BackdropError):
    """The catalog as a whole cannot be read (missing file, unknown format, no header...)."""
