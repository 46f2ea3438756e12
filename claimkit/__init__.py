"""claimkit: prove, later and to anyone, that a suspect model came from your work.

The pure layers (wire, crypto, registry, protocol, claim checking) never import torch,
so checking a claim bundle offline starts in well under a second.
"""

__version__ = "0.1.0"
