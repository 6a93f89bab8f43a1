#!/usr/bin/env python
"""Does fine-tuning the shipped finder on a few masked photos help on the others?

    .venv/bin/python scripts/finetune_check.py ../shared/real-samples --work /tmp/ft \
        [--train 10] [--splits 3] [--profile P] [--epochs E] [--batch-size B] [--lr LR] \
        [--set key=value ...]

For each split (seeded): TRAIN of the masked photos make a folder in the mask-manifest layout
(symlinks, nothing copied), the rest another; the shipped finder and the finder fine-tuned with
`edgecrystal train finder TRAIN --init default` (its default recipe, the `finetune` profile,
unless the options above change it) are both scored on the rest with `edgecrystal evaluate`.
Prints per split and overall: mean Dice of the rest before and after. The shipped finder's
scores are kept in WORK and reused by a later run with the same WORK (they cannot change).
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


def dice_of(report_dir: Path) -> dict[str, float]:
    report = json.loads((report_dir / "report.json").read_text())
    return {r["image"]: r["dice"] for r in report["finder"]["per_image"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("real", type=Path)
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--train", type=int, default=10)
    ap.add_argument("--splits", type=int, default=3)
    # Unset: what `--init default` does by default (the `finetune` profile).
    ap.add_argument("--profile")
    ap.add_argument("--epochs", type=int)
    ap.add_argument("--batch-size", type=int)
    ap.add_argument("--lr", type=float)
    ap.add_argument("--set", dest="sets", action="append", default=[],
                    help="a hyperparameter key=value for `train finder --set` (repeatable)")
    args = ap.parse_args()
    recipe = recipe_options(args)

    with (args.real / "masks" / "manifest.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    results = []
    for split in range(args.splits):
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
