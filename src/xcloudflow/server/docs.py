"""The interactive API docs (Swagger UI at /api/docs), served entirely by this server.

FastAPI's default page loads Swagger UI from a CDN and its favicon from fastapi.tiangolo.com, so it is
blank on a network without Internet access. Here the page names only same-origin URLs: the vendored
files of `static/swagger-ui` (version and license in its VERSIONS.md) under /api/docs/assets, and the
OpenAPI document; Swagger UI's online validator (an image from validator.swagger.io) is switched off.
ReDoc is not served. Nothing here needs a token: the page and its assets are public, the OpenAPI
document is what FastAPI serves anyway.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

DOCS_PATH = "/api/docs"
ASSETS_PATH = f"{DOCS_PATH}/assets"
ASSETS_DIR = Path(__file__).resolve().parent / "static" / "swagger-ui"


def install(app: FastAPI) -> None:
    """Add /api/docs and its assets to `app` (built with `docs_url=None`, `redoc_url=None`)."""
    app.mount(ASSETS_PATH, StaticFiles(directory=ASSETS_DIR), name="api-docs-assets")

    @app.get(DOCS_PATH, include_in_schema=False)
    def api_docs(request: Request) -> HTMLResponse:
        root = str(request.scope.get("root_path", "")).rstrip("/")
        return get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} API",
            swagger_js_url=f"{root}{ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS_PATH}/favicon-32x32.png",
            swagger_ui_parameters={"validatorUrl": None},
        )
