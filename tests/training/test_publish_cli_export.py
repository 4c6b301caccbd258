"""Hub push on success, the ``fluxkit train`` command, exporters, log parsing, pricing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from fluxkit._uploads import UploadCache
from fluxkit.testing.fal import FalEmulator
from fluxkit.testing.hub import HubEmulator, hub_client_settings
from fluxkit.training import LoRALibrary, Trainer, estimate_training, handle_path_for
from fluxkit.training._logs import parse_progress, split_lines


@pytest.fixture
def hub_url() -> Iterator[tuple[HubEmulator, str]]:
    pytest.importorskip("huggingface_hub")
    hub = HubEmulator(tokens={"hf_test": "me"})
    with hub.serve() as url, hub_client_settings():
        yield hub, url


def test_push_on_success_publishes_a_private_repo_with_card(
    fal: FalEmulator, library: LoRALibrary, photos: Path, hub_url: tuple[HubEmulator, str]
) -> None:
    from tests.datasets.conftest import photo_array

    hub, url = hub_url
    sample = photos.parent / "sample.jpg"
    photo_array(9, (512, 512)).save(sample)
    trainer = Trainer(
        "fal",
        api_key="test",
        base_url=fal.base_url,
        transport=fal.transport(),
        poll_interval=0.01,
        library=library,
        upload_cache=UploadCache(),
        push_token="hf_test",
        hub_endpoint=url,
    )
    job = trainer.train(
        photos, trigger_word="tok", steps=5, push="me/tok-lora", samples=[(sample, "photo of tok")]
    )
    lora = job.wait()
    assert lora.source == "hf://me/tok-lora/lora.safetensors"
    repo = hub.repos["me/tok-lora"]
    assert repo.private and {"lora.safetensors", "README.md"} <= set(repo.files)
    assert "images/sample_0.jpg" in repo.files
    import yaml

    front = yaml.safe_load(repo.files["README.md"].data.decode().split("---\n")[1])
    assert front["instance_prompt"] == "tok"
    assert front["base_model"] == "black-forest-labs/FLUX.1-dev"
    assert repo.files["lora.safetensors"].data == Path(job.handle.lora_path or "").read_bytes()


def test_cli_train_then_resume(
    fal: FalEmulator,
    photos: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from fluxkit.cli import main

    monkeypatch.setenv("FAL_KEY", "test")
    with fal.serve() as url:
        common = [
            "--base-url",
            url,
            "--library",
            str(tmp_path / "lib"),
            "--poll-interval",
            "0.01",
            "--no-progress",
        ]
        assert (
            main(["train", str(photos), "--trigger", "tok", "--steps", "5", "--no-wait", *common])
            == 0
        )
        out = capsys.readouterr().out
        assert "estimated cost: $0.0100" in out and "handle:" in out
        handle = handle_path_for(photos, "fal")
        assert main(["train", "--resume", str(handle), *common]) == 0
        assert "LoRA: " in capsys.readouterr().out
        assert (
            main(
                [
                    "train",
                    str(photos),
                    "--trigger",
                    "tok",
                    "--steps",
                    "1000",
                    "--max-cost",
                    "1",
                    "--backend",
                    "fal",
                    *common,
                ],
            )
            != 0
        )
    assert len(fal.requests(r"^/fal-ai/flux-lora-fast-training$", method="POST")) == 1
    monkeypatch.setenv("REPLICATE_API_TOKEN", "test")
    assert main(["train", "--estimate", "--backend", "replicate", "--steps", "1000"]) == 0
    assert "GPU-s" in capsys.readouterr().out


def test_cli_needs_photos_and_trigger(capsys: pytest.CaptureFixture[str]) -> None:
    from fluxkit.cli import main

    assert main(["train"]) == 2
    assert "--trigger" in capsys.readouterr().err


def test_export_ai_toolkit_and_kohya(photos: Path, tmp_path: Path) -> None:
    import tomllib

    import yaml

    from fluxkit.training import export_ai_toolkit, export_kohya

    config = export_ai_toolkit(
        photos, tmp_path / "aitk", trigger_word="tok", steps=1500, rank=32, learning_rate=2e-4
    )
    job = yaml.safe_load(config.read_text())
    process = job["config"]["process"][0]
    assert process["network"] == {"type": "lora", "linear": 32, "linear_alpha": 32}
    assert process["train"]["steps"] == 1500 and process["train"]["lr"] == 2e-4
    folder = Path(process["datasets"][0]["folder_path"])
    assert len(list(folder.glob("*.jpg"))) == 5 and len(list(folder.glob("*.txt"))) == 5

    train = export_kohya(photos, tmp_path / "kohya", trigger_word="tok", rank=16, alpha=8)
    args = tomllib.loads(train.read_text())
    assert args["network_dim"] == 16 and args["network_alpha"] == 8.0
    assert args["network_module"] == "networks.lora_flux"
    assert Path(args["dataset_config"]).exists()
    assert "flux_train_network.py" in (tmp_path / "kohya" / "train.sh").read_text()
    with pytest.raises(ValueError, match="rank"):
        export_kohya(photos, tmp_path / "k2", trigger_word="tok", rank=0)


def test_progress_from_tqdm_frames_and_step_words() -> None:
    log = (
        "Captioning...\nflux_train_replicate:  83%|########  | 2482/3000 [43:27<09:04,"
        "  1.05s/it, lr: 4.0e-04 loss: 2.472e-01]\rflux_train_replicate:  83%|########  | "
        "2490/3000 [43:35<08:56,  1.05s/it, lr: 4.0e-04 loss: 2.400e-01]"
    )
    found = parse_progress(split_lines(log))
    assert found is not None and (found.step, found.total, found.loss) == (2490, 3000, 0.24)
    assert parse_progress(["step 12/100 loss=0.5"]) == parse_progress(["Step: 12 of 100 loss: 0.5"])
    assert parse_progress(["Using seed: 7", "0/10 [00:00<?, ?it/s]"]) is not None
    assert parse_progress(["nothing here"]) is None


def test_training_prices_are_published_figures() -> None:
    fal = estimate_training("fal", "fal-ai/flux-lora-fast-training", 1000)
    assert fal.usd == pytest.approx(2.0) and "fal.ai" in fal.detail
    rep = estimate_training("replicate", "ostris/flux-dev-lora-trainer", 1000)
    assert rep.usd == pytest.approx((180 + 1050) * 0.001525)
    assert estimate_training("local", "x", 10).usd == 0.0


def test_a_pushed_lora_generates_on_a_hosted_backend(
    fal: FalEmulator, library: LoRALibrary, photos: Path, hub_url: tuple[HubEmulator, str]
) -> None:
    _, url = hub_url
    trainer = Trainer(
        "fal",
        api_key="test",
        base_url=fal.base_url,
        transport=fal.transport(),
        poll_interval=0.01,
        library=library,
        upload_cache=UploadCache(),
        push_token="hf_test",
        hub_endpoint=url,
    )
    lora = trainer.train(photos, trigger_word="tok", steps=5, push="me/tok-lora").wait()
    result = fal.generator().generate("portrait of tok", loras=[lora], seed=1)
    assert result.images
    sent = fal.requests(r"^/fal-ai/flux-lora$", method="POST")[0].json()
    assert sent["loras"][0]["path"].endswith("/me/tok-lora/resolve/main/lora.safetensors")


def test_import_stays_light() -> None:
    import subprocess
    import sys

    code = (
        "import sys, fluxkit.training; "
        "print(sorted(m for m in ('torch', 'diffusers', 'peft') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(
    "argv",
    [
        ["train", "missing-folder", "--trigger", "t"],
        ["train", "--resume", "missing.json"],
        ["train", "photos", "--trigger", "t", "--steps", "abc"],
        ["train", "photos", "--trigger", "t", "--backend", "local"],
        ["train", "photos", "--trigger", "t", "--backend", "nope"],
    ],
)
def test_cli_bad_input_is_one_line_exit_2(
    argv: list[str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    from fluxkit.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FAL_KEY", "test")
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err


@pytest.mark.parametrize(
    ("backend", "model", "path"),
    [
        ("fal", None, r"^/fal-ai/flux-lora$"),
        ("replicate", None, r"/black-forest-labs/flux-dev-lora/predictions$"),
        ("together", "flux-dev-lora", r"/images/generations$"),
    ],
)
def test_the_trained_lora_shape_generates_on_each_hosted_backend(
    backend: str, model: str | None, path: str
) -> None:
    """What `push=` returns (``hf://owner/name/lora.safetensors`` + trigger) on each backend —
    on Together with the LoRA-capable FLUX.1 model."""
    import fluxkit
    from fluxkit.testing.replicate import ReplicateEmulator
    from fluxkit.testing.together import TogetherEmulator

    emu = {"fal": FalEmulator, "replicate": ReplicateEmulator, "together": TogetherEmulator}
    emulator = emu[backend]()
    lora = fluxkit.LoRA("hf://me/tok-lora/lora.safetensors", trigger_words=("tok",))
    options = {"model": model} if model else {}
    result = emulator.generator(**options).generate(
        "portrait of tok", loras=[lora], seed=1, size=(512, 512)
    )
    assert result.images and emulator.requests(path, method="POST")
    assert "tok-lora" in json.dumps(emulator.requests(path, method="POST")[0].json())


def test_a_failed_push_is_retried_on_resume_without_training_again(
    fal: FalEmulator, library: LoRALibrary, photos: Path, hub_url: tuple[HubEmulator, str]
) -> None:
    hub, url = hub_url

    def make(token: str) -> Trainer:
        return Trainer(
            "fal",
            api_key="test",
            base_url=fal.base_url,
            transport=fal.transport(),
            poll_interval=0.01,
            library=library,
            upload_cache=UploadCache(),
            push_token=token,
            hub_endpoint=url,
        )

    job = make("hf_wrong").train(photos, trigger_word="tok", steps=5, push="me/tok-lora")
    with pytest.raises(Exception, match="401|403|[Aa]uth|[Tt]oken"):
        job.wait()
    assert job.handle.lora_path and Path(job.handle.lora_path).exists()  # kept all the same
    lora = make("hf_test").resume(job.handle_path).wait()
    assert lora.source == "hf://me/tok-lora/lora.safetensors" and "me/tok-lora" in hub.repos
    assert len(fal.requests(r"^/fal-ai/flux-lora-fast-training$", method="POST")) == 1
