"""A classifier whose scores barely vary (issue 23, item 7): the one test, and `score` and
`verify` saying so about a real ONNX model that answers the same for every image."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from onnx_fixtures import write_wells

from edgecrystal.collapse import MIN_IMAGES, useless_scores

CLASSES = ["clear", "crystals", "precipitate", "other"]


def test_constant_scores_are_useless_and_varied_ones_are_not() -> None:
    rng = np.random.default_rng(0)
    constant = np.tile([0.2, 0.336, 0.264, 0.2], (12, 1)) + rng.normal(0, 1e-4, (12, 4))
    message = useless_scores(constant, CLASSES)
    assert message is not None and "crystals 0.336" in message and "12 images" in message
    varied = rng.dirichlet(np.ones(4), 12)
    assert useless_scores(varied, CLASSES) is None
    # Too few images to tell a collapsed model from a plate of look-alike wells.
    assert useless_scores(constant[: MIN_IMAGES - 1], CLASSES) is None


@pytest.fixture(scope="module")
def collapsed_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from onnx_fixtures import build_fast_bundle

    return build_fast_bundle(tmp_path_factory.mktemp("collapsed") / "bundle", collapsed=True)


def test_score_warns_about_a_collapsed_classifier(collapsed_bundle: Path, fast_bundle: Path,
                                                  tmp_path: Path) -> None:
    images = write_wells(tmp_path / "plate", 10)
    done = subprocess.run([sys.executable, "-m", "edgecrystal", "score", str(collapsed_bundle),
                           str(tmp_path / "plate"), "--backend", "onnxruntime"],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert "warning: the classifier's scores barely vary over 10 images" in done.stderr
    assert json.loads(Path(f"{images[0]}.edgecrystal.json").read_text())["status"] == "ok"
    # The fixture's working classifier on varied wells: no warning.
    varied = tmp_path / "varied"
    shutil.copytree(tmp_path / "plate", varied, ignore=shutil.ignore_patterns("*.json", "*.csv"))
    import cv2

    for k, path in enumerate(sorted(varied.glob("*.jpg"))):
        img = cv2.imread(str(path))
        cv2.circle(img, (20 + 8 * k, 30), 6 + 2 * k, (10 * k, 255 - 20 * k, 40), -1)
        cv2.imwrite(str(path), img)
    done = subprocess.run([sys.executable, "-m", "edgecrystal", "score", str(fast_bundle),
                           str(varied), "--backend", "onnxruntime"],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0 and "barely vary" not in done.stderr, done.stderr


def test_verify_warns_about_a_collapsed_classifier(collapsed_bundle: Path,
                                                   fast_calibration_data: Path) -> None:
    from edgecrystal.converters.verify import format_table, run_verify

    result = run_verify(collapsed_bundle, fast_calibration_data, 12)
    assert "barely vary" in (result["models"]["classifier"].get("useless") or "")
    assert "warning: classifier: the classifier's scores barely vary" in format_table(result)
