# Copyright 2026 The hf-multinomial Authors. Apache-2.0.
"""Faster inference for the denoisers: bfloat16 autocast, int8 dynamic quantization of the linear layers and
`torch.compile`, chosen per machine.

Which precision is fast depends on the CPU. For the paper-size text8 denoiser at batch 1, the figures reported so far
(rerun `scripts/benchmarks/bench_sampling_precision.py` on an idle machine to check them): on a CPU with AVX512-BF16 /
AVX512-VNNI / AMX, bf16 about 1.8x and int8 about 2.2x faster than fp32; on an AVX2-only CPU there is no native bf16
GEMM and bf16 GEMMs are about 8x *slower* than fp32.
`precision="auto"` therefore looks at the CPU (`cpu_features`) and at what torch dispatches to
(`torch.backends.cpu.get_cpu_capability()`, which `ATEN_CPU_CAPABILITY=avx2` lowers) before picking one.

    from hf_multinomial import DiscreteDiffusionPipeline, prepare_for_inference

    pipe = DiscreteDiffusionPipeline.from_pretrained("my-model")
    fast = DiscreteDiffusionPipeline(denoiser=prepare_for_inference(pipe.denoiser, "auto"), scheduler=pipe.scheduler,
                                     vocabulary=pipe.vocabulary)

The wrapper never changes the stored model: bf16 runs the fp32 weights under `torch.autocast`, and int8 quantizes a
copy. Save the original model, not the wrapper.
"""

import copy
import dataclasses
import types
import warnings
from typing import Mapping, Optional, Union

import torch

PRECISIONS = ("fp32", "bf16", "int8", "auto")
CONCRETE_PRECISIONS = ("fp32", "bf16", "int8")

# The /proc/cpuinfo flags that decide which precision is fast, and the torch CPU capability each needs: the
# AVX512-encoded instructions (and AMX, whose kernels ship next to them) are not used by a torch that dispatches at
# AVX2 or lower; AVX-VNNI is VEX-encoded, an AVX2-level extension.
CPU_FLAGS = {
    "avx2": "AVX2",
    "avx512f": "AVX512",
    "avx512_bf16": "AVX512",
    "amx_bf16": "AVX512",
    "avx512_vnni": "AVX512",
    "avx_vnni": "AVX2",
    "amx_int8": "AVX512",
}


def _capability_level(capability: str) -> int:
    """0 for "DEFAULT" / "NO AVX" and non-x86 capabilities, 1 for "AVX2", 2 for every "AVX512..." level."""
    capability = str(capability).upper()
    if capability.startswith("AVX512"):
        return 2
    if capability.startswith("AVX2"):
        return 1
    return 0


def _read_cpuinfo_flags(path: str = "/proc/cpuinfo") -> set:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.split(":", 1)[0].strip() == "flags":
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_features() -> dict:
    """
    The CPU features that decide which inference precision is fast.

    Returns:
        `dict` with `capability` (`torch.backends.cpu.get_cpu_capability()`, e.g. "AVX2" or "AVX512"), `flags` (one
        bool per /proc/cpuinfo flag of `CPU_FLAGS`: what the CPU has, all False where /proc/cpuinfo is missing) and
        `usable` (the same flags, False where torch's capability is below the level the flag needs: under
        `ATEN_CPU_CAPABILITY=avx2` the AVX512 and AMX flags are not usable).
    """
    capability = torch.backends.cpu.get_cpu_capability()
    present = _read_cpuinfo_flags()
    flags = {name: name in present for name in CPU_FLAGS}
    level = _capability_level(capability)
    usable = {name: flags[name] and level >= _capability_level(needed) for name, needed in CPU_FLAGS.items()}
    return {"capability": capability, "flags": flags, "usable": usable}


def _usable_flags(features: Optional[Mapping]) -> dict:
    """The usable flags of a `cpu_features()`-shaped dict (recomputed from `capability` and `flags`, so a fake dict
    without `usable` works too)."""
    features = cpu_features() if features is None else features
    level = _capability_level(features.get("capability", "DEFAULT"))
    flags = features.get("flags", {})
    return {name: bool(flags.get(name, False)) and level >= _capability_level(needed) for name, needed in CPU_FLAGS.items()}


