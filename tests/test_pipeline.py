"""DiscreteDiffusionPipeline: save/load round trips, outputs, chains, conditional generation."""

import math
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from diffusers import ModelMixin
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.utils import BaseOutput

from hf_multinomial import DiscreteDiffusionPipeline, MultinomialScheduler, MultinomialTransformer
from hf_multinomial.data import CharVocabulary

TEXT8 = set(" abcdefghijklmnopqrstuvwxyz")


def tiny_pipeline(seq_len=32, T=20, seed=0):
    torch.manual_seed(seed)
    denoiser = MultinomialTransformer(
        num_classes=27, max_seq_len=seq_len, hidden_size=32, num_layers=1, num_heads=2, num_local_heads=1, local_window=8,
        num_train_timesteps=T,
    )
    return DiscreteDiffusionPipeline(
        denoiser=denoiser.eval(), scheduler=MultinomialScheduler(num_classes=27, num_train_timesteps=T), vocabulary=CharVocabulary.text8()
    )


def test_save_load_round_trip_same_samples(tmp_path):
    pipe = tiny_pipeline()
    pipe.set_progress_bar_config(disable=True)
    expected = pipe(batch_size=3, generator=torch.Generator().manual_seed(0)).samples
    pipe.save_pretrained(tmp_path)
    for name in ("model_index.json", "denoiser/config.json", "scheduler/scheduler_config.json", "vocabulary/vocabulary.json"):
        assert (tmp_path / name).exists(), name
    loaded = DiscreteDiffusionPipeline.from_pretrained(tmp_path)
    loaded.set_progress_bar_config(disable=True)
    assert isinstance(loaded.denoiser, MultinomialTransformer)
    assert isinstance(loaded.scheduler, MultinomialScheduler)
    assert isinstance(loaded.vocabulary, CharVocabulary) and len(loaded.vocabulary) == 27
    again = loaded(batch_size=3, generator=torch.Generator().manual_seed(0)).samples
    assert again == expected
    assert len(expected) == 3 and all(len(s) == 32 and set(s) <= TEXT8 for s in expected)


def test_from_pretrained_in_a_new_offline_process(tmp_path):
    pipe = tiny_pipeline(seq_len=256, T=10)
    pipe.save_pretrained(tmp_path)
    code = textwrap.dedent(
        f"""
        import json, torch
        from hf_multinomial import DiscreteDiffusionPipeline
        pipe = DiscreteDiffusionPipeline.from_pretrained({str(tmp_path)!r})
        a = pipe(batch_size=4, generator=torch.Generator().manual_seed(0)).samples
        b = pipe(batch_size=4, generator=torch.Generator().manual_seed(0)).samples
        print(json.dumps([a, b]))
        """
    )
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    import json

    a, b = json.loads(out.stdout.strip().splitlines()[-1])
    assert a == b
    assert len(a) == 4 and all(len(s) == 256 and set(s) <= TEXT8 for s in a)


def test_output_types_chain_and_tuple():
    pipe = tiny_pipeline(T=12)
    pipe.set_progress_bar_config(disable=True)
    out = pipe(batch_size=2, num_inference_steps=4, output_type="pt", return_chain=True, generator=torch.Generator().manual_seed(1))
    assert out.samples.shape == (2, 32) and out.samples.dtype == torch.long
    assert len(out.chain) == 5 and torch.equal(out.chain[-1], out.samples)
    # the chain starts at the prior draw
    prior = pipe.scheduler.sample_prior((2, 32), generator=torch.Generator().manual_seed(1))
    assert torch.equal(out.chain[0], prior)
    arr = pipe(batch_size=2, num_inference_steps=4, output_type="np", generator=torch.Generator().manual_seed(1)).samples
    assert isinstance(arr, np.ndarray) and np.array_equal(arr, out.samples.numpy())
    text, chain = pipe(batch_size=2, num_inference_steps=4, return_dict=False, return_chain=True, generator=torch.Generator().manual_seed(1))
    assert text == pipe.vocabulary.batch_decode(out.samples.tolist())
    assert chain[0] == pipe.vocabulary.batch_decode(prior.tolist())
    with pytest.raises(ValueError, match="output_type"):
        pipe(num_inference_steps=1, output_type="pil")


def test_callback_sees_and_replaces_sample():
    pipe = tiny_pipeline(T=6)
    pipe.set_progress_bar_config(disable=True)
    seen = []

    def callback(p, i, t, kwargs):
        seen.append(t)
        return {"sample": torch.zeros_like(kwargs["sample"])}

    out = pipe(batch_size=1, output_type="pt", callback_on_step_end=callback)
    assert seen == list(range(5, -1, -1))
    assert torch.equal(out.samples, torch.zeros(1, 32, dtype=torch.long))


def test_prefix_and_known_positions_are_kept():
    pipe = tiny_pipeline(T=15)
    pipe.set_progress_bar_config(disable=True)
    texts = pipe(batch_size=3, prefix="the quick brown fox", generator=torch.Generator().manual_seed(2)).samples
    assert all(t.startswith("the quick brown fox") for t in texts)
    mask = torch.zeros(2, 32, dtype=torch.bool)
    mask[:, ::3] = True
    known = torch.randint(27, (2, 32), generator=torch.Generator().manual_seed(3))
    out = pipe(batch_size=2, known_ids=known, known_mask=mask, output_type="pt", num_inference_steps=5).samples
    assert torch.equal(out[mask], known[mask])
    with pytest.raises(ValueError, match="'Q' at position 3"):
        pipe(prefix="abcQ")
    with pytest.raises(ValueError, match="shape"):
        pipe(batch_size=2, known_ids=known[:, :5])
    with pytest.raises(ValueError, match="class id 27"):
        pipe(batch_size=2, known_ids=torch.full((2, 32), 27), output_type="pt")


