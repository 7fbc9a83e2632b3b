"""The statements a re-log runs, written once: the repositories execute them through SQLAlchemy
(SQLite and PostgreSQL), and the embedded store's quick path (``_quick_tx.py``) runs the same
statements compiled to SQLite's SQL text on a plain ``sqlite3`` connection, without importing
SQLAlchemy. The text lives in the generated module ``_quick_sql.py`` (``python -m
cairn.catalog._statements`` writes it; ``tests/catalog/test_quick_sql.py`` fails when it differs
from what these statements compile to), and the rows both sides bind come from ``_rows.py``.

Each statement takes named parameters: the ``bindparam`` names of its ``WHERE`` and, for an
``INSERT``/``UPDATE``, the columns listed beside it (``QUICK``), which are the keys of the
parameters the repository passes (SQLAlchemy compiles an ``INSERT``/``UPDATE`` for the keys it
is given, so both sides run the one text).
"""

from __future__ import annotations

import functools
import sys
from typing import Any

from sqlalchemy import and_, bindparam, delete, func, literal_column, select, update
from sqlalchemy.sql import Select
from sqlalchemy.sql.expression import ClauseElement

from cairn.catalog import _schema as s
from cairn.catalog._rows import RUN_COLUMNS, STAGED_SET, VERSION_COLUMNS
from cairn.catalog._ttl import alive
from cairn.core import LATEST, PENDING

_p, _r, _c, _v = s.projects.c, s.runs.c, s.collections.c, s.versions.c

PROJECT_ID = select(_p.id).where(_p.entity == bindparam("entity"), _p.name == bindparam("name"))
RUN_PK = select(_r.id).where(
    _r.project_id == bindparam("project_id"), _r.run_id == bindparam("run_id")
)
RUN_INSERT = s.runs.insert()
# SET state, finished_at (and config) of one run (``run_pk``).
RUN_STATE = update(s.runs).where(_r.id == bindparam("run_pk"))
COLLECTION_ID = select(_c.id).where(
    _c.project_id == bindparam("project_id"), _c.name == bindparam("name")
)
# The collection a commit numbers its version in, locked (SQLite: the transaction's write lock).
COLLECTION_LOCK = (
    select(_c.id, _c.type, _c.next_index)
    .where(_c.project_id == bindparam("project_id"), _c.name == bindparam("name"))
    .with_for_update()
)
VERSION_INSERT = s.versions.insert()
# ``next_index`` kept above ``used`` (never lowered): SET next_index, updated_at.
BUMP_INDEX = update(s.collections).where(
    _c.id == bindparam("collection_id"), _c.next_index <= bindparam("used")
)
METADATA_INSERT = s.version_metadata.insert()
WORDS_INSERT = s.version_words.insert()
METADATA_DELETE = delete(s.version_metadata).where(
    s.version_metadata.c.version_id == bindparam("vid")
)
WORDS_DELETE = delete(s.version_words).where(s.version_words.c.version_id == bindparam("vid"))

# A distributed version's finish (``_pending.py``): the pending version of a distributed id
# (locked), how many stagings and changes it has, its changes a batch at a time in path order
# (SQLite compares paths so already; PostgreSQL's repository adds the "C" collation), its
# aliases, then its commit: SET the columns a finish sets, and its staged changes deleted.
_se = s.staged_entries.c
PENDING_FIND = (
    select(_v.id)
    .where(
        _v.collection_id == bindparam("collection_id"),
        _v.distributed_id == bindparam("distributed_id"),
        _v.state == PENDING,
    )
    .with_for_update()
)
STAGED_GENERATION = select(_v.staged_generation).where(_v.id == bindparam("vid"))
STAGED_COUNT = (
    select(func.count()).select_from(s.staged_entries).where(_se.version_id == bindparam("vid"))
)
_STAGED = select(_se.path, _se.removed, _se.digest, _se.size, _se.ref, _se.extra)
STAGED_FIRST = (
    _STAGED.where(_se.version_id == bindparam("vid"))
    .order_by(_se.path)
    .limit(bindparam("n"))
    .offset(bindparam("skip"))
)
STAGED_AFTER = (
    _STAGED.where(_se.version_id == bindparam("vid"), _se.path > bindparam("after"))
    .order_by(_se.path)
    .limit(bindparam("n"))
    .offset(bindparam("skip"))
)
# A writer's upsert: its changes (the last one staged for a path wins), and one more staging of
# the version (``staged_upsert`` below is the insert; this bumps the staging generation).
STAGED_BUMP = (
    update(s.versions)
    .where(_v.id == bindparam("vid"))
    .values(staged_generation=_v.staged_generation + literal_column("1"))
)
PENDING_ALIASES = select(_v.pending_aliases).where(_v.id == bindparam("vid"))
PENDING_ALIASES_SET = update(s.versions).where(_v.id == bindparam("vid"))
PENDING_COMMIT = update(s.versions).where(_v.id == bindparam("vid"))
PENDING_COMMIT_COLUMNS = (
    "idx",
    "state",
    "digest",
    "size",
    "file_count",
    "created_by",
    "committed_at",
    "updated_at",
)
PENDING_ROW = select(_v.collection_id, _v.metadata, _v.description).where(_v.id == bindparam("vid"))
STAGED_DELETE = delete(s.staged_entries).where(_se.version_id == bindparam("vid"))


