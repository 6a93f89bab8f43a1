"""The crystal stage of the one scoring path (issue 25): a bundle's crystal model runs on the
classifier's crops through session.open_pipeline and real ONNX Runtime, its maps become boxes in
the original image's pixels, the result file carries them (schema_version 3), a sure box on a
non-crystals label makes the drop uncertain; a bundle without a crystal model has none of it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from edgecrystal.bundle import Bundle
from edgecrystal.confidence import uncertain
from edgecrystal.crystal_boxes import CrystalSettings, from_probability
from edgecrystal.pipeline import STAGES, Scored
from edgecrystal.results import SCHEMA_VERSION, read_result, write_result
from edgecrystal.session import open_pipeline

# Dark 12 x 12 specks on a flat grey square image: the fixture finder finds no drop (the
# classifier sees the whole image, no padding) and the fixture crystal model fires on the
# specks only.
SIDE = 160
SPECKS = ((30, 40), (110, 100))
SPECK = 12


def _specks(path: Path, specks: tuple[tuple[int, int], ...] = SPECKS) -> Path:
    import cv2

    img = np.full((SIDE, SIDE, 3), 90, np.uint8)
    for x, y in specks:
        img[y:y + SPECK, x:x + SPECK] = 0
    cv2.imwrite(str(path), img)
    return path


def _copy(bundle: Path, tmp_path: Path, **crystals: object) -> Path:
    root = tmp_path / "bundle"
    shutil.copytree(bundle, root)
    if crystals:
        b = Bundle.open(root)
        b.section("crystals").update(crystals)
        b.save()
    return root


def test_from_probability_maps_back_through_the_square_padding() -> None:
    # A 200 x 100 crop box at (50, 300) was padded to 200 x 200 (50 rows above and below),
    # then resized to 20 x 20: map pixel = 10 original pixels.
    prob = np.zeros((20, 20, 1), np.float32)
    prob[6:8, 2:5] = 0.9  # 2 x 3 map pixels: rows 6-7 -> y 300+10..., cols 2-4 -> x 70..100
    prob[7, 3] = 0.97
    prob[12, 15] = 0.6  # a single pixel: below min_area 2
    prob[1, 1] = 0.99  # in the padding above the box: no image pixels, dropped
    boxes = from_probability(prob, (50, 300, 250, 400), threshold=0.5, min_area=2)
    assert len(boxes) == 1
    (box,) = boxes
    assert box.box == (70, 310, 100, 330)
    assert box.area_px == 6 * 100
    assert box.score == pytest.approx(0.97)
    assert from_probability(prob, (50, 300, 250, 400), threshold=0.5, min_area=1)[-1].score \
        == pytest.approx(0.6)
    assert from_probability(np.zeros((8, 8), np.float32), (0, 0, 8, 8)) == []


def test_settings_default_where_the_section_is_silent() -> None:
    settings = CrystalSettings.from_section({"input_size": 64, "threshold": 0.3})
    assert (settings.input_size, settings.threshold) == (64, 0.3)
    assert settings.min_area == 4 and settings.agree_score == 0.8


def test_agreement_rule() -> None:
    sure = [0.05, 0.9, 0.03, 0.02]  # a clear-cut label
    assert not uncertain(sure, label="clear", crystal_score=None, agree_score=0.8)
    assert uncertain(sure, label="clear", crystal_score=0.85, agree_score=0.8)
    assert not uncertain(sure, label="clear", crystal_score=0.79, agree_score=0.8)
    assert not uncertain(sure, label="crystals", crystal_score=0.99, agree_score=0.8)
    assert not uncertain(sure, label=None, crystal_score=0.99, agree_score=0.8)


def test_boxes_in_original_pixels_in_the_result_file(crystals_bundle: Path,
                                                     tmp_path: Path) -> None:
    image = _specks(tmp_path / "A01_1.png")
    with open_pipeline(crystals_bundle, backend="onnxruntime", threads=1) as pipe:
        assert pipe.crystals is not None and pipe.selection is not None
        assert pipe.selection.crystals is pipe.crystals
        (r,) = pipe.score([image])
        out = write_result(r, pipe.model)
        # The crystal model's ONNX is part of what scored: its hash is in the fingerprint.
        assert pipe.model.fingerprint == Bundle.open(crystals_bundle).runtime_fingerprint(
            "onnxruntime", "fp32")
    assert r.ok and not r.found and r.box == (0, 0, SIDE, SIDE)
    assert r.crystals is not None and len(r.crystals) == len(SPECKS)
    for x, y in SPECKS:
        hit = [c for c in r.crystals if c.box[0] <= x + SPECK // 2 < c.box[2]
               and c.box[1] <= y + SPECK // 2 < c.box[3]]
        assert len(hit) == 1, r.crystals
        x0, y0, x1, y1 = hit[0].box
        # Within a map pixel (160 / 40 = 4 original pixels) of the speck, on every side.
        assert x - 4 <= x0 and x1 <= x + SPECK + 4 and y - 4 <= y0 and y1 <= y + SPECK + 4
        assert 0.5 * SPECK ** 2 <= hit[0].area_px <= 2 * SPECK ** 2
        assert hit[0].score > 0.9
    assert set(r.timings_ms) == {*STAGES, "write"}  # write_result times itself
    data = json.loads(out.read_text())
    assert data["schema_version"] == SCHEMA_VERSION == 3
    assert data["crystal_count"] == 2
    assert sorted(c["box"] for c in data["crystals"]) == sorted(list(c.box) for c in r.crystals)
    assert data["largest_crystal_px"] == max(max(c.box[2] - c.box[0], c.box[3] - c.box[1])
                                             for c in r.crystals)
    assert data["target"] is not None
    record = read_result(out)
    assert record is not None and record.crystals is not None
    assert [(c.box, c.area_px, round(c.score, 4)) for c in record.crystals] == \
        [(c.box, c.area_px, round(c.score, 4)) for c in r.crystals]


def test_no_crystal_model_no_crystal_fields(fast_bundle: Path, tmp_path: Path) -> None:
    image = _specks(tmp_path / "A01_1.png")
    with open_pipeline(fast_bundle, backend="onnxruntime", threads=1) as pipe:
        assert pipe.crystals is None
        (r,) = pipe.score([image])
        data = json.loads(write_result(r, pipe.model).read_text())
    assert r.ok and r.crystals is None and "crystals" not in r.timings_ms
    assert not {"crystals", "crystal_count", "largest_crystal_px", "target"} & set(data)


def test_a_blank_image_has_an_empty_crystal_list(crystals_bundle: Path, tmp_path: Path) -> None:
    image = _specks(tmp_path / "A01_1.png", specks=())
    with open_pipeline(crystals_bundle, backend="onnxruntime", threads=1) as pipe:
        (r,) = pipe.score([image])
        data = json.loads(write_result(r, pipe.model).read_text())
    assert r.crystals == [] and data["crystal_count"] == 0 and data["target"] is None


def test_a_sure_box_on_a_non_crystals_label_is_uncertain(crystals_bundle: Path,
                                                         tmp_path: Path) -> None:
    images = [_specks(tmp_path / f"A0{k}_1.png", specks=((20 + 9 * k, 30 + 7 * k),))
              for k in range(1, 7)]
    by_setting = {}
    for agree in (0.5, 2.0):  # 2.0: no box is ever sure enough, the plain rule only
        root = _copy(crystals_bundle, tmp_path / f"agree-{agree}", agree_score=agree)
        b = Bundle.open(root)
        # A sharp calibration makes the untrained classifier's labels clear-cut, so the plain
        # rule leaves them certain and only the crystal model's disagreement can flag them.
        b.section("confidence").update({"temperature": 0.02})
        b.save()
        with open_pipeline(root, backend="onnxruntime", threads=1) as pipe:
            by_setting[agree] = pipe.score(images)
    disagreeing = 0
    for strict, lenient in zip(by_setting[2.0], by_setting[0.5], strict=True):
        assert strict.label == lenient.label and strict.crystals == lenient.crystals
        assert strict.crystals and max(c.score for c in strict.crystals) > 0.5
        assert strict.uncertain == uncertain(list(strict.scores.values()))
        if lenient.label != "crystals":
            assert lenient.uncertain is True
            disagreeing += not strict.uncertain
        else:
            assert lenient.uncertain == strict.uncertain
    assert disagreeing > 0  # some drops only the disagreement flagged


def test_by_default_only_crystals_hits_are_searched(crystals_bundle: Path,
                                                    tmp_path: Path) -> None:
    images = [_specks(tmp_path / f"A0{k}_1.png", specks=((20 + 9 * k, 30 + 7 * k),))
              for k in range(1, 7)]

    def scored(name: str, threshold: float) -> list[Scored]:
        root = _copy(crystals_bundle, tmp_path / name, hits_only=True)
        b = Bundle.open(root)
        b.section("confidence").update({"temperature": 1.0, "crystals_threshold": threshold})
        b.save()
        with open_pipeline(root, backend="onnxruntime", threads=1) as pipe:
            assert pipe.crystal_settings is not None and pipe.crystal_settings.hits_only
            assert pipe.confidence.crystals_threshold == threshold
            return pipe.score(images)

    assert CrystalSettings.from_section({"input_size": 64}).hits_only  # the default
    everywhere = scored("all-hits", 0.0)  # every drop is a crystals hit
    assert all(r.crystals_hit and r.crystals for r in everywhere)
    # A threshold between the untrained classifier's crystals scores: some hits, some not.
    middle = float(np.median([r.scores["crystals"] for r in everywhere]))
    some = scored("some-hits", middle)
    assert {r.crystals_hit for r in some} == {True, False}
    for searched, gated in zip(everywhere, some, strict=True):
        # A hit gets the same boxes as when every drop is searched; any other drop none.
        assert gated.crystals == (searched.crystals if gated.crystals_hit else [])


def test_pipeline_stages_are_bench_stages() -> None:
    from edgecrystal.bench.report import MODEL_STAGES
    from edgecrystal.bench.report import STAGES as BENCH_STAGES

    assert BENCH_STAGES[:-1] == STAGES and BENCH_STAGES[-1] == "write"
    assert set(MODEL_STAGES) <= set(STAGES)


def test_at_the_classifiers_size_the_classifiers_crop_is_reused(fast_bundle: Path,
                                                                tmp_path: Path) -> None:
    """The shipped crystal model reads the classifier's crop (the same input size): the same
    specks are boxed as by the fixture's own size, whose crop is cut again at 40 px."""
    from onnx_fixtures import CLASSIFIER_SIZE, _write_fp32, crystals_graph

    root = _copy(fast_bundle, tmp_path)
    b = Bundle.open(root)
    b.section("crystals").update({"model": "crystals.keras", "input_size": CLASSIFIER_SIZE,
                                  "threshold": 0.5, "hits_only": False,
                                  "imported": {"format": "ONNX (test)"}})
    _write_fp32(b, "crystals", crystals_graph(CLASSIFIER_SIZE), CLASSIFIER_SIZE)
    b.save()
    image = _specks(tmp_path / "A01_1.png")
    with open_pipeline(root, backend="onnxruntime", threads=1) as pipe:
        assert pipe.crystal_settings is not None
        assert pipe.crystal_settings.input_size == pipe.classifier_size == CLASSIFIER_SIZE
        (r,) = pipe.score([image])
    assert r.crystals is not None and len(r.crystals) == len(SPECKS)
    for (x, y), box in zip(sorted(SPECKS), sorted(c.box for c in r.crystals), strict=True):
        assert x - 4 <= box[0] < box[2] <= x + SPECK + 4
        assert y - 4 <= box[1] < box[3] <= y + SPECK + 4



