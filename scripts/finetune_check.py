#!/usr/bin/env python
"""Does fine-tuning the shipped finder on a few masked photos help on the others?

    .venv/bin/python scripts/finetune_check.py ../shared/real-samples --work /tmp/ft \
        [--train 10] [--splits 3] [--epochs 40] [--batch-size 4] [--lr 1e-3]

For each split (seeded): TRAIN of the masked photos make a folder in the mask-manifest layout
(symlinks, nothing copied), the rest another; the shipped finder and the finder fine-tuned with
`edgecrystal train finder TRAIN --init default` are both scored on the rest with `edgecrystal
evaluate`. Prints per split and overall: mean Dice of the rest before and after.
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


def dice_of(report_dir: Path) -> dict[str, float]:
    report = json.loads((report_dir / "report.json").read_text())
    return {r["image"]: r["dice"] for r in report["finder"]["per_image"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("real", type=Path)
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--train", type=int, default=10)
    ap.add_argument("--splits", type=int, default=3)
    # Ten photos are one batch of 16: small batches and more epochs give the fine-tuning
    # enough steps (15 one-step epochs at 3e-4 moved the finder too little to matter).
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--lr", type=float, default=1e-3)
    args = ap.parse_args()

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
        run("evaluate", str(rest_dir), "--out", str(work / "before"))
        started = time.time()
        run("train", "finder", str(train_dir), "--bundle", str(work / "tuned"), "--profile",
            "sim2real", "--init", "default", "--epochs", str(args.epochs), "--batch-size",
            str(args.batch_size), "--lr", str(args.lr), "--seed", str(split))
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
    summary = {"splits": len(results), "train_images": args.train,
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
