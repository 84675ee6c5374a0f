"""pyinfra operations, one module per domain. Every no-change path calls host.noop()."""
