from __future__ import annotations

import io
import json
import tomllib
import zipfile
from pathlib import Path

import pytest
import yaml
from PIL import Image

from fluxkit import InvalidRequestError
from fluxkit.datasets import DatasetRefusedError, iter_archive, pack_dataset, read_manifest
from tests.datasets.conftest import PhotoFactory, photo_array


def _zip_images(path: Path) -> dict[str, Image.Image]:
    with zipfile.ZipFile(path) as zf:
        return {n: Image.open(io.BytesIO(zf.read(n))) for n in zf.namelist() if n.endswith(".jpg")}


def test_fal_zip_is_flat_renamed_captioned_and_metadata_free(photos: Path, tmp_path: Path) -> None:
    report = pack_dataset(photos, target="fal", trigger="tok", out=tmp_path / "tok.zip")
    assert report.output == tmp_path / "tok.zip" and not report.refused
    names = zipfile.ZipFile(report.output).namelist()
    assert names[:4] == ["0001.jpg", "0001.txt", "0002.jpg", "0002.txt"]
    assert names[-1] == "manifest.json" and len(names) == 12 * 2 + 1
    assert all("/" not in n for n in names)
    for image in _zip_images(report.output).values():
        assert image.mode == "RGB"
        assert not dict(image.getexif())  # no GPS, no serial, no orientation
        assert "comment" not in image.info and "icc_profile" not in image.info
        assert "exif" not in image.info and "xmp" not in image.info
    data = dict(iter_archive(report.output))
    assert data["0001.txt"] == b"photo of tok person"
    assert report.fixed["EXIF orientation applied"] == 3


def test_exif_orientation_is_applied_before_resizing(
    make_photo: PhotoFactory, tmp_path: Path
) -> None:
    for i in range(4):
        make_photo(f"p{i}.jpg", seed=i, size=(2000, 1500), orientation=6)
    report = pack_dataset(tmp_path / "photos", target="fal", trigger="tok", out=tmp_path / "o.zip")
    assert {(e.width, e.height) for e in report.images} == {(1024, 1365)}  # portrait now


def test_never_upscales_and_warns_below_1024(make_photo: PhotoFactory, tmp_path: Path) -> None:
    for i in range(4):
        make_photo(f"p{i}.jpg", seed=i, size=(800, 600))
    report = pack_dataset(tmp_path / "photos", target="fal", trigger="tok", out=tmp_path / "o.zip")
    assert {(e.width, e.height) for e in report.images} == {(800, 600)}
    assert any("below 1024" in w for w in report.warnings)
    assert any("4 images" in w for w in report.warnings)  # fewer than 10


def test_duplicates_and_broken_files_are_dropped_and_reported(
    make_photo: PhotoFactory, tmp_path: Path
) -> None:
    for i in range(5):
        make_photo(f"p{i}.jpg", seed=i)
    folder = tmp_path / "photos"
    (folder / "p0_copy.jpg").write_bytes((folder / "p0.jpg").read_bytes())
    photo_array(1, (1400, 1050)).resize((1380, 1035)).save(folder / "p1_smaller.jpg", quality=80)
    (folder / "truncated.jpg").write_bytes((folder / "p2.jpg").read_bytes()[:3000])
    (folder / "notes.jpg").write_bytes(b"this is not an image")
    report = pack_dataset(folder, target="replicate", trigger="tok", out=tmp_path / "o.zip")
    reasons = {d.source: d.reason for d in report.dropped}
    assert len(report.images) == 5
    assert reasons["p0_copy.jpg"].startswith("exact duplicate of")
    assert reasons["p1_smaller.jpg"].startswith("near-duplicate of")
    assert "truncated" in reasons["truncated.jpg"]
    assert "not an image" in reasons["notes.jpg"]
    text = report.format()
    assert "dropped: truncated.jpg" in text and "5 kept, 4 dropped" in text


def test_fewer_than_four_usable_images_is_refused_and_writes_nothing(
    make_photo: PhotoFactory, tmp_path: Path
) -> None:
    for i in range(3):
        make_photo(f"p{i}.jpg", seed=i)
    (tmp_path / "photos" / "p3.jpg").write_bytes(b"broken")
    with pytest.raises(DatasetRefusedError) as caught:
        pack_dataset(tmp_path / "photos", target="fal", trigger="tok", out=tmp_path / "o.zip")
    assert caught.value.report.refused and len(caught.value.report.images) == 3
    assert caught.value.field == "images"
    assert list(tmp_path.glob("*.zip")) == [] and list(tmp_path.glob(".o.zip*")) == []


