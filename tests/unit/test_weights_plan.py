"""The weights plan (what a node lacks) and the fan-out plan (upstream once per fleet). Pure, no mocks."""

from __future__ import annotations

from lpfleet.lock import LockedFile, LockedModel
from lpfleet.weights import DISK_MARGIN_BYTES, plan_fanout, plan_node, repo_folder_name, scan_request

C1, C2 = "1" * 40, "2" * 40
SHA = "a" * 64
BLOB = "b" * 40
FILES = (LockedFile("config.json", 10, git_blob=BLOB), LockedFile("unet/w.safetensors", 1000, sha256=SHA))


def model(model_id="Org/Model", commit=C1) -> LockedModel:
    return LockedModel(model_id, "main", commit, None, FILES)


def entry(blob, size, stamp=(1, 2, 3, 4), relative=True):
    return {"blob": blob, "relative": relative, "size": size, "stamp": list(stamp) if stamp else None}


def complete_repo(commit=C1, ref=C1, **changes):
    snapshot = {"config.json": entry(BLOB, 10), "unet/w.safetensors": entry(SHA, 1000, (5, 6, 7, 8))}
    snapshot.update(changes)
    return {
        "refs": {"main": ref} if ref else {},
        "snapshots": {commit: snapshot},
        "verified": {commit: {"config.json": {"etag": BLOB, "stamp": [1, 2, 3, 4]},
                              "unet/w.safetensors": {"etag": SHA, "stamp": [5, 6, 7, 8]}}},
    }


def scan(repo=None, free=10**12):
    return {"exists": True, "free_bytes": free, "repos": {"models--Org--Model": repo} if repo else {}}


def status(repo, branch="main"):
    return plan_node([model()], scan(repo), branch).models[0]


def test_folder_name_keeps_case():
    assert repo_folder_name("SG161222/RealVisXL_V4.0_Lightning") == "models--SG161222--RealVisXL_V4.0_Lightning"


def test_complete_model():
    plan = plan_node([model()], scan(complete_repo()), "main")
    assert plan.complete and plan.bytes_to_fetch == 0 and plan.disk_shortfall() == 0


def test_empty_dir_needs_everything():
    s = status(None)
    assert not s.complete and len(s.missing) == 2 and s.bytes_to_fetch == 1010 and not s.ref_ok


def test_ref_is_what_makes_it_complete():
    assert not status(complete_repo(ref=None)).complete  # interrupted before the ref: not complete
    assert not status(complete_repo(ref=C2)).complete  # ref on another commit
    assert all(f.state == "ok" for f in status(complete_repo(ref=C2)).files)  # files fine: only the ref to write
    assert not status(complete_repo(), branch="dev").complete


def test_blob_changed_since_verified_is_reverified():
    s = status(complete_repo(**{"unet/w.safetensors": entry(SHA, 1000, (5, 6, 99, 8))}))  # ctime moved
    assert [f.path for f in s.unverified] == ["unet/w.safetensors"] and not s.missing


def test_never_verified_blob_is_reverified():
    repo = complete_repo()
    del repo["verified"][C1]["config.json"]
    assert [f.path for f in status(repo).unverified] == ["config.json"]


def test_wrong_size_dangling_absolute_and_foreign_links_are_missing():
    cases = {
        "wrong size": entry(SHA, 999),
        "blob gone": entry(SHA, None, stamp=None),
        "absolute link": entry(SHA, 1000, (5, 6, 7, 8), relative=False),
        "other blob": entry("f" * 64, 1000),
    }
    for label, bad in cases.items():
        s = status(complete_repo(**{"unet/w.safetensors": bad}))
        assert [f.path for f in s.missing] == ["unet/w.safetensors"], label
        assert s.bytes_to_fetch == 1000, label


def test_file_missing_from_snapshot():
    repo = complete_repo()
    del repo["snapshots"][C1]["config.json"]
    assert [f.path for f in status(repo).missing] == ["config.json"]


def test_disk_shortfall():
    plan = plan_node([model()], scan(None, free=500), "main")
    assert plan.disk_shortfall() == 1010 + DISK_MARGIN_BYTES - 500
    assert plan_node([model()], scan(None, free=10**12), "main").disk_shortfall() == 0


