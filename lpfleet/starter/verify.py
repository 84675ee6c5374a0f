"""Read-only verification of the fleet: `pyinfra -y INVENTORY verify.py` (or `lpfleet verify INVENTORY`).

Changes nothing; fails each host that has a problem; prints the table of every host's checks at the end.
"""

from pyinfra import host

from lpfleet.fleet import node_plan
from lpfleet.operations.op_order import register_deploy_file
from tasks.verify import verify_node

register_deploy_file(__file__)  # pyinfra reads the stack per operation: keep inspect's lookup cached
verify_node(node_plan(host))
