#!/usr/bin/env bash
# Make sure RabbitMQ answers on 127.0.0.1:5672: use the running one, start it when it is down.
#   bash deploy/local/rabbitmq.sh            the broker only (make test)
#   bash deploy/local/rabbitmq.sh accounts   and one broker user per role for the local stack
#     (make up): passwords and URLs under ${DATASTORE_VAR:-var}/broker (mode 0600), imported with
#     rabbitmqctl; topic permissions from topology.PUBLISHERS (datastore-ops broker-accounts).
set -euo pipefail
cd "$(dirname "$0")/../.."
port_open() { (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null; }
start() {
  if port_open; then return 0; fi
  command -v rabbitmq-server >/dev/null || { echo "rabbitmq: not running and not installed" >&2; exit 1; }
  echo "rabbitmq: starting"
  rabbitmq-server -detached
  for _ in $(seq 1 120); do
    if port_open && rabbitmqctl -q status >/dev/null 2>&1; then echo "rabbitmq: up"; return 0; fi
    sleep 0.5
  done
  echo "rabbitmq: did not come up on 127.0.0.1:5672 within 60 s" >&2
  exit 1
}
start
if [[ ${1:-} == accounts ]]; then
  VAR="${DATASTORE_VAR:-$PWD/var}"
  .venv/bin/datastore-ops broker-accounts --secrets "$VAR/broker" \
    --definitions "$VAR/broker/definitions.json" --url amqp://127.0.0.1:5672/ \
    --exchange datastore --instrument datastore-instrument --apply
fi
