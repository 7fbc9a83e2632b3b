"""The Service protocol: everything the SDK may ask of a store, local or remote.

The SDK sees only this. ``LocalService`` implements it in process over a catalog and a blob store;
``HttpService`` implements it over cairn's REST API. ``cairn.testing.ServiceTests`` holds both to
the same behaviour.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from cairn.core import Change, CollectionRecord, RegistryRecord, RunRecord, VersionRecord
from cairn.service._search import SearchRequest, SearchResult
from cairn.storage import BlobInfo


@dataclass(frozen=True, slots=True)
class CommitRequest:
    """Commit a new version of ``entity/project/name``.

    With ``base_version_id`` the changes apply to that committed version (a draft); without, the
    changes are all the entries of the new version. ``changes`` are sorted by path, one per path.
    With ``expect_alias`` = ``(alias, version id)`` the commit is refused with ``ConflictError``
    (and nothing is committed) unless the alias still names that version (``None``: names no
    version) inside the same catalog transaction: a compare-and-set for writers of one alias.
    With ``manifest`` (the root digest of a manifest whose pages the client stored as blobs, as
    the SDK does for large directories, streaming) the changes apply onto that manifest instead;
    the service checks it page by page, never holding it whole. Both (a draft that streamed a
    directory): the changes apply onto the manifest, and ``base_version_id`` is checked as a
    draft's base and recorded as the new version's base.
    """

    entity: str
    project: str
    name: str
    type: str
    changes: Sequence[Change]
    base_version_id: str | None = None
    description: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    aliases: Sequence[str] = ()
    tags: Sequence[str] = ()
    run_id: str | None = None
    expect_alias: tuple[str, str | None] | None = None
    manifest: str | None = None


@dataclass(frozen=True, slots=True)
class StageRequest:
    """Add changes to the PENDING version of ``name`` with ``distributed_id`` (an upsert).

    ``changes`` are sorted by path: entries to add or replace, or ``(path, None)`` to remove a path
    of the base version (only with ``base_version_id``, when the distributed version is a draft).
    They are only iterated (a server's are decoded from the request body as they are taken).
    """

    entity: str
    project: str
    name: str
    type: str
    distributed_id: str
    changes: Collection[Change]
    base_version_id: str | None = None
    run_id: str | None = None
    description: str | None = None
    metadata: Mapping[str, Any] | None = None
    aliases: Sequence[str] = ()  # given to the version when it is committed


@dataclass(frozen=True, slots=True)
class FinishRequest(StageRequest):
    """Stage ``changes`` (may be none) and commit the PENDING version of ``distributed_id``."""

    tags: Sequence[str] = ()


@dataclass(frozen=True, slots=True)
class CommitResult:
    """The committed version, whether it is new, and blobs the store lacked (nothing committed)."""

    version: VersionRecord | None
    created: bool = False
    missing: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class VersionExport:
    """Everything a store keeps about a committed version, to copy it to another store.

    ``runs`` maps a lineage role (``output``: logged it, ``input``: used it, ``writer``: upserted
    into it) to the runs in that role; ``base_digest`` is the manifest digest of the version a
    draft was made from (versions are matched across stores by digest, never by id); the TTL is the
    version's ``ttl_seconds``. ``link_of``: for a registry link (``link_version``), the
    ``(entity, project, name)`` of the version it links to (which has the same digest). Fields
    that new catalog features add belong here and in ``ImportRequest``.
    """

    version: VersionRecord
    runs: Mapping[str, Sequence[RunRecord]]
    base_digest: str | None = None
    collection_description: str | None = None
    link_of: tuple[str, str, str] | None = None


@dataclass(frozen=True, slots=True)
class ImportRequest:
    """Add a version copied from another store, keeping what it was there.

    Its manifest pages and blobs must be in the store already (``missing`` says which are not).
    Idempotent: when the collection has a committed version with ``digest``, that version gets the
    aliases, tags and lineage links (its number, time and metadata stay). Otherwise the version is
    committed in one transaction, as a normal commit, with number ``index`` (``ConflictError`` if
    the collection used that number already; ``None``: the next number) and ``created_at``;
    ``latest`` then points at the highest number. Runs named in ``created_by`` and ``runs`` must
    exist (``import_run``); ``runs`` holds ``(role, entity, project, run_id)``.
    ``ttl_seconds`` (W&B's ``Artifact.ttl``): a new version expires that long after
    ``created_at``, as at the source; a version already there gets it (from its own commit time)
    when it is given (None leaves its TTL as it is). ``link_of`` ``(entity, project, name)``:
    a new version is a registry link to that collection's committed version with ``digest``
    (``NotFoundError`` if there is none: import that one first).
    """

    entity: str
    project: str
    name: str
    type: str
    digest: str
    index: int | None
    created_at: float
    description: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    aliases: Sequence[str] = ()
    tags: Sequence[str] = ()
    created_by: str | None = None
    runs: Sequence[tuple[str, str, str, str]] = ()
    base_version_id: str | None = None
    collection_description: str | None = None
    ttl_seconds: float | None = None
    link_of: tuple[str, str, str] | None = None


@runtime_checkable
class Service(Protocol):
    @property
    def default_entity(self) -> str:
        """The entity names default to (the local user, or the API key's user)."""

    @property
    def location(self) -> str:
        """Where the store is, for messages (a directory or a URL)."""

    @property
    def is_local(self) -> bool:
        """Whether blobs live on this machine (so downloads need no separate cache)."""

    # -- runs --

    def start_run(self, run: RunRecord) -> RunRecord: ...

    def finish_run(
        self, entity: str, project: str, run_id: str, state: str, config: Mapping[str, Any] | None
    ) -> None: ...

    def get_run(self, entity: str, project: str, run_id: str) -> RunRecord: ...

    def run_versions(
        self, entity: str, project: str, run_id: str, role: str
    ) -> list[VersionRecord]:
        """Versions a run used (``role="input"``) or logged (``role="output"``)."""

    def list_runs(self, entity: str, project: str) -> list[RunRecord]:
        """The runs of a project, oldest first (W&B's ``Api.runs`` filters them)."""

    def delete_run(
        self, entity: str, project: str, run_id: str, *, delete_artifacts: bool = False
    ) -> None:
        """Delete a run (and, with ``delete_artifacts``, the versions it logged)."""

    def log_history(
        self, entity: str, project: str, run_id: str, rows: Sequence[str], summary: str | None
    ) -> None:
        """Store a run's history rows (JSON objects with ``_step``; a step logged again replaces
        its row) and, unless None, its whole summary (a JSON object), in one transaction."""

    def run_history(
        self,
        entity: str,
        project: str,
        run_id: str,
        *,
        min_step: int | None = None,
        max_step: int | None = None,
        limit: int | None = None,
    ) -> list[str]:
        """A run's history rows (JSON texts) of steps ``min_step <= step < max_step``, by step."""

    def run_summary(self, entity: str, project: str, run_id: str) -> str:
        """A run's summary (a JSON object's text; ``{}`` if nothing was logged)."""

    # -- blobs --

    def store_blobs(
        self, items: Sequence[tuple[str, bytes]], *, known_missing: bool = False
    ) -> None:
        """Store small blobs whose digests the caller computed (a server re-checks them).

        ``known_missing``: the caller asked ``missing_blobs`` about them just now (``cairn
        sync``), so a remote store sends them all without asking again; what a store has
        already is stored once all the same."""

    def store_file(self, path: str, *, link: bool = False) -> BlobInfo:
        """Store a file's content, hashing it on the way; returns its digest and size.

        ``link=True`` (the "immutable" policy) lets a local store clone the file (copy-on-write)."""

    def store_blob_file(
        self, path: str, digest: str, size: int, *, sent: Callable[[], None] | None = None
    ) -> None:
        """Store a file whose digest the caller knows (a blob copied from another store). The
        store still checks it: a local store hashes it while copying, a server when the upload
        completes; other content raises ``DigestMismatchError`` and stores nothing under
        ``digest``. ``sent`` (if given) is called at most once, when the content has left and
        only the store's own work remains (a server's hashing and fsync at ``complete``, an S3
        multipart completion; a local store calls it at once): a caller with more to send
        sends it then (``cairn sync``'s small blobs)."""

    def missing_blobs(self, digests: Sequence[str]) -> list[str]:
        """Those of ``digests`` the store lacks (asked once per batch, never per file)."""

    def read_blob(self, digest: str) -> bytes:
        """A blob's content, verified against its digest."""

    def read_blobs(self, digests: Sequence[str]) -> Iterator[tuple[str, bytes]]:
        """``(digest, content)`` of each of ``digests`` (small blobs), each verified; many per
        query or request where the store can (a local store reads its small blobs in batches)."""

    def download_blob(self, digest: str, dest: str) -> None:
        """Write a blob to the file ``dest``, verified against its digest."""

    def read_blob_range(self, digest: str, start: int, length: int) -> bytes:
        """Bytes ``[start, start + length)`` of a blob (fewer at its end, none past it).

        Only those bytes travel (a local seek, an HTTP ``Range`` request). Not verified: a part
        has no digest; the caller verifies what it reads whole. Nothing enters the download
        cache, which holds verified blobs only."""

    def blob_path(self, digest: str) -> str | None:
        """A file of this machine holding the blob, to read and never change, if the store keeps
        it as one (a local store's large blobs); None otherwise. Not verified: whoever reads it
        checks the digest (storing it elsewhere re-hashes it anyway)."""

    def prefetch_blobs(self, digests: Sequence[str]) -> None:
        """Hint: these blobs are about to be downloaded one by one. A remote store fetches the
        small ones many per request into its download cache; a local store does nothing."""

    # -- versions --

    def commit(self, request: CommitRequest) -> CommitResult: ...

    def stage(self, request: StageRequest) -> VersionRecord: ...

    def finish(self, request: FinishRequest) -> CommitResult: ...

    def discard_pending(self, version_id: str) -> None: ...

    def cleanup_pending(self, older_than_seconds: float) -> int:
        """Discard PENDING versions untouched for longer than that; return how many."""

    def resolve(self, entity: str, project: str, name: str, label: str | None) -> VersionRecord:
        """The committed version that ``name:label`` names (label None means ``latest``)."""

    def get_version(self, version_id: str) -> VersionRecord: ...

    def list_versions(
        self, entity: str, project: str, name: str, *, include_pending: bool = False
    ) -> list[VersionRecord]: ...

    def list_collections(
        self, entity: str, project: str, type_name: str | None = None
    ) -> list[CollectionRecord]: ...

    def list_types(self, entity: str, project: str) -> list[str]: ...

    def list_projects(self, entity: str | None = None) -> list[tuple[str, str]]: ...

    def update_version(
        self,
        version_id: str,
        *,
        description: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        aliases: Sequence[str] | None = None,
        tags: Sequence[str] | None = None,
    ) -> VersionRecord: ...

    def add_alias(self, version_id: str, alias: str) -> VersionRecord: ...

    def remove_alias(self, version_id: str, alias: str) -> VersionRecord: ...

    def delete_version(self, version_id: str, *, delete_aliases: bool = False) -> None: ...

    def set_ttl(self, version_id: str, ttl_seconds: float | None) -> VersionRecord:
        """Give a committed version a TTL from its commit (None: none); an expired version is
        hidden from every query and removed by gc (W&B's ``Artifact.ttl``)."""

    # -- registry links and registries (W&B's link_artifact, Registry) --

    def link_version(
        self,
        source_version_id: str,
        entity: str,
        project: str,
        name: str,
        aliases: Sequence[str] = (),
    ) -> VersionRecord:
        """Link a committed version into ``entity/project/name``: a version there with its own
        number and aliases and the source's content (no copy)."""

    def unlink_version(self, version_id: str) -> None:
        """Remove a link (the source version stays)."""

    def version_links(self, version_id: str) -> list[VersionRecord]:
        """The live links of a version."""

    def create_registry(
        self,
        name: str,
        *,
        description: str | None = None,
        visibility: str = "organization",
        artifact_types: Sequence[str] = (),
    ) -> RegistryRecord: ...

    def list_registries(self) -> list[RegistryRecord]: ...

    # -- collections (W&B's ArtifactCollection) --

    def get_collection(self, entity: str, project: str, name: str) -> CollectionRecord: ...

    def update_collection(
        self,
        entity: str,
        project: str,
        name: str,
        *,
        new_name: str | None = None,
        description: str | None = None,
        tags: Sequence[str] | None = None,
    ) -> CollectionRecord:
        """Rename a collection, change its description or replace its tags (all or nothing)."""

    def delete_collection(self, entity: str, project: str, name: str) -> None:
        """Delete a collection and every version of it."""

    def use_version(self, version_id: str, run: RunRecord) -> None:
        """Record that ``run`` used the version (lineage)."""

    def version_runs(self, version_id: str, role: str) -> list[RunRecord]:
        """Runs linked to a version: ``input`` (users), ``output`` (committer), ``writer``."""

    def search(self, request: SearchRequest) -> SearchResult:
        """Projects, collections, committed versions and runs matching ``request.query``, a page
        of each, only within what the caller may read (see ``SearchRequest``)."""

    # -- copying between stores (``cairn sync``) --

    def export_versions(self, entity: str, project: str, name: str) -> list[VersionExport]:
        """Every committed version of ``name`` with its lineage, by number (empty if none)."""

    def import_run(self, run: RunRecord) -> RunRecord:
        """Create the run as it is (id, times, state, config) unless it exists; an existing run
        is returned unchanged."""

    def import_version(self, request: ImportRequest) -> CommitResult:
        """See ``ImportRequest``."""

    def close(self) -> None: ...
