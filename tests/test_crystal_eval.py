"""`edgecrystal evaluate DATA --crystals CSV` (issue 25): the crystal model's boxes against drawn
ones, through the deployed path (the fixture crystal model on real ONNX Runtime), on a small CSV
whose answers are known: dark specks the fixture model boxes, one drawn box where there is
nothing, a doubtful box (ignored by default), a `none` image with a speck (a false alarm)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgecrystal.crystal_boxes import CrystalBox, iou
from edgecrystal.crystal_eval import match
from edgecrystal.crystal_truth import TrueBox
from edgecrystal.evaluate import evaluate

SIDE = 160
SPECK = 12


def _image(path: Path, specks: list[tuple[int, int]]) -> Path:
    import cv2

    img = np.full((SIDE, SIDE, 3), 90, np.uint8)
    for x, y in specks:
        img[y:y + SPECK, x:x + SPECK] = 0
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), img)
    return path


def _box(x: int, y: int) -> str:
    return f"{x},{y},{x + SPECK},{y + SPECK}"


def _data(root: Path) -> Path:
    """Four images and their CSV; the answers in the tests below."""
    _image(root / "a.png", [(30, 40), (110, 100)])  # both drawn; a third drawn box on nothing
    _image(root / "b.png", [])  # checked: no crystal
    _image(root / "c.png", [(70, 70)])  # drawn as doubtful
    _image(root / "d.png", [(50, 90)])  # marked none, but the model boxes its speck
    rows = ["path,x0,y0,x1,y1,kind,certainty,note",
            f"a.png,{_box(30, 40)},single,sure,", f"a.png,{_box(110, 100)},cluster,sure,",
            f"a.png,{_box(60, 120)},single,sure,\"drawn where nothing is\"",
            "b.png,,,,,none,sure,", f"c.png,{_box(70, 70)},single,doubtful,could be debris",
            "d.png,,,,,none,sure,"]
    (root / "crystals.csv").write_text("\n".join(rows) + "\n")
    return root / "crystals.csv"


def test_matching_rules() -> None:
    pred = [CrystalBox((0, 0, 10, 10), 100, 0.9), CrystalBox((50, 50, 60, 60), 100, 0.8),
            CrystalBox((100, 100, 110, 110), 100, 0.7)]
    sure = [TrueBox((0, 0, 10, 12), "single", "sure"), TrueBox((200, 200, 210, 210), "x", "sure")]
    doubtful = [TrueBox((51, 51, 61, 61), "single", "doubtful")]
    assert iou((0, 0, 10, 10), (0, 0, 10, 12)) == pytest.approx(100 / 120)
    assert iou((0, 0, 10, 10), (10, 0, 20, 10)) == 0.0
    m = match(pred, sure, doubtful, 0.5)
    assert (m.tp, m.fp, m.fn, m.ignored) == (1, 1, 1, 1)
    # A true box is matched once: a second prediction on it is a false positive.
    twice = match([pred[0], CrystalBox((0, 1, 10, 11), 90, 0.5)], sure[:1], [], 0.3)
    assert (twice.tp, twice.fp, twice.fn) == (1, 1, 0)


def test_evaluate_crystals_known_answers(crystals_bundle: Path, tmp_path: Path) -> None:
    csv_path = _data(tmp_path / "data")
    report = evaluate(tmp_path / "data", crystals_bundle, tmp_path / "ev",
                      crystals=csv_path)
    c = report["crystals"]
    assert "classifier" not in report  # DATA has no labels: the crystal boxes only
    assert c["runtime"] == "onnxruntime fp32" and c["certainty"] == "sure"
    assert (c["images"], c["true_boxes"], c["ignored_regions"]) == (4, 3, 1)
    assert c["predicted_boxes"] == 4  # a: 2, c: 1, d: 1
    for t in ("0.3", "0.5"):
        r = c["by_iou"][t]
        assert (r["tp"], r["fp"], r["fn"], r["ignored"]) == (2, 1, 1, 1), (t, r)
        assert r["precision"] == pytest.approx(2 / 3) and r["recall"] == pytest.approx(2 / 3)
    assert c["count_mae"] == pytest.approx((1 + 0 + 1 + 1) / 4)
    assert (c["none_images"], c["boxes_on_none_images"], c["none_images_with_boxes"]) == \
        (2, 1, 1)
    assert [row["image"] for row in c["per_image"]] == ["a.png", "b.png", "c.png", "d.png"]
    md = (tmp_path / "ev" / "report.md").read_text()
    assert "## Crystal boxes" in md and "| 0.3 | 2 | 1 | 1 | 1 | 0.667 | 0.667 |" in md
    assert "Boxes on none images (checked to hold no crystal): 1 on 1 of 2 images" in md
    assert json.loads((tmp_path / "ev" / "report.json").read_text())["crystals"]["count_mae"] \
        == pytest.approx(0.75)
    import cv2

    sheet = cv2.imread(str(tmp_path / "ev" / "crystals.png"))
    assert sheet is not None and sheet.shape[1] >= 4 * 100
    # Magenta predicted boxes are drawn on it.
    assert ((sheet[..., 0] > 200) & (sheet[..., 1] < 60) & (sheet[..., 2] > 200)).any()


def test_all_certainties_count_the_doubtful_box(crystals_bundle: Path, tmp_path: Path) -> None:
    csv_path = _data(tmp_path / "data")
    c = evaluate(tmp_path / "data", crystals_bundle, tmp_path / "ev", crystals=csv_path,
                 crystal_certainty="all")["crystals"]
    r = c["by_iou"]["0.3"]
    assert (r["tp"], r["fp"], r["fn"], r["ignored"]) == (3, 1, 1, 0)
    assert c["true_boxes"] == 4 and c["count_mae"] == pytest.approx((1 + 0 + 0 + 1) / 4)


def test_cli_and_its_one_line_errors(crystals_bundle: Path, fast_bundle: Path,
                                     tmp_path: Path) -> None:
    csv_path = _data(tmp_path / "data")

    def run(bundle: Path, csv_arg: Path, *extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "edgecrystal", "evaluate",
                               str(tmp_path / "data"), "--bundle", str(bundle), "--out",
                               str(tmp_path / "ev"), "--crystals", str(csv_arg), *extra],
                              capture_output=True, text=True, timeout=120)

    done = run(crystals_bundle, csv_path)
    assert done.returncode == 0, done.stderr
    assert "| 0.5 | 2 | 1 | 1 | 1 | 0.667 | 0.667 |" in done.stdout
    no_model = run(fast_bundle, csv_path)
    assert no_model.returncode != 0 and "has no crystal model" in no_model.stderr
    bad = tmp_path / "bad.csv"
    bad.write_text("path,x0,y0,x1,y1,kind,certainty\na.png,5,5,2,9,single,sure\n")
    refused = run(crystals_bundle, bad)
    assert refused.returncode != 0 and "bad.csv:2: box (5, 5, 2, 9) is empty" in refused.stderr
    assert "Traceback" not in refused.stderr
    unknown = run(crystals_bundle, csv_path, "--crystal-certainty", "maybe")
    assert unknown.returncode != 0 and "--crystal-certainty must be one of" in unknown.stderr


def test_synthetic_truth_from_crystal_masks(crystals_bundle: Path, tmp_path: Path) -> None:
    """`--crystals masks`: labels.csv's `crystals` column names each image's crystal mask
    (what synth writes); the true boxes are its components, an empty mask a none image."""
    import cv2

    root = tmp_path / "synth"
    _image(root / "images" / "a.png", [(30, 40), (110, 100)])
    _image(root / "images" / "b.png", [])
    _image(root / "images" / "d.png", [(50, 90)])  # its mask is empty: a false alarm
    masks = {name: np.zeros((SIDE, SIDE), np.uint8) for name in ("a", "b", "d")}
    for x, y in ((30, 40), (110, 100), (60, 120)):  # the third: a crystal the model misses
        masks["a"][y:y + SPECK, x:x + SPECK] = 255
    (root / "crystals").mkdir()
    for name, mask in masks.items():
        cv2.imwrite(str(root / "crystals" / f"{name}.png"), mask)
    (root / "labels.csv").write_text("image,label,crystals\n" + "".join(
        f"images/{n}.png,,crystals/{n}.png\n" for n in masks))
    report = evaluate(root, crystals_bundle, tmp_path / "ev", crystals="masks")
    c = report["crystals"]
    assert c["truth"] == f"crystal masks of {root}" and c["true_boxes"] == 3
    r = c["by_iou"]["0.5"]
    assert (r["tp"], r["fp"], r["fn"], r["ignored"]) == (2, 1, 1, 0)
    assert (c["none_images"], c["boxes_on_none_images"]) == (2, 1)
    assert c["count_mae"] == pytest.approx((1 + 0 + 1) / 3)
    bare = tmp_path / "bare"
    _image(bare / "images" / "a.png", [])
    (bare / "labels.csv").write_text("image,label\nimages/a.png,clear\n")
    from edgecrystal.errors import DataError

    with pytest.raises(DataError, match="names no crystal masks"):
        evaluate(bare, crystals_bundle, tmp_path / "ev2", crystals="masks")
