#!/usr/bin/env bash
# A single-node Slurm for testing `amm grid --slurm` (docs/CLUSTER.md).
#   tools/slurm-single-node.sh start DIR   # writes DIR/slurm.conf, starts munged, slurmctld, slurmd
#   tools/slurm-single-node.sh stop DIR    # cancels jobs, waits for an empty queue, stops the daemons
# Needs root and Debian's packages: apt-get install -y slurmctld slurmd slurm-client munge
# Afterwards, use `export SLURM_CONF=DIR/slurm.conf` in the shell that runs sbatch/squeue.
set -euo pipefail
cmd=${1:?usage: $0 start|stop DIR}
dir=$(mkdir -p "${2:?usage: $0 start|stop DIR}" && cd "$2" && pwd)
export SLURM_CONF=$dir/slurm.conf
host=$(hostname -s)
cpus=$(nproc)

start() {
  mkdir -p "$dir/state" "$dir/spool"
  cat > "$SLURM_CONF" <<CONF
ClusterName=amm-test
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
SlurmctldPort=16817
SlurmdPort=16818
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
ReturnToService=2
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
NodeName=$host CPUs=$cpus State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
  # munge: the package creates /etc/munge/munge.key; make one if it is missing.
  if [ ! -s /etc/munge/munge.key ]; then
    mkdir -p /etc/munge && dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 2>/dev/null
    chown munge:munge /etc/munge/munge.key 2>/dev/null || true
    chmod 400 /etc/munge/munge.key
  fi
  mkdir -p /run/munge /var/log/munge /var/lib/munge
  chown munge:munge /run/munge /var/log/munge /var/lib/munge 2>/dev/null || true
  if ! pgrep -x munged >/dev/null; then
    if id munge >/dev/null 2>&1; then runuser -u munge -- /usr/sbin/munged; else /usr/sbin/munged --force; fi
  fi
  slurmctld -f "$SLURM_CONF"
  slurmd -f "$SLURM_CONF"
  for _ in $(seq 1 60); do
    if sinfo -h -o '%T' 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then
      echo "slurm is up: SLURM_CONF=$SLURM_CONF"
      return 0
    fi
    sleep 0.5
  done
  echo "slurm did not come up; logs in $dir" >&2
  return 1
}

stop() {
  scancel --user="$(id -un)" 2>/dev/null || true
  for _ in $(seq 1 60); do
    [ -z "$(squeue -h 2>/dev/null)" ] && break
    sleep 0.5
  done
  for p in slurmd slurmctld; do
    [ -f "$dir/$p.pid" ] && kill "$(cat "$dir/$p.pid")" 2>/dev/null || true
  done
  echo "slurm stopped"
}

"$cmd"
