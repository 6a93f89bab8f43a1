#!/usr/bin/env python
"""Which classifier learns the synthetic classes within the demo's CPU budget? Evidence for the
demo's recipe (docs/training.md, "The demo's classifier").

    python scripts/classifier_backbones.py TRAIN TEST [--size 96] [--epochs 12]
        [--backbones inception_v3,mobilenet_v3_small] [--train-images N] [--latency]

TRAIN and TEST are synthetic data sets with masks (`edgecrystal synth`). Every arm sees the same
ground-truth-mask crops (precomputed once), trains with the project's own loop (Adam, the
classifier augmentation, fixed epochs, no early stopping) and is scored on TEST: macro ROC AUC
and accuracy, seconds of training. Also the hand-feature baseline of scripts/synth_baseline.py on
the same split (are the classes separable at all?). With --latency: FLOPs and ONNX Runtime CPU
latency, FP32 and INT8 (u8 Q/DQ, entropy calibration on training crops), batch 1, per backbone
at the same input size.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def crops(folder: Path, size: int, limit: int | None = None) -> tuple[np.ndarray, np.ndarray,
                                                                      list[str], list]:
    from edgecrystal.dataset import load_dataset
    from edgecrystal.train import data

    ds = load_dataset(folder)
    records = data.labelled_records(ds)
    if limit:
        records = records[:limit]
    samples = data.load_samples(records, masks=True)
    classes = ["clear", "crystals", "precipitate", "other"]
    labels = np.array([classes.index(s.label) for s in samples])
    return data.classifier_arrays(samples, "manual", size), labels, classes, samples


def baseline(train: list, test: list, y_train: np.ndarray, y_test: np.ndarray,
             classes: list[str]) -> dict[str, float]:
    from synth_baseline import features

    from edgecrystal import metrics

    def table(samples: list) -> np.ndarray:
        return np.array([features(s.rgb, s.mask > 0) for s in samples])

    x_train, x_test = table(train), table(test)
    mean, std = x_train.mean(0), x_train.std(0) + 1e-6

    def expand(x: np.ndarray) -> np.ndarray:
        x = (x - mean) / std
        return np.hstack([x, x**2, np.ones((len(x), 1))])

    x_train, x_test = expand(x_train), expand(x_test)
    w = np.zeros((x_train.shape[1], len(classes)))
    onehot = np.eye(len(classes))[y_train]
    for _ in range(3000):
        p = np.exp(x_train @ w)
        p /= p.sum(1, keepdims=True)
        w -= 0.05 * (x_train.T @ (p - onehot) / len(x_train) + 1e-3 * w)
    probs = np.exp(x_test @ w)
    probs /= probs.sum(1, keepdims=True)
    return {"macro_auc": metrics.roc_auc_ovr(y_test, probs, classes)["macro"],
            "accuracy": float(np.mean(probs.argmax(1) == y_test))}


def train_arm(backbone: str, x: np.ndarray, y: np.ndarray, xt: np.ndarray, yt: np.ndarray,
              classes: list[str], size: int, epochs: int, work: Path,
              sets: dict[str, str]) -> dict:
    from edgecrystal.train import classifier as clf
    from edgecrystal.train import profiles

    hp = profiles.resolve("classifier", "tiny", {
        "input_size": size, "epochs": epochs, "batch_size": 32, "lr": 1e-3,
        "backbone": backbone, **sets})
    started = time.perf_counter()
    result = clf.fit_classifier(x, y, xt, yt, len(classes), hp, work / backbone, verbose=2,
                                restore_best=False)
    seconds = time.perf_counter() - started
    scores = clf.score(result.model, xt, yt, classes)
    from edgecrystal.models import count_flops

    return {"backbone": backbone, "recipe": sets, "seconds": round(seconds, 1),
            "macro_auc": scores["roc_auc"]["macro"], "accuracy": scores["accuracy"],
            "per_class_auc": {k: v for k, v in scores["roc_auc"].items() if k != "macro"},
            "val_auc_by_epoch": [round(float(h.get("val_auc", float("nan"))), 3)
                                 for h in result.history],
            "flops": count_flops(result.model), "params": int(result.model.count_params()),
            "model": result.model}


def latency(model: object, role_inputs: np.ndarray, work: Path) -> dict:
    from edgecrystal.calibration.quantize import latency_ms
    from edgecrystal.converters.int8_variant import int8_variant
    from edgecrystal.converters.keras_to_onnx import export_model

    fp32, int8 = work / "m.fp32.onnx", work / "m.int8-u8.onnx"
    export_model(model, fp32, "classifier", ["a", "b", "c", "d"], 17)
    int8_variant(fp32, int8, role_inputs, "onnxruntime", "entropy")
    one = role_inputs[:1]
    return {"fp32_ms": round(latency_ms(fp32, one, repeats=30), 2),
            "int8_ms": round(latency_ms(int8, one, repeats=30), 2),
            "fp32_mb": round(fp32.stat().st_size / 1e6, 1),
            "int8_mb": round(int8.stat().st_size / 1e6, 1)}


def parse_sets(items: list[str]) -> dict[str, str]:
    from edgecrystal.train.profiles import parse_sets as parse

    return parse(items)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("train", type=Path)
    parser.add_argument("test", type=Path)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--backbones", default="inception_v3,mobilenet_v3_small")
    parser.add_argument("--train-images", type=int, default=None)
    parser.add_argument("--latency", action="store_true")
    parser.add_argument("--latency-also", default="",
                        help="Backbones measured for latency only (untrained, same size).")
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--set", action="append", default=[],
                        help="Recipe field key=value for every trained arm (repeatable).")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    x, y, classes, train_samples = crops(args.train, args.size, args.train_images)
    xt, yt, _, test_samples = crops(args.test, args.size)
    report: dict = {"train_images": len(y), "test_images": len(yt), "size": args.size,
                    "epochs": args.epochs}
    if not args.no_baseline:
        report["baseline"] = baseline(train_samples, test_samples, y, yt, classes)
        print("hand-feature baseline:", report["baseline"], flush=True)
    del train_samples, test_samples
    report["arms"] = []
    with tempfile.TemporaryDirectory(prefix="backbones-") as tmp:
        for backbone in filter(None, args.backbones.split(",")):
            arm = train_arm(backbone, x, y, xt, yt, classes, args.size, args.epochs, Path(tmp),
                            parse_sets(args.set))
            model = arm.pop("model")
            if args.latency:
                arm.update(latency(model, x[:64], Path(tmp)))
            report["arms"].append(arm)
            print(json.dumps(arm), flush=True)
        for backbone in filter(None, args.latency_also.split(",")):
            from edgecrystal.models import build_classifier, count_flops

            model = build_classifier(len(classes), args.size, backbone=backbone)
            arm = {"backbone": backbone, "trained": False, "flops": count_flops(model),
                   "params": int(model.count_params()), **latency(model, x[:64], Path(tmp))}
            report["arms"].append(arm)
            print(json.dumps(arm), flush=True)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
