"""Internals of the ``comfyui`` backend: the websocket event source and answer parsing."""
