"""docker-compose.yaml refers only to things that exist, and takes every secret from .env.

No Docker engine is needed: the file is read as YAML and each reference is checked against
the repository (build context, Dockerfile and what it copies, ``python -m`` modules, Airflow
CLI commands, bind-mounted paths, ``${VAR}`` settings in .env.example). When Debian's
``docker-compose`` (1.29) is installed, ``docker-compose config -q`` validates the file too
(CI installs it; the test says so and skips without it).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yaml"
ENV_EXAMPLE = REPO / ".env.example"

AIRFLOW_SERVICES = {
    "airflow-init",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
}
EXPECTED_SERVICES = AIRFLOW_SERVICES | {"postgres", "redis", "receiver"}
# ${VAR}, ${VAR:-default}, ${VAR:?error}; "$$" is compose's escape for a literal "$".
VARIABLE_RE = re.compile(
    r"(?<!\$)\$(?:\{([A-Za-z_][A-Za-z0-9_]*)(?::?[-?][^}]*)?\}|([A-Za-z_][A-Za-z0-9_]*))"
)
SECRET_NAME_RE = re.compile(
    r"PASSWORD|SECRET|TOKEN|FERNET|_KEY$|^AIRFLOW_CONN_|DSN|SQL_ALCHEMY_CONN|BROKER_URL|RESULT_BACKEND"
)


def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def services() -> dict[str, dict]:
    return compose()["services"]


def env_example() -> dict[str, str]:
    """KEY=VALUE lines of .env.example; surrounding quotes removed like compose's dotenv does."""
    values = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep, f".env.example: not KEY=VALUE: {line!r}"
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip()] = value
    return values


def as_argv(command) -> list[str]:
    return list(command) if isinstance(command, list) else shlex.split(command)


