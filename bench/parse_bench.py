"""What each project DAG file adds to a DAG-file parse (target: < 5 ms beyond a DAG of its shape).

A dag-processor parses each file in a fresh child process that has imported ``airflow.sdk``
and the ``airflow.*`` modules the DAG file names (its parent pre-imports those, once, with
``parsing_pre_import_modules``; the probe does the same before timing). Airflow loads
``dag``/``task``/``Param`` and the DAG machinery lazily on first use, a cost every DAG file pays,
even the simplest. So each file is measured two ways, each in a fresh interpreter per run:

* **over a trivial DAG**: the process has imported
  ``airflow.sdk`` and parsed a trivial cron-scheduled DAG file that imports ``dag``, ``task``
  and ``Param`` (:data:`TRIVIAL_DAG`); then the project file is parsed and timed. This is what
  the file itself costs: its own imports and DAG construction, not Airflow's lazy loading;
* **over a bare** ``import airflow.sdk``: the project file is the first DAG file of the process.

The baseline printed with them, measured in the same run: the trivial DAG file over a bare
``import airflow.sdk``. Times are medians of :data:`REPEATS` processes, in wall-clock ms and in
CPU ms of the parsing thread (this machine may be shared: CPU time is what the file costs, wall
time also holds the waits for a core). Each file is compared with a generated DAG of the same
shape (the file's params, as many no-op tasks, no project code) measured the same way: Airflow
deep-copies every DAG param into each operator it builds (several times per ``@task``) and
checks each param's JSON schema, so a DAG with many form params and tasks costs Airflow itself a
fixed amount that no change to the file's code removes. The verdict: the file's CPU figure
beyond its shape's, under :data:`SHAPE_TARGET_MS`. For a file that misses it, the modules it
imports beyond the trivial DAG's are listed with their cumulative import time
(``python -X importtime``), which is where to look first.

The project's own modules (``phonecheck_airflow``, ``phonecheck``) are byte-compiled first, as
``pip install`` does when the image installs the package: the dag-processor loads them from
``.pyc``. Without that, under ``PYTHONDONTWRITEBYTECODE`` (set on the development machines and in
CI, and the editable install has no bytecode) every probe compiled each imported project module
from source and the figure grew with the size of the modules' source, not with what a parse costs
in a deployment. The DAG file itself is still compiled from source on every probe.

Run: ``python -m bench.parse_bench [dag_file_stem ...]`` or ``make bench``.
"""

from __future__ import annotations

import compileall
import importlib.util
import subprocess
import sys
import tempfile
from pathlib import Path
from statistics import median

from bench.sizes import note, pick, tiny

DAGS = Path(__file__).resolve().parents[1] / "dags"
REPEATS = pick(5, 1)
#: What a file may cost beyond a generated DAG of its own shape (its params and as many no-op
#: tasks, no project code): the project's own share of the parse.
SHAPE_TARGET_MS = 5.0

TRIVIAL_DAG = """
from datetime import datetime

from airflow.sdk import Param, dag, task


@dag(schedule="0 3 * * *", start_date=datetime(2026, 1, 1), catchup=False,
     params={"n": Param(1, type="integer")})
def parse_bench_trivial():
    @task
    def noop(n: int = 1) -> int:
        return n

    noop()


parse_bench_trivial()
"""

#: What a dag-processor child has when it starts on a file: ``airflow.sdk``, and the ``airflow.*``
#: modules the file names, which the parent imported for it (``parsing_pre_import_modules``,
#: on by default; Airflow's own ``iter_airflow_imports`` finds them).
_CHILD = """
import importlib, runpy, sys, time
import airflow.sdk
for module in filter(None, sys.argv[3].split(",")):
    importlib.import_module(module)
"""


#: The project's packages, byte-compiled before measuring (as in the image).
PROJECT_PACKAGES = ("phonecheck_airflow", "phonecheck")


