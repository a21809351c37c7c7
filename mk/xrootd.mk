# The local XRootD stack (idc :11094, udc :11095, tape :11096); see docs/xrootd.md.
.PHONY: xrootd-up xrootd-down xrootd-status xrootd-wipe

xrootd-up:
	@bash deploy/local/xrootd.sh start

xrootd-down:
	@bash deploy/local/xrootd.sh stop

xrootd-status:
	@bash deploy/local/xrootd.sh status

xrootd-wipe:
	@bash deploy/local/xrootd.sh wipe

BENCH_TARGETS += bench-xrootd
.PHONY: bench-xrootd
bench-xrootd:
	$(PY) bench/xrootd_bench.py --output bench/results/xrootd.json

# Describing a 10,000-file request's sources (the icat-writer's checks) vs the server's rate.
BENCH_TARGETS += bench-source-checks
.PHONY: bench-source-checks
bench-source-checks:
	@bash deploy/local/xrootd.sh start >/dev/null
	$(PY) bench/source_checks_bench.py --output bench/results/source_checks.json
