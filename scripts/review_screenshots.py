"""The screenshots in docs/review.md: a synthetic plate imaged four times, scored into an index,
the model's wrong calls corrected by a reviewer through the API (from the plate's truth.csv), and
the review page photographed by headless chromium.

    .venv/bin/python scripts/review_screenshots.py BUNDLE [--out docs]

Runs the commands a user would (`edgecrystal synth --plate`, `edgecrystal score --index`,
`edgecrystal ui`) in a temporary folder; writes review-plate.png and review-well.png.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # index_helpers.free_port
DAYS = [("2026-11-02", 11), ("2026-11-05", 12), ("2026-11-09", 13), ("2026-11-16", 14)]
TOKEN = "screenshot-token"


def edgecrystal(*args: str, env: dict[str, str] | None = None) -> None:
    command = [sys.executable, "-m", "edgecrystal", *args]
    print("$ edgecrystal " + " ".join(args), flush=True)
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", type=Path)
    parser.add_argument("--out", type=Path, default=REPO / "docs")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="edgecrystal-shots-"))
    url = f"sqlite:///{work}/results.db"
    try:
        for day, seed in DAYS:
            edgecrystal("synth", str(work / "imager" / "screen-07" / day), "--plate",
                        "--seed", str(seed), "--style", "marco")
        edgecrystal("score", str(args.bundle), str(work / "imager"), "--recursive",
                    "--index", url)
        shoot(url, args.out, work / "imager" / "screen-07")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def shoot(url: str, out: Path, plate: Path) -> None:
    from index_helpers import free_port
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "EDGECRYSTAL_UI_TOKEN": TOKEN}
    server = subprocess.Popen([sys.executable, "-m", "edgecrystal", "ui", "--index", url,
                               "--port", str(port)], env=env)
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu",
                     "--hide-scrollbars", "--window-size=1100,760"):
        options.add_argument(argument)
    browser = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"{base}/api/plates", timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        correct_calls(base, plate)
        well = pick_well(base)
        history = subprocess.run([sys.executable, "-m", "edgecrystal", "history", "screen-07",
                                  "--well", well, "--index", url], capture_output=True,
                                 text=True, check=True)
        print(f"$ edgecrystal history screen-07 --well {well}\n{history.stdout}")
        browser.get(f"{base}/plates/screen-07")
        save(browser, out / "review-plate.png")
        browser.set_window_size(1100, 900)
        browser.get(f"{base}/plates/screen-07/wells/{well}")
        save(browser, out / "review-well.png")
    finally:
        browser.quit()
        server.terminate()
        server.wait(timeout=30)


def correct_calls(base: str, plate: Path) -> int:
    """A reviewer's pass: every call that differs from the synthetic truth gets the true label
    through the API (what a person does on the well page)."""
    import csv

    truth = {}
    for day, _ in DAYS:
        with open(plate / day / "truth.csv", newline="") as handle:
            for row in csv.DictReader(handle):
                truth[os.path.realpath(plate / day / row["image"])] = row["label"]
    with urllib.request.urlopen(f"{base}/api/plates/screen-07/history") as reply:
        drops = json.load(reply)["drops"]
    corrected = 0
    for drop in drops:
        for seen in drop["inspections"]:
            right = truth[seen["image"]]
            if seen["label"] == right:
                continue
            request = urllib.request.Request(
                f"{base}/api/images/{seen['id']}/label", method="POST",
                data=json.dumps({"label": right, "who": "ana"}).encode(),
                headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
            urllib.request.urlopen(request).close()
            corrected += 1
    print(f"corrected {corrected} of {sum(len(d['inspections']) for d in drops)} calls")
    return corrected


def pick_well(base: str) -> str:
    """A well where crystals appeared after the first inspection and stayed."""
    with urllib.request.urlopen(f"{base}/api/plates/screen-07/history") as reply:
        drops = json.load(reply)["drops"]

    def story(drop: dict) -> tuple[bool, int]:
        labels = [i["label"] for i in drop["inspections"]]
        first = labels.index("crystals") if "crystals" in labels else 0
        return (first > 0 and labels[-1] == "crystals", -len(drop["changes"]))

    return str(max(drops, key=story)["well"])


def save(browser: object, path: Path) -> None:
    """A screenshot, quantised to a small palette PNG (docs stay light)."""
    import cv2
    import numpy as np

    png = browser.get_screenshot_as_png()  # type: ignore[attr-defined]
    image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    image = cv2.resize(image, None, fx=0.8, fy=0.8, interpolation=cv2.INTER_AREA)
    ok, encoded = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    assert ok
    path.write_bytes(encoded.tobytes())
    print(f"wrote {path} ({len(encoded) // 1024} KiB)")


if __name__ == "__main__":
    main()
