# Copyright 2026 The hf-multinomial Authors. Apache-2.0.
"""
Model cards: one home for filling the templates under `model_cards/` with `huggingface_hub.ModelCard` and for the
`model-index` evaluation results (bits per character or pixel, with the bound that produced them) that the Hub shows
and that `ModelCard.load(path).data.eval_results` gives back.

    result = bits_eval_result(1.93, "bpc", bound=diffusion_bound(1000, estimate=True),
                              dataset_type="text8", dataset_name="text8", dataset_split="validation")
    card = build_model_card("text_diffusion", card_data_kwargs=dict(tags=[...]),
                            template_kwargs=dict(hyperparameters=..., samples=...), eval_results=[result],
                            model_name="text8-diffusion")
    card.save(os.path.join(output_dir, "README.md"))
    update_model_card_results(os.path.join(output_dir, "README.md"), [full_elbo_result])   # after evaluation
"""

import os
from typing import Any, Dict, Iterable, List, Optional

# Package data (pyproject.toml): installed with the package, editable or not.
MODEL_CARDS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "model_cards")
LIBRARY_NAME = "hf-multinomial"
LICENSE = "apache-2.0"

METRIC_NAMES = {"bpc": "bits per character", "bpp": "bits per pixel"}
TASKS = {"bpc": ("text-generation", "Character-level text generation"),
         "bpp": ("unconditional-image-generation", "Segmentation map generation")}


def model_card_template(name: str) -> str:
    """Path of the template `hf_multinomial/model_cards/{name}.md` (package data, shipped with every install).

    Raises:
        `FileNotFoundError`: no such template (a wrong name, or a broken install), naming the path looked for.
    """
    path = os.path.join(MODEL_CARDS_DIR, f"{name}.md")
    if not os.path.isfile(path):
        available = sorted(f[:-3] for f in os.listdir(MODEL_CARDS_DIR) if f.endswith(".md")) \
            if os.path.isdir(MODEL_CARDS_DIR) else []
        raise FileNotFoundError(f"no model card template {name!r}: {path} does not exist (templates: {available})")
    return path


def diffusion_bound(num_train_timesteps: int, estimate: bool, repetitions: int = 1,
                    num_inference_steps: Optional[int] = None) -> str:
    """How a diffusion model's negative ELBO was computed, with its number of steps, for `bits_eval_result`; with
    `num_inference_steps` S, the bound of the S-step sampler."""
    T = num_train_timesteps
    if num_inference_steps is None:
        what, steps = "negative ELBO", f"T={T} steps"
    else:
        what, steps = f"negative ELBO of the {num_inference_steps}-step sampler", f"{num_inference_steps} steps (T={T})"
    if estimate:
        times = f", mean of {repetitions}" if repetitions > 1 else ""
        return f"one-t estimate of the {what}, 1 of {steps}{times}"
    return f"{what}, all {steps}"


def flow_bound(num_samples: int = 1) -> str:
    """How a flow's bound was computed, for `bits_eval_result`: the ELBO with one draw of q(v | x), or the
    importance-weighted bound with `num_samples` draws."""
    if num_samples == 1:
        return "ELBO, 1 draw of q(v|x)"
    return f"IWBO, k={num_samples} draws of q(v|x)"


def bits_eval_result(
    value: float,
    metric_type: str,
    bound: str,
    dataset_type: str,
    dataset_name: str,
    dataset_split: str,
    task_type: Optional[str] = None,
    task_name: Optional[str] = None,
    num_examples: Optional[int] = None,
):
    """
    One `model-index` entry (`huggingface_hub.EvalResult`) for a result in bits per unit.

    Args:
        value (`float`): the result, in bits per character or pixel.
        metric_type (`str`): `"bpc"` or `"bpp"`.
        bound (`str`): what was computed, including its number of steps or samples, e.g. `diffusion_bound(...)` or
            `"IWBO with k=1000 samples"`; it becomes `metric_config` and is part of `metric_name`.
        dataset_type (`str`): the dataset id, e.g. `"text8"`. dataset_name (`str`): its pretty name.
        dataset_split (`str`): e.g. `"validation"` or `"test"`.
        task_type (`str`, *optional*), task_name (`str`, *optional*): default to text generation for `"bpc"` and
            unconditional image generation for `"bpp"`.
        num_examples (`int`, *optional*): how many sequences or maps were evaluated (recorded in `dataset_args`).
    """
    from huggingface_hub import EvalResult

    if metric_type not in METRIC_NAMES:
        raise ValueError(f"metric_type must be one of {sorted(METRIC_NAMES)}, got {metric_type!r}")
    default_task, default_task_name = TASKS[metric_type]
    return EvalResult(
        task_type=task_type or default_task,
        task_name=task_name or default_task_name,
        dataset_type=dataset_type,
        dataset_name=dataset_name,
        dataset_split=dataset_split,
        dataset_args={"num_examples": int(num_examples)} if num_examples is not None else None,
        metric_type=metric_type,
        metric_name=f"{METRIC_NAMES[metric_type]} ({bound})",
        metric_config=bound,
        metric_value=round(float(value), 6),
    )


