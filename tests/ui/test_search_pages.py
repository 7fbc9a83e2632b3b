"""Issue 16's pages, requested in process: search, the versions table at scale, compare
(metadata and content), and the snippets (which are run against the store they name)."""

from __future__ import annotations

import html
import os
import pathlib
import re
import shlex
import shutil
import subprocess
import sys

import pytest
from starlette.testclient import TestClient

from tests.ui.conftest import SWEEP
from tests.ui.harness import cairn_command
from tests.ui.sample_store import ENTITY

SWEEPS = f"/{ENTITY}/sweeps/artifacts/metrics/sweep-results"
MODEL = f"/{ENTITY}/mnist/artifacts/model/cnn-model"


def get(client: TestClient, url: str, status: int = 200) -> str:
    r = client.get(url)
    assert r.status_code == status, (url, r.status_code, r.text[:500])
    return r.text


def versions_in(page: str) -> list[str]:
    """The version labels of a versions table, in order."""
    return re.findall(r'<tr id="(v\d+)">', page)


def test_search_finds_each_kind_and_pages(client: TestClient) -> None:
    page = get(client, "/-/search?q=mnist")
    assert 'id="hits-project"' in page and f">{ENTITY}/mnist</a>" in page
    assert f">{ENTITY}/mnist/mnist-images</a>" in page  # an artifact by name
    assert "mnist-images:v1</a>" in page  # its versions
    nightly = get(client, "/-/search?q=tag%3Anightly")
    expected = 1 + len(range(0, SWEEP, 10))  # cnn-model:v1 and every tenth sweep trial
    assert f'Versions <span class="muted">{expected}</span>' in nightly
    assert 'id="hits-project"' not in nightly and "all 13 →" in nightly
    assert "cnn-model:v1</a>" in get(client, "/-/search?q=tag%3Anightly&kind=version")
    assert versions_in(nightly) == []  # search hits are not a versions table
    by_value = get(client, "/-/search?q=accuracy%3E0.99")
    assert "cnn-model:v1</a>" in by_value and "cnn-model:v0</a>" not in by_value
    assert '<th class="meta-col"><code>accuracy</code></th>' in by_value  # the value compared
    assert '<td class="meta-col"><code>0.991</code></td>' in by_value
    runs = get(client, "/-/search?q=finetune")
    assert 'id="hits-run"' in runs and ">finetune-cnn</a>" in runs
    # One kind, a page at a time: 120 sweep versions are three pages of 50.
    first = get(client, "/-/search?q=sweep-results&kind=version")
    assert first.count("sweep-results:v") == 50 and 'rel="next"' in first
    last = get(client, "/-/search?q=sweep-results&kind=version&page=3")
    assert last.count("sweep-results:v") == 20 and 'rel="next"' not in last
    assert "sweep-results:v0</a>" in last


def test_search_box_input_is_checked_and_escaped(client: TestClient) -> None:
    assert 'role="search"' in get(client, "/")  # the header's box
    bad = get(client, "/-/search?q=accuracy%3Ehigh", 400)
    assert "compares numbers" in bad
    evil = get(client, "/-/search?q=%3Cscript%3Ealert(1)%3C/script%3E")
    assert "<script>alert" not in evil and "&lt;script&gt;alert(1)" in evil
    assert "xss-test" in evil  # found by its description, and shown escaped
    assert "Nothing matches" in get(client, "/-/search?q=no-such-thing-anywhere")
    empty = get(client, "/-/search?q=")
    assert 'id="hits-' not in empty


