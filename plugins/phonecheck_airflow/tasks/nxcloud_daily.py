"""The steps of the daily NXCLOUD reconciliation DAG (``nxcloud_number_check_daily``).

Which vendor date, is it still queryable, and the sync: each batch of the day finished from its
pushes in the inbox first, the query API asked only for the numbers still without a result (a
day whose batches are complete costs no query call). Same conventions as
:mod:`phonecheck_airflow.tasks.nxcloud`: XCom-sized dicts in and out, ONE summary line per step,
heavy imports at run time.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from phonecheck.privacy.masking import mask_number
from phonecheck_airflow.tasks.common import CONNS, ConnIds, connect, run_ids
from phonecheck_airflow.tasks.nxcloud import NUMBER_CHECK_TABLE, _client, _query_batches

log = logging.getLogger(__name__)


def plan_day(params: dict[str, Any], context: Any, *, conns: ConnIds = CONNS) -> dict[str, Any]:
    """The run's vendor date, refused when outside the 14-day window; how many batches it has
    (the sync reads them from the warehouse again: only the date and counts travel on)."""
    from datetime import date

    from phonecheck.nxcloud.daily import OutsideQueryWindow, check_query_window, day_batches, vendor_date_for

    client = _client(conns)
    tz = client.query_timezone
    if params.get("vendor_date"):
        day, why = date.fromisoformat(str(params["vendor_date"])), "the vendor_date param"
    elif context.get("data_interval_start") is not None:
        day, why = vendor_date_for(context["data_interval_start"], tz), "the data interval start"
    else:  # a manual run without a logical date: what a scheduled run at run_after would cover
        run_after = context["dag_run"].run_after
        day, why = vendor_date_for(run_after - timedelta(days=1), tz), "run_after - 1 day"
    with connect(conns.warehouse) as conn:
        try:
            check_query_window(conn, day, tz, today=client.vendor_today())
        except OutsideQueryWindow as exc:
            raise AirflowFailException(str(exc)) from None
        batches, near = day_batches(conn, day, tz)
    log.info(
        "SUMMARY plan: vendor date %s (%s, query timezone %s): %d batch(es) submitted or pushed that day, "
        "%d more near the day boundary in another candidate timezone",
        day, why, tz.key, len(batches), len(near),
    )  # fmt: skip
    return {"vendor_date": day.isoformat(), "batches": len(batches), "boundary_batches": len(near)}


def sync_day(plan: dict[str, Any], context: Any, *, conns: ConnIds = CONNS) -> dict[str, Any]:
    """Finish each batch of the day: its pushes in the inbox merged, then the query API asked
    only for the numbers still without a result (a batch whose pushes all arrived costs no call;
    a batch we did not submit is paged whole, as we cannot tell what it lacks); missing pushes
    reported (one ``ops.query_sync_report`` row per batch looked up, with this run's ids)."""
    from datetime import date

    from phonecheck.nxcloud.daily import day_batches, incomplete_batches, write_sync_report
    from phonecheck.nxcloud.results import load_pushes, mark_complete
    from phonecheck.nxcloud.sync import QueryTotals, lookups_for

    dag_id, run_id = run_ids(context)
    day = date.fromisoformat(plan["vendor_date"])
    client = _client(conns)
    totals = QueryTotals()
    loaded = 0
    with connect(conns.warehouse) as conn:
        native, near = day_batches(conn, day, client.query_timezone)
        batches = native + near
        # pushes that arrived after their run stopped waiting count before any query call
        pushes = load_pushes(conn, incomplete_batches(conn, batches))
        completed = mark_complete(conn, batches)
        lookups = lookups_for(conn, batches, lambda batch_no: [day])
        for i, batch in enumerate(
            _query_batches(client, conn, lookups, totals=totals, dag_id=dag_id, run_id=run_id), start=1
        ):
            if not batch.rows and i > len(native):
                continue  # a boundary batch the vendor dates the other day: that day's sync has it
            write_sync_report(
                conn,
                day=day,
                batch_no=batch.batch_no,
                query_rows=batch.rows,
                pages=batch.pages,
                api_calls=batch.api_calls,
                missing_phones=[phone for _, phone in batch.never_pushed],
                dag_id=dag_id,
                run_id=run_id,
                looked_up=batch.missing != 0,
            )
            loaded += batch.rows > 0
            for _, phone in batch.never_pushed[:20]:
                log.warning(
                    "batch %s: the push for %s never arrived (query row loaded instead)",
                    batch.batch_no, mask_number(phone),
                )  # fmt: skip
            if batch.missing != 0:
                log.info(
                    "batch %d/%d %s on %s: %s number(s) without a result, %d row(s), %d page(s), %d call(s), "
                    "%d push(es) never arrived%s", i, len(batches), batch.batch_no, day, batch.missing,
                    batch.rows, batch.pages, batch.api_calls, len(batch.never_pushed),
                    f"; cut short: {batch.stopped}" if batch.stopped else "",
                )  # fmt: skip
        # A batch whose on-demand run gave up waiting (or never reconciled) is complete once the
        # sync has listed every number: it no longer counts as waiting (Phone checks page).
        completed += mark_complete(conn, batches)
    log.info(
        "SUMMARY sync %s: %d batch(es) (+%d near the day boundary), %d push row(s) merged from the inbox, %d "
        "batch(es) complete from their pushes (no query call), %d looked up (%d number(s) without a result, %d "
        "found); %d query call(s) (%d refused for their rate and retried, %d lookup(s) cut short by a refusal), "
        "%d query row(s) (%d new, %d updated) on %d page(s) kept in raw.vendor_answer, %d push(es) never "
        "arrived (ops.query_sync_report), %d batch(es) now complete",
        day, len(native), len(near), pushes.rows, totals.skipped_complete, totals.queried_batches,
        totals.missing, totals.found, client.api_calls["query"], client.rate_limited["query"], totals.incomplete,
        totals.rows, totals.inserted, totals.updated, totals.pages, totals.never_pushed, len(completed),
    )  # fmt: skip
    return {
        "vendor_date": day.isoformat(),
        "batches": len(batches),
        "loaded_batches": loaded,
        "query_rows": totals.rows,
        "query_calls": {"missing_numbers": client.api_calls["query"]},
        "batches_complete_from_pushes": totals.skipped_complete,
        "batches_queried": totals.queried_batches,
        "pushes_never_arrived": totals.never_pushed,
        "completed_batches": len(completed),
    }


def validate_day(synced: dict[str, Any], context: Any, *, conns: ConnIds = CONNS) -> dict[str, Any]:
    """Great Expectations over the rows of the batches this sync run loaded (read from its
    ``ops.query_sync_report`` rows, not from XCom; the pattern of :func:`validate`)."""
    from datetime import date

    from phonecheck.nxcloud.daily import synced_batches
    from phonecheck_airflow.operators.quality import validate_loaded_rows

    dag_id, run_id = run_ids(context)
    with connect(conns.warehouse) as conn:
        batch_nos = synced_batches(
            conn, day=date.fromisoformat(synced["vendor_date"]), dag_id=dag_id, run_id=run_id
        )
    result = validate_loaded_rows(
        NUMBER_CHECK_TABLE, "batch_no", batch_nos, warehouse_conn_id=conns.warehouse, context=context
    )
    return {"vendor_date": synced.get("vendor_date"), "batches": len(batch_nos), **result}
