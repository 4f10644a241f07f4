"""The cost model (backdrop.experiments.cost): arithmetic, measurements, validation, tables."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml

from backdrop.creative.store import CreativeStore
from backdrop.errors import BackdropError
from backdrop.experiments import cost
from backdrop.experiments.cost import (
    CostError,
    CostInputs,
    estimate,
    measure_log_bytes_per_decision,
    measure_store_bytes,
    table,
    table_markdown,
)

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "src" / "backdrop" / "data" / "demo" / "products.csv"
PLACEMENTS_YAML = ROOT / "src" / "backdrop" / "config" / "placements.yaml"


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory) -> Path:
    from backdrop.cli import main

    out = tmp_path_factory.mktemp("cost") / "store"
    rc = main(
        [
            "generate", str(DEMO), "--out", str(out), "--limit", "2", "--placements", "square",
            "--styles", "studio-sweep,color-pop", "--workers", "1", "--no-progress",
        ]
    )  # fmt: skip
    assert rc == 0
    return out


def known_inputs(**over) -> CostInputs:
    kw = {
        "products": 1000,
        "placements": 4,
        "styles": 5,
        "regeneration_rate": 0.1,
        "gpu_images_per_s": 10.0,
        "gpu_hour_usd": 3.0,
        "bytes_per_creative": 1_000_000,
        "storage_usd_per_gb_month": 0.023,
        "decisions_per_day": 8_640_000,  # 100/s on average
        "decisions_per_s_per_core": 100.0,
        "peak_to_mean": 3.0,
        "core_hour_usd": 0.04,
        "log_bytes_per_decision": 1000.0,
    }
    kw.update(over)
    return CostInputs(**kw)


# -- arithmetic -------------------------------------------------------------------------------


def test_arithmetic_on_known_inputs():
    e = estimate(known_inputs())
    assert e.images == 20_000  # 1000 x 4 x 5
    assert e.generated_images == pytest.approx(22_000)  # + 10% regenerations
    assert e.gpu_hours == pytest.approx(22_000 / 10 / 3600)  # 0.6111 h
    assert e.gpu_cost_usd == pytest.approx(1.833333, rel=1e-6)
    assert e.storage_bytes == pytest.approx(2e10)  # only the kept 20,000 creatives
    assert e.storage_tb == pytest.approx(0.02)
    assert e.storage_usd_per_month == pytest.approx(0.46)  # 20 GB x $0.023
    assert e.mean_decisions_per_s == pytest.approx(100.0)
    assert e.peak_decisions_per_s == pytest.approx(300.0)
    assert e.serving_cores == 3
    assert e.serving_usd_per_month == pytest.approx(87.6)  # 3 x $0.04 x 730
    assert e.log_bytes_per_day == pytest.approx(8.64e9)
    assert e.gpu_figure_source == "given"
    assert e.provenance["gpu_images_per_s"] == "given"
    assert e.provenance["bytes_per_creative"] == "given"


def test_serving_cores_round_up_and_at_least_one():
    at = {"peak_to_mean": 1.0, "decisions_per_day": 86_400 * 1000}  # exactly 1000/s at the peak
    assert estimate(known_inputs(decisions_per_s_per_core=500, **at)).serving_cores == 2
    assert estimate(known_inputs(decisions_per_s_per_core=499, **at)).serving_cores == 3
    assert estimate(known_inputs(decisions_per_s_per_core=1000, **at)).serving_cores == 1
    tiny = estimate(known_inputs(decisions_per_day=1))
    assert tiny.serving_cores == 1 and tiny.serving_usd_per_month == pytest.approx(0.04 * 730)
    none = estimate(known_inputs(decisions_per_day=0, log_bytes_per_decision=None))
    assert none.serving_cores == 0 and none.serving_usd_per_month == 0 and none.log_bytes_per_day == 0
    assert none.log_bytes_per_decision is None


def test_defaults_and_their_sources():
    e = estimate(CostInputs(products=1_000_000))
    n_placements = len(yaml.safe_load(PLACEMENTS_YAML.read_text())["placements"])
    assert e.inputs.placements == n_placements == 4
    assert e.inputs.styles == 5 and e.inputs.regeneration_rate == 0.10
    assert e.gpu_images_per_s == pytest.approx(989 * 0.4 / 40.0)  # ~9.89
    assert e.gpu_figure_source == "estimated from counted FLOPs (no GPU measurement yet)"
    assert e.provenance["gpu_images_per_s"] == "estimated"
    # README: 15M images (3 placements) -> ~420 GPU-hours, ~460 with regenerations; here 20M images
    assert e.gpu_hours == pytest.approx(20e6 * 1.1 / (989 * 0.4 / 40) / 3600)
    assert estimate(CostInputs(products=1_000_000, placements=3, regeneration_rate=0)).gpu_hours == pytest.approx(421, abs=1)
    assert e.bytes_per_creative == 1_000_000 and "fallback" in e.bytes_per_creative_source
    assert e.provenance["bytes_per_creative"] == "fallback"
    assert e.serving_cores == 0  # no traffic given: no serving estimate
    assert "assumed" in e.assumptions["gpu_hour_usd"] and "assumed" in e.assumptions["storage_usd_per_gb_month"]


def test_passed_figures_carry_the_callers_source():
    e = estimate(
        known_inputs(decisions_per_s_per_core=2000, decisions_per_s_per_core_source="measured by benchmarks/bench_serve.py, sqlite-1")
    )
    assert e.serving_figure_source.startswith("measured")
    assert e.provenance["decisions_per_s_per_core"] == "measured"
    d = estimate(known_inputs(decisions_per_s_per_core=None))
    assert d.decisions_per_s_per_core == 500 and d.provenance["decisions_per_s_per_core"] == "assumed"


@pytest.mark.parametrize(
    "bad",
    [
        {"products": 0},
        {"products": -5},
        {"products": 1.5},
        {"products": True},
        {"products": "10"},
        {"placements": 0},
        {"styles": 0},
        {"regeneration_rate": -0.1},
        {"gpu_images_per_s": 0},
        {"gpu_images_per_s": math.nan},
        {"gpu_hour_usd": -1},
        {"bytes_per_creative": 0},
        {"decisions_per_day": -1},
        {"decisions_per_s_per_core": 0},
        {"peak_to_mean": 0.5},
        {"core_hour_usd": math.inf},
        {"log_bytes_per_decision": -3},
    ],
)
def test_invalid_inputs_are_rejected(bad):
    with pytest.raises(CostError) as info:
        known_inputs(**bad)
    assert isinstance(info.value, BackdropError)
    assert next(iter(bad)) in str(info.value)


# -- measurements -----------------------------------------------------------------------------


def test_measure_store_bytes_is_the_mean_file_size(store_dir):
    store = CreativeStore(store_dir, readonly=True)
    records = store.creatives()
    store.close()
    assert records
    sizes = [(store_dir / r.path).stat().st_size for r in records]
    # things in the store that are not creatives must not count
    (store_dir / "notes.txt").write_bytes(b"x" * 5_000_000)
    (Path(store_dir / records[0].path).parent / f".{records[0].key}.junk.tmp").write_bytes(b"y" * 3_000_000)
    mean, n = measure_store_bytes(store_dir)
    assert n == len(records)
    assert mean == pytest.approx(sum(sizes) / len(sizes))
    assert mean == pytest.approx(sum(r.bytes for r in records) / len(records))  # the index agrees
    e = estimate(CostInputs(products=100), store=store_dir)
    assert e.bytes_per_creative == pytest.approx(mean)
    assert e.provenance["bytes_per_creative"] == "measured"
    assert str(store_dir) in e.bytes_per_creative_source
    # a figure the caller passes wins over the store
    assert estimate(CostInputs(products=100, bytes_per_creative=123), store=store_dir).bytes_per_creative == 123


def test_measure_store_bytes_errors(tmp_path):
    with pytest.raises(CostError, match="not a directory"):
        measure_store_bytes(tmp_path / "missing")
    with pytest.raises(CostError, match="not a creative store"):
        measure_store_bytes(tmp_path)  # a directory without index.sqlite
    CreativeStore(tmp_path / "empty").close()  # a valid store with nothing in it
    with pytest.raises(CostError, match="no creatives"):
        measure_store_bytes(tmp_path / "empty")
    with pytest.raises(BackdropError):
        estimate(CostInputs(products=10), store=tmp_path / "empty")


def test_measure_log_bytes_per_decision_is_plausible():
    per = measure_log_bytes_per_decision()
    # 64 float64s alone are 512 bytes; rows, three unique/secondary indexes and page slack add the rest
    assert 200 < per < 10_000
    assert per > 512
    from backdrop.experiments.logsize import _measure_log

    hits = _measure_log.cache_info().hits
    assert measure_log_bytes_per_decision() == per
    assert _measure_log.cache_info().hits == hits + 1  # cached: measured once per process
    assert cost.log_bytes_source().startswith("measured")
    e = estimate(known_inputs(log_bytes_per_decision=None))
    assert e.log_bytes_per_decision == per and e.provenance["log_bytes_per_decision"] == "measured"
    assert e.log_bytes_per_day == pytest.approx(8_640_000 * per)


# -- outputs ----------------------------------------------------------------------------------


def test_to_dict_is_json_and_to_markdown_names_sources():
    e = estimate(known_inputs(gpu_images_per_s=None))
    d = json.loads(json.dumps(e.to_dict()))
    assert d["images"] == 20_000 and d["gpu_hours"] == pytest.approx(e.gpu_hours)
    assert d["inputs"]["products"] == 1000 and d["storage_tb"] == pytest.approx(0.02)
    assert d["gpu_figure_source"] == "estimated from counted FLOPs (no GPU measurement yet)"
    md = e.to_markdown()
    assert "estimated from counted FLOPs (no GPU measurement yet)" in md
    assert "| serving cores | 3 |" in md


def test_table_rows_and_footnote():
    estimates = table(log_bytes_per_decision=1000.0)
    assert [e.inputs.products for e in estimates] == [10_000, 1_000_000, 10_000_000]
    assert [e.decisions_per_day for e in estimates] == [100_000, 10_000_000, 100_000_000]  # 10 per product per day
    big = estimates[-1]
    assert big.images == 200_000_000 and big.storage_tb == pytest.approx(200.0)
    # 1e8/day = 1157.4/s mean, 3472/s at a 3x peak, 500/s per core -> 7 cores
    assert big.serving_cores == 7 and big.serving_usd_per_month == pytest.approx(7 * 0.04 * 730)
    md = table_markdown(estimates)
    rows = [line for line in md.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert len(rows) == 3
    assert rows[0].startswith("| 10,000 | 200,000 |") and rows[2].startswith("| 10,000,000 | 200,000,000 |")
    assert "Assumptions" in md
    for text in (
        "estimated from counted FLOPs",
        "[assumed]",
        "[given]",
        "10 decisions (impressions) per product per day",
        "$3 per GPU-hour",
    ):
        assert text in md, text


def test_table_options():
    fixed = table((1, 2), decisions_per_day=1000)
    assert [e.decisions_per_day for e in fixed] == [1000, 1000]
    quiet = table((5,), decisions_per_product_per_day=0)
    assert quiet[0].serving_cores == 0 and "| - |" in table_markdown(quiet)
    with pytest.raises(CostError):
        table((1,), decisions_per_day=10, decisions_per_product_per_day=1)
    with pytest.raises(CostError):
        table((0,))
    with pytest.raises(CostError):
        table(())


def test_cost_reads_the_measured_gpu_figure_when_bench_diffusion_wrote_one(tmp_path, monkeypatch, capsys):
    import json

    from backdrop.cli import main
    from backdrop.experiments import cost

    measured = tmp_path / "measured.json"
    monkeypatch.setattr(cost, "MEASURED_FILE", measured)
    measured.write_text(json.dumps({"serving": {"decisions_per_s_per_core": 900, "source": "s", "measured_at": "d"}}))
    assert main(["cost", "--products", "1000", "--json"]) == 0
    before = json.loads(capsys.readouterr().out)
    assert before["provenance"]["gpu_images_per_s"] == "estimated"
    data = json.loads(measured.read_text()) | {
        "diffusion": {
            "images_per_s_per_gpu": 25.0,
            "source": "measured by benchmarks/bench_diffusion.py on NVIDIA H200",
            "measured_at": "x",
        }
    }
    measured.write_text(json.dumps(data))
    assert main(["cost", "--products", "1000", "--json"]) == 0
    after = json.loads(capsys.readouterr().out)
    assert after["gpu_images_per_s"] == 25.0 and after["provenance"]["gpu_images_per_s"] == "measured"
    assert after["gpu_hours"] == pytest.approx(before["gpu_hours"] * before["gpu_images_per_s"] / 25.0)
    assert main(["cost", "--products", "1000", "--gpu-images-per-s", "5", "--json"]) == 0  # the caller's figure wins
    assert json.loads(capsys.readouterr().out)["provenance"]["gpu_images_per_s"] == "given"
