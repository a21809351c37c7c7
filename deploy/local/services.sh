#!/usr/bin/env bash
# Start/stop the four Datastore services as background processes (pid files, logs):
#   bash deploy/local/services.sh start|stop|status
# They read ${DATASTORE_VAR:-var}/config.yaml, written by deploy/local/up.sh for the local stack.
set -euo pipefail
cd "$(dirname "$0")/../.."
VAR="${DATASTORE_VAR:-$PWD/var}"
RUN="$VAR/services"
SERVICES=(icat-writer fts-submitter status-poller gateway)
mkdir -p "$RUN"
export DATASTORE_CONFIG="${DATASTORE_CONFIG:-$VAR/config.yaml}"

running() { [[ -f "$RUN/$1.pid" ]] && kill -0 "$(cat "$RUN/$1.pid")" 2>/dev/null; }

start_one() {
  local name=$1
  if running "$name"; then echo "$name already running (pid $(cat "$RUN/$name.pid"))"; return; fi
  # Each service logs in to the broker as its own user (deploy/local/rabbitmq.sh accounts).
  local broker_url="$VAR/broker/datastore-$name.url"
  [[ -f $broker_url ]] || { echo "$broker_url missing: run bash deploy/local/rabbitmq.sh accounts" >&2; return 1; }
  DATASTORE__BROKER__URL="$(cat "$broker_url")" nohup ".venv/bin/datastore-$name" >>"$RUN/$name.log" 2>&1 &
  echo $! >"$RUN/$name.pid"
}

wait_ready() {
  local port
  port=$(.venv/bin/python -c "from datastore_common.settings import load_settings; print(load_settings().gateway.port)")
  for _ in $(seq 1 150); do
    if curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1; then
      echo "services up; gateway on http://127.0.0.1:$port (docs at /docs)"; return 0
    fi
    for name in "${SERVICES[@]}"; do
      running "$name" || { echo "$name died; last log lines:" >&2; tail -20 "$RUN/$name.log" >&2; return 1; }
    done
    sleep 0.2
  done
  echo "gateway not healthy after 30 s; see $RUN/gateway.log" >&2; return 1
}

case "${1:-}" in
  start)
    for name in "${SERVICES[@]}"; do start_one "$name"; done
    wait_ready ;;
  stop)
    for name in "${SERVICES[@]}"; do
      if running "$name"; then
        pid=$(cat "$RUN/$name.pid"); kill -TERM "$pid"
        for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
        echo "$name stopped"
      fi
      rm -f "$RUN/$name.pid"
    done ;;
  status)
    rc=0
    for name in "${SERVICES[@]}"; do
      if running "$name"; then echo "$name running (pid $(cat "$RUN/$name.pid"))"; else echo "$name stopped"; rc=1; fi
    done
    exit $rc ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
