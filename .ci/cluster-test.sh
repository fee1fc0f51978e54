#!/usr/bin/env bash
# The cluster test (issue 12). Slurm: installs Debian's slurmctld, slurmd, slurm-client and munge when missing,
# starts a one-node Slurm on localhost without systemd (everything under one temporary folder), submits the
# smoke suite as 3 shards and a merge job with the script `bench slurm` writes, and checks that the merged
# results equal a single-process run exactly (`bench check`; smoke is `exact: true`). Kubernetes: validates
# the manifests `bench k8s` writes against the Kubernetes 1.37 API schemas (kubernetes-validate, strict); the
# unit tests compare the same manifests with Tests/BenchTests/Expected/k8s-smoke.txt.
#
# A part that cannot run here (not root, apt-get or PyPI unreachable) prints "SKIPPED: ..." and the script
# goes on; a part that runs and fails prints the daemons' logs and the job outputs, and exits 1. Everything
# started here is stopped by its process id on exit.
#
# Usage: bash .ci/cluster-test.sh [BENCH]   (BENCH: the built bench, default .build/release/bench)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
if [[ $# -ge 1 ]]; then
    bench=$(realpath -e -- "$1" 2>/dev/null) || { echo "cluster-test: no such file: $1" >&2; exit 1; }
else
    bench=$root/.build/release/bench
fi
[[ -x $bench ]] || { echo "cluster-test: $bench is not an executable (build it first: swift build -c release)" >&2; exit 1; }
cd "$root"

started=$SECONDS
tmp=$(mktemp -d "${TMPDIR:-/tmp}/metabench-cluster.XXXXXX")
chmod 755 "$tmp"   # munged requires every folder above its socket to be searchable by all
daemons=()         # process ids of the daemons started here, in start order
jobs_submitted=()  # Slurm job ids, cancelled on exit if still there
out=""             # the suite's output folder on "shared" storage

log() { echo "cluster-test: $*"; }

# Whether process $1 is running (a zombie, exited but not yet waited for, is not).
running() {
    local state
    [[ -r /proc/$1/stat ]] || return 1
    state=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1
    [[ -n $state && $state != Z && $state != X ]]
}

# SIGTERM to process $1, SIGKILL if it is still running 5 s later.
stop_process() {
    kill -TERM "$1" 2>/dev/null || true
    for _ in $(seq 50); do running "$1" || break; sleep 0.1; done
    if running "$1"; then kill -KILL "$1" 2>/dev/null || true; fi
    wait "$1" 2>/dev/null || true
}

cleanup() {
    local status=$?
    trap - EXIT INT TERM
    if [[ ${#jobs_submitted[@]} -gt 0 && -n ${SLURM_CONF:-} ]]; then
        scancel "${jobs_submitted[@]}" 2>/dev/null || true
        for _ in $(seq 50); do
            [[ -z $(squeue -h -j "$(IFS=,; echo "${jobs_submitted[*]}")" 2>/dev/null) ]] && break
            sleep 0.2
        done
    fi
    local i
    for ((i = ${#daemons[@]} - 1; i >= 0; i--)); do stop_process "${daemons[i]}"; done
    rm -rf "$tmp"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The logs and outputs that explain a failure.
diagnostics() {
    local f
    for f in "$tmp"/log/*; do
        [[ -s $f ]] || continue
        # A daemon's standard error repeats its log file; show it only when the log file is empty.
        [[ $f == *.out && -s ${f%.out}.log ]] && continue
        echo "----- $(basename "$f") (last 80 lines)"
        tail -n 80 "$f"
    done
    if [[ -n ${SLURM_CONF:-} && ${#jobs_submitted[@]} -gt 0 ]]; then
        echo "----- scontrol show job"
        for f in "${jobs_submitted[@]}"; do scontrol -o show job "$f" 2>&1 || true; done
    fi
    if [[ -n $out && -d $out/slurm ]]; then
        for f in "$out"/slurm/*; do
            [[ -f $f ]] || continue
            echo "----- job output $(basename "$f") (last 60 lines)"
            tail -n 60 "$f"
        done
    fi
}

fail() {
    echo "FAIL: cluster-test: $*" >&2
    diagnostics >&2
    exit 1
}

# wait_for SECONDS WHAT COMMAND...: runs COMMAND every 0.2 s until it succeeds; fails after SECONDS, or at
# once when a daemon started here has exited.
wait_for() {
    local limit=$1 what=$2 start=$SECONDS pid
    shift 2
    until "$@"; do
        for pid in "${daemons[@]}"; do running "$pid" || fail "a daemon (pid $pid) exited while waiting for $what"; done
        ((SECONDS - start < limit)) || fail "no $what after $limit s"
        sleep 0.2
    done
}

# A TCP port on 127.0.0.1 nothing listens on (other than $1, if given).
free_port() {
    local port
    for _ in $(seq 100); do
        port=$((20000 + RANDOM % 30000))
        [[ $port == "${1:-}" ]] && continue
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then echo "$port"; return 0; fi
    done
    return 1
}

# --- Slurm -------------------------------------------------------------------------------------------------

slurm_installed() {
    local tool
    for tool in munged mungekey slurmctld slurmd sbatch scontrol sinfo squeue scancel; do
        command -v "$tool" >/dev/null 2>&1 || return 1
    done
}

install_slurm() {
    if [[ $(id -u) != 0 ]]; then
        echo "SKIPPED: Slurm test: it needs root (to install Slurm with apt-get and run its daemons as SlurmUser=root)"
        return 1
    fi
    slurm_installed && return 0
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "SKIPPED: Slurm test: Slurm is not installed and there is no apt-get to install it"
        return 1
    fi
    log "installing slurmctld slurmd slurm-client munge (apt-get, no recommends)"
    local packages=(slurmctld slurmd slurm-client munge)
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${packages[@]}" >"$tmp/apt.log" 2>&1; then
        if ! { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${packages[@]}"; } >>"$tmp/apt.log" 2>&1; then
            echo "SKIPPED: Slurm test: apt-get could not install ${packages[*]}; its last lines:"
            tail -n 5 "$tmp/apt.log" | sed 's/^/  /'
            return 1
        fi
    fi
    slurm_installed || { echo "SKIPPED: Slurm test: apt-get ran but the Slurm commands are still missing"; return 1; }
}

node_idle() { [[ $(sinfo -h -N -o '%T' 2>/dev/null) == idle ]]; }

start_slurm() {
    mkdir -p "$tmp/munge" "$tmp/state" "$tmp/spool" "$tmp/log"
    chmod 755 "$tmp/munge"
    mungekey --create --keyfile="$tmp/munge.key" >>"$tmp/log/munged.out" 2>&1 || fail "mungekey could not create a key"
    munged --foreground --socket="$tmp/munge/munge.socket.2" --key-file="$tmp/munge.key" \
        --pid-file="$tmp/munge/munged.pid" --seed-file="$tmp/munged.seed" --log-file="$tmp/log/munged.log" \
        >>"$tmp/log/munged.out" 2>&1 &
    daemons+=($!)
    wait_for 10 "munge socket" test -S "$tmp/munge/munge.socket.2"

    local controller_port node_port
    controller_port=$(free_port) && node_port=$(free_port "$controller_port") || fail "no free TCP port for Slurm"
    cat >"$tmp/slurm.conf" <<EOF
# A one-node Slurm for MetaBench's cluster test; everything lives under $tmp.
ClusterName=metabench
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=$controller_port
SlurmdPort=$node_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$tmp/munge/munge.socket.2
StateSaveLocation=$tmp/state
SlurmdSpoolDir=$tmp/spool
SlurmctldPidFile=$tmp/slurmctld.pid
SlurmdPidFile=$tmp/slurmd.pid
SlurmctldLogFile=$tmp/log/slurmctld.log
SlurmdLogFile=$tmp/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
SchedulerParameters=batch_sched_delay=0
DependencyParameters=kill_invalid_depend
MailProg=/bin/true
ReturnToService=2
MinJobAge=600
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$(nproc) State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
    export SLURM_CONF=$tmp/slurm.conf
    slurmctld -D -f "$SLURM_CONF" >"$tmp/log/slurmctld.out" 2>&1 &
    daemons+=($!)
    slurmd -D -N localhost -f "$SLURM_CONF" >"$tmp/log/slurmd.out" 2>&1 &
    daemons+=($!)
    wait_for 60 "idle Slurm node" node_idle
    log "Slurm $(sinfo --version | awk '{print $2}') is up: one node, $(nproc) CPUs ($((SECONDS - started)) s)"
}

# The states of job $1 (one line per array task).
job_states() { scontrol -o show job "$1" 2>/dev/null | grep -o 'JobState=[A-Z_]*' | cut -d= -f2; }

merge_finished() {
    case $(job_states "$1") in
        COMPLETED | FAILED | CANCELLED | TIMEOUT | NODE_FAIL | PREEMPTED | OUT_OF_MEMORY | BOOT_FAIL | DEADLINE) return 0 ;;
        *) return 1 ;;
    esac
}

slurm_test() {
    install_slurm || return 0
    start_slurm

    # A shared output folder whose name needs quoting in the shell and escaping in Slurm's --output patterns.
    out="$tmp/shared results/it's 100%"
    "$bench" slurm --suite smoke --shards 3 --cpus-per-task 1 --output "$out" || fail "bench slurm failed"
    log "bench slurm wrote the script ($((SECONDS - started)) s)"
    local script="$out/slurm-submit.sh"
    [[ -x $script ]] || fail "bench slurm did not write an executable $script"

    local submitted array merge
    submitted=$(bash "$script") || fail "the script bench slurm wrote failed: $submitted"
    echo "$submitted"
    array=$(sed -n 's/^array job \([0-9][0-9]*\)$/\1/p' <<<"$submitted")
    merge=$(sed -n 's/^merge job \([0-9][0-9]*\)$/\1/p' <<<"$submitted")
    [[ -n $array && -n $merge ]] || fail "the script did not print 'array job ID' and 'merge job ID'"
    jobs_submitted=("$array" "$merge")

    wait_for 150 "end of merge job $merge" merge_finished "$merge"
    local states
    states=$(job_states "$array" | sort | uniq -c | sed 's/^ *//')
    [[ $states == "3 COMPLETED" ]] || fail "array job $array: expected 3 tasks COMPLETED, got: $(echo $states)"
    [[ $(job_states "$merge") == COMPLETED ]] || fail "merge job $merge ended $(job_states "$merge")"
    log "3 shards and the merge job COMPLETED ($((SECONDS - started)) s)"

    local task
    for task in 0 1 2; do
        grep -q "^shard $task/3 (from the Slurm array" "$out/slurm/${array}_$task.out" \
            || fail "the log of task $task does not say it ran shard $task/3"
    done
    for f in REPORT.md results.json results.csv learning-curves.svg; do
        [[ -s $out/$f ]] || fail "the merge job did not write $f"
    done

    # The merged results must equal a single-process run, cell by cell, to the bit.
    log "bench check --suite smoke against the merged results (a single-process run)"
    "$bench" check --suite smoke --stored "$out/results.json" >"$tmp/log/check.out" 2>&1 \
        || fail "bench check: the merged results differ from a single-process run (its output is below)"
    tail -n 1 "$tmp/log/check.out"
    log "PASSED: Slurm: 3 shards + merge job equal a single-process run ($((SECONDS - started)) s)"

    # Stop Slurm now: the rest needs none of it.
    local i
    jobs_submitted=()
    for ((i = ${#daemons[@]} - 1; i >= 0; i--)); do stop_process "${daemons[i]}"; done
    daemons=()
    unset SLURM_CONF
}

# --- Kubernetes --------------------------------------------------------------------------------------------

kubernetes_test() {
    local manifests="$tmp/k8s"
    "$bench" k8s --suite smoke --shards 3 --image metabench:test --claim results --manifests "$manifests" \
        || fail "bench k8s failed"
    local files=("$manifests/metabench-smoke-shards.yaml" "$manifests/metabench-smoke-merge.yaml")
    local f
    for f in "${files[@]}"; do [[ -s $f ]] || fail "bench k8s did not write $f"; done

    if ! python3 -m venv "$tmp/venv" >"$tmp/venv.log" 2>&1; then
        # Debian keeps venv in a package of its own.
        if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1 \
            && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends python3 python3-venv >>"$tmp/venv.log" 2>&1; then
            rm -rf "$tmp/venv"
            python3 -m venv "$tmp/venv" >>"$tmp/venv.log" 2>&1 || { echo "SKIPPED: Kubernetes schemas: python3 -m venv failed"; return 0; }
        else
            echo "SKIPPED: Kubernetes schemas: python3 -m venv is not available"
            return 0
        fi
    fi
    if ! "$tmp/venv/bin/pip" install -q --disable-pip-version-check "kubernetes-validate==1.37.*" >"$tmp/pip.log" 2>&1; then
        echo "SKIPPED: Kubernetes schemas: pip could not install kubernetes-validate 1.37 (PyPI unreachable?); its last lines:"
        tail -n 3 "$tmp/pip.log" | sed 's/^/  /'
        return 0
    fi
    "$tmp/venv/bin/kubernetes-validate" --strict --kubernetes-version 1.37.0 "${files[@]}" \
        || fail "the manifests bench k8s wrote do not validate against the Kubernetes 1.37 schemas"
    log "PASSED: Kubernetes: both manifests validate against the 1.37 API schemas, strict ($((SECONDS - started)) s)"
}

slurm_test
kubernetes_test
log "done in $((SECONDS - started)) s"
