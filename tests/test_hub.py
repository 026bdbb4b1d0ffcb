"""Hub sharing against a local Hub server (tests/hub_server.py) through the real huggingface_hub client: the training
script pushes, `from_pretrained("user/name")` downloads into an empty cache, the card reloads with its results, and an
offline push fails clearly without touching the local output."""

import json
import lzma
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from hf_multinomial.data.text import bundled_text8_path
from remote_code import BLOCK_HF_MULTINOMIAL
from hub_server import git_blob_sha1, hub_env, hub_online, local_hub  # noqa: F401  (fixtures)

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "train_text_diffusion.py"
TOKEN = "hf_local_test_token"


@pytest.fixture(scope="module")
def text_file(tmp_path_factory):
    """20,000 characters of the bundled Wikipedia sample (562 training rows of 32 characters)."""
    path = tmp_path_factory.mktemp("text") / "short.txt"
    with lzma.open(bundled_text8_path(), "rt") as f:
        path.write_text(f.read(20_000))
    return path


def sample_texts(pipeline, seed=0, batch_size=3):
    pipeline.set_progress_bar_config(disable=True)
    return pipeline(batch_size=batch_size, generator=torch.Generator().manual_seed(seed)).samples


def test_local_hub_speaks_the_client_protocol(hub_online, tmp_path):
    from huggingface_hub import HfApi, hf_hub_download, snapshot_download
    from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError

    folder = tmp_path / "folder"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_text("hello")
    (folder / "sub" / "b.bin").write_bytes(bytes(range(256)) * 40)
    api = HfApi(token=TOKEN)
    url = api.create_repo("user/proto", private=True)
    assert url.repo_id == "user/proto" and hub_online.repos["user/proto"].private
    assert api.create_repo("user/proto", exist_ok=True).repo_id == "user/proto"
    first = api.upload_folder(repo_id="user/proto", folder_path=folder, commit_message="one")
    api.upload_folder(repo_id="user/proto", folder_path=folder / "sub", path_in_repo="copy", commit_message="two")
    api.create_branch("user/proto", branch="other")
    api.upload_file(path_or_fileobj=b"branch only", path_in_repo="c.txt", repo_id="user/proto", revision="other",
                    commit_message="three")

    info = api.model_info("user/proto")
    assert sorted(s.rfilename for s in info.siblings) == [".gitattributes", "a.txt", "copy/b.bin", "sub/b.bin"]
    assert info.sha == hub_online.repos["user/proto"].branches["main"] != first.oid
    cache = tmp_path / "cache"
    hub = {"cache_dir": cache}
    path = hf_hub_download("user/proto", "sub/b.bin", **hub)
    assert Path(path).read_bytes() == (folder / "sub" / "b.bin").read_bytes() and info.sha in path
    old = hf_hub_download("user/proto", "a.txt", revision=first.oid, **hub)  # an older commit by its sha
    assert Path(old).read_text() == "hello"
    snapshot = snapshot_download("user/proto", revision="other", **hub)
    assert (Path(snapshot) / "c.txt").read_text() == "branch only" and (Path(snapshot) / "copy" / "b.bin").is_file()
    with pytest.raises(EntryNotFoundError):
        hf_hub_download("user/proto", "missing.txt", **hub)
    with pytest.raises(RepositoryNotFoundError):
        api.model_info("user/none")
    # Uploads go as regular files: nothing asked for LFS or Xet storage; the token reached the server.
    assert not hub_online.unhandled
    assert {r["authorization"] for r in hub_online.requests if "/commit/" in r["path"]} == {f"Bearer {TOKEN}"}
    assert git_blob_sha1(b"hello") == "b6fc4c620b67d95f953a5c1c1230aaab5db5a1b0"  # `git hash-object`'s


