#!/usr/bin/env bash
# A real transfer on loopback that is interrupted twice and resumes:
#   1. the connection is cut mid-stream: the sender reconnects on its own;
#   2. the sender is killed with -9 and run again: it resumes, not restarts.
# Usage: demo.sh XFER_BIN FAULTPROXY_BIN
set -euo pipefail

xfer=${1:?usage: demo.sh XFER_BIN FAULTPROXY_BIN}
proxy=${2:?usage: demo.sh XFER_BIN FAULTPROXY_BIN}
work=$(mktemp -d /tmp/xfer-demo.XXXXXX)
pids=()

cleanup() {
    for pid in "${pids[@]}"; do
        kill -9 "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT

# Polls a condition every 20 ms for at most $1 seconds.
wait_for() {
    local limit=$(($1 * 50)) i=0
    shift
    until "$@"; do
        i=$((i + 1))
        if [ "$i" -ge "$limit" ]; then
            echo "demo: timed out waiting for: $*" >&2
            return 1
        fi
        sleep 0.02
    done
}

port_from_log() { sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p; s/.*listening on 0\.0\.0\.0:\([0-9]*\).*/\1/p' "$1" | head -n 1; }
has_port() { [ -n "$(port_from_log "$1")" ]; }
partial_at_least() { [ "$(cat "$work"/dst/.xfer/*.part 2>/dev/null | wc -c)" -ge "$1" ]; }

secret_from_log() { sed -n 's/.*XFER_SECRET=\([^ ]*\) .*/\1/p' "$1" | head -n 1; }
has_secret() { [ -n "$(secret_from_log "$1")" ]; }

mkdir -p "$work/dst"
head -c $((64 * 1024 * 1024)) /dev/urandom > "$work/demo.bin"
echo "== demo: receiving into $work/dst"
# No secret given: the receiver makes one up and prints the sender's command.
unset XFER_SECRET
"$xfer" recv --port 0 --bind 127.0.0.1 --dir "$work/dst" 2> "$work/recv.log" &
pids+=($!)
wait_for 10 has_port "$work/recv.log"
wait_for 10 has_secret "$work/recv.log"
port=$(port_from_log "$work/recv.log")
sed -n '/no secret given/,/XFER_SECRET=/p' "$work/recv.log"
XFER_SECRET=$(secret_from_log "$work/recv.log")
export XFER_SECRET

echo "== act 1: the link is cut after 20 MB; the sender reconnects and resumes"
"$proxy" --target "127.0.0.1:$port" --port-file "$work/p1" --cut-after 20000000 > /dev/null &
pids+=($!)
wait_for 10 test -s "$work/p1"
"$xfer" send --retry-for 30 "$work/demo.bin" "127.0.0.1:$(cat "$work/p1")"
cmp "$work/demo.bin" "$work/dst/demo.bin"
echo "== act 1: identical"
rm "$work/dst/demo.bin"

echo "== act 2: the sender is killed with -9 at 16 MB, then run again"
"$proxy" --target "127.0.0.1:$port" --port-file "$work/p2" --throttle 8000000 > /dev/null &
pids+=($!)
wait_for 10 test -s "$work/p2"
"$xfer" send "$work/demo.bin" "127.0.0.1:$(cat "$work/p2")" &
sender=$!
pids+=($sender)
wait_for 30 partial_at_least 16000000
kill -9 "$sender"
wait "$sender" 2>/dev/null || true
echo "(killed the sender)"
"$xfer" send "$work/demo.bin" "127.0.0.1:$port"
cmp "$work/demo.bin" "$work/dst/demo.bin"
echo "== act 2: identical"
echo "== receiver said:"
cat "$work/recv.log"
echo "demo: OK, both interruptions resumed and the file is byte-for-byte the source"
