"""Packaging: the model card templates and the entry file of exported pipelines are package data, so a normal
(non-editable) install from a wheel writes the project's model cards and exports the same folders as the editable
install of the source checkout, instead of silently falling back to huggingface_hub's default card."""

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from hf_multinomial.training import model_card
from hub_server import hub_env

ROOT = Path(__file__).resolve().parents[1]
TEMPLATES = ("text_diffusion", "segmentation_diffusion", "argmax_flow", "segmentation_flow")
# In the project's text_diffusion template only; huggingface_hub's default template starts with "# Model Card for".
PROJECT_LINE = "A character-level [Multinomial Diffusion](https://arxiv.org/abs/2102.05379) model (Hoogeboom"

# Run by the installed package in the fresh environment, and by the editable one in this process, on the same inputs.
CHECK_SCRIPT = r'''
import json, os, sys
from pathlib import Path


def check(work):
    import torch
    import hf_multinomial
    from hf_multinomial import CharVocabulary, DiscreteDiffusionPipeline, MultinomialScheduler, MultinomialTransformer
    from hf_multinomial.export import ENTRY_TEMPLATE, export_pipeline
    from hf_multinomial.training.model_card import build_model_card, model_card_template

    work = Path(work)
    out = {"file": hf_multinomial.__file__, "sys_path": sys.path, "entry_template": ENTRY_TEMPLATE,
           "templates": {name: model_card_template(name) for name in %(templates)r}}
    card = build_model_card(
        "text_diffusion", dict(tags=["text8"], datasets=["text8"]),
        dict(data_description="text8", vocabulary_size=27, model_id="user/tiny", remote_code_revision="remote-code",
             command="accelerate launch scripts/train_text_diffusion.py --preset tiny",
             hyperparameters=dict(preset="tiny", seq_len=24, num_train_timesteps=10, lr_decay_per_epoch=0.99),
             stats=dict(global_step=3, epochs=1, train_time_s=1.0, num_parameters=100, train_bpc=None,
                        validation_bpc_estimate=None),
             samples=["a tiny sample"]))
    out["card"] = str(card)

    torch.manual_seed(0)
    pipe = DiscreteDiffusionPipeline(
        denoiser=MultinomialTransformer(num_classes=27, max_seq_len=24, num_train_timesteps=10, num_layers=1,
                                        hidden_size=16, num_heads=2, num_local_heads=1, local_window=4),
        scheduler=MultinomialScheduler(num_classes=27, num_train_timesteps=10),
        vocabulary=CharVocabulary.text8(),
    )
    pipe.save_pretrained(work / "saved")
    exported = Path(export_pipeline(str(work / "saved"), str(work / "exported")))
    out["exported"] = {str(p.relative_to(exported)): p.read_text(encoding="utf-8")
                       for p in sorted(exported.rglob("*")) if p.suffix in (".py", ".json")}
    return out


if __name__ == "__main__":
    print(json.dumps(check(sys.argv[1])))
''' % {"templates": TEMPLATES}


def _run(args, **kwargs):
    run = subprocess.run(args, capture_output=True, text=True, timeout=120, **kwargs)
    assert run.returncode == 0, f"{args}\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    return run


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A fresh virtual environment with hf-multinomial installed from a wheel of this checkout (no editable finder,
    no source tree on its path); its other libraries are this environment's, through a plain path in a .pth file."""
    base = tmp_path_factory.mktemp("packaging")
    # Build from a copy of what the wheel is made of, so that no build/ or egg-info folder lands in the checkout.
    source = base / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    shutil.copytree(ROOT / "hf_multinomial", source / "hf_multinomial",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"))
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
          "-w", str(base / "dist"), str(source)])
    (wheel,) = (base / "dist").glob("hf_multinomial-*.whl")

    venv = base / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    python = str(venv / "bin" / "python")
    # Installed before the .pth below exists: pip sees no other hf-multinomial and touches nothing outside the venv.
    _run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", "-q", str(wheel)])
    purelib = _run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip()
    # Plain paths: the .pth files in there (the editable finder of hf_multinomial among them) are not run.
    paths = list(dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]))
    assert str(ROOT) not in paths
    Path(purelib, "public_libraries.pth").write_text("\n".join(paths) + "\n")
    return python, Path(purelib), base


def test_a_wheel_install_ships_the_card_templates_and_the_entry_file(installed, tmp_path):
    python, purelib, base = installed
    elsewhere = base / "elsewhere"  # neither the checkout nor anything under it
    (elsewhere / "work").mkdir(parents=True, exist_ok=True)
    script = elsewhere / "check.py"
    script.write_text(CHECK_SCRIPT)
    env = hub_env(base, "http://127.0.0.1:9", offline="1")
    env.pop("PYTHONPATH", None)
    run = _run([python, str(script), str(elsewhere / "work")], cwd=elsewhere, env=env)
    result = json.loads(run.stdout.strip().splitlines()[-1])

    package = purelib / "hf_multinomial"
    assert Path(result["file"]).parent == package, result["file"]
    assert str(ROOT) not in result["sys_path"], result["sys_path"]
    for name in TEMPLATES:
        path = Path(result["templates"][name])
        assert path == package / "model_cards" / f"{name}.md" and path.is_file(), path
        assert path.read_text() == (ROOT / "hf_multinomial" / "model_cards" / f"{name}.md").read_text()
    assert PROJECT_LINE in result["card"] and "# Model Card for" not in result["card"]
    assert Path(result["entry_template"]) == package / "pipelines" / "remote_code" / "pipeline.py"
    assert result["exported"]["pipeline.py"] == \
        (ROOT / "hf_multinomial" / "pipelines" / "remote_code" / "pipeline.py").read_text()

    # The editable install of the checkout writes the same card and exports the same files.
    namespace = {"__name__": "editable_check"}
    exec(compile(CHECK_SCRIPT, "check.py", "exec"), namespace)
    editable = namespace["check"](str(tmp_path))
    assert Path(editable["file"]).parent == ROOT / "hf_multinomial"
    assert editable["card"] == result["card"]
    assert editable["exported"] == result["exported"]


def test_a_missing_template_is_an_error_naming_its_path(monkeypatch, tmp_path):
    assert model_card.model_card_template("text_diffusion") == \
        str(ROOT / "hf_multinomial" / "model_cards" / "text_diffusion.md")
    with pytest.raises(FileNotFoundError, match="no_such_card.md"):
        model_card.model_card_template("no_such_card")
    monkeypatch.setattr(model_card, "MODEL_CARDS_DIR", str(tmp_path / "gone"))
    with pytest.raises(FileNotFoundError, match=os.path.join("gone", "text_diffusion.md")):
        model_card.build_model_card("text_diffusion", {}, {})
