"""AccuAuth hook (connection type ``accuauth``). Behaviour: issue #5."""

from __future__ import annotations

from airflow.sdk import BaseHook


class AccuAuthHook(BaseHook):
    """Calls the AccuAuth phone status API with ``X-DF-API-ID`` / ``X-DF-API-SECRET``.

    :param accuauth_conn_id: connection of type ``accuauth``: host = base URL, login = API id,
        password = API secret.
    """

    conn_name_attr = "accuauth_conn_id"
    default_conn_name = "accuauth_default"
    conn_type = "accuauth"
    hook_name = "AccuAuth"

    def __init__(self, accuauth_conn_id: str = default_conn_name, **kwargs) -> None:
        super().__init__(**kwargs)
        self.accuauth_conn_id = accuauth_conn_id
