# Copyright 2026 The hf-multinomial Authors. Apache-2.0.
"""
Pushing training outputs to the Hugging Face Hub with `huggingface_hub` (`create_repo`, `upload_folder`).

Every training script takes the Hub flags of [`~hf_multinomial.training.arguments.OutputArguments`]; the functions
here read them from a plain dict (`Arguments.hub_params()`). With `--push_to_hub`, the main process uploads the saved
output folder to `--hub_model_id` at the end of training (after everything is saved locally, so a failed push loses
nothing), without its `checkpoint-*` folders. With `--push_checkpoints` as well, each checkpoint is uploaded
when it is written, to the folder `checkpoint-STEP` of the repository's main branch (the layout of the output folder
and of transformers' `hub_strategy="all_checkpoints"`): resume from one with
`huggingface_hub.snapshot_download(repo_id, allow_patterns="checkpoint-500/*")` and
`--resume_from_checkpoint <that folder>/checkpoint-500`. Checkpoints removed locally by `--checkpoints_total_limit`
stay on the Hub.

With `HF_HUB_OFFLINE=1` a push fails at once with a `RuntimeError` naming the repository and the local folder that
holds the trained model; a failed checkpoint push only logs a warning (training goes on, the final push reports).
"""

import logging
import os
from typing import Any, Callable, List, Mapping, Optional

logger = logging.getLogger(__name__)

CHECKPOINT_PATTERNS = ["checkpoint-*", "checkpoint-*/**", ".tmp-checkpoint-*", ".tmp-checkpoint-*/**"]
REMOTE_CODE_REVISION = "remote-code"  # the branch that holds `hf-multinomial export`'s remote-code copy


def hub_offline() -> bool:
    """True when offline mode is on: in `huggingface_hub.constants` (read at its import, what the client obeys) or in
    the environment now (`HF_HUB_OFFLINE`, or `TRANSFORMERS_OFFLINE` as huggingface_hub reads it)."""
    from huggingface_hub import constants

    env = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return bool(constants.HF_HUB_OFFLINE) or env.strip().upper() in ("1", "ON", "YES", "TRUE")


def _get(params: Mapping[str, Any], name: str, default=None):
    return params.get(name, default)


def hub_repo_id(params: Mapping[str, Any]) -> str:
    """`hub_model_id`, or the name of `output_dir` (the Hub then puts it in the token owner's namespace)."""
    repo_id = _get(params, "hub_model_id")
    if repo_id:
        return repo_id
    output_dir = _get(params, "output_dir")
    if not output_dir:
        raise ValueError("Pushing to the Hub needs --hub_model_id (or an --output_dir to name the repository after)")
    return os.path.basename(os.path.normpath(os.path.abspath(output_dir)))


def push_folder_to_hub(
    params: Mapping[str, Any],
    folder: str,
    commit_message: str,
    path_in_repo: Optional[str] = None,
    revision: Optional[str] = None,
    ignore_patterns: Optional[List[str]] = None,
):
    """
    Upload `folder` to the repository of `params` (creating it if needed) in one call of `upload_folder`. Call it on
    the main process only.

    Args:
        params (`dict`): reads `hub_model_id`, `hub_token`, `hub_private_repo` and
            `output_dir` (see [`hub_repo_id`]).
        folder (`str`): the local folder to upload.
        commit_message (`str`): the commit's title.
        path_in_repo (`str`, *optional*): where the folder goes in the repository (default: its root).
        revision (`str`, *optional*): the branch to commit to (created from main if missing; default: main).
        ignore_patterns (`List[str]`, *optional*): files of `folder` not to upload (globs, as in `upload_folder`).

    Returns:
        `huggingface_hub.CommitInfo` (its `repo_url.repo_id` is the repository actually written).

    Raises:
        `RuntimeError`: the Hub is offline (`HF_HUB_OFFLINE=1`) or unreachable, or refused the upload; the message
            names the repository and the local folder, which is left as it was.
    """
    from huggingface_hub import HfApi

    repo_id = hub_repo_id(params)
    where = f"the model is saved locally at {os.path.abspath(folder)}"
    if hub_offline():
        raise RuntimeError(
            f"Cannot push to the Hugging Face Hub repository {repo_id!r}: the Hub is offline (HF_HUB_OFFLINE=1); "
            f"{where}. Unset HF_HUB_OFFLINE and upload it with `hf upload {repo_id} {folder}`."
        )
    api = HfApi(token=_get(params, "hub_token"))
    try:
        repo_url = api.create_repo(repo_id, private=bool(_get(params, "hub_private_repo", False)), exist_ok=True)
        if revision is not None:
            api.create_branch(repo_url.repo_id, branch=revision, exist_ok=True)
        return api.upload_folder(
            repo_id=repo_url.repo_id, folder_path=folder, path_in_repo=path_in_repo, revision=revision,
            commit_message=commit_message, ignore_patterns=ignore_patterns,
        )
    except Exception as error:
        raise RuntimeError(
            f"Pushing {folder} to the Hugging Face Hub repository {repo_id!r} failed ({type(error).__name__}: "
            f"{error}); {where}."
        ) from error


