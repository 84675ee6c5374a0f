"""lpfleet: provision fleets of Livepeer AI GPU nodes with pyinfra."""

__version__ = "0.1.0"
