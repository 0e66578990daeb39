"""The steps of the NXCLOUD number-check DAGs, as functions the DAG tasks call.

Each step takes what the previous one returned (XCom-sized dicts), does its work through
:class:`~phonecheck.nxcloud.client.NxCloudClient` (from the hook) and the warehouse, logs progress and ONE
summary line, and turns "stop here" outcomes into Airflow exceptions: over budget or a vendor
refusal a retry cannot fix → :class:`AirflowFailException`; dry run → :class:`AirflowSkipException`.
Heavy imports (psycopg, phonenumbers, requests) happen inside the functions, at run time.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from phonecheck.privacy.masking import mask_number
from phonecheck_airflow.conn_ids import NXCLOUD_CONN_ID, WAREHOUSE_CONN_ID

log = logging.getLogger(__name__)

NUMBER_CHECK_TABLE = "telco.nxcloud_number_check"


def _run_ids(context: Any) -> tuple[str, str]:
    return context["dag"].dag_id, context["run_id"]


def _connect(warehouse_conn_id: str):
    from phonecheck.warehouse import connect
    from phonecheck_airflow.warehouse import warehouse_dsn

    return connect(warehouse_dsn(warehouse_conn_id))


def _fail_on_final_vendor_error(exc: Exception) -> None:
    """Vendor refusals a retry cannot fix fail the task without retrying."""
    from phonecheck.nxcloud.errors import NxCloudError, NxCloudTransientError

    if isinstance(exc, NxCloudError) and not isinstance(exc, NxCloudTransientError):
        raise AirflowFailException(str(exc)) from None


def dr_url() -> str | None:
    """The receiver URL NXCLOUD pushes results to (None = results from the query API only)."""
    from phonecheck.webhook_urls import NXCLOUD_NUMBER_CHECK
    from phonecheck_airflow.webhooks import receiver_url

    return receiver_url(NXCLOUD_NUMBER_CHECK)


def _client(nxcloud_conn_id: str, warehouse_conn_id: str):
    """The NXCLOUD client, its query calls spaced by the per-access-key limiter in the warehouse."""
    from phonecheck_airflow.hooks.nxcloud import NxCloudHook

    return NxCloudHook(nxcloud_conn_id, warehouse_conn_id=warehouse_conn_id).get_client()


def _query_batches(client: Any, conn: Any, lookups: Any, *, totals: Any, dag_id: str, run_id: str):
    """The one query-API loop (:func:`phonecheck.nxcloud.sync.query_batches`); refusals a
    retry cannot fix (credentials, permissions, bad requests other than code 88) fail the task
    without retrying, the rest never fail a run on their own (docs/vendors/nxcloud.md)."""
    from phonecheck.nxcloud.sync import query_batches

    batches = query_batches(client, conn, lookups, totals=totals, dag_id=dag_id, run_id=run_id)
    while True:
        try:
            yield next(batches)
        except StopIteration:
            return
        except Exception as exc:
            _fail_on_final_vendor_error(exc)
            raise


# ---- on demand ---------------------------------------------------------------------------------


def prepare(
    params: dict[str, Any], context: Any, *, warehouse_conn_id: str = WAREHOUSE_CONN_ID
) -> dict[str, Any]:
    """Normalise offline, record rejects, drop fresh / in-flight numbers; the numbers stay in
    ``ops.run_number`` and only the run key and counts travel on (docs/getting-started.md)."""
    from phonecheck.enums import SUBMITTABLE_CHECK_LEVELS
    from phonecheck.intake import NXCLOUD
    from phonecheck_airflow.number_input import log_intake, prepare_run

    dag_id, run_id = _run_ids(context)
    level = SUBMITTABLE_CHECK_LEVELS[params["check_level"]]
    intake = prepare_run(
        vendor=NXCLOUD, params=params, dag_id=dag_id, run_id=run_id, check_level=level,
        warehouse_conn_id=warehouse_conn_id,
    )  # fmt: skip
    if intake is None:
        raise AirflowFailException(
            "no numbers given: paste one number per line into 'numbers' or name a file in 'numbers_uri'"
        )
    log_intake(intake, "nxcloud")
    log.info(
        "SUMMARY nxcloud prepare: check level %d, freshness %s day(s)", level, params.get("freshness_days")
    )
    return {"run_key": intake.run_key, "check_level": level, "summary": intake.summary()}


def _chunks(
    prepared: dict[str, Any],
    params: dict[str, Any],
    context: Any,
    *,
    warehouse_conn_id: str = WAREHOUSE_CONN_ID,
):
    """The run's submit chunks, planned from its numbers in ``ops.run_number`` (the one place
    that reads the prepared numbers)."""
    from phonecheck.intake import prepared_numbers
    from phonecheck.nxcloud.planning import plan_chunks

    dag_id, run_id = _run_ids(context)
    with _connect(warehouse_conn_id) as conn:
        return plan_chunks(
            ((n.digits, n.region_code) for n in prepared_numbers(conn, prepared["run_key"])),
            dag_id=dag_id,
            run_id=run_id,
            check_level=prepared["check_level"],
            label=params.get("batch_label"),
            max_per_chunk=int(params.get("max_per_chunk") or 5000),
        )


def estimate(
    prepared: dict[str, Any],
    params: dict[str, Any],
    context: Any,
    *,
    warehouse_conn_id: str = WAREHOUSE_CONN_ID,
) -> dict[str, Any]:
    """Estimate the cost per country and level; stop with a clear message over budget."""
    from phonecheck.nxcloud.cost import (
        BudgetExceeded,
        NoPriceKnown,
        check_budget,
        estimate_cost,
        quote_prices,
    )
    from phonecheck.nxcloud.planning import counts_by_region

    chunks = _chunks(prepared, params, context)
    counts = counts_by_region(chunks)
    level = prepared["check_level"]
    with _connect(warehouse_conn_id) as conn:
        try:
            quotes = quote_prices(conn, list(counts), level)
        except NoPriceKnown as exc:
            raise AirflowFailException(str(exc)) from None
    cost = estimate_cost(counts, quotes, level)
    log.info("%s", cost.describe())
    budget, currency = params.get("budget"), params.get("budget_currency") or "USD"
    try:
        check_budget(cost, budget, currency)
    except BudgetExceeded as exc:
        raise AirflowFailException(str(exc)) from None
    totals = ", ".join(f"{a} {c}" for c, a in sorted(cost.totals.items())) or "0"
    log.info(
        "SUMMARY estimate: %d number(s) in %d chunk(s), estimated cost %s (budget %s %s)%s",
        sum(counts.values()), len(chunks), totals, budget, currency,
        " - dry run: nothing will be submitted" if params.get("dry_run") else "",
    )  # fmt: skip
    return cost.as_dict()


def submit(
    prepared: dict[str, Any],
    cost: dict[str, Any],
    params: dict[str, Any],
    context: Any,
    *,
    nxcloud_conn_id: str = NXCLOUD_CONN_ID,
    warehouse_conn_id: str = WAREHOUSE_CONN_ID,
) -> dict[str, Any]:
    """Submit every chunk at most once (``phonecheck.nxcloud.submissions``); dry run stops here."""
    from decimal import Decimal

    from phonecheck.nxcloud.submissions import submit_chunk
    from phonecheck.webhook_urls import redact

    chunks = _chunks(prepared, params, context)
    if params.get("dry_run"):
        raise AirflowSkipException(
            f"dry run: {sum(c.size for c in chunks)} number(s) in {len(chunks)} chunk(s) would be submitted, "
            f"estimated {cost.get('totals')}; nothing was sent"
        )
    dag_id, run_id = _run_ids(context)
    prices = {
        line["region_code"]: (Decimal(line["price"]), line["currency"]) for line in cost.get("lines", [])
    }
    url = dr_url()
    log.info("drUrl: %s", redact(url) if url else "none (results via the query API only)")
    client = _client(nxcloud_conn_id, warehouse_conn_id)
    dag_run = context.get("dag_run")
    submitted_by = getattr(dag_run, "triggering_user_name", None)
    run_params = {
        k: params.get(k) for k in ("batch_label", "check_level", "default_region", "freshness_days", "budget")
    }
    outcomes = []
    with _connect(warehouse_conn_id) as conn:
        for i, chunk in enumerate(chunks, start=1):
            price, currency = prices.get(chunk.region_code, (None, None))
            try:
                outcome = submit_chunk(
                    conn,
                    client,
                    chunk,
                    dr_url=url,
                    estimated_cost=(price * chunk.size) if price is not None else None,
                    currency=currency,
                    params=run_params,
                    dag_id=dag_id,
                    run_id=run_id,
                    submitted_by=submitted_by,
                )
            except Exception as exc:
                _fail_on_final_vendor_error(exc)
                raise
            outcomes.append(outcome)
            log.info(
                "chunk %d/%d %s (%s, %d numbers): %s", i, len(chunks), chunk.batch_no, chunk.region_code,
                chunk.size, outcome.status,
            )  # fmt: skip
    new = [o for o in outcomes if o.status == "submitted"]
    log.info(
        "SUMMARY submit: %d chunk(s), %d number(s) submitted now, %d chunk(s) already submitted earlier, "
        "%d recovered after a lost answer, %d refused by the vendor at submit, %d submit call(s) incl. retries, "
        "%d query call(s)",
        len(outcomes), sum(o.phone_count for o in new), sum(o.status == "already_submitted" for o in outcomes),
        sum(o.status == "recovered" for o in outcomes), sum(o.refused for o in outcomes),
        client.api_calls["submit"], client.api_calls["query"],
    )  # fmt: skip
    return {
        "run_key": prepared["run_key"],
        "batches": len(outcomes),
        "submitted": sum(o.phone_count for o in outcomes),
        "submitted_now": sum(o.phone_count for o in new),
        "already_submitted": sum(o.status == "already_submitted" for o in outcomes),
        "recovered": sum(o.status == "recovered" for o in outcomes),
        "refused": sum(o.refused for o in outcomes),
    }


def _run_key(handed: dict[str, Any], context: Any) -> str:
    """The run key handed on by the previous task; this run's when it carries none."""
    return handed.get("run_key") or "/".join(_run_ids(context))


