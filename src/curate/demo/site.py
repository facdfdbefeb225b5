"""The demo's "web": a generated set of sites served over HTTP on 127.0.0.1.

Each domain is a path prefix (``/site-007/``) with a robots.txt listing its sitemaps, the
sitemaps listing its pages, and the pages themselves. The content is a pure function of
`DemoSite`, so the expected outcome of a run is known in advance, including the faults:

- every `MALFORMED_EVERY`-th sitemap is broken XML (sitemap import must end ``Error``);
- every `FLAKY_EVERY`-th article answers 503 to its first request (page curation retries);
- each sitemap lists one tag page, which the import rule leaves unselected.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

DEFAULT_DOMAINS = 20
MALFORMED_EVERY = 7
FLAKY_EVERY = 9
SITEMAP_NAMESPACE = "http://www.sitemaps.org/schemas/sitemap/0.9"
TAG_SEGMENT = "/tag/"

_TEXT = (
    "status driven workflows keep the state of background work on the row it concerns "
    "so the application can see query and correct it with plain sql"
)


@dataclass(frozen=True)
class Document:
    content_type: str
    body: str


@dataclass(frozen=True)
class DemoSite:
    """The shape of the generated web: how many domains, sitemaps and articles."""

    domains: int = DEFAULT_DOMAINS
    sitemaps_per_domain: int = 3
    articles_per_sitemap: int = 7

    def domain_names(self) -> list[str]:
        return [f"site-{d:03d}" for d in range(self.domains)]

    def domain_urls(self, base_url: str) -> dict[str, str]:
        """Each domain's home: ``<base_url>/<name>/``."""
        return {name: f"{base_url}/{name}/" for name in self.domain_names()}

    def _sitemaps(self) -> Iterator[tuple[int, str, int]]:
        """(index over the whole site, domain name, index within the domain)."""
        for domain, name in enumerate(self.domain_names()):
            for sitemap in range(self.sitemaps_per_domain):
                yield domain * self.sitemaps_per_domain + sitemap, name, sitemap

    def _is_malformed(self, sitemap_index: int) -> bool:
        return sitemap_index % MALFORMED_EVERY == MALFORMED_EVERY - 1

    def _is_flaky(self, sitemap_index: int, article: int) -> bool:
        article_index = sitemap_index * self.articles_per_sitemap + article
        return article_index % FLAKY_EVERY == FLAKY_EVERY - 1

    @property
    def sitemap_count(self) -> int:
        return self.domains * self.sitemaps_per_domain

    @property
    def malformed_sitemap_count(self) -> int:
        return sum(self._is_malformed(index) for index, _, _ in self._sitemaps())

    @property
    def tag_page_count(self) -> int:
        """One per well-formed sitemap; the import rule leaves them unselected."""
        return self.sitemap_count - self.malformed_sitemap_count

    @property
    def article_count(self) -> int:
        """Pages that get curated: the articles of the well-formed sitemaps."""
        return self.tag_page_count * self.articles_per_sitemap

    @property
    def flaky_article_count(self) -> int:
        """Articles of well-formed sitemaps that fail once: the expected retries."""
        return sum(
            self._is_flaky(index, article)
            for index, _, _ in self._sitemaps()
            if not self._is_malformed(index)
            for article in range(self.articles_per_sitemap)
        )

    def documents(self, base_url: str) -> dict[str, Document]:
        """Every path the site serves, with its content (URLs in it start ``base_url``)."""
        docs: dict[str, Document] = {}
        for name, home in self.domain_urls(base_url).items():
            robots = "User-agent: *\nAllow: /\n" + "".join(
                f"Sitemap: {home}sitemap-{s}.xml\n" for s in range(self.sitemaps_per_domain)
            )
            docs[f"/{name}/robots.txt"] = Document("text/plain", robots)
        for index, name, sitemap in self._sitemaps():
            tag_path = f"/{name}/s{sitemap}{TAG_SEGMENT}topic-{sitemap}.html"
            docs[tag_path] = _page(f"{name}: topic {sitemap}", 20)
            paths = [tag_path]
            for article in range(self.articles_per_sitemap):
                path = article_path(name, sitemap, article)
                docs[path] = _page(
                    page_title(name, sitemap, article), page_word_count(sitemap, article)
                )
                paths.append(path)
            docs[f"/{name}/sitemap-{sitemap}.xml"] = Document(
                "application/xml",
                _MALFORMED_SITEMAP
                if self._is_malformed(index)
                else _sitemap([base_url + path for path in paths]),
            )
        return docs

    def flaky_paths(self) -> set[str]:
        """Paths that answer 503 to their first request."""
        return {
            article_path(name, sitemap, article)
            for index, name, sitemap in self._sitemaps()
            for article in range(self.articles_per_sitemap)
            if self._is_flaky(index, article)
        }


def article_path(domain_name: str, sitemap: int, article: int) -> str:
    return f"/{domain_name}/s{sitemap}/article-{article}.html"


def page_title(domain_name: str, sitemap: int, article: int) -> str:
    return f"{domain_name}: article {sitemap}.{article}"


def page_word_count(sitemap: int, article: int) -> int:
    return 40 + 15 * sitemap + 25 * article


def _page(title: str, word_count: int) -> Document:
    vocabulary = _TEXT.split()
    words = " ".join(vocabulary[i % len(vocabulary)] for i in range(word_count))
    return Document(
        "text/html",
        f"<!doctype html><html><head><title>{title}</title><style>p {{ margin: 0 }}</style>"
        f"</head><body><p>{words}</p></body></html>",
    )


def _sitemap(urls: list[str]) -> str:
    entries = "".join(f"<url><loc>{url}</loc></url>" for url in urls)
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><urlset xmlns="{SITEMAP_NAMESPACE}">'
        f"{entries}</urlset>"
    )


_MALFORMED_SITEMAP = (
    f'<?xml version="1.0" encoding="UTF-8"?><urlset xmlns="{SITEMAP_NAMESPACE}"><url><loc>unclosed'
)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, site: DemoSite) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        host, port = self.server_address[:2]
        self.base_url = f"http://{host!s}:{port}"
        self.documents = site.documents(self.base_url)
        self.flaky = site.flaky_paths()
        self.lock = threading.Lock()


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        document = self.server.documents.get(self.path)
        with self.server.lock:
            failing = self.path in self.server.flaky
            self.server.flaky.discard(self.path)
        if failing:
            self._send(503, Document("text/plain", "busy, try again later"))
        elif document is None:
            self._send(404, Document("text/plain", "not found"))
        else:
            self._send(200, document)

    def _send(self, status: int, document: Document) -> None:
        body = document.body.encode()
        self.send_response(status)
        self.send_header("Content-Type", f"{document.content_type}; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the workflows log what matters."""


@contextmanager
def serve_site(site: DemoSite) -> Iterator[str]:
    """Serve ``site`` on a free port of 127.0.0.1 in a daemon thread; yield its base URL."""
    server = _Server(site)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield server.base_url
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
