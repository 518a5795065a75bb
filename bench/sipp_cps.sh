#!/usr/bin/env bash
# (Derived from sip_cps.sh of the SIPp bench kit switchd's CPS figures were measured with, kept
# here so a checkout has everything the docs use; see docs/operations.md, "Calling through
# switchd with SIPp".)
# sipp_cps.sh - measure how many calls per second a SIP server on 127.0.0.1 can
# switch, with SIPp as both caller (UAC, built-in 'uac' scenario) and callee
# (UAS, built-in 'uas' scenario). The server under test must route every INVITE
# (and the in-dialog ACK/BYE, which SIPp sends to the server with no Route
# header) to the callee at 127.0.0.1:CALLEE_PORT.
#
#   UAC sipp --(transport)--> TARGET (server under test) --> UAS sipp :CALLEE_PORT
#
# Direct ceiling (no server in the middle): use TARGET=127.0.0.1:CALLEE_PORT.
#
# Usage:
#   sipp_cps.sh [options] [TARGET [CALLEE_PORT [RATE [CALLS [HOLD_MS [TRANSPORT]]]]]]
#   (every positional argument also has a flag; flags win over defaults,
#    positionals win over flags)
#
#   -s TARGET     host:port of the server under test     (default 127.0.0.1:5060)
#   -c PORT       port the callee (UAS sipp) listens on  (default 5070)
#   -r RATE       offered calls per second               (default 100)
#   -m CALLS      total number of calls                  (default 1000)
#   -d HOLD_MS    call hold time, ACK -> BYE, in ms      (default 0)
#   -t TRANSPORT  t1 = TCP one socket (default), tn = TCP one socket per call,
#                 u1 = UDP (works too, not the focus)
#   -l LABEL      label put in the result line           (default: direct|server)
#   -p PID        measure CPU of this server process and its children
#                 (repeatable; e.g. kamailio's main pid)
#   -o DIR        keep all artefacts (sipp stats/rtt/screens/errors) in DIR
#                 (default: a temp dir that is removed at the end)
#   -a FILE       also append the result line to FILE
#   -T SECONDS    hard limit for the UAC run (default CALLS/RATE + HOLD + 30 s)
#   -R MS         per-message receive timeout in the UAC (default 10000)
#   -L N          max simultaneous calls in the UAC (sipp -l; default sipp's own)
#   -S FILE       UAC scenario file (sipp -sf) instead of the built-in 'uac'
#   -M            also write full message traces (sipp -trace_msg): small runs only
#   -C            capture the loopback traffic with tcpdump and compute
#                 microsecond INVITE->200 latency (needs tcpdump + python3;
#                 costs CPU, use at moderate rates)
#   -x "ARGS"     extra arguments appended to the UAC sipp command line
#   -h            this help
#   SIPP_CPUS=0   (environment) pin both sipp processes with taskset -c
#
# Output: one line on stdout, key=value pairs, starting with "RESULT".
#   offered      offered rate (calls/s)
#   calls        calls asked for (-m)
#   ok / failed  SIPp's SuccessfulCall(C) / FailedCall(C) at the end of the run
#   achieved     call-setup rate actually achieved: (n-1)/(t_last_200 - t_first_200)
#                over all INVITE->200 OK completions recorded by SIPp
#   rt_p50/p95/p99/max  INVITE->200 OK response time in ms as SIPp measures it
#                (SIPp's clock is coarse: on the measurement VM it ticked in 4 ms
#                steps, so 0 means "below one tick"; use -C for real latencies)
#   uas_calls    calls the UAS saw (IncomingCall(C))
#   cpu_uac/cpu_uas/cpu_srv  CPU used during the UAC run, % of one core
#   cpu_srv_s    the server's CPU seconds during the UAC run (with -p)
#   cpu_machine  all CPU busy on the machine during the run (% of one core;
#                cpu_machine - uac - uas - srv = everything else), cpu_steal = hypervisor steal
#   wall         UAC run wall time (s); rc = UAC sipp exit code (0 all ok, 1 some failed,
#                255 = sipp aborted, e.g. its TCP connection was closed)
#   load1        1-minute load average just before the run (noise indicator)
#   pcap_*       with -C: microsecond latencies from the capture (see bench/sip_pcap_latency.py)
#
# Every process this script starts is stopped by its own PID before it exits;
# everything is bounded in time. Only loopback targets are accepted.

