"""RabbitMQ adapters on aio-pika (the topology itself is data: ``datastore_common.topology``).

- ``bus``: ``Bus``, one connection, confirmed publishing, consumers;
- ``consumer``: ``Consumer`` and the ack policy (retry ladder, give up, dead-letter headers);
- ``declare``: ``declare_topology``/``delete_topology``, the topology applied to the broker;
- ``publisher``: ``BusPublisher``, the ``Publisher`` port;
- ``reporters``: ``give_up_reporter``/``retry_reporter``, what consumers publish on failure.
"""
