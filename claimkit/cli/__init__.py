"""The ``claimkit`` command line: a thin layer over the library API.

Every command parses its arguments, calls one library function and prints the result;
a :class:`~claimkit.errors.ClaimkitError` becomes one line on stderr and the exit code
of its class (0 done or accepted, 1 rejected or a failed check, 2 malformed input or
usage). Library modules are imported inside the commands so that ``claimkit verify``
never pays for the registry's storage stack or torch.

One module per audience: :mod:`.keys` and :mod:`.registry` (operators), :mod:`.owner`
(keygen, train, mark, register, claim), :mod:`.arbiter` (verify), :mod:`.suspect` (serve,
export: the endpoint and ONNX forms of a suspect), :mod:`.demo`.
"""

from . import arbiter, attack, dataset, demo, evaluate, keys, owner, registry, suspect  # noqa: F401  (each adds its commands)
from .base import cli, main

__all__ = ["cli", "main"]
