"""The steps of the NXCLOUD number-check DAGs, as functions the DAG tasks call.

Each step takes what the previous one returned (XCom-sized dicts), does its work through
:class:`~phonecheck.nxcloud.client.NxCloudClient` (from the hook) and the warehouse, logs progress and ONE
summary line, and turns "stop here" outcomes into Airflow exceptions: over budget or a vendor
refusal a retry cannot fix → :class:`AirflowFailException`; dry run → :class:`AirflowSkipException`.
Heavy imports (psycopg, phonenumbers, requests) happen inside the functions, at run time.
Signature and connections as in :mod:`phonecheck_airflow.tasks.common` (the AccuAuth steps
follow the same); the chunk size and the wait's tuning come from the connection's extras
(:mod:`phonecheck_airflow.tasks.settings`).
"""

from __future__ import annotations

import logging
from typing import Any

from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from phonecheck.privacy.masking import mask_number
from phonecheck_airflow.tasks.common import CONNS, ConnIds, connect, run_ids
from phonecheck_airflow.tasks.settings import run_settings

log = logging.getLogger(__name__)

NUMBER_CHECK_TABLE = "telco.nxcloud_number_check"


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


def _client(conns: ConnIds):
    """The NXCLOUD client, its query calls spaced by the per-access-key limiter in the warehouse."""
    from phonecheck_airflow.hooks.nxcloud import NxCloudHook

    return NxCloudHook(conns.nxcloud, warehouse_conn_id=conns.warehouse).get_client()


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


def prepare(params: dict[str, Any], context: Any, *, conns: ConnIds = CONNS) -> dict[str, Any]:
    """Normalise offline, record rejects, drop fresh / in-flight numbers; the numbers stay in
    ``ops.run_number`` and only the run key and counts travel on (docs/getting-started.md)."""
    from phonecheck.enums import SUBMITTABLE_CHECK_LEVELS
    from phonecheck.intake import NXCLOUD
    from phonecheck_airflow.number_input import log_intake, prepare_run

    dag_id, run_id = run_ids(context)
    level = SUBMITTABLE_CHECK_LEVELS[params["check_level"]]
    intake = prepare_run(
        vendor=NXCLOUD, params=params, dag_id=dag_id, run_id=run_id, check_level=level,
        warehouse_conn_id=conns.warehouse,
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


def _chunks(prepared: dict[str, Any], params: dict[str, Any], context: Any, conns: ConnIds):
    """The run's submit chunks, planned from its numbers in ``ops.run_number`` (the one place
    that reads the prepared numbers); the chunk size is the account's (connection extra
    ``max_per_chunk``, at most the vendor's 5,000)."""
    from phonecheck.intake import prepared_numbers
    from phonecheck.nxcloud.planning import plan_chunks

    dag_id, run_id = run_ids(context)
    max_per_chunk = run_settings("nxcloud", params, conns.nxcloud)["max_per_chunk"]
    with connect(conns.warehouse) as conn:
        return plan_chunks(
            ((n.digits, n.region_code) for n in prepared_numbers(conn, prepared["run_key"])),
            dag_id=dag_id,
            run_id=run_id,
            check_level=prepared["check_level"],
            label=params.get("batch_label"),
            max_per_chunk=max_per_chunk,
        )


def estimate(
    prepared: dict[str, Any], params: dict[str, Any], context: Any, *, conns: ConnIds = CONNS
) -> dict:
    """Estimate the cost per country and level; stop with a clear message over budget."""
    from phonecheck.nxcloud.cost import (
        BudgetExceeded,
        NoPriceKnown,
        check_budget,
        estimate_cost,
        quote_prices,
    )
    from phonecheck.nxcloud.planning import counts_by_region

    chunks = _chunks(prepared, params, context, conns)
    counts = counts_by_region(chunks)
    level = prepared["check_level"]
    with connect(conns.warehouse) as conn:
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
    conns: ConnIds = CONNS,
) -> dict[str, Any]:
    """Submit every chunk at most once (``phonecheck.nxcloud.submissions``); dry run stops here.
    Never waits: a chunk whose answer was lost is counted ``in_doubt`` and settled by the
    deferrable ``settle_in_doubt`` task that follows. Hands on the run key, counts and the
    wait's tuning (``wait``: what the DAG templates into the in-doubt settler and the wait)."""
    from decimal import Decimal

    from phonecheck.nxcloud.submissions import submit_chunk
    from phonecheck.webhook_urls import redact

    chunks = _chunks(prepared, params, context, conns)
    if params.get("dry_run"):
        raise AirflowSkipException(
            f"dry run: {sum(c.size for c in chunks)} number(s) in {len(chunks)} chunk(s) would be submitted, "
            f"estimated {cost.get('totals')}; nothing was sent"
        )
    dag_id, run_id = run_ids(context)
    settings = run_settings("nxcloud", params, conns.nxcloud)
    prices = {
        line["region_code"]: (Decimal(line["price"]), line["currency"]) for line in cost.get("lines", [])
    }
    url = dr_url()
    log.info("drUrl: %s", redact(url) if url else "none (results via the query API only)")
    client = _client(conns)
    dag_run = context.get("dag_run")
    submitted_by = getattr(dag_run, "triggering_user_name", None)
    run_params = {
        k: params.get(k) for k in ("batch_label", "check_level", "default_region", "freshness_days", "budget")
    }
    outcomes = []
    with connect(conns.warehouse) as conn:
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
    in_doubt = sum(o.status == "in_doubt" for o in outcomes)
    log.info(
        "SUMMARY submit: %d chunk(s), %d number(s) submitted now, %d chunk(s) already submitted earlier, "
        "%d chunk(s) in doubt (answer lost: settled by settle_in_doubt, not sent again here), %d refused by the "
        "vendor at submit, %d submit call(s) incl. retries",
        len(outcomes), sum(o.phone_count for o in new), sum(o.status == "already_submitted" for o in outcomes),
        in_doubt, sum(o.refused for o in outcomes), client.api_calls["submit"],
    )  # fmt: skip
    return {
        "run_key": prepared["run_key"],
        "batches": len(outcomes),
        "submitted": sum(o.phone_count for o in outcomes),
        "submitted_now": sum(o.phone_count for o in new),
        "already_submitted": sum(o.status == "already_submitted" for o in outcomes),
        "in_doubt": in_doubt,
        "refused": sum(o.refused for o in outcomes),
        "wait": {
            "wait_poll_seconds": settings["wait_poll_seconds"],
            "wait_timeout_s": settings["wait_timeout_minutes"] * 60,
        },
    }


