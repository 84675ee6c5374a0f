"""Only the weights step (tests and bench/weights_*.py run it against the sandbox without the other steps)."""

from pyinfra import host

from lpfleet.fleet import node_plan
from tasks.weights import prefetch_weights

prefetch_weights(node_plan(host))