class MarginalDenoiser(ModelMixin, ConfigMixin):
    """Predicts x_0 as a fixed product of categoricals: the exact time reversal of that data distribution."""

    @register_to_config
    def __init__(self, log_pi=None, max_seq_len=3):
        super().__init__()
        self.register_buffer("marginal_logits", torch.tensor(log_pi))  # (K, L)

    def forward(self, sample, timestep):
        return BaseOutput(sample=self.marginal_logits.unsqueeze(0).expand(sample.shape[0], -1, -1))


def test_conditional_generation_leaves_independent_positions_exact():
    K, L, n = 4, 3, 20000
    pi = np.random.default_rng(0).dirichlet(np.ones(K), size=L)
    denoiser = MarginalDenoiser(log_pi=np.log(pi.T).tolist(), max_seq_len=L)
    pipe = DiscreteDiffusionPipeline(denoiser=denoiser, scheduler=MultinomialScheduler(num_classes=K, num_train_timesteps=50))
    pipe.set_progress_bar_config(disable=True)
    known = torch.full((n, L), 2)
    mask = torch.tensor([False, True, False]).expand(n, L)
    out = pipe(batch_size=n, known_ids=known, known_mask=mask, output_type="pt", num_inference_steps=10,
               generator=torch.Generator().manual_seed(0)).samples
    assert (out[:, 1] == 2).all()
    for l in (0, 2):
        freq = np.bincount(out[:, l].numpy(), minlength=K) / n
        assert np.abs(freq - pi[l]).max() < 4.5 * math.sqrt(0.25 / n)


def test_bad_inputs():
    pipe = tiny_pipeline()
    with pytest.raises(ValueError, match="max_seq_len"):
        pipe(seq_len=33)
    with pytest.raises(ValueError, match="num_inference_steps"):
        pipe(num_inference_steps=21)
    with pytest.raises(ValueError, match="batch_size"):
        pipe(batch_size=0)
    with pytest.raises(ValueError, match="28 symbols|num_classes=27"):
        DiscreteDiffusionPipeline(
            denoiser=pipe.denoiser, scheduler=pipe.scheduler, vocabulary=CharVocabulary(list(" abcdefghijklmnopqrstuvwxyz."))
        )


# ---------------------------------------------------------------- segmentation maps

CITYSCAPES_LIKE = [(0, 0, 0), (128, 64, 128), (70, 70, 70), (153, 153, 153), (107, 142, 35), (70, 130, 180), (220, 20, 60), (0, 0, 142)]


def tiny_map_pipeline():
    from hf_multinomial import SegmentationUNet

    torch.manual_seed(0)
    unet = SegmentationUNet(
        num_classes=8, sample_size=(32, 64), base_channels=16, channel_multipliers=(1, 2), num_res_blocks=1,
        attention_resolutions=(2,), dropout=0.0, num_train_timesteps=10,
    )
    return DiscreteDiffusionPipeline(
        denoiser=unet.eval(), scheduler=MultinomialScheduler(num_classes=8, num_train_timesteps=10), palette=CITYSCAPES_LIKE
    )


def test_map_pipeline_pil_round_trip(tmp_path):
    from PIL import Image

    pipe = tiny_map_pipeline()
    pipe.set_progress_bar_config(disable=True)
    ids = pipe(batch_size=2, output_type="pt", generator=torch.Generator().manual_seed(0)).samples
    assert ids.shape == (2, 32, 64)
    pipe.save_pretrained(tmp_path)
    loaded = DiscreteDiffusionPipeline.from_pretrained(tmp_path)
    loaded.set_progress_bar_config(disable=True)
    assert [tuple(c) for c in loaded.config.palette] == CITYSCAPES_LIKE
    images = loaded(batch_size=2, generator=torch.Generator().manual_seed(0)).samples  # "pil" by default for maps
    assert all(isinstance(im, Image.Image) and im.size == (64, 32) and im.mode == "RGB" for im in images)
    # every pixel is the palette colour of the class id drawn with the same seed
    for image, id_map in zip(images, ids):
        expected = np.asarray(CITYSCAPES_LIKE, dtype=np.uint8)[id_map.numpy()]
        assert np.array_equal(np.asarray(image), expected)


def test_map_chain_and_grid():
    from hf_multinomial.pipelines import make_grid

    pipe = tiny_map_pipeline()
    pipe.set_progress_bar_config(disable=True)
    out = pipe(batch_size=3, num_inference_steps=4, output_type="np", return_chain=True)
    assert len(out.chain) == 5 and out.chain[-1].shape == (3, 32, 64)
    grid = make_grid(out.chain, palette=CITYSCAPES_LIKE, scale=1, padding=1)
    assert grid.size == (5 * 65 + 1, 3 * 33 + 1)
    # the tile in row 1, column 4 is the final map of sample 1
    tile = np.asarray(grid)[1 + 33 : 1 + 33 + 32, 1 + 4 * 65 : 1 + 4 * 65 + 64]
    assert np.array_equal(tile, np.asarray(CITYSCAPES_LIKE, dtype=np.uint8)[out.samples[1]])
    with pytest.raises(ValueError, match="palette"):
        DiscreteDiffusionPipeline(denoiser=pipe.denoiser, scheduler=pipe.scheduler, palette=[(0, 0, 0)])
    with pytest.raises(ValueError, match="height/width"):
        pipe(seq_len=5)
