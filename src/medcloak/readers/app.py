"""The blinded reader web app (FastAPI): one image at a time, answers straight into SQLite.

Endpoints (all JSON errors are ``{"error": "<one line>"}`` with a 4xx status):

=========================  ===================================================================
``GET /``                  the page (plus ``/app.js``, ``/app.css``; nothing from elsewhere)
``POST /api/start``        ``{"token": str}``: start or resume the reader holding that token
``GET /api/next``          header ``X-Reader-Token``: the state of that reader
``POST /api/answer``       ``{"token", "item", "visibility": 1-5, "artery": LCA|RCA|unsure,
                           "stenosis": yes|no|unsure, "elapsed_ms"?}``; returns the next state
``GET /image/{id}``        the PNG of an item id listed in ``items.csv`` (nothing else)
=========================  ===================================================================

Readers are registered beforehand with ``medcloak readers add RUN_DIR NAME``, which prints the
reader's secret token once (only its SHA-256 is stored). Every answer needs the token; a missing,
wrong or unknown token gets the same 401 answer, so the API never tells whether a name exists,
and nobody can continue another reader's session by typing their name.

A state is ``{"reader", "total", "done", "item": {"id", "image"} | null}``; it never holds
the condition, frame or ground truth. A reader's order is a deterministic shuffle keyed by the
run (SHA-256 of ``items.csv``) and the reader's name, so a returning reader gets the same order
and continues at the first item they have not answered.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Literal

from fastapi import FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from medcloak.errors import MedcloakError
from medcloak.readers.db import ANSWERS_DB, AnswerDB, DuplicateAnswer, normalise_name
from medcloak.readers.items import ID_PATTERN, ITEMS_CSV, read_reader_items, readers_dir
from medcloak.readers.page import APP_CSS, APP_JS, INDEX_HTML

__all__ = ["create_app", "reader_order", "run_id"]

_CSP = "default-src 'self'; img-src 'self'; script-src 'self'; style-src 'self'; frame-ancestors 'none'"
_NO_STORE = {"Cache-Control": "no-store"}


class _Start(BaseModel):
    model_config = ConfigDict(extra="forbid")
    token: str = Field(min_length=1, max_length=256)


class _Answer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    token: str = Field(min_length=1, max_length=256)
    item: str = Field(max_length=64)
    visibility: int = Field(ge=1, le=5, strict=True)
    artery: Literal["LCA", "RCA", "unsure"]
    stenosis: Literal["yes", "no", "unsure"]
    elapsed_ms: int | None = Field(default=None, ge=0, le=7 * 24 * 3600 * 1000)


def run_id(items_csv: str | os.PathLike) -> str:
    """Identity of a study run: the first 16 hex digits of SHA-256 over ``items.csv``."""
    return hashlib.sha256(Path(items_csv).read_bytes()).hexdigest()[:16]


def reader_order(name: str, run: str, ids) -> list[str]:
    """The order in which reader ``name`` sees the item ``ids`` of run ``run``.

    A shuffle keyed by SHA-256 of (run, case-folded normalised name, id): deterministic across
    processes and Python versions, different for each reader and each run.
    """
    key = f"{run}\x00{normalise_name(name).casefold()}\x00".encode()
    return sorted(ids, key=lambda i: hashlib.sha256(key + i.encode()).digest())


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=_NO_STORE)


def create_app(run_dir: str | os.PathLike) -> FastAPI:
    """Build the reader app for ``run_dir`` (which must hold ``readers/items.csv``).

    Parameters
    ----------
    run_dir : path-like
        Study output folder; the app reads ``readers/items.csv`` and ``readers/images/`` and
        stores answers in ``readers/answers.sqlite`` (created if missing).

    Raises
    ------
    MedcloakError
        If the items are missing or malformed, or an item's image file is missing.
    """
    base = readers_dir(run_dir)
    items = {it.id: it for it in read_reader_items(run_dir)}
    img_root = (base / "images").resolve()
    images: dict[str, Path] = {}
    for it in items.values():
        p = (base / it.image).resolve()
        if p.parent != img_root or not p.is_file():
            raise MedcloakError(f"image of item {it.id} is missing or outside readers/images", base / it.image)
        images[it.id] = p
    run = run_id(base / ITEMS_CSV)
    db = AnswerDB(base / ANSWERS_DB)
    total = len(items)

    app = FastAPI(title="medcloak reader study", docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        msg = exc.detail if isinstance(exc.detail, str) else "request refused"
        if exc.status_code == 404 and msg == "Not Found":
            msg = f"no such page: {request.url.path}"
        return _error(exc.status_code, msg)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for e in exc.errors():
            loc = ".".join(str(x) for x in e.get("loc", ()) if x not in ("body", "query"))
            parts.append(f"{loc or 'request'}: {e.get('msg', 'invalid')}")
        return _error(422, "invalid answer: " + "; ".join(parts))

    @app.exception_handler(MedcloakError)
    async def _refused(request: Request, exc: MedcloakError) -> JSONResponse:
        return _error(409 if isinstance(exc, DuplicateAnswer) else 422, str(exc))

    @app.middleware("http")
    async def _headers(request: Request, call_next):
        response = await call_next(request)
        response.headers["Content-Security-Policy"] = _CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        return response

    def state(reader_id: int, name: str) -> dict:
        done = db.answered(reader_id)
        nxt = next((i for i in reader_order(name, run, items) if i not in done), None)
        item = None if nxt is None else {"id": nxt, "image": f"/image/{nxt}"}
        return {"reader": name, "total": total, "done": len(done & items.keys()), "item": item}

    def known_reader(token: str | None) -> tuple[int, str]:
        found = db.reader_by_token(token or "")
        if found is None:  # one answer for a missing, wrong or unknown token: no name is confirmed
            raise StarletteHTTPException(401, "unknown reader token; ask the study organiser for yours "
                                              "(medcloak readers add)")
        return found

    @app.get("/", response_class=HTMLResponse)
    def index() -> HTMLResponse:
        return HTMLResponse(INDEX_HTML, headers=_NO_STORE)

    @app.get("/app.js")
    def app_js() -> Response:
        return Response(APP_JS, media_type="text/javascript", headers=_NO_STORE)

    @app.get("/app.css")
    def app_css() -> Response:
        return Response(APP_CSS, media_type="text/css", headers=_NO_STORE)

    @app.get("/favicon.ico")
    def favicon() -> Response:
        return Response(status_code=204)

    @app.post("/api/start")
    def start(body: _Start) -> JSONResponse:
        rid, name = known_reader(body.token)
        return JSONResponse(state(rid, name), headers=_NO_STORE)

    @app.get("/api/next")
    def next_item(x_reader_token: str | None = Header(default=None)) -> JSONResponse:
        rid, name = known_reader(x_reader_token)
        return JSONResponse(state(rid, name), headers=_NO_STORE)

    @app.post("/api/answer")
    def answer(body: _Answer) -> JSONResponse:
        rid, name = known_reader(body.token)
        if body.item not in items:
            raise StarletteHTTPException(404, f"unknown item id {body.item[:64]!r}")
        db.add_answer(rid, body.item, visibility=body.visibility, artery=body.artery,
                      stenosis=body.stenosis, elapsed_ms=body.elapsed_ms)
        return JSONResponse(state(rid, name), headers=_NO_STORE)

    @app.get("/image/{item_id}")
    def image(item_id: str) -> Response:
        if not ID_PATTERN.match(item_id) or item_id not in images:
            raise StarletteHTTPException(404, "unknown image id")
        return Response(images[item_id].read_bytes(), media_type="image/png",
                        headers={"Cache-Control": "private, max-age=3600"})

    app.state.run_dir = Path(run_dir)
    app.state.db = db
    app.state.run_id = run
    return app
