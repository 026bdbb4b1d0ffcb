import math

import pytest
import torch

from hf_multinomial.models import MultinomialTransformer, MultinomialTransformerOutput
from hf_multinomial.models.transformer_multinomial import LocalGlobalSelfAttention


def tiny_model(**overrides) -> MultinomialTransformer:
    config = dict(
        num_classes=7,
        max_seq_len=16,
        hidden_size=32,
        num_layers=2,
        num_heads=4,
        num_local_heads=2,
        local_window=3,
        mlp_ratio=2.0,
    )
    config.update(overrides)
    torch.manual_seed(0)
    return MultinomialTransformer(**config).eval()


def random_tokens(batch_size, seq_len, num_classes, seed=1):
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, num_classes, (batch_size, seq_len), generator=generator)


def changed_positions(model, seq_len):
    """Boolean (L, L) matrix: entry [j, i] says whether changing the token at j changes the logits at i."""
    num_classes = model.config.num_classes
    base = random_tokens(1, seq_len, num_classes)
    perturbed = base.repeat(seq_len, 1)
    positions = torch.arange(seq_len)
    perturbed[positions, positions] = (perturbed[positions, positions] + 1) % num_classes
    with torch.no_grad():
        base_logits = model(base, 5).sample
        perturbed_logits = model(perturbed, 5).sample
    return (perturbed_logits - base_logits).abs().amax(dim=1) > 1e-9


@pytest.mark.parametrize("position_embedding", ["learned", "sinusoidal"])
def test_output_shape_dtype_and_class_axis(position_embedding):
    model = tiny_model(position_embedding=position_embedding)
    sample = random_tokens(3, 12, 7)
    head_outputs = []
    model.proj_out.register_forward_hook(lambda module, args, out: head_outputs.append(out))
    with torch.no_grad():
        output = model(sample, torch.tensor([0, 10, 999]))
        (logits_tuple,) = model(sample, torch.tensor([0, 10, 999]), return_dict=False)
    assert isinstance(output, MultinomialTransformerOutput)
    assert output.sample.shape == (3, 7, 12)
    assert output.sample.dtype == torch.float32
    assert torch.equal(output.sample, logits_tuple)
    # The head produces (batch, seq_len, classes); the output moves the class axis to dim 1.
    assert torch.equal(output.sample, head_outputs[0].transpose(1, 2))
    assert torch.isfinite(output.sample).all()


def test_scalar_timestep_matches_batched_and_timestep_matters():
    model = tiny_model()
    sample = random_tokens(2, 10, 7)
    with torch.no_grad():
        from_int = model(sample, 17).sample
        from_0d = model(sample, torch.tensor(17)).sample
        from_batch = model(sample, torch.tensor([17, 17])).sample
        other_t = model(sample, torch.tensor([17, 500])).sample
    assert torch.equal(from_int, from_0d)
    assert torch.allclose(from_int, from_batch)
    assert torch.allclose(other_t[0], from_int[0])
    assert not torch.allclose(other_t[1], from_int[1])


@pytest.mark.parametrize("num_layers", [1, 2])
def test_local_heads_receptive_field(num_layers):
    window, seq_len = 3, 16
    model = tiny_model(num_layers=num_layers, num_local_heads=4, local_window=window).double()
    changed = changed_positions(model, seq_len)
    distance = (torch.arange(seq_len)[:, None] - torch.arange(seq_len)[None, :]).abs()
    # Each layer lets information travel at most local_window - 1 positions.
    reach = num_layers * (window - 1)
    assert not changed[distance > reach].any()
    assert changed[distance <= reach].all()
    if num_layers == 1:
        assert not changed[distance >= window].any()


def test_global_heads_see_everything():
    model = tiny_model(num_layers=1, num_local_heads=0).double()
    assert changed_positions(model, 16).all()
    # Mixed heads: the global ones still connect every pair of positions in one layer.
    model = tiny_model(num_layers=1, num_local_heads=2, local_window=1).double()
    assert changed_positions(model, 16).all()


def test_local_window_covering_sequence_is_global():
    model = tiny_model(num_layers=1, num_local_heads=4, local_window=16).double()
    assert changed_positions(model, 16).all()


def reference_attention(attention, hidden_states):
    """Float64 attention with an explicit band mask and softmax, built position by position."""
    batch_size, seq_len, hidden_size = hidden_states.shape
    num_heads, head_dim = attention.num_heads, hidden_size // attention.num_heads
    query, key, value = attention.to_qkv(hidden_states).split(hidden_size, dim=-1)
    query, key, value = (t.view(batch_size, seq_len, num_heads, head_dim).transpose(1, 2) for t in (query, key, value))
    allowed = torch.ones(num_heads, seq_len, seq_len, dtype=torch.bool)
    for head in range(attention.num_heads - attention.num_local_heads, num_heads):
        for i in range(seq_len):
            for j in range(seq_len):
                allowed[head, i, j] = abs(i - j) < attention.local_window
    scores = query @ key.transpose(-1, -2) / math.sqrt(head_dim)
    scores = scores.masked_fill(~allowed, float("-inf"))
    out = scores.softmax(dim=-1) @ value
    return attention.to_out(out.transpose(1, 2).reshape(batch_size, seq_len, hidden_size))


