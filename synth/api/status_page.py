"""The status page: a small static HTML page whose script reads the JSON API with the key the visitor enters
(kept in sessionStorage, never in a URL). Data goes into the page as text, never as markup."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

STATIC = Path(__file__).resolve().parent / "static"
# Scripts and styles only from this server; nothing inline, no frames: a record's text can never run as code.
CSP = "; ".join(
    ["default-src 'none'", "script-src 'self'", "style-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"]
)
HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"}

router = APIRouter(include_in_schema=False)


@router.get("/status")
def status_page() -> FileResponse:
    return FileResponse(STATIC / "status.html", media_type="text/html", headers=HEADERS)


@router.get("/status/app.js")
def status_script() -> FileResponse:
    return FileResponse(STATIC / "status.js", media_type="text/javascript", headers=HEADERS)


@router.get("/status/app.css")
def status_style() -> FileResponse:
    return FileResponse(STATIC / "status.css", media_type="text/css", headers=HEADERS)