def test_too_few_inputs_are_refused_before_reading(
    make_photo: PhotoFactory, tmp_path: Path
) -> None:
    make_photo("only.jpg", seed=1)
    with pytest.raises(DatasetRefusedError, match="only 1 images given"):
        pack_dataset(tmp_path / "photos", target="fal", trigger="tok", out=tmp_path / "o.zip")


def test_fal_captions_get_the_trigger_inserted_and_the_report_says_so(
    make_photo: PhotoFactory, tmp_path: Path
) -> None:
    for i in range(4):
        make_photo(f"p{i}.jpg", seed=i)
    folder = tmp_path / "photos"
    (folder / "p0.txt").write_text("a man on a beach\n", encoding="utf-8")
    (folder / "p1.txt").write_text("\ufeffportrait of [trigger], studio light", encoding="utf-8")
    report = pack_dataset(
        folder,
        target="fal",
        trigger="ohwx",
        out=tmp_path / "o.zip",
        captions={"p2": "ohwx smiling"},
    )
    captions = [e.caption for e in report.images]
    assert captions == [
        "ohwx, a man on a beach",
        "portrait of ohwx, studio light",
        "ohwx smiling",
        "photo of ohwx person",
    ]
    assert any("inserted into 1 caption" in n for n in report.notes)
    with pytest.raises(InvalidRequestError, match="captions\\['p0.jpg'\\]"):
        pack_dataset(
            folder, target="fal", trigger="ohwx", out=tmp_path / "o2.zip", trigger_policy="error"
        )
    assert not (tmp_path / "o2.zip").exists()


def test_manifest_records_hashes_not_names(photos: Path, tmp_path: Path) -> None:
    report = pack_dataset(photos, target="fal", trigger="tok", out=tmp_path / "o.zip")
    manifest = read_manifest(report.output)  # type: ignore[arg-type]
    assert manifest["target"] == "fal" and manifest["trigger"] == "tok"
    first = manifest["images"][0]
    assert set(first) == {
        "file",
        "source_hash",
        "sha256",
        "size",
        "width",
        "height",
        "caption",
        "issues",
    }
    assert "IMG_" not in json.dumps(manifest)
    data = dict(iter_archive(report.output))  # type: ignore[arg-type]
    import hashlib

    assert hashlib.sha256(data["0001.jpg"]).hexdigest() == first["sha256"]
    assert first["size"] == len(data["0001.jpg"])


def test_ai_toolkit_folder_with_job_config(photos: Path, tmp_path: Path) -> None:
    out = tmp_path / "aitk"
    report = pack_dataset(photos, target="ai-toolkit", trigger="tok", out=out)
    assert (out / "images" / "0001.jpg").is_file() and (out / "images" / "0001.txt").is_file()
    config = yaml.safe_load((out / "config.yaml").read_text())
    process = config["config"]["process"][0]
    assert process["trigger_word"] == "tok"
    assert process["datasets"][0]["folder_path"] == str(out.resolve() / "images")
    assert process["model"]["name_or_path"] == "black-forest-labs/FLUX.1-dev"
    assert report.output == out.resolve()
    assert not list(tmp_path.glob(".aitk*"))


def test_kohya_folder_with_dataset_toml(photos: Path, tmp_path: Path) -> None:
    out = tmp_path / "kohya"
    pack_dataset(photos, target="kohya", trigger="ohwx", out=out, size=768)
    config = tomllib.loads((out / "dataset.toml").read_text())
    subset = config["datasets"][0]["subsets"][0]
    assert subset["image_dir"] == str(out.resolve() / "images")
    assert subset["class_tokens"] == "ohwx"
    assert config["datasets"][0]["resolution"] == 768
    assert min(Image.open(out / "images" / "0001.jpg").size) == 768


