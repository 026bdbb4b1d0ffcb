# Copyright 2026 The hf-multinomial Authors. Apache-2.0.
"""
Entry point of a multinomial diffusion pipeline exported by `hf-multinomial export` for `trust_remote_code`.

It needs torch, numpy, diffusers and transformers, not hf-multinomial:

    import torch
    from diffusers import DiffusionPipeline

    pipe = DiffusionPipeline.from_pretrained("path/to/exported/folder", trust_remote_code=True)
    # a model pushed by an hf-multinomial training script: its branch "remote-code" holds this layout
    pipe = DiffusionPipeline.from_pretrained("user/name", revision="remote-code", trust_remote_code=True)
    samples = pipe(batch_size=4, generator=torch.Generator().manual_seed(0)).samples

diffusers reads `"_class_name": ["pipeline", "DiscreteDiffusionPipeline"]` in `model_index.json`, imports this file
and takes the class from it. Each component's class comes from the module in the component's own folder, named in
`model_index.json` as `[module, class]` (e.g. `"scheduler": ["scheduling_multinomial", "MultinomialScheduler"]` for
`scheduler/scheduling_multinomial.py`). Every module of the folder is generated from the hf-multinomial source by
the export; this file is the template the export copies (`hf_multinomial/pipelines/remote_code/pipeline.py`,
shipped with the hf-multinomial package).
"""

from .pipeline_discrete_diffusion import DiscreteDiffusionPipeline, DiscreteDiffusionPipelineOutput  # noqa: F401
