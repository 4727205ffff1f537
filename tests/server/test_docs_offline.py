"""/api/docs works air-gapped: every script, style sheet and image the page names is served by this
server (same origin, 200, the right content type), nothing is fetched from another host, ReDoc is not
served, and the vendored files are the recorded upstream ones and ship in the wheel."""

from __future__ import annotations

import hashlib
import re
import tomllib
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit

from fastapi.testclient import TestClient

from xcloudflow.server.app import create_app
from xcloudflow.server.docs import ASSETS_DIR
from xcloudflow.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
BASE = "http://testserver"


class References(HTMLParser):
    """Every URL the page makes a browser load: script src, link href, img src."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[tuple[str, str]] = []
        self.inline: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        for name in ("src", "href"):
            if values.get(name):
                self.urls.append((tag, str(values[name])))
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.inline.append(data)


EXPECTED_TYPES = {"script": "javascript", "link": "text/css", "img": "image/"}


def test_the_api_docs_load_nothing_from_another_host(anon: TestClient) -> None:
    page = anon.get("/api/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    refs = References()
    refs.feed(page.text)
    assert {tag for tag, _ in refs.urls} >= {"script", "link"}
    for tag, url in refs.urls:
        absolute = urljoin(BASE + "/api/docs", url)
        assert urlsplit(absolute).netloc == "testserver", (tag, url)  # same origin
        resp = anon.get(absolute)
        assert resp.status_code == 200, (url, resp.status_code)
        wanted = "image/" if url.endswith(".png") else EXPECTED_TYPES[tag]
        assert wanted in resp.headers["content-type"], (url, resp.headers["content-type"])
        assert len(resp.content) > 0
    # The inline initializer points Swagger UI at our OpenAPI document and names no other host.
    script = "\n".join(refs.inline)
    assert "'/api/openapi.json'" in script or '"/api/openapi.json"' in script
    assert re.search(r"https?://", script) is None, script
    assert '"validatorUrl": null' in script  # Swagger UI's only request to another host, switched off
    assert anon.get("/api/openapi.json").status_code == 200
    for gone in ("/redoc", "/api/redoc", "/docs"):
        assert anon.get(gone).status_code == 404


def test_the_docs_keep_a_proxy_prefix(settings: Settings) -> None:
    app = create_app(settings, maintenance=False)
    with TestClient(app, root_path="/xcf") as client:
        page = client.get("/api/docs")
    assert page.status_code == 200
    refs = References()
    refs.feed(page.text)
    assert all(url.startswith("/xcf/api/docs/assets/") for _, url in refs.urls), refs.urls
    assert "/xcf/api/openapi.json" in page.text


def test_the_vendored_files_are_the_recorded_ones_and_ship_in_the_wheel() -> None:
    notes = (ASSETS_DIR / "VERSIONS.md").read_text()
    assert "swagger-ui-dist" in notes and "Apache-2.0" in notes
    recorded = dict(
        (name, digest) for digest, name in re.findall(r"^\s+([0-9a-f]{64})\s+(\S+)$", notes, re.MULTILINE)
    )
    assert set(recorded) == {"swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png"}
    for name, digest in recorded.items():
        assert hashlib.sha256((ASSETS_DIR / name).read_bytes()).hexdigest() == digest, name
    assert (ASSETS_DIR / "LICENSE").read_text().lstrip().startswith("Apache License")
    # setuptools package-data must match every file of the directory, or an installed server 404s.
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    package = ROOT / "src" / "xcloudflow"
    shipped = {p for pattern in patterns["xcloudflow"] for p in package.glob(pattern) if p.is_file()}
    files = {p for p in ASSETS_DIR.iterdir() if p.is_file()}
    assert files <= shipped, sorted(str(p) for p in files - shipped)
