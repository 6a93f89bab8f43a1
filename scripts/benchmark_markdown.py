"""docs/benchmarks.md from the JSON that scripts/benchmark.py saves (benchmarks.json).

Standard library only, so `scripts/benchmark.py --render` re-renders anywhere without models.
The saved JSON holds one entry per part ("profiles" -> pipeline, plate, verify per profile;
"archive"; "daemon"), each stamped with when it was measured and the machine's load then, so a
document assembled from parts re-run separately says so.
"""

from __future__ import annotations

import math
from typing import Any

# The issue's headline targets for the lite profile on 2 CPU cores (issue 14, "Must show").
TARGET_VS_KERAS = 12.0
TARGET_VS_FP32 = 2.2
TARGET_P50_MS = 30.0
TARGET_QUALITY_LOSS = 0.005
# `verify` reports, per variant, Spearman's rank correlation against ONNX FP32 under this key:
# {class: rho} for the classifier, {"mask": rho} (over pixels) for the finder.
RANK_KEY = "rank_correlation"


def upgrade(saved: dict[str, Any]) -> dict[str, Any]:
    """The first layout (pipeline/plate/daemon at the top, lite only, one run) in the current
    one, every part stamped with that run's time (its load was not recorded)."""
    if "profiles" in saved:
        return saved
    when = {"measured": (saved.get("pipeline") or {}).get("created", "?")}
    lite = {"pipeline": saved.get("pipeline"),
            "plate": {"runs": saved["plate"]} if saved.get("plate") else None}
    upgraded: dict[str, Any] = {"profiles": {"lite": {
        "what": saved.get("bundle", "default lite profile, untrained"),
        **{part: {**value, **when} for part, value in lite.items() if value}}}}
    if saved.get("daemon"):
        upgraded["daemon"] = {**saved["daemon"], **when}
    return upgraded


def render(saved: dict[str, Any]) -> str:
    saved = upgrade(saved)
    profiles: dict[str, Any] = saved.get("profiles", {})
    lines = ["# Benchmarks", "",
             "Made by `.venv/bin/python scripts/benchmark.py` (parts and profiles can be re-run "
             "one at a time: `--parts pipeline,plate,archive,daemon,verify --profiles "
             "lite,paper`; `--render benchmarks.json` re-renders this page). Every ratio is "
             "between runs measured in the same process, one after another. Figures are "
             "medians unless named. The default run takes about 20 minutes on a quiet 2-core "
             "machine, plus 10 to 15 the first time, to build the untrained bundles into its "
             "cache.", ""]
    lines += _machine(saved)
    lines += _stamps(saved)
    lines += _headline(profiles)
    for name, profile in profiles.items():
        lines += _profile(name, profile)
    lines += _archive(saved.get("archive"))
    daemon = saved.get("daemon")
    if daemon:
        lines += ["## The daemon (`edgecrystal bench-daemon`, ONNX Runtime INT8, lite)", "",
                  _stamp(daemon), "", daemon["markdown"].rstrip(), ""]
    lines += _soak(saved.get("soak"))
    return "\n".join(lines).rstrip() + "\n"


def _machine(saved: dict[str, Any]) -> list[str]:
    pipeline = next((p["pipeline"] for p in saved.get("profiles", {}).values()
                     if p.get("pipeline")), None)
    if pipeline is None:
        return []
    m = pipeline["machine"]
    return [f"Machine: {m['cpu']}, {m['cpu_count']} cores, {m['memory_gib']} GiB, {m['os']}, "
            f"Python {m['python']}; GPU: {m['gpu'] or 'none'}. Measured FP32 matmul peak: "
            f"{pipeline['peak_gflops_fp32']:.0f} GFLOP/s"
            + (f"; measured INT8 peak: {pipeline['peak_gops_int8']:.0f} GOP/s"
               if pipeline.get("peak_gops_int8") else "") + ". Libraries: "
            + ", ".join(f"{k} {v}" for k, v in m["libraries"].items()) + ".", ""]


