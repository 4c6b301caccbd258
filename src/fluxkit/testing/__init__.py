"""Test helpers shipped with fluxkit: provider emulators, the fake provider, a pytest plugin.

```python
import fluxkit
from fluxkit.testing import FakeProviderEmulator

emu = FakeProviderEmulator()
emu.script.queue_seconds = 0.2          # jobs wait in the queue
gen = fluxkit.Generator("fake", transport=emu.transport())   # the one seam
gen = emu.generator()                    # the same, shorter
```

Every emulator runs in-process (``emu.transport()``) or on a loopback port
(``with emu.serve() as url: ...``).
"""

from fluxkit.testing._emulator import (
    AfterAccept,
    Defer,
    Drop,
    Emulator,
    EmulatorTransport,
    EmuRequest,
    EmuResponse,
    Failure,
    Script,
    route,
)
from fluxkit.testing._jobs import EmulatedJob
from fluxkit.testing._render import render_fake_image
from fluxkit.testing._replay import Replay, replay
from fluxkit.testing.comfyui import ComfyUIEmulator
from fluxkit.testing.fake import FakeProviderEmulator
from fluxkit.testing.fal import FalEmulator
from fluxkit.testing.hub import HubEmulator
from fluxkit.testing.huggingface import HuggingFaceEmulator
from fluxkit.testing.replicate import ReplicateEmulator
from fluxkit.testing.runpod import RunPodEmulator
from fluxkit.testing.together import TogetherEmulator, TogetherModel

__all__ = [
    "AfterAccept",
    "Defer",
    "Drop",
    "EmuRequest",
    "EmuResponse",
    "EmulatedJob",
    "Emulator",
    "EmulatorTransport",
    "ComfyUIEmulator",
    "FakeProviderEmulator",
    "FalEmulator",
    "Failure",
    "HubEmulator",
    "HuggingFaceEmulator",
    "ReplicateEmulator",
    "RunPodEmulator",
    "Script",
    "TogetherEmulator",
    "TogetherModel",
    "Replay",
    "render_fake_image",
    "replay",
    "route",
]
