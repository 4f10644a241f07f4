"""Impression logs (CSV or Parquet) -> :class:`Impressions`, with errors that name the file, row and column."""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from ...errors import CatalogError

#: column aliases, first match wins (header names are compared case-insensitively)
ALIASES = {
    "arm": ("arm", "variant", "style"),
    "click": ("click", "reward"),
    "covariate": ("covariate", "pre_ctr"),
    "at": ("at", "timestamp"),
    "unit": ("user_id", "user", "unit"),
}


@dataclass
class Impressions:
    """Impression-level data: one entry per impression in every array.

    ``arm`` (str), ``click`` (float: 0/1 clicks, or reward values), optional ``covariate`` (float,
    pre-period metric for CUPED) and ``at`` (float, seconds since the epoch); ``source`` names where
    the data came from (a file path) for messages and reports.
    """

    arm: np.ndarray
    click: np.ndarray
    covariate: np.ndarray | None = None
    at: np.ndarray | None = None
    source: str = "<memory>"
    #: the randomisation unit of each impression (a user id) when arms are assigned per user
    unit: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.arm = np.asarray(self.arm, dtype=str)
        if self.unit is not None:
            self.unit = np.asarray(self.unit, dtype=str)
            if self.unit.shape != self.arm.shape:
                raise ValueError(f"unit has shape {self.unit.shape}, arm has {self.arm.shape}; one entry per impression")
        self.click = np.asarray(self.click, dtype=float)
        n = self.arm.shape[0] if self.arm.ndim == 1 else -1
        for name in ("click", "covariate", "at"):
            value = getattr(self, name)
            if value is None:
                continue
            value = np.asarray(value, dtype=float)
            setattr(self, name, value)
            if value.shape != (n,):
                raise ValueError(f"{name} has shape {value.shape}, arm has {self.arm.shape}; one entry per impression")

    def __len__(self) -> int:
        return int(self.arm.shape[0])


def load_impressions(path: str | Path) -> Impressions:
    """Read impressions from a CSV (stdlib ``csv``) or Parquet (pyarrow) file.

    Columns (case-insensitive; aliases in brackets): ``arm`` [variant, style], ``click`` [reward],
    optional ``covariate`` [pre_ctr], optional ``at`` [timestamp] as epoch seconds or ISO 8601
    (naive times are taken as UTC). Raises :class:`~backdrop.errors.CatalogError` naming the file,
    row (CSV: line number, header = 1; Parquet: record number from 1) and field of the first bad
    value, or listing the columns found when a required one is missing.
    """
    path = Path(path)
    if not path.exists():
        raise CatalogError(f"{path}: impressions file not found")
    if path.is_dir():
        raise CatalogError(f"{path}: is a directory; pass the impressions file (CSV or Parquet)")
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv", ".txt"):
        columns, rows = _read_csv(path, "\t" if suffix == ".tsv" else ",")
    elif suffix in (".parquet", ".pq"):
        columns, rows = _read_parquet(path)
    else:
        raise CatalogError(f"{path}: unsupported impressions format '{suffix}'; use .csv or .parquet")
    return _build(path, columns, rows)


def _resolve(path: Path, header: Sequence[str]) -> dict[str, str]:
    """Map canonical field -> actual column name; error if arm or click is missing."""
    lower = {h.strip().lower(): h for h in header}
    found = {}
    for field, names in ALIASES.items():
        for name in names:
            if name in lower:
                found[field] = lower[name]
                break
    for field in ("arm", "click"):
        if field not in found:
            aliases = " or ".join(f"'{a}'" for a in ALIASES[field])
            have = ", ".join(header) if header else "(none)"
            raise CatalogError(f"{path}: missing column {aliases}; found columns: {have}")
    return found


def _read_csv(path: Path, delimiter: str) -> tuple[dict[str, str], list[tuple[int, dict]]]:
    try:
        f = path.open(newline="", encoding="utf-8-sig")
    except OSError as e:
        raise CatalogError(f"{path}: cannot open: {e.strerror}") from e
    with f:
        reader = csv.DictReader(f, delimiter=delimiter)
        try:
            header = reader.fieldnames
        except (csv.Error, UnicodeDecodeError) as e:
            raise CatalogError(f"{path}: row 1: cannot parse header: {e}") from e
        if not header:
            raise CatalogError(f"{path}: empty file; expected a header row with arm and click columns")
        columns = _resolve(path, header)
        rows = []
        try:
            for record in reader:
                if None in record:  # more values than header fields
                    raise CatalogError(
                        f"{path}: row {reader.line_num}: has {len(header) + len(record[None])} fields, "
                        f"the header has {len(header)}; quote values that contain '{delimiter}'"
                    )
                rows.append((reader.line_num, record))
        except (csv.Error, UnicodeDecodeError) as e:
            raise CatalogError(f"{path}: row {reader.line_num}: cannot parse CSV: {e}") from e
    return columns, rows


