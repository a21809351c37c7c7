# The ICAT emulator (SOAP, python-icat compatible) on :18080; see docs/emulators/icat.md.
.PHONY: icat-emulator-up icat-emulator-down icat-emulator-status icat-ingest bench-icat test-icat
BENCH_TARGETS += bench-icat

icat-emulator-up:
	@bash deploy/local/icat/emulator.sh start

icat-emulator-down:
	@bash deploy/local/icat/emulator.sh stop

icat-emulator-status:
	@bash deploy/local/icat/emulator.sh status

# The seed's exact command: python-icat's own icatingest.py, unmodified.
icat-ingest: icat-emulator-up
	$(VENV)/bin/icatingest.py -i deploy/local/icat/example.yaml -f YAML --duplicate IGNORE \
	  --url http://localhost:18080 --no-check-certificate --auth simple --user root --pass pw

bench-icat:
	$(PY) bench/icat_bench.py --output bench/results/icat.json

test-icat:
	$(VENV)/bin/pytest -q tests/integration/icat_emulator
