"""AccuAuth hook (connection type ``accuauth``). Vendor behaviour: docs/vendors/accuauth.md."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook

from phonecheck_airflow.conn_ids import ACCUAUTH_CONN_ID

if TYPE_CHECKING:
    from phonecheck.accuauth.api import AccuAuthClient, Answer, AsyncAccuAuthClient, RetryPolicy


class AccuAuthHook(BaseHook):
    """Calls the AccuAuth phone status API with ``X-DF-API-ID`` / ``X-DF-API-SECRET``.

    The wire work (form-encoded bodies, ``PENDING`` with HTTP 400 as a state, retries of
    ``RATE_LIMIT_EXCEEDED`` / 5xx with full-jitter backoff, one exception class per vendor error)
    lives in :mod:`phonecheck.accuauth.api`; this hook only turns the Airflow connection into a
    client: :meth:`get_client` (blocking, for tasks) or :meth:`aget_async_client` (for triggers,
    reads the connection with ``await BaseHook.aget_connection``). The secret is only ever put in
    the request headers, never in logs or exception messages.

    :param accuauth_conn_id: connection of type ``accuauth``: host = base URL, login = API id,
        password = API secret; extras ``allowed_country_codes`` (default ``52``: numbers with
        another calling code are never sent) and ``timeout_s``.
    :param timeout_s: connect/read timeout of one HTTP attempt (the connection's ``timeout_s``
        extra wins when set).
    :param retry: retry policy for rate limits, 5xx and network errors (default: 6 attempts,
        full jitter, at most 30 s between attempts).
    """

    conn_name_attr = "accuauth_conn_id"
    default_conn_name = ACCUAUTH_CONN_ID
    conn_type = "accuauth"
    hook_name = "AccuAuth"

    def __init__(
        self,
        accuauth_conn_id: str = default_conn_name,
        *,
        timeout_s: float = 30.0,
        retry: RetryPolicy | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.accuauth_conn_id = accuauth_conn_id
        self.timeout_s = timeout_s
        self.retry = retry
        self._client: AccuAuthClient | None = None

    @staticmethod
    def _extra(conn: Any, name: str) -> Any:
        """Connection-form fields may be stored plain or as ``extra__accuauth__<name>``."""
        extras = conn.extra_dejson or {}
        value = extras.get(name)
        if value in (None, ""):
            value = extras.get(f"extra__accuauth__{name}")
        return None if value in (None, "") else value

    def _timeout(self, conn: Any) -> float:
        value = self._extra(conn, "timeout_s")
        return float(value) if value is not None else self.timeout_s

    def allowed_country_codes(self) -> tuple[str, ...]:
        """The calling codes this connection's endpoint accepts (extra, default ``52``)."""
        from phonecheck.accuauth.submit import parse_country_codes

        return parse_country_codes(
            self._extra(self.get_connection(self.accuauth_conn_id), "allowed_country_codes")
        )

    @staticmethod
    def _base_url(conn: Any) -> str:
        host = (conn.host or "").strip()
        if not host:
            raise ValueError("the accuauth connection needs a host (base URL)")
        if "://" not in host:
            scheme = conn.schema or "https"
            host = f"{scheme}://{host}" + (f":{conn.port}" if conn.port else "")
        return host.rstrip("/")

    def get_client(self, *, pool_size: int = 16) -> AccuAuthClient:
        """A blocking client (requests) built from the connection; reused by this hook."""
        from phonecheck.accuauth.api import AccuAuthClient

        if self._client is None:
            conn = self.get_connection(self.accuauth_conn_id)
            self._client = AccuAuthClient(
                self._base_url(conn),
                conn.login or "",
                conn.password or "",
                timeout_s=self._timeout(conn),
                retry=self.retry,
                pool_size=pool_size,
            )
        return self._client

    async def aget_async_client(self, *, max_connections: int = 16) -> AsyncAccuAuthClient:
        """A non-blocking client (aiohttp); use it as ``async with``."""
        from phonecheck.accuauth.api import AsyncAccuAuthClient

        conn = await BaseHook.aget_connection(self.accuauth_conn_id)
        return AsyncAccuAuthClient(
            self._base_url(conn),
            conn.login or "",
            conn.password or "",
            timeout_s=self._timeout(conn),
            retry=self.retry,
            max_connections=max_connections,
        )

    def submit(self, phone_number: str, callback: str | None = None) -> Answer:
        """Start a (paid) check. Returns the answer: a result at once, or a ``task_id``."""
        return self.get_client().submit(phone_number, callback)

    def task_result(self, task_id: str) -> Answer:
        """Poll one task: ``OK`` with a result, or ``PENDING`` (HTTP 400, not an error)."""
        return self.get_client().task_result(task_id)

    def test_connection(self) -> tuple[bool, str]:
        """UI "Test": an unknown task id must come back as INVALID_ARGUMENT, not UNAUTHORIZED."""
        from phonecheck.accuauth.api import AccuAuthError, AccuAuthInvalidArgument

        try:
            self.task_result("connection-test")
        except AccuAuthInvalidArgument:
            return True, "credentials accepted"
        except AccuAuthError as exc:
            return False, str(exc)
        return True, "credentials accepted"
