"""Named secrets: read at execution, given to a command's environment, scrubbed by value.

A :class:`Secret` names where a value comes from (an environment variable of the
podium process, or a file) and the variable a sandboxed command sees it under. Its
value is read when a command runs -- never when the model is asked -- and is put in
the sandbox's environment only (not on any command line: ``/proc/*/cmdline`` is
world-readable). Reading it registers the value with :mod:`podium._scrub`, so from
then on it is replaced by ``[redacted]`` in tool results (the model's context and the
checkpoints), the exactly-once ledger, run events and the trace. A secret whose
source is readable when the tool is built is registered then, so a process that
only resumes a thread also scrubs it.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from podium._scrub import MIN_SECRET_LENGTH, add_secret
from podium.errors import ConfigurationError

__all__ = ["Secret", "check_secrets"]

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Secret:
    """A named secret granted to a tool: ``Secret("GITHUB_TOKEN")``.

    Args:
        name: The environment variable the command sees it as.
        env: The podium process's environment variable to read (default: ``name``).
        file: Read the value from this file instead (surrounding whitespace stripped).

    Example:
        >>> Secret("API_TOKEN", env="PROD_API_TOKEN")
        Secret(name='API_TOKEN', env='PROD_API_TOKEN', file=None)
    """

    name: str
    env: str | None = None
    file: str | Path | None = None

    def __post_init__(self) -> None:
        """Validate the names; register the value for scrubbing if it is readable now."""
        for label, value in (("name", self.name), ("env", self.env)):
            if value is not None and not _NAME.match(value):
                raise ConfigurationError(
                    f"Secret {label}={value!r} is not an environment variable name.",
                    fix="Use letters, digits and '_' (not starting with a digit).",
                )
        if self.env is not None and self.file is not None:
            raise ConfigurationError(
                f"Secret {self.name!r} names both env= and file=; give one source."
            )
        with contextlib.suppress(ConfigurationError):  # checked again at build and each use
            self.value()

    @property
    def source(self) -> str:
        """Where the value comes from, for messages (never the value)."""
        return f"file {self.file}" if self.file is not None else f"${self.env or self.name}"

    def value(self) -> str:
        """Read the value now (and register it for scrubbing).

        Raises:
            ConfigurationError: The source is missing, empty, or too short to be a secret.
        """
        if self.file is not None:
            try:
                text = Path(self.file).read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigurationError(
                    f"Secret {self.name!r} cannot be read from {self.file}: {exc.strerror}.",
                    fix="Create the file, or point file= at it.",
                ) from None
        else:
            text = os.environ.get(self.env or self.name, "")
        if len(text) < MIN_SECRET_LENGTH:
            raise ConfigurationError(
                f"Secret {self.name!r} ({self.source}) is "
                + ("not set." if not text else f"shorter than {MIN_SECRET_LENGTH} characters.")
                + " A command granted it would run without it.",
                fix=f"Set {self.source} to the secret's value before the tool runs.",
            )
        add_secret(text)
        return text


def check_secrets(
    secrets: Sequence[Secret], *, reserved: Iterable[str], where: str
) -> tuple[Secret, ...]:
    """Check secrets granted to ``where`` (a tool or server): types, names, readable now.

    Raises:
        ConfigurationError: Not a :class:`Secret`, a name given twice or shadowing one of
            ``reserved`` (variables the sandbox sets), or a value that cannot be read.
    """
    taken = set(reserved)
    names: set[str] = set()
    for secret in secrets:
        if not isinstance(secret, Secret):
            raise ConfigurationError(
                f"{where}(secrets=...) takes Secret objects, got {secret!r}.",
                fix='Grant secrets as Secret("NAME") (read from $NAME) or '
                'Secret("NAME", file=...).',
            )
        if secret.name in names or secret.name in taken:
            raise ConfigurationError(
                f"{where}: Secret name {secret.name!r} is given twice or shadows one of "
                f"{sorted(taken)}.",
                fix="Give each secret its own variable name (Secret('NAME', env='SOURCE')).",
            )
        names.add(secret.name)
        secret.value()  # readable now, or a clear error at build time
    return tuple(secrets)
