"""All of Freight's SQL, in one place.

The database is the single source of truth: downloads, their segments (the byte ranges on disk)
and the settings. It runs in WAL mode so that readers never wait for the checkpoint writer.

Threads: one :class:`Store` holds one connection guarded by a lock. The daemon's loop uses it for
the queue and the API; each transfer commits its checkpoints from its own thread, because a
checkpoint starts with an ``fdatasync`` of the data that must never block the loop. Every method
is one transaction: it either happens whole or not at all.

Schema versions are kept in ``PRAGMA user_version`` and migrated forward by ``MIGRATIONS``; a
database from a newer Freight, or a SQLite file that is not Freight's (``PRAGMA
application_id``), is refused with a clear :class:`StoreError` and left untouched.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple, Protocol

from freight import config
from freight.errors import FreightError, IllegalTransition, InputError, NotFound, StoreError
from freight.headers import with_basic
from freight.models import Download, DownloadState, Segment, can_transition, check_transition
from freight.redact import redact_optional
from freight.urls import split_credentials

#: 'FRGT' — marks the file as Freight's so that a foreign SQLite file is never migrated.
APPLICATION_ID = 0x46524754

#: A download's URL before its query, in SQL: what duplicate candidates are found by (an
#: index on this expression, migration 6; freight.daemon.duplicates.address in Python).
_ADDRESS = "substr(url, 1, instr(url || '?', '?') - 1)"

MIGRATIONS: list[str] = [
    # version 1
    """
    CREATE TABLE downloads (
        id             INTEGER PRIMARY KEY AUTOINCREMENT,
        url            TEXT NOT NULL,
        final_url      TEXT,
        referrer       TEXT,
        mime           TEXT,
        dir            TEXT NOT NULL,
        name           TEXT,
        requested_name TEXT,
        state          TEXT NOT NULL,
        size           INTEGER,
        done           INTEGER NOT NULL DEFAULT 0,
        resumable      INTEGER NOT NULL DEFAULT 0,
        etag           TEXT,
        last_modified  TEXT,
        connections    INTEGER,
        rate_limit     INTEGER,
        checksum       TEXT,
        headers        TEXT NOT NULL DEFAULT '{}',
        sealed_headers BLOB,
        error          TEXT,
        error_kind     TEXT,
        position       INTEGER NOT NULL DEFAULT 0,
        insecure       INTEGER NOT NULL DEFAULT 0,
        created_at     REAL NOT NULL,
        updated_at     REAL NOT NULL,
        finished_at    REAL
    );
    CREATE INDEX downloads_by_state ON downloads (state, position, id);
    CREATE TABLE segments (
        download_id INTEGER NOT NULL REFERENCES downloads (id) ON DELETE CASCADE,
        start       INTEGER NOT NULL,
        end         INTEGER NOT NULL,
        pos         INTEGER NOT NULL,
        PRIMARY KEY (download_id, start)
    ) WITHOUT ROWID;
    CREATE TABLE settings (
        name  TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    """,
    # version 2: progress recorded between synced checkpoints (see save_fast_progress)
    """
    CREATE TABLE fast_progress (
        download_id INTEGER PRIMARY KEY REFERENCES downloads (id) ON DELETE CASCADE,
        boot_id     TEXT NOT NULL,
        segments    TEXT NOT NULL,
        done        INTEGER NOT NULL
    );
    """,
    # version 3: URL userinfo out of the rows older versions wrote (_userinfo_out)
    "",
    # version 4: the queue's order as an index. `list` pages, `freight add`'s end of the
    # queue (max(position)) and the popup's newest page each sorted or scanned the whole
    # table: ~0.7 ms per add and 20-40 ms per page at 10,000 downloads.
    "CREATE INDEX downloads_by_position ON downloads (position, id);",
    # version 5: the queued downloads of known size in queue order. The big lane takes those
    # bigger than small_size: read through the state index it passed every queued row of
    # unknown size on each fill (all 2,000 of S4's at first, 0.3 ms per fill; 1.5 ms at
    # 10,000); the index holds only the rows it may take.
    "CREATE INDEX downloads_queued_sized ON downloads (position, id) "
    "WHERE state = 'queued' AND size IS NOT NULL;",
    # version 6: downloads by their URL before the query (_ADDRESS), for duplicate detection
    # on every add (freight.daemon.duplicates): without it each add read the whole table.
    f"CREATE INDEX downloads_by_address ON downloads ({_ADDRESS});",
]
SCHEMA_VERSION = len(MIGRATIONS)

_COLUMNS = {
    # model attribute -> column
    "url": "url",
    "final_url": "final_url",
    "referrer": "referrer",
    "mime": "mime",
    "dir": "dir",
    "name": "name",
    "requested_name": "requested_name",
    "size": "size",
    "done": "done",
    "resumable": "resumable",
    "etag": "etag",
    "last_modified": "last_modified",
    "connections": "connections",
    "limit": "rate_limit",
    "checksum": "checksum",
    "headers": "headers",
    "error": "error",
    "error_kind": "error_kind",
    "position": "position",
    "insecure": "insecure",
    "finished_at": "finished_at",
}


class Sealer(Protocol):
    """Encrypts secret header values at rest (see freight.secrets)."""

    def seal(self, plain: bytes) -> bytes: ...

    def open(self, sealed: bytes) -> bytes: ...


#: For each state, the states a download may reach it from in one move (itself included: the
#: same state again only updates the error), as the transition table in models says.
_SOURCES: dict[DownloadState, tuple[str, ...]] = {
    new: tuple(old.value for old in DownloadState if old == new or can_transition(old, new))
    for new in DownloadState
}


_SET_STATE = (
    "UPDATE downloads SET state = ?, error = ?, error_kind = ?, updated_at = ?, "
    "finished_at = coalesce(?, finished_at) WHERE id = ?"
)


class Lane(NamedTuple):
    """The queued downloads a lane of the scheduler takes (daemon/scheduler.py). ``small``:
    those of size ≤ ``small_size``, and of unknown size when ``unknown_small``, but not
    ``ids``. Else the big lane's: those of a bigger size, of unknown size unless
    ``unknown_small``, and ``ids`` whatever their size."""

    small_size: int
    small: bool
    unknown_small: bool
    ids: Collection[int] = ()


#: What :meth:`Store.start_queued` gives its choice to read the queue with.
QueueReader = Callable[[int, Lane | None], list[Download]]


def _queued_sql(limit: int, lane: Lane | None) -> tuple[str, tuple[Any, ...]]:
    """The first ``limit`` queued downloads of ``lane`` (None: of any) in queue order, each
    part read from an index in that order (no sort of the queue) that holds only rows the
    part may take or few others: the state index for the rows of unknown size, the index of
    the queued rows of known size for a comparison with small_size (named: SQLite would
    otherwise pick the state index and pass every queued row), the primary key for ids."""
    if lane is None:
        return (
            f"SELECT {_FIELDS} FROM downloads WHERE state = 'queued' "
            "ORDER BY position, id LIMIT ?",
            (limit,),
        )
    ids = tuple(lane.ids)
    marks = ",".join("?" * len(ids))
    order = " ORDER BY position, id LIMIT ?"

    def sized(compare: str) -> str:
        return (
            f"SELECT {_FIELDS} FROM downloads INDEXED BY downloads_queued_sized "
            f"WHERE state = 'queued' AND size IS NOT NULL AND size {compare} ?"
        )

    if lane.small:
        if lane.unknown_small:  # most queued rows are the lane's (S4): in order, as they come
            sql = f"SELECT {_FIELDS} FROM downloads WHERE state = 'queued' " \
                "AND (size <= ? OR size IS NULL)"
        else:
            sql = sized("<=")
        if ids:
            sql += f" AND id NOT IN ({marks})"
        return sql + order, (lane.small_size, *ids, limit)
    parts, args = [sized(">") + order], [lane.small_size, limit]
    if not lane.unknown_small:
        parts.append(
            f"SELECT {_FIELDS} FROM downloads WHERE state = 'queued' AND size IS NULL" + order)
        args.append(limit)
    if ids:
        parts.append(f"SELECT {_FIELDS} FROM downloads WHERE id IN ({marks}) AND +state = 'queued'")
        args.extend(ids)
    if len(parts) == 1:
        return parts[0], tuple(args)
    # Each part's first rows, merged: a row in two parts is the same row (UNION keeps one).
    merged = " UNION ".join(f"SELECT * FROM ({part})" for part in parts)
    return merged + order, (*args, limit)


#: The states a download may complete from (the transition table's), as SQL.
_TO_COMPLETED = ", ".join(
    f"'{old.value}'" for old in DownloadState if can_transition(old, DownloadState.COMPLETED)
)


def _why_not(db: sqlite3.Connection, download_id: int, new: DownloadState) -> FreightError:
    """Why a download cannot move to ``new``: it does not exist, or its state forbids it."""
    row = db.execute("SELECT state FROM downloads WHERE id = ?", (download_id,)).fetchone()
    if row is None:
        return NotFound(f"no download with id {download_id}", id=download_id)
    try:
        check_transition(DownloadState(row[0]), new)
    except IllegalTransition as exc:
        return exc
    raise AssertionError(f"download {download_id} may move from {row[0]} to {new.value}")


def _headers(text: str) -> dict[str, str]:
    return {} if text == "{}" else json.loads(text)  # most rows carry none


#: The columns of a Download, in the order of its fields (models.Download): every query that
#: builds one selects exactly these, so that :func:`_download` reads them by position.
#: Building by name from ``sqlite3.Row`` cost ~6 µs a row (each name is looked up among the
#: 26 columns), and the scheduler builds every small download two or three times.
_FIELDS = (
    "id, url, dir, state, name, requested_name, final_url, referrer, mime, size, done, "
    "resumable, etag, last_modified, connections, rate_limit, checksum, headers, error, "
    "error_kind, position, created_at, updated_at, finished_at, insecure"
)

_STATES = {state.value: state for state in DownloadState}


def _download(row: tuple[Any, ...]) -> Download:
    """The one conversion of a row of :data:`_FIELDS` into a Download: the state, the
    booleans (SQLite stores 0 and 1) and the headers' JSON; every other column as it is."""
    (download_id, url, folder, state, name, requested_name, final_url, referrer, mime, size,
     done, resumable, etag, last_modified, connections, limit, checksum, headers, error,
     error_kind, position, created_at, updated_at, finished_at, insecure) = row
    return Download(
        download_id, url, folder, _STATES.get(state) or DownloadState(state), name,
        requested_name, final_url, referrer, mime, size, done, bool(resumable), etag,
        last_modified, connections, limit, checksum, _headers(headers), error, error_kind,
        position, created_at, updated_at, finished_at, bool(insecure),
    )


def _store_error(exc: sqlite3.Error, path: str) -> StoreError:
    """An SQLite error as Freight's own: what the user can do about it, SQLite's words kept."""
    code = getattr(exc, "sqlite_errorcode", None)
    text = str(exc)
    if code == sqlite3.SQLITE_FULL or "disk is full" in text:
        what = f"the disk holding the database {path} is full"
    elif code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED) or "locked" in text:
        what = f"the database {path} is locked by another program"
    elif code == sqlite3.SQLITE_READONLY or "readonly" in text:
        what = f"the database {path} cannot be written"
    else:
        what = f"the database {path} failed"
    return StoreError(f"{what} ({text})", path=path)


