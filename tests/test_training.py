"""The training loop and the text diffusion training script: learning, atomic checkpoints, exact resumption."""

import json
import math
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from hf_multinomial.training import TrainingConfig, list_checkpoints, make_accelerator, resolve_checkpoint, save_checkpoint
from hf_multinomial.training import run as training_run
from hf_multinomial.training.text_diffusion import TASK

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "train_text_diffusion.py"
CHECKPOINT_FILES = {"model.safetensors", "optimizer.bin", "scheduler.bin", "random_states_0.pkl",
                    "objective_state_0.pt", "trainer_state.json"}


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


def parse_args(argv):
    return training_run.parse_arguments(TASK, argv)


def train(arguments):
    return training_run.train(TASK, arguments)


def tiny_args(text_file, cache_dir, output_dir, *extra):
    return [
        "--preset", "tiny", "--text_file", str(text_file), "--cache_dir", str(cache_dir),
        "--output_dir", str(output_dir), "--num_card_samples", "1", "--num_validation_sequences", "16", *map(str, extra),
    ]


def run(text_file, cache_dir, output_dir, *extra):
    return train(parse_args(tiny_args(text_file, cache_dir, output_dir, *extra)))


def final_weights(output_dir):
    return load_file(os.path.join(output_dir, "denoiser", "diffusion_pytorch_model.safetensors"))


def assert_same_tensors(a: dict, b: dict):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), f"{key} differs"


def objective_state(checkpoint, process_index=0):
    return torch.load(os.path.join(checkpoint, f"objective_state_{process_index}.pt"), weights_only=True)


@torch.no_grad()
def heldout_bpc(model, scheduler, x):
    """Full-T negative ELBO (T = 10) in bits per character on a fixed batch, with fixed noise."""
    from hf_multinomial.evaluation import diffusion_negative_elbo

    nll = diffusion_negative_elbo(model, scheduler, x, batch_size=len(x), generator=torch.Generator().manual_seed(0))
    return float(nll.sum()) / x.numel() / math.log(2)


def test_training_lowers_the_loss_and_writes_checkpoints_and_pipeline(text_file, cache_dir, tmp_path):
    from hf_multinomial.pipelines.pipeline_discrete_diffusion import DiscreteDiffusionPipeline

    out = tmp_path / "run"
    args = tiny_args(text_file, cache_dir, out, "--max_train_steps", 60, "--checkpointing_steps", 20,
                     "--checkpoints_total_limit", 2)
    stats = train(parse_args(args))
    assert stats["global_step"] == 60 and len(stats["history"]) == 60

    # Checkpoints: the total limit keeps the last two, each complete.
    assert [os.path.basename(c) for c in list_checkpoints(out)] == ["checkpoint-40", "checkpoint-60"]
    for checkpoint in list_checkpoints(out):
        assert CHECKPOINT_FILES <= set(os.listdir(checkpoint))
    assert not [name for name in os.listdir(out) if name.startswith(".tmp")]
    assert list((out / "logs").rglob("events.out.tfevents.*")), "no TensorBoard events"

    # The pipeline folder, its card and results.
    assert (out / "model_index.json").is_file()
    card = (out / "README.md").read_text()
    assert "library_name: hf-multinomial" in card and "--preset tiny" in card and "| learning_rate | 0.003 |" in card
    results = json.loads((out / "train_results.json").read_text())
    assert results["global_step"] == 60 and results["validation_bpc_estimate"] > 0
    pipeline = DiscreteDiffusionPipeline.from_pretrained(out)
    pipeline.set_progress_bar_config(disable=True)
    samples = pipeline(batch_size=2, generator=torch.Generator().manual_seed(0)).samples
    assert len(samples) == 2 and all(len(s) == 32 and set(s) <= set(" abcdefghijklmnopqrstuvwxyz") for s in samples)

    # Learning: the full-T ELBO on held-out text drops well below the untrained model's (about log2(27) = 4.75).
    data, vocabulary = TASK.load_data(parse_args(args))
    x = data["validation"][:32]["input_ids"]
    torch.manual_seed(0)
    untrained = TASK.build(parse_args(args), vocabulary).denoiser
    before = heldout_bpc(untrained, pipeline.scheduler, x)
    after = heldout_bpc(pipeline.denoiser, pipeline.scheduler, x)
    assert before > 4.6 and after < before - 0.4, (before, after)
    losses = [h["loss"] for h in stats["history"]]
    assert sum(losses[-15:]) / 15 < sum(losses[:5]) / 5, losses


