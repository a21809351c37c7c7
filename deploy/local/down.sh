#!/usr/bin/env bash
# `make down`: stop what `make up` started, by pid (RabbitMQ belongs to the machine and stays).
set -uo pipefail
cd "$(dirname "$0")/../.."
bash deploy/local/services.sh stop
make -s fts3-emulator-down
bash deploy/local/icat/emulator.sh stop
bash deploy/local/xrootd.sh stop
