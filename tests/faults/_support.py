"""Shared pieces of the fault-injection tests (``pytest tests/faults`` runs them alone)."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from backdrop.serving.settings import load_settings

KEY = "fault-key-0123456789"
AUTH = {"X-API-Key": KEY}
BIN = Path(sys.executable).parent / "backdrop"


@pytest.fixture
def store_copy(small_store, tmp_path) -> Path:
    """A private copy of the small demo store, which a test may damage."""
    dst = tmp_path / "store"
    shutil.copytree(small_store, dst, ignore=shutil.ignore_patterns("events.sqlite*", "api-key"))
    return dst


def settings(store, db, **kw):
    kw.setdefault("join_window_s", 60.0)
    return load_settings(None, store=store, db=str(db), api_key=KEY, commit_grace_s=2.5, model_poll_s=0.05, **kw)


@contextlib.contextmanager
def tiny_fs(path: Path, size: str = "2m"):
    """A real, tiny filesystem (tmpfs) at ``path``; skips where the platform does not allow mounting."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tiny filesystem needs root (the injected-error variant of this test still runs)")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    try:
        yield path
    finally:
        for _ in range(20):
            if subprocess.run(["umount", str(path)], capture_output=True).returncode == 0:
                break
            time.sleep(0.1)
        else:  # something still holds a file open there: detach it anyway
            subprocess.run(["umount", "-l", str(path)], capture_output=True)


def remount_readonly(path: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(path)], check=True, capture_output=True)


def fill(path: Path, leave: int = 0) -> None:
    """Fill the filesystem of ``path``, leaving about ``leave`` bytes free."""
    with contextlib.suppress(OSError), open(path / "filler", "wb") as f:
        while True:
            f.write(b"\0" * 65536)
            f.flush()
    with contextlib.suppress(OSError), open(path / "filler2", "wb") as f:
        while True:
            f.write(b"\0" * 512)
            f.flush()
    if leave:
        (path / "filler2").unlink(missing_ok=True)
        size = (path / "filler").stat().st_size
        os.truncate(path / "filler", max(0, size - leave))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``backdrop serve`` in a subprocess (its own process group), for what only a real socket shows."""

    def __init__(self, args: list[str], env: dict | None = None, log_path: Path | None = None):
        self.port = free_port()
        self.log_path = log_path
        env = {**os.environ, "BACKDROP_API_KEY": KEY, **(env or {})}
        err = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115 - the child writes it; closed below
        self.p = subprocess.Popen(
            [str(BIN), "serve", *args, "--port", str(self.port)], stdout=subprocess.DEVNULL, stderr=err, env=env, start_new_session=True
        )
        if log_path:
            err.close()

    def wait_ready(self, timeout: float = 60) -> None:
        import httpx

        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.p.poll() is not None:
                raise AssertionError(f"serve exited: {self.log_path.read_text()[-3000:] if self.log_path else ''}")
            try:
                httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=1)
                return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise AssertionError("serve did not start")

    def stop(self) -> None:
        import signal

        if self.p.poll() is None:
            os.killpg(self.p.pid, signal.SIGTERM)
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.p.pid, signal.SIGKILL)
                self.p.wait()


def children(pid: int) -> list[int]:
    """Process ids whose parent is ``pid`` (from /proc)."""
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == pid:
                out.append(int(d.name))
    return out


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
