"""Deployments of FLUX servers that fluxkit's backends talk to.

* :mod:`fluxkit.deploy.modal_comfyui` — ComfyUI with FLUX dev, the XLabs nodes and
  IP-Adapter v2 on Modal, behind proxy auth (``pip install "fluxkit[modal]"``).
"""
