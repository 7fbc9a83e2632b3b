"""Every page over real requests (in process): status, escaping, paging, forms, downloads."""

from __future__ import annotations

import html
import re

import pytest
from starlette.testclient import TestClient

from cairn.service import LocalService
from cairn.ui import CONTENT_SECURITY_POLICY
from tests.ui.conftest import MANY, csrf_token
from tests.ui.sample_store import ENTITY, MALICIOUS, png

P = f"/{ENTITY}/mnist"
DATA = f"{P}/artifacts/dataset/mnist-images"
SANDBOX = f"/{ENTITY}/sandbox"
XSS = f"{SANDBOX}/artifacts/dataset/xss-test/v0"
ESCAPED = html.escape(MALICIOUS)


def run_id(local_service: LocalService, job_type: str, project: str = "mnist") -> str:
    for v in (
        local_service.list_versions(ENTITY, project, "mnist-images") if project == "mnist" else []
    ):
        for r in local_service.version_runs(v.id, "input") + local_service.version_runs(
            v.id, "output"
        ):
            if r.job_type == job_type:
                return r.id
    raise AssertionError(f"no {job_type} run")


def get(client: TestClient, url: str, status: int = 200) -> str:
    r = client.get(url)
    assert r.status_code == status, (url, r.status_code, r.text[:500])
    return r.text


def test_every_page_renders_with_security_headers(
    client: TestClient, local_service: LocalService
) -> None:
    train = run_id(local_service, "train")
    pages = [
        "/",
        f"/{ENTITY}",
        P,
        DATA,
        f"{DATA}/v1",
        f"{DATA}/v1/files",
        f"{DATA}/v0/files/images/",
        f"{DATA}/v0/files/images/train",
        f"{DATA}/v0/file/labels.csv",
        f"{DATA}/v0/file/README.md",
        f"{DATA}/v0/file/images/train/3/0001.png",
        f"{DATA}/v1/diff",
        f"{DATA}/v1/diff?against=v0",
        f"{DATA}/v1/lineage",
        f"{DATA}/v1/lineage?depth=1",
        f"{P}/artifacts/evaluation/eval-results/v0/file/predictions.table.json",
        f"{P}/artifacts/evaluation/eval-results/v0/file/summary.json",
        f"{P}/runs/{train}",
        f"{P}/runs/{train}/lineage",
        "/-/search?q=mnist",
        "/-/search?q=tag%3Anightly&kind=version&page=2",
        f"/{ENTITY}/sweeps/artifacts/metrics/sweep-results?sort=size&order=asc&page=2&col=accuracy",
        f"/{ENTITY}/sweeps/artifacts/metrics/sweep-results/v3/diff?against=v1",
        f"{P}/artifacts/evaluation/eval-results/v1/diff",
    ]
    for url in pages:
        r = client.get(url)
        assert r.status_code == 200, (url, r.text[:300])
        assert r.headers["content-type"].startswith("text/html")
        assert r.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["x-frame-options"] == "DENY"
        assert "<script>" not in r.text and " style=" not in r.text, url  # CSP: nothing inline
    static = client.get("/-/static/style.css")
    assert static.status_code == 200 and "text/css" in static.headers["content-type"]


def test_pages_show_what_they_are_about(client: TestClient, local_service: LocalService) -> None:
    home = get(client, "/")
    assert f'href="{P}"' in home and "sandbox" in home
    project = get(client, P)
    for name in ("mnist-images", "cnn-model", "eval-results", "predictions", "many-files"):
        assert f">{name}</a>" in project
    assert project.index(">dataset</span>") < project.index(">evaluation</span>")
    collection = get(client, DATA)
    assert ">v1</a>" in collection and ">v0</a>" in collection
    assert ">clean-data</a>" in collection and ">prepare-data</a>" in collection
    assert "clean" in collection and "raw" in collection
    version = get(client, f"{DATA}/v1")
    assert "yann.lecun.com" in version and "Three images per class." in version
    assert ">train-cnn</a>" in version  # used by
    assert ">mnist-images:v0</a>" in version  # base version
    assert f'href="{DATA}/v1/files/images/"' in version and "labels.csv" in version
    train = get(client, f"{P}/runs/{run_id(local_service, 'train')}")
    assert "optimizer" in train and "adam" in train and "[32, 64, 10]" in train
    assert "mnist/mnist-images:v1</a>" in train and "mnist/cnn-model:v0</a>" in train


