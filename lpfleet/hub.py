"""The controller's side of the hub: resolving a repo to a commit and a hashed file list (`lpfleet lock`).

`lock_model` asks a HuggingFace-compatible endpoint (the Hub, a mirror such as olah, a peer) through
huggingface_hub's API client and checks every value the answer carries before it can reach models.lock:
commits and git blob ids 40 hex, sha256 64 hex, paths relative and normalised (`lpfleet.lock.file_problem`).
Every failure, transport errors included, is a `HubError` naming the model, never a traceback.

Filling a models dir (the node side of the weights step, and `lpfleet prefetch`) is `lpfleet.weights_fetch`
(standard library only); its names are re-exported here for callers that import them from `lpfleet.hub`.

Only the endpoint given is ever contacted: huggingface_hub's telemetry is switched off when it is first used
(not at import), and no token is read from disk (`token=False` unless one is passed).
"""

from __future__ import annotations

from typing import Any

from lpfleet.lock import LockedFile, LockedModel, ModelRequest, commit_problem, file_problem, select_paths
from lpfleet.weights_fetch import (  # noqa: F401 - re-exported: the node side's public names
    STATE_DIR,
    EnsureResult,
    FetchLimits,
    HubAccessError,
    HubError,
    display_url,
    endpoint_problem,
    ensure_model,
    file_digest,
    gated_message,
    models_dir_lock,
    recorded_model,
    scan_models_dir,
)

HF_HUB_RANGE = ">=2.4,<3"  # pyproject's pin: the API client surface used here


def _hf() -> Any:
    """huggingface_hub, imported on first use, with telemetry off for this process; a clear HubError when it
    is missing (it is a dependency of lpfleet, needed on the controller only)."""
    try:
        import huggingface_hub
        from huggingface_hub import constants
    except ImportError as exc:
        raise HubError(
            "lpfleet",
            f"huggingface_hub is not importable ({exc})",
            f"install lpfleet with its dependencies (huggingface_hub{HF_HUB_RANGE})",
        ) from None
    constants.HF_HUB_DISABLE_TELEMETRY = True
    return huggingface_hub


# --- locking: resolve a repo to a commit and its files


def _api(endpoint: str, token: str | None):
    return _hf().HfApi(endpoint=endpoint.rstrip("/"), token=token or False, library_name="lpfleet")


def _gated_message(model_id: str, endpoint: str, token: str | None, token_env: str) -> HubError:
    return gated_message(model_id, endpoint, token, token_env)


def _status(exc: BaseException) -> int | None:
    return getattr(getattr(exc, "response", None), "status_code", None)


def _transport(model_id: str, endpoint: str, what: str, exc: BaseException) -> HubError:
    """A failure below HTTP (refused, DNS, TLS, cut, timeout: httpx2's errors, OSError) as one line."""
    text = " ".join(str(exc).split())[:200] or type(exc).__name__
    return HubError(
        model_id,
        f"{what}: cannot reach {display_url(endpoint)} ({type(exc).__name__}: {text})",
        "check the endpoint (HF_ENDPOINT / hf_endpoint / hf_lock_endpoint) and the network",
    )


def lock_model(
    request: ModelRequest, endpoint: str, token: str | None, token_env: str = "HF_TOKEN"
) -> LockedModel:
    """Resolve `request` on the hub: commit, selected files with sha256 / git blob ids.

    Checks: the repo exists, its canonical id is exactly `request.model_id`, the revision exists, the include
    globs select something, every selected file's path, size and hash are well-formed, and the token opens the
    files (a HEAD of one file: gated repos answer 401/403). A missing or refused `/api/models/{repo}` (a
    mirror: olah offline answers 401 RepoNotFound there) falls back to the revision endpoint before concluding
    "not found"; what could then not be checked is listed in `unchecked`.
    """
    from lpfleet.lock import model_id_problem

    model_id = request.model_id
    problem = model_id_problem(model_id)
    if problem:
        raise HubAccessError(
            str(model_id)[:100],
            f"not a valid model id: {problem}",
            "use the id as the model's page shows it (org/name, exact case)",
        )
    problem = endpoint_problem(endpoint)
    if problem:
        raise HubAccessError(
            model_id,
            f"endpoint {display_url(str(endpoint))!r}: {problem}",
            "set HF_ENDPOINT / hf_endpoint to an http(s) URL such as https://huggingface.co",
        )
    try:
        return _lock_model(request, endpoint, token, token_env)
    except HubError:
        raise
    except Exception as exc:  # noqa: BLE001 - anything the client raises becomes one line naming the model
        raise _transport(model_id, endpoint, "resolving", exc) from None