def compile_project() -> list[str]:
    """Byte-compile the project's packages in place (``__pycache__``, git-ignored); their dirs."""
    found = []
    for name in PROJECT_PACKAGES:
        spec = importlib.util.find_spec(name)
        for location in spec.submodule_search_locations or []:
            if not compileall.compile_dir(location, quiet=1):
                raise RuntimeError(f"could not byte-compile {location}")
            found.append(location)
    return found


def _pre_imported(path: Path) -> str:
    """The ``airflow.*`` modules the dag-processor's parent imports for ``path`` (argv[3])."""
    from airflow.utils.file import iter_airflow_imports

    return ",".join(iter_airflow_imports(str(path)))


#: argv: [file to time, file parsed first or "", pre-imported modules]; prints wall and CPU ms.
_PROBE = (
    _CHILD
    + """
if sys.argv[2]:
    runpy.run_path(sys.argv[2], run_name="parse_bench_first")
wall, cpu = time.perf_counter(), time.thread_time()
runpy.run_path(sys.argv[1], run_name="parse_bench_probe")
print((time.perf_counter() - wall) * 1000, (time.thread_time() - cpu) * 1000)
"""
)

_IMPORTS = (
    _CHILD
    + """
runpy.run_path(sys.argv[2], run_name="parse_bench_first")
print("--- probe ---", file=sys.stderr, flush=True)
runpy.run_path(sys.argv[1], run_name="parse_bench_probe")
"""
)


def _measure(path: Path, first: Path | None) -> tuple[float, float]:
    walls, cpus = [], []
    for _ in range(REPEATS):
        out = subprocess.run(
            [sys.executable, "-c", _PROBE, str(path), str(first or ""), _pre_imported(path)],
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        )
        wall, cpu = out.stdout.strip().splitlines()[-1].split()
        walls.append(float(wall))
        cpus.append(float(cpu))
    return median(walls), median(cpus)


def heaviest_imports(path: Path, trivial: Path, top: int = 4) -> tuple[list[tuple[str, float]], ...]:
    """The modules ``path`` imports itself beyond the trivial DAG's, and the ``airflow.*``
    modules those pull in, each by cumulative ms (heaviest first)."""
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", _IMPORTS, str(path), str(trivial), _pre_imported(path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    own, airflow = [], []
    for line in out.stderr.split("--- probe ---", 1)[-1].splitlines():
        if not line.startswith("import time:"):
            continue
        _, cumulative, name = line[len("import time:") :].split("|")
        try:
            entry = (name.strip(), int(cumulative) / 1000)
        except ValueError:  # the header line
            continue
        if not name.startswith("  "):  # imported by the DAG file itself
            own.append(entry)
        elif entry[0].startswith("airflow."):
            airflow.append(entry)
    return tuple(sorted(found, key=lambda item: -item[1])[:top] for found in (own, airflow))


#: argv: [DAG file]; prints the JSON shape of its DAG: params (value, description, schema), tasks.
_SHAPE = """
import json, sys
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
dag = next(iter(bag.dags.values()))
params = {k: {"value": p.value, "description": p.description, "schema": p.schema} for k, p in dag.params.items()}
outlets = [sorted(getattr(o, "name", str(o)) for o in t.outlets) for t in dag.tasks if t.outlets]
scheduled = dag.schedule is not None  # an unscheduled DAG may have params without a default
print(json.dumps({"params": params, "tasks": len(dag.tasks), "outlets": outlets, "scheduled": scheduled}, default=str))
"""