def _header(db: sqlite3.Connection) -> tuple[int, int, int]:
    """application_id, user_version and the number of tables, as one snapshot."""
    row = db.execute(
        "SELECT (SELECT application_id FROM pragma_application_id), "
        "(SELECT user_version FROM pragma_user_version), "
        "(SELECT count(*) FROM sqlite_master WHERE type = 'table')"
    ).fetchone()
    return int(row[0]), int(row[1]), int(row[2])


def _refuse_foreign(path: str, app_id: int, version: int, tables: int) -> None:
    if tables and app_id != APPLICATION_ID:
        raise StoreError(
            f"{path} is a SQLite database that is not Freight's; Freight left it untouched",
            path=path,
        )
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"{path} was written by a newer Freight (schema {version} > {SCHEMA_VERSION})",
            path=path,
        )


def _journal_mode_wal(db: sqlite3.Connection, timeout: float) -> None:
    """Switch to WAL, waiting for another process that opens the file at the same moment:
    SQLite answers "database is locked" at once there, without its busy handler."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            db.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.005)


def _userinfo_out(db: sqlite3.Connection, sealer: Sealer | None) -> None:
    """Version 3: rows written before userinfo left URLs where they enter (freight.urls)
    may hold ``user:password@`` in ``url``, ``final_url`` or ``referrer``, in clear. The
    userinfo of ``url`` is what the download authenticates with: it becomes the sealed
    ``Authorization: Basic`` header (unless the row has an Authorization of its own, which
    wins, as with_basic says); that of ``final_url`` and ``referrer`` is dropped (the engine
    never sent it beyond the first origin). A URL that does not parse is left as it is: it
    cannot be fetched, and nothing can be taken out of it reliably."""
    def bare(url: str | None) -> tuple[str | None, str | None]:
        if url is None or "@" not in url:
            return url, None
        try:
            return split_credentials(url)
        except ValueError:
            return url, None

    rows = db.execute(
        "SELECT id, url, final_url, referrer, sealed_headers FROM downloads "
        "WHERE instr(url, '@') OR instr(final_url, '@') OR instr(referrer, '@')"
    ).fetchall()
    for row in rows:
        (url, basic), final_url, referrer = bare(row[1]), bare(row[2])[0], bare(row[3])[0]
        sealed = row[4]
        if basic is not None:
            if sealer is None:
                raise StoreError(
                    "this database holds a password in a download's URL, and no key is "
                    "available to store it sealed; Freight left it untouched"
                )
            secret = json.loads(sealer.open(sealed)) if sealed is not None else {}
            sealed = sealer.seal(json.dumps(with_basic(secret, basic)).encode())
        db.execute(
            "UPDATE downloads SET url = ?, final_url = ?, referrer = ?, sealed_headers = ? "
            "WHERE id = ?",
            (url, final_url, referrer, sealed, row[0]),
        )


#: Migrations that are Python, not SQL, by the version they bring the schema to.
_MIGRATION_STEPS = {3: _userinfo_out}


def _migrate(db: sqlite3.Connection, path: str, sealer: Sealer | None = None) -> None:
    """Bring the schema to SCHEMA_VERSION in one write transaction, atomic across processes:
    two processes opening a fresh file at once both saw version 0 outside it, so the header
    is read again once this process holds the write lock, and what another process migrated
    meanwhile is not migrated twice ("table downloads already exists"). A failing step
    (say no key to seal with) rolls back every step: the file stays as it was."""
    db.execute("BEGIN IMMEDIATE")
    try:
        app_id, version, tables = _header(db)
        _refuse_foreign(path, app_id, version, tables)
        for number in range(version, SCHEMA_VERSION):
            for statement in MIGRATIONS[number].split(";"):
                if statement.strip():
                    db.execute(statement)
            step = _MIGRATION_STEPS.get(number + 1)
            if step is not None:
                step(db, sealer)
        db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


class Store:
    """Every method raises :class:`StoreError` for any SQLite failure (disk full, locked,
    damaged): no sqlite3 exception leaves this class."""

    def __init__(
        self, path: str | Path, sealer: Sealer | None = None, *, timeout: float = 10.0
    ) -> None:
        self.path = str(path)
        self.sealer = sealer
        self._lock = threading.RLock()
        self._settings: dict[str, Any] | None = None
        #: Downloads that start_queued moved with no secret headers, until the first
        #: secret_headers of each: a small file's one request asks for them at once, and
        #: learning "none" cost a read transaction (two fcntl locks, a GIL hand-off) per file.
        #: Every write of sealed_headers by this store drops its note (the process that owns
        #: the database writes them, as with the settings).
        self._no_secrets: set[int] = set()
        self._db = self._open(self.path, timeout, sealer)

    @contextmanager
    def _mapped(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            raise _store_error(exc, self.path) from exc

    # -- opening and migrating -------------------------------------------------------------

    @staticmethod
    def _open(path: str, timeout: float, sealer: Sealer | None) -> sqlite3.Connection:
        if path != ":memory:" and not os.path.exists(path):
            # Private from the start (SQLite gives its -wal and -shm files the same mode).
            try:
                os.close(os.open(path, os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o600))
            except FileExistsError:
                pass
            except OSError as exc:
                raise StoreError(f"cannot create the database {path}: {exc}") from exc
        try:
            db = sqlite3.connect(
                path, check_same_thread=False, isolation_level=None, timeout=timeout
            )
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the database {path}: {exc}") from exc
        try:
            # One read transaction: another process may be migrating this very file, and
            # three separate reads could see its tables but not yet its application id.
            db.execute("BEGIN")
            app_id, version, tables = _header(db)
            db.execute("COMMIT")
            # A damaged page is otherwise found only by the first query that reads it, as a
            # traceback; Freight's database is small, so checking every page costs milliseconds.
            problems = [row[0] for row in db.execute("PRAGMA quick_check(3)")]
            if problems != ["ok"]:
                raise sqlite3.DatabaseError("; ".join(problems))
        except sqlite3.DatabaseError as exc:
            db.close()
            raise StoreError(
                f"{path} is damaged or not a database ({exc}); Freight left it untouched. "
                "Move it aside to start with an empty list.",
                path=path,
            ) from exc
        try:
            _refuse_foreign(path, app_id, version, tables)
            _journal_mode_wal(db, timeout)
            # NORMAL is durable against a crash of the process; after a power loss the last
            # commits may roll back, which only loses progress records, never data: the data
            # was fdatasync'd before each record (see segmented.Segmented.checkpoint).
            db.execute("PRAGMA synchronous = NORMAL")
            db.execute("PRAGMA foreign_keys = ON")
            if version < SCHEMA_VERSION:
                _migrate(db, path, sealer)
        except StoreError:
            db.close()
            raise
        except sqlite3.Error as exc:
            db.close()
            raise StoreError(f"cannot prepare the database {path}: {exc}", path=path) from exc
        return db

    def close(self) -> None:
        with self._lock, self._mapped():
            self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock, self._mapped():
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                if self._db.in_transaction:  # SQLite may have rolled back already (full disk)
                    self._db.execute("ROLLBACK")
                raise
            else:
                self._db.execute("COMMIT")

    def _query(self, sql: str, args: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock, self._mapped():
            return self._db.execute(sql, tuple(args)).fetchall()

    def _execute(self, sql: str, args: Iterable[Any] = ()) -> sqlite3.Cursor:
        """One statement in its own (implicit) transaction."""
        with self._lock, self._mapped():
            return self._db.execute(sql, tuple(args))

    # -- downloads -------------------------------------------------------------------------

    def add(
        self,
        url: str,
        dir: str,
        *,
        state: DownloadState = DownloadState.QUEUED,
        secret_headers: dict[str, str] | None = None,
        **fields: Any,
    ) -> Download:
        cols, marks, values = self._new_row(url, dir, state, secret_headers, fields, time.time())
        if "position" not in fields:  # the end of the queue, in the same (atomic) statement
            cols.append("position")
            marks.append("(SELECT coalesce(max(position), 0) + 1 FROM downloads)")
        cur = self._execute(
            f"INSERT INTO downloads ({', '.join(cols)}) VALUES ({', '.join(marks)})", values
        )
        download_id = cur.lastrowid
        assert download_id is not None
        return self.get(download_id)

    def add_many(self, rows: Iterable[dict[str, Any]]) -> list[Download]:
        """Add several downloads in one transaction, at the end of the queue in the given
        order; each row holds :meth:`add`'s arguments (``url``, ``dir``, optional ``state``,
        ``secret_headers`` and fields). Every row is checked (and sealed) before the first is
        written: a bad one raises and adds none."""
        now = time.time()
        prepared = []
        for row in rows:
            fields = dict(row)
            url, folder = fields.pop("url"), fields.pop("dir")
            state = fields.pop("state", DownloadState.QUEUED)
            secret = fields.pop("secret_headers", None)
            prepared.append((self._new_row(url, folder, state, secret, fields, now),
                             "position" in fields))
        if not prepared:
            return []
        ids = []
        with self._transaction() as db:
            # One look at the end of the queue for the whole batch, not one per row.
            last = db.execute("SELECT coalesce(max(position), 0) FROM downloads").fetchone()[0]
            for (cols, marks, values), placed in prepared:
                if not placed:
                    last += 1
                    cols, marks, values = [*cols, "position"], [*marks, "?"], [*values, last]
                cur = db.execute(
                    f"INSERT INTO downloads ({', '.join(cols)}) VALUES ({', '.join(marks)})",
                    values,
                )
                assert cur.lastrowid is not None
                ids.append(cur.lastrowid)
            found = {
                r[0]: _download(r)
                for r in db.execute(
                    f"SELECT {_FIELDS} FROM downloads WHERE id BETWEEN ? AND ?",
                    (min(ids), max(ids)),
                )
            }
        return [found[i] for i in ids]

    def _new_row(
        self, url: str, dir: str, state: DownloadState, secret_headers: dict[str, str] | None,
        fields: dict[str, Any], now: float,
    ) -> tuple[list[str], list[str], list[Any]]:
        """Columns, placeholders and values of a new download's INSERT (raises before any
        write: an unknown field, secret headers without a key)."""
        unknown = set(fields) - set(_COLUMNS)
        if unknown:
            raise InputError(f"unknown download fields: {', '.join(sorted(unknown))}")
        values: dict[str, Any] = {"url": url, "dir": dir, **fields}
        values["headers"] = json.dumps(values.get("headers") or {})
        sealed = self._seal(secret_headers)
        cols = [_COLUMNS[k] for k in values] + [
            "state", "sealed_headers", "created_at", "updated_at"]
        args = [*values.values(), DownloadState(state).value, sealed, now, now]
        return cols, ["?"] * len(cols), args

    def get(self, download_id: int) -> Download:
        rows = self._query(f"SELECT {_FIELDS} FROM downloads WHERE id = ?", (download_id,))
        if not rows:
            raise NotFound(f"no download with id {download_id}", id=download_id)
        return _download(rows[0])

    def list(
        self,
        states: Iterable[DownloadState] | None = None,
        offset: int = 0,
        limit: int | None = None,
    ) -> tuple[list[Download], int]:
        where, args = "", []
        if states is not None:
            names = [DownloadState(s).value for s in states]
            where = f"WHERE state IN ({', '.join('?' * len(names))})"
            args = names
        total = self._query(f"SELECT count(*) FROM downloads {where}", args)[0][0]
        rows = self._query(
            f"SELECT {_FIELDS} FROM downloads {where} ORDER BY position, id LIMIT ? OFFSET ?",
            [*args, -1 if limit is None else limit, offset],
        )
        return [_download(r) for r in rows], total

    def next_queued(self, limit: int) -> list[Download]:
        """The first ``limit`` queued downloads in queue order (one query: the scheduler asks
        each time a download is added or ends)."""
        return [_download(r) for r in self._query(*_queued_sql(limit, None))]

    def next_queued_for_lane(
        self, limit: int, *, small_size: int, small: bool, unknown_small: bool,
        ids: Collection[int] = (),
    ) -> list[Download]:
        """The first ``limit`` queued downloads, in queue order, that a lane takes (:class:`Lane`
        says which)."""
        lane = Lane(small_size, small, unknown_small, ids)
        return [_download(r) for r in self._query(*_queued_sql(limit, lane))]

    def count_by_state(self) -> dict[str, int]:
        rows = self._query("SELECT state, count(*) FROM downloads GROUP BY state")
        return {row[0]: row[1] for row in rows}

    def find_unfinished(self, url: str, dir: str, requested_name: str | None) -> Download | None:
        """The newest unfinished download of this URL into this folder (for `freight get`)."""
        rows = self._query(
            f"SELECT {_FIELDS} FROM downloads WHERE url = ? AND dir = ? AND requested_name IS ? "
            "AND state NOT IN ('completed', 'removed') ORDER BY id DESC LIMIT 1",
            (url, dir, requested_name),
        )
        return _download(rows[0]) if rows else None

    def find_completed(self, url: str, dir: str, requested_name: str | None) -> Download | None:
        """The newest completed download of this URL into this folder (for `freight get`)."""
        rows = self._query(
            f"SELECT {_FIELDS} FROM downloads WHERE url = ? AND dir = ? AND requested_name IS ? "
            "AND state = 'completed' ORDER BY id DESC LIMIT 1",
            (url, dir, requested_name),
        )
        return _download(rows[0]) if rows else None

    def waiting_for_a_link(self, dir: str, requested_name: str | None) -> list[Download]:
        """Downloads into this folder waiting for a fresh link (needs_refresh), newest first."""
        rows = self._query(
            f"SELECT {_FIELDS} FROM downloads WHERE dir = ? AND requested_name IS ? "
            "AND state = 'needs_refresh' ORDER BY id DESC",
            (dir, requested_name),
        )
        return [_download(r) for r in rows]

    def set_state(
        self,
        download_id: int,
        new: DownloadState,
        *,
        error: str | None = None,
        error_kind: str | None = None,
    ) -> Download:
        """Move a download through the state machine; raises IllegalTransition, NotFound.

        ``error`` is redacted here, the one place it is written: whatever raised it, no
        secret header value or URL userinfo is stored, returned by the API or shown."""
        now = time.time()
        finished = now if new == DownloadState.COMPLETED else None
        # One statement when the move is legal (the common case): the WHERE clause holds the
        # transition table's predecessors of ``new``. Otherwise read the state to say why.
        sources = _SOURCES[new]
        values = (new.value, redact_optional(error), error_kind, now, finished, download_id)
        cur = self._execute(
            _SET_STATE + f" AND state IN ({', '.join('?' * len(sources))})", (*values, *sources)
        )
        if cur.rowcount:
            return self.get(download_id)
        with self._transaction() as db:
            row = db.execute("SELECT state FROM downloads WHERE id = ?", (download_id,)).fetchone()
            if row is None:
                raise NotFound(f"no download with id {download_id}", id=download_id)
            old = DownloadState(row[0])
            if old != new:
                check_transition(old, new)
            db.execute(_SET_STATE, values)
        return self.get(download_id)

    def start_queued(self, choose: Callable[[QueueReader], Iterable[int]]) -> list[Download]:
        """Move the queued downloads that ``choose`` picks (by id) to ``active`` (the
        transition table's queued → active), all in one transaction; the moved ones as
        stored, in the order picked. ``choose`` is given ``read(limit, lane)``: the first
        ``limit`` queued downloads of ``lane`` (None: of any) in queue order; it may read
        several lanes, and picks among what it read. It runs inside the transaction, so
        what it was shown is what moves: no row can change in between, each is read and
        built once (a row read twice is the same object), and a fill (the scheduler starts
        what its free slots take at once, in both lanes) is one transaction. It must not
        call the store."""
        with self._transaction() as db:
            shown: dict[int, Download] = {}

            def read(limit: int, lane: Lane | None) -> list[Download]:
                rows = []
                for row in db.execute(*_queued_sql(limit, lane)):
                    download = shown.get(row[0]) or _download(row)
                    rows.append(shown.setdefault(download.id, download))
                return rows

            started = [shown[i] for i in dict.fromkeys(choose(read)) if i in shown]
            if not started:
                return []
            now = time.time()
            marks = ",".join("?" * len(started))
            # By primary key: `+state` keeps SQLite off the state index, through which it
            # looked the few ids up among every queued row (a fill per small file).
            moved = db.execute(
                "UPDATE downloads SET state = 'active', error = NULL, error_kind = NULL, "
                f"updated_at = ? WHERE id IN ({marks}) AND +state = 'queued' "
                "RETURNING id, sealed_headers IS NULL",
                (now, *(d.id for d in started)),
            ).fetchall()
            self._no_secrets.update(i for i, none in moved if none)
        for download in started:  # as the statement stored them (read in this transaction)
            download.state = DownloadState.ACTIVE
            download.error = download.error_kind = None
            download.updated_at = now
        return started

    def complete(self, download_id: int, name: str, size: int) -> Download:
        """Record a finished download in one transaction: its final name and size, no more
        segments, state completed (checked against the transition table; raises
        IllegalTransition, NotFound)."""
        answer = self.complete_many([(download_id, name, size, {})])[0]
        if isinstance(answer, FreightError):
            raise answer
        return answer

    def complete_many(
        self, finished: list[tuple[int, str, int, dict[str, Any]]]
    ) -> list[Download | FreightError]:
        """Record many finished downloads (id, final name, size, and other fields learnt on
        the way: final URL, validators, type) as :meth:`complete` does, in one transaction:
        the loop's small files end in batches (engine/finisher.py). Each is checked against
        the transition table; one that cannot complete (removed meanwhile) is answered with
        its error, the others are recorded all the same."""
        now = time.time()
        answers: dict[int, Download | FreightError] = {}
        for *_, fields in finished:
            unknown = set(fields) - set(_COLUMNS) | ({"headers", "state"} & set(fields))
            if unknown:
                raise InputError(f"fields not for a completion: {', '.join(sorted(unknown))}")
        with self._transaction() as db:
            for download_id, name, size, fields in finished:
                # One statement when the move is legal (the WHERE clause holds the transition
                # table's predecessors of completed) that returns the row as recorded;
                # otherwise the state is read to say why.
                extra = {k: v for k, v in fields.items() if k not in ("name", "size")}
                sets = "".join(f"{_COLUMNS[k]} = ?, " for k in extra)
                row = db.execute(
                    f"UPDATE downloads SET {sets}state = 'completed', name = ?, size = ?, "
                    "done = ?, error = NULL, error_kind = NULL, updated_at = ?, finished_at = ? "
                    f"WHERE id = ? AND state IN ({_TO_COMPLETED}) RETURNING {_FIELDS}",
                    (*extra.values(), name, size, size, now, now, download_id),
                ).fetchone()
                if row is None:
                    answers[download_id] = _why_not(db, download_id, DownloadState.COMPLETED)
                    continue
                answers[download_id] = _download(row)
                db.execute("DELETE FROM segments WHERE download_id = ?", (download_id,))
                db.execute("DELETE FROM fast_progress WHERE download_id = ?", (download_id,))
        return [answers[i] for i, *_ in finished]

    def get_many(self, ids: list[int]) -> list[Download]:
        """The downloads of ``ids`` that exist, in no particular order (one query)."""
        if not ids:
            return []
        rows = self._query(
            f"SELECT {_FIELDS} FROM downloads WHERE id IN ({','.join('?' * len(ids))})",
            tuple(ids),
        )
        return [_download(r) for r in rows]

    def update(self, download_id: int, **fields: Any) -> Download:
        unknown = set(fields) - set(_COLUMNS)
        if unknown:
            raise InputError(f"unknown download fields: {', '.join(sorted(unknown))}")
        if "headers" in fields:
            fields["headers"] = json.dumps(fields["headers"] or {})
        if not fields:
            return self.get(download_id)
        sets = ", ".join(f"{_COLUMNS[k]} = ?" for k in fields)
        with self._transaction() as db:
            rows = db.execute(
                f"UPDATE downloads SET {sets}, updated_at = ? WHERE id = ? "
                f"RETURNING {_FIELDS}",
                [*fields.values(), time.time(), download_id],
            ).fetchall()
        if not rows:
            raise NotFound(f"no download with id {download_id}", id=download_id)
        return _download(rows[0])

    def delete(self, download_id: int) -> None:
        with self._transaction() as db:
            self._no_secrets.discard(download_id)
            cur = db.execute("DELETE FROM downloads WHERE id = ?", (download_id,))
            if cur.rowcount == 0:
                raise NotFound(f"no download with id {download_id}", id=download_id)

    def move(self, download_id: int, to: str) -> int:
        """Reorder the queue: to is top, bottom, up or down. Returns the new position."""
        if to not in ("top", "bottom", "up", "down"):
            raise InputError(f"move to must be top, bottom, up or down, not {to!r}")
        with self._transaction() as db:
            row = db.execute(
                "SELECT position FROM downloads WHERE id = ?", (download_id,)
            ).fetchone()
            if row is None:
                raise NotFound(f"no download with id {download_id}", id=download_id)
            pos = row[0]
            if to in ("top", "bottom"):
                edge = "min(position), 0) - 1" if to == "top" else "max(position), 0) + 1"
                new = db.execute(f"SELECT coalesce({edge} FROM downloads").fetchone()[0]
            else:
                cmp, order = ("<", "DESC") if to == "up" else (">", "ASC")
                other = db.execute(
                    f"SELECT id, position FROM downloads WHERE position {cmp} ? "
                    f"ORDER BY position {order} LIMIT 1",
                    (pos,),
                ).fetchone()
                if other is None:
                    return int(pos)
                db.execute("UPDATE downloads SET position = ? WHERE id = ?", (pos, other[0]))
                new = other[1]
            db.execute("UPDATE downloads SET position = ? WHERE id = ?", (new, download_id))
        return int(new)

    # -- progress --------------------------------------------------------------------------

    def save_progress(self, download_id: int, segments: Iterable[Segment], done: int) -> None:
        """Record segment progress in one transaction. Call only after the data is synced."""
        with self._transaction() as db:
            db.execute("DELETE FROM segments WHERE download_id = ?", (download_id,))
            db.executemany(
                "INSERT INTO segments (download_id, start, end, pos) VALUES (?, ?, ?, ?)",
                [(download_id, s.start, s.end, s.pos) for s in segments],
            )
            db.execute(
                "UPDATE downloads SET done = ?, updated_at = ? WHERE id = ?",
                (done, time.time(), download_id),
            )

    def save_fast_progress(
        self, download_id: int, boot_id: str, segments: Iterable[Segment], done: int
    ) -> None:
        """Record progress that was written but not yet synced, tagged with the boot it is
        true for.

        After ``pwrite`` returns, the bytes are in the kernel's page cache: a crash or a
        SIGKILL of Freight does not lose them, only a crash of the OS or a power cut does.
        So this record, cheap enough to make many times a second (no fsync: WAL with
        synchronous=NORMAL), is trusted on resume only when the machine has not restarted
        since (same boot id); otherwise the last synced checkpoint is used.
        """
        rows = json.dumps([[s.start, s.end, s.pos] for s in segments])
        with self._transaction() as db:
            db.execute(
                "INSERT INTO fast_progress (download_id, boot_id, segments, done) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (download_id) DO UPDATE SET "
                "boot_id = excluded.boot_id, segments = excluded.segments, done = excluded.done",
                (download_id, boot_id, rows, done),
            )

    def resume_segments(self, download_id: int, boot_id: str | None) -> list[Segment]:
        """The best progress to resume from: the synced checkpoint, or the fast record when
        it was made in this very boot and holds more."""
        synced = self.load_segments(download_id)
        if boot_id is None:
            return synced
        rows = self._query(
            "SELECT boot_id, segments, done FROM fast_progress WHERE download_id = ?",
            (download_id,),
        )
        if not rows or rows[0][0] != boot_id:
            return synced
        fast = [Segment(*row) for row in json.loads(rows[0][1])]
        if sum(s.pos - s.start for s in fast) > sum(s.pos - s.start for s in synced):
            return fast
        return synced

    def load_segments(self, download_id: int) -> list[Segment]:
        rows = self._query(
            "SELECT start, end, pos FROM segments WHERE download_id = ? ORDER BY start",
            (download_id,),
        )
        return [Segment(r[0], r[1], r[2]) for r in rows]

    def clear_progress(self, download_id: int, **fields: Any) -> Download:
        """Forget every progress record of the download — its segments, the unsynced record,
        ``done`` — and set ``fields`` (say size, validators, ``resumable``), all in one
        transaction: a restart from zero calls this before it writes its first byte, so that
        a kill at any later moment can never resume from a record of the old bytes."""
        unknown = set(fields) - set(_COLUMNS)
        if unknown or "headers" in fields or "done" in fields:
            raise InputError(f"not a progress reset: {', '.join(sorted(fields))}")
        sets = "".join(f", {_COLUMNS[k]} = ?" for k in fields)
        with self._transaction() as db:
            db.execute("DELETE FROM segments WHERE download_id = ?", (download_id,))
            db.execute("DELETE FROM fast_progress WHERE download_id = ?", (download_id,))
            cur = db.execute(
                f"UPDATE downloads SET done = 0{sets}, updated_at = ? WHERE id = ?",
                (*fields.values(), time.time(), download_id),
            )
            if cur.rowcount == 0:
                raise NotFound(f"no download with id {download_id}", id=download_id)
        return self.get(download_id)

    def forget_unsynced(self, download_id: int) -> None:
        """Drop the unsynced progress record: after a failed ``fdatasync`` the page cache may
        no longer hold what it claimed, and only the last synced checkpoint is true."""
        with self._transaction() as db:
            db.execute("DELETE FROM fast_progress WHERE download_id = ?", (download_id,))

    def has_progress(self, download_id: int) -> bool:
        """Whether anything is recorded of the download's bytes (segments, unsynced, done)."""
        rows = self._query(
            "SELECT (SELECT done FROM downloads WHERE id = ?) > 0 "
            "OR EXISTS (SELECT 1 FROM segments WHERE download_id = ?) "
            "OR EXISTS (SELECT 1 FROM fast_progress WHERE download_id = ?)",
            (download_id,) * 3,
        )
        return bool(rows[0][0])

    # -- secret headers (Cookie, Authorization) --------------------------------------------

    def _seal(self, secret_headers: dict[str, str] | None) -> bytes | None:
        if not secret_headers:
            return None
        if self.sealer is None:
            raise StoreError("secret headers given but no key to encrypt them")
        return self.sealer.seal(json.dumps(secret_headers).encode())

    def set_secret_headers(self, download_id: int, secret_headers: dict[str, str] | None) -> None:
        sealed = self._seal(secret_headers)
        with self._transaction() as db:
            self._no_secrets.discard(download_id)
            db.execute(
                "UPDATE downloads SET sealed_headers = ? WHERE id = ?", (sealed, download_id)
            )

    def secret_headers(self, download_id: int) -> dict[str, str]:
        with self._lock:
            if download_id in self._no_secrets:
                self._no_secrets.discard(download_id)
                return {}
        rows = self._query("SELECT sealed_headers FROM downloads WHERE id = ?", (download_id,))
        if not rows:
            raise NotFound(f"no download with id {download_id}", id=download_id)
        sealed = rows[0][0]
        if sealed is None:
            return {}
        if self.sealer is None:
            raise StoreError("this download has encrypted headers but no key is available")
        result: dict[str, str] = json.loads(self.sealer.open(sealed))
        return result

    def raw_sealed_headers(self, download_id: int) -> bytes | None:
        """The bytes at rest, for tests that prove no secret is stored in clear."""
        rows = self._query("SELECT sealed_headers FROM downloads WHERE id = ?", (download_id,))
        return rows[0][0] if rows else None

    # -- settings --------------------------------------------------------------------------

    def settings(self) -> dict[str, Any]:
        """The settings (a copy). Read from SQLite once, then kept: every change goes through
        set_settings of the one process that owns this database (the daemon, or one
        `freight get`), and the queue asks for them several times per download."""
        if self._settings is None:
            values = config.defaults()
            for row in self._query("SELECT name, value FROM settings"):
                if row[0] in values:
                    values[row[0]] = json.loads(row[1])
            self._settings = values
        return {k: v.copy() if isinstance(v, list | dict) else v for k, v in self._settings.items()}

    def set_settings(self, changes: dict[str, Any]) -> dict[str, Any]:
        """Validate every change first; then store them all in one transaction."""
        checked = {name: config.validate_setting(name, value) for name, value in changes.items()}
        with self._transaction() as db:
            db.executemany(
                "INSERT INTO settings (name, value) VALUES (?, ?) "
                "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                [(name, json.dumps(value)) for name, value in checked.items()],
            )
        self._settings = None
        return self.settings()

    def states_of(self, ids: Collection[int]) -> dict[int, tuple[str, str | None]]:
        """id → (state, error_kind) of those of ``ids`` that exist, in one query and without
        building a row (the API's ``states``, for `freight wait`)."""
        if not ids:
            return {}
        rows = self._query(
            f"SELECT id, state, error_kind FROM downloads WHERE id IN ({','.join('?' * len(ids))})",
            tuple(ids),
        )
        return {row[0]: (row[1], row[2]) for row in rows}

    def clear_completed(self) -> tuple[int, ...]:
        """Delete the records of every completed download (their files are not touched), in
        one transaction; returns their ids. Only ``completed``: a failed download keeps its
        partial data for a retry and a cancelled one can be restarted, so their records stay."""
        with self._transaction() as db:
            ids = [r[0] for r in db.execute(
                "SELECT id FROM downloads WHERE state = ? ORDER BY id",
                (DownloadState.COMPLETED.value,))]
            db.execute("DELETE FROM downloads WHERE state = ?", (DownloadState.COMPLETED.value,))
            self._no_secrets.difference_update(ids)
        return tuple(ids)


    def duplicate_candidates(self, urls: Collection[str]) -> dict[str, list[Download]]:
        """address → the downloads with that address (URL before the query) that a new one
        may repeat: queued, active, paused or completed (freight.daemon.duplicates), for the
        addresses of ``urls``; one indexed query per 500 addresses."""
        addresses = sorted({url.split("?", 1)[0] for url in urls})
        found: dict[str, list[Download]] = {}
        for start in range(0, len(addresses), 500):
            chunk = addresses[start:start + 500]
            rows = self._query(
                f"SELECT {_ADDRESS}, {_FIELDS} FROM downloads "
                f"WHERE {_ADDRESS} IN ({','.join('?' * len(chunk))}) "
                "AND state IN ('queued', 'active', 'paused', 'completed')",
                chunk,
            )
            for row in rows:
                found.setdefault(row[0], []).append(_download(row[1:]))
        return found


def saved_setting(path: str | Path, name: str) -> Any:
    """One setting as saved, for a process that does not own the database (`freight doctor`
    while no daemon runs): read-only, so nothing is created, migrated or locked. The default
    when the database, its table or the row is missing or unreadable."""
    default = config.SETTINGS[name].default
    if not os.path.exists(path):
        return default
    try:
        db = sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True, timeout=1.0)
    except sqlite3.Error:
        return default
    try:
        row = db.execute("SELECT value FROM settings WHERE name = ?", (name,)).fetchone()
        return default if row is None else config.validate_setting(name, json.loads(row[0]))
    except (sqlite3.Error, ValueError, FreightError):
        return default
    finally:
        db.close()