def run_records(where: Any) -> Select[Any]:
    """The runs ``where`` selects, with their project's names, oldest first
    (``_rows.run_record`` makes each record)."""
    return (
        select(s.runs, _p.entity, _p.name.label("project"))
        .join(s.projects, _p.id == _r.project_id)
        .where(where)
        .order_by(_r.created_at, _r.id)
    )


RUN_RECORD = run_records(
    and_(_r.project_id == bindparam("project_id"), _r.run_id == bindparam("run_id"))
)


# Versions with their names, creator, and aliases and tags in the same query (one round trip,
# not three): names cannot hold a newline, so it separates them (``_rows.version_record``).
VERSION_RECORDS = (
    select(
        s.versions,
        _c.name.label("cname"),
        _c.type,
        _p.entity,
        _p.name.label("project"),
        _r.run_id.label("creator"),
        select(func.aggregate_strings(s.aliases.c.alias, "\n"))
        .where(s.aliases.c.version_id == _v.id)
        .scalar_subquery()
        .label("alias_list"),
        select(func.aggregate_strings(s.tags.c.tag, "\n"))
        .where(s.tags.c.version_id == _v.id)
        .scalar_subquery()
        .label("tag_list"),
    )
    .join(s.collections, _c.id == _v.collection_id)
    .join(s.projects, _p.id == _c.project_id)
    .outerjoin(s.runs, _r.id == _v.created_by)
)
VERSION_RECORD = VERSION_RECORDS.where(_v.id == bindparam("vid"))
# A resolve in one statement: the record of the version ``entity/project/name:label`` names
# (``label`` an alias, or ``vN``), if it is alive at ``now``. One round trip instead of three;
# the join to the alias goes through its own name for the table, so the record's ``alias_list``
# still aggregates every alias of the version.
_NAMED = (
    _p.entity == bindparam("entity"),
    _p.name == bindparam("project"),
    _c.name == bindparam("name"),
    alive(bindparam("now")),
)
_named_alias = s.aliases.alias("named_alias")
RECORD_BY_ALIAS = (
    VERSION_RECORDS.join(
        _named_alias,
        and_(_named_alias.c.version_id == _v.id, _named_alias.c.collection_id == _c.id),
    )
    .where(_named_alias.c.alias == bindparam("alias"))
    .where(*_NAMED)
)
RECORD_BY_INDEX = VERSION_RECORDS.where(_v.idx == bindparam("idx")).where(*_NAMED)

# The first version alive at ``now`` with this content, in the collection.
VERSION_WITH_DIGEST = (
    select(_v.id)
    .where(
        _v.collection_id == bindparam("collection_id"),
        _v.digest == bindparam("digest"),
        alive(bindparam("now")),
    )
    .order_by(_v.idx)
)


def collection_records(where: Any) -> Select[Any]:
    """The collections ``where`` selects with their project's names, and the count and newest
    index of their versions alive at ``now`` (a parameter), by type and name."""
    counts = (
        select(_v.collection_id, func.count().label("n"), func.max(_v.idx).label("latest_idx"))
        .where(alive(bindparam("now")))
        .group_by(_v.collection_id)
        .subquery()
    )
    return (
        select(s.collections, _p.entity, _p.name.label("project"), counts.c.n, counts.c.latest_idx)
        .join(s.projects, _p.id == _c.project_id)
        .outerjoin(counts, counts.c.collection_id == _c.id)
        .where(where)
        .order_by(_c.type, _c.name)
    )


COLLECTION_RECORDS = collection_records(_c.project_id == bindparam("project_id"))
COLLECTION_RECORDS_OF_TYPE = collection_records(
    and_(_c.project_id == bindparam("project_id"), _c.type == bindparam("type"))
)
_ct, _a = s.collection_tags.c, s.aliases.c


