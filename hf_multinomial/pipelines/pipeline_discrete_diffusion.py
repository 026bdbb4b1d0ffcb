# Copyright 2026 The hf-multinomial Authors. Apache-2.0.
"""Sampling from a multinomial diffusion model: a denoiser composed with the MultinomialScheduler."""

from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from diffusers import DiffusionPipeline
from diffusers.callbacks import MultiPipelineCallbacks, PipelineCallback
from diffusers.utils import BaseOutput
from transformers import PreTrainedTokenizerBase

# diffusers resolves a pipeline's components only from modules that are already imported and that import
# ModelMixin / SchedulerMixin by name: importing the component modules here is what makes from_pretrained work.
from ..data.vocabulary import CharVocabulary  # noqa: F401
from ..inference import InferenceDenoiser, prepare_for_inference
from ..models.transformer_multinomial import MultinomialTransformer  # noqa: F401
from ..models.unet_segmentation import SegmentationUNet  # noqa: F401
from ..schedulers.scheduling_multinomial import MultinomialScheduler  # noqa: F401
from .image_utils import colorize, default_palette

# The logit of a class that must never be sampled (a tokenizer's special tokens): exp(-1e4) is 0 in float32, and the
# value stays finite through the scheduler's log-space sums.
SUPPRESSED_LOGIT = -1e4


def _check_size(name: str, value, minimum: int = 1) -> None:
    """A size argument must be an integer >= `minimum` (not a bool, not a float such as 2.0 or 2.5)."""
    if not isinstance(value, (int, np.integer)) or isinstance(value, (bool, np.bool_)) or value < minimum:
        kind = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ValueError(f"{name} must be {kind}, got {value!r}")


OUTPUT_TYPES = ("text", "pil", "pt", "np")


@dataclass
class DiscreteDiffusionPipelineOutput(BaseOutput):
    """
    Output of [`DiscreteDiffusionPipeline`].

    Args:
        samples (`List[str]`, `List[PIL.Image.Image]`, `torch.LongTensor` or `np.ndarray`):
            The generated samples: strings for `output_type="text"`, colour-coded maps for `output_type="pil"`, class
            ids of shape `(batch_size, ...)` for `"pt"` and `"np"`.
        chain (`list`, *optional*):
            With `return_chain=True`, the states from the prior draw x_T to the final sample, one entry per step
            (`num_inference_steps + 1` entries), each in the format of `samples`.
    """

    samples: Union[List[str], torch.LongTensor, np.ndarray]
    chain: Optional[list] = None