def reconcile(
    submitted: dict[str, Any],
    context: Any,
    *,
    nxcloud_conn_id: str = NXCLOUD_CONN_ID,
    warehouse_conn_id: str = WAREHOUSE_CONN_ID,
) -> dict[str, Any]:
    """Every page of the query API for each batch of the run (read from the warehouse by its
    run key), stored and upserted; reports pushes that never arrived.

    The vendor does not say in which timezone its ``date`` is: each batch is looked up on its
    candidate dates (:func:`phonecheck.nxcloud.client.candidate_dates`, the configured timezone
    first) until every number we expect has a row, so a batch is found whichever way the vendor
    dates it, and a batch away from a day boundary costs one date's pages only.
    """
    from phonecheck.nxcloud.client import candidate_dates
    from phonecheck.nxcloud.results import count_results, missing_results
    from phonecheck.nxcloud.submissions import expected_listings, run_batches
    from phonecheck.nxcloud.sync import BatchLookup, QueryTotals

    dag_id, run_id = _run_ids(context)
    run_key = _run_key(submitted, context)
    client = _client(nxcloud_conn_id, warehouse_conn_id)
    totals = QueryTotals()
    never_pushed: list[tuple[str, str]] = []  # the first few, for the log
    with _connect(warehouse_conn_id) as conn:
        batch_nos = run_batches(conn, run_key)
        expected = expected_listings(conn, batch_nos)
        tz = client.settings.query_timezone
        lookups = (
            BatchLookup(
                batch_no,
                candidate_dates(expected[batch_no][0], tz),
                expected=expected[batch_no][1],
            )
            for batch_no in batch_nos
        )
        for i, batch in enumerate(
            _query_batches(client, conn, lookups, totals=totals, dag_id=dag_id, run_id=run_id), start=1
        ):
            never_pushed.extend(batch.never_pushed[: max(0, 20 - len(never_pushed))])
            log.info("reconciled batch %d/%d %s: %d/%d number(s) listed", i, len(batch_nos), batch.batch_no,
                     len(batch.listed), expected[batch.batch_no][1])  # fmt: skip
        count = count_results(conn, batch_nos)
        still_missing = missing_results(conn, batch_nos, limit=20)
    for batch_no, phone in never_pushed:
        log.warning(
            "no push ever arrived for %s / %s (result taken from the query API)", batch_no, mask_number(phone)
        )
    for batch_no, phone in still_missing:
        log.warning("no result at all yet for %s / %s", batch_no, mask_number(phone))
    log.info(
        "SUMMARY reconcile: %d batch(es), %d query row(s) on %d page(s) (each kept in raw.vendor_answer, %d "
        "unreadable row(s)) in %d query call(s) (%d refused for their rate and retried, %d lookup(s) cut short "
        "by a refusal); %d push(es) never arrived; %d number(s) still without any result",
        len(batch_nos), totals.rows, totals.pages, totals.unreadable, client.api_calls["query"],
        client.rate_limited["query"], totals.incomplete, totals.never_pushed, count.missing,
    )  # fmt: skip
    return {
        "run_key": run_key,
        "batches": len(batch_nos),
        "query_rows": totals.rows,
        "pages": totals.pages,
        "inserted": totals.inserted,
        "updated": totals.updated,
        "unreadable": totals.unreadable,
        "incomplete": totals.incomplete,
        "api_calls": client.api_calls["query"],
        "pushes_never_arrived": totals.never_pushed,
        "still_missing": count.missing,
    }


