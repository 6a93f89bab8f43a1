"""`edgecrystal import onnx` on models made here with onnx.helper (PyTorch-style: NCHW float
input, mean/std outside the model), then the bundle through score, build-engines, verify, bench
and serve as a user runs them: subprocesses, real files, ONNX Runtime. No TensorFlow."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from edgecrystal.bundle import Bundle  # noqa: E402

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
CLASSES = "clear,crystals,precipitate,other"
SIZE = 48


def _edgecrystal(*args: str, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edgecrystal", *args], capture_output=True,
                          text=True, timeout=timeout)


def make_classifier(path: Path, *, softmax: bool = False, size: int = SIZE,
                    layout: str = "nchw", seed: int = 0) -> Path:
    """Conv 3x3 -> ReLU -> global average pool -> Gemm: four logits (or Softmax of them) from
    a float image normalised outside the model, as torch.onnx.export writes it."""
    rng = np.random.default_rng(seed)
    dims = [None, 3, size, size] if layout == "nchw" else [None, size, size, 3]
    nodes, first = [], "input"
    if layout == "nhwc":
        nodes.append(helper.make_node("Transpose", ["input"], ["x_nchw"], perm=[0, 3, 1, 2]))
        first = "x_nchw"
    inits = [numpy_helper.from_array(rng.normal(0, 0.08, (8, 3, 3, 3)).astype(np.float32), "w1"),
             numpy_helper.from_array(rng.normal(0, 0.1, 8).astype(np.float32), "b1"),
             numpy_helper.from_array(rng.normal(0, 1.0, (4, 8)).astype(np.float32), "w2"),
             numpy_helper.from_array(np.array([0.3, -0.2, 0.1, 0.0], np.float32), "b2")]
    nodes += [helper.make_node("Conv", [first, "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
              helper.make_node("Relu", ["c1"], ["r1"]),
              helper.make_node("GlobalAveragePool", ["r1"], ["gap"]),
              helper.make_node("Flatten", ["gap"], ["flat"], axis=1),
              helper.make_node("Gemm", ["flat", "w2", "b2"], ["logits"], transB=1)]
    out = "logits"
    if softmax:
        nodes.append(helper.make_node("Softmax", ["logits"], ["probs"], axis=1))
        out = "probs"
    graph = helper.make_graph(nodes, "foreign_classifier",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, dims)],
                              [helper.make_tensor_value_info(out, TensorProto.FLOAT, [None, 4])],
                              inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                              producer_name="onnx.helper test")
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def make_finder(path: Path, *, size: int = 64, channels: int = 1, stride: int = 1) -> Path:
    """1x1 conv to `channels` logit maps (NCHW) of 0..1 pixels: a bright drop (channel sum
    above 1.4) on a dark well scores high."""
    weights = np.zeros((channels, 3, 1, 1), np.float32)
    weights[:, :, 0, 0] = 4.0
    graph = helper.make_graph(
        [helper.make_node("Conv", ["image", "w", "b"], ["logit"], strides=[stride, stride])],
        "foreign_finder",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [None, 3, size, size])],
        [helper.make_tensor_value_info("logit", TensorProto.FLOAT,
                                       [None, channels, size // stride, size // stride])],
        [numpy_helper.from_array(weights, "w"),
         numpy_helper.from_array(np.full(channels, -5.5, np.float32), "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def own_scores(model: Path, rgb: np.ndarray, size: int, softmax: bool) -> np.ndarray:
    """What the original model says about an image, normalised the PyTorch way by hand."""
    import onnxruntime as ort

    from edgecrystal import preprocess

    crop = preprocess.full_image(rgb, size).pixels.astype(np.float32) / 255.0
    x = ((crop - np.array(MEAN, np.float32)) / np.array(STD, np.float32))
    x = x.transpose(2, 0, 1)[None]
    sess = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    out = sess.run(None, {"input": x.astype(np.float32)})[0][0].astype(np.float64)
    if softmax:
        out = np.exp(out - out.max())
        out /= out.sum()
    return out


def _wells(folder: Path, n: int, seed: int = 0) -> list[Path]:
    import cv2

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        img = np.full((120, 160, 3), int(rng.integers(30, 90)), np.uint8)
        colour = tuple(int(v) for v in rng.integers(120, 250, 3))
        cv2.circle(img, (80, 60), int(rng.integers(25, 45)), colour, -1)
        for _ in range(int(rng.integers(0, 12))):
            p = tuple(int(v) for v in rng.integers(30, 130, 2))
            cv2.line(img, p, (p[0] + 9, p[1] + 4), (10, 10, 10), 2)
        path = folder / f"A{i + 1:02d}_1.png"  # lossless: the test's pixels are the model's
        cv2.imwrite(str(path), img[..., ::-1])
        paths.append(path)
    return paths


def _import(bundle: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return _edgecrystal("import", "onnx", str(bundle), "--layout", "nchw",
                        "--mean", ",".join(map(str, MEAN)), "--std", ",".join(map(str, STD)),
                        "--classes", CLASSES, *extra)


@pytest.mark.slow  # TF-free but seconds long: the slow tier keeps the fast one under 2 min
@pytest.mark.parametrize("softmax", [False, True], ids=["logits", "probabilities"])
def test_imported_classifier_scored_by_score_matches_its_own_scores(tmp_path: Path,
                                                                   softmax: bool) -> None:
    from edgecrystal.imageio import read_image

    model = make_classifier(tmp_path / "foreign.onnx", softmax=softmax)
    bundle = tmp_path / "bundle"
    res = _import(bundle, "--classifier", str(model), "--crop", "none")
    assert res.returncode == 0, res.stderr
    meta = json.loads((bundle / "bundle.json").read_text())
    provenance = meta["classifier"]["imported"]
    assert provenance["output_kind"] == ("probabilities" if softmax else "logits")
    assert provenance["head_added"] == ("none" if softmax else "softmax")
    assert provenance["sha256"] == meta["files"]["imported/classifier.source.onnx"]
    assert provenance["normalisation"]["pixel_units"] == "0..1"
    assert meta["classifier"]["input_size"] == SIZE and meta["classifier"]["crop"] == "none"
    assert meta["onnx"]["classifier"]["fp32"]["parity"]["max_abs_diff"] < 1e-4

    images = _wells(tmp_path / "plate", 6)
    scored = _edgecrystal("score", str(bundle), str(tmp_path / "plate"), "--backend",
                          "onnxruntime")
    assert scored.returncode == 0, scored.stderr
    spread = []
    for path in images:
        record = json.loads(Path(f"{path}.edgecrystal.json").read_text())
        got = np.array([record["scores"][c] for c in CLASSES.split(",")])
        want = own_scores(model, read_image(path), SIZE, softmax=not softmax)
        assert np.abs(got - want).max() <= 0.02, (path.name, got, want)
        assert record["label"] == CLASSES.split(",")[int(np.argmax(want))]
        spread.append(got)
    # Scores that differ from image to image: the check above is not one of constants.
    assert np.ptp(np.array(spread), axis=0).max() > 0.05


def test_nhwc_bgr_caffe_style_model_is_wrapped_to_the_same_scores(tmp_path: Path) -> None:
    """0..255 means (Caffe), BGR order, NHWC input: the wrapped model equals the original fed
    by hand, which the import itself checks (parity in bundle.json) and this test repeats."""
    import onnxruntime as ort

    model = make_classifier(tmp_path / "caffe.onnx", layout="nhwc", seed=3)
    bundle = tmp_path / "b"
    res = _edgecrystal("import", "onnx", str(bundle), "--classifier", str(model), "--layout",
                       "nhwc", "--mean", "123.68,116.78,103.94", "--std", "58,57,57", "--bgr",
                       "--classes", CLASSES, "--crop", "none")
    assert res.returncode == 0, res.stderr
    meta = json.loads((bundle / "bundle.json").read_text())
    assert meta["classifier"]["imported"]["normalisation"]["pixel_units"] == "0..255"
    pixels = np.random.default_rng(1).integers(0, 256, (3, SIZE, SIZE, 3), dtype=np.uint8)
    by_hand = (pixels.astype(np.float32) - np.array([123.68, 116.78, 103.94], np.float32)) \
        / np.array([58, 57, 57], np.float32)
    original = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    logits = original.run(None, {"input": by_hand[..., ::-1].copy()})[0]
    want = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    wrapped = ort.InferenceSession(str(bundle / "onnx/classifier.fp32.onnx"),
                                   providers=["CPUExecutionProvider"])
    assert wrapped.get_inputs()[0].name == "pixels" and wrapped.get_inputs()[0].type == \
        "tensor(uint8)"
    got = wrapped.run(None, {"pixels": pixels})[0]
    np.testing.assert_allclose(got, want, atol=1e-5)


@pytest.mark.slow  # TF-free but seconds long: the slow tier keeps the fast one under 2 min
def test_finder_of_the_wrong_shape_is_one_line_error(tmp_path: Path) -> None:
    model = make_classifier(tmp_path / "c.onnx")
    two = make_finder(tmp_path / "two.onnx", channels=2)
    half = make_finder(tmp_path / "half.onnx", stride=2)
    res = _import(tmp_path / "b1", "--classifier", str(model), "--finder", str(two))
    assert res.returncode == 2
    assert "2 channels" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    res = _import(tmp_path / "b2", "--classifier", str(model), "--finder", str(half))
    assert res.returncode == 2
    assert "32x32 mask for a 64x64 input" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "b1" / "onnx" / "classifier.fp32.onnx").exists()


def test_crop_finder_without_finder_uses_the_shipped_one(tmp_path: Path) -> None:
    model = make_classifier(tmp_path / "c.onnx")
    res = _import(tmp_path / "b", "--classifier", str(model))
    assert res.returncode == 0, res.stderr
    bundle = Bundle.open(tmp_path / "b")
    assert bundle.require("finder")["adopted_from"] == "edgecrystal.pretrained/finder"
    assert bundle.crop == "finder"
    assert (tmp_path / "b" / bundle.variant("finder", "fp32")["file"]).is_file()


@pytest.mark.slow  # TF-free but seconds long: the slow tier keeps the fast one under 2 min
def test_bad_input_is_one_line_error(tmp_path: Path) -> None:
    model = make_classifier(tmp_path / "c.onnx")
    cases = {
        "gives 4 scores per image but --classes names 3": [
            "--classifier", str(model), "--crop", "none", "--classes", "a,b,c"],
        "has 48 channels in --layout nhwc": [
            "--classifier", str(model), "--crop", "none", "--layout", "nhwc"],
        "does not exist": ["--classifier", str(tmp_path / "nope.onnx"), "--crop", "none"],
        # A folder that exists used to be called missing too.
        f"--classifier {tmp_path} is a folder, not a file": [
            "--classifier", str(tmp_path), "--crop", "none"],
    }
    for expected, args in cases.items():
        res = _import(tmp_path / "b", *args)
        assert res.returncode == 2, (expected, res.stderr)
        assert expected in res.stderr, res.stderr
        assert len(res.stderr.strip().splitlines()) == 1, res.stderr
    not_onnx = tmp_path / "junk.onnx"
    not_onnx.write_bytes(b"not a model")
    res = _import(tmp_path / "b", "--classifier", str(not_onnx), "--crop", "none")
    assert res.returncode == 2 and "is not an ONNX model" in res.stderr


@pytest.mark.slow  # TF-free but seconds long: the slow tier keeps the fast one under 2 min
def test_imported_bundle_through_build_engines_verify_bench_and_serve(tmp_path: Path) -> None:
    """The whole deployment chain, unchanged, on an imported finder + classifier."""
    classifier = make_classifier(tmp_path / "c.onnx")
    finder = make_finder(tmp_path / "f.onnx")
    bundle = tmp_path / "bundle"
    res = _import(bundle, "--classifier", str(classifier), "--finder", str(finder),
                  "--finder-mean", "0,0,0", "--finder-std", "1,1,1")
    assert res.returncode == 0, res.stderr
    meta = json.loads((bundle / "bundle.json").read_text())
    assert meta["finder"]["imported"]["head_added"] == "sigmoid"
    assert meta["classifier"]["crop"] == "finder"

    data = tmp_path / "data"
    made = _edgecrystal("synth", str(data), "--n", "12", "--size", "128")
    assert made.returncode == 0, made.stderr
    built = _edgecrystal("build-engines", str(bundle), "--calib", str(data), "--calib-count",
                         "8")
    assert built.returncode == 0, built.stderr
    meta = json.loads((bundle / "bundle.json").read_text())
    for model in ("finder", "classifier"):
        variants = meta["onnx"][model]
        assert {"fp32", "fp16", "int8", "int8-u8"} <= set(variants), variants.keys()
        assert variants["fp16"]["check"]["max_abs_diff"] < 2e-2
    assert meta["calibration"]["classifier"]["images"] == 8

    verified = _edgecrystal("verify", str(bundle), "--data", str(data), "--n", "8", "--json",
                            str(tmp_path / "verify.json"))
    assert verified.returncode == 0, verified.stderr
    report = json.loads((tmp_path / "verify.json").read_text())
    rows = report["models"]["classifier"]["variants"]
    assert report["models"]["classifier"]["reference"] == "onnx-fp32"
    assert rows["onnx-int8-u8"]["max_abs_diff"] < 0.1 and rows["onnx-fp16"]["agreement"] == 1.0

    plate = tmp_path / "plate"
    images = _wells(plate, 4, seed=5)
    config = tmp_path / "serve.toml"
    config.write_text(f'bundle = {json.dumps(str(bundle))}\nwatch = [{json.dumps(str(plate))}]\n'
                      'backend = "onnxruntime"\nprecision = "int8"\n')
    served = _edgecrystal("serve", "--config", str(config), "--once")
    assert served.returncode == 0, served.stderr
    for path in images:
        record = json.loads(Path(f"{path}.edgecrystal.json").read_text())
        assert record["status"] == "ok" and record["model"]["precision"] == "int8"
        # The imported finder found the bright drop (centre 80,60, radius <= 45), not the well.
        x0, y0, x1, y1 = record["drop"]["box"]
        assert record["drop"]["found"] and 25 <= x0 < 80 < x1 <= 135 and 5 <= y0 < 60 < y1 <= 115

    bench = _edgecrystal("bench", str(bundle), "--backend", "onnxruntime", "--precision",
                         "fp32,int8", "--iterations", "3", "--warmup", "1", "--images",
                         str(plate), "--json", str(tmp_path / "bench.json"))
    assert bench.returncode == 0, bench.stderr
    runs = json.loads((tmp_path / "bench.json").read_text())
    assert "onnxruntime" in json.dumps(runs) and "int8" in json.dumps(runs)
