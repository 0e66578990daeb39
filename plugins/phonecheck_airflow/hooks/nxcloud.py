"""NXCLOUD hook (connection type ``nxcloud``): the connection turned into a wire client.

A thin :class:`~phonecheck_airflow.hooks.base.VendorHook`: the wire work (signing every attempt,
retries, vendor codes, query paging) is plain Python in :mod:`phonecheck.nxcloud.client`. This
hook reads the connection into :class:`~phonecheck.nxcloud.settings.NxCloudSettings`, builds the
client with a query limiter shared by every process using the same access key (kept in the
warehouse), and probes it for the UI's "Test" button with one signed, free query.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

from phonecheck_airflow.conn_ids import NXCLOUD_CONN_ID
from phonecheck_airflow.hooks.base import VendorHook, connection_base_url, connection_extras

if TYPE_CHECKING:
    from phonecheck.nxcloud.client import NxCloudClient, NxCloudSettings


def settings_from_connection(conn: Any, conn_id: str) -> NxCloudSettings:
    """The client settings of an NXCLOUD connection already read (``get_connection`` in a task,
    ``await aget_connection`` in a trigger); ``conn_id`` only names it in error messages."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    from phonecheck.nxcloud.settings import IN_DOUBT_MARGIN_S, PUSH_WINDOW_S, NxCloudSettings

    extras = connection_extras(conn, NxCloudHook.conn_type)
    name = repr(conn_id)
    url = connection_base_url(conn, conn_id=conn_id)
    if not conn.login or not conn.password:
        raise ValueError(f"connection {name}: access key (login) and secret (password) are required")
    algorithm = str(extras.get("sign_algorithm") or "md5").lower()
    if algorithm not in ("md5", "sha256"):
        raise ValueError(f"connection {name}: sign_algorithm must be md5 or sha256")
    tz_name = str(extras.get("query_timezone") or "UTC")
    try:
        ZoneInfo(tz_name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"connection {name}: unknown query_timezone {tz_name!r}") from None

    def seconds(key: str, default: float) -> float:
        value = extras.get(key)
        return default if value is None else float(value)

    return NxCloudSettings(
        base_url=url,
        access_key=conn.login,
        access_secret=conn.password,
        appkey=extras.get("appkey"),
        sign_algorithm=algorithm,  # type: ignore[arg-type]
        query_timezone=tz_name,
        query_min_interval_s=seconds("query_min_interval_s", 3.0),
        push_window_s=seconds("push_window_s", PUSH_WINDOW_S),
        in_doubt_margin_s=seconds("in_doubt_margin_s", IN_DOUBT_MARGIN_S),
    )


class NxCloudHook(VendorHook["NxCloudClient"]):
    """Builds the NXCLOUD number-check client from an Airflow connection.

    :param nxcloud_conn_id: connection of type ``nxcloud``: host = base URL (``https://`` unless
        the host or the schema field says otherwise; port honoured), login = access key,
        password = access secret; extras ``appkey``, ``sign_algorithm`` (md5/sha256),
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
    test_ok_message = "credentials and signature accepted"

    def __init__(
        self,
        nxcloud_conn_id: str = default_conn_name,
        *,
        warehouse_conn_id: str | None = None,
        **client_kwargs: Any,
    ) -> None:
        super().__init__(nxcloud_conn_id)
        self.nxcloud_conn_id = nxcloud_conn_id
        self.warehouse_conn_id = warehouse_conn_id
        self.client_kwargs = client_kwargs

    @cached_property
    def settings(self) -> NxCloudSettings:
        """The client settings of this hook's connection."""
        return settings_from_connection(self.connection, self.conn_id)

    def build_client(self, conn: Any) -> NxCloudClient:
        from phonecheck.nxcloud.client import NxCloudClient
        from phonecheck.nxcloud.ratelimit import WarehouseIntervalLimiter

        s = self.settings
        limiter = None
        if self.warehouse_conn_id is not None:
            from phonecheck_airflow.warehouse import warehouse_dsn

            limiter = WarehouseIntervalLimiter.for_account(warehouse_dsn(self.warehouse_conn_id), s)
        return NxCloudClient(s, query_limiter=limiter, **self.client_kwargs)

    def get_client(self) -> NxCloudClient:
        """The client of this connection (built once per hook); the same as :meth:`get_conn`."""
        return self.get_conn()

    def probe(self, client: NxCloudClient) -> None:
        """One signed, free query for an unknown batch: 1001-1005 mean the credentials fail,
        another refusal means the signature passed but the query API refused the call."""
        from phonecheck.nxcloud.errors import NxCloudAuthError, NxCloudError

        try:
            client.query_page(date=client.vendor_today(), page=1, page_size=1, batch_no="connection-test")
        except NxCloudAuthError:
            raise
        except NxCloudError as exc:
            raise NxCloudError(
                exc.action, f"signed call accepted, but the query API refused it: {exc}", code=exc.code
            ) from None
