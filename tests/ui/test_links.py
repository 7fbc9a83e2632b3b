"""The web UI shows registry links: "Linked from" on a link, "Linked to" on its source."""

from __future__ import annotations

import pathlib

from starlette.testclient import TestClient

from cairn.core import ManifestEntry, digest_bytes
from cairn.service import CommitRequest, LocalService
from cairn.ui import LocalUiBackend, create_ui_app


def test_version_pages_show_links(tmp_path: pathlib.Path) -> None:
    svc = LocalService.open(str(tmp_path / "store"))
    try:
        data = b"weights"
        svc.store_blobs([(digest_bytes(data), data)])
        entry = ManifestEntry("model.pkl", digest_bytes(data), len(data))
        result = svc.commit(
            CommitRequest(
                entity="me",
                project="train",
                name="churn-model",
                type="model",
                changes=[(entry.path, entry)],
            )
        )
        assert result.version is not None
        svc.link_version(result.version.id, "registry", "wandb-registry-model", "churn", ["prod"])
        app = create_ui_app(LocalUiBackend(svc), secure_cookies=False)
        with TestClient(app, follow_redirects=False) as client:
            link_page = client.get("/registry/wandb-registry-model/artifacts/model/churn/v0")
            assert link_page.status_code == 200
            assert "Linked from" in link_page.text and "churn-model:v0" in link_page.text
            source_page = client.get("/me/train/artifacts/model/churn-model/v0")
            assert "Linked to" in source_page.text and "churn:v0" in source_page.text
            assert "model.pkl" in link_page.text  # the same content, listed from the link
    finally:
        svc.close()
