"""Step 4: every model's weights from models.lock in the node's models dir, HF cache layout, verified by hash.

`direct`: each node fetches from `hf_endpoint` (the hub or a LAN mirror). `fanout`: each model is fetched from
upstream once per fleet (by a node that needs it: the seed); the other nodes form a chain behind it (or behind a
node that has it already), each copying over the LAN from the node before it while that node still receives the
bytes (its mirror forwards them), so the fleet is ready in about the time one node takes.
A complete node costs one fact round-trip (shared with the fleet plan) and reports "No changes".
"""

from __future__ import annotations

import os
from typing import Any

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.api.exceptions import DeployError

from lpfleet.fleet import node_plan
from lpfleet.fleet_plan import NodePlan
from lpfleet.live_prepare import live_apps
from lpfleet.lock import LockedModel, LockError
from lpfleet.operations.live_prepare import live_weights_prepared
from lpfleet.operations.prune import weights_pruned
from lpfleet.operations.weights import (
    RELAY_BOARD,
    Endpoint,
    FetchSource,
    FleetWeights,
    fleet_weights,
    mirror_serving,
    mirror_stopped,
    models_fetched,
    runtime_installed,
)
from lpfleet.secrets import Secret, to_secret
from lpfleet.weights_fetch import DEADLINE_FLOOR, display_url


def locked_models(plan: NodePlan) -> list[LockedModel]:
    """What models.lock pins for the host; stops the host (DeployError) when the lock is missing or behind."""
    try:
        return plan.locked_models()
    except LockError as exc:
        raise DeployError(f"weights: {exc}") from None


def _models_for(target: Any) -> tuple[list[LockedModel], str, str]:
    plan = node_plan(target)
    return locked_models(plan), plan.spec.models_dir, plan.spec.weights.branch


def peer_endpoint(peer: str) -> str:
    """The LAN URL of a peer's weights mirror, from that peer's own spec (`weights_lan_address`, `weights_mirror_port`)."""
    weights = node_plan(host.state.inventory.get_host(peer)).spec.weights
    return f"http://{weights.lan_address or peer}:{weights.mirror_port}"


@deploy("Model weights")
def prefetch_weights(plan: NodePlan) -> None:
    fetch_weights(plan)
    if plan.spec.weights.prune:  # after the fetch: refs/<branch> is on the locked commit by then
        weights_pruned(
            name="Weights: prune snapshots and blobs models.lock no longer names",
            models=locked_models(plan),
            models_dir=plan.spec.models_dir,
            branch=plan.spec.weights.branch,
        )
    prepare_live_weights(plan)


def prepare_live_weights(plan: NodePlan) -> None:
    """Live apps' engines and model trees, built by a run of each app's image (lpfleet.live_prepare)."""
    live = (plan.spec.worker.runner_image_overrides or {}).get("live")
    apps = live_apps(plan.spec.models, live if isinstance(live, dict) else None)
    if apps:
        live_weights_prepared(name="Weights: prepare live apps (their images with PREPARE_MODELS=1)",
                              apps=apps, models_dir=plan.spec.models_dir)


def fetch_weights(plan: NodePlan) -> None:
    spec = plan.spec
    models = locked_models(plan)
    weights = spec.weights
    token = to_secret(os.environ.get(weights.hf_token_env) or None)
    fleet = fleet_weights(_models_for)
    this_node = fleet.plans.get(host.name)
    needs_work = this_node is None or not this_node.complete
    common: dict[str, Any] = {"models": models, "models_dir": spec.models_dir}
    fetch = {**common, "branch": weights.branch, "min_rate": weights.min_rate}

    if weights.mode == "direct":
        if needs_work:
            runtime_installed(name="Weights: runtime (lpfleet weights modules) on the node", **common)
        models_fetched(
            name=f"Weights: fetch from {display_url(weights.hf_endpoint)}",
            sources=[FetchSource(Endpoint(weights.hf_endpoint, token, "upstream", weights.hf_token_env),
                                 tuple(models))],
            **fetch,
        )
        return

    fanout = fleet.fanout
    serving = fanout.serving(host.name)
    relaying = fanout.relaying(host.name)
    board = RELAY_BOARD.format(run_id=fleet.run_id) if relaying else None
    if fanout.sources.get(host.name) or serving or needs_work:
        runtime_installed(name="Weights: runtime (lpfleet weights modules) on the node", **common)
    mirror_serving(name="Weights: serve peers (verified copies, and files as they arrive)",
                   models_dir=spec.models_dir, serve=serving, relay=relaying, relay_board=board,
                   token=Secret(fleet.mirror_token(host.name)), bind=weights.lan_address or host.name,
                   run_id=fleet.run_id, port=weights.mirror_port, peers=fanout.peers_of(host.name),
                   min_rate=weights.min_rate)
    models_fetched(
        name=f"Weights: fetch (from {display_url(weights.hf_endpoint)} once per fleet, then along each model's "
             "chain of peers)",
        sources=fanout_sources(fleet, Endpoint(weights.hf_endpoint, token, "upstream", weights.hf_token_env),
                               weights.min_rate),
        relay_board=board,
        **fetch,
    )
    mirror_stopped(name="Weights: stop serving peers", serving=bool(serving), run_id=fleet.run_id)


def fanout_sources(fleet: FleetWeights, upstream: Endpoint, min_rate: int) -> list[FetchSource]:
    """This host's models grouped by where they come from: upstream (it is the seed) or a peer, then the
    peers further up the model's chain, with the time that peer may take to get through the models before."""

    def peer(name: str) -> Endpoint:
        return Endpoint(peer_endpoint(name), Secret(fleet.mirror_token(name)), f"peer {name}")

    groups: dict[tuple[str | None, tuple[str, ...], float], list[LockedModel]] = {}
    for source in fleet.fanout.sources.get(host.name, []):
        count, size = fleet.fanout.fetched_before(source.model)
        wait = 0.0 if source.upstream else count * DEADLINE_FLOOR + size / max(min_rate, 1)
        groups.setdefault((source.peer, source.fallbacks, wait), []).append(source.model)
    return [
        FetchSource(upstream if first is None else peer(first), tuple(models), tuple(peer(f) for f in fallbacks),
                    wait)
        for (first, fallbacks, wait), models in sorted(groups.items(), key=lambda kv: (kv[0][0] or "", kv[0][1:]))
    ]
