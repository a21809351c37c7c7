#!/usr/bin/env bash
# Start/stop the ICAT emulator in the background (idempotent): bash deploy/local/icat/emulator.sh start|stop|status
set -euo pipefail
cd "$(dirname "$0")/../../.."
VAR=var/icat
PID_FILE=$VAR/icat-emulator.pid
LOG=$VAR/icat-emulator.log
PORT=${ICAT_EMULATOR_PORT:-18080}
URL=http://127.0.0.1:$PORT/icat/version
mkdir -p "$VAR"

running() { [[ -f $PID_FILE ]] && kill -0 "$(cat "$PID_FILE")" 2>/dev/null; }

case "${1:-}" in
  start)
    if running; then echo "icat-emulator already running (pid $(cat "$PID_FILE"))"; exit 0; fi
    nohup .venv/bin/icat-emulator --config deploy/local/icat/emulator.yaml --port "$PORT" \
      --database "$VAR/icat.sqlite" >>"$LOG" 2>&1 &
    echo $! >"$PID_FILE"
    for _ in $(seq 1 100); do
      if curl -fsS "$URL" >/dev/null 2>&1; then echo "icat-emulator up on :$PORT (pid $(cat "$PID_FILE"))"; exit 0; fi
      running || { echo "icat-emulator failed to start; see $LOG" >&2; tail -20 "$LOG" >&2; exit 1; }
      sleep 0.1
    done
    echo "icat-emulator not ready after 10 s; see $LOG" >&2; exit 1 ;;
  stop)
    if running; then
      pid=$(cat "$PID_FILE"); kill "$pid"
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      echo "icat-emulator stopped"
    else
      echo "icat-emulator not running"
    fi
    rm -f "$PID_FILE" ;;
  status)
    if running; then echo "icat-emulator running (pid $(cat "$PID_FILE"))"; else echo "icat-emulator not running"; exit 1; fi ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
