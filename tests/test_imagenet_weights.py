"""`--imagenet-weights imagenet`: Keras' own download and cache; offline, one line that says to
pass a local file. And the MobileNetV3-Small backbone next to Inception-V3."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgecrystal import models
from edgecrystal.errors import UsageError

pytestmark = pytest.mark.slow


def test_imagenet_uses_the_keras_cache_when_the_file_is_there(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch
                                                             ) -> None:
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    cached = tmp_path / "keras" / "models" / models.NOTOP_FILES["inception_v3"]
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"stand-in: only its presence is read here")
    assert models.resolve_imagenet_weights("imagenet") == cached
    local = tmp_path / "mine.h5"
    with pytest.raises(UsageError, match="does not exist"):
        models.resolve_imagenet_weights(local)


def test_imagenet_offline_is_one_line_saying_pass_a_local_file(tmp_path: Path) -> None:
    data = tmp_path / "data"
    made = subprocess.run([sys.executable, "-m", "edgecrystal", "synth", str(data), "--n", "8",
                           "--size", "96"], capture_output=True, text=True, timeout=300)
    assert made.returncode == 0, made.stderr
    env = {**os.environ, "KERAS_HOME": str(tmp_path / "empty-keras-home")}
    res = subprocess.run([sys.executable, "-m", "edgecrystal", "train", "classifier", str(data),
                          "--bundle", str(tmp_path / "b"), "--crop", "none", "--profile", "tiny",
                          "--imagenet-weights", "imagenet"],
                         capture_output=True, text=True, timeout=600, env=env)
    if res.returncode == 0:
        pytest.skip("this machine reaches Keras' download server: nothing offline to test")
    assert res.returncode == 2, res.stderr
    lines = [ln for ln in res.stderr.strip().splitlines() if ln.startswith("edgecrystal:")]
    assert len(lines) == 1 and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert "could not download the ImageNet weights" in lines[0]
    assert ("--imagenet-weights PATH/inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5"
            in lines[0])
    assert not (tmp_path / "b" / "classifier.keras").exists()


def test_mobilenet_v3_small_backbone_is_a_fraction_of_inception() -> None:
    size = 96
    mobile = models.build_classifier(4, size, backbone="mobilenet_v3_small")
    inception = models.build_classifier(4, size)
    probs = mobile.predict(np.zeros((2, size, size, 3), np.uint8), verbose=0)
    assert probs.shape == (2, 4) and np.allclose(probs.sum(1), 1, atol=1e-4)
    assert models.count_flops(inception) / models.count_flops(mobile) > 10
    with pytest.raises(UsageError, match="unknown classifier backbone"):
        models.build_classifier(4, size, backbone="resnet")
