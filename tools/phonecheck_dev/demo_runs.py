"""``make demo``'s inputs, how it runs one DAG (``dag.test()``, task logs to a file) and what it
reports per run and at the end (docs/getting-started.md)."""

from __future__ import annotations

import contextlib
import logging
import os
import time
from pathlib import Path

from phonecheck import warehouse

T0 = time.monotonic()


def say(message: str) -> None:
    print(f"[demo {time.monotonic() - T0:6.1f}s] {message}", flush=True)


# --------------------------------------------------------------------------------------------
# inputs: deterministic numbers the sandbox knows (outcomes follow the last digit)
# --------------------------------------------------------------------------------------------

#: (E.164 prefix, national digits to add) for mobile ranges valid in libphonenumber.
MOBILE_RANGES = {
    "MX": ("+5255", 8),  # today's form (the intake also takes the pre-2019 "+52 1 55": docs/pipelines.md)
    "CN": ("+86138", 8),
    "NG": ("+234803", 7),
    "IN": ("+9198", 8),
    "BR": ("+55119", 8),
    "PH": ("+63917", 7),
    "CO": ("+57310", 7),
    "GB": ("+447400", 6),
}


def demo_numbers(per_country: int, offset: int = 0) -> list[str]:
    numbers = []
    for prefix, width in MOBILE_RANGES.values():
        for i in range(per_country):
            numbers.append(f"{prefix}{(1_234_000 + offset + i * 7):0{width}d}"[: len(prefix) + width])
    return numbers


#: A made-up contract price per AccuAuth check (its API has no price): the demo states a cost.
ACCUAUTH_DEMO_PRICE = 0.01

INVALID_INPUTS = ["12345", "+44 20 79", "not a number", "+999 123456", "0000", "+52 55 1234 56789012"]


# --------------------------------------------------------------------------------------------
# the run
# --------------------------------------------------------------------------------------------


#: The loggers of our task code: written to the demo's task-log files, kept off the console.
TASK_LOGGERS = ("phonecheck_airflow", "phonecheck", "airflow.task")


