"""Fixtures for the worker tests: the tiny FLUX pipeline, a real S3 server (moto, server mode)
and the Hub emulator, all on loopback."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch", reason="the worker needs fluxkit[local]")
pytest.importorskip("diffusers", reason="the worker needs fluxkit[local]")
pytest.importorskip("boto3", reason="the worker needs fluxkit[worker]")
pytest.importorskip("moto", reason="the S3 tests need moto[server] (dev extra)")

BUCKET = "fluxkit-out"
HF_TOKEN = "hf_PLANTEDtoken0123456789abcdef"
AWS_KEY_ID = "AKIAPLANTEDKEYID0001"
AWS_SECRET = "PLANTEDsecretKEY/abcdefghijklmnop0123"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from fluxkit.testing.tiny_flux import save_tiny_flux

    return save_tiny_flux(tmp_path_factory.mktemp("tiny-flux"))


@pytest.fixture(scope="session")
def lora_bytes(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    from fluxkit.testing.tiny_flux import make_tiny_lora

    folder = tmp_path_factory.mktemp("loras")
    return {
        name: make_tiny_lora(folder / f"{name}.safetensors", model_dir, seed=seed).read_bytes()
        for name, seed in (("private", 1), ("public", 2), ("other", 3))
    }


@pytest.fixture(scope="session")
def s3_url() -> Iterator[str]:
    """A real S3-compatible server on loopback: moto in server mode (threaded werkzeug)."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    import boto3
    from botocore.config import Config

    client = boto3.client(
        "s3",
        endpoint_url=url,
        aws_access_key_id="test",
        aws_secret_access_key="test",
        region_name="us-east-1",
        config=Config(signature_version="s3v4"),
    )
    client.create_bucket(Bucket=BUCKET)
    yield url
    server.stop()


@pytest.fixture(scope="session")
def s3_client(s3_url: str) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=s3_url,
        aws_access_key_id="test",
        aws_secret_access_key="test",
        region_name="us-east-1",
        config=Config(signature_version="s3v4"),
    )


@pytest.fixture(scope="session")
def hub(lora_bytes: dict[str, bytes]) -> Iterator[tuple[Any, str]]:
    """The shipped Hub emulator on loopback: a private repo readable with HF_TOKEN only."""
    from fluxkit.testing import HubEmulator
    from fluxkit.testing.hub import hub_client_settings

    emulator = HubEmulator(tokens={HF_TOKEN: "me"})
    emulator.add_repo("me/private-lora", {"lora.safetensors": lora_bytes["private"]}, private=True)
    emulator.add_repo("me/public-lora", {"style.safetensors": lora_bytes["public"]})
    with emulator.serve() as url, hub_client_settings():
        yield emulator, url


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
