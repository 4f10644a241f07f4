import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from backdrop.cli import DEMO_DIR, main

BIN = Path(sys.executable).parent / "backdrop"


def _catalog_with_bad_rows(tmp_path: Path) -> Path:
    shutil.copytree(DEMO_DIR / "images", tmp_path / "images")
    (tmp_path / "images" / "broken.png").write_bytes(b"not an image")
    lines = (DEMO_DIR / "products.csv").read_text(encoding="utf-8").splitlines()
    header, rows = lines[0], lines[1:3]
    bad = [
        "bad-1,No image,Juices,Groceries > Juices,Juice,desc,{},images/missing.png,3.49,,USD,",
        "bad-2,Broken,Juices,Groceries > Juices,Juice,desc,{},images/broken.png,3.49,,USD,",
        'bad-3,Bad attrs,Juices,Groceries > Juices,Juice,desc,"{oops",images/apple-drink.png,3.49,,USD,',
    ]
    path = tmp_path / "catalog.csv"
    path.write_text("\n".join([header, *rows, *bad]) + "\n", encoding="utf-8")
    return path


def test_generate_reports_bad_rows_and_prints_a_json_summary(tmp_path, capsys):
    cat = _catalog_with_bad_rows(tmp_path)
    store = tmp_path / "store"
    args = ["generate", str(cat), "--out", str(store), "--placements", "square", "--workers", "1", "--no-progress", "--json"]
    code = main(args)
    out, err = capsys.readouterr()
    assert code == 0
    summary = json.loads(out)
    assert summary["failed"] == 0 and summary["skipped"] == 0 and summary["generated"] > 0
    errors = {(e["row"], e["field"]) for e in summary["errors"]}
    assert errors == {(4, "image"), (5, "image"), (6, "attributes")}
    assert all(e["file"] == str(cat) for e in summary["errors"])
    for row, field in errors:
        assert f"{cat}:{row}: {field}: " in err
    # the same again: nothing new
    assert main(args) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["generated"] == 0 and again["skipped"] == summary["generated"]


def test_strict_refuses_a_catalog_with_bad_rows(tmp_path, capsys):
    cat = _catalog_with_bad_rows(tmp_path)
    code = main(["generate", str(cat), "--out", str(tmp_path / "s"), "--strict", "--json", "--no-progress"])
    assert code == 1
    summary = json.loads(capsys.readouterr().out)
    assert summary["generated"] == 0 and len(summary["errors"]) == 3
    assert not (tmp_path / "s").exists()


def test_no_good_row_exits_non_zero(tmp_path, capsys):
    (tmp_path / "c.csv").write_text("product_id,title,category,image\np,T,C,missing.png\n")
    assert main(["generate", str(tmp_path / "c.csv"), "--out", str(tmp_path / "s"), "--no-progress"]) == 1
    assert "c.csv:2: image: file not found" in capsys.readouterr().err


def test_usage_errors_name_the_problem(tmp_path, capsys):
    cat = DEMO_DIR / "products.csv"
    assert main(["generate", str(cat), "--out", str(tmp_path / "s"), "--placements", "square,billboard"]) == 2
    assert "unknown placement(s) billboard" in capsys.readouterr().err
    assert main(["generate", str(cat), "--out", str(tmp_path / "s"), "--styles", "nope"]) == 2
    assert "unknown style(s) nope" in capsys.readouterr().err
    assert main(["generate", str(tmp_path / "missing.csv"), "--out", str(tmp_path / "s")]) == 2
    assert "catalog file not found" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["generate", str(cat), "--out", str(tmp_path / "s"), "--workers", "0"])
    assert e.value.code == 2


@pytest.mark.parametrize("command", ["generate", "segment", "report", "demo", "evaluate obd", "simulate"])
def test_every_command_has_help(command):
    out = subprocess.run([str(BIN), *command.split(), "--help"], capture_output=True, text=True, check=True).stdout
    assert "usage: backdrop " + command in out and len(out) > 300


def test_a_reader_that_goes_away_gets_no_traceback():
    """`backdrop styles --json | head -c 0`: the pipe is closed before the first write."""
    read, write = os.pipe()
    os.close(read)
    try:
        r = subprocess.run([str(BIN), "styles", "--json"], stdout=write, stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write)
    assert r.returncode == 141 and "Traceback" not in r.stderr and "BrokenPipeError" not in r.stderr, r.stderr