def _when(part: dict[str, Any]) -> str:
    load = part.get("load")
    return part.get("measured", "?") + (f" (load average {load:.1f})" if load is not None
                                        else "")


def _stamp(part: dict[str, Any]) -> str:
    return f"Measured {_when(part)}."


def _stamps(saved: dict[str, Any]) -> list[str]:
    """One entry per part: when it ran and how loaded the machine was when it started."""
    rows = [f"{part} ({name}) {_when(profile[part])}"
            for name, profile in saved.get("profiles", {}).items()
            for part in ("pipeline", "plate", "verify") if profile.get(part)]
    rows += [f"{part} {_when(saved[part])}" for part in ("archive", "daemon") if saved.get(part)]
    return ["Parts measured: " + "; ".join(rows) + ".", ""] if rows else []


def _p50(pipeline: dict[str, Any], backend: str, precision: str) -> float | None:
    for run in pipeline["runs"]:
        if run["backend"] == backend and run["precision"] == precision:
            return float(run["latency_ms"]["end_to_end"]["median"])
    return None


def _mark(ok: bool | None) -> str:
    return "not measured" if ok is None else ("met" if ok else "**not met**")


def headline_checks(profile: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's four checks from one profile's saved parts (value None: not measured)."""
    checks: list[dict[str, Any]] = []
    pipeline = profile.get("pipeline")
    keras = fp32 = int8 = None
    if pipeline:
        keras = _p50(pipeline, "keras", "fp32")
        fp32 = _p50(pipeline, "onnxruntime", "fp32")
        int8 = _p50(pipeline, "onnxruntime", "int8")
    vs_keras = keras / int8 if keras and int8 else None
    vs_fp32 = fp32 / int8 if fp32 and int8 else None
    checks.append({"check": "INT8 pipeline vs the Keras reference (p50)",
                   "target": f">= {TARGET_VS_KERAS:g}x", "value": vs_keras,
                   "shown": f"{vs_keras:.2f}x" if vs_keras else "-",
                   "ok": None if vs_keras is None else vs_keras >= TARGET_VS_KERAS})
    checks.append({"check": "INT8 pipeline vs ONNX Runtime FP32 of the same models (p50)",
                   "target": f">= {TARGET_VS_FP32:g}x", "value": vs_fp32,
                   "shown": f"{vs_fp32:.2f}x" if vs_fp32 else "-",
                   "ok": None if vs_fp32 is None else vs_fp32 >= TARGET_VS_FP32})
    checks.append({"check": "INT8 pipeline p50 per image (quiet machine)",
                   "target": f"<= {TARGET_P50_MS:g} ms", "value": int8,
                   "shown": f"{int8:.1f} ms" if int8 else "-",
                   "ok": None if int8 is None else int8 <= TARGET_P50_MS})
    for model, metric in (("finder", "dice"), ("classifier", "auc")):
        loss = quality_loss(profile.get("verify"), model, metric)
        checks.append({"check": f"{metric.capitalize() if metric == 'dice' else 'AUC'} loss, "
                                f"{model} ONNX INT8 vs FP32 (`verify`)",
                       "target": f"<= {TARGET_QUALITY_LOSS:g}", "value": loss,
                       "shown": f"{loss:+.4f}" if loss is not None else "-",
                       "ok": None if loss is None else loss <= TARGET_QUALITY_LOSS})
    rank = rank_correlation(profile.get("verify"))
    checks.append({"check": "classifier scores' rank correlation, INT8 vs FP32, lowest over "
                            "classes (`verify`)",
                   "target": "reported", "value": rank,
                   "shown": f"{rank:.4f}" if rank is not None else "-",
                   "ok": None if rank is None else True})
    return checks


def _variants(verify: dict[str, Any] | None, model: str) -> dict[str, Any]:
    if not verify:
        return {}
    return verify.get("result", {}).get("models", {}).get(model, {}).get("variants", {})


def _runtime_int8(variants: dict[str, Any]) -> dict[str, Any]:
    """The INT8 variant ONNX Runtime runs: int8-u8 where the bundle has it (build-engines
    makes it for ONNX Runtime; `int8` is TensorRT's), else int8."""
    return variants.get("onnx-int8-u8") or variants.get("onnx-int8") or {}


def quality_loss(verify: dict[str, Any] | None, model: str, metric: str) -> float | None:
    """FP32's metric minus the runtime INT8's (positive: INT8 is worse), from `verify`."""
    variants = _variants(verify, model)
    fp32 = variants.get("onnx-fp32", {}).get(metric)
    int8 = _runtime_int8(variants).get(metric)
    if fp32 is None or int8 is None or math.isnan(fp32) or math.isnan(int8):
        return None
    return float(fp32) - float(int8)


def lowest_rank_correlation(row: dict[str, Any]) -> float | None:
    """The lowest of a verify row's rank correlations (over classes), None where it has none."""
    values = [float(v) for v in (row.get(RANK_KEY) or {}).values()
              if isinstance(v, (int, float)) and not math.isnan(v)]
    return min(values) if values else None


def rank_correlation(verify: dict[str, Any] | None) -> float | None:
    """The classifier's runtime INT8 scores against FP32's: the lowest over classes."""
    return lowest_rank_correlation(_runtime_int8(_variants(verify, "classifier")))


def _headline(profiles: dict[str, Any]) -> list[str]:
    lite = profiles.get("lite")
    if not lite:
        return []
    lines = ["## The issue's headline checks (lite profile, 1280x960 JPEG wells, 2 CPU cores)",
             "", "| check | target | measured | |", "|---|---|---|---|"]
    for check in headline_checks(lite):
        lines.append(f"| {check['check']} | {check['target']} | {check['shown']} | "
                     f"{_mark(check['ok'])} |")
    notes = _time_split(lite.get("pipeline"))
    if lite.get("verify"):
        notes.append("Dice, AUC and the rank correlation come from `edgecrystal verify` on this "
                     "run's bundle, for the INT8 variant ONNX Runtime runs (int8-u8 where the "
                     "bundle has it). Its weights are untrained (latency does not depend on "
                     "them): these show that INT8 follows FP32, not how good the models are.")
    else:
        notes.append("Dice, AUC and the rank correlation: not measured in this run (part "
                     "`verify`); `edgecrystal verify BUNDLE --data DATA` gives them for any "
                     "bundle.")
    if lite.get("verify") and rank_correlation(lite.get("verify")) is None:
        notes.append("This `verify` reports no rank correlation.")
    return [*lines, "", *notes, ""]


def _time_split(pipeline: dict[str, Any] | None) -> list[str]:
    """Where the INT8 run's time goes, stage by stage, largest first."""
    run = next((r for r in (pipeline or {}).get("runs", [])
                if (r["backend"], r["precision"]) == ("onnxruntime", "int8")), None)
    if run is None:
        return []
    latency = run["latency_ms"]
    total = latency["end_to_end"]["median"]
    stages = sorted(((stage, latency[stage]["median"]) for stage in
                     ("read", "finder", "crop", "classifier", "crystals", "write")
                     if stage in latency),
                    key=lambda item: -item[1])
    return ["Where the INT8 run's time goes: " + ", ".join(
        f"{stage} {ms:.1f} ms ({ms / total:.0%})" for stage, ms in stages) + ".", ""]


def _profile(name: str, profile: dict[str, Any]) -> list[str]:
    lines = [f"## Profile `{name}`: {profile.get('what', '')}", ""]
    if profile.get("left_out"):
        lines += [f"Not measured for this profile: {profile['left_out']}.", ""]
    pipeline = profile.get("pipeline")
    if pipeline:
        lines += _pipeline_table(name, pipeline)
    plate = profile.get("plate")
    if plate:
        lines += [f"### A 96-well plate of 1280x960 JPEGs, `edgecrystal score` end to end "
                  f"({name})", "", _stamp(plate), "",
                  "| precision | wall s (process start to exit) | score's own line |",
                  "|---|---|---|"]
        for precision, row in plate["runs"].items():
            lines.append(f"| {precision} | {row['wall_s']:.1f} | {row['summary']} |")
        lines.append("")
    verify = profile.get("verify")
    if verify:
        lines += _verify_table(name, verify)
    return lines


def _pipeline_table(name: str, pipeline: dict[str, Any]) -> list[str]:
    config = pipeline["config"]
    lines = [f"### Pipeline per image ({name}: read, finder, crop, classifier, write), batch 1",
             "", f"{_stamp(pipeline)} Images: {config['images']}; {config['iterations']} timed "
             f"images per run after {config['warmup']} warm-up.", "",
             "| backend | precision | p50 ms | p95 ms | img/s | vs Keras | finder ms | crop ms "
             "| classifier ms | read ms | models' rate (share of the measured peak) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for run in pipeline["runs"]:
        latency = run["latency_ms"]
        e2e = latency["end_to_end"]
        ratio = run["ratio_vs_baseline"]
        stage = {s: latency.get(s, {}).get("median", 0.0)
                 for s in ("finder", "crop", "classifier", "read")}
        lines.append(
            f"| {run['backend']} | {run['precision']} | {e2e['median']:.1f} | {e2e['p95']:.1f} "
            f"| {run['throughput_ips']:.1f} | {f'{ratio:.2f}x' if ratio else '-'} | "
            f"{stage['finder']:.1f} | {stage['crop']:.1f} | {stage['classifier']:.1f} | "
            f"{stage['read']:.1f} | {_rates(run)} |")
    lines += _crystals_cost(pipeline)
    unstable = sorted({r["backend"] + "/" + r["precision"] for r in pipeline["runs"]
                       if r["warnings"]})
    if unstable:
        lines += ["", "Unstable timings (coefficient of variation over 10 %: other load on the "
                      "machine?) in: " + ", ".join(unstable) + "."]
    if config.get("skipped"):
        lines += ["", "Skipped: " + "; ".join(config["skipped"])]
    if name == "lite":
        lines += ["", "![latency](benchmarks.png)"]
    return [*lines, ""]


def _crystals_cost(pipeline: dict[str, Any]) -> list[str]:
    """Issue 25's check, where the bundle has a crystal model: its stage's median time as a
    share of the classifier's in the same run (bench's `crystals_cost`), target <= 30 %."""
    costs = [f"{r['backend']}/{r['precision']} {r['latency_ms']['crystals']['median']:.1f} ms "
             f"= {r['crystals_cost']:.0%}" for r in pipeline["runs"]
             if r.get("crystals_cost") is not None]
    if not costs:
        return []
    return ["", "Crystal stage, as a share of the classifier's time in the same run (target <= "
                "30 %): " + ", ".join(costs) + "."]


def _rates(run: dict[str, Any]) -> str:
    """Each model's GOP/s against the peak of its own arithmetic (INT8 runs against the INT8
    peak) where the report has them, else both models' share of the FP32 peak."""
    rates = run.get("model_rates") or {}
    shown = [f"{model} {rate['gops']:.0f} GOP/s"
             + (f" ({rate['peak_share']:.0%})" if rate.get("peak_share") else "")
             for model, rate in rates.items()]
    if shown:
        return ", ".join(shown)
    share = run.get("peak_fraction")
    return f"{share:.0%} of FP32 peak" if share else "-"


def _verify_table(name: str, verify: dict[str, Any]) -> list[str]:
    result = verify["result"]
    lines = [f"### `edgecrystal verify` ({name}): variants against the reference", "",
             f"{_stamp(verify)} {result['images']} images from {verify['data']}.", "",
             "| model | variant | max abs diff | agreement | Dice / AUC | rank corr. vs FP32 "
             "(lowest class) |",
             "|---|---|---|---|---|---|"]
    for model, info in result["models"].items():
        metric = "dice" if model == "finder" else "auc"
        for variant, row in info["variants"].items():
            quality = row.get(metric)
            rank = lowest_rank_correlation(row)
            lines.append(
                f"| {model} | {variant} | {row['max_abs_diff']:.2e} | {row['agreement']:.3f} | "
                f"{'-' if quality is None or math.isnan(quality) else f'{quality:.4f}'} | "
                f"{'-' if rank is None else f'{rank:.4f}'} |")
    return [*lines, ""]


def _archive(archive: dict[str, Any] | None) -> list[str]:
    if not archive:
        return []
    lines = [f"## Re-scoring an archive of {archive['images']:,} images "
             f"(`edgecrystal score --recursive`, ONNX Runtime {archive['precision']}, lite)", "",
             f"{_stamp(archive)} Images: {archive['source']}.", "",
             "| how | wall s (process start to exit) | images/s | results written | "
             "score's own line |", "|---|---|---|---|---|"]
    for run in archive["runs"]:
        if run.get("skipped"):
            lines.append(f"| {run['how']} | - | - | - | skipped: {run['skipped']} |")
            continue
        lines.append(f"| {run['how']} | {run['wall_s']:.1f} | "
                     f"{archive['images'] / run['wall_s']:.1f} | {run['results']:,} | "
                     f"{run['summary']} |")
    return [*lines, ""]


def _soak(soak: dict[str, Any] | None, rows: int = 16) -> list[str]:
    """`edgecrystal soak`'s report: the RSS verdict, then every n-th sample so the page stays
    short."""
    if not soak:
        return []
    summary = soak.get("summary", {})
    samples = soak.get("samples", [])
    lines = [f"## Soak (`edgecrystal soak`, {soak['minutes']:g} min, {soak['backend']} "
             f"{soak['precision']}, lite)", "",
             f"A real daemon fed one {soak['image_size']} JPEG every {soak['trickle_s']:g} s plus "
             f"{soak['burst']} at once every {soak['burst_every_s']:g} s: {soak['images']:,} "
             f"images, {soak['unscored_at_end']} without a result at the end, exit "
             f"{soak['sigterm_exit']} on SIGTERM. Load average at the end "
             f"{', '.join(f'{v:.1f}' for v in soak.get('load_avg', []))}.", ""]
    rss = summary.get("rss_mib")
    if rss:
        fds = summary.get("fds", {})
        lines += [f"After the first {summary['after_warmup_s']:.0f} s ({summary['samples']} "
                  f"samples): RSS {rss['min']:.0f} to {rss['max']:.0f} MiB (first "
                  f"{rss['first']:.0f}, last {rss['last']:.0f}; fitted slope "
                  f"{rss['slope_mib_per_min']:+.2f} MiB/min); open fds {fds.get('min')} to "
                  f"{fds.get('max')}.", ""]
    elif summary.get("note"):
        lines += [summary["note"], ""]
    lines += ["Each row sums up the samples since the row before: highest RSS, fds and threads, "
              "and the worst p50 / p95 of the intervals in it (a burst's images wait behind "
              "the burst, and the trickle images closed during it wait with them).", "",
              "| until t s | RSS MiB | fds | threads | trickle p50 / p95 ms | "
              "burst p50 / p95 ms |", "|---|---|---|---|---|---|"]
    step = max(1, math.ceil(len(samples) / rows))
    for first in range(0, len(samples), step):
        window = samples[first : first + step]
        lines.append(f"| {window[-1]['t_s']:.0f} | {max(w['rss_mib'] for w in window):.0f} | "
                     f"{max(w['fds'] for w in window)} | "
                     f"{max(w['threads'] for w in window)} | "
                     f"{_latency([w.get('trickle') for w in window])} | "
                     f"{_latency([w.get('burst') for w in window])} |")
    return [*lines, ""]


def _latency(intervals: list[dict[str, Any] | None]) -> str:
    """The worst p50 and p95 over some sampled intervals; '-' when none had images."""
    measured = [i for i in intervals if i and i.get("p50_ms") is not None]
    if not measured:
        return "-"
    return (f"{max(i['p50_ms'] for i in measured):.0f} / "
            f"{max(i['p95_ms'] for i in measured):.0f}")
