"""bench's crystal stage (issue 25 item 5) on known timings: its cost as a share of the
classifier's time in the same run, in the JSON report, the table, the warning above the
issue's 30 % target and the benchmarks page; a bundle without a crystal model reports none."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from edgecrystal.bench.report import RunTimings, build_report, format_table

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def _run(backend: str, precision: str, classifier: float, crystals: float | None) -> RunTimings:
    stages = {"read": [5.0] * 30, "finder": [10.0] * 30, "crop": [1.0] * 30,
              "classifier": [classifier] * 30, "write": [1.0] * 30}
    if crystals is not None:
        stages["crystals"] = [crystals] * 30
    e2e = sum(v[0] for v in stages.values())
    return RunTimings(backend, precision, 1, wall_s=30 * e2e / 1000, stages_ms=stages,
                      end_to_end_ms=[e2e] * 30)


def _report(*runs: RunTimings) -> dict:
    return build_report(list(runs), machine={"cpu": "test"}, peak_gflops=None,
                        config={"batch": 1, "images": "test", "iterations": 30, "warmup": 3})


def test_crystal_cost_is_a_share_of_the_classifier_in_the_same_run() -> None:
    report = _report(_run("onnxruntime", "fp32", 8.0, 2.0), _run("onnxruntime", "int8", 4.0, 2.0))
    fp32, int8 = report["runs"]
    assert fp32["crystals_cost"] == pytest.approx(0.25)
    assert int8["crystals_cost"] == pytest.approx(0.5)
    assert fp32["latency_ms"]["crystals"]["median"] == 2.0
    assert fp32["model_ms"] == pytest.approx(20.0)  # finder + classifier + crystals
    assert not any("crystal stage" in w for w in fp32["warnings"])
    assert any("crystal stage costs 50% of the classifier's time (target <= 30%)" in w
               for w in int8["warnings"])
    table = format_table(report)
    assert "crystals: 2.00 ms = 25% of the classifier's 8.00 ms (same run)" in table
    assert "  crystals    " in table  # a latency row of its own
    json.dumps(report)


def test_without_a_crystal_model_there_is_no_crystal_stage() -> None:
    report = _report(_run("onnxruntime", "fp32", 8.0, None))
    run = report["runs"][0]
    assert run["crystals_cost"] is None and "crystals" not in run["latency_ms"]
    assert "crystals" not in format_table(report)


def test_benchmarks_page_states_the_crystal_cost(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(SCRIPTS))
    from benchmark_markdown import _crystals_cost, _time_split

    pipeline = _report(_run("onnxruntime", "fp32", 8.0, 2.0), _run("onnxruntime", "int8", 4.0,
                                                                   1.0))
    assert _crystals_cost(pipeline) == [
        "", "Crystal stage, as a share of the classifier's time in the same run (target <= "
            "30 %): onnxruntime/fp32 2.0 ms = 25%, onnxruntime/int8 1.0 ms = 25%."]
    assert "crystals 1.0 ms" in _time_split(pipeline)[0]
    assert _crystals_cost(_report(_run("onnxruntime", "fp32", 8.0, None))) == []
    sys.modules.pop("benchmark_markdown", None)
