"""``make demo``: the main job, end to end, on embedded defaults.

What it does, with progress on the way:

1. the warehouse: ``WAREHOUSE_DSN``, or the embedded PostgreSQL under ``.local/pgdata``;
   migrations applied;
2. the vendor sandbox and the standalone webhook receiver, as local processes;
3. through real Airflow (``dag.test()`` on a SQLite metadata DB under ``.local/demo/airflow``):
   * ``nxcloud_number_check`` three times (basic, HLR, call check) on a few hundred numbers
     from several countries, some of them invalid (rejected offline, never paid for);
   * ``accuauth_phone_check`` on Mexican numbers, some answered at once, some pending for a
     few polls (deferred wait in the trigger);
   * a day of voice receipts and privacy-number call records pushed by the sandbox to the
     receiver, then ``telco_push_processing``;
   * ``nxcloud_number_check`` once more, on two numbers, with the vendor slow and partly wrong
     (:func:`late_and_wrong`): the batch stays waiting and the run's validation fails, which is
     what the Phone checks page shows under "Checks waiting" and "Last data-quality failures";
   * ``nxcloud_number_check_daily`` for today, or the ``--day`` given (query API reconciliation);
   every pipeline validates what it loaded (Great Expectations, results in ``dq``);
4. prints, per pipeline run, what THIS run received, rejected (and why), skipped as fresh,
   submitted and what it cost; then what landed in the warehouse; and stops everything it
   started.

Running it again adds no duplicate rows and buys nothing: numbers checked in the first run are
fresh and skipped (``submitted 0``, ``cost 0``), pushes are deduplicated on their vendor keys,
the voice receipts and call records are sent once per warehouse (their tags and vendor ids do not
depend on the day, so a second run after midnight adds nothing either). Task logs:
``<local dir>/demo/airflow/logs/`` (one file per DAG run, the tasks' own log lines).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path

from phonecheck import warehouse
from phonecheck_dev.demo_runs import (
    ACCUAUTH_DEMO_PRICE,
    INVALID_INPUTS,
    demo_numbers,
    report_run,
    run_dag,
    say,
    summary,
)
from phonecheck_dev.demo_vendor import late_and_wrong, send_voice_and_calls

# --------------------------------------------------------------------------------------------
# processes
# --------------------------------------------------------------------------------------------


def start_receiver(port: int, dsn: str, token: str, log_path: Path, spool: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "WAREHOUSE_DSN": dsn,
        "TELCO_WEBHOOK_TOKEN": token,
        "RECEIVER_PORT": str(port),
        "RECEIVER_SPOOL_DIR": str(spool),
    }
    log = open(log_path, "ab")  # noqa: SIM115 - the child keeps it
    return subprocess.Popen(
        [sys.executable, "-m", "phonecheck.receiver"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="make demo",
        description="Run every pipeline once end to end on local defaults (warehouse, vendor sandbox, "
        "webhook receiver, real Airflow via dag.test()), print what each run received, rejected, skipped, "
        "submitted and spent, then stop what was started. A second run buys nothing.",
        epilog="Environment: WAREHOUSE_DSN (else an embedded PostgreSQL), PHONECHECK_LOCAL_DIR (default .local/). "
        "Task logs: <local dir>/demo/airflow/logs/. See docs/getting-started.md.",
    )
    parser.add_argument(
        "--day",
        type=date.fromisoformat,
        default=None,
        help="the UTC day the daily reconciliation syncs (YYYY-MM-DD; default today). The rest of the "
        "demo's data does not depend on the day.",
    )
    args = parser.parse_args(argv)
    # `python -m` puts the repo root on sys.path; a build's leftover <dist>.egg-info there would
    # make Airflow register the installed distribution's plugin twice. The package is installed.
    sys.path[:] = [p for p in sys.path if p not in ("", str(warehouse.PROJECT_ROOT))]
    local = warehouse.local_dir()
    runtime = local / "runtime"  # platformdirs warns when XDG_RUNTIME_DIR is unset or shared
    runtime.mkdir(mode=0o700, exist_ok=True)
    os.environ.setdefault("XDG_RUNTIME_DIR", str(runtime))
    # its runs live in the demo's own Airflow: make airflow's Phone checks page labels them so
    os.environ.setdefault("PHONECHECK_RUN_ORIGIN", "make demo")
    home = local / "demo" / "airflow"
    home.mkdir(parents=True, exist_ok=True)
    logs = local / "demo" / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    embedded = "WAREHOUSE_DSN" not in os.environ
    sandbox = receiver = None
    try:
        say(
            "starting the warehouse"
            + (" (embedded PostgreSQL under .local/pgdata)" if embedded else " (WAREHOUSE_DSN)")
        )
        dsn = warehouse.resolve_dsn()
        applied = warehouse.migrate(dsn)
        say(f"warehouse ready, {len(applied)} migration(s) applied now")

        from phonecheck_dev import local as local_runtime

        token = local_runtime.webhook_token(home)
        receiver_port, sandbox_port = local_runtime.free_port(), local_runtime.free_port()
        receiver_base = f"http://127.0.0.1:{receiver_port}/telco-webhooks"
        receiver = start_receiver(receiver_port, dsn, token, logs / "receiver.log", local / "demo" / "spool")
        sandbox = local_runtime.start_sandbox(
            sandbox_port,
            logs / "sandbox.log",
            voice_dr_url=f"{receiver_base}/nxcloud/voice/{token}",
            pns_push_url=f"{receiver_base}/nxcloud/call/{token}",
        )
        sandbox_url = f"http://127.0.0.1:{sandbox_port}"
        local_runtime.wait_for_http(f"{receiver_base}/healthz", 60, receiver, "receiver")
        local_runtime.wait_for_http(f"{sandbox_url}/_sandbox/health", 60, sandbox, "vendor sandbox")
        import httpx

        # A compressed vendor clock: result pushes in ~0.1 s, a vendor minute = 0.2 s.
        httpx.post(
            f"{sandbox_url}/_sandbox/settings",
            json={"vendor_minute_s": 0.2, "push_delay_s": 0.1, "accuauth_seconds_per_poll": 0.5},
            timeout=10,
        )
        say(f"vendor sandbox {sandbox_url} and receiver {receiver_base}/... up (logs in {logs})")

        settings = local_runtime.LocalSettings(home=home, warehouse_dsn=dsn, webhook_token=token)
        env = local_runtime.airflow_env(settings, local_runtime.sandbox_connections(sandbox_url))
        env["TELCO_WEBHOOK_BASE_URL"] = receiver_base
        env["AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION"] = "False"
        # Task logs stay in files under AIRFLOW_HOME/logs; the console shows the demo's progress.
        env.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")
        os.environ.update(env)

        say("preparing Airflow's metadata database (SQLite)")
        from airflow.dag_processing.dagbag import DagBag
        from airflow.utils import db

        with contextlib.redirect_stdout(open(logs / "airflow-db.log", "a")):  # noqa: SIM115
            db.initdb()
        dagbag = DagBag(dag_folder=str(local_runtime.DAGS_FOLDER))
        if dagbag.import_errors:
            raise SystemExit(f"demo: DAG import errors: {json.dumps(dagbag.import_errors, indent=1)}")

        numbers = demo_numbers(25)
        fast = {"wait_poll_seconds": 1, "wait_timeout_minutes": 5}
        for level, count in (("basic", 200), ("hlr", 80), ("call", 40)):
            entries = numbers[:count] + INVALID_INPUTS
            say(f"nxcloud_number_check, {level}: {len(entries)} inputs ({len(INVALID_INPUTS)} invalid)")
            run = run_dag(
                dagbag,
                "nxcloud_number_check",
                {"numbers": "\n".join(entries), "default_region": "MX", "check_level": level,
                 "batch_label": f"demo-{level}", "budget": 100, **fast},
                label=level,
            )  # fmt: skip
            report_run(dsn, "nxcloud_number_check", run.run_id, f"nxcloud_number_check {level}")

        mx = [n for n in demo_numbers(60, offset=300) if n.startswith("+52")]
        say(f"accuauth_phone_check: {len(mx)} Mexican numbers (some pending for a few polls)")
        run = run_dag(
            dagbag,
            "accuauth_phone_check",
            {
                "numbers": "\n".join(mx + INVALID_INPUTS),
                "default_region": "MX",
                "poll_interval_s": 1.0,
                "max_poll_interval_s": 2.0,
                "unit_price": ACCUAUTH_DEMO_PRICE,
                "currency": "USD",
            },
        )
        report_run(dsn, "accuauth_phone_check", run.run_id, "accuauth_phone_check")

        say("a day of voice receipts and call records, pushed by the sandbox to the receiver")
        send_voice_and_calls(sandbox_url, receiver_base, token, dsn)
        run_dag(dagbag, "telco_push_processing", {})

        late_and_wrong(dagbag, dsn, sandbox_url, receiver_base, token)

        day = (args.day or datetime.now(UTC).date()).isoformat()
        say(f"nxcloud_number_check_daily for {day} (query API reconciliation)")
        run_dag(dagbag, "nxcloud_number_check_daily", {"vendor_date": day})

        summary(dsn)
        print(f"\nTask logs (one file per DAG run): {home / 'logs'}")
        say("done")
        return 0
    finally:
        for proc in (sandbox, receiver):
            if proc is not None:
                from phonecheck_dev.local import stop_process_group

                stop_process_group(proc, signal.SIGTERM, grace_s=10)
        if embedded:
            warehouse.stop_embedded()


if __name__ == "__main__":
    sys.exit(main())
