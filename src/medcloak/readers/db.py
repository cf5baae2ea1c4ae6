"""The answers database of a reader study: ``RUN_DIR/readers/answers.sqlite``.

Two tables: ``readers`` (one row per reader name; names compare case-insensitively; the SHA-256
of the reader's secret token, see :meth:`AnswerDB.add_reader`) and ``answers`` (one row per
reader and item, ``UNIQUE(reader_id, item)``). Every answer is
committed in its own transaction the moment it arrives; the database runs in WAL mode with
``synchronous=FULL``, so a crash of the server (or the machine) loses no stored answer.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
import sqlite3
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

from medcloak.errors import MedcloakError

__all__ = [
    "AnswerDB",
    "DuplicateAnswer",
    "normalise_name",
    "ANSWERS_DB",
    "VISIBILITY",
    "ARTERY_ANSWERS",
    "STENOSIS_ANSWERS",
]

ANSWERS_DB = "answers.sqlite"
#: Visibility score range (1 = no vessel recognisable ... 5 = vessels clearly visible).
VISIBILITY = (1, 5)
#: Allowed artery answers ("unsure" = cannot tell).
ARTERY_ANSWERS = ("LCA", "RCA", "unsure")
#: Allowed stenosis answers ("unsure" = cannot tell).
STENOSIS_ANSWERS = ("yes", "no", "unsure")
MAX_NAME = 64

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS readers (
    id      INTEGER PRIMARY KEY,
    name    TEXT NOT NULL UNIQUE COLLATE NOCASE,
    created TEXT NOT NULL,
    token_sha256 TEXT
);
CREATE TABLE IF NOT EXISTS answers (
    id         INTEGER PRIMARY KEY,
    reader_id  INTEGER NOT NULL REFERENCES readers(id),
    item       TEXT NOT NULL,
    visibility INTEGER NOT NULL CHECK (visibility BETWEEN {VISIBILITY[0]} AND {VISIBILITY[1]}),
    artery     TEXT NOT NULL CHECK (artery IN {ARTERY_ANSWERS}),
    stenosis   TEXT NOT NULL CHECK (stenosis IN {STENOSIS_ANSWERS}),
    elapsed_ms INTEGER,
    created    TEXT NOT NULL,
    UNIQUE (reader_id, item)
);
"""


class DuplicateAnswer(MedcloakError):
    """The reader has already answered this item (answers are never overwritten)."""


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


def normalise_name(name: str) -> str:
    """A reader name with surrounding space removed and inner runs of space collapsed.

    Raises
    ------
    MedcloakError
        If the name is empty, longer than 64 characters or holds control characters.
    """
    clean = " ".join(str(name).split())
    if not clean or len(clean) > MAX_NAME or not clean.isprintable():
        raise MedcloakError(f"reader name must be 1-{MAX_NAME} printable characters")
    return clean