@pytest.mark.parametrize("num_local_heads,local_window", [(2, 3), (4, 2), (0, 3), (3, 1), (2, 10)])
def test_attention_matches_bruteforce_reference(num_local_heads, local_window):
    torch.manual_seed(0)
    attention = LocalGlobalSelfAttention(32, 4, num_local_heads, local_window).double().eval()
    hidden_states = torch.randn(2, 10, 32, dtype=torch.float64)
    with torch.no_grad():
        expected = reference_attention(attention, hidden_states)
        actual = attention(hidden_states)
    torch.testing.assert_close(actual, expected, rtol=1e-10, atol=1e-10)


def test_local_attention_ignores_keys_outside_band():
    torch.manual_seed(0)
    window, seq_len = 3, 12
    attention = LocalGlobalSelfAttention(32, 4, 4, window).double().eval()
    hidden_states = torch.randn(1, seq_len, 32, dtype=torch.float64)
    with torch.no_grad():
        base = attention(hidden_states)
        for j in range(seq_len):
            perturbed = hidden_states.clone()
            perturbed[0, j] += torch.randn(32, dtype=torch.float64)
            difference = (attention(perturbed) - base).abs().amax(dim=-1)[0]
            for i in range(seq_len):
                if abs(i - j) >= window:
                    assert difference[i] == 0, (i, j)
                else:
                    assert difference[i] > 1e-9, (i, j)


@pytest.mark.parametrize("position_embedding", ["learned", "sinusoidal"])
def test_save_load_round_trip(tmp_path, position_embedding):
    model = tiny_model(position_embedding=position_embedding)
    sample = random_tokens(2, 16, 7)
    timestep = torch.tensor([3, 900])
    model.save_pretrained(tmp_path)
    assert (tmp_path / "diffusion_pytorch_model.safetensors").exists()
    loaded = MultinomialTransformer.from_pretrained(tmp_path).eval()
    public = lambda config: {k: v for k, v in config.items() if not k.startswith("_")}
    assert public(loaded.config) == public(model.config)
    with torch.no_grad():
        assert torch.equal(model(sample, timestep).sample, loaded(sample, timestep).sample)


@pytest.mark.parametrize(
    "sample,timestep,message",
    [
        (torch.zeros(2, 4), 1, "float32"),
        (torch.zeros(2, 4, dtype=torch.bool), 1, "bool"),
        (torch.zeros(8, dtype=torch.long), 1, r"\(8,\)"),
        (torch.zeros(2, 4, 3, dtype=torch.long), 1, r"\(2, 4, 3\)"),
        (torch.tensor([[0, 1, 7]]), 1, "7"),
        (torch.tensor([[0, -1, 2]]), 1, "-1"),
        (torch.zeros(2, 17, dtype=torch.long), 1, "17"),
        (torch.zeros(2, 4, dtype=torch.long), torch.tensor([1, 2, 3]), r"\(3,\)"),
        (torch.zeros(2, 4, dtype=torch.long), torch.ones(2, 1), r"\(2, 1\)"),
    ],
)
def test_bad_inputs_raise(sample, timestep, message):
    model = tiny_model()
    with pytest.raises(ValueError, match=message):
        model(sample, timestep)


def test_bad_config_raises():
    with pytest.raises(ValueError, match="num_local_heads"):
        tiny_model(num_local_heads=5)
    with pytest.raises(ValueError, match="position_embedding"):
        tiny_model(position_embedding="rotary")


def test_eval_is_deterministic_and_dropout_only_in_training():
    model = tiny_model(dropout=0.3)
    sample = random_tokens(2, 16, 7)
    with torch.no_grad():
        assert torch.equal(model(sample, 4).sample, model(sample, 4).sample)
        model.train()
        assert not torch.equal(model(sample, 4).sample, model(sample, 4).sample)


def test_gradient_checkpointing_gives_same_gradients():
    sample = random_tokens(2, 16, 7)
    target = random_tokens(2, 16, 7, seed=2)
    gradients = []
    for checkpointing in (False, True):
        model = tiny_model().train()
        if checkpointing:
            model.enable_gradient_checkpointing()
            assert model.is_gradient_checkpointing
        logits = model(sample, torch.tensor([1, 2])).sample
        torch.nn.functional.cross_entropy(logits, target).backward()
        gradients.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    torch.testing.assert_close(gradients[0], gradients[1])


def test_bf16_autocast_runs():
    model = tiny_model()
    sample = random_tokens(2, 16, 7)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(sample, 3).sample
    assert logits.shape == (2, 7, 16)
    assert torch.isfinite(logits.float()).all()


def test_input_convolution_widens_the_receptive_field_by_half_its_width():
    torch.manual_seed(0)
    window, kernel = 3, 5
    model = MultinomialTransformer(
        num_classes=7, max_seq_len=24, hidden_size=16, num_layers=1, num_heads=2, num_local_heads=2,
        local_window=window, conv_kernel_size=kernel,
    ).double().eval()
    x = torch.randint(7, (1, 24))
    base = model(x, 3).sample
    j = 12
    changed = x.clone()
    changed[0, j] = (changed[0, j] + 1) % 7
    moved = (model(changed, 3).sample - base).abs().amax(dim=1)[0] > 1e-12
    reach = (window - 1) + kernel // 2
    expected = torch.tensor([abs(i - j) <= reach for i in range(24)])
    assert torch.equal(moved, expected)
    with pytest.raises(ValueError, match="conv_kernel_size"):
        MultinomialTransformer(conv_kernel_size=4)
