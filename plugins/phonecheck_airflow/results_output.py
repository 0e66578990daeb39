"""The results file of an on-demand run (``results_uri``), written when the run ends.

Where: the ``results_uri`` param (``file://``, ``s3://``... through Airflow's
:class:`~airflow.sdk.ObjectStoragePath`, with ``numbers_uri_conn_id`` as the storage
connection), else, for a run that read a file, beside it: ``list.csv`` → ``list.results.csv``.
A run from the pasted field only writes no file unless asked. The format follows the extension
(``.csv``, ``.parquet``); local paths obey the same allowed folders as ``numbers_uri``
(:func:`~phonecheck_airflow.number_input.check_allowed`). Both are checked by the prepare
step, before anything is spent.

What: :mod:`phonecheck.results_file`: one row per input line, in a stream.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from phonecheck_airflow.conn_ids import WAREHOUSE_CONN_ID

log = logging.getLogger(__name__)

RESULTS_SUFFIX = ".results.csv"


def results_target(params: dict[str, Any]) -> str | None:
    """The results URI of a run: the param, else beside the numbers file, else None."""
    explicit = (params.get("results_uri") or "").strip()
    if explicit:
        return explicit
    source = (params.get("numbers_uri") or "").strip()
    if not source:
        return None
    folder, _, name = source.rpartition("/")
    stem = name.rsplit(".", 1)[0] if "." in name else name
    return f"{folder}/{stem}{RESULTS_SUFFIX}"


def _path(uri: str, params: dict[str, Any]):
    from airflow.sdk import ObjectStoragePath

    conn_id = params.get("numbers_uri_conn_id") or None
    return ObjectStoragePath(uri, conn_id=conn_id) if conn_id else ObjectStoragePath(uri)


def check_results_target(params: dict[str, Any]) -> str | None:
    """Fail now (before any spend) when the results file could not be written as asked."""
    from phonecheck.results_file import ResultsFileError, results_format
    from phonecheck_airflow.number_input import check_allowed

    uri = results_target(params)
    if uri is None:
        return None
    try:
        results_format(uri)
    except ResultsFileError as exc:
        raise AirflowFailException(str(exc)) from None
    check_allowed(_path(uri, params), "results_uri")
    return uri


def write_run_results(
    vendor: str,
    params: dict[str, Any],
    context: Any,
    *,
    check_level: int | None = None,
    warehouse_conn_id: str = WAREHOUSE_CONN_ID,
) -> dict[str, Any]:
    """Write the run's results file (see the module docstring); skip when there is none to write."""
    from phonecheck.number_source import describe_uri
    from phonecheck.results_file import columns_for, result_rows, results_format, write_rows
    from phonecheck.warehouse import connect
    from phonecheck_airflow.number_input import run_entries
    from phonecheck_airflow.warehouse import warehouse_dsn

    uri = check_results_target(params)
    if uri is None:
        raise AirflowSkipException("no results file: the run read no file and results_uri is empty")
    run_key = f"{context['dag'].dag_id}/{context['run_id']}"
    dry_run = bool(params.get("dry_run"))
    with connect(warehouse_dsn(warehouse_conn_id)) as conn:
        if conn.execute("SELECT 1 FROM ops.run_intake WHERE run_key = %s", (run_key,)).fetchone() is None:
            raise AirflowSkipException("no results file: the run's prepare step did not finish")
        price_of = _price_of(conn, vendor, params, check_level) if dry_run else None
        path = _path(uri, params)
        if path.protocol in ("file", "local"):
            path.parent.mkdir(parents=True, exist_ok=True)
        fmt = results_format(uri)
        with run_entries(params) as entries, path.open("wb") as handle:
            rows = write_rows(
                handle,
                fmt,
                columns_for(vendor, dry_run=dry_run),
                result_rows(
                    conn,
                    vendor=vendor,
                    entries=entries,
                    run_key=run_key,
                    default_region=(params.get("default_region") or "").strip().upper() or None,
                    allow_vanity=bool(params.get("allow_vanity")),
                    check_level=check_level,
                    price_of=price_of,
                ),
            )
    log.info("SUMMARY results: %d row(s) (one per input line%s) written to %s", rows,
             ", the estimate per line: dry run" if dry_run else "", describe_uri(uri))  # fmt: skip
    return {"results_uri": describe_uri(uri), "rows": rows, "format": fmt}


def _price_of(conn: Any, vendor: str, params: dict[str, Any], check_level: int | None):
    """``region -> (price, currency)`` of one check, for a dry run's estimate per line."""
    if vendor != "nxcloud":  # AccuAuth answers carry no price: the run's unit_price param
        unit = (Decimal(str(params.get("unit_price") or 0)), params.get("currency") or "USD")
        return lambda _region: unit
    from phonecheck.nxcloud.cost import NoPriceKnown, quote_prices

    quotes: dict[str, tuple[Decimal, str] | None] = {}

    def price_of(region: str) -> tuple[Decimal, str] | None:
        if region not in quotes:
            try:
                quote = quote_prices(conn, [region], check_level)[region]
                quotes[region] = (quote.price, quote.currency)
            except NoPriceKnown:
                quotes[region] = None
        return quotes[region]

    return price_of
