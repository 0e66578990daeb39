"""Great Expectations 1.x, imported lazily and quietly (docs/airflow.md, "Great Expectations").

GX takes ~7 s to import and logs ~200 INFO lines while doing it, so nothing imports it at module
level: :func:`gx_modules` imports it once per process on first use, with the
``great_expectations`` logger at WARNING *before* the import and the
``great_expectations.data_context.types.base`` logger (which sets its own level to INFO) at
WARNING after it.

Each validation gets its own **ephemeral** context (in-memory stores, ~5 ms to create) and runs
``Batch.validate(suite)`` directly: a Checkpoint around it added 0.1-0.3 s per run (freshness
checks of the stored definitions) and nothing we use.

Data Docs. A checkpoint's ``UpdateDataDocsAction`` rebuilds GX's index page from the context's
validation store and *deletes every page it does not find there*; with an ephemeral context that
is every earlier run's page, so a page named in yesterday's task log was gone by today. Instead
:func:`render_data_docs` renders this run's page with GX's own site builder (``build_index=False``)
and appends the run to ``runs.jsonl``, from which :func:`write_index` writes ``index.html``:
the newest :data:`INDEX_RUNS` runs, each linked to its page. Pages are never deleted here (a
deployment prunes the folder as it sees fit).
"""

from __future__ import annotations

import fcntl
import html
import importlib
import importlib.util
import json
import logging
import os
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

from phonecheck.quality.results import ExpectationOutcome
from phonecheck.quality.suites import Check, TableSuite

_GX: ModuleType | None = None
DATA_DOCS_SITE = "phonecheck"
#: Runs listed on ``index.html`` (newest first); older pages stay on disk.
INDEX_RUNS = 500
RUNS_LEDGER = "runs.jsonl"
#: The suite's own page is re-rendered when older than this (seconds).
SUITE_PAGE_MAX_AGE = 3600


#: Modules GX imports at module level for expectations and renderers we never use (the KL
#: divergence expectation's ``scipy.stats`` and ``altair`` charts): about a quarter of GX's import
#: time. They are put off until something reads an attribute of them (:class:`_OnFirstUse`).
DEFERRED_IMPORTS = ("scipy.stats", "altair")


class _OnFirstUse(ModuleType):
    """A stand-in for a module that is imported for real the first time one of its attributes is
    read: the importer gets this object, and every attribute it reads is the real module's. The
    real module replaces the stand-in in ``sys.modules`` then, so later imports get it directly.
    Only attribute reads are delayed, never skipped: whatever GX uses behaves as imported."""

    def __init__(self, name: str, spec: Any) -> None:
        super().__init__(name)
        self.__spec__ = spec
        self.__dict__["_real_module"] = None

    def __getattr__(self, attribute: str) -> Any:  # only called for names this object lacks
        real = self.__dict__["_real_module"]
        if real is None:
            with _DEFERRED_LOCK:
                real = self.__dict__["_real_module"]
                if real is None:
                    if sys.modules.get(self.__name__) is self:
                        del sys.modules[self.__name__]
                    real = importlib.import_module(self.__name__)
                    self.__dict__["_real_module"] = real
        return getattr(real, attribute)


_DEFERRED_LOCK = threading.Lock()


def _defer_unused_imports() -> None:
    for name in DEFERRED_IMPORTS:
        if name in sys.modules:
            continue
        try:
            spec = importlib.util.find_spec(name)
        except ImportError:  # its parent package is not installed
            spec = None
        if spec is not None:
            sys.modules[name] = _OnFirstUse(name, spec)


def gx_modules() -> ModuleType:
    """``great_expectations``, imported once, its import logging silenced and the modules of
    :data:`DEFERRED_IMPORTS` put off until first use."""
    global _GX
    if _GX is None:
        logging.getLogger("great_expectations").setLevel(logging.WARNING)
        _defer_unused_imports()
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


def _context() -> Any:
    gx = gx_modules()
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    return context


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def outcomes(validation_result: Any, sample_size: int) -> list[ExpectationOutcome]:
    """A GX ``ExpectationSuiteValidationResult`` as our outcomes (``dq.validation_result`` rows)."""
    outcomes = []
    for result in validation_result.results:
        doc = result.to_json_dict()
        config = doc["expectation_config"]
        kwargs = {k: v for k, v in config["kwargs"].items() if k != "batch_id"}
        column_name = Check(config["type"], kwargs, "").column_name
        details = doc.get("result") or {}
        sample = details.get("partial_unexpected_index_list") or details.get("partial_unexpected_list") or []
        exception = doc.get("exception_info") or {}
        if exception.get("raised_exception"):
            sample = [{"error": exception.get("exception_message")}]
        outcomes.append(
            ExpectationOutcome(
                expectation_type=config["type"],
                column_name=column_name,
                kwargs=_jsonable(kwargs),
                success=bool(doc["success"]),
                element_count=details.get("element_count"),
                unexpected_count=details.get("unexpected_count"),
                unexpected_sample=_jsonable(list(sample)[:sample_size]),
            )
        )
    return outcomes


@dataclass(frozen=True)
class GxRun:
    """One GX validation: its ephemeral context (Data Docs are rendered from it), the
    ``ExpectationSuiteValidationResult`` and the batch's id."""

    context: Any
    result: Any
    batch_id: str