set -u
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

TARGET=127.0.0.1:5060
CALLEE_PORT=5070
RATE=100
CALLS=1000
HOLD=0
TRANSPORT=t1
LABEL=
SRV_PIDS=()
OUTDIR=
APPEND=
HARD=
RECV_TIMEOUT=10000
LIMIT=
TRACE_MSG=0
CAPTURE=0
EXTRA=
UAC_SCENARIO=(-sn uac)

die() { echo "sipp_cps.sh: $*" >&2; exit 2; }
usage() { sed -n '2,/^$/p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }

while getopts "s:c:r:m:d:t:l:p:o:a:T:R:L:S:MCx:h" opt; do
	case $opt in
	s) TARGET=$OPTARG ;;
	c) CALLEE_PORT=$OPTARG ;;
	r) RATE=$OPTARG ;;
	m) CALLS=$OPTARG ;;
	d) HOLD=$OPTARG ;;
	t) TRANSPORT=$OPTARG ;;
	l) LABEL=$OPTARG ;;
	p) SRV_PIDS+=("$OPTARG") ;;
	o) OUTDIR=$OPTARG ;;
	a) APPEND=$OPTARG ;;
	T) HARD=$OPTARG ;;
	R) RECV_TIMEOUT=$OPTARG ;;
	L) LIMIT=$OPTARG ;;
	S) UAC_SCENARIO=(-sf "$(cd "$(dirname "$OPTARG")" && pwd)/$(basename "$OPTARG")") ;;
	M) TRACE_MSG=1 ;;
	C) CAPTURE=1 ;;
	x) EXTRA=$OPTARG ;;
	h) usage 0 ;;
	*) usage 2 ;;
	esac
