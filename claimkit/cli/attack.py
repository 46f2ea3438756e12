"""`claimkit attack NAME`: the thief's side, one subcommand per registered attack.

The subcommands are made from :data:`claimkit.attacks.ATTACKS`, so an attack added there
appears here with its parameters; nothing below imports torch until one runs.
"""

from __future__ import annotations

import inspect
from typing import Any

import click

from ..attacks import ATTACKS, AttackSpec
from ..ml import MAX_SEED
from .base import (
    PathParam,
    check_out,
    cli,
    data_option,
    device_option,
    emit,
    json_option,
    root_option,
)
from .owner import _params
from .suspect import suspect_options


class _InOrder(click.Group):
    """Lists the attacks in the registry's order (the papers'), not alphabetically."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)


@cli.group("attack", cls=_InOrder)
def attack_group() -> None:
    """Attack a released model as a thief would: fine-tune, prune, distil, extract it by
    queries, or embed a trigger set of one's own.

    Each attack writes the attacked model (safetensors) and beside it its run record,
    NAME.run.json for --out NAME.safetensors (attack,
    parameters, seed, victim digest, queries spent, epochs, accuracy, agreement with
    the victim). `claimkit attack NAME --help` lists an attack's parameters.

    Example: claimkit attack ftal --model released.safetensors --data digits --out ftal.safetensors
    """


def _parameters(spec: AttackSpec) -> str:
    shown = ", ".join(f"{k}={_show(v)}" for k, v in spec.defaults().items())
    text = f"Parameters (-p KEY=VALUE), defaults: {shown}."
    if spec.fixed:
        text += f" Fixed: {', '.join(f'{k}={_show(v)}' for k, v in spec.fixed.items())}."
    return text + " None takes the data set's training recipe (budget: the whole pool)."


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return repr(value) if value == "" else str(value)


def _command(spec: AttackSpec) -> click.Command:
    victim = ("--model, --onnx or --endpoint" if spec.queries_only else "--model (the weights)")
    help_text = (f"{spec.summary[0].upper()}{spec.summary[1:]}.\n\n"
                 f"{inspect.cleandoc(spec.config.__doc__ or '')}\n\n"
                 f"The victim: {victim}. {_parameters(spec)}\n\n"
                 f"Example: claimkit attack {spec.name} --model released.safetensors {spec.example} "
                 f"--out {spec.name}.safetensors --json")

    @click.command(spec.name, help=help_text, short_help=spec.summary)
    @suspect_options
    @data_option
    @root_option
    @click.option("--out", required=True, type=PathParam(dir_okay=False),
                  help="The attacked model to write (safetensors); its record goes beside it.")
    @click.option("--param", "-p", "params", multiple=True, metavar="KEY=VALUE",
                  help="An attack parameter (repeatable); an unknown key lists the settable ones.")
    @device_option
    @click.option("--seed", default=0, show_default=True, type=click.IntRange(0, MAX_SEED),
                  help="Seeds the attacker's data share, initial weights and data order.")
    @json_option("Print the attack's record as JSON.")
    def command(model_path: str | None, arch: str | None, onnx_path: str | None,
                endpoint: str | None, timeout: float, data: str, data_root: str | None, out: str,
                params: tuple[str, ...], device: str, seed: int, as_json: bool) -> None:
        from ..attacks import run_attack
        from ..ml.data import load_dataset
        from ..ml.oracle import open_oracle
        cfg = spec.make_config(_params(params))
        victim = open_oracle(model=model_path, onnx=onnx_path, endpoint=endpoint, arch=arch,
                             device=device, timeout=timeout)
        check_out(out, inputs=(model_path, onnx_path))
        record = run_attack(spec.name, victim, load_dataset(data, root=data_root), out, cfg,
                            device=device, seed=seed, progress=True)  # stderr: --json keeps stdout
        extra = record["extra"]
        spent = "" if extra["queries"] is None else f", {extra['queries']} queries"
        emit(as_json, record,
             f"{spec.name}: wrote {out}; test accuracy {record['test_accuracy']:.1%}, agreement "
             f"with the victim {extra['agreement']:.1%}{spent}")

    return command


for _spec in ATTACKS.values():
    attack_group.add_command(_command(_spec))