def collection_tags(among: Any) -> Select[Any]:
    """(collection id, tag) of the collections ``among`` selects, by tag."""
    return select(_ct.collection_id, _ct.tag).where(among).order_by(_ct.tag)


def collection_aliases(among: Any) -> Select[Any]:
    """(collection id, alias) of every alias in use in the collections ``among`` selects."""
    return select(_a.collection_id, _a.alias).where(among)


def latest_aliased(among: Any) -> Select[Any]:
    """(collection id, index, size) of the version alive at ``now`` with the ``latest`` alias."""
    return (
        select(_a.collection_id, _v.idx, _v.size)
        .join(s.versions, _v.id == _a.version_id)
        .where(_a.alias == LATEST, alive(bindparam("now")), among)
    )


def alive_indexes(among: Any) -> Select[Any]:
    """(collection id, index, size) of every version alive at ``now`` of these collections."""
    return select(_v.collection_id, _v.idx, _v.size).where(among, alive(bindparam("now")))


# The quick listing's IN lists: ``__[POSTCOMPILE_ids]`` in the text, one parameter per id there.
_IDS: Any = bindparam("ids", expanding=True)
COLLECTION_TAGS = collection_tags(_ct.collection_id.in_(_IDS))
COLLECTION_ALIASES = collection_aliases(_a.collection_id.in_(_IDS))
LATEST_ALIASED = latest_aliased(_a.collection_id.in_(_IDS))
ALIVE_INDEXES = alive_indexes(_v.collection_id.in_(_IDS))


def dialect_insert(dialect: str) -> Any:
    """The dialect's ``insert`` construct, which takes ``on_conflict_do_*``."""
    if dialect == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert
    from sqlalchemy.dialects import sqlite

    return sqlite.insert


@functools.cache
def alias_assign(dialect: str) -> Any:
    """Point an alias at a version (moving it from another version of the collection)."""
    ins = dialect_insert(dialect)(s.aliases)
    return ins.on_conflict_do_update(
        index_elements=["collection_id", "alias"], set_={"version_id": ins.excluded.version_id}
    )


PROJECT_CREATE_COLUMNS = ("entity", "name", "created_at")
COLLECTION_CREATE_COLUMNS = (
    "project_id",
    "name",
    "type",
    "description",
    "next_index",
    "created_at",
    "updated_at",
)


@functools.cache
def project_create(dialect: str) -> Any:
    """Make a project (two writers at once make one row)."""
    return dialect_insert(dialect)(s.projects).on_conflict_do_nothing()


@functools.cache
def collection_create(dialect: str) -> Any:
    """Make a collection (two writers at once make one row; the type is the first's)."""
    return dialect_insert(dialect)(s.collections).on_conflict_do_nothing()


@functools.cache
def staged_upsert(dialect: str) -> Any:
    """Stage a change for a path of a pending version (replacing the one staged before)."""
    ins = dialect_insert(dialect)(s.staged_entries)
    return ins.on_conflict_do_update(
        index_elements=["version_id", "path"],
        set_={col: getattr(ins.excluded, col) for col in STAGED_SET},
    )


@functools.cache
def tag_add(dialect: str) -> Any:
    return dialect_insert(dialect)(s.tags).on_conflict_do_nothing()


@functools.cache
def lineage_add(dialect: str) -> Any:
    insert = dialect_insert(dialect)(s.version_runs)
    return insert.on_conflict_do_nothing()


