#!/usr/bin/env bash
# Stop the local test cluster started by tests/cluster/start_slurm.sh (run as root).
# Stops only the daemons whose pid files that script's configuration names; packages,
# configuration, munge key and the accounting database stay, so a restart is quick.
set -uo pipefail

log() { echo "stop_slurm: $*" >&2; }

# stop NAME PIDFILE: SIGTERM the pid in PIDFILE, wait up to 20 s, then SIGKILL.
stop() {
  local name=$1 pidfile=$2 pid
  [ -s "$pidfile" ] || return 0
  pid=$(cat "$pidfile")
  kill -0 "$pid" 2>/dev/null || return 0
  log "stopping $name (pid $pid)"
  kill "$pid"
  for _ in $(seq 40); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.5
  done
  log "$name did not stop in 20 s; killing it"
  kill -9 "$pid" 2>/dev/null || true
}

[ "$(id -u)" = 0 ] || { log "run as root"; exit 1; }
stop slurmd /run/slurmd.pid
stop slurmctld /run/slurmctld.pid
stop slurmdbd /run/slurmdbd.pid
if [ -e /run/mysqld/started-by-compreps ]; then
  log "stopping MariaDB"
  timeout 60 mariadb-admin shutdown || log "MariaDB did not shut down"
  rm -f /run/mysqld/started-by-compreps
fi
stop munged /run/munge/munged.pid
log "done"
