"""The docker_engine task through pyinfra's API on @fake hosts: Debian's docker.io or Docker's own repository."""

from __future__ import annotations

import tasks.docker_engine
from lpfleet.facts.docker import DOCKER_KEYRING, DOCKER_SOURCE
from lpfleet.operations.files import staging_path
from tasks.docker_engine import install_docker_engine
from tests.ops.toolkit_harness import ED_ASC, RSA_ASC, RSA_FPR, FakeNode, converged_node, run_tasks, spec_for

ENGINE = (install_docker_engine,)


def test_docker_io_on_a_bare_node(monkeypatch):
    node = FakeNode(packages={"curl": ("7.88", "ii "), "docker-ce": ("5:27.0", "ii "), "containerd.io": ("1.7", "ii ")})
    run = run_tasks({"n1": (spec_for("@fake/n1"), node)}, ENGINE, monkeypatch=monkeypatch)
    assert run.failed == set()
    removal = run.ran("n1", "remove --purge")[0]
    assert "docker-ce" in removal and "containerd.io" in removal
    install = run.ran("n1", "install --no-install-recommends docker.io")[0]
    assert "|| { env DEBIAN_FRONTEND=noninteractive apt-get -q -y -o DPkg::Lock::Timeout=300 update &&" in install
    assert run.ran("n1", "systemctl enable --now docker")
    assert not run.ran("n1", "download.docker.com")


def test_converged_docker_io_node_changes_nothing(monkeypatch):
    run = run_tasks({"n1": (spec_for("@fake/n1"), converged_node())}, ENGINE, monkeypatch=monkeypatch)
    assert run.changed_operations("n1") == []
    assert run.commands["n1"] == run.ran("n1", "lpfleet-container-host-state")


def _ubuntu(**overrides) -> FakeNode:
    node = FakeNode(
        os_id="ubuntu", codename="jammy", distro="ubuntu",
        packages={"docker.io": ("24.0", "ii "), "containerd": ("1.7", "ii "), "runc": ("1.1", "ii ")},
        fetched={"nvidia-key": RSA_ASC.encode(), "docker-key": RSA_ASC.encode()},
    )
    for key, value in overrides.items():
        setattr(node, key, value)
    return node


def test_docker_ce_on_ubuntu_follows_dockers_guide(monkeypatch):
    monkeypatch.setattr(tasks.docker_engine, "DOCKER_KEY_FINGERPRINT", RSA_FPR)
    spec = spec_for("@fake/n1", install="docker-ce")
    run = run_tasks({"n1": (spec, _ubuntu())}, ENGINE, monkeypatch=monkeypatch)
    assert run.failed == set()
    fact = run.ran("n1", "lpfleet-container-host-state")[0]
    assert "https://download.docker.com/linux/{distro}/gpg" in fact  # the node substitutes its distribution
    removal = run.ran("n1", "remove --purge")[0]
    assert all(name in removal for name in ("docker.io", "containerd", "runc"))
    assert run.ran("n1", "install --no-install-recommends ca-certificates curl")
    assert run.uploads["n1"][staging_path("/etc/apt/keyrings/docker.asc")] == RSA_ASC.encode()  # armored, as served
    assert run.uploads["n1"][staging_path("/etc/apt/sources.list.d/docker.sources")] == (
        "Types: deb\nURIs: https://download.docker.com/linux/ubuntu\nSuites: jammy\nComponents: stable\n"
        f"Architectures: amd64\nSigned-By: {DOCKER_KEYRING}\n"
    ).encode()
    update = run.ran("n1", f"Dir::Etc::sourcelist={DOCKER_SOURCE}")
    assert update
    install = run.ran("n1", "install --no-install-recommends docker-ce ")[0]
    for package in ("docker-ce-cli", "containerd.io", "docker-buildx-plugin", "docker-compose-plugin"):
        assert package in install
    commands = run.commands["n1"]
    assert commands.index(removal) < commands.index(update[0]) < commands.index(install)
    assert run.ran("n1", "systemctl enable --now docker")


def test_docker_ce_with_a_foreign_key_is_refused(monkeypatch):
    monkeypatch.setattr(tasks.docker_engine, "DOCKER_KEY_FINGERPRINT", RSA_FPR)
    node = _ubuntu(fetched={"nvidia-key": RSA_ASC.encode(), "docker-key": ED_ASC.encode()})
    run = run_tasks({"n1": (spec_for("@fake/n1", install="docker-ce"), node)}, ENGINE, monkeypatch=monkeypatch)
    assert run.failed == {"n1"}
    assert "Docker key at https://download.docker.com/linux/ubuntu/gpg REJECTED" in run.ran("n1", "REJECTED")[0]
    assert not run.ran("n1", "install --no-install-recommends docker-ce ")


def test_docker_ce_needs_debian_or_ubuntu(monkeypatch):
    node = FakeNode(os_id="fedora", distro="fedora", codename="unknown")
    run = run_tasks({"n1": (spec_for("@fake/n1", install="docker-ce"), node)}, ENGINE, monkeypatch=monkeypatch)
    assert run.failed == {"n1"}
    assert "serves Debian and Ubuntu; this node is fedora" in run.ran("n1", "lpfleet:")[0]
