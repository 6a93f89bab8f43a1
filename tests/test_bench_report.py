"""The bench report's arithmetic on known timings: percentiles, throughput, ratios, warnings."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgecrystal.bench.report import RunTimings, build_report, format_table, plot
from edgecrystal.bench.stats import percentile, ratio, summarize, throughput


def test_percentiles_match_numpy_linear_method() -> None:
    rng = np.random.default_rng(3)
    xs = rng.gamma(2.0, 10.0, 101).tolist()
    for q in (0, 50, 90, 95, 99, 100):
        assert percentile(xs, q) == pytest.approx(float(np.percentile(xs, q)))


def test_summary_on_known_values() -> None:
    s = summarize([1.0, 2.0, 3.0, 4.0, 10.0])
    assert (s["min"], s["max"], s["mean"], s["median"]) == (1.0, 10.0, 4.0, 3.0)
    assert s["p90"] == pytest.approx(7.6)  # 4 + 0.6 * (10 - 4)
    assert s["std"] == pytest.approx(np.std([1, 2, 3, 4, 10]))
    assert s["cv"] == pytest.approx(s["std"] / 4.0)


def test_throughput_and_ratio() -> None:
    assert throughput(96, 8.0) == 12.0
    assert ratio(100.0, 20.0) == 5.0
    with pytest.raises(ValueError):
        throughput(1, 0)
    with pytest.raises(ValueError):
        summarize([])


def _run(backend: str, e2e: list[float], **stages: list[float]) -> RunTimings:
    return RunTimings(backend, "fp32", 1, wall_s=sum(e2e) / 1000, stages_ms=stages,
                      end_to_end_ms=e2e, flops={"finder": 2_000_000_000, "classifier": 0})


def test_report_ratios_floor_and_warnings(tmp_path: Path) -> None:
    keras = _run("keras", [100.0] * 30, read=[5.0] * 30, finder=[60.0] * 30,
                 classifier=[30.0] * 30, crop=[5.0] * 30)
    ort = _run("onnxruntime", [20.0] * 30, read=[12.0] * 30, finder=[4.0] * 30,
               classifier=[2.0] * 30, crop=[2.0] * 30)
    report = build_report([keras, ort], machine={"cpu": "test"}, peak_gflops=100.0,
                          config={"batch": 1})
    k, o = report["runs"]
    assert k["ratio_vs_baseline"] == 1.0 and o["ratio_vs_baseline"] == 5.0
    assert o["throughput_ips"] == pytest.approx(50.0)
    # 2 GFLOP at 100 GFLOP/s = 20 ms floor; ORT's models take 6 ms -> above the FP32 peak.
    assert o["floor_ms"] == pytest.approx(20.0)
    assert o["model_ms"] == pytest.approx(6.0)
    assert o["peak_fraction"] == pytest.approx(20.0 / 6.0)
    assert any("bound by reading" in w for w in o["warnings"])
    assert not any("bound by reading" in w for w in k["warnings"])
    json.dumps(report)  # serialisable
    table = format_table(report)
    assert "Performance summary: onnxruntime fp32" in table and "5.00x" in table
    assert plot(report, [keras, ort], tmp_path / "p.png")
    assert (tmp_path / "p.png").stat().st_size > 1000


def test_unstable_and_few_samples_warned() -> None:
    noisy = _run("onnxruntime", [10.0, 30.0, 10.0, 50.0, 12.0])
    report = build_report([noisy], machine={}, peak_gflops=None, config={})
    warnings = report["runs"][0]["warnings"]
    assert any("unstable end_to_end" in w for w in warnings)
    assert any("only 5 samples" in w for w in warnings)
    assert report["baseline"] is None and report["runs"][0]["ratio_vs_baseline"] is None


def test_model_rates_use_the_peak_of_their_own_arithmetic() -> None:
    # 2 GFLOP finder in 4 ms = 500 GOP/s; 1 GFLOP classifier in 2 ms = 500 GOP/s.
    flops = {"finder": 2_000_000_000, "classifier": 1_000_000_000}
    int8 = RunTimings("onnxruntime", "int8", 1, wall_s=0.6, stages_ms={
        "finder": [4.0] * 30, "classifier": [2.0] * 30}, end_to_end_ms=[20.0] * 30, flops=flops)
    fp32 = RunTimings("onnxruntime", "fp32", 1, wall_s=0.6, stages_ms={
        "finder": [20.0] * 30, "classifier": [10.0] * 30}, end_to_end_ms=[40.0] * 30,
        flops=flops)
    report = build_report([fp32, int8], machine={}, peak_gflops=200.0, config={},
                          peak_gops_int8=1000.0)
    assert report["peak_gops_int8"] == 1000.0
    fp32_rates, int8_rates = (run["model_rates"] for run in report["runs"])
    assert int8_rates["finder"]["gops"] == pytest.approx(500.0)
    assert int8_rates["finder"]["peak_share"] == pytest.approx(0.5)  # of the INT8 peak
    assert fp32_rates["finder"]["gops"] == pytest.approx(100.0)
    assert fp32_rates["finder"]["peak_share"] == pytest.approx(0.5)  # of the FP32 peak
    table = format_table(report)
    assert "finder: 500 GOP/s = 50% of the measured INT8 peak (1000 GOP/s)" in table
    assert "500 (50%)" in table and "100 (50%)" in table


def test_int8_peak_times_onnxruntime_integer_matmul(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the INT8 peak times is ONNX Runtime's u8 x s8 MatMulInteger (zero point 128, exact
    int32 products on every CPU family: 7-bit weights keep AVX2's int16 pair sums from
    saturating), and the rate is its 2 * size^3 operations over the best run's time."""
    import types

    import onnx
    import onnxruntime as ort
    from onnx import numpy_helper

    from edgecrystal.bench import int8_peak

    size = 48
    model = int8_peak.matmul_integer_model(size, np.random.default_rng(0))
    weights = {t.name: numpy_helper.to_array(t)
               for t in onnx.load_from_string(model).graph.initializer}["weights"]
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    pixels = np.random.default_rng(1).integers(0, 256, (size, size), dtype=np.uint8)
    want = (pixels.astype(np.int32) - 128) @ weights.astype(np.int32)
    np.testing.assert_array_equal(session.run(None, {"activations": pixels})[0], want)
    # A clock whose runs take 4, 2 and 3 ms: the best (2 ms) gives the rate.
    ticks = iter(np.cumsum([0.0, 0.004, 1.0, 0.002, 1.0, 0.003]))
    monkeypatch.setattr(int8_peak, "time", types.SimpleNamespace(perf_counter=lambda: next(ticks)))
    assert int8_peak.measure(size, 3) == pytest.approx(2 * size**3 / 0.002 / 1e9)


def test_int8_peak_comes_from_a_child_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """measure_cpu_int8_peak_gops reads the child's number, and is None where the child fails."""
    from edgecrystal.bench import machine

    assert (machine.measure_cpu_int8_peak_gops(size=64, repeats=1) or 0.0) > 0.0
    monkeypatch.setattr(machine.sys, "executable", "/bin/false")
    assert machine.measure_cpu_int8_peak_gops(size=64, repeats=1) is None
