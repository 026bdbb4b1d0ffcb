"""Inference options of `hf_multinomial.inference`: the choice of precision, the wrapper's outputs at every precision
(with and without torch.compile), their accuracy against float32 with a derived tolerance, and bad arguments.

No timing assertions: which precision is fast depends on the CPU, and these tests must pass on all of them (AVX2-only
ones included, where bf16 is slow but correct)."""

import math
import os
import shutil
import subprocess
import sys

import pytest
import torch

from hf_multinomial import inference
from hf_multinomial.evaluation import bits_per_unit, diffusion_negative_elbo
from hf_multinomial.inference import (
    PRECISIONS,
    InferenceDenoiser,
    cpu_features,
    decide_precision,
    native_bf16,
    native_int8,
    prepare_for_inference,
    resolve_precision,
)
from hf_multinomial.models import MultinomialTransformer, MultinomialTransformerOutput, SegmentationUNet
from hf_multinomial.pipelines import DiscreteDiffusionPipeline
from hf_multinomial.schedulers import MultinomialScheduler

U_BF16 = 2.0**-8  # unit roundoff of bfloat16 (8 significand bits, round to nearest)


def features(capability="AVX512", **flags):
    """A fake `cpu_features()` dict: every flag False unless given."""
    return {"capability": capability, "flags": {name: bool(flags.get(name, False)) for name in inference.CPU_FLAGS}}


# ---------------------------------------------------------------------------------------------- choosing a precision


@pytest.mark.parametrize(
    "fake, expected",
    [
        (features("AVX2", avx2=True), "fp32"),  # AVX2 only: bf16 GEMMs are emulated (~8x slower), no VNNI
        (features("AVX512", avx2=True, avx512f=True), "fp32"),  # AVX512 without BF16 or VNNI
        (features("AVX512", avx2=True, avx512f=True, avx512_bf16=True), "bf16"),
        (features("AVX512", avx2=True, avx512f=True, amx_bf16=True), "bf16"),
        (features("AVX512", avx2=True, avx512f=True, avx512_vnni=True), "int8"),
        (features("AVX512", avx2=True, avx512f=True, avx512_bf16=True, avx512_vnni=True, amx_int8=True), "int8"),
        (features("AVX2", avx2=True, avx_vnni=True), "int8"),  # AVX-VNNI is an AVX2-level extension
        # torch forced to AVX2 (ATEN_CPU_CAPABILITY=avx2) on an AVX512 CPU: its AVX512 and AMX flags do not count.
        (features("AVX2", avx2=True, avx512f=True, avx512_bf16=True, avx512_vnni=True, amx_bf16=True, amx_int8=True),
         "fp32"),
        (features("DEFAULT"), "fp32"),  # no /proc/cpuinfo flags (or a non-x86 CPU)
    ],
)
def test_auto_on_cpu_follows_the_features(fake, expected):
    assert decide_precision("auto", "cpu", fake) == expected
    for explicit in ("fp32", "bf16", "int8"):  # an explicit precision is never changed
        assert decide_precision(explicit, "cpu", fake) == explicit


def test_native_helpers_combine_capability_and_flags():
    assert native_bf16(features("AVX512", avx512_bf16=True)) and not native_int8(features("AVX512", avx512_bf16=True))
    assert not native_bf16(features("AVX2", avx512_bf16=True, amx_bf16=True))
    assert native_int8(features("AVX512", avx512_vnni=True)) and not native_int8(features("AVX2", avx512_vnni=True))
    assert native_int8(features("AVX2", avx_vnni=True)) and native_int8(features("AVX512", amx_int8=True))


def test_cuda_and_other_devices():
    assert decide_precision("auto", "cuda", None, cuda_bf16=True) == "bf16"
    assert decide_precision("auto", "cuda", None, cuda_bf16=False) == "fp32"
    assert decide_precision("bf16", "cuda", None) == "bf16"
    assert decide_precision("auto", "mps", None) == "fp32"
    for device_type in ("cuda", "meta"):
        with pytest.raises(ValueError, match=device_type):
            decide_precision("int8", device_type, None)
    with pytest.raises(ValueError, match="'cuda'"):
        resolve_precision("int8", "cuda")


@pytest.mark.parametrize("bad", ["fp16", "FP32", "int4", "", None, 16, torch.bfloat16])
def test_unknown_precision_is_refused_by_name(bad):
    with pytest.raises(ValueError, match="precision") as error:
        resolve_precision(bad, "cpu")
    assert repr(bad) in str(error.value) and "'fp32', 'bf16', 'int8', 'auto'" in str(error.value)
    with pytest.raises(ValueError, match="precision"):
        decide_precision(bad, "cpu", features())


