"""What the demo's services share in the process: one HTTP client (one connection pool).

The runner (or the app's lifespan) sets it once the site is serving; services read it
with `get_context()`. Where to fetch is on the rows themselves (absolute URLs), so any
process running the workflows can work on any row.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from curate.errors import NonRetryableError


class ServerError(Exception):
    """The site answered 5xx: it may do better later, so the workflow retries."""


@dataclass(frozen=True)
class DemoContext:
    http: httpx.AsyncClient

    async def fetch_text(self, url: str) -> str:
        """GET ``url``'s text. A 4xx answer is final (`NonRetryableError`); a 5xx answer
        (`ServerError`) and network errors are retried by the workflow's retry policy."""
        response = await self.http.get(url)
        if response.is_error:
            message = f"GET {url} answered {response.status_code} {response.reason_phrase}"
            if response.is_client_error:
                raise NonRetryableError(message)
            raise ServerError(message)
        return response.text


_context: DemoContext | None = None


def set_context(context: DemoContext | None) -> None:
    global _context
    _context = context


def get_context() -> DemoContext:
    if _context is None:
        raise RuntimeError(
            "the demo context is not set: start the pipeline with curate.demo.runner.run_demo"
            " or the demo app, which serve the site and set it"
        )
    return _context