def load(
    prepared: dict[str, Any],
    submitted: dict[str, Any],
    reconciled: dict[str, Any],
    context: Any,
    *,
    warehouse_conn_id: str = WAREHOUSE_CONN_ID,
) -> dict[str, Any]:
    """Upsert the pushes of the run's batches (read by run key) from the inbox; returns the run
    key and counts (the next tasks read the batches from the warehouse too)."""
    from phonecheck.nxcloud.results import count_results, load_pushes, mark_complete
    from phonecheck.nxcloud.submissions import run_batches

    run_key = _run_key(submitted, context)
    with _connect(warehouse_conn_id) as conn:
        batch_nos = run_batches(conn, run_key)
        pushes = load_pushes(conn, batch_nos)
        completed = mark_complete(conn, batch_nos)
        count = count_results(conn, batch_nos)
        rows, costs = 0, {}
        for currency, n, amount in conn.execute(
            "SELECT currency, count(*), sum(price) FROM telco.nxcloud_number_check WHERE batch_no = ANY(%s) "
            "GROUP BY currency ORDER BY currency NULLS LAST",
            (batch_nos,),
        ):
            rows += n
            if currency is not None:
                costs[currency] = str(amount)
    s = prepared.get("summary", {})
    log.info(
        "loaded %d push row(s) (%d new, %d updated, %d unreadable); %d/%d batch(es) complete",
        pushes.rows, pushes.inserted, pushes.updated, pushes.unreadable, len(completed), len(batch_nos),
    )  # fmt: skip
    log.info(
        "SUMMARY run: numbers in %s, rejected offline %s, skipped fresh %s, submitted %d, results %d/%d "
        "(%d rows in %s), cost %s",
        s.get("received"), s.get("rejected_offline"), s.get("skipped_fresh"), submitted.get("submitted", 0),
        count.results, count.expected, rows, NUMBER_CHECK_TABLE,
        ", ".join(f"{a} {c}" for c, a in costs.items()) or "0",
    )  # fmt: skip
    return {
        "run_key": run_key,
        "batches": len(batch_nos),
        "complete_batches": len(completed),
        "rows": rows,
        "results": count.results,
        "expected": count.expected,
    }


