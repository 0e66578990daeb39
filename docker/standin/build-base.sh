#!/usr/bin/env bash
# Stand-in base images for a machine that cannot pull from an image registry (docs/deployment.md,
# "The stand-in base"). Builds, from a Debian bookworm root file system made with debootstrap:
#   phonecheck-standin/airflow:3.3.2-python3.11   what docker/Dockerfile needs of apache/airflow
#   phonecheck-standin/postgres:bookworm          PostgreSQL (Debian's 15) with the postgres image's
#                                                  first-start contract (POSTGRES_*, initdb.d)
#   phonecheck-standin/redis:bookworm             redis-server (Debian's 7.0)
# Nothing registry-specific is written in the repository: the Debian mirror is read from this
# machine's apt sources, the pip index and CA bundle from its pip configuration, both at build time.
# Run as root (debootstrap, docker). Re-runs reuse the root file system tarball in STANDIN_CACHE.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cache="${STANDIN_CACHE:-/var/tmp/phonecheck-standin}"
AIRFLOW_VERSION="${AIRFLOW_VERSION:-3.3.2}"
PYTHON_VERSION=3.11
AIRFLOW_TAG="phonecheck-standin/airflow:${AIRFLOW_VERSION}-python${PYTHON_VERSION}"
ROOTFS_TAG=phonecheck-standin/rootfs:bookworm
mkdir -p "$cache"

log() { echo "build-base: $*" >&2; }

# --- the Debian mirror this machine's apt uses (deb822 .sources or one-line .list) -------------
debian_mirror() {
  if [ -n "${DEBIAN_MIRROR:-}" ]; then echo "$DEBIAN_MIRROR"; return; fi
  python3 - <<'PY'
import glob, re, sys
files = sorted(glob.glob("/etc/apt/sources.list.d/*.sources"))
for path in files:
    for stanza in re.split(r"\n\s*\n", open(path).read()):
        fields = dict(re.findall(r"^(\w[\w-]*):\s*(.*)$", stanza, re.M))
        if "bookworm" in fields.get("Suites", "").split() and fields.get("URIs"):
            print(fields["URIs"].split()[0]); sys.exit(0)
for path in ["/etc/apt/sources.list", *sorted(glob.glob("/etc/apt/sources.list.d/*.list"))]:
    try:
        lines = open(path).read().splitlines()
    except OSError:
        continue
    for line in lines:
        m = re.match(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+bookworm\s", line)
        if m:
            print(m.group(1)); sys.exit(0)
sys.exit("no bookworm mirror in this machine's apt sources; set DEBIAN_MIRROR")
PY
}

# --- 1. root file system ------------------------------------------------------------------------
# Debian's python3 is 3.11 on bookworm (the official image's Python line). PostgreSQL and Redis go
# into the same tree: one debootstrap serves all three images.
PACKAGES=python3,python3-venv,libpq5,ca-certificates,curl,dumb-init,procps,tzdata,netbase,postgresql-15,postgresql-client-15,redis-server,redis-tools,gosu
tarball="$cache/rootfs-bookworm.tar"
if ! docker image inspect "$ROOTFS_TAG" >/dev/null 2>&1; then
  if [ ! -s "$tarball" ]; then
    command -v debootstrap >/dev/null || { log "debootstrap missing (apt-get install debootstrap)"; exit 1; }
    mirror="$(debian_mirror)"
    log "debootstrap bookworm from $mirror"
    rm -rf "$cache/rootfs"
    debootstrap --variant=minbase --include="$PACKAGES" bookworm "$cache/rootfs" "$mirror" >"$cache/debootstrap.log" 2>&1 \
      || { tail -20 "$cache/debootstrap.log" >&2; exit 1; }
    # apt caches and lists only make the image bigger; services are started by entrypoints, never
    # by the postinst scripts (policy-rc.d did that during debootstrap already).
    rm -rf "$cache/rootfs/var/cache/apt/archives/"*.deb "$cache/rootfs/var/lib/apt/lists/"*
    tar -C "$cache/rootfs" -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
    rm -rf "$cache/rootfs"
  fi
  log "importing $tarball as $ROOTFS_TAG"
  docker import "$tarball" "$ROOTFS_TAG" >/dev/null
fi

# --- 2. this machine's pip settings (read now, passed to the build, never written in the repo) --
pip_setting() {  # $1 = pip config key, $2 = environment variable: the environment wins, as in pip
  local value="${!2:-}"
  if [ -z "$value" ] && command -v pip >/dev/null 2>&1; then
    value="$(pip config get "global.$1" 2>/dev/null || true)"
  fi
  printf '%s' "$value"
}
ctx="$cache/context"
rm -rf "$ctx" && mkdir -p "$ctx"
cp "$here"/*.Dockerfile "$here"/*.sh "$ctx"/
ca="$(pip_setting cert PIP_CERT)"
ca="${ca:-/etc/ssl/certs/ca-certificates.crt}"
cp "$ca" "$ctx/pip-ca.pem"
index_url="$(pip_setting index-url PIP_INDEX_URL)"
case "$index_url" in file:*) index_url= ;; esac  # a path on this machine means nothing in a build

# Airflow's own constraints for this version and Python line, as the official image uses; when
# GitHub cannot be reached, the project's runtime lock (resolved for the same Airflow and Python)
# constrains the installation instead, and the build says so.
constraints_url="https://raw.githubusercontent.com/apache/airflow/constraints-${AIRFLOW_VERSION}/constraints-${PYTHON_VERSION}.txt"
if curl -fsS --max-time 20 -o "$ctx/constraints.txt" "$constraints_url" 2>/dev/null; then
  log "constraints: $constraints_url"
  constraints_source="airflow-constraints-${AIRFLOW_VERSION}"
else
  log "constraints: $constraints_url not reachable; using the project's requirements.txt lock instead"
  cp "$repo/requirements.txt" "$ctx/constraints.txt"
  constraints_source=requirements.txt
fi

build() {  # $1 = Dockerfile, $2 = tag, rest = docker build arguments
  local file="$1" tag="$2"
  shift 2
  log "building $tag"
  docker build --network host --quiet -f "$ctx/$file" -t "$tag" \
    --build-arg ROOTFS_IMAGE="$ROOTFS_TAG" --label "org.phonecheck.standin.constraints=$constraints_source" \
    "$@" "$ctx" >/dev/null
}
build airflow.Dockerfile "$AIRFLOW_TAG" \
  --build-arg AIRFLOW_VERSION="$AIRFLOW_VERSION" --build-arg PIP_INDEX_URL="$index_url" \
  --build-arg PIP_DEFAULT_TIMEOUT="${PIP_DEFAULT_TIMEOUT:-180}"
build postgres.Dockerfile phonecheck-standin/postgres:bookworm
build redis.Dockerfile phonecheck-standin/redis:bookworm
log "done: $AIRFLOW_TAG, phonecheck-standin/postgres:bookworm, phonecheck-standin/redis:bookworm"
