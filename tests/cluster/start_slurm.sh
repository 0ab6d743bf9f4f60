#!/usr/bin/env bash
# Start a one-node SLURM cluster on this machine for tests/test_slurm.py. Run as root.
#
#   bash tests/cluster/start_slurm.sh          # install if missing, configure, start, wait idle
#   SLURM_ACCOUNTING=0 bash tests/cluster/start_slurm.sh   # skip slurmdbd + MariaDB
#
# Idempotent: packages, munge key, database and daemons are only created or started when
# missing; a changed slurm.conf restarts the SLURM daemons. Debian packages: slurm-wlm, munge,
# and for accounting (so `sacct` works) slurmdbd + mariadb-server. The daemons are started
# directly (no systemd), so this also works in containers and CI (no stdin needed).
# The node has no GPU gres: run the workflow with tests/cluster/no-gpu.yaml.
# Stop everything with tests/cluster/stop_slurm.sh.
set -euo pipefail

CLUSTER=compreps
PARTITION=debug
ACCOUNT=compreps
ACCOUNTING=${SLURM_ACCOUNTING:-1}
WAIT_S=${SLURM_WAIT_S:-90}
CONF_DIR=/etc/slurm # must be here: the jobstep helper drops SLURM_CONF before its inner srun
LOG_DIR=/var/log/slurm
DB_PASS=compreps-local-only # MariaDB user on localhost of a throwaway test node
START=$SECONDS

log() { echo "start_slurm: $*" >&2; }
die() {
  log "ERROR: $*"
  for f in "$LOG_DIR"/slurmctld.log "$LOG_DIR"/slurmd.log "$LOG_DIR"/slurmdbd.log; do
    [ -f "$f" ] && { echo "--- tail $f" >&2; tail -n 15 "$f" >&2; }
  done
  exit 1
}

# wait_for SECONDS DESCRIPTION COMMAND...: poll COMMAND once a second until it succeeds.
wait_for() {
  local limit=$1 what=$2
  shift 2
  local deadline=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || die "$what not ready after ${limit}s"
    sleep 1
  done
}

# running PIDFILE: true when the pid in PIDFILE is alive.
running() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

[ "$(id -u)" = 0 ] || die "run as root (it installs packages and starts system daemons)"

