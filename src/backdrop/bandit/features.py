"""Context features: (user features, item category path, placement) -> a fixed-length float vector.

Layout of the vector (``n_features`` long)::

    [ bias | numeric fields (scaled) | one-hot fields (one slot per value + "other") | hashed tokens ]

* **numeric** fields are standardised, ``(value - center) / scale``, and clipped to [-5, 5];
  a missing value is 0 (the center). Booleans count as 0/1.
* **one-hot** fields have a slot per declared value plus one for anything else.
* everything else is **hashed** (signed feature hashing, stable across processes): every other
  string/bool user field as ``field=value``, the category path at every depth
  (``cat=Apparel``, ``cat=Apparel>Sneakers``), the placement, and the crosses
  ``category x placement`` and ``<segment field> x category`` (leaf category). The hashed tokens
  are scaled by 1/sqrt(count) so this block has unit norm whatever the number of tokens.
Undeclared numeric user fields are ignored (declare them to use them): a number with an unknown
scale would dominate the vector.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from functools import lru_cache

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..text import split_path


class NumericField(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    center: float = 0.0
    scale: float = Field(default=1.0, gt=0)


class FeatureConfig(BaseModel):
    """What the encoder does; saved with a model so the service encodes exactly as training did."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    n_features: int = Field(default=64, ge=4, le=1 << 20)
    numeric: dict[str, NumericField] = Field(default_factory=dict)
    one_hot: dict[str, list[str]] = Field(default_factory=dict)
    #: user field whose value is crossed with the category (e.g. a segment or cohort)
    segment_field: str | None = "segment"
    cross_category_placement: bool = True
    cross_segment_category: bool = True
    bias: bool = True

    @model_validator(mode="after")
    def _fits(self) -> FeatureConfig:
        fixed = int(self.bias) + len(self.numeric) + sum(len(v) + 1 for v in self.one_hot.values())
        if fixed >= self.n_features:
            raise ValueError(
                f"n_features={self.n_features} leaves no room for hashed features ({fixed} slots go to bias, numeric and one-hot fields)"
            )
        return self


@lru_cache(maxsize=1 << 16)
def _hash(token: str, buckets: int) -> tuple[int, float]:
    h = int.from_bytes(hashlib.blake2b(token.encode(), digest_size=8).digest(), "little")
    return (h >> 1) % buckets, (1.0 if h & 1 else -1.0)