def test_this_machine():
    found = cpu_features()
    assert set(found) == {"capability", "flags", "usable"}
    assert found["capability"] == torch.backends.cpu.get_cpu_capability()
    assert set(found["flags"]) == set(inference.CPU_FLAGS) and all(isinstance(v, bool) for v in found["flags"].values())
    assert all(found["flags"][name] or not usable for name, usable in found["usable"].items())
    assert resolve_precision("auto") == decide_precision("auto", "cpu", found) in ("fp32", "bf16", "int8")
    assert resolve_precision("auto", torch.device("cpu")) == resolve_precision("auto", "cpu")


def test_forced_avx2_capability_hides_avx512_flags(monkeypatch):
    monkeypatch.setattr(inference, "_read_cpuinfo_flags", lambda: {"avx2", "avx512f", "avx512_bf16", "avx512_vnni"})
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")
    found = cpu_features()
    assert found["flags"]["avx512_bf16"] and not found["usable"]["avx512_bf16"] and not found["usable"]["avx512f"]
    assert found["usable"]["avx2"] and not native_bf16(found) and not native_int8(found)
    assert resolve_precision("auto") == "fp32"


def test_missing_cpuinfo_reads_as_no_flags(tmp_path):
    assert inference._read_cpuinfo_flags(str(tmp_path / "no-cpuinfo")) == set()


# ---------------------------------------------------------------------------------------------- the wrapper


def tiny_transformer(seed=0, **overrides):
    torch.manual_seed(seed)
    config = dict(num_classes=27, max_seq_len=16, hidden_size=32, num_layers=2, num_heads=2, num_local_heads=1,
                  local_window=4, num_train_timesteps=10)
    return MultinomialTransformer(**{**config, **overrides})


def tiny_unet(seed=0):
    torch.manual_seed(seed)
    return SegmentationUNet(num_classes=5, sample_size=(8, 8), base_channels=8, channel_multipliers=(1, 2),
                            num_res_blocks=1, attention_resolutions=(2,), num_groups=4, num_train_timesteps=10)


def inputs_for(model, batch=3, generator_seed=0):
    generator = torch.Generator().manual_seed(generator_seed)
    config = model.config
    shape = (batch, config.max_seq_len) if "max_seq_len" in config else (batch, *config.sample_size)
    sample = torch.randint(config.num_classes, shape, generator=generator)
    timesteps = torch.randint(config.num_train_timesteps, (batch,), generator=generator)
    return sample, timesteps


def weights_of(model):
    return {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}


@pytest.mark.parametrize("build", [tiny_transformer, tiny_unet], ids=["transformer", "unet"])
@pytest.mark.parametrize("precision", ["fp32", "bf16", "int8", "auto"])
def test_every_precision_gives_float32_logits(build, precision):
    model = build()
    before = weights_of(model)
    sample, timesteps = inputs_for(model)
    with torch.no_grad():
        expected = model.eval()(sample, timesteps)
        wrapped = prepare_for_inference(model, precision)
        output = wrapped(sample, timesteps)
        as_tuple = wrapped(sample, timesteps, return_dict=False)
    assert isinstance(wrapped, InferenceDenoiser) and not wrapped.training and not wrapped.compiled
    assert wrapped.precision == resolve_precision(precision) and wrapped.precision in ("fp32", "bf16", "int8")
    assert type(output) is type(expected)  # the wrapped model's output class
    assert output.sample.dtype == torch.float32 and output.sample.shape == expected.sample.shape
    assert isinstance(as_tuple, tuple) and torch.equal(as_tuple[0], output.sample)
    assert torch.isfinite(output.sample).all()
    assert wrapped.config == model.config and wrapped.device == torch.device("cpu") and wrapped.dtype == torch.float32
    assert next(wrapped.parameters()).device == torch.device("cpu")
    # The stored model is untouched: still float32, same weights, still plain nn.Linear layers (int8 quantized a copy).
    after = weights_of(model)
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert any(type(m) is torch.nn.Linear for m in model.modules())
    if wrapped.precision == "int8":
        assert wrapped.model is not model
        assert not any(type(m) is torch.nn.Linear for m in wrapped.model.modules())
    else:
        assert wrapped.model is model


