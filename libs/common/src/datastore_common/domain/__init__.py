"""Pure domain logic: no I/O, no clients, only functions over plain values."""