@contextlib.contextmanager
def task_log_file(path: Path):
    """The run's task log lines (INFO and up, and anything a task prints) into ``path``; the
    console stays for the demo's own progress."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as stream, contextlib.redirect_stdout(stream):
        handler = logging.StreamHandler(stream)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        saved = []
        for name in TASK_LOGGERS:
            logger = logging.getLogger(name)
            saved.append((logger, logger.level, logger.propagate))
            logger.addHandler(handler)
            logger.setLevel(logging.INFO)
            logger.propagate = False
        try:
            yield
        finally:
            for logger, level, propagate in saved:
                logger.removeHandler(handler)
                logger.setLevel(level)
                logger.propagate = propagate


#: The run ids of this invocation's DAG runs: the summary reports what *these* runs did.
RUN_IDS: list[str] = []


def run_dag(dagbag, dag_id: str, conf: dict, label: str = "", may_fail: tuple[str, ...] = ()):
    started = time.monotonic()
    log_path = (
        Path(os.environ["AIRFLOW_HOME"])
        / "logs"
        / f"dag_id={dag_id}"
        / f"{label or 'run'}-{time.strftime('%Y%m%dT%H%M%S')}.log"
    )
    from phonecheck.intake import record_origin
    from phonecheck_dev.devtools import run_dag_test

    with task_log_file(log_path):
        dag_run = run_dag_test(dagbag.dags[dag_id], run_conf=conf)
    RUN_IDS.append(dag_run.run_id)
    with warehouse.connect(warehouse.resolve_dsn()) as conn:  # make airflow's page labels it
        record_origin(conn, dag_id, dag_run.run_id, os.environ["PHONECHECK_RUN_ORIGIN"])
    state = str(getattr(dag_run, "state", "unknown"))
    failed = [
        ti.task_id for ti in dag_run.get_task_instances() if str(ti.state) not in ("success", "skipped")
    ]
    say(
        f"  {dag_id}: {state} in {time.monotonic() - started:.0f} s"
        + (f" (not ok: {failed})" if failed else "")
    )
    if state != "success" and not (failed and set(failed) <= set(may_fail)):
        raise SystemExit(f"demo: {dag_id} ended {state}; task log: {log_path}")
    return dag_run


def _money(rows) -> str:
    from phonecheck.spend.money import format_money

    parts = [format_money(amount, currency) for currency, amount in rows if amount is not None]
    return ", ".join(parts) or "0"


def report_run(dsn: str, dag_id: str, run_id: str, title: str) -> dict:
    """What this one run received, rejected (why), skipped as fresh, submitted and spent."""
    import psycopg

    with psycopg.connect(dsn) as conn:
        intake = conn.execute(
            "SELECT received, rejected, duplicates, skipped_fresh, to_check FROM ops.run_intake WHERE run_key = %s",
            (f"{dag_id}/{run_id}",),
        ).fetchone() or (0, 0, 0, 0, 0)
        reasons = conn.execute(
            "SELECT reason, sum(lines) FROM ops.rejected_number WHERE dag_id = %s AND run_id = %s "
            "GROUP BY 1 ORDER BY 2 DESC, 1",
            (dag_id, run_id),
        ).fetchall()
        submitted = conn.execute(
            "SELECT coalesce(sum(phone_count), 0) FROM ops.number_check_submission "
            "WHERE dag_id = %s AND run_id = %s AND status <> 'failed'",
            (dag_id, run_id),
        ).fetchone()[0]
        if dag_id == "nxcloud_number_check":  # the vendor's own price on each result
            spent = conn.execute(
                "SELECT t.currency, sum(t.price) FROM telco.nxcloud_number_check t "
                "JOIN ops.number_check_submission s ON s.vendor = 'nxcloud' AND s.batch_no = t.batch_no "
                "WHERE s.dag_id = %s AND s.run_id = %s AND t.price IS NOT NULL GROUP BY 1 ORDER BY 1",
                (dag_id, run_id),
            ).fetchall()
        else:  # AccuAuth answers carry no price: the contract unit price per paid check
            spent = conn.execute(
                "SELECT currency, sum(estimated_cost) FROM ops.number_check_submission "
                "WHERE dag_id = %s AND run_id = %s AND estimated_cost IS NOT NULL GROUP BY 1 ORDER BY 1",
                (dag_id, run_id),
            ).fetchall()
    received, rejected, duplicates, fresh, _ = intake
    say(
        f"  {title}: received {received}, rejected {rejected}, duplicates {duplicates}, "
        f"skipped fresh {fresh}, submitted {submitted}, cost {_money(spent)}"
    )
    for reason, count in reasons:
        say(f"    rejected {count} x {reason}")
    return {"rejected": rejected, "submitted": submitted}


def summary(dsn: str) -> None:
    import psycopg

    with psycopg.connect(dsn) as conn:
        print("\n=== what landed in the warehouse", flush=True)
        for schema, name, kind in warehouse.list_tables(dsn):
            if schema in ("telco", "raw", "ops", "dq", "mart"):
                count = conn.execute(f'SELECT count(*) FROM "{schema}"."{name}"').fetchone()[0]  # noqa: S608
                print(f"  {kind:5s} {schema}.{name:32s} {count:>7} rows")
        print("\n=== numbers rejected offline, all runs so far (never sent to a vendor)")
        for reason, n in conn.execute(
            "SELECT reason, sum(lines) FROM ops.rejected_number GROUP BY 1 ORDER BY 2 DESC, 1"
        ):
            print(f"  {n:>4} x {reason}")
        print("\n=== spend (mart.daily_spend)")
        for row in conn.execute(
            "SELECT day, vendor, check_level, currency, sum(checks), sum(spend) FROM mart.daily_spend "
            "GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4"
        ):
            print(
                f"  {row[0]} {row[1]:8s} level={row[2]!s:4s} {row[3] or '-':4s} checks={row[4]:>5} "
                f"spend={_money([(row[3], row[5])])}"
            )
        print("\n=== quality of this demo's runs (dq.validation_result)")
        for table, ok, bad in conn.execute(
            "SELECT table_name, count(*) FILTER (WHERE success), count(*) FILTER (WHERE NOT success) "
            "FROM dq.validation_result WHERE airflow_run_id = ANY(%s) GROUP BY 1 ORDER BY 1",
            (RUN_IDS,),
        ):
            print(f"  {table:32s} {ok:>4} expectations passed, {bad} failed")
    docs = os.environ.get("PHONECHECK_DATA_DOCS_DIR", str(warehouse.local_dir() / "data_docs"))
    print(f"\nData Docs (HTML): {docs}")