def test_training_pushes_and_from_pretrained_round_trips(local_hub, tmp_path, text_file):
    out = tmp_path / "tiny-text"
    args = ["--preset", "tiny", "--text_file", str(text_file), "--cache_dir", str(tmp_path / "data"),
            "--output_dir", str(out), "--max_train_steps", "8", "--checkpointing_steps", "4", "--report_to", "none",
            "--num_validation_sequences", "8", "--num_card_samples", "2",
            "--push_to_hub", "--push_checkpoints", "--hub_model_id", "user/tiny-text", "--hub_token", TOKEN,
            "--hub_private_repo"]
    run = subprocess.run([sys.executable, str(SCRIPT), *args], cwd=tmp_path, env=hub_env(tmp_path, local_hub.url),
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]

    # What reached the Hub: the checkpoints as they were written, then the pipeline without checkpoints, then the
    # remote-code export on its branch; with the token, into a private repository.
    assert [c["message"] for c in local_hub.commits] == [
        "Checkpoint at step 4", "Checkpoint at step 8", "Training done: step 8", "Remote code for trust_remote_code: step 8"]
    assert local_hub.repos["user/tiny-text"].private and not local_hub.unhandled
    assert {r["authorization"] for r in local_hub.requests if "/commit/" in r["path"]} == {f"Bearer {TOKEN}"}
    files = local_hub.files("user/tiny-text")
    for name in ("model_index.json", "README.md", "train_results.json", "denoiser/diffusion_pytorch_model.safetensors",
                 "scheduler/scheduler_config.json", "vocabulary/vocabulary.json", "checkpoint-4/model.safetensors",
                 "checkpoint-8/trainer_state.json"):
        assert name in files, name
    for name, data in files.items():
        if not name.startswith(".") and not name.startswith("checkpoint-"):
            assert data == (out / name).read_bytes(), name
    assert "pipeline.py" in local_hub.files("user/tiny-text", "remote-code")

    # The pushed card: parses, carries the model-index result with the bound's number of steps, says how to load.
    from huggingface_hub import ModelCard

    card = ModelCard(files["README.md"].decode())
    results = json.loads((out / "train_results.json").read_text())
    (result,) = card.data.eval_results
    assert result.metric_type == "bpc" and result.dataset_split == "validation" and result.task_type == "text-generation"
    assert result.metric_value == pytest.approx(results["validation_bpc_estimate"], abs=1e-6)
    assert "T=10" in result.metric_config and "T=10" in result.metric_name and "one-t" in result.metric_config
    assert card.data.library_name == "hf-multinomial" and card.data.license == "apache-2.0"
    assert 'DiscreteDiffusionPipeline.from_pretrained("user/tiny-text")' in card.text
    assert 'revision="remote-code", trust_remote_code=True' in card.text
    assert TOKEN not in card.content and "--hub_token '***'" in card.text

    # Download into an empty cache in a fresh process: the same samples as the local copy for the same seed.
    code = (
        "import json, os, torch\n"
        "from hf_multinomial import DiscreteDiffusionPipeline\n"
        "pipe = DiscreteDiffusionPipeline.from_pretrained('user/tiny-text')\n"
        "pipe.set_progress_bar_config(disable=True)\n"
        "samples = pipe(batch_size=3, generator=torch.Generator().manual_seed(0)).samples\n"
        "cached = sorted(os.path.relpath(os.path.join(d, f), os.environ['HF_HUB_CACHE']) for d, _, fs in "
        "os.walk(os.environ['HF_HUB_CACHE']) for f in fs)\n"
        "print(json.dumps({'samples': samples, 'cached': cached}))\n"
    )
    env = hub_env(tmp_path, local_hub.url)
    env["HF_HUB_CACHE"] = str(tmp_path / "empty_cache")
    download = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=300)
    assert download.returncode == 0, download.stderr[-3000:]
    remote = json.loads(download.stdout.strip().splitlines()[-1])
    from hf_multinomial import DiscreteDiffusionPipeline

    assert remote["samples"] == sample_texts(DiscreteDiffusionPipeline.from_pretrained(out))
    assert len(set(remote["samples"])) == 3
    assert not [f for f in remote["cached"] if "checkpoint-" in f]  # the pipeline's files only


def test_offline_push_fails_clearly_and_keeps_the_local_output(tmp_path, text_file, monkeypatch, caplog):
    from hf_multinomial import DiscreteDiffusionPipeline
    from hf_multinomial.training import run as training_run
    from hf_multinomial.training.text_diffusion import TASK

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    out = tmp_path / "offline"
    args = training_run.parse_arguments(TASK, ["--preset", "tiny", "--text_file", str(text_file), "--cache_dir", str(tmp_path / "data"),
                       "--output_dir", str(out), "--max_train_steps", "4", "--checkpointing_steps", "2",
                       "--report_to", "none", "--num_validation_sequences", "8", "--push_to_hub",
                       "--push_checkpoints", "--hub_model_id", "user/offline"])
    with pytest.raises(RuntimeError) as error:
        training_run.train(TASK, args)
    message = str(error.value)
    assert "offline" in message and "'user/offline'" in message and str(out) in message
    # The failed checkpoint pushes only warned; everything was saved before the final push.
    assert "checkpoint-2 was not pushed" in caplog.text
    for name in ("model_index.json", "README.md", "train_results.json", "checkpoint-2", "checkpoint-4"):
        assert (out / name).exists(), name
    assert len(sample_texts(DiscreteDiffusionPipeline.from_pretrained(out), batch_size=2)) == 2


