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
