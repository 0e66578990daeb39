"""The one vendor hook base: an Airflow connection turned into a vendor client.

Modelled on the HTTP provider's ``HttpHook``: the base URL comes from the connection's host,
schema and port; the extras are parsed once; :meth:`VendorHook.get_conn` returns the vendor
client (built once per hook); :meth:`VendorHook.test_connection` backs the UI's "Test" button.
A vendor hook (:mod:`.nxcloud`, :mod:`.accuauth`) only says how to build its client and how to
probe it. The wire work, errors and retries are plain Python in ``phonecheck.<vendor>``
(docs/development.md, "Hooks, clients and errors").
"""

from __future__ import annotations

from typing import Any, ClassVar, Generic, TypeVar
from urllib.parse import urlsplit, urlunsplit

from airflow.sdk import BaseHook

ClientT = TypeVar("ClientT")

#: Used when the connection names no schema: vendors are only reached over TLS in production.
DEFAULT_SCHEME = "https"


def connection_base_url(conn: Any, *, conn_id: str = "", default_scheme: str = DEFAULT_SCHEME) -> str:
    """The base URL of a connection, as the HTTP provider builds it.

    ``host`` may be a full URL (``https://api.example/v1``: its scheme wins) or a bare host with an
    optional path (``api.example/v1``: the connection's ``schema`` gives the scheme, ``https`` when
    empty). ``port`` is added unless the host already names one. No trailing slash.
    """
    host = (conn.host or "").strip()
    if not host:
        raise ValueError(f"connection {conn_id!r}: host (the vendor's base URL) is empty")
    if "://" not in host:
        host = f"{(conn.schema or '').strip() or default_scheme}://{host}"
    parts = urlsplit(host)
    if not parts.scheme or not parts.hostname:
        raise ValueError(f"connection {conn_id!r}: host {host!r} is not a URL")
    netloc = parts.netloc
    if conn.port and parts.port is None:
        netloc = f"{netloc}:{int(conn.port)}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, "")).rstrip("/")


def connection_extras(conn: Any, conn_type: str) -> dict[str, Any]:
    """The connection's extras, parsed once: a connection-form field may be stored plain
    (``appkey``) or prefixed (``extra__<conn_type>__appkey``); the plain name wins, empty values
    are dropped."""
    raw = conn.extra_dejson or {}
    prefix = f"extra__{conn_type}__"
    extras: dict[str, Any] = {}
    for key, value in raw.items():
        if value in (None, ""):
            continue
        name = key.removeprefix(prefix)
        if name == key or name not in extras:
            extras[name] = value
    return extras


class VendorHook(BaseHook, Generic[ClientT]):
    """Base of the vendor hooks: connection, base URL, extras, client, "Test".

    A subclass sets ``conn_name_attr``, ``default_conn_name``, ``conn_type`` and ``hook_name``
    (Airflow's provider contract), implements :meth:`build_client` and :meth:`probe`, and may
    override :attr:`test_ok_message`.

    :param conn_id: the Airflow connection; also stored under ``conn_name_attr``
        (``nxcloud_conn_id``, ``accuauth_conn_id``) for callers that read it there.
    """

    conn_name_attr: ClassVar[str]
    default_conn_name: ClassVar[str]
    conn_type: ClassVar[str]
    hook_name: ClassVar[str]
    #: What "Test" reports when the probe succeeds.
    test_ok_message: ClassVar[str] = "connection accepted"

    def __init__(self, conn_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.conn_id = conn_id or self.default_conn_name
        setattr(self, self.conn_name_attr, self.conn_id)
        self._conn: Any = None
        self._client: ClientT | None = None

    # ---- the connection, read once ---------------------------------------------------------------
    @property
    def connection(self) -> Any:
        """The Airflow connection (read on first use, then kept)."""
        if self._conn is None:
            self._conn = self.get_connection(self.conn_id)
        return self._conn

    async def aconnection(self) -> Any:
        """The connection, read without blocking the event loop (triggers)."""
        if self._conn is None:
            self._conn = await BaseHook.aget_connection(self.conn_id)
        return self._conn

    @classmethod
    def base_url_of(cls, conn: Any, conn_id: str = "") -> str:
        """:func:`connection_base_url` of a connection of this type."""
        return connection_base_url(conn, conn_id=conn_id)

    @classmethod
    def extras_of(cls, conn: Any) -> dict[str, Any]:
        """:func:`connection_extras` of a connection of this type."""
        return connection_extras(conn, cls.conn_type)

    @property
    def base_url(self) -> str:
        return self.base_url_of(self.connection, self.conn_id)

    @property
    def extras(self) -> dict[str, Any]:
        return self.extras_of(self.connection)

    # ---- the client ------------------------------------------------------------------------------
    def build_client(self, conn: Any) -> ClientT:
        """The vendor client of ``conn`` (a subclass builds it)."""
        raise NotImplementedError

    def get_conn(self) -> ClientT:
        """The vendor client of this connection, built once per hook."""
        if self._client is None:
            self._client = self.build_client(self.connection)
        return self._client

    def probe(self, client: ClientT) -> None:
        """One cheap, free call that fails when the connection does not work."""
        raise NotImplementedError

    def test_connection(self) -> tuple[bool, str]:
        """UI "Test": build the client and :meth:`probe` it; never shows the secret (the vendor
        clients' messages carry none)."""
        try:
            self.probe(self.get_conn())
        except Exception as exc:  # any failure is the answer "Test" shows
            return False, str(exc)
        return True, self.test_ok_message
