#!/usr/bin/env bash
# A throw-away one-node SLURM cluster for tests, CI and trying the slurm profile.
#
#   tests/slurm_cluster.sh install   # apt-get install slurm-wlm + munge (Debian/Ubuntu, as root)
#   tests/slurm_cluster.sh start     # write a private config, start munged/slurmctld/slurmd
#   eval "$(tests/slurm_cluster.sh env)"   # = the two `export` lines `start` prints (SLURM_CONF, PATH)
#   tests/slurm_cluster.sh status    # sinfo + squeue
#   tests/slurm_cluster.sh stop      # stop exactly the daemons `start` started
#
# Everything lives in $BANA_SLURM_DIR (default /tmp/bana-slurm): slurm.conf, gres.conf, a private
# munge key and socket, state, spool, pid and log files. Nothing under /etc is touched, and the
# daemons listen on their own ports, so a system SLURM or munge on the same machine is left alone.
# The node advertises $BANA_SLURM_GPUS fake GPUs (default 2): gres.conf points at symlinks to
# /dev/null named nvidia<i>, so SLURM schedules --gres=gpu:N / --gpus=N and sets
# CUDA_VISIBLE_DEVICES in the job exactly as on a real GPU node.
#
# Environment knobs: BANA_SLURM_DIR, BANA_SLURM_GPUS (2), BANA_SLURMCTLD_PORT (6917),
# BANA_SLURMD_PORT (6918), BANA_SLURM_TIMEOUT (seconds to wait for the node, 30).
set -euo pipefail

DIR="${BANA_SLURM_DIR:-/tmp/bana-slurm}"
GPUS="${BANA_SLURM_GPUS:-2}"
CTLD_PORT="${BANA_SLURMCTLD_PORT:-6917}"
SLURMD_PORT="${BANA_SLURMD_PORT:-6918}"
TIMEOUT="${BANA_SLURM_TIMEOUT:-30}"
case "$DIR" in
    /?*) ;;
    *) echo "slurm_cluster: error: BANA_SLURM_DIR must be an absolute path below /, got '$DIR'" >&2; exit 2 ;;
esac
CONF="$DIR/slurm.conf"
MUNGE_SOCKET="$DIR/munge/run/munge.socket"

log() { echo "slurm_cluster: $*" >&2; }
die() { log "error: $*"; exit 1; }

need_root() {
    # slurmd must run as root to launch job steps; SlurmUser=root keeps the setup to one user.
    [ "$(id -u)" -eq 0 ] || die "run as root (e.g. sudo $0 $1)"
}

have_binaries() {
    local b
    for b in slurmctld slurmd sinfo squeue sbatch srun scontrol scancel munged; do
        command -v "$b" >/dev/null 2>&1 || return 1
    done
}

alive() {  # alive PIDFILE: the pid in it names a running process
    [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null
}

cmd_install() {
    if have_binaries; then
        log "slurm and munge already installed ($(slurmd -V))"
        return 0
    fi
    need_root install
    command -v apt-get >/dev/null 2>&1 || die "apt-get not found: install slurm-wlm and munge with your package manager"
    export DEBIAN_FRONTEND=noninteractive
    local aptlog
    aptlog="$(mktemp)"
    # slurm-wlm = slurmctld + slurmd + slurm-client; no recommends (docs, mail, ...).
    # The packaged services may or may not start (policy-rc.d): we never use them.
    if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends slurm-wlm munge; } \
        >"$aptlog" 2>&1; then
        tail -n 30 "$aptlog" >&2
        rm -f "$aptlog"
        die "apt-get install slurm-wlm munge failed"
    fi
    rm -f "$aptlog"
    have_binaries || die "slurm-wlm installed but its binaries are not on PATH"
    log "installed $(slurmd -V)"
}

