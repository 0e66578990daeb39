"""The "Phone checks" page in the Airflow UI: spend vs budget, daily spend, outcome mix, checks
waiting, approvals, the last data-quality failures (with their Data Docs) and receiver health.

A small FastAPI app served by the api-server under ``/phone-checks`` and shown in the UI's
navigation through ``external_views`` (with ``url_route`` the UI embeds it at
``/plugin/phone-checks``). Airflow does not authenticate plugin apps, so every route depends on
Airflow's own ``get_user`` (the UI's session cookie or a Bearer token, validated by the
configured auth manager): same login as the UI, 401 without one. The HTML comes from
:mod:`phonecheck.spend.page` (inline SVG, no script, no internet asset). docs/operations.md.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

URL_PREFIX = "/phone-checks"


def _warehouse_dsn() -> str:
    """The ``warehouse`` connection through ``PostgresHook``, as every task reads it."""
    from phonecheck_airflow.warehouse import warehouse_dsn

    return warehouse_dsn()


def _runs_in_this_airflow(pairs: set[tuple[str, str]]) -> set[tuple[str, str]]:
    """Which of ``pairs`` (dag_id, run_id) this Airflow's metadata database holds: only those get
    a link (a run of another Airflow on the same warehouse, e.g. make demo's, would answer 404)."""
    if not pairs:
        return set()
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        found = session.execute(
            select(DagRun.dag_id, DagRun.run_id).where(DagRun.run_id.in_({run_id for _, run_id in pairs}))
        ).all()
    return {(dag_id, run_id) for dag_id, run_id in found} & pairs


def create_app():
    from pathlib import Path

    from airflow.api_fastapi.core_api.security import get_user
    from fastapi import Depends, FastAPI, HTTPException
    from fastapi.concurrency import run_in_threadpool
    from fastapi.responses import FileResponse, HTMLResponse

    app = FastAPI(title="Phone checks", docs_url=None, redoc_url=None, openapi_url=None)

    def render() -> str:
        import psycopg

        from phonecheck.quality.runner import data_docs_dir
        from phonecheck.spend.page import load_page_data, render_page, spool_dir_from_env

        with psycopg.connect(_warehouse_dsn(), connect_timeout=10) as conn:
            data = load_page_data(conn, spool_dir_from_env())
        return render_page(
            data,
            ui_base="",
            page_base=URL_PREFIX,
            docs_dir=data_docs_dir(),
            known_runs=_runs_in_this_airflow(data.run_pairs()),
        )

    @app.get("/", response_class=HTMLResponse)
    async def page(user=Depends(get_user)) -> HTMLResponse:  # noqa: B008 - FastAPI's dependency idiom
        return HTMLResponse(await run_in_threadpool(render), headers={"Cache-Control": "no-store"})

    @app.get("/data-docs/{path:path}")
    async def data_docs(path: str, user=Depends(get_user)) -> FileResponse:  # noqa: B008
        from phonecheck.quality.runner import data_docs_dir

        root = Path(data_docs_dir()).resolve()
        target = (root / path).resolve()
        if not target.is_relative_to(root) or not target.is_file():
            raise HTTPException(404, "no such Data Docs page")
        return FileResponse(target)

    return app


class PhoneChecksPlugin(AirflowPlugin):
    name = "phone_checks"
    fastapi_apps = [{"app": create_app(), "url_prefix": URL_PREFIX, "name": "phone_checks"}]
    external_views = [
        {
            "name": "Phone checks",
            "href": f"{URL_PREFIX}/",
            "url_route": "phone-checks",
            "destination": "nav",
            "category": "browse",
        }
    ]
