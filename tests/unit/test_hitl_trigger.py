"""The trigger a retried approval waits with: serialises to its own classpath, looks late."""

from __future__ import annotations

import importlib
import uuid
from datetime import UTC, datetime, timedelta

from phonecheck_airflow.triggers.hitl import FIRST_LOOK_AFTER_S, EarlierQuestionTrigger


def make(**extra) -> EarlierQuestionTrigger:
    return EarlierQuestionTrigger(
        ti_id=uuid.uuid4(), options=["Approve", "Reject"], params={}, defaults=["Reject"], multiple=False,
        timeout_datetime=datetime.now(UTC) + timedelta(hours=1), **extra,
    )  # fmt: skip


def test_it_serialises_to_its_own_classpath_and_comes_back_the_same():
    trigger = make(first_look_after_s=3)
    classpath, kwargs = trigger.serialize()
    assert classpath == "phonecheck_airflow.triggers.hitl.EarlierQuestionTrigger"
    module, name = classpath.rsplit(".", 1)
    again = getattr(importlib.import_module(module), name)(**kwargs)
    assert again.serialize() == (classpath, kwargs)
    assert kwargs["first_look_after_s"] == 3.0 and kwargs["defaults"] == ["Reject"]


def test_the_first_look_waits_past_the_executor_event_of_the_deferring_try():
    assert make().first_look_after_s == FIRST_LOOK_AFTER_S >= 5
