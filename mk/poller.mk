# status-poller benchmark: FTS status requests per poll cycle with 1,000 active jobs.
.PHONY: bench-poller
BENCH_TARGETS += bench-poller

bench-poller:
	@$(PY) bench/poller_bench.py --output bench/results/poller.json
