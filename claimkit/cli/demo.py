"""`claimkit demo`: the whole story on the embedded data."""

from __future__ import annotations

import sys

import click

from ..errors import EXIT_OK, EXIT_REJECTED
from ..ml import MAX_SEED
from .base import (
    DATA_CHOICES,
    DATA_HELP,
    ROOT_HELP,
    PathParam,
    cli,
)


# -- the whole story ----------------------------------------------------------------------
@cli.command("demo")
@click.option("--out", default="claimkit-demo", show_default=True, type=PathParam(file_okay=False),
              help="Where every artifact goes (must be new or empty).")
@click.option("--data", type=DATA_CHOICES, default="digits", show_default=True, help=DATA_HELP)
@click.option("--data-root", type=PathParam(file_okay=False), default=None, help=ROOT_HELP)
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda.")
@click.option("--seed", default=0, show_default=True, type=click.IntRange(0, MAX_SEED),
              help="Training seed.")
def demo(out: str, data: str, data_root: str | None, device: str, seed: int) -> None:
    """Run the whole story: owner keygen, register, mark, release; a thief fine-tunes the
    model and registers his own trigger set; the owner claims; an arbiter verifies; a claim
    on an independent model is rejected; the earliest registration wins.

    Exit 0 when every step ends as it should, 1 otherwise.

    Example: claimkit demo --out demo-run
    """
    from ..demo import DemoSettings, run_demo
    report = run_demo(out, DemoSettings(data=data, data_root=data_root, device=device, seed=seed),
                      say=click.echo)
    sys.exit(EXIT_OK if report.ok else EXIT_REJECTED)
