"""The stand-in images and the host-network override ``make compose-test`` uses (docker/standin/),
checked without a Docker engine: the merged compose file, the ports, the entrypoint's commands.
The stack itself runs in ``make compose-test`` (tests/deploy/compose_run.py)."""

from __future__ import annotations

import re
import subprocess

import yaml

from tests.deploy import compose_run
from tests.deploy.test_compose import COMPOSE, ENV_EXAMPLE, EXPECTED_SERVICES, REPO, _docker_compose

STANDIN = REPO / "docker" / "standin"
OVERRIDE = REPO / compose_run.OVERRIDE
# what a machine may already run: PostgreSQL, Redis, an Airflow (api-server, log servers, health)
TAKEN_PORTS = {5432, 6379, 8080, 8090, 8793, 8794, 8974}
SERVICE_HOSTS_RE = re.compile(r"[@/](postgres|redis|airflow-apiserver|receiver):\d")


def merged_config() -> dict:
    out = subprocess.run(
        [_docker_compose(), "-f", str(COMPOSE), "-f", str(OVERRIDE), "--env-file", str(ENV_EXAMPLE), "config"],
        capture_output=True, text=True, cwd=REPO, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    return yaml.safe_load(out.stdout)


def test_every_service_is_on_the_host_network_and_reaches_the_others_on_127_0_0_1():
    services = merged_config()["services"]
    assert set(services) == EXPECTED_SERVICES
    for name, service in services.items():
        assert service.get("network_mode") == "host", name
        for key, value in (service.get("environment") or {}).items():
            # service names resolve on no host network: every URL names 127.0.0.1
            assert not SERVICE_HOSTS_RE.search(str(value)), (name, key, value)
        assert name == "airflow-init" or "healthcheck" in service, name


def test_the_override_ports_are_free_of_the_usual_ones_and_are_the_ones_the_test_uses():
    defaults = {
        m[0]: int(m[1]) for m in re.findall(r"\$\{(STANDIN_[A-Z_]+_PORT):-(\d+)\}", OVERRIDE.read_text())
    }
    assert defaults == compose_run.PORTS
    assert len(set(defaults.values())) == len(defaults)
    assert not set(defaults.values()) & TAKEN_PORTS


def test_no_registry_or_mirror_host_is_written_in_the_stand_in():
    """The mirror and the pip index are read from the machine at build time."""
    hosts = set()
    for path in STANDIN.iterdir():
        hosts |= set(re.findall(r"https?://([^/:\s\"'$]+)", path.read_text()))
    # the only host: Airflow's constraint files (tried, the lock used when unreachable)
    assert hosts == {"raw.githubusercontent.com", "127.0.0.1"}, hosts


def run_entrypoint(tmp_path, *args: str, **env: str) -> subprocess.CompletedProcess:
    """entrypoint.sh with an ``airflow`` on PATH that records its arguments."""
    fake = tmp_path / "bin"
    fake.mkdir(exist_ok=True)
    (fake / "airflow").write_text(
        '#!/bin/sh\necho "airflow $*" >> "$CALLS"\n[ "$1 $2" != "db check" ] || exit "$DB"\n'
    )
    (fake / "airflow").chmod(0o755)
    calls = tmp_path / "calls"
    calls.write_text("")
    environ = {
        "PATH": f"{fake}:/usr/bin:/bin",
        "CALLS": str(calls),
        "DB": "0",
        "CONNECTION_CHECK_SLEEP_TIME": "0",
    }
    return subprocess.run(
        ["bash", str(STANDIN / "entrypoint.sh"), *args], env={**environ, **env},
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip


def test_entrypoint_runs_the_compose_commands_as_airflow_commands_after_the_database_answers(tmp_path):
    for command in (["api-server"], ["scheduler"], ["dag-processor"], ["triggerer"], ["celery", "worker"]):
        done = run_entrypoint(tmp_path, *command)
        assert done.returncode == 0, done.stderr
        assert (tmp_path / "calls").read_text().splitlines() == [
            "airflow db check",
            f"airflow {' '.join(command)}",
        ]


def test_entrypoint_runs_bash_and_python_as_given_and_gives_up_on_a_database_that_never_answers(tmp_path):
    done = run_entrypoint(tmp_path, "bash", "-c", "echo init")
    assert done.stdout == "init\n" and (tmp_path / "calls").read_text() == ""
    done = run_entrypoint(tmp_path, "scheduler", DB="1", CONNECTION_CHECK_MAX_COUNT="2")
    assert done.returncode == 1 and "not reachable after 2 tries" in done.stderr
    assert (tmp_path / "calls").read_text().splitlines() == ["airflow db check"] * 3
    done = run_entrypoint(tmp_path, "triggerer", DB="1", CONNECTION_CHECK_MAX_COUNT="0")
    assert done.returncode == 0 and (tmp_path / "calls").read_text().splitlines() == ["airflow triggerer"]
