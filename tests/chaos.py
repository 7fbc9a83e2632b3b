"""`make chaos`: the attack kit (issue 12, item 7). Slow, so not part of `make test`.

Each attack runs real processes against real stores and prints one line of the table:

* SIGKILL at random moments of logging, upserting, finishing and gc, on the embedded store (the
  writer is killed) and on a server with PostgreSQL (the server is killed); after every round the
  store is checked with `verify` (every committed version's blobs present and intact);
* concurrent writers, and gc (grace 0) racing writers, on the embedded store;
* the authorization matrix, a full disk on a 20 MiB tmpfs, a PostgreSQL restart mid-log, and
  schemathesis against the OpenAPI document (when installed): the test files that hold them.

    python -m tests.chaos            # CHAOS_ROUNDS=N scales the kill rounds (default 160 + 53)
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclass
class Row:
    attack: str
    rounds: int = 0
    kills: int = 0
    probes: int = 0
    failures: int = 0
    note: str = ""


# -- the writer that gets killed -----------------------------------------------------------------


def worker(seed: int) -> None:
    """Log, upsert + finish and gc in a loop until killed (runs in its own process)."""
    import cairn

    rng = random.Random(seed)
    work = tempfile.mkdtemp(prefix="chaos-work-")
    i = 0
    while True:
        i += 1
        choice = rng.random()
        if choice < 0.15 and i > 3 and not os.environ.get("CAIRN_BASE_URL"):
            cairn.sdk.collect_garbage(grace_seconds=0)  # type: ignore[attr-defined]
            continue
        art = cairn.Artifact(f"a{rng.randrange(4)}", "dataset", metadata={"i": i})
        for j in range(rng.randrange(1, 6)):
            size = rng.choice((10, 3000, 200_000))
            path = os.path.join(work, f"f{j}")
            with open(path, "wb") as f:
                f.write(os.urandom(size))
            art.add_file(path, name=f"d/f{j}.bin")
        if choice < 0.35:
            with cairn.init(project="chaos", group=f"g{seed}-{i // 3}") as run:
                run.upsert_artifact(art, distributed_id=f"g{seed}-{i // 3}")
                if i % 3 == 2:
                    done = cairn.Artifact(art.name, "dataset")
                    run.finish_artifact(done, distributed_id=f"g{seed}-{i // 3}")
        else:
            with cairn.init(project="chaos") as run:
                run.log_artifact(art)


_LOGS = tempfile.mkdtemp(prefix="chaos-logs-")


def _spawn_worker(env: dict[str, str], seed: int) -> subprocess.Popen[bytes]:
    with open(os.path.join(_LOGS, f"worker-{seed}.log"), "ab") as log:
        from tests._infra import _die_with_parent

        return subprocess.Popen(
            [sys.executable, "-m", "tests.chaos", "worker", str(seed)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
            preexec_fn=_die_with_parent,  # no writer outlives an interrupted run
        )


def _last_error(seed: int) -> str:
    with open(os.path.join(_LOGS, f"worker-{seed}.log"), errors="replace") as f:
        lines = [x for x in f.read().splitlines() if x.strip()]
    return lines[-1][:160] if lines else "(no output)"


def _verify_local(store: str) -> tuple[int, int]:
    """(committed versions, problems) of the embedded store at ``store``."""
    from cairn.service import LocalService

    svc = LocalService.open(store)
    try:
        report = svc.verify()
        return report.versions, len(report.problems)
    finally:
        svc.close()


def embedded_kills(rounds: int) -> Row:
    row = Row("SIGKILL writer (log/upsert/finish/gc), embedded", rounds=rounds)
    base = tempfile.mkdtemp(prefix="chaos-embedded-")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAIRN_")}
    env |= {"CAIRN_DIR": f"{base}/store", "CAIRN_CACHE_DIR": f"{base}/cache", "CAIRN_SILENT": "1"}
    rng = random.Random(1)
    versions = 0
    for r in range(rounds):
        proc = _spawn_worker(env, r)
        time.sleep(rng.uniform(0.5, 2.5))  # the writer's start takes about a second
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            row.kills += 1
        proc.wait()
        versions, problems = _verify_local(f"{base}/store")
        row.failures += problems
    row.note = f"{versions} versions at the end, each verified after every round"
    return row


def server_kills(rounds: int) -> Row:
    from tests._infra import CairnServer, Postgres

    row = Row("SIGKILL server mid-log (PostgreSQL + directory)", rounds=rounds)
    pg = Postgres()
    base = tempfile.mkdtemp(prefix="chaos-server-")
    try:
        server = CairnServer(pg.create_database("chaos"), f"{base}/blobs")
    except BaseException:
        pg.stop()
        raise
    key = server.create_key("chaos", "*/*", "write")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAIRN_")}
    env |= {
        "CAIRN_BASE_URL": server.url,
        "CAIRN_API_KEY": key,
        "CAIRN_CACHE_DIR": f"{base}/cache",
        "CAIRN_SILENT": "1",
        "CAIRN_ENTITY": "chaos",
    }
    writer = _spawn_worker(env, 0)
    rng = random.Random(2)
    gave_up = 0
    try:
        for _ in range(rounds):
            time.sleep(rng.uniform(1.0, 4.0))  # up long enough to finish a call or two
            server.kill()
            row.kills += 1
            _restart(server)  # same port: the writer's retries carry on
            if writer.poll() is not None:  # the writer stopped: how?
                why = _last_error(int(writer.args[-1]))
                if "cannot reach the cairn server" in why:
                    gave_up += 1  # its retries ran out while the server kept dying: said clearly
                else:
                    row.failures += 1
                    print(f"  the writer died: {why}", file=sys.stderr)
                writer = _spawn_worker(env, 10_000 + row.kills)
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        _restart(server)  # verify runs with a server up, as it would in production
        check = subprocess.run(
            [sys.executable, "-m", "cairn", "verify", "--db", server.db, "--store", server.store],
            cwd=ROOT,
            env={**env, "CAIRN_BASE_URL": ""},
            capture_output=True,
            text=True,
        )
        row.failures += 0 if check.returncode == 0 else 1
        verdict = check.stdout.strip().splitlines()[-1] if check.stdout.strip() else check.stderr
        row.note = f"{verdict}; {gave_up} writers gave up with a clear error"
    finally:
        if writer.poll() is None:
            writer.kill()
        server.stop()
        pg.stop()
    return row


def _restart(server: object) -> None:
    """Start a killed server again; a loaded machine may need more than one try."""
    for attempt in range(5):
        try:
            server.start()  # type: ignore[attr-defined]
            return
        except RuntimeError:
            if attempt == 4:
                raise
            time.sleep(2)


def concurrent(writers: int, with_gc: bool) -> Row:
    name = "gc (grace 0) racing writers" if with_gc else "concurrent writers"
    row = Row(f"{name}, embedded", rounds=writers)
    base = tempfile.mkdtemp(prefix="chaos-concurrent-")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAIRN_")}
    env |= {"CAIRN_DIR": f"{base}/store", "CAIRN_CACHE_DIR": f"{base}/cache", "CAIRN_SILENT": "1"}
    procs = [_spawn_worker(env, 1000 + i) for i in range(writers)]
    gc_runs = 0
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if with_gc:
            subprocess.run(
                [sys.executable, "-m", "cairn", "gc", "--grace", "0"],
                cwd=ROOT,
                env=env,
                capture_output=True,
            )
            gc_runs += 1
        else:
            time.sleep(0.5)
    for p in procs:
        if p.poll() is not None:
            row.failures += 1  # a writer died by itself: an error escaped
            print(f"  a writer died: {_last_error(int(p.args[-1]))}", file=sys.stderr)
        p.send_signal(signal.SIGKILL)
        p.wait()
        row.kills += 1
    versions, problems = _verify_local(f"{base}/store")
    row.failures += problems
    row.note = f"{versions} versions verified" + (f", {gc_runs} gc runs" if with_gc else "")
    return row


def _route_count() -> int:
    """Operations in the server's OpenAPI document (built offline, as the server builds it)."""
    from cairn.server._app import create_app

    class _NoBackend:
        class config:
            max_json_bytes = max_batch_bytes = 1
            db = store = admin_key = ""

    app = create_app(_NoBackend())  # type: ignore[arg-type]
    paths = app.openapi()["paths"]
    return sum(
        1 for ops in paths.values() for m in ops if m in ("get", "post", "put", "patch", "delete")
    )


