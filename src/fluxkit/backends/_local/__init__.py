"""Helpers of the local diffusers backend (``fluxkit.backends.diffusers``).

Private: torch and diffusers are imported inside functions only, so importing this package is
cheap and works without the ``local`` extra.
"""