def test_alias_in_the_address_redirects_to_the_version_number(client: TestClient) -> None:
    r = client.get(f"{DATA}/clean")
    assert r.status_code == 307 and r.headers["location"].endswith(f"{DATA}/v1")
    r = client.get(f"{DATA}/raw/files/images/")
    assert r.status_code == 307 and r.headers["location"].endswith(f"{DATA}/v0/files/images/")


@pytest.mark.parametrize(
    "url",
    [
        "/nobody",
        f"/{ENTITY}/no-project",
        f"{P}/artifacts/dataset/no-such",
        f"{P}/artifacts/model/mnist-images",  # wrong type
        f"{DATA}/v9",
        f"{DATA}/v0/files/no-dir/",
        f"{DATA}/v0/file/no-file.txt",
        f"{DATA}/v0/raw/no-file.txt",
        f"{P}/runs/no-run",
        f"{DATA}/v1/diff?against=v7",
        "/a/b/c/d/e/f/g/h",
    ],
)
def test_missing_things_are_404_pages(client: TestClient, url: str) -> None:
    r = client.get(url)
    assert r.status_code == 404, (url, r.status_code)
    assert "Not found" in r.text and r.headers["content-security-policy"] == CONTENT_SECURITY_POLICY


def test_user_content_is_escaped_everywhere(
    client: TestClient, local_service: LocalService
) -> None:
    runs = local_service.version_runs(
        local_service.resolve(ENTITY, "sandbox", "xss-test", "v0").id, "output"
    )
    pages = [
        "/",
        SANDBOX,
        f"{SANDBOX}/artifacts/dataset/xss-test",
        XSS,
        f"{XSS}/files",
        f"{XSS}/file/{MALICIOUS}.txt",
        f"{XSS}/file/page.html",
        f"{XSS}/lineage",
        f"{SANDBOX}/runs/{runs[0].id}",
        f"{SANDBOX}/runs/{runs[0].id}/lineage",
    ]
    for url in pages:
        text = get(client, url)
        assert MALICIOUS not in text, url
        assert "<script>alert" not in text, url
    assert ESCAPED in get(client, f"{XSS}/file/{MALICIOUS}.txt")  # the name and the content
    version = get(client, XSS)
    assert html.escape("<script>alert(1)</script>") in version  # description
    assert version.count(ESCAPED) >= 3  # metadata key and value, file name, alias


def test_stored_files_are_never_served_as_pages(client: TestClient) -> None:
    r = client.get(f"{XSS}/raw/page.html")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/octet-stream"
    assert r.headers["content-disposition"].startswith("attachment;")
    assert "sandbox" in r.headers["content-security-policy"]
    assert r.headers["x-content-type-options"] == "nosniff"
    # An SVG/HTML file named .png is not an image: no inline rendering.
    fake = client.get(f"{XSS}/raw/fake.png?inline=1")
    assert fake.headers["content-type"] == "application/octet-stream"
    assert fake.headers["content-disposition"].startswith("attachment;")
    real = client.get(f"{DATA}/v0/raw/images/train/3/0001.png?inline=1")
    assert real.headers["content-type"] == "image/png" and real.content == png(28, 28, 31)
    download = client.get(f"{DATA}/v0/raw/labels.csv")
    assert download.content.startswith(b"image,label\n")
    assert 'filename="labels.csv"' in download.headers["content-disposition"]
    name = client.get(f"{XSS}/raw/{MALICIOUS}.txt").headers["content-disposition"]
    assert "filename*=UTF-8''%3Cimg%20src%3Dx" in name


def test_previews(client: TestClient) -> None:
    table = get(client, f"{P}/artifacts/evaluation/eval-results/v0/file/predictions.table.json")
    assert "<th>prediction</th>" in table and "<td>test/3/0000.png</td>" in table
    assert "12 rows" in table
    csv = get(client, f"{DATA}/v0/file/labels.csv")
    assert "<th>image</th><th>label</th>" in csv and "<td>train/9/0002.png</td>" in csv
    assert "&#34;accuracy&#34;: 0.987" in get(
        client, f"{P}/artifacts/evaluation/eval-results/v0/file/summary.json"
    )
    image = get(client, f"{DATA}/v0/file/images/train/3/0001.png")
    assert f'src="{DATA}/v0/raw/images/train/3/0001.png?inline=1"' in image
    assert "# MNIST sample" in get(client, f"{DATA}/v0/file/README.md")


