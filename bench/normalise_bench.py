"""Offline normalisation speed (``make bench``; not a test).

The figure: numbers/s of :func:`phonecheck.numbers.normalise` on one core, against the
``phonenumbers`` library doing the least a validator does with it (``parse`` +
``is_valid_number`` + ``format_number(E164)``) on the same inputs, measured alternately in the
same run (``BENCH_NORMALISE_ROUNDS`` rounds, default 3; medians; the ratio per round, then its
median, because the machine is shared). The process is pinned to one CPU and timed in CPU
seconds (``time.process_time``) as well as wall seconds. Target: at least 30,000 numbers/s.

The inputs are a bulk list as customers send it: Mexican numbers in international, national and
vendor (bare digits) form, other countries, about 5% in Mexico's pre-2019 forms and 2% invalid
(``BENCH_NUMBERS``, default 200,000). A second line times the whole ``prepare`` step
(:func:`phonecheck.intake.prepare_numbers`: normalise, freshness query, COPY into
``ops.run_number``) on a throw-away warehouse, so the share of normalisation in it is visible.
``python -m bench.normalise_bench --profile`` prints where the time of ``normalise`` goes.
"""

from __future__ import annotations

import cProfile
import os
import pstats
import random
import statistics
import sys
import time
from collections.abc import Callable

import phonenumbers

from bench import sizes
from phonecheck.numbers import normalise

N = sizes.pick(200_000, 2_000, env="BENCH_NUMBERS")
ROUNDS = int(os.environ.get("BENCH_NORMALISE_ROUNDS", "3"))
TARGET_PER_S = 30_000
REGION = "MX"


def make_inputs(count: int, seed: int = 11) -> list[str]:
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        n = rng.randrange(10**8)
        roll = rng.random()
        if roll < 0.40:
            out.append(f"+52 55 {n // 10**4:04d} {n % 10**4:04d}")
        elif roll < 0.65:
            out.append(f"(55) {n // 10**4:04d}-{n % 10**4:04d}")
        elif roll < 0.78:
            out.append(f"5281{n:08d}")
        elif roll < 0.83:
            out.append(f"+57 300 {n % 10**7:07d}")
        elif roll < 0.88:
            out.append(f"+1 212 555 {n % 10**4:04d}" if roll < 0.85 else f"+44 7400 {n % 10**6:06d}")
        elif roll < 0.93:
            out.append(f"+86 138 {n:08d}")
        elif roll < 0.98:
            out.append(f"+52 1 33 {n:08d}" if roll < 0.955 else f"044 81 {n:08d}")
        else:
            out.append(f"+52 55 {n % 10**5}" if roll < 0.99 else "not a number")
    return out


def raw_phonenumbers(inputs: list[str]) -> None:
    for text in inputs:
        try:
            number = phonenumbers.parse(text, REGION)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(number):
            phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def ours(inputs: list[str]) -> None:
    for text in inputs:
        normalise(text, REGION)


def timed(fn: Callable[[list[str]], None], inputs: list[str]) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    fn(inputs)
    return time.perf_counter() - wall, time.process_time() - cpu


def prepare_figure(inputs: list[str]) -> str:
    from phonecheck import warehouse
    from phonecheck.intake import RunContext, prepare_numbers

    with warehouse.throwaway_database(warehouse.resolve_dsn(), prefix="phonecheck_bench") as dsn:
        warehouse.migrate(dsn)
        with warehouse.connect(dsn) as conn:
            t0 = time.perf_counter()
            summary = prepare_numbers(
                conn,
                vendor="nxcloud",
                entries=iter(inputs),
                default_region=REGION,
                freshness_days=30,
                check_level=1,
                ctx=RunContext("bench", "normalise"),
            )
            took = time.perf_counter() - t0
    return (
        f"FIGURE prepare: {len(inputs) / took:,.0f} numbers/s through prepare_numbers "
        f"({len(inputs):,} in {took:.1f} s wall, {summary.to_check:,} to check, {summary.rejected:,} rejected, "
        f"{summary.rewritten:,} rewritten)"
    )


def main(argv: list[str]) -> int:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core, as the figure says
    inputs = make_inputs(N)
    if "--profile" in argv:
        profile = cProfile.Profile()
        profile.runcall(ours, inputs)
        pstats.Stats(profile).sort_stats("tottime").print_stats(15)
        return 0
    ours(inputs[:2000])  # load each region's metadata once, outside the timings
    raw_phonenumbers(inputs[:2000])
    ratios, ours_rates, raw_rates = [], [], []
    for round_no in range(ROUNDS):
        raw_wall, raw_cpu = timed(raw_phonenumbers, inputs)
        our_wall, our_cpu = timed(ours, inputs)
        ours_rates.append(N / our_cpu)
        raw_rates.append(N / raw_cpu)
        ratios.append(raw_cpu / our_cpu)
        print(
            f"round {round_no + 1}: normalise {N / our_cpu:,.0f}/s cpu ({N / our_wall:,.0f}/s wall), "
            f"phonenumbers {N / raw_cpu:,.0f}/s cpu ({N / raw_wall:,.0f}/s wall)",
            flush=True,
        )
    rate = statistics.median(ours_rates)
    verdict = "met" if rate >= TARGET_PER_S else "MISSED"
    verdict = sizes.note().strip() if sizes.tiny() else verdict
    print(
        f"FIGURE normalise: {rate:,.0f} numbers/s on one core (CPU time, {N:,} mixed inputs) = "
        f"{statistics.median(ratios):.2f}x raw phonenumbers parse+is_valid+format "
        f"({statistics.median(raw_rates):,.0f}/s, same run); target >= {TARGET_PER_S:,}/s: {verdict}"
    )
    print(prepare_figure(inputs), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