def card_loading(params: Mapping[str, Any], remote_code: bool = True) -> dict:
    """The template variables of a model card's "How to load" section: `model_id`, where to load from (the Hub
    repository with `--push_to_hub`, else the output folder), and `remote_code_revision`, the branch holding the
    remote-code export when pushing a diffusion pipeline (`remote_code`), else None."""
    if _get(params, "push_to_hub"):
        return {"model_id": hub_repo_id(params), "remote_code_revision": REMOTE_CODE_REVISION if remote_code else None}
    return {"model_id": params["output_dir"], "remote_code_revision": None}


def warn_if_offline(params: Mapping[str, Any]) -> None:
    """At the start of a run: say that the final push will fail while the Hub is offline (the run still saves)."""
    if _get(params, "push_to_hub") and hub_offline():
        logger.warning("--push_to_hub is set but HF_HUB_OFFLINE=1: the model will be saved to %s and the push at "
                       "the end will fail.", params["output_dir"])


def checkpoint_pusher(params: Mapping[str, Any], is_main_process: bool) -> Optional[Callable[[str, int], None]]:
    """
    The `on_checkpoint(folder, global_step)` callback of `train_loop` that uploads each checkpoint to
    `checkpoint-STEP` (see the module docstring), or None without `--push_to_hub --push_checkpoints` or off the main
    process. A failed upload logs a warning and training goes on.
    """
    if not (_get(params, "push_to_hub") and _get(params, "push_checkpoints") and is_main_process):
        return None

    def push(folder: str, global_step: int) -> None:
        try:
            push_folder_to_hub(params, folder, f"Checkpoint at step {global_step}", path_in_repo=os.path.basename(folder))
        except RuntimeError as error:
            logger.warning("Checkpoint %s was not pushed: %s", folder, error)

    return push


def push_training_output(params: Mapping[str, Any], global_step: int, export_remote_code: bool = False) -> List:
    """
    The final push of a run with `--push_to_hub` (main process only): `params["output_dir"]` without its checkpoints to
    the main branch, and with `export_remote_code` (diffusion pipelines) a copy made loadable without hf-multinomial
    by [`hf_multinomial.export.export_pipeline`] to the branch `remote-code`. Returns the `CommitInfo`s.
    """
    import tempfile

    commits = [push_folder_to_hub(params, params["output_dir"], f"Training done: step {global_step}",
                                  ignore_patterns=CHECKPOINT_PATTERNS)]
    if export_remote_code:
        from ..export import export_pipeline

        with tempfile.TemporaryDirectory() as tmp:
            exported = export_pipeline(params["output_dir"], os.path.join(tmp, "exported"))
            commits.append(push_folder_to_hub(
                {**params, "hub_model_id": commits[0].repo_url.repo_id}, exported,
                f"Remote code for trust_remote_code: step {global_step}", revision=REMOTE_CODE_REVISION,
            ))
    return commits
