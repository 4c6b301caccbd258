"""Helpers of the ``fal`` backend: endpoints and capabilities, request bodies, the queue
protocol's parsing, and fal storage uploads. All pure; ``fluxkit.backends.fal`` composes them."""
