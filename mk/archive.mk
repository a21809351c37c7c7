# The archive path's summary benchmark: ICAT registration and status recording through the
# icat-writer's real code (IcatCatalogue on a fresh ICAT emulator) vs plain python-icat, plus the
# gateway and poller figures copied from their own results; see bench/archive_bench.py.
.PHONY: bench-archive
BENCH_TARGETS += bench-archive

bench-archive:
	$(PY) bench/archive_bench.py --output bench/results/archive.json
