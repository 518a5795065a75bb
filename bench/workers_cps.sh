#!/usr/bin/env bash
# workers_cps.sh - one switchd process vs `switchd run --workers N`, same rates, one run.
#
# Starts two nodes side by side on free 127.0.0.1 ports (each its own SQLite database, WARNING
# logs, [limits] raised so admission does not cap the run): "single" (workers = 1) and "workers"
# (--workers N). For each rate, bench/sipp_cps.sh measures the single node, then the workers,
# with the same SIPp settings: one TCP connection per call (-t tn) — the kernel spreads
# connections over the workers by their 4-tuple, so one SIPp connection (-t t1) would land on
# one worker only —, HOLD ms hold, CPU of the server counted with its children (the workers).
# At the end every node is stopped by its PID (SIGTERM, drained) and its CDRs are counted per
# node name and status: every call must have one closed CDR.
#
# Usage: workers_cps.sh [-r "RATE ..."] [-s SECONDS_PER_STEP] [-w WORKERS] [-d HOLD_MS] [-o DIR]
#   -r  rates to offer, calls/s            (default "100 200 300")
#   -s  seconds per step (calls = rate × s) (default 10)
#   -w  workers of the second node          (default 2)
#   -d  hold time in ms                     (default 1000)
#   -o  keep configs, logs and results here (default: a temp dir, removed at the end)
# Output: sipp_cps.sh's RESULT lines (label single / workers<N>), then the CDR counts.
# Note the load (`uptime`) it prints: on a shared machine, compare only within one run.

set -u
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
RATES="100 200 300"
STEP=10
WORKERS=2
HOLD=1000
OUT=
while getopts "r:s:w:d:o:h" opt; do
	case $opt in
	r) RATES=$OPTARG ;;
	s) STEP=$OPTARG ;;
	w) WORKERS=$OPTARG ;;
	d) HOLD=$OPTARG ;;
	o) OUT=$OPTARG ;;
	*) sed -n '2,/^$/p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 2 ;;
	esac
done
KEEP=1
if [ -z "$OUT" ]; then OUT=$(mktemp -d); KEEP=0; fi
mkdir -p "$OUT"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# free_ports N -> the first of N consecutive free ports (worker i's API listens on the [api] port + i)
free_ports() {
	python3 - "$1" <<'EOF'
import socket, sys
n = int(sys.argv[1])
for base in range(20000, 30000, n):
    held = []
    try:
        for port in range(base, base + n):
            s = socket.socket(); held.append(s); s.bind(("127.0.0.1", port))
    except OSError:
        continue
    finally:
        for s in held: s.close()
    print(base); break
EOF
}

PIDS=()
cleanup() {
	for pid in "${PIDS[@]}"; do
		kill -TERM "$pid" 2>/dev/null
		for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$pid" 2>/dev/null
	done
	[ "$KEEP" = 1 ] || rm -rf "$OUT"
}
trap cleanup EXIT

# start_node NAME WORKERS -> sets SIP_PORT, CALLEE_PORT, NODE_PID
start_node() {
	local name=$1 workers=$2 dir="$OUT/$1"
	mkdir -p "$dir"
	SIP_PORT=$(free_port); CALLEE_PORT=$(free_port)
	cat >"$dir/switchd.toml" <<EOF
node = "$name"
data_dir = "$dir/data"
workers = $workers
[sip]
listen = "127.0.0.1:$SIP_PORT"
[api]
listen = "127.0.0.1:$(free_ports "$workers")"
[limits]
max_calls = 20000
cps = 10000.0
burst = 2000
[[gateways]]
name = "uas"
address = "127.0.0.1:$CALLEE_PORT"
[[routes]]
prefix = ""
gateways = ["uas"]
EOF
	python3 -m switchd run --config "$dir/switchd.toml" --log-level WARNING --log-format text \
		>"$dir/switchd.log" 2>&1 &
	NODE_PID=$!
	PIDS+=("$NODE_PID")
	for _ in $(seq 1 200); do
		grep -c "application switchd started" "$dir/switchd.log" 2>/dev/null | grep -q . && \
			python3 -c "import socket,sys; socket.create_connection(('127.0.0.1',$SIP_PORT),1)" 2>/dev/null && break
		sleep 0.1
	done
	sleep 2  # the workers' trees (a supervisor's port accepts before its workers run)
}

start_node single 1;          S_SIP=$SIP_PORT; S_CALLEE=$CALLEE_PORT; S_PID=$NODE_PID
start_node "workers$WORKERS" "$WORKERS"; W_SIP=$SIP_PORT; W_CALLEE=$CALLEE_PORT; W_PID=$NODE_PID
echo "# $(date -u +%FT%TZ) $(nproc) cores, load: $(cut -d' ' -f1-3 /proc/loadavg); hold ${HOLD} ms, -t tn, ${STEP} s per step"

for rate in $RATES; do
	calls=$((rate * STEP))
	"$HERE/sipp_cps.sh" -s "127.0.0.1:$S_SIP" -c "$S_CALLEE" -r "$rate" -m "$calls" -d "$HOLD" -t tn \
		-l single -p "$S_PID"
	"$HERE/sipp_cps.sh" -s "127.0.0.1:$W_SIP" -c "$W_CALLEE" -r "$rate" -m "$calls" -d "$HOLD" -t tn \
		-l "workers$WORKERS" -p "$W_PID"
done

for pid in "$S_PID" "$W_PID"; do
	kill -TERM "$pid"
	for _ in $(seq 1 600); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
done
for name in single "workers$WORKERS"; do
	python3 - "$OUT/$name/data/switchd.sqlite3" <<'EOF'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
rows = db.execute("select node, status, count(*) from cdrs group by node, status order by node, status").fetchall()
print("CDRS", " ".join(f"{node}:{status}={count}" for node, status, count in rows))
EOF
done
