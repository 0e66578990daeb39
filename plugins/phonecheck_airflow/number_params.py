"""The trigger-form params for a run's numbers, the same in both on-demand DAGs.

A form keeps what a requester decides (numbers, level, budget, dry run, label, freshness,
results file) at its top level, at most 10 fields; how to read the numbers file and the approval
threshold sit in the collapsed :data:`ADVANCED` section. Vendor limits and tuning are not params
but connection extras (:mod:`phonecheck_airflow.tasks.settings`).

Light on purpose (DAG files import it at parse time): only ``airflow.sdk.Param``.
"""

from __future__ import annotations

import os
from pathlib import Path

from airflow.sdk import Param

#: The pasted field's schema limit. The form's editor slows down with size (5,000 pasted lines
#: froze it for a minute, 20,000 for good: docs/getting-started.md "Big lists"), so it stops at
#: about 1,000 numbers; bigger lists go through ``numbers_uri``.
NUMBERS_FIELD_MAX_CHARS = 20_000

#: The form section (collapsed in the trigger form) for what a requester rarely changes.
ADVANCED = "Advanced"


def input_folder() -> str:
    """The first folder local numbers files are read from (and results written to), for the form's
    examples: ``PHONECHECK_NUMBERS_URI_PREFIXES``, else ``$PHONECHECK_LOCAL_DIR/inputs/``, else
    ``.local/inputs/`` in the project's checkout (what ``number_input.allowed_file_prefixes``
    allows; computed here without its imports: DAG files parse light)."""
    configured = [
        p.strip() for p in os.environ.get("PHONECHECK_NUMBERS_URI_PREFIXES", "").split(",") if p.strip()
    ]
    if configured:
        return configured[0].removeprefix("file://").rstrip("/") + "/"
    local = os.environ.get("PHONECHECK_LOCAL_DIR") or str(Path(__file__).resolve().parents[2] / ".local")
    return str(Path(local) / "inputs") + "/"


def numbers_params(*, empty: str) -> dict[str, Param]:
    """``numbers`` (pasted), ``numbers_uri`` and ``results_uri`` at the top level; the file's
    column, format, storage connection and the vanity switch under :data:`ADVANCED`; ``empty``
    says what a run without any number does."""
    return {
        "numbers": Param(
            "",
            type="string",
            format="multiline",
            maxLength=NUMBERS_FIELD_MAX_CHARS,
            title="Numbers",
            description=f"One per line (commas and semicolons work too), with or without +country code. {empty} "
            "Up to about 1,000 numbers (20,000 characters); for more, use 'Numbers file'.",
        ),
        "numbers_uri": Param(
            None,
            type=["null", "string"],
            title="Numbers file",
            description=f"A CSV or text file with one number per line, e.g. file://{input_folder()}list.csv or "
            f"s3://bucket/list.csv (read in a stream; any size). Local files only under {input_folder()} "
            "(PHONECHECK_NUMBERS_URI_PREFIXES). See docs/getting-started.md.",
        ),
        "results_uri": Param(
            None,
            type=["null", "string"],
            title="Results file",
            description="When the run ends: one row per input line (.csv or .parquet), e.g. "
            f"file://{input_folder()}list.results.csv. Empty = beside the numbers file (list.results.csv); "
            "pasted numbers only: no file.",
        ),
        **numbers_file_params(section=ADVANCED),
    }


def numbers_file_params(*, section: str) -> dict[str, Param]:
    """The file's column, format and storage connection, and the vanity-number switch (form section ``section``)."""
    return {
        "numbers_column": Param(
            None, type=["null", "string"], section=section, title="CSV column",
            description="CSV only: header name or 1-based column number (empty = first column).",
        ),
        "numbers_format": Param(
            "auto", enum=["auto", "lines", "csv", "tsv"], section=section, title="Numbers file format",
            description="auto: .csv / .tsv by name, else one number per line.",
        ),
        "numbers_uri_conn_id": Param(
            None, type=["null", "string"], section=section, title="Numbers file connection",
            description="Airflow connection for the storage of numbers_uri (e.g. aws_default for s3://).",
        ),
        "allow_vanity": Param(
            False, type="boolean", section=section, title="Allow vanity numbers",
            description="Read letters as phone-keypad digits (1-800-FLOWERS). Off: lines with letters are rejected.",
        ),
    }  # fmt: skip


def approval_threshold_param(currency_param: str) -> dict[str, Param]:
    """The run's auto-approve threshold (:data:`ADVANCED`): it may lower the configured one, never raise it."""
    return {
        "approval_threshold": Param(
            None, type=["null", "number"], minimum=0, section=ADVANCED, title="Auto-approve up to",
            description=f"Above this estimate ({currency_param}) the run waits for an approver; empty = the "
            "configured threshold, which a value here may lower but never raise (docs/operations.md).",
        ),
    }  # fmt: skip
