"""External features for MOVE: a secret style image and the stylizers that apply it.

MOVE (Li et al., §5.2) embeds *external* features by style-transferring a γ fraction of
the training images with a defender-chosen style image, labels unchanged. Nothing is
downloaded at run time, so the default stylizer needs no pretrained network:

* ``fourier`` (default) — amplitude-spectrum style transfer: each image keeps its own
  Fourier phase, which carries its shapes and edges, and takes a mix of its amplitude
  spectrum with the style image's, which carries texture and contrast ("style"); the
  mean brightness (the DC term) stays the image's own. This is the amplitude mix of
  Xu et al. 2021 (*A Fourier-based framework for domain generalization*, Eq. 3) with
  the style image as the second domain, and FDA (Yang & Soatto 2020) with the whole
  spectrum. Deterministic, milliseconds for a whole data set, any image size.
* ``adain`` — AdaIN (Huang & Belongie 2017): a VGG-19 encoder up to relu4_1 and its
  decoder, with the architecture of the reference implementation (naoto0804/pytorch-
  AdaIN, ``net.py``), loaded from a *local* safetensors file the user converts once::

      enc = torch.load("vgg_normalised.pth", weights_only=True)
      dec = torch.load("decoder.pth", weights_only=True)
      safetensors.torch.save_file({**{f"encoder.{k}": v for k, v in enc.items()
                                      if int(k.split(".")[0]) < 31},
                                   **{f"decoder.{k}": v for k, v in dec.items()}},
                                  "adain.safetensors")

The style image is either given (``-p style_image=PATH``, any image PIL reads, resized
to the data's shape) or drawn from the key's secret seed: oriented sinusoidal strokes at
several frequencies, an "oil painting" texture unlike the data (§5.2: the style should
be far from the training images). Either way the marking key holds its pixels and the
verification key commits to them (:func:`style_commitment`)::

    style = load_style_image("seurat.png", (1, 28, 28))
    stylized = get_stylizer("fourier", strength=0.7).apply(images, style)
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..commitments import commit
from ..errors import MalformedInputError
from ..wire import Digest, read_regular_file

__all__ = ["STYLIZERS", "Stylizer", "FourierStylizer", "AdaINStylizer", "get_stylizer",
           "load_style_image", "random_style_image", "style_commitment"]

STYLE_DOMAIN = "claimkit/move-style/v1"
MAX_STYLE_FILE = 64 << 20
MAX_STYLE_PIXELS = 50_000_000


class Stylizer(Protocol):
    name: str

    def describe(self) -> dict[str, Any]:
        """What the key commits to: the stylizer's name and settings."""

    def apply(self, images: np.ndarray, style: np.ndarray) -> np.ndarray:
        """uint8 (N, C, H, W) content images, uint8 (C, H, W) style → uint8 (N, C, H, W)."""


# -- style images ---------------------------------------------------------------------------
def random_style_image(seed: bytes, shape: tuple[int, int, int]) -> np.ndarray:
    """A procedural "painting" texture from a secret seed: six oriented sinusoidal
    strokes per channel at random frequencies and phases, scaled to [0, 255]."""
    if len(seed) < 16:
        raise MalformedInputError("a style seed needs at least 16 bytes")
    rng = np.random.default_rng(int.from_bytes(seed, "big"))
    c, h, w = shape
    yy, xx = np.meshgrid(np.linspace(-1, 1, h), np.linspace(-1, 1, w), indexing="ij")
    out = np.zeros((c, h, w))
    for ch in range(c):
        for _ in range(6):
            angle, freq = rng.uniform(0, np.pi), rng.uniform(2, max(3.0, h / 2))
            out[ch] += rng.uniform(0.3, 1.0) * np.sin(
                freq * np.pi * (np.cos(angle) * xx + np.sin(angle) * yy) + rng.uniform(0, 2 * np.pi))
    out = (out - out.min()) / (out.max() - out.min() + 1e-12)
    return np.rint(out * 255).astype(np.uint8)


