from __future__ import annotations

import pytest
from PIL import Image

from fluxkit import (
    AuthenticationError,
    ProviderRejectedError,
    ProviderUnavailableError,
    RateLimitError,
)
from fluxkit._core import HttpResponse, PollSchedule, _media
from fluxkit._core._errors import error_from_response, provider_message


def test_data_uri_round_trip_and_sniffing() -> None:
    data = _media.encode_image(Image.new("RGB", (4, 4)), "png")
    uri = _media.data_uri(data)
    assert uri.startswith("data:image/png;base64,")
    assert _media.decode_data_uri(uri) == (data, "image/png")
    assert _media.sniff_format(_media.encode_image(Image.new("RGB", (4, 4)), "jpeg")) == "jpeg"
    assert _media.sniff_format(_media.encode_image(Image.new("RGB", (4, 4)), "webp")) == "webp"
    assert _media.image_size(data) == (4, 4)


def test_content_hash_is_sha256() -> None:
    assert _media.content_hash(b"abc").startswith("ba7816bf")


def test_bad_data_uri() -> None:
    with pytest.raises(ValueError):
        _media.decode_data_uri("https://x")


def test_poll_schedule_starts_fast_and_backs_off_to_ceiling() -> None:
    intervals = PollSchedule(initial=0.05, factor=2, ceiling=1).intervals()
    assert [next(intervals) for _ in range(7)] == [0.05, 0.1, 0.2, 0.4, 0.8, 1, 1]


@pytest.mark.parametrize(
    ("body", "message", "field"),
    [
        ({"detail": "bad key"}, "bad key", None),
        (
            {"detail": [{"loc": ["body", "image_size"], "msg": "invalid size"}]},
            "invalid size",
            "image_size",
        ),
        (
            {"error": {"message": "too many loras", "param": "image_loras"}},
            "too many loras",
            "image_loras",
        ),
        ({"error": "worker crashed"}, "worker crashed", None),
        ({"title": "Invalid version"}, "Invalid version", None),
        (
            {"detail": "bad input", "invalid_fields": [{"field": "input.seed", "type": "type"}]},
            "bad input",
            "seed",
        ),
        ("plain text", "plain text", None),
    ],
)
def test_provider_message_shapes(body: object, message: str, field: str | None) -> None:
    assert provider_message(body) == (message, field)


def response(status: int, body: bytes = b'{"detail": "nope"}', **headers: str) -> HttpResponse:
    return HttpResponse(status, {k.replace("_", "-"): v for k, v in headers.items()}, body)


def test_status_codes_map_to_the_error_tree() -> None:
    assert isinstance(error_from_response("fal", response(401)), AuthenticationError)
    assert isinstance(error_from_response("fal", response(403)), AuthenticationError)
    limited = error_from_response("fal", response(429, retry_after="7"))
    assert isinstance(limited, RateLimitError) and limited.retry_after == 7
    assert isinstance(error_from_response("fal", response(503)), ProviderUnavailableError)
    rejected = error_from_response(
        "fal",
        response(422, b'{"detail": [{"loc": ["body", "seed"], "msg": "bad"}]}'),
        request_id="r1",
    )
    assert isinstance(rejected, ProviderRejectedError)
    assert (rejected.field, rejected.request_id, rejected.status_code) == ("seed", "r1", 422)
    assert "seed" in str(rejected) and "r1" in str(rejected)
