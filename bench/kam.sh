#!/usr/bin/env bash
# kam.sh - start/stop the benchmark Kamailio (kamailio.cfg in this directory)
# as a plain foreground process of our own, never as a system service.
#
#   kam.sh start [extra kamailio args]   start, wait for 127.0.0.1:5060/tcp, print main PID
#   kam.sh stop                          stop the PID recorded by 'start' (and nothing else)
#   kam.sh pid                           print the recorded main PID
#
# Environment: KAM_SHM (MB, default 4096), KAM_PKG (MB, default 16),
#              KAM_STATE (pid/log dir, default /tmp/kam-bench),
#              KAM_CPUS (e.g. 1: pin kamailio and its children with taskset -c)
# (Derived from kam.sh of the SIPp bench kit switchd's CPS figures were measured with, kept
# here so a checkout has everything the docs use; see docs/operations.md, "Calling through
# switchd with SIPp".)
set -u
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
STATE=${KAM_STATE:-/tmp/kam-bench}
PIDF=$STATE/kamailio.pid
LOG=$STATE/kamailio.log
mkdir -p "$STATE"

case ${1:-} in
start)
	shift
	if [ -s "$PIDF" ] && kill -0 "$(cat "$PIDF")" 2>/dev/null; then
		echo "already running: $(cat "$PIDF")" >&2; exit 1
	fi
	if ss -Hltn 'sport = :5060' | grep -q .; then
		echo "127.0.0.1:5060/tcp is already taken" >&2; exit 1
	fi
	PIN=()
	[ -n "${KAM_CPUS:-}" ] && PIN=(taskset -c "$KAM_CPUS")
	"${PIN[@]}" kamailio -f "$HERE/kamailio.cfg" -DD -E -m "${KAM_SHM:-4096}" -M "${KAM_PKG:-16}" "$@" >"$LOG" 2>&1 &
	echo $! >"$PIDF"
	for _ in $(seq 50); do
		ss -Hltn 'sport = :5060' | grep -q . && break
		kill -0 "$(cat "$PIDF")" 2>/dev/null || break
		sleep 0.1
	done
	if ! ss -Hltn 'sport = :5060' | grep -q .; then
		echo "kamailio did not come up; log:" >&2; tail -20 "$LOG" >&2
		kill -TERM "$(cat "$PIDF")" 2>/dev/null; rm -f "$PIDF"; exit 1
	fi
	cat "$PIDF"
	;;
stop)
	[ -s "$PIDF" ] || { echo "no pid file" >&2; exit 0; }
	pid=$(cat "$PIDF")
	if kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid"
		for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
	fi
	rm -f "$PIDF"
	;;
pid)
	cat "$PIDF"
	;;
*)
	sed -n '2,10p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
