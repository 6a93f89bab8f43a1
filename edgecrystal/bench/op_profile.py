"""Where an INT8 (or FP32) model's time goes in ONNX Runtime: a per-operator profile.

    edgecrystal profile BUNDLE [--precisions int8 fp32] [--runs 20] [--json OUT]

For each model of the bundle (finder, classifier) and each precision, this opens the ONNX file
the runtime would run (Bundle.onnx_variant) with the runtime's own session options
(runtime.onnxruntime_runner.session_options) plus ONNX Runtime's profiler
(SessionOptions.enable_profiling), runs it on a seeded uint8 batch, and prints per run:
- the time per operator type (QLinearConv, Conv, Resize, QuantizeLinear ...), its share and
  node count: what still runs in float and what the Q/DQ boundaries cost;
- the slowest nodes, with their input shapes;
- kernel time against the whole run's time (the rest is the executor's own overhead).
Warm-up runs are left out. `--json PATH` writes the same figures for a comparison later.
Latency does not depend on pixel values, so random pixels measure the same as photos.
"""

from __future__ import annotations

import json
import statistics
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import TypedDict

import numpy as np

from edgecrystal.errors import UsageError

KERNEL_SUFFIX = "_kernel_time"


class EventArgs(TypedDict, total=False):
    op_name: str
    input_type_shape: list[dict[str, list[int]]]  # [{"uint8": [1, 64, 64, 16]}, ...]


class ProfileEvent(TypedDict, total=False):
    """One event of ONNX Runtime's profile JSON (the keys read here)."""

    name: str  # "model_run", or "<node>_kernel_time" for a node's kernel
    cat: str  # "Session" | "Node"
    ts: int  # microseconds since the session started
    dur: int  # microseconds
    args: EventArgs


class OpTypeRow(TypedDict):
    op_type: str
    ms: float  # per run
    nodes: int
    share: float  # of the kernels' time


class NodeRow(TypedDict):
    node: str
    ms: float  # per run
    op_type: str
    inputs: str  # "u8[1,64,64,16] f32[]"
    share: float  # of the kernels' time


class OpProfile(TypedDict, total=False):
    """profile_model's figures (profile_bundle adds the file)."""

    runs: int
    run_ms: float  # mean
    kernel_ms: float  # the kernels' time per run
    op_types: list[OpTypeRow]  # slowest first
    nodes: list[NodeRow]  # slowest first
    file: str


def profile_model(path: Path, input_size: int, *, batch: int = 1, runs: int = 20,
                  warmup: int = 3, threads: int = 0) -> OpProfile:
    """Run `path` warmup + runs times under the profiler; return the timed runs' figures."""
    import onnxruntime as ort

    from edgecrystal.runtime.onnxruntime_runner import session_options

    with tempfile.TemporaryDirectory(prefix="edgecrystal-profile-") as tmp:
        opts = session_options(threads)
        opts.enable_profiling = True
        opts.profile_file_prefix = str(Path(tmp) / "profile")
        session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        pixels = np.random.default_rng(0).integers(
            0, 256, (batch, input_size, input_size, 3), dtype=np.uint8)
        feed = {session.get_inputs()[0].name: pixels}
        for _ in range(warmup + runs):
            session.run(None, feed)
        events = json.loads(Path(session.end_profiling()).read_text())
    return summarize_events(events, warmup, runs)


