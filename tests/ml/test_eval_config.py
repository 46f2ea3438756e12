"""An evaluation config is checked when it loads, down to its last table: a typo in the
last attack must not wait for the hours of the cells before it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from claimkit.cli import cli
from claimkit.errors import MalformedInputError
from claimkit.eval import load_config

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

HEAD = """
data = "digits"
device = "cpu"

[[scheme]]
name = "trigger-set"
params = { items = 40 }

[[attack]]
name = "ftal"
params = { epochs = 1 }
"""

# Each: what ends the config, and what the one-line refusal must say.
BAD_TAILS = [
    ('[[attack]]\nname = "prnue"\n', r"attack\[1\]\.name: unknown attack 'prnue'"),
    ('[[attack]]\nname = "prune"\nparams = { rat = 0.5 }\n',
     r"attack\[1\]\.params: .*rat: unknown for attack prune"),
    ('[[attack]]\nname = "prune"\nparams = { rate = 1.5 }\n',
     r"attack\[1\]\.params: rate must be within \[0, 1\)"),
    ('[[attack]]\nname = "prune"\nparams = { epochs = "many" }\n',
     r"attack\[1\]\.params: .*epochs=many: expected int"),
    ('[[attack]]\nname = "ftll"\nparams = { layers = "all" }\n',     # fixed by ftll
     r"attack\[1\]\.params: .*layers: fixed at last for attack ftll"),
    ('[[scheme]]\nname = "trigger-sett"\n', r"scheme\[1\]\.name: unknown scheme 'trigger-sett'"),
    ('[null]\narchs = ["mlp", "resnet18"]\n', r"null\.archs\[1\]: unknown architecture 'resnet18'"),
    ('arch = "digits_cnn"\n', r": arch: unknown architecture 'digits_cnn'"),
    # Each axis of the grid once: a repeat gave two cells one id, and the report counted
    # every claim of it twice.
    ('[[scheme]]\nname = "trigger-set"\nparams = { items = "40" }\n',
     r"scheme labels: 'trigger-set items=40' appears more than once"),
    ('[[attack]]\nname = "ftal"\nparams = { epochs = 1 }\n', r"attack labels: .* more than once"),
    ('[null]\narchs = ["mlp", "mlp"]\n', r"null\.archs: 'mlp' appears more than once"),
    ('seeds = [0, 0]\n', r"seeds: 0 appears more than once"),
    ('opened_sweep = [2, 2]\n', r"opened_sweep: 2 appears more than once"),
    ('data_root = 5\n', r"data_root must be a folder's path"),
    ('data_root = "a\\u0000b"\n', r"data_root must be a folder's path"),
    ('epochs = -1\n', r": epochs: "),
]


def _write(tmp_path: Path, tail: str) -> Path:
    # a top-level key after a table header would belong to the table: put those first
    text = tail + HEAD if not tail.startswith("[") else HEAD + "\n" + tail
    path = tmp_path / "grid.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("tail, message", BAD_TAILS)
def test_the_last_table_is_checked_when_the_config_loads(tmp_path, tail, message):
    path = _write(tmp_path, tail)
    with pytest.raises(MalformedInputError, match=message) as caught:
        load_config(path)
    text = str(caught.value)
    assert text.startswith(f"{path}: ") and "\n" not in text


@pytest.mark.parametrize("text, message", [
    ('data = "digits"\nattack = 5\n[[scheme]]\nname = "trigger-set"\n', "attack must be"),
    ('data = "digits"\nscheme = "trigger-set"\n', "scheme must be"),
    ('data = "digits"\n[scheme]\nname = "trigger-set"\n', "scheme must be"),   # one [table]
])
def test_tables_that_are_not_tables_are_refused(tmp_path, text, message):
    (tmp_path / "grid.toml").write_text(text)
    with pytest.raises(MalformedInputError, match=message):
        load_config(tmp_path / "grid.toml")


def test_a_relative_data_root_is_taken_from_the_configs_folder(tmp_path):
    cfg = load_config(_write(tmp_path, 'data_root = "./fm"\n'))
    assert cfg.data_root == str((tmp_path / "fm").resolve())


@pytest.mark.parametrize("tail, message", BAD_TAILS[:1] + BAD_TAILS[2:3] + BAD_TAILS[6:7])
def test_claimkit_eval_refuses_it_before_training_anything(tmp_path, monkeypatch, tail, message):
    def no_training(*a, **k):
        raise AssertionError("trained before the config was checked")

    monkeypatch.setattr("claimkit.ml.jobs.fit_and_save", no_training)
    monkeypatch.setattr("claimkit.ml.train.train", no_training)
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["eval", str(_write(tmp_path, tail)), "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert re.search(message, result.output), result.output
    assert not out.exists()


@pytest.mark.parametrize("params, message", [
    ("{ itemz = 10 }", r"--param itemz: unknown for this scheme"),
    ("{ items = 0 }", r"items"),
])
def test_scheme_params_are_checked_once_the_data_is_loaded(tmp_path, monkeypatch, params, message):
    """Scheme parameters need the data set (keygen's checks use its classes and shape):
    checked by run_grid before the first cell, not by the scheme's first keygen."""
    def no_training(*a, **k):
        raise AssertionError("trained before the scheme's parameters were checked")

    monkeypatch.setattr("claimkit.ml.jobs.fit_and_save", no_training)
    monkeypatch.setattr("claimkit.ml.train.train", no_training)
    out = tmp_path / "out"
    path = _write(tmp_path, f'[[scheme]]\nname = "trigger-set"\nparams = {params}\n')
    result = CliRunner().invoke(cli, ["eval", str(path), "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert re.search(r"scheme\[1\]\.params: .*" + message, result.output), result.output
    assert not out.exists()


def test_a_good_config_loads_with_its_params_as_given(tmp_path):
    cfg = load_config(_write(tmp_path, '[[attack]]\nname = "finetune"\nparams = { lr = 0.05 }\n'
                                       '[null]\narchs = ["mlp"]\n'))
    assert [a.label for a in cfg.attacks] == ["ftal epochs=1", "finetune lr=0.05"]
    assert cfg.null.archs == ("mlp",)


@pytest.mark.parametrize("example", sorted(EXAMPLES.glob("eval-*.toml")), ids=lambda p: p.name)
def test_the_example_configs_pass_the_checks(example):
    assert load_config(example).attacks