def same_shape_dag(path: Path, into: Path) -> tuple[Path, int, int]:
    """A DAG file with ``path``'s params, as many no-op ``@task`` tasks (the first ones with the
    same Asset outlets as the file's tasks: Airflow loads its Asset machinery for them), and
    nothing of the project: what Airflow alone spends building a DAG of that shape (it deep-copies
    the DAG's params into every operator and checks every param's schema). Returns (file,
    params, tasks)."""
    import json

    out = subprocess.run(
        [sys.executable, "-c", _SHAPE, str(path)], capture_output=True, text=True, check=True, timeout=120
    )
    shape = json.loads(out.stdout.strip().splitlines()[-1])
    params = {name: (p["value"], p["description"], p["schema"]) for name, p in shape["params"].items()}
    target = into / f"shape_of_{path.stem}.py"
    schedule = repr("0 3 * * *") if shape.get("scheduled", True) else None
    target.write_text(
        "from datetime import datetime\n\nfrom airflow.sdk import Asset, Param, dag, task\n\n"
        f"PARAMS = {params!r}\nOUTLETS = {shape.get('outlets', [])!r}\n\n\n"
        f"@dag(schedule={schedule}, "
        "start_date=datetime(2026, 1, 1), catchup=False,\n"
        "     params={k: Param(v, d, schema=s) for k, (v, d, s) in PARAMS.items()})\n"
        "def parse_bench_same_shape():\n"
        "    previous = None\n"
        f"    for i in range({shape['tasks']}):\n"
        "        outlets = [Asset(name=n) for n in OUTLETS[i]] if i < len(OUTLETS) else []\n\n"
        "        @task(task_id=f'noop_{i}', outlets=outlets)\n"
        "        def noop() -> int:\n"
        "            return 1\n\n"
        "        current = noop()\n"
        "        if previous is not None:\n"
        "            previous >> current\n"
        "        previous = current\n\n\n"
        "parse_bench_same_shape()\n"
    )
    return target, len(params), shape["tasks"]


def main(names: list[str]) -> int:
    """Every DAG file, or those whose names (without ``.py``) are given (a tiny run: one file)."""
    if not names and tiny():
        names = ["nxcloud_number_check"]
    files = sorted(
        p for p in DAGS.glob("*.py") if not p.name.startswith("_") and p.stem in (names or [p.stem])
    )
    compiled = compile_project()
    print(f"byte-compiled the project's modules first (as pip does in the image): {', '.join(compiled)}")
    with tempfile.TemporaryDirectory(prefix="parse-bench-") as tmp:
        trivial = Path(tmp) / "trivial_dag.py"
        trivial.write_text(TRIVIAL_DAG)
        base_wall, base_cpu = _measure(trivial, None)
        print(
            f"baseline: the trivial DAG file over `import airflow.sdk` = {base_wall:.1f} ms wall, "
            f"{base_cpu:.1f} ms CPU (median of {REPEATS} processes)"
        )
        missed = 0
        for path in files:
            wall, cpu = _measure(path, trivial)
            bare_wall, bare_cpu = _measure(path, None)
            shape, n_params, n_tasks = same_shape_dag(path, Path(tmp))
            _, shape_cpu = _measure(shape, trivial)
            beyond = cpu - shape_cpu
            verdict = "meets" if beyond < SHAPE_TARGET_MS else "MISSES"
            missed += verdict == "MISSES"
            print(
                f"FIGURE parse {path.name}: +{cpu:.1f} ms CPU ({wall:.1f} ms wall) over a trivial DAG, "
                f"+{bare_cpu:.1f} ms CPU ({bare_wall:.1f} ms wall) over `import airflow.sdk`; a DAG of its "
                f"shape ({n_params} params, {n_tasks} no-op tasks, no project code) +{shape_cpu:.1f} ms CPU: "
                f"this file {beyond:+.1f} ms beyond its shape, target < {SHAPE_TARGET_MS:.0f} ms {verdict}{note()}"
            )
            if verdict == "MISSES" and not tiny():
                own, airflow = (
                    ", ".join(f"{name} {ms:.0f} ms" for name, ms in found)
                    for found in heaviest_imports(path, trivial)
                )
                print(
                    f"  imports beyond the trivial DAG's: {own}; Airflow modules they load: {airflow or '-'}"
                )
        print(f"{len(files) - missed} of {len(files)} DAG files meet the target")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
