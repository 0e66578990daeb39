"""The trigger-form params for a run's numbers, the same in both on-demand DAGs.

Light on purpose (DAG files import it at parse time): only ``airflow.sdk.Param``.
"""

from __future__ import annotations

from airflow.sdk import Param

#: The pasted field's schema limit. The form's editor slows down with size (5,000 pasted lines
#: froze it for a minute, 20,000 for good: docs/getting-started.md "Big lists"), so it stops at
#: about 1,000 numbers; bigger lists go through ``numbers_uri``.
NUMBERS_FIELD_MAX_CHARS = 20_000


def numbers_params(*, empty: str) -> dict[str, Param]:
    """``numbers`` (pasted), ``numbers_uri`` and ``numbers_column``; ``empty`` says what a run
    without any number does."""
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
            description="A CSV or text file with one number per line, e.g. file:///data/inputs/list.csv or "
            "s3://bucket/list.csv (read in a stream; any size). See docs/getting-started.md.",
        ),
        "numbers_column": Param(
            None,
            type=["null", "string"],
            title="CSV column",
            description="CSV only: header name or 1-based column number (empty = first column).",
        ),
    }


def numbers_file_params(*, section: str) -> dict[str, Param]:
    """The file's format and storage connection, and the vanity-number switch (form section ``section``)."""
    return {
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