def validate(
    loaded: dict[str, Any], context: Any, *, warehouse_conn_id: str = WAREHOUSE_CONN_ID
) -> dict[str, Any]:
    """Great Expectations over the rows of the run's batches (read from the warehouse by run
    key, not from XCom; the same pattern as AccuAuth's validate)."""
    from phonecheck.nxcloud.submissions import run_batches
    from phonecheck_airflow.operators.quality import validate_loaded_rows

    run_key = _run_key(loaded, context)
    with _connect(warehouse_conn_id) as conn:
        batch_nos = run_batches(conn, run_key)
    result = validate_loaded_rows(
        NUMBER_CHECK_TABLE, "batch_no", batch_nos, warehouse_conn_id=warehouse_conn_id, context=context
    )
    return {"run_key": run_key, "batches": len(batch_nos), **result}


# ---- daily -------------------------------------------------------------------------------------


def plan_day(
    params: dict[str, Any],
    context: Any,
    *,
    nxcloud_conn_id: str = NXCLOUD_CONN_ID,
    warehouse_conn_id: str = WAREHOUSE_CONN_ID,
) -> dict[str, Any]:
    """The run's vendor date, refused when outside the 14-day window; how many batches it has
    (the sync reads them from the warehouse again: only the date and counts travel on)."""
    from datetime import date

    from phonecheck.nxcloud.daily import OutsideQueryWindow, check_query_window, day_batches, vendor_date_for

    client = _client(nxcloud_conn_id, warehouse_conn_id)
    tz = client.query_timezone
    if params.get("vendor_date"):
        day, why = date.fromisoformat(str(params["vendor_date"])), "the vendor_date param"
    elif context.get("data_interval_start") is not None:
        day, why = vendor_date_for(context["data_interval_start"], tz), "the data interval start"
    else:  # a manual run without a logical date: what a scheduled run at run_after would cover
        run_after = context["dag_run"].run_after
        day, why = vendor_date_for(run_after - timedelta(days=1), tz), "run_after - 1 day"
    with _connect(warehouse_conn_id) as conn:
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


