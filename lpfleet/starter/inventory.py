"""The fleet: hosts grouped by GPU class; each group's settings are in group_data/<group>.py.

Replace the example host with yours (SSH names or addresses; `ssh_user` etc. in group_data/all.py). The last
line validates every host's spec before pyinfra connects to any of them.
"""

from lpfleet.fleet import guard_inventory

gpu_24gb = [
    "gpu-01.example.net",
]

guard_inventory(__file__)