class BrokenObjective:
    """An objective whose state cannot be written: a checkpoint save dies half way, like a killed run."""

    def state_dict(self):
        raise RuntimeError("killed while writing the checkpoint")


def test_checkpoints_are_atomic_and_latest_ignores_partial_folders(tmp_path):
    out = tmp_path / "run"
    config = TrainingConfig(output_dir=str(out), report_to=None, checkpointing_steps=1)
    accelerator = make_accelerator(config)
    model = torch.nn.Linear(2, 2)
    model, optimizer = accelerator.prepare(model, torch.optim.Adam(model.parameters()))

    class Objective:
        def state_dict(self):
            return {"x": torch.ones(1)}

    save_checkpoint(accelerator, Objective(), config, global_step=5, epoch=0)
    assert CHECKPOINT_FILES - {"scheduler.bin"} <= set(os.listdir(out / "checkpoint-5"))
    with pytest.raises(RuntimeError, match="killed"):
        save_checkpoint(accelerator, BrokenObjective(), config, global_step=10, epoch=0)
    assert not (out / "checkpoint-10").exists()  # only the temporary folder holds the partial state
    assert (out / ".tmp-checkpoint-10").is_dir()
    assert resolve_checkpoint("latest", str(out)) == str(out / "checkpoint-5")  # the temporary folder is not one
    (out / "checkpoint-20").mkdir()  # a folder without its completion marker, e.g. copied by hand
    (out / "checkpoint-20" / "model.safetensors").write_bytes(b"")
    for which in ("latest", str(out / "checkpoint-20")):  # refused, not passed over for an older one
        with pytest.raises(FileNotFoundError, match="trainer_state.json"):
            resolve_checkpoint(which, str(out))
    (out / "checkpoint-20" / "model.safetensors").unlink()
    (out / "checkpoint-20").rmdir()
    # The next save of the same step replaces the leftover temporary folder.
    save_checkpoint(accelerator, Objective(), config, global_step=10, epoch=0)
    assert resolve_checkpoint("latest", str(out)) == str(out / "checkpoint-10")
    assert not (out / ".tmp-checkpoint-10").exists()
    accelerator.end_training()


