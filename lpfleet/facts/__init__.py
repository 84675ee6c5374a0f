"""pyinfra facts, one module per domain. Each fact is one remote round-trip: batch checks."""