install_packages() {
  local wanted=(slurm-wlm munge) missing=()
  [ "$ACCOUNTING" = 1 ] && wanted+=(slurmdbd mariadb-server)
  for pkg in "${wanted[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" ||
      missing+=("$pkg")
  done
  [ ${#missing[@]} = 0 ] && return 0
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  timeout 300 apt-get update -qq </dev/null || die "apt-get update failed"
  timeout 600 apt-get install -y -qq --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
    "${missing[@]}" </dev/null >/dev/null || die "apt-get install ${missing[*]} failed"
}

start_munge() {
  install -d -o munge -g munge -m 0700 /etc/munge /var/lib/munge /var/log/munge
  install -d -o munge -g munge -m 0755 /run/munge
  if [ ! -s /etc/munge/munge.key ]; then
    log "creating munge key"
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
  fi
  chown munge:munge /etc/munge/munge.key
  chmod 0400 /etc/munge/munge.key
  if ! running /run/munge/munged.pid; then
    log "starting munged"
    runuser -u munge -- /usr/sbin/munged --force
  fi
  wait_for 20 munged bash -c 'munge -n | unmunge'
}

start_mariadb() {
  install -d -o mysql -g mysql -m 0755 /run/mysqld
  if [ ! -d /var/lib/mysql/mysql ]; then
    log "initialising MariaDB data directory"
    mariadb-install-db --user=mysql --datadir=/var/lib/mysql >/dev/null ||
      die "mariadb-install-db failed"
  fi
  if ! mariadb-admin ping >/dev/null 2>&1; then
    log "starting MariaDB"
    setsid mariadbd --user=mysql --skip-networking=0 --bind-address=127.0.0.1 \
      </dev/null >>/var/log/mysql-compreps.log 2>&1 &
    touch /run/mysqld/started-by-compreps # stop_slurm.sh stops only a MariaDB started here
  fi
  wait_for 60 MariaDB mariadb-admin ping
  # the root account authenticates over the unix socket: no password needed here
  mariadb -u root <<SQL || die "creating the accounting database failed"
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$DB_PASS';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
FLUSH PRIVILEGES;
SQL
}

write_slurmdbd_conf() {
  local conf=$CONF_DIR/slurmdbd.conf tmp
  tmp=$(mktemp)
  cat >"$tmp" <<EOF
# Written by tests/cluster/start_slurm.sh: accounting for the local test cluster.
AuthType=auth/munge
DbdHost=localhost
SlurmUser=root
PidFile=/run/slurmdbd.pid
LogFile=$LOG_DIR/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=$DB_PASS
StorageLoc=slurm_acct_db
EOF
  if ! cmp -s "$tmp" "$conf"; then
    install -m 0600 "$tmp" "$conf"
    running /run/slurmdbd.pid && kill "$(cat /run/slurmdbd.pid)" && sleep 2
  fi
  rm -f "$tmp"
}

start_slurmdbd() {
  write_slurmdbd_conf
  if ! running /run/slurmdbd.pid; then
    log "starting slurmdbd"
    slurmdbd
  fi
  wait_for 60 slurmdbd sacctmgr -n list cluster
}

# register_accounting: the cluster, one account and root's association, so that the plugin's
# account check (`sacctmgr list user root`) finds the account the test passes.
register_accounting() {
  sacctmgr -n -P list cluster format=cluster | grep -qx "$CLUSTER" ||
    sacctmgr -i add cluster "$CLUSTER" >/dev/null
  sacctmgr -n -P list account format=account | grep -qx "$ACCOUNT" ||
    sacctmgr -i add account "$ACCOUNT" cluster="$CLUSTER" \
      description="local test account" >/dev/null
  sacctmgr -n -P list user root format=defaultaccount | grep -qx "$ACCOUNT" ||
    sacctmgr -i add user root account="$ACCOUNT" defaultaccount="$ACCOUNT" \
      cluster="$CLUSTER" >/dev/null ||
    sacctmgr -i modify user root set defaultaccount="$ACCOUNT" >/dev/null
}

write_slurm_conf() {
  local host cpus mem_total mem_real accounting tmp
  host=$(hostname -s)
  cpus=$(nproc)
  mem_total=$(free -m | awk '/^Mem:/ {print $2}')
  # leave room for the OS and the daemons: 10%, at least 512 MB
  mem_real=$((mem_total - (mem_total / 10 > 512 ? mem_total / 10 : 512)))
  if [ "$ACCOUNTING" = 1 ]; then
    accounting="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
JobAcctGatherType=jobacct_gather/linux"
  else
    accounting="AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none"
  fi
  tmp=$(mktemp)
  cat >"$tmp" <<EOF
# Written by tests/cluster/start_slurm.sh: one node, one partition, no GPU gres.
ClusterName=$CLUSTER
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
# no cgroups needed: works in containers and VMs without a delegated cgroup tree
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1000
ReturnToService=2
# keep finished jobs visible to squeue for 5 min (the plugin's squeue status check needs
# MinJobAge >= 120 s) and record every finished job in a plain text file
MinJobAge=300
JobCompType=jobcomp/filetxt
JobCompLoc=$LOG_DIR/jobcomp.log
# sacct shows the rule name the plugin puts into --comment
AccountingStoreFlags=job_comment
$accounting
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_real State=UNKNOWN
PartitionName=$PARTITION Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
  if cmp -s "$tmp" "$CONF_DIR/slurm.conf"; then
    rm -f "$tmp"
    return 1
  fi
  install -m 0644 "$tmp" "$CONF_DIR/slurm.conf"
  rm -f "$tmp"
}

stop_pidfile() {
  running "$1" || return 0
  kill "$(cat "$1")"
  local deadline=$((SECONDS + 20))
  while running "$1" && [ $SECONDS -lt $deadline ]; do sleep 0.5; done
}

# install_slurm_conf: write slurm.conf (sacctmgr reads it too); restart the SLURM daemons
# when it changed.
install_slurm_conf() {
  if write_slurm_conf; then
    log "slurm.conf written to $CONF_DIR/slurm.conf"
    stop_pidfile /run/slurmd.pid
    stop_pidfile /run/slurmctld.pid
  fi
}

start_slurm_daemons() {
  if ! running /run/slurmctld.pid; then
    log "starting slurmctld"
    slurmctld
  fi
  wait_for 30 slurmctld scontrol ping
  if ! running /run/slurmd.pid; then
    log "starting slurmd"
    slurmd
  fi
}

# node_state: the node's state as sinfo prints it (idle, mixed, down*, drained...).
node_state() { sinfo -h -N -p "$PARTITION" -o '%T' 2>/dev/null | head -n 1; }

wait_node_ready() {
  local deadline=$((SECONDS + WAIT_S)) state="" host
  host=$(hostname -s)
  while [ $SECONDS -lt $deadline ]; do
    state=$(node_state)
    case "$state" in
      idle | mixed | allocated | completing) return 0 ;;
      down* | drain* | fail*) scontrol update nodename="$host" state=resume >/dev/null 2>&1 || true ;;
    esac
    sleep 1
  done
  die "node $host not idle after ${WAIT_S}s (state: '${state:-unknown}'; see sinfo -R)"
}

install_packages
install -d -m 0755 "$CONF_DIR" "$LOG_DIR" /var/spool/slurmctld /var/spool/slurmd
start_munge
install_slurm_conf
if [ "$ACCOUNTING" = 1 ]; then
  start_mariadb
  start_slurmdbd
fi
start_slurm_daemons
[ "$ACCOUNTING" = 1 ] && register_accounting
wait_node_ready
log "ready in $((SECONDS - START)) s: partition '$PARTITION'," \
  "account '$( [ "$ACCOUNTING" = 1 ] && echo "$ACCOUNT" || echo none)', node $(hostname -s)"
sinfo
