"""The embedded store and a server accept exactly the same names (issue 12, item 3).

Generated names (dots, patterns, URL and path characters, control characters, Unicode, long ones)
are tried as entity, project, artifact name and alias on both; each is accepted by both and read
back, or refused by both with the same error class.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cairn.core import ManifestEntry, digest_bytes
from cairn.errors import CairnError
from cairn.service import CommitRequest, Service

_ALPHABET = [
    *"aZ09._- *?#%/\\:'\"<>&+=~@!$,;()[]{}|^`",
    *("\n", "\t", "\x00", "\x7f", "é", "€", "\u200b", "\u0301", "\U0001f600"),
]
NAMES = st.one_of(
    st.text(alphabet=_ALPHABET, min_size=0, max_size=6),
    st.sampled_from([".", "..", "...", ". .", "*", "v1", "latest", "a" * 128, "a" * 129, "é" * 65]),
)
KINDS = ("entity", "project", "name", "alias")


def _try(svc: Service, kind: str, value: str) -> str:
    """ "ok" if a version logged under ``value`` (as ``kind``) reads back, else the error class."""
    names = {"entity": "e", "project": "p", "name": "ds", "alias": "best"}
    names[kind] = value
    data = b"same content"
    d = digest_bytes(data)
    try:
        svc.store_blobs([(d, data)])
        req = CommitRequest(
            entity=names["entity"],
            project=names["project"],
            name=names["name"],
            type="dataset",
            changes=[("f", ManifestEntry("f", d, len(data)))],
            aliases=[names["alias"]],
        )
        result = svc.commit(req)
        assert result.version is not None
        back = svc.resolve(names["entity"], names["project"], names["name"], names["alias"])
        assert back.id == result.version.id, (kind, value)
        assert svc.get_version(back.id).aliases == result.version.aliases
        return "ok"
    except CairnError as exc:
        return type(exc).__name__


@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(kind=st.sampled_from(KINDS), value=NAMES)
def test_embedded_and_server_accept_the_same_names(
    both: dict[str, Service], kind: str, value: str
) -> None:
    embedded = _try(both["embedded"], kind, value)
    server = _try(both["server"], kind, value)
    assert embedded == server, f"{kind} {value!r}: embedded {embedded}, server {server}"


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("value", [".", "..", "..."])
def test_dot_only_names_are_refused_on_both(
    both: dict[str, Service], kind: str, value: str
) -> None:
    for svc in both.values():
        assert _try(svc, kind, value) == "ValidationError"
