"""Wait on a human-in-the-loop question an earlier try of the task asked.

:class:`EarlierQuestionTrigger` is the standard provider's ``HITLTrigger`` (the triggerer reads
the task instance's HITL detail and fires with its answer, or with the default at the timeout)
with one change: its first look comes ``first_look_after_s`` seconds after the deferral.

Why not simply park the retried task in ``awaiting_input`` again: when the answer is already
there, Airflow 3.3 resumes a parking task in the same request, and the executor's "success" for
the parking attempt then meets a task already queued again (the deferral race, docs/airflow.md):
the resumed try is failed, and so is the next. A trigger that first looks some seconds later lets
that event pass. It derives from the provider's trigger, not from
:class:`~phonecheck_airflow.triggers.base.PhonecheckTrigger`: it reads Airflow's own HITL detail
through the triggerer, not the warehouse, and keeps the provider's event payload.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from airflow.providers.standard.triggers.hitl import HITLTrigger
from airflow.triggers.base import TriggerEvent

#: Seconds between the deferral and the first look: well past the executor's event for the
#: deferring attempt (the race needs a resume within about a second).
FIRST_LOOK_AFTER_S = 10.0


class EarlierQuestionTrigger(HITLTrigger):
    """``HITLTrigger`` whose first look comes ``first_look_after_s`` seconds after deferral."""

    def __init__(self, *, first_look_after_s: float = FIRST_LOOK_AFTER_S, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.first_look_after_s = float(first_look_after_s)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        _, kwargs = super().serialize()
        return f"{type(self).__module__}.{type(self).__qualname__}", {
            **kwargs,
            "first_look_after_s": self.first_look_after_s,
        }

    async def run(self) -> AsyncIterator[TriggerEvent]:
        await asyncio.sleep(self.first_look_after_s)
        async for event in super().run():
            yield event
