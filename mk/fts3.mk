# FTS3 emulator (https://127.0.0.1:8446) and the throw-away X.509 material it and its clients use.
.PHONY: certs fts3-emulator-up fts3-emulator-down fts3-emulator-status bench-transfer

FTS3_VAR := $(or $(DATASTORE_VAR),var)/fts3
FTS3_PID := $(FTS3_VAR)/fts3-emulator.pid
FTS3_LOG := $(FTS3_VAR)/fts3-emulator.log
FTS3_CERTS := $(or $(DATASTORE_VAR),var)/certs
FTS3_PORT ?= 8446

certs:
	@bash deploy/local/certs.sh >/dev/null && echo "certificates in $(FTS3_CERTS)"

fts3-emulator-up: certs
	@mkdir -p $(FTS3_VAR)
	@if [ -f $(FTS3_PID) ] && kill -0 $$(cat $(FTS3_PID)) 2>/dev/null; then \
		echo "fts3-emulator already running (pid $$(cat $(FTS3_PID)))"; exit 0; fi; \
	FTS3_EMULATOR_DB_PATH=$(FTS3_VAR)/fts3.sqlite FTS3_EMULATOR_PORT=$(FTS3_PORT) \
	FTS3_EMULATOR_CERT=$(FTS3_CERTS)/hostcert.pem FTS3_EMULATOR_KEY=$(FTS3_CERTS)/hostkey.pem \
	FTS3_EMULATOR_CA=$(FTS3_CERTS)/ca.pem \
	nohup $(VENV)/bin/fts3-emulator --config deploy/local/fts3/emulator.yaml \
		>>$(FTS3_LOG) 2>&1 & echo $$! > $(FTS3_PID); \
	for i in $$(seq 1 100); do \
		if curl -sf --cacert $(FTS3_CERTS)/ca.pem --cert $(FTS3_CERTS)/usercert.pem \
			--key $(FTS3_CERTS)/userkey.pem https://127.0.0.1:$(FTS3_PORT)/ >/dev/null; then \
			echo "fts3-emulator up on https://127.0.0.1:$(FTS3_PORT) (pid $$(cat $(FTS3_PID)), log $(FTS3_LOG))"; \
			exit 0; fi; \
		kill -0 $$(cat $(FTS3_PID)) 2>/dev/null || { tail -20 $(FTS3_LOG); exit 1; }; \
		sleep 0.2; done; \
	echo "fts3-emulator did not become ready; see $(FTS3_LOG)"; exit 1

fts3-emulator-down:
	@if [ -f $(FTS3_PID) ] && kill -0 $$(cat $(FTS3_PID)) 2>/dev/null; then \
		kill $$(cat $(FTS3_PID)); \
		for i in $$(seq 1 50); do kill -0 $$(cat $(FTS3_PID)) 2>/dev/null || break; sleep 0.2; done; \
		echo "fts3-emulator stopped"; \
	else echo "fts3-emulator not running"; fi; rm -f $(FTS3_PID)

fts3-emulator-status:
	@if [ -f $(FTS3_PID) ] && kill -0 $$(cat $(FTS3_PID)) 2>/dev/null; then \
		echo "fts3-emulator running (pid $$(cat $(FTS3_PID))) on https://127.0.0.1:$(FTS3_PORT)"; \
	else echo "fts3-emulator not running"; exit 1; fi

BENCH_TARGETS += bench-transfer
bench-transfer:
	@bash deploy/local/xrootd.sh start >/dev/null
	@$(PY) bench/transfer_bench.py --output bench/results/transfer.json
