"""Commands around a suspect model: serve it over HTTP, export it to ONNX.

Both exist so that the other forms a suspect takes can be tried end to end with a
model of one's own: ``serve`` answers the query protocol (protocol_spec/oracle-http.md)
for ``claim --endpoint`` and ``verify --endpoint``; ``export`` writes the ONNX file
``--onnx`` reads.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from .base import PathParam, arch_option, check_out, cli, device_option, emit, json_option

DEFAULT_TIMEOUT = 30.0   # seconds; claimkit.ml.oracle.DEFAULT_TIMEOUT (not imported: numpy)

_SUSPECT_OPTIONS = (
    click.option("--model", "model_path", type=PathParam(exists=True, dir_okay=False),
                 help="The suspect as a claimkit model file (safetensors)."),
    arch_option("With --model: the architecture the file must hold."),
    click.option("--onnx", "onnx_path", type=PathParam(exists=True, dir_okay=False),
                 help="Or as an ONNX file (float32 images in [0, 1] → logits; "
                      "pip install 'claimkit[onnx]')."),
    click.option("--endpoint", default=None, metavar="URL",
                 help="Or as an HTTP endpoint that speaks protocol_spec/oracle-http.md "
                      "(claimkit serve is one)."),
    click.option("--timeout", type=click.FloatRange(0, min_open=True), default=DEFAULT_TIMEOUT,
                 metavar="SECONDS",
                 show_default=True, help="With --endpoint: seconds one request may take."),
)


def suspect_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """--model [--arch] | --onnx | --endpoint [--timeout]: the forms a suspect takes;
    :func:`claimkit.ml.oracle.open_oracle` takes exactly one of them."""
    for option in reversed(_SUSPECT_OPTIONS):
        command = option(command)
    return command


def _named_host(ctx: click.Context, param: click.Parameter, value: str) -> str:
    if not value.strip():        # "" listens on every network, not on "no address"
        raise click.BadParameter("an empty address listens on every network; say 0.0.0.0 or "
                                 ":: if that is meant", ctx, param)
    return value


@cli.command("serve")
@click.argument("model_path", metavar="MODEL", type=PathParam(exists=True, dir_okay=False))
@click.option("--host", default="127.0.0.1", show_default=True, callback=_named_host,
              help="Address to listen on, IPv4 or IPv6 (the default answers this machine "
                   "only; 0.0.0.0 or :: every network).")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535),
              help="Port to listen on (0: any free port, printed at start).")
@arch_option("The architecture the file must hold.")
@click.option("--max-batch", default=256, show_default=True, type=click.IntRange(1, 4096),
              help="Most images one request may carry (announced to clients).")
@device_option
def serve_command(model_path: str, host: str, port: int, arch: str | None, max_batch: int,
                  device: str) -> None:
    """Answer the claimkit query protocol (protocol_spec/oracle-http.md) for MODEL, until
    interrupted; one log line per request goes to stderr.

    Example: claimkit serve released.safetensors --port 8000   (then: claimkit verify
    bundle.json --registry-key reg/log.vkey --endpoint http://127.0.0.1:8000/)
    """
    from ..ml.oracle import LocalModel, OracleServer
    oracle = LocalModel.from_file(model_path, arch=arch, device=device)
    server = OracleServer(oracle, (host, port), max_batch=max_batch,
                          log=lambda line: click.echo(line, err=True))
    click.echo(f"serving {model_path} (weights {oracle.subject.hex[:16]}) at {server.url}; "
               "Ctrl-C stops", err=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


@cli.command("export")
@click.argument("model_path", metavar="MODEL", type=PathParam(exists=True, dir_okay=False))
@click.option("--onnx", "onnx_out", required=True, type=PathParam(dir_okay=False),
              help="The ONNX file to write (float32 images in [0, 1] → logits, any batch size).")
@arch_option("The architecture the file must hold.")
@json_option("Print the result as JSON.")
def export_command(model_path: str, onnx_out: str, arch: str | None, as_json: bool) -> None:
    """Export MODEL (claimkit safetensors) to a single ONNX file, checked against the
    model with onnxruntime before it is written. Needs pip install 'claimkit[onnx]'.

    Example: claimkit export released.safetensors --onnx released.onnx
    """
    from ..ml.export import export_onnx
    check_out(onnx_out, inputs=(model_path,))
    digest = export_onnx(model_path, onnx_out, arch=arch)
    emit(as_json, {"onnx": onnx_out, "subject": digest.to_dict()},
         f"wrote {onnx_out} (ONNX subject {digest.hex[:16]}); claim or verify it with --onnx {onnx_out}")
