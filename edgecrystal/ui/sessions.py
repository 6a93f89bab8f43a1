"""Reading the review page off localhost in a browser: a one-time link sets a session cookie.

Beyond localhost every request needs the token, and a browser cannot add an Authorization
header to a page it is opening. So `edgecrystal ui` prints a link with a one-time code (and
`POST /api/login-link` with the token makes another): opening it sets an HttpOnly cookie that
lets that browser read. Writing still needs the token in the header, which a cross-site form
cannot send, so the cookie opens no way to forge a label (SameSite=Lax keeps links from mail or
chat working for reads; it is never enough to write).
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time

COOKIE = "edgecrystal_session"
LINK_LIFETIME_S = 24 * 3600
SESSION_LIFETIME_S = 12 * 3600


class LoginLinks:
    """One-time codes and the sessions they turned into, in memory: a restart signs everyone
    out, which is the safe direction."""

    def __init__(self) -> None:
        self._codes: dict[str, float] = {}
        self._sessions: dict[str, float] = {}
        self._lock = threading.Lock()

    def issue(self) -> str:
        """A new link (a path: the caller knows its host): good once, for a day."""
        code = secrets.token_urlsafe(24)
        with self._lock:
            self._codes[code] = time.monotonic() + LINK_LIFETIME_S
        return f"/login?once={code}"

    def redeem(self, code: str) -> str | None:
        """A new session id for a code not used or expired yet; the code is spent."""
        now = time.monotonic()
        with self._lock:
            expires = self._codes.pop(code, None) if code else None
            if expires is None or expires < now:
                return None
            session = secrets.token_urlsafe(32)
            self._sessions[session] = now + SESSION_LIFETIME_S
            return session

    def is_session(self, session: str) -> bool:
        now = time.monotonic()
        with self._lock:
            self._sessions = {s: t for s, t in self._sessions.items() if t >= now}
            return any(hmac.compare_digest(session.encode(), known.encode())
                       for known in self._sessions)
