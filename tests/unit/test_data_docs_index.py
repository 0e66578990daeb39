"""The Data Docs index and its ledger (phonecheck.quality.gx.record_run): concurrent validate
tasks each add their run; the index lists the newest first, escaped, readable by others."""

from __future__ import annotations

import json
import multiprocessing
import stat

from phonecheck.quality.gx import RUNS_LEDGER, record_run, write_index


def _record_many(site: str, worker: int, runs: int) -> None:
    from pathlib import Path

    for i in range(runs):
        record_run(
            Path(site),
            {
                "run": f"w{worker}-r{i}",
                "table": "telco.nxcloud_number_check",
                "success": i % 2 == 0,
                "failed": i % 2,
                "validated_at": f"2026-11-24T00:{worker:02d}:{i:02d}",
                "page": f"validations/s/w{worker}-r{i}/p.html",
            },
        )


def test_concurrent_writers_lose_no_run(tmp_path):
    workers, runs = 4, 25
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_record_many, args=(str(tmp_path), w, runs)) for w in range(workers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    lines = (tmp_path / RUNS_LEDGER).read_text().splitlines()
    assert sorted(json.loads(line)["run"] for line in lines) == sorted(
        f"w{w}-r{i}" for w in range(workers) for i in range(runs)
    )
    index = (tmp_path / "index.html").read_text()
    assert all(f"href='validations/s/w{w}-r{i}/p.html'" in index for w in range(workers) for i in range(runs))
    assert stat.S_IMODE((tmp_path / "index.html").stat().st_mode) == 0o644
    assert not list(tmp_path.glob(".index-*"))  # no temp file left behind


def test_index_is_newest_first_limited_and_escaped(tmp_path):
    for i in range(5):
        record_run(tmp_path, {"run": f"r{i}<b>", "table": "t", "success": True, "page": f"p{i}.html"})
    with (tmp_path / RUNS_LEDGER).open("a") as ledger:
        ledger.write('"a stray line"\n{"cut": \n')  # damage the ledger: the index still renders
    index = write_index(tmp_path, limit=3).read_text()
    assert "r4&lt;b&gt;" in index and "r4<b>" not in index
    assert index.index("r4&lt;") < index.index("r3&lt;") < index.index("r2&lt;")
    assert "r1&lt;" not in index
