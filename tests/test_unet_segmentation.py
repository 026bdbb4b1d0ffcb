import pytest
import torch
import torch.nn.functional as F

from hf_multinomial.models.unet_segmentation import (
    SegmentationAttentionBlock,
    SegmentationUNet,
    SegmentationUNetOutput,
    group_count,
)




def tiny_unet(**overrides) -> SegmentationUNet:
    config = dict(
        num_classes=5,
        sample_size=(8, 16),
        base_channels=8,
        channel_multipliers=(1, 2),
        num_res_blocks=1,
        attention_resolutions=(2,),
        dropout=0.0,
        num_groups=4,
    )
    config.update(overrides)
    torch.manual_seed(0)
    return SegmentationUNet(**config).eval()


def random_maps(batch_size, height, width, num_classes, seed=1):
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, num_classes, (batch_size, height, width), generator=generator)


@pytest.mark.parametrize(
    "overrides,shape",
    [
        ({}, (3, 8, 16)),
        ({}, (3, 16, 16)),  # any divisible size, not only sample_size
        (dict(channel_multipliers=(1, 2, 2), attention_resolutions=(4,), num_res_blocks=2), (2, 32, 64)),
        (dict(channel_multipliers=(1,), attention_resolutions=()), (2, 6, 7)),
        (dict(class_embedding_dim=3, attention_heads=2, num_classes=2), (3, 8, 8)),
        (dict(channel_multipliers=(1, 2, 4, 8), attention_resolutions=(4, 8), num_groups=32), (1, 32, 64)),
    ],
)
def test_output_shape_dtype_and_class_axis(overrides, shape):
    model = tiny_unet(**overrides)
    num_classes = model.config.num_classes
    sample = random_maps(*shape, num_classes)
    head_outputs = []
    model.conv_out.register_forward_hook(lambda module, args, out: head_outputs.append(out))
    with torch.no_grad():
        output = model(sample, torch.arange(shape[0]) * 100)
        (logits_tuple,) = model(sample, torch.arange(shape[0]) * 100, return_dict=False)
    assert isinstance(output, SegmentationUNetOutput)
    assert output.sample.shape == (shape[0], num_classes, shape[1], shape[2])
    assert output.sample.dtype == torch.float32
    assert torch.equal(output.sample, logits_tuple)
    # The output is the conv head's (B, K, H, W) map as is: classes on dim 1, not moved elsewhere.
    assert torch.equal(output.sample, head_outputs[0])
    assert torch.isfinite(output.sample).all()
    # No other dimension equals K here, so the shape check above pins the class axis to dim 1.
    assert num_classes not in shape


def test_skip_connections_carry_the_input():
    # Cut the bottleneck (middle block output set to zero): the input can then reach the logits only through the
    # skip connections, so the logits must still depend on it, pixel by pixel.
    model = tiny_unet(channel_multipliers=(1, 2, 2), attention_resolutions=()).double()
    model.mid_resnet2.register_forward_hook(lambda module, args, out: torch.zeros_like(out))
    sample = random_maps(1, 8, 16, 5)
    perturbed = sample.clone()
    perturbed[0, 3, 5] = (perturbed[0, 3, 5] + 1) % 5
    with torch.no_grad():
        difference = (model(perturbed, 7).sample - model(sample, 7).sample).abs()
    assert difference[0, :, 3, 5].min() > 1e-6
    # The perturbed pixel itself moves more than a pixel far away (only reached via GroupNorm statistics).
    assert difference[0, :, 3, 5].max() > 10 * difference[0, :, 7, 15].max()


def test_scalar_timestep_matches_batched_and_timestep_matters():
    model = tiny_unet()
    sample = random_maps(2, 8, 16, 5)
    with torch.no_grad():
        from_int = model(sample, 17).sample
        from_0d = model(sample, torch.tensor(17)).sample
        from_batch = model(sample, torch.tensor([17, 17])).sample
        other_t = model(sample, torch.tensor([17, 3000])).sample
    assert torch.equal(from_int, from_0d)
    torch.testing.assert_close(from_int, from_batch)
    torch.testing.assert_close(other_t[0], from_int[0])
    assert (other_t[1] - from_int[1]).abs().max() > 1e-3


def test_save_load_round_trip(tmp_path):
    model = tiny_unet(channel_multipliers=(1, 2, 2), attention_resolutions=(2, 4), class_embedding_dim=6)
    sample = random_maps(2, 8, 16, 5)
    timestep = torch.tensor([3, 3900])
    model.save_pretrained(tmp_path)
    assert (tmp_path / "diffusion_pytorch_model.safetensors").exists()
    loaded = SegmentationUNet.from_pretrained(tmp_path).eval()
    public = lambda config: {k: v for k, v in config.items() if not k.startswith("_")}
    assert public(loaded.config) == public(model.config)
    assert loaded.config.channel_multipliers == (1, 2, 2)
    assert loaded.config.sample_size == (8, 16)
    with torch.no_grad():
        assert torch.equal(model(sample, timestep).sample, loaded(sample, timestep).sample)


def test_integer_dtypes_agree():
    model = tiny_unet()
    sample = random_maps(2, 8, 16, 5)
    with torch.no_grad():
        expected = model(sample, 9).sample
        for dtype in (torch.int32, torch.int16, torch.uint8):
            assert torch.equal(model(sample.to(dtype), 9).sample, expected), dtype


def test_int_sample_size_is_stored_as_pair():
    assert tiny_unet(sample_size=16).config.sample_size == (16, 16)