class DiscreteDiffusionPipeline(DiffusionPipeline):
    """
    Pipeline for sampling categorical data (text, segmentation maps) with multinomial diffusion.

    Args:
        denoiser ([`ModelMixin`]):
            Maps class ids `(B, ...)` and timesteps `(B,)` to logits over x_0 `(B, K, ...)`, e.g.
            [`MultinomialTransformer`].
        scheduler ([`MultinomialScheduler`]):
            The diffusion process the denoiser was trained with.
        vocabulary ([`CharVocabulary`] or any transformers tokenizer, *optional*):
            Turns class ids into text for `output_type="text"` and text into ids for `prefix`; its length is the
            number of classes. The ids of its special tokens (`all_special_ids`: padding, end of text, ...) are
            never sampled: their predicted probability of being x_0 is set to zero at every step.
        palette (`List[Tuple[int, int, int]]`, *optional*):
            One RGB colour per class for `output_type="pil"` (e.g. the Cityscapes category colours); stored in
            `model_index.json`. Without it, a fixed palette of distinct colours is used.

    Raises:
        ValueError: At construction (and so in `from_pretrained`), if the components disagree: the denoiser's
            `num_classes` or `num_train_timesteps` (its config stores the T it was trained with) differs from the
            scheduler's, or the vocabulary's size from `num_classes`.
    """

    model_cpu_offload_seq = "denoiser"
    _optional_components = ["vocabulary"]
    _callback_tensor_inputs = ["sample"]

    def __init__(
        self,
        denoiser,
        scheduler: MultinomialScheduler,
        vocabulary: Optional[PreTrainedTokenizerBase] = None,
        palette: Optional[Sequence[Sequence[int]]] = None,
    ):
        super().__init__()
        num_classes = scheduler.config.num_classes
        denoiser_config = getattr(denoiser, "config", None) or {}
        for key in ("num_classes", "num_train_timesteps"):
            if key in denoiser_config and denoiser_config[key] != scheduler.config[key]:
                raise ValueError(
                    f"The denoiser was built for {key}={denoiser_config[key]} but the scheduler has "
                    f"{key}={scheduler.config[key]}: they must match (a denoiser trained with one diffusion process "
                    f"does not sample another)"
                )
        if vocabulary is not None and len(vocabulary) != num_classes:
            raise ValueError(f"The vocabulary has {len(vocabulary)} symbols but the scheduler has num_classes={num_classes}")
        if palette is not None:
            palette = [tuple(int(c) for c in colour) for colour in palette]
            if len(palette) != num_classes or any(len(c) != 3 or not all(0 <= v <= 255 for v in c) for c in palette):
                raise ValueError(f"palette must hold {num_classes} RGB colours with values in [0, 255], got {palette}")
        self.register_modules(denoiser=denoiser, scheduler=scheduler, vocabulary=vocabulary)
        self.register_to_config(palette=palette)
        self._inference_denoiser: Optional[InferenceDenoiser] = None

    def set_inference_precision(self, precision: str = "fp32", compile: bool = False) -> str:
        """
        Run the denoiser at `precision` when sampling, optionally compiled: "fp32" (the default), "bf16" (autocast),
        "int8" (dynamic quantization of the linear layers, CPU only) or "auto" (the fastest known for this device and
        CPU: see [`~hf_multinomial.inference.resolve_precision`]). The saved weights are untouched: `save_pretrained`
        writes the fp32 model, and int8 quantizes a copy. Call it after `to(device)`; `set_inference_precision()`
        restores plain fp32.

        Returns:
            `str`: the precision used ("auto" resolved).

        Raises:
            ValueError: For an unknown precision, a `compile` that is not a bool, or int8 off the CPU.
        """
        if precision == "fp32" and compile is False:
            self._inference_denoiser = None
            return "fp32"
        self._inference_denoiser = prepare_for_inference(self.denoiser, precision, compile=compile)
        return self._inference_denoiser.precision

    def _sampling_denoiser(self):
        """The module that denoises when sampling: the denoiser, or its `set_inference_precision` wrapper."""
        wrapper = self._inference_denoiser
        if wrapper is None:
            return self.denoiser
        if wrapper.device != self.device:
            raise ValueError(f"The denoiser prepared by set_inference_precision({wrapper.precision!r}) is on "
                             f"{wrapper.device} but the pipeline is on {self.device}: call set_inference_precision "
                             f"again after to()")
        return wrapper

    @classmethod
    def download(cls, pretrained_model_name: str, **kwargs) -> str:
        """
        Download a pipeline saved by hf-multinomial from the Hub and return its local folder: `model_index.json`, the
        model card and the folders of the components it names (not `checkpoint-*` folders or other files).

        diffusers' own `download` accepts components from diffusers, transformers or remote code only, and refuses a
        `model_index.json` that names an installed library such as `hf_multinomial.models.transformer_multinomial`
        (huggingface/diffusers#5728). Folders exported for remote code (`hf-multinomial export`) still go through it.
        """
        import json

        from huggingface_hub import hf_hub_download, snapshot_download

        hub_kwargs = {k: kwargs.get(k) for k in ("cache_dir", "revision", "token", "local_files_only", "force_download")}
        with open(hf_hub_download(pretrained_model_name, cls.config_name, **hub_kwargs), encoding="utf-8") as f:
            index = json.load(f)
        if isinstance(index.get("_class_name"), list):
            return super().download(pretrained_model_name, **kwargs)
        folders = [k for k, v in index.items() if not k.startswith("_") and isinstance(v, list) and v[0] is not None]
        patterns = [cls.config_name, "README.md", *(f"{folder}/*" for folder in folders)]
        return snapshot_download(pretrained_model_name, allow_patterns=patterns, **hub_kwargs)

    def _sample_shape(self, seq_len: Optional[int], height: Optional[int], width: Optional[int]) -> Tuple[int, ...]:
        """The shape of one sample: `(seq_len,)` for sequence denoisers, `(height, width)` for image denoisers."""
        config = self.denoiser.config
        for name, value in (("seq_len", seq_len), ("height", height), ("width", width)):
            if value is not None:
                _check_size(name, value)
        if "max_seq_len" in config:
            if height is not None or width is not None:
                raise ValueError("This pipeline's denoiser takes sequences: pass seq_len, not height/width")
            seq_len = config.max_seq_len if seq_len is None else int(seq_len)
            if seq_len > config.max_seq_len:
                raise ValueError(f"seq_len={seq_len} exceeds the denoiser's max_seq_len={config.max_seq_len}")
            return (seq_len,)
        if "sample_size" in config:
            if seq_len is not None:
                raise ValueError("This pipeline's denoiser takes images: pass height/width, not seq_len")
            size = config.sample_size
            default_height, default_width = (size, size) if isinstance(size, int) else size
            return (default_height if height is None else int(height), default_width if width is None else int(width))
        raise ValueError("The denoiser's config names neither max_seq_len nor sample_size")

    def _known_positions(self, prefix, known_ids, known_mask, batch_size, shape):
        """The log one-hot x_0 `(B, K, ...)` and the mask `(B, ...)` of the positions fixed by the caller, or
        `(None, None)`."""
        if prefix is not None and known_ids is not None:
            raise ValueError("Pass either `prefix` or `known_ids`/`known_mask`, not both")
        if prefix is not None:
            if self.vocabulary is None:
                raise ValueError("`prefix` needs a pipeline with a vocabulary")
            prefixes = [prefix] * batch_size if isinstance(prefix, str) else list(prefix)
            if len(prefixes) != batch_size:
                raise ValueError(f"Got {len(prefixes)} prefixes for batch_size={batch_size}")
            known_ids = torch.zeros((batch_size, *shape), dtype=torch.long)
            known_mask = torch.zeros((batch_size, *shape), dtype=torch.bool)
            for i, text in enumerate(prefixes):
                ids = self.vocabulary.encode(text, add_special_tokens=False)
                if len(ids) > shape[0]:
                    raise ValueError(f"prefix {i} has {len(ids)} tokens, longer than seq_len={shape[0]}")
                known_ids[i, : len(ids)] = torch.tensor(ids, dtype=torch.long)
                known_mask[i, : len(ids)] = True
        if known_ids is None:
            if known_mask is not None:
                raise ValueError("`known_mask` needs `known_ids`")
            return None, None
        known_ids = torch.as_tensor(known_ids)
        known_mask = torch.ones_like(known_ids, dtype=torch.bool) if known_mask is None else torch.as_tensor(known_mask)
        if known_mask.dtype != torch.bool:
            raise ValueError(f"known_mask must be a bool tensor (True where the id is known), got dtype {known_mask.dtype}")
        expected = (batch_size, *shape)
        if tuple(known_ids.shape) != expected or tuple(known_mask.shape) != expected:
            raise ValueError(
                f"known_ids and known_mask must have shape {expected}, got {tuple(known_ids.shape)} and {tuple(known_mask.shape)}"
            )
        known_log_x_start = self.scheduler.index_to_log_onehot(known_ids.to(self.device))  # checks the ids
        return known_log_x_start, known_mask.bool().to(self.device)

    def _check_output_type(self, output_type: str, shape: Tuple[int, ...]) -> None:
        if output_type not in OUTPUT_TYPES:
            raise ValueError(f"Unknown output_type {output_type!r}; use 'text', 'pil', 'pt' or 'np'")
        if output_type == "text" and self.vocabulary is None:
            raise ValueError("output_type='text' needs a pipeline with a vocabulary")
        if output_type == "pil" and len(shape) != 2:
            raise ValueError(f"output_type='pil' needs maps of shape (batch, height, width), got samples of shape {shape}")

    def _format(self, sample: torch.LongTensor, output_type: str):
        if output_type == "pt":
            return sample.cpu()
        if output_type == "np":
            return sample.cpu().numpy()
        if output_type == "text":
            if self.vocabulary is None:
                raise ValueError("output_type='text' needs a pipeline with a vocabulary")
            return self.vocabulary.batch_decode(sample.cpu().tolist())
        if output_type == "pil":
            if sample.dim() != 3:
                raise ValueError(f"output_type='pil' needs maps of shape (batch, height, width), got {tuple(sample.shape)}")
            from PIL import Image

            palette = self.config.palette or default_palette(self.scheduler.config.num_classes)
            return [Image.fromarray(rgb) for rgb in colorize(sample.cpu().numpy(), palette)]
        raise ValueError(f"Unknown output_type {output_type!r}; use 'text', 'pil', 'pt' or 'np'")

    @torch.no_grad()
    def __call__(
        self,
        batch_size: int = 1,
        seq_len: Optional[int] = None,
        height: Optional[int] = None,
        width: Optional[int] = None,
        num_inference_steps: Optional[int] = None,
        generator: Optional[torch.Generator] = None,
        prefix: Optional[Union[str, List[str]]] = None,
        known_ids: Optional[torch.LongTensor] = None,
        known_mask: Optional[torch.BoolTensor] = None,
        output_type: Optional[str] = None,
        return_dict: bool = True,
        return_chain: bool = False,
        callback_on_step_end: Optional[Callable[["DiscreteDiffusionPipeline", int, int, Dict], Dict]] = None,
        callback_on_step_end_tensor_inputs: List[str] = ["sample"],
        temperature: float = 1.0,
        corrector_steps: int = 0,
        corrector_positions: int = 1,
        corrector_selection_tau: float = 1.0,
    ) -> Union[DiscreteDiffusionPipelineOutput, tuple]:
        """
        Generate samples.

        Args:
            batch_size (`int`, defaults to 1): how many samples to draw.
            seq_len (`int`, *optional*): their length, for sequence denoisers; defaults to the denoiser's `max_seq_len`.
            height (`int`, *optional*), width (`int`, *optional*): the map size, for image denoisers; default to the
                denoiser's `sample_size`.
            num_inference_steps (`int`, *optional*): denoiser calls, from 1 to the scheduler's
                `num_train_timesteps` (the default). Fewer steps skip timesteps exactly (x_0-parametrisation).
            generator (`torch.Generator`, *optional*): makes sampling deterministic.
            prefix (`str` or `List[str]`, *optional*): text every sample (or each sample) starts with.
            known_ids (`torch.LongTensor` of shape `(batch_size, seq_len)`, *optional*): class ids to keep fixed
                where `known_mask` is True (all positions when `known_mask` is omitted); the rest is generated
                conditioned on them.
            known_mask (`torch.BoolTensor` of shape `(batch_size, seq_len)`, *optional*): which ids are known.
            output_type (`str`, *optional*): `"text"` (strings), `"pil"` (colour-coded maps), `"pt"`
                (`torch.LongTensor` of class ids) or `"np"`; defaults to `"text"` with a vocabulary, `"pil"` for maps
                and `"pt"` otherwise.
            return_dict (`bool`, defaults to `True`): return a [`DiscreteDiffusionPipelineOutput`] or a tuple.
            return_chain (`bool`, defaults to `False`): also return every intermediate state (the paper's Figure 7).
            callback_on_step_end (`Callable`, `PipelineCallback` or `MultiPipelineCallbacks`, *optional*): called
                as `callback(pipe, i, t, callback_kwargs)` after each step with the tensors named in
                `callback_on_step_end_tensor_inputs`; it must return a dict (as in diffusers), whose entries replace
                those tensors (e.g. `{"sample": ...}`; return `callback_kwargs` or `{}` to change nothing).
            callback_on_step_end_tensor_inputs (`List[str]`): the tensors passed to the callback.
            temperature (`float`, defaults to 1.0): divides the denoiser's logits before each ancestral step (below 1
                sharpens the prediction of x_0). Only 1 samples the model whose bound `hf-multinomial bpc` reports.
            corrector_steps (`int`, defaults to 0): corrector moves after each ancestral step (none after the last),
                each one more denoiser call: the least confident positions are redrawn from their one-coordinate
                conditionals at that timestep ([`MultinomialScheduler.step_correct`]). 0 is the plain ancestral
                sampler.
            corrector_positions (`int`, defaults to 1): positions redrawn per move. 1 is an exact Metropolis-within-
                Gibbs move (it leaves the marginal at that timestep invariant when the denoiser is exact); more
                positions correct more per call but are a heuristic, exact only for data with independent positions.
                The moves aim at the untempered model: `temperature` applies to the ancestral steps only.
            corrector_selection_tau (`float`, defaults to 1.0): how strongly a move prefers the least confident
                positions (the temperature of its choice; large values choose uniformly).

        Returns:
            [`DiscreteDiffusionPipelineOutput`] or `tuple` `(samples, chain)`.

        Raises:
            ValueError: For a size that is not a positive integer (`batch_size`, `seq_len`, `height`, `width`: 0 is
                refused, not read as the default), `num_inference_steps` outside `[1, T]`, an unknown `output_type`,
                known positions of the wrong shape or ids, or non-finite denoiser logits (from `scheduler.step`).
            TypeError: If `callback_on_step_end` does not return a dict, or returns a `sample` that is not an integer
                tensor of the sample's shape.
        """
        _check_size("batch_size", batch_size)
        _check_size("corrector_steps", corrector_steps, minimum=0)
        _check_size("corrector_positions", corrector_positions)
        self.scheduler.check_sampler_options(temperature=temperature, selection_tau=corrector_selection_tau)
        if isinstance(callback_on_step_end, (PipelineCallback, MultiPipelineCallbacks)):
            callback_on_step_end_tensor_inputs = callback_on_step_end.tensor_inputs
        if callback_on_step_end is not None and not callable(callback_on_step_end):
            raise TypeError(f"callback_on_step_end must be callable, got {callback_on_step_end!r}")
        for name in callback_on_step_end_tensor_inputs:
            if name not in self._callback_tensor_inputs:
                raise ValueError(f"callback_on_step_end_tensor_inputs has {name!r}; allowed: {self._callback_tensor_inputs}")
        shape = self._sample_shape(seq_len, height, width)
        if corrector_steps and corrector_positions > int(np.prod(shape)):
            raise ValueError(f"corrector_positions={corrector_positions} exceeds the {int(np.prod(shape))} positions "
                             f"of a sample of shape {shape}")
        if output_type is None:
            output_type = "text" if self.vocabulary is not None else ("pil" if len(shape) == 2 else "pt")
        self._check_output_type(output_type, shape)
        # A known position's prediction of x_0 is certain: its posterior is then the forward process' own, and the
        # denoiser sees it noised exactly as in training.
        known_logits, known_mask = self._known_positions(prefix, known_ids, known_mask, batch_size, shape)
        special_ids = sorted(set(getattr(self.vocabulary, "all_special_ids", None) or []))

        if num_inference_steps is None:
            num_inference_steps = self.scheduler.config.num_train_timesteps
        self.scheduler.set_timesteps(num_inference_steps, device=self.device)  # checks the number
        sample = self.scheduler.sample_prior((batch_size, *shape), generator=generator, device=self.device)
        chain = [sample] if return_chain else None

        denoiser = self._sampling_denoiser()

        def denoise(ids, t):
            timesteps = torch.full((batch_size,), t, dtype=torch.long, device=self.device)
            logits = denoiser(ids, timesteps).sample.float()
            if special_ids:
                logits[:, special_ids] = SUPPRESSED_LOGIT
            if known_mask is not None:
                logits = torch.where(known_mask.unsqueeze(1), known_logits, logits)
            return logits

        corrector = dict(selection_tau=corrector_selection_tau, resample_mask=None if known_mask is None else ~known_mask)
        # One host copy of the timesteps for the whole loop, not one per step.
        steps = self.scheduler.timesteps.tolist()
        logits = None  # the denoiser's output at the current sample, when the corrector has computed it already
        for i, t in enumerate(self.progress_bar(steps)):
            if logits is None:
                logits = denoise(sample, t)
            sample = self.scheduler.step(logits, t, sample, generator=generator, temperature=temperature).prev_sample
            logits = None
            prev_t = self.scheduler.previous_timestep(t)
            if corrector_steps and prev_t >= 0:
                logits = denoise(sample, prev_t)
                for _ in range(corrector_steps):
                    move = self.scheduler.step_correct(logits, prev_t, sample, generator=generator,
                                                       num_positions=corrector_positions, **corrector)
                    proposal_logits = denoise(move.proposal, prev_t)
                    accepted = self.scheduler.accept_correction(move, proposal_logits, prev_t, generator=generator,
                                                                **corrector)
                    sample = torch.where(accepted.view(-1, *[1] * len(shape)), move.proposal, sample)
                    logits = torch.where(accepted.view(-1, *[1] * (len(shape) + 1)), proposal_logits, logits)

            if callback_on_step_end is not None:
                logits = None  # the callback may change the sample, also in place
                step_tensors = {"sample": sample}
                callback_kwargs = {name: step_tensors[name] for name in callback_on_step_end_tensor_inputs}
                callback_outputs = callback_on_step_end(self, i, t, callback_kwargs)
                if not isinstance(callback_outputs, dict):
                    raise TypeError(
                        f"callback_on_step_end must return a dict of the tensors it replaces (return callback_kwargs "
                        f"or {{}} to change nothing), got {type(callback_outputs).__name__} {callback_outputs!r} at "
                        f"step {i} (t={t})"
                    )
                new_sample = callback_outputs.pop("sample", sample)
                if new_sample is not sample:
                    if not torch.is_tensor(new_sample) or new_sample.shape != sample.shape or torch.is_floating_point(
                        new_sample
                    ) or new_sample.dtype == torch.bool:
                        got = f"{new_sample.dtype} tensor of shape {tuple(new_sample.shape)}" if torch.is_tensor(
                            new_sample) else repr(new_sample)
                        raise TypeError(
                            f"callback_on_step_end returned a 'sample' that is not an integer tensor of shape "
                            f"{tuple(sample.shape)}: got {got} at step {i} (t={t})"
                        )
                    sample = new_sample.to(self.device)
            if return_chain:
                chain.append(sample)

        samples = self._format(sample, output_type)
        chain = [self._format(state, output_type) for state in chain] if return_chain else None
        self.maybe_free_model_hooks()
        if not return_dict:
            return (samples, chain)
        return DiscreteDiffusionPipelineOutput(samples=samples, chain=chain)
