from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from fluxkit import InvalidRequestError
from fluxkit.lora import PickleFormatError, detect_layout, inspect_lora
from fluxkit.lora._sources import LocalSource
from tests.lora import builders


def test_diffusers_peft_file_is_flux_with_rank_and_targets(diffusers_file: Path) -> None:
    info = inspect_lora(diffusers_file)
    assert info.layout == "diffusers"
    assert info.base_model == "flux"  # no metadata: FLUX.1 from the keys, variant unknown
    assert info.ranks == (16,)
    assert info.alphas == (16.0,) and info.alpha_source == "rank"
    assert "single_transformer_blocks.*.attn.to_q" in info.targets
    assert {"single_blocks", "double_blocks.attention", "double_blocks.mlp"} <= set(
        info.module_groups
    )
    assert info.tensor_count == 36 and info.module_count == 18
    assert info.dtypes == ("F16",)
    assert info.file_size == diffusers_file.stat().st_size
    assert info.is_flux
    info.check_compatible("flux-dev")
    info.check_compatible("black-forest-labs/FLUX.1-schnell")


def test_kohya_file_reads_alpha_scalars_and_metadata(kohya_file: Path) -> None:
    info = inspect_lora(kohya_file)
    assert info.layout == "kohya"
    assert info.base_model == "flux-dev"
    assert "modelspec.architecture" in info.base_model_evidence
    assert info.ranks == (8,)
    assert info.alphas == (1.0,) and info.alpha_source == "tensors"
    assert info.text_encoder and "text_encoder.clip" in info.module_groups
    assert "double_blocks.modulation" in info.module_groups
    assert info.trigger_words == ("ohwx",)
    assert info.metadata["ss_max_train_steps"] == "1200"
    assert any("scales the LoRA down 8x" in note for note in info.notes)
    assert "ss_max_train_steps=1200" in info.summary()


def test_xlabs_and_bfl_layouts(xlabs_file: Path, tmp_path: Path) -> None:
    xlabs = inspect_lora(xlabs_file)
    assert xlabs.layout == "xlabs" and xlabs.base_model == "flux" and xlabs.ranks == (16,)
    assert xlabs.module_groups == ("double_blocks.attention",)
    bfl = inspect_lora(builders.bfl_lora(tmp_path / "bfl.safetensors"))
    assert bfl.layout == "bfl" and bfl.is_flux and bfl.ranks == (4,)


def test_sdxl_file_is_recognised_and_refused_for_flux(sdxl_file: Path) -> None:
    info = inspect_lora(sdxl_file)
    assert info.layout == "kohya"
    assert info.base_model == "sdxl" and not info.is_flux
    with pytest.raises(InvalidRequestError, match="SDXL LoRA"):
        info.check_compatible("flux-dev")


def test_schnell_metadata_and_keys_only_detection(tmp_path: Path) -> None:
    schnell = builders.kohya_lora(
        tmp_path / "s.safetensors", metadata={"modelspec.architecture": "flux-1-schnell/lora"}
    )
    assert inspect_lora(schnell).base_model == "flux-schnell"
    keys_only = builders.kohya_lora(
        tmp_path / "k.safetensors",
        metadata={"modelspec.architecture": "", "ss_base_model_version": ""},
    )
    assert inspect_lora(keys_only).base_model == "flux"


def test_reads_only_the_header(kohya_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reads: list[tuple[int, int]] = []
    original = LocalSource.read

    def spy(self: LocalSource, start: int, length: int) -> bytes:
        reads.append((start, length))
        return original(self, start, length)

    monkeypatch.setattr(LocalSource, "read", spy)
    inspect_lora(kohya_file)
    header_end = 8 + struct.unpack("<Q", kohya_file.read_bytes()[:8])[0]
    # One read at offset 0 (capped by the file), then only the tiny F32 alpha block.
    assert reads[0][0] == 0
    alpha_reads = list(reads[1:])
    assert all(length <= 64 for _, length in alpha_reads)
    assert all(start >= header_end for start, _ in alpha_reads)


@pytest.mark.parametrize("name", ["lora.bin", "lora.ckpt", "lora.pt"])
def test_pickle_formats_are_refused_with_an_explanation(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(b"\x80\x02}q\x00.")
    with pytest.raises(PickleFormatError, match="arbitrary code"):
        inspect_lora(path)


def test_pickle_content_with_safetensors_name_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "sneaky.safetensors"
    path.write_bytes(b"PK\x03\x04" + b"\x00" * 40)  # torch.save's zip container
    with pytest.raises(PickleFormatError):
        inspect_lora(path)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"\x01\x00", "shorter than"),
        (struct.pack("<Q", 10**12) + b"{}", "not plausible"),
        (struct.pack("<Q", 400) + b"{}", "truncated"),
        (struct.pack("<Q", 4) + b"[1]\x20", "not a JSON object"),
        (struct.pack("<Q", 2) + b"\xff\xfe", "not UTF-8 JSON"),
    ],
)
def test_malformed_files_name_the_problem(tmp_path: Path, payload: bytes, reason: str) -> None:
    path = tmp_path / "bad.safetensors"
    path.write_bytes(payload)
    with pytest.raises(InvalidRequestError, match=reason) as caught:
        inspect_lora(path)
    assert caught.value.field == "path"


def test_tensor_pointing_past_the_end_is_refused(tmp_path: Path) -> None:
    header = json.dumps(
        {"a.lora_A.weight": {"dtype": "F16", "shape": [2, 2], "data_offsets": [0, 999]}}
    ).encode()
    path = tmp_path / "short.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header + b"\x00" * 8)
    with pytest.raises(InvalidRequestError, match="past the end"):
        inspect_lora(path)


def test_missing_file_and_unknown_layout(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequestError, match="no such file"):
        inspect_lora(tmp_path / "nope.safetensors")
    header = json.dumps({"weight": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}})
    path = tmp_path / "plain.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header.encode() + b"\x00" * 4)
    info = inspect_lora(path)
    assert info.layout == "unknown" and not info.is_flux
    with pytest.raises(InvalidRequestError, match="known key layout"):
        info.check_compatible()


def test_detect_layout_precedence_matches_diffusers() -> None:
    assert (
        detect_layout(["lora_transformer_single_transformer_blocks_0_attn_to_k.lora_down.weight"])
        == "kohya"
    )
    assert detect_layout(["double_blocks.0.processor.qkv_lora1.down.weight"]) == "xlabs"
    assert detect_layout(["base_model.model.double_blocks.0.img_mod.lin.lora_A.weight"]) == "bfl"
    assert detect_layout(["transformer.x_embedder.lora_A.weight"]) == "diffusers"
    assert detect_layout(["foo"]) == "unknown"


def test_to_dict_is_json_ready(kohya_file: Path) -> None:
    data = json.loads(json.dumps(inspect_lora(kohya_file).to_dict()))
    assert data["layout"] == "kohya" and data["rank"] == 8 and data["is_flux"] is True


def test_importing_lora_and_datasets_stays_light() -> None:
    import subprocess
    import sys

    code = (
        "import sys, fluxkit.lora, fluxkit.datasets; "
        "print(sorted(m for m in ('torch', 'huggingface_hub', 'safetensors', 'PIL') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
