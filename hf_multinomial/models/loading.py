# Copyright 2026 The hf-multinomial Authors. Apache-2.0.
"""Loading the denoisers' weights: refuse what diffusers' `ModelMixin.from_pretrained` loads silently or reports
unclearly, naming the file."""

import os

import torch
from diffusers.utils import SAFE_WEIGHTS_INDEX_NAME, SAFETENSORS_WEIGHTS_NAME, WEIGHTS_NAME
from diffusers.utils.hub_utils import _add_variant, _get_model_file
from safetensors import SafetensorError, safe_open

_HUB_KWARGS = ("cache_dir", "force_download", "proxies", "local_files_only", "token", "revision", "subfolder")


class CheckedLoadingMixin:
    """
    `from_pretrained` for the denoisers (listed before `ModelMixin` among the bases). Before diffusers loads the
    weights, it reads the safetensors header and compares it with the model the config builds; after, it checks the
    loaded tensors. Each problem is an error that names the file:

    - no weights file: `FileNotFoundError` naming the missing `.safetensors` path (diffusers reports a missing
      `.bin` after "Defaulting to unsafe serialization"). A `.bin` file is still loaded when it is there and
      `use_safetensors` is not set, as in diffusers.
    - a file safetensors cannot read (truncated, overwritten header): `OSError` with safetensors' reason.
    - tensors whose names or shapes differ from those of the config's model, which diffusers would initialise at
      random (`low_cpu_mem_usage=False`, `ignore_mismatched_sizes=True`): `ValueError` naming the layer and both
      shapes, whatever the flags.
    - NaN or inf in a loaded parameter or buffer: `ValueError` naming it.

    Sharded checkpoints and `.bin` files skip the header comparison (diffusers checks their keys); the loaded
    tensors are checked all the same.
    """

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs):
        hub_kwargs = {key: kwargs[key] for key in _HUB_KWARGS if kwargs.get(key) is not None}
        # The config first: for a missing folder or config.json, diffusers' own error is the clear one.
        config, config_file = _load_config(cls, pretrained_model_name_or_path, hub_kwargs)
        weights_file = _resolve_weights(pretrained_model_name_or_path, hub_kwargs, kwargs)
        if weights_file is not None and weights_file.endswith(".safetensors"):
            _check_header(cls, config, config_file, weights_file)
        loaded = super().from_pretrained(pretrained_model_name_or_path, **kwargs)
        model = loaded[0] if kwargs.get("output_loading_info") else loaded
        _check_finite(model, weights_file or str(pretrained_model_name_or_path))
        return loaded


def _load_config(cls, path, hub_kwargs):
    config = cls.load_config(path, **hub_kwargs)
    subfolder = hub_kwargs.get("subfolder") or ""
    return config, os.path.join(str(path), subfolder, cls.config_name)


def _weights_location(path, hub_kwargs, name: str) -> str:
    return os.path.join(str(path), hub_kwargs.get("subfolder") or "", name)


def _find(path, hub_kwargs, name: str):
    """The resolved file `name` of the checkpoint (local or from the Hub), or None where there is none."""
    try:
        return _get_model_file(path, weights_name=name, **hub_kwargs)
    except OSError:  # diffusers' EnvironmentError for a file that is not there
        return None


def _resolve_weights(path, hub_kwargs, kwargs):
    """The weights file diffusers will read (None for a sharded checkpoint or with `use_safetensors=False`)."""
    use_safetensors = kwargs.get("use_safetensors")
    if use_safetensors is False or kwargs.get("use_flashpack"):
        return None
    variant = kwargs.get("variant")
    safetensors_name = _add_variant(SAFETENSORS_WEIGHTS_NAME, variant)
    found = _find(path, hub_kwargs, safetensors_name)
    if found is not None:
        return str(found)
    if _find(path, hub_kwargs, _add_variant(SAFE_WEIGHTS_INDEX_NAME, variant)) is not None:
        return None
    if use_safetensors is None:
        legacy = _find(path, hub_kwargs, _add_variant(WEIGHTS_NAME, variant))
        if legacy is not None:
            return str(legacy)
    raise FileNotFoundError(
        f"No weights file {_weights_location(path, hub_kwargs, safetensors_name)}"
        + (f" (nor {_add_variant(WEIGHTS_NAME, variant)})" if use_safetensors is None else "")
    )


def _check_header(cls, config, config_file: str, weights_file: str) -> None:
    """The names and shapes in the safetensors header must be those of the model the config builds."""
    try:
        with safe_open(weights_file, framework="pt") as f:
            found = {key: tuple(f.get_slice(key).get_shape()) for key in f.keys()}
    except (SafetensorError, OSError) as error:
        raise OSError(f"{weights_file} is not a readable safetensors file (truncated or corrupt?): {error}") from error
    with torch.device("meta"):
        reference = cls.from_config(config)
    expected = {key: tuple(tensor.shape) for key, tensor in reference.state_dict().items()}

    for key in expected:  # in the model's order: the first layer that differs
        if key in found and expected[key] != found[key]:
            raise ValueError(
                f"{weights_file}: {key} has shape {found[key]}, but the config {config_file} builds it with shape "
                f"{expected[key]}; the config does not describe these weights"
            )
    missing = sorted(expected.keys() - found.keys())
    if missing:
        raise ValueError(
            f"{weights_file} has no weights for {len(missing)} tensors of the model the config {config_file} builds "
            f"(they would be initialised at random): {', '.join(missing[:5])}{', ...' if len(missing) > 5 else ''}"
        )
    unexpected = sorted(found.keys() - expected.keys())
    if unexpected:
        raise ValueError(
            f"{weights_file} holds {len(unexpected)} tensors that the model the config {config_file} builds has no "
            f"place for: {', '.join(unexpected[:5])}{', ...' if len(unexpected) > 5 else ''}"
        )


def _check_finite(model: torch.nn.Module, source: str) -> None:
    """Every floating-point parameter and buffer of the loaded model must be finite (one check each, at load time)."""
    for kind, named in (("parameter", model.named_parameters()), ("buffer", model.named_buffers())):
        for name, tensor in named:
            if tensor.is_floating_point() and tensor.device.type != "meta" and not torch.isfinite(tensor).all():
                count = int((~torch.isfinite(tensor)).sum())
                raise ValueError(
                    f"The {kind} {name} loaded from {source} holds {count} non-finite values (NaN or inf) of "
                    f"{tensor.numel()}: the weights file is corrupt"
                )
