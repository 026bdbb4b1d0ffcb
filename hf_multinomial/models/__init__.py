from .transformer_multinomial import MultinomialTransformer, MultinomialTransformerOutput
from .unet_segmentation import SegmentationUNet, SegmentationUNetOutput

__all__ = ["MultinomialTransformer", "MultinomialTransformerOutput", "SegmentationUNet", "SegmentationUNetOutput"]
