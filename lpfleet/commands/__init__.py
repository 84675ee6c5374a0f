"""One module per `lpfleet` sub-command; see lpfleet/cli.py."""
