"""`bench/run.py --quick` runs end to end and fills every row with positive figures.

Speeds are not asserted: a benchmark is not a timed test.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("torchvision")
pytest.importorskip("onnx")

from handseg_core.registry import available_models, default_model_name

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("handseg_bench_run", ROOT / "bench" / "run.py")
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> tuple[dict, str]:
    out = tmp_path_factory.mktemp("bench")
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "run.py"), "--quick", "--out", str(out)],
                          capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((out / "results.json").read_text()), (out / "RESULTS.md").read_text()


def positive(timing: dict) -> bool:
    return 0 < timing["min_ms"] <= timing["median_ms"] and timing["runs"] > 0


def rows_of(results: dict, table: str) -> list[dict]:
    return [r for r in results["rows"] if r["table"] == table]


@pytest.mark.slow
def test_every_model_and_backend_has_a_row(results):
    data, _ = results
    rows = rows_of(data, "models")
    expected = {(m, backend, t) for m in available_models() for backend in ("onnxruntime CPU", "torch CPU fp32") for t in (1, 2)}
    expected |= {(m, backend, "-") for m in available_models() for backend in ("onnxruntime CUDA", "torch CUDA fp32")}
    assert {(r["model"], r["backend"], r["threads"]) for r in rows} == expected
    int8 = {m for m, spec in available_models().items() if bench.is_quantized(spec.path)}
    for row in rows:
        if row["model"] in int8 and row["backend"].startswith("torch"):
            assert row["status"] == "skipped: an int8 ONNX file: torch would run its float twin", row
            continue
        if row["status"] != "ok":
            assert "CUDA" in row["backend"] and row["status"].startswith("skipped: no CUDA"), row
            continue
        assert positive(row["end_to_end"]) and positive(row["inference"]), row
        assert row["peak_rss_mb"] > 0 and row["load_model_s"] > 0
    staged = [r for r in rows if r.get("stages")]
    assert staged and all(positive(t) for t in staged[0]["stages"].values())


@pytest.mark.slow
def test_references_batches_and_speed_ups_have_positive_figures(results):
    data, _ = results
    references = rows_of(data, "references")
    assert {(r["model"], r["threads"]) for r in references} == {
        (name, t) for name in ("U2-Net", "U2-Netp", "LRASPP-MobileNetV3-Large") for t in bench.THREADS
    }
    assert len(references) == 4 * len(bench.THREADS)
    for row in references:
        assert row["status"] == "ok", row
        assert positive(row["inference"]) and row["peak_rss_mb"] > 0
    batches = rows_of(data, "batch")
    assert len(batches) == 4  # the CLI and three loops over the engine
    for row in batches:
        assert row["status"] == "ok", row
        assert row["images"] == bench.QUICK["batch_images"]
        assert row["child"]["wall_s"] > 0 and row["child"]["cpu_s"] > 0 and row["child"]["maxrss_mb"] > 0
    speed_ups = rows_of(data, "speed-ups")
    assert len(speed_ups) == 9 + len(bench.QUICK["explore_sizes"])
    for row in speed_ups:
        if row["change"].startswith("int8") and bench.is_quantized(available_models()[default_model_name()].path):
            assert row["status"] == "skipped: the default model is int8 already", row
            continue
        assert row["status"] == "ok", row
        assert positive(row["end_to_end"]) and positive(row["inference"]) and row["session_create_s"] > 0


@pytest.mark.slow
def test_targets_and_report(results):
    data, markdown = results
    assert len(data["targets"]) == 2 * len(bench.THREADS) + 1
    assert all(isinstance(t["passed"], bool) and t["figures"] for t in data["targets"])
    assert data["machine"]["cores"] > 0 and data["machine"]["onnxruntime"]
    for heading in ("## Targets", "## Per image", "## References", "## Batch throughput", "## Speed-up candidates"):
        assert heading in markdown
    for row in data["rows"]:
        assert (row.get("model") or row.get("how") or row.get("change")) in markdown


def test_is_quantized_tells_the_int8_model_from_its_float_twin():
    models = available_models()
    assert bench.is_quantized(models["handseg-lite2-int8"].path)
    assert not bench.is_quantized(models["handseg-lite2"].path)


def test_only_names_a_known_table(capsys):
    with pytest.raises(SystemExit) as stop:
        bench.main(["--only", "models,nope"])
    assert stop.value.code == 2 and "no table nope" in capsys.readouterr().err


@pytest.mark.slow
def test_the_default_is_timed_with_and_without_its_finder(results):
    rows = [r for r in rows_of(results[0], "models") if r["model"] == results[0]["default_model"]
            and r["backend"].startswith("onnxruntime CPU")]
    assert {r["find_hands"] for r in rows} == {True, False}
    staged = next(r for r in rows if r.get("stages"))
    assert any(name.startswith("per-hand network") for name in staged["stages"])


def test_huge_measures_each_cutout_in_a_fresh_process(tmp_path, monkeypatch):
    monkeypatch.setattr(bench, "HUGE", (("jpeg", (96, 64)), ("png", (80, 60))))  # small stand-ins, same path
    rows = bench.huge_cutouts(tmp_path, None)
    assert [r["photo"] for r in rows] == ["huge-96x64.jpg", "huge-80x60.png"]
    for row in rows:
        assert row["status"] == "ok" and row["within_limit"]
        assert 50 < row["peak_rss_mib"] < bench.HUGE_LIMIT_MB and row["wall_s"] > 0
    table = bench.huge_table(rows)
    assert "| huge-96x64.jpg | 0.0 |" in table and "within 2 GiB" in table
    assert sorted(p.name for p in tmp_path.iterdir()) == ["huge-80x60.png", "huge-96x64.jpg"]  # kept for a rerun