@pytest.mark.slow  # TF-free but seconds long (a bench run in a subprocess)
def test_bench_times_the_crystal_stage(crystals_bundle: Path, tmp_path: Path) -> None:
    import subprocess
    import sys

    out = tmp_path / "bench.json"
    done = subprocess.run([sys.executable, "-m", "edgecrystal", "bench", str(crystals_bundle),
                           "--backend", "onnxruntime", "--precision", "fp32", "--iterations",
                           "4", "--warmup", "1", "--count", "2", "--json", str(out)],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    (run,) = json.loads(out.read_text())["runs"]
    assert run["latency_ms"]["crystals"]["median"] > 0 and run["crystals_cost"] > 0


def test_the_crystal_model_loads_on_first_use(crystals_bundle: Path) -> None:
    """Opening the session chooses the crystal runner but loads nothing (the fingerprint and
    the description cost no model), as for the other models."""
    with open_pipeline(crystals_bundle, backend="onnxruntime", threads=1) as pipe:
        assert pipe.crystals is not None and not pipe.crystals.active
        pipe.activate()
        assert pipe.crystals.active


@pytest.mark.trt_api
def test_tensorrt_runs_the_crystal_model_through_the_same_selection(
        crystals_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a (fake) TensorRT GPU the session builds and opens an engine for the crystal model
    too, and the boxes are ONNX Runtime's."""
    from fakes.cuda import FakeGpu, hide, install_cuda_python
    from fakes.tensorrt import install_tensorrt

    from edgecrystal.runtime.tensorrt_runner import TensorRTRunner

    image = _specks(tmp_path / "A01_1.png")
    with open_pipeline(crystals_bundle, backend="onnxruntime", threads=1) as pipe:
        (reference,) = pipe.score([image])
    root = _copy(crystals_bundle, tmp_path)
    gpu = FakeGpu(driver=12060)
    install_tensorrt(monkeypatch, "10.3", gpu)
    install_cuda_python(monkeypatch, gpu, "12.6")
    hide(monkeypatch, "pycuda", "pycuda.driver", "pycuda.autoinit")
    with open_pipeline(root, backend="tensorrt", precision="fp32") as pipe:
        assert pipe.selection is not None and pipe.selection.backend == "tensorrt"
        assert "crystals" in pipe.selection.reason  # built with the others
        assert isinstance(pipe.crystals, TensorRTRunner)
        (r,) = pipe.score([image])
    assert r.crystals is not None and reference.crystals is not None
    assert [c.box for c in r.crystals] == [c.box for c in reference.crystals]


def test_the_crystal_model_may_go_on_a_dla_core() -> None:
    """bench --dla and serve's dla_core name the crystal model like the others."""
    from edgecrystal.cli.bench import _dla_cores
    from edgecrystal.daemon.config import _dla_cores as config_dla_cores
    from edgecrystal.errors import UsageError

    assert _dla_cores(["crystals=1", "finder=0"]) == (("crystals", 1), ("finder", 0))
    assert config_dla_cores({"crystals": 0}) == (("crystals", 0),)
    with pytest.raises(UsageError, match="finder, classifier, crystals"):
        _dla_cores(["crystal=0"])