def pytest_attack(name: str, target: str, probes: int = 0) -> Row:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:randomly",
            "-p",
            "no:cacheprovider",
            target,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    last = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    if done.returncode != 0:
        errors = [x for x in done.stdout.splitlines() if x.startswith(("E ", "FAILED"))]
        print("\n".join(errors[:12]), file=sys.stderr)
    row = Row(name, rounds=1, probes=probes, failures=0 if done.returncode == 0 else 1, note=last)
    if "skipped" in last and "passed" not in last:
        row.note = "skipped: " + last
    return row


def main(argv: list[str]) -> int:
    if argv[:1] == ["worker"]:
        worker(int(argv[1]))
        return 0
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # run the clean-ups on a kill
    scale = int(os.environ.get("CHAOS_ROUNDS", "160"))
    only = os.environ.get("CHAOS_ONLY", "")
    attacks = [
        lambda: embedded_kills(scale),
        lambda: server_kills(max(1, scale // 3)),
        lambda: concurrent(6, with_gc=False),
        lambda: concurrent(4, with_gc=True),
        lambda: pytest_attack(
            "authorization matrix (every route x 7 kinds of key)",
            "tests/server/test_authorization_matrix.py",
            probes=7 * _route_count(),
        ),
        lambda: pytest_attack("disk full on a 20 MiB tmpfs", "tests/service/test_disk_full.py"),
        lambda: pytest_attack("PostgreSQL restart mid-log", "tests/server/test_faults.py"),
        lambda: pytest_attack(
            "schemathesis on the OpenAPI document (no 5xx, declared statuses)",
            "tests/chaos_schemathesis.py",
        ),
    ]
    chosen = [int(x) for x in only.split(",") if x] or range(len(attacks))
    rows = []
    for i in chosen:
        rows.append(attacks[i]())
        r = rows[-1]
        print(f"  done: {r.attack}: {r.kills} kills, {r.failures} failures; {r.note}", flush=True)
    print_table(rows)
    return 0 if all(r.failures == 0 for r in rows) else 1


def print_table(rows: list[Row]) -> None:
    head = ("attack", "rounds", "kills", "probes", "failures", "note")
    cells = [head] + [
        (r.attack, str(r.rounds), str(r.kills), str(r.probes), str(r.failures), r.note)
        for r in rows
    ]
    widths = [max(len(c[i]) for c in cells) for i in range(len(head))]
    for i, c in enumerate(cells):
        print("| " + " | ".join(x.ljust(w) for x, w in zip(c, widths, strict=True)) + " |")
        if i == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    total = sum(r.kills for r in rows)
    print(f"\n{total} kills, {sum(r.failures for r in rows)} failures")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
