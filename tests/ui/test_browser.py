"""The UI in a real browser: headless Chromium (Playwright) against a real ``cairn ui`` process.

One server and one browser serve every test here (session fixtures; the tests share an xdist
group so they run in one worker).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from tests.ui.harness import CHROMIUM, chromium_available, in_ci, launch_chromium, ui_server
from tests.ui.sample_store import ENTITY, MALICIOUS

# In CI (CI=true) every browser test runs: a missing Playwright or Chromium is a failure there,
# and a skip only on a developer's machine.
if in_ci():
    import playwright.sync_api as playwright_api
else:
    playwright_api = pytest.importorskip("playwright.sync_api")

pytestmark = [
    pytest.mark.xdist_group("ui-browser"),
    pytest.mark.skipif(
        not chromium_available() and not in_ci(),
        reason="Chromium is not installed (apt-get install chromium); CI requires it",
    ),
]


@pytest.fixture(scope="session")
def base_url(ui_root: str) -> Iterator[str]:
    with ui_server(os.path.join(ui_root, "store"), os.path.join(ui_root, "ui.log")) as url:
        yield url


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    if not chromium_available():
        pytest.fail(f"Chromium is not installed at {CHROMIUM} (make chromium); CI=true requires it")
    with playwright_api.sync_playwright() as p:
        browser = launch_chromium(p)
        yield browser
        browser.close()


@pytest.fixture
def page(chromium: Any) -> Iterator[Any]:
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(20_000)
    dialogs: list[str] = []
    errors: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.on("pageerror", lambda e: errors.append(str(e)))
    # Script errors and CSP refusals show as console errors; a 4xx answer a test asked for
    # shows as "Failed to load resource" and is not one of them.
    page.on(
        "console",
        lambda m: (
            errors.append(m.text)
            if m.type == "error" and not m.text.startswith("Failed to load resource")
            else None
        ),
    )
    yield page
    context.close()
    assert not dialogs, f"a script ran: {dialogs}"
    assert not errors, f"errors in the page: {errors}"


def test_from_projects_to_a_version_its_diff_and_lineage(page: Any, base_url: str) -> None:
    expect = playwright_api.expect
    page.goto(base_url + "/")
    page.get_by_role("link", name="mnist", exact=True).click()
    expect(page).to_have_url(f"{base_url}/{ENTITY}/mnist")
    page.get_by_role("link", name="mnist-images", exact=True).click()
    expect(page.locator("h1")).to_have_text("mnist-images")
    page.locator("table.versions").get_by_role("link", name="v1", exact=True).click()
    expect(page.locator("h1")).to_have_text("mnist-images:v1")
    expect(page.locator("table.files")).to_contain_text("labels.csv")

    page.locator("table.files").get_by_role("link", name="images/").click()
    expect(page).to_have_url(re.compile(r"/v1/files/images/$"))
    page.get_by_role("link", name="train/").click()
    page.get_by_role("link", name="3/").click()
    page.get_by_role("link", name="0001.png").click()
    image = page.locator("img.preview-image")
    expect(image).to_be_visible()
    # Visible is not loaded: wait for the browser to finish decoding it before measuring.
    page.wait_for_function(
        "() => { const i = document.querySelector('img.preview-image');"
        " return i.complete && i.naturalWidth > 0; }"
    )
    assert page.evaluate("document.querySelector('img.preview-image').naturalWidth") == 28

    page.get_by_role("link", name="Diff", exact=True).click()
    expect(page.locator(".total.added")).to_contain_text("+1 added")
    expect(page.locator(".total.removed")).to_contain_text("\u221210 removed")
    page.get_by_role("link", name="NOTES.txt").click()
    expect(page.locator("pre.code")).to_have_text("test split moved out\n")

    page.get_by_role("link", name="Lineage", exact=True).click()
    graph = page.locator("svg.graph")
    expect(graph).to_be_visible()
    expect(page.locator(".zoom")).to_be_visible()  # app.js ran under the CSP
    center = graph.locator("a.node.center")
    expect(center).to_contain_text("mnist-images:v1")


def test_clicking_through_the_lineage_graph(page: Any, base_url: str) -> None:
    expect = playwright_api.expect
    page.goto(f"{base_url}/{ENTITY}/mnist/artifacts/model/cnn-model/v0/lineage")
    graph = page.locator("svg.graph")
    # model <- train-cnn <- mnist-images:v1 <- clean-data <- mnist-images:v0
    graph.locator("a.node.run", has_text="train-cnn").click()
    expect(page).to_have_url(re.compile(r"/runs/[a-z0-9]+/lineage$"))
    expect(page.locator("h1")).to_have_text("train-cnn")
    # The run's page: a chart per logged metric (12 points each) and its summary.
    page.get_by_role("link", name="Overview").click()
    loss = page.locator("figure.chart[data-key='loss']")
    expect(loss).to_contain_text("12 points")
    expect(page.locator("figure.chart[data-key='accuracy'] svg polyline")).to_be_visible()
    points = loss.locator("polyline").get_attribute("points") or ""
    assert len(points.split()) == 12
    expect(page.locator("table.kv").first).to_contain_text("best_accuracy")
    page.go_back()
    expect(graph.locator("a.node.center")).to_contain_text("train-cnn")
    graph.locator("a.node.version", has_text="mnist-images:v1").click()
    expect(page).to_have_url(re.compile(r"/mnist-images/v1/lineage$"))
    graph.locator("a.node.version", has_text="mnist-images:v0").click()
    expect(page.locator("h1")).to_have_text("mnist-images:v0")
    expect(graph.locator("a.node.center")).to_contain_text("mnist-images:v0")
    # The base-version edge (v0 -> v1) and the run that used v0 are drawn.
    expect(graph.locator("path.edge.base")).to_have_count(1)
    graph.locator("a.node.run", has_text="clean-data").hover()
    assert graph.locator("path.edge.hot").count() >= 2
    page.get_by_role("link", name="Overview").click()
    expect(page).to_have_url(re.compile(r"/mnist-images/v0$"))


def test_adding_and_removing_an_alias(page: Any, base_url: str) -> None:
    expect = playwright_api.expect
    page.goto(f"{base_url}/{ENTITY}/mnist/artifacts/model/cnn-model")
    row = page.locator("tr#v0")
    row.get_by_label("new alias for v0").fill("production")
    row.get_by_role("button", name="Add").click()
    expect(page).to_have_url(f"{base_url}/{ENTITY}/mnist/artifacts/model/cnn-model")
    expect(row.locator(".chip", has_text="production")).to_be_visible()
    row.get_by_role("button", name="remove alias production").click()
    expect(row.locator(".chip", has_text="production")).to_have_count(0)
    expect(row.locator(".chip", has_text="best")).to_be_visible()
    # A bad alias is refused with a message, and nothing changes.
    row.get_by_label("new alias for v0").fill("v12")
    row.get_by_role("button", name="Add").click()
    expect(page.locator(".error")).to_contain_text("version numbers")


def test_a_malicious_file_name_renders_as_text(page: Any, base_url: str) -> None:
    expect = playwright_api.expect
    version = f"{base_url}/{ENTITY}/sandbox/artifacts/dataset/xss-test/v0"
    page.goto(version)
    link = page.locator("table.files a.file").first
    expect(link).to_have_text(MALICIOUS + ".txt")
    assert page.locator("img[src='x']").count() == 0
    expect(page.locator("table.kv")).to_contain_text(MALICIOUS)
    expect(page.locator(".card .description")).to_have_text("<script>alert(1)</script>" + MALICIOUS)
    link.click()
    expect(page.locator(".filename")).to_have_text(MALICIOUS + ".txt")
    expect(page.locator("pre.code")).to_have_text(MALICIOUS)
    assert page.locator("img[src='x']").count() == 0
    # The run whose name and config are HTML.
    page.goto(version)
    page.get_by_role("link", name=f"run {MALICIOUS}").click()
    expect(page.locator("h1")).to_have_text(f"run {MALICIOUS}")
    assert page.locator("img[src='x']").count() == 0


def test_long_listings_page_in_the_browser(page: Any, base_url: str) -> None:
    expect = playwright_api.expect
    page.goto(f"{base_url}/{ENTITY}/mnist/artifacts/dataset/many-files/v0/files/big/")
    rows = page.locator("table.files a.file")
    expect(rows).to_have_count(500)
    page.get_by_role("link", name="next page →").click()
    expect(rows.first).to_have_text("part-00500.txt")
    expect(rows).to_have_count(500)


# -- issue 16: search, compare, the versions table, snippets -------------------------------------

SWEEPS = f"/{ENTITY}/sweeps/artifacts/metrics/sweep-results"


def test_search_from_the_header(page: Any, base_url: str) -> None:
    expect = playwright_api.expect
    page.goto(base_url + "/")
    box = page.get_by_role("search").get_by_label("search")
    box.fill("accuracy>0.99 type:model")
    box.press("Enter")
    expect(page).to_have_url(re.compile(r"/-/search\?q=accuracy%3E0\.99\+type%3Amodel$"))
    hits = page.locator("#hits-version a.vlink")
    expect(hits).to_have_count(1)
    expect(hits).to_have_text(f"{ENTITY}/mnist/cnn-model:v1")
    hits.click()
    expect(page.locator("h1")).to_have_text("cnn-model:v1")
    # More hits than the overview shows: one kind, paged.
    page.get_by_role("search").get_by_label("search").fill("tag:nightly")
    page.get_by_role("search").get_by_label("search").press("Enter")
    page.get_by_role("link", name="all 13 →").click()
    expect(page.locator("#hits-version a.vlink")).to_have_count(13)


def test_compare_two_ticked_versions(page: Any, base_url: str) -> None:
    expect = playwright_api.expect
    page.goto(base_url + SWEEPS)
    button = page.get_by_role("button", name="Compare ticked")
    expect(button).to_be_disabled()
    page.get_by_label("compare v110").check()
    expect(button).to_be_disabled()
    page.get_by_label("compare v100").check()
    expect(button).to_be_enabled()
    button.click()
    expect(page).to_have_url(f"{base_url}{SWEEPS}/v110/diff?against=v100")
    meta = page.locator("table.meta-diff")
    expect(meta.locator("tr", has_text="params.seed")).to_contain_text("100")
    expect(meta.locator("tr", has_text="params.seed")).to_contain_text("110")
    notes = page.locator('.content-diff[data-path="notes.txt"]')
    expect(notes.locator("span.removed", has_text="-trial 100")).to_be_visible()
    expect(notes.locator("span.added", has_text="+trial 110")).to_be_visible()
    metrics = page.locator('.content-diff[data-path="metrics.csv"] td.cell-changed').first
    expect(metrics).to_contain_text("100")
    expect(metrics.locator("ins")).to_have_text("110")


def test_versions_table_sorts_pages_filters_and_shows_metadata(page: Any, base_url: str) -> None:
    expect = playwright_api.expect
    page.goto(base_url + SWEEPS)
    rows = page.locator("table.versions tbody tr")
    expect(rows).to_have_count(50)
    expect(rows.first).to_have_id("v119")
    page.locator("th a.sort", has_text="Version").click()  # sorted on: flips to oldest first
    expect(rows.first).to_have_id("v0")
    page.get_by_role("link", name="next page →").click()
    expect(page).to_have_url(re.compile(r"sort=version&order=asc&page=2$"))
    expect(rows.first).to_have_id("v50")
    page.locator("th a.sort", has_text="Files").click()
    expect(page).to_have_url(re.compile(r"sort=files&order=desc$"))
    expect(rows.first.locator("td.num").first).to_have_text("6")  # 2 files + 4 under extra/
    page.get_by_label("filter versions").fill("tag:nightly optimizer:sgd")
    page.get_by_role("button", name="Filter").click()
    expect(rows).to_have_count(12)
    page.locator("details.columns-picker summary").click()
    page.locator("details.columns-picker").get_by_label("params.seed").check()
    page.locator("details.columns-picker").get_by_role("button", name="Show").click()
    expect(page.locator("th.meta-col")).to_have_text("params.seed")
    expect(rows).to_have_count(12)  # the filter is kept
    expect(page.locator("tr#v110 td.meta-col")).to_have_text("110")


def test_copied_snippet_runs(chromium: Any, base_url: str, ui_store: str, tmp_path: Any) -> None:
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base_url)
    page = context.new_page()
    try:
        page.goto(f"{base_url}/{ENTITY}/mnist/artifacts/model/cnn-model/v1")
        snippet = page.locator('.snippet[data-snippet="api-download"]')
        snippet.get_by_role("button", name="Copy").click()
        playwright_api.expect(snippet.locator("button.copy")).to_have_text("Copied")
        copied = page.evaluate("navigator.clipboard.readText()")
        shown = snippet.locator("pre").text_content()
    finally:
        context.close()
    assert copied == shown and 'wandb.Api().artifact("acme/mnist/cnn-model:v1")' in copied
    store = os.path.join(tmp_path, "ui-store")
    shutil.copytree(ui_store, store)
    env = {**os.environ, "CAIRN_DIR": store, "CAIRN_CACHE_DIR": os.path.join(tmp_path, "cache")}
    env.pop("CAIRN_BASE_URL", None)
    done = subprocess.run(
        [sys.executable, "-c", copied], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert os.path.getsize(os.path.join(tmp_path, "cnn-model-v1", "model.pt")) == 40_000