def test_pipeline_samples_at_a_precision_and_saves_fp32(tmp_path):
    """`set_inference_precision` changes what samples, not what is saved; fp32 restores the plain denoiser."""
    model = tiny_transformer()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    scheduler = MultinomialScheduler(num_classes=27, num_train_timesteps=10)
    pipe = DiscreteDiffusionPipeline(denoiser=model, scheduler=scheduler)
    pipe.set_progress_bar_config(disable=True)
    assert pipe.set_inference_precision("int8") == "int8"
    calls = []
    handle = pipe._inference_denoiser.model.register_forward_hook(lambda *args: calls.append(1))
    samples = pipe(batch_size=2, num_inference_steps=3, output_type="pt",
                   generator=torch.Generator().manual_seed(0)).samples
    handle.remove()
    assert len(calls) == 3  # the quantized copy ran
    assert samples.shape == (2, 16) and samples.dtype == torch.long
    assert int(samples.min()) >= 0 and int(samples.max()) < 27
    pipe.save_pretrained(tmp_path)
    reloaded = DiscreteDiffusionPipeline.from_pretrained(tmp_path)
    for key, value in reloaded.denoiser.state_dict().items():
        assert value.dtype == before[key].dtype and torch.equal(value, before[key])
    assert pipe.set_inference_precision() == "fp32" and pipe._inference_denoiser is None
    with pytest.raises(ValueError, match="fp16"):
        pipe.set_inference_precision("fp16")


# ---------------------------------------------------------------------------------------------- torch.compile


def _compile_unusable_reason():
    if not shutil.which("c++") and not shutil.which("g++") and not shutil.which("clang++"):
        return "torch.compile (inductor) needs a C++ compiler and none is on PATH"
    try:
        import torch._dynamo

        if not torch._dynamo.is_dynamo_supported():
            return f"torch.compile is not supported on this Python / platform (torch {torch.__version__})"
        torch.compile(lambda x: x * 2 + 1)(torch.ones(3))
    except Exception as error:  # noqa: BLE001 (any failure of the probe means compile is unusable here)
        return f"torch.compile does not work on this machine: {type(error).__name__}: {str(error)[:200]}"
    # A failing compile can take the process down rather than raise: with oneDNN capped below the CPU's ISA
    # (ONEDNN_MAX_CPU_ISA=AVX2 on an AVX512 CPU, to emulate an AVX2 machine) torch 2.13's inductor corrupts the heap
    # compiling these models. So the two models are first compiled and run in a child process.
    probe = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "from test_inference_precision import tiny_transformer, tiny_unet, inputs_for;"
        "from hf_multinomial.inference import prepare_for_inference;"
        "[prepare_for_inference(m.eval(), 'fp32', compile=True)(*inputs_for(m)) for m in (tiny_transformer(), tiny_unet())]"
    )
    child = subprocess.run([sys.executable, "-c", probe, os.path.dirname(os.path.abspath(__file__))],
                           capture_output=True, text=True, timeout=600)
    if child.returncode != 0:
        last = (child.stderr.strip().splitlines() or ["no output"])[-1]
        return (f"torch.compile of the test models failed in a child process (exit status {child.returncode}: "
                f"{last[:200]}); the environment caps: ONEDNN_MAX_CPU_ISA={os.environ.get('ONEDNN_MAX_CPU_ISA')}, "
                f"ATEN_CPU_CAPABILITY={os.environ.get('ATEN_CPU_CAPABILITY')}")
    return None


@pytest.fixture(scope="module")
def compile_usable(tmp_path_factory):
    # A fresh inductor cache for this run (the child's too): a kernel cached by a process that crashed, or compiled
    # under other oneDNN / ATen ISA caps, was seen to abort a later process here (heap corruption), so no compiled
    # artifact is reused across runs or environments.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path_factory.mktemp("inductor_cache")))
        reason = _compile_unusable_reason()
        if reason:
            pytest.skip(reason)
        yield


@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")  # torch's inductor import
@pytest.mark.slow  # compiling takes about 10 to 40 s per model here (a cold inductor cache each run)
@pytest.mark.parametrize("build", [tiny_transformer, tiny_unet], ids=["transformer", "unet"])
def test_compiled_fp32_matches_eager(compile_usable, build):
    model = build()
    sample, timesteps = inputs_for(model)
    with torch.no_grad():
        expected = model.eval()(sample, timesteps).sample
        compiled = prepare_for_inference(model, "fp32", compile=True)
        output = compiled(sample, timesteps)
    assert compiled.compiled and compiled.precision == "fp32"
    assert type(output) is type(model(sample, timesteps))
    assert output.sample.dtype == torch.float32 and output.sample.shape == expected.shape
    # The same float32 arithmetic, reordered and fused: a few float32 roundings (2^-24) per operation on the path.
    # 1e-4 of the logits' scale leaves >100x headroom and still fails any real change of the computation.
    scale = expected.abs().max()
    assert (output.sample - expected).abs().max() <= 1e-4 * scale, "compiled logits differ from eager"


