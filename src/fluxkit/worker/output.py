"""Worker outputs: data URIs, and S3 uploads through boto3 (presigned or public URLs)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from fluxkit._config import Secret
from fluxkit.worker.schema import WorkerInput
from fluxkit.worker.settings import S3Settings

__all__ = ["S3UploadError", "S3Uploader", "s3_target"]

_MIME = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}


class S3UploadError(RuntimeError):
    """An upload failed; the message says which bucket and why (never a credential)."""


def s3_target(settings: S3Settings, job_input: WorkerInput, job: dict[str, Any]) -> S3Settings:
    """The worker's S3 settings overridden by the request's (``s3_*`` fields or ``s3Config``).

    Credentials in a request are used for that request only; a request that names its own
    bucket or endpoint without credentials does not get the worker's.
    """
    target = settings
    config = job_input.s3Config
    if config is None and isinstance(job.get("s3Config"), dict):
        from fluxkit.worker.schema import S3Input

        config = S3Input.model_validate(job["s3Config"])
    if config is not None:
        target = replace(
            target,
            bucket=config.bucketName or target.bucket,
            endpoint_url=config.endpointUrl or target.endpoint_url,
            access_key_id=_wrap(config.accessId),
            secret_access_key=_wrap(config.accessSecret),
        )
    own = job_input.s3_bucket or job_input.s3_endpoint_url
    if own or job_input.aws_access_key_id:
        target = replace(
            target,
            bucket=job_input.s3_bucket or target.bucket,
            endpoint_url=job_input.s3_endpoint_url or target.endpoint_url,
            access_key_id=_wrap(job_input.aws_access_key_id),
            secret_access_key=_wrap(job_input.aws_secret_access_key),
        )
    if job_input.s3_prefix is not None:
        target = replace(target, prefix=job_input.s3_prefix)
    if job_input.s3_region:
        target = replace(target, region=job_input.s3_region)
    return target


def _wrap(value: Any) -> Secret | None:
    if value is None:
        return None
    secret = value.get_secret_value()
    return Secret(secret) if secret else None


@dataclass
class S3Uploader:
    """Uploads one job's images to ``target``; a client per job, so credentials never outlive it."""

    target: S3Settings

    def __post_init__(self) -> None:
        import boto3
        from botocore.config import Config

        session = boto3.session.Session()
        self._client: Any = session.client(
            "s3",
            endpoint_url=self.target.endpoint_url,
            region_name=self.target.region,
            aws_access_key_id=_reveal(self.target.access_key_id),
            aws_secret_access_key=_reveal(self.target.secret_access_key),
            config=Config(
                signature_version="s3v4",  # without it boto3 presigns legacy SigV2 URLs
                connect_timeout=5,
                read_timeout=30,
                retries={"max_attempts": 3, "mode": "standard"},
            ),
        )

    def upload(self, key: str, data: bytes, fmt: str, metadata: dict[str, str]) -> str:
        """Put ``data`` at ``prefix + key``; returns its URL.

        Raises:
            S3UploadError: the upload failed (after botocore's retries).
        """
        bucket = self.target.bucket
        if not bucket:
            raise S3UploadError("S3 output asked for, but no bucket is configured")
        full_key = f"{self.target.prefix}{key}"
        try:
            self._client.put_object(
                Bucket=bucket,
                Key=full_key,
                Body=data,
                ContentType=_MIME.get(fmt, "application/octet-stream"),
                Metadata=metadata,
            )
            if self.target.urls == "public":
                return self._public_url(bucket, full_key)
            url: str = self._client.generate_presigned_url(
                "get_object",
                Params={"Bucket": bucket, "Key": full_key},
                ExpiresIn=self.target.expires,
            )
            return url
        except Exception as exc:
            raise S3UploadError(f"upload to s3://{bucket}/{full_key} failed: {_why(exc)}") from None

    def _public_url(self, bucket: str, key: str) -> str:
        if self.target.endpoint_url:
            return f"{self.target.endpoint_url.rstrip('/')}/{bucket}/{key}"
        return f"https://{bucket}.s3.{self.target.region}.amazonaws.com/{key}"


def _reveal(secret: Secret | None) -> str | None:
    return secret.reveal() if secret is not None else None


def _why(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        error = response.get("Error") or {}
        code, message = error.get("Code"), error.get("Message")
        if code:
            return f"{code}: {message}" if message else str(code)
    return f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
