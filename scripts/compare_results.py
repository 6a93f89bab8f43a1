"""Agreement between two folders of result files scored from the same images (e.g. FP32 on
the host and FP32 / INT8 in an emulated arm64 root: scripts/arm64_check.sh).

    python scripts/compare_results.py REFERENCE_DIR OTHER_DIR [--name NAME]

Prints one line: images compared, label agreement, the largest absolute difference of any class
score, the largest drop-box corner shift in pixels, and the precision each side ran at (with the
fallback reason where the runtime did not run what was asked). Exit 1 when an image has no
result on either side: agreement over a partial set would say nothing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from edgecrystal.results import load_result

RESULT_SUFFIX = ".edgecrystal.json"


def results_in(folder: Path) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(folder.glob(f"*{RESULT_SUFFIX}")):
        record = load_result(path)
        if record is not None:
            found[path.name[: -len(RESULT_SUFFIX)]] = record
    return found


def box_shift(a: dict[str, Any], b: dict[str, Any]) -> int:
    box_a, box_b = a.get("drop", {}).get("box"), b.get("drop", {}).get("box")
    if not box_a or not box_b:
        return 0 if box_a == box_b else -1  # -1: a drop found on one side only
    return max(abs(int(x) - int(y)) for x, y in zip(box_a, box_b, strict=True))


def precision_of(records: dict[str, dict[str, Any]]) -> str:
    models = [r.get("model", {}) for r in records.values()]
    ran = sorted({str(m.get("precision")) for m in models})
    reasons = sorted({str(m["precision_fallback"]) for m in models if m.get("precision_fallback")})
    return "/".join(ran) + (f" (fallback: {reasons[0]})" if reasons else "")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reference", type=Path)
    parser.add_argument("other", type=Path)
    parser.add_argument("--name", default="", help="Label printed before the figures.")
    args = parser.parse_args()
    ref, other = results_in(args.reference), results_in(args.other)
    if not ref or ref.keys() != other.keys():
        missing = sorted(ref.keys() ^ other.keys())
        print(f"error: result files differ between the folders ({len(ref)} vs {len(other)}; "
              f"e.g. {missing[:3]})", file=sys.stderr)
        return 1
    same = sum(ref[k].get("label") == other[k].get("label") for k in ref)
    score_diff = max(abs(float(v) - float(other[k]["scores"][c]))
                     for k in ref for c, v in ref[k]["scores"].items())
    shift = max(box_shift(ref[k], other[k]) for k in ref)
    drops_differ = any(box_shift(ref[k], other[k]) < 0 for k in ref)
    print(f"{args.name + ': ' if args.name else ''}{len(ref)} images, labels agree "
          f"{same}/{len(ref)}, max score diff {score_diff:.2e}, max drop-box shift "
          f"{'drop found on one side only' if drops_differ else f'{shift} px'}; "
          f"reference ran {precision_of(ref)}, other ran {precision_of(other)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