write_config() {
    local host mem_mb cpus i
    host="$(hostname -s)"
    cpus="$(nproc)"
    # Claim 90% of the memory free now: slurmd drains a node whose RealMemory exceeds what it sees.
    mem_mb=$(( $(awk '/^MemAvailable:/ {print $2}' /proc/meminfo) * 9 / 10 / 1024 ))
    mkdir -p "$DIR"/{state,spool,log,dev}
    chmod 755 "$DIR"

    # Fake GPU devices: gres/gpu insists on character devices and takes the index from the name.
    rm -f "$DIR"/dev/nvidia*
    for ((i = 0; i < GPUS; i++)); do ln -s /dev/null "$DIR/dev/nvidia$i"; done

    local gres_line="" node_gres=""
    if [ "$GPUS" -gt 0 ]; then
        gres_line="GresTypes=gpu"
        node_gres="Gres=gpu:$GPUS"
    fi

    # snakemake-executor-plugin-slurm-jobstep strips every SLURM_* variable (SLURM_CONF too,
    # upstream issue snakemake-executor-plugin-slurm#164) before its in-job `srun`, which then
    # finds no configuration: real clusters keep slurm.conf in /etc or run configless. Rather
    # than touch /etc, put an `srun` first on PATH that restores SLURM_CONF when it is missing.
    local real_srun
    # The real srun, not a wrapper of ours already on PATH (a restart would loop forever).
    real_srun="$(PATH="$(printf '%s' "$PATH" | tr ':' '\n' | grep -vxF "$DIR/bin" | paste -sd:)" command -v srun)"
    mkdir -p "$DIR/bin"
    cat > "$DIR/bin/srun" <<EOF
#!/bin/sh
# Written by tests/slurm_cluster.sh: restore the test cluster's SLURM_CONF, then run srun.
SLURM_CONF="\${SLURM_CONF:-$CONF}" exec $real_srun "\$@"
EOF
    chmod 755 "$DIR/bin/srun"

    cat > "$CONF" <<EOF
# Written by tests/slurm_cluster.sh: a one-node test cluster. Do not use in production.
ClusterName=bana
# NodeAddr 127.0.0.1: works even where \`hostname -s\` does not resolve.
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$MUNGE_SOCKET
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# No cgroups: works in containers and sandboxes.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# Without a default, a job that asks no memory would get the whole node and run alone.
DefMemPerCPU=512
$gres_line
# No accounting database: sacct cannot answer, status comes from squeue (see profiles/slurm).
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
# Finished jobs stay visible to squeue this long; snakemake-executor-plugin-slurm needs
# MinJobAge >= 3 x init-seconds-before-status-checks to trust squeue.
MinJobAge=600
SchedulerType=sched/backfill
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb $node_gres State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF

    {
        echo "AutoDetect=off"
        if [ "$GPUS" -gt 0 ]; then
            echo "NodeName=$host Name=gpu File=$DIR/dev/nvidia[0-$((GPUS - 1))]"
        fi
    } > "$DIR/gres.conf"
}

start_munge() {
    mkdir -p "$DIR/munge/run" "$DIR/munge/etc"
    chmod 755 "$DIR/munge" "$DIR/munge/run"   # munged wants the socket dir world-executable
    chmod 700 "$DIR/munge/etc"                 # ... and its key private
    local key="$DIR/munge/etc/munge.key"
    if [ ! -s "$key" ]; then
        if command -v mungekey >/dev/null 2>&1; then
            mungekey --create --keyfile="$key"
        else
            dd if=/dev/urandom of="$key" bs=1024 count=1 status=none
        fi
        chmod 600 "$key"
    fi
    if alive "$DIR/munge/run/munged.pid"; then return 0; fi
    rm -f "$MUNGE_SOCKET" "$MUNGE_SOCKET.lock"
    munged --socket="$MUNGE_SOCKET" --key-file="$key" --pid-file="$DIR/munge/run/munged.pid" \
        --log-file="$DIR/log/munged.log" --seed-file="$DIR/munge/etc/munged.seed" \
        || die "munged failed to start; see $DIR/log/munged.log"
}

