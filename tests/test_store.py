import multiprocessing as mp
import sqlite3

import numpy as np
import pytest

from backdrop.creative.store import CreativeStore, StoreError, creative_key

BASE = dict(
    image_sha256="ab" * 32,
    style_spec={"name": "s", "prompt": "p"},
    placement_spec={"name": "square", "width": 1080},
    generator="procedural",
    generator_version="1",
    generator_spec={},
    mask_method="alpha",
    seed=7,
    fmt="png",
)


def _put(store, key, seed=0, fmt="png"):
    img = np.random.default_rng(seed).integers(0, 256, (32, 48, 3), dtype=np.uint8)
    return img, store.put(
        key,
        img,
        fmt=fmt,
        product_id="p",
        style="s",
        placement="square",
        generator="procedural",
        generator_version="1",
        seed=seed,
        prompt="a prompt",
        negative_prompt="",
        params={"a": 1},
        metrics={"m": 2},
    )


def test_key_changes_with_every_input():
    k = creative_key(**BASE)
    assert len(k) == 32
    assert creative_key(**BASE) == k
    variants = [
        {"image_sha256": "cd" * 32},
        {"style_spec": {"name": "s", "prompt": "q"}},
        {"placement_spec": {"name": "square", "width": 1081}},
        {"generator": "diffusion"},
        {"generator_version": "2"},
        {"generator_spec": {"steps": 20}},
        {"mask_method": "combined@1"},
        {"seed": 8},
        {"fmt": "webp"},
    ]
    keys = {creative_key(**(BASE | v)) for v in variants}
    assert len(keys) == len(variants) and k not in keys


@pytest.mark.parametrize("fmt", ["png", "webp"])
def test_put_get_roundtrip_is_lossless(tmp_path, fmt):
    store = CreativeStore(tmp_path / "s")
    img, rec = _put(store, "k" * 32, fmt=fmt)
    assert store.has("k" * 32)
    got = store.get("k" * 32)
    assert got == rec and got.metrics == {"m": 2} and got.params == {"a": 1}
    assert np.array_equal(store.read_image(got), img)
    assert len(store) == 1
    assert [r.key for r in store.creatives(product_id="p", placement="square")] == ["k" * 32]
    assert store.creatives(style="other") == []


def test_missing_file_means_not_stored(tmp_path):
    store = CreativeStore(tmp_path / "s")
    _, rec = _put(store, "a" * 32)
    (store.root / rec.path).unlink()
    assert not store.has("a" * 32)
    assert store.existing(["a" * 32]) == set()


def test_readonly_store_requires_an_index(tmp_path):
    with pytest.raises(StoreError, match="not a creative store"):
        CreativeStore(tmp_path / "empty", readonly=True)


def test_newer_schema_is_refused(tmp_path):
    CreativeStore(tmp_path / "s").close()
    with sqlite3.connect(tmp_path / "s" / "index.sqlite") as db:
        db.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    with pytest.raises(StoreError, match="newer"):
        CreativeStore(tmp_path / "s")


def _writer(args):
    root, worker = args
    store = CreativeStore(root)
    for i in range(40):
        # every worker writes the same 40 keys plus 10 of its own
        _put(store, f"{i:032d}", seed=i)
    for i in range(10):
        _put(store, f"w{worker}{i:030d}", seed=i)
    return True


def test_parallel_writers_are_safe(tmp_path):
    root = tmp_path / "s"
    CreativeStore(root).close()
    with mp.get_context("spawn").Pool(4) as pool:
        assert all(pool.map(_writer, [(root, w) for w in range(4)]))
    store = CreativeStore(root)
    assert len(store) == 40 + 4 * 10
    for rec in store:
        assert store.read_image(rec).shape == (32, 48, 3)
    assert not list(root.rglob("*.tmp"))


def test_temp_files_of_killed_writers_are_swept_and_live_ones_kept(tmp_path):
    import os
    import subprocess

    from backdrop.creative.store import CreativeStore

    CreativeStore(tmp_path / "s").close()
    d = tmp_path / "s" / "creatives" / "ab"
    d.mkdir(parents=True)
    dead = subprocess.Popen(["true"])
    dead.wait()
    orphan = d / f".abcdef.{dead.pid}.x1y2.tmp"
    live = d / f".abcdef.{os.getppid()}.x3y4.tmp"
    orphan.write_bytes(b"partial")
    live.write_bytes(b"being written")
    CreativeStore(tmp_path / "s").close()
    assert not orphan.exists() and live.exists()