def card_results(results: Dict[str, Any], metric_type: str, data_arguments, entries: Iterable) -> List:
    """
    The `model-index` entries of a training card: one [`bits_eval_result`] per `(results key, split, bound,
    count key)` of `entries` whose value is in `results`, on the data of `data_arguments` (its `dataset_id()`).
    """
    dataset_type, dataset_name = data_arguments.dataset_id()
    return [
        bits_eval_result(results[key], metric_type, bound, dataset_type=dataset_type, dataset_name=dataset_name,
                         dataset_split=split, num_examples=results.get(count_key))
        for key, split, bound, count_key in entries if results.get(key) is not None
    ]


def build_model_card(
    template_name: str,
    card_data_kwargs: Dict[str, Any],
    template_kwargs: Dict[str, Any],
    eval_results: Iterable = (),
    model_name: Optional[str] = None,
):
    """
    A `huggingface_hub.ModelCard` rendered from `model_cards/{template_name}.md`.

    Args:
        template_name (`str`): the template's file name without `.md` (e.g. `"text_diffusion"`, `"argmax_flow"`).
        card_data_kwargs (`dict`): `ModelCardData` fields (datasets, tags, language, pipeline_tag, ...);
            `library_name` and `license` default to hf-multinomial's.
        template_kwargs (`dict`): the Jinja variables of the template (hyperparameters, samples, command, ...).
        eval_results (iterable of `EvalResult`): the `model-index` results (see [`bits_eval_result`]).
        model_name (`str`, *optional*): the model's name in `model-index` (needed with results; default "model").
    """
    from huggingface_hub import ModelCard, ModelCardData

    eval_results = list(eval_results)
    card_data = ModelCardData(
        **{"library_name": LIBRARY_NAME, "license": LICENSE, **card_data_kwargs},
        eval_results=eval_results or None,
        model_name=(model_name or "model") if eval_results else model_name,
    )
    return ModelCard.from_template(card_data, template_path=model_card_template(template_name), **template_kwargs)


def save_sample_grid(output_dir: str, samples, palette) -> Optional[str]:
    """Save a card's map samples (class ids) as the colour-coded grid `samples.png` in `output_dir`; returns the
    file name for the card's `sample_image` (None without samples)."""
    from ..pipelines.image_utils import make_grid

    if not len(samples):
        return None
    make_grid(samples, palette=palette, scale=2).save(os.path.join(output_dir, "samples.png"))
    return "samples.png"


def update_model_card_results(path: str, eval_results: Iterable, model_name: Optional[str] = None) -> List:
    """
    Add `eval_results` to the `model-index` of the card at `path` (e.g. the full-T bound computed after training),
    replacing any entry for the same task, dataset, split, metric and bound. Returns the card's results.
    """
    from huggingface_hub import ModelCard

    card = ModelCard.load(path)
    new = list(eval_results)

    def key(result):
        return (result.task_type, result.dataset_type, result.dataset_split, result.metric_type, result.metric_config)

    replaced = {key(result) for result in new}
    card.data.eval_results = [r for r in (card.data.eval_results or []) if key(r) not in replaced] + new
    card.data.model_name = card.data.model_name or model_name or "model"
    card.save(path)
    return card.data.eval_results


def training_model_card(
    template_name: str,
    arguments,
    results: Dict[str, Any],
    hyperparameter_keys: Iterable[str],
    card_data_kwargs: Dict[str, Any],
    eval_results: Iterable = (),
    remote_code: bool = True,
    **template_kwargs,
):
    """
    The model card of a training run, rendered from `model_cards/{template_name}.md`: the `accelerate launch`
    command, the hyperparameters named by `hyperparameter_keys` (the values the run used, from its
    [`~hf_multinomial.training.arguments.Arguments`]), the run's figures (`results` without its history), how to load
    the model ([`card_loading`]; `remote_code`: whether an exported copy is pushed for `trust_remote_code`), the
    `model-index` results, and any further template variables.
    """
    from .arguments import launch_command
    from .hub import card_loading

    loading = card_loading(arguments.hub_params(), remote_code=remote_code)
    template_kwargs = dict(
        command=launch_command(arguments),
        hyperparameters={key: arguments.get(key) for key in hyperparameter_keys},
        stats={k: v for k, v in results.items() if k != "history"},
        **loading,
        **template_kwargs,
    )
    return build_model_card(template_name, card_data_kwargs, template_kwargs, eval_results,
                            model_name=os.path.basename(os.path.normpath(loading["model_id"])))
