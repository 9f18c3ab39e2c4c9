#!/usr/bin/env bash
# A two-node Slurm cluster (n1, n2) on this one machine, with accounting (slurmdbd + MariaDB), for the tests.
#
#   bash slurm/testcluster.sh start|stop|status [--dir DIR]
#
# DIR (default ${LOWLOSS_TESTCLUSTER_DIR:-/tmp/lowloss-testcluster}) holds the generated configs (etc/), Slurm's
# state and spool (state/, spool/<node>/), pid files (run/) and logs (log/). `start` prints `export SLURM_CONF=...`
# on stdout (progress goes to stderr) and writes the same to DIR/env.sh, so clients can `source DIR/env.sh` or
# `eval "$(bash slurm/testcluster.sh start)"`.
#
# No systemd and no cgroups: every daemon (munged, mariadb, slurmdbd, slurmctld, two slurmd) is started by hand and
# stopped by hand. A daemon belongs to this cluster when its environment holds this cluster's SLURM_CONF (the script
# exports it before starting them), so `stop` never touches another cluster's daemons. munged and MariaDB are
# machine-wide: they are started only when not running already, and stopped only by the cluster that started them
# (recorded as DIR/run/started-munge and DIR/run/started-mariadb).
#
# Environment knobs (all optional):
#   LOWLOSS_TESTCLUSTER_DIR      state directory (also --dir)
#   LOWLOSS_TESTCLUSTER_PORT     base port: slurmctld=P, n1=P+1, slurmdbd=P+2, n2=P+3 (default 6817)
#   LOWLOSS_TESTCLUSTER_CPUS     CPUs advertised per node (default: nproc)
#   LOWLOSS_TESTCLUSTER_TIMEOUT  seconds `start` waits for both nodes to be idle (default 60)
set -euo pipefail

usage() {
  cat <<'USAGE'
usage: testcluster.sh start|stop|status [--dir DIR]
  start   start the two-node cluster (no-op when it is up); prints `export SLURM_CONF=...`
  stop    stop every daemon of this cluster (and munged/mariadb when this cluster started them)
  status  print sinfo; exit 0 iff the cluster is up and both nodes are usable (idle, or busy with jobs)
USAGE
}

