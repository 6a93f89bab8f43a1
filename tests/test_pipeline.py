"""finder -> crop -> classifier on real files with real ONNX Runtime sessions."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from edgecrystal.bundle import Bundle
from edgecrystal.imageio import DEFAULT_MAX_PIXELS
from edgecrystal.pipeline import Pipeline
from edgecrystal.session import open_pipeline


def _well(path: Path, seed: int, w: int = 200, h: int = 150) -> Path:
    import cv2

    rng = np.random.default_rng(seed)
    img = np.full((h, w, 3), int(rng.integers(50, 100)), np.uint8)
    cv2.ellipse(img, (w // 2, h // 2), (w // 3, h // 3), 0, 0, 360, (210, 190, 170), -1)
    cv2.imwrite(str(path), img)
    return path


def _pipeline(root: Path, outlines: bool = False, max_pixels: int = DEFAULT_MAX_PIXELS
              ) -> Pipeline:
    return open_pipeline(root, backend="onnxruntime", threads=1, outlines=outlines,
                         max_pixels=max_pixels)


def test_batch_with_a_broken_image_goes_on(fast_bundle: Path, tmp_path: Path) -> None:
    paths = [_well(tmp_path / f"A0{i}_1.jpg", i) for i in range(1, 4)]
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 truncated")
    with _pipeline(fast_bundle, outlines=True) as pipe:
        results = pipe.score([paths[0], broken, *paths[1:]])
        classes = pipe.classes
        # The models that ran: the fp32 ONNX files, through ONNX Runtime.
        assert pipe.model.fingerprint == Bundle.open(fast_bundle).runtime_fingerprint(
            "onnxruntime", "fp32")
    assert [r.path for r in results] == [paths[0], broken, *paths[1:]]
    bad = results[1]
    assert bad.status == "error" and bad.error_kind in ("truncated", "not_an_image")
    assert bad.error_reason and bad.label is None
    for r in [results[0], *results[2:]]:
        assert r.ok
        assert set(r.scores) == set(classes)
        assert abs(sum(r.scores.values()) - 1.0) < 1e-4
        assert r.label == max(r.scores, key=r.scores.get)
        assert (r.width, r.height) == (200, 150)
        # The fixture finder marks the light ellipse (centre 100,75, half-axes 66,50): its box,
        # grown by the 5 % margin, and its area.
        assert r.found and r.outline is not None
        x0, y0, x1, y1 = r.box
        for got, want in zip((x0, y0, x1, y1), (27, 20, 173, 130), strict=True):
            assert abs(got - want) <= 8, r.box
        assert abs(r.area_px - np.pi * 66 * 50) < 0.2 * np.pi * 66 * 50
        assert set(r.timings_ms) == {"read", "finder", "crop", "classifier"}
        assert r.sha256 and r.stat is not None and r.preview is not None


def test_same_image_same_answer_alone_or_in_a_batch(fast_bundle: Path, tmp_path: Path) -> None:
    paths = [_well(tmp_path / f"B0{i}.png", 10 + i) for i in range(4)]
    with _pipeline(fast_bundle) as pipe:
        together = pipe.score(paths)
        alone = pipe.score(paths[2:3])[0]
    assert alone.box == together[2].box
    for c, p in alone.scores.items():
        assert abs(p - together[2].scores[c]) < 1e-5


def test_crop_mode_none_skips_the_finder(fast_bundle: Path, tmp_path: Path) -> None:
    root = tmp_path / "bundle"
    shutil.copytree(fast_bundle, root)
    meta = json.loads((root / "bundle.json").read_text())
    meta["classifier"]["crop"] = "none"
    (root / "bundle.json").write_text(json.dumps(meta))
    path = _well(tmp_path / "C01.jpg", 3)
    with _pipeline(root) as pipe:
        assert pipe.finder is None
        r = pipe.score([path])[0]
    assert r.ok and not r.found and r.box == (0, 0, 200, 150)
    assert r.timings_ms["finder"] == 0.0


def test_pixel_limit_refuses_before_decoding(fast_bundle: Path, tmp_path: Path) -> None:
    path = _well(tmp_path / "big.jpg", 4)
    with _pipeline(fast_bundle, max_pixels=100 * 100) as pipe:
        r = pipe.score([path])[0]
    assert r.error_kind == "too_large"


def test_missing_file_is_an_error_not_a_crash(fast_bundle: Path, tmp_path: Path) -> None:
    with _pipeline(fast_bundle) as pipe:
        r = pipe.score([tmp_path / "nothere.jpg"])[0]
    assert r.error_kind == "missing" and r.stat is None
