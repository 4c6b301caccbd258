"""Credentials and settings: the explicit argument first, then the provider's own variable."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from fluxkit._exceptions import MissingCredentialsError

__all__ = ["Secret", "resolve_secret"]


class Secret:
    """A credential that never shows itself in reprs, logs or tracebacks.

    ``str(secret)`` is masked too; only `reveal` gives the value, at the point of use.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def prefixed(self, prefix: str) -> Secret:
        """The header value ``prefix + value`` (``"Bearer "``, ``"Key "``), still wrapped.

        Backends put this in request headers; only the driver reveals it, when it hands the
        request to httpx, so frames captured with their locals never show the key.
        """
        return Secret(prefix + self._value)

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __bool__(self) -> bool:
        return bool(self._value)

    def __reduce__(self) -> str:
        raise TypeError("a Secret cannot be pickled")


def resolve_secret(
    argument: str | Secret | None,
    *,
    env_vars: Sequence[str],
    backend: str,
    argument_name: str = "api_key",
    environ: Mapping[str, str] | None = None,
    required: bool = True,
) -> Secret | None:
    """The credential from ``argument``, else the first set variable of ``env_vars``.

    Raises:
        MissingCredentialsError: when ``required`` and nothing was found; the message names the
            argument and every variable that would do.
    """
    if isinstance(argument, Secret):
        return argument
    if argument:
        return Secret(argument)
    env = os.environ if environ is None else environ
    for name in env_vars:
        value = env.get(name, "").strip()
        if value:
            return Secret(value)
    if required:
        raise MissingCredentialsError(backend, env_vars=env_vars, argument=argument_name)
    return None
