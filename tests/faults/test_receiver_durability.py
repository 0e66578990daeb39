"""The receiver's spool cannot be poisoned, blocked or torn (docs/receiver.md), over real HTTP on
a real PostgreSQL server of the test's own (``disposable_warehouse``), stopped to make an outage.

* a delivery the warehouse refuses for good (here: a CHECK constraint the test adds, the kind of
  refusal no retry fixes) is quarantined, and the others, spooled with it, all reach ``telco``;
* it never fails its neighbours in a group commit, and an oversized vendor key is no poison;
* a spool that cannot be written (read-only, full: a small tmpfs in a mount namespace of the
  receiver's own) answers 503, counts the error and turns ``/healthz`` red, and no acknowledged
  delivery is missing afterwards;
* a writer killed in the middle of a record costs that record only.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
import pytest

from phonecheck import warehouse
from phonecheck.receiver.intake import Endpoint, build_event
from phonecheck.receiver.processing import process_inbox
from phonecheck.receiver.spool import Spool, encode_record
from tests import seed_payloads as seed
from tests.fixtures.ports import reserve_port
from tests.fixtures.receiver import CALL, PREFIX, VOICE, LiveReceiver, receiver_env

pytestmark = [pytest.mark.integration, pytest.mark.faults]

POISON_MARK = "poison-receipt"
# The warehouse refuses any row whose body carries the mark, even kept as an unparseable row.
POISON_CONSTRAINT = (
    "ALTER TABLE raw.webhook_event ADD CONSTRAINT test_refuses_poison "
    f"CHECK (position(convert_to('{POISON_MARK}', 'UTF8') in body) = 0) NOT VALID"
)


def voice_fields(i: int, **extra: str) -> dict[str, str]:
    return {**seed.VOICE_RECEIPT_FIELDS, "messageid": f"dur-{i:04d}", "phone": f"86150888{i:05d}", **extra}


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.1)
    return value


def scalar(dsn: str, query: str):
    with psycopg.connect(dsn) as conn:
        return conn.execute(query).fetchone()[0]


def metric(receiver: LiveReceiver, name: str) -> float:
    text = httpx.get(receiver.base_url + "/metrics", timeout=10).text
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics:\n{text}")


def test_a_poison_receipt_among_100_outage_receipts_is_quarantined_and_the_rest_reach_telco(
    disposable_warehouse, start_receiver
):
    receiver = start_receiver(lambda: disposable_warehouse.dsn, replay_interval_s=0.2)
    with psycopg.connect(disposable_warehouse.dsn, autocommit=True) as conn:
        conn.execute(POISON_CONSTRAINT)
    assert httpx.get(receiver.base_url + "/healthz", timeout=10).status_code == 200

    disposable_warehouse.stop()
    with httpx.Client(timeout=30) as client:
        answers = [client.post(receiver.url(VOICE), data=voice_fields(i)) for i in range(50)]
        # the poison one in the middle of the spool, and a vendor key far over an index entry
        answers.append(client.post(receiver.url(VOICE), data=voice_fields(999, ext=POISON_MARK)))
        long_id = secrets.token_urlsafe(6000)
        answers.append(client.post(receiver.url(VOICE), data=voice_fields(998, messageid=long_id)))
        answers += [client.post(receiver.url(VOICE), data=voice_fields(i)) for i in range(50, 100)]
    assert [(a.status_code, a.text) for a in answers] == [(200, "success")] * 102

    disposable_warehouse.start()
    dsn = disposable_warehouse.dsn
    wait_for(lambda: not Spool(receiver.spool_dir).has_files(), 60, "the spool replay")
    assert scalar(dsn, "SELECT count(*) FROM raw.webhook_event") == 101

    quarantined = Spool(receiver.spool_dir).quarantined()
    assert len(quarantined) == 1 and POISON_MARK.encode() in quarantined[0].read_bytes()
    assert b"test_refuses_poison" in quarantined[0].read_bytes()  # the reason is kept with it
    health = httpx.get(receiver.base_url + "/healthz", timeout=10)
    assert health.status_code == 503 and health.json()["quarantined"] == 1  # a human must look
    assert metric(receiver, "phonecheck_receiver_quarantined_total") == 1
    assert metric(receiver, "phonecheck_receiver_quarantine_records") == 1

    counts = process_inbox(dsn)
    with psycopg.connect(dsn) as conn:
        in_telco = conn.execute(
            "SELECT count(*) FROM telco.nxcloud_voice_receipt WHERE message_id LIKE 'dur-%%'"
        ).fetchone()[0]
        long_key = conn.execute(
            "SELECT dedupe_key, length(payload->>'messageid'), process_error IS NOT NULL "
            "FROM raw.webhook_event WHERE dedupe_key LIKE 'sha256-key:%%'"
        ).fetchone()
    assert in_telco == 100, counts
    # the long key is stored hashed, the vendor's value kept in the payload
    assert long_key[0].startswith("sha256-key:") and long_key[1] == len(long_id)

    # quarantine inspected and cleared: green again
    quarantined[0].unlink()
    assert httpx.get(receiver.base_url + "/healthz", timeout=10).status_code == 200


def test_poison_pushes_never_fail_their_neighbours_in_a_group_commit(fresh_warehouse_dsn, start_receiver):
    receiver = start_receiver(lambda: fresh_warehouse_dsn)
    with psycopg.connect(fresh_warehouse_dsn, autocommit=True) as conn:
        conn.execute(POISON_CONSTRAINT)

    def push(i: int) -> tuple[str, dict]:
        body = {**seed.CALL_RECORD_PUSH, "id": 700_000 + i, "callId": f"grp-{i}"}
        if i % 20 == 0:
            body["ext"] = POISON_MARK  # refused for good
        elif i % 20 == 1:
            body["callId"] = secrets.token_urlsafe(4000)  # an oversized key: no poison
            body.pop("id")
        return receiver.url(CALL), body

    async def main() -> list[int]:
        async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=64)) as client:
            jobs = [client.post(url, json=body) for url, body in map(push, range(400))]
            return [r.status_code for r in await asyncio.gather(*jobs)]

    statuses = asyncio.run(main())
    assert statuses == [200] * 400  # nobody refused, nobody asked to retry
    assert scalar(fresh_warehouse_dsn, "SELECT count(*) FROM raw.webhook_event") == 380
    assert len(Spool(receiver.spool_dir).quarantined()) == 20
    assert metric(receiver, "phonecheck_receiver_quarantined_total") == 20


# ---- a spool that cannot be written ---------------------------------------------------------


def _unshare_works() -> bool:
    if not shutil.which("unshare"):
        return False
    return subprocess.run(["unshare", "-rm", "true"], capture_output=True).returncode == 0


class WarehouseLink:
    """A TCP relay between the receiver and the warehouse server that the test can cut: an
    outage as the receiver sees it (connections reset, new ones refused) without stopping a
    server other tests share. (A receiver in a user namespace cannot reach a unix socket.)"""

    def __init__(self, upstream: tuple[str, int] | str) -> None:
        self.upstream = upstream  # (host, port), or the path of the server's unix socket
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.up = True
        self.sockets: set[socket.socket] = set()
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.up:
                client.close()
                continue
            try:
                if isinstance(self.upstream, str):
                    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                    server.connect(self.upstream)
                else:
                    server = socket.create_connection(self.upstream)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.sockets |= {client, server}
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        self.up = False
        with self.lock:
            for s in self.sockets:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
            self.sockets.clear()

    def restore(self) -> None:
        self.up = True

    def close(self) -> None:
        self.cut()
        self.listener.close()


@pytest.fixture
def warehouse_link(fresh_warehouse_dsn):
    parts = urlsplit(fresh_warehouse_dsn)
    server = warehouse.parse_dsn(fresh_warehouse_dsn)
    if server.host and server.host.startswith("/"):  # the embedded server listens on a unix socket
        link = WarehouseLink(f"{server.host}/.s.PGSQL.{server.port or 5432}")
    else:
        link = WarehouseLink((server.host or "127.0.0.1", server.port or 5432))
    user = parts.username or "postgres"
    credentials = f"{user}:{parts.password}" if parts.password else user
    netloc = f"{credentials}@127.0.0.1:{link.port}"
    yield link, urlunsplit(parts._replace(netloc=netloc, query=""))
    link.close()


def receiver_on_a_tmpfs_spool(dsn: str, token: str, tmp_path: Path, *, size: str, read_only: bool):
    """``python -m phonecheck.receiver`` in a mount namespace of its own whose spool is a small
    tmpfs (read-only if asked): a real full / read-only file system, nobody else's mounts touched."""
    assert _unshare_works(), "these tests need util-linux unshare with user namespaces (see docs/receiver.md)"
    spool = tmp_path / "tmpfs-spool"
    spool.mkdir()
    remount = f" && mount -o remount,ro,size={size} tmpfs {spool}" if read_only else ""
    script = f"mount -t tmpfs -o size={size},mode=0700 tmpfs {spool}{remount} && exec {sys.executable} -m phonecheck.receiver"
    port = reserve_port()
    env = receiver_env(dsn, token, port, spool / "spool")
    base = f"http://127.0.0.1:{port}{PREFIX}"
    return base, spool, _answering_server(["unshare", "-rm", "sh", "-c", script], env, base)


