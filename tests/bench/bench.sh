#!/usr/bin/env bash
# bench.sh - benchmark (not a test) of xfer against a raw socat TCP copy.
#
# Copies one file of random bytes over loopback (127.0.0.1) between two
# directories on tmpfs (/dev/shm), alternating a socat baseline and xfer,
# and reports wall time, the xfer/socat time ratio and the peak RSS of the
# xfer sender and receiver.  See README.md in this directory.
#
# Exit status: 0 ok, 1 error (missing tool, failed or corrupted transfer, ...),
# 2 usage error, 3 --targets given and a target was missed.
# shellcheck disable=SC2317  # cleanup helpers are reached through trap
set -euo pipefail
# Both xfer processes share a secret; the run measures the encrypted path.
export XFER_SECRET=${XFER_SECRET:-bench-secret-$(od -An -N16 -tx1 /dev/urandom | tr -d " \n")}
export LC_ALL=C
unset XFER_IDLE_TIMEOUT

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)

SIZE=1073741824
RUNS=5
WARMUP=1
BIN="$script_dir/../../build/xfer"
PORT_BASE=19500
KEEP=0
TARGETS=0
SSH=0
SOCAT_BLOCK=131072
TIMEOUT=""            # per transfer, seconds; default derived from --size
PREFAULT=1
TARGET_RATIO=1.25
TARGET_RSS_KIB=65536  # 64 MiB
LISTEN_WAIT_TRIES=250 # x 20 ms = 5 s

usage() {
    cat <<EOF
usage: $(basename "$0") [options]
  --size BYTES        size of the test file (default 1073741824 = 1 GiB)
  --runs N            number of socat/xfer run pairs (default 5)
  --warmup N          untimed socat/xfer pairs before the runs (default 1)
  --bin PATH          xfer binary (default ../../build/xfer relative to this script)
  --port-base P       first TCP port to use; each transfer takes a fresh port (default 19500)
  --socat-block B     socat -b block size for the baseline (default 131072)
  --timeout SECS      kill a transfer that takes longer (default 60 + 1 s per 8 MiB)
  --no-prefault       do not write and delete SIZE bytes on /dev/shm before each
                      transfer (the prefault gives every receiver warm memory; see README)
  --keep              keep the temporary directory under /dev/shm
  --ssh               also time scp and rsync over ssh in each run, against a private
                      sshd started on 127.0.0.1 (needs openssh-server, rsync, root)
  --targets           exit 3 if median_ratio > $TARGET_RATIO or an xfer peak RSS > 64 MiB
  -h, --help          this text
EOF
}

die() { echo "bench: error: $*" >&2; exit 1; }
usage_err() { echo "bench: $*" >&2; usage >&2; exit 2; }
log() { echo "bench: $*" >&2; }

is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }

while (($#)); do
    case $1 in
        --size|--runs|--warmup|--bin|--port-base|--socat-block|--timeout)
            (($# >= 2)) || usage_err "$1 needs a value"
            case $1 in
                --size) SIZE=$2 ;;
                --runs) RUNS=$2 ;;
                --warmup) WARMUP=$2 ;;
                --bin) BIN=$2 ;;
                --port-base) PORT_BASE=$2 ;;
                --socat-block) SOCAT_BLOCK=$2 ;;
                --timeout) TIMEOUT=$2 ;;
            esac
            shift 2 ;;
        --size=*) SIZE=${1#*=}; shift ;;
        --runs=*) RUNS=${1#*=}; shift ;;
        --warmup=*) WARMUP=${1#*=}; shift ;;
        --bin=*) BIN=${1#*=}; shift ;;
        --port-base=*) PORT_BASE=${1#*=}; shift ;;
        --socat-block=*) SOCAT_BLOCK=${1#*=}; shift ;;
        --timeout=*) TIMEOUT=${1#*=}; shift ;;
        --keep) KEEP=1; shift ;;
        --no-prefault) PREFAULT=0; shift ;;
        --targets) TARGETS=1; shift ;;
        --ssh) SSH=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) usage_err "unknown argument: $1" ;;
    esac
done

pos_int() { is_uint "$1" && (($1 > 0)); }
pos_int "$SIZE" || usage_err "--size must be a positive integer (bytes)"
pos_int "$RUNS" || usage_err "--runs must be a positive integer"
is_uint "$WARMUP" || usage_err "--warmup must be a non-negative integer"
pos_int "$SOCAT_BLOCK" || usage_err "--socat-block must be a positive integer"
if ! is_uint "$PORT_BASE" || ((PORT_BASE < 1024 || PORT_BASE > 65000)); then
    usage_err "--port-base must be an integer in 1024..65000"
