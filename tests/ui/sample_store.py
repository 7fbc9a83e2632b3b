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
    """Fill the store under ``root``; returns names the tests look for."""
    work = os.path.join(root, "work")
    os.makedirs(work, exist_ok=True)
    data = _images(work)
    with cairn_environment(root):
        with cairn.init(project="mnist", job_type="prepare", name="prepare-data") as run:
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
        with cairn.init(project="mnist", job_type="clean", name="clean-data") as run:
            draft = run.use_artifact("mnist-images:raw").new_draft()
            draft.remove("images/test/")
            fixed = _write(
                os.path.join(work, "labels-fixed.csv"), "image,label\ntrain/0/0000.png,0\n"
            )
            draft.add_file(fixed, name="labels.csv", overwrite=True)
            draft.add_file(_write(os.path.join(work, "NOTES.txt"), "test split moved out\n"))
            run.log_artifact(draft, aliases=["clean"])
        config = {"lr": 0.001, "epochs": 12, "optimizer": "adam", "layers": [32, 64, 10]}
        with cairn.init(project="mnist", job_type="train", name="train-cnn", config=config) as run:
            run.use_artifact("mnist-images:clean")
            model = cairn.Artifact("cnn-model", type="model", metadata={"accuracy": 0.987})
            model.add_file(
                _write(os.path.join(work, "model.pt"), random.Random(7).randbytes(40_000))
            )
            model.add_file(_write(os.path.join(work, "config.json"), json.dumps(config)))
            run.log_artifact(model, aliases=["best"])
        with cairn.init(project="mnist", job_type="evaluate", name="evaluate-cnn") as run:
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
                project="mnist", job_type="score", group="eval-42", name=f"score-{shard}"
            ) as run:
                part = cairn.Artifact("predictions", type="evaluation")
                part.add_file(
                    _write(os.path.join(work, f"shard-{shard}.csv"), f"id,score\n{shard},0.9\n")
                )
                if shard < 2:
                    run.upsert_artifact(part)
                else:
                    run.finish_artifact(part)
        if malicious:
            with cairn.init(
                project="sandbox",
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


if __name__ == "__main__":
    fill(sys.argv[1], malicious="--clean" not in sys.argv)
