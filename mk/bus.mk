# Bus throughput against raw aio-pika (bench/results/bus.json); the AsyncAPI document and
# architecture.md's message table, derived from topology.QUEUES.
.PHONY: bench-bus asyncapi
BENCH_TARGETS += bench-bus

bench-bus:
	@bash deploy/local/rabbitmq.sh
	$(PY) bench/bus_bench.py --output bench/results/bus.json

asyncapi:
	$(PY) -m datastore_common.asyncapi > docs/asyncapi.json
	$(PY) -m datastore_common.asyncapi --table docs/architecture.md