# ---------------------------------------------------------------------------------------------- accuracy vs fp32
#
# Tolerance derivation. The checks are on a randomly initialised (seeded) 2-block transformer whose weights are drawn
# at unit gain (std 1/sqrt(fan_in)) so that the network is not close to the identity and its logits are O(1)
# (centered rms ~2): at the library's own 0.02 init the logits are ~0.1 and any option would look accurate.
#
# Only the logits centered over the classes matter (x0_hat = softmax(z) is shift invariant), so every comparison uses
# z_c = z - mean_k z. (a) Logits: the norm-wise relative error ||z_c(option) - z_c(fp32)|| / ||z_c(fp32)|| of each
# example must stay below a first-order error budget eps:
#
# * bf16 (autocast): every GEMM rounds its two operands and its output to bfloat16, each a relative error of at most
#   u = 2^-8 and of rms u/sqrt(3) (uniform rounding error); the softmax of attention and the GELU output are rounded once
#   more. With the random-sign sums of a random network a rounding of relative rms r gives an output of relative rms
#   error ~r, and first-order errors add up along the path at most linearly (no cancellation assumed). Per block:
#   6 GEMMs (qkv, Q K^T, P V, out, 2 MLP) x 3 roundings + 2; plus the head and the two time-embedding linears (3 GEMMs
#   x 3): n = 2 * 20 + 9 = 49 roundings, eps_bf16 = 49 * u / sqrt(3) = 0.11.
# * int8 (dynamic quantization of the nn.Linear layers, fp32 elsewhere): a weight is rounded to the per-tensor step
#   s_w = max|W| / 127.5 (symmetric qint8), an input to s_x = (max(x, 0) - min(x, 0)) / 127 (per-tensor affine, 7-bit
#   reduce_range, the coarser of the engines' choices), each an error of rms s / sqrt(12). A linear layer's relative rms
#   error is therefore <= s_w / (sqrt(12) rms(W)) + s_x / (sqrt(12) rms(x)); eps_int8 is the sum of that over every
#   linear layer, computed from the fp32 model's weights and (via hooks) its inputs at the evaluated batch, i.e. from
#   the quantization scheme, not from the int8 output (about 0.28 for this model).
#
# (b) The ELBO: the per-example negative ELBO estimate under the option (diffusion_negative_elbo(estimate=True), same
# generator seed, hence the same t and x_t) minus the fp32 one. To first order it is T * g . (z_c' - z_c), with
# g = d loss_t / d logits at the fp32 logits (g sums to 0 over the classes), so by Cauchy-Schwarz and (a):
# |dL| <= T * ||g|| * eps * ||z_c||. A factor 2 is allowed for the second-order terms, so the bound is
# 2 * T * ||g|| * eps * ||z_c|| per example; its mean, divided by seq_len * ln 2, bounds the change of bits per character.
#
# Measured (one AVX512/AMX CPU): bf16 uses ~4 % of its logit budget and <1 % of its ELBO bound, int8 ~11 % and ~1 %.
# Logits scaled by 2, softmax probabilities returned as logits, or re-drawn weights break (a) or (b) by a wide margin
# even against the looser int8 budget (test_accuracy_check_catches_broken_options).

ACC_T, ACC_LEN, ACC_K, ACC_EXAMPLES = 50, 32, 27, 48


def unit_gain_transformer(seed):
    """The accuracy checks' model: 2 blocks of width 64, weights at unit gain, logits of centered rms ~2."""
    torch.manual_seed(seed)
    model = MultinomialTransformer(num_classes=ACC_K, max_seq_len=ACC_LEN, hidden_size=64, num_layers=2, num_heads=4,
                                   num_local_heads=2, local_window=8, num_train_timesteps=ACC_T)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.Linear):
                torch.nn.init.normal_(module.weight, std=1 / math.sqrt(module.in_features))
                torch.nn.init.normal_(module.bias, std=0.1)
            elif isinstance(module, torch.nn.Embedding):
                torch.nn.init.normal_(module.weight, std=1.0)
        model.proj_out.weight.mul_(2.0)
    return model.eval()