def test_model_card_results_reload_and_update(tmp_path):
    from huggingface_hub import ModelCard

    from hf_multinomial.training.model_card import (bits_eval_result, build_model_card, diffusion_bound,
                                                    update_model_card_results)

    estimate = bits_eval_result(2.5, "bpc", diffusion_bound(1000, estimate=True), "text8", "text8", "validation",
                                num_examples=64)
    path = str(tmp_path / "README.md")
    build_model_card("text_diffusion", {"tags": ["x"]},
                     dict(hyperparameters={"preset": "p", "seq_len": 8, "num_train_timesteps": 1000},
                          stats={"train_bpc": None, "validation_bpc_estimate": 2.5}, samples=["abc"],
                          data_description="d", vocabulary_size=27,
                          model_id="user/m", remote_code_revision=None),
                     eval_results=[estimate], model_name="m").save(path)
    card = ModelCard.load(path)
    assert card.data.eval_results == [estimate] and card.data.model_name == "m"
    assert "hf-multinomial export user/m --output exported" in card.text and "```text\nabc\n```" in card.text

    full = bits_eval_result(2.4, "bpc", diffusion_bound(1000, estimate=False), "text8", "text8", "test")
    full_again = bits_eval_result(2.3, "bpc", diffusion_bound(1000, estimate=False), "text8", "text8", "test")
    update_model_card_results(path, [full])
    update_model_card_results(path, [full_again])  # the same split, metric and bound: replaced
    reloaded = ModelCard.load(path).data.eval_results
    assert reloaded == [estimate, full_again] and "all T=1000 steps" in reloaded[1].metric_config
    with pytest.raises(ValueError, match="metric_type"):
        bits_eval_result(1.0, "nll", "b", "t", "t", "test")


def test_push_folder_to_hub_api(hub_online, tmp_path):
    from hf_multinomial.training.hub import hub_repo_id, push_folder_to_hub

    folder = tmp_path / "run-7"
    (folder / "checkpoint-3").mkdir(parents=True)
    (folder / "model.txt").write_text("m")
    (folder / "checkpoint-3" / "state.txt").write_text("s")
    assert hub_repo_id({"output_dir": str(folder)}) == "run-7"
    commit = push_folder_to_hub({"output_dir": str(folder)}, str(folder), "final", ignore_patterns=["checkpoint-*/**"])
    assert commit.repo_url.repo_id == "user/run-7"  # the server's namespace for a bare name
    assert sorted(hub_online.files("user/run-7")) == [".gitattributes", "model.txt"]
    push_folder_to_hub({"hub_model_id": "user/run-7"}, str(folder / "checkpoint-3"), "ckpt", path_in_repo="checkpoint-3")
    push_folder_to_hub({"hub_model_id": "user/run-7"}, str(folder), "branch", revision="side")
    assert "checkpoint-3/state.txt" in hub_online.files("user/run-7")
    assert "checkpoint-3/state.txt" in hub_online.files("user/run-7", "side")
    with pytest.raises(ValueError, match="hub_model_id"):
        hub_repo_id({})


FLOW_SCRIPT = REPO / "scripts" / "train_argmax_flow.py"



