"""Dataset-watermark commands: ``claimkit metrics`` (UBW's BA, ASR-A, ASR-C and Dp)."""

from __future__ import annotations

import click

from ..errors import MalformedInputError
from .base import (
    PASSPHRASE_ENV,
    PathParam,
    arch_option,
    cli,
    data_option,
    device_option,
    emit,
    json_option,
    passphrase,
    root_option,
)

UBW_SCHEMES = ("ubw-p", "ubw-c")


@cli.command("metrics")
@click.argument("keydir", type=PathParam(exists=True, file_okay=False))
@data_option
@root_option
@click.option("--model", "model_path", required=True, type=PathParam(exists=True, dir_okay=False),
              help="The model to measure (safetensors).")
@arch_option("The architecture the file must hold.")
@device_option
@json_option("Print the metrics as JSON.")
def metrics_command(keydir: str, data: str, data_root: str | None, model_path: str,
                    arch: str | None, device: str, as_json: bool) -> None:
    """Measure a model against KEYDIR's UBW watermark (Li et al. 2022, §5.1): benign
    accuracy (BA) on DATA's test split; on its triggered test images (the source class
    for ubw-c) the attack success rates ASR-A (all) and ASR-C (those classified correctly
    when benign), and the averaged prediction dispersibility Dp (nats). The trigger is
    secret, so this needs the marking key (passphrase from CLAIMKIT_PASSPHRASE or a prompt).

    Example: claimkit metrics keys/ --data released/ --model suspect.safetensors
    """
    from ..ml.data import load_dataset
    from ..ml.oracle import LocalModel
    from ..protocol.keys import MarkingKey
    from ..schemes.ubw import ubw_metrics
    mk = MarkingKey.load(keydir, passphrase(PASSPHRASE_ENV, f"passphrase for {keydir}/marking-key"))
    if mk.scheme not in UBW_SCHEMES:
        raise MalformedInputError(f"{keydir} holds a {mk.scheme} key; metrics measure "
                                  f"{' and '.join(UBW_SCHEMES)} watermarks")
    dataset = load_dataset(data, root=data_root)
    if (list(dataset.input_shape) != mk.params.get("input_shape")
            or dataset.num_classes != mk.params.get("num_classes")):
        raise MalformedInputError(f"{data} is not the kind of data {keydir} was made for "
                                  "(input shape or class count differs)")
    oracle = LocalModel.from_file(model_path, arch=arch, device=device)
    m = ubw_metrics(oracle, dataset, mk)
    emit(as_json, {"model": model_path, "scheme": mk.scheme, **m.to_dict()},
         f"{model_path}: BA {m.ba:.4f}, ASR-A {m.asr_a:.4f}, ASR-C {m.asr_c:.4f}, Dp {m.dp:.4f} "
         f"({m.evaluated} triggered test images, {mk.scheme})")