@pytest.fixture(scope="module")
def accuracy_setup():
    model = unit_gain_transformer(seed=0)
    scheduler = MultinomialScheduler(num_classes=ACC_K, num_train_timesteps=ACC_T)
    input_ids = torch.randint(ACC_K, (ACC_EXAMPLES, ACC_LEN), generator=torch.Generator().manual_seed(1))
    reference = _evaluate(model, scheduler, input_ids)
    # g: the gradient of each example's loss_t with respect to the fp32 logits, at the same t and x_t.
    logits = reference["logits"].clone().requires_grad_(True)
    loss = scheduler.compute_loss(logits, input_ids, reference["x_t"], reference["t"])
    (grad,) = torch.autograd.grad(loss.sum(), logits)
    reference["grad_norm"] = grad.flatten(1).norm(dim=1)
    budgets = {"bf16": 49 * U_BF16 / math.sqrt(3), "int8": _int8_budget(model, reference["x_t"], reference["t"])}
    return model, scheduler, input_ids, reference, budgets


class _Recorder(torch.nn.Module):
    """Passes calls through to `model` and keeps the last inputs and logits (diffusion_negative_elbo draws t and x_t
    inside; with estimate=True and one batch it calls the denoiser once)."""

    def __init__(self, model, transform=None):
        super().__init__()
        self.model, self.transform, self.config = model, transform, model.config
        self.calls = []

    def forward(self, sample, timestep):
        output = self.model(sample, timestep)
        logits = output.sample.float() if self.transform is None else self.transform(output.sample.float())
        self.calls.append((sample.clone(), timestep.clone(), logits))
        return MultinomialTransformerOutput(sample=logits)


def _evaluate(denoiser, scheduler, input_ids, transform=None):
    recorder = _Recorder(denoiser, transform)
    nll = diffusion_negative_elbo(recorder, scheduler, input_ids, batch_size=len(input_ids), estimate=True,
                                  generator=torch.Generator().manual_seed(5))
    assert len(recorder.calls) == 1
    x_t, t, logits = recorder.calls[0]
    return {"nll": nll, "x_t": x_t, "t": t, "logits": logits}


def _int8_budget(model, x_t, t):
    """Sum over the nn.Linear layers of s_w / (sqrt(12) rms(W)) + s_x / (sqrt(12) rms(x)) (see the derivation)."""
    terms = []

    def hook(module, args, output):
        x, weight = args[0].detach(), module.weight.detach()
        s_w = weight.abs().max() / 127.5
        s_x = (x.max().clamp(min=0) - x.min().clamp(max=0)) / 127
        terms.append(float(s_w / weight.pow(2).mean().sqrt() + s_x / x.pow(2).mean().sqrt()) / math.sqrt(12))

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, torch.nn.Linear)]
    try:
        with torch.no_grad():
            model(x_t, t)
    finally:
        for handle in handles:
            handle.remove()
    assert len(terms) == sum(isinstance(m, torch.nn.Linear) for m in model.modules())
    return sum(terms)


def _centered(logits):
    return logits - logits.mean(dim=1, keepdim=True)


def budget_use(option, reference, eps, scheduler, input_ids, transform=None) -> dict:
    """The fractions of the budgets of (a) and (b) that `option` (a denoiser) uses: "logits" (worst example),
    "elbo" (worst example) and "bpc" (the change of bits per character over its bound)."""
    result = _evaluate(option, scheduler, input_ids, transform)
    assert torch.equal(result["x_t"], reference["x_t"]) and torch.equal(result["t"], reference["t"])
    assert result["logits"].dtype == torch.float32 and result["logits"].shape == reference["logits"].shape
    ref_c = _centered(reference["logits"]).flatten(1)
    error = (_centered(result["logits"]).flatten(1) - ref_c).norm(dim=1) / ref_c.norm(dim=1)
    bound = 2 * ACC_T * reference["grad_norm"] * eps * ref_c.norm(dim=1)
    change = (result["nll"] - reference["nll"]).abs()
    bpc_change = abs(bits_per_unit(result["nll"], ACC_LEN)["bpc"] - bits_per_unit(reference["nll"], ACC_LEN)["bpc"])
    return {"logits": float(error.max()) / eps, "elbo": float((change / bound).max()),
            "bpc": bpc_change / (float(bound.mean()) / (ACC_LEN * math.log(2)))}


