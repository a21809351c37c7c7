#!/usr/bin/env bash
# `make up`: the whole local stack, idempotently. RabbitMQ (running on this kind of machine, started
# if down), three XRootD servers, throw-away certificates, the ICAT emulator (with the seed's
# high-level entities ingested by python-icat's icatingest.py), the FTS3 emulator, then the four
# services. `make down` stops what this started.
set -euo pipefail
cd "$(dirname "$0")/../.."
VAR="${DATASTORE_VAR:-$PWD/var}"
mkdir -p "$VAR"

bash deploy/local/rabbitmq.sh accounts
bash deploy/local/xrootd.sh start
bash deploy/local/certs.sh >/dev/null
bash deploy/local/icat/emulator.sh start
.venv/bin/icatingest.py -i deploy/local/icat/example.yaml -f YAML --duplicate IGNORE \
  --url http://localhost:18080 --no-check-certificate --auth simple --user root --pass pw
make -s fts3-emulator-up

config="$VAR/config.yaml"
# (Re)written when missing or older than the per-role broker users; it holds a password.
if [[ ! -f $config ]] || ! grep -q datastore-ops "$config"; then
  (umask 077; cat >"$config") <<YAML
# Written by deploy/local/up.sh for the local stack; see config.example.yaml for every key.
x509_user_cert: $VAR/certs/usercert.pem
x509_user_key: $VAR/certs/userkey.pem
fts3:
  endpoint: https://127.0.0.1:8446
  ca_path: $VAR/certs/ca.pem
icat:
  url: http://localhost:18080
broker:
  # Tools (datastore-ops) connect as the operator; each service gets its own user's URL from
  # deploy/local/services.sh (DATASTORE__BROKER__URL). Who may publish what: topology.PUBLISHERS.
  url: $(cat "$VAR/broker/datastore-ops.url")
  users:
    datastore-gateway: gateway
    datastore-icat-writer: icat-writer
    datastore-fts-submitter: fts-submitter
    datastore-status-poller: status-poller
    datastore-ops: operator
instruments:
  - broker_user: datastore-instrument
    icat_user: simple/root
    instruments: [instrument]
gateway:
  state_db: sqlite:///$VAR/gateway/gateway.sqlite
poller:
  interval_seconds: 2
YAML
  echo "wrote $config"
fi
mkdir -p "$VAR/gateway"
DATASTORE_CONFIG="$config" bash deploy/local/services.sh start
