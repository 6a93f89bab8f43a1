"""The review page's JSON API and image serving, over a real SQLite index (Starlette's test
client speaks ASGI to the real app): bad input gets a 4xx and one line, writing needs the token,
only indexed images are served, names from folders are escaped."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from index_helpers import plate_over_time, write_image, write_result_for
from starlette.testclient import TestClient

from edgecrystal.index.store import Index
from edgecrystal.index.sync import sync
from edgecrystal.naming import NameReader
from edgecrystal.ui.app import create_app

TOKEN = "s3cret-token"
NASTY_PLATE = "<img src=x onerror=alert(1)>"


@pytest.fixture
def indexed(tmp_path: Path) -> tuple[Index, Path]:
    root = tmp_path / "imager"
    plate_over_time(root, "plateA", ["2026-11-01", "2026-11-07"],
                    {"A01": ["clear", "crystals"], "C05": ["precipitate", "precipitate"]})
    write_result_for(write_image(root / NASTY_PLATE / "B03_1.jpg"), "crystals", crystals=0.8)
    index = Index.open(f"sqlite:///{tmp_path}/index.db")
    sync(index, root, NameReader())
    yield index, root
    index.close()


def client(index: Index, token: str | None = TOKEN, **options: object) -> TestClient:
    return TestClient(create_app(index, token, **options), base_url="http://127.0.0.1:8765")


def one_line_error(response: object, status: int) -> str:
    assert response.status_code == status, response.text  # type: ignore[attr-defined]
    reason = response.json()["error"]  # type: ignore[attr-defined]
    assert reason and "\n" not in reason
    return reason


def test_read_endpoints(indexed: tuple[Index, Path]) -> None:
    index, _ = indexed
    api = client(index)
    plates = api.get("/api/plates").json()["plates"]
    assert [p["plate"] for p in plates] == sorted(["plateA", NASTY_PLATE])
    wells = api.get("/api/plates/plateA").json()["wells"]
    assert {w["well"]: w["effective_label"] for w in wells} == {"A01": "crystals",
                                                                "C05": "precipitate"}
    history = api.get("/api/plates/plateA/history", params={"well": "A01"}).json()
    [drop] = history["drops"]
    assert drop["first_crystals"]["inspection"] == "2026-11-07"
    hits = api.get("/api/hits", params={"class": "crystals", "min_score": 0.5}).json()["hits"]
    assert sorted((h["plate"], h["well"]) for h in hits) == sorted(
        [("plateA", "A01"), (NASTY_PLATE, "B03")])


def test_bad_input_gets_a_4xx_and_one_line(indexed: tuple[Index, Path]) -> None:
    index, _ = indexed
    api = client(index)
    image_id = api.get("/api/plates/plateA").json()["wells"][0]["id"]
    url = f"/api/images/{image_id}/label"
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert one_line_error(api.get("/api/plates/nope"), 404) == "unknown plate 'nope'"
    assert "unknown plate" in one_line_error(
        api.get("/api/plates/nope/history", params={"well": "A01"}), 404)
    assert "missing token" in one_line_error(api.post(url, json={"label": "clear"}), 401)
    assert one_line_error(api.post(url, json={"label": "clear"},
                                   headers={"Authorization": "Bearer wrong"}), 403) \
        == "wrong token"
    assert "malformed label" in one_line_error(
        api.post(url, json={"label": "<b>clear</b>"}, headers=auth), 400)
    assert "malformed label" in one_line_error(
        api.post(url, json={"label": "dragons"}, headers=auth), 400)
    assert "malformed label" in one_line_error(api.post(url, json=["clear"], headers=auth), 400)
    assert "not JSON" in one_line_error(api.post(url, content=b"{", headers=auth), 400)
    assert "malformed who" in one_line_error(
        api.post(url, json={"label": "clear", "who": "x" * 300}, headers=auth), 400)
    assert "no image" in one_line_error(
        api.post("/api/images/999999/label", json={"label": "clear"}, headers=auth), 404)
    assert "min_score" in one_line_error(api.get("/api/hits", params={"min_score": "nan"}), 400)
    assert index.image(image_id)["human_label"] is None  # nothing above wrote anything
    assert "writing is off" in one_line_error(
        client(index, token=None).post(url, json={"label": "clear"}, headers=auth), 403)

    done = api.post(url, json={"label": "other", "who": "ana"}, headers=auth)
    assert done.status_code == 200 and done.json()["effective_label"] == "other"
    row = index.image(image_id)
    assert (row["human_label"], row["human_by"]) == ("other", "ana")


def test_only_indexed_images_are_served(indexed: tuple[Index, Path], tmp_path: Path) -> None:
    index, _ = indexed
    api = client(index)
    row = index.plate_wells("plateA")[0]
    served = api.get(f"/images/{row['id']}/file")
    assert served.status_code == 200 and served.content == Path(row["path"]).read_bytes()
    for probe in ("/images/999999/file", "/images/..%2F..%2Fetc%2Fpasswd/file",
                  "/static/../app.py", "/static/%2e%2e/app.py", "/images/-1/file"):
        assert api.get(probe).status_code == 404, probe
    # The overlay picture beside it is served (and shown on the well page) while it is a file.
    assert api.get(f"/images/{row['id']}/overlay").status_code == 404
    overlay = Path(f"{row['path']}.edgecrystal.png")
    overlay.write_bytes(b"\x89PNG overlay")
    assert api.get(f"/images/{row['id']}/overlay").content == b"\x89PNG overlay"
    well_page = api.get(f"/plates/plateA/wells/{row['well']}").text
    assert f"/images/{row['id']}/overlay" in well_page
    overlay.unlink()
    os.symlink(tmp_path / "secret.png", overlay)
    assert api.get(f"/images/{row['id']}/overlay").status_code == 404
    # The indexed file replaced by a link to something else: refused, not followed.
    secret = tmp_path / "secret.jpg"
    secret.write_bytes(b"not for the browser")
    image = Path(row["path"])
    image.unlink()
    os.symlink(secret, image)
    assert api.get(f"/images/{row['id']}/file").status_code == 404


def test_pages_escape_names_and_guard_the_host(indexed: tuple[Index, Path]) -> None:
    index, _ = indexed
    api = client(index)
    page = api.get("/")
    assert page.status_code == 200
    assert NASTY_PLATE not in page.text
    assert "&lt;img src=x onerror=alert(1)&gt;" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    # A page asked for under a foreign host name (DNS rebinding) is refused.
    assert api.get("/", headers={"host": "evil.example"}).status_code == 400
    # Beyond localhost, reading needs the token as well.
    remote = client(index, read_open=False, allowed_hosts=("*",))
    assert remote.get("/api/plates").status_code == 401
    assert remote.get("/api/plates",
                      headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200


def test_ui_refuses_other_addresses_without_a_token(tmp_path: Path) -> None:
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "EDGECRYSTAL_UI_TOKEN"}
    done = subprocess.run([sys.executable, "-m", "edgecrystal", "ui", "--host", "0.0.0.0",
                           "--index", f"sqlite:///{tmp_path}/index.db"], env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert done.stderr.strip() == ("edgecrystal: error: --host 0.0.0.0 is reachable from other "
                                   "machines: set a token (EDGECRYSTAL_UI_TOKEN or `token` in "
                                   "--config) first")


@pytest.mark.slow  # TF-free but seconds long: the slow tier keeps the fast one under 2 min
def test_a_link_swapped_in_during_requests_is_never_followed(
        indexed: tuple[Index, Path], tmp_path: Path) -> None:
    """The indexed file is swapped, over and over, between the real picture and a link to a
    secret (atomic renames) while the page is asked for it: every answer is the picture or a
    404, never the secret. The old check-then-reopen served the secret here."""
    import threading

    index, _ = indexed
    api = client(index)
    row = index.plate_wells("plateA")[0]
    image = Path(row["path"])
    picture = image.read_bytes()
    secret = tmp_path / "secret.jpg"
    secret.write_bytes(b"SECRET " * 1000)
    spare_file, spare_link = image.with_name("spare.jpg.tmp"), image.with_name("link.jpg.tmp")
    stop = threading.Event()

    def swap() -> None:
        while not stop.is_set():
            os.link(image, spare_file)          # keep the picture's inode
            os.symlink(secret, spare_link)
            os.replace(spare_link, image)       # the path is now a link to the secret
            os.replace(spare_file, image)       # and the picture again

    swapper = threading.Thread(target=swap, daemon=True)
    swapper.start()
    answers: dict[int, int] = {}
    try:
        for _ in range(400):
            response = api.get(f"/images/{row['id']}/file")
            assert b"SECRET" not in response.content
            if response.status_code == 200:
                assert response.content == picture
            else:
                assert response.status_code == 404, response.text
            answers[response.status_code] = answers.get(response.status_code, 0) + 1
    finally:
        stop.set()
        swapper.join()
    assert answers.get(200), answers  # the picture itself was still served between swaps


def test_hostile_requests_get_a_4xx_not_a_500(indexed: tuple[Index, Path]) -> None:
    index, _ = indexed
    api = client(index)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    huge = "1" * 23  # beyond a 64-bit row id
    for probe in (f"/api/images/{huge}", f"/images/{huge}", f"/images/{huge}/file"):
        assert api.get(probe).status_code == 404, probe
    assert "no image" in one_line_error(
        api.post(f"/api/images/{huge}/label", json={"label": "clear"}, headers=auth), 404)
    image_id = index.plate_wells("plateA")[0]["id"]
    url = f"/api/images/{image_id}/label"
    # Nested too deep for the parser (a RecursionError inside json), within the size limit:
    for body in (b"[" * 20_000, b'{"a":' * 10_000, b"[" * 5_000 + b"]" * 5_000):
        assert "not JSON" in one_line_error(api.post(url, content=body, headers=auth), 400)
    assert "too large" in one_line_error(api.post(url, content=b"[" * 100_000, headers=auth), 413)
    # A body beyond the limit is refused before it is read into memory.
    too_big = b" " * (2 * 1024 * 1024)
    assert "too large" in one_line_error(api.post(url, content=too_big, headers=auth), 413)

    def chunked() -> object:
        for _ in range(64):
            yield b" " * 65536  # no Content-Length: counted as it arrives

    assert "too large" in one_line_error(api.post(url, content=chunked(), headers=auth), 413)
    assert index.image(image_id)["human_label"] is None


def test_ipv6_loopback_answers_its_own_url(indexed: tuple[Index, Path]) -> None:
    index, _ = indexed
    api = TestClient(create_app(index, TOKEN), base_url="http://[::1]:8765")
    assert api.get("/").status_code == 200
    assert api.get("/api/plates").status_code == 200
    assert api.get("/", headers={"host": "[::2]:8765"}).status_code == 400
    assert api.get("/", headers={"host": "evil.example:8765"}).status_code == 400


def test_off_localhost_reads_through_a_cookie_from_a_one_time_link(
        indexed: tuple[Index, Path]) -> None:
    index, _ = indexed
    app = create_app(index, TOKEN, read_open=False, allowed_hosts=("*",))
    browser = TestClient(app, base_url="http://imager.lab:8765")
    assert browser.get("/api/plates").status_code == 401
    link = app.state.login_links.issue()
    assert link.startswith("/login?once=")
    landed = browser.get(link, follow_redirects=False)
    assert landed.status_code == 303 and landed.headers["location"] == "/"
    cookie = landed.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie
    assert browser.get("/api/plates").status_code == 200
    assert browser.get("/").status_code == 200
    row = index.plate_wells("plateA")[0]
    assert browser.get(f"/images/{row['id']}/file").status_code == 200
    # Writing still needs the token: the cookie alone is not enough (no CSRF through it).
    url = f"/api/images/{row['id']}/label"
    assert "missing token" in one_line_error(browser.post(url, json={"label": "clear"}), 401)
    assert browser.post(url, json={"label": "clear"},
                        headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    # The link works once; a second browser, a made-up session or code gets nothing.
    other = TestClient(app, base_url="http://imager.lab:8765")
    assert other.get(link, follow_redirects=False).status_code == 403
    other.cookies.set("edgecrystal_session", "made-up")
    assert other.get("/api/plates").status_code == 401
    assert other.get("/login?once=guess", follow_redirects=False).status_code == 403
    # Whoever holds the token can make a new link for a colleague.
    made = other.post("/api/login-link", headers={"Authorization": f"Bearer {TOKEN}"})
    assert made.status_code == 200
    assert other.get(made.json()["link"], follow_redirects=False).status_code == 303
    assert other.get("/api/plates").status_code == 200
