"""One scoring session (edgecrystal/session.py): `evaluate` and `verify` measure the pipeline
that `score` runs, so for ONNX Runtime FP32 they report exactly the scores `score` writes in
the result files (real ONNX Runtime, real image files, the fast bundle's models)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_evaluate_runtime import CLASSES, class_folders

from edgecrystal.converters.verify import format_table, run_verify
from edgecrystal.errors import BackendError
from edgecrystal.evaluate import evaluate
from edgecrystal.scoring import ScoreOptions, score_paths
from edgecrystal.session import open_pipeline

# The result file keeps six decimals of each score (results.py): compare at that rounding.
DECIMALS = 6


def _written(image: Path) -> dict[str, float]:
    scores = json.loads(Path(f"{image}.edgecrystal.json").read_text())["scores"]
    return {name: scores[name] for name in CLASSES}


def _rounded(scores: dict[str, float]) -> dict[str, float]:
    return {name: round(value, DECIMALS) for name, value in scores.items()}


def test_evaluate_and_verify_report_what_score_writes(fast_bundle: Path, tmp_path: Path) -> None:
    data = class_folders(tmp_path / "data", dict.fromkeys(CLASSES, 1))
    images = sorted(data.rglob("*.jpg"))
    verified = run_verify(fast_bundle, data, n=len(images))
    evaluated = evaluate(data, fast_bundle, tmp_path / "ev")
    report = score_paths(fast_bundle, [data], ScoreOptions(recursive=True, backend="onnxruntime"))
    assert report.scored == len(images) and not report.errors

    section = verified["pipeline"]
    fp32 = section["variants"]["onnxruntime-fp32"]
    assert sorted(section["images"]) == [str(p) for p in images]
    for image, row in zip(section["images"], fp32["scores"], strict=True):
        verify_scores = dict(zip(CLASSES, row, strict=True))
        assert _rounded(verify_scores) == _written(Path(image)), image
    assert fp32["agreement"] == 1.0 and fp32["max_abs_diff"] == 0.0  # it is the reference here
    assert "onnxruntime-fp32" in format_table(verified)

    for row in evaluated["classifier"]["per_image"]:
        assert _rounded(row["scores"]) == _written(data / row["image"]), row["image"]


def test_the_session_loads_models_on_first_use(fast_bundle: Path, tmp_path: Path) -> None:
    """Opening chooses (backend, fingerprint, description) without loading a model; the first
    image loads them; a plugged-only backend is refused where nothing plugged it."""
    data = class_folders(tmp_path / "data", {"clear": 1})
    with open_pipeline(fast_bundle, backend="onnxruntime", threads=1) as pipeline:
        runners = [pipeline.finder, pipeline.classifier]
        assert all(r is not None and not r.active for r in runners)
        assert pipeline.selection is not None and pipeline.selection.backend == "onnxruntime"
        assert pipeline.score([next(data.rglob("*.jpg"))])[0].ok
        assert all(r is not None and r.active for r in runners)
    assert all(r is not None and r.closed for r in runners)


def test_keras_is_refused_where_no_command_plugged_it(fast_bundle: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """score and serve never plug the Keras reference: asking for it there is one line."""
    from edgecrystal import session

    monkeypatch.delitem(session._PLUGGED, "keras", raising=False)  # as in `score`'s process
    with pytest.raises(BackendError, match="reference of bench, verify and evaluate"):
        open_pipeline(fast_bundle, backend="keras")


def test_evaluate_measures_the_finder_in_its_runtime_runner(fast_bundle: Path,
                                                           fast_calibration_data: Path,
                                                           tmp_path: Path) -> None:
    """The finder's Dice comes from its FP32 ONNX in ONNX Runtime, as `score` runs it (no
    TensorFlow: the fast tier blocks it; it loaded the Keras finder through training code)."""
    report = evaluate(fast_calibration_data, fast_bundle, tmp_path / "ev")
    finder = report["finder"]
    assert finder["runtime"] == "onnxruntime fp32"
    assert finder["images"] == len(finder["per_image"]) > 0
    assert 0.0 < finder["dice_mean"] <= 1.0  # the fast finder really marks the light drop