def test_killed_run_resumes_without_losing_or_redoing_work(tmp_path):
    store = tmp_path / "store"
    cmd = [
        str(BIN),
        "generate",
        str(DEMO_DIR / "products.csv"),
        "--out",
        str(store),
        "--workers",
        "2",
        "--placements",
        "square,portrait",
        "--limit",
        "6",
        "--no-progress",
        "--json",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    index = store / "index.sqlite"
    deadline = time.time() + 120
    done = 0
    while time.time() < deadline and proc.poll() is None:
        if index.exists():
            try:
                with sqlite3.connect(index) as db:
                    done = db.execute("SELECT COUNT(*) FROM creatives").fetchone()[0]
            except sqlite3.OperationalError:
                pass
        if done >= 12:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be interrupted"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    with sqlite3.connect(index) as db:
        before = db.execute("SELECT COUNT(*) FROM creatives").fetchone()[0]
    assert before >= 12
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["failed"] == 0
    assert summary["skipped"] >= before
    with sqlite3.connect(index) as db:
        total, distinct = db.execute("SELECT COUNT(*), COUNT(DISTINCT product_id || style || placement) FROM creatives").fetchone()
        paths = [r[0] for r in db.execute("SELECT path FROM creatives")]
    assert total == distinct == summary["generated"] + summary["skipped"]
    for p in paths:  # every indexed file is complete and decodable
        with Image.open(store / p) as im:
            im.load()
    assert not list(store.rglob("*.tmp"))


def test_segment_writes_one_mask_per_image(tmp_path, capsys):
    src = DEMO_DIR / "images" / "mighty-mug.png"
    rgba = np.asarray(Image.open(src).convert("RGBA"))
    flat = rgba[..., :3].astype(float) * (rgba[..., 3:] / 255) + 255 * (1 - rgba[..., 3:] / 255)
    jpg = tmp_path / "mug-on-white.jpg"
    Image.fromarray(flat.astype(np.uint8)).save(jpg, quality=90)
    (tmp_path / "bad.png").write_bytes(b"nope")
    code = main(["segment", str(src), str(jpg), str(tmp_path / "bad.png"), "--out", str(tmp_path / "m"), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 1  # one image failed
    assert next(w["method"] for w in out["written"]) == "alpha"
    assert out["failed"][0]["image"].endswith("bad.png")
    for name in ("mighty-mug.png", "mug-on-white.png"):
        m = np.asarray(Image.open(tmp_path / "m" / name))
        assert m.dtype == np.uint8 and m.ndim == 2 and m.shape == rgba.shape[:2]
    a = np.asarray(Image.open(tmp_path / "m" / "mighty-mug.png")) >= 128
    b = np.asarray(Image.open(tmp_path / "m" / "mug-on-white.png")) >= 128
    assert (a & b).sum() / (a | b).sum() > 0.9


def test_report_renders_every_image_in_chromium(tmp_path, capsys, browser):
    store = tmp_path / "store"
    cat = DEMO_DIR / "products.csv"
    assert (
        main(["generate", str(cat), "--out", str(store), "--limit", "3", "--placements", "square,story", "--workers", "1", "--no-progress"])
        == 0
    )
    capsys.readouterr()
    assert main(["report", str(store), "--out", str(tmp_path / "r" / "report.html"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    n = info["creatives"]
    assert n >= 3 * 2 * 5
    browser.open((tmp_path / "r" / "report.html").as_uri())
    images = browser.image_report()
    assert len(images) == n + 3  # every creative plus each product's catalog image
    broken = [i["src"] for i in images if not (i["complete"] and i["width"] > 0)]
    assert broken == []
    assert browser.evaluate("document.querySelectorAll('section.product').length") == 3
    # each product's first row is its baseline: the catalog photo fitted to each placement, shown
    firsts = browser.evaluate(
        "[...document.querySelectorAll('section.product table.sheet tbody tr:first-child')].map(tr =>"
        " ({label: tr.querySelector('th').innerText, title: tr.querySelector('th').hasAttribute('title'),"
        " shown: [...tr.querySelectorAll('img')].filter(i => i.complete && i.naturalWidth > 0).length}))"
    )
    assert firsts == [{"label": "catalog photo (baseline)\noriginal", "title": False, "shown": 2}] * 3


def test_report_pins_the_catalog_photos_rendition_first_without_a_prompt(small_store, tmp_path, capsys):
    import re
    from contextlib import closing

    from backdrop.creative.store import ORIGINAL, CreativeStore

    out = tmp_path / "r" / "report.html"
    assert main(["report", str(small_store), "--out", str(out)]) == 0
    html = out.read_text()
    with closing(CreativeStore(small_store, readonly=True)) as store:
        originals = [r for r in store.creatives() if r.style == ORIGINAL]
        n_products = len(store.products())
    assert originals and len(originals) == 2 * n_products  # one per product and placement
    sections = re.findall(r'<section class="product[^"]*" id="[^"]+">.*?</section>', html, re.S)
    assert len(sections) == n_products
    for section in sections:
        rows = re.findall(r"<tr[^>]*><th[^>]*>(.*?)<br>", section.split("<tbody>", 1)[1])
        assert rows[0] == "catalog photo (baseline)" and "catalog photo (baseline)" not in rows[1:]
        assert "original" not in rows  # not a style row among the others
        assert re.search(r'<tr class="baseline"><th>catalog photo', section)  # no prompt to show as its title
    for r in originals:
        tip = re.search(rf'id="c-{r.key}"><a [^>]*><img [^>]*title="([^"]*)"', html)
        assert tip and tip.group(1).startswith(f"key {r.key}")  # no empty prompt line
    assert 'title=""' not in html


def test_simulate_prints_records_and_writes_a_plot(tmp_path, capsys):
    code = main(["simulate", "--rounds", "1500", "--preset", "strong", "--policies", "linucb", "--plot", str(tmp_path / "s.png"), "--json"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    names = {r["policy"] for r in out["policies"]}
    assert names == {"linucb", "original", "uniform", "bandit", "best-fixed", "oracle"}
    assert (tmp_path / "s.png").stat().st_size > 10_000
    assert main(["simulate", "--policies", "nope"]) == 2
    assert "unknown policy" in capsys.readouterr().err
    assert main(["simulate", "--base-ctr", "2"]) == 2
    assert "--base-ctr" in capsys.readouterr().err
    assert main(["simulate", "--seeds", "1,x"]) == 2
    assert "--seeds" in capsys.readouterr().err


def test_simulate_over_seeds_prints_mean_and_sd(tmp_path, capsys):
    args = ["simulate", "--rounds", "1200", "--preset", "shared", "--policies", "pooled-ucb", "--baselines", "bandit,best-fixed"]
    assert main([*args, "--seeds", "1,2", "--plot", str(tmp_path / "s.png"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["seeds"] == [1, 2] and out["window"] == 600
    pooled = {r["policy"]: r for r in out["policies"]}["pooled-ucb"]
    assert pooled["runs"] == 2 and len(pooled["lift_vs_bandit"]["values"]) == 2
    assert pooled["lift_vs_bandit"]["sd"] is not None
    assert main([*args, "--seeds", "3,4", "--plot", str(tmp_path / "s.png")]) == 0
    assert "| pooled-ucb | 2 |" in capsys.readouterr().out


def test_the_cli_lists_the_simulators_presets_and_learners():
    from backdrop.bandit import simulator
    from backdrop.cli.evaluation import SIM_POLICIES, SIM_PRESETS

    assert list(simulator.PRESETS) == SIM_PRESETS
    assert list(simulator.POLICY_FACTORIES) == SIM_POLICIES
    assert SIM_POLICIES[:2] == list(simulator.DEFAULT_POLICIES)
    assert ",".join(simulator.DEFAULT_BASELINES) == "original,uniform,bandit,best-fixed,oracle"


def test_evaluate_obd_json_records(tmp_path, capsys):
    from conftest import OBD

    code = main(
        [
            "evaluate",
            "obd",
            "--data",
            str(OBD),
            "--campaigns",
            "men",
            "--policies",
            "uniform,linucb",
            "--bootstrap",
            "50",
            "--out",
            str(tmp_path),
            "--json",
        ]
    )
    assert code == 0
    records = json.loads(capsys.readouterr().out)
    assert {r["logs"] for r in records} == {"random", "bts"}
    assert set(records[0]) == {"policy", "estimator", "logs", "campaign", "value", "ci_low", "ci_high", "n"}
    assert (tmp_path / "obd_estimates.csv").is_file() and (tmp_path / "obd_estimates.png").is_file()
    assert main(["evaluate", "obd", "--data", str(tmp_path)]) == 2
    assert "not the Open Bandit Dataset folder" in capsys.readouterr().err


#: `evaluate obd --campaigns men --policies uniform,linucb --bootstrap 50` as commit a053722 (before
#: the architecture redesign) computed it: (value, ci_low, ci_high, n) per (logs, policy, estimator)
OBD_MEN_BEFORE = {
    ("random", "logging-policy", "on-policy"): (0.0052, 0.0034, 0.006954999999999999, 5000),
    ("random", "uniform", "ips"): (0.0052, 0.0034, 0.006954999999999999, 5000),
    ("random", "uniform", "snips"): (0.0052, 0.0034, 0.006954999999999999, 5000),
    ("random", "uniform", "dm"): (0.003916072719687632, 0.003916072719687632, 0.003916072719687632, 5000),
    ("random", "uniform", "dr"): (0.0051705359684121885, 0.0033027390120238635, 0.006986242622616677, 5000),
    ("random", "uniform", "replay"): (0.007352941176470588, 0.0, 0.02775735294117646, 136),
    ("random", "linucb", "ips"): (0.0067199999999999985, 0.00017, 0.018205499999999993, 5000),
    ("random", "linucb", "snips"): (0.0066793893129771, 0.00017483974087893853, 0.016316583367914916, 5000),
    ("random", "linucb", "dm"): (0.008711709044319756, 0.008654871019476894, 0.008799283365550942, 5000),
    ("random", "linucb", "dr"): (0.007020916124333304, -0.0006216065488494235, 0.017790870417790455, 5000),
    ("random", "linucb", "replay"): (0.0, 0.0, 0.0, 149),
    ("bts", "logging-policy", "on-policy"): (0.0054, 0.003645, 0.0074, 5000),
    ("bts", "uniform", "ips"): (0.0016961001516680335, 0.0009140494098738441, 0.002785042444517204, 5000),
    ("bts", "uniform", "snips"): (0.001843494063821293, 0.0010027828622584175, 0.003215612353856805, 5000),
    ("bts", "uniform", "dm"): (0.007304923672266736, 0.007304923672266736, 0.007304923672266736, 5000),
    ("bts", "uniform", "dr"): (0.001779603797406014, 0.0003799874101899536, 0.003542401081179907, 5000),
    ("bts", "linucb", "ips"): (8.480500758340168e-05, 4.570247049369221e-05, 0.00013925212222586018, 5000),
    ("bts", "linucb", "snips"): (0.00011523445725014554, 5.966589638253842e-05, 0.00020601378187916296, 5000),
    ("bts", "linucb", "dm"): (0.006699536218641708, 0.006684507061765796, 0.006727449368178435, 5000),
    ("bts", "linucb", "dr"): (0.001865792014992928, -0.0007932493271275797, 0.0033175251763148056, 5000),
}


def test_evaluate_obd_estimates_are_unchanged(tmp_path, capsys):
    from conftest import OBD

    args = ["evaluate", "obd", "--data", str(OBD), "--campaigns", "men", "--policies", "uniform,linucb", "--bootstrap", "50"]
    assert main([*args, "--out", str(tmp_path), "--json"]) == 0
    got = {
        (r["logs"], r["policy"], r["estimator"]): (r["value"], r["ci_low"], r["ci_high"], r["n"])
        for r in json.loads(capsys.readouterr().out)
    }
    assert set(got) == set(OBD_MEN_BEFORE)
    for key, before in OBD_MEN_BEFORE.items():
        assert got[key][3] == before[3], key
        assert got[key][:3] == pytest.approx(before[:3], rel=1e-9, abs=1e-12), key
