"""The Docker side of ``make compose-test`` (tests/deploy/compose_run.py): the tools installed
when missing, an engine started when none runs, the images built, and everything removed again.

The engine this starts is what a sandboxed CI machine allows: ``dockerd`` as root with the overlay2
driver, no iptables rules and no default bridge (every container of the stack uses the host
network, docker/standin/docker-compose.hostnet.yaml). An engine that was already running is used
as it is and left running.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_BASE = REPO_ROOT / "docker" / "standin" / "build-base.sh"
STANDIN_AIRFLOW_IMAGE = "phonecheck-standin/airflow:3.3.2-python3.11"
STANDIN_IMAGES = (
    STANDIN_AIRFLOW_IMAGE,
    "phonecheck-standin/postgres:bookworm",
    "phonecheck-standin/redis:bookworm",
    "phonecheck-standin/rootfs:bookworm",
)
# command -> Debian package that provides it
TOOLS = {
    "dockerd": "docker.io",
    "docker": "docker.io",
    "docker-compose": "docker-compose",
    "debootstrap": "debootstrap",
}


def log(message: str) -> None:
    print(f"[compose-test] {message}", flush=True)


def run(*args: str, timeout: float = 600, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    """A command with its output captured; on failure the error says what it printed."""
    done = subprocess.run(args, capture_output=True, text=True, timeout=timeout, **kwargs)
    if check and done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(args)} -> {done.returncode}\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
        )
    return done


def ensure_tools() -> None:
    """apt-get install the engine, Compose 1.29 and debootstrap when a command is missing."""
    missing = sorted({pkg for cmd, pkg in TOOLS.items() if shutil.which(cmd) is None})
    if not missing:
        return
    if os.geteuid() != 0:
        raise RuntimeError(
            f"missing {missing}; install them (apt-get install {' '.join(missing)}) or run as root"
        )
    log(f"apt-get install {' '.join(missing)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    run("apt-get", "update", "-qq", timeout=600, env=env)
    run("apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing, timeout=900, env=env)


def engine_answers() -> bool:
    return subprocess.run(["docker", "info"], capture_output=True, timeout=60).returncode == 0


@dataclass
class Engine:
    """The Docker engine the test uses; ``process`` is set only when this test started it."""

    process: subprocess.Popen | None = None
    log_path: Path | None = None

    @classmethod
    def ensure(cls, timeout: float = 60) -> Engine:
        if engine_answers():
            log("using the Docker engine already running")
            return cls()
        if os.geteuid() != 0:
            raise RuntimeError("no Docker engine answers and starting one needs root")
        log_path = Path(tempfile.mkstemp(prefix="phonecheck-dockerd-", suffix=".log")[1])
        command = [
            "dockerd",
            "--iptables=false",
            "--ip6tables=false",
            "--bridge=none",
            "--storage-driver=overlay2",
        ]
        with log_path.open("wb") as out:
            process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        engine = cls(process, log_path)
        deadline = time.monotonic() + timeout
        while not engine_answers():
            if process.poll() is not None or time.monotonic() > deadline:
                engine.stop()
                raise RuntimeError(
                    f"dockerd did not start ({' '.join(command)}):\n{log_path.read_text()[-3000:]}"
                )
            time.sleep(0.5)
        log(f"started dockerd (pid {process.pid}, log {log_path})")
        return engine

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            log(f"stopped the dockerd this test started (pid {self.process.pid})")
        if self.log_path is not None:
            self.log_path.unlink(missing_ok=True)


@dataclass
class Images:
    """The stand-in bases and the project image; removed at the end unless kept."""

    project_tag: str
    built: list[str] = field(default_factory=list)

    def build(self) -> None:
        started = time.monotonic()
        run("bash", str(BUILD_BASE), timeout=2400)
        self.built.extend(STANDIN_IMAGES)
        log(f"stand-in base images built in {time.monotonic() - started:.0f} s")
        started = time.monotonic()
        # docker/Dockerfile unchanged: only its AIRFLOW_IMAGE argument names the stand-in.
        self.built.append(self.project_tag)
        run(
            "docker", "build", "--network", "host", "-f", "docker/Dockerfile",
            "--build-arg", f"AIRFLOW_IMAGE={STANDIN_AIRFLOW_IMAGE}", "-t", self.project_tag, ".",
            cwd=REPO_ROOT, timeout=2400,
        )  # fmt: skip
        log(f"project image {self.project_tag} built in {time.monotonic() - started:.0f} s")

    def remove(self) -> None:
        for tag in reversed(self.built):
            run("docker", "image", "rm", "--force", tag, check=False, timeout=300)
        cache = Path(os.environ.get("STANDIN_CACHE", "/var/tmp/phonecheck-standin"))
        shutil.rmtree(cache, ignore_errors=True)
        run("docker", "image", "prune", "--force", check=False, timeout=300)
        log(f"removed images {self.built} and {cache}")