def test_versions_table_is_paged_sorted_and_filtered(client: TestClient) -> None:
    page = get(client, SWEEPS)
    assert versions_in(page) == [f"v{i}" for i in range(SWEEP - 1, SWEEP - 51, -1)]
    assert f"{SWEEP} versions" in page and 'rel="next"' in page
    third = get(client, f"{SWEEPS}?page=3")
    assert versions_in(third) == [f"v{i}" for i in range(19, -1, -1)] and 'rel="next"' not in third
    oldest_first = get(client, f"{SWEEPS}?sort=version&order=asc")
    assert versions_in(oldest_first)[:3] == ["v0", "v1", "v2"]
    by_size = versions_in(get(client, f"{SWEEPS}?sort=size&order=asc"))
    sizes = {f"v{i}": None for i in range(SWEEP)}
    assert len(by_size) == 50 and set(by_size) <= set(sizes)
    assert by_size[0] in {f"v{i}" for i in range(2, SWEEP) if i % 5 == 0}  # no extra/ files
    by_files = versions_in(get(client, f"{SWEEPS}?sort=files&order=desc"))
    assert all(int(v[1:]) % 5 == 4 for v in by_files[:10])  # four extra files: the most
    # The sort links flip the order of the column already sorted on.
    assert "sort=size&amp;order=desc" in get(client, f"{SWEEPS}?sort=size&order=asc")

    tagged = get(client, f"{SWEEPS}?q=tag%3Anightly")
    assert versions_in(tagged) == [f"v{i}" for i in range(110, -1, -10)]
    assert "12 matching" in tagged
    assert versions_in(get(client, f"{SWEEPS}?q=alias%3Abest")) == ["v42"]
    adam = versions_in(get(client, f"{SWEEPS}?q=optimizer%3Aadam+params.lr%3E%3D0.1"))
    assert adam and all(int(v[1:]) % 2 == 1 and int(v[1:]) % 3 == 0 for v in adam)
    assert "No version matches" in get(client, f"{SWEEPS}?q=tag%3Anope")
    assert "compares numbers" in get(client, f"{SWEEPS}?q=accuracy%3Ex", 400)
    get(client, f"{SWEEPS}?sort=name", 400)


def test_versions_table_metadata_columns(client: TestClient) -> None:
    page = get(client, f"{SWEEPS}?col=accuracy&col=params.lr&q=alias%3Abest")
    assert '<th class="meta-col"><code>accuracy</code></th>' in page
    assert '<th class="meta-col"><code>params.lr</code></th>' in page
    row = page.split('<tr id="v42">', 1)[1].split("</tr>", 1)[0]
    assert '<td class="meta-col"><code>0.77</code></td>' in row  # 0.5 + (42 * 37 % 100) / 200
    assert '<td class="meta-col"><code>0.1</code></td>' in row
    # Every metadata path of the page can be picked as a column.
    for key in ("accuracy", "optimizer", "params.lr", "params.seed"):
        assert f'name="col" value="{key}"' in page


def test_ticking_two_versions_compares_them(client: TestClient) -> None:
    r = client.get(f"{SWEEPS}?compare=v10&compare=v3")
    assert r.status_code == 303 and r.headers["location"] == f"{SWEEPS}/v10/diff?against=v3"
    assert 'name="compare" value="v100" form="compare-form"' in get(client, SWEEPS)
    get(client, f"{SWEEPS}?compare=v3", 400)
    get(client, f"{SWEEPS}?compare=v3&compare=v999", 404)


def test_compare_shows_metadata_and_content_changes(client: TestClient) -> None:
    page = html.unescape(get(client, f"{SWEEPS}/v1/diff?against=v0"))
    meta = page.split('class="grid meta-diff"', 1)[1].split("</table>", 1)[0]
    for key in ("accuracy", "optimizer", "params.lr", "params.seed"):
        assert f"<code>{key}</code>" in meta
    text = page.split('data-path="notes.txt"', 1)[1].split("</pre>", 1)[0]
    assert '<span class="removed">-trial 0</span>' in text
    assert '<span class="added">+trial 1</span>' in text
    csv = page.split('data-path="metrics.csv"', 1)[1].split("</table>", 1)[0]
    assert "<del>0</del> <ins>1</ins>" in csv and "<del>1.0000</del> <ins>0.5000</ins>" in csv
    log = page.split('data-path="train.log"', 1)[1].split("</div>", 1)[0]
    assert "too large to diff" in log
    # By default the version before; the list offers every other version.
    default = get(client, f"{SWEEPS}/v5/diff")
    assert f'Changes from <a href="{SWEEPS}/v4" class="vlink">v4</a>' in default
    assert default.count("<option ") == SWEEP - 1
    # Any two versions, not only neighbours.
    far = html.unescape(get(client, f"{SWEEPS}/v90/diff?against=v3"))
    assert "<del>3</del> <ins>90</ins>" in far

    evaluation = html.unescape(
        get(client, f"/{ENTITY}/mnist/artifacts/evaluation/eval-results/v1/diff")
    )
    table = evaluation.split('data-path="predictions.table.json"', 1)[1].split("</table>", 1)[0]
    assert table.count('<tr class="changed">') == 2 and table.count('<tr class="added">') == 2
    summary = evaluation.split('data-path="summary.json"', 1)[1].split("</table>", 1)[0]
    assert "<code>accuracy</code>" in summary and "<code>0.991</code>" in summary
    model = html.unescape(get(client, f"{MODEL}/v1/diff"))
    assert "<code>epochs</code>" in model.split("meta-diff", 1)[1]


