import subprocess
import sys

import numpy as np
import pytest
from pydantic import ValidationError

from backdrop.bandit.features import FeatureConfig, FeatureEncoder


def _enc(**kw):
    return FeatureEncoder(
        FeatureConfig(
            n_features=64,
            numeric={"age": {"center": 40, "scale": 10}},
            one_hot={"device": ["ios", "android", "web"]},
            **kw,
        )
    )


def test_layout_bias_numeric_onehot_hashed():
    enc = _enc()
    x = enc.encode({"age": 55, "device": "android", "segment": "s1", "country": "fr"}, "Apparel > Sneakers", "square")
    assert x.shape == (64,) and x.dtype == np.float64
    assert x[0] == 1.0  # bias
    assert x[1] == pytest.approx(1.5)  # (55 - 40) / 10
    assert x[2:6].tolist() == [0, 1, 0, 0]  # android, no "other"
    hashed = x[6:]
    assert enc.hashed_slots == 58
    assert np.linalg.norm(hashed) == pytest.approx(1.0, abs=0.35)  # unit norm up to collisions
    assert set(enc.tokens({"segment": "s1", "country": "fr"}, "Apparel > Sneakers", "square")) == {
        "country=fr",
        "segment=s1",
        "cat=Apparel",
        "cat=Apparel>Sneakers",
        "placement=square",
        "cat=Sneakers|placement=square",
        "segment=s1|cat=Sneakers",
    }


def test_unknown_and_missing_values():
    enc = _enc()
    x = enc.encode({"device": "tv"}, ["Home"], "story")
    assert x[1] == 0.0  # missing numeric = center
    assert x[2:6].tolist() == [0, 0, 0, 1]  # unseen one-hot value -> "other"
    assert enc.encode({"age": 400}, "Home", "story")[1] == 5.0  # clipped
    with pytest.raises(ValueError, match="age"):
        enc.encode({"age": float("inf")}, "Home", "story")
    # undeclared numbers are ignored, undeclared strings hashed
    assert np.array_equal(enc.encode({"clicks": 7}, "Home", "story"), enc.encode({}, "Home", "story"))


def test_crosses_can_be_switched_off():
    enc = _enc(cross_category_placement=False, cross_segment_category=False)
    toks = enc.tokens({"segment": "s"}, "A > B", "square")
    assert not any("|" in t for t in toks)


def test_contexts_that_differ_encode_differently_and_equal_ones_equally():
    enc = _enc()
    a = enc.encode({"segment": "s1"}, "Apparel > Sneakers", "square")
    assert np.array_equal(a, enc.encode({"segment": "s1"}, ("Apparel", "Sneakers"), "square"))
    for other in [
        enc.encode({"segment": "s2"}, "Apparel > Sneakers", "square"),
        enc.encode({"segment": "s1"}, "Apparel > Sneakers", "story"),
        enc.encode({"segment": "s1"}, "Apparel > Shirts", "square"),
    ]:
        assert not np.array_equal(a, other)
    X = enc.encode_many([({"segment": "s1"}, "Apparel > Sneakers", "square")] * 3)
    assert X.shape == (3, 64) and np.array_equal(X[2], a)


def test_hashing_is_stable_across_processes():
    code = (
        "from backdrop.bandit.features import FeatureEncoder;"
        "print(FeatureEncoder(n_features=32).encode({'segment':'s1','u':'x'}, 'A > B', 'square').tolist())"
    )
    runs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout for _ in range(2)}
    assert len(runs) == 1
    here = FeatureEncoder(n_features=32).encode({"segment": "s1", "u": "x"}, "A > B", "square").tolist()
    assert runs.pop().strip() == str(here)


def test_config_must_leave_room_for_hashed_features():
    with pytest.raises(ValidationError, match="no room"):
        FeatureConfig(n_features=5, one_hot={"d": ["a", "b", "c"]})
