"""The small base every shopstream settings class shares: the profile, the state folder and
how values are read (environment with the ``SHOPSTREAM_`` prefix, then an optional ``.env``).

The ``local`` profile (the default) works with no configuration at all. The ``prod`` profile
asks each class for its production problems (``production_problems``: a cooperative chain
through the mixins a class is made of) and refuses to build while there is one, so a process
is checked for exactly the secrets it holds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

#: The repository root; the package is installed editable from it.
PROJECT_ROOT = Path(__file__).resolve().parent.parent.parent

#: Values that must never reach production.
PLACEHOLDER_SECRETS = frozenset({"", "shopstream", "changeme", "password", "secret"})


def is_placeholder(secret: SecretStr | str) -> bool:
    """True for an empty or well-known value that must never reach production."""
    value = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
    return value in PLACEHOLDER_SECRETS


def real_secret_problem(field: str) -> str:
    """The one-line refusal for a production secret left empty or at a placeholder."""
    return f"SHOPSTREAM_{field.upper()} must be set to a real secret when SHOPSTREAM_ENV=prod"


class SettingsBase(BaseSettings):
    """The profile and the local state folder: what every process needs."""

    model_config = SettingsConfigDict(
        env_prefix="SHOPSTREAM_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
    )

    env: Literal["local", "prod"] = "local"

    # Local state: data directories, logs, pid files, checkpoints, the lake.
    state_dir: Path = PROJECT_ROOT / ".state"

    def production_problems(self) -> list[str]:
        """What this class refuses in the prod profile, one line each. Mixins extend it
        with ``[*super().production_problems(), ...]``."""
        return []

    @model_validator(mode="after")
    def _prod_needs_real_secrets(self) -> SettingsBase:
        if self.env == "prod":
            problems = self.production_problems()
            if problems:
                raise ValueError("; ".join(problems))
        return self

    @property
    def logs_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def run_dir(self) -> Path:
        return self.state_dir / "run"
