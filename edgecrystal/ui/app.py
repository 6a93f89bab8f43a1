"""The review page: server-rendered HTML (Jinja2, autoescaped), a little hand-written JS, and a
JSON API under /api/ (Starlette). Reads are open on localhost; writing a label needs the token.

Only images the index holds are served, by their row id: a request never names a path. A path
whose real location changed since it was indexed (a link swapped in, the file moved) is refused:
the file is opened once without following any link and that descriptor is served (files.py).
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import math
import os
import re
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import jinja2
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .. import DEFAULT_CLASSES
from ..errors import ImageError
from ..imageio import is_image_name
from ..index.history import drop_histories
from ..index.rows import ImageRow
from ..index.store import Index, UnknownPlate, effective_label, is_hit
from ..results import OVERLAY_SUFFIX
from .crystals import crystals_of
from .files import OpenedFileResponse, open_without_links
from .plate_grid import plate_grid
from .sessions import COOKIE, SESSION_LIFETIME_S, LoginLinks
from .thumbs import drop_thumbnail

HERE = Path(__file__).resolve().parent
LABEL_PATTERN = re.compile(r"[a-z][a-z0-9_-]{0,31}")
WHO_PATTERN = re.compile(r"[\w .@-]{1,128}")
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
MAX_BODY = 64 * 1024  # a label is a few dozen bytes; nothing larger is read into memory
MAX_ROW_ID = 2**63 - 1  # SQLite's and PostgreSQL's largest row id


class ApiError(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def create_app(index: Index, token: str | None, *, read_open: bool = True,
               allowed_hosts: tuple[str, ...] = LOOPBACK_NAMES) -> Starlette:
    """The review app over an open index. `read_open` False: reading needs the token too
    (bound beyond localhost). `allowed_hosts` guards against DNS rebinding."""
    login_links = LoginLinks()
    pages = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"),
                               autoescape=True, undefined=jinja2.StrictUndefined)
    pages.filters["q"] = lambda text: quote(str(text), safe="")
    pages.filters["score"] = lambda value: "" if value is None else f"{value:.2f}"
    pages.filters["when"] = lambda value: value.strftime("%Y-%m-%d %H:%M") if value else ""
    pages.globals["label_of"] = effective_label
    pages.globals["is_hit"] = is_hit
    pages.globals["crystals_of"] = crystals_of
    pages.globals["has_overlay"] = lambda row: (
        (path := safe_image_path(row["path"])) is not None and overlay_of(path) is not None)

    def render(name: str, **context: object) -> HTMLResponse:
        context.setdefault("labels", label_choices(index))
        return HTMLResponse(pages.get_template(name).render(**context))

    def check_token(request: Request) -> None:
        if not token:
            raise ApiError(403, "writing is off: set EDGECRYSTAL_UI_TOKEN or `token` in the "
                                "ui config")
        given = request.headers.get("authorization", "")
        if not given.startswith("Bearer ") or not given[7:].strip():
            raise ApiError(401, "missing token: send the header Authorization: Bearer TOKEN")
        if not hmac.compare_digest(given[7:].strip().encode(), token.encode()):
            raise ApiError(403, "wrong token")

    # ------------------------------------------------------------------ pages
    def plates_page(request: Request) -> Response:
        return render("plates.html", plates=index.plates())

    def plate_page(request: Request) -> Response:
        plate = request.path_params["plate"]
        rows = index.plate_wells(plate)
        return render("plate.html", plate=plate, grid=plate_grid(rows),
                      not_understood=[r for r in rows if not r["well"]])

    def well_page(request: Request) -> Response:
        plate, well = request.path_params["plate"], request.path_params["well"]
        histories = drop_histories(index.history(plate, well))
        return render("well.html", plate=plate, well=well, histories=histories)

    def indexed(request: Request) -> ImageRow:
        image_id = request.path_params["image_id"]
        row = index.image(image_id) if 0 <= image_id <= MAX_ROW_ID else None
        if row is None:
            raise ApiError(404, "no such image in the index")
        return row

    def image_page(request: Request) -> Response:
        row = indexed(request)
        return render("image.html", row=row)

    def hits_page(request: Request) -> Response:
        class_name, min_score = hits_query(request)
        if by_threshold(request, class_name):
            return render("hits.html", hits=index.crystal_hits(limit=200),
                          class_name=class_name, min_score=min_score, by_threshold=True)
        return render("hits.html", hits=index.hits(class_name, min_score, limit=200),
                      class_name=class_name, min_score=min_score, by_threshold=False)

    def queue_page(request: Request) -> Response:
        return render("queue.html", rows=index.uncertain_queue(limit=200))

    def queue_next(request: Request) -> Response:
        """The next uncertain drop nobody has labelled (not `after`, the one just seen)."""
        after = request.query_params.get("after", "")
        rows = index.uncertain_queue(limit=1, after=int(after) if after.isdigit() else None)
        target = f"/images/{rows[0]['id']}?queue=1" if rows else "/queue"
        return RedirectResponse(target, status_code=303)

    def image_thumb(request: Request) -> Response:
        row = index.image(request.path_params["image_id"])
        if row is None:
            raise ApiError(404, "no such image in the index")
        stored = row["path"]
        # Like the image itself: one open with no link followed, and the thumbnail made from it.
        opened = open_without_links(stored) if is_image_name(os.path.basename(stored)) else None
        if opened is None:
            raise ApiError(404, "the image is no longer where it was indexed")
        try:
            data = drop_thumbnail(opened, stored, box_of(row))
        except (ImageError, OSError) as exc:
            raise ApiError(404, f"no thumbnail: {exc}") from None
        return Response(data, media_type="image/jpeg",
                        headers={"Cache-Control": "private, max-age=60"})

    def image_file(request: Request) -> Response:
        row = indexed(request)
        stored = row["path"]
        # Opened once, no link followed, and that descriptor served: nothing to race.
        opened = open_without_links(stored) if is_image_name(os.path.basename(stored)) else None
        if opened is None:
            raise ApiError(404, "the image is no longer where it was indexed")
        if request.url.path.endswith("/overlay"):
            opened.close()
            stored = f"{stored}{OVERLAY_SUFFIX}"
            opened = open_without_links(stored)
            if opened is None:
                raise ApiError(404, "no overlay picture beside this image")
        return OpenedFileResponse(opened, stored,
                                  headers={"Cache-Control": "private, max-age=60"})

    # ------------------------------------------------------------------ API
    def api_plates(request: Request) -> Response:
        return api_json({"plates": index.plates()})

    def api_plate(request: Request) -> Response:
        plate = request.path_params["plate"]
        return api_json({"plate": plate, "wells": [brief(r) for r in index.plate_wells(plate)]})

    def api_history(request: Request) -> Response:
        plate = request.path_params["plate"]
        well = request.query_params.get("well") or None
        rows = index.history(plate, well)
        return api_json({"plate": plate, "drops": [h.as_dict() for h in drop_histories(rows)]})

    def api_hits(request: Request) -> Response:
        class_name, min_score = hits_query(request)
        if by_threshold(request, class_name):
            return api_json({"class": class_name, "by": "crystals_hit",
                             "hits": [brief(r) for r in index.crystal_hits()]})
        return api_json({"class": class_name, "min_score": min_score,
                         "hits": [brief(r) for r in index.hits(class_name, min_score)]})

    def api_queue(request: Request) -> Response:
        return api_json({"queue": [brief(r) for r in index.uncertain_queue()]})

    def api_image(request: Request) -> Response:
        row = indexed(request)
        # The crystal boxes come from the result file (one small read): only for one image.
        crystals = crystals_of(row)
        return api_json({**brief(row), **(crystals.as_dict() if crystals else
                                           {"crystals": None})})

    async def api_label(request: Request) -> Response:
        check_token(request)
        try:
            body = json.loads(await bounded_body(request) or b"null")
        except (ValueError, RecursionError):  # RecursionError: [[[[... nested too deep
            raise ApiError(400, "the body is not JSON: send {\"label\": \"crystals\"}") from None
        if not isinstance(body, dict) or not isinstance(body.get("label"), str):
            raise ApiError(400, "malformed label: send {\"label\": \"crystals\", "
                                "\"who\": \"NAME\"}")
        label = body["label"]
        choices = label_choices(index)
        if not LABEL_PATTERN.fullmatch(label) or label not in choices:
            raise ApiError(400, f"malformed label {label[:40]!r}: one of {', '.join(choices)}")
        who = body.get("who", "reviewer")
        if not isinstance(who, str) or not WHO_PATTERN.fullmatch(who):
            raise ApiError(400, "malformed who: 1-128 letters, digits, spaces, . @ _ -")
        image_id = request.path_params["image_id"]
        try:
            if not 0 <= image_id <= MAX_ROW_ID:
                raise KeyError(image_id)
            row = index.set_human_label(image_id, label, who)
        except KeyError:
            raise ApiError(404, f"no image {image_id} in the index") from None
        return api_json(brief(row))

    def login(request: Request) -> Response:
        session = login_links.redeem(request.query_params.get("once", ""))
        if session is None:
            raise ApiError(403, "this link was used already, has expired or was not made here: "
                                "ask for a new one (edgecrystal ui prints one; POST "
                                "/api/login-link with the token makes another)")
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(COOKIE, session, max_age=SESSION_LIFETIME_S, httponly=True,
                            samesite="lax", path="/")
        return response

    def api_login_link(request: Request) -> Response:
        check_token(request)
        return api_json({"link": login_links.issue()})

    def hits_query(request: Request) -> tuple[str, float]:
        class_name = request.query_params.get("class", "crystals")
        if not LABEL_PATTERN.fullmatch(class_name):
            raise ApiError(400, f"malformed class {class_name[:40]!r}")
        try:
            min_score = float(request.query_params.get("min_score") or "0.5")
        except ValueError:
            raise ApiError(400, "min_score must be a number from 0 to 1") from None
        if not (math.isfinite(min_score) and 0.0 <= min_score <= 1.0):
            raise ApiError(400, "min_score must be a number from 0 to 1")
        return class_name, min_score

    def by_threshold(request: Request, class_name: str) -> bool:
        """Crystals without a score asked for: the hit list by the bundle's operating threshold
        (each result's crystals_hit) and people's labels."""
        return class_name == "crystals" and not request.query_params.get("min_score")

    # ------------------------------------------------------------------ errors, headers
    async def on_api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return error_response(request, exc.status, exc.reason)

    async def on_unknown_plate(request: Request, exc: Exception) -> Response:
        return error_response(request, 404, str(exc))

    async def on_not_found(request: Request, exc: Exception) -> Response:
        return error_response(request, getattr(exc, "status_code", 404),
                              str(getattr(exc, "detail", "not found")))

    routes = [
        Route("/", plates_page),
        Route("/plates/{plate}", plate_page),
        Route("/plates/{plate}/wells/{well}", well_page),
        Route("/images/{image_id:int}", image_page),
        Route("/images/{image_id:int}/file", image_file),
        Route("/images/{image_id:int}/overlay", image_file),
        Route("/images/{image_id:int}/thumb", image_thumb),
        Route("/hits", hits_page),
        Route("/queue", queue_page),
        Route("/queue/next", queue_next),
        Route("/api/queue", api_queue),
        Route("/api/plates", api_plates),
        Route("/api/plates/{plate}", api_plate),
        Route("/api/plates/{plate}/history", api_history),
        Route("/api/hits", api_hits),
        Route("/api/images/{image_id:int}", api_image),
        Route("/api/images/{image_id:int}/label", api_label, methods=["POST"]),
        Route("/login", login),
        Route("/api/login-link", api_login_link, methods=["POST"]),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    app = Starlette(
        routes=routes,
        exception_handlers={ApiError: on_api_error, UnknownPlate: on_unknown_plate,
                            404: on_not_found, 405: on_not_found},
        middleware=[Middleware(_Guard, check_token=check_token, read_open=read_open,
                               allowed_hosts=allowed_hosts, login_links=login_links)])
    app.state.login_links = login_links
    return app


async def bounded_body(request: Request) -> bytes:
    """The request body, refused with 413 once it passes MAX_BODY (by its Content-Length, or
    as it arrives when there is none) instead of being read whole into memory."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY:
        raise ApiError(413, f"body too large: at most {MAX_BODY} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise ApiError(413, f"body too large: at most {MAX_BODY} bytes")
    return bytes(body)


def host_name(header: str) -> str:
    """The name in a Host header, without the port: `[::1]:8765` is ::1 (Starlette's own host
    check cuts at the first colon and so refused the IPv6 page its own printed URL)."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:header.find("]")] if "]" in header else ""
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


class _Guard:
    """Every request: its Host must be one of ours (no DNS rebinding), and security headers on
    every response. With `read_open` False, every request needs the token, except a read from a
    browser holding a session cookie from a one-time link, the link itself, and the stylesheet
    (so that the refusal page still looks like the site)."""

    def __init__(self, app: ASGIApp, check_token: Callable[[Request], None], read_open: bool,
                 allowed_hosts: tuple[str, ...], login_links: LoginLinks) -> None:
        self.app = app
        self.check_token = check_token
        self.read_open = read_open
        self.allowed_hosts = {h.lower() for h in allowed_hosts}
        self.login_links = login_links

    def host_allowed(self, request: Request) -> bool:
        return "*" in self.allowed_hosts or \
            host_name(request.headers.get("host", "")) in self.allowed_hosts

    def may_read(self, request: Request) -> bool:
        if request.url.path in ("/static/review.css", "/login"):
            return True
        return request.method in ("GET", "HEAD") and \
            self.login_links.is_session(request.cookies.get(COOKIE, ""))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        if not self.host_allowed(request):
            await Response("Invalid host header", status_code=400,
                           media_type="text/plain")(scope, receive, send)
            return
        if not self.read_open and not self.may_read(request):
            try:
                self.check_token(request)
            except ApiError as exc:
                await error_response(request, exc.status, exc.reason)(scope, receive, send)
                return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, send_with_headers)


SECURITY_HEADERS = [
    (b"content-security-policy", b"default-src 'self'; img-src 'self'; style-src 'self'; "
     b"script-src 'self'; frame-ancestors 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]


def error_response(request: Request, status: int, reason: str) -> Response:
    """One line: JSON {"error": ...} under /api/, plain text elsewhere."""
    line = " ".join(reason.split())
    if request.url.path.startswith("/api/"):
        return JSONResponse({"error": line}, status_code=status)
    return Response(line + "\n", status_code=status, media_type="text/plain; charset=utf-8")


def api_json(data: object) -> Response:
    return Response(json.dumps(data, default=_json_default, ensure_ascii=False),
                    media_type="application/json")


def _json_default(value: object) -> str:
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(type(value).__name__)


def brief(row: ImageRow) -> dict[str, object]:
    keys = ("id", "plate", "well", "drop_number", "inspection", "inspected_at", "status",
            "label", "human_label", "human_by", "human_at", "scores", "crystals_hit",
            "uncertain", "crystal_count", "largest_crystal_px", "name_layout",
            "name_understood", "name_note", "fingerprint", "backend", "precision")
    out = {key: row.get(key) for key in keys}
    out["effective_label"] = effective_label(row)
    out["hit"] = is_hit(row)
    out["name"] = os.path.basename(row["path"])
    out["box"] = box_of(row)
    return out


def box_of(row: ImageRow) -> list[int] | None:
    x0, y0, x1, y1 = row["box_x0"], row["box_y0"], row["box_x1"], row["box_y1"]
    if x0 is None or y0 is None or x1 is None or y1 is None:
        return None
    return [x0, y0, x1, y1]


def label_choices(index: Index) -> list[str]:
    known = index.known_classes()
    return list(dict.fromkeys([*DEFAULT_CLASSES, *known]))


def overlay_of(image: Path) -> Path | None:
    """The overlay picture score/serve drew beside the image (drop outline and label), if it is
    a plain file in the same folder."""
    overlay = Path(f"{image}{OVERLAY_SUFFIX}")
    if os.path.realpath(overlay) != str(overlay) or not overlay.is_file():
        return None
    return overlay


def safe_image_path(stored: str) -> Path | None:
    """The indexed path if it is still a plain image file at the same real location."""
    if not is_image_name(os.path.basename(stored)) or not os.path.isabs(stored):
        return None
    if os.path.realpath(stored) != stored or not os.path.isfile(stored):
        return None
    return Path(stored)