fi
[[ -n $TIMEOUT ]] || TIMEOUT=$((60 + SIZE / 8388608))
pos_int "$TIMEOUT" || usage_err "--timeout must be a positive integer (seconds)"

# ---- dependencies ------------------------------------------------------------
need() { # need CMD APT-PACKAGE
    if [[ $1 == /* ]]; then
        [[ -x $1 ]] || die "$1 not found; install it with: apt-get install $2"
    else
        command -v "$1" >/dev/null 2>&1 || die "$1 not found; install it with: apt-get install $2"
    fi
}
need socat socat
need /usr/bin/time time
need cmp diffutils
need timeout coreutils
need head coreutils
need awk gawk
if ((SSH)); then
    need /usr/sbin/sshd openssh-server
    need ssh-keygen openssh-client
    need scp openssh-client
    need rsync rsync
    ((EUID == 0)) || die "--ssh needs root (sshd on a private port, logging in as root with a temporary key)"
fi
((BASH_VERSINFO[0] >= 5)) || die "bash >= 5 needed (for EPOCHREALTIME)"
[[ -d /dev/shm && -w /dev/shm ]] || die "/dev/shm is not a writable directory"

bin_arg=$BIN
BIN=$(readlink -f -- "$BIN" 2>/dev/null) || true
if [[ -z $BIN || ! -f $BIN || ! -x $BIN ]]; then
    repo=$(cd "$script_dir/../.." && pwd -P)
    die "xfer binary $bin_arg not found or not executable; build it (cmake -S $repo -B $repo/build && cmake --build $repo/build) or pass --bin PATH"
fi

# tmpfs holds the source and one output at a time; it is RAM, so check both.
need_bytes=$((2 * SIZE + 64 * 1048576))
shm_avail=$(df -P -B1 /dev/shm | awk 'NR == 2 { print $4 }')
((shm_avail >= need_bytes)) || die "/dev/shm has $shm_avail bytes free, need $need_bytes for --size $SIZE"
mem_avail=$(($(awk '/^MemAvailable:/ { print $2 }' /proc/meminfo) * 1024))
((mem_avail >= need_bytes)) || die "only $mem_avail bytes of memory available, need $need_bytes for --size $SIZE"

# ---- temp dir, process bookkeeping, cleanup ------------------------------------
WORK=$(mktemp -d /dev/shm/xfer-bench.XXXXXX)
LIVE_PIDS=()

descendants() { # print all descendant pids of the given pids
    local p c
    for p in "$@"; do
        # shellcheck disable=SC2013  # the file is a space-separated pid list
        for c in $(cat /proc/"$p"/task/*/children 2>/dev/null); do
            echo "$c"
            descendants "$c"
        done
    done
}

proc_gone() { # true if $1 no longer exists or is a zombie
    local st
    st=$(awk '{ print $3 }' /proc/"$1"/stat 2>/dev/null) || return 0
    [[ -z $st || $st == Z ]]
}

kill_pids() { # stop the given pids and everything below them, by pid
    (($#)) || return 0
    local all p leaves="" i alive
    all=$(
        descendants "$@"
        printf '%s\n' "$@"
    )
    # SIGTERM the leaves (xfer/socat) first so that timeout and /usr/bin/time above
    # them reap them and exit by themselves (no orphaned zombies).
    for p in $all; do
        [[ -n $(cat /proc/"$p"/task/*/children 2>/dev/null) ]] || leaves+=" $p"
    done
    # shellcheck disable=SC2086
    kill -TERM $leaves 2>/dev/null || true
    for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do
        alive=0
        for p in $all; do proc_gone "$p" || alive=1; done
        ((alive)) || break
        sleep 0.1
    done
    for p in $all; do proc_gone "$p" || kill -KILL "$p" 2>/dev/null || true; done
    wait "$@" 2>/dev/null || true
}

cleanup() {
    local rc=$?
    set +e
    trap - EXIT INT TERM
    kill_pids "${LIVE_PIDS[@]}"
    LIVE_PIDS=()
    if ((KEEP)); then
        log "kept temporary files in $WORK"
    else
        rm -rf -- "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Snapshot the binary so a rebuild during the benchmark cannot mix versions.
cp -- "$BIN" "$WORK/xfer"
XBIN=$WORK/xfer
xfer_version=$("$XBIN" --version 2>&1 | head -n 1) || die "$BIN --version failed"
socat_version=$(socat -V 2>/dev/null | awk '/socat version/ { print $3; exit }')

SRC_DIR=$WORK/src
SOCAT_OUT=$WORK/socat-out
XFER_OUT=$WORK/xfer-out
SSH_OUT=$WORK/ssh-out
LOGS=$WORK/logs
mkdir -p "$SRC_DIR" "$SOCAT_OUT" "$XFER_OUT" "$SSH_OUT" "$LOGS"
EXTRA_KINDS=()
((SSH)) && EXTRA_KINDS=(scp rsync)
SRC=$SRC_DIR/payload.bin

# ---- ports ---------------------------------------------------------------------
# A port counts as taken if anything LISTENs on it (IPv4 or IPv6, any address).
port_listening() { # port_listening PORT [ADDRHEX]: is a LISTEN socket on PORT (at ADDRHEX)?
    local hex addr=${2:-}
    hex=$(printf '%04X' "$1")
    awk -v port="$hex" -v addr="$addr" '
        $4 == "0A" {
            n = split($2, a, ":")
            if (a[n] == port && (addr == "" || a[1] == addr)) { found = 1; exit }
        }
        END { exit !found }' /proc/net/tcp /proc/net/tcp6 2>/dev/null
}

NEXT_PORT=$PORT_BASE
fresh_port() { # sets PORT to the next port nobody listens on
    local tries=0
    while port_listening "$NEXT_PORT"; do
        NEXT_PORT=$((NEXT_PORT + 1))
        tries=$((tries + 1))
        ((tries < 200 && NEXT_PORT <= 65535)) || die "no free port found from $PORT_BASE; use --port-base"
    done
    ((NEXT_PORT <= 65535)) || die "ran out of ports above --port-base $PORT_BASE"
    PORT=$NEXT_PORT
    NEXT_PORT=$((NEXT_PORT + 1))
}

# Wait (bounded, 20 ms steps, 5 s max) until the receiver listens on 127.0.0.1:PORT.
# This looks at /proc/net/tcp rather than connecting: a probe connection would be
# taken by 'socat -u TCP-LISTEN' (no fork) as its one and only connection.
wait_listen() { # wait_listen PORT PID ERRFILE WHAT
    local i
    for ((i = 0; i < LISTEN_WAIT_TRIES; i++)); do
        port_listening "$1" 0100007F && return 0
        if ! kill -0 "$2" 2>/dev/null; then
            sed 's/^/    /' "$3" >&2 || true
            die "$4 receiver exited before listening on 127.0.0.1:$1"
        fi
        sleep 0.02
    done
    sed 's/^/    /' "$3" >&2 || true
    die "$4 receiver not listening on 127.0.0.1:$1 after 5 s"
}

# launch NAME CMD...: start CMD in the background under /usr/bin/time and timeout.
# Sets LAUNCHED_PID.  Peak RSS (KiB) goes to $LOGS/NAME.rss, stderr to $LOGS/NAME.err.
# time -> timeout -> CMD: the %M that time reports is the max over timeout (~1.6 MiB)
# and CMD, i.e. CMD's peak RSS; and when timeout fires, it reaps CMD itself.
# %U %S (CPU seconds) are used to tell our CPU use from other processes'.
launch() {
    local name=$1
    shift
    : >"$LOGS/$name.rss"
    /usr/bin/time -f '%M %U %S' -o "$LOGS/$name.rss" timeout -k 2 "$TIMEOUT" "$@" \
        </dev/null >"$LOGS/$name.out" 2>"$LOGS/$name.err" &
    LAUNCHED_PID=$!
    LIVE_PIDS+=("$LAUNCHED_PID")
}

# A private sshd for the scp and rsync baselines: its own host key, one
# temporary client key, 127.0.0.1 only; users' ssh configuration is ignored.
SSH_OPTS=()
start_sshd() {
    local d=$WORK/ssh
    mkdir -p "$d" /run/sshd
    chmod 700 "$d"
    ssh-keygen -q -t ed25519 -N '' -f "$d/host" || die "ssh-keygen failed"
    ssh-keygen -q -t ed25519 -N '' -f "$d/client" || die "ssh-keygen failed"
    cp "$d/client.pub" "$d/authorized_keys"
    fresh_port
    SSH_PORT=$PORT
    printf '%s\n' "Port $SSH_PORT" "ListenAddress 127.0.0.1" "HostKey $d/host" \
        "AuthorizedKeysFile $d/authorized_keys" "PermitRootLogin prohibit-password" \
        "PasswordAuthentication no" "KbdInteractiveAuthentication no" "UsePAM no" \
        "StrictModes no" "Subsystem sftp internal-sftp" "PidFile $d/sshd.pid" >"$d/sshd_config"
    launch sshd /usr/sbin/sshd -D -e -f "$d/sshd_config"
    wait_listen "$SSH_PORT" "$LAUNCHED_PID" "$LOGS/sshd.err" sshd
    SSH_OPTS=(-F /dev/null -i "$d/client" -o BatchMode=yes -o StrictHostKeyChecking=no
        -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR)
    ssh_version=$(ssh -V 2>&1 | awk '{ print $1; exit }')
}

rss_of() { # last line of the /usr/bin/time output is "%M %U %S"; %M is in KiB
    local v
    v=$(tail -n 1 "$LOGS/$1.rss" 2>/dev/null | awk '{ print $1 }' || true)
    is_uint "$v" || v=0
    echo "$v"
}
cpu_of() { # CPU seconds (user + system) of a launched command
    tail -n 1 "$LOGS/$1.rss" 2>/dev/null | awk 'NF >= 3 { printf "%.2f", $2 + $3; ok = 1 } END { if (!ok) print 0 }'
}
NCPU=$(nproc)
busy_jiffies() { # system-wide non-idle CPU time so far, in USER_HZ ticks
    local _cpu u n sy _idle _iow irq sirq steal _rest
    read -r _cpu u n sy _idle _iow irq sirq steal _rest </proc/stat
    echo $((u + n + sy + irq + sirq + steal))
}

# Memory the guest kernel has handed back to the hypervisor (virtio-balloon free page
# reporting), in KiB, if this kernel exposes it; used to flag disturbed transfers.
REPORTED_KIB_FILE=/sys/module/page_reporting/parameters/reported_kib
reported_kib() {
    local v=0
    [[ -r $REPORTED_KIB_FILE ]] && read -r v <"$REPORTED_KIB_FILE"
    is_uint "$v" || v=0
    echo "$v"
}

report_failure() { # report_failure WHAT NAME RC
    local msg="exit $3"
    (($3 == 124 || $3 == 137)) && msg="timed out after $TIMEOUT s (exit $3)"
    echo "bench: $1 $msg; its stderr:" >&2
    sed 's/^/    /' "$LOGS/$2.err" >&2 || true
}

# The receivers write SIZE bytes into newly allocated tmpfs pages.  Where the kernel
# hands freed memory back to the hypervisor (virtio-balloon free page reporting, a few
# seconds after it is freed), the first touch of such pages is several times slower
# than writing reused pages, which makes timings depend on how long memory sat free.
# Writing and deleting SIZE bytes just before each transfer gives every receiver
# recently used pages.  Not timed.
prefault() {
    ((PREFAULT)) || return 0
    head -c "$SIZE" /dev/zero >"$WORK/prefault.bin"
    rm -f -- "$WORK/prefault.bin"
}

# transfer KIND RUN: one timed transfer.  Sets T_SECS, RSS_SEND, RSS_RECV, BG_PCT:
# approximate CPU use of *other* processes during the transfer, in % of all CPUs
# (system-wide busy time minus our sender's and receiver's; 10 ms resolution), and
# REP_MIB: MiB of free memory the kernel reported to the hypervisor meanwhile.
transfer() {
    local kind=$1 run=$2 rpid spid rc_s=0 rc_r=0 t0 t1 j0 j1 r0 r1 out
    fresh_port
    prefault
    rpid=
    if [[ $kind == socat ]]; then
        out=$SOCAT_OUT/payload.bin
        launch "$kind-recv-$run" socat -b "$SOCAT_BLOCK" -u \
            "TCP-LISTEN:$PORT,reuseaddr,bind=127.0.0.1" "OPEN:$out,creat,trunc"
        rpid=$LAUNCHED_PID
    elif [[ $kind == xfer ]]; then
        out=$XFER_OUT/payload.bin
        launch "$kind-recv-$run" "$XBIN" recv --once -q --bind 127.0.0.1 --port "$PORT" --dir "$XFER_OUT"
        rpid=$LAUNCHED_PID
    else
        out=$SSH_OUT/payload.bin # scp, rsync: the sshd started once serves them
    fi
    [[ -z $rpid ]] || wait_listen "$PORT" "$rpid" "$LOGS/$kind-recv-$run.err" "$kind"

    r0=$(reported_kib)
    j0=$(busy_jiffies)
    t0=$EPOCHREALTIME
    if [[ $kind == socat ]]; then
        launch "$kind-send-$run" socat -b "$SOCAT_BLOCK" -u "OPEN:$SRC" "TCP:127.0.0.1:$PORT"
    elif [[ $kind == xfer ]]; then
        launch "$kind-send-$run" "$XBIN" send -q "$SRC" "127.0.0.1:$PORT"
    elif [[ $kind == scp ]]; then
        launch "$kind-send-$run" scp -q "${SSH_OPTS[@]}" -P "$SSH_PORT" "$SRC" "root@127.0.0.1:$SSH_OUT/"
    else
        launch "$kind-send-$run" rsync --whole-file -e "ssh ${SSH_OPTS[*]} -p $SSH_PORT" "$SRC" \
            "root@127.0.0.1:$SSH_OUT/"
    fi
    spid=$LAUNCHED_PID
    wait "$spid" || rc_s=$?
    # scp and rsync return once the far side has the whole file.
    if [[ -n $rpid ]]; then
        wait "$rpid" || rc_r=$?
    fi
    t1=$EPOCHREALTIME
    j1=$(busy_jiffies)
    r1=$(reported_kib)
    LIVE_PIDS=("${KEEP_PIDS[@]}")

    if ((rc_s != 0 || rc_r != 0)); then
        ((rc_s != 0)) && report_failure "run $run: $kind sender" "$kind-send-$run" "$rc_s"
        ((rc_r != 0)) && report_failure "run $run: $kind receiver" "$kind-recv-$run" "$rc_r"
        die "run $run: $kind transfer failed"
    fi
    [[ -f $out ]] || die "run $run: $kind produced no output file $out"
    if ! cmp -s -- "$SRC" "$out"; then
        cmp -- "$SRC" "$out" >&2 || true
        die "run $run: $kind output DIFFERS from the source ($(stat -c %s "$out") of $SIZE bytes)"
    fi
    if [[ $kind == xfer ]]; then
        local left
        left=$(ls -A "$XFER_OUT")
        [[ $left == payload.bin ]] || log "warning: run $run: xfer left extra entries in --dir: ${left//$'\n'/ }"
    fi
    rm -rf -- "${out:?}"
    [[ $kind == xfer ]] && rm -rf -- "${XFER_OUT:?}"/.xfer

    T_SECS=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.6f", b - a }')
    RSS_SEND=$(rss_of "$kind-send-$run")
    RSS_RECV=0
    [[ -z $rpid ]] || RSS_RECV=$(rss_of "$kind-recv-$run")
    BG_PCT=$(awk -v j="$((j1 - j0))" -v hz="$(getconf CLK_TCK)" -v a="$(cpu_of "$kind-send-$run")" \
        -v b="$(if [[ -n $rpid ]]; then cpu_of "$kind-recv-$run"; else echo 0; fi)" -v t="$T_SECS" -v n="$NCPU" \
        'BEGIN { o = (j / hz - a - b) / (t * n) * 100; if (o < 0) o = 0; printf "%.0f", o }')
    REP_MIB=$(((r1 - r0) / 1024))
}

# ---- stats helpers --------------------------------------------------------------
median() { # median of the arguments
    printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 }
        END { if (NR % 2) printf "%.6f", v[(NR + 1) / 2]; else printf "%.6f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
minmax() { # "min max" of the arguments
    printf '%s\n' "$@" | sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%s %s", lo, hi }'
}
max_int() { printf '%s\n' "$@" | sort -n | tail -n 1; }

# ---- main ----------------------------------------------------------------------
echo "bench: xfer=$BIN ($xfer_version) vs socat $socat_version raw TCP copy (socat -b $SOCAT_BLOCK)"
echo "bench: config: $SIZE bytes, $RUNS runs, loopback 127.0.0.1, tmpfs dir $WORK, $NCPU CPUs, loadavg $(cut -d' ' -f1-3 /proc/loadavg), warmup=$WARMUP, prefault=$( ((PREFAULT)) && echo on || echo off)"
if awk -v l="$(cut -d' ' -f1 /proc/loadavg)" -v n="$NCPU" 'BEGIN { exit !(l > n / 4) }'; then
    echo "bench: warning: the machine is busy (1-min loadavg above $NCPU/4); results will be noisy (see bg_cpu%)"
fi

KEEP_PIDS=()
if ((SSH)); then
    start_sshd
    KEEP_PIDS=("$LAUNCHED_PID")
    echo "bench: baselines also: scp and rsync $(rsync --version | awk 'NR == 1 { print $3 }') over $ssh_version (its default cipher) to a private sshd on 127.0.0.1:$SSH_PORT"
fi
log "creating $SIZE bytes of random data ..."
head -c "$SIZE" /dev/urandom >"$SRC"
[[ $(stat -c %s "$SRC") == "$SIZE" ]] || die "could not create the $SIZE-byte source file"

for ((i = 1; i <= WARMUP; i++)); do
    log "warm-up $i/$WARMUP (not counted): socat ..."
    transfer socat "warmup$i"
    log "warm-up $i/$WARMUP: socat ${T_SECS}s; xfer ..."
    transfer xfer "warmup$i"
    log "warm-up $i/$WARMUP: xfer ${T_SECS}s"
done

declare -A E_T=() E_RATIO=() E_XRATIO=()
S_T=() X_T=() RATIOS=() X_SRSS=() X_RRSS=() S_SRSS=() S_RRSS=() S_BG=() X_BG=() S_REP=() X_REP=()
for ((i = 1; i <= RUNS; i++)); do
    log "run $i/$RUNS: socat ..."
    transfer socat "$i"
    S_T+=("$T_SECS"); S_SRSS+=("$RSS_SEND"); S_RRSS+=("$RSS_RECV"); S_BG+=("$BG_PCT"); S_REP+=("$REP_MIB")
    log "run $i/$RUNS: socat ${T_SECS}s; xfer ..."
    transfer xfer "$i"
    X_T+=("$T_SECS"); X_SRSS+=("$RSS_SEND"); X_RRSS+=("$RSS_RECV"); X_BG+=("$BG_PCT"); X_REP+=("$REP_MIB")
    RATIOS+=("$(awk -v x="$T_SECS" -v s="${S_T[-1]}" 'BEGIN { printf "%.6f", x / s }')")
    log "run $i/$RUNS: xfer ${T_SECS}s, ratio ${RATIOS[-1]}"
    for k in "${EXTRA_KINDS[@]}"; do
        transfer "$k" "$i"
        E_T[$k]+=" $T_SECS"
        E_RATIO[$k]+=" $(awk -v x="$T_SECS" -v s="${S_T[-1]}" 'BEGIN { printf "%.6f", x / s }')"
        E_XRATIO[$k]+=" $(awk -v x="${X_T[-1]}" -v e="$T_SECS" 'BEGIN { printf "%.6f", x / e }')"
        log "run $i/$RUNS: $k ${T_SECS}s"
    done
done

echo
printf '%-4s %10s %10s %7s %16s %16s   %-20s %s\n' run socat_s xfer_s ratio xfer_send_KiB xfer_recv_KiB \
    'bg_cpu% socat/xfer' 'to_host_MiB socat/xfer'
for ((i = 0; i < RUNS; i++)); do
    printf '%-4s %10.3f %10.3f %7.3f %16s %16s   %-20s %s\n' "$((i + 1))" "${S_T[i]}" "${X_T[i]}" "${RATIOS[i]}" \
        "${X_SRSS[i]}" "${X_RRSS[i]}" "${S_BG[i]}/${X_BG[i]}" "${S_REP[i]}/${X_REP[i]}"
done

s_med=$(median "${S_T[@]}")
x_med=$(median "${X_T[@]}")
r_med=$(median "${RATIOS[@]}")
read -r r_lo r_hi <<<"$(minmax "${RATIOS[@]}")"
read -r s_lo s_hi <<<"$(minmax "${S_T[@]}")"
read -r x_lo x_hi <<<"$(minmax "${X_T[@]}")"
send_max=$(max_int "${X_SRSS[@]}")
recv_max=$(max_int "${X_RRSS[@]}")
socat_rss_max=$(max_int "${S_SRSS[@]}" "${S_RRSS[@]}")

mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
rate() { awk -v b="$SIZE" -v s="$1" 'BEGIN { printf "%.0f", b / 1048576 / s }'; }
spread() { awk -v lo="$1" -v hi="$2" -v m="$3" 'BEGIN { printf "%.0f", (hi - lo) / m * 100 }'; }

echo
printf 'socat median: %.3f s (%s MiB/s), min %.3f max %.3f, spread %s%% of median\n' \
    "$s_med" "$(rate "$s_med")" "$s_lo" "$s_hi" "$(spread "$s_lo" "$s_hi" "$s_med")"
printf 'xfer  median: %.3f s (%s MiB/s), min %.3f max %.3f, spread %s%% of median\n' \
    "$x_med" "$(rate "$x_med")" "$x_lo" "$x_hi" "$(spread "$x_lo" "$x_hi" "$x_med")"
printf 'median ratio xfer/socat (median of per-run ratios): %.3f (min %.3f, max %.3f)\n' "$r_med" "$r_lo" "$r_hi"
printf 'for comparison: ratio of medians %.3f, ratio of fastest runs %.3f\n' \
    "$(awk -v x="$x_med" -v s="$s_med" 'BEGIN { print x / s }')" "$(awk -v x="$x_lo" -v s="$s_lo" 'BEGIN { print x / s }')"
printf 'xfer peak RSS max: sender %s MiB, receiver %s MiB (socat max %s MiB)\n' \
    "$(mib "$send_max")" "$(mib "$recv_max")" "$(mib "$socat_rss_max")"
for k in "${EXTRA_KINDS[@]}"; do
    # shellcheck disable=SC2086 # space-separated lists of numbers
    printf '%-5s median: %.3f s; median ratio %s/socat %.3f; median ratio xfer/%s %.3f\n' "$k" \
        "$(median ${E_T[$k]})" "$k" "$(median ${E_RATIO[$k]})" "$k" "$(median ${E_XRATIO[$k]})"
done
bg_max=$(max_int "${S_BG[@]}" "${X_BG[@]}")
echo "loadavg at end: $(cut -d' ' -f1-3 /proc/loadavg); max CPU use by other processes during a transfer: ${bg_max}% of all CPUs"
if ((bg_max > 15)); then
    echo "bench: warning: other processes used up to ${bg_max}% of the CPUs during some transfers; timings are noisy"
fi
rep_max=$(max_int "${S_REP[@]}" "${X_REP[@]}")
if ((rep_max > 0)); then
    echo "bench: warning: the kernel handed freed memory back to the hypervisor during some transfers" \
        "(up to $rep_max MiB, column to_host_MiB); those receivers' writes were slower (see README)"
fi
if (($(spread "$r_lo" "$r_hi" "$r_med") > 20)); then
    echo "bench: warning: per-run ratios spread over more than 20% of the median; consider more --runs on a quiet machine"
fi

ratio2=$(printf '%.2f' "$r_med")
extra=
for k in "${EXTRA_KINDS[@]}"; do
    # shellcheck disable=SC2086
    extra+=$(printf ' %s_ratio=%.2f' "$k" "$(median ${E_RATIO[$k]})")
done
printf 'bench: size=%s runs=%s median_ratio=%s xfer_median_s=%.2f socat_median_s=%.2f send_rss_max_mib=%s recv_rss_max_mib=%s%s\n' \
    "$SIZE" "$RUNS" "$ratio2" "$x_med" "$s_med" "$(mib "$send_max")" "$(mib "$recv_max")" "$extra"

if ((TARGETS)); then
    missed=0
    if awk -v r="$ratio2" -v t="$TARGET_RATIO" 'BEGIN { exit !(r > t) }'; then
        log "target missed: median_ratio $ratio2 > $TARGET_RATIO"
        missed=1
    fi
    if ((send_max > TARGET_RSS_KIB)); then
        log "target missed: xfer sender peak RSS $send_max KiB > $TARGET_RSS_KIB KiB (64 MiB)"
        missed=1
    fi
    if ((recv_max > TARGET_RSS_KIB)); then
        log "target missed: xfer receiver peak RSS $recv_max KiB > $TARGET_RSS_KIB KiB (64 MiB)"
        missed=1
    fi
    ((missed == 0)) || exit 3
fi
exit 0
