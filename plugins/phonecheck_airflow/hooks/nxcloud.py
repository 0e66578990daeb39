"""NXCLOUD hook (connection type ``nxcloud``). Behaviour: issue #4."""

from __future__ import annotations

from airflow.sdk import BaseHook


class NxCloudHook(BaseHook):
    """Signs and sends NXCLOUD open-platform calls (number check submit and query).

    :param nxcloud_conn_id: connection of type ``nxcloud``: host = base URL, login = access
        key, password = access secret; extras ``appkey``, ``sign_algorithm`` (md5/sha256),
        ``query_timezone`` and ``query_min_interval_s``.
    """

    conn_name_attr = "nxcloud_conn_id"
    default_conn_name = "nxcloud_default"
    conn_type = "nxcloud"
    hook_name = "NXCLOUD (signed API)"

    def __init__(self, nxcloud_conn_id: str = default_conn_name, **kwargs) -> None:
        super().__init__(**kwargs)
        self.nxcloud_conn_id = nxcloud_conn_id
