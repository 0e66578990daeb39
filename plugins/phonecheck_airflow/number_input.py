"""The numbers of an on-demand run, from the trigger form and/or a file, into the warehouse.

Both vendors' ``prepare`` tasks call :func:`prepare_run`: it reads the pasted ``numbers`` field
and the file named by ``numbers_uri`` (through Airflow's :class:`~airflow.sdk.ObjectStoragePath`:
``file://``, and ``s3://``, ``gs://``... with their providers installed and
``numbers_uri_conn_id``), streams every line through :func:`phonecheck.intake.prepare_numbers`
and returns counts. The numbers themselves stay in ``ops.run_number``; see
docs/getting-started.md "Big lists".

A ``file://`` URI reads the worker's disk, so only paths under the prefixes of
``PHONECHECK_NUMBERS_URI_PREFIXES`` (comma-separated; default ``$PHONECHECK_LOCAL_DIR/inputs/``)
are read: a form user must not be able to load, say, ``/etc/passwd`` into the warehouse.
Remote storage is governed by the credentials of its connection.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowFailException

from phonecheck.privacy.masking import mask_number
from phonecheck_airflow.conn_ids import WAREHOUSE_CONN_ID

if TYPE_CHECKING:
    from phonecheck.intake import IntakeSummary

log = logging.getLogger(__name__)

URI_PREFIXES_ENV = "PHONECHECK_NUMBERS_URI_PREFIXES"
#: Names the Airflow that ran a run, recorded in ops.run_intake.origin (make demo: "make demo"):
#: the Phone checks page of another Airflow on the same warehouse labels the run with it.
RUN_ORIGIN_ENV = "PHONECHECK_RUN_ORIGIN"


def allowed_file_prefixes() -> list[Path]:
    configured = os.environ.get(URI_PREFIXES_ENV)
    if configured:
        return [Path(p.strip().removeprefix("file://")).resolve() for p in configured.split(",") if p.strip()]
    from phonecheck.warehouse import local_dir

    return [(local_dir() / "inputs").resolve()]


def check_allowed(path: Any, param: str = "numbers_uri") -> None:
    """Refuse a local ``path`` outside :func:`allowed_file_prefixes`, naming the allowed folders."""
    if path.protocol not in ("file", "local"):
        return
    resolved = Path(path.path).resolve()
    prefixes = allowed_file_prefixes()
    if not any(resolved == p or p in resolved.parents for p in prefixes):
        raise AirflowFailException(
            f"{param} {resolved} is outside the folders this deployment reads and writes local files in "
            f"({', '.join(map(str, prefixes))}; set {URI_PREFIXES_ENV} to change them)"
        )


@contextlib.contextmanager
def numbers_from_uri(
    uri: str, *, fmt: str | None, column: str | None, conn_id: str | None
) -> Iterator[Iterator[str]]:
    """The entries of the file at ``uri``, streamed; clear task failures for missing files."""
    from airflow.sdk import ObjectStoragePath

    from phonecheck.number_source import NumberSourceError, describe_uri, read_numbers

    path = ObjectStoragePath(uri, conn_id=conn_id) if conn_id else ObjectStoragePath(uri)
    check_allowed(path)
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        raise AirflowFailException(f"numbers_uri {describe_uri(uri)}: no such file") from None
    with handle:
        try:
            yield read_numbers(handle, fmt=fmt, column=column, name=path.name)
        except NumberSourceError as exc:
            raise AirflowFailException(str(exc)) from None


@contextlib.contextmanager
def run_entries(params: dict[str, Any]) -> Iterator[Iterator[str]]:
    """The run's input lines in the order prepare reads them: the pasted field, then the file."""
    from phonecheck.number_source import describe_uri
    from phonecheck.numbers import split_input

    entries: Iterator[str] = iter(split_input(params.get("numbers") or ""))
    uri = (params.get("numbers_uri") or "").strip()
    if not uri:
        yield entries
        return
    log.info("reading numbers from %s", describe_uri(uri))
    with numbers_from_uri(
        uri,
        fmt=params.get("numbers_format"),
        column=params.get("numbers_column"),
        conn_id=params.get("numbers_uri_conn_id") or None,
    ) as from_file:
        yield itertools.chain(entries, from_file)


def prepare_run(
    *,
    vendor: str,
    params: dict[str, Any],
    dag_id: str,
    run_id: str,
    check_level: int | None = None,
    warehouse_conn_id: str = WAREHOUSE_CONN_ID,
) -> IntakeSummary | None:
    """Normalise the run's input into ``ops.run_number``; None when no input was given at all.
    A results file that could not be written (format, folder) fails the run here, before any spend."""
    from phonecheck.intake import RunContext, prepare_numbers
    from phonecheck.number_source import describe_uri
    from phonecheck.numbers import split_input
    from phonecheck.warehouse import connect
    from phonecheck_airflow.results_output import check_results_target
    from phonecheck_airflow.warehouse import warehouse_dsn

    check_results_target(params)
    pasted = split_input(params.get("numbers") or "")
    uri = (params.get("numbers_uri") or "").strip()
    if not pasted and not uri:
        return None
    region = (params.get("default_region") or "").strip().upper() or None
    sources = (["form"] if pasted else []) + ([describe_uri(uri)] if uri else [])
    with contextlib.ExitStack() as stack:
        entries = stack.enter_context(run_entries(params))
        conn = stack.enter_context(connect(warehouse_dsn(warehouse_conn_id)))
        return prepare_numbers(
            conn,
            vendor=vendor,
            entries=entries,
            default_region=region,
            freshness_days=int(params.get("freshness_days") or 0),
            check_level=check_level,
            ctx=RunContext(dag_id=dag_id, run_id=run_id),
            allow_vanity=bool(params.get("allow_vanity")),
            source=" + ".join(sources),
            origin=os.environ.get(RUN_ORIGIN_ENV) or None,
        )


def log_intake(intake: IntakeSummary, vendor_label: str) -> None:
    """Short lines, one fact each (the UI log panel cuts long ones)."""
    from phonecheck.numbers import storable

    for rejected in intake.rejected_sample:
        log.info("rejected offline: %s: %s", mask_number(storable(rejected.raw)), rejected.reason)
    for reason, count in intake.reasons.most_common(10):
        log.info("rejected %d x %s", count, reason)
    log.info("SUMMARY %s prepare: received %d", vendor_label, intake.received)
    log.info("SUMMARY %s prepare: rejected %d (ops.rejected_number)", vendor_label, intake.rejected)
    log.info("SUMMARY %s prepare: duplicates %d", vendor_label, intake.duplicates)
    if intake.rewritten:
        log.info("SUMMARY %s prepare: rewritten from a legacy form %d (ops.run_number.rewritten)",
                 vendor_label, intake.rewritten)  # fmt: skip
    log.info("SUMMARY %s prepare: skipped fresh %d", vendor_label, intake.skipped_fresh)
    log.info("SUMMARY %s prepare: to check %d in %d region(s)", vendor_label, intake.to_check, intake.regions)
