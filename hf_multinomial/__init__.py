"""hf-multinomial: Multinomial Diffusion and Argmax Flows, shaped like diffusers and transformers."""

__version__ = "0.1.0"

from .data import CharVocabulary
from .models import MultinomialTransformer, MultinomialTransformerOutput, SegmentationUNet, SegmentationUNetOutput
from .pipelines import DiscreteDiffusionPipeline, DiscreteDiffusionPipelineOutput
from .schedulers import ImportanceTimestepSampler, MultinomialScheduler, MultinomialSchedulerOutput