def sync_day(
    plan: dict[str, Any],
    context: Any,
    *,
    nxcloud_conn_id: str = NXCLOUD_CONN_ID,
    warehouse_conn_id: str = WAREHOUSE_CONN_ID,
) -> dict[str, Any]:
    """All pages of the query API for each batch of the day, upserted; missing pushes reported
    (one ``ops.query_sync_report`` row per batch, with this run's dag_id and run_id)."""
    from datetime import date

    from phonecheck.nxcloud.daily import day_batches, write_sync_report
    from phonecheck.nxcloud.results import mark_complete
    from phonecheck.nxcloud.sync import BatchLookup, QueryTotals

    dag_id, run_id = _run_ids(context)
    day = date.fromisoformat(plan["vendor_date"])
    client = _client(nxcloud_conn_id, warehouse_conn_id)
    totals = QueryTotals()
    loaded = 0
    with _connect(warehouse_conn_id) as conn:
        native, near = day_batches(conn, day, client.query_timezone)
        batches = native + near
        lookups = (BatchLookup(batch_no, [day]) for batch_no in batches)
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
            )
            loaded += batch.rows > 0
            for _, phone in batch.never_pushed[:20]:
                log.warning(
                    "batch %s: the push for %s never arrived (query row loaded instead)",
                    batch.batch_no, mask_number(phone),
                )  # fmt: skip
            log.info(
                "batch %d/%d %s on %s: %d row(s), %d page(s), %d call(s), %d push(es) never arrived%s",
                i, len(batches), batch.batch_no, day, batch.rows, batch.pages, batch.api_calls,
                len(batch.never_pushed), f"; cut short: {batch.stopped}" if batch.stopped else "",
            )  # fmt: skip
        # A batch whose on-demand run gave up waiting (or never reconciled) is complete once the
        # sync has listed every number: it no longer counts as waiting (Phone checks page).
        completed = mark_complete(conn, batches)
    log.info(
        "SUMMARY sync %s: %d batch(es) (+%d near the day boundary), %d query row(s) (%d new, %d updated) on %d "
        "page(s) kept in raw.vendor_answer, %d query call(s) (%d refused for their rate and retried, %d lookup(s) "
        "cut short by a refusal), %d push(es) never arrived (ops.query_sync_report), %d batch(es) now complete",
        day, len(native), len(near), totals.rows, totals.inserted, totals.updated,
        totals.pages, client.api_calls["query"], client.rate_limited["query"], totals.incomplete,
        totals.never_pushed, len(completed),
    )  # fmt: skip
    return {
        "vendor_date": day.isoformat(),
        "batches": len(batches),
        "loaded_batches": loaded,
        "query_rows": totals.rows,
        "pushes_never_arrived": totals.never_pushed,
        "completed_batches": len(completed),
    }


def validate_day(
    synced: dict[str, Any], context: Any, *, warehouse_conn_id: str = WAREHOUSE_CONN_ID
) -> dict[str, Any]:
    """Great Expectations over the rows of the batches this sync run loaded (read from its
    ``ops.query_sync_report`` rows, not from XCom; the pattern of :func:`validate`)."""
    from datetime import date

    from phonecheck.nxcloud.daily import synced_batches
    from phonecheck_airflow.operators.quality import validate_loaded_rows

    dag_id, run_id = _run_ids(context)
    with _connect(warehouse_conn_id) as conn:
        batch_nos = synced_batches(
            conn, day=date.fromisoformat(synced["vendor_date"]), dag_id=dag_id, run_id=run_id
        )
    result = validate_loaded_rows(
        NUMBER_CHECK_TABLE, "batch_no", batch_nos, warehouse_conn_id=warehouse_conn_id, context=context
    )
    return {"vendor_date": synced.get("vendor_date"), "batches": len(batch_nos), **result}
