"""``python -m phonecheck.receiver`` (``make receiver``): the standalone webhook receiver.

Environment (docs/development.md, "Settings: one source each"): the webhook token, as the
Airflow Variable's env form ``AIRFLOW_VAR_TELCO_WEBHOOK_TOKEN`` or ``TELCO_WEBHOOK_TOKEN``
(required: at least 24 characters, not the sample value; both set and different → refused);
the warehouse, as the ``warehouse`` connection's env form ``AIRFLOW_CONN_WAREHOUSE`` or
``WAREHOUSE_DSN`` (which wins when both are set; neither → the embedded warehouse);
``RECEIVER_PORT`` (default 8090),
``RECEIVER_HOST`` (default 127.0.0.1), ``RECEIVER_SPOOL_DIR``, ``RECEIVER_DB_POOL_SIZE``,
``RECEIVER_ACCESS_LOG`` (0 to silence the per-request log), and the limits of
docs/receiver.md. Pending warehouse migrations are applied before the port is opened.
"""

from __future__ import annotations

import logging
import os
import sys

import uvicorn

from phonecheck import warehouse
from phonecheck.receiver.app import DEFAULT_PREFIX, ReceiverConfig, create_app
from phonecheck.receiver.server import ServerLimits, configure_logging, guarded_protocol
from phonecheck.webhook_urls import WebhookSettingsError, normalise_token, resolve, token_problem

log = logging.getLogger("phonecheck.receiver")


def main() -> int:
    configure_logging(access_log=os.environ.get("RECEIVER_ACCESS_LOG", "1") != "0")
    try:
        settings = resolve()
        problem = token_problem(settings.token)
    except WebhookSettingsError as exc:
        problem = str(exc)
    if problem:
        print(
            f"receiver not started: {problem} (the secret path segment of every webhook URL, the "
            "pipelines read the same setting; docs/receiver.md)",
            file=sys.stderr,
        )
        return 2
    token = normalise_token(settings.token)
    limits = ServerLimits.from_env().fitted_to_fd_limit()
    port = int(os.environ.get("RECEIVER_PORT", "8090"))
    host = os.environ.get("RECEIVER_HOST", "127.0.0.1")

    dsn = warehouse.deployment_dsn()  # starts the embedded server when neither is set
    applied = warehouse.migrate(dsn)
    log.info("warehouse migrations applied now: %s", [f"V{m.version:04d}" for m in applied] or "none")

    # the server times requests out (one timer per request), so the app need not
    config = ReceiverConfig.from_env(
        token_provider=lambda: token, dsn_provider=lambda: dsn, body_timeout_s=None
    )
    app = create_app(DEFAULT_PREFIX, config)
    log.info("receiver listening on http://%s:%d%s/", host, port, DEFAULT_PREFIX)
    try:
        uvicorn.run(
            app,
            host=host,
            port=port,
            loop="uvloop",
            http=guarded_protocol(limits),
            timeout_keep_alive=limits.keep_alive_s,
            access_log=False,  # uvicorn's access log prints the path, i.e. the token
            log_config=None,
            timeout_graceful_shutdown=10,
        )
    finally:
        warehouse.stop_embedded()
    return 0


if __name__ == "__main__":
    sys.exit(main())
