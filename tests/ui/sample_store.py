"""A store with a small ML project in it, made through the SDK (UI tests and screenshots).

``python -m tests.ui.sample_store DIR`` fills ``DIR/store``.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import struct
import sys
import zlib
from collections.abc import Iterator

import cairn
from cairn.sdk import reset_services

ENTITY = "acme"
MALICIOUS = "<img src=x onerror=alert(1)>"


@contextlib.contextmanager
def cairn_environment(root: str) -> Iterator[None]:
    """CAIRN_* set for a store under ``root`` while the block runs (then restored)."""
    values = {
        "CAIRN_DIR": os.path.join(root, "store"),
        "CAIRN_CACHE_DIR": os.path.join(root, "cache"),
        "CAIRN_ARTIFACT_DIR": os.path.join(root, "artifacts"),
        "CAIRN_ENTITY": ENTITY,
        "CAIRN_SILENT": "true",
    }
    saved = {k: os.environ.get(k) for k in (*values, "CAIRN_BASE_URL", "CAIRN_PROJECT")}
    os.environ.update(values)
    os.environ.pop("CAIRN_BASE_URL", None)
    os.environ.pop("CAIRN_PROJECT", None)
    try:
        yield
    finally:
        cairn.finish()
        reset_services()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def png(width: int, height: int, seed: int) -> bytes:
    """A small grey-scale PNG (a blurry blob), written without any imaging library."""
    rnd = random.Random(seed)
    cx, cy = rnd.uniform(0.3, 0.7) * width, rnd.uniform(0.3, 0.7) * height
    rows = b""
    for y in range(height):
        row = bytes(
            max(0, min(255, int(255 - ((x - cx) ** 2 + (y - cy) ** 2) * 1.2))) for x in range(width)
        )
        rows += b"\x00" + row

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def _write(path: str, content: bytes | str) -> str:
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "wb") as f:
        f.write(content.encode() if isinstance(content, str) else content)
    return path


def _images(work: str) -> str:
    root = os.path.join(work, "mnist")
    for digit in range(10):
        for i in range(3):
            _write(
                os.path.join(root, "images", "train", str(digit), f"{i:04}.png"),
                png(28, 28, digit * 10 + i),
            )
        _write(
            os.path.join(root, "images", "test", str(digit), "0000.png"), png(28, 28, 500 + digit)
        )
    rows = ["image,label"] + [f"train/{d}/{i:04}.png,{d}" for d in range(10) for i in range(3)]
    _write(os.path.join(root, "labels.csv"), "\n".join(rows) + "\n")
    _write(
        os.path.join(root, "README.md"), "# MNIST sample\n\n28x28 grey-scale digits, 3 per class.\n"
    )
    return root


def fill(root: str, *, malicious: bool = True) -> dict[str, str]:
    """Fill the store under ``root``; returns names the tests look for. Every run has a fixed id:
    a random one (8 of [a-z0-9]) holds a word a test searches for in about one store of a
    thousand ("xss" in a run id of project mnist once showed results where a test expects none)."""
    work = os.path.join(root, "work")
    os.makedirs(work, exist_ok=True)
    data = _images(work)
    with cairn_environment(root):
        with cairn.init(
            project="mnist", job_type="prepare", name="prepare-data", id="prep0001"
        ) as run:
            art = cairn.Artifact(
                "mnist-images",
                type="dataset",
                description="MNIST digits, a small sample.\nThree images per class.",
                metadata={
                    "source": "yann.lecun.com",
                    "classes": 10,
                    "split": {"train": 30, "test": 10},
                },
            )
            art.add_dir(os.path.join(data, "images"), name="images")
            art.add_file(os.path.join(data, "labels.csv"))
            art.add_file(os.path.join(data, "README.md"))
            run.log_artifact(art, aliases=["raw"])
        with cairn.init(project="mnist", job_type="clean", name="clean-data", id="clean001") as run:
            draft = run.use_artifact("mnist-images:raw").new_draft()
            draft.remove("images/test/")
            fixed = _write(
                os.path.join(work, "labels-fixed.csv"), "image,label\ntrain/0/0000.png,0\n"
            )
            draft.add_file(fixed, name="labels.csv", overwrite=True)
            draft.add_file(_write(os.path.join(work, "NOTES.txt"), "test split moved out\n"))
            draft.metadata["split"] = {"train": 30, "test": 0}
            draft.metadata["cleaned"] = True
            run.log_artifact(draft, aliases=["clean"])
        config = {"lr": 0.001, "epochs": 12, "optimizer": "adam", "layers": [32, 64, 10]}
        with cairn.init(
            project="mnist", job_type="train", name="train-cnn", config=config, id="train001"
        ) as run:
            run.use_artifact("mnist-images:clean")
            model = cairn.Artifact("cnn-model", type="model", metadata={"accuracy": 0.987})
            model.add_file(
                _write(os.path.join(work, "model.pt"), random.Random(7).randbytes(40_000))
            )
            model.add_file(_write(os.path.join(work, "config.json"), json.dumps(config)))
            for epoch in range(12):  # the run page's charts and summary
                run.log({"loss": 2.0 / (epoch + 1), "accuracy": 0.5 + epoch * 0.04})
            run.summary["best_accuracy"] = 0.987
            run.log_artifact(model, aliases=["best"])
        with cairn.init(
            project="mnist", job_type="evaluate", name="evaluate-cnn", id="eval0001"
        ) as run:
            run.use_artifact("cnn-model:best")
            results = cairn.Artifact("eval-results", type="evaluation")
            table = cairn.Table(columns=["image", "label", "prediction", "score"])
            for i in range(12):
                table.add_data(
                    f"test/{i % 10}/0000.png", i % 10, (i * 7) % 10, round(0.5 + i / 30, 3)
                )
            results.add(table, "predictions")
            results.add({"accuracy": 0.987, "loss": 0.041}, "summary")
            run.log_artifact(results)
        for shard in range(3):
            with cairn.init(
                project="mnist",
                job_type="score",
                group="eval-42",
                name=f"score-{shard}",
                id=f"score00{shard}",
            ) as run:
                part = cairn.Artifact("predictions", type="evaluation")
                part.add_file(
                    _write(os.path.join(work, f"shard-{shard}.csv"), f"id,score\n{shard},0.9\n")
                )
                if shard < 2:
                    run.upsert_artifact(part)
                else:
                    run.finish_artifact(part)
        # A second model and its evaluation: metadata, JSON and Table diffs between versions.
        config2 = {**config, "lr": 0.0005, "epochs": 20}
        with cairn.init(
            project="mnist", job_type="train", name="finetune-cnn", config=config2, id="tune0001"
        ) as run:
            run.use_artifact("mnist-images:clean")
            model = cairn.Artifact(
                "cnn-model", type="model", metadata={"accuracy": 0.991, "epochs": 20}
            )
            model.add_file(
                _write(os.path.join(work, "model-2.pt"), random.Random(8).randbytes(40_000)),
                name="model.pt",
            )
            model.add_file(
                _write(os.path.join(work, "config-2.json"), json.dumps(config2)),
                name="config.json",
            )
            run.log_artifact(model, tags=["nightly"])
        with cairn.init(
            project="mnist", job_type="evaluate", name="evaluate-cnn-2", id="eval0002"
        ) as run:
            run.use_artifact("cnn-model:v1")
            results = cairn.Artifact("eval-results", type="evaluation")
            table = cairn.Table(columns=["image", "label", "prediction", "score"])
            for i in range(14):  # rows 3 and 7 now right; rows 12 and 13 new
                fixed = i in (3, 7)
                table.add_data(
                    f"test/{i % 10}/0000.png",
                    i % 10,
                    i % 10 if fixed else (i * 7) % 10,
                    0.95 if fixed else round(0.5 + i / 30, 3),
                )
            results.add(table, "predictions")
            results.add({"accuracy": 0.991, "loss": 0.03}, "summary")
            run.log_artifact(results)
        if malicious:
            with cairn.init(
                project="sandbox",
                id="evil0001",
                job_type=MALICIOUS,
                name=f"run {MALICIOUS}",
                config={MALICIOUS: MALICIOUS},
            ) as run:
                art = cairn.Artifact(
                    "xss-test",
                    type="dataset",
                    description=f"<script>alert(1)</script>{MALICIOUS}",
                    metadata={MALICIOUS: MALICIOUS},
                )
                art.add_file(
                    _write(os.path.join(work, "evil.txt"), MALICIOUS), name=f"{MALICIOUS}.txt"
                )
                art.add_file(
                    _write(
                        os.path.join(work, "evil.html"), f"<html><body>{MALICIOUS}</body></html>"
                    ),
                    name="page.html",
                )
                art.add_file(
                    _write(os.path.join(work, "evil.png"), f"<svg onload=alert(1)>{MALICIOUS}"),
                    name="fake.png",
                )
                run.log_artifact(art, aliases=[MALICIOUS])
    return {"entity": ENTITY, "project": "mnist"}


def add_sweep(store_dir: str, count: int) -> None:
    """sweep-results: ``count`` versions with metadata (through the Service: fast), for the
    versions table's paging, sorting, filters and metadata columns."""
    from cairn.core import ManifestEntry, digest_bytes
    from cairn.service import CommitRequest, LocalService

    svc = LocalService.open(store_dir)
    try:
        for i in range(count):
            data = f"step,loss\n{i},{1 / (i + 1):.4f}\n".encode()
            d = digest_bytes(data)
            svc.store_blobs([(d, data)])
            notes = f"trial {i}\noptimizer: {'adam' if i % 2 else 'sgd'}\nseed: {i}\n".encode()
            files = [("metrics.csv", data), ("notes.txt", notes)]
            if i < 2:  # a log over the content diff's cap: "too large to diff"
                files.append(("train.log", f"trial {i}\n".encode() * 140_000))
            svc.store_blobs([(digest_bytes(b), b) for _, b in files])
            entries = [ManifestEntry(p, digest_bytes(b), len(b)) for p, b in files]
            entries += [ManifestEntry(f"extra/{j}.csv", d, len(data)) for j in range(i % 5)]
            svc.commit(
                CommitRequest(
                    entity=ENTITY,
                    project="sweeps",
                    name="sweep-results",
                    type="metrics",
                    changes=sorted((e.path, e) for e in entries),
                    metadata={
                        "accuracy": round(0.5 + (i * 37 % 100) / 200, 3),
                        "optimizer": "adam" if i % 2 else "sgd",
                        "params": {"lr": [0.1, 0.01, 0.001][i % 3], "seed": i},
                    },
                    tags=["nightly"] if i % 10 == 0 else [],
                    aliases=["best"] if i == 42 % count else [],
                    description=f"sweep trial {i}",
                )
            )
    finally:
        svc.close()


if __name__ == "__main__":
    fill(sys.argv[1], malicious="--clean" not in sys.argv)