def test_argmax_flow_pushes_and_auto_model_round_trips(local_hub, tmp_path, text_file):
    out = tmp_path / "tiny-flow"
    args = ["--preset", "tiny", "--text_file", str(text_file), "--cache_dir", str(tmp_path / "data"),
            "--output_dir", str(out), "--max_train_steps", "6", "--checkpointing_steps", "3", "--report_to", "none",
            "--num_validation_sequences", "8", "--num_card_samples", "2",
            "--push_to_hub", "--push_checkpoints", "--hub_model_id", "user/tiny-flow", "--hub_token", TOKEN]
    run = subprocess.run([sys.executable, str(FLOW_SCRIPT), *args], cwd=tmp_path, env=hub_env(tmp_path, local_hub.url),
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]

    # The checkpoints as they were written, then the model folder (weights, auto_map, modeling files, vocabulary,
    # card) on main, without checkpoints: no separate remote-code branch is needed for a transformers model.
    assert [c["message"] for c in local_hub.commits] == [
        "Checkpoint at step 3", "Checkpoint at step 6", "Training done: step 6"]
    assert not local_hub.unhandled and set(local_hub.repos["user/tiny-flow"].branches) == {"main"}
    files = local_hub.files("user/tiny-flow")
    for name in ("config.json", "model.safetensors", "modeling_argmax_flow.py", "configuration_argmax_flow.py",
                 "vocabulary.json", "README.md", "train_results.json", "checkpoint-3/model.safetensors"):
        assert name in files, name
    for name, data in files.items():
        if not name.startswith(".") and not name.startswith("checkpoint-"):
            assert data == (out / name).read_bytes(), name
    assert json.loads(files["config.json"])["auto_map"]["AutoModel"] == "modeling_argmax_flow.ArgmaxFlowModel"

    # The pushed card: parses, holds the validation ELBO in model-index, names both ways to load.
    from huggingface_hub import ModelCard

    card = ModelCard(files["README.md"].decode())
    results = json.loads((out / "train_results.json").read_text())
    (result,) = card.data.eval_results
    assert result.metric_type == "bpc" and result.dataset_split == "validation"
    assert result.task_type == "text-generation" and result.dataset_name == "text file short.txt"
    assert result.metric_value == pytest.approx(results["validation_bpc"], abs=1e-6)
    assert result.metric_config == "ELBO, 1 draw of q(v|x)" and result.dataset_args == {"num_examples": 8}
    assert card.data.model_name == "tiny-flow" and card.data.library_name == "transformers"
    assert "import hf_multinomial\n" in card.text and 'AutoModel.from_pretrained("user/tiny-flow")' in card.text
    assert 'AutoModel.from_pretrained("user/tiny-flow", trust_remote_code=True)' in card.text
    assert 'hf_hub_download("user/tiny-flow", "vocabulary.json")' in card.text
    assert TOKEN not in card.content

    # Download into empty caches in fresh processes: with the package (its registered class), and without it
    # (the pushed modeling files through trust_remote_code); the card's decoding recipe included.
    sample = (
        "import json, torch\n"
        "from huggingface_hub import hf_hub_download\n"
        "from transformers import AutoModel\n"
        "model = AutoModel.from_pretrained('user/tiny-flow'{kwargs}).eval()\n"
        "ids = model.sample(3, generator=torch.Generator().manual_seed(0))\n"
        "symbols = json.load(open(hf_hub_download('user/tiny-flow', 'vocabulary.json')))['symbols']\n"
        "texts = [''.join(symbols[i] for i in row) for row in ids.tolist()]\n"
        "print(json.dumps({{'ids': ids.tolist(), 'texts': texts, 'module': type(model).__module__}}))\n"
    )
    remote = {}
    for name, code in (("installed", "import hf_multinomial\n" + sample.format(kwargs="")),
                       ("remote_code", BLOCK_HF_MULTINOMIAL + sample.format(kwargs=", trust_remote_code=True"))):
        env = hub_env(tmp_path / name, local_hub.url)
        env["HF_HUB_CACHE"] = str(tmp_path / name / "empty_cache")
        download = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                                  timeout=300)
        assert download.returncode == 0, download.stderr[-3000:]
        remote[name] = json.loads(download.stdout.strip().splitlines()[-1])
    assert remote["installed"]["module"] == "hf_multinomial.flows.modeling_argmax_flow"
    assert remote["remote_code"]["module"].startswith("transformers_modules")

    from transformers import AutoModel

    from hf_multinomial import CharVocabulary

    local = AutoModel.from_pretrained(out).eval()
    expected = local.sample(3, generator=torch.Generator().manual_seed(0))
    texts = CharVocabulary.from_pretrained(out).batch_decode(expected)
    for name in ("installed", "remote_code"):
        assert remote[name]["ids"] == expected.tolist(), name
        assert remote[name]["texts"] == texts, name
    assert len(set(texts)) == 3


def test_argmax_flow_offline_push_fails_clearly_and_keeps_the_local_output(tmp_path, text_file, monkeypatch):
    from transformers import AutoModel

    from hf_multinomial.training import run as training_run
    from hf_multinomial.training.argmax_flow import TASK

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    out = tmp_path / "offline-flow"
    args = training_run.parse_arguments(TASK, ["--preset", "tiny", "--text_file", str(text_file), "--cache_dir", str(tmp_path / "data"),
                       "--output_dir", str(out), "--max_train_steps", "2", "--report_to", "none",
                       "--num_validation_sequences", "4", "--push_to_hub", "--hub_model_id", "user/offline-flow"])
    with pytest.raises(RuntimeError) as error:
        training_run.train(TASK, args)
    message = str(error.value)
    assert "offline" in message and "'user/offline-flow'" in message and str(out) in message
    for name in ("config.json", "model.safetensors", "vocabulary.json", "README.md", "train_results.json"):
        assert (out / name).exists(), name
    assert AutoModel.from_pretrained(out).sample(2, generator=torch.Generator().manual_seed(0)).shape == (2, 16)
