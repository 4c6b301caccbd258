from __future__ import annotations

import pickle

import pytest

from fluxkit import MissingCredentialsError, MissingDependencyError, Secret
from fluxkit._config import resolve_secret


def test_argument_wins_over_environment() -> None:
    secret = resolve_secret("arg", env_vars=("FAL_KEY",), backend="fal", environ={"FAL_KEY": "env"})
    assert secret is not None and secret.reveal() == "arg"


def test_first_set_environment_variable_is_used() -> None:
    secret = resolve_secret(None, env_vars=("A", "B"), backend="x", environ={"B": " b-key "})
    assert secret is not None and secret.reveal() == "b-key"


def test_missing_credentials_name_the_variable_and_the_argument() -> None:
    with pytest.raises(MissingCredentialsError) as info:
        resolve_secret(None, env_vars=("FAL_KEY",), backend="fal", environ={})
    assert "FAL_KEY" in str(info.value) and "api_key=" in str(info.value)


def test_secrets_never_show_themselves() -> None:
    secret = Secret("sk-very-secret")
    for text in (repr(secret), str(secret), f"{secret}", repr([secret]), repr({"k": secret})):
        assert "sk-very-secret" not in text
    with pytest.raises(TypeError):
        pickle.dumps(secret)


def test_missing_dependency_names_the_extra() -> None:
    error = MissingDependencyError("the diffusers backend", extra="local", package="torch")
    assert 'pip install "fluxkit[local]"' in str(error) and isinstance(error, ImportError)
