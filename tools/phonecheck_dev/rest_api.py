"""A small client of Airflow's REST API (what the UI calls), for scripts and tests."""

from __future__ import annotations

import time


class AirflowApi:
    """The REST calls the UI makes to trigger a DAG, for scripts and tests.

    SimpleAuthManager: ``POST /auth/token`` with the admin login returns a JWT; then
    ``PATCH /api/v2/dags/{id}`` unpauses and ``POST /api/v2/dags/{id}/dagRuns`` with
    ``{"logical_date": null, "conf": {...params...}}`` triggers, like the params form does.
    """

    def __init__(self, base_url: str, username: str, password: str, timeout: float = 30) -> None:
        import httpx

        self.base_url = base_url.rstrip("/")
        self._login = {"username": username, "password": password}
        self.http = httpx.Client(base_url=self.base_url, timeout=timeout)

    def close(self) -> None:
        self.http.close()

    def login(self) -> None:
        answer = self.http.post("/auth/token", json=self._login)
        answer.raise_for_status()
        self.http.headers["Authorization"] = f"Bearer {answer.json()['access_token']}"

    def _call(self, method: str, path: str, **kwargs) -> dict:
        answer = self.http.request(method, path, **kwargs)
        if answer.status_code >= 400:
            raise RuntimeError(f"{method} {path} -> {answer.status_code}: {answer.text[:500]}")
        return answer.json()

    def wait_for_dag(self, dag_id: str, timeout: float) -> dict:
        """Wait until the dag-processor has registered ``dag_id`` (404 before that)."""
        deadline = time.monotonic() + timeout
        while True:
            answer = self.http.get(f"/api/v2/dags/{dag_id}")
            if answer.status_code == 200:
                return answer.json()
            if time.monotonic() > deadline:
                raise TimeoutError(f"DAG {dag_id} not registered after {timeout:.0f} s: {answer.status_code}")
            time.sleep(0.5)

    def unpause(self, dag_id: str) -> None:
        self._call("PATCH", f"/api/v2/dags/{dag_id}", json={"is_paused": False})

    def trigger(self, dag_id: str, conf: dict) -> str:
        run = self._call("POST", f"/api/v2/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf})
        return run["dag_run_id"]

    def dag_run(self, dag_id: str, run_id: str) -> dict:
        from urllib.parse import quote

        return self._call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}")

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        from urllib.parse import quote

        path = f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances"
        return self._call("GET", path, params={"limit": 1000})["task_instances"]

    def task_log(
        self, dag_id: str, run_id: str, task_id: str, try_number: int, map_index: int = -1
    ) -> list[dict]:
        """The structured log of one try (what the UI's log view shows), one dict per line."""
        from urllib.parse import quote

        path = f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances/{task_id}/logs/{try_number}"
        content = self._call("GET", path, params={"map_index": map_index, "full_content": True})["content"]
        return [line if isinstance(line, dict) else {"event": str(line)} for line in content]

    def wait_for_run(
        self, dag_id: str, run_id: str, timeout: float, on_poll=None, interval: float = 1.0
    ) -> tuple[str, dict[str, set[str]]]:
        """Poll until the run finishes; return its state and every state seen per task."""
        seen: dict[str, set[str]] = {}
        deadline = time.monotonic() + timeout
        while True:
            state = self.dag_run(dag_id, run_id)["state"]
            for ti in self.task_instances(dag_id, run_id):
                seen.setdefault(ti["task_id"], set()).add(ti["state"] or "none")
            if on_poll is not None:
                on_poll(state, seen)
            if state in ("success", "failed"):
                return state, seen
            if time.monotonic() > deadline:
                raise TimeoutError(f"{dag_id} {run_id} still {state} after {timeout:.0f} s; tasks: {seen}")
            time.sleep(interval)
