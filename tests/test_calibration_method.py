"""Which calibration method quantizes each model: --calib-method, else the model's record, else
the model's own default (calibration.quantize.DEFAULT_METHOD), and a sibling's record lends its
images, never its method."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgecrystal.calibration.quantize import DEFAULT_METHOD, METHODS, default_method
from edgecrystal.converters.build import Options, _sibling_record, calibration_settings


def test_every_default_is_a_method_build_engines_accepts() -> None:
    assert set(DEFAULT_METHOD.values()) <= set(METHODS)
    assert default_method("classifier") == "percentile"
    assert default_method("finder") == "entropy"
    assert default_method("some-future-model") == "entropy"


@pytest.mark.parametrize("model", ["finder", "classifier", "crystals"])
def test_nothing_named_gives_the_models_own_method(model: str, tmp_path: Path) -> None:
    settings = calibration_settings(Options(calib=tmp_path), {}, model)
    assert settings["method"] == DEFAULT_METHOD[model]
    assert settings["data"] == str(tmp_path.resolve())


def test_the_record_and_then_the_option_win_over_the_default() -> None:
    record = {"data": "/d", "key": {"data": "/d", "count": 64, "seed": 3, "method": "minmax"}}
    kept = calibration_settings(Options(), record, "classifier")
    assert (kept["method"], kept["count"], kept["seed"]) == ("minmax", 64, 3)
    named = calibration_settings(Options(calib_method="entropy"), record,
                                 "classifier")
    assert named["method"] == "entropy"


class _Folder:
    """The one Bundle method _sibling_record reads through."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, rel: str) -> Path:
        return self.root / rel


def test_a_sibling_record_lends_its_images_not_its_method(tmp_path: Path) -> None:
    (tmp_path / "calibration").mkdir()
    (tmp_path / "calibration" / "finder.json").write_text(json.dumps(
        {"data": "/wells", "key": {"data": "/wells", "count": 128, "seed": 5,
                                   "method": "entropy"}}))
    sibling = _sibling_record(_Folder(tmp_path), ["finder", "crystals"])
    assert sibling["key"] == {"data": "/wells", "count": 128, "seed": 5}
    settings = calibration_settings(Options(), sibling, "crystals")
    assert (settings["data"], settings["count"], settings["seed"]) == ("/wells", 128, 5)
    assert settings["method"] == "percentile"
