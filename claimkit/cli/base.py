"""Shared parts of the command line: the group, error handling, prompts, options."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, Callable, NoReturn

import click

from .. import __version__
from ..errors import EXIT_MALFORMED, ClaimkitError

PASSPHRASE_ENV = "CLAIMKIT_PASSPHRASE"
LOG_PASSPHRASE_ENV = "CLAIMKIT_LOG_PASSPHRASE"


class Group(click.Group):
    """Turns library errors into one line and the right exit code, never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ClaimkitError as e:
            fail(str(e), e.exit_code)
        except OSError as e:
            where = f"{e.filename}: " if e.filename else ""    # a socket error names no file
            fail(f"{where}{e.strerror}" if e.strerror else str(e), EXIT_MALFORMED)
        except (KeyboardInterrupt, click.exceptions.Abort):  # click's "Aborted!" exit 1
            fail("interrupted", EXIT_INTERRUPTED)           # (at a prompt too): a rejection's


EXIT_INTERRUPTED = 130            # the shell's 128 + SIGINT
JSON_META = "claimkit.json"     # set by --json (context meta is shared by nested commands)


def remember_json(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    """--json's callback: an error then prints a JSON document on stdout too."""
    if value:
        ctx.meta[JSON_META] = True
    return value


def json_option(help: str) -> Callable[[Any], Any]:
    """--json: the command's result as JSON on stdout (and an error as one, too)."""
    return click.option("--json", "as_json", is_flag=True, callback=remember_json, help=help)


def fail(message: str, code: int, *, as_json: bool | None = None) -> NoReturn:
    """One line on stderr; with --json also {"error", "exit_code"} on stdout, so a script
    reading stdout gets a document whatever happened (``as_json`` None: as the running
    command was asked). Click's own usage errors stay click's: text on stderr."""
    if as_json is None:
        ctx = click.get_current_context(silent=True)
        as_json = bool(ctx is not None and ctx.meta.get(JSON_META))
    if as_json:
        click.echo(json.dumps({"error": message, "exit_code": code}, sort_keys=True))
    click.echo(f"claimkit: {message}", err=True)
    sys.exit(code)


def emit(as_json: bool, data: dict[str, Any], text: str) -> None:
    if as_json:
        click.echo(json.dumps(data, indent=2, sort_keys=True))
    else:
        click.echo(text)


def passphrase(env: str, prompt: str, *, confirm: bool = False) -> str:
    value = os.environ.get(env)
    if value:
        return value
    if not sys.stdin.isatty():
        fail(f"{prompt}: no terminal to ask on; set {env}", EXIT_MALFORMED)
    return click.prompt(prompt, hide_input=True, confirmation_prompt=confirm)


def load_identity(path: str) -> Any:
    from ..identity import Identity
    return Identity.load(path, passphrase(PASSPHRASE_ENV, f"passphrase for {path}"))


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="claimkit")
def cli() -> None:
    """Prove, later and to anyone, that a suspect model came from your work.

    Owners register commitments to their watermark keys in a transparency log before
    release, and later make signed claim bundles that anyone can check offline.

    Exit codes: 0 done or claim accepted, 1 claim rejected or a check failed,
    2 malformed input or usage error, 130 interrupted (Ctrl-C).
    """


def check_out(path: str, *, replace: bool = True, inputs: tuple[str | None, ...] = ()) -> None:
    """Refuse an output path before any work or any write to a log: a folder, a missing
    parent folder, one of the command's ``inputs`` (export once wrote
    its ONNX file over the model it read), or, with ``replace=False``, any existing file
    (a receipt or bundle is the only record of a log entry the command makes)."""
    from ..errors import MalformedInputError
    target = Path(path)                  # never "": PathParam refuses it
    if target.is_dir():
        raise MalformedInputError(f"{path}: is a folder; give a file name")
    if not target.resolve().parent.is_dir():
        raise MalformedInputError(f"{path}: its folder {target.parent} does not exist")
    if any(i is not None and Path(i).exists() and target.exists() and target.samefile(i)
           for i in inputs):
        raise MalformedInputError(f"{path}: is also an input of this command")
    if not replace and target.exists():
        raise MalformedInputError(f"{path} exists; it would be replaced (move it or choose "
                                  "another --out)")


def open_registry(directory: str, *, write: bool = False) -> Any:
    from ..registry.log import Registry
    phrase = None
    if write:
        phrase = passphrase(LOG_PASSPHRASE_ENV, f"passphrase for {directory}/log.key")
    return Registry.open(directory, passphrase=phrase)


DATA_NAMES = ("digits", "fashion-mnist", "mnist", "cifar10", "imagefolder")  # ml.data.DATASETS


class PathParam(click.Path):
    """click.Path that refuses an empty string: "" was read as the current folder (keygen
    wrote there and printed "/marking-key") or reached a temporary file's name."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if value == "":
            self.fail("an empty path", param, ctx)
        return super().convert(value, param, ctx)


class DataParam(click.ParamType):
    """A data set's name, or a directory: an ImageFolder tree or a released data set."""

    name = "NAME|DIR"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        if value in DATA_NAMES or os.path.isdir(value):
            return value
        self.fail(f"{value!r} is neither a data set ({', '.join(DATA_NAMES)}) nor a directory",
                  param, ctx)


DATA_CHOICES = DataParam()
DATA_HELP = ("Data set: digits (embedded), fashion-mnist, mnist, cifar10, imagefolder (files "
             "under --data-root), or a directory: an ImageFolder tree (train/<class>/, "
             "test/<class>/) or a released data set.")
ROOT_HELP = ("Folder of a named set's files: the IDX files (default for fashion-mnist: Debian's "
             "package), CIFAR-10's unpacked batches, or an ImageFolder tree.")
data_option = click.option("--data", required=True, type=DATA_CHOICES, help=DATA_HELP)
root_option = click.option("--data-root", type=PathParam(file_okay=False), default=None,
                           help=ROOT_HELP)


def _named_arch(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is not None and not value.strip():    # "" read as "the recipe's" / "any" before
        raise click.BadParameter("must name an architecture", ctx, param)
    return value


ARCH_NAMES = ("digits-cnn", "fmnist-net", "resnet18-cifar", "mlp")  # ml.models.ARCHITECTURES


def arch_option(help: str) -> Callable[[Any], Any]:
    """--arch NAME: an architecture ("" is refused; unknown names by claimkit.ml.models,
    which --help names without importing torch)."""
    return click.option("--arch", default=None, callback=_named_arch, metavar="NAME",
                        help=f"{help} One of: {', '.join(ARCH_NAMES)}.")


device_option = click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda.")


def main() -> None:
    cli(prog_name="claimkit")
