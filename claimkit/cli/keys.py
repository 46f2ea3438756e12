"""`claimkit keys`: the identities that sign registrations, claims and verdicts."""

from __future__ import annotations

from pathlib import Path

import click

from .base import (
    PASSPHRASE_ENV,
    Group,
    PathParam,
    cli,
    emit,
    json_option,
    passphrase,
)


# -- keys ---------------------------------------------------------------------------------
@cli.group(cls=Group)
def keys() -> None:
    """Ed25519 identities for owners, arbiters and witnesses."""


@keys.command("new")
@click.option("--out", "out", required=True, type=PathParam(dir_okay=False),
              help="Private key file to write (encrypted, mode 0600); the public half goes beside it as .pub.")
@click.option("--name", default=None, help="A name for the identity (default: the file's stem).")
@click.option("--strength", type=click.Choice(["interactive", "moderate", "sensitive"]),
              default="interactive", show_default=True, help="Argon2id cost for the key file.")
@json_option("Print the result as JSON.")
def keys_new(out: str, name: str | None, strength: str, as_json: bool) -> None:
    """Make a new identity: OUT (secret, encrypted) and OUT with .pub (public).

    The passphrase comes from CLAIMKIT_PASSPHRASE or a prompt.

    Example: claimkit keys new --out owner.key --name alice
    """
    from ..identity import Identity
    identity = Identity.generate(name or Path(out).stem)
    identity.save(out, passphrase(PASSPHRASE_ENV, f"new passphrase for {out}", confirm=True),
                  strength=strength)
    pub = Path(out).with_suffix(".pub")
    emit(as_json, {"key": out, "public": str(pub), "name": identity.public.name,
                    "key_id": identity.public.key_id},
          f"wrote {out} (secret) and {pub} (public); key id {identity.public.key_id}")
