"""The shipped crystal model (edgecrystal/pretrained/crystals, the start of `train crystals --init
default`; not in the default bundle): the section the runtime reads, and its ONNX FP32 variant
on ONNX Runtime marking crystals on synthetic wells it never saw."""

from __future__ import annotations

import numpy as np

from edgecrystal import preprocess
from edgecrystal.bundle import Bundle
from edgecrystal.pretrained import bundle_path, default_bundle_path
from edgecrystal.runtime.onnxruntime_runner import OnnxRuntimeRunner
from edgecrystal.synth.generate import image_rng
from edgecrystal.synth.scene import render_any_crystals
from edgecrystal.train.crystals import crop_target


def test_section_follows_the_contract() -> None:
    bundle = Bundle.open(bundle_path("crystals"))
    section = bundle.require("crystals")
    assert section["model"] == "crystals.keras" and bundle.model_file("crystals").is_file()
    # 128 px, made beside the 128-px classifier; the 192-px classifier shipped since crops the
    # same drop region, which the crystal stage cuts again at 128 (Pipeline._crystal_crop).
    default = Bundle.open(default_bundle_path())
    assert section["input_size"] == 128 < default.require("classifier")["input_size"]
    assert not default.has("crystals")  # not scored by default: see docs/training.md
    assert 0.0 < section["threshold"] < 1.0 and section["min_area"] >= 1
    provenance = section["provenance"]
    assert {"command", "seed", "data", "trained", "metrics"} <= set(provenance)
    fp32 = bundle.variant("crystals", "fp32")
    assert fp32["output"] == "crystals" and fp32["input_dtype"] == "uint8"


def test_fp32_variant_marks_crystals_more_than_the_rest_of_the_drop() -> None:
    """On unseen synthetic crystal wells (a seed no training set used), the crystal pixels'
    mean probability is well above the rest of the drop's."""
    bundle = Bundle.open(bundle_path("crystals"))
    size = int(bundle.require("crystals")["input_size"])
    finder_size = int(bundle.require("finder")["input_size"])
    runner = OnnxRuntimeRunner(bundle.onnx_variant("crystals", "fp32"), threads=1)
    crops, targets, drops = [], [], []
    for i in range(8):
        rgb, drop, crystals, _ = render_any_crystals(image_rng(77025, i), 480, 360, "crystals",
                                                     "random")
        crop = preprocess.crop_drop(rgb, drop.astype(np.float32), size, threshold=0.5,
                                    finder_size=finder_size)
        crops.append(crop.pixels)
        targets.append(crop_target(crystals, crop.box, size, cover=0.5) > 0)
        drops.append(crop_target(drop, crop.box, size, cover=0.5) > 0)
    prob = np.asarray(runner.predict(np.stack(crops)))
    assert prob.shape == (8, size, size, 1) and prob.min() >= 0.0 and prob.max() <= 1.0
    on = np.concatenate([p[..., 0][t] for p, t in zip(prob, targets, strict=True)])
    off = np.concatenate([p[..., 0][d & ~t] for p, t, d in
                          zip(prob, targets, drops, strict=True)])
    assert on.size > 50 and on.mean() > off.mean() + 0.2, (on.mean(), off.mean())


def test_init_default_is_the_shipped_crystal_model() -> None:
    """`train crystals --init default` fine-tunes this model, keeping its architecture."""
    from edgecrystal.train.crystals import init_overrides, init_source

    source = init_source("default")
    assert source == bundle_path("crystals")
    fixed = init_overrides(source, {"epochs": 3})
    section = Bundle.open(source).require("crystals")
    assert fixed == {"epochs": 3, "input_size": section["input_size"],
                     "base_filters": section["base_filters"], "depth": section["depth"],
                     "stem_stride": section["stem_stride"]}
