"""The warehouse stops while 10,000 mixed pushes arrive: nothing lost, nothing doubled.

Every push type goes to the receiver's local spool during the outage (docs/receiver.md) and is
acknowledged; the vendor-like client still retries anything that is not a 200.

A vendor-like client sends 10,000 deliveries (number-check results, voice receipts, PNS call
records, AccuAuth callbacks; 1,000 of them second deliveries of an earlier push) to the
standalone receiver (``python -m phonecheck.receiver``) at a steady pace, with up to 32 requests
in flight. It behaves like the vendors: a number-check result, a call record or an AccuAuth
callback answered with anything but 200 is sent again a (compressed) vendor minute later, as
long as it takes; a voice receipt is sent once and never again, whatever the answer.

Meanwhile the receiver's own PostgreSQL server (``disposable_warehouse``, never the shared one)
is stopped and started again once 3,000 deliveries have been offered while it was down (counted,
not timed: the test does not depend on the machine's speed). Afterwards push processing
(``process_inbox``) runs, and every push must be in its typed table exactly once, carrying the
values that were pushed, with its inbox row processed and no row in error.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import psycopg
import pytest

from phonecheck.receiver.processing import process_inbox
from tests import seed_payloads as seed
from tests.fixtures.receiver import ACCUAUTH, CALL, NUMBER_CHECK, VOICE

pytestmark = [pytest.mark.integration, pytest.mark.faults, pytest.mark.slow]

OFFERED_DURING_OUTAGE = 3_000  # deliveries offered while the warehouse is down (~12 s at the pace below)
DELIVERIES = 10_000
UNIQUE = {"number_check": 3600, "voice": 2250, "call": 1800, "accuauth": 1350}  # 9,000 pushes
DUPLICATES = {"number_check": 400, "voice": 250, "call": 200, "accuauth": 150}  # + 1,000 again
OFFERED_PER_S = 250.0  # 10,000 deliveries over 40 s: the outage falls in the middle
IN_FLIGHT = 32  # like the vendor's push engine (sandbox push_concurrency)
VENDOR_MINUTE_S = 2.0  # retry interval of the vendor-like client (one vendor minute, compressed)
BATCH_NO = "outage-700337042751"


@dataclass
class Push:
    kind: str
    key: tuple[str, ...]  # the typed table's primary key of this push
    method: str
    path: str
    request: dict  # aiohttp request keyword arguments (json=, data=, params=)


@dataclass
class Delivery:
    push: Push
    answers: list[int | str] = field(default_factory=list)  # status codes, or the transport error

    @property
    def accepted(self) -> bool:
        return bool(self.answers) and self.answers[-1] == 200


def make_pushes() -> dict[str, list[Push]]:
    nc, voice, call, acc = [], [], [], []
    for i in range(UNIQUE["number_check"]):
        phone = f"52551{i:07d}"
        body = {**seed.NUMBER_CHECK_PUSH_BASIC, "messageId": f"outage-nc-{i:05d}", "batchNo": BATCH_NO}
        body["phone"] = phone
        nc.append(Push("number_check", (BATCH_NO, phone), "POST", NUMBER_CHECK, {"json": body}))
    for i in range(UNIQUE["voice"]):
        fields = {**seed.VOICE_RECEIPT_FIELDS, "messageid": f"outage-v-{i:05d}", "phone": f"8615088{i:06d}"}
        voice.append(Push("voice", (fields["messageid"], fields["phone"]), "POST", VOICE, {"data": fields}))
    for i in range(UNIQUE["call"]):
        body = {**seed.CALL_RECORD_PUSH, "id": 500_000 + i, "callId": f"outage-call-{i:05d}"}
        call.append(Push("call", (str(body["id"]),), "POST", CALL, {"json": body}))
    for i in range(UNIQUE["accuauth"]):
        params = {
            "request_id": f"TIDoutage{i:05d}",
            "phone_number": f"5255{20_000_000 + i:08d}",
            "phone_status": "ring",
            "task_id": f"outage-task-{i:05d}",
        }
        acc.append(Push("accuauth", (params["task_id"],), "GET", ACCUAUTH, {"params": params}))
    return {"number_check": nc, "voice": voice, "call": call, "accuauth": acc}


def make_deliveries(pushes: dict[str, list[Push]]) -> list[Delivery]:
    """Every push once plus the duplicates, shuffled (a second delivery may overlap the first)."""
    rng = random.Random(9)
    order = [p for kind in pushes.values() for p in kind]
    for kind, count in DUPLICATES.items():
        order += rng.sample(pushes[kind], count)
    rng.shuffle(order)
    assert len(order) == DELIVERIES
    return [Delivery(p) for p in order]


class VendorLikeClient:
    """Sends the deliveries at ``OFFERED_PER_S``; retries like the vendor (voice: never)."""

    def __init__(self, receiver, deliveries: list[Delivery]) -> None:
        self.receiver = receiver
        self.deliveries = deliveries
        self.started = 0  # deliveries whose first attempt was made
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc

    async def _main(self) -> None:
        import aiohttp  # faster than httpx per request: the client must not be the bottleneck

        slots = asyncio.Semaphore(IN_FLIGHT)
        rng = random.Random(1)
        connector = aiohttp.TCPConnector(limit=IN_FLIGHT)
        timeout = aiohttp.ClientTimeout(total=30)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:

            async def deliver(d: Delivery) -> None:
                while True:
                    async with slots:
                        try:
                            async with http.request(
                                d.push.method, self.receiver.url(d.push.path), **d.push.request
                            ) as response:
                                await response.read()
                                d.answers.append(response.status)
                        except (TimeoutError, aiohttp.ClientError) as exc:
                            d.answers.append(type(exc).__name__)
                    if d.push.kind == "voice" or d.accepted:
                        return  # voice receipts are pushed once, whatever the answer
                    await asyncio.sleep(VENDOR_MINUTE_S * rng.uniform(0.75, 1.25))

            t0 = time.monotonic()
            tasks = []
            for i, d in enumerate(self.deliveries):
                delay = t0 + i / OFFERED_PER_S - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(deliver(d)))
                self.started = i + 1
            await asyncio.gather(*tasks)


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.2)
    return value


def test_a_warehouse_outage_during_10000_mixed_pushes_loses_and_doubles_nothing(
    disposable_warehouse, outage_receiver
):
    receiver = outage_receiver
    pushes = make_pushes()
    deliveries = make_deliveries(pushes)
    client = VendorLikeClient(receiver, deliveries)
    client.thread.start()

    wait_for(lambda: client.started >= 1000, 60, "the first 1,000 deliveries")
    dsn_before = disposable_warehouse.dsn
    disposable_warehouse.stop()
    stopped_at = client.started
    wait_for(
        lambda: client.started - stopped_at >= OFFERED_DURING_OUTAGE, 120, "deliveries during the outage"
    )
    disposable_warehouse.start()
    assert disposable_warehouse.dsn == dsn_before  # the receiver keeps using the same address

    client.thread.join(timeout=240)
    assert not client.thread.is_alive(), "the vendor-like client did not finish"
    assert client.error is None, repr(client.error)

    answers = Counter(a for d in deliveries for a in d.answers)
    assert answers[500] == 0, answers  # the receiver never answers 500
    # every delivery ended accepted: the retried ones eventually, the voice ones at the first go
    not_accepted = [(d.push.kind, d.push.key, d.answers) for d in deliveries if not d.accepted]
    assert not_accepted == [], not_accepted[:10]
    voice = [d for d in deliveries if d.push.kind == "voice"]
    assert all(d.answers == [200] for d in voice)

    dsn = disposable_warehouse.dsn

    def spool_replayed() -> bool:
        with psycopg.connect(dsn) as conn:
            stored = conn.execute("SELECT count(*) FROM raw.webhook_event").fetchone()[0]
        return stored == sum(UNIQUE.values()) and not any(receiver.spool_dir.glob("spool-*.rec"))

    wait_for(spool_replayed, 120, "the voice spool replay")

    loaded: Counter[str] = Counter()
    while (counts := process_inbox(dsn))["claimed"]:
        assert counts["failed"] == 0, counts
        loaded.update(counts["loaded"])

    with psycopg.connect(dsn) as conn:

        def keys(query: str) -> list[tuple]:
            return [tuple(str(v) for v in row) for row in conn.execute(query)]

        inbox = conn.execute(
            "SELECT endpoint, count(*), count(DISTINCT dedupe_key), sum(delivery_count), "
            "count(*) FILTER (WHERE via_spool), count(*) FILTER (WHERE processed_at IS NULL), "
            "count(*) FILTER (WHERE process_error IS NOT NULL OR parse_status = 'error') "
            "FROM raw.webhook_event GROUP BY endpoint ORDER BY endpoint"
        ).fetchall()
        typed = {
            "number_check": keys(
                "SELECT batch_no, phone FROM telco.nxcloud_number_check WHERE raw_event_id IS NOT NULL"
            ),
            "voice": keys("SELECT message_id, phone FROM telco.nxcloud_voice_receipt"),
            "call": keys("SELECT record_id FROM telco.nxcloud_call_record"),
            "accuauth": keys("SELECT task_id FROM telco.accuauth_phone_check"),
        }
        carried = {
            "number_check": conn.execute(
                "SELECT count(*) FROM telco.nxcloud_number_check WHERE message_id LIKE 'outage-nc-%%' "
                "AND carrier = 'China Telecom' AND price = 0.1912"
            ).fetchone()[0],
            "voice": conn.execute(
                "SELECT count(*) FROM telco.nxcloud_voice_receipt WHERE hangup_cause = 'NORMAL_CLEARING'"
            ).fetchone()[0],
            "call": conn.execute(
                "SELECT count(*) FROM telco.nxcloud_call_record WHERE call_id LIKE 'outage-call-%%'"
            ).fetchone()[0],
            "accuauth": conn.execute(
                "SELECT count(*) FROM telco.accuauth_phone_check "
                "WHERE phone_status = 'ring' AND source = 'callback'"
            ).fetchone()[0],
        }

    by_endpoint = {row[0]: row[1:] for row in inbox}
    spooled = sum(v[3] for v in by_endpoint.values())
    assert spooled > 1000, "the outage missed the load: hardly anything went through the spool"
    assert all(v[3] > 0 for v in by_endpoint.values()), "every push type is spooled"
    for endpoint, (
        rows,
        distinct,
        deliveries_counted,
        _via_spool,
        unprocessed,
        errors,
    ) in by_endpoint.items():
        assert rows == distinct, endpoint  # one inbox row per push, whatever the deliveries
        assert deliveries_counted >= rows, endpoint
        assert (unprocessed, errors) == (0, 0), endpoint
    assert {k: v[0] for k, v in by_endpoint.items()} == {
        "accuauth_phone_number": UNIQUE["accuauth"],
        "nxcloud_call": UNIQUE["call"],
        "nxcloud_number_check": UNIQUE["number_check"],
        "nxcloud_voice": UNIQUE["voice"],
    }
    for kind, found in typed.items():
        expected = sorted(p.key for p in pushes[kind])
        assert len(found) == len(set(found)), f"{kind}: a push stored twice"
        assert sorted(found) == expected, f"{kind}: {len(found)} typed rows for {len(expected)} pushes"
        assert carried[kind] == UNIQUE[kind], f"{kind}: typed rows do not carry the pushed values"
    print(
        f"\noutage: {answers[503]} deliveries refused with 503 and retried, {spooled} pushes "
        f"spooled and replayed, loaded {dict(loaded)}"
    )