def _run_key(handed: dict[str, Any], context: Any) -> str:
    """The run key handed on by the previous task; this run's when it carries none."""
    return handed.get("run_key") or "/".join(run_ids(context))


def reconcile(submitted: dict[str, Any], context: Any, *, conns: ConnIds = CONNS) -> dict[str, Any]:
    """The query API as the fallback for what the pushes did not bring: only the run's batches
    (read from the warehouse by its run key) that still have numbers without a result are
    looked up, each only until those numbers are listed; pages stored and upserted.

    A batch whose pushes all arrived costs no call (:mod:`phonecheck.nxcloud.sync`). The vendor
    does not say in which timezone its ``date`` is: a batch is looked up on its candidate dates
    (:func:`phonecheck.nxcloud.client.candidate_dates`, the configured timezone first) until its
    missing numbers are listed, so it is found whichever way the vendor dates it.
    """
    from phonecheck.nxcloud.client import candidate_dates
    from phonecheck.nxcloud.results import count_results, missing_results
    from phonecheck.nxcloud.submissions import expected_listings, run_batches
    from phonecheck.nxcloud.sync import QueryTotals, lookups_for

    dag_id, run_id = run_ids(context)
    run_key = _run_key(submitted, context)
    client = _client(conns)
    totals = QueryTotals()
    never_pushed: list[tuple[str, str]] = []  # the first few, for the log
    with connect(conns.warehouse) as conn:
        batch_nos = run_batches(conn, run_key)
        expected = expected_listings(conn, batch_nos)
        tz = client.settings.query_timezone
        lookups = lookups_for(conn, batch_nos, lambda batch_no: candidate_dates(expected[batch_no][0], tz))
        for i, batch in enumerate(
            _query_batches(client, conn, lookups, totals=totals, dag_id=dag_id, run_id=run_id), start=1
        ):
            never_pushed.extend(batch.never_pushed[: max(0, 20 - len(never_pushed))])
            if batch.api_calls or batch.missing:
                log.info(
                    "reconciled batch %d/%d %s: %s number(s) without a result, %d listed on %d page(s) in %d "
                    "call(s), %s still missing", i, len(batch_nos), batch.batch_no, batch.missing,
                    len(batch.listed), batch.pages, batch.api_calls, batch.still_missing,
                )  # fmt: skip
        count = count_results(conn, batch_nos)
        still_missing = missing_results(conn, batch_nos, limit=20)
    for batch_no, phone in never_pushed:
        log.warning(
            "no push ever arrived for %s / %s (result taken from the query API)", batch_no, mask_number(phone)
        )
    for batch_no, phone in still_missing:
        log.warning("no result at all yet for %s / %s", batch_no, mask_number(phone))
    log.info(
        "SUMMARY reconcile: %d batch(es), %d complete from their pushes (no query call), %d looked up for %d "
        "number(s) without a result (%d found); %d query call(s) (%d refused for their rate and retried, %d "
        "lookup(s) cut short by a refusal), %d query row(s) on %d page(s) (each kept in raw.vendor_answer, %d "
        "unreadable row(s)); %d push(es) never arrived; %d number(s) still without any result",
        len(batch_nos), totals.skipped_complete, totals.batches - totals.skipped_complete, totals.missing,
        totals.found, client.api_calls["query"], client.rate_limited["query"], totals.incomplete, totals.rows,
        totals.pages, totals.unreadable, totals.never_pushed, count.missing,
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
        # why the calls were made: only for numbers the pushes did not bring
        "query_calls": {"missing_numbers": client.api_calls["query"]},
        "batches_complete_from_pushes": totals.skipped_complete,
        "batches_queried": totals.queried_batches,
        "numbers_missing_before_query": totals.missing,
        "numbers_found_by_query": totals.found,
        "pushes_never_arrived": totals.never_pushed,
        "still_missing": count.missing,
    }