def load_style_image(path: str | os.PathLike[str], shape: tuple[int, int, int]) -> np.ndarray:
    """Read a style image with PIL and fit it to ``shape`` (C, H, W): converted to
    grey or RGB, resized with antialiasing. Anything unreadable is one clear error."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    try:      # a regular file: a FIFO named like an image would hang the read
        data = read_regular_file(path, max_bytes=MAX_STYLE_FILE, what=f"style image {path}")
    except FileNotFoundError as e:
        raise MalformedInputError(f"style image {path}: cannot read ({e.strerror})") from None
    c, h, w = shape
    if c not in (1, 3):
        raise MalformedInputError(f"style images need data with 1 or 3 channels, not {c}")
    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.width * im.height > MAX_STYLE_PIXELS or im.width < 1 or im.height < 1:
                raise MalformedInputError(f"style image {path}: {im.width}×{im.height} pixels "
                                          f"is outside 1 … {MAX_STYLE_PIXELS}")
            im = im.convert("L" if c == 1 else "RGB").resize((w, h), Image.Resampling.LANCZOS)
            pixels = np.asarray(im, dtype=np.uint8)
    except MalformedInputError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError,
            Image.DecompressionBombError) as e:
        raise MalformedInputError(f"style image {path}: not a readable image ({e})") from None
    pixels = pixels[None] if c == 1 else pixels.transpose(2, 0, 1)
    if int(pixels.max()) == int(pixels.min()):
        raise MalformedInputError(f"style image {path}: a flat image has no style to transfer")
    return np.ascontiguousarray(pixels)


def style_commitment(style: np.ndarray, stylizer: dict[str, Any], nonce: bytes) -> Digest:
    """Hiding, binding commitment to the style image's pixels and the stylizer's
    settings (the same construction as item commitments, its own domain)."""
    value = {"shape": list(style.shape), "sha256": hashlib.sha256(style.tobytes()).hexdigest(),
             "stylizer": stylizer}
    return Digest(commit(STYLE_DOMAIN, nonce, value))


# -- Fourier amplitude mixing -----------------------------------------------------------------
@dataclass(frozen=True)
class FourierStylizer:
    """Amplitude spectrum ← (1 − λ)·|F(x)| + λ·|F(style)| (DC kept), phase of x."""

    strength: float = 0.7
    name: str = "fourier"

    def __post_init__(self) -> None:
        if not 0.0 < self.strength <= 1.0:
            raise MalformedInputError("fourier stylizer: strength must be within (0, 1]")

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "strength": self.strength}

    def apply(self, images: np.ndarray, style: np.ndarray, *, chunk: int = 4096) -> np.ndarray:
        _check(images, style)
        style_amp = np.abs(np.fft.fft2(style.astype(np.float64) / 255, axes=(-2, -1)))
        out = np.empty_like(images)
        for i in range(0, len(images), chunk):
            spec = np.fft.fft2(images[i:i + chunk].astype(np.float64) / 255, axes=(-2, -1))
            amp = np.abs(spec)
            mixed = (1 - self.strength) * amp + self.strength * style_amp[None]
            mixed[..., 0, 0] = amp[..., 0, 0]
            pixels = np.fft.ifft2(mixed * np.exp(1j * np.angle(spec)), axes=(-2, -1)).real
            out[i:i + chunk] = np.clip(np.rint(pixels * 255), 0, 255).astype(np.uint8)
        return out


def _check(images: np.ndarray, style: np.ndarray) -> None:
    if images.dtype != np.uint8 or images.ndim != 4 or style.dtype != np.uint8 \
            or style.shape != images.shape[1:]:
        raise MalformedInputError("stylizer: expected uint8 images (N, C, H, W) and a uint8 "
                                  "style image of shape (C, H, W)")


# -- AdaIN ---------------------------------------------------------------------------------
def _adain_networks() -> tuple[Any, Any]:
    """The encoder (VGG-19 to relu4_1) and decoder of naoto0804/pytorch-AdaIN, net.py."""
    from torch import nn

    def conv(cin: int, cout: int) -> list[nn.Module]:
        return [nn.ReflectionPad2d((1, 1, 1, 1)), nn.Conv2d(cin, cout, (3, 3)), nn.ReLU()]

    def pool() -> nn.Module:
        return nn.MaxPool2d((2, 2), (2, 2), (0, 0), ceil_mode=True)

    def up() -> nn.Module:
        return nn.Upsample(scale_factor=2, mode="nearest")

    encoder = nn.Sequential(nn.Conv2d(3, 3, (1, 1)), *conv(3, 64), *conv(64, 64), pool(),
                            *conv(64, 128), *conv(128, 128), pool(), *conv(128, 256),
                            *conv(256, 256), *conv(256, 256), *conv(256, 256), pool(),
                            *conv(256, 512))
    decoder = nn.Sequential(*conv(512, 256), up(), *conv(256, 256), *conv(256, 256),
                            *conv(256, 256), *conv(256, 128), up(), *conv(128, 128),
                            *conv(128, 64), up(), *conv(64, 64), *conv(64, 3)[:2])
    return encoder, decoder


@dataclass(frozen=True)
class AdaINStylizer:
    """AdaIN with user-supplied weights: t = α·AdaIN(f(x), f(s)) + (1 − α)·f(x), decoded.

    Images are resized to ``size`` pixels (a multiple of 8: three poolings) for the
    network and back to their own size; grey images are repeated to RGB and averaged
    back. ``weights`` is a local safetensors file (see the module docstring); its
    SHA-256 is part of what the key commits to.
    """

    weights: str
    alpha: float = 1.0
    size: int = 64
    device: str = "cpu"
    name: str = "adain"

    def __post_init__(self) -> None:
        if not 0.0 < self.alpha <= 1.0 or self.size < 8 or self.size % 8 or self.size > 1024:
            raise MalformedInputError("adain stylizer: alpha within (0, 1], size a multiple "
                                      "of 8 within [8, 1024]")

    def _digest(self) -> str:
        try:
            with open(self.weights, "rb") as fh:
                return hashlib.file_digest(fh, "sha256").hexdigest()
        except OSError as e:
            raise MalformedInputError(f"adain weights {self.weights}: cannot read "
                                      f"({e.strerror})") from None

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "alpha": self.alpha, "size": self.size,
                "weights_sha256": self._digest()}

    def networks(self) -> tuple[Any, Any]:
        """Encoder and decoder with the file's weights; refuses any other layout."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        from ..weights import read_header

        read_header(self.weights)
        try:
            state = load_file(self.weights)
        except (SafetensorError, OSError, ValueError) as e:
            raise MalformedInputError(f"adain weights {self.weights}: {e}") from None
        encoder, decoder = _adain_networks()
        for prefix, net in (("encoder.", encoder), ("decoder.", decoder)):
            part = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
            try:
                net.load_state_dict(part, strict=True)
            except RuntimeError as e:
                raise MalformedInputError(f"adain weights {self.weights}: the {prefix[:-1]} does "
                                          f"not fit ({str(e).splitlines()[0]})") from None
        extra = [k for k in state if not k.startswith(("encoder.", "decoder."))]
        if extra:
            raise MalformedInputError(f"adain weights {self.weights}: unexpected tensor {extra[0]!r}")
        for name, t in state.items():
            if t.is_floating_point() and not bool(t.isfinite().all()):
                raise MalformedInputError(f"adain weights {self.weights}: {name} holds NaN or inf")
        return encoder.eval(), decoder.eval()

    def apply(self, images: np.ndarray, style: np.ndarray, *, chunk: int = 256) -> np.ndarray:
        import torch
        import torch.nn.functional as F

        _check(images, style)
        dev = torch.device(self.device)
        encoder, decoder = (net.to(dev) for net in self.networks())
        n, c, h, w = images.shape

        def prepare(x: np.ndarray) -> torch.Tensor:
            t = torch.from_numpy(x).to(dev).float().div_(255)
            t = t.expand(-1, 3, -1, -1) if c == 1 else t
            return F.interpolate(t, size=(self.size, self.size), mode="bilinear", align_corners=False)

        out = np.empty_like(images)
        with torch.no_grad():
            sf = encoder(prepare(style[None]))
            s_mean, s_std = sf.mean((2, 3), keepdim=True), sf.var((2, 3), keepdim=True).add(1e-5).sqrt()
            for i in range(0, n, chunk):
                cf = encoder(prepare(images[i:i + chunk]))
                c_mean, c_std = cf.mean((2, 3), keepdim=True), cf.var((2, 3), keepdim=True).add(1e-5).sqrt()
                t = (cf - c_mean) / c_std * s_std + s_mean
                y = decoder(self.alpha * t + (1 - self.alpha) * cf)
                y = F.interpolate(y, size=(h, w), mode="bilinear", align_corners=False, antialias=True)
                y = y.mean(1, keepdim=True) if c == 1 else y
                out[i:i + chunk] = y.clamp(0, 1).mul(255).round().to(torch.uint8).cpu().numpy()
        return out


STYLIZERS = ("fourier", "adain")


def get_stylizer(name: str, *, strength: float = 0.7, adain_weights: str = "",
                 device: str = "cpu") -> Stylizer:
    if name == "fourier":
        return FourierStylizer(strength)
    if name == "adain":
        if not adain_weights:
            raise MalformedInputError("the adain stylizer needs -p adain_weights=FILE.safetensors")
        return AdaINStylizer(adain_weights, alpha=strength, device=device)
    raise MalformedInputError(f"unknown stylizer {name!r} (known: {', '.join(STYLIZERS)})")
