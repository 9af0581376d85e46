"""Prepared statements: the request path's Core statements, run straight on SQLite.

SQLAlchemy's async layer costs 60-80 µs per statement and about as much again per transaction
(greenlet switches, the pool, result objects), while SQLite itself does the work of one of
these statements in 5-15 µs. A synchronous image request makes five of them in two
transactions, so on SQLite that layer was most of what the gateway cost per request.

A statement built once at import, with bind parameters, is marked with ``prepared(stmt)``.
``execute(session, stmt, params)`` then runs it:

- straight on ``sqlite3``, bypassing SQLAlchemy, inside an SQLite write transaction opened
  by ``Database.transaction`` (the session's ``info`` holds a ``Bypass``: the connection), as
  long as SQLAlchemy itself has not joined that transaction. The SQL is SQLAlchemy's own compilation
  for SQLite, made once; values go through the column types' own processors (JSON), and
  errors are raised as SQLAlchemy's exception classes, so callers see no difference;
- through the session everywhere else (PostgreSQL, reads, an unmarked statement), unchanged.

Once the ORM has joined the transaction (it flushed an object, say), every statement goes
through the session, so that nothing it holds back runs out of order.
"""

from __future__ import annotations

import sqlite3
from collections import namedtuple
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Executable, Insert
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ClauseElement

from hyperlocal import tracing

__all__ = ["BYPASS", "Bypass", "BypassResult", "execute", "joined", "prepared"]

# The key in ``AsyncSession.info`` under which ``Database.transaction`` leaves a ``Bypass``.
BYPASS = "hyperlocal.bypass"

Params = Mapping[str, Any] | Sequence[Mapping[str, Any]]
Processor = Callable[[Any], Any] | None
_S = TypeVar("_S", bound=Executable)


@dataclass(frozen=True, slots=True)
class Bypass:
    """What a prepared statement needs to bypass SQLAlchemy: the SQLite write transaction's
    own connection, the dialect to compile for, and the database's name (for traces)."""

    conn: sqlite3.Connection
    dialect: Dialect
    database: str = "sqlite"


@dataclass(frozen=True, slots=True)
class _Compiled:
    sql: str
    names: tuple[str, ...]  # bind parameters, in the order of the SQL's placeholders
    fixed: Mapping[str, Any]  # the values of those written into the statement (status = 'x')
    binds: tuple[Processor, ...]
    results: tuple[Processor, ...]
    row: type[tuple[Any, ...]] | None  # a named tuple of the result's columns

    def parameters(self, params: Mapping[str, Any]) -> list[Any] | None:
        """The values to bind, in order; None if ``params`` lacks one (SQLAlchemy's path then
        raises its own error). A plain loop: this runs for every statement."""
        values = []
        fixed = self.fixed
        for name, process in zip(self.names, self.binds, strict=True):
            if name in params:
                value = params[name]
            elif name in fixed:
                value = fixed[name]
            else:
                return None
            values.append(value if process is None else process(value))
        return values

    def rows(self, raw: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        if self.row is None:
            return raw
        make, results = self.row._make, self.results  # type: ignore[attr-defined]
        return [
            make(v if p is None else p(v) for v, p in zip(values, results, strict=True))
            for values in raw
        ]


class BypassResult:
    """The part of SQLAlchemy's ``Result`` that the store functions use, for a statement that
    bypassed SQLAlchemy."""

    def __init__(self, rows: list[tuple[Any, ...]], rowcount: int) -> None:
        self._rows, self.rowcount = rows, rowcount

    def one_or_none(self) -> Any:
        if len(self._rows) > 1:
            raise ValueError("more than one row")
        return self._rows[0] if self._rows else None

    def scalar_one_or_none(self) -> Any:
        row = self.one_or_none()
        return None if row is None else row[0]

    def scalar(self) -> Any:
        return self._rows[0][0] if self._rows else None


_MARKED: dict[int, Executable] = {}  # by identity; holding the statement keeps its id unique
_CACHE: dict[tuple[int, tuple[str, ...]], _Compiled | None] = {}


def prepared(stmt: _S) -> _S:
    """Mark ``stmt`` (built once, with bind parameters) to run straight on SQLite."""
    _MARKED[id(stmt)] = stmt
    return stmt


async def execute(session: AsyncSession, stmt: Executable, params: Params) -> Any:
    """``session.execute(stmt, params)``, straight on SQLite where it can be (see above)."""
    bypass: Bypass | None = session.info.get(BYPASS)
    if bypass is None or id(stmt) not in _MARKED or joined(session):
        return await session.execute(stmt, params)
    single = params if isinstance(params, Mapping) else _one(params)
    compiled = _compiled(stmt, bypass.dialect, single)
    values = None if compiled is None else compiled.parameters(single)
    if compiled is None or values is None:
        return await session.execute(stmt, params)
    with tracing.statement_span(compiled.sql, bypass.database):
        return _run(bypass.conn, compiled, values)


def joined(session: AsyncSession) -> bool:
    """Whether the ORM has begun (or holds pending objects for) this transaction."""
    # ``session.new`` builds a set on each call; its source dict answers the same question.
    return session.in_transaction() or bool(session.sync_session._new)


def _one(params: Sequence[Mapping[str, Any]]) -> Mapping[str, Any]:
    if len(params) != 1:
        raise ValueError("a prepared statement runs with one set of parameters")
    return params[0]


def _run(conn: sqlite3.Connection, compiled: _Compiled, values: list[Any]) -> BypassResult:
    try:
        cursor = conn.execute(compiled.sql, values)
        rows = cursor.fetchall() if cursor.description else []
    except sqlite3.Error as exc:
        raise DBAPIError.instance(compiled.sql, values, exc, sqlite3.Error) from exc
    return BypassResult(compiled.rows(rows), cursor.rowcount)


def _compiled(stmt: Executable, dialect: Dialect, params: Mapping[str, Any]) -> _Compiled | None:
    # An INSERT's SQL depends on which columns it is given.
    columns = tuple(params) if isinstance(stmt, Insert) else ()
    key = (id(stmt), columns)
    if key not in _CACHE:
        _CACHE[key] = _compile(stmt, dialect, columns or None)
    return _CACHE[key]


def _compile(
    stmt: Executable, dialect: Dialect, columns: tuple[str, ...] | None
) -> _Compiled | None:
    assert isinstance(stmt, ClauseElement)
    compiled = stmt.compile(dialect=dialect, column_keys=list(columns) if columns else None)
    assert isinstance(compiled, SQLCompiler)
    if compiled.literal_execute_params or compiled.post_compile_params or compiled.insert_prefetch:
        # Expanding IN lists, or column defaults computed in Python: SQLAlchemy's path.
        return None
    names = tuple(compiled.positiontup or ())
    params = [compiled.binds[name] for name in names]
    fixed = {name: p.value for name, p in zip(names, params, strict=True) if not p.required}
    binds = tuple(p.type.bind_processor(dialect) for p in params)
    returned = list(getattr(stmt, "exported_columns", ()))
    results = tuple(col.type.result_processor(dialect, None) for col in returned)
    row = namedtuple("Row", [c.key for c in returned], rename=True) if returned else None
    return _Compiled(compiled.string, names, fixed, binds, results, row)