def _lock_model(request: ModelRequest, endpoint: str, token: str | None, token_env: str) -> LockedModel:
    _hf()
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )
    from huggingface_hub.hf_api import RepoFile

    api = _api(endpoint, token)
    model_id = request.model_id
    where = display_url(endpoint)
    not_found = HubAccessError(
        model_id, f"not found on {where}", "check the model_id (org/name, exact case) on the model's page"
    )
    unchecked: list[str] = []
    canonical: str | None = None
    gated: bool | None = None
    try:
        info = api.model_info(model_id)
        canonical, gated = info.id, bool(info.gated)
    except GatedRepoError:
        raise _gated_message(model_id, endpoint, token, token_env) from None
    except HfHubHTTPError as exc:  # RepositoryNotFoundError included: a mirror may refuse this endpoint only
        status = _status(exc)
        if status is not None and status >= 500:
            raise HubError(
                model_id, f"model info failed on {where}: HTTP {status}", "try again later"
            ) from None
        unchecked.append(
            f"model info (HTTP {status} from /api/models/{{repo}}): canonical id and gating from "
            "the revision answer only"
        )
    except Exception as exc:  # noqa: BLE001
        raise _transport(model_id, endpoint, "model info", exc) from None
    try:
        rev_info = api.model_info(model_id, revision=request.revision)
    except RevisionNotFoundError:
        raise HubAccessError(
            model_id,
            f"revision {request.revision!r} not found",
            "use a branch, tag or commit that exists in the repo",
        ) from None
    except GatedRepoError:
        raise _gated_message(model_id, endpoint, token, token_env) from None
    except RepositoryNotFoundError:
        raise not_found from None
    except HfHubHTTPError as exc:
        status = _status(exc)
        if status in (401, 403, 404):
            raise not_found from None
        raise HubError(
            model_id, f"resolving revision {request.revision!r} on {where} failed: HTTP {status}"
        ) from None
    except Exception as exc:  # noqa: BLE001
        raise _transport(model_id, endpoint, f"resolving revision {request.revision!r}", exc) from None
    commit = getattr(rev_info, "sha", None)
    if commit_problem(commit):
        raise HubError(
            model_id,
            f"revision {request.revision!r}: the endpoint answered the commit "
            f"{str(commit)[:60]!r}, not 40 hex digits",
            "the endpoint is broken or hostile",
        ) from None
    if canonical is None:
        canonical = getattr(rev_info, "id", None)
        if not canonical:
            unchecked.append("canonical id (no `id` in the revision answer)")
        if gated is None and getattr(rev_info, "gated", None) is not None:
            gated = bool(rev_info.gated)
    if canonical is not None and canonical != model_id:
        raise HubAccessError(
            model_id,
            f"differs from the hub's canonical id {str(canonical)[:100]!r}",
            f"use model_id {str(canonical)[:100]!r}: the runner's cache lookup is case-sensitive",
        )
    try:
        entries = [
            e
            for e in api.list_repo_tree(model_id, revision=commit, recursive=True)
            if isinstance(e, RepoFile)
        ]
    except GatedRepoError:
        raise _gated_message(model_id, endpoint, token, token_env) from None
    except HfHubHTTPError as exc:
        raise HubError(
            model_id, f"listing files of {commit[:12]} on {where} failed: HTTP {_status(exc)}"
        ) from None
    except Exception as exc:  # noqa: BLE001
        raise _transport(model_id, endpoint, f"listing files of {commit[:12]}", exc) from None
    by_path = {e.path: e for e in entries if isinstance(e.path, str)}
    selected = select_paths(by_path, request.include)
    if not selected:
        raise HubAccessError(
            model_id,
            f"include patterns {list(request.include or [])} select no file of {commit[:12]}",
            "fix the catalog's include patterns for this model",
        )
    files = [_locked_file(model_id, commit, by_path[path]) for path in selected]
    _check_access(model_id, commit, min(files, key=lambda f: f.size), endpoint, token, token_env)
    if gated is None:
        unchecked.append("gated flag (access itself was checked with a file request)")
    return LockedModel(
        model_id, request.revision, commit, request.include, tuple(files), gated, tuple(unchecked)
    )


def _locked_file(model_id: str, commit: str, entry: Any) -> LockedFile:
    """One listed file, every value checked (it becomes a path and a hash on every node)."""
    lfs = getattr(entry, "lfs", None)
    sha256 = getattr(lfs, "sha256", None) if lfs is not None else None
    size = getattr(lfs, "size", None) if lfs is not None else getattr(entry, "size", None)
    git_blob = None if lfs is not None else getattr(entry, "blob_id", None)
    problem = file_problem(entry.path, size, sha256, git_blob)
    if problem:
        raise HubError(
            model_id,
            f"the listing of {commit[:12]} has an unusable file: {problem}",
            "the endpoint is broken or hostile; nothing was locked",
        )
    return LockedFile(entry.path, size, sha256=sha256, git_blob=git_blob)


def _check_access(
    model_id: str, commit: str, probe: LockedFile, endpoint: str, token: str | None, token_env: str
) -> None:
    """HEAD one file as the nodes will: gated repos refuse here, and the answer must match the listing."""
    hf = _hf()
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, RepositoryNotFoundError

    url = hf.hf_hub_url(model_id, probe.path, revision=commit, endpoint=endpoint.rstrip("/"))
    try:
        meta = hf.get_hf_file_metadata(url, token=token or False, endpoint=endpoint.rstrip("/"))
    except GatedRepoError:
        raise _gated_message(model_id, endpoint, token, token_env) from None
    except RepositoryNotFoundError:
        raise HubError(
            model_id,
            "files not accessible (repository not found when fetching a file)",
            "check the token's access to the repo",
        ) from None
    except HfHubHTTPError as exc:
        status = _status(exc)
        if status in (401, 403):
            raise _gated_message(model_id, endpoint, token, token_env) from None
        raise HubError(model_id, f"fetching metadata of {probe.path} failed: HTTP {status}") from None
    except Exception as exc:  # noqa: BLE001
        raise _transport(model_id, endpoint, f"fetching metadata of {probe.path}", exc) from None
    if meta.etag and meta.etag != probe.etag:
        raise HubError(
            model_id,
            f"{probe.path}: the file answers etag {str(meta.etag)[:80]!r}, the listing says {probe.etag}",
            "the endpoint is inconsistent (a mirror out of sync?)",
        )