@pytest.mark.parametrize(
    "sample,timestep,message",
    [
        (torch.zeros(2, 8, 16), 1, "float32"),
        (torch.zeros(2, 8, 16, dtype=torch.float64), 1, "float64"),
        (torch.zeros(2, 8, 16, dtype=torch.bool), 1, "bool"),
        (torch.zeros(8, 16, dtype=torch.long), 1, r"\(8, 16\)"),
        (torch.zeros(2, 1, 8, 16, dtype=torch.long), 1, r"\(2, 1, 8, 16\)"),
        (torch.zeros(2, 7, 16, dtype=torch.long), 1, r"\(2, 7, 16\)"),
        (torch.zeros(2, 8, 15, dtype=torch.long), 1, r"\(2, 8, 15\)"),
        (torch.full((1, 8, 16), 5), 1, "class id 5"),
        (torch.full((1, 8, 16), -1), 1, "class id -1"),
        (torch.zeros(2, 8, 16, dtype=torch.long), torch.tensor([1, 2, 3]), r"\(3,\)"),
        (torch.zeros(2, 8, 16, dtype=torch.long), torch.ones(2, 1), r"\(2, 1\)"),
    ],
)
def test_bad_inputs_raise(sample, timestep, message):
    model = tiny_unet()
    with pytest.raises(ValueError, match=message):
        model(sample, timestep)


@pytest.mark.parametrize(
    "overrides,message",
    [
        (dict(sample_size=(8, 10), channel_multipliers=(1, 2, 2), attention_resolutions=()), r"\(8, 10\)"),
        (dict(attention_resolutions=(4,)), "attention_resolutions entry 4"),
        (dict(num_classes=1), "num_classes=1"),
        (dict(channel_multipliers=()), "channel_multipliers"),
        (dict(num_res_blocks=0), "num_res_blocks=0"),
        (dict(dropout=1.0), "dropout=1.0"),
        (dict(attention_heads=3), "attention_heads=3"),
    ],
)
def test_bad_config_raises(overrides, message):
    with pytest.raises(ValueError, match=message):
        tiny_unet(**overrides)


def test_group_count_clamps_to_a_divisor():
    assert group_count(64, 32) == 32
    assert group_count(48, 32) == 24
    assert group_count(8, 32) == 8
    assert group_count(7, 4) == 1
    model = tiny_unet(base_channels=12, num_groups=32)
    for module in model.modules():
        if isinstance(module, torch.nn.GroupNorm):
            assert module.num_channels % module.num_groups == 0
            assert module.num_groups == group_count(module.num_channels, 32)


def test_attention_only_at_requested_levels():
    def attended_sizes(model, shape):
        sizes = []
        hooks = [
            module.register_forward_hook(lambda module, args, out: sizes.append(tuple(out.shape[-2:])))
            for module in model.modules()
            if isinstance(module, SegmentationAttentionBlock)
        ]
        with torch.no_grad():
            model(random_maps(1, *shape, model.config.num_classes), 1)
        for hook in hooks:
            hook.remove()
        return set(sizes)

    model = tiny_unet(channel_multipliers=(1, 2, 2, 2), attention_resolutions=(4,))
    # Factor 4 on 16 x 32 is 4 x 8; the middle block (factor 8) always attends.
    assert attended_sizes(model, (16, 32)) == {(4, 8), (2, 4)}
    model = tiny_unet(channel_multipliers=(1, 2, 2, 2), attention_resolutions=())
    assert attended_sizes(model, (16, 32)) == {(2, 4)}


def test_eval_is_deterministic_and_dropout_only_in_training():
    model = tiny_unet(dropout=0.3)
    sample = random_maps(2, 8, 16, 5)
    with torch.no_grad():
        assert torch.equal(model(sample, 4).sample, model(sample, 4).sample)
        model.train()
        assert not torch.equal(model(sample, 4).sample, model(sample, 4).sample)
        # Without dropout, train mode is deterministic too (GroupNorm has no batch statistics).
        model_no_dropout = tiny_unet(dropout=0.0).train()
        assert torch.equal(model_no_dropout(sample, 4).sample, model_no_dropout(sample, 4).sample)


def test_gradient_checkpointing_gives_same_gradients():
    sample = random_maps(2, 8, 16, 5)
    target = random_maps(2, 8, 16, 5, seed=2)
    gradients = []
    for checkpointing in (False, True):
        model = tiny_unet().train()
        if checkpointing:
            model.enable_gradient_checkpointing()
            assert model.is_gradient_checkpointing
        logits = model(sample, torch.tensor([1, 2])).sample
        F.cross_entropy(logits, target).backward()
        gradients.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    torch.testing.assert_close(gradients[0], gradients[1])


def test_every_parameter_gets_a_gradient_and_a_tiny_unet_learns_to_copy():
    # Two levels, attention at both (factor 1 and 2) and in the middle: every kind of block is on the gradient path.
    model = tiny_unet(num_classes=4, attention_resolutions=(1, 2), dropout=0.1).train()
    maps = random_maps(2, 8, 16, 4, seed=3)
    timesteps = torch.tensor([10, 3999])

    loss = F.cross_entropy(model(maps, timesteps).sample, maps)
    loss.backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None, name
        assert parameter.grad.abs().max() > 0, name
    initial_loss = loss.item()

    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    torch.manual_seed(0)
    for _ in range(60):
        optimizer.zero_grad()
        loss = F.cross_entropy(model(maps, timesteps).sample, maps)
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        final_loss = F.cross_entropy(model(maps, timesteps).sample, maps).item()
    # Chance level is log(4) = 1.39 nats.
    assert initial_loss > 0.8
    assert final_loss < 0.05, (initial_loss, final_loss)


def test_bf16_autocast_runs():
    model = tiny_unet()
    sample = random_maps(2, 8, 16, 5)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(sample, 3).sample
    assert logits.shape == (2, 5, 8, 16)
    assert torch.isfinite(logits.float()).all()