def run_validation(suite: TableSuite, frame: Any, *, sample_size: int) -> GxRun:
    """Validate ``frame`` against ``suite`` in a fresh ephemeral context."""
    gx = gx_modules()
    context = _context()
    batch = (
        context.data_sources.add_pandas("warehouse")
        .add_dataframe_asset(suite.name)
        .add_batch_definition_whole_dataframe("loaded_rows")
        .get_batch(batch_parameters={"dataframe": frame})
    )
    gx_suite = context.suites.add(
        gx.ExpectationSuite(name=suite.name, expectations=build_expectations(suite))
    )
    result = batch.validate(
        gx_suite,
        result_format={
            "result_format": "SUMMARY",
            "partial_unexpected_count": sample_size,
            "unexpected_index_column_names": list(suite.key),
        },
    )
    return GxRun(context, result, batch.id)


def render_data_docs(run: GxRun, suite: TableSuite, site: Path, *, run_name: str) -> Path:
    """Render ``run``'s page into the Data Docs folder ``site``, record the run in its
    ``runs.jsonl`` and rewrite ``index.html``; the suite's own page is re-rendered when missing or
    older than :data:`SUITE_PAGE_MAX_AGE` seconds (it changes with a deploy, and its "not in the
    future" bound with the clock). Returns the validation page's path."""
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    site.mkdir(parents=True, exist_ok=True)
    context, result = run.context, run.result
    context.add_data_docs_site(
        DATA_DOCS_SITE,
        {
            "class_name": "SiteBuilder",
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(site)},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        },
    )
    run_id = RunIdentifier(run_name=run_name, run_time=datetime.now(UTC))
    result.meta["run_id"] = run_id
    suite_key = ExpectationSuiteIdentifier(name=suite.name)
    key = ValidationResultIdentifier(
        expectation_suite_identifier=suite_key, run_id=run_id, batch_identifier=run.batch_id
    )
    context.validation_results_store.set(key, result)
    resources = [key]
    suite_page = site / "expectations" / f"{suite.name}.html"
    if not suite_page.exists() or time.time() - suite_page.stat().st_mtime > SUITE_PAGE_MAX_AGE:
        resources.append(suite_key)
    # build_index=False: GX's index builder would delete every page not in this ephemeral context
    context.build_data_docs(site_names=[DATA_DOCS_SITE], resource_identifiers=resources, build_index=False)
    pages = sorted((site / "validations" / suite.name / run_name).rglob("*.html"))
    if not pages:
        raise RuntimeError(f"Great Expectations rendered no Data Docs page for {run_name} under {site}")
    stats = result.statistics
    record_run(
        site,
        {
            "run": run_name,
            "table": suite.table,
            "success": bool(result.success),
            "expectations": stats.get("evaluated_expectations"),
            "failed": stats.get("unsuccessful_expectations"),
            "validated_at": run_id.run_time.isoformat(timespec="seconds"),
            "page": pages[0].relative_to(site).as_posix(),
        },
    )
    return pages[0]


def record_run(site: Path, run: dict[str, Any]) -> None:
    """Append ``run`` to the site's ledger and rewrite ``index.html`` from it, under an exclusive
    lock on the ledger: concurrent validate tasks neither interleave lines nor overwrite the index
    with an older view."""
    line = (json.dumps(run, sort_keys=True) + "\n").encode()
    fd = os.open(site / RUNS_LEDGER, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        written = 0
        while written < len(line):  # a short write (e.g. a full disk) must not leave half a line
            written += os.write(fd, line[written:])
        write_index(site)
    finally:
        os.close(fd)  # releases the lock


def _recent_runs(site: Path, limit: int) -> list[dict[str, Any]]:
    ledger = site / RUNS_LEDGER
    if not ledger.exists():
        return []
    with ledger.open("rb") as handle:  # read the tail only: the ledger grows with every run
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        handle.seek(max(0, size - limit * 1024))
        lines = handle.read().splitlines()
    runs = []
    for raw in lines:
        try:
            run = json.loads(raw)
        except ValueError:  # the first line of a tail read may be cut
            continue
        if isinstance(run, dict):
            runs.append(run)
    return runs[-limit:][::-1]


def write_index(site: Path, limit: int = INDEX_RUNS) -> Path:
    """``index.html``: the newest ``limit`` validation runs, linked to their pages."""
    rows = []
    for run in _recent_runs(site, limit):
        status = "passed" if run.get("success") else f"FAILED ({run.get('failed')} expectations)"
        rows.append(
            "<tr class='{cls}'><td>{at}</td><td>{table}</td><td>{status}</td>"
            "<td><a href='{page}'>{run}</a></td></tr>".format(
                cls="ok" if run.get("success") else "failed",
                at=html.escape(str(run.get("validated_at"))),
                table=html.escape(str(run.get("table"))),
                status=html.escape(status),
                page=html.escape(str(run.get("page")), quote=True),
                run=html.escape(str(run.get("run"))),
            )
        )
    text = (
        "<!doctype html><html><head><meta charset='utf-8'><title>Data Docs: phonecheck validations</title>"
        "<style>body{font-family:sans-serif;margin:2em}td,th{padding:.3em .8em;text-align:left}"
        "tr.failed td{color:#b00020}</style></head><body>"
        f"<h1>Validation runs</h1><p>Newest first, at most {limit}. Every result is also in "
        "<code>dq.validation_result</code>; the suites: <a href='expectations/'>expectations/</a>.</p>"
        "<table><tr><th>validated at (UTC)</th><th>table</th><th>result</th><th>run (page)</th></tr>"
        + "".join(rows)
        + "</table></body></html>\n"
    )
    index = site / "index.html"
    fd, tmp = tempfile.mkstemp(dir=site, prefix=".index-", suffix=".html")
    try:
        os.fchmod(fd, 0o644)  # mkstemp makes it 0600: a web server serving the folder must read it
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, index)  # atomic: a reader never sees half a page
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return index
