"""Deterministic stand-in images (the fake provider's renderer, shared by every emulator)."""

from fluxkit.backends._fake._render import render_fake_image

__all__ = ["render_fake_image"]
