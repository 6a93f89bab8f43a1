"""A benchmark report: JSON for machines, a trtexec-like table for people, a PNG for slides.

The report is built from raw timings (milliseconds per image per stage, plus wall time), so the
arithmetic can be checked on known numbers without running any model.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..pipeline import STAGES as PIPELINE_STAGES
from .stats import UNSTABLE_CV, ratio, summarize, throughput

SCHEMA = "edgecrystal-bench/1"
# The pipeline's stages (the crystal model's where the bundle has one), then writing the result.
STAGES = (*PIPELINE_STAGES, "write")
GPU_STAGES = ("h2d", "compute", "d2h")
MODEL_STAGES = ("finder", "classifier", "crystals")
# Issue 25: the crystal model may add at most this share of the classifier's time per image.
CRYSTALS_COST_TARGET = 0.30
# When the stages around the models take more than this share of the time, the pipeline is
# bound by decoding/cropping/writing rather than by inference.
NON_MODEL_BOUND = 0.5
MIN_SAMPLES = 20


@dataclass
class RunTimings:
    """What one backend/precision measured: per-image milliseconds for each stage."""

    backend: str
    precision: str
    batch: int
    wall_s: float
    stages_ms: dict[str, list[float]]  # stage -> one value per image
    end_to_end_ms: list[float]  # per image (batch latency / batch size where batched)
    gpu_ms: dict[str, list[float]] = field(default_factory=dict)  # h2d/compute/d2h per batch
    flops: dict[str, int] = field(default_factory=dict)  # per image, per model
    note: str = ""

    @property
    def name(self) -> str:
        return f"{self.backend}/{self.precision}"


def build_report(
    runs: list[RunTimings],
    *,
    machine: Mapping[str, object],
    peak_gflops: float | None,
    config: Mapping[str, object],
    baseline: str = "keras",
    peak_gops_int8: float | None = None,
) -> dict[str, Any]:
    """Assemble the JSON report: summaries, ratios to the baseline, floors, warnings, and each
    model's rate against the peak of its own arithmetic (INT8 runs against the measured INT8
    peak, every other precision against the FP32 one)."""
    base = next((r for r in runs if r.backend == baseline), None)
    base_median = summarize(base.end_to_end_ms)["median"] if base else None
    out_runs = []
    for run in runs:
        e2e = summarize(run.end_to_end_ms)
        latency: dict[str, dict[str, float]] = {"end_to_end": e2e}
        for stage in STAGES:
            if run.stages_ms.get(stage):
                latency[stage] = summarize(run.stages_ms[stage])
        for stage in GPU_STAGES:
            if run.gpu_ms.get(stage):
                latency[stage] = summarize(run.gpu_ms[stage])
        model_ms = sum(latency[s]["median"] for s in MODEL_STAGES if s in latency)
        total_flops = sum(run.flops.values())
        floor_ms = None
        if peak_gflops and total_flops:
            floor_ms = total_flops / (peak_gflops * 1e9) * 1e3
        entry: dict[str, object] = {
            "backend": run.backend,
            "precision": run.precision,
            "batch": run.batch,
            "images": len(run.end_to_end_ms),
            "wall_s": run.wall_s,
            "throughput_ips": throughput(len(run.end_to_end_ms), run.wall_s),
            "latency_ms": latency,
            "flops_per_image": dict(run.flops, total=total_flops),
            "floor_ms": floor_ms,
            "model_ms": model_ms,
            # Share of the machine's measured FP32 peak the models reach (INT8 can exceed 1).
            "peak_fraction": (floor_ms / model_ms) if (floor_ms and model_ms) else None,
            "ratio_vs_baseline": (ratio(base_median, e2e["median"]) if base_median else None),
            "model_rates": model_rates(run, latency,
                                       peak_gops_int8 if run.precision == "int8" else peak_gflops),
            "crystals_cost": crystals_cost(latency),
            "note": run.note,
        }
        entry["warnings"] = _warnings(len(run.end_to_end_ms), latency)
        out_runs.append(entry)
    return {
        "schema": SCHEMA,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine,
        "peak_gflops_fp32": peak_gflops,
        "peak_gops_int8": peak_gops_int8,
        "baseline": baseline if base else None,
        "config": config,
        "runs": out_runs,
    }


def model_rates(run: RunTimings, latency: dict[str, dict[str, float]],
                peak: float | None) -> dict[str, dict[str, float | None]]:
    """Per model: operations per second at its median stage time (GOP/s) and that rate's share
    of `peak` (the measured peak of the arithmetic this run uses)."""
    rates: dict[str, dict[str, float | None]] = {}
    for model in MODEL_STAGES:
        flops, median = run.flops.get(model), latency.get(model, {}).get("median")
        if not flops or not median:
            continue
        gops = flops / (median / 1e3) / 1e9
        rates[model] = {"gops": gops, "peak_gops": peak,
                        "peak_share": gops / peak if peak else None}
    return rates


def crystals_cost(latency: dict[str, dict[str, float]]) -> float | None:
    """The crystal stage's median time per image as a share of the classifier's, both from the
    same run (None where the bundle has no crystal model or no classifier time)."""
    crystals = latency.get("crystals", {}).get("median")
    classifier = latency.get("classifier", {}).get("median")
    if crystals is None or not classifier:
        return None
    return crystals / classifier


def _warnings(images: int, lat: dict[str, dict[str, float]]) -> list[str]:
    """What a reader of one run's figures should know: too few samples, unstable stages, and
    what bounds it when that is not the models."""
    notes = []
    if images < MIN_SAMPLES:
        notes.append(f"only {images} samples: percentiles above p90 are rough "
                     "(raise --iterations)")
    for stage, summary in lat.items():
        if summary["cv"] > UNSTABLE_CV and summary["count"] >= 3:
            notes.append(f"unstable {stage} latency: coefficient of variation "
                         f"{summary['cv']:.0%} > {UNSTABLE_CV:.0%} (other load on the machine?)")
    e2e = lat["end_to_end"]["median"]
    other = sum(lat[s]["median"] for s in ("read", "crop", "write") if s in lat)
    if e2e > 0 and other / e2e > NON_MODEL_BOUND:
        notes.append(f"bound by reading/cropping/writing ({other / e2e:.0%} of end-to-end), "
                     "not by the models")
    cost = crystals_cost(lat)
    if cost is not None and cost > CRYSTALS_COST_TARGET:
        notes.append(f"the crystal stage costs {cost:.0%} of the classifier's time "
                     f"(target <= {CRYSTALS_COST_TARGET:.0%})")
    if "compute" in lat and "h2d" in lat:
        transfer = lat["h2d"]["median"] + lat.get("d2h", {"median": 0.0})["median"]
        if transfer > lat["compute"]["median"]:
            notes.append("bound by host<->device copies, not by GPU compute")
    return notes


def format_table(report: dict[str, Any]) -> str:
    """The human-readable report: one trtexec-like block per run, then a comparison."""
    lines = []
    cols = ("min", "mean", "median", "p90", "p95", "p99", "max")
    for run in report["runs"]:
        lines.append(f"=== Performance summary: {run['backend']} {run['precision']} "
                     f"(batch {run['batch']}, {run['images']} images) ===")
        lines.append(f"Throughput: {run['throughput_ips']:.2f} images/s")
        lines.append(f"{'Latency (ms)':<14}" + "".join(f"{c:>9}" for c in cols))
        for stage, s in run["latency_ms"].items():
            lines.append(f"  {stage:<12}" + "".join(f"{s[c]:9.2f}" for c in cols))
        if run["ratio_vs_baseline"] is not None:
            lines.append(f"vs {report['baseline']}: {run['ratio_vs_baseline']:.2f}x "
                         "(median end-to-end)")
        if run["floor_ms"]:
            lines.append(
                f"Floor: {run['floor_ms']:.2f} ms of model compute at the measured FP32 peak "
                f"({report['peak_gflops_fp32']:.0f} GFLOP/s); models take "
                f"{run['model_ms']:.2f} ms ({run['peak_fraction']:.0%} of peak)"
            )
        if run.get("crystals_cost") is not None:
            lines.append(f"crystals: {run['latency_ms']['crystals']['median']:.2f} ms = "
                         f"{run['crystals_cost']:.0%} of the classifier's "
                         f"{run['latency_ms']['classifier']['median']:.2f} ms (same run)")
        for model, rate in run.get("model_rates", {}).items():
            share = (f" = {rate['peak_share']:.0%} of the measured "
                     f"{'INT8' if run['precision'] == 'int8' else 'FP32'} peak "
                     f"({rate['peak_gops']:.0f} GOP/s)" if rate["peak_share"] else "")
            lines.append(f"{model}: {rate['gops']:.0f} GOP/s{share}")
        for warning in run["warnings"]:
            lines.append(f"[W] {warning}")
        lines.append("")
    lines.append(f"{'run':<24}{'img/s':>9}{'p50 ms':>9}{'p95 ms':>9}{'ratio':>8}"
                 f"{'finder GOP/s (peak)':>22}{'classifier GOP/s (peak)':>26}")
    for run in report["runs"]:
        e2e = run["latency_ms"]["end_to_end"]
        r = run["ratio_vs_baseline"]
        rates = run.get("model_rates", {})
        lines.append(f"{run['backend'] + '/' + run['precision']:<24}"
                     f"{run['throughput_ips']:9.2f}{e2e['median']:9.2f}{e2e['p95']:9.2f}"
                     f"{(f'{r:.2f}x' if r is not None else '-'):>8}"
                     f"{_rate_cell(rates.get('finder')):>22}"
                     f"{_rate_cell(rates.get('classifier')):>26}")
    return "\n".join(lines)


def _rate_cell(rate: dict[str, float | None] | None) -> str:
    """'230 (27%)': GOP/s and share of the run's peak; '-' where the FLOPs are not known."""
    if not rate or rate["gops"] is None:
        return "-"
    share = rate["peak_share"]
    return f"{rate['gops']:.0f}" + (f" ({share:.0%})" if share is not None else "")


def plot(report: dict[str, Any], runs: list[RunTimings], path: Path) -> bool:
    """Latency distributions per backend (box plots) and stage medians (stacked bars).

    Returns False when matplotlib is not installed (the runtime-only install on a Jetson)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    names = [r.name for r in runs]
    ax1.boxplot([r.end_to_end_ms for r in runs], orientation="horizontal", showfliers=True)
    ax1.set_yticks(range(1, len(names) + 1), names)
    ax1.set_xlabel("end-to-end latency per image (ms)")
    ax1.set_title("Latency distribution")
    left = [0.0] * len(runs)
    for stage in STAGES:
        medians = [rep["latency_ms"].get(stage, {"median": 0.0})["median"]
                   for rep in report["runs"]]
        ax2.barh(names, medians, left=left, label=stage)
        left = [a + b for a, b in zip(left, medians, strict=True)]
    ax2.set_xlabel("median ms per image")
    ax2.set_title("Where the time goes")
    # Below the axes: inside, the legend hides the longest (Keras) bar.
    ax2.legend(loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=len(STAGES), fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
