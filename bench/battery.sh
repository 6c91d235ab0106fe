#!/bin/bash
# The benches of issue 15 in turn, each after the other, on an otherwise quiet machine.
#
#   bench/battery.sh [NEW_CHECKOUT] [OLD_CHECKOUT]
#
# NEW_CHECKOUT (default: this one) and OLD_CHECKOUT (optional: another commit to compare with,
# e.g. `git worktree add /tmp/old 195ed62` with its own venv and this bench/fanout.py copied in
# as bench/fanout_today.py) each need `.venv` with `pip install -e '.[test]'`. Each run's
# output goes to bench-logs/all.log with its time and the load average when it started.
set -u
D=$(cd "${1:-$(dirname "$0")/..}" && pwd)
O=${2:-}
PG=${ALERTS_BENCH_POSTGRES:-postgresql+asyncpg://postgres@127.0.0.1:5432/test}
OUT=${BENCH_LOGS:-$D/bench-logs}; mkdir -p "$OUT"
run() {
    local dir=$1 name=$2; shift 2
    echo "### $(date +%T) load $(cut -d' ' -f1-3 /proc/loadavg) :: $name :: $*" | tee -a "$OUT/all.log"
    (cd "$dir" && timeout 900 .venv/bin/python "$@" 2>&1 | tail -30) | tee -a "$OUT/all.log"
}
for _ in 1 2 3; do
    run "$D" new-sqlite-10k bench/fanout.py --n 10000
    [ -n "$O" ] && run "$O" old-sqlite-10k bench/fanout_today.py --n 10000
    run "$D" new-pg-10k bench/fanout.py --n 10000 --postgres "$PG"
    [ -n "$O" ] && run "$O" old-pg-10k bench/fanout_today.py --n 10000 --postgres "$PG"
done
for _ in 1 2 3; do
    run "$D" new-sqlite-100k bench/fanout.py --n 100000
    run "$D" new-pg-100k bench/fanout.py --n 100000 --postgres "$PG"
done
run "$D" tracking-sqlite bench/tracking.py --n 20000
run "$D" tracking-pg bench/tracking.py --n 20000 --postgres "$PG"
run "$D" million-pg-fanout bench/million.py --n 1000000 --postgres "$PG" --fanout-only
run "$D" million-sqlite-fanout bench/million.py --n 1000000 --fanout-only
run "$D" latency-sqlite bench/latency.py --n 100000
run "$D" latency-pg bench/latency.py --n 100000 --postgres "$PG"
run "$D" first-message bench/first_message.py --sends 20
run "$D" relay bench/relay.py --n 5000 --connections 8
echo "### done $(date +%T)" | tee -a "$OUT/all.log"
