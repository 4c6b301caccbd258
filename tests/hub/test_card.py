from __future__ import annotations

import yaml

from fluxkit.hub import CardSample, render_model_card


def _front(card: str) -> dict[str, object]:
    assert card.startswith("---\n")
    loaded = yaml.safe_load(card.split("---\n", 2)[1])
    assert isinstance(loaded, dict)
    return loaded


def test_dev_card_follows_hub_conventions() -> None:
    card = render_model_card(
        repo_id="me/tok-lora",
        weight_name="tok.safetensors",
        trigger_word="tok",
        base_model="flux-dev",
        samples=[CardSample("images/sample_0.jpg", 'photo of tok, "quoted": yes')],
        details=[("Rank", "16")],
    )
    front = _front(card)
    assert front["base_model"] == "black-forest-labs/FLUX.1-dev"
    assert front["library_name"] == "diffusers" and front["pipeline_tag"] == "text-to-image"
    assert front["license"] == "other"
    assert front["license_name"] == "flux-1-dev-non-commercial-license"
    assert {"text-to-image", "lora", "diffusers", "template:sd-lora", "flux"} <= set(
        front["tags"]  # type: ignore[arg-type]
    )
    assert front["instance_prompt"] == "tok"
    assert front["widget"] == [
        {"text": 'photo of tok, "quoted": yes', "output": {"url": "images/sample_0.jpg"}}
    ]
    body = card.split("---\n", 2)[2]
    assert "<Gallery />" in body
    assert 'fluxkit.LoRA("hf://me/tok-lora/tok.safetensors"' in body
    assert 'pipe.load_lora_weights("me/tok-lora", weight_name="tok.safetensors")' in body
    assert "| Rank | 16 |" in body and "Non-Commercial" in body


def test_schnell_card_is_apache_and_uses_four_steps() -> None:
    card = render_model_card(
        repo_id="me/s", weight_name="s.safetensors", trigger_word="sks", base_model="flux-schnell"
    )
    front = _front(card)
    assert front["license"] == "apache-2.0" and "license_name" not in front
    assert front["base_model"] == "black-forest-labs/FLUX.1-schnell"
    assert "widget" not in front
    assert "num_inference_steps=4" in card and "<Gallery />" not in card
