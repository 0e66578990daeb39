"""What every task function of both vendors shares: the warehouse connection and the run's ids.

The one pattern (docs/development.md, "One pattern per layer"): a step takes what the steps
before it handed on (keys and counts), then ``params`` when it reads the form, then the task
``context``, then ``conns`` (keyword): the :class:`ConnIds` it reaches the vendor and the
warehouse through, by default the contract ids of :mod:`phonecheck_airflow.conn_ids`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from phonecheck_airflow.conn_ids import ACCUAUTH_CONN_ID, NXCLOUD_CONN_ID, WAREHOUSE_CONN_ID


@dataclass(frozen=True)
class ConnIds:
    """The Airflow connection ids a step uses (a DAG passes its own to point a run elsewhere)."""

    warehouse: str = WAREHOUSE_CONN_ID
    nxcloud: str = NXCLOUD_CONN_ID
    accuauth: str = ACCUAUTH_CONN_ID


#: The contract ids: what every step uses unless its DAG says otherwise.
CONNS = ConnIds()


def connect(warehouse_conn_id: str = WAREHOUSE_CONN_ID, *, autocommit: bool = False):
    """A psycopg connection to the warehouse through its Airflow connection (a context manager)."""
    from phonecheck.warehouse import connect as connect_dsn
    from phonecheck_airflow.warehouse import warehouse_dsn

    return connect_dsn(warehouse_dsn(warehouse_conn_id), autocommit=autocommit)


def run_ids(context: Any) -> tuple[str, str]:
    """``(dag_id, run_id)``: the task context has no ``dag_id``, the DAG object carries it."""
    return context["dag"].dag_id, context["run_id"]
