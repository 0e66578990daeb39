"""The base of the project's wait sensors: one way to defer, one way to time out.

Modelled on the providers' deferrable sensors (``providers/http/.../sensors/http.py``) and shared
by ``NxCloudResultsSensor`` and ``AccuAuthTasksSensor`` (docs/airflow.md "Deferrable sensors"):

* ``poke()`` only reads the warehouse; it never calls a vendor.
* ``deferrable`` defaults to Airflow's ``[operators] default_deferrable``, read when the sensor
  is built. Airflow's own default for it is ``False``: our DAGs pass ``deferrable=True``.
  Deferring, the sensor pokes once first (short waits never pay the triggerer round trip) and
  hands the trigger an absolute ``deadline`` (now + ``timeout``).
* **Timeouts, one behaviour for both vendors**: when ``timeout`` runs out (the trigger's
  ``timeout`` event, or the poke / reschedule loop's) the sensor *succeeds* with
  ``timed_out: True`` in what it returns, and the next task works with what arrived (NXCLOUD:
  the query API fetches the rest; AccuAuth: the open tasks stay open for the daily re-poll).
  ``fail_on_timeout=True`` raises ``AirflowSensorTimeout`` instead (a skip with ``soft_fail``).
  The deferral's own timeout is ``timeout`` + :data:`DEFERRAL_SLACK`: it only catches a trigger
  that never fired, and then Airflow ends the sensor with ``AirflowSensorTimeout``.
* ``timeout`` and ``poke_interval`` are templated (a DAG feeds them from its params) and
  ``retries`` defaults to 1 (the deferral race in docs/airflow.md).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from airflow.sdk import BaseSensorOperator
from airflow.sdk.exceptions import AirflowException, AirflowSensorTimeout

from phonecheck_airflow.conn_ids import WAREHOUSE_CONN_ID

#: Added to ``timeout`` for the deferral's own timeout: the trigger reports its deadline first.
DEFERRAL_SLACK = timedelta(minutes=5)


def seconds(value: Any, name: str) -> float:
    """A rendered ``timeout`` / ``poke_interval``: seconds, a timedelta, or a template's text."""
    value = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if value < 0:
        raise ValueError(f"{name} must be a non-negative number of seconds, got {value!r}")
    return value


def default_deferrable() -> bool:
    """Airflow's ``[operators] default_deferrable`` (``False`` unless a deployment sets it)."""
    from airflow.sdk.configuration import conf

    return conf.getboolean("operators", "default_deferrable", fallback=True)


class PhonecheckWaitSensor(BaseSensorOperator):
    """Base for the wait sensors. A subclass implements :meth:`look` (one read-only look at the
    warehouse: done or not, and the summary to return), :meth:`trigger` (the trigger to defer
    to, given the deadline) and :meth:`summary_of_event` (the summary a trigger event stands
    for); it may extend :meth:`before_poke` for work each try does before it pokes.

    :param warehouse_conn_id: the warehouse connection.
    :param deferrable: wait in the triggerer; default: Airflow's ``default_deferrable``.
    :param fail_on_timeout: fail when ``timeout`` runs out instead of handing over.
    """

    template_fields: Sequence[str] = ("timeout", "poke_interval")
    #: Epoch seconds now: where the deadline handed to the trigger starts (a test fixes it).
    clock = staticmethod(time.time)

    def __init__(
        self,
        *,
        warehouse_conn_id: str = WAREHOUSE_CONN_ID,
        deferrable: bool | None = None,
        fail_on_timeout: bool = False,
        timeout: timedelta | float | str,
        poke_interval: timedelta | float | str,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("retries", 1)  # the deferral race in docs/airflow.md needs retries >= 1
        # a template (e.g. "{{ params.wait_timeout_minutes * 60 }}") is rendered before execute
        super().__init__(
            timeout=0 if isinstance(timeout, str) else timeout,
            poke_interval=0 if isinstance(poke_interval, str) else poke_interval,
            **kwargs,
        )
        if isinstance(timeout, str):
            self.timeout = timeout  # type: ignore[assignment]
        if isinstance(poke_interval, str):
            self.poke_interval = poke_interval  # type: ignore[assignment]
        self.warehouse_conn_id = warehouse_conn_id
        self.deferrable = default_deferrable() if deferrable is None else deferrable
        self.fail_on_timeout = fail_on_timeout

    # ---- what a subclass says ---------------------------------------------------------------------

    def look(self, context: Any) -> tuple[bool, dict[str, Any]]:
        """One read-only look at the warehouse: (done, the summary to return)."""
        raise NotImplementedError

    def trigger(self, context: Any, summary: dict[str, Any], deadline: float):
        """The trigger to defer to (imported only then), waiting until ``deadline``."""
        raise NotImplementedError

    def summary_of_event(self, context: Any, event: dict[str, Any]) -> dict[str, Any]:
        """The summary a ``done`` / ``timeout`` event stands for (``timed_out`` is set here)."""
        raise NotImplementedError

    def before_poke(self, context: Any) -> None:
        """Work each try does before its poke when it does not defer (nothing by default)."""

    def timeout_message(self, summary: dict[str, Any]) -> str:
        return f"{self.task_id}: not done after {seconds(self.timeout, 'timeout'):.0f} s"

    # ---- one shape ----------------------------------------------------------------------------------

    @property
    def defers(self) -> bool:
        """Wait in the triggerer: ``deferrable`` and not an explicit ``mode="reschedule"``."""
        return self.deferrable and self.mode != "reschedule"

    def poke(self, context: Any) -> bool:
        done, self._summary = self.look(context)
        return done

    def timed_out(self, summary: dict[str, Any], message: str) -> dict[str, Any]:
        """``timeout`` ran out: hand over with ``timed_out: True``, or fail if asked to."""
        if self.fail_on_timeout:
            raise AirflowSensorTimeout(message)
        self.log.warning("%s; handing over what arrived", message)
        return {**summary, "timed_out": True}

    def render_times(self) -> None:
        """``timeout`` and ``poke_interval`` as rendered (text from a template) to seconds."""
        self.timeout = seconds(self.timeout, "timeout")
        self.poke_interval = seconds(self.poke_interval, "poke_interval")

    def execute(self, context: Any) -> dict[str, Any] | None:
        self.render_times()
        if not self.defers:
            self.before_poke(context)
            try:
                super().execute(context)  # poke / reschedule, poke_interval, timeout: Airflow's loop
            except AirflowSensorTimeout:
                if self.fail_on_timeout or self.soft_fail:
                    raise
                _, summary = self.look(context)
                return self.timed_out(summary, self.timeout_message(summary))
            return {**self._summary, "timed_out": False}
        if self.poke(context):
            return {**self._summary, "timed_out": False}
        self.defer(
            trigger=self.trigger(context, self._summary, self.clock() + self.timeout),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout) + DEFERRAL_SLACK,
        )
        return None

    def execute_complete(self, context: Any, event: dict[str, Any] | None = None) -> dict[str, Any]:
        if not event:
            raise AirflowException(f"{self.task_id}: wait failed: no event")
        if event.get("status") == "error":  # a retry may help (warehouse); subclasses fail harder
            raise AirflowException(f"{self.task_id}: wait failed: {event.get('message')}")
        summary = self.summary_of_event(context, event)
        if event.get("status") == "timeout":
            return self.timed_out(summary, self.timeout_message(summary))
        return {**summary, "timed_out": False}
