"""Adding to an artifact that is being built (W&B's ``add_file``, ``add_dir``, ``new_file``,
``add_reference``, ``add``, ``remove``): each turns what the user gives into entries of the
artifact's contents, its files staged into the artifact's store as they are added.
"""

from __future__ import annotations

import os
import stat as _stat
import weakref
from collections.abc import Sequence
from typing import IO, TYPE_CHECKING, Any

from cairn.core import ManifestEntry, digest_hex, normalize_entry_path
from cairn.errors import NotFoundError, ValidationError
from cairn.sdk import _progress
from cairn.sdk._entry import ArtifactManifestEntry, as_fs_path
from cairn.sdk._gc import without_gc
from cairn.sdk._scan import add_directory
from cairn.sdk._trees import TreeAdd
from cairn.sdk._values import ARTIFACT_SCHEMES, Policy, check_policy, entry_name, ref_name
from cairn.sdk._values import staging_root as _staging_root

if TYPE_CHECKING:
    from cairn.sdk._artifact import Artifact

MAX_REFERENCE_OBJECTS = 10_000_000


def put(
    art: Artifact, entry: ManifestEntry, overwrite: bool, local_path: str | None
) -> ArtifactManifestEntry:
    """Put ``entry`` into the contents (refusing other content at its path unless
    ``overwrite``), remembering the local file it came from."""
    old = art._contents.get(entry.path)
    if old is not None and not overwrite and not old.same_content(entry):
        raise ValidationError(
            f"Cannot add the same path twice: {entry.path!r} is already in the artifact with"
            " other content; pass overwrite=True to replace it, or remove() it first"
        )
    art._contents.put(entry)
    if local_path is not None:
        art._local_paths.add(entry.path, local_path)
    return ArtifactManifestEntry(entry, art, local_path)


def add_file(
    art: Artifact,
    local_path: str,
    name: str | None,
    *,
    is_tmp: bool | None,
    policy: Policy | None,
    overwrite: bool,
) -> ArtifactManifestEntry:
    link = check_policy(policy)
    path = os.path.abspath(os.fspath(local_path))
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise ValidationError(f"Path is not a file: {local_path!r} does not exist") from None
    if not _stat.S_ISREG(st.st_mode):
        hint = "; use add_dir() for directories" if _stat.S_ISDIR(st.st_mode) else ""
        raise ValidationError(f"Path is not a file: {local_path!r}{hint}")
    entry_path = normalize_entry_path(
        entry_name(name) if name is not None else os.path.basename(path)
    )
    directory, base = os.path.split(path)
    stager = art._stage()
    with _progress.progress("adding", 1, st.st_size, settings=stager.settings) as bar:
        staged = stager.stage([(directory, base, st)], link=link)[0]
        bar.advance(1, st.st_size)
    if is_tmp:
        head, _, tail = entry_path.rpartition("/")
        parts = tail.split(".")
        parts[0] = digest_hex(staged.digest)[:20]
        entry_path = (head + "/" if head else "") + ".".join(parts)
    entry = ManifestEntry(entry_path, staged.digest, staged.size)
    return put(art, entry, overwrite, path)


@without_gc
def add_dir(
    art: Artifact, local_path: str, name: str | None, *, policy: Policy | None, merge: bool
) -> None:
    link = check_policy(policy)
    root = os.path.abspath(os.fspath(local_path))
    if not os.path.isdir(root):
        raise ValidationError(f"Path is not a directory: {local_path!r}")
    given = None if name is None else entry_name(name)
    prefix = "" if given in (None, "", ".", "/") else normalize_entry_path(given) + "/"
    tree = None
    if art._contents.empty_new and not art._incremental:
        # A new artifact's first directory: added again from its tree record if it has one.
        session = art._sess()
        tree = TreeAdd(
            session.service, art._stage(), session.stat_cache, session.reader, root, prefix
        )
    add_directory(
        root,
        prefix,
        contents=art._contents,
        local_paths=art._local_paths,
        stager=art._stage(),
        reader=art._sess().reader,
        link=link,
        merge=merge,
        may_stream=not art._incremental,
        tree=tree,
    )
    art._tree = tree


