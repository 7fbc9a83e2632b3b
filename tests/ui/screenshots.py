"""``make screenshots``: a picture of each page of the UI, in docs/screenshots/.

Fills a fresh sample store through the SDK, starts ``cairn ui`` on it and photographs each page
with headless Chromium.
"""

from __future__ import annotations

import os
import sys
import tempfile

from playwright.sync_api import sync_playwright

from tests.ui.harness import launch_chromium, ui_server
from tests.ui.sample_store import ENTITY, add_sweep, fill

OUT = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(__file__))), "docs", "screenshots"
)
DATASET = f"/{ENTITY}/mnist/artifacts/dataset/mnist-images"
SWEEPS = f"/{ENTITY}/sweeps/artifacts/metrics/sweep-results"
PAGES = [
    ("projects", "/"),
    ("project", f"/{ENTITY}/mnist"),
    ("collection", DATASET),
    ("version", f"{DATASET}/v1"),
    ("files", f"{DATASET}/v0/files/images/train/"),
    ("file-image", f"{DATASET}/v0/file/images/train/3/0001.png"),
    (
        "file-table",
        f"/{ENTITY}/mnist/artifacts/evaluation/eval-results/v0/file/predictions.table.json",
    ),
    ("diff", f"{DATASET}/v1/diff"),
    ("lineage", f"/{ENTITY}/mnist/artifacts/model/cnn-model/v0/lineage?depth=6"),
    ("run", None),  # the training run: found from the model's page
    ("search", "/-/search?q=mnist"),
    ("versions-table", f"{SWEEPS}?q=tag%3Anightly&col=accuracy&col=optimizer&col=params.lr"),
    ("compare", f"{SWEEPS}/v110/diff?against=v100"),
    (
        "compare-table",
        f"/{ENTITY}/mnist/artifacts/evaluation/eval-results/v1/diff#content-diff",
    ),
]
# Pages taller than the window are photographed as the window shows them (smaller PNGs).
WINDOW_ONLY = {
    "lineage",
    "search",
    "compare",
    "compare-table",
    "diff",
    "version",
    "file-table",
    "versions-table",
}


def main() -> int:
    os.makedirs(OUT, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="cairn-shots-") as tmp:
        fill(tmp, malicious=False)
        add_sweep(os.path.join(tmp, "store"), 120)
        with (
            ui_server(os.path.join(tmp, "store"), os.path.join(tmp, "ui.log")) as base,
            sync_playwright() as p,
        ):
            browser = launch_chromium(p)
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            for name, path in PAGES:
                if path is None:
                    page.goto(base + f"/{ENTITY}/mnist/artifacts/model/cnn-model/v0")
                    page.click("dl.facts a.rlink")
                else:
                    page.goto(base + path)
                page.wait_for_load_state("networkidle")
                target = os.path.join(OUT, f"{name}.png")
                page.screenshot(path=target, full_page=name not in WINDOW_ONLY)
                print(f"wrote {os.path.relpath(target)}")
            browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