def _snippet(page: str, name: str) -> str:
    match = re.search(rf'<pre id="snippet-{name}"><code>(.*?)</code></pre>', page, re.S)
    assert match, f"no snippet {name}"
    return html.unescape(match.group(1))


@pytest.mark.slow  # long: dealt out first (tests/conftest.py)
def test_version_and_file_snippets_run(
    client: TestClient, ui_store: str, tmp_path: pathlib.Path
) -> None:
    page = get(client, f"{MODEL}/v1")
    assert 'id="snippet-env"' not in page  # the embedded store needs no server address
    use = _snippet(page, "use-artifact")
    assert f'run.use_artifact("{ENTITY}/mnist/cnn-model:v1")' in use
    download = _snippet(page, "api-download")
    assert f'wandb.Api().artifact("{ENTITY}/mnist/cnn-model:v1")' in download
    listing = _snippet(page, "cairn-url")
    assert f'fs.find("cairn://{ENTITY}/mnist/cnn-model:v1/")' in listing
    cli = _snippet(page, "cli-get")
    file_page = get(client, f"{MODEL}/v1/file/config.json")
    entry = _snippet(file_page, "get-entry")
    assert 'get_entry("config.json")' in entry
    read = _snippet(file_page, "cairn-url")
    assert f'fsspec.open("cairn://{ENTITY}/mnist/cnn-model:v1/config.json", "rb")' in read

    # The snippets run, unchanged, against (a copy of) the store they name.
    store = str(tmp_path / "ui-store")
    shutil.copytree(ui_store, store)
    env = {
        **os.environ,
        "CAIRN_DIR": store,
        "CAIRN_CACHE_DIR": str(tmp_path / "cache"),
        "CAIRN_SILENT": "true",
    }
    env.pop("CAIRN_BASE_URL", None)
    for code in (use + "print(path)\n", download + "print(path)\n", entry + "print(local_path)\n"):
        done = subprocess.run(
            [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
    with open(tmp_path / "cnn-model-v1" / "config.json") as f:
        assert '"lr": 0.0005' in f.read()
    # The cairn:// snippets (fsspec): the version's files listed, the file's bytes read.
    for code, wanted in (
        (listing + "print(sorted(p.rsplit('/', 1)[-1] for p in files))\n", "'model.pt'"),
        (read + "print(data.decode())\n", '"lr": 0.0005'),
    ):
        done = subprocess.run(
            [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        assert wanted in done.stdout, (code, done.stdout)
    os.remove(tmp_path / "cnn-model-v1" / "config.json")
    got = subprocess.run(
        [*cairn_command(), *shlex.split(cli)[1:]], cwd=tmp_path, env=env, capture_output=True
    )
    assert got.returncode == 0, got.stderr
    assert (tmp_path / "cnn-model-v1" / "config.json").exists()
    assert (tmp_path / "cnn-model-v1" / "model.pt").stat().st_size == 40_000


def test_a_total_past_the_count_cap_reads_as_a_lower_bound() -> None:
    from cairn.core._search import COUNT_CAP
    from cairn.ui._web import hit_count

    assert COUNT_CAP == 1000
    assert (hit_count(0), hit_count(999), hit_count(1000)) == ("0", "999", "1,000")
    assert hit_count(1001) == hit_count(5051) == "1,000+"  # counted no further: a lower bound
