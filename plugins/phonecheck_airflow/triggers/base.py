"""The base of the project's triggers: one serialisation, one naming, one polling loop.

Modelled on the amazon provider's ``AwsBaseWaiterTrigger``: the subclass never writes its own
classpath (:meth:`PhonecheckTrigger.serialize` takes it from ``type(self)``), and the parameters
every trigger shares are named once, here:

* ``warehouse_conn_id``: the warehouse (postgres) connection the trigger reads;
* ``poll_interval``: seconds between two looks (Airflow's own triggers use the same name);
* ``deadline``: epoch seconds after which a waiting trigger gives up with a ``timeout`` event.
  An absolute time, not a duration: a trigger rebuilt by another triggerer (restart, HA) keeps
  the deadline the sensor set, instead of starting a new wait.

Triggers only wait (docs/airflow.md "Triggers"): they read the warehouse (a trigger may run
twice, so they never claim or mark rows) and yield small events, a status with selectors and
counts, never data; the task that resumes reads the data from the warehouse.

Imported at parse time by DAG files that build a trigger (an ``AssetWatcher``): keep it to
``airflow.triggers.base`` (pre-imported, docs/development.md) and the standard library.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterator
from typing import Any, ClassVar

from airflow.triggers.base import BaseTrigger, TriggerEvent

from phonecheck_airflow.conn_ids import WAREHOUSE_CONN_ID


class PhonecheckTrigger(BaseTrigger):
    """Base for the project's triggers.

    **Serialisation.** ``serialize()`` returns ``("<module>.<class of self>", kwargs)`` where
    ``kwargs`` holds every parameter of the subclass's ``__init__``, read from the attribute of
    the same name. A subclass therefore stores each parameter under its own name (normalised:
    ``float(...)`` of a rendered template string), and the triggerer rebuilds an equal trigger
    from the pair. A parameter without an attribute fails loudly at ``serialize()``.

    **Loop.** :meth:`run` is every trigger's: it finds the warehouse (an unknown connection is
    one ``error`` event for a task trigger) and hands over to :meth:`wait`. The default
    :meth:`wait` is the common shape: ask :meth:`check` (one read-only look), yield its event if
    it returned one, else give up at ``deadline`` with :meth:`timeout_event`, else sleep
    ``poll_interval`` seconds. A failing look (warehouse restarting) is logged by type and
    retried on the next round; the deadline still holds. A task trigger (``fires_once = True``)
    returns after its first event; an event trigger (used by an ``AssetWatcher``) keeps
    watching. So a subclass says only what to check. The two whose wait has another shape (the
    AccuAuth one polls thousands of tasks with per-task backoff from one coroutine; the NXCLOUD
    in-doubt one keeps a window per batch) override :meth:`wait`, keep ``run()``, the naming and
    the deadline.

    :param warehouse_conn_id: the warehouse (postgres) connection.
    :param poll_interval: seconds between two looks.
    :param deadline: epoch seconds after which the trigger fires ``timeout``; ``None`` = no
        deadline of its own (the deferral's ``timeout`` bounds the wait).
    """

    #: True for a trigger a task defers to (one event ends it); False for an event trigger.
    fires_once: ClassVar[bool] = True

    def __init__(
        self,
        *,
        warehouse_conn_id: str = WAREHOUSE_CONN_ID,
        poll_interval: float = 30.0,
        deadline: float | None = None,
    ) -> None:
        super().__init__()
        self.warehouse_conn_id = warehouse_conn_id
        self.poll_interval = float(poll_interval)
        self.deadline = None if deadline is None else float(deadline)

    # ---- serialisation -------------------------------------------------------------------------

    @classmethod
    def serialized_fields(cls) -> tuple[str, ...]:
        """The names ``serialize()`` writes: the parameters of ``cls.__init__``, in order, and,
        where that ``__init__`` passes ``**kwargs`` on, those of the parent's (down to, not
        including, this base: a subclass names the shared parameters it accepts)."""
        names: list[str] = []
        for klass in cls.__mro__:
            if klass is PhonecheckTrigger or not issubclass(klass, PhonecheckTrigger):
                break
            if "__init__" not in vars(klass):
                continue
            parameters = inspect.signature(klass.__init__).parameters.values()
            names += [
                p.name
                for p in parameters
                if p.name != "self"
                and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
                and p.name not in names
            ]
            if not any(p.kind is p.VAR_KEYWORD for p in parameters):
                break
        return tuple(names)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        cls = type(self)  # the subclass: its classpath is what the triggerer imports
        return (
            f"{cls.__module__}.{cls.__qualname__}",
            {name: getattr(self, name) for name in cls.serialized_fields()},
        )

    # ---- the common loop -----------------------------------------------------------------------

    def deadline_passed(self) -> bool:
        return self.deadline is not None and time.time() >= self.deadline

    async def warehouse_dsn(self) -> str:
        """The warehouse DSN, read with ``aget_connection`` (no blocking call in the event loop)."""
        from phonecheck_airflow.warehouse import async_warehouse_dsn

        return await async_warehouse_dsn(self.warehouse_conn_id)

    async def check(self, dsn: str) -> dict[str, Any] | None:
        """One read-only look: the payload of the event to fire now, or ``None`` to keep waiting.
        Subclasses using the default :meth:`run` implement it."""
        raise NotImplementedError(f"{type(self).__name__} must implement check() or override run()")

    def timeout_event(self) -> dict[str, Any]:
        """The payload fired at ``deadline`` (counts of the last look, if the subclass kept any)."""
        return {"status": "timeout"}

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Find the warehouse, then :meth:`wait`. The one entry point of every trigger here."""
        try:
            dsn = await self.warehouse_dsn()
        except Exception as exc:
            if not self.fires_once:  # an event trigger fails; the triggerer logs it and restarts it
                raise
            # a task trigger reports it: the sensor fails with the reason, not with a timeout
            yield TriggerEvent(
                {"status": "error", "message": f"warehouse connection: {type(exc).__name__}: {exc}"}
            )
            return
        async for event in self.wait(dsn):
            yield event

    async def wait(self, dsn: str) -> AsyncIterator[TriggerEvent]:
        """The check-or-sleep loop. ``looks`` counts the looks (a timeout event may report it)."""
        self.looks = 0
        while True:
            self.looks += 1
            try:
                payload = await self.check(dsn)
            except Exception as exc:  # noqa: BLE001 - a transient warehouse error: keep waiting, say so
                self.log.warning(
                    "%s: warehouse look failed (%s); trying again", type(self).__name__, type(exc).__name__
                )
                payload = None
            if payload is not None:
                yield TriggerEvent(payload)
                if self.fires_once:
                    return
            elif self.deadline_passed():
                yield TriggerEvent(self.timeout_event())
                return
            await asyncio.sleep(self.poll_interval)
