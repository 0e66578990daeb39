"""The receiver's direct dispatch of push routes (phonecheck.receiver.asgi), without a database:
which requests take the direct way (standalone prefix and mounted under a host app), which fall
through to FastAPI, and that both give the same answers. The inbox write is replaced by a stub
here; the real write is covered by tests/integration/test_receiver*.py."""

from __future__ import annotations

import asyncio
import logging

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from phonecheck.receiver.app import ReceiverConfig, create_app
from phonecheck.receiver.server import LoopBatchedStreamHandler
from phonecheck.receiver.store import StoreResult

TOKEN = "unit-" + "t" * 30
BODY = {"messageId": "m-1", "batchNo": "b-1", "phone": "8615000000001", "code": 0, "data": {}}


def make_app(prefix: str):
    config = ReceiverConfig(token_provider=lambda: TOKEN, dsn_provider=lambda: "unused", body_timeout_s=5)
    app = create_app(prefix, config)
    stored = []

    async def insert(event):  # noqa: ANN001
        stored.append(event)
        return StoreResult(event_id=len(stored), inserted=True)

    receiver = app.state.receiver
    receiver.store.insert = insert
    receiver.ensure_background = lambda: None
    return app, stored


async def post(app, url: str, **kwargs) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://receiver") as client:
        return await client.request(kwargs.pop("method", "POST"), url, **kwargs)


def test_a_push_takes_the_direct_way_and_is_stored():
    app, stored = make_app("/telco-webhooks")
    answer = asyncio.run(post(app, f"/telco-webhooks/nxcloud/number-check/{TOKEN}", json=BODY))
    assert (answer.status_code, answer.text) == (200, "success")
    assert answer.headers["content-type"] == "text/plain; charset=utf-8"
    assert [e.dedupe_key for e in stored] == ["b-1|8615000000001|m-1"]
    assert app.middleware_stack is None  # FastAPI's stack was never needed


def test_a_mounted_receiver_takes_the_direct_way_too():
    app, stored = make_app("")
    host = Starlette(routes=[Mount("/telco-webhooks", app=app)])
    answer = asyncio.run(
        post(host, f"/telco-webhooks/accuauth/phone-number/{TOKEN}", method="GET", params={"task_id": "t-1"})
    )
    assert (answer.status_code, answer.json()) == (200, {"status": "OK"})
    assert [e.dedupe_key for e in stored] == ["t-1"] and app.middleware_stack is None


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/telco-webhooks/nxcloud/number-check/{token}", 405),  # method not allowed
        ("POST", "/telco-webhooks/nxcloud/number-check/{token}/", 307),  # trailing slash: redirected
        ("POST", "/telco-webhooks/nxcloud/number-check", 404),  # no token segment
        ("POST", "/telco-webhooks/nxcloud/unknown/{token}", 404),
        ("POST", "/telco-webhooks/nxcloud/number-check/wrong-token", 404),  # direct way, token refused
    ],
)
def test_other_requests_get_the_answers_they_always_got(method, path, status):
    app, stored = make_app("/telco-webhooks")
    answer = asyncio.run(post(app, path.format(token=TOKEN), method=method, json=BODY))
    assert answer.status_code == status and stored == []


def test_oversized_and_unparseable_bodies_answer_as_before():
    app, stored = make_app("/telco-webhooks")
    url = f"/telco-webhooks/nxcloud/call/{TOKEN}"
    assert asyncio.run(post(app, url, content=b"x" * (1024 * 1024 + 1))).status_code == 413
    answer = asyncio.run(post(app, url, content=b"not json"))
    assert answer.status_code == 200 and stored[0].parse_status == "error"


def test_loop_batched_handler_writes_a_loops_lines_together(capsys):
    import io

    stream = io.StringIO()
    handler = LoopBatchedStreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger("test.receiver.batched")
    logger.addHandler(handler)
    logger.propagate = False
    try:

        async def burst() -> str:
            for n in range(3):
                logger.warning("line %d", n)
            written_meanwhile = stream.getvalue()
            await asyncio.sleep(0)
            return written_meanwhile

        assert asyncio.run(burst()) == ""  # held until the loop's ready callbacks ran
        assert stream.getvalue() == "line 0\nline 1\nline 2\n"
        logger.warning("outside a loop")  # written at once
        assert stream.getvalue().endswith("outside a loop\n")
    finally:
        logger.removeHandler(handler)