class FeatureEncoder:
    """Encode (user features, category path, placement) into a float64 vector of ``n_features``.

    >>> encoder = FeatureEncoder(n_features=16)
    >>> x = encoder.encode({"segment": "runners", "age": 31}, "Men > Tops", "square")
    >>> x.shape, float(x[0])  # the bias first, then numeric, one-hot and hashed features
    ((16,), 1.0)
    >>> bool((x == encoder.encode({"age": 31, "segment": "runners"}, ("Men", "Tops"), "square")).all())
    True
    """

    def __init__(self, config: FeatureConfig | None = None, **kwargs):
        self.config = config or FeatureConfig(**kwargs)
        c = self.config
        self.n_features = c.n_features
        self._numeric = list(c.numeric.items())
        self._num_offset = int(c.bias)
        self._onehot_offset: dict[str, int] = {}
        self._onehot_index: dict[str, dict[str, int]] = {}
        offset = self._num_offset + len(self._numeric)
        for name, values in c.one_hot.items():
            self._onehot_offset[name] = offset
            self._onehot_index[name] = {v: i for i, v in enumerate(values)}
            offset += len(values) + 1
        self._hash_offset = offset
        self._buckets = c.n_features - offset
        self._item_cache: dict[tuple, tuple[list[str], str]] = {}

    def problem(self, user: Mapping) -> tuple[str, str] | None:
        """The first user field this encoder cannot use, and why: a declared numeric field that is not
        a finite number in range (None: all can be encoded).

        >>> FeatureEncoder(n_features=16, numeric={"age": {"center": 35, "scale": 10}}).problem({"age": "old"})
        ('age', 'declared numeric: must be a number, got a string')
        """
        for name, spec in self._numeric:
            value = user.get(name)
            if value is None or isinstance(value, bool):
                continue
            if not isinstance(value, int | float):
                return name, f"declared numeric: must be a number, got a {'string' if isinstance(value, str) else type(value).__name__}"
            try:
                scaled = (float(value) - spec.center) / spec.scale
            except OverflowError:
                scaled = math.inf
            if not math.isfinite(scaled):
                return name, "declared numeric: must be a finite number of a sensible size"
        return None

    @property
    def hashed_slots(self) -> int:
        return self._buckets

    @property
    def blocks(self) -> list[int]:
        """Sizes of the vector's parts that mean different things: the bias, the declared user fields
        (numeric and one-hot), the hashed tokens (category, placement and their crosses); what a
        policy with a prior per part (``PooledUCB``) is given.

        >>> FeatureEncoder(n_features=16, numeric={"age": {}}, one_hot={"device": ["mobile", "desktop"]}).blocks
        [1, 4, 11]
        """
        bias = int(self.config.bias)
        user = self._hash_offset - bias
        return [b for b in (bias, user, self._buckets) if b]

    def tokens(self, user: Mapping, category: Sequence[str] | str, placement: str) -> list[str]:
        """The hashed tokens of a context (useful to see what the encoder does)."""
        c = self.config
        out = []
        for key in sorted(user):
            if key in c.numeric or key in c.one_hot:
                continue
            value = user[key]
            if isinstance(value, (bool, str)):
                out.append(f"{key}={str(value).lower() if isinstance(value, bool) else value}")
        item_tokens, leaf = self._item_tokens(category, placement)
        out += item_tokens
        if c.cross_segment_category and c.segment_field and c.segment_field in user:
            out.append(f"{c.segment_field}={user[c.segment_field]}|cat={leaf}")
        return out

    def _item_tokens(self, category: Sequence[str] | str, placement: str) -> tuple[list[str], str]:
        """The tokens of the category path and the placement (the same for every user: cached), and the leaf."""
        key = (category if isinstance(category, str) else tuple(category), placement)
        hit = self._item_cache.get(key)
        if hit is None:
            path = _category_path(category)
            tokens = ["cat=" + ">".join(path[:depth]) for depth in range(1, len(path) + 1)]
            tokens.append(f"placement={placement}")
            leaf = path[-1] if path else ""
            if self.config.cross_category_placement:
                tokens.append(f"cat={leaf}|placement={placement}")
            if len(self._item_cache) > 65_536:
                self._item_cache.clear()
            hit = self._item_cache[key] = (tokens, leaf)
        return hit

    def encode(self, user: Mapping, category: Sequence[str] | str, placement: str) -> np.ndarray:
        x = np.zeros(self.n_features, dtype=np.float64)
        self._fill(x, user, category, placement)
        return x

    def encode_many(self, rows: Sequence[tuple[Mapping, Sequence[str] | str, str]]) -> np.ndarray:
        X = np.zeros((len(rows), self.n_features), dtype=np.float64)
        for i, (user, category, placement) in enumerate(rows):
            self._fill(X[i], user, category, placement)
        return X

    def _fill(self, x: np.ndarray, user: Mapping, category, placement: str) -> None:
        if self.config.bias:
            x[0] = 1.0
        for j, (name, spec) in enumerate(self._numeric):
            value = user.get(name)
            if value is None:
                continue
            v = (float(value) - spec.center) / spec.scale
            if not math.isfinite(v):
                raise ValueError(f"user.features.{name}: must be a finite number, got {value!r}")
            x[self._num_offset + j] = min(5.0, max(-5.0, v))
        for name, index in self._onehot_index.items():
            value = user.get(name)
            slot = index.get(str(value), len(index)) if value is not None else None
            if slot is not None:
                x[self._onehot_offset[name] + slot] = 1.0
        tokens = self.tokens(user, category, placement)
        if tokens:
            w = 1.0 / math.sqrt(len(tokens))
            for t in tokens:
                bucket, sign = _hash(t, self._buckets)
                x[self._hash_offset + bucket] += sign * w


def _category_path(category: Sequence[str] | str) -> tuple[str, ...]:
    if isinstance(category, str):
        return split_path(category)
    return tuple(category)