def _read_parquet(path: Path) -> tuple[dict[str, str], list[tuple[int, dict]]]:
    try:
        import pyarrow.parquet as pq
    except ImportError as e:
        raise CatalogError(f"{path}: reading Parquet needs pyarrow: pip install pyarrow") from e
    try:
        table = pq.read_table(path)
    except Exception as e:  # pyarrow raises several types for corrupt/non-Parquet files
        raise CatalogError(f"{path}: cannot read Parquet: {e}") from e
    columns = _resolve(path, table.column_names)
    data = {}
    for name in columns.values():
        col = table.column(name)
        if _is_timestamp(col.type):
            import pyarrow as pa

            # -> float epoch seconds; nulls stay None
            col = col.cast(pa.timestamp("us", tz="UTC")).cast(pa.int64())
            data[name] = [None if v is None else v / 1e6 for v in col.to_pylist()]
        else:
            data[name] = col.to_pylist()
    names = list(data)
    rows = [(i + 1, dict(zip(names, values, strict=True))) for i, values in enumerate(zip(*data.values(), strict=True))]
    return columns, rows


def _is_timestamp(arrow_type) -> bool:
    import pyarrow.types as pt

    return pt.is_timestamp(arrow_type) or pt.is_date(arrow_type)


def _number(value) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(str(value).strip())
    except ValueError:
        return None


def _timestamp(value) -> float | None:
    number = _number(value)
    if number is not None:
        return number
    if isinstance(value, datetime):
        dt = value
    else:
        try:
            dt = datetime.fromisoformat(str(value).strip())
        except ValueError:
            return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def _build(path: Path, columns: dict[str, str], rows: list[tuple[int, dict]]) -> Impressions:
    if not rows:
        raise CatalogError(f"{path}: no impressions (the file has a header but no rows)")

    def bad(row: int, message: str) -> CatalogError:
        return CatalogError(f"{path}: row {row}: {message}")

    n = len(rows)
    arm = np.empty(n, dtype=object)
    click = np.empty(n)
    covariate = np.empty(n) if "covariate" in columns else None
    at = np.empty(n) if "at" in columns else None
    unit = np.empty(n, dtype=object) if "unit" in columns else None
    for i, (row, record) in enumerate(rows):
        if unit is not None:
            raw = record.get(columns["unit"])
            unit[i] = "" if raw is None else str(raw).strip()
            if not unit[i]:
                raise bad(row, f"{columns['unit']} is empty; give every impression its user (or drop the column)")
        raw = record.get(columns["arm"])
        name = "" if raw is None else str(raw).strip()
        if not name:
            raise bad(row, f"{columns['arm']} is empty; every impression needs the arm it showed")
        arm[i] = name

        raw = record.get(columns["click"])
        value = _number(raw)
        if value is None or not math.isfinite(value):
            raise bad(row, f"{columns['click']} {_show(raw)} is not a number; expected 0/1 or a reward value")
        click[i] = value

        if covariate is not None:
            raw = record.get(columns["covariate"])
            value = _number(raw)
            if value is None or not math.isfinite(value):
                raise bad(
                    row,
                    f"{columns['covariate']} {_show(raw)} is not a number; give every row its pre-period value "
                    "(e.g. the user's CTR before the test, 0 if unknown) or drop the column",
                )
            covariate[i] = value

        if at is not None:
            raw = record.get(columns["at"])
            value = _timestamp(raw)
            if value is None or not math.isfinite(value):
                raise bad(row, f"{columns['at']} {_show(raw)} is not a time; use epoch seconds or ISO 8601")
            at[i] = value
    return Impressions(
        arm=arm.astype(str), click=click, covariate=covariate, at=at, source=str(path), unit=None if unit is None else unit.astype(str)
    )


def _show(raw) -> str:
    return "(empty)" if raw is None or str(raw).strip() == "" else f"'{raw}'"