show_logs() {
    local f
    for f in "$DIR"/log/*.log; do
        [ -f "$f" ] || continue
        echo "---- tail $f" >&2
        tail -n 20 "$f" >&2
    done
}

wait_idle() {
    local t0 state
    t0=$(date +%s)
    while :; do
        state="$(sinfo -h -N -o '%t' 2>/dev/null | head -n 1 || true)"
        case "$state" in
            idle | mix | alloc) return 0 ;;
        esac
        if (( $(date +%s) - t0 >= TIMEOUT )); then
            log "node not idle after ${TIMEOUT}s (state: '${state:-no answer}')"
            show_logs
            return 1
        fi
        sleep 0.5
    done
}

print_env() {
    echo "export SLURM_CONF=$CONF"
    echo "export PATH=$DIR/bin:\$PATH"
}

cmd_start() {
    need_root start
    have_binaries || die "slurm/munge not installed: run '$0 install' first"
    export SLURM_CONF="$CONF"
    if alive "$DIR/slurmctld.pid" && alive "$DIR/slurmd.pid"; then
        log "already running in $DIR"
        wait_idle || exit 1
        print_env
        return 0
    fi
    # Half-started leftovers from an earlier run would hold the ports.
    cmd_stop >/dev/null 2>&1 || true
    rm -rf "${DIR:?}/state" "${DIR:?}/spool" "${DIR:?}/log"
    write_config
    start_munge
    # -c: start from empty state, no jobs from an earlier cluster in this directory.
    slurmctld -c || { show_logs; die "slurmctld failed to start"; }
    slurmd -c || { show_logs; die "slurmd failed to start"; }
    wait_idle || die "cluster did not come up; logs in $DIR/log (stop it with '$0 stop')"
    log "one-node cluster up: $(sinfo -h -N -o '%N %c CPUs %m MB %G %t')"
    log "set this in your shell (sbatch, snakemake --executor slurm, pytest -m slurm):"
    print_env
}

stop_pidfile() {  # stop_pidfile NAME PIDFILE: TERM, wait up to 10 s, then KILL
    local name="$1" pidfile="$2" pid i
    alive "$pidfile" || { rm -f "$pidfile"; return 0; }
    pid="$(cat "$pidfile")"
    kill "$pid" 2>/dev/null || true
    for ((i = 0; i < 40; i++)); do
        kill -0 "$pid" 2>/dev/null || { rm -f "$pidfile"; log "stopped $name ($pid)"; return 0; }
        sleep 0.25
    done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$pidfile"
    log "killed $name ($pid)"
}

cmd_stop() {
    export SLURM_CONF="$CONF"
    if alive "$DIR/slurmctld.pid"; then
        # Cancel our jobs first so no slurmstepd or job process outlives the daemons.
        local i
        scancel --quiet --full --partition=debug 2>/dev/null || true
        for ((i = 0; i < 40; i++)); do
            [ -z "$(squeue -h -t running,completing -o %i 2>/dev/null)" ] && break
            sleep 0.25
        done
    fi
    stop_pidfile slurmd "$DIR/slurmd.pid"
    stop_pidfile slurmctld "$DIR/slurmctld.pid"
    stop_pidfile munged "$DIR/munge/run/munged.pid"
    rm -rf "${DIR:?}/state" "${DIR:?}/spool" "${DIR:?}/bin" "$MUNGE_SOCKET" "$MUNGE_SOCKET.lock"
    log "stopped; logs kept in $DIR/log (rm -rf $DIR removes everything)"
    # A SLURM_CONF naming a stopped cluster costs every later snakemake call ~10 s: the slurm
    # plugin runs `scontrol show config` when it is loaded.
    log "in your shell: unset SLURM_CONF"
}

cmd_status() {
    export SLURM_CONF="$CONF"
    if ! alive "$DIR/slurmctld.pid"; then
        log "not running (no live slurmctld for $DIR)"
        return 1
    fi
    print_env
    sinfo -N -o '%N %P %c %m %G %t'
    squeue --states=all
}

case "${1:-}" in
    install) cmd_install ;;
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    env) print_env ;;
    *)
        echo "usage: $0 {install|start|stop|status|env}" >&2
        exit 2
        ;;
esac
