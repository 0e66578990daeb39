#!/usr/bin/env bash
# Entrypoint of the stand-in Airflow image: the part of the official image's /entrypoint this
# project's compose file uses (docs/deployment.md, "The stand-in base").
#  * waits for the metadata database (CONNECTION_CHECK_MAX_COUNT tries, CONNECTION_CHECK_SLEEP_TIME
#    seconds apart; 0 skips the wait, as the receiver service does);
#  * `bash`, `sh`, `python`, `python3` and `airflow` run as given; anything else is an Airflow
#    command: `api-server`, `scheduler`, `dag-processor`, `triggerer`, `celery worker`.
set -euo pipefail

wait_for_metadata_db() {
  local max="${CONNECTION_CHECK_MAX_COUNT:-20}" pause="${CONNECTION_CHECK_SLEEP_TIME:-3}" try=1
  [ "$max" -gt 0 ] || return 0
  while ! airflow db check >/dev/null 2>&1; do
    if [ "$try" -ge "$max" ]; then
      echo "entrypoint: metadata database not reachable after $max tries" >&2
      airflow db check  # once more, with its error on stderr
      exit 1
    fi
    echo "entrypoint: waiting for the metadata database ($try/$max)" >&2
    try=$((try + 1))
    sleep "$pause"
  done
}

if [ "$#" -eq 0 ]; then
  set -- bash
fi
case "$1" in
  bash | sh | python | python3) exec "$@" ;;
esac
wait_for_metadata_db
if [ "$1" = airflow ]; then
  exec "$@"
fi
exec airflow "$@"