def native_bf16(features: Optional[Mapping] = None) -> bool:
    """Whether bf16 matmuls run natively: torch dispatches at an AVX512 level and the CPU has AVX512-BF16 or AMX-BF16.
    `features` is a `cpu_features()` dict (default: this machine's)."""
    usable = _usable_flags(features)
    return usable["avx512_bf16"] or usable["amx_bf16"]


def native_int8(features: Optional[Mapping] = None) -> bool:
    """Whether int8 matmuls have dot-product instructions: AVX512-VNNI, AVX-VNNI or AMX-INT8 (the AVX512 and AMX ones
    only where torch dispatches at an AVX512 level). `features` is a `cpu_features()` dict (default: this machine's)."""
    usable = _usable_flags(features)
    return usable["avx512_vnni"] or usable["avx_vnni"] or usable["amx_int8"]


def _check_precision_name(precision) -> None:
    if not isinstance(precision, str) or precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(map(repr, PRECISIONS))}, got {precision!r}")


def _as_device(device) -> torch.device:
    if isinstance(device, torch.device):
        return device
    if not isinstance(device, str):
        raise ValueError(f"device must be a torch.device or a device string such as 'cpu', got {device!r}")
    try:
        return torch.device(device)
    except RuntimeError as error:
        raise ValueError(f"device={device!r} is not a device: {error}") from None


def decide_precision(precision: str, device_type: str, features: Optional[Mapping] = None,
                     cuda_bf16: bool = False) -> str:
    """
    The decision of [`resolve_precision`] as a pure function: a concrete precision ("fp32", "bf16" or "int8") for
    `precision` on a device of type `device_type`, given the CPU `features` (a `cpu_features()` dict; only read on
    "cpu") and, on "cuda", whether the GPU supports bf16 (`cuda_bf16`).

    Raises:
        ValueError: For an unknown precision (naming it and the choices), or "int8" on a device other than the CPU
            (dynamic quantization has CPU kernels only).
    """
    _check_precision_name(precision)
    if precision == "int8" and device_type != "cpu":
        raise ValueError(
            f"precision='int8' (dynamic quantization) runs on the CPU only, but the denoiser is on device "
            f"{device_type!r}: use 'bf16' or 'fp32' there, or move the denoiser to the CPU"
        )
    if precision != "auto":
        return precision
    if device_type == "cpu":
        # int8 first: where the CPU has VNNI it is the fastest option reported (about 2.2x fp32, bf16 about 1.8x).
        if native_int8(features):
            return "int8"
        if native_bf16(features):
            return "bf16"
        return "fp32"
    if device_type == "cuda":
        return "bf16" if cuda_bf16 else "fp32"
    return "fp32"


def resolve_precision(precision: str, device: Union[str, torch.device, None] = None) -> str:
    """
    A concrete precision for `precision` on `device` (default: the CPU).

    "auto" on the CPU is "int8" where the CPU has int8 dot-product instructions ([`native_int8`]), else "bf16" where it
    has native bf16 ([`native_bf16`]), else "fp32"; on CUDA "bf16" if `torch.cuda.is_bf16_supported()`, else "fp32";
    "fp32" on any other device. An explicit precision is returned as given.

    Raises:
        ValueError: For an unknown precision or device, or "int8" on a device other than the CPU.
    """
    _check_precision_name(precision)
    device = torch.device("cpu") if device is None else _as_device(device)
    features = cpu_features() if device.type == "cpu" and precision == "auto" else None
    cuda_bf16 = False
    if device.type == "cuda" and precision == "auto":
        cuda_bf16 = bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    return decide_precision(precision, device.type, features, cuda_bf16)


def _module_device(module: torch.nn.Module) -> torch.device:
    for tensor in module.parameters():
        return tensor.device
    for tensor in module.buffers():
        return tensor.device
    return torch.device("cpu")


