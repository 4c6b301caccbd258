"""Local backend helpers that need no model: fetching URL inputs through the driver."""

from __future__ import annotations

from fluxkit._core._media import encode_image
from fluxkit._images import InputImage
from fluxkit.backends._local.calls import to_pil
from fluxkit.testing import Emulator, EmuRequest, EmuResponse, render_fake_image, route

PNG = encode_image(render_fake_image("init", 1, 256, 256), "png")


class ImageHost(Emulator):
    @route("GET", r"/init.png")
    def image(self, request: EmuRequest) -> EmuResponse:
        return EmuResponse(200, body=PNG, headers={"content-type": "image/png"})


def test_url_init_images_are_fetched_with_retries() -> None:
    host = ImageHost()
    host.script.fail_next(503, path="/init.png", retry_after=0.01)
    with host.serve() as url:
        picture = to_pil(InputImage(url=f"{url}/init.png"))
    assert picture.size == (256, 256) and picture.mode == "RGB"
    assert len(host.requests("/init.png")) == 2
