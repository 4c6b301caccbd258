"""Uploads to fal storage as a sub-flow, the protocol ``fal_client`` 1.0.3 speaks.

1. ``POST {rest}/storage/auth/token?storage_type=fal-cdn-v3`` (``Authorization: Key ...``, body
   ``{}``) -> ``{token, token_type, base_url, expires_at}``;
2. ``POST {cdn}/files/upload`` with the bytes, ``Authorization: {token_type} {token}``,
   ``Content-Type`` and ``X-Fal-File-Name`` -> ``{access_url}``;
3. when the CDN fails, fal's fallback repository: ``POST {rest}/storage/upload/initiate?
   storage_type=gcs`` with ``{file_name, content_type}`` -> ``{upload_url, file_url}``, then
   ``PUT upload_url`` with the bytes.

(``fal_client/client.py``: ``CDNTokenManager``, ``_upload_v3``, ``_upload_via_storage``.) The
CDN token is fetched per upload rather than cached until ``expires_at``: flows hold no clock, and
the content-addressed upload cache makes an upload rare (once per image per process). Multipart
uploads (fal-client uses them above 100 MB) are never needed for input images. As in
fal-client, a failed CDN attempt is not retried: the fallback repository is the retry.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from fluxkit._config import Secret
from fluxkit._core import Flow, HttpRequest, HttpResponse, send
from fluxkit._exceptions import ResponseFormatError
from fluxkit._images import InputImage

__all__ = ["FalStorage"]


@dataclass(frozen=True)
class FalStorage:
    """Where uploads go: fal's REST root (tokens, initiate) and its CDN root."""

    rest_url: str
    cdn_url: str
    auth: Mapping[str, str | Secret]

    def upload(self, image: InputImage) -> Flow[str]:
        """Upload ``image``'s bytes; return the URL fal models can read."""
        assert image.data is not None
        mime = image.mime
        name = f"{image.sha256[:16]}.{mime.split('/')[-1]}"
        token_answer = yield from send(
            HttpRequest(
                "POST",
                f"{self.rest_url}/storage/auth/token",
                headers=self._json_headers(),
                params={"storage_type": "fal-cdn-v3"},
                json={},
                retry="never",
                raise_for_status=False,
            )
        )
        token = token_answer.json() if token_answer.ok else None
        if isinstance(token, dict) and token.get("token"):
            uploaded = yield from send(
                HttpRequest(
                    "POST",
                    f"{self.cdn_url}/files/upload",
                    content=image.data,
                    headers={
                        "authorization": Secret(
                            f"{token.get('token_type', 'Bearer')} {token['token']}"
                        ),
                        "content-type": mime,
                        "x-fal-file-name": name,
                    },
                    retry="never",
                    raise_for_status=False,
                )
            )
            url = _access_url(uploaded) if uploaded.ok else None
            if url:
                return url
        # fal-client's fallback repository ("fal": a signed upload URL on GCS).
        initiated = (
            yield from send(
                HttpRequest(
                    "POST",
                    f"{self.rest_url}/storage/upload/initiate",
                    headers=self._json_headers(),
                    params={"storage_type": "gcs"},
                    json={"file_name": name, "content_type": mime},
                )
            )
        ).json()
        try:
            upload_url, file_url = str(initiated["upload_url"]), str(initiated["file_url"])
        except (KeyError, TypeError) as exc:
            raise ResponseFormatError(
                f"unreadable upload initiation: {exc!r}", backend="fal", body=initiated
            ) from exc
        yield from send(
            HttpRequest("PUT", upload_url, content=image.data, headers={"content-type": mime})
        )
        return file_url

    def _json_headers(self) -> dict[str, str | Secret]:
        return {**self.auth, "accept": "application/json", "content-type": "application/json"}


def _access_url(response: HttpResponse) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    url = body.get("access_url") if isinstance(body, dict) else None
    return url if isinstance(url, str) and url else None
