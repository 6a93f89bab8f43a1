#!/usr/bin/env python
"""Does fine-tuning a shipped model on a few labelled photos help on the others?

    .venv/bin/python scripts/finetune_check.py ../shared/real-samples --work /tmp/ft \
        [--model finder|classifier] [--train N] [--splits 3] [--first 0] [--profile P] \
        [--epochs E] [--batch-size B] [--lr LR] [--set key=value ...]

`--model finder` (the default): for each split (seeded), TRAIN (default 10) of the masked
photos make a folder in the mask-manifest layout (symlinks, nothing copied), the rest another;
the shipped finder and the finder fine-tuned with `edgecrystal train finder TRAIN --init
default` (its default recipe, the `finetune` profile, unless the options above change it) are
both scored on the rest with `edgecrystal evaluate`. Prints per split and overall: mean Dice
of the rest before and after.

`--model classifier`: for each split (seeded), half of the labelled photos of labels.csv
(stratified: per class half, the odd ones out shared by the seed; `--train` another count)
make a labels.csv folder (symlinks, no masks), the rest another; the shipped default bundle
and the bundle made by `edgecrystal train classifier TRAIN --init default --seed S` (its FP32
ONNX, exported at the end of training) are both scored on the rest with `edgecrystal
evaluate` (ONNX Runtime FP32). Prints per split and overall: macro AUC and crystals-vs-rest
AUC of the rest before and after, and whether any split lost.

The shipped model's scores are kept in WORK and reused by a later run with the same WORK
(they cannot change).
"""

from __future__ import annotations

import argparse
import csv
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np


