#!/usr/bin/env python
"""Rebuild the shipped default finder (edgecrystal/pretrained/finder/) from nothing.

    .venv/bin/python scripts/build_default_finder.py --work /tmp/finder-build
    .venv/bin/python scripts/build_default_finder.py --work /tmp/finder-build \
        --real ../shared/real-samples          # also record Dice on real photos (validation)

1. synthesise domain-randomised wells (`edgecrystal synth --style random`, the seed below),
2. train the finder with the `sim2real` profile on them,
3. export FP32 ONNX (parity-checked against Keras),
4. score it on held-out synthetic wells (random style and the four imager styles) and, with
   --real, on real photos with hand-drawn masks (a validation set: never trained on),
5. copy finder.keras, onnx/finder.fp32.onnx and bundle.json, with the provenance (this
   command, seed, data, time, metrics), into --out.

Same seed and arguments give the same data; TensorFlow's CPU kernels are not bit-exact across
machines, so the weights match the shipped ones closely, not bytewise.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "edgecrystal" / "pretrained" / "finder"


def synth(out: Path, n: int, seed: int, size: tuple[int, int], styles: list[str],
          empty_fraction: float) -> dict[str, Any]:
    """Generate (or reuse, when the same arguments made it) one synthetic set."""
    from edgecrystal.synth import generate_dataset

    args = {"n": n, "seed": seed, "size": list(size), "max_aspect": 1.333, "styles": styles,
            "empty_fraction": empty_fraction}
    command = (f"edgecrystal synth DATA --n {n} --seed {seed} --size {size[0]} --max-size "
               f"{size[1]} --max-aspect 1.333 " + " ".join(f"--style {s}" for s in styles)
               + (f" --empty-fraction {empty_fraction}" if empty_fraction else ""))
    stamp = out / "synth-args.json"
    if not (stamp.is_file() and json.loads(stamp.read_text()) == args):
        if out.exists():
            shutil.rmtree(out)
        generate_dataset(out, n, seed=seed, size=size, styles=styles, max_aspect=1.333,
                         empty_fraction=empty_fraction, progress=True)
        stamp.write_text(json.dumps(args))
    return {"command": command, **args}


def dice_on(bundle: Path, data: Path) -> dict[str, Any]:
    from edgecrystal import metrics
    from edgecrystal.bundle import Bundle
    from edgecrystal.dataset import load_dataset
    from edgecrystal.train import classifier as clf
    from edgecrystal.train import data as tdata
    from edgecrystal.train import finder as fnd

    model, size, threshold = clf.load_finder(Bundle.open(bundle))
    ds = load_dataset(data)
    samples = tdata.load_samples(ds.with_masks(), masks=True)
    scores = fnd.mask_scores(model, samples, size, threshold)
    return {"images": len(samples), "dice_mean": round(scores["dice_mean"], 4),
            "dice_min": round(min(scores["dice"]), 4),
            "below_0.5": int(sum(d < 0.5 for d in scores["dice"])),
            "dice_std": round(metrics.mean_std(scores["dice"])["std"], 4)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, required=True, help="scratch folder (data, bundle)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--n", type=int, default=2400, help="training wells")
    ap.add_argument("--seed", type=int, default=9)
    ap.add_argument("--heldout", type=int, default=200, help="held-out random-style wells "
                    "(half as many imager-style ones)")
    ap.add_argument("--epochs", type=int, default=None, help="override the profile's epochs")
    ap.add_argument("--resume", action="store_true",
                    help="continue an interrupted training in WORK/bundle (same stream of batches "
                    "and optimizer state: the result is that of an uninterrupted run)")
    ap.add_argument("--note", default="", help="a remark for the provenance record")
    ap.add_argument("--real", type=Path, default=None,
                    help="real photos with masks (shared real-samples layout): validation only")
    args = ap.parse_args()

    from edgecrystal.bundle import Bundle
    from edgecrystal.converters.keras_to_onnx import export_bundle
    from edgecrystal.train import train_finder

    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    data = synth(work / "train", args.n, args.seed, (400, 640), ["random"], 0.04)

    bundle = work / "bundle"
    if bundle.exists() and not args.resume:
        shutil.rmtree(bundle)
    overrides: dict[str, Any] = {"seed": args.seed}
    if args.epochs:
        overrides["epochs"] = args.epochs
    started = time.time()
    result = train_finder(work / "train", bundle, profile="sim2real", overrides=overrides,
                          verbose=2, resume=args.resume)
    seconds = round(time.time() - started, 1)
    export_bundle(Bundle.open(bundle), models=("finder",))

    held_random = synth(work / "heldout-random", args.heldout, args.seed + 900, (500, 1000),
                        ["random"], 0.0)
    held_imagers = synth(work / "heldout-imagers", args.heldout // 2, args.seed + 901, (500, 1000),
                         ["marco", "formulatrix", "brightfield", "minstrel"], 0.0)

    measured = {"validation (synthetic, random style)": result["metrics"],
                "heldout_synthetic_random": dice_on(bundle, work / "heldout-random"),
                "heldout_synthetic_imagers": dice_on(bundle, work / "heldout-imagers")}
    if args.real:
        measured["real_validation"] = {"data": str(args.real), **dice_on(bundle, args.real)}

    b = Bundle.open(bundle)
    b.meta["provenance"] = {
        "command": shlex.join([Path(sys.executable).name, *sys.argv]),
        "script": "scripts/build_default_finder.py",
        "seed": args.seed,
        "profile": "sim2real",
        "data": {"train": data, "heldout_random": held_random, "heldout_imagers": held_imagers},
        "trained": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "training_seconds": seconds,
        "note": args.note,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, {platform.python_version()}",
        "metrics": measured,
    }
    # Only what ships: the model, its FP32 ONNX and the description.
    b.meta["files"] = {k: v for k, v in b.meta["files"].items()
                       if k in ("finder.keras", "onnx/finder.fp32.onnx")}
    b.meta["finder"]["data"]["root"] = "synthetic (see provenance.data)"
    b.save()
    out = args.out
    (out / "onnx").mkdir(parents=True, exist_ok=True)
    for rel in ("finder.keras", "onnx/finder.fp32.onnx", "bundle.json"):
        shutil.copyfile(bundle / rel, out / rel)
    print(json.dumps(b.meta["provenance"], indent=2))


if __name__ == "__main__":
    main()
