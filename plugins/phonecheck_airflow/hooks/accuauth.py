"""AccuAuth hook (connection type ``accuauth``). Vendor behaviour: docs/vendors/accuauth.md."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from phonecheck_airflow.conn_ids import ACCUAUTH_CONN_ID
from phonecheck_airflow.hooks.base import VendorHook

if TYPE_CHECKING:
    from phonecheck.accuauth.api import AccuAuthClient, AsyncAccuAuthClient
    from phonecheck.vendor_errors import RetryPolicy


class AccuAuthHook(VendorHook["AccuAuthClient"]):
    """Calls the AccuAuth phone status API with ``X-DF-API-ID`` / ``X-DF-API-SECRET``.

    A thin :class:`~phonecheck_airflow.hooks.base.VendorHook`: the wire work (form-encoded
    bodies, ``PENDING`` with HTTP 400 as a state, retries, one exception class per vendor error)
    lives in :mod:`phonecheck.accuauth.api`; this hook only turns the Airflow connection into a
    client: :meth:`get_conn` / :meth:`get_client` (blocking, for tasks) or
    :meth:`aget_async_client` (for triggers, reads the connection without blocking). The secret
    is only ever put in the request headers, never in logs or exception messages.

    :param accuauth_conn_id: connection of type ``accuauth``: host = base URL (``https://`` unless
        the host or the schema field says otherwise; port honoured), login = API id, password =
        API secret; extras ``allowed_country_codes`` (default ``52``: numbers with another calling
        code are never sent) and ``timeout_s``.
    :param timeout_s: connect/read timeout of one HTTP attempt (the connection's ``timeout_s``
        extra wins when set).
    :param retry: retry policy for rate limits, 5xx and network errors (default: 6 attempts,
        full jitter, at most 30 s between attempts).
    """

    conn_name_attr = "accuauth_conn_id"
    default_conn_name = ACCUAUTH_CONN_ID
    conn_type = "accuauth"
    hook_name = "AccuAuth"
    test_ok_message = "credentials accepted"

    def __init__(
        self,
        accuauth_conn_id: str = default_conn_name,
        *,
        timeout_s: float = 30.0,
        retry: RetryPolicy | None = None,
        pool_size: int = 16,
        **kwargs: Any,
    ) -> None:
        super().__init__(accuauth_conn_id, **kwargs)
        self.accuauth_conn_id = accuauth_conn_id
        self.timeout_s = timeout_s
        self.retry = retry
        self.pool_size = pool_size

    def _timeout(self, conn: Any) -> float:
        value = self.extras_of(conn).get("timeout_s")
        return float(value) if value is not None else self.timeout_s

    def allowed_country_codes(self) -> tuple[str, ...]:
        """The calling codes this connection's endpoint accepts (extra, default ``52``)."""
        from phonecheck.accuauth.submit import parse_country_codes

        return parse_country_codes(self.extras.get("allowed_country_codes"))

    def _client_args(self, conn: Any) -> tuple[tuple[str, str, str], dict[str, Any]]:
        args = (self.base_url_of(conn, self.conn_id), conn.login or "", conn.password or "")
        return args, {"timeout_s": self._timeout(conn), "retry": self.retry}

    def build_client(self, conn: Any) -> AccuAuthClient:
        from phonecheck.accuauth.api import AccuAuthClient

        args, kwargs = self._client_args(conn)
        return AccuAuthClient(*args, **kwargs, max_connections=self.pool_size)

    def get_client(self, *, pool_size: int | None = None) -> AccuAuthClient:
        """A blocking client (requests) built from the connection; reused by this hook.
        ``pool_size`` (connections kept open) counts when the client is first built."""
        if pool_size is not None and self._client is None:
            self.pool_size = pool_size
        return self.get_conn()

    async def aget_async_client(self, *, max_connections: int = 16) -> AsyncAccuAuthClient:
        """A non-blocking client (aiohttp); use it as ``async with``."""
        from phonecheck.accuauth.api import AsyncAccuAuthClient

        args, kwargs = self._client_args(await self.aconnection())
        return AsyncAccuAuthClient(*args, **kwargs, max_connections=max_connections)

    def probe(self, client: AccuAuthClient) -> None:
        """An unknown task id must come back as INVALID_ARGUMENT (free), not UNAUTHORIZED."""
        from phonecheck.accuauth.api import AccuAuthInvalidArgument

        try:
            client.task_result("connection-test")
        except AccuAuthInvalidArgument:
            return
