"""`python -m bench NAME --help` prints its usage and runs nothing; a stray flag exits 2.

The registry benchmark appends a million entries and the claim benchmark trains a model,
so a --help that fell through to the run would take minutes: each call here must return
at once."""

from __future__ import annotations

import sys

import pytest

import bench.__main__ as bench_main


@pytest.mark.parametrize("name", ["registry", "claim"])
def test_help_prints_usage_and_runs_nothing(name, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["bench", name, "--help"])
    with pytest.raises(SystemExit) as exit_:
        bench_main.main()
    assert exit_.value.code == 0
    assert f"usage: python -m bench {name}" in capsys.readouterr().out
    monkeypatch.setattr(sys, "argv", ["bench", name, "--no-such-flag"])
    with pytest.raises(SystemExit) as exit_:
        bench_main.main()
    assert exit_.value.code == 2

