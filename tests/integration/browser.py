"""A headless Chromium driven over the DevTools protocol (websockets only, no driver package):
log in to the Airflow UI, open pages, read their text, take screenshots.

Debian's ``chromium`` package is enough (``apt-get install chromium``); tests that need it skip
with the reason when no Chromium binary is found.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "chrome")


def chromium_binary() -> str | None:
    return next((path for name in CANDIDATES if (path := shutil.which(name))), None)


class Browser:
    def __init__(self, ws) -> None:
        self.ws = ws
        self.ids = itertools.count(1)

    def send(self, method: str, **params) -> dict:
        call_id = next(self.ids)
        self.ws.send(json.dumps({"id": call_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv(timeout=60))
            if message.get("id") == call_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    def evaluate(self, expression: str):
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"JS error: {result['exceptionDetails']}")
        return result["result"].get("value")

    def goto(self, url: str, settle_s: float = 1.0) -> None:
        self.send("Page.navigate", url=url)
        self.wait_for("document.readyState === 'complete'", timeout=60)
        time.sleep(settle_s)

    def wait_for(self, expression: str, timeout: float = 60):
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(RuntimeError):
                value = self.evaluate(expression)
                if value:
                    return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"not true after {timeout:.0f} s: {expression}")
            time.sleep(0.3)

    def login(self, base_url: str, username: str, password: str) -> None:
        """Log in like the UI's login page does: ``POST /auth/token`` with the user's password,
        then the ``_token`` session cookie the page's script sets, then open the UI."""
        answer = httpx.post(
            f"{base_url}/auth/token", json={"username": username, "password": password}, timeout=120
        )
        answer.raise_for_status()
        self.send("Network.enable")
        self.send(
            "Network.setCookie",
            name="_token",
            value=answer.json()["access_token"],
            url=f"{base_url}/",
            path="/",
        )
        self.goto(f"{base_url}/")
        self.wait_for("!location.pathname.startsWith('/auth/login') && document.body.innerText.length > 0")

    def text(self, frame_selector: str | None = None) -> str:
        if frame_selector:
            return self.evaluate(
                f"(() => {{ const f = document.querySelector({json.dumps(frame_selector)}); "
                "return f && f.contentDocument ? f.contentDocument.body.innerText : ''; }})()"
            )
        return self.evaluate("document.body.innerText")

    def screenshot(self, path: Path, width: int = 1400, height: int = 1000) -> None:
        self.send(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=False,
        )
        time.sleep(0.5)
        data = self.send("Page.captureScreenshot", format="png")["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))


@contextlib.contextmanager
def headless_chromium(binary: str) -> Iterator[Browser]:
    profile = Path(tempfile.mkdtemp(prefix="pc-chromium-"))
    port_file = profile / "DevToolsActivePort"
    proc = subprocess.Popen(
        [
            binary, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
            "--disable-dev-shm-usage", "--remote-debugging-port=0", f"--user-data-dir={profile}",
            "--window-size=1400,1000", "about:blank",
        ],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    from websockets.sync.client import connect

    try:
        deadline = time.monotonic() + 60
        while not port_file.exists() or len(port_file.read_text().splitlines()) < 1:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("chromium did not open its DevTools port")
            time.sleep(0.2)
        port = int(port_file.read_text().splitlines()[0])
        targets = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=10).json()
        page = next(t for t in targets if t["type"] == "page")
        with connect(page["webSocketDebuggerUrl"], max_size=64 * 1024 * 1024) as ws:
            browser = Browser(ws)
            browser.send("Page.enable")
            browser.send("Runtime.enable")
            yield browser
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(profile, ignore_errors=True)
