#!/usr/bin/env bash
# A two-node Slurm cluster (n1, n2) on this one machine, with accounting (slurmdbd + MariaDB), for the tests.
#   bash slurm/testcluster.sh start|stop|status
# State, configs and logs live under $LOWLOSS_TESTCLUSTER_DIR (default /tmp/lowloss-testcluster); `start` writes
# DIR/env.sh (export SLURM_CONF=...) for clients. No systemd: every daemon is started by hand and stopped again.
set -euo pipefail

DIR=${LOWLOSS_TESTCLUSTER_DIR:-/tmp/lowloss-testcluster}
ETC=$DIR/etc
export SLURM_CONF=$ETC/slurm.conf
HOST=$(hostname -s)
NCPU=$(nproc)

log() { echo "testcluster: $*"; }

cluster_up() {
  local out
  out=$(timeout 10 sinfo -h -N -o "%N %t" 2>/dev/null) || return 1
  [[ $(grep -cE "^(n1|n2) idle" <<<"$out") == 2 ]] || [[ $(grep -cE "^(n1|n2) (idle|mix|alloc)" <<<"$out") == 2 ]]
}

write_configs() {
  mkdir -p "$ETC" "$DIR/state" "$DIR/spool/n1" "$DIR/spool/n2" "$DIR/run" "$DIR/log"
  cat >"$ETC/slurm.conf" <<CONF
ClusterName=lowloss
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
SlurmctldPort=6817
AuthType=auth/munge
CredType=cred/munge
AuthInfo=cred_expire=5
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool/%n
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd-%n.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd-%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=500
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,sched_interval=2,bf_interval=1
MaxArraySize=1001
MaxJobCount=100000
JobRequeue=1
ReturnToService=2
KillWait=10
MinJobAge=600
SlurmdParameters=config_overrides
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=6819
NodeName=n1 NodeHostname=$HOST NodeAddr=127.0.0.1 Port=6818 CPUs=$NCPU RealMemory=4000 State=UNKNOWN
NodeName=n2 NodeHostname=$HOST NodeAddr=127.0.0.1 Port=6820 CPUs=$NCPU RealMemory=4000 State=UNKNOWN
PartitionName=debug Nodes=n1,n2 Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
CONF
  cat >"$ETC/slurmdbd.conf" <<CONF
AuthType=auth/munge
DbdHost=$HOST
DbdAddr=127.0.0.1
DbdPort=6819
SlurmUser=root
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=3306
StorageUser=lowloss_slurm
StoragePass=lowloss_slurm
StorageLoc=lowloss_slurm_acct
PidFile=$DIR/run/slurmdbd.pid
LogFile=$DIR/log/slurmdbd.log
CONF
  chmod 600 "$ETC/slurmdbd.conf"
  cat >"$DIR/env.sh" <<ENV
export SLURM_CONF=$ETC/slurm.conf
ENV
}

start_munge() {
  if pgrep -x munged >/dev/null; then return; fi
  mkdir -p /run/munge /var/log/munge /var/lib/munge
  if [[ ! -s /etc/munge/munge.key ]]; then
    mkdir -p /etc/munge
    if command -v mungekey >/dev/null; then mungekey --create --keyfile=/etc/munge/munge.key --force; else
      dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none; fi
  fi
  chown -R munge:munge /etc/munge /run/munge /var/log/munge /var/lib/munge
  chmod 400 /etc/munge/munge.key
  chmod 755 /run/munge
  runuser -u munge -- munged
  touch "$DIR/run/started-munge"
}

start_mariadb() {
  if ! mysqladmin ping >/dev/null 2>&1; then
    /etc/init.d/mariadb start >"$DIR/log/mariadb-start.log" 2>&1 || { cat "$DIR/log/mariadb-start.log" >&2; return 1; }
    touch "$DIR/run/started-mariadb"
  fi
  mysql -e "CREATE USER IF NOT EXISTS 'lowloss_slurm'@'localhost' IDENTIFIED BY 'lowloss_slurm';
            CREATE USER IF NOT EXISTS 'lowloss_slurm'@'127.0.0.1' IDENTIFIED BY 'lowloss_slurm';
            GRANT ALL ON lowloss_slurm_acct.* TO 'lowloss_slurm'@'localhost';
            GRANT ALL ON lowloss_slurm_acct.* TO 'lowloss_slurm'@'127.0.0.1'; FLUSH PRIVILEGES;"
}

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
  local limit=$1 what=$2; shift 2
  local t=0
  until "$@" >/dev/null 2>&1; do
    sleep 0.5; t=$((t + 1))
    if ((t > limit * 2)); then echo "testcluster: timed out waiting for $what; logs in $DIR/log" >&2; return 1; fi
  done
}

start() {
  if cluster_up; then log "already up ($DIR)"; print_env; return 0; fi
  write_configs
  start_munge
  wait_for 10 "munge" munge -n
  start_mariadb
  if ! pgrep -x slurmdbd >/dev/null; then slurmdbd; fi
  wait_for 30 "slurmdbd" sacctmgr -n list cluster
  sacctmgr -i add cluster lowloss >/dev/null 2>&1 || true
  if ! pgrep -x slurmctld >/dev/null; then slurmctld -c; fi
  wait_for 30 "slurmctld" scontrol ping
  for n in n1 n2; do
    pgrep -f "slurmd -N $n" >/dev/null || slurmd -N "$n"
  done
  if ! wait_for 60 "nodes n1 and n2 idle (sinfo)" cluster_up; then
    sinfo -N >&2 || true
    tail -n 20 "$DIR"/log/*.log >&2 || true
    return 1
  fi
  log "up: $(sinfo -h -N -o '%N=%t' | tr '\n' ' ')"
  print_env
}

print_env() { cat "$DIR/env.sh"; }

kill_all() {  # kill_all NAME-PATTERN
  local pat=$1
  pkill -TERM -f "$pat" 2>/dev/null || true
  for _ in $(seq 1 20); do pgrep -f "$pat" >/dev/null || return 0; sleep 0.25; done
  pkill -KILL -f "$pat" 2>/dev/null || true
}

stop() {
  if [[ -f $SLURM_CONF ]]; then timeout 10 scancel --state=PENDING,RUNNING -u root >/dev/null 2>&1 || true; fi
  if [[ -f $SLURM_CONF ]]; then timeout 10 scontrol shutdown >/dev/null 2>&1 || true; fi
  kill_all "^slurmd -N n[12]"
  kill_all "^slurmctld"
  kill_all "^slurmstepd"
  kill_all "^slurmdbd"
  if [[ -f $DIR/run/started-mariadb ]]; then /etc/init.d/mariadb stop >/dev/null 2>&1 || true; kill_all "mariadbd"; rm -f "$DIR/run/started-mariadb"; fi
  if [[ -f $DIR/run/started-munge ]]; then kill_all "^munged"; rm -f "$DIR/run/started-munge"; fi
  rm -f "$DIR"/run/*.pid
  local left
  left=$(pgrep -af "slurmctld|slurmd -N|slurmdbd|slurmstepd" || true)
  if [[ -n $left ]]; then echo "testcluster: still running after stop:" >&2; echo "$left" >&2; return 1; fi
  log "stopped"
}

status() {
  if cluster_up; then sinfo -N; return 0; fi
  echo "testcluster: not up" >&2
  return 1
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
