#!/usr/bin/env bash
# The services the test suite needs: PostgreSQL on loopback and a one-node SLURM cluster.
#
#   scripts/services.sh start   start both (installing them the first time); never fails the caller:
#                               a service that cannot start is reported, and its tests skip (or,
#                               under CI=true, fail)
#   scripts/services.sh stop    stop what `start` started
#
# `make test` (and so `.ci/run`) wraps the test run in start/stop.
set -uo pipefail
cd "$(dirname "$0")" || exit 1

case ${1:-} in
  start)
    if [[ $(id -u) != 0 ]]; then
      echo "services: not root; PostgreSQL and SLURM tests will skip unless already running" >&2
      exit 0
    fi
    bash postgres.sh start || echo "services: PostgreSQL did not start" >&2
    bash slurm.sh start || echo "services: SLURM did not start" >&2
    ;;
  stop)
    [[ $(id -u) == 0 ]] || exit 0
    bash slurm.sh stop || true
    bash postgres.sh stop || true
    ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
