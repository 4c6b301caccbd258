"""Output checks the commands run *before* any work or payment, and the paid-result fallback.

A command that is going to write a file must know, before it asks a provider for anything,
that the file can be written: an existing file (without ``--overwrite``), a folder where a file
is expected, or an unwritable folder all fail with exit 2 and nothing spent.
"""

from __future__ import annotations

import os
from pathlib import Path

from fluxkit._exceptions import InvalidRequestError, OutputExistsError

__all__ = ["IMAGE_SUFFIXES", "OVERWRITE_HINT", "check_folder", "check_new_file"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
OVERWRITE_HINT = "use --overwrite to replace it"


def _check_writable(folder: Path, option: str, given: str) -> None:
    """``folder`` (or its nearest existing ancestor, where it will be created) is writable."""
    probe = folder
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise InvalidRequestError(option, given, "a path in a folder", reason=f"{probe} is a file")
    if probe.exists() and not os.access(probe, os.W_OK | os.X_OK):
        raise InvalidRequestError(
            option, given, "a writable location", reason=f"{probe} is not writable"
        )


def check_new_file(path: str, *, overwrite: bool, option: str = "--output") -> Path:
    """Raise unless ``path`` can be written as a new file (or replaced, with ``overwrite``).

    Example:
        ```python
        from fluxkit.cli._output import check_new_file

        check_new_file("out.png", overwrite=False)  # Path('out.png') when it does not exist yet
        ```
    """
    target = Path(path).expanduser()
    if target.is_dir():
        raise InvalidRequestError(option, path, "a file name", reason="is a folder")
    if os.path.lexists(target) and not overwrite:
        raise OutputExistsError(target, hint=OVERWRITE_HINT)
    _check_writable(target.parent, option, path)
    return target


def check_folder(path: str, *, option: str = "--output") -> Path:
    """Raise unless ``path`` is a folder, or can be created as one, that is writable.

    Example:
        ```python
        from fluxkit.cli._output import check_folder

        check_folder("renders/")  # Path('renders')
        ```
    """
    folder = Path(path).expanduser()
    if folder.exists() and not folder.is_dir():
        raise InvalidRequestError(
            option,
            path,
            f"a folder, or a file name ending in {', '.join(IMAGE_SUFFIXES)}",
            reason="is an existing file",
        )
    _check_writable(folder, option, path)
    return folder
