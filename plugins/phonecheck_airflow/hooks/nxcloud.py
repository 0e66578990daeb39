"""NXCLOUD hook (connection type ``nxcloud``): the connection turned into a wire client.

The wire work (signing every attempt, retries, vendor codes, query paging) is plain Python in
:mod:`phonecheck.nxcloud.client`, like AccuAuth's hook over :mod:`phonecheck.accuauth.api`.
This hook reads the connection, builds :class:`~phonecheck.nxcloud.client.NxCloudClient` with a
query limiter shared by every process using the same access key (kept in the warehouse), and
offers the UI's "Test" button.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook

from phonecheck_airflow.conn_ids import NXCLOUD_CONN_ID

if TYPE_CHECKING:
    from phonecheck.nxcloud.client import NxCloudClient, NxCloudSettings


def _extra(extras: dict[str, Any], name: str) -> Any:
    """Connection-form fields may be stored plain or as ``extra__nxcloud__<name>``."""
    value = extras.get(name)
    if value in (None, ""):
        value = extras.get(f"extra__nxcloud__{name}")
    return None if value == "" else value


class NxCloudHook(BaseHook):
    """Builds the NXCLOUD number-check client from an Airflow connection.

    :param nxcloud_conn_id: connection of type ``nxcloud``: host = base URL, login = access
        key, password = access secret; extras ``appkey``, ``sign_algorithm`` (md5/sha256),
        ``query_timezone`` (our first guess at the timezone of the query API ``date``, default
        UTC), ``query_min_interval_s`` (seconds between query calls per access key, default 3),
        ``push_window_s`` / ``in_doubt_margin_s`` (how long a batch whose submit answer was lost
        waits for pushes or query rows before it is submitted again; default 300 + 300).
    :param warehouse_conn_id: where the per-access-key query limiter lives; ``None`` keeps the
        limiter inside this process (tests, tools without a warehouse).
    :param client_kwargs: passed to :class:`~phonecheck.nxcloud.client.NxCloudClient`
        (``max_attempts``, ``backoff_max``, ``timeout``, ``query_concurrency``...).
    """

    conn_name_attr = "nxcloud_conn_id"
    default_conn_name = NXCLOUD_CONN_ID
    conn_type = "nxcloud"
    hook_name = "NXCLOUD (signed API)"

    def __init__(
        self,
        nxcloud_conn_id: str = default_conn_name,
        *,
        warehouse_conn_id: str | None = None,
        **client_kwargs: Any,
    ) -> None:
        super().__init__()
        self.nxcloud_conn_id = nxcloud_conn_id
        self.warehouse_conn_id = warehouse_conn_id
        self.client_kwargs = client_kwargs
        self._client: NxCloudClient | None = None

    @cached_property
    def settings(self) -> NxCloudSettings:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        from phonecheck.nxcloud.client import IN_DOUBT_MARGIN_S, PUSH_WINDOW_S, NxCloudSettings

        conn = self.get_connection(self.nxcloud_conn_id)
        extras = conn.extra_dejson or {}
        name = repr(self.nxcloud_conn_id)
        host = (conn.host or "").strip()
        if not host:
            raise ValueError(f"connection {name}: host (the NXCLOUD base URL) is empty")
        if "://" not in host:
            host = f"https://{host}"
        if not conn.login or not conn.password:
            raise ValueError(f"connection {name}: access key (login) and secret (password) are required")
        algorithm = str(_extra(extras, "sign_algorithm") or "md5").lower()
        if algorithm not in ("md5", "sha256"):
            raise ValueError(f"connection {name}: sign_algorithm must be md5 or sha256")
        tz_name = str(_extra(extras, "query_timezone") or "UTC")
        try:
            ZoneInfo(tz_name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"connection {name}: unknown query_timezone {tz_name!r}") from None

        def seconds(key: str, default: float) -> float:
            value = _extra(extras, key)
            return default if value is None else float(value)

        return NxCloudSettings(
            base_url=host.rstrip("/"),
            access_key=conn.login,
            access_secret=conn.password,
            appkey=_extra(extras, "appkey"),
            sign_algorithm=algorithm,  # type: ignore[arg-type]
            query_timezone=tz_name,
            query_min_interval_s=seconds("query_min_interval_s", 3.0),
            push_window_s=seconds("push_window_s", PUSH_WINDOW_S),
            in_doubt_margin_s=seconds("in_doubt_margin_s", IN_DOUBT_MARGIN_S),
        )

    def get_conn(self) -> NxCloudClient:
        return self.get_client()

    def get_client(self) -> NxCloudClient:
        """The client of this connection (built once per hook)."""
        from phonecheck.nxcloud.client import NxCloudClient
        from phonecheck.nxcloud.ratelimit import WarehouseIntervalLimiter

        if self._client is None:
            s = self.settings
            limiter = None
            if self.warehouse_conn_id is not None:
                from phonecheck_airflow.warehouse import warehouse_dsn

                limiter = WarehouseIntervalLimiter(
                    warehouse_dsn(self.warehouse_conn_id), s.access_key, s.query_min_interval_s
                )
            self._client = NxCloudClient(s, query_limiter=limiter, **self.client_kwargs)
        return self._client

    def test_connection(self) -> tuple[bool, str]:
        """UI "Test": one signed, free query for an unknown batch; 1001-1005 mean the credentials fail."""
        from phonecheck.nxcloud.errors import NxCloudAuthError, NxCloudError

        client = self.get_client()
        try:
            client.query_page(date=client.vendor_today(), page=1, page_size=1, batch_no="connection-test")
        except NxCloudAuthError as exc:
            return False, str(exc)
        except NxCloudError as exc:
            return False, f"signed call accepted, but the query API refused it: {exc}"
        return True, "credentials and signature accepted"
