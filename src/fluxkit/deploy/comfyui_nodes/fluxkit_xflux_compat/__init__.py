"""fluxkit's XLabs compatibility custom node (shipped in the Modal image; the ComfyUI test kit loads
the same code with ComfyServer(xflux_compat=True)): lets XLabs x-flux-comfyui's patched FLUX blocks run on
ComfyUI >= 0.3.8. Not loaded by default.

Since ComfyUI added attention masks to FLUX (PR #5942, Dec 2024), comfy/ldm/flux/model.py calls every double block
as block(img=, txt=, vec=, pe=, attn_mask=, transformer_options=). XLabs' ApplyFluxIPAdapter / LoadFluxLora /
ApplyFluxControlNet swap in their own DoubleStreamBlock whose forward(img, txt, vec, pe) takes no such arguments, so
sampling fails with "TypeError: DoubleStreamBlock.forward() got an unexpected keyword argument 'attn_mask'"
(upstream issues XLabs-AI/x-flux-comfyui#160 and #180, open). This shim, loaded after the XLabs package, wraps that
forward to accept and drop the two arguments (FLUX.1 graphs pass attn_mask=None).

CPU only, second problem: XLabs' IPProcessor is hard-wired to bfloat16 (ApplyFluxIPAdapter casts it and the image
tokens to bf16), while ComfyUI computes FLUX in float32 on CPU (should_use_bf16() is False for CPU), so
scaled_dot_product_attention fails with "Expected query, key, and value to have the same dtype". The shim wraps
IPProcessor.forward to hand it a bf16 query and return the result in the query's dtype.

The XLabs files stay unmodified; both wrappers only adapt arguments/dtypes around the original methods.
"""

import logging
import sys
from typing import Any

NODE_CLASS_MAPPINGS: dict[str, Any] = {}
NODE_DISPLAY_NAME_MAPPINGS: dict[str, str] = {}


def _patch_ip_processor(mod: Any) -> int:
    cls = getattr(mod, "IPProcessor", None)
    if cls is None or getattr(cls, "_fluxkit_compat", False):
        return 0
    orig = cls.forward

    def forward(self: Any, img_q: Any, attn: Any, _orig: Any = orig) -> Any:
        dt = self.ip_adapter_double_stream_k_proj.weight.dtype
        return _orig(self, img_q.to(dt), attn).to(img_q.dtype)

    cls.forward = forward
    cls._fluxkit_compat = True
    return 1


def _patch() -> None:
    patched = 0
    for name, mod in list(sys.modules.items()):
        if name.endswith("x-flux-comfyui.layers"):
            patched += _patch_ip_processor(mod)
        if not name.endswith("xflux.src.flux.modules.layers"):
            continue
        cls = getattr(mod, "DoubleStreamBlock", None)
        if cls is None or getattr(cls, "_fluxkit_compat", False):
            continue
        orig = cls.forward

        def forward(
            self: Any,
            img: Any,
            txt: Any,
            vec: Any,
            pe: Any,
            attn_mask: Any = None,
            transformer_options: Any = None,
            _orig: Any = orig,
            **_ignored: Any,
        ) -> Any:
            return _orig(self, img, txt, vec, pe)

        cls.forward = forward
        cls._fluxkit_compat = True
        patched += 1
    if patched:
        logging.info(
            "fluxkit_xflux_compat: patched %d XLabs classes "
            "(DoubleStreamBlock.forward kwargs, IPProcessor dtype)",
            patched,
        )
    else:
        logging.warning("fluxkit_xflux_compat: XLabs x-flux-comfyui not loaded; nothing patched")


_patch()
