"""The sandbox's signed apt repository standing in for NVIDIA's libnvidia-container repository.

`build-repo.sh` builds it (dpkg-deb, apt-ftparchive, gpg) from `packages/` at every version in `versions`;
`serve.py` serves it; `../images/apt/` wraps both into the `<sandbox>-apt` container (see docs/sandbox.md).
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent
BUILD_SCRIPT = HERE / "build-repo.sh"
SERVE_SCRIPT = HERE / "serve.py"

#: The four packages, in NVIDIA's names; nvidia-container-toolkit depends on the exact version of the others.
PACKAGES: tuple[str, ...] = (
    "nvidia-container-toolkit",
    "nvidia-container-toolkit-base",
    "libnvidia-container-tools",
    "libnvidia-container1",
)
#: Every version the repository carries, oldest first.
VERSIONS: tuple[str, ...] = tuple((HERE / "versions").read_text().split())

PORT = 8080
#: Paths under the web root (the image serves /srv/apt).
REPO_PATH = "/stable/deb/$(ARCH)"
KEY_PATH = "/gpgkey"
SUBSTITUTED_KEY_PATH = "/gpgkey-substituted"
FINGERPRINT_PATH = "/fingerprint"
#: Where the image keeps the web root (readable with `docker exec <name>-apt cat /srv/apt/fingerprint`).
WEB_ROOT_IN_IMAGE = "/srv/apt"


def node_view_urls(container_name: str) -> dict[str, str]:
    """URLs as the sandbox nodes reach the repository container by name on the sandbox network."""
    base = f"http://{container_name}:{PORT}"
    return {
        "repo_url": base + REPO_PATH,
        "key_url": base + KEY_PATH,
        "substituted_key_url": base + SUBSTITUTED_KEY_PATH,
    }
