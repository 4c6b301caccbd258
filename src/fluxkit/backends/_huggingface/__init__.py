"""Helpers of the ``huggingface`` backend: models, the Hub mapping, routing, hf-inference (pure)."""
