"""``make sandbox`` runs the sandbox on its own and prints its base URL and the credentials it accepts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import httpx
import pytest

from tests.conftest import REPO_ROOT
from tests.fixtures.ports import reserve_port

pytestmark = pytest.mark.integration


def test_make_sandbox_prints_base_url_and_credentials():
    port = reserve_port()
    # -o: never rebuild the venv stamp from inside a test; SANDBOX_PORT: not the default 8089.
    process = subprocess.Popen(
        ["make", "--no-print-directory", "-o", ".venv/.installed", "sandbox"],
        cwd=REPO_ROOT,
        env={**os.environ, "SANDBOX_PORT": str(port)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group: make and the python it starts stop together
    )
    try:
        lines = []
        for line in process.stdout:
            lines.append(line)
            if "AccuAuth host" in line:
                break
        printed = "".join(lines)
        base_url = f"http://127.0.0.1:{port}"
        assert f"vendor sandbox: {base_url}" in printed
        for expected in (
            f"{base_url}/nxcloud",
            "accessKey=sandbox-access-key",
            "accessSecret=sandbox-access-secret",
            "appkey=sandbox-appkey",
            f"{base_url}/accuauth",
            "X-DF-API-ID=sandbox-api-id",
            "X-DF-API-SECRET=sandbox-api-secret",
        ):
            assert expected in printed
        deadline = time.monotonic() + 30
        while True:  # and what it printed is where it serves
            try:
                assert httpx.get(f"{base_url}/_sandbox/health").json()["status"] == "ok"
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, printed
                time.sleep(0.1)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=15)
        process.stdout.close()


def test_vendor_connections_point_at_the_sandbox(vendor_connections):
    from tests.integration.test_sandbox_nxcloud import own_sign

    nxcloud = json.loads(os.environ["AIRFLOW_CONN_NXCLOUD_DEFAULT"])
    accuauth = json.loads(os.environ["AIRFLOW_CONN_ACCUAUTH_DEFAULT"])
    assert (nxcloud["conn_type"], accuauth["conn_type"]) == ("nxcloud", "accuauth")
    assert nxcloud["extra"] == {"appkey": "sandbox-appkey", "sign_algorithm": "md5"}

    body = json.dumps({"phone": "5215512345670", "checkLevel": 1, "appkey": nxcloud["extra"]["appkey"]})
    ts = str(vendor_connections.control.clock()["now_ms"])
    headers = {"accessKey": nxcloud["login"], "action": "numbercheck", "bizType": "1", "ts": ts}
    headers["sign"] = own_sign(headers, body, nxcloud["password"])
    answer = httpx.post(
        f"{nxcloud['host']}/api/number/check",
        content=body,
        headers=headers | {"Content-Type": "application/json"},
    )
    assert answer.json()["code"] == 0

    aa_headers = {"X-DF-API-ID": accuauth["login"], "X-DF-API-SECRET": accuauth["password"]}
    submitted = httpx.post(
        f"{accuauth['host']}/check/phone_number/o1",
        data={"phone_number": "5215512345621"},
        headers=aa_headers,
    )
    assert submitted.status_code == 200 and submitted.json()["result"]["phone_status"] == "connected"
