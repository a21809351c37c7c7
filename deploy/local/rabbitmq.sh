#!/usr/bin/env bash
# Make sure RabbitMQ answers on 127.0.0.1:5672: use the running one, start it when it is down.
set -euo pipefail
port_open() { (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null; }
if port_open; then exit 0; fi
command -v rabbitmq-server >/dev/null || { echo "rabbitmq: not running and not installed" >&2; exit 1; }
echo "rabbitmq: starting"
rabbitmq-server -detached
for _ in $(seq 1 120); do
  if port_open && rabbitmqctl -q status >/dev/null 2>&1; then echo "rabbitmq: up"; exit 0; fi
  sleep 0.5
done
echo "rabbitmq: did not come up on 127.0.0.1:5672 within 60 s" >&2
exit 1