# The quick path's statements: name in ``_quick_sql.py`` -> (statement, the columns it sets).
QUICK: dict[str, tuple[ClauseElement, tuple[str, ...] | None]] = {
    "PROJECT_ID": (PROJECT_ID, None),
    "RUN_PK": (RUN_PK, None),
    "RUN_RECORD": (RUN_RECORD, None),
    "RUN_INSERT": (RUN_INSERT, RUN_COLUMNS),
    "RUN_STATE": (RUN_STATE, ("state", "finished_at")),
    "RUN_STATE_CONFIG": (RUN_STATE, ("state", "finished_at", "config")),
    "COLLECTION_ID": (COLLECTION_ID, None),
    "COLLECTION_LOCK": (COLLECTION_LOCK, None),
    "VERSION_INSERT": (VERSION_INSERT, VERSION_COLUMNS),
    "VERSION_RECORD": (VERSION_RECORD, None),
    "VERSION_WITH_DIGEST": (VERSION_WITH_DIGEST, None),
    "RECORD_BY_ALIAS": (RECORD_BY_ALIAS, None),
    "RECORD_BY_INDEX": (RECORD_BY_INDEX, None),
    "BUMP_INDEX": (BUMP_INDEX, ("next_index", "updated_at")),
    "METADATA_INSERT": (METADATA_INSERT, ("version_id", "key", "text_value", "num_value")),
    "WORDS_INSERT": (WORDS_INSERT, ("word", "version_id")),
    "METADATA_DELETE": (METADATA_DELETE, None),
    "WORDS_DELETE": (WORDS_DELETE, None),
    "PENDING_FIND": (PENDING_FIND, None),
    "STAGED_GENERATION": (STAGED_GENERATION, None),
    "STAGED_COUNT": (STAGED_COUNT, None),
    "STAGED_FIRST": (STAGED_FIRST, None),
    "STAGED_AFTER": (STAGED_AFTER, None),
    "PROJECT_CREATE": (project_create("sqlite"), PROJECT_CREATE_COLUMNS),
    "COLLECTION_CREATE": (collection_create("sqlite"), COLLECTION_CREATE_COLUMNS),
    "STAGED_UPSERT": (staged_upsert("sqlite"), ("version_id", "path", *STAGED_SET)),
    "STAGED_BUMP": (STAGED_BUMP, ("updated_at",)),
    "PENDING_ALIASES": (PENDING_ALIASES, None),
    "PENDING_ALIASES_SET": (PENDING_ALIASES_SET, ("pending_aliases",)),
    "PENDING_COMMIT": (PENDING_COMMIT, PENDING_COMMIT_COLUMNS),
    "PENDING_ROW": (PENDING_ROW, None),
    "STAGED_DELETE": (STAGED_DELETE, None),
    "ALIAS_ASSIGN": (alias_assign("sqlite"), ("collection_id", "alias", "version_id")),
    "TAG_ADD": (tag_add("sqlite"), ("version_id", "tag")),
    "LINEAGE_ADD": (lineage_add("sqlite"), ("version_id", "run_id", "role", "created_at")),
    "COLLECTION_RECORDS": (COLLECTION_RECORDS, None),
    "COLLECTION_RECORDS_OF_TYPE": (COLLECTION_RECORDS_OF_TYPE, None),
    "COLLECTION_TAGS": (COLLECTION_TAGS, None),
    "COLLECTION_ALIASES": (COLLECTION_ALIASES, None),
    "LATEST_ALIASED": (LATEST_ALIASED, None),
    "ALIVE_INDEXES": (ALIVE_INDEXES, None),
}


def quick_sql() -> dict[str, str]:
    """Each of ``QUICK`` compiled to SQLite's SQL text with named parameters (``:name``)."""
    from sqlalchemy.dialects import sqlite

    dialect = sqlite.dialect(paramstyle="named")
    out = {}
    for name, (statement, columns) in QUICK.items():
        keys = None if columns is None else list(columns)
        compiled = statement.compile(dialect=dialect, column_keys=keys)
        # One line: each clause of the text ends in a space and a newline (a newline inside a
        # string literal, the aggregates' separator, has no space before it and stays).
        sql = str(compiled).replace(" \n", " ")
        constants: dict[str, object] = {}
        for param, value in compiled.params.items():
            if not isinstance(value, str):
                continue  # given by the caller
            mark = f"__[POSTCOMPILE_{param}]"
            if mark in sql:  # a literal SQLAlchemy renders when it runs (a separator)
                sql = sql.replace(mark, "'" + value.replace("'", "''") + "'")
            else:  # bound by the statement itself (``state = 'COMMITTED'``)
                constants[param] = value
        out[name] = sql
        if isinstance(statement, Select) and len(statement.selected_columns) > 1:
            # The names of its columns, for a row's mapping (``_rows.run_record``, ...).
            out[f"{name}_COLUMNS"] = ",".join(str(c.key) for c in statement.selected_columns)
        if constants:
            out[f"{name}_PARAMS"] = ",".join(f"{k}={v}" for k, v in sorted(constants.items()))
    return out


def quick_module() -> str:
    """The text of ``_quick_sql.py`` (before ``ruff format``)."""
    lines = [
        '"""Generated by ``python -m cairn.catalog._statements`` from ``_statements.py``: the',
        'statements of the quick path (``_quick_tx.py``) as SQLite\'s SQL text. Do not edit."""',
        "",
    ]
    lines += [f"{name} = {sql!r}" for name, sql in quick_sql().items()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    import subprocess

    path = __file__.replace("_statements.py", "_quick_sql.py")
    text = quick_module()  # compiled before the file is opened: an error leaves it as it was
    with open(path, "w") as f:
        f.write(text)
    subprocess.run([sys.executable, "-m", "ruff", "format", "-q", path], check=True)
    sys.stdout.write(f"wrote {path}\n")
