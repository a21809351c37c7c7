# The HTTP gateway (services/gateway): run it, export its OpenAPI document, benchmark it.
.PHONY: gateway-run gateway-openapi bench-gateway test-gateway
BENCH_TARGETS += bench-gateway

gateway-run:
	$(VENV)/bin/datastore-gateway $(if $(CONFIG),--config $(CONFIG))

# docs/openapi.json is checked by tests/unit/gateway/test_openapi.py; rerun after API changes.
gateway-openapi:
	$(VENV)/bin/datastore-gateway openapi --output docs/openapi.json

bench-gateway:
	$(PY) bench/gateway_bench.py --output bench/results/gateway.json

test-gateway:
	$(VENV)/bin/pytest -q tests/unit/gateway tests/integration/gateway