def test_resume_single_process_is_exact(text_file, cache_dir, tmp_path):
    # Dropout (global RNG), EMA and gradient accumulation all take part; T = 10 so that importance sampling is on
    # well before the checkpoint.
    extra = ["--dropout", 0.1, "--use_ema", "--ema_decay", 0.9, "--gradient_accumulation_steps", 2,
             "--checkpointing_steps", 20, "--report_to", "none", "--num_card_samples", 0]
    run(text_file, cache_dir, tmp_path / "full", "--max_train_steps", 40, *extra)
    run(text_file, cache_dir, tmp_path / "split", "--max_train_steps", 20, *extra)
    half = objective_state(tmp_path / "split" / "checkpoint-20")
    assert (half["sampler"]["counts"] > 10).all(), "importance sampling did not kick in before the checkpoint"
    stats = run(text_file, cache_dir, tmp_path / "split", "--max_train_steps", 40, "--resume_from_checkpoint", "latest",
                *extra)
    assert stats["global_step"] == 40 and len(stats["history"]) == 20

    assert_same_tensors(final_weights(tmp_path / "full"), final_weights(tmp_path / "split"))
    assert_same_tensors(load_file(tmp_path / "full" / "checkpoint-40" / "model.safetensors"),
                        load_file(tmp_path / "split" / "checkpoint-40" / "model.safetensors"))
    full, split = objective_state(tmp_path / "full" / "checkpoint-40"), objective_state(tmp_path / "split" / "checkpoint-40")
    assert_same_tensors(full["sampler"], split["sampler"])
    assert torch.equal(full["generator"], split["generator"])
    # And the uninterrupted run is not trivially equal to something else: a different seed differs.
    run(text_file, cache_dir, tmp_path / "other", "--max_train_steps", 20, "--seed", 1, *extra)
    assert not torch.equal(load_file(tmp_path / "other" / "checkpoint-20" / "model.safetensors")["proj_out.weight"],
                           load_file(tmp_path / "split" / "checkpoint-20" / "model.safetensors")["proj_out.weight"])


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_two_processes(text_file, cache_dir, output_dir, *extra):
    accelerate = Path(sys.executable).parent / "accelerate"
    command = [
        str(accelerate), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
        "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(free_port()),
        str(SCRIPT), *tiny_args(text_file, cache_dir, output_dir, *extra),
    ]
    env = {**os.environ, "ACCELERATE_USE_CPU": "true", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_resume_two_processes_is_exact(text_file, cache_dir, tmp_path):
    extra = ["--dropout", 0.1, "--checkpointing_steps", 15, "--report_to", "none", "--num_card_samples", 0,
             "--num_validation_sequences", 0]
    full = launch_two_processes(text_file, cache_dir, tmp_path / "full", "--max_train_steps", 30, *extra)
    assert full["global_step"] == 30
    launch_two_processes(text_file, cache_dir, tmp_path / "split", "--max_train_steps", 15, *extra)
    for rank in (0, 1):
        assert (objective_state(tmp_path / "split" / "checkpoint-15", rank)["sampler"]["counts"] > 10).all()
    split = launch_two_processes(text_file, cache_dir, tmp_path / "split", "--max_train_steps", 30,
                                 "--resume_from_checkpoint", "latest", *extra)
    assert split["global_step"] == 30

    assert_same_tensors(final_weights(tmp_path / "full"), final_weights(tmp_path / "split"))
    states = {}
    for run_name in ("full", "split"):
        checkpoint = tmp_path / run_name / "checkpoint-30"
        assert CHECKPOINT_FILES | {"random_states_1.pkl", "objective_state_1.pt"} <= set(os.listdir(checkpoint))
        states[run_name] = [objective_state(checkpoint, rank) for rank in (0, 1)]
    for rank in (0, 1):
        assert_same_tensors(states["full"][rank]["sampler"], states["split"][rank]["sampler"])
        assert torch.equal(states["full"][rank]["generator"], states["split"][rank]["generator"])
    # Every process holds the same importance-sampling history (fed the gathered losses), and its own generator.
    assert_same_tensors(states["full"][0]["sampler"], states["full"][1]["sampler"])
    assert not torch.equal(states["full"][0]["generator"], states["full"][1]["generator"])


# ---------------------------------------------------------------------------------------------- nothing lost


def folder_snapshot(folder):
    """Every file under `folder` with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in Path(folder).rglob("*") if p.is_file()}


@pytest.mark.parametrize("extra", [[], ["--checkpoints_total_limit", 1]], ids=["plain", "total_limit"])
def test_a_second_run_in_a_used_folder_stops_and_loses_nothing(text_file, cache_dir, tmp_path, extra):
    out = tmp_path / "run"
    run(text_file, cache_dir, out, "--max_train_steps", 40, "--report_to", "none", "--checkpoints_total_limit", 3)
    before = folder_snapshot(out)
    assert {"checkpoint-20", "checkpoint-40", "model_index.json"} <= {p.name for p in out.iterdir()}
    with pytest.raises(FileExistsError) as error:
        run(text_file, cache_dir, out, "--max_train_steps", 10, "--report_to", "none", *extra)
    message = str(error.value)
    assert str(out) in message and "--resume_from_checkpoint latest" in message and "--overwrite_output_dir" in message
    assert folder_snapshot(out) == before


def test_overwrite_replaces_the_earlier_run_and_latest_then_resumes_the_new_one(text_file, cache_dir, tmp_path):
    out = tmp_path / "run"
    run(text_file, cache_dir, out, "--max_train_steps", 40, "--report_to", "none", "--num_card_samples", 0)
    run(text_file, cache_dir, out, "--max_train_steps", 10, "--checkpointing_steps", 5, "--checkpoints_total_limit", 1,
        "--report_to", "none", "--num_card_samples", 0, "--overwrite_output_dir")
    # Only the new run's newest checkpoint is left, and `latest` resumes it, not the earlier run's step 40.
    assert [os.path.basename(c) for c in list_checkpoints(out)] == ["checkpoint-10"]
    assert json.loads((out / "train_results.json").read_text())["global_step"] == 10
    stats = run(text_file, cache_dir, out, "--max_train_steps", 15, "--checkpointing_steps", 5,
                "--checkpoints_total_limit", 1, "--report_to", "none", "--num_card_samples", 0,
                "--resume_from_checkpoint", "latest")
    assert stats["global_step"] == 15 and len(stats["history"]) == 5


def test_the_total_limit_never_removes_another_runs_checkpoint(text_file, cache_dir, tmp_path):
    import shutil

    common = ["--report_to", "none", "--num_card_samples", 0, "--checkpointing_steps", 10]
    run(text_file, cache_dir, tmp_path / "other", "--max_train_steps", 10, "--seed", 1, *common)
    out = tmp_path / "run"
    run(text_file, cache_dir, out, "--max_train_steps", 20, *common)
    shutil.copytree(tmp_path / "other" / "checkpoint-10", out / "checkpoint-5")  # another run's, copied in by hand
    foreign = folder_snapshot(out / "checkpoint-5")
    run(text_file, cache_dir, out, "--max_train_steps", 40, "--checkpoints_total_limit", 1,
        "--resume_from_checkpoint", str(out / "checkpoint-20"), *common)
    assert [os.path.basename(c) for c in list_checkpoints(out)] == ["checkpoint-5", "checkpoint-40"]
    assert folder_snapshot(out / "checkpoint-5") == foreign


def test_the_demo_replaces_only_its_own_earlier_output(tmp_path, capsys):
    from hf_multinomial.training.demo import _demo_arguments

    out = tmp_path / "demo"
    out.mkdir()
    (out / "train_results.json").write_text(json.dumps({"preset": "demo", "global_step": 3}))
    arguments = _demo_arguments(TASK, str(out), 1.0, 0)
    assert arguments.training.overwrite_output_dir and arguments.preset == "demo"
    assert arguments.training.max_train_time_s == 1.0 and arguments.training.max_train_steps is None
    assert arguments.training.num_train_epochs is None  # the time budget alone ends the demo
    assert f"Replacing the earlier demo output in {out}" in capsys.readouterr().out
    (out / "train_results.json").write_text(json.dumps({"preset": "small", "global_step": 3}))
    with pytest.raises(FileExistsError, match="not an earlier demo's"):
        _demo_arguments(TASK, str(out), 1.0, 0)


@pytest.fixture(scope="module")
def finished_run(text_file, cache_dir, tmp_path_factory):
    """A 20-step run with EMA and a checkpoint at step 10 and 20 (every kind of checkpoint file)."""
    out = tmp_path_factory.mktemp("finished") / "run"
    run(text_file, cache_dir, out, "--max_train_steps", 20, "--checkpointing_steps", 10, "--use_ema",
        "--report_to", "none", "--num_card_samples", 0)
    return out


def checkpoint_file_names(folder):
    return sorted(str(p.relative_to(folder)) for p in Path(folder).rglob("*") if p.is_file())


def test_every_checkpoint_file_is_in_the_manifest(finished_run):
    from hf_multinomial.training import verify_checkpoint

    checkpoint = finished_run / "checkpoint-20"
    names = checkpoint_file_names(checkpoint)
    assert CHECKPOINT_FILES | {"custom_checkpoint_0.pkl"} <= set(names)
    state = verify_checkpoint(str(checkpoint))
    assert set(state["files"]) == set(names) - {"trainer_state.json"}
    assert state["arguments"]["hidden_size"] == 32 and state["config"]["learning_rate"] == 0.003


@pytest.mark.parametrize("damage", ["missing", "truncated", "changed"])
def test_a_damaged_checkpoint_is_refused_naming_the_file(finished_run, text_file, cache_dir, tmp_path, damage):
    import shutil

    from hf_multinomial.training import verify_checkpoint

    for name in checkpoint_file_names(finished_run / "checkpoint-20"):
        out = tmp_path / f"{damage}-{name.replace('/', '_')}"
        shutil.copytree(finished_run, out)
        path = out / "checkpoint-20" / name
        data = path.read_bytes()
        if damage == "missing":
            path.unlink()
        elif damage == "truncated":
            path.write_bytes(data[: len(data) // 2])
        else:
            path.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
        expected = FileNotFoundError if damage == "missing" else ValueError
        with pytest.raises(expected) as error:
            resolve_checkpoint("latest", str(out))
        assert name in str(error.value)
        if name == "random_states_0.pkl":  # and the run itself refuses it, before training anything
            with pytest.raises(expected, match="random_states_0.pkl"):
                run(text_file, cache_dir, out, "--max_train_steps", 30, "--resume_from_checkpoint", "latest",
                    "--use_ema", "--checkpointing_steps", 10, "--report_to", "none", "--num_card_samples", 0)
        shutil.rmtree(out)
    verify_checkpoint(str(finished_run / "checkpoint-20"))  # the original is untouched


def test_resume_with_a_changed_learning_rate_is_refused_or_applied_and_recorded(text_file, cache_dir, tmp_path):
    out = tmp_path / "run"
    common = ["--report_to", "none", "--num_card_samples", 0, "--checkpointing_steps", 10]
    run(text_file, cache_dir, out, "--max_train_steps", 10, *common)
    resume = ["--max_train_steps", 20, "--resume_from_checkpoint", "latest", *common]
    with pytest.raises(ValueError) as error:
        run(text_file, cache_dir, out, "--learning_rate", 0.001, "--seed", 3, *resume)
    assert "learning_rate 0.003 -> 0.001" in str(error.value) and "seed 0 -> 3" in str(error.value)
    assert "--allow_changed_hyperparameters" in str(error.value)
    with pytest.raises(ValueError, match="hidden_size 32 -> 16"):  # the model can never change
        run(text_file, cache_dir, out, "--hidden_size", 16, "--allow_changed_hyperparameters", *resume)

    stats = run(text_file, cache_dir, out, "--learning_rate", 0.001, "--allow_changed_hyperparameters", *resume)
    # tiny: no warm-up, decay 0.99 per epoch of 1687 // 8 = 210 steps; the first resumed step is step 11.
    assert stats["history"][0]["lr"] == pytest.approx(0.001 * 0.99 ** (11 / 210), rel=1e-12)
    change = {"step": 10, "name": "learning_rate", "old": 0.003, "new": 0.001}
    assert stats["hyperparameter_changes"] == [change]
    assert json.loads((out / "train_results.json").read_text())["hyperparameter_changes"] == [change]
    state = json.loads((out / "checkpoint-20" / "trainer_state.json").read_text())
    assert state["config"]["learning_rate"] == 0.001 and state["hyperparameter_changes"] == [change]
    assert "| learning_rate | 0.001 |" in (out / "README.md").read_text()
