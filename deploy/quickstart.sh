#!/usr/bin/env bash
# Builds fjord and runs the whole pipeline locally on the embedded SQLite default:
#   aggregator on 127.0.0.1:3100 with data under ./data (declared region eu-local, EEA),
#   agent following ./logs/*.log with the default PII rules, state under ./data/agent.
# Ctrl-C stops both (the agent flushes acknowledged work first).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --bins
mkdir -p logs data/agent
BIN="${CARGO_TARGET_DIR:-target}/release"
"$BIN/fjord-aggregator" serve --listen 127.0.0.1:3100 --data data \
  --region eu-local --jurisdiction EEA &
AGG=$!
trap 'kill -TERM $AGENT $AGG 2>/dev/null; wait' INT TERM EXIT
up=
for _ in $(seq 1 100); do
  if (exec 3<>/dev/tcp/127.0.0.1/3100) 2>/dev/null; then up=1; break; fi
  sleep 0.1
done
if [ -z "$up" ]; then
  echo "quickstart: the aggregator did not start listening on 127.0.0.1:3100 (see its messages above)" >&2
  exit 1
fi
"$BIN/fjord-agent" run --path "$PWD/logs/*.log" --url http://127.0.0.1:3100 --state data/agent &
AGENT=$!
cat <<MSG

fjord is running.
  append a line:   echo "payment declined for kari@example.no card 4111 1111 1111 1111" >> logs/app.log
  query it back:   $BIN/fjord-aggregator query '{team="default"} |= "declined"' --since 1h
Ctrl-C to stop.
MSG
wait $AGENT
