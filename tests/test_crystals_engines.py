"""The crystal model through build-engines and verify (issue 25 item 5): its FP16 and INT8
variants made from its FP32 ONNX, calibrated on drop crops at its own input size, gated on the
Dice of its mask against FP32's with its own bound, and compared by `verify`; a bundle without
one builds as before."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
from onnx_fixtures import CRYSTALS_SIZE

from edgecrystal import cpu_isa
from edgecrystal.bundle import Bundle
from edgecrystal.calibration.gate import BOUNDS, gate_record, measure, verdict
from edgecrystal.converters.build import Options, Report, make_int8


def _copy(root: Path, where: Path) -> Path:
    out = where / "bundle"
    shutil.copytree(root, out)
    return out


def test_build_engines_makes_every_crystals_variant_with_its_record_and_gate(
        crystals_bundle: Path) -> None:
    bundle = Bundle.open(crystals_bundle)
    family = cpu_isa.detect().family
    assert set(bundle.variants("crystals")) == {"fp32", "fp16", "int8", "int8-u8"}
    for name in ("fp16", "int8", "int8-u8"):
        entry = bundle.variant("crystals", name)
        assert entry["sha256_source"] == bundle.variant("crystals", "fp32")["sha256"]
        assert bundle.path(entry["file"]).is_file() and not bundle.is_stale("crystals", name)
    assert bundle.variant("crystals", "fp16")["check"]["max_abs_diff"] <= 2e-2
    gate = bundle.int8_gate("crystals", "int8-u8", family)
    assert gate is not None and gate["usable"], gate
    assert 0.0 <= gate["dice_loss"] <= BOUNDS.max_crystal_dice_loss
    record = json.loads(bundle.path("calibration/crystals.json").read_text())
    assert record["model"] == "crystals" and len(record["images"]) == 8
    assert record["crop"] == bundle.section("calibration")["classifier"]["crop"]
    assert bundle.verify_files() == []


def test_crystal_calibration_inputs_are_drop_crops_at_the_crystal_size(
        crystals_bundle: Path, fast_calibration_data: Path) -> None:
    from edgecrystal.calibration.select import calibration_sets

    bundle = Bundle.open(crystals_bundle)
    finder = bundle.path(bundle.variant("finder", "fp32")["file"])
    sizes = {m: bundle.input_size(m) for m in ("classifier", "crystals")}
    sets = calibration_sets(fast_calibration_data, sizes, 8, 0, finder)
    crystals, classifier = sets["crystals"], sets["classifier"]
    assert crystals.inputs.shape == (8, CRYSTALS_SIZE, CRYSTALS_SIZE, 3)
    assert crystals.images == classifier.images and crystals.crop == classifier.crop
    # The same crops, each at its model's size: resizing one to the other's size agrees.
    import cv2

    small = np.stack([cv2.resize(c, (CRYSTALS_SIZE, CRYSTALS_SIZE), interpolation=cv2.INTER_AREA)
                      for c in classifier.inputs])
    assert np.abs(small.astype(int) - crystals.inputs.astype(int)).mean() < 12


def test_the_crystal_bound_gates_the_crystal_model_only(
        crystals_bundle: Path, fast_calibration_data: Path, tmp_path: Path) -> None:
    """A stricter crystal bound on a re-run: the kept crystal variants are measured again and
    fail; the finder's and classifier's records (whose bounds did not change) stay as they are."""
    root = _copy(crystals_bundle, tmp_path)
    bundle, report, lines = Bundle.open(root), Report(), []
    family = cpu_isa.detect().family
    before = bundle.int8_gate("finder", "int8-u8", family)
    make_int8(bundle, ["finder", "classifier", "crystals"],
              Options(calib=fast_calibration_data, calib_count=8,
                      int8_gate="crystal_dice_loss=0"), report, lines.append)
    assert [s["action"] for s in report.steps] == ["kept", "kept", "kept"]
    assert not any(line.startswith(("finder", "classifier")) and "gate" in line
                   for line in lines), lines
    assert bundle.int8_gate("finder", "int8-u8", family) == before
    failed = bundle.int8_gate("crystals", "int8-u8", family)
    assert failed is not None and not failed["usable"]
    assert "crystals Dice loss" in failed["reasons"][0]
    assert any(w.startswith("crystals int8-u8: INT8 gate failed") for w in report.warnings)


def test_gate_measures_a_crystal_map_by_its_mask() -> None:
    fp32 = np.zeros((2, 8, 8, 1), np.float32)
    fp32[0, 2:4, 2:4] = 0.9
    same = measure("crystals", fp32.copy(), fp32, 0.5)
    assert same["dice"] == 1.0 and same["dice_loss"] == 0.0
    moved = np.zeros_like(fp32)
    moved[0, 3:5, 3:5] = 0.9  # one pixel off: a quarter of the crystal still overlaps
    record = gate_record("crystals", moved, fp32, "x86-avx2", True)
    assert record["dice"] == (0.25 + 1.0) / 2  # the empty image agrees
    assert not record["usable"] and record["reasons"][0].startswith("crystals Dice loss")
    # The finder's bound is not the crystals': a loss of 0.03 passes one and fails the other.
    assert verdict("crystals", {"dice_loss": 0.03}) == []
    assert verdict("finder", {"dice_loss": 0.03}) != []


def test_verify_compares_every_crystals_variant(crystals_bundle: Path,
                                                fast_calibration_data: Path) -> None:
    from edgecrystal.converters.verify import format_table, run_verify

    result = run_verify(crystals_bundle, fast_calibration_data, n=8)
    info = result["models"]["crystals"]
    assert info["reference"] == "onnx-fp32" and info["rank_reference"] == "onnx-fp32"
    rows = info["variants"]
    assert {"onnx-fp32", "onnx-fp16", "onnx-int8-u8"} <= set(rows)
    assert rows["onnx-fp32"]["dice32"] == 1.0 and rows["onnx-fp32"]["max_abs_diff"] == 0.0
    assert rows["onnx-fp16"]["dice32"] > 0.99
    assert 1.0 - rows["onnx-int8-u8"]["dice32"] <= BOUNDS.max_crystal_dice_loss
    assert rows["onnx-int8-u8"]["rank_correlation"]["mask"] > 0.9
    table = format_table(result)
    assert "\ncrystals (reference: onnx-fp32" in table and "dice32" in table
    assert "crystals int8-u8: INT8 gate passed" in table


def test_a_bundle_without_a_crystal_model_builds_nothing_for_one(fast_bundle: Path,
                                                                   tmp_path: Path) -> None:
    from edgecrystal.converters.build import build_engines

    root = _copy(fast_bundle, tmp_path)
    bundle = Bundle.open(root)
    for model in ("finder", "classifier"):
        bundle.section(model)["imported"] = {"format": "ONNX (test fixture)"}
    bundle.save()
    report = build_engines(root, Options(precisions=("fp32", "fp16")))
    assert {s["model"] for s in report.steps} == {"finder", "classifier"}
    assert "crystals" not in Bundle.open(root).meta


def test_a_crystal_model_added_to_a_calibrated_bundle_needs_no_calib(
        fast_bundle: Path, fast_calibration_data: Path, tmp_path: Path) -> None:
    """A plain `build-engines` after a crystal model joins a bundle whose finder and classifier
    were calibrated: the crystal model is calibrated on the same data with the same settings
    (before, INT8 stopped with '--precision int8 needs --calib DATA')."""
    from onnx_fixtures import add_crystals

    from edgecrystal.converters.build import build_engines

    root = _copy(fast_bundle, tmp_path)
    bundle = Bundle.open(root)
    for model in ("finder", "classifier"):
        bundle.section(model)["imported"] = {"format": "ONNX (test fixture)"}
    bundle.save()
    add_crystals(root)
    report = build_engines(root, Options())
    made = {(s["model"], s["precision"]): s["action"] for s in report.steps}
    assert made[("crystals", "int8")] == "made" and made[("classifier", "int8")] == "kept"
    records = {m: json.loads((root / f"calibration/{m}.json").read_text())
               for m in ("classifier", "crystals")}
    assert records["crystals"]["key"] == records["classifier"]["key"]
    assert records["crystals"]["data"] == str(fast_calibration_data.resolve())


def test_a_damaged_crystals_variant_is_rebuilt_in_staging(crystals_bundle: Path,
                                                          tmp_path: Path) -> None:
    """The crystal model's files are checked like the others' (converters/integrity.py): a
    truncated INT8 file is rebuilt, whatever --precision asks for, and the bundle is whole."""
    from edgecrystal.converters.build import build_engines

    root = _copy(crystals_bundle, tmp_path)
    damaged = root / "onnx/crystals.int8-u8.onnx"
    damaged.write_bytes(damaged.read_bytes()[:100])
    report = build_engines(root, Options(precisions=("fp16",)))
    made = {(s["model"], s["precision"]) for s in report.made if s["what"] == "onnx"}
    assert made == {("crystals", "int8")}, report.steps
    assert Bundle.open(root).verify_files() == []
    assert not list(tmp_path.glob(".bundle.building-*"))  # the staging copy was swapped in
