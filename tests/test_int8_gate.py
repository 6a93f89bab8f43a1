"""The INT8 accuracy gate and the runtime's obedience to it (calibration/gate.py,
converters/int8_gate.py, runtime/select.py): real quantisation, real ONNX Runtime sessions, real
result files. A collapsed INT8 finder (calibrated on black pixels: every activation range is
one grey level wide) must fail the gate, make verify warn, and be refused by score in one line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from edgecrystal import cpu_isa
from edgecrystal.bundle import Bundle
from edgecrystal.calibration.gate import BOUNDS, bounds_from, gate_record
from edgecrystal.errors import BackendError, UsageError
from edgecrystal.scoring import ScoreOptions, score_paths


def _copy(fast_bundle: Path, tmp_path: Path) -> Path:
    root = tmp_path / "bundle"
    shutil.copytree(fast_bundle, root)
    return root


def _wells(folder: Path) -> list[Path]:
    from onnx_fixtures import write_wells

    return write_wells(folder, 3)


def test_bounds_parse_and_refuse_nonsense() -> None:
    assert bounds_from(None) == BOUNDS
    loose = bounds_from("agreement=0.9, rank=0.5")
    assert (loose.min_agreement, loose.min_rank_correlation) == (0.9, 0.5)
    assert loose.max_dice_loss == BOUNDS.max_dice_loss
    for bad in ("agreement=2", "speed=0.5", "rank"):
        with pytest.raises(UsageError, match="--int8-gate"):
            bounds_from(bad)


def test_gate_numbers_and_verdicts() -> None:
    rng = np.random.default_rng(0)
    scores = rng.dirichlet(np.ones(4), 64)
    same = gate_record("classifier", scores, scores, "x86-vnni", True)
    assert same["usable"] and same["agreement"] == 1.0
    flat = np.full_like(scores, 0.25)
    flat[:, 0] += 1e-3  # one label for everything, no order within any class
    broken = gate_record("classifier", flat, scores, "x86-avx2", True)
    assert not broken["usable"] and any("agreement" in r for r in broken["reasons"])
    masks = rng.uniform(0, 1, (4, 16, 16, 1))
    empty = gate_record("finder", np.zeros_like(masks), masks, "x86-avx2", True)
    assert not empty["usable"] and empty["dice_loss"] > 0.5


def _collapse_finder(root: Path, family: str) -> str:
    """The finder's ONNX Runtime INT8 variant calibrated on one grey level (every activation's
    range is that picture's: anything else clips), recorded and gated as build-engines does."""
    from edgecrystal.converters.build import Options as BuildOptions
    from edgecrystal.converters.build import _calibration_sets, calibration_settings
    from edgecrystal.converters.int8_gate import gate_variants
    from edgecrystal.converters.int8_variant import int8_variant

    bundle = Bundle.open(root)
    name, entry = bundle.variant_for("finder", "int8", "onnxruntime") or ("", {})
    size = bundle.input_size("finder")
    int8_variant(bundle.path(bundle.variant("finder", "fp32")["file"]), bundle.path(entry["file"]),
             np.full((8, size, size, 3), 100, np.uint8), "onnxruntime", "minmax")
    detail = {k: v for k, v in entry.items() if k not in {
        "file", "precision", "backends", "sha256", "input", "input_dtype", "output",
        "sha256_source", "quantizer", "calibration", "form"}}
    key = {k: entry[k] for k in ("sha256_source", "quantizer", "calibration", "form") if k in entry}
    bundle.add_variant("finder", name, precision="int8", backends=entry["backends"], key=key,
                       source=bundle.variant("finder", "fp32"), **detail)
    record = json.loads(bundle.path("calibration/finder.json").read_text())
    settings = calibration_settings(BuildOptions(), record, "finder")
    lines = gate_variants(bundle, "finder", (name,), settings, record["images"],
                          lambda s, ex, n: _calibration_sets(bundle, ["finder"], s, ex, n),
                          None, lambda _l: None, force=True)
    assert len(lines) == 1 and "failed" in lines[0][0] and not lines[0][1], lines
    bundle.save()
    assert bundle.int8_gate("finder", name, family)["usable"] is False
    return name