def test_diffusers_imagefolder_is_square_with_metadata_jsonl(photos: Path, tmp_path: Path) -> None:
    out = tmp_path / "diffusers"
    pack_dataset(photos, target="diffusers", trigger="tok", out=out)
    lines = (out / "train" / "metadata.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in lines]
    assert len(rows) == 12 and rows[0] == {"file_name": "0001.jpg", "text": "photo of tok person"}
    assert Image.open(out / "train" / "0001.jpg").size == (1024, 1024)
    assert not list((out / "train").glob("*.txt"))


def test_face_crop_uses_the_locator_or_falls_back_with_a_warning(
    make_photo: PhotoFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for i in range(4):
        make_photo(f"p{i}.jpg", seed=i, size=(2000, 1000))
    folder = tmp_path / "photos"
    report = pack_dataset(
        folder,
        target="fal",
        trigger="tok",
        out=tmp_path / "a.zip",
        face_crop=True,
        face_locator=lambda image: (1700, 400, 200, 200),
    )
    assert {(e.width, e.height) for e in report.images} == {(1000, 1000)}
    assert report.fixed["face-centred square crop"] == 4
    import fluxkit.datasets._pack as pack_module

    monkeypatch.setattr(pack_module, "default_face_locator", lambda: None)
    report = pack_dataset(
        folder, target="fal", trigger="tok", out=tmp_path / "b.zip", face_crop=True
    )
    assert any("fluxkit[faces]" in w for w in report.warnings)
    assert {(e.width, e.height) for e in report.images} == {(1000, 1000)}


def test_modes_are_converted_to_8bit_rgb(make_photo: PhotoFactory, tmp_path: Path) -> None:
    make_photo("rgba.png", seed=1, fmt="PNG", mode="RGBA")
    make_photo("gray.png", seed=2, fmt="PNG", mode="L")
    make_photo("cmyk.jpg", seed=3, mode="CMYK")
    deep = photo_array(4, (1400, 1050)).convert("L")
    Image.fromarray(__import__("numpy").asarray(deep).astype("uint16") * 257).save(
        tmp_path / "photos" / "deep.png"
    )
    report = pack_dataset(tmp_path / "photos", target="fal", trigger="tok", out=tmp_path / "o.zip")
    issues = {e.source: e.issues for e in report.images}
    assert "transparency flattened onto white" in issues["rgba.png"]
    assert "grayscale converted to RGB" in issues["gray.png"]
    assert "CMYK converted to RGB" in issues["cmyk.jpg"]
    assert "16-bit converted to 8-bit" in issues["deep.png"]
    assert all(image.mode == "RGB" for image in _zip_images(report.output).values())  # type: ignore[arg-type]


def test_heic_without_decoder_is_reported_clearly(make_photo: PhotoFactory, tmp_path: Path) -> None:
    for i in range(4):
        make_photo(f"p{i}.jpg", seed=i)
    (tmp_path / "photos" / "phone.heic").write_bytes(b"\x00\x00\x00\x18ftypheic" + b"\x00" * 64)
    report = pack_dataset(tmp_path / "photos", target="fal", trigger="tok", out=tmp_path / "o.zip")
    reasons = {d.source: d.reason for d in report.dropped}
    assert "pip install pillow-heif" in reasons["phone.heic"]


def test_pil_images_and_path_lists_are_accepted(tmp_path: Path) -> None:
    images = [photo_array(i, (1200, 1200)) for i in range(4)]
    report = pack_dataset(
        images, target="fal", trigger="tok", out=tmp_path, captions=["a", "b tok", "c", "d"]
    )
    assert report.output == tmp_path / "tok-fal.zip"
    assert [e.caption for e in report.images] == ["tok, a", "b tok", "tok, c", "tok, d"]


def test_repacking_an_archive_keeps_captions(photos: Path, tmp_path: Path) -> None:
    first = pack_dataset(
        photos, target="fal", trigger="tok", out=tmp_path / "a.zip", caption="close-up of {trigger}"
    )
    again = pack_dataset(
        first.output,
        target="diffusers",
        trigger="tok",  # type: ignore[arg-type]
        out=tmp_path / "d",
    )
    assert len(again.images) == 12
    assert again.images[0].caption == "close-up of tok"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"target": "civitai"}, "target"),
        ({"trigger": ""}, "trigger"),
        ({"trigger": "two\nlines"}, "trigger"),
        ({"size": 64}, "size"),
        ({"caption": "  "}, "caption"),
        ({"trigger_policy": "maybe"}, "trigger_policy"),
    ],
)
def test_bad_arguments_name_the_field(
    photos: Path, tmp_path: Path, kwargs: dict[str, object], field: str
) -> None:
    args: dict[str, object] = {"target": "fal", "trigger": "tok", "out": tmp_path / "o.zip"}
    args.update(kwargs)
    with pytest.raises(InvalidRequestError) as caught:
        pack_dataset(photos, **args)  # type: ignore[arg-type]
    assert caught.value.field == field


def test_existing_output_folder_is_not_clobbered(photos: Path, tmp_path: Path) -> None:
    out = tmp_path / "kohya"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(InvalidRequestError, match="not empty"):
        pack_dataset(photos, target="kohya", trigger="tok", out=out)
    pack_dataset(photos, target="kohya", trigger="tok", out=out, overwrite=True)
    assert not (out / "keep.txt").exists() and (out / "dataset.toml").exists()


def test_many_images_warn(make_photo: PhotoFactory, tmp_path: Path) -> None:
    images = [photo_array(i, (600, 600)) for i in range(41)]
    report = pack_dataset(
        images,
        target="fal",
        trigger="tok",
        out=tmp_path / "o.zip",
        near_duplicate_distance=-1,
        size=512,
    )
    assert any("more than 40" in w for w in report.warnings)