def _quantize_int8(model: torch.nn.Module) -> torch.nn.Module:
    """A copy of `model` with every `nn.Linear` replaced by a dynamically quantized int8 one (weights: per-tensor
    symmetric qint8, scale max|w| / 127.5; activations quantized per call, per tensor)."""
    try:
        quantize_dynamic = torch.ao.quantization.quantize_dynamic
    except AttributeError:
        raise ValueError(
            f"precision='int8' needs torch.ao.quantization.quantize_dynamic, which torch {torch.__version__} does not "
            "have; use 'bf16' or 'fp32'"
        ) from None
    with warnings.catch_warnings():
        # torch >= 2.9 marks the eager-mode `torch.ao.quantization` API as deprecated (in favour of torchao, which is
        # not a dependency) with a DeprecationWarning per call, and the quantized tensor constructors it uses with a
        # UserWarning; the API still works in the torch versions we support. Only those two messages are silenced.
        warnings.filterwarnings("ignore", message=r"torch\.ao\.quantization is deprecated", category=DeprecationWarning)
        warnings.filterwarnings(
            "ignore", message=r"torch\.quantize_per_tensor, torch\.quantize_per_channel and other quantized tensor",
            category=UserWarning,
        )
        return quantize_dynamic(copy.deepcopy(model), {torch.nn.Linear}, dtype=torch.qint8, inplace=True)


# torch.compile warns that it traces through `functools.lru_cache` wrappers; the only one a denoiser forward calls is
# `local_global_mask` of the text transformer, a pure function of its (int) arguments, so tracing it is exact.
_LRU_CACHE_WARNING = r"Dynamo detected a call to a `functools\.lru_cache`-wrapped function at 'transformer_multinomial\.py"


class InferenceDenoiser(torch.nn.Module):
    """
    A denoiser wrapped for inference at a precision, optionally compiled; a drop-in replacement for the denoiser in
    [`DiscreteDiffusionPipeline`] and [`~hf_multinomial.evaluation.diffusion_negative_elbo`].

    `forward(sample, timestep)` takes the wrapped model's arguments and returns its output class with `.sample` as
    float32 logits of the same shape, whatever the precision. The wrapper is in eval mode; `config` is the wrapped
    model's config and `parameters()`, `device` and `dtype` are those of the module that runs.

    Args:
        model (`torch.nn.Module`): a denoiser such as [`MultinomialTransformer`] or [`SegmentationUNet`], whose
            `model(sample, timestep).sample` are logits.
        precision (`str`, defaults to "fp32"): "fp32" (the model as is), "bf16" (the forward under
            `torch.autocast(device_type, dtype=torch.bfloat16)`; the fp32 weights are not converted), "int8" (a copy
            of the model with its `nn.Linear` layers dynamically quantized to int8; CPU only) or "auto" (see
            [`resolve_precision`], for the model's device).
        compile (`bool`, defaults to False): run the forward through `torch.compile` (the first call at each new
            input shape compiles, which takes seconds to minutes).

    Attributes:
        precision (`str`): the concrete precision ("auto" resolved).
        compiled (`bool`): whether the forward is compiled.
        model (`torch.nn.Module`): the module that runs (the quantized copy for "int8", else the model itself).
    """

    def __init__(self, model: torch.nn.Module, precision: str = "fp32", compile: bool = False):
        super().__init__()
        if not isinstance(model, torch.nn.Module):
            raise ValueError(f"model must be a torch.nn.Module denoiser, got {type(model).__name__} {model!r:.80}")
        if isinstance(model, InferenceDenoiser):
            raise ValueError("model is already an InferenceDenoiser: wrap the original denoiser instead")
        _check_precision_name(precision)
        if not isinstance(compile, bool):
            raise ValueError(f"compile must be True or False, got {compile!r}")
        device = _module_device(model)
        precision = resolve_precision(precision, device)
        self.precision = precision
        self.compiled = compile
        self.config = getattr(model, "config", None)
        self._device_type = device.type
        self.model = _quantize_int8(model) if precision == "int8" else model
        self._forward = self._run
        if compile:
            # torch.compile keeps its cache, and its limit of 8 recompilations, per code object: compiling the method
            # itself would make every InferenceDenoiser (and every model kind) share one cache, and the ninth
            # compiled wrapper in a process would silently fall back to eager. Each wrapper compiles its own copy.
            run = InferenceDenoiser._run
            own_run = types.FunctionType(run.__code__.replace(), run.__globals__, run.__name__, run.__defaults__,
                                         run.__closure__)
            self._forward = torch.compile(types.MethodType(own_run, self))
        self.eval()

    def _run(self, sample, timestep):
        if self.precision == "bf16":
            with torch.autocast(self._device_type, dtype=torch.bfloat16):
                return self.model(sample, timestep)
        return self.model(sample, timestep)

    def forward(self, sample: torch.Tensor, timestep: Union[torch.Tensor, int], return_dict: bool = True):
        """
        Args:
            sample (`torch.LongTensor`): class indices, as for the wrapped model (`(B, L)` or `(B, H, W)`).
            timestep (`torch.Tensor` of shape `(B,)`, 0-dim tensor or `int`): the diffusion timesteps.
            return_dict (`bool`, defaults to True): return the wrapped model's output class instead of a tuple.

        Returns:
            The wrapped model's output (e.g. [`MultinomialTransformerOutput`]) with `sample` as float32 logits, or
            `(logits,)`.
        """
        if self.compiled:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=_LRU_CACHE_WARNING, category=UserWarning)
                output = self._forward(sample, timestep)
        else:
            output = self._forward(sample, timestep)
        logits = output.sample if hasattr(output, "sample") else output[0]
        logits = logits.float()
        if not return_dict:
            return (logits,)
        if hasattr(output, "sample"):
            if dataclasses.is_dataclass(output):
                return dataclasses.replace(output, sample=logits) if output.sample is not logits else output
            output.sample = logits
            return output
        return (logits,)  # the wrapped model returned a tuple: so does its wrapper

    @property
    def device(self) -> torch.device:
        return _module_device(self.model)

    @property
    def dtype(self) -> torch.dtype:
        """The dtype of the stored floating-point weights (float32: bf16 converts on the fly, int8 keeps the
        non-linear layers in fp32)."""
        for tensor in self.model.parameters():
            if tensor.is_floating_point():
                return tensor.dtype
        return torch.float32

    def extra_repr(self) -> str:
        return f"precision={self.precision!r}, compiled={self.compiled}"