CMD=""
DIR=${LOWLOSS_TESTCLUSTER_DIR:-/tmp/lowloss-testcluster}
while (($# > 0)); do
  case $1 in
    start | stop | status)
      [[ -z $CMD ]] || { usage >&2; exit 2; }
      CMD=$1
      ;;
    --dir)
      (($# >= 2)) || { echo "testcluster: --dir needs a value" >&2; exit 2; }
      DIR=$2
      shift
      ;;
    --dir=*) DIR=${1#--dir=} ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
  shift
done
[[ -n $CMD ]] || { usage >&2; exit 2; }

DIR=$(realpath -m -- "$DIR")
ETC=$DIR/etc
RUN=$DIR/run
LOG=$DIR/log
export SLURM_CONF=$ETC/slurm.conf

CLUSTER=lowloss
NODES=(n1 n2)
PORT=${LOWLOSS_TESTCLUSTER_PORT:-6817}
CTLD_PORT=$PORT
DBD_PORT=$((PORT + 2))
declare -A NODE_PORT=([n1]=$((PORT + 1)) [n2]=$((PORT + 3)))
NCPU=${LOWLOSS_TESTCLUSTER_CPUS:-$(nproc)}
MEM_MB=4000                     # RealMemory per node
DEF_MEM_PER_CPU=$((MEM_MB / NCPU)) # a job that asks for no memory gets its CPUs' share, not the whole node
TIMEOUT=${LOWLOSS_TESTCLUSTER_TIMEOUT:-60}
DB_NAME=lowloss_acct_$PORT # one accounting database per cluster (port), so two test clusters never share one
DB_USER=lowloss_slurm
DB_PASS=lowloss_slurm
HOST=$(hostname -s)
# Every daemon of this cluster, by process name (comm); munged and mariadb are handled separately.
SLURM_DAEMONS=(slurmctld slurmscriptd slurmd slurmstepd slurmdbd)

log() { echo "testcluster: $*" >&2; }

# ---------------------------------------------------------------- processes

# True when PID exists and is not a zombie.
alive() {
  local stat
  stat=$(cat 2>/dev/null <"/proc/$1/stat") || return 1
  stat=${stat##*) }
  [[ ${stat%% *} != Z ]]
}

# our_pids NAME [CMDLINE-SUBSTRING]: PIDs of processes named NAME whose environment holds this cluster's
# SLURM_CONF (and whose command line contains CMDLINE-SUBSTRING, when given).
our_pids() {
  local name=$1 want=${2:-} pid env cmd
  for pid in $(pgrep -x "$name" || true); do
    env=$(tr '\0' '\n' 2>/dev/null <"/proc/$pid/environ") || continue
    [[ $'\n'$env$'\n' == *$'\n'"SLURM_CONF=$SLURM_CONF"$'\n'* ]] || continue
    if [[ -n $want ]]; then
      cmd=$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline") || continue
      [[ " $cmd " == *" $want "* ]] || continue
    fi
    alive "$pid" && echo "$pid"
  done
  return 0
}

# pids_named NAME...: PIDs of all processes with one of these exact names (pgrep -x NAME for each: pgrep refuses
# patterns longer than 15 characters, so no 'a|b|c').
pids_named() {
  local name
  for name in "$@"; do pgrep -x "$name" || true; done
}

# descendants PID...: all descendants of the given processes.
descendants() {
  local pid child
  for pid in "$@"; do
    for child in $(pgrep -P "$pid" || true); do
      echo "$child"
      descendants "$child"
    done
  done
}

# wait_gone SECONDS PID...: wait until none of the PIDs is alive; false on timeout.
wait_gone() {
  local deadline=$((SECONDS + $1)) pid any
  shift
  while :; do
    any=0
    for pid in "$@"; do alive "$pid" && any=1; done
    ((any)) || return 0
    ((SECONDS < deadline)) || return 1
    sleep 0.2
  done
}

# terminate SECONDS PID...: SIGTERM, wait up to SECONDS, then SIGKILL whatever is left. The PIDs are remembered in
# STOPPED for wait_reaped.
STOPPED=()
terminate() {
  local secs=$1
  shift
  (($# > 0)) || return 0
  STOPPED+=("$@")
  kill -TERM "$@" 2>/dev/null || true
  wait_gone "$secs" "$@" && return 0
  log "SIGKILL to $* (did not exit within ${secs}s of SIGTERM)"
  kill -KILL "$@" 2>/dev/null || true
  wait_gone 5 "$@"
}

# wait_reaped SECONDS PID...: daemons are orphans, reaped by PID 1, which (in containers and micro-VMs) may do so
# late; until then `pgrep` still lists them as <defunct>. Wait for that, so a check right after `stop` sees nothing.
wait_reaped() {
  local deadline=$((SECONDS + $1)) pid any
  shift
  while :; do
    any=0
    for pid in "$@"; do [[ -e /proc/$pid ]] && any=1; done
    ((any)) || return 0
    ((SECONDS < deadline)) || { log "note: exited but not yet reaped by PID 1 (zombies): $*"; return 0; }
    sleep 0.2
  done
}

# wait_until SECONDS COMMAND...: retry COMMAND (quietly) until it succeeds; false on timeout.
wait_until() {
  local deadline=$((SECONDS + $1))
  shift
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || return 1
    sleep 0.25
  done
}

# wait_daemon SECONDS ALIVE-FUNCTION COMMAND...: like wait_until, but gives up at once when ALIVE-FUNCTION says the
# daemon is gone (it died, e.g. on a config error or a port in use).
wait_daemon() {
  local deadline=$((SECONDS + $1)) alive_fn=$2
  shift 2
  until "$@" >/dev/null 2>&1; do
    if ! "$alive_fn"; then
      sleep 0.5 # it may just be forking into the background
      "$alive_fn" || { log "a daemon died while waiting (${alive_fn%_alive} no longer running)"; return 1; }
    fi
    ((SECONDS < deadline)) || return 1
    sleep 0.25
  done
}
dbd_alive() { [[ -n $(our_pids slurmdbd) ]]; }
ctld_alive() { [[ -n $(our_pids slurmctld) ]]; }
slurmds_alive() {
  local n
  for n in "${NODES[@]}"; do [[ -n $(our_pids slurmd "-N $n") ]] || return 1; done
}

# --------------------------------------------------------------- readiness checks (by output, not exit codes)

munge_ok() { munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }
mariadb_ok() { [[ $(mysqladmin ping 2>/dev/null) == *"is alive"* ]]; }
dbd_ok() {  # slurmdbd answers sacctmgr (an error goes to stderr, and sacctmgr's exit code is not trusted)
  local out
  out=$(timeout 10 sacctmgr -n -P list cluster format=cluster 2>&1) || return 1
  [[ $out != *error* ]]
}
ctld_ok() { [[ $(timeout 10 scontrol ping 2>/dev/null) == *"is UP"* ]]; }
no_jobs() { [[ -z $(timeout 5 squeue -h -o %A 2>/dev/null) ]]; }

# nodes_ready [STATES-REGEX]: both nodes are listed by sinfo in one of the states (default: idle) and responding
# (sinfo appends *, ~, #, ! ... to a state for not responding, powered down, powering up, ...).
nodes_ready() {
  local states=${1:-idle} out n
  out=$(timeout 10 sinfo -h -N -o "%N %t" 2>/dev/null) || return 1
  for n in "${NODES[@]}"; do
    grep -qE "^$n ($states)\$" <<<"$out" || return 1
  done
}
nodes_usable() { nodes_ready "idle|mix|alloc|comp"; }

# Up: all daemons of this cluster run (sinfo alone would show a node idle for minutes after its slurmd died).
cluster_up() { ctld_alive && dbd_alive && slurmds_alive && nodes_usable; }

# --------------------------------------------------------------------------- start

write_configs() {
  mkdir -p "$ETC" "$DIR/state" "$RUN" "$LOG" "${NODES[@]/#/$DIR/spool/}"
  local nodelines="" n
  for n in "${NODES[@]}"; do
    nodelines+="NodeName=$n NodeHostname=$HOST NodeAddr=127.0.0.1 Port=${NODE_PORT[$n]} CPUs=$NCPU"
    nodelines+=" RealMemory=$MEM_MB State=UNKNOWN"$'\n'
  done
  cat >"$ETC/slurm.conf" <<CONF
# Generated by slurm/testcluster.sh: a two-node test cluster on one machine (no cgroups, no systemd).
ClusterName=$CLUSTER
SlurmctldHost=$HOST(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
# Job credentials expire after 5 s: a requeued job can start again ~6 s later (default 120 s).
AuthInfo=cred_expire=5
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool/%n
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd-%n.pid
SlurmctldLogFile=$LOG/slurmctld.log
SlurmdLogFile=$LOG/slurmd-%n.log
# Both slurmd run on this machine: take the node description from this file, not from the hardware.
SlurmdParameters=config_overrides
ReturnToService=2
# No cgroups here.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=$DEF_MEM_PER_CPU
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,sched_interval=2,bf_interval=1
PreemptType=preempt/none
MaxArraySize=1001
MaxJobCount=100000
JobRequeue=1
# SIGTERM -> SIGKILL delay on cancel/requeue. submitit ignores SIGTERM, so a submitit job lives this long after
# scontrol requeue or scancel; short keeps requeue fast (default 30 s).
KillWait=3
MinJobAge=300
InactiveLimit=0
# sacct needs accounting; without it submitit never notices a cancelled job.
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=$DBD_PORT
JobCompType=jobcomp/none
${nodelines}PartitionName=debug Nodes=$(IFS=,; echo "${NODES[*]}") Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
CONF
  # slurmdbd reads slurmdbd.conf from SLURM_CONF's directory; it must be private to SlurmUser.
  (
    umask 077
    cat >"$ETC/slurmdbd.conf" <<CONF
# Generated by slurm/testcluster.sh.
AuthType=auth/munge
DbdHost=$HOST
DbdAddr=127.0.0.1
DbdPort=$DBD_PORT
SlurmUser=root
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=3306
StorageUser=$DB_USER
StoragePass=$DB_PASS
StorageLoc=$DB_NAME
PidFile=$RUN/slurmdbd.pid
LogFile=$LOG/slurmdbd.log
CONF
  )
  chmod 600 "$ETC/slurmdbd.conf"
  cat >"$DIR/env.sh" <<ENV
# The environment a client of the lowloss Slurm test cluster needs (written by slurm/testcluster.sh start).
export SLURM_CONF=$SLURM_CONF
ENV
}

# fail MESSAGE [LOGFILE...]: print MESSAGE and the tails of the log files, stop what was started, exit 1.
fail() {
  local msg=$1 f
  shift
  echo "testcluster: ERROR: $msg" >&2
  for f in "$@"; do
    [[ -s $f ]] || continue
    echo "---- last lines of $f" >&2
    tail -n 15 "$f" >&2
  done
  echo "testcluster: all logs are in $LOG/ (munged: /var/log/munge/munged.log); stopping what was started" >&2
  stop >&2 || true
  exit 1
}

# run_daemon NAME COMMAND...: start a daemon (it forks into the background); its early stdout/stderr (e.g. a
# config error before it opens its log file) goes to LOG/NAME.start.log.
run_daemon() {
  local name=$1
  shift
  "$@" >>"$LOG/$name.start.log" 2>&1 || fail "$name exited with status $? when started ($*)" \
    "$LOG/$name.start.log" "$LOG/$name.log"
}

start_munge() {
  if pgrep -x munged >/dev/null; then
    munge_ok || fail "munged is running but 'munge -n | unmunge' fails" /var/log/munge/munged.log
    return 0
  fi
  log "starting munged"
  mkdir -p /etc/munge /run/munge /var/lib/munge /var/log/munge
  if [[ ! -s /etc/munge/munge.key ]]; then
    if command -v mungekey >/dev/null; then
      mungekey --create --keyfile=/etc/munge/munge.key --force
    else
      dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    fi
  fi
  chown munge:munge /etc/munge /etc/munge/munge.key /run/munge /var/lib/munge /var/log/munge
  chmod 700 /etc/munge
  chmod 400 /etc/munge/munge.key
  chmod 755 /run/munge
  touch "$RUN/started-munge"
  run_daemon munged runuser -u munge -- munged
  wait_until 10 munge_ok || fail "munged does not answer 'munge -n | unmunge'" /var/log/munge/munged.log
}

start_mariadb() {
  if ! mariadb_ok; then
    log "starting mariadb"
    touch "$RUN/started-mariadb"
    /etc/init.d/mariadb start >>"$LOG/mariadb.start.log" 2>&1 || fail "/etc/init.d/mariadb start failed" \
      "$LOG/mariadb.start.log"
    wait_until 30 mariadb_ok || fail "mariadb does not answer 'mysqladmin ping'" "$LOG/mariadb.start.log"
  fi
}

# setup_db FRESH: the database user and accounting database for slurmdbd. FRESH=1: forget the old jobs. A fresh
# cluster (slurmctld -c) numbers jobs from 1 again, and sacct must not mix in old jobs with the same ids. Emptying
# the job tables is ~4 s faster than dropping the database (slurmdbd then spends that long creating its tables).
setup_db() {
  local sql="" table
  if [[ $1 == 1 ]]; then
    for table in $(mysql -u root -N -B -e "SELECT table_name FROM information_schema.tables
        WHERE table_schema = '$DB_NAME' AND table_name IN ('${CLUSTER}_job_table', '${CLUSTER}_step_table',
        '${CLUSTER}_suspend_table', '${CLUSTER}_job_env_table', '${CLUSTER}_job_script_table')" 2>/dev/null); do
      sql+="TRUNCATE TABLE \`$DB_NAME\`.\`$table\`;"$'\n'
    done
  fi
  mysql -u root >>"$LOG/mariadb.start.log" 2>&1 <<SQL || fail "setting up the accounting database in mariadb failed (mysql -u root)" "$LOG/mariadb.start.log"
CREATE USER IF NOT EXISTS '$DB_USER'@'localhost' IDENTIFIED BY '$DB_PASS';
CREATE USER IF NOT EXISTS '$DB_USER'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
CREATE DATABASE IF NOT EXISTS \`$DB_NAME\`;
GRANT ALL ON \`$DB_NAME\`.* TO '$DB_USER'@'localhost';
GRANT ALL ON \`$DB_NAME\`.* TO '$DB_USER'@'127.0.0.1';
FLUSH PRIVILEGES;
$sql
SQL
}

start() {
  local t0=$EPOCHREALTIME fresh=0 n
  if cluster_up; then
    log "already up ($DIR): $(sinfo -h -N -o '%N=%t' | tr '\n' ' ')"
    print_env
    return 0
  fi
  # Fresh when neither slurmctld nor slurmdbd of this cluster runs (otherwise: bring up what is missing).
  if ! ctld_alive && ! dbd_alive; then
    fresh=1
    # Leftovers of an earlier run (a slurmd or job step after a crash or kill -9) would confuse the new daemons.
    if [[ -n $(our_pids slurmd; our_pids slurmstepd) ]]; then
      log "stopping leftovers of an earlier run first"
      stop || fail "could not stop the leftovers of an earlier run"
    fi
    rm -rf "$DIR/state" "$DIR/spool" "$RUN"/*.pid "$LOG"
  fi
  write_configs
  log "starting in $DIR (ports: slurmctld $CTLD_PORT, slurmdbd $DBD_PORT, n1 ${NODE_PORT[n1]}, n2 ${NODE_PORT[n2]})"

  start_munge
  start_mariadb
  setup_db "$fresh"

  if [[ -z $(our_pids slurmdbd) ]]; then
    log "starting slurmdbd"
    run_daemon slurmdbd slurmdbd
  fi
  wait_daemon 30 dbd_alive dbd_ok || fail "slurmdbd does not answer sacctmgr (within 30 s)" "$LOG/slurmdbd.start.log" \
    "$LOG/slurmdbd.log"
  if ! timeout 10 sacctmgr -n -P list cluster format=cluster 2>/dev/null | grep -qx "$CLUSTER"; then
    timeout 10 sacctmgr -i add cluster "$CLUSTER" >>"$LOG/slurmdbd.start.log" 2>&1 \
      || fail "sacctmgr add cluster $CLUSTER failed" "$LOG/slurmdbd.start.log" "$LOG/slurmdbd.log"
  fi

  if [[ -z $(our_pids slurmctld) ]]; then
    log "starting slurmctld"
    run_daemon slurmctld slurmctld -c -f "$SLURM_CONF"
  fi
  wait_daemon 30 ctld_alive ctld_ok || fail "slurmctld does not answer 'scontrol ping' (within 30 s)" \
    "$LOG/slurmctld.start.log" "$LOG/slurmctld.log"

  for n in "${NODES[@]}"; do
    if [[ -z $(our_pids slurmd "-N $n") ]]; then
      log "starting slurmd for $n"
      run_daemon "slurmd-$n" slurmd -N "$n" -f "$SLURM_CONF"
    fi
  done

  wait_daemon "$TIMEOUT" slurmds_alive nodes_ready || fail "nodes ${NODES[*]} not idle in sinfo (within ${TIMEOUT} s): $(timeout 10 sinfo -h -N -o '%N=%t' 2>&1 | tr '\n' ' ')" \
    "$LOG/slurmctld.log" "$LOG/slurmd-n1.log" "$LOG/slurmd-n2.log"
  # Accounting seen from a client (the tests rely on sacct).
  local err
  err=$(timeout 10 sacct -n -X 2>&1 >/dev/null) || true
  [[ -z $err ]] || fail "sacct does not work: $err" "$LOG/slurmdbd.log" "$LOG/slurmctld.log"

  log "up in $(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }') s: $(sinfo -h -N -o '%N=%t(%c cpus, %m MB)' | tr '\n' ' ')"
  print_env
}

print_env() { cat "$DIR/env.sh" 2>/dev/null || echo "export SLURM_CONF=$SLURM_CONF"; }

# ---------------------------------------------------------------------------- stop

stop() {
  local jobs=() pids=() left="" name grace=0
  # 1. Cancel every job, so that accounting records it and no job process outlives the cluster.
  if [[ -n $(our_pids slurmctld) ]] && ctld_ok; then
    mapfile -t jobs < <(timeout 10 squeue -h -o %A 2>/dev/null || true)
    if ((${#jobs[@]} > 0)); then
      log "cancelling jobs: ${jobs[*]}"
      timeout 10 scancel "${jobs[@]}" 2>/dev/null || true
      wait_until 15 no_jobs || log "jobs still listed by squeue 15 s after scancel"
    fi
    # 2. slurmctld tells the slurmd to exit, and exits itself.
    timeout 10 scontrol shutdown >/dev/null 2>&1 && grace=10
  fi
  # 3. Give slurmctld/slurmd 10 s to exit after the shutdown, then SIGTERM, then SIGKILL.
  mapfile -t pids < <(our_pids slurmctld; our_pids slurmscriptd; our_pids slurmd)
  STOPPED+=("${pids[@]}")
  wait_gone "$grace" "${pids[@]}" || terminate 10 "${pids[@]}" || true
  # 4. Job steps (they outlive slurmd by design) and the processes of their jobs.
  mapfile -t pids < <(our_pids slurmstepd)
  if ((${#pids[@]} > 0)); then
    log "killing leftover job steps: ${pids[*]}"
    mapfile -t pids < <(descendants "${pids[@]}"; printf '%s\n' "${pids[@]}")
    terminate 2 "${pids[@]}" || true
  fi
  mapfile -t pids < <(our_pids slurmdbd)
  terminate 15 "${pids[@]}" || true
  # 5. The machine-wide daemons, only when this cluster started them.
  if [[ -f $RUN/started-mariadb ]]; then
    /etc/init.d/mariadb stop >/dev/null 2>&1 || true
    mapfile -t pids < <(pids_named mysqld_safe mariadbd mysqld)
    terminate 15 "${pids[@]}" || true
    rm -f "$RUN/started-mariadb"
  fi
  if [[ -f $RUN/started-munge ]]; then
    mapfile -t pids < <(pids_named munged)
    terminate 10 "${pids[@]}" || true
    rm -f "$RUN/started-munge"
  fi
  rm -f "$RUN"/*.pid
  wait_reaped 10 "${STOPPED[@]}"
  # 6. Verify.
  for name in "${SLURM_DAEMONS[@]}"; do
    mapfile -t pids < <(our_pids "$name")
    ((${#pids[@]} == 0)) || left+=" $name: ${pids[*]};"
  done
  if [[ -n $left ]]; then
    echo "testcluster: ERROR: still running after stop:$left" >&2
    return 1
  fi
  log "stopped ($DIR)"
  mapfile -t pids < <(pids_named slurmctld slurmd slurmdbd munged mariadbd)
  if ((${#pids[@]} > 0)); then
    log "note: left running (not this cluster's, or not started by it): $(ps -o pid=,comm= -p "$(IFS=,; echo "${pids[*]}")" | tr -s ' \n' ' ')"
  fi
}

# --------------------------------------------------------------------------- status

status() {
  local name pids
  for name in slurmdbd slurmctld; do
    pids=$(our_pids "$name" | tr '\n' ' ')
    echo "$name: ${pids:-not running}"
  done
  for name in "${NODES[@]}"; do
    pids=$(our_pids slurmd "-N $name" | tr '\n' ' ')
    echo "slurmd $name: ${pids:-not running}"
  done
  if [[ -n $(our_pids slurmctld) ]]; then
    timeout 10 sinfo -N -o "%N %P %t %c %m" 2>&1 || true
  fi
  if cluster_up; then
    echo "up: export SLURM_CONF=$SLURM_CONF"
    return 0
  fi
  echo "testcluster: not up ($DIR)" >&2
  return 1
}

case $CMD in
  start) start ;;
  stop) stop ;;
  status) status ;;
esac
