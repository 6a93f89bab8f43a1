#!/usr/bin/env python
"""CPU cost per image of the shipped finder against the first wave's `lite` finder (256 px,
base 16; untrained weights: the cost is the architecture's), FP32 and INT8 (u8 activations, what
ONNX Runtime runs on a CPU), ONNX Runtime, batch 1, 1 and 2 threads, on real photos.

    .venv/bin/python scripts/finder_cost.py WORK CALIBRATION_DATA [PHOTOS]

WORK gets both bundles (build-engines: FP32 export, INT8 calibrated on 64 images of
CALIBRATION_DATA) and cost.json. PHOTOS: a folder of photos to time on (default
../shared/real-samples).
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from edgecrystal import preprocess
from edgecrystal.bundle import Bundle
from edgecrystal.converters.build import Options, build_engines
from edgecrystal.imageio import read_image
from edgecrystal.pretrained import bundle_path
from edgecrystal.train import finder, loop, profiles

REPO = Path(__file__).resolve().parents[1]


def lite_bundle(root: Path) -> Path:
    hp = profiles.resolve("finder", "lite", {})
    bundle = Bundle.open(root, create=True)
    loop.save_clean(finder.build(hp), lambda: finder.build(hp), bundle.path("finder.keras"))
    bundle.register_file("finder.keras")
    bundle.meta["finder"] = {"model": "finder.keras", "input_size": hp.input_size,
                             "base_filters": hp.base_filters, "depth": hp.depth,
                             "threshold": 0.5, "profile": "lite"}
    bundle.save()
    return root


def time_model(path: Path, size: int, images: list[np.ndarray], threads: int) -> dict[str, float]:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    inputs = [preprocess.finder_input(rgb, size)[None] for rgb in images]
    for x in inputs[:3]:
        session.run(None, {name: x})
    seconds = []
    for _ in range(3):
        for x in inputs:
            start = time.perf_counter()
            session.run(None, {name: x})
            seconds.append(time.perf_counter() - start)
    return {"p50_ms": round(1000 * float(np.median(seconds)), 2),
            "mean_ms": round(1000 * float(np.mean(seconds)), 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("work", type=Path)
    ap.add_argument("calibration", type=Path)
    ap.add_argument("photos", type=Path, nargs="?", default=REPO.parent / "shared" / "real-samples")
    args = ap.parse_args()
    work, calibration, photos = args.work, args.calibration, args.photos
    work.mkdir(parents=True, exist_ok=True)
    for name in ("shipped", "lite"):
        if (work / name).exists():
            shutil.rmtree(work / name)
    shutil.copytree(bundle_path("finder"), work / "shipped")
    lite_bundle(work / "lite")
    for name in ("shipped", "lite"):
        build_engines(work / name, Options(precisions=("fp32", "int8"), calib=calibration,
                                           calib_count=64), log=print)
    images = [read_image(p) for p in sorted(photos.rglob("*.jp*g"))[:8]]
    out = {}
    for name in ("shipped", "lite"):
        bundle = Bundle.open(work / name)
        size = int(bundle.meta["finder"]["input_size"])
        for precision in ("fp32", "int8"):
            path = bundle.onnx_variant("finder", precision, "onnxruntime")
            for threads in (1, 2):
                key = f"{name} {precision} {threads} thread(s)"
                out[key] = {"file": path.name, "size_kb": path.stat().st_size // 1024,
                            **time_model(path, size, images, threads)}
                print(key, out[key], flush=True)
    (work / "cost.json").write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
