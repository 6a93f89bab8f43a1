"""`edgecrystal import savedmodel` on a MARCO look-alike the test builds: a serving signature
that takes `image_bytes` (encoded JPEGs), decodes and resizes them inside (tf.map_fn), runs a
small network and returns `classes` (MARCO's names and order) and `scores` (softmax). The round
trip: TensorFlow on the bytes vs ONNX FP32 and INT8 of the imported bundle on the pixels."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow

SIZE = 64
MARCO_CLASSES = [b"Crystals", b"Other", b"Precipitate", b"Clear"]
BUNDLE_CLASSES = ["clear", "crystals", "precipitate", "other"]


def _edgecrystal(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edgecrystal", *args], capture_output=True,
                          text=True, timeout=900)


def make_lookalike(folder: Path, *, decode: bool = True) -> Path:
    """A SavedModel with MARCO's signature shape. decode=False: a string model without image
    decoding (the importer must say it cannot cut it)."""
    import tensorflow as tf

    rng = np.random.default_rng(0)

    class LookAlike(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.kernel = tf.Variable(rng.normal(0, 0.3, (3, 3, 3, 8)).astype(np.float32))
            self.dense = tf.Variable(rng.normal(0, 1.0, (8, 4)).astype(np.float32))
            self.bias = tf.Variable(np.array([0.2, -0.1, 0.0, 0.1], np.float32))
            self.names = tf.constant(MARCO_CLASSES)

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
        def serve(self, image_bytes: tf.Tensor) -> dict[str, tf.Tensor]:
            def decode_one(blob: tf.Tensor) -> tf.Tensor:
                image = tf.io.decode_jpeg(blob, channels=3)
                image = tf.image.convert_image_dtype(image, tf.float32)  # 0..1
                return tf.image.resize(image, [SIZE, SIZE])

            if decode:
                images = tf.map_fn(decode_one, image_bytes, fn_output_signature=tf.TensorSpec(
                    [SIZE, SIZE, 3], tf.float32))
            else:
                lengths = tf.cast(tf.strings.length(image_bytes), tf.float32)
                images = tf.ones([1, SIZE, SIZE, 3]) * lengths[:, None, None, None]
            x = (images - 0.5) * 2.0  # Inception's -1..1
            x = tf.nn.relu(tf.nn.conv2d(x, self.kernel, 1, "SAME"))
            logits = tf.reduce_mean(x, axis=[1, 2]) @ self.dense + self.bias
            batch = tf.shape(image_bytes)[0]
            return {"classes": tf.tile(self.names[None], [batch, 1]),
                    "scores": tf.nn.softmax(logits)}

    module = LookAlike()
    tf.saved_model.save(module, str(folder), signatures={"serving_default": module.serve})
    return folder


def _jpegs(folder: Path, n: int) -> list[Path]:
    import cv2

    from edgecrystal.converters.check_pictures import synthetic_wells

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, rgb in enumerate(synthetic_wells(n, seed=7, size=SIZE)):
        path = folder / f"A{i + 1:02d}_1.jpg"
        cv2.imwrite(str(path), rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
        paths.append(path)
    return paths


def test_savedmodel_round_trip_onnx_fp32_and_int8_against_tensorflow(tmp_path: Path) -> None:
    import onnxruntime as ort
    import tensorflow as tf

    model_dir = make_lookalike(tmp_path / "savedmodel")
    bundle = tmp_path / "bundle"
    res = _edgecrystal("import", "savedmodel", str(bundle), "--classifier", str(model_dir),
                       "--crop", "none")
    assert res.returncode == 0, res.stderr
    meta = json.loads((bundle / "bundle.json").read_text())
    provenance = meta["classifier"]["imported"]
    assert meta["classes"] == BUNDLE_CLASSES
    assert provenance["model_classes"] == ["Crystals", "Other", "Precipitate", "Clear"]
    assert provenance["class_order"] == [3, 0, 2, 1]
    assert provenance["signature_input"] == "image_bytes"
    assert provenance["output_kind"] == "probabilities" and provenance["head_added"] == "none"
    np.testing.assert_allclose(provenance["measured_scaling"]["scale"], [1 / 255] * 3,
                               rtol=1e-3)
    assert provenance["tensorflow_check"]["max_abs_diff"] < 1e-3

    data = tmp_path / "calib"
    made = _edgecrystal("synth", str(data), "--n", "12", "--size", "128")
    assert made.returncode == 0, made.stderr
    built = _edgecrystal("build-engines", str(bundle), "--calib", str(data), "--calib-count",
                         "8")
    assert built.returncode == 0, built.stderr

    # TensorFlow on the encoded bytes (the model as published) vs ONNX on the pixels TF decoded.
    images = _jpegs(tmp_path / "plate", 10)
    blobs = [p.read_bytes() for p in images]
    signature = tf.saved_model.load(str(model_dir)).signatures["serving_default"]
    tf_scores = signature(image_bytes=tf.constant(blobs))["scores"].numpy()[:, [3, 0, 2, 1]]
    pixels = np.stack([tf.io.decode_jpeg(b, channels=3).numpy() for b in blobs])
    meta = json.loads((bundle / "bundle.json").read_text())
    results = {}
    for variant in ("fp32", "int8", "int8-u8"):
        sess = ort.InferenceSession(str(bundle / meta["onnx"]["classifier"][variant]["file"]),
                                    providers=["CPUExecutionProvider"])
        results[variant] = sess.run(None, {"pixels": pixels})[0]
    assert np.abs(results["fp32"] - tf_scores).max() < 1e-4
    assert np.ptp(tf_scores, axis=0).max() > 0.05  # scores that differ between images
    for variant in ("int8", "int8-u8"):
        assert np.abs(results[variant] - tf_scores).max() < 0.05, variant
        assert np.mean(results[variant].argmax(1) == tf_scores.argmax(1)) >= 0.8, variant

    # The bundle as the imager scores it: files in, result files out, TF's numbers.
    scored = _edgecrystal("score", str(bundle), str(tmp_path / "plate"), "--backend",
                          "onnxruntime")
    assert scored.returncode == 0, scored.stderr
    for path, want in zip(images, tf_scores, strict=True):
        record = json.loads(Path(f"{path}.edgecrystal.json").read_text())
        got = np.array([record["scores"][c] for c in BUNDLE_CLASSES])
        assert np.abs(got - want).max() <= 0.02, (path.name, got, want)


def test_signature_without_image_decoding_is_one_line_error(tmp_path: Path) -> None:
    model_dir = make_lookalike(tmp_path / "nodecode", decode=False)
    res = _edgecrystal("import", "savedmodel", str(tmp_path / "b"), "--classifier",
                       str(model_dir), "--crop", "none")
    assert res.returncode == 2, res.stderr
    line = res.stderr.strip()
    assert len(line.splitlines()) == 1, line
    assert "no cut found in signature serving_default: no image decoding" in line
    assert "its input image_bytes feeds" in line and "StringLength" in line
