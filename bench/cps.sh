#!/usr/bin/env bash
# Calls per second through switchd and Kamailio, one run (issue 16): see bench/cps.py --help.
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd); PYTHONPATH="$HERE/..${PYTHONPATH:+:$PYTHONPATH}" exec python3 "$HERE/cps.py" "$@"
