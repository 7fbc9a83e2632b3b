"""ServiceTests: the Service protocol's behaviour, for the embedded store and for a server.

One suite made of parts by concept, each its own module: committing and distributed versions
(``_service_commit``), versions, collections, lists and search (``_service_versions``), blobs
(``_service_blobs``) and copying between stores (``_service_sync``).
"""

from __future__ import annotations

from cairn.testing._service_blobs import BlobTests
from cairn.testing._service_commit import CommitTests
from cairn.testing._service_sync import SyncTests
from cairn.testing._service_versions import VersionTests


class ServiceTests(CommitTests, VersionTests, BlobTests, SyncTests):
    """Provide a ``service`` fixture returning a Service over an empty store."""