def check_against_fp32(option, reference, eps, scheduler, input_ids, transform=None) -> dict:
    """Assert (a) and (b) of the derivation for `option`; returns `budget_use`."""
    use = budget_use(option, reference, eps, scheduler, input_ids, transform)
    assert use["logits"] <= 1, f"logits: relative error {use['logits'] * eps:.4g} exceeds the budget {eps:.4g}"
    assert use["elbo"] <= 1, f"negative ELBO: the change of an example exceeds its bound {use['elbo']:.3g}x"
    assert use["bpc"] <= 1, f"bits per character: the change exceeds its bound {use['bpc']:.3g}x"
    return use


@pytest.mark.parametrize("precision", ["bf16", "int8"])
def test_accuracy_against_fp32_within_the_derived_bound(accuracy_setup, precision):
    model, scheduler, input_ids, reference, budgets = accuracy_setup
    assert 0.05 < budgets[precision] < 0.5  # the budgets as derived (0.11 and ~0.28): far below a broken option's 1
    before = weights_of(model)
    check_against_fp32(prepare_for_inference(model, precision), reference, budgets[precision], scheduler, input_ids)
    after = weights_of(model)
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_fp32_wrapper_is_exact(accuracy_setup):
    model, scheduler, input_ids, reference, _ = accuracy_setup
    result = _evaluate(prepare_for_inference(model, "fp32"), scheduler, input_ids)
    assert torch.equal(result["logits"], reference["logits"]) and torch.equal(result["nll"], reference["nll"])


@pytest.mark.parametrize("broken", ["logits_times_2", "softmax_as_logits", "redrawn_weights"])
def test_accuracy_check_catches_broken_options(accuracy_setup, broken):
    """The check has teeth: options with a real fault fail it, even against the looser int8 budget."""
    model, scheduler, input_ids, reference, budgets = accuracy_setup
    transform = {"logits_times_2": lambda z: 2 * z, "softmax_as_logits": lambda z: z.softmax(dim=1)}.get(broken)
    option = model
    if broken == "redrawn_weights":  # e.g. weights lost or garbled while quantizing: logits of the same scale
        option = unit_gain_transformer(seed=1)
    with pytest.raises(AssertionError, match="exceeds"):
        check_against_fp32(option, reference, budgets["int8"], scheduler, input_ids, transform)
    use = budget_use(option, reference, budgets["int8"], scheduler, input_ids, transform)
    assert use["logits"] > 2  # (a) fails by a wide margin
    if broken == "logits_times_2":  # and (b), the ELBO bound, fails on its own
        assert use["elbo"] > 2


# ---------------------------------------------------------------------------------------------- bad arguments


def test_bad_arguments_name_the_value():
    model = tiny_transformer()
    with pytest.raises(ValueError, match="'fp16'"):
        prepare_for_inference(model, "fp16")
    with pytest.raises(ValueError, match="compile.*'yes'"):
        prepare_for_inference(model, "fp32", compile="yes")
    with pytest.raises(ValueError, match="compile.*1"):
        prepare_for_inference(model, "fp32", compile=1)
    with pytest.raises(ValueError, match="'fp16'"):
        InferenceDenoiser(model, "fp16")
    with pytest.raises(ValueError, match="'yes'"):
        InferenceDenoiser(model, compile="yes")
    with pytest.raises(ValueError, match="'cuda'"):  # torch.device("cuda") exists without a GPU: refused by type
        prepare_for_inference(model, "int8", device="cuda")
    with pytest.raises(ValueError, match="'not-a-device'"):
        prepare_for_inference(model, "fp32", device="not-a-device")
    with pytest.raises(ValueError, match="already an InferenceDenoiser"):
        prepare_for_inference(prepare_for_inference(model), "fp32")
    with pytest.raises(ValueError, match="torch.nn.Module"):
        prepare_for_inference("model", "fp32")
    assert set(PRECISIONS) == {"fp32", "bf16", "int8", "auto"}


def test_int8_on_a_meta_model_is_refused():
    try:
        with torch.device("meta"):
            model = tiny_transformer()
    except Exception as error:  # noqa: BLE001
        pytest.skip(f"cannot build a model on the meta device: {error}")
    assert next(model.parameters()).device.type == "meta"
    with pytest.raises(ValueError, match="'meta'"):
        prepare_for_inference(model, "int8")
    assert prepare_for_inference(model, "auto").precision == "fp32"


def test_a_device_the_model_is_not_on_is_refused():
    model = tiny_transformer()
    with pytest.raises(ValueError, match="'meta'.*'cpu'"):
        prepare_for_inference(model, "fp32", device="meta")