def _run_query_calls(submitted: dict[str, Any], reconciled: dict[str, Any]) -> dict[str, int]:
    """The run's query calls by why they were made: numbers the pushes did not bring
    (``reconcile``) and in-doubt probes (when the submit step reports them)."""
    calls = {"missing_numbers": int((reconciled.get("query_calls") or {}).get("missing_numbers", 0))}
    probes = submitted.get("query_calls")
    if isinstance(probes, dict):
        calls["in_doubt_probes"] = int(probes.get("in_doubt_probes", 0))
    elif isinstance(probes, int):
        calls["in_doubt_probes"] = probes
    return calls


def load(prepared: dict, submitted: dict, reconciled: dict, context: Any, *, conns: ConnIds = CONNS) -> dict:
    """Upsert the pushes of the run's batches (read by run key) from the inbox; returns the run
    key and counts (the next tasks read the batches from the warehouse too)."""
    from phonecheck.nxcloud.results import count_results, load_pushes, mark_complete
    from phonecheck.nxcloud.submissions import run_batches, run_costs

    run_key = _run_key(submitted, context)
    with connect(conns.warehouse) as conn:
        batch_nos = run_batches(conn, run_key)
        pushes = load_pushes(conn, batch_nos)
        completed = mark_complete(conn, batch_nos)
        count = count_results(conn, batch_nos)
        rows, costs = run_costs(conn, batch_nos)
    s = prepared.get("summary", {})
    log.info(
        "loaded %d push row(s) (%d new, %d updated, %d unreadable); %d/%d batch(es) complete",
        pushes.rows, pushes.inserted, pushes.updated, pushes.unreadable, len(completed), len(batch_nos),
    )  # fmt: skip
    query_calls = _run_query_calls(submitted, reconciled)
    log.info(
        "SUMMARY run: numbers in %s, rejected offline %s, skipped fresh %s, submitted %d, results %d/%d "
        "(%d rows in %s), cost %s; %d query call(s): %s",
        s.get("received"), s.get("rejected_offline"), s.get("skipped_fresh"), submitted.get("submitted", 0),
        count.results, count.expected, rows, NUMBER_CHECK_TABLE,
        ", ".join(f"{a} {c}" for c, a in costs.items()) or "0", sum(query_calls.values()),
        ", ".join(f"{n} for {why.replace('_', ' ')}" for why, n in query_calls.items()) or "none",
    )  # fmt: skip
    return {
        "run_key": run_key,
        "query_calls": query_calls,
        "batches": len(batch_nos),
        "complete_batches": len(completed),
        "rows": rows,
        "results": count.results,
        "expected": count.expected,
    }


def validate(loaded: dict[str, Any], context: Any, *, conns: ConnIds = CONNS) -> dict[str, Any]:
    """Great Expectations over the rows of the run's batches (read from the warehouse by run
    key, not from XCom; the same pattern as AccuAuth's validate)."""
    from phonecheck.nxcloud.submissions import run_batches
    from phonecheck_airflow.operators.quality import validate_loaded_rows

    run_key = _run_key(loaded, context)
    with connect(conns.warehouse) as conn:
        batch_nos = run_batches(conn, run_key)
    result = validate_loaded_rows(
        NUMBER_CHECK_TABLE, "batch_no", batch_nos, warehouse_conn_id=conns.warehouse, context=context
    )
    return {"run_key": run_key, "batches": len(batch_nos), **result}
