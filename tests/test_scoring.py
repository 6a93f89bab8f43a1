"""scoring.score_paths, the library function behind `edgecrystal score`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from onnx_fixtures import write_wells

from edgecrystal.errors import UsageError
from edgecrystal.results import result_path
from edgecrystal.scoring import ScoreOptions, score_paths


def test_report_counts_labels_errors_and_skips(fast_bundle: Path, tmp_path: Path) -> None:
    images = write_wells(tmp_path / "plate", 3)
    (tmp_path / "plate" / "B01_1.jpg").write_text("not a picture")
    lines: list[str] = []
    options = ScoreOptions(backend="onnxruntime", batch=2, threads=1)
    report = score_paths(fast_bundle, [tmp_path / "plate"], options, progress=lines.append)
    assert report.scored == 4 and report.skipped == 0
    assert sum(report.labels.values()) == 3 and set(report.labels) <= set(report.classes)
    assert len(report.errors) == 1 and "B01_1.jpg: not_an_image" in report.errors[0]
    assert lines[0].startswith("backend: onnxruntime fp32") and lines[-1] == "scored 4/4"
    record = json.loads(result_path(images[0]).read_text())
    assert record["status"] == "ok" and record["drop"]["found"] is True
    again = score_paths(fast_bundle, [tmp_path / "plate"], options, progress=lines.append)
    # The broken file's error result vouches for it too: nothing is scored twice.
    assert again.scored == 0 and again.skipped == 4


def test_missing_path_is_a_usage_error(fast_bundle: Path, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no such file or folder"):
        score_paths(fast_bundle, [tmp_path / "nothere"], ScoreOptions(backend="onnxruntime"))
