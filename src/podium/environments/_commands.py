"""Policy predicates over command lines: which programs a shell command runs.

``Rule(tool="shell", action="approve", when=command_uses("rm", "mv"))`` gates every
command that runs ``rm`` or ``mv`` anywhere in it -- after ``|``, ``;``, ``&&``, inside
``$(...)`` or backticks, behind ``sudo``/``env``/``xargs``/``nice``/``timeout``, as
``/bin/rm``, or inside ``sh -c '...'`` -- and (fail closed) every command it cannot
see through: unbalanced quotes, ``eval``, ``exec``, or a program name built from
variables (``$X``). Matching ``"rm" in command`` would also gate ``format`` and miss
``/bin/rm``.

A predicate over text is a tripwire for the model's honest mistakes, not a security
boundary: ``python3 -c "import os; os.remove(...)"`` runs no ``rm``. The sandbox is
the boundary; a policy decides what needs a human.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from typing import Any

from podium.errors import ConfigurationError

__all__ = ["command_programs", "command_uses"]

_SEPARATORS = {"|", "||", "&", "&&", ";", ";;", "(", ")", "{", "}", "!", "then", "do", "else"}
_WRAPPERS = {
    "sudo",
    "env",
    "nice",
    "nohup",
    "time",
    "timeout",
    "xargs",
    "command",
    "builtin",
    "stdbuf",
    "ionice",
    "setsid",
    "chroot",
    "doas",
    "busybox",
}
_SHELLS = {"sh", "bash", "dash", "zsh", "ksh"}
_OPAQUE = "<opaque>"
"""Stands for a program podium cannot name (``eval``, ``$X``, unparseable text)."""


def _words(command: str) -> list[str]:
    lexer = shlex.shlex(command, posix=True, punctuation_chars=";&|()")
    lexer.whitespace_split = True
    lexer.commenters = ""
    return list(lexer)


def command_programs(command: str, _depth: int = 0) -> set[str]:
    """The programs ``command`` runs, by base name (``<opaque>`` for what cannot be seen).

    Example:
        >>> sorted(command_programs("cat a.csv | sort && /bin/rm -f a.csv"))
        ['cat', 'rm', 'sort']
    """
    found: set[str] = set()
    for inner in re.findall(r"\$\(([^()]*)\)|`([^`]*)`", command):
        found |= command_programs(inner[0] or inner[1], _depth + 1)
    try:
        words = _words(command)
    except ValueError:  # unbalanced quotes: cannot tell what runs
        return found | {_OPAQUE}
    start = True
    pending_shell = False
    wrapped = False  # after sudo/env/xargs/...: every word may be the program (fail closed)
    for word in words:
        if word in _SEPARATORS or set(word) <= set(";&|()"):
            start, wrapped = True, False
            continue
        if wrapped and not word.startswith("-"):
            found.add(word.rsplit("/", 1)[-1])
        if pending_shell:
            if word == "-c":
                continue
            pending_shell = False
            if _depth < 4:
                found |= command_programs(word, _depth + 1)
            start = False
            continue
        if not start:
            if word == "-exec":  # find -exec PROGRAM
                start = True
            continue
        if "=" in word and not word.startswith(("=", "/")) and re.match(r"^\w+=", word):
            continue  # VAR=value before the program
        name = word.rsplit("/", 1)[-1]
        if "$" in word or name in ("eval", "exec", "source", "."):
            found.add(_OPAQUE)
        found.add(name)
        if name in _WRAPPERS:
            wrapped = True  # its options and their values are not told apart from programs
            continue
        if name in _SHELLS:
            pending_shell = True
        start = False
    return found


def command_uses(*programs: str, key: str = "command") -> Callable[[dict[str, Any]], bool]:
    """A ``Rule(when=...)`` predicate: the command runs one of ``programs``.

    Commands podium cannot see through (see the module docs) count as using them.

    Args:
        programs: Program names (``"rm"``, ``"curl"``).
        key: The argument holding the command line (``command`` for :func:`shell_tool`).

    Example:
        >>> uses_rm = command_uses("rm")
        >>> uses_rm({"command": "ls; rm -rf out"}), uses_rm({"command": "format x"})
        (True, False)
    """
    if not programs or not all(isinstance(p, str) and p for p in programs):
        raise ConfigurationError(
            "command_uses() needs one or more program names, like command_uses('rm')."
        )
    wanted = frozenset(programs)

    def uses(args: dict[str, Any]) -> bool:
        names = command_programs(str(args.get(key, "")))
        return bool(names & wanted) or _OPAQUE in names

    uses.__name__ = f"command_uses({', '.join(sorted(wanted))})"
    return uses