done
shift $((OPTIND - 1))
[ $# -ge 1 ] && TARGET=$1
[ $# -ge 2 ] && CALLEE_PORT=$2
[ $# -ge 3 ] && RATE=$3
[ $# -ge 4 ] && CALLS=$4
[ $# -ge 5 ] && HOLD=$5
[ $# -ge 6 ] && TRANSPORT=$6

# ---- validation -----------------------------------------------------------
command -v sipp >/dev/null || die "sipp not found (apt-get install sip-tester)"
TARGET_HOST=${TARGET%:*}
TARGET_PORT=${TARGET##*:}
[ "$TARGET_HOST" != "$TARGET" ] || die "TARGET must be host:port"
case $TARGET_HOST in
127.*) ;;
localhost) TARGET_HOST=127.0.0.1; TARGET=$TARGET_HOST:$TARGET_PORT ;;
*) die "only loopback (127.0.0.0/8) targets are allowed, got $TARGET_HOST" ;;
esac
for v in TARGET_PORT CALLEE_PORT RATE CALLS HOLD RECV_TIMEOUT; do
	[[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a non-negative integer (got '${!v}')"
done
[ "$RATE" -gt 0 ] && [ "$CALLS" -gt 0 ] || die "RATE and CALLS must be > 0"
case $TRANSPORT in t1 | tn | u1 | un) ;; *) die "transport must be t1, tn, u1 or un" ;; esac
case $TRANSPORT in t*) PROTO=tcp ;; *) PROTO=udp ;; esac
if [ -z "$LABEL" ]; then
	if [ "$TARGET_PORT" = "$CALLEE_PORT" ]; then LABEL=direct; else LABEL=server; fi
fi
# hard limit: sending time + hold + generous tail
[ -n "$HARD" ] || HARD=$(( (CALLS + RATE - 1) / RATE + HOLD / 1000 + 30 ))

if [ -n "$OUTDIR" ]; then
	mkdir -p "$OUTDIR" || die "cannot create $OUTDIR"
	RUN=$(cd "$OUTDIR" && pwd)
	KEEP=1
else
	RUN=$(mktemp -d /tmp/sip_cps.XXXXXX)
	KEEP=0
fi

listening() { # port proto
	if [ "$2" = tcp ]; then ss -Hltn "sport = :$1" 2>/dev/null | grep -q .
	else ss -Hlun "sport = :$1" 2>/dev/null | grep -q .; fi
}

# ---- cleanup: only our own PIDs -------------------------------------------
UAS_PID=
UAC_PID=
CAP_PID=
stop_pid() { # pid grace_seconds [first_signal]
	local pid=$1 grace=$2 sig=${3:-TERM} i
	[ -n "$pid" ] || return 0
	kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return 0; }
	kill -"$sig" "$pid" 2>/dev/null
	for ((i = 0; i < grace * 10; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid" 2>/dev/null; sleep 1
		kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
	fi
	wait "$pid" 2>/dev/null
	return 0
}
cleanup() {
	stop_pid "$UAC_PID" 2
	stop_pid "$UAS_PID" 2
	stop_pid "$CAP_PID" 2 INT
	UAC_PID= UAS_PID= CAP_PID=
	[ "$KEEP" = 1 ] || rm -rf "$RUN"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- CPU accounting from /proc (no forks in the sampling loop) --------------
HZ=$(getconf CLK_TCK)
# ticks_of PID -> T = utime+stime in clock ticks (0 if gone); no subshell, so
# the sampling loop below costs (almost) nothing
T=0
ticks_of() {
	local line rest
	T=0
	read -r line 2>/dev/null <"/proc/$1/stat" || return 0
	rest=${line##*) }
	set -- $rest
	T=$(( ${12} + ${13} ))
}
SRV_ALL=()
expand_srv() {
	local p c
	for p in "${SRV_PIDS[@]}"; do
		kill -0 "$p" 2>/dev/null || die "server pid $p not running"
		SRV_ALL+=("$p")
		for c in $(ps -o pid= --ppid "$p" 2>/dev/null); do SRV_ALL+=("$c"); done
	done
}
S=0
srv_ticks() { # -> S
	local p s=0
	for p in "${SRV_ALL[@]}"; do ticks_of "$p"; s=$(( s + T )); done
	S=$s
}
[ ${#SRV_PIDS[@]} -gt 0 ] && expand_srv

# ---- preflight ----------------------------------------------------------
if listening "$CALLEE_PORT" "$PROTO"; then
	die "port $CALLEE_PORT/$PROTO is already in use: cannot start the callee there"
fi
if [ "$TARGET_PORT" != "$CALLEE_PORT" ] && [ "$PROTO" = tcp ] && ! listening "$TARGET_PORT" tcp; then
	die "nothing listens on $TARGET (tcp): start the server under test first"
fi

# sipp refuses to start when -max_socket (default 50000) exceeds the fd limit
ulimit -n "$(ulimit -Hn)" 2>/dev/null
MAXSOCK=$(( $(ulimit -n) - 256 ))
[ "$MAXSOCK" -gt 50000 ] && MAXSOCK=50000
COMMON=(-i 127.0.0.1 -t "$TRANSPORT" -nostdin -max_socket "$MAXSOCK" -trace_err -max_log_size 20000000)
MSG_UAS=() MSG_UAC=()
if [ "$TRACE_MSG" = 1 ]; then
	MSG_UAS=(-trace_msg -message_file uas_messages.log)
	MSG_UAC=(-trace_msg -message_file uac_messages.log)
fi

# SIPP_CPUS=LIST (environment): run both sipp instances under 'taskset -c LIST'
PIN=()
[ -n "${SIPP_CPUS:-}" ] && PIN=(taskset -c "$SIPP_CPUS")

# ---- optional capture -------------------------------------------------------
if [ "$CAPTURE" = 1 ]; then
	command -v tcpdump >/dev/null || die "-C needs tcpdump"
	if [ "$TARGET_PORT" = "$CALLEE_PORT" ]; then FILTER="$PROTO port $CALLEE_PORT"
	else FILTER="$PROTO port $TARGET_PORT or $PROTO port $CALLEE_PORT"; fi
	tcpdump -i lo -n -s 0 -B 65536 --immediate-mode -U -w "$RUN/capture.pcap" $FILTER >/dev/null 2>"$RUN/tcpdump.stderr" &
	CAP_PID=$!
	for _ in $(seq 50); do grep -q listening "$RUN/tcpdump.stderr" 2>/dev/null && break; sleep 0.1; done
fi

# ---- callee (UAS) -------------------------------------------------------
UAS_HARD=$((HARD + 30))
(cd "$RUN" && exec "${PIN[@]}" sipp -sn uas -p "$CALLEE_PORT" "${COMMON[@]}" -error_file uas_errors.log \
	-trace_stat -stf uas_stat.csv -fd 1 -trace_screen -screen_file uas_screen.log \
	-timeout "${UAS_HARD}s" "${MSG_UAS[@]}") >/dev/null 2>"$RUN/uas.stderr" &
UAS_PID=$!
for _ in $(seq 50); do
	listening "$CALLEE_PORT" "$PROTO" && break
	kill -0 "$UAS_PID" 2>/dev/null || break
	sleep 0.1
done
listening "$CALLEE_PORT" "$PROTO" || { cat "$RUN/uas.stderr" >&2; die "UAS did not start on $CALLEE_PORT"; }

# ---- caller (UAC) -------------------------------------------------------
# SIPp's caller binds 5060 when no -p is given (-p 0 too): with a server on other ports it would take
# the port another bench's server is about to listen on. Give it a free port of its own.
UAC_PORT=$(python3 -c "import socket,sys; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM if sys.argv[1]=='udp' else socket.SOCK_STREAM); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])" "$PROTO")
UAC_ARGS=("$TARGET" "${UAC_SCENARIO[@]}" -p "$UAC_PORT" "${COMMON[@]}" -error_file uac_errors.log
	-r "$RATE" -rp 1000 -m "$CALLS" -d "$HOLD" -recv_timeout "$RECV_TIMEOUT"
	-timeout "${HARD}s"
	-trace_stat -stf uac_stat.csv -fd 1 -trace_rtt -rtt_freq 1
	-trace_screen -screen_file uac_screen.log "${MSG_UAC[@]}")
[ -n "$LIMIT" ] && UAC_ARGS+=(-l "$LIMIT")
# shellcheck disable=SC2206
[ -n "$EXTRA" ] && UAC_ARGS+=($EXTRA)
echo "sipp ${UAC_ARGS[*]}" >"$RUN/uac.cmdline"

read -r LOAD1 _ </proc/loadavg
read -r _ c_us0 c_ni0 c_sy0 c_id0 c_io0 c_irq0 c_sirq0 c_st0 _ </proc/stat
ticks_of "$UAS_PID"; uas_t0=$T
srv_t0=0; [ ${#SRV_ALL[@]} -gt 0 ] && { srv_ticks; srv_t0=$S; }
t_start=$(date +%s.%N)
(cd "$RUN" && exec "${PIN[@]}" sipp "${UAC_ARGS[@]}") >/dev/null 2>"$RUN/uac.stderr" &
UAC_PID=$!

deadline=$(( EPOCHSECONDS + HARD + 10 ))
uac_ticks=0 uas_t1=$uas_t0 srv_t1=$srv_t0
while kill -0 "$UAC_PID" 2>/dev/null; do
	ticks_of "$UAC_PID"; [ "$T" -gt 0 ] && uac_ticks=$T
	ticks_of "$UAS_PID"; uas_t1=$T
	[ ${#SRV_ALL[@]} -gt 0 ] && { srv_ticks; srv_t1=$S; }
	if [ "$EPOCHSECONDS" -ge "$deadline" ]; then
		echo "sipp_cps.sh: UAC exceeded ${HARD}s, killing it" >&2
		kill -TERM "$UAC_PID" 2>/dev/null; sleep 2; kill -KILL "$UAC_PID" 2>/dev/null
		break
	fi
	sleep 0.25
done
wait "$UAC_PID"; UAC_RC=$?
UAC_PID=
t_end=$(date +%s.%N)
read -r _ c_us1 c_ni1 c_sy1 c_id1 c_io1 c_irq1 c_sirq1 c_st1 _ </proc/stat

# soft-exit the UAS (it finishes its calls' 4 s timewait), then make sure
stop_pid "$UAS_PID" 8 USR1
UAS_PID=
[ -n "$CAP_PID" ] && { sleep 0.3; stop_pid "$CAP_PID" 3 INT; CAP_PID=; }

# ---- results -----------------------------------------------------------
RTT=$(ls "$RUN"/uac_*_rtt.csv 2>/dev/null | head -1)
STATLINE=$(python3 - "$RUN/uac_stat.csv" "$RUN/uas_stat.csv" "${RTT:-/nonexistent}" <<'EOF'
import sys, csv, math
def last_row(path):
    try:
        with open(path, newline='') as f:
            rows = [r for r in csv.reader(f, delimiter=';') if r]
    except OSError:
        return {}
    if len(rows) < 2:
        return {}
    return dict(zip(rows[0], rows[-1]))
uac, uas = last_row(sys.argv[1]), last_row(sys.argv[2])
g = lambda d, k: d.get(k, 'NA').strip() or 'NA'
out = {}
out['ok'] = g(uac, 'SuccessfulCall(C)')
out['failed'] = g(uac, 'FailedCall(C)')
out['sent'] = g(uac, 'OutgoingCall(C)')
# failure breakdown (only the non-zero ones)
causes = []
for k, v in uac.items():
    if k.startswith('Failed') and k.endswith('(C)') and k != 'FailedCall(C)':
        try:
            if int(v) > 0:
                causes.append('%s:%s' % (k[6:-3], v))
        except ValueError:
            pass
out['fail_causes'] = ','.join(causes) or '-'
out['uas_calls'] = g(uas, 'IncomingCall(C)')
dates, rts = [], []
try:
    with open(sys.argv[3]) as f:
        next(f)
        for line in f:
            p = line.strip().split(';')
            if len(p) >= 3 and p[2] == '1':
                dates.append(float(p[0])); rts.append(float(p[1]))
except (OSError, StopIteration):
    pass
def pct(v, q):
    if not v: return 'NA'
    v = sorted(v); i = max(0, math.ceil(q * len(v)) - 1)
    return '%g' % v[i]
out['setups'] = str(len(rts))
if len(dates) > 1 and max(dates) > min(dates):
    out['achieved'] = '%.1f' % ((len(dates) - 1) / ((max(dates) - min(dates)) / 1000.0))
else:
    out['achieved'] = 'NA'
for name, q in (('rt_p50', .5), ('rt_p95', .95), ('rt_p99', .99)):
    out[name] = pct(rts, q)
out['rt_max'] = '%g' % max(rts) if rts else 'NA'
print(' '.join('%s=%s' % kv for kv in out.items()))
EOF
)

pct_cpu() { # ticks wall
	awk -v t="$1" -v w="$2" -v hz="$HZ" 'BEGIN{ if (w>0) printf "%.0f%%", 100*t/hz/w; else print "NA" }'
}
WALL=$(awk -v a="$t_start" -v b="$t_end" 'BEGIN{printf "%.2f", b-a}')
CPU="cpu_uac=$(pct_cpu "$uac_ticks" "$WALL") cpu_uas=$(pct_cpu $((uas_t1 - uas_t0)) "$WALL")"
if [ ${#SRV_ALL[@]} -gt 0 ]; then
	CPU="$CPU cpu_srv=$(pct_cpu $((srv_t1 - srv_t0)) "$WALL") cpu_srv_s=$(awk -v t=$((srv_t1 - srv_t0)) -v hz="$HZ" 'BEGIN{printf "%.2f", t/hz}')"
else CPU="$CPU cpu_srv=NA"; fi
# whole machine during the UAC run (100% = one core; this box has $(nproc) cores) and steal
# (idle time is accounted precisely by the kernel, busy time only by tick sampling,
#  so busy = ncpu * wall - idle)
idle=$(( (c_id1 + c_io1) - (c_id0 + c_io0) ))
busy=$(awk -v n="$(nproc)" -v w="$WALL" -v hz="$HZ" -v i="$idle" 'BEGIN{b=n*w*hz-i; if(b<0)b=0; printf "%d", b}')
CPU="$CPU cpu_machine=$(pct_cpu "$busy" "$WALL") cpu_steal=$(pct_cpu $((c_st1 - c_st0)) "$WALL")"

PCAP=
if [ "$CAPTURE" = 1 ] && [ -s "$RUN/capture.pcap" ]; then
	DROPS=$(grep -o '[0-9]* packets dropped by kernel' "$RUN/tcpdump.stderr" | awk '{print $1}')
	PCAP="$(python3 "$HERE/sip_pcap_latency.py" --uac-port-target "$TARGET_PORT" --callee-port "$CALLEE_PORT" --oneline "$RUN/capture.pcap" 2>"$RUN/pcap.stderr") pcap_drops=${DROPS:-NA}"
fi

LINE="RESULT label=$LABEL target=$TARGET transport=$TRANSPORT offered=$RATE calls=$CALLS hold_ms=$HOLD $STATLINE $CPU wall=$WALL rc=$UAC_RC load1=$LOAD1${PCAP:+ $PCAP}"
[ "$KEEP" = 1 ] && LINE="$LINE dir=$RUN"
echo "$LINE"
[ -n "$APPEND" ] && echo "$LINE" >>"$APPEND"
exit 0
