"""The window rules of a batch in doubt (``InDoubtWatch``) on a made-up clock, no I/O."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from phonecheck.nxcloud.in_doubt import InDoubtWatch

T0 = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
START = T0.timestamp()
WINDOW = 600.0  # the documented 5-minute push window + our 5-minute margin


def watch(*batches: str) -> InDoubtWatch:
    w = InDoubtWatch(WINDOW)
    for b in batches:
        w.track(b, T0)
    return w


def test_the_first_probe_comes_after_a_fifth_of_the_window_then_every_fifth_and_at_its_end():
    w = watch("b1")
    assert w.due(START) == [] and w.due(START + 119) == []
    assert w.due(START + 120) == ["b1"]
    w.record("b1", START + 120, False)  # not listed yet: says nothing before the window ends
    assert w.pending == ["b1"] and w.due(START + 239) == [] and w.due(START + 240) == ["b1"]
    w.record("b1", START + 590, False)  # late probe: the next one is clamped to the window's end
    assert w.due(START + 599) == [] and w.due(START + 600) == ["b1"]


def test_not_listed_after_the_window_lets_the_batch_be_sent_again():
    w = watch("b1")
    w.record("b1", START + 600, False)
    assert w.done and w.event()["unlisted"] == ["b1"] and w.event()["status"] == "settled"


def test_listed_or_a_push_settles_a_batch_at_once():
    w = watch("b1", "b2", "b3")
    w.record("b1", START + 120, True)
    w.settled_by_evidence(["b2", "unknown"])
    assert w.pending == ["b3"]
    w.record("b3", START + 600, False)
    event = w.event()
    assert (event["listed"], event["unlisted"], event["evidence"], event["probes"]) == (["b1"], ["b3"], 1, 2)


def test_refusals_never_decide_until_two_windows_then_refused_never_unlisted():
    w = watch("b1")
    for at in (120, 600, 900, 1199):  # refused before, at and after the window's end
        w.record("b1", START + at, None)
        assert w.pending == ["b1"]
    assert w.due(START + 1199 + WINDOW / 5) == ["b1"]
    w.record("b1", START + 1200, None)
    event = w.event()
    assert event["status"] == "refused" and event["refused"] == ["b1"] and event["unlisted"] == []
    assert event["refusals"] == 5


def test_an_answer_after_refusals_still_decides():
    w = watch("b1")
    w.record("b1", START + 700, None)
    w.record("b1", START + 820, False)
    assert w.event()["unlisted"] == ["b1"]


def test_a_batch_sent_again_restarts_its_window_and_the_event_is_small_json():
    w = watch("b1")
    w.record("b1", START + 600, False)
    w.track("b1", datetime.fromtimestamp(START + 650, UTC))  # resent at +650: in doubt again
    assert w.pending == ["b1"] and w.due(START + 700) == [] and w.due(START + 770) == ["b1"]
    w.track("b1", datetime.fromtimestamp(START + 650, UTC))  # the same window: nothing changes
    assert w.due(START + 770) == ["b1"]
    assert len(json.dumps(w.event())) < 200
    assert w.seconds_to_next_probe(START + 700) == 70
