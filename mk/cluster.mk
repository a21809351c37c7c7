# A three-node RabbitMQ cluster on loopback (opt-in; beside the broker on :5672, never instead):
# nodes datastore-c1..c3@localhost, AMQP 5682-5684, data under $(DATASTORE_VAR)/rabbitmq-cluster.
.PHONY: up-cluster down-cluster cluster-status

up-cluster: setup
	@bash deploy/local/rabbitmq-cluster.sh start

down-cluster:
	@bash deploy/local/rabbitmq-cluster.sh stop

cluster-status:
	@bash deploy/local/rabbitmq-cluster.sh status
