"""The batch tool under faults: a full disk, a killed parent, read-only media, a corrupt index."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

from _support import AUTH, BIN, KEY, alive, children, fill, remount_readonly, settings, store_copy, tiny_fs  # noqa: F401
from fastapi.testclient import TestClient

from backdrop.cli import DEMO_DIR, main

DEMO = DEMO_DIR / "products.csv"


def _generate(store, *extra):
    return main(
        [
            "generate",
            str(DEMO),
            "--out",
            str(store),
            "--placements",
            "square",
            "--limit",
            "2",
            "--workers",
            "1",
            "--no-progress",
            "--json",
            *extra,
        ]
    )


def test_a_full_disk_fails_the_run_with_one_line_and_exit_3_injected(tmp_path, capsys, monkeypatch):
    import backdrop.creative.storage as store_mod  # where a local store's files are written

    real = store_mod.write_atomic
    calls = {"n": 0}

    def full(path, data, *, tmp_name=None):
        calls["n"] += 1
        if calls["n"] > 2:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, data, tmp_name=tmp_name)

    monkeypatch.setattr(store_mod, "write_atomic", full)
    code = _generate(tmp_path / "s")
    cap = capsys.readouterr()
    summary = json.loads(cap.out)
    assert code == 3, cap.err
    assert summary["generated"] == 2 and summary["failed"] > 0
    assert summary["environment"] == {"no space left on device (ENOSPC)": summary["failed"]}
    lines = [line for line in cap.err.splitlines() if "because of the environment" in line]
    assert len(lines) == 1 and "no space left on device" in lines[0]


def test_a_full_disk_fails_the_run_with_exit_3_on_a_real_tiny_filesystem(tmp_path, capsys):
    with tiny_fs(tmp_path / "fs", "3m") as fs:
        fill(fs, leave=300_000)  # the index fits, the creatives (about 1 MB each) do not
        code = _generate(fs / "store")
        cap = capsys.readouterr()
        assert code == 3, (code, cap.err[-2000:])
        assert "because of the environment" in cap.err and "no space left" in cap.err


def test_workers_die_with_their_parent(tmp_path):
    out = tmp_path / "s"
    p = subprocess.Popen(
        [str(BIN), "generate", str(DEMO), "--out", str(out), "--workers", "2", "--no-progress"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + 60
    workers = []
    while time.time() < deadline:  # wait until both workers run and have written something
        workers = [c for c in children(p.pid) if "resource_tracker" not in Path(f"/proc/{c}/cmdline").read_text(errors="ignore")]
        if len(workers) >= 2 and any(out.glob("creatives/*/*.png")):
            break
        time.sleep(0.1)
    assert len(workers) >= 2, "the run did not start its workers"
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    deadline = time.time() + 5
    while time.time() < deadline and any(alive(w) for w in workers):
        time.sleep(0.05)
    left = [w for w in workers if alive(w)]
    for w in left:
        os.kill(w, signal.SIGKILL)
    assert not left, "workers outlived their parent"


def test_a_corrupt_index_is_one_line_and_store_repair_rebuilds_it(tmp_path, capsys):
    store = tmp_path / "s"
    assert _generate(store) == 0
    made = json.loads(capsys.readouterr().out)["generated"]
    (store / "index.sqlite").write_bytes(b"this is not a database" * 100)
    for suffix in ("-wal", "-shm"):
        Path(f"{store}/index.sqlite{suffix}").unlink(missing_ok=True)
    for argv in (["report", str(store), "--out", str(tmp_path / "r.html")], ["generate", str(DEMO), "--out", str(store), "--limit", "1"]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "index.sqlite" in err[0] and "backdrop store repair" in err[0], err
    assert main(["store", "verify", str(store), "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["corrupt_index"]
    assert main(["store", "repair", str(store)]) == 0
    capsys.readouterr()
    assert main(["store", "verify", str(store)]) == 0
    capsys.readouterr()
    assert _generate(store) == 0
    assert json.loads(capsys.readouterr().out)["generated"] == made  # the rebuilt index knew none: all made again


def test_store_verify_finds_missing_damaged_and_orphan_files_and_repair_fixes_them(tmp_path, capsys):
    store = tmp_path / "s"
    assert _generate(store) == 0
    capsys.readouterr()
    files = sorted(store.glob("creatives/*/*.png"))
    files[0].unlink()
    files[1].write_bytes(b"x")
    (store / "creatives" / "zz").mkdir()
    (store / "creatives" / "zz" / "stray.png").write_bytes(b"y")
    assert main(["store", "verify", str(store), "--json"]) == 1
    rep = json.loads(capsys.readouterr().out)
    assert (len(rep["missing"]), len(rep["mismatched"]), rep["orphans"]) == (1, 1, ["creatives/zz/stray.png"])
    assert main(["store", "repair", str(store)]) == 0
    capsys.readouterr()
    assert main(["store", "verify", str(store)]) == 0
    capsys.readouterr()
    assert _generate(store) == 0
    assert json.loads(capsys.readouterr().out)["generated"] == 2  # the two removed creatives, made again


def test_a_store_on_read_only_media_is_served(small_store, tmp_path, capsys):
    with tiny_fs(tmp_path / "ro", "64m") as fs:  # the small store, baselines included, with room to spare
        shutil.copytree(small_store, fs / "store", ignore=shutil.ignore_patterns("events.sqlite*", "api-key"))
        # checkpoint the WAL away, as a store copied onto read-only media usually is
        db = sqlite3.connect(fs / "store" / "index.sqlite")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        db.close()
        for suffix in ("-wal", "-shm"):
            Path(f"{fs}/store/index.sqlite{suffix}").unlink(missing_ok=True)
        remount_readonly(fs)
        from backdrop.serving.app import create_app

        app = create_app(settings(fs / "store", tmp_path / "events.sqlite"))
        with TestClient(app) as c:
            assert c.get("/readyz").status_code == 200, c.get("/readyz").json()
            d = c.post("/v1/decide", json={"item_id": "apple-juice", "placement": "square"}).json()
            assert d["decision_id"] and c.get(d["creative"]["url"]).status_code == 200
        # the CLI says what to pass instead of failing on a write it cannot make
        assert main(["serve", "--store", str(fs / "store")]) == 2
        err = capsys.readouterr().err
        assert "read-only" in err and "pass --db" in err
        os.environ.pop("BACKDROP_API_KEY", None)
        assert main(["serve", "--store", str(fs / "store"), "--db", str(tmp_path / "e2.sqlite")]) == 2
        assert "BACKDROP_API_KEY or --api-key-file" in capsys.readouterr().err
