"""Beyond one machine: the `accelerate_configs/` of the repository are valid for `accelerate launch --config_file`
with the installed accelerate, and a run on two "machines" of one process each (two `accelerate launch` commands,
`--num_machines 2`, ranks 0 and 1, meeting at 127.0.0.1) trains exactly as two processes on one machine.

Self-contained on purpose (the flags and helpers are those of `tests/test_training.py`): it imports nothing of
`hf_multinomial.training`, so that the config checks run whatever state the training layer is in."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from accelerate.commands.config.config_args import ClusterConfig, load_config_from_file
from accelerate.commands.launch import _validate_launch_command, launch_command_parser
from accelerate.utils import FullyShardedDataParallelPlugin, patch_environment
from accelerate.utils.launch import prepare_multi_gpu_env
from safetensors.torch import load_file


REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "train_text_diffusion.py"
CONFIGS = REPO / "accelerate_configs"
ACCELERATE = Path(sys.executable).parent / "accelerate"
STEPS = 12
# The tiny preset, without the sampled card text and the validation pass: only the final weights are compared.
FLAGS = ["--preset", "tiny", "--max_train_steps", str(STEPS), "--report_to", "none", "--num_card_samples", "0",
         "--num_validation_sequences", "0"]
# name -> (processes in all, machines, how accelerate launches it)
EXPECTED = {
    "multi_gpu.yaml": (8, 1, "multi_gpu"),
    "fsdp.yaml": (8, 1, "use_fsdp"),
    "multi_node.yaml": (16, 2, "multi_gpu"),
    "cpu_two_processes.yaml": (2, 1, "multi_gpu"),
}


def test_every_config_is_listed():
    assert sorted(p.name for p in CONFIGS.glob("*.yaml")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_config_is_valid_for_accelerate_launch(name):
    """What `accelerate launch --config_file` does before it starts anything: read the file (unknown keys are an
    error), fill and check the launch arguments, build the launcher's environment; for FSDP, also the plugin that
    each process builds from that environment."""
    path = str(CONFIGS / name)
    config = load_config_from_file(path)
    assert isinstance(config, ClusterConfig)
    num_processes, num_machines, launcher = EXPECTED[name]
    args = launch_command_parser().parse_args(["--config_file", path, "--main_process_port", "0", str(SCRIPT)])
    args, defaults, _ = _validate_launch_command(args)
    assert getattr(args, launcher) and (args.num_processes, args.num_machines) == (num_processes, num_machines)
    assert args.mixed_precision == "no" and args.dynamo_backend == "no"
    env = prepare_multi_gpu_env(args)
    if num_machines > 1:
        assert (args.nnodes, args.nproc_per_node, args.node_rank) == ("2", "8", 0)
    if launcher == "use_fsdp":
        assert env["ACCELERATE_USE_FSDP"] == "true" and env["FSDP_VERSION"] == "2"
        with patch_environment(**{k: v for k, v in env.items() if k.startswith(("FSDP_", "ACCELERATE_"))}):
            plugin = FullyShardedDataParallelPlugin()
        assert plugin.fsdp_version == 2 and plugin.state_dict_type.name == "SHARDED_STATE_DICT"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(text_file, cache_dir, output_dir, *machines, timeout=300):
    """One `accelerate launch` per machine, started at once, each with its own launch arguments (`machines`), all
    writing to `output_dir` (the file system the machines share; only the main process writes the model), with
    ACCELERATE_USE_CPU=true. Returns the result the main process prints."""
    env = {**os.environ, "ACCELERATE_USE_CPU": "true", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    script = [str(SCRIPT), "--text_file", str(text_file), "--cache_dir", str(cache_dir),
              "--output_dir", str(output_dir), *FLAGS]
    machines = [subprocess.Popen([str(ACCELERATE), "launch", *map(str, launch_args), *script], env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for launch_args in machines]
    outputs = []
    try:
        for machine in machines:
            outputs.append(machine.communicate(timeout=timeout))
    finally:
        for machine in machines:  # one machine failing leaves the other waiting for it
            if machine.poll() is None:
                machine.kill()
                machine.communicate()
    for rank, (machine, (out, err)) in enumerate(zip(machines, outputs)):
        assert machine.returncode == 0, f"machine {rank}:\n{out[-3000:]}\n{err[-5000:]}"
    return json.loads(outputs[0][0].strip().splitlines()[-1])


def final_weights(output_dir):
    return load_file(os.path.join(output_dir, "denoiser", "diffusion_pytorch_model.safetensors"))


@pytest.mark.slow
def test_two_machines_train_as_two_processes_on_one(text_file, tmp_path):
    cache_dir = tmp_path / "cache"  # built by the first run, read by the second
    # Two processes on one machine, with the repository's CPU config as the README launches it.
    one = launch(text_file, cache_dir, tmp_path / "one-machine",
                 ["--config_file", CONFIGS / "cpu_two_processes.yaml", "--main_process_port", free_port()])
    # Two machines of one process each on 127.0.0.1: the repository's multi-node config, with this test's machines.
    port = free_port()
    two = launch(text_file, cache_dir, tmp_path / "two-machines", *[
        ["--config_file", CONFIGS / "multi_node.yaml", "--multi_gpu", "--num_machines", 2, "--machine_rank", rank,
         "--num_processes", 2, "--main_process_ip", "127.0.0.1", "--main_process_port", port,
         "--mixed_precision", "no", "--dynamo_backend", "no"]
        for rank in (0, 1)])
    assert one["global_step"] == two["global_step"] == STEPS
    expected, weights = final_weights(tmp_path / "one-machine"), final_weights(tmp_path / "two-machines")
    assert expected.keys() == weights.keys() and len(weights) > 0
    for key in expected:
        assert torch.equal(expected[key], weights[key]), f"{key} differs"
