"""Loading the FLUX pipeline once (Hub repo, diffusers directory or single file) and the pieces
that share its components: img2img through ``from_pipe`` and the IP-Adapter for reference faces.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from fluxkit._exceptions import ConfigurationError
from fluxkit.backends._local.noise import fold_library_logs

__all__ = ["IpAdapter", "ModelSource", "ModelUnavailableError", "load_pipeline"]

_PICKLE_SUFFIXES = (".bin", ".ckpt", ".pt", ".pth", ".pkl", ".pickle")
_REPO_ID = re.compile(r"^[\w.-]+/[\w.-]+$")
DEV_REPO = "black-forest-labs/FLUX.1-dev"
SCHNELL_REPO = "black-forest-labs/FLUX.1-schnell"


class ModelUnavailableError(ConfigurationError):
    """The base model cannot be loaded; the message says what to download or accept.

    Attributes:
        model: the repo id, directory or file asked for.
    """

    def __init__(self, model: str, message: str) -> None:
        self.model = model
        super().__init__(message)


@dataclass(frozen=True)
class ModelSource:
    """Where the base model comes from: ``hub`` (repo id), ``directory`` or ``file``."""

    kind: Literal["hub", "directory", "file"]
    location: str

    @classmethod
    def parse(cls, model: str) -> ModelSource:
        path = Path(model).expanduser()
        if path.suffix.lower() in _PICKLE_SUFFIXES:
            raise ModelUnavailableError(
                model,
                f"{model}: pickle checkpoints ({path.suffix}) can execute code when loaded "
                "and are refused; use a .safetensors checkpoint or a diffusers directory",
            )
        if path.is_dir():
            if not (path / "model_index.json").is_file():
                raise ModelUnavailableError(
                    model,
                    f"{model} is not a diffusers pipeline directory (no model_index.json); "
                    "save one with pipe.save_pretrained(dir), or pass a single .safetensors file",
                )
            return cls("directory", str(path))
        if path.is_file():
            return cls("file", str(path))
        if _REPO_ID.match(model) and not model.startswith((".", "~")):
            return cls("hub", model)
        raise ModelUnavailableError(
            model,
            f"model {model!r} is neither an existing directory or file nor a Hugging Face "
            f"repo id such as {DEV_REPO!r}",
        )


def load_pipeline(
    source: ModelSource, *, dtype: Any, token: str | None, single_file_config: str | None
) -> Any:
    """A ``FluxPipeline`` for ``source``; hub failures become `ModelUnavailableError`."""
    import diffusers

    lib: Any = diffusers  # partial annotations upstream; mypy --strict would reject the calls
    repo = source.location
    fold_library_logs()
    try:
        if source.kind == "file":
            # A single-file checkpoint (BFL/Civitai layout) holds the transformer only; the text
            # encoders, VAE and scheduler come from a diffusers config repo or directory.
            repo = single_file_config or (
                SCHNELL_REPO if "schnell" in Path(source.location).name.lower() else DEV_REPO
            )
            transformer = lib.FluxTransformer2DModel.from_single_file(
                source.location, config=repo, subfolder="transformer", dtype=dtype, token=token
            )
            return lib.FluxPipeline.from_pretrained(
                repo, transformer=transformer, dtype=dtype, token=token
            )
        return lib.FluxPipeline.from_pretrained(
            source.location,
            dtype=dtype,
            token=token,
            local_files_only=source.kind == "directory",
        )
    except Exception as exc:
        mapped = _model_error(exc, repo)
        if mapped is None:
            raise
        raise mapped from exc


def _model_error(exc: BaseException, repo: str) -> ModelUnavailableError | None:
    """Translate huggingface_hub/diffusers failures into what to do about them."""
    if not _REPO_ID.match(repo) or Path(repo).exists():
        return None
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and len(chain) < 8:
        chain.append(current)
        current = current.__cause__ or current.__context__
    names = {type(item).__name__ for item in chain}
    text = " ".join(str(item) for item in chain)
    page = f"https://huggingface.co/{repo}"
    gated = ModelUnavailableError(
        repo,
        f"{repo} is a gated model: open {page}, accept its licence while logged in, create a "
        "read token at https://huggingface.co/settings/tokens and set HF_TOKEN (or token=...)",
    )
    if "GatedRepoError" in names:
        return gated
    if "RepositoryNotFoundError" in names:  # its message also mentions "gated": check it first
        return ModelUnavailableError(
            repo, f"{repo} was not found on the Hugging Face Hub (a private repo needs HF_TOKEN)"
        )
    if "gated" in text.lower() or " 401 " in f" {text} " or " 403 " in f" {text} ":
        return gated
    offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")
    if "LocalEntryNotFoundError" in names or "cached" in text or isinstance(exc, OSError):
        why = "HF_HUB_OFFLINE is set" if offline else "the Hub could not be reached"
        return ModelUnavailableError(
            repo,
            f"{repo} is not (fully) in the local Hugging Face cache and {why}: download it "
            f"first with `hf download {repo}` (gated repos need their licence accepted at {page} "
            "and HF_TOKEN set), or pass a local directory as model=",
        )
    return None


class IpAdapter:
    """The FLUX IP-Adapter, loaded into the shared transformer on first use.

    Requests without a reference image must not run the IP-Adapter attention processors
    (diffusers' processors fail without image embeddings), so both processor sets are kept and
    swapped: a dictionary assignment, no weights reloaded.
    """

    def __init__(
        self, location: str, *, weight_name: str, image_encoder: str, token: str | None
    ) -> None:
        path = Path(location).expanduser()
        if path.is_file():
            location, weight_name = str(path.parent), path.name
        if not weight_name.endswith(".safetensors"):
            raise ConfigurationError(
                f"ip_adapter weight {weight_name!r}: only .safetensors files are loaded"
            )
        self.location, self.weight_name = location, weight_name
        self.image_encoder, self._token = image_encoder, token
        self._plain: dict[str, Any] | None = None
        self._with_ip: dict[str, Any] | None = None
        self._active = False

    @property
    def loaded(self) -> bool:
        return self._with_ip is not None

    def reset(self) -> None:
        """Forget the processors of a pipeline that was dropped."""
        self._plain = self._with_ip = None
        self._active = False

    def load(self, pipe: Any, dtype: Any) -> None:
        self._plain = dict(pipe.transformer.attn_processors)
        local = Path(self.location).is_dir()
        try:
            pipe.load_ip_adapter(
                self.location,
                weight_name=self.weight_name,
                image_encoder_pretrained_model_name_or_path=self.image_encoder,
                image_encoder_dtype=dtype,
                token=self._token,
                local_files_only=local or None,
            )
        except Exception as exc:
            mapped = _model_error(exc, self.location) or _model_error(exc, self.image_encoder)
            if mapped is None:
                raise
            raise mapped from exc
        self._with_ip = dict(pipe.transformer.attn_processors)
        self._active = True

    def use(self, pipe: Any, scale: float | None) -> None:
        """Turn the IP-Adapter on at ``scale``, or off when ``scale`` is None."""
        if self._plain is None or self._with_ip is None:
            return
        if scale is None:
            if self._active:
                pipe.transformer.set_attn_processor(dict(self._plain))
                self._active = False
            return
        if not self._active:
            pipe.transformer.set_attn_processor(dict(self._with_ip))
            self._active = True
        pipe.set_ip_adapter_scale(scale)
