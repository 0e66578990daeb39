"""Data quality: Great Expectations suites generated from :mod:`phonecheck.enums`, run over the
rows each pipeline just loaded, results in ``dq.validation_result``, Data Docs HTML on disk.

Entry point for pipelines::

    from phonecheck.quality import validate_rows
    summary = validate_rows(dsn, "telco.nxcloud_number_check", key_column="batch_no",
                            key_values=batch_numbers, context={"dag_id": ..., "task_id": ..., "run_id": ...})
    if not summary.success:
        raise SomeFailure(summary.describe())   # the rows stay in the table

Key columns that fit each table (any column of the table works; the suites are per table):

=============================  ===============================================================
table                          select the loaded rows by
=============================  ===============================================================
telco.nxcloud_number_check     ``batch_no`` (submit / query pipelines), ``raw_event_id`` (pushes)
telco.accuauth_phone_check     ``task_id``
telco.nxcloud_voice_receipt    ``raw_event_id`` (push processing) or ``message_id``
telco.nxcloud_call_record      ``raw_event_id`` (push processing) or ``record_id``
=============================  ===============================================================

Importing this package is cheap: pandas and Great Expectations load on the first validation.
"""

from phonecheck.quality.results import (
    DATA_DOCS_ENV,
    ExpectationOutcome,
    FailedExpectation,
    ValidationSummary,
    data_docs_dir,
    store_results,
)
from phonecheck.quality.runner import validate_frame, validate_records, validate_rows
from phonecheck.quality.suites import DEFAULT_KEY_COLUMN, SUITE_TABLES, Check, TableSuite, suite_for

__all__ = [
    "DATA_DOCS_ENV",
    "DEFAULT_KEY_COLUMN",
    "SUITE_TABLES",
    "Check",
    "ExpectationOutcome",
    "FailedExpectation",
    "TableSuite",
    "ValidationSummary",
    "data_docs_dir",
    "store_results",
    "suite_for",
    "validate_frame",
    "validate_records",
    "validate_rows",
]