class AnswerDB:
    """Readers and their answers in one SQLite file (created on first use).

    Each method opens its own short-lived connection, so one object can be shared by the
    threads of a web server.

    Parameters
    ----------
    path : path-like
        The database file, normally ``RUN_DIR/readers/answers.sqlite``.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with self._connect() as con:
                con.execute("PRAGMA journal_mode=WAL")
                con.executescript(_SCHEMA)
                columns = {r[1] for r in con.execute("PRAGMA table_info(readers)")}
                if "token_sha256" not in columns:  # a database from before reader tokens
                    con.execute("ALTER TABLE readers ADD COLUMN token_sha256 TEXT")
        except sqlite3.DatabaseError as exc:
            raise MedcloakError(f"not a usable answers database: {exc}", self.path) from None

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        con = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            con.execute("PRAGMA synchronous=FULL")
            con.execute("PRAGMA foreign_keys=ON")
            yield con
        finally:
            con.close()

    def reader(self, name: str, *, create: bool = True) -> tuple[int, str] | None:
        """``(id, stored name)`` of a reader, created when new (``create=True``), else None."""
        name = normalise_name(name)
        with self._connect() as con:
            row = con.execute("SELECT id, name FROM readers WHERE name = ?", (name,)).fetchone()
            if row is None and create:
                con.execute("INSERT OR IGNORE INTO readers (name, created) VALUES (?, ?)", (name, _now()))
                row = con.execute("SELECT id, name FROM readers WHERE name = ?", (name,)).fetchone()
        return None if row is None else (int(row[0]), str(row[1]))

    def add_reader(self, name: str, *, new_token: bool = False) -> str:
        """Register reader ``name`` and return their secret token (printed once, stored hashed).

        Parameters
        ----------
        name : str
            The reader's name (case-insensitive; shown in the export).
        new_token : bool
            Issue a new token for a reader who exists (the old one stops working).

        Raises
        ------
        MedcloakError
            If the reader exists already and ``new_token`` is False.
        """
        name = normalise_name(name)
        token = secrets.token_urlsafe(18)
        digest = _token_digest(token)
        with self._connect() as con:
            row = con.execute("SELECT id, token_sha256 FROM readers WHERE name = ?", (name,)).fetchone()
            if row is not None and row[1] and not new_token:
                raise MedcloakError(f"reader {name!r} exists already; pass --new-token to replace their token")
            if row is None:
                con.execute("INSERT INTO readers (name, created, token_sha256) VALUES (?, ?, ?)", (name, _now(), digest))
            else:
                con.execute("UPDATE readers SET token_sha256 = ? WHERE id = ?", (digest, row[0]))
        return token

    def reader_by_token(self, token: str) -> tuple[int, str] | None:
        """``(id, name)`` of the reader holding ``token``, else None (unknown or empty token)."""
        if not isinstance(token, str) or not 8 <= len(token) <= 256:
            return None
        digest = _token_digest(token)
        with self._connect() as con:
            row = con.execute("SELECT id, name, token_sha256 FROM readers WHERE token_sha256 = ?", (digest,)).fetchone()
        if row is None or not hmac.compare_digest(str(row[2]), digest):
            return None
        return int(row[0]), str(row[1])

    def answered(self, reader_id: int) -> set[str]:
        """Item ids the reader has answered."""
        with self._connect() as con:
            return {r[0] for r in con.execute("SELECT item FROM answers WHERE reader_id = ?", (reader_id,))}

    def add_answer(
        self,
        reader_id: int,
        item: str,
        *,
        visibility: int,
        artery: str,
        stenosis: str,
        elapsed_ms: int | None = None,
    ) -> None:
        """Store one answer and commit it at once.

        Raises
        ------
        DuplicateAnswer
            If this reader already answered ``item``.
        MedcloakError
            If a value is out of range (the database checks it too).
        """
        if isinstance(visibility, bool) or not isinstance(visibility, int) or not VISIBILITY[0] <= visibility <= VISIBILITY[1]:
            raise MedcloakError(f"visibility must be an integer {VISIBILITY[0]}-{VISIBILITY[1]}, got {visibility!r}")
        if artery not in ARTERY_ANSWERS:
            raise MedcloakError(f"artery must be one of {', '.join(ARTERY_ANSWERS)}, got {artery!r}")
        if stenosis not in STENOSIS_ANSWERS:
            raise MedcloakError(f"stenosis must be one of {', '.join(STENOSIS_ANSWERS)}, got {stenosis!r}")
        with self._connect() as con:
            try:
                con.execute(
                    "INSERT INTO answers (reader_id, item, visibility, artery, stenosis, elapsed_ms, created)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (reader_id, item, visibility, artery, stenosis, elapsed_ms, _now()),
                )
            except sqlite3.IntegrityError as exc:
                if "UNIQUE" in str(exc):
                    raise DuplicateAnswer(f"item {item} was already answered by this reader") from None
                raise MedcloakError(f"answer refused by the database: {exc}", self.path) from None

    def all_answers(self) -> list[dict]:
        """Every answer joined with its reader's name, in the order stored."""
        with self._connect() as con:
            con.row_factory = sqlite3.Row
            rows = con.execute(
                "SELECT r.name AS reader, a.item, a.visibility, a.artery, a.stenosis, a.elapsed_ms, a.created"
                " FROM answers a JOIN readers r ON r.id = a.reader_id ORDER BY a.id"
            ).fetchall()
        return [dict(r) for r in rows]

    def readers(self) -> list[str]:
        """All reader names, in the order they started."""
        with self._connect() as con:
            return [r[0] for r in con.execute("SELECT name FROM readers ORDER BY id")]