def summarize_events(events: list[ProfileEvent], warmup: int, runs: int) -> OpProfile:
    """Per-op-type and per-node milliseconds per run, from ONNX Runtime's profile events, after
    dropping the first `warmup` model runs."""
    model_runs = sorted((e for e in events if e.get("name") == "model_run"),
                        key=lambda e: e["ts"])
    if len(model_runs) < warmup + runs:
        raise ValueError(f"the profile holds {len(model_runs)} runs, expected {warmup + runs}")
    timed = model_runs[warmup:]
    start = timed[0]["ts"]
    by_type: dict[str, float] = defaultdict(float)
    type_nodes: dict[str, set[str]] = defaultdict(set)
    by_node: dict[str, float] = defaultdict(float)
    node_info: dict[str, tuple[str, str]] = {}  # node -> (op type, input shapes)
    for event in events:
        if event.get("cat") != "Node" or not event["name"].endswith(KERNEL_SUFFIX):
            continue
        if event["ts"] < start:
            continue
        node = event["name"][: -len(KERNEL_SUFFIX)]
        op_type = event.get("args", {}).get("op_name", "?")
        by_type[op_type] += event["dur"]
        type_nodes[op_type].add(node)
        by_node[node] += event["dur"]
        node_info[node] = (op_type,
                           _shapes(event.get("args", {}).get("input_type_shape", [])))
    per_run = 1e3 * len(timed)  # microseconds summed over the runs -> milliseconds per run
    kernel_ms = sum(by_type.values()) / per_run

    def share(ms: float) -> float:
        return ms / kernel_ms if kernel_ms else 0.0

    types = sorted((OpTypeRow(op_type=t, ms=us / per_run, nodes=len(type_nodes[t]),
                              share=share(us / per_run)) for t, us in by_type.items()),
                   key=lambda row: -row["ms"])
    nodes = sorted((NodeRow(node=n, ms=us / per_run, op_type=node_info[n][0],
                            inputs=node_info[n][1], share=share(us / per_run))
                    for n, us in by_node.items()), key=lambda row: -row["ms"])
    # Means, run and kernels alike: the per-op figures are sums over the runs, so one slow run
    # under load moves both the same way.
    return {"runs": len(timed), "run_ms": statistics.fmean(e["dur"] / 1e3 for e in timed),
            "kernel_ms": kernel_ms, "op_types": types, "nodes": nodes}


def _shapes(described: list[dict[str, list[int]]]) -> str:
    """[{'uint8': [1, 64, 64, 16]}, ...] -> 'u8[1,64,64,16] f32[]' for the table."""
    short = {"uint8": "u8", "int8": "s8", "float": "f32", "float16": "f16", "int32": "i32",
             "int64": "i64"}
    parts = []
    for entry in described:
        for dtype, shape in entry.items():
            parts.append(f"{short.get(dtype, dtype)}[{','.join(str(d) for d in shape)}]")
    return " ".join(parts)


def format_profile(title: str, profile: OpProfile, top: int) -> str:
    lines = [f"=== {title}: {profile['run_ms']:.2f} ms per run (mean of {profile['runs']}), "
             f"kernels {profile['kernel_ms']:.2f} ms ===",
             f"  {'op type':<24}{'ms/run':>9}{'share':>8}{'nodes':>7}"]
    for row in profile["op_types"]:
        lines.append(f"  {row['op_type']:<24}{row['ms']:9.3f}{row['share']:8.1%}"
                     f"{row['nodes']:7d}")
    lines.append(f"  top {top} nodes:")
    for node in profile["nodes"][:top]:
        lines.append(f"  {node['ms']:9.3f} ms {node['share']:6.1%}  {node['op_type']:<26}"
                     f"{node['node'][-48:]:<50}{node['inputs'][:60]}")
    return "\n".join(lines)


def profile_bundle(bundle_path: Path, models: list[str], precisions: list[str], *,
                   batch: int = 1, runs: int = 20, warmup: int = 3, threads: int = 0
                   ) -> list[tuple[str, OpProfile]]:
    """Profile the ONNX file the runtime would run for each model and precision of the bundle:
    [(title, {"file", **profile_model's figures})] keyed "model/precision" in the title order.
    Every file is found (or refused in one line) before any is profiled."""
    from edgecrystal.bundle import Bundle

    if runs < 1 or batch < 1:
        raise UsageError("--runs and --batch must be at least 1")
    bundle = Bundle.open(bundle_path)
    found = {(model, precision): bundle.onnx_variant(model, precision)
             for model in models for precision in precisions}
    figures = []
    for (model, precision), path in found.items():
        profile = profile_model(path, bundle.input_size(model), batch=batch, runs=runs,
                                warmup=warmup, threads=threads)
        figures.append((f"{model}/{precision}", OpProfile(file=path.name, **profile)))
    return figures
