"""Push artifacts to the Hugging Face Hub and fetch them back, through the real huggingface_hub client.

Pushing only reads the local folder (``HfApi.upload_folder`` in one commit), so a failed push leaves
the artifact exactly as it was; the error says what failed and how to retry. Fetching uses
``snapshot_download`` of only the files loading reads (``LOADED_FILES``), which lays them out in
huggingface_hub's cache and works offline from it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from huggingface_hub import CommitOperationAdd, HfApi, constants, snapshot_download
from huggingface_hub.errors import (
    GatedRepoError,
    LocalEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from zoo.artifact.files import CONFIG_NAME, HUB_ID, META_NAME, WEIGHTS_NAME, pickle_refused
from zoo.artifact.manifest import MANIFEST_NAME
from zoo.artifact.modelcard import card_for_repo
from zoo.backbones.weights import first_line, hub_access, hub_unreachable
from zoo.errors import ArtifactUnavailableError, CheckpointError, ConfigError, ZooError

# Files that only a pickle loader reads (zoo never unpickles): named when a repo holds nothing else.
PICKLE_PATTERNS = ["*.bin", "*.pth", "*.pt", "*.ckpt", "*.pkl", "*.pickle", "*.tar", "*.h5", "*.msgpack"]
# The only files zoo.load fetches: what the artifact layouts read (timm's, transformers', zoo's) and the
# integrity manifest. Nothing else in a repo (pickles, ONNX, code, images) is downloaded.
LOADED_FILES = [
    WEIGHTS_NAME,
    CONFIG_NAME,
    META_NAME,
    MANIFEST_NAME,
    "preprocessor_config.json",
    "model.safetensors.index.json",
]


class PushError(ZooError, RuntimeError):
    """Uploading to the Hub failed; the local artifact is untouched."""

    exit_code = 1


def endpoint() -> str:
    return constants.ENDPOINT


def download(repo_id: str, revision: str | None = None) -> Path:
    """The local snapshot folder of ``repo_id`` at ``revision`` (from the cache when offline)."""
    where = f"{repo_id}@{revision or 'main'}"
    try:
        with hub_access() as unreachable:  # an unreachable Hub fails in seconds, not after retries
            folder = Path(snapshot_download(repo_id, revision=revision, allow_patterns=LOADED_FILES))
    except RevisionNotFoundError as exc:
        raise CheckpointError(
            f"the Hub repo {repo_id!r} has no revision {revision!r} ({endpoint()}); "
            f"check the branch, tag or commit name"
        ) from exc
    except (RepositoryNotFoundError, GatedRepoError) as exc:
        raise CheckpointError(
            f"Hub repo {repo_id!r} not found or not accessible at {endpoint()}; check the id, "
            f"or log in (`hf auth login` / HF_TOKEN) if it is private or gated"
        ) from exc
    except LocalEntryNotFoundError as exc:
        why = (
            f"{unreachable} and it is not in the local cache"
            if unreachable
            else "HF_HUB_OFFLINE=1 is set and it is not in the local cache"
            if constants.is_offline_mode()
            else f"{endpoint()} could not be reached and it is not in the local cache"
        )
        raise ArtifactUnavailableError(
            f"cannot load {where}: {why}. Fix: run once with network access, or set "
            f"HF_HOME to a cache that has it, or pass a local artifact folder."
        ) from exc
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"cannot download {where} from {endpoint()}: {first_line(exc)}") from exc
    if not (folder / "model.safetensors").is_file():
        _refuse_remote_pickles(repo_id, revision, folder)
    return folder


def _refuse_remote_pickles(repo_id: str, revision: str | None, folder: Path) -> None:
    """A repo with only pickle weights gets the same refusal (and convert hint) as a local folder."""
    if constants.is_offline_mode():
        return
    try:
        files = HfApi().list_repo_files(repo_id, revision=revision)
    except Exception:  # noqa: BLE001 - best effort: the folder check in load_dir reports a missing file anyway
        return
    pickles = [f for f in files if "/" not in f and any(Path(f).match(p) for p in PICKLE_PATTERNS)]
    if pickles:
        raise pickle_refused(folder, pickles)


def push_to_hub(
    directory: str | os.PathLike[str],
    repo_id: str,
    *,
    private: bool = False,
    revision: str | None = None,
    create_pr: bool = False,
    token: str | None = None,
    commit_message: str | None = None,
) -> str:
    """Upload the artifact in ``directory`` to ``repo_id`` (created if needed) in one commit; returns its URL.

    ``revision`` names a branch (created from main if missing): the trainer pushes checkpoints there.
    ``create_pr`` opens a pull request instead of committing to the branch.
    """
    if not HUB_ID.match(str(repo_id)):
        raise ConfigError(f"{repo_id!r} is not a Hub repo id; write it as user/name or org/name")
    folder = Path(directory).expanduser()
    missing = [n for n in (WEIGHTS_NAME, CONFIG_NAME) if not (folder / n).is_file()]
    if not folder.is_dir() or missing:
        raise CheckpointError(
            f"{folder} is not a zoo artifact (missing {', '.join(missing) or 'folder'}); "
            f"write one with zoo.save(model, '{folder}') first"
        )
    retry = (
        f"The local artifact {folder} is unchanged; retry with `zoo push {folder} {repo_id}"
        f"{' --revision ' + revision if revision else ''}{' --create-pr' if create_pr else ''}`"
    )
    if constants.is_offline_mode():
        raise PushError(f"cannot push to {repo_id!r}: HF_HUB_OFFLINE is set. Unset it and retry. {retry}.")
    unreachable = hub_unreachable()  # fail in seconds, not after the client's retries
    if unreachable:
        raise PushError(
            f"cannot push to {repo_id!r}: the Hub at {endpoint()} cannot be reached ({unreachable}). {retry}."
        )
    api = HfApi(token=token)
    step = "create the repo"
    try:
        api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        if revision and not create_pr:
            step = f"create the branch {revision!r}"
            api.create_branch(repo_id, branch=revision, exist_ok=True)
        step = "upload the files"
        info = api.create_commit(
            repo_id=repo_id,
            operations=_operations(folder, repo_id),
            revision=revision,
            create_pr=create_pr,
            commit_message=commit_message or f"Upload {folder.name} with zoo",
        )
    except Exception as exc:  # network, auth, permission, server errors: one message, with the retry
        raise PushError(
            f"push to {repo_id!r} at {api.endpoint} failed while trying to {step}: {_describe(exc)}. {retry}."
        ) from exc
    if create_pr and getattr(info, "pr_url", None):
        return str(info.pr_url)
    url = f"{api.endpoint}/{repo_id}"
    return f"{url}/tree/{revision}" if revision else url


def _operations(folder: Path, repo_id: str) -> list[Any]:
    """One add per file (hidden files and pickles skipped); README.md is re-rendered in memory with the
    repo id in its usage snippets, so the local folder is only ever read."""
    ops = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder).as_posix()
        if any(part.startswith(".") for part in rel.split("/")) or any(path.match(p) for p in PICKLE_PATTERNS):
            continue
        content: bytes | str = str(path)
        if rel == "README.md":
            content = card_for_repo(folder, repo_id) or str(path)
        ops.append(CommitOperationAdd(path_in_repo=rel, path_or_fileobj=content))
    return ops


def _describe(exc: BaseException) -> str:
    """What went wrong, in words, with the fix for the common cases."""
    status = getattr(getattr(exc, "response", None), "status_code", None)
    hints = {
        401: "authentication refused: log in with `hf auth login` or pass a valid token (HF_TOKEN)",
        403: "permission denied: the token cannot write to this namespace or repo",
        404: "the repo or branch does not exist and could not be created",
    }
    if status in hints:
        return f"HTTP {status}, {hints[status]} ({first_line(exc)})"
    if status:
        return f"HTTP {status} ({first_line(exc)})"
    if isinstance(exc, (OSError, TimeoutError)) or type(exc).__module__.split(".")[0] in (
        "httpx",
        "httpx2",
        "httpcore",
    ):
        return f"the Hub could not be reached ({first_line(exc)}); check the network or HF_ENDPOINT"
    return f"unexpected answer from the Hub ({first_line(exc)})"
