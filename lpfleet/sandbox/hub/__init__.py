"""The sandbox's HuggingFace-compatible hub: generated models, gated access, switchable faults, byte counters.

Stdlib only and relative imports only, so the same folder runs in the `hub` image (base `python`, copied in as a
top-level package) and on the host for tests. `python -m lpfleet.sandbox.hub --port 8080` serves it; `HubServer`
embeds it in a test; `HubControl` drives its `/_sandbox/` API.
"""

from .client import HubControl
from .models import MODELS, Repo, RepoFile, build_repos
from .server import Fault, Hub, HubServer

__all__ = ["MODELS", "Fault", "Hub", "HubControl", "HubServer", "Repo", "RepoFile", "build_repos"]