def test_a_collapsed_int8_finder_fails_the_gate_is_refused_and_warned(
        fast_bundle: Path, fast_calibration_data: Path, tmp_path: Path) -> None:
    from edgecrystal.converters.verify import format_table, run_verify

    root = _copy(fast_bundle, tmp_path)
    name = _collapse_finder(root, cpu_isa.detect().family)
    images = _wells(tmp_path / "wells")
    with pytest.raises(BackendError, match="failed the INT8 accuracy gate") as refused:
        score_paths(root, images, ScoreOptions(backend="onnxruntime", precision="int8"))
    assert "\n" not in str(refused.value) and "Dice loss" in str(refused.value)
    assert not any(Path(f"{p}.edgecrystal.json").exists() for p in images)
    table = format_table(run_verify(root, fast_calibration_data, 8))
    assert f"finder onnx-{name} looks collapsed" in table, table
    assert f"finder {name}: INT8 gate failed" in table
    score_paths(root, images, ScoreOptions(backend="onnxruntime", precision="fp32"))  # fp32 runs


def test_int8_not_checked_on_this_family_scores_fp32_and_says_why(
        fast_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    images = _wells(tmp_path / "wells")
    checked = Bundle.open(fast_bundle).variant("classifier", "int8-u8")["gate"]
    other = next(f for f in cpu_isa.FAMILIES if f not in checked)
    monkeypatch.setenv("EDGECRYSTAL_CPU_FAMILY", other)
    caplog.set_level("WARNING")
    report = score_paths(fast_bundle, images, ScoreOptions(backend="onnxruntime",
                                                           precision="int8"))
    assert report.precision == "fp32"
    warned = [r.getMessage() for r in caplog.records if "int8 not used" in r.getMessage()]
    assert len(warned) == 1 and other in warned[0]
    model = json.loads(Path(f"{images[0]}.edgecrystal.json").read_text())["model"]
    assert model["precision"] == "fp32" and other in model["precision_fallback"]
    monkeypatch.delenv("EDGECRYSTAL_CPU_FAMILY")
    again = score_paths(fast_bundle, images, ScoreOptions(backend="onnxruntime",
                                                          precision="int8", force=True))
    model = json.loads(Path(f"{images[0]}.edgecrystal.json").read_text())["model"]
    assert again.precision == "int8" and "precision_fallback" not in model


def test_stricter_bounds_regate_kept_variants_and_score_refuses_in_one_line(
        fast_bundle: Path, fast_calibration_data: Path, tmp_path: Path) -> None:
    """--int8-gate on a re-run with nothing to rebuild: the kept variants are measured again
    against the new bounds, and `edgecrystal score` refuses what fails them (exit 2, one line)."""
    import subprocess
    import sys

    from edgecrystal.converters.build import Options, Report, make_int8

    root = _copy(fast_bundle, tmp_path)
    bundle, report = Bundle.open(root), Report()
    make_int8(bundle, ["finder", "classifier"],
              Options(calib=fast_calibration_data, calib_count=8, int8_gate="dice_loss=0"),
              report, lambda _line: None)
    bundle.save()
    assert [s["action"] for s in report.steps] == ["kept", "kept"]  # nothing remade
    assert any("finder" in w and "INT8 gate failed" in w for w in report.warnings), report
    family = cpu_isa.detect().family
    name = (bundle.variant_for("finder", "int8", "onnxruntime") or ("",))[0]
    assert bundle.int8_gate("finder", name, family)["bounds"]["max_dice_loss"] == 0.0
    images = _wells(tmp_path / "wells")
    done = subprocess.run([sys.executable, "-m", "edgecrystal", "score", str(root),
                           str(images[0].parent), "--backend", "onnxruntime", "--precision",
                           "int8"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "failed the INT8 accuracy gate" in lines[0], done.stderr


def test_each_int8_variant_records_its_family_form_and_gate(fast_bundle: Path) -> None:
    from edgecrystal.calibration.quantize import FORM_FOR

    family = cpu_isa.detect().family
    bundle = Bundle.open(fast_bundle)
    for model in ("finder", "classifier"):
        entry = bundle.variant(model, "int8-u8")
        assert entry["made_on"] == family
        assert entry["form"] == entry["quantization"]["form"] == FORM_FOR[family]
        gate = bundle.int8_gate(model, "int8-u8", family)
        assert gate is not None and gate["usable"] and gate["family"] == family
        assert gate["bounds"] == {"min_agreement": 0.98, "max_dice_loss": 0.01,
                                  "min_rank_correlation": 0.95, "max_crystal_dice_loss": 0.05}
