"""Great Expectations 1.x, imported lazily and quietly (airflow-notes.md §4).

GX takes ~7 s to import and logs ~200 INFO lines while doing it, so nothing imports it at module
level: :func:`gx_modules` imports it once per process on first use, with the
``great_expectations`` logger at WARNING *before* the import and the
``great_expectations.data_context.types.base`` logger (which sets its own level to INFO) at
WARNING after it.

Each validation gets its own **ephemeral** context (in-memory stores, ~5 ms to create): nothing
is written except the Data Docs site, which points at a folder we choose.
"""

from __future__ import annotations

import logging
from pathlib import Path
from types import ModuleType
from typing import Any

from phonecheck.quality.suites import TableSuite

_GX: ModuleType | None = None
DATA_DOCS_SITE = "phonecheck"


def gx_modules() -> ModuleType:
    """``great_expectations``, imported once, its import logging silenced."""
    global _GX
    if _GX is None:
        logging.getLogger("great_expectations").setLevel(logging.WARNING)
        import great_expectations

        logging.getLogger("great_expectations.data_context.types.base").setLevel(logging.WARNING)
        _GX = great_expectations
    return _GX


def _class_name(expectation_type: str) -> str:
    # expect_column_values_to_be_in_set -> ExpectColumnValuesToBeInSet (GX's own naming rule)
    return "".join(part.capitalize() for part in expectation_type.split("_"))


def build_expectations(suite: TableSuite) -> list[Any]:
    gx_modules()
    import great_expectations.expectations as gxe

    expectations = []
    for check in suite.checks:
        cls = getattr(gxe, _class_name(check.expectation_type))
        meta = {"why": check.why} | ({"code_set": check.code_set} if check.code_set else {})
        expectations.append(cls(**dict(check.kwargs), meta=meta, notes=check.why))
    return expectations


def run_checkpoint(
    suite: TableSuite,
    frame: Any,
    *,
    run_name: str,
    data_docs_dir: Path | None,
    sample_size: int,
) -> Any:
    """Validate ``frame`` against ``suite`` in a fresh ephemeral context; when ``data_docs_dir``
    is given, the checkpoint's UpdateDataDocsAction renders the result there. Returns the
    ``ExpectationSuiteValidationResult``."""
    gx = gx_modules()
    from great_expectations.checkpoint import UpdateDataDocsAction
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    actions = []
    if data_docs_dir is not None:
        data_docs_dir.mkdir(parents=True, exist_ok=True)
        context.add_data_docs_site(
            DATA_DOCS_SITE,
            {
                "class_name": "SiteBuilder",
                "store_backend": {
                    "class_name": "TupleFilesystemStoreBackend",
                    "base_directory": str(data_docs_dir),
                },
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            },
        )
        actions.append(UpdateDataDocsAction(name="data_docs", site_names=[DATA_DOCS_SITE]))
    batch_definition = (
        context.data_sources.add_pandas("warehouse")
        .add_dataframe_asset(suite.name)
        .add_batch_definition_whole_dataframe("loaded_rows")
    )
    gx_suite = context.suites.add(
        gx.ExpectationSuite(name=suite.name, expectations=build_expectations(suite))
    )
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name=f"{suite.name}_loaded_rows", data=batch_definition, suite=gx_suite)
    )
    checkpoint = context.checkpoints.add(
        gx.Checkpoint(
            name=f"{suite.name}_checkpoint",
            validation_definitions=[definition],
            actions=actions,
            result_format={
                "result_format": "SUMMARY",
                "partial_unexpected_count": sample_size,
                "unexpected_index_column_names": list(suite.key),
            },
        )
    )
    result = checkpoint.run(batch_parameters={"dataframe": frame}, run_id=RunIdentifier(run_name=run_name))
    (validation_result,) = result.run_results.values()
    return validation_result
