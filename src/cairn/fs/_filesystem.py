"""CairnFileSystem: artifact versions as an fsspec filesystem (``cairn://``).

Reads go through the ``Service`` protocol, so the same code serves the embedded store and a
server. Listings read the version's paged manifest: ``ls`` of one directory visits the pages that
hold that directory's entries (and the index pages above them), never the whole manifest; a
subdirectory is skipped over in one seek. See docs/fs.md for the grammar, caching and writes.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import threading
from collections.abc import Callable, Iterator
from typing import Any

from fsspec.spec import AbstractFileSystem

from cairn.core import ManifestEntry, PageReader, VersionRecord, digest_hex, normalize_entry_path
from cairn.errors import ArtifactNotFoundError, PathNotFoundError, ValidationError
from cairn.fs._file import DEFAULT_BLOCK_SIZE, CairnFile
from cairn.fs._paths import PROTOCOL, CairnPath, parse_cairn_path, strip_protocol
from cairn.fs._writes import CairnTransaction, Draft
from cairn.sdk import Session, Settings, current_service, current_session
from cairn.service import Service

Info = dict[str, Any]


class _SharedReader(PageReader):
    """A PageReader that several threads may use at once (pyarrow reads with a thread pool)."""

    def __init__(self, load: Callable[[str], bytes]) -> None:
        super().__init__(load, capacity=512)
        self._lock = threading.Lock()

    def node(self, digest: str) -> Any:
        with self._lock:
            return super().node(digest)


def _file_info(name: str, entry: ManifestEntry) -> Info:
    info: Info = {"name": name, "size": entry.size or 0, "type": "file", "digest": entry.digest}
    if entry.ref is not None:
        info["ref"] = entry.ref
    return info


def _dir_info(name: str) -> Info:
    return {"name": name, "size": 0, "type": "directory"}


class CairnFileSystem(AbstractFileSystem):  # type: ignore[misc]
    """``cairn://[entity/]project/name:alias_or_vN/path/in/artifact`` as an fsspec filesystem.

    ``service`` is the store to use (default: the one ``CAIRN_DIR``/``CAIRN_BASE_URL`` select,
    looked up on every call); ``artifact_type`` is the type of artifacts that writes create;
    ``block_size`` the size of ranged reads (each miss fetches the range read plus one block).
    """

    protocol = PROTOCOL
    root_marker = ""
    transaction_type = CairnTransaction

    def __init__(
        self,
        service: Service | None = None,
        artifact_type: str = "dataset",
        block_size: int = DEFAULT_BLOCK_SIZE,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._service = service
        # Over a given store, the settings (its default entity, the directories drafts use) are
        # read once, now; over the environment's store, with it, on every call.
        self._settings = None if service is None else Settings.from_env()
        self.artifact_type = artifact_type
        self.blocksize = block_size
        self._pages: tuple[Service, PageReader] | None = None
        self._drafts: dict[tuple[str, str, str, str], Draft] = {}
        self._batching = False

    # -- plumbing ------------------------------------------------------------------------------

    @classmethod
    def _strip_protocol(cls, path: Any) -> Any:
        if isinstance(path, list):
            return [cls._strip_protocol(p) for p in path]
        return strip_protocol(os.fspath(path) if not isinstance(path, str) else path)

    def unstrip_protocol(self, name: str) -> str:
        return name if name.startswith(f"{PROTOCOL}://") else f"{PROTOCOL}://{name}"

    def _svc(self) -> Service:
        return self._service if self._service is not None else current_service()

    def _reader(self, svc: Service) -> PageReader:
        """Pages are read (and kept) per service: the service is held, so another one made
        later cannot take its ``id`` and be handed this one's reader."""
        held = self._pages
        if held is None or held[0] is not svc:
            held = self._pages = (svc, _SharedReader(svc.read_blob))
        return held[1]

    def _entity(self, svc: Service, where: CairnPath) -> str:
        settings = self._settings if self._settings is not None else Settings.from_env()
        return where.entity or settings.entity or svc.default_entity

    def _version(self, where: CairnPath) -> tuple[Service, VersionRecord]:
        svc = self._svc()
        try:
            record = svc.resolve(self._entity(svc, where), where.project, where.name, where.label)
        except ArtifactNotFoundError as exc:
            raise PathNotFoundError(f"cairn://{where.artifact}: {exc}") from None
        return svc, record

    def _root(self, where: CairnPath) -> tuple[Service, PageReader, str]:
        svc, record = self._version(where)
        assert record.digest is not None
        return svc, self._reader(svc), record.digest

    def _entry(self, path: str) -> tuple[Service, str, ManifestEntry]:
        """The file at ``path`` (raising ``PathNotFoundError`` or ``IsADirectoryError``)."""
        name = self._strip_protocol(path)
        where = parse_cairn_path(name)
        svc, reader, root = self._root(where)
        entry = reader.get(root, where.path) if where.path else None
        if entry is None:
            if self._is_dir(reader, root, where.path):
                raise IsADirectoryError(f"cairn://{name} is a directory, not a file")
            raise PathNotFoundError(f"no file cairn://{name} in {where.artifact}")
        return svc, name, entry

    @staticmethod
    def _is_dir(reader: PageReader, root: str, path: str) -> bool:
        if not path:
            return True
        return next(reader.iter_prefix(root, path + "/"), None) is not None

    # -- reading -------------------------------------------------------------------------------

    def info(self, path: str, **kwargs: Any) -> Info:
        name = self._strip_protocol(path)
        where = parse_cairn_path(name)
        svc, record = self._version(where)
        assert record.digest is not None
        reader = self._reader(svc)
        if not where.path:
            info = _dir_info(name)
            info.update(
                size=record.size, digest=record.digest, version=record.version, id=record.id
            )
            return info
        entry = reader.get(record.digest, where.path)
        if entry is not None:
            return _file_info(name, entry)
        if self._is_dir(reader, record.digest, where.path):
            return _dir_info(name)
        raise PathNotFoundError(f"no file or directory cairn://{name} in {where.artifact}")

    def _children(self, reader: PageReader, root: str, prefix: str) -> Iterator[tuple[str, Any]]:
        """The entries and subdirectory names right under ``prefix`` (``""`` or ``"dir/"``).

        A subdirectory costs one seek past all its entries (to the next path after ``sub/``,
        which is ``sub0``: ``0`` follows ``/``), so only pages holding this directory's own
        entries and the first entry of each subdirectory are read."""
        start = prefix
        while True:
            for entry in reader.iter_from(root, start):
                if not entry.path.startswith(prefix):
                    return
                rest = entry.path[len(prefix) :]
                slash = rest.find("/")
                if slash < 0:
                    yield rest, entry
                    continue
                sub = rest[:slash]
                yield sub, None
                start = prefix + sub + "0"
                break
            else:
                return

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> list[Any]:
        name = self._strip_protocol(path)
        where = parse_cairn_path(name)
        _, reader, root = self._root(where)
        base = where.artifact
        prefix = where.path + "/" if where.path else ""
        out: list[Info] = []
        for child, entry in self._children(reader, root, prefix):
            full = f"{base}/{prefix}{child}"
            out.append(_dir_info(full) if entry is None else _file_info(full, entry))
        if not out:
            entry = reader.get(root, where.path) if where.path else None
            if entry is None:
                if where.path:
                    raise PathNotFoundError(f"no file or directory cairn://{name}")
            else:
                out = [_file_info(name, entry)]
        return out if detail else [i["name"] for i in out]

    def find(
        self,
        path: str,
        maxdepth: int | None = None,
        withdirs: bool = False,
        detail: bool = False,
        **kwargs: Any,
    ) -> Any:
        """Every file below ``path`` in one pass over the manifest's pages."""
        if maxdepth is not None:
            return super().find(path, maxdepth=maxdepth, withdirs=withdirs, detail=detail)
        name = self._strip_protocol(path)
        where = parse_cairn_path(name)
        _, reader, root = self._root(where)
        out: dict[str, Info] = {}
        entry = reader.get(root, where.path) if where.path else None
        if entry is not None:
            out[name] = _file_info(name, entry)
        else:
            prefix = where.path + "/" if where.path else ""
            if withdirs and where.path and self._is_dir(reader, root, where.path):
                out[name] = _dir_info(name)
            for e in reader.iter_prefix(root, prefix):
                full = where.child(e.path)
                out[full] = _file_info(full, e)
                if withdirs:
                    parts = e.path[len(prefix) :].split("/")[:-1]
                    for i in range(1, len(parts) + 1):
                        d = where.child(prefix + "/".join(parts[:i]))
                        out.setdefault(d, _dir_info(d))
        names = sorted(out)
        return {n: out[n] for n in names} if detail else names

    def cat_file(
        self, path: str, start: int | None = None, end: int | None = None, **kwargs: Any
    ) -> bytes:
        """A file's bytes: whole and verified, or only ``[start, end)`` (ranged, unverified)."""
        svc, _, entry = self._entry(path)
        self._refuse_reference(path, entry)
        if start is None and end is None:
            return svc.read_blob(entry.digest)
        size = entry.size or 0
        lo = 0 if start is None else (max(0, size + start) if start < 0 else min(start, size))
        hi = size if end is None else (max(0, size + end) if end < 0 else min(end, size))
        return svc.read_blob_range(entry.digest, lo, max(0, hi - lo))

    def modified(self, path: str) -> _dt.datetime:
        """When the version the path names was logged (versions never change after that)."""
        _, record = self._version(parse_cairn_path(self._strip_protocol(path)))
        return _dt.datetime.fromtimestamp(record.created_at, tz=_dt.UTC)

    created = modified

    def ukey(self, path: str) -> str:
        """The content digest: it changes exactly when the content does."""
        return str(self.info(path)["digest"])

    def checksum(self, path: str) -> int:
        return int(digest_hex(self.ukey(path))[:32], 16)

    def get_file(self, rpath: str, lpath: str, callback: Any = None, **kwargs: Any) -> None:
        """Download one file, verified (through the download cache of a server's store)."""
        if self.isdir(rpath):
            os.makedirs(lpath, exist_ok=True)
            return
        svc, _, entry = self._entry(rpath)
        self._refuse_reference(rpath, entry)
        if os.path.dirname(lpath):
            os.makedirs(os.path.dirname(lpath), exist_ok=True)
        svc.download_blob(entry.digest, lpath)

    @staticmethod
    def _refuse_reference(path: str, entry: ManifestEntry) -> None:
        if entry.ref is not None:
            raise ValidationError(
                f"{path} is a reference to {entry.ref}, not content in the store; read it there"
            )

    def _open(
        self,
        path: str,
        mode: str = "rb",
        block_size: int | None = None,
        autocommit: bool = True,
        cache_options: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> CairnFile:
        name = self._strip_protocol(path)
        size = block_size or self.blocksize
        if mode == "rb":
            svc, _, entry = self._entry(name)
            self._refuse_reference(name, entry)
            return CairnFile(
                self,
                name,
                "rb",
                service=svc,
                details=_file_info(name, entry),
                block_size=size,
                cache_type=kwargs.pop("cache_type", "readahead"),
                cache_options=cache_options,
            )
        if mode not in ("wb", "xb"):
            raise ValidationError(
                f"cairn:// files open as 'rb' or 'wb', not {mode!r}: a version never changes,"
                " so write the whole file (it becomes part of a new version)"
            )
        where = parse_cairn_path(name)
        if not where.path:
            raise ValidationError(f"cairn://{name} is an artifact version, not a file in it")
        normalize_entry_path(where.path)
        # The base version is the one the path names now, when the write begins.
        draft = self._draft(where) if self._intrans else self._new_draft(where)
        return CairnFile(
            self,
            name,
            "wb",
            service=self._svc(),
            draft=draft,
            block_size=size,
            autocommit=autocommit,
        )

    # -- writing -------------------------------------------------------------------------------

    def _session(self) -> Session:
        """The session a draft logs through: the current one, or one over the given store."""
        if self._service is None or self._settings is None:
            return current_session()
        return Session(self._settings, self._service)

    def _new_draft(self, where: CairnPath) -> Draft:
        session = self._session()
        return Draft(session, self._entity(session.service, where), where, self.artifact_type)

    def _draft(self, where: CairnPath) -> Draft:
        """The transaction's draft of the artifact ``where`` names (begun on first use)."""
        svc = self._svc()
        key = (self._entity(svc, where), where.project, where.name, where.label)
        draft = self._drafts.get(key)
        if draft is None:
            draft = self._drafts[key] = self._new_draft(where)
        return draft

    def _done(self) -> None:
        """After a write: outside a transaction (and outside a call that writes many files),
        log it now."""
        if not self._intrans and not self._batching:
            self._commit_drafts()

    @contextlib.contextmanager
    def _one_version(self) -> Iterator[None]:
        """The writes of one call (``put`` of a directory, ``copy``, ``mv``) make one version
        per artifact, not one per file."""
        if self._intrans or self._batching:
            yield
            return
        self._batching = True
        try:
            yield
        except BaseException:
            self._drop_drafts()
            raise
        finally:
            self._batching = False
        self._commit_drafts()

    def put(self, lpath: Any, rpath: Any, *args: Any, **kwargs: Any) -> Any:
        with self._one_version():
            return super().put(lpath, rpath, *args, **kwargs)

    def copy(self, path1: Any, path2: Any, *args: Any, **kwargs: Any) -> Any:
        with self._one_version():
            return super().copy(path1, path2, *args, **kwargs)

    def mv(self, path1: Any, path2: Any, *args: Any, **kwargs: Any) -> Any:
        with self._one_version():
            return super().mv(path1, path2, *args, **kwargs)

    def _commit_drafts(self) -> None:
        drafts, self._drafts = list(self._drafts.values()), {}
        try:
            for draft in drafts:
                draft.check_base()  # every alias checked before anything is logged
            for draft in drafts:
                draft.commit()
        finally:
            for draft in drafts:
                draft.close()

    def _drop_drafts(self) -> None:
        drafts, self._drafts = list(self._drafts.values()), {}
        for draft in drafts:
            draft.close()

    def _stage_file(
        self, path: str, local: str, *, owned: bool, draft: Draft | None = None
    ) -> None:
        """Add a local file to a draft (``owned``: a temporary file the draft may keep); outside
        a transaction, log it now."""
        where = parse_cairn_path(path)
        entry_path = normalize_entry_path(where.path)
        alone = draft is not None and not self._intrans
        try:
            if draft is None:
                draft = self._draft(where)
            draft.add_file(entry_path, draft.own(local) if owned else local)
            if alone:
                draft.commit()
        except BaseException:
            if owned and os.path.exists(local):
                os.unlink(local)
            if alone and draft is not None:
                draft.close()
            elif not self._intrans and not self._batching:
                self._drop_drafts()
            raise
        if not alone:
            self._done()

    def put_file(self, lpath: str, rpath: str, callback: Any = None, **kwargs: Any) -> None:
        if os.path.isdir(lpath):
            return  # directories are implied by the files in them
        self._stage_file(self._strip_protocol(rpath), lpath, owned=False)

    def cp_file(self, path1: str, path2: str, **kwargs: Any) -> None:
        """Copy inside the store: the new entry refers to the same content (no bytes move)."""
        try:
            _, _, entry = self._entry(path1)
        except IsADirectoryError:
            return  # a recursive copy names directories too: they come with their files

        where = parse_cairn_path(self._strip_protocol(path2))
        entry_path = normalize_entry_path(where.path)
        try:
            self._draft(where).add_entry(entry._replace(path=entry_path))
        except BaseException:
            if not self._intrans and not self._batching:
                self._drop_drafts()
            raise
        self._done()

    def rm(self, path: Any, recursive: bool = False, maxdepth: int | None = None) -> None:
        """Remove files (and, with ``recursive``, directories) in one new version."""
        paths = path if isinstance(path, list) else [path]
        try:
            for p in paths:
                name = self._strip_protocol(p)
                where = parse_cairn_path(name)
                if not where.path:
                    raise ValidationError(
                        f"cannot remove cairn://{name}: it is a whole version; remove the"
                        " files in it, or delete the version with `cairn artifact delete`"
                    )
                info = self.info(name)
                if info["type"] == "directory" and not recursive:
                    raise IsADirectoryError(f"cairn://{name} is a directory: pass recursive=True")
                self._draft(where).remove(where.path)
        except BaseException:
            if not self._intrans and not self._batching:
                self._drop_drafts()
            raise
        self._done()

    def rm_file(self, path: str) -> None:
        self.rm(path)

    def mkdir(self, path: str, create_parents: bool = True, **kwargs: Any) -> None:
        pass  # directories exist through the files in them

    def makedirs(self, path: str, exist_ok: bool = False) -> None:
        pass

    def rmdir(self, path: str) -> None:
        pass
