"""The reader web app in a real browser: headless Debian Chromium driven by Playwright.

Skips when Playwright or a ``chromium`` binary is missing, unless ``MEDCLOAK_REQUIRE_BROWSER=1``
(CI sets it), in which case it fails. Playwright's own browser download is not used.

``MEDCLOAK_READERS_SCREENSHOT=docs/img/readers.png`` also writes the screenshot of the docs
(a 128 px run, so the frame on screen is a real-looking one).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path

import pytest

from medcloak.keys import Key
from medcloak.obfuscation.mapping import IntensityMap
from medcloak.readers import read_reader_items, write_reader_items
from medcloak.synth import generate
from readers_server import live_server

REQUIRED = os.environ.get("MEDCLOAK_REQUIRE_BROWSER") == "1"


def _need(what: str):
    if REQUIRED:
        pytest.fail(f"MEDCLOAK_REQUIRE_BROWSER=1 but {what}")
    pytest.skip(what, allow_module_level=True)


try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:  # pragma: no cover - depends on the machine
    _need("playwright is not installed")
try:
    import uvicorn  # noqa: F401  (readers_server needs it)

    from medcloak.readers.app import create_app, reader_order
    from medcloak.readers.db import AnswerDB
except ImportError:  # pragma: no cover
    _need("fastapi/uvicorn are not installed")

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
N = 12


def make_run(root: Path, *, size: int = 32) -> None:
    data = generate(N, size=size, seed=0)
    fake = IntensityMap.from_key(Key(bytes(range(32))), levels=32)(data.frames)
    write_reader_items(root, {"original": data.frames, "obfuscated": fake},
                       artery=data.labels, stenosis=list(data.stenosis))



@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        _need("no chromium binary on PATH (apt-get install chromium)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield b
        finally:
            b.close()


def wait_loaded(page, k: int) -> str:
    """Wait until image ``k`` (1-based) is on screen and answerable; return its item id."""
    expect(page.locator("#progress")).to_have_text(f"Image {k} of {2 * N}")
    img = page.locator('#image[data-ready="1"]')
    expect(img).to_be_visible()
    assert page.evaluate("document.getElementById('image').naturalWidth") >= 256
    return img.get_attribute("data-item")


def test_reader_answers_with_keyboard_and_mouse_reloads_and_resumes(browser, tmp_path):
    make_run(tmp_path)
    ids = [it.id for it in read_reader_items(tmp_path)]
    token = AnswerDB(tmp_path / "readers" / "answers.sqlite").add_reader("Dr Reader")
    app = create_app(tmp_path)
    order = reader_order("Dr Reader", app.state.run_id, ids)
    errors: list[str] = []
    with live_server(app) as port:
        url = f"http://127.0.0.1:{port}"
        page = browser.new_page(viewport={"width": 1200, "height": 800})
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("response", lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 else None)
        page.goto(url)
        page.fill("#token", token)
        page.click("#start")
        assert wait_loaded(page, 1) == order[0]
        submit = page.locator("#submit")
        expect(submit).to_be_disabled()

        # 1: keyboard only
        for key in ("4", "l", "y"):
            page.keyboard.press(key)
        page.keyboard.press("n")  # change of mind: the last key wins
        expect(page.locator('button[data-q="visibility"][data-v="4"]')).to_have_attribute("aria-pressed", "true")
        expect(page.locator('button[data-q="stenosis"][data-v="yes"]')).to_have_attribute("aria-pressed", "false")
        expect(submit).to_be_enabled()
        page.keyboard.press("Enter")
        assert wait_loaded(page, 2) == order[1]

        # 2: mouse only
        page.click('button[data-q="visibility"][data-v="2"]')
        page.click('button[data-q="artery"][data-v="RCA"]')
        expect(submit).to_be_disabled()  # stenosis still missing
        page.click('button[data-q="stenosis"][data-v="unsure"]')
        submit.click()
        assert wait_loaded(page, 3) == order[2]

        # 3: mouse clicks, then Enter (the clicked button keeps focus: Enter must submit once)
        page.click('button[data-q="visibility"][data-v="5"]')
        page.keyboard.press("c")
        page.click('button[data-q="stenosis"][data-v="no"]')
        page.keyboard.press("Enter")
        assert wait_loaded(page, 4) == order[3]

        # reload: the same reader continues at item 4
        page.reload()
        assert wait_loaded(page, 4) == order[3]
        expect(page.locator("#who")).to_have_text("Reader: Dr Reader")

        # another reader on the same browser, then back by typing the code (the name alone opens nothing)
        page.click("#switch")
        expect(page.locator("#login")).to_be_visible()
        page.fill("#token", "Dr Reader")
        page.keyboard.press("Enter")
        expect(page.locator("#login-message")).to_contain_text("unknown reader token")
        errors.clear()  # the 401 above is the expected refusal
        page.fill("#token", token)
        page.keyboard.press("Enter")
        assert wait_loaded(page, 4) == order[3]
        page.close()

    con = sqlite3.connect(tmp_path / "readers" / "answers.sqlite")
    rows = con.execute("SELECT r.name, a.item, a.visibility, a.artery, a.stenosis, a.elapsed_ms"
                       " FROM answers a JOIN readers r ON r.id = a.reader_id ORDER BY a.id").fetchall()
    con.close()
    assert [r[:5] for r in rows] == [
        ("Dr Reader", order[0], 4, "LCA", "no"),
        ("Dr Reader", order[1], 2, "RCA", "unsure"),
        ("Dr Reader", order[2], 5, "unsure", "no"),
    ]
    assert all(r[5] is not None and r[5] >= 0 for r in rows)
    assert errors == []


def test_refusal_message_is_shown(browser, tmp_path):
    make_run(tmp_path)
    with live_server(create_app(tmp_path)) as port:
        url = f"http://127.0.0.1:{port}"
        page = browser.new_page()
        page.goto(url)
        page.fill("#token", "   ")
        page.evaluate("document.getElementById('token').removeAttribute('required')")
        page.click("#start")
        expect(page.locator("#login-message")).to_contain_text("token")
        page.close()


@pytest.mark.skipif(not os.environ.get("MEDCLOAK_READERS_SCREENSHOT"), reason="MEDCLOAK_READERS_SCREENSHOT not set")
def test_screenshot(browser, tmp_path):
    make_run(tmp_path, size=128)
    out = Path(os.environ["MEDCLOAK_READERS_SCREENSHOT"])
    with live_server(create_app(tmp_path)) as port:
        url = f"http://127.0.0.1:{port}"
        page = browser.new_page(viewport={"width": 1100, "height": 640})
        page.goto(url)
        page.fill("#token", AnswerDB(tmp_path / "readers" / "answers.sqlite").add_reader("Dr Example"))
        page.click("#start")
        wait_loaded(page, 1)
        for k, keys in enumerate([("4", "l", "n", "Enter"), ("3", "r", "n", "Enter"), ("4", "l")], start=1):
            for key in keys:
                page.keyboard.press(key)
            wait_loaded(page, k + 1 if "Enter" in keys else k)
        page.keyboard.press("n")
        page.mouse.move(1090, 630)  # no hover highlight in the picture
        out.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(out))
        page.close()
