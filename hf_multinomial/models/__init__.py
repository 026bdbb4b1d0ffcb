from .transformer_multinomial import MultinomialTransformer, MultinomialTransformerOutput

__all__ = ["MultinomialTransformer", "MultinomialTransformerOutput"]
