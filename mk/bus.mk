# Bus throughput against raw aio-pika (bench/results/bus.json) and the AsyncAPI document.
.PHONY: bench-bus asyncapi
BENCH_TARGETS += bench-bus

bench-bus:
	@bash deploy/local/rabbitmq.sh
	$(PY) bench/bus_bench.py --output bench/results/bus.json

asyncapi:
	$(PY) -m datastore_common.asyncapi > docs/asyncapi.json
