"""The no-install route: `hf-multinomial export` writes a pipeline folder that a fresh virtual environment without
hf_multinomial (only the public libraries) loads with `DiffusionPipeline.from_pretrained(..., trust_remote_code=True)`,
from the folder and from a (local) Hub repository, and samples exactly what the installed package samples."""

import ast
import json
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import torch

from hf_multinomial import (DiscreteDiffusionPipeline, MultinomialScheduler, MultinomialTransformer, SegmentationUNet,
                            CharVocabulary)
from hf_multinomial.cli import main
from hf_multinomial.data import CITYSCAPES_CATEGORY_COLORS
from hf_multinomial.export import ENTRY_TEMPLATE, _check_annotation_only, export_pipeline, flatten_module
from hub_server import hub_env, hub_online, local_hub  # noqa: F401  (fixtures)

REMOTE_SCRIPT = """
import json, sys, torch
from diffusers import DiffusionPipeline

text_dir, maps_dir, repo = sys.argv[1:4]
out = {}
text = DiffusionPipeline.from_pretrained(text_dir, trust_remote_code=True)
maps = DiffusionPipeline.from_pretrained(maps_dir, trust_remote_code=True)
hub = DiffusionPipeline.from_pretrained(repo, revision="remote-code", trust_remote_code=True)
for pipe in (text, maps, hub):
    pipe.set_progress_bar_config(disable=True)
out["text"] = text(batch_size=3, generator=torch.Generator().manual_seed(0)).samples
out["maps"] = maps(batch_size=2, num_inference_steps=4, output_type="pt",
                   generator=torch.Generator().manual_seed(1)).samples.tolist()
out["hub"] = hub(batch_size=3, generator=torch.Generator().manual_seed(0)).samples
out["classes"] = sorted({type(obj).__module__ for p in (text, maps, hub) for obj in (p, *p.components.values())
                         if obj is not None})
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def fresh_venv(tmp_path_factory):
    """A virtual environment that sees this one's public libraries (through a plain path in a .pth file, which does
    not run the editable-install finder of hf_multinomial) but not hf_multinomial."""
    root = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root / "venv")], check=True)
    python = str(root / "venv" / "bin" / "python")
    purelib = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    paths = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    Path(purelib, "public_libraries.pth").write_text("\n".join(paths) + "\n")
    check = subprocess.run([python, "-c", "import diffusers, transformers, torch\nimport hf_multinomial"], cwd=root,
                           capture_output=True, text=True, env=venv_env(root))
    assert check.returncode != 0 and "No module named 'hf_multinomial'" in check.stderr, check.stderr
    return python, root


def venv_env(root, endpoint="http://127.0.0.1:9"):
    env = hub_env(Path(root), endpoint)
    env.pop("PYTHONPATH", None)
    return env


def tiny_pipelines(tmp_path):
    torch.manual_seed(0)
    text = DiscreteDiffusionPipeline(
        denoiser=MultinomialTransformer(num_classes=27, max_seq_len=24, num_train_timesteps=10, num_layers=1,
                                        hidden_size=16, num_heads=2, num_local_heads=1, local_window=4),
        scheduler=MultinomialScheduler(num_classes=27, num_train_timesteps=10),
        vocabulary=CharVocabulary.text8(),
    )
    maps = DiscreteDiffusionPipeline(
        denoiser=SegmentationUNet(num_classes=8, sample_size=(8, 16), num_train_timesteps=8, base_channels=8,
                                  channel_multipliers=(1, 2), num_res_blocks=1, attention_resolutions=(2,)),
        scheduler=MultinomialScheduler(num_classes=8, num_train_timesteps=8),
        palette=CITYSCAPES_CATEGORY_COLORS,
    )
    for pipe, name in ((text, "text"), (maps, "maps")):
        pipe.denoiser.eval()  # as from_pretrained gives it: no dropout
        pipe.set_progress_bar_config(disable=True)
        pipe.save_pretrained(tmp_path / name)
    return text, maps


def test_exported_pipelines_run_without_hf_multinomial(fresh_venv, tmp_path, hub_online):
    python, root = fresh_venv
    text, maps = tiny_pipelines(tmp_path)
    assert main(["export", str(tmp_path / "text"), "--output", str(tmp_path / "text-remote")]) == 0
    assert main(["export", str(tmp_path / "maps")]) == 0  # in place

    index = json.loads((tmp_path / "text-remote" / "model_index.json").read_text())
    assert index["_class_name"] == ["pipeline", "DiscreteDiffusionPipeline"]
    assert index["scheduler"] == ["scheduling_multinomial", "MultinomialScheduler"]
    assert index["denoiser"] == ["transformer_multinomial", "MultinomialTransformer"]
    assert index["vocabulary"] == ["vocabulary", "CharVocabulary"]
    maps_index = json.loads((tmp_path / "maps" / "model_index.json").read_text())
    assert maps_index["denoiser"] == ["unet_segmentation", "SegmentationUNet"]
    # The saved folder is untouched by an export to --output.
    assert json.loads((tmp_path / "text" / "model_index.json").read_text())["_class_name"] == "DiscreteDiffusionPipeline"
    # Every generated module stands alone: no hf_multinomial import, the only relative import is the entry file's.
    for folder in (tmp_path / "text-remote", tmp_path / "maps"):
        for path in folder.rglob("*.py"):
            tree = ast.parse(path.read_text())
            imported = [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
            imported += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
            assert not [m for m in imported if m.startswith("hf_multinomial")], path
            relative = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level > 0]
            assert relative == (["pipeline_discrete_diffusion"] if path.name == "pipeline.py" else []), path

    # The Hub route: the export pushed to the branch "remote-code" of a (local) Hub repository.
    assert main(["export", str(tmp_path / "text"), "--output", str(tmp_path / "pushed"),
                 "--push-to-hub", "user/tiny-remote"]) == 0
    assert "pipeline.py" in hub_online.files("user/tiny-remote", "remote-code")
    run = subprocess.run([python, "-c", REMOTE_SCRIPT, str(tmp_path / "text-remote"), str(tmp_path / "maps"),
                          "user/tiny-remote"], cwd=root, env=venv_env(root, hub_online.url), capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    remote = json.loads(run.stdout.strip().splitlines()[-1])
    assert all(module.startswith("diffusers_modules.") for module in remote["classes"]), remote["classes"]

    expected_text = text(batch_size=3, generator=torch.Generator().manual_seed(0)).samples
    expected_maps = maps(batch_size=2, num_inference_steps=4, output_type="pt",
                         generator=torch.Generator().manual_seed(1)).samples.tolist()
    assert remote["text"] == expected_text and remote["hub"] == expected_text and len(set(expected_text)) == 3
    assert remote["maps"] == expected_maps


def test_export_is_repeatable_and_checks_its_input(tmp_path, capsys, monkeypatch):
    _, maps = tiny_pipelines(tmp_path)
    first = export_pipeline(str(tmp_path / "maps"), str(tmp_path / "a"))
    second = export_pipeline(first)  # an exported folder exports again, to the same files
    files = sorted(p.relative_to(second) for p in Path(second).rglob("*.py"))
    assert [p.read_text() for p in sorted(Path(second).rglob("*.py"))] == \
        [(Path(first) / p).read_text() for p in files]
    # The installed class still loads it, through the generated code.
    reloaded = DiscreteDiffusionPipeline.from_pretrained(second, trust_remote_code=True)
    assert type(reloaded.denoiser).__module__.startswith("diffusers_modules.")
    reloaded.set_progress_bar_config(disable=True)
    kwargs = dict(batch_size=2, num_inference_steps=3, output_type="pt")
    assert torch.equal(reloaded(**kwargs, generator=torch.Generator().manual_seed(2)).samples,
                       maps(**kwargs, generator=torch.Generator().manual_seed(2)).samples)
    # The entry file is the template shipped with the package; without it the export fails, naming the path.
    assert (Path(first) / "pipeline.py").read_text() == Path(ENTRY_TEMPLATE).read_text()

    assert main(["export", str(tmp_path), "--output", str(tmp_path / "b")]) == 2
    assert "no model_index.json" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "text"), "--output", str(tmp_path / "a")]) == 2
    assert "not empty" in capsys.readouterr().err
    monkeypatch.setattr("hf_multinomial.export.ENTRY_TEMPLATE", str(tmp_path / "missing.py"))
    with pytest.raises(FileNotFoundError, match="missing.py"):
        export_pipeline(str(tmp_path / "maps"), str(tmp_path / "c"))
    assert not (tmp_path / "c").exists()  # checked before anything is written


def test_component_names_may_only_annotate_the_exported_pipeline():
    ok = ast.parse("def f(x: Scheduler) -> Optional[Vocabulary]:\n    return x\n")
    _check_annotation_only(ok, {"Scheduler", "Vocabulary"}, "ok")
    bad = ast.parse("def f(x):\n    return isinstance(x, Scheduler)\n")
    with pytest.raises(ValueError, match="Scheduler outside annotations"):
        _check_annotation_only(bad, {"Scheduler"}, "bad")
    source = flatten_module("hf_multinomial.models.transformer_multinomial")
    assert "def check_class_indices" in source and "from .input_checks" not in source