def test_problems_block_completeness():
    s = scan(complete_repo())
    s["problems"] = ["/models exists and is not a directory"]
    assert not plan_node([model()], s, "main").complete


def test_scan_request_lists_commits_per_repo():
    assert scan_request([model(), model(commit=C2), model()]) == {"models--Org--Model": [C1, C2]}


def plans(states: dict[str, str | None]):
    """host -> 'complete' | None (empty dir)."""
    return {h: plan_node([model()], scan(complete_repo() if st == "complete" else None), "main")
            for h, st in states.items()}


def test_fanout_seed_fetches_upstream_once_and_the_rest_form_a_chain_behind_it():
    fan = plan_fanout(plans({"n3": None, "n1": None, "n2": None, "n5": None, "n4": None}))
    assert [h for h, _ in fan.upstream_models] == ["n1"]  # one upstream copy, whatever the node count
    assert fan.seeds("n1") == [model()] and not fan.from_peers("n1")
    # each node copies from the one before it (while that one still receives the bytes) ...
    assert {h: fan.from_peers(h) for h in ("n2", "n3", "n4", "n5")} == {
        "n2": {"n1": [model()]}, "n3": {"n2": [model()]}, "n4": {"n3": [model()]}, "n5": {"n4": [model()]}}
    # ... and falls back up the chain: the two nodes before its peer, then the chain's root
    assert [s.fallbacks for s in fan.sources["n2"]] == [()]
    assert [s.fallbacks for s in fan.sources["n3"]] == [("n1",)]
    assert [s.fallbacks for s in fan.sources["n5"]] == [("n3", "n2", "n1")]
    # every node but the last serves, forwarding what it receives; each uploads to one successor
    for host in ("n1", "n2", "n3", "n4"):
        assert fan.serving(host) == [model()] and fan.relaying(host) == [model()]
    assert not fan.serving("n5")
    assert fan.peers_of("n4") == 1 and fan.peers_of("n1") == 4  # n2's peer; n3's, n4's, n5's fallback


def test_fanout_prefers_nodes_that_already_have_it_and_deals_the_rest_over_them():
    fan = plan_fanout(plans({"n1": None, "n2": "complete", "n3": None}))
    assert fan.upstream_models == []  # nothing crosses the WAN
    assert fan.from_peers("n1") == {"n2": [model()]} and fan.from_peers("n3") == {"n1": [model()]}
    assert fan.serving("n2") == [model()] and fan.relaying("n2") == []  # complete: served, not relayed
    assert fan.relaying("n1") == [model()]
    two = plan_fanout(plans({"n1": None, "h1": "complete", "h2": "complete", "n2": None, "n3": None}))
    assert {h: fan_peer for h in ("n1", "n2", "n3") for fan_peer in two.from_peers(h)} == {
        "n1": "h1", "n2": "h2", "n3": "n1"}  # two chains: h1 -> n1 -> n3, h2 -> n2


def test_fanout_of_a_converged_fleet_is_empty():
    fan = plan_fanout(plans({"n1": "complete", "n2": "complete"}))
    assert fan.sources == {} and not fan.serving("n1")


def test_fanout_per_model_and_commit():
    a, b = model("Org/Model"), model("Org/Model", commit=C2)
    p1 = plan_node([a], scan(None), "main")
    p2 = plan_node([b], scan(None), "main")
    p3 = plan_node([a, b], scan(None), "main")
    fan = plan_fanout({"n1": p1, "n2": p2, "n3": p3})
    assert sorted((h, m.commit) for h, m in fan.upstream_models) == [("n1", C1), ("n2", C2)]
    assert fan.from_peers("n3") == {"n1": [a], "n2": [b]}


def test_fanout_order_bounds_how_long_a_peer_may_take_to_get_to_a_model():
    a, b = model("Org/A"), model("Org/B")
    fan = plan_fanout({h: plan_node([a, b], scan(None), "main") for h in ("n1", "n2")})
    size = sum(f.size for f in a.files)
    assert fan.fetched_before(a) == (0, 0) and fan.fetched_before(b) == (1, size)  # every node fetches A, then B
