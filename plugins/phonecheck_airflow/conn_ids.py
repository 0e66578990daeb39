"""The Airflow connection ids the project's code defaults to (docs/deployment.md sets them up),
and the names of the settings DAG files template from what a task read off a connection.

A module of constants only, no import: DAG files, hooks, sensors, triggers and task functions of
both vendors take their defaults from here, and importing it costs a DAG file's parse nothing.
"""

from __future__ import annotations

#: The warehouse, a postgres connection.
WAREHOUSE_CONN_ID = "warehouse"
#: The NXCLOUD account (``nxcloud`` connection type).
NXCLOUD_CONN_ID = "nxcloud_default"
#: The AccuAuth account (``accuauth`` connection type).
ACCUAUTH_CONN_ID = "accuauth_default"

#: The AccuAuth wait's settings (connection extras of the ``accuauth`` account; the sensor's
#: ``wait_settings`` keys), handed on by the task that starts a wait.
ACCUAUTH_WAIT_SETTINGS = (
    "poll_interval_s",
    "max_poll_interval_s",
    "max_requests_per_second",
    "warehouse_check_interval_s",
)