def environment(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def test_the_stack_has_every_service_with_a_healthcheck():
    found = services()
    assert EXPECTED_SERVICES <= set(found), EXPECTED_SERVICES - set(found)
    missing = [name for name, svc in found.items() if name != "airflow-init" and "healthcheck" not in svc]
    assert missing == []
    assert found["postgres"]["image"].startswith("postgres:16")
    assert found["redis"]["image"].startswith("redis:")


def test_build_context_dockerfile_and_copied_paths_exist():
    ignored = {line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()}
    builds = {name: svc["build"] for name, svc in services().items() if "build" in svc}
    assert AIRFLOW_SERVICES | {"receiver"} <= set(builds)
    for name, build in builds.items():
        context = (REPO / build["context"]).resolve()
        dockerfile = context / build.get("dockerfile", "Dockerfile")
        assert context.is_dir(), f"{name}: build context {context} missing"
        assert dockerfile.is_file(), f"{name}: {dockerfile} missing"
        for line in dockerfile.read_text().splitlines():
            parts = line.split()
            if parts and parts[0] == "COPY":
                sources = [p for p in parts[1:-1] if not p.startswith("--")]
                for source in sources:
                    assert (context / source).exists(), f"{dockerfile.name}: COPY {source} not in the context"
                    assert source not in ignored, f"{source} is copied but excluded by .dockerignore"


def test_the_image_is_the_official_airflow_image_of_the_locked_version():
    dockerfile = (REPO / "docker" / "Dockerfile").read_text()
    locked = re.search(
        r"^apache-airflow==(\S+)$", (REPO / "requirements.txt").read_text(), re.MULTILINE
    ).group(1)
    assert f"ARG AIRFLOW_IMAGE=apache/airflow:{locked}-python3.11" in dockerfile
    assert f"ARG AIRFLOW_VERSION={locked}" in dockerfile
    assert "-r /opt/phonecheck/requirements.txt" in dockerfile
    assert "pip install --no-deps /opt/phonecheck" in dockerfile


def _commands() -> dict[str, list[tuple[str, list[str]]]]:
    """Every command line a service runs, with where it comes from: ``command`` (for the
    Airflow services, an ``airflow`` subcommand: the image's entrypoint adds ``airflow``),
    ``script`` (a line of a ``bash -c`` command) or ``healthcheck``."""
    found: dict[str, list[tuple[str, list[str]]]] = {}
    for name, svc in services().items():
        lines: list[tuple[str, list[str]]] = []
        if "command" in svc:
            argv = as_argv(svc["command"])
            if argv[:2] == ["bash", "-c"]:
                script = argv[2].replace("\\\n", " ")
                lines += [("script", shlex.split(line)) for line in script.splitlines() if line.strip()]
            else:
                lines.append(("command", argv))
        test = (svc.get("healthcheck") or {}).get("test")
        if test:
            lines.append(("healthcheck", shlex.split(test[1]) if test[0] == "CMD-SHELL" else list(test[1:])))
        found[name] = lines
    return found


def _module_exists(module: str) -> bool:
    rel = Path(*module.split("."))
    for root in (REPO / "include", REPO / "plugins"):
        if (root / rel / "__main__.py").is_file() or (root / rel).with_suffix(".py").is_file():
            return True
    return False


def test_python_modules_the_services_run_exist_in_the_repo():
    checked = []
    for name, lines in _commands().items():
        for _, argv in lines:
            if argv[:2] == ["python", "-m"]:
                assert _module_exists(argv[2]), (
                    f"{name}: python -m {argv[2]}: no such module in include/ or plugins/"
                )
                checked.append(argv[2])
    assert {"phonecheck.receiver", "phonecheck.cli", "phonecheck_airflow.auth_setup"} <= set(checked)
    cli = (REPO / "include" / "phonecheck" / "cli.py").read_text()
    assert '"migrate"' in cli  # python -m phonecheck.cli migrate


_CLI_PROBE = """
import json, sys
from airflow.cli import cli_parser
import airflow.providers.celery.executors.celery_executor as celery_executor
assert hasattr(celery_executor, "app"), "no Celery app for the worker healthcheck"
parser = cli_parser.get_parser()
bad = []
for argv in json.loads(sys.argv[1]):
    try:
        parser.parse_args(argv)
    except SystemExit:
        bad.append(argv)
print(json.dumps(bad))
"""


def test_airflow_commands_the_services_run_exist():
    """Parsed by Airflow's own CLI parser, configured for CeleryExecutor as in the compose file."""
    commands = []
    for name, lines in _commands().items():
        for kind, argv in lines:
            if argv and argv[0] == "airflow":
                argv = argv[1:]
            elif not (kind == "command" and name in AIRFLOW_SERVICES and argv[0] not in ("bash", "python")):
                continue
            commands.append([a.replace("$${", "${") for a in argv])
    assert ["celery", "worker"] in commands and ["db", "migrate"] in commands, commands
    env = {**os.environ, "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor"}
    out = subprocess.run(
        [sys.executable, "-c", _CLI_PROBE, json.dumps(commands)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_every_variable_the_compose_file_reads_is_in_env_example_and_nothing_else():
    used = set()
    text = "\n".join(line for line in COMPOSE.read_text().splitlines() if not line.lstrip().startswith("#"))
    for match in VARIABLE_RE.finditer(text):
        used.add(match.group(1) or match.group(2))
    defined = set(env_example())
    assert used - defined == set(), "used in docker-compose.yaml, missing from .env.example"
    assert defined - used == set(), "in .env.example but never read by docker-compose.yaml"


def test_secrets_come_only_from_env():
    """A secret-looking setting is always a substitution, never a literal in the file."""
    literal = []
    for name, svc in services().items():
        for key, value in environment(svc).items():
            if SECRET_NAME_RE.search(key) and not key.endswith("_FILE") and "${" not in value:
                literal.append(f"{name}: {key}")
            if re.search(r"://[^/\s]*:[^/\s]*@", value) and "${" not in value.split("@")[0]:
                literal.append(f"{name}: {key} (credentials in a URL)")
    assert literal == []


def test_bind_mounts_exist_and_named_volumes_are_declared():
    declared = set(compose().get("volumes") or {})
    for name, svc in services().items():
        for volume in svc.get("volumes") or []:
            source = volume.split(":")[0] if isinstance(volume, str) else volume["source"]
            if source.startswith((".", "/")):
                assert (REPO / source).exists(), f"{name}: host path {source} does not exist"
                assert source.rstrip("/") not in ("./plugins", "plugins"), (
                    "plugins/ must not be mounted: the package is installed in the image"
                )
            else:
                assert source in declared, f"{name}: volume {source} not declared at the top level"


def test_celery_executor_settings_are_shared_by_every_airflow_service():
    for name in AIRFLOW_SERVICES:
        env = environment(services()[name])
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
        assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/", (
            name
        )
        assert "${AIRFLOW_JWT_SECRET" in env["AIRFLOW__API_AUTH__JWT_SECRET"], name
        assert "${AIRFLOW_FERNET_KEY" in env["AIRFLOW__CORE__FERNET_KEY"], name
        assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://"), name
        assert env["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql://"), name
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://"), name
        for conn in (
            "AIRFLOW_CONN_WAREHOUSE",
            "AIRFLOW_CONN_NXCLOUD_DEFAULT",
            "AIRFLOW_CONN_ACCUAUTH_DEFAULT",
        ):
            assert conn in env, f"{name}: {conn}"
        assert {"TELCO_WEBHOOK_BASE_URL", "TELCO_WEBHOOK_TOKEN", "WAREHOUSE_DSN"} <= set(env), name
    apiserver_ports = services()["airflow-apiserver"]["ports"]
    assert any(str(p).endswith(":8080") for p in apiserver_ports)


def test_init_migrates_both_databases():
    script = as_argv(services()["airflow-init"]["command"])[-1]
    assert "airflow db migrate" in script
    assert "python -m phonecheck.cli migrate" in script
    assert script.index("set -euo pipefail") < script.index("airflow db migrate")
    for name in AIRFLOW_SERVICES - {"airflow-init"} | {"receiver"}:
        depends = services()[name]["depends_on"]
        assert depends["airflow-init"]["condition"] == "service_completed_successfully", name


FAB_AUTH_MANAGER = "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager"


def test_every_airflow_service_uses_the_fab_auth_manager_of_the_lock():
    """Users and roles live in the metadata DB (FAB), not in SimpleAuthManager's file."""
    import importlib

    for name in AIRFLOW_SERVICES:
        env = environment(services()[name])
        assert env["AIRFLOW__CORE__AUTH_MANAGER"] == FAB_AUTH_MANAGER, name
        assert not any(k.startswith("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER") for k in env), name
    module, _, cls = FAB_AUTH_MANAGER.rpartition(".")
    assert hasattr(importlib.import_module(module), cls)
    assert re.search(
        r"^apache-airflow-providers-fab==", (REPO / "requirements.txt").read_text(), re.MULTILINE
    ), "the FAB provider must be in the runtime lock the image installs"


def test_init_creates_the_roles_and_logins_after_migrating():
    """airflow-init: ``airflow db migrate`` (FAB's tables too), then auth_setup's commands, which
    must exist, get every login variable they read, and take them from .env."""
    from phonecheck_airflow import auth_setup

    script = as_argv(services()["airflow-init"]["command"])[-1]
    lines = [shlex.split(line) for line in script.splitlines() if line.strip()]
    setup = next(argv for argv in lines if argv[:3] == ["python", "-m", "phonecheck_airflow.auth_setup"])
    assert setup[3:] == ["ensure-roles", "ensure-users"]
    assert set(setup[3:]) <= set(auth_setup.COMMANDS)
    assert script.index("airflow db migrate") < script.index("phonecheck_airflow.auth_setup")
    init_env = environment(services()["airflow-init"])
    for prefix, _role in auth_setup.LOGINS:
        for suffix in ("USERNAME", "PASSWORD"):
            key = f"AIRFLOW_{prefix}_{suffix}"
            assert f"${{{key}" in init_env.get(key, ""), f"airflow-init: {key} not taken from .env"
    for name in AIRFLOW_SERVICES - {"airflow-init"}:  # login secrets stay in the init container
        assert not any(k.endswith("_PASSWORD") for k in environment(services()[name])), name
    assert "airflow-auth" not in (compose().get("volumes") or {}), "no passwords file any more"


def test_auth_setup_refuses_another_auth_manager():
    """Run as airflow-init runs it, but with SimpleAuthManager configured: it says why and stops
    before touching any database (so a wrong AIRFLOW__CORE__AUTH_MANAGER cannot go unnoticed)."""
    env = {
        **os.environ,
        "AIRFLOW__CORE__AUTH_MANAGER": "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
        "AIRFLOW_ADMIN_USERNAME": "ops-admin",
        "AIRFLOW_ADMIN_PASSWORD": "pw-secret-value",
    }
    argv = [sys.executable, "-m", "phonecheck_airflow.auth_setup", "ensure-roles", "ensure-users"]
    out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode != 0
    assert "FabAuthManager" in out.stderr and "SimpleAuthManager" in out.stderr, out.stderr[-2000:]
    assert "pw-secret-value" not in out.stdout + out.stderr


def test_receiver_service_contract():
    receiver = services()["receiver"]
    assert as_argv(receiver["command"]) == ["python", "-m", "phonecheck.receiver"]
    env = environment(receiver)
    assert {"WAREHOUSE_DSN", "TELCO_WEBHOOK_TOKEN", "RECEIVER_PORT"} <= set(env)
    assert env["RECEIVER_HOST"] == "0.0.0.0"  # the default 127.0.0.1 is unreachable from outside
    assert not any(k.startswith("AIRFLOW__") for k in env), "the receiver needs no Airflow settings"
    port = env["RECEIVER_PORT"]
    assert any(str(p).endswith(f":{port}") for p in receiver["ports"])
    assert f"localhost:{port}/telco-webhooks/healthz" in " ".join(receiver["healthcheck"]["test"])
    spool = env["RECEIVER_SPOOL_DIR"]
    assert any(v.split(":")[1] == spool for v in receiver["volumes"]), (
        "the voice spool must outlive the container"
    )


def test_env_example_connections_are_valid_json_of_the_contract_types():
    values = env_example()
    nxcloud = json.loads(values["AIRFLOW_CONN_NXCLOUD_DEFAULT"])
    accuauth = json.loads(values["AIRFLOW_CONN_ACCUAUTH_DEFAULT"])
    assert nxcloud["conn_type"] == "nxcloud" and {"host", "login", "password"} <= set(nxcloud)
    assert {"appkey", "sign_algorithm", "query_timezone"} <= set(nxcloud["extra"])
    assert accuauth["conn_type"] == "accuauth" and {"host", "login", "password"} <= set(accuauth)
    assert values["TELCO_WEBHOOK_BASE_URL"].endswith("/telco-webhooks")


def test_postgres_init_script_creates_the_warehouse():
    init_dir = next(
        v.split(":")[0] for v in services()["postgres"]["volumes"] if "/docker-entrypoint-initdb.d" in v
    )
    scripts = sorted((REPO / init_dir).glob("*.sh"))
    assert scripts, f"no init script in {init_dir}"
    text = scripts[0].read_text()
    assert os.access(scripts[0], os.X_OK)
    for var in ("WAREHOUSE_DB_USER", "WAREHOUSE_DB_PASSWORD", "WAREHOUSE_DB_NAME"):
        assert var in text and var in environment(services()["postgres"])


def _docker_compose() -> str:
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip(
            "docker-compose is not installed (apt-get install docker-compose); CI (.ci/run) installs it "
            "and runs `docker-compose config -q` itself"
        )
    return binary


def _config(binary: str, env_file: Path) -> subprocess.CompletedProcess:
    # A clean environment: a variable exported in the shell would hide a gap in the env file.
    return subprocess.run(
        [binary, "-f", str(COMPOSE), "--env-file", str(env_file), "config", "-q"],
        cwd=REPO,
        env={"PATH": os.environ.get("PATH", "")},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_docker_compose_config_accepts_the_file_with_env_example():
    out = _config(_docker_compose(), ENV_EXAMPLE)
    assert out.returncode == 0, out.stderr


def test_docker_compose_config_refuses_a_missing_secret(tmp_path):
    partial = tmp_path / "partial.env"
    partial.write_text(
        "\n".join(
            line for line in ENV_EXAMPLE.read_text().splitlines() if not line.startswith("REDIS_PASSWORD=")
        )
    )
    out = _config(_docker_compose(), partial)
    assert out.returncode != 0
    assert "REDIS_PASSWORD" in out.stderr


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        name, sep, version = line.strip().partition("==")
        if sep and not line.startswith(("#", "-")):
            pins[re.sub(r"\[.*\]", "", name).lower()] = version
    return pins


def test_the_image_gets_the_runtime_lock_only_and_the_two_locks_agree():
    dockerfile = (REPO / "docker" / "Dockerfile").read_text()
    instructions = [line for line in dockerfile.splitlines() if not line.lstrip().startswith("#")]
    assert not [line for line in instructions if "requirements-dev" in line]
    runtime, dev = _pins(REPO / "requirements.txt"), _pins(REPO / "requirements-dev.txt")
    dev_only = {"pytest", "pytest-asyncio", "pytest-timeout", "hypothesis", "ruff", "pgserver"}
    assert dev_only <= set(dev)
    assert not dev_only & set(runtime), f"test/dev tools in the runtime lock: {dev_only & set(runtime)}"
    differing = {
        name: (runtime[name], dev[name]) for name in set(runtime) & set(dev) if runtime[name] != dev[name]
    }
    assert differing == {}, "the dev lock must be constrained by the runtime lock (make lock)"
    assert "-c requirements.txt" in (REPO / "requirements-dev.in").read_text().splitlines()


#: Development code the image must not ship (.dockerignore), and what shipped code may not import.
DEV_ONLY_PATHS = ("include/phonecheck/sandbox", "tools")
DEV_ONLY_MODULES = (
    "phonecheck.sandbox",
    "phonecheck_dev",
    "pytest",
    "hypothesis",
    "pgserver",
    "tests",
)


def _module_level_imports(path: Path) -> set[str]:
    """Modules imported when ``path`` is imported (function bodies are not run on import)."""
    import ast

    found: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        nested = [node]
        if isinstance(node, ast.If | ast.Try):  # e.g. "if TYPE_CHECKING:" or an optional import
            nested = list(ast.walk(node))
        for item in nested:
            if isinstance(item, ast.Import):
                found |= {alias.name for alias in item.names}
            elif isinstance(item, ast.ImportFrom) and item.module and not item.level:
                found.add(item.module)
    return found


def test_the_image_ships_neither_sandbox_nor_demo_and_shipped_code_does_not_import_them():
    ignored = {line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()}
    assert set(DEV_ONLY_PATHS) <= ignored
    shipped = [
        path
        for root in ("include", "plugins")
        for path in sorted((REPO / root).rglob("*.py"))
        if not any(path.relative_to(REPO).as_posix().startswith(dev) for dev in DEV_ONLY_PATHS)
    ]
    assert len(shipped) > 20
    offenders = {
        path.relative_to(REPO).as_posix(): sorted(
            name
            for name in _module_level_imports(path)
            if any(name == dev or name.startswith(dev + ".") for dev in DEV_ONLY_MODULES)
        )
        for path in shipped
    }
    assert {k: v for k, v in offenders.items() if v} == {}
