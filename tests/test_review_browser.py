"""The review page in a real headless browser (Debian's chromium through chromedriver) against
`edgecrystal ui` in its own process over a PostgreSQL index: open the plate list, open a plate,
click a well, relabel it, and find the label in the database. Steps are in docs/review.md."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from crystal_results import add_crystals
from index_helpers import free_port, plate_over_time, wait_until, write_image, write_result_for

from edgecrystal.crystal_boxes import CrystalBox
from edgecrystal.index.store import Index
from edgecrystal.index.sync import sync
from edgecrystal.naming import NameReader

# A real chromium per test: seconds each, so the slow tier runs them (TF-free).
pytestmark = pytest.mark.slow

TOKEN = "browser-test-token"
# In original pixels of the 96 x 72 test images: the target is the first one's centre.
CRYSTALS = [CrystalBox((10, 12, 40, 30), area_px=300, score=0.9),
            CrystalBox((60, 40, 70, 50), area_px=60, score=0.85)]
NASTY_PLATE = "<img src=x onerror=alert(1)>"


def find_browser() -> tuple[str, str]:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not (browser and driver):
        pytest.skip("chromium and chromium-driver are not installed (scripts/setup.sh "
                    "installs them)")
    return browser, driver


@pytest.fixture
def browser() -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver = find_browser()
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--disable-gpu", "--window-size=1280,1000"):
        options.add_argument(argument)
    # Selenium Manager would try to download a driver: the system one is named instead.
    session = webdriver.Chrome(service=Service(executable_path=driver), options=options)
    session.implicitly_wait(5)
    yield session
    session.quit()


@pytest.fixture
def review_server(postgres: object, tmp_path: Path) -> Iterator[tuple[str, str]]:
    url = postgres.url  # type: ignore[attr-defined]
    root = tmp_path / "imager"
    plate_over_time(root, "browserplate", ["2026-11-01", "2026-11-08"],
                    {"A01": ["clear", "clear"], "B07": ["clear", "crystals"]})
    write_result_for(write_image(root / NASTY_PLATE / "C03_1.jpg"), "clear")
    # Two drops of one well that the model was unsure of (the second a crystals hit).
    day = root / "browserplate" / "2026-11-08"
    write_result_for(write_image(day / "D04_1.jpg", seed=4), "clear", crystals=0.45)
    write_result_for(write_image(day / "D04_2.jpg", seed=5), "precipitate", crystals=0.4,
                     crystals_hit=True)
    # Well E05 scored by a bundle with a crystal model: two crystals at the second inspection.
    write_result_for(write_image(root / "browserplate" / "2026-11-01" / "E05_1.jpg"), "clear")
    add_crystals(write_result_for(write_image(day / "E05_1.jpg", seed=6), "crystals",
                                  crystals=0.9), CRYSTALS)
    with Index.open(url) as index:
        sync(index, root, NameReader())
    port = free_port()
    env = {**os.environ, "EDGECRYSTAL_UI_TOKEN": TOKEN}
    server = subprocess.Popen([sys.executable, "-m", "edgecrystal", "ui", "--index", url,
                               "--port", str(port)], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        import urllib.request

        def up() -> bool:
            try:
                with urllib.request.urlopen(f"{base}/api/plates", timeout=2) as reply:
                    return reply.status == 200
            except OSError:
                return False

        assert wait_until(up, timeout=30), "edgecrystal ui did not come up"
        yield base, url
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_relabel_a_well_in_the_browser(browser: object, review_server: tuple[str, str]) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    page = browser  # a selenium WebDriver
    base, url = review_server
    # 1. The plate list; a folder name full of markup shows as text, not as an element.
    page.get(base + "/")
    names = [link.text for link in page.find_elements(By.CSS_SELECTOR, "a.plate-link")]
    assert NASTY_PLATE in names
    assert not page.find_elements(By.CSS_SELECTOR, "#plates img")
    # 2. Open the plate: a 96-well grid coloured by the latest label.
    page.find_element(By.LINK_TEXT, "browserplate").click()
    cells = page.find_elements(By.CSS_SELECTOR, "#plate-grid td.well")
    assert len(cells) == 96
    b07 = page.find_element(By.CSS_SELECTOR, 'td.well[data-well="B07"]')
    assert "label-crystals" in b07.get_attribute("class")
    # 3. Click well A01: its image with the drop box, and its two inspections.
    page.find_element(By.CSS_SELECTOR, 'td.well[data-well="A01"] a').click()
    assert page.find_element(By.TAG_NAME, "h1").text == "Plate browserplate, well A01"
    assert page.find_element(By.CSS_SELECTOR, "svg.drop-image rect.drop-box")
    rows = page.find_elements(By.CSS_SELECTOR, "table.history-table tbody tr")
    assert len(rows) == 2
    # 4. Relabel the latest inspection as crystals, with the token and a name.
    page.find_element(By.ID, "token").send_keys(TOKEN)
    page.find_element(By.ID, "who").send_keys("ana")
    latest = rows[-1]
    Select(latest.find_element(By.NAME, "label")).select_by_value("crystals")
    latest.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    status = latest.find_element(By.CSS_SELECTOR, ".status")
    WebDriverWait(page, 10).until(lambda _: status.text in ("saved",) or
                                  status.text.startswith("not saved"))
    assert status.text == "saved"
    assert latest.find_element(By.CSS_SELECTOR, ".label-cell .chip").text == "crystals"
    # 5. The database has the person's label, who set it, and when.
    image_id = int(latest.get_attribute("data-image-id"))
    with Index.open(url) as index:
        row = index.image(image_id)
    assert row is not None
    assert (row["human_label"], row["human_by"], row["label"]) == ("crystals", "ana", "clear")
    assert row["human_at"] is not None
    # 6. Back on the plate, A01 now shows the person's label.
    page.get(base + "/plates/browserplate")
    a01 = page.find_element(By.CSS_SELECTOR, 'td.well[data-well="A01"]')
    assert "label-crystals" in a01.get_attribute("class") and "✎" in a01.text


def test_uncertain_first_with_the_keyboard(browser: object,
                                           review_server: tuple[str, str]) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    page = browser  # a selenium WebDriver
    base, url = review_server
    # 1. The plate view: a loaded thumbnail for each of D04's two drops, marked.
    page.get(base + "/plates/browserplate")
    thumbs = page.find_elements(By.CSS_SELECTOR, 'td.well[data-well="D04"] .drop-thumb')
    assert len(thumbs) == 2
    assert all("uncertain" in t.get_attribute("class") for t in thumbs)
    assert sum("hit" in t.get_attribute("class").split() for t in thumbs) == 1
    for thumb in thumbs:
        image = thumb.find_element(By.TAG_NAME, "img")
        WebDriverWait(page, 10).until(
            lambda _, img=image: page.execute_script(
                "return arguments[0].complete && arguments[0].naturalWidth", img))
    # 2. The well view: every inspection of A01 side by side, oldest first (the database is
    # shared with the test above, whose copy of the plate is there too).
    page.get(base + "/plates/browserplate/wells/A01")
    days = [f.text.split()[0] for f in page.find_elements(
        By.CSS_SELECTOR, ".timeline figure.inspection figcaption")]
    assert set(days) == {"2026-11-01", "2026-11-08"} and days == sorted(days)
    # 3. The queue: least sure first; start reviewing with the token remembered.
    page.get(base + "/queue")
    queued = [int(r.get_attribute("data-image-id"))
              for r in page.find_elements(By.CSS_SELECTOR, "#queue tbody tr")]
    assert len(queued) >= 2
    page.find_element(By.ID, "token").send_keys(TOKEN)
    page.find_element(By.ID, "who").send_keys("kai")
    page.find_element(By.ID, "queue-start").click()
    WebDriverWait(page, 10).until(lambda _: f"/images/{queued[0]}" in page.current_url)
    # 4. Key 2 relabels it crystals (the second label), key n opens the next uncertain drop.
    page.find_element(By.TAG_NAME, "body").send_keys("2")
    status = page.find_element(By.CSS_SELECTOR, ".current .status")
    WebDriverWait(page, 10).until(lambda _: status.text == "saved" or
                                  status.text.startswith("not saved"))
    assert status.text == "saved"
    assert page.find_element(By.CSS_SELECTOR, ".current .label-cell .chip").text == "crystals"
    page.find_element(By.TAG_NAME, "body").send_keys("n")
    WebDriverWait(page, 10).until(lambda _: f"/images/{queued[1]}" in page.current_url)
    with Index.open(url) as index:
        row = index.image(queued[0])
        assert row is not None and (row["human_label"], row["human_by"]) == ("crystals", "kai")
        waiting = [r["id"] for r in index.uncertain_queue()]
        assert queued[0] not in waiting and waiting[0] == queued[1]


def test_well_view_shows_each_inspections_crystals(browser: object,
                                                   review_server: tuple[str, str]) -> None:
    """Issue 25: the well view draws each inspection's crystal boxes and target over its image,
    where they are, and says how many, how large and where to aim."""
    from selenium.webdriver.common.by import By

    page = browser  # a selenium WebDriver
    base, _ = review_server
    page.get(base + "/plates/browserplate/wells/E05")
    # Each test's server indexes its own copy of the plate into the shared database: E05's two
    # inspections appear once per copy, the ones without crystals first.
    figures = page.find_elements(By.CSS_SELECTOR, ".timeline figure.inspection")
    marked = [f for f in figures if f.find_elements(By.CSS_SELECTOR, ".crystal-summary")]
    plain = [f for f in figures if f not in marked]
    assert marked and len(marked) == len(plain) and figures[0] in plain
    assert not any(f.find_elements(By.CSS_SELECTOR, ".crystal-box") for f in plain)
    after = marked[-1]
    summary = after.find_element(By.CSS_SELECTOR, ".crystal-summary").text
    assert summary == "2 crystals, largest 30 px, target 25, 21"
    svg = after.find_element(By.CSS_SELECTOR, "svg.inspection-image")
    boxes = after.find_elements(By.CSS_SELECTOR, "rect.crystal-box")
    assert len(boxes) == 2 and all(box.is_displayed() for box in boxes)
    # Drawn where they are: the 96 x 72 image is shown 160 px high, so pixels scale by 160/72.
    scale = svg.rect["height"] / 72
    assert svg.rect["width"] == pytest.approx(96 * scale, abs=2)
    first = boxes[0].rect
    assert first["x"] - svg.rect["x"] == pytest.approx(10 * scale, abs=3)
    assert first["width"] == pytest.approx(30 * scale, abs=4)
    cross = after.find_element(By.CSS_SELECTOR, "g.crystal-target").rect
    centre = (cross["x"] + cross["width"] / 2 - svg.rect["x"],
              cross["y"] + cross["height"] / 2 - svg.rect["y"])
    assert centre == (pytest.approx(25 * scale, abs=3), pytest.approx(21 * scale, abs=3))
    # The latest image, large, carries the same boxes.
    large = page.find_elements(By.CSS_SELECTOR, "figure.image svg.drop-image rect.crystal-box")
    assert len(large) == 2 and all(box.is_displayed() for box in large)