def prepare_for_inference(
    denoiser: torch.nn.Module,
    precision: str = "fp32",
    compile: bool = False,
    device: Union[str, torch.device, None] = None,
) -> InferenceDenoiser:
    """
    Wrap `denoiser` for inference: an [`InferenceDenoiser`] at `precision`, compiled with `torch.compile` if `compile`.

    Args:
        denoiser (`torch.nn.Module`): e.g. [`MultinomialTransformer`] or [`SegmentationUNet`]; it is not modified
            (beyond being put in eval mode), and int8 quantizes a copy.
        precision (`str`, defaults to "fp32"): one of `PRECISIONS`: "fp32", "bf16", "int8" (CPU only) or "auto" (the
            fastest for the device and CPU, see [`resolve_precision`]).
        compile (`bool`, defaults to False): compile the forward.
        device (`str` or `torch.device`, *optional*): the device the denoiser runs on, to resolve "auto" for; it must
            be the denoiser's own device (default), move the denoiser first with `denoiser.to(device)`.

    Raises:
        ValueError: For an unknown precision, a `compile` that is not a bool, an unknown device or one the denoiser is
            not on, or "int8" on a device other than the CPU; the message names the value.
    """
    if not isinstance(denoiser, torch.nn.Module):
        raise ValueError(f"denoiser must be a torch.nn.Module, got {type(denoiser).__name__}")
    if device is not None:
        device, model_device = _as_device(device), _module_device(denoiser)
        if device.type != model_device.type or (device.index is not None and device != model_device):
            raise ValueError(
                f"device={str(device)!r} but the denoiser is on {str(model_device)!r}: move it first with "
                f"denoiser.to({str(device)!r})"
            )
    # The wrapper checks the precision and `compile`, and resolves "auto" for the denoiser's (= `device`'s) device.
    return InferenceDenoiser(denoiser, precision, compile=compile)


__all__ = [
    "CPU_FLAGS",
    "InferenceDenoiser",
    "PRECISIONS",
    "cpu_features",
    "decide_precision",
    "native_bf16",
    "native_int8",
    "prepare_for_inference",
    "resolve_precision",
]