@contextlib.contextmanager
def _answering_server(cmd: list[str], env: dict, base: str):
    """A receiver subprocess, ready once ``/healthz`` answers at all (red is expected here)."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True).start()
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, "receiver exited:\n" + "".join(lines)
            try:
                httpx.get(base + "/healthz", timeout=5)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "receiver did not answer:\n" + "".join(lines)
                time.sleep(0.2)
        yield lambda: "".join(lines)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("failure", ["read-only", "full"])
def test_a_spool_that_cannot_be_written_refuses_loudly_and_loses_no_acknowledged_delivery(
    failure, warehouse_link, receiver_token, tmp_path
):
    read_only = failure == "read-only"
    link, dsn = warehouse_link
    base, spool, server = receiver_on_a_tmpfs_spool(
        dsn, receiver_token, tmp_path, size="64k", read_only=read_only
    )
    with server as output:
        receiver = LiveReceiver(base, receiver_token, dsn, spool, output=output)
        if read_only:
            health = httpx.get(base + "/healthz", timeout=10)
            assert health.status_code == 503 and health.json()["spool_writable"] is False
        link.cut()
        answered: dict[tuple[str, int], int] = {}
        with httpx.Client(timeout=30) as client:
            for i in range(120):  # ~1 KB records: a 64 KiB spool is full well before the end
                answered[("voice", i)] = client.post(receiver.url(VOICE), data=voice_fields(i)).status_code
                call = {**seed.CALL_RECORD_PUSH, "id": 800_000 + i, "callId": f"ro-{i}"}
                answered[("call", i)] = client.post(receiver.url(CALL), json=call).status_code
            health = client.get(base + "/healthz")
            refused = metric(receiver, "phonecheck_receiver_spool_write_failures_total")
        assert set(answered.values()) <= {200, 503}
        assert health.status_code == 503 and health.json()["spool_writable"] is False
        assert refused == sum(1 for s in answered.values() if s == 503) > 0
        if not read_only:
            assert sum(1 for s in answered.values() if s == 200) > 10  # some fitted before it filled up
        assert "spool write failed" in output()

        link.restore()
        wait_for(
            lambda: httpx.get(base + "/healthz", timeout=10).json()["spool_pending"] is False,
            60,
            "the spool replay",
        )
        # the vendor retries what it was refused (call records; a voice receipt is not sent again)
        with httpx.Client(timeout=30) as client:
            for (kind, i), status in list(answered.items()):
                if kind == "call" and status != 200:
                    call = {**seed.CALL_RECORD_PUSH, "id": 800_000 + i, "callId": f"ro-{i}"}
                    answered[(kind, i)] = client.post(receiver.url(CALL), json=call).status_code
        with psycopg.connect(dsn) as conn:
            stored = {
                row[0]
                for row in conn.execute(
                    "SELECT payload->>'messageid' FROM raw.webhook_event WHERE endpoint = 'nxcloud_voice'"
                )
            } | {
                row[0]
                for row in conn.execute(
                    "SELECT payload->>'callId' FROM raw.webhook_event WHERE endpoint = 'nxcloud_call'"
                )
            }
        acknowledged = {
            f"dur-{i:04d}" if kind == "voice" else f"ro-{i}" for (kind, i), s in answered.items() if s == 200
        }
        assert acknowledged - stored == set()  # no acknowledged delivery missing
        assert all(answered[("call", i)] == 200 for i in range(120))
        if read_only:
            assert httpx.get(base + "/healthz", timeout=10).status_code == 503  # still cannot spool
        else:
            assert httpx.get(base + "/healthz", timeout=10).status_code == 200  # drained: writable again


# ---- a writer killed mid-record -------------------------------------------------------------


def _die_in_the_middle_of_a_record(directory: str) -> None:
    spool = Spool(Path(directory))
    for i in range(3):
        spool.append(_voice_event(900 + i))
    frame = encode_record(_voice_event(903))
    os.write(spool._fd, frame[: len(frame) // 2])  # the kernel took half of it, then we died
    os.kill(os.getpid(), signal.SIGKILL)


def _voice_event(i: int):
    from datetime import UTC, datetime

    query = "&".join(f"{k}={v}" for k, v in voice_fields(i).items()).encode()
    return build_event(
        Endpoint.NXCLOUD_VOICE, body=b"", query_string=query, content_type=None, received_at=datetime.now(UTC)
    )


def test_a_writer_killed_mid_record_costs_only_that_record(disposable_warehouse, start_receiver):
    import multiprocessing

    receiver = start_receiver(lambda: disposable_warehouse.dsn, replay_interval_s=0.2)
    disposable_warehouse.stop()
    child = multiprocessing.get_context("fork").Process(
        target=_die_in_the_middle_of_a_record, args=(str(receiver.spool_dir),)
    )
    child.start()
    child.join(timeout=30)
    assert child.exitcode == -signal.SIGKILL
    with httpx.Client(timeout=30) as client:  # the next receipts, while the warehouse is still down
        answers = [client.post(receiver.url(VOICE), data=voice_fields(i)) for i in range(10)]
    assert [a.status_code for a in answers] == [200] * 10

    disposable_warehouse.start()
    dsn = disposable_warehouse.dsn
    wait_for(lambda: not Spool(receiver.spool_dir).has_files(), 60, "the spool replay")
    with psycopg.connect(dsn) as conn:
        ids = sorted(r[0] for r in conn.execute("SELECT payload->>'messageid' FROM raw.webhook_event"))
    assert ids == [f"dur-{i:04d}" for i in [*range(10), 900, 901, 902]]
    [torn] = Spool(receiver.spool_dir).quarantined()
    assert torn.name.endswith(".torn")  # the half record, kept for inspection
