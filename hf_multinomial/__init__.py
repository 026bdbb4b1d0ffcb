"""hf-multinomial: Multinomial Diffusion and Argmax Flows, shaped like diffusers and transformers."""

__version__ = "0.2.0"

from .data import CharVocabulary
from .flows import ArgmaxFlowConfig, ArgmaxFlowModel, SegmentationFlowConfig, SegmentationFlowModel
from .inference import InferenceDenoiser, cpu_features, prepare_for_inference, resolve_precision
from .models import MultinomialTransformer, MultinomialTransformerOutput, SegmentationUNet, SegmentationUNetOutput
from .pipelines import DiscreteDiffusionPipeline, DiscreteDiffusionPipelineOutput
from .schedulers import ImportanceTimestepSampler, MultinomialScheduler, MultinomialSchedulerOutput


def _register_auto_classes():
    """`AutoConfig` / `AutoModel` resolve the flows' `model_type` once the package is imported; `auto_map` (written by
    `save_pretrained`) makes a saved folder load with `trust_remote_code=True` where the package is not installed."""
    from transformers import AutoConfig, AutoModel

    for config_class, model_class in (
        (ArgmaxFlowConfig, ArgmaxFlowModel), (SegmentationFlowConfig, SegmentationFlowModel)
    ):
        AutoConfig.register(config_class.model_type, config_class, exist_ok=True)
        AutoModel.register(config_class, model_class, exist_ok=True)
        config_class.register_for_auto_class()
        model_class.register_for_auto_class("AutoModel")


_register_auto_classes()
