"""Conformance suites every implementation runs (like restic's backend tests, zarr's store tests).

Subclass one in a test module and provide the fixture it asks for::

    class TestLocalBlobStore(BlobStoreTests):
        @pytest.fixture
        def store(self, tmp_path):
            return LocalBlobStore(str(tmp_path))
"""

from cairn.testing._blobstore import BlobStoreTests
from cairn.testing._catalog import CatalogTests
from cairn.testing._counting import CountingService
from cairn.testing._service import ServiceTests

__all__ = ["BlobStoreTests", "CatalogTests", "CountingService", "ServiceTests"]