def subset(real: Path, rows: list[dict[str, str]], out: Path) -> Path:
    """A mask-manifest folder holding `rows` of `real` as symlinks."""
    (out / "masks").mkdir(parents=True, exist_ok=True)
    for row in rows:
        for rel in (row["path"], row["mask"]):
            link = out / rel
            link.parent.mkdir(parents=True, exist_ok=True)
            if not link.exists():
                link.symlink_to((real / rel).resolve())
    with (out / "masks" / "manifest.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["path", "mask"])
        writer.writeheader()
        writer.writerows({"path": r["path"], "mask": r["mask"]} for r in rows)
    return out


def labelled_subset(real: Path, rows: list[dict[str, str]], out: Path) -> Path:
    """A labels.csv folder holding `rows` (path, label) of `real` as symlinks."""
    out.mkdir(parents=True, exist_ok=True)
    for row in rows:
        link = out / row["path"]
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.exists():
            link.symlink_to((real / row["path"]).resolve())
    with (out / "labels.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["image", "label"])
        writer.writeheader()
        writer.writerows({"image": r["path"], "label": r["label"]} for r in rows)
    return out


def stratified_half(rows: list[dict[str, str]], split: int,
                    n_train: int | None) -> tuple[list[int], list[int]]:
    """Seeded: per class floor(n/2) train, then the odd ones out (one per class with an odd
    count, in a seeded order) until `n_train` (default: half of all) train. Every class keeps
    at least one image on each side when it has two or more."""
    rng = np.random.default_rng(split)
    by_class: dict[str, list[int]] = {}
    for index, row in enumerate(rows):
        by_class.setdefault(row["label"], []).append(index)
    train: list[int] = []
    spare: list[int] = []
    for label in sorted(by_class):
        order = [by_class[label][k] for k in rng.permutation(len(by_class[label]))]
        half = len(order) // 2
        train += order[:half]
        if len(order) % 2:
            spare.append(order[half])
    want = len(rows) // 2 if n_train is None else n_train
    spare = [spare[k] for k in rng.permutation(len(spare))]
    train += spare[: max(0, want - len(train))]
    rest = [k for k in range(len(rows)) if k not in train]
    return sorted(train), rest


def run(*args: str) -> None:
    cmd = [sys.executable, "-m", "edgecrystal", *args]
    print("$", shlex.join(["edgecrystal", *args]), flush=True)
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


def recipe_options(args: argparse.Namespace) -> list[str]:
    """The `train finder` options that change the fine-tuning recipe from its default."""
    options: list[str] = []
    for flag, value in (("--profile", args.profile), ("--epochs", args.epochs),
                        ("--batch-size", args.batch_size), ("--lr", args.lr)):
        if value is not None:
            options += [flag, str(value)]
    for item in args.sets:
        options += ["--set", item]
    return options


def classifier_figures(report_dir: Path) -> dict[str, Any]:
    c = json.loads((report_dir / "report.json").read_text())["classifier"]
    if c["runtime"] != "onnxruntime fp32":  # the deployed path, or the check means nothing
        raise SystemExit(f"{report_dir}: scored with {c['runtime']}, not onnxruntime fp32")
    return {"macro": c["roc_auc"]["macro"], "crystals": c["crystals_vs_rest_auc"],
            "accuracy": c["accuracy"], "per_image": {
                r["image"]: round(r["scores"]["crystals"], 4) for r in c["per_image"]}}


def check_classifier(args: argparse.Namespace, recipe: list[str]) -> None:
    with (args.real / "labels.csv").open(newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["label"].strip()]
    results = []
    for split in range(args.first, args.first + args.splits):
        tr, va = stratified_half(rows, split, args.train)
        train, rest = [rows[i] for i in tr], [rows[i] for i in va]
        work = args.work / f"split{split}"
        train_dir = labelled_subset(args.real, train, work / "train")
        rest_dir = labelled_subset(args.real, rest, work / "rest")
        if not (work / "before" / "report.json").is_file():
            run("evaluate", str(rest_dir), "--out", str(work / "before"))
        started = time.time()
        run("train", "classifier", str(train_dir), "--bundle", str(work / "tuned"), "--init",
            "default", *recipe, "--seed", str(split))
        seconds = time.time() - started
        run("evaluate", str(rest_dir), "--out", str(work / "after"), "--bundle",
            str(work / "tuned"))
        before, after = classifier_figures(work / "before"), classifier_figures(work / "after")
        results.append({
            "split": split, "train": [r["path"] for r in train],
            "rest": {r["path"]: r["label"] for r in rest},
            **{f"{k}_{side}": round(v[k], 4) for k in ("macro", "crystals", "accuracy")
               for side, v in (("before", before), ("after", after))},
            "fine_tune_seconds": round(seconds, 1),
            "crystal_score_before_after": {k: [before["per_image"][k], after["per_image"][k]]
                                           for k in before["per_image"]}})
        print(json.dumps(results[-1], indent=1), flush=True)
    gains = {k: [round(r[f"{k}_after"] - r[f"{k}_before"], 4) for r in results]
             for k in ("macro", "crystals")}
    summary = {"model": "classifier", "splits": len(results), "recipe": recipe,
               "train_images": len(results[0]["train"]) if results else 0,
               "rest_images": len(results[0]["rest"]) if results else 0,
               **{f"{k}_{side}": round(float(np.mean([r[f"{k}_{side}"] for r in results])), 4)
                  for k in ("macro", "crystals") for side in ("before", "after")},
               "gain_per_split": gains,
               "splits_lost": [r["split"] for r in results
                               if r["macro_after"] < r["macro_before"]
                               or r["crystals_after"] < r["crystals_before"]]}
    (args.work / "summary.json").write_text(json.dumps({"summary": summary, "runs": results},
                                                       indent=1))
    print(json.dumps(summary, indent=1))


def dice_of(report_dir: Path) -> dict[str, float]:
    report = json.loads((report_dir / "report.json").read_text())
    return {r["image"]: r["dice"] for r in report["finder"]["per_image"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("real", type=Path)
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--model", choices=("finder", "classifier"), default="finder")
    ap.add_argument("--train", type=int,
                    help="photos that fine-tune (finder: 10; classifier: half, stratified)")
    ap.add_argument("--splits", type=int, default=3)
    ap.add_argument("--first", type=int, default=0,
                    help="seed of the first split (--first 3 --splits 3: splits 3, 4, 5)")
    # Unset: what `--init default` does by default (the `finetune` profile).
    ap.add_argument("--profile")
    ap.add_argument("--epochs", type=int)
    ap.add_argument("--batch-size", type=int)
    ap.add_argument("--lr", type=float)
    ap.add_argument("--set", dest="sets", action="append", default=[],
                    help="a hyperparameter key=value for `train finder|classifier --set` "
                    "(repeatable)")
    args = ap.parse_args()
    recipe = recipe_options(args)
    if args.model == "classifier":
        check_classifier(args, recipe)
        return
    args.train = 10 if args.train is None else args.train

    with (args.real / "masks" / "manifest.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    results = []
    for split in range(args.first, args.first + args.splits):
        order = np.random.default_rng(split).permutation(len(rows))
        train = [rows[i] for i in order[: args.train]]
        rest = [rows[i] for i in order[args.train:]]
        work = args.work / f"split{split}"
        train_dir = subset(args.real, train, work / "train")
        rest_dir = subset(args.real, rest, work / "rest")
        if not (work / "before" / "report.json").is_file():
            run("evaluate", str(rest_dir), "--out", str(work / "before"))
        started = time.time()
        run("train", "finder", str(train_dir), "--bundle", str(work / "tuned"), "--init",
            "default", *recipe, "--seed", str(split))
        seconds = time.time() - started
        run("evaluate", str(rest_dir), "--out", str(work / "after"), "--bundle",
            str(work / "tuned"))
        before, after = dice_of(work / "before"), dice_of(work / "after")
        results.append({"split": split, "train": [r["path"] for r in train],
                        "before": float(np.mean(list(before.values()))),
                        "after": float(np.mean(list(after.values()))),
                        "before_min": min(before.values()), "after_min": min(after.values()),
                        "fine_tune_seconds": round(seconds, 1), "per_image": {
                            k: [round(before[k], 4), round(after[k], 4)] for k in before}})
        print(json.dumps(results[-1], indent=1), flush=True)
    gains = [r["after"] - r["before"] for r in results]
    summary = {"splits": len(results), "train_images": args.train, "recipe": recipe,
               "rest_images": len(rows) - args.train,
               "dice_before": round(float(np.mean([r["before"] for r in results])), 4),
               "dice_after": round(float(np.mean([r["after"] for r in results])), 4),
               "gain_mean": round(float(np.mean(gains)), 4),
               "gain_per_split": [round(g, 4) for g in gains]}
    (args.work / "summary.json").write_text(json.dumps({"summary": summary, "runs": results},
                                                       indent=1))
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
