"""An example production-shaped fleet: hosts grouped by GPU class, one group data file per class.

Host data overrides group data (a box with two cards lists both GPU ids). The last line
validates every host's spec before pyinfra connects to any of them.
"""

from lpfleet.fleet import guard_inventory

consumer_24gb = [
    "gpu-c01.fleet.example",
    ("gpu-c02.fleet.example", {"gpus": [0, 1]}),
    "gpu-c03.fleet.example",
]

datacenter_80gb = [
    "gpu-d01.fleet.example",
    ("gpu-d02.fleet.example", {"gpus": [0, 1, 2, 3, 4, 5, 6, 7]}),
]

guard_inventory(__file__)
