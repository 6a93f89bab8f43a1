"""How fast the results index takes a burst of results, next to writing the result files alone.

    .venv/bin/python scripts/bench_index.py [--images 10000] [--postgres URL | --no-postgres]

One run: N real (tiny) JPEG files in 96-well plate folders; then, each timed on its own,
1. result files alone: results.write_result for every image (atomic, fsync'd: what score/serve
   always do);
2. for SQLite and PostgreSQL: the IndexWriter as score/serve use it (queue every result file,
   read them back, upsert in batches) from the first add() to close(), a first burst (inserts)
   and the same burst again (updates: a re-scored plate);
3. the bare upsert of rows already in memory (the database's share).
Without --postgres a temporary server is started as in the tests (Debian's postgresql).
Prints a Markdown table (docs/review.md has the numbers) and writes --json if asked.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # index_helpers: the tests' PostgreSQL starter


def make_images(root: Path, count: int) -> list[Path]:
    """`count` image paths in plate folders of 96 wells (hard links of one small JPEG: the
    index never reads the pixels, so their content does not matter here)."""
    from index_helpers import write_image

    from edgecrystal.synth.plate import well_names

    source = write_image(root / "source.jpg", size=(128, 96))
    wells = well_names(8, 12)
    images = []
    for n in range(count):
        path = root / f"plate{n // 96:04d}" / f"{wells[n % 96]}_1.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        os.link(source, path)
        images.append(path)
    return images


def write_results(images: list[Path]) -> float:
    import hashlib

    from index_helpers import MODEL

    from edgecrystal import DEFAULT_CLASSES
    from edgecrystal.pipeline import Scored
    from edgecrystal.results import write_result

    digest = hashlib.sha256(images[0].read_bytes()).hexdigest()
    scored = []
    for n, image in enumerate(images):
        crystals = (n % 10) / 10
        scores = {c: (1 - crystals) / 3 for c in DEFAULT_CLASSES}
        scores["crystals"] = crystals
        scored.append(Scored(path=image, stat=os.stat(image), label=max(scores, key=scores.get),
                             scores=scores, found=True, box=(10, 8, 110, 88), area_px=8000,
                             width=128, height=96, sha256=digest, size_bytes=1000))
    start = time.perf_counter()
    for item in scored:
        write_result(item, MODEL)
    return time.perf_counter() - start


def writer_burst(url: str, results: list[Path]) -> float:
    from edgecrystal.index.writer import IndexWriter

    start = time.perf_counter()
    writer = IndexWriter(url)
    for result in results:
        writer.add(result)
    left = writer.close(timeout=3600)
    assert left == 0, f"{left} results not indexed"
    return time.perf_counter() - start


def bare_upsert(url: str, results: list[Path]) -> float:
    from edgecrystal.index.store import Index
    from edgecrystal.index.sync import read_rows
    from edgecrystal.naming import NameReader

    rows = read_rows(results, NameReader())
    with Index.open(url) as index:
        start = time.perf_counter()
        index.upsert(rows)
        return time.perf_counter() - start


def measure(name: str, url: str, results: list[Path]) -> dict[str, float]:
    from edgecrystal.index.store import Index

    first = writer_burst(url, results)
    again = writer_burst(url, results)
    upsert = bare_upsert(url, results)
    with Index.open(url) as index:
        assert index.count() == len(results), "the burst left rows out or doubled them"
    n = len(results)
    return {"writer_insert_rows_s": n / first, "writer_update_rows_s": n / again,
            "upsert_only_rows_s": n / upsert}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--postgres", help="postgresql://... (default: a temporary server)")
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="edgecrystal-bench-index-"))
    server = None
    try:
        images = make_images(work / "imager", args.images)
        seconds = write_results(images)
        results = [Path(f"{image}.edgecrystal.json") for image in images]
        report: dict[str, object] = {
            "images": len(images), "machine": f"{platform.node()} {os.cpu_count()} CPUs",
            "result_files_s": len(images) / seconds}
        report["sqlite"] = measure("sqlite", f"sqlite:///{work}/results.db", results)
        if not args.no_postgres:
            url = args.postgres
            if url is None:
                from index_helpers import PostgresServer, postgres_bin

                bin_dir = postgres_bin()
                if bin_dir is None:
                    sys.exit("PostgreSQL is not installed: bash scripts/setup-services.sh")
                server = PostgresServer(bin_dir)
                server.init()
                url = server.url
            report["postgresql"] = measure("postgresql", url, results)
    finally:
        if server is not None:
            server.cleanup()
        shutil.rmtree(work, ignore_errors=True)
    print_table(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


def print_table(report: dict[str, object]) -> None:
    print(f"{report['images']} images on {report['machine']}\n")
    print("| what | rows (files) per second |")
    print("|---|---:|")
    print(f"| result files alone (write_result, fsync'd) | {report['result_files_s']:,.0f} |")
    for name in ("sqlite", "postgresql"):
        numbers = report.get(name)
        if not isinstance(numbers, dict):
            continue
        print(f"| {name}: IndexWriter burst, new rows | {numbers['writer_insert_rows_s']:,.0f} |")
        print(f"| {name}: IndexWriter burst again, updates | "
              f"{numbers['writer_update_rows_s']:,.0f} |")
        print(f"| {name}: upsert alone (rows in memory) | {numbers['upsert_only_rows_s']:,.0f} |")


if __name__ == "__main__":
    main()
