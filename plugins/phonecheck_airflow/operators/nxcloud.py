"""Settle the NXCLOUD batches of a run whose submit answer was lost, waiting in the triggerer."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowTaskTerminated

from phonecheck_airflow.conn_ids import NXCLOUD_CONN_ID, WAREHOUSE_CONN_ID

#: Extra time the deferral allows beyond the trigger's own deadline (which reports ``timeout``).
DEFERRAL_SLACK_S = 300.0


class NxCloudSettleInDoubtOperator(BaseOperator):
    """Settles the run's batches in doubt: recovered on evidence, sent again after the window.

    ``submit`` never waits: a batch whose paid submit answer was lost is recorded ``in_doubt``
    (``ops.number_check_submission``). This task reads those batches by run key and acts on
    what the warehouse already shows (a push for the batch in the inbox, a typed row:
    recovered, never sent again). If some stay in doubt it defers to
    :class:`~phonecheck_airflow.triggers.nxcloud.NxCloudInDoubtTrigger`, which waits for
    evidence and probes the query API in the triggerer (no worker slot held, and nothing to
    interrupt when a worker is shut down). On its event:

    * ``settled``: batches with evidence or listed by the query API are recovered; those the
      vendor did not list after the window (push window + margin) are sent again with the same
      ``batchNo``. A resend whose answer is lost again defers once more, up to
      :data:`~phonecheck.nxcloud.submissions.MAX_SUBMIT_ROUNDS` sends in all (the row's
      ``send_count``); after that the batch is only recovered on evidence, else the task fails
      with the batch still in doubt.
    * ``refused``: the query API kept refusing for two windows. Nothing is sent on no answer:
      the batches answered are settled, then the task fails (a retry asks again).
    * ``error`` / ``timeout``: the task fails; rows stay ``in_doubt`` for a retry.

    Everything the resumed task needs is read from the rows, not carried in the deferral's
    kwargs, so a retry, a resumption in another worker and ``dag.test()`` behave alike.

    Returns (XCom) ``{"run_key", "in_doubt", "recovered", "resent", "still_in_doubt",
    "most_sends"}``: counts of the run's batches that were ever in doubt.

    :param run_key: the run whose batches to settle, ``"<dag_id>/<run_id>"`` (templated).
    :param nxcloud_conn_id: the NXCLOUD connection (resends, and the trigger's probes).
    :param warehouse_conn_id: the warehouse connection.
    :param poll_interval: seconds between two looks of the trigger at the warehouse (templated).
    """

    template_fields: Sequence[str] = ("run_key", "poll_interval")

    def __init__(
        self,
        *,
        run_key: str,
        nxcloud_conn_id: str = NXCLOUD_CONN_ID,
        warehouse_conn_id: str = WAREHOUSE_CONN_ID,
        poll_interval: float | str = 5.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.run_key = run_key
        self.nxcloud_conn_id = nxcloud_conn_id
        self.warehouse_conn_id = warehouse_conn_id
        self.poll_interval = poll_interval

    def _client(self):
        from phonecheck_airflow.hooks.nxcloud import NxCloudHook

        return NxCloudHook(self.nxcloud_conn_id, warehouse_conn_id=self.warehouse_conn_id).get_client()

    def _connect(self):
        from phonecheck_airflow.tasks.common import connect

        return connect(self.warehouse_conn_id)

    @staticmethod
    def _dr_url() -> str | None:
        from phonecheck.webhook_urls import NXCLOUD_NUMBER_CHECK
        from phonecheck_airflow.webhooks import receiver_url

        return receiver_url(NXCLOUD_NUMBER_CHECK)

    def _act(self, listed: Sequence[str], unlisted: Sequence[str], may_resend: bool):
        """Act on the evidence (:func:`phonecheck.nxcloud.in_doubt.act_on_evidence`) for the
        run's batches still in doubt; returns the :class:`~phonecheck.nxcloud.in_doubt.Settlement`."""
        from phonecheck.nxcloud.errors import NxCloudError, NxCloudTransientError
        from phonecheck.nxcloud.in_doubt import Settlement, act_on_evidence, run_in_doubt

        with self._connect() as conn:
            batch_nos = [b for b, _ in run_in_doubt(conn, str(self.run_key))]
            if not batch_nos:
                return Settlement()
            try:
                done = act_on_evidence(
                    conn, self._client(), batch_nos, set(listed), set(unlisted), self._dr_url(), may_resend
                )
            except NxCloudError as exc:
                if not isinstance(exc, NxCloudTransientError):  # a refusal a retry cannot fix
                    raise AirflowFailException(str(exc)) from None
                raise
        for batch_no in done.recovered:
            self.log.info(
                "batch %s: the vendor has it (push, row or query listing); not sent again", batch_no
            )
        for batch_no in done.resent:
            self.log.info(
                "batch %s: no trace at the vendor after the window; sent again and answered", batch_no
            )
        return done

    def _defer(self, in_doubt: int) -> None:
        from phonecheck_airflow.triggers.nxcloud import NxCloudInDoubtTrigger

        window_s = float(self._client().settings.in_doubt_after_s)
        # the watch decides within two windows of the latest in_doubt_since (refusals included)
        deadline = time.time() + 2 * window_s + float(self.poll_interval) + 60
        self.log.info(
            "%d batch(es) in doubt: waiting in the triggerer for their pushes or query rows (window %.1f s)",
            in_doubt, window_s,
        )  # fmt: skip
        # no kwargs: what the resumed task needs is in the rows (dag.test() does not pass them on)
        self.defer(
            trigger=NxCloudInDoubtTrigger(
                run_key=str(self.run_key),
                window_s=window_s,
                nxcloud_conn_id=self.nxcloud_conn_id,
                warehouse_conn_id=self.warehouse_conn_id,
                poll_interval=float(self.poll_interval),
                deadline=deadline,
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=deadline - time.time() + DEFERRAL_SLACK_S),
        )

    def _result(self) -> dict[str, Any]:
        from phonecheck.nxcloud.in_doubt import run_in_doubt_counts

        with self._connect() as conn:
            counts = run_in_doubt_counts(conn, str(self.run_key))
        self.log.info(
            "SUMMARY settle_in_doubt: %d batch(es) were in doubt, %d recovered on evidence (not sent again), "
            "%d sent again after the window, %d send(s) at most per batch",
            counts["in_doubt"], counts["recovered"], counts["resent"], counts["most_sends"],
        )  # fmt: skip
        return {"run_key": str(self.run_key), **counts}

    def on_kill(self) -> None:
        """Asked to stop (SIGTERM to the task, a worker shutting down): stop now, wherever it is.

        Nothing here needs finishing: every batch's row already says what is known (a resend
        interrupted mid-call is ``in_doubt`` with its window restarted before the call), and
        while deferred there is no task process to stop. A retry or a cleared task settles the
        rest from the rows.
        """
        raise AirflowTaskTerminated(f"{self.task_id} asked to stop; batches in doubt stay in doubt")

    def execute(self, context: Any) -> dict[str, Any] | None:
        from phonecheck.nxcloud.in_doubt import run_in_doubt

        self.poll_interval = float(self.poll_interval)
        with self._connect() as conn:
            in_doubt = len(run_in_doubt(conn, str(self.run_key)))
        # pushes already in settle a batch at once; a resend that never reached the vendor
        # (this is a retry) goes out again at once; the rest wait in the triggerer
        if in_doubt and self._act((), (), may_resend=True).still_in_doubt:
            self._defer(in_doubt)
        return self._result()

    def execute_complete(self, context: Any, event: dict[str, Any] | None = None) -> dict[str, Any]:
        status = (event or {}).get("status")
        if status not in ("settled", "refused"):
            raise AirflowException(
                f"NXCLOUD in-doubt wait ended with {status or 'no event'}: "
                f"{(event or {}).get('message', 'the batches stay in doubt; a retry of this task waits again')}"
            )
        self.log.info(
            "in-doubt wait: %d batch(es) settled by pushes or rows, %d listed by the query API, %d not listed "
            "after the window; %d query probe(s), %d refused",
            event.get("evidence", 0), len(event.get("listed") or ()), len(event.get("unlisted") or ()),
            event.get("probes", 0), event.get("refusals", 0),
        )  # fmt: skip
        done = self._act(event.get("listed") or (), event.get("unlisted") or (), may_resend=True)
        if status == "refused":
            raise AirflowException(
                f"NXCLOUD: the query API kept refusing for two windows; {len(event.get('refused') or [])} "
                "batch(es) stay in doubt and are not sent again; a retry of this task asks again"
            )
        if done.exhausted:
            raise AirflowException(
                f"NXCLOUD: {len(done.exhausted)} batch(es) still in doubt after every send's answer was lost; "
                "not sent again"
            )
        if done.still_in_doubt:  # a resend's answer was lost too: wait for it in the triggerer again
            self._defer(len(done.still_in_doubt))
        return self._result()
