"""``fluxkit doctor --check``: each configured key is verified against the provider (emulated)."""

from __future__ import annotations

import argparse

import pytest

from fluxkit.cli import main
from fluxkit.cli.doctor import run
from fluxkit.testing.fal import FalEmulator
from fluxkit.testing.hub import HubEmulator
from fluxkit.testing.replicate import ReplicateEmulator
from fluxkit.testing.together import TogetherEmulator

GOOD = "good-key"


def _emulators() -> dict[str, object]:
    return {
        "fal": FalEmulator(api_key=GOOD).transport(),
        "replicate": ReplicateEmulator(api_key=GOOD).transport(),
        "together": TogetherEmulator(api_key=GOOD).transport(),
        "hub": HubEmulator(tokens={GOOD: "me"}).transport(),
    }


def _row(output: str, name: str) -> str:
    return next(line for line in output.splitlines() if line.strip().startswith(name))


@pytest.mark.parametrize(
    ("backend", "variable"),
    [("fal", "FAL_KEY"), ("replicate", "REPLICATE_API_TOKEN"), ("together", "TOGETHER_API_KEY")],
)
def test_a_bad_key_is_not_ready(
    backend: str, variable: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(variable, "wrong-key")
    code = run(argparse.Namespace(check=True), transports=_emulators())
    row = _row(capsys.readouterr().out, backend)
    assert code == 1
    assert "key rejected" in row and "401" in row and "ready" not in row
    assert "wrong-key" not in row


@pytest.mark.parametrize(
    ("backend", "variable"),
    [("fal", "FAL_KEY"), ("replicate", "REPLICATE_API_TOKEN"), ("together", "TOGETHER_API_KEY")],
)
def test_a_good_key_is_verified_without_paid_work(
    backend: str, variable: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(variable, GOOD)
    transports = _emulators()
    code = run(argparse.Namespace(check=True), transports=transports)
    row = _row(capsys.readouterr().out, backend)
    assert code == 0
    assert "ready" in row and "key verified" in row
    emulator = transports[backend].emulator  # type: ignore[attr-defined]
    assert [request.method for request in emulator.log] == ["GET"]  # one free read, no job


def test_hub_token_is_checked_with_whoami(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_wrong")
    assert run(argparse.Namespace(check=True), transports=_emulators()) == 1
    assert "key rejected" in _row(capsys.readouterr().out, "hub upload")
    monkeypatch.setenv("HF_TOKEN", GOOD)
    assert run(argparse.Namespace(check=True), transports=_emulators()) == 0
    assert "ready (key verified)" in _row(capsys.readouterr().out, "hub upload")


def test_unreachable_provider_is_not_ready(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import httpx

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    monkeypatch.setenv("TOGETHER_API_KEY", GOOD)
    code = run(argparse.Namespace(check=True), transports={"together": httpx.MockTransport(refuse)})
    assert code == 1
    assert "unreachable" in _row(capsys.readouterr().out, "together")


def test_without_check_no_request_is_made(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FAL_KEY", "wrong-key")
    transports = _emulators()
    assert run(argparse.Namespace(check=False), transports=transports) == 0
    assert "ready" in _row(capsys.readouterr().out, "fal")
    assert transports["fal"].emulator.log == []  # type: ignore[attr-defined]


def test_check_with_nothing_configured_sends_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["doctor", "--check"]) == 0
    assert "no credentials" in _row(capsys.readouterr().out, "fal")


def test_debug_is_accepted_anywhere(capsys: pytest.CaptureFixture[str]) -> None:
    import logging

    handlers = list(logging.getLogger("fluxkit").handlers)
    assert main(["doctor", "--debug"]) == 0
    assert main(["--debug", "doctor"]) == 0
    assert main(["doctor", "--", "--debug"]) == 2  # after "--" it is an argument, not the flag
    assert logging.getLogger("fluxkit").handlers == handlers  # the debug log ends with the run
    assert main(["doctor", "--help"]) == 0
    help_text = capsys.readouterr().out
    assert "--check" in help_text


def test_every_option_has_help() -> None:
    from fluxkit.cli import build_parser

    def walk(parser: argparse.ArgumentParser, path: str) -> list[str]:
        missing = []
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    missing += walk(sub, f"{path} {name}")
            elif action.help is None and not isinstance(action, argparse._HelpAction):
                missing.append(f"{path}: {'/'.join(action.option_strings) or action.dest}")
        return missing

    assert walk(build_parser(), "fluxkit") == []


def test_runpod_and_hugging_face_keys_are_verified_too(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from fluxkit.testing.runpod import RunPodEmulator

    runpod = RunPodEmulator(api_key=GOOD, endpoint_id="ep1")
    transports = {
        **_emulators(),
        "runpod": runpod.transport(),
        "huggingface": HubEmulator(tokens={GOOD: "me"}).transport(),
    }
    monkeypatch.setenv("RUNPOD_ENDPOINT_ID", "ep1")
    monkeypatch.setenv("RUNPOD_API_KEY", "wrong-key")
    monkeypatch.setenv("HF_TOKEN", "wrong-key")
    assert run(argparse.Namespace(check=True), transports=transports) == 1
    output = capsys.readouterr().out
    assert "key rejected" in _row(output, "runpod") and "key rejected" in _row(
        output, "huggingface"
    )
    monkeypatch.setenv("RUNPOD_API_KEY", GOOD)
    monkeypatch.setenv("HF_TOKEN", GOOD)
    run(argparse.Namespace(check=True), transports=transports)
    output = capsys.readouterr().out
    assert "key verified" in _row(output, "runpod") and "key verified" in _row(
        output, "huggingface"
    )
    assert runpod.requests(r"/health$") and not runpod.jobs  # free: nothing ran
    monkeypatch.delenv("RUNPOD_ENDPOINT_ID")
    run(argparse.Namespace(check=True), transports=transports)
    assert "not configured" in _row(capsys.readouterr().out, "runpod")