def open_new_file(
    art: Artifact, name: str, mode: str, encoding: str | None
) -> tuple[IO[Any], str, bool]:
    """The file ``new_file`` opens for writing, its entry path, and whether it replaces one."""
    entry_path = normalize_entry_path(entry_name(name))
    if art._tmp_dir is None:
        import shutil  # here, not at import: logging files needs neither (nor bz2, lzma)
        import tempfile

        art._tmp_dir = tempfile.mkdtemp(
            prefix="cairn-new-file-", dir=_staging_root(art._sess().settings)
        )
        # Removed when the artifact goes (or at exit), quietly: TemporaryDirectory would warn
        # (ResourceWarning) about the implicit clean-up of an artifact nobody closes.
        weakref.finalize(art, shutil.rmtree, art._tmp_dir, ignore_errors=True)
    path = as_fs_path(art._tmp_dir, entry_path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    overwrite = "x" not in mode
    if not overwrite and art._contents.get(entry_path) is not None:
        raise ValidationError(
            f"File with name {name!r} already exists in the artifact; use mode='w' to replace it"
        )
    try:
        f = open(path, mode, encoding=encoding)  # noqa: SIM115 - the caller closes it
    except FileExistsError:
        raise ValidationError(f"File with name {name!r} already exists at {path!r}") from None
    return f, entry_path, overwrite


def add_reference(
    art: Artifact,
    uri: ArtifactManifestEntry | str,
    name: str | None,
    *,
    checksum: bool,
    max_objects: int | None,
) -> Sequence[ArtifactManifestEntry]:
    if isinstance(uri, ArtifactManifestEntry) and not uri.ref:
        # An entry of another artifact (W&B's artifact reference): the same content, by
        # digest, so it downloads from the store and gc keeps it while either version lives.
        return [put(art, uri._entry._replace(path=ref_name(name, uri.path)), True, None)]
    if isinstance(uri, ArtifactManifestEntry):
        uri = uri.ref_target()
    if isinstance(uri, str) and uri.startswith(ARTIFACT_SCHEMES):
        return [put(art, _artifact_entry(art, uri, name), True, None)]
    if not isinstance(uri, str) or "://" not in uri:
        raise ValidationError(
            f"references must be URIs, got {uri!r}; to reference a local file use file:///path"
        )
    # Loaded here: logging local files needs none of the reference handlers (S3's, HTTP's).
    from cairn.sdk._references import add_reference_entries

    limit = MAX_REFERENCE_OBJECTS if max_objects is None else max_objects
    entries = add_reference_entries(
        uri,
        None if name is None else entry_name(name),
        checksum=checksum,
        max_objects=limit,
        cache=art._sess().stat_cache,
    )
    return [put(art, entry, True, None) for entry in entries]


def _artifact_entry(art: Artifact, uri: str, name: str | None) -> ManifestEntry:
    """The entry ``cairn-artifact://<version id>/<path>`` (or W&B's ``wandb-artifact://``)
    names, under ``name``."""
    version_id, _, path = uri.split("://", 1)[1].partition("/")
    try:
        record = art._svc().get_version(version_id)
    except NotFoundError:
        raise ValidationError(f"reference {uri!r}: no artifact version {version_id!r}") from None
    entry = None if record.digest is None else art._sess().reader.get(record.digest, path)
    if entry is None:
        raise ValidationError(f"reference {uri!r}: {record.qualified_name} has no {path!r}")
    return entry._replace(path=ref_name(name, path))


def add_object(art: Artifact, obj: Any, name: str, overwrite: bool) -> ArtifactManifestEntry:
    from cairn.sdk._objects import encode_object
    from cairn.sdk._tables import JoinedTable, PartitionedTable, add_composite

    if isinstance(obj, (JoinedTable, PartitionedTable)):
        return add_composite(art, obj, entry_name(name), overwrite)
    entry_path, data = encode_object(obj, name)
    existing = art._added_objects.get(id(obj))
    if existing is not None and existing[1].path == entry_path:
        return existing[1]
    if not overwrite:
        old = art._contents.get(entry_path)
        if old is not None:
            return ArtifactManifestEntry(old, art)
    staged = art._stage().stage_bytes(data)
    entry = put(art, ManifestEntry(entry_path, staged.digest, staged.size), True, None)
    art._added_objects[id(obj)] = (obj, entry)
    return entry


def remove(art: Artifact, item: str | os.PathLike[str] | ArtifactManifestEntry) -> None:
    if isinstance(item, ArtifactManifestEntry):
        path = item.path
    else:
        path = os.fspath(item).replace(os.sep, "/").strip("/")
    if path and art._contents.delete(path):
        art._local_paths.pop(path)
        return
    prefix = path + "/" if path else ""
    matched = [e.path for e in art._contents.iter_prefix(prefix)] if path else []
    if not matched:
        raise FileNotFoundError(f"No such file or directory in the artifact: {path!r}")
    for p in matched:
        art._contents.delete(p)
        art._local_paths.pop(p)
