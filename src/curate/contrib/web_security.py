"""What `curate_router` does so a browser cannot be turned against it.

- `cross_site_guard`: a dependency for every state-changing endpoint. A browser attaches
  cookies and cached HTTP credentials to a request another site starts (an HTML form, a
  no-cors ``fetch``), so the auth dependency alone cannot tell the admin's click from a
  page that made the admin's browser post. The guard refuses what only another site
  sends: an ``Origin`` not this site's (403), ``Sec-Fetch-Site`` other than
  ``same-origin``/``none`` (403), and any content type but JSON (415), which a page of
  another origin cannot send without a CORS preflight, whatever headers its browser adds.
- `redact_secrets`, `redact_report`, `redact_item`, `redact_attempts`: error texts are the services'
  exception messages, which quote what the code had at hand (addresses, tokens, URLs
  with passwords); the router passes each one through a redaction before it leaves the
  process.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import replace
from urllib.parse import urlsplit

from fastapi import HTTPException, Request

from curate.operations import Attempt, ItemState, StatusReport

Origin = tuple[str, str, int]
"""scheme, host, port: an origin with the default port spelled out, for comparing."""

_DEFAULT_PORTS = {"http": 80, "https": 443}
_SAFE_FETCH_SITES = frozenset({"same-origin", "none"})  # none: the user's own navigation
JSON_MEDIA_TYPE = "application/json"


def parse_origin(text: str) -> Origin | None:
    """``text`` as an origin (``https://host[:port]``), or None when it is not one
    (``null``, a path, an unknown scheme, a bad port)."""
    try:
        parts = urlsplit(text.strip())
        port = parts.port
    except ValueError:
        return None
    scheme, host = parts.scheme.lower(), (parts.hostname or "")
    if scheme not in _DEFAULT_PORTS or not host or parts.path not in ("", "/"):
        return None
    if parts.query or parts.fragment or parts.username is not None:
        return None
    return scheme, host, port if port is not None else _DEFAULT_PORTS[scheme]


def cross_site_guard(
    allowed_origins: Iterable[str] = (),
) -> Callable[[Request], Awaitable[None]]:
    """A dependency refusing a request another site may have started; ``allowed_origins``:
    other origins whose pages may post (the dashboard served under another host name,
    say). Raises `ValueError` for an entry that is not an origin."""
    allowed: set[Origin] = set()
    for text in allowed_origins:
        origin = parse_origin(text)
        if origin is None:
            raise ValueError(f"allowed_origins: {text!r} is not an origin (https://host[:port])")
        allowed.add(origin)

    async def refuse_cross_site(request: Request) -> None:  # async: no thread pool hop
        sent = request.headers.get("origin")
        own = f"{request.url.scheme}://{request.url.netloc}"
        origin = parse_origin(sent) if sent is not None else None
        ours = origin is not None and origin == parse_origin(own)
        if sent is not None and not ours and origin not in allowed:
            raise HTTPException(
                status_code=403,
                detail=(
                    f"cross-origin request refused: Origin {sent} is not {own}"
                    " (behind a proxy, pass the public origin in allowed_origins)"
                ),
            )
        site = request.headers.get("sec-fetch-site")
        if site is not None and site not in _SAFE_FETCH_SITES and origin not in allowed:
            raise HTTPException(
                status_code=403, detail=f"cross-site request refused (Sec-Fetch-Site: {site})"
            )
        media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type != JSON_MEDIA_TYPE:
            raise HTTPException(
                status_code=415,
                detail=f"send Content-Type: {JSON_MEDIA_TYPE} (the body may be empty)",
            )

    return refuse_cross_site


# --- redaction ------------------------------------------------------------------------------

_MASK = "<redacted>"
_SECRET_NAME = (
    r"[\w-]*?(?:token|secret|password|passwd|pwd|api[_-]?key|apikey|access[_-]?key"
    r"|private[_-]?key|authorization|session[_-]?id|signature)"
)
_SECRET_VALUE = r"(?:\"[^\"]*\"|'[^']*'|(?:(?:Bearer|Basic|Digest)\s+)?[^\s\"'&,;]+)"
_REDACTIONS: tuple[tuple[re.Pattern[str], str], ...] = (
    # https://user:password@host: the credentials before the host.
    (re.compile(r"(?<=://)[^/\s:@]+:[^/\s@]+@"), f"{_MASK}@"),
    # token=..., "password": "...", X-Api-Key: ..., Authorization: Basic ...
    (
        re.compile(rf"(?<![\w-])({_SECRET_NAME})([\"']?\s*[=:]\s*){_SECRET_VALUE}", re.IGNORECASE),
        rf"\1\2{_MASK}",
    ),
    (re.compile(r"\bBearer\s+[\w.~+/=-]+", re.IGNORECASE), f"Bearer {_MASK}"),
    (re.compile(r"\beyJ[\w-]+\.[\w-]+\.[\w-]+"), _MASK),  # a JWT
    (re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"), "<email>"),
)


def redact_secrets(text: str) -> str:
    """``text`` with e-mail addresses, credentials in URLs, ``Bearer`` tokens, JWTs and
    the values of ``token=``, ``password:``, ``api_key=``, ``Authorization:`` and their
    kin masked. A best effort against the common leaks, not a guarantee: an app that
    knows its own secrets' shapes passes its own function as ``redact_error``."""
    for pattern, replacement in _REDACTIONS:
        text = pattern.sub(replacement, text)
    return text


def redact_report(report: StatusReport, redact: Callable[[str], str]) -> StatusReport:
    """``report`` with every error group's message and example passed through ``redact``."""
    return replace(
        report,
        workflows=[
            replace(
                status,
                errors=[
                    replace(group, message=redact(group.message), example=redact(group.example))
                    for group in status.errors
                ],
            )
            for status in report.workflows
        ],
    )


def redact_item(item: ItemState, redact: Callable[[str], str]) -> ItemState:
    """``item`` with its error passed through ``redact``."""
    return item if item.error is None else replace(item, error=redact(item.error))


def redact_attempts(attempts: list[Attempt], redact: Callable[[str], str]) -> list[Attempt]:
    """``attempts`` with their errors and tracebacks (whose source lines may quote values
    too) passed through ``redact``."""
    return [
        replace(
            attempt,
            error=None if attempt.error is None else redact(attempt.error),
            traceback=None if attempt.traceback is None else redact(attempt.traceback),
        )
        for attempt in attempts
    ]