def test_diff_page(client: TestClient) -> None:
    page = get(client, f"{DATA}/v1/diff")  # against the base version by default
    assert "+1</strong> added" in page and "\u221210</strong> removed" in page
    assert "~1</strong> modified" in page
    assert "NOTES.txt" in page and "images/test/4/0000.png" in page
    swapped = get(client, f"{DATA}/v0/diff?against=v1")
    assert "\u22121</strong> removed" in swapped and "+10</strong> added" in swapped
    first = get(client, f"{P}/artifacts/model/cnn-model/v0/diff")
    assert "nothing to compare" in first


def test_long_directories_are_paged(client: TestClient) -> None:
    base = f"{P}/artifacts/dataset/many-files/v0"
    root = get(client, f"{base}/files")
    assert "a.txt" in root and "z.txt" in root and f">{MANY:,}</td>" in root
    names: list[str] = []
    url: str | None = f"{base}/files/big/"
    pages = 0
    while url:
        page = get(client, url)
        pages += 1
        names += re.findall(r'class="file">(part-\d+\.txt)</a>', page)
        more = re.search(r'href="([^"]+)" class="next"', page)
        url = html.unescape(more.group(1)) if more else None
    assert pages == 3
    assert names == [f"part-{i:05}.txt" for i in range(MANY)]


def test_aliases_are_added_and_removed_with_csrf_protection(client: TestClient) -> None:
    url = f"{P}/artifacts/evaluation/eval-results"
    token = csrf_token(get(client, url))
    form = {"csrf_token": token, "action": "add", "version": "v0", "alias": "reviewed"}
    assert client.post(url, data={**form, "csrf_token": "forged"}).status_code == 403
    other_site = client.post(url, data=form, headers={"origin": "https://evil.example"})
    assert other_site.status_code == 403
    r = client.post(url, data=form)
    assert r.status_code == 303 and r.headers["location"] == url
    assert ">reviewed<" in get(client, url)
    bad = client.post(url, data={**form, "alias": "v3"})
    assert bad.status_code == 400 and "version numbers" in bad.text
    evil = client.post(url, data={**form, "alias": MALICIOUS + "x"})
    assert evil.status_code == 303
    assert MALICIOUS not in get(client, url)
    back = f"{url}/v0"
    r = client.post(url, data={**form, "action": "remove", "alias": "reviewed", "next": back})
    assert r.status_code == 303 and r.headers["location"] == back
    assert ">reviewed<" not in get(client, url)
    away = client.post(
        url, data={**form, "action": "remove", "alias": MALICIOUS + "x", "next": "//evil.example/"}
    )
    assert away.headers["location"] == "/"
    # "latest" is an alias like any other (as in W&B): removing it leaves ":latest" resolving to
    # the newest version, which the page still shows as the latest.
    assert "remove alias latest" in get(client, url)
    newest = client.get(f"{url}/latest").headers["location"].rsplit("/", 1)[-1]  # vN
    latest = client.post(
        url, data={**form, "version": newest, "action": "remove", "alias": "latest"}
    )
    assert latest.status_code == 303
    assert "remove alias latest" not in get(client, url)
    restored = client.post(url, data={**form, "version": newest, "alias": "latest"})
    assert restored.status_code == 303  # put back: other tests share the sample store


def test_bad_requests_get_error_pages_not_json(client: TestClient) -> None:
    r = client.get(f"{DATA}/v1/lineage?depth=99")
    assert r.status_code == 400 and "Invalid parameter" in r.text and "<html" in r.text
    r = client.post(f"{DATA}/v1")
    assert r.status_code == 405 and "<html" in r.text
    token = csrf_token(get(client, DATA))
    r = client.post(DATA, data={"csrf_token": token, "action": "add", "version": "", "alias": "a"})
    assert r.status_code == 400 and "not a version number" in r.text


def test_only_requests_for_this_host_are_answered(local_service: LocalService) -> None:
    """``cairn ui`` refuses other Host names: no DNS rebinding onto the local store."""
    from cairn.ui import LocalUiBackend, create_ui_app

    app = create_ui_app(
        LocalUiBackend(local_service), secure_cookies=False, allowed_hosts=["127.0.0.1"]
    )
    assert TestClient(app, base_url="http://127.0.0.1").get("/").status_code == 200
    assert TestClient(app, base_url="http://rebound.example").get("/").status_code == 400
