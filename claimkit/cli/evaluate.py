"""`claimkit eval CONFIG`: run an evaluation grid and write its report."""

from __future__ import annotations

import click

from .base import PathParam, cli, emit, json_option


@cli.command("eval")
@click.argument("config", type=PathParam(exists=True, dir_okay=False))
@click.option("--out", required=True, type=PathParam(file_okay=False),
              help="Folder for the model cache, results.jsonl and report/ (re-use it to resume).")
@click.option("--device", default=None, help="Override the config's device (auto, cpu, cuda).")
@click.option("--report-only", is_flag=True, help="Do not train or evaluate; redraw the report.")
@json_option("Print the paths and cell counts as JSON.")
def eval_command(config: str, out: str, device: str | None, report_only: bool, as_json: bool) -> None:
    """Run the grid in CONFIG (TOML: data, schemes, attacks, seeds, null models) and write
    tables, CSV and figures under OUT/report/.

    Trained models are cached under OUT/models by the hash of what produced them, and
    each evaluated cell is appended to OUT/results.jsonl as it finishes: running the same
    command again reuses both, and a run killed half-way completes where it stopped.

    Example: claimkit eval examples/eval-digits-smoke.toml --out eval-digits
    """
    from ..eval import load_config, run_grid, write_report
    from ..eval.report import load_rows
    cfg = load_config(config)
    if not report_only:
        run_grid(cfg, out, device=device)
    index = write_report(cfg, out)
    rows = load_rows(out)
    emit(as_json, {"report": str(index), "cells": len(rows)},
         f"{len(rows)} cells in {out}/results.jsonl; report: {index}")
