#!/usr/bin/env python
"""Screen a fine-tuning recipe quickly: the splits of scripts/finetune_check.py in one process.

    .venv/bin/python scripts/finetune_screen.py ../shared/real-samples NAME [key=value ...] \
        [--splits 3] [--log results.jsonl]

key=value pairs override the `finetune` profile (profile=P starts from another one), as
`train finder --set` does. For each seeded split (the same 10 fine-tune / 7 scored photos as
finetune_check.py) the shipped finder is fine-tuned in memory with `fit_finder` and both are
scored on the 7 with the Keras model (the same Dice as `edgecrystal evaluate` gives, without
three processes and two evaluations per split). finetune_check.py checks the chosen recipe
end to end through the command line.
"""

from __future__ import annotations

import argparse
import csv
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from edgecrystal import models
from edgecrystal.bundle import Bundle
from edgecrystal.dataset import Record
from edgecrystal.pretrained import bundle_path
from edgecrystal.train import data, finder, profiles

TRAIN_IMAGES = 10


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("real", type=Path)
    ap.add_argument("name")
    ap.add_argument("sets", nargs="*", help="hyperparameter key=value")
    ap.add_argument("--splits", type=int, default=3)
    ap.add_argument("--log", type=Path, help="append the result as one JSON line")
    args = ap.parse_args()
    overrides = profiles.parse_sets(args.sets)
    profile = overrides.pop("profile", "finetune")

    with (args.real / "masks" / "manifest.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    samples = data.load_samples([Record(args.real / r["path"], args.real / r["mask"], None)
                                 for r in rows])
    init = Bundle.open(bundle_path("finder")).model_file("finder")
    shipped = models.load_model(init)
    splits = []
    for split in range(args.splits):
        order = np.random.default_rng(split).permutation(len(rows))
        tune = [samples[i] for i in order[:TRAIN_IMAGES]]
        rest = [samples[i] for i in order[TRAIN_IMAGES:]]
        hp = profiles.resolve("finder", profile, {**overrides, "seed": split})
        train_idx, val_idx = data.split_random(len(tune), hp.val_fraction, hp.seed)
        before = finder.mask_scores(shipped, rest, hp.input_size, hp.threshold)["dice"]
        started = time.time()
        with tempfile.TemporaryDirectory() as workdir:
            fitted = finder.fit_finder([tune[i] for i in train_idx], [tune[i] for i in val_idx],
                                       hp, Path(workdir), init=init)
        after = finder.mask_scores(fitted.model, rest, hp.input_size, hp.threshold)["dice"]
        # Free to score: halfway between the shipped and the fine-tuned weights (what
        # init_blend=0.5 gives; with init_blend set, the fitted model is blended already).
        blended = models.load_model(init)
        blended.set_weights([(a + b) / 2 for a, b in zip(shipped.get_weights(),
                                                          fitted.model.get_weights(),
                                                          strict=True)])
        halfway = finder.mask_scores(blended, rest, hp.input_size, hp.threshold)["dice"]
        splits.append({"split": split, "before": float(np.mean(before)),
                       "after": float(np.mean(after)),
                       "gain": float(np.mean(after) - np.mean(before)),
                       "gain_halfway": float(np.mean(halfway) - np.mean(before)),
                       "worst_image_change": float(np.min(np.subtract(after, before))),
                       "best_epoch": fitted.best_epoch,
                       "seconds": round(time.time() - started, 1)})
        print(json.dumps(splits[-1]), flush=True)
    result = {"name": args.name, "profile": profile, "sets": overrides, "splits": splits,
              "before": round(float(np.mean([s["before"] for s in splits])), 4),
              "after": round(float(np.mean([s["after"] for s in splits])), 4),
              "gain": round(float(np.mean([s["gain"] for s in splits])), 4),
              "gain_per_split": [round(s["gain"], 4) for s in splits],
              "gain_halfway": round(float(np.mean([s["gain_halfway"] for s in splits])), 4),
              "gain_halfway_per_split": [round(s["gain_halfway"], 4) for s in splits]}
    print(json.dumps(result), flush=True)
    if args.log:
        with args.log.open("a") as fh:
            fh.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
