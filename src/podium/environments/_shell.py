"""The shell tool: one sandboxed command per call, governed like any tool.

``shell_tool(workspace)`` is a podium tool (``risk="high"``, not idempotent, not
read-only), so every command passes the one executor: the agent must be granted it,
the :class:`~podium.Policy` sees ``{"command": ...}`` (see
:func:`~podium.environments.command_uses`), a gated command waits for a human who may
edit it, the exactly-once ledger starts it once (a command whose process died
mid-run is *in doubt*: a human is asked, it is never silently run again), and its
result is recorded.

Each call runs ``/bin/sh -c COMMAND`` in the thread's workspace (``/workspace``)
under :mod:`~podium.environments._sandbox` with the tool's :class:`Limits`, network
policy and secrets, and records a ``command`` run event (exit code, duration, bytes
of output, truncation, timeout, sandbox, network) plus one ``network_refused`` event
per connection the network policy refused.
"""

from __future__ import annotations

import importlib.util
import os
import time
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Annotated, Any, Literal

from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool
from pydantic import Field

from podium._scrub import scrub_text
from podium.environments._netpolicy import NetworkPolicy, parse_network
from podium.environments._network import Route
from podium.environments._sandbox import (
    BASE_ENV,
    INSIDE,
    Limits,
    Outcome,
    check_sandbox,
    launch_line,
    run_command,
)
from podium.environments._secrets import Secret, check_secrets
from podium.environments._workspace import Workspace, owner_ids
from podium.errors import ConfigurationError, SandboxUnavailableError
from podium.observe import emit
from podium.tools import tool

__all__ = ["shell_tool"]

Sandbox = Literal["bwrap", "none"]


def _format(outcome: Outcome, refused: list[str]) -> str:
    status = (
        f"killed after {outcome.duration:.1f} s (timeout)"
        if outcome.timed_out
        else f"exit code {outcome.exit_code} in {outcome.duration:.2f} s"
    )
    lines = [f"[UNSANDBOXED] {status}" if outcome.sandbox == "none" else status]
    lines += [f"note: {note}" for note in outcome.notes]
    if refused:
        lines.append(
            "note: the network policy refused connections to " + ", ".join(sorted(set(refused)))
        )
    body = outcome.output if outcome.output else "(no output)"
    return scrub_text("\n".join(lines) + "\n" + body)


def shell_tool(
    workspace: Workspace,
    *,
    network: str | Sequence[str] | NetworkPolicy = "none",
    secrets: Sequence[Secret] = (),
    limits: Limits | None = None,
    sandbox: Sandbox = "bwrap",
    mounts: Sequence[str | Path] = (),
    name: str = "shell",
    description: str | None = None,
) -> BaseTool:
    """A tool that runs one shell command per call in a sandbox over ``workspace``.

    Args:
        workspace: Where commands run (``/workspace`` inside; the thread's directory).
        network: ``"none"`` (default: nothing outside the sandbox), ``"loopback"`` (the
            host's loopback services too) or an allow-list like ``["pypi.org:443"]``.
        secrets: :class:`Secret` s the command gets as environment variables; their
            values are scrubbed from everything podium stores or prints.
        limits: Per-command :class:`Limits` (default ``Limits()``: 30 s, 1 GiB, ...).
        sandbox: ``"bwrap"`` (bubblewrap; required unless you opt out) or ``"none"``:
            no isolation at all, every result and event says ``UNSANDBOXED``.
        mounts: Extra host directories visible read-only (e.g. a toolchain).
        name: The tool's name (what grants and policy rules name).
        description: What the model is told (default: says where, network, limits).

    Raises:
        SandboxUnavailableError: bubblewrap is missing or cannot start here (at build
            time, with how to install it); nothing ever runs unsandboxed instead.
        ConfigurationError: A bad network policy, secret, limit or sandbox value.

    Example:
        >>> from podium.environments import Workspace, shell_tool
        >>> shell = shell_tool(Workspace("/tmp/podium-ws"), network="none")  # doctest: +SKIP
    """
    try:
        policy = parse_network(network)
    except ValueError as exc:
        raise ConfigurationError(
            f"shell_tool(network=...): {exc}.",
            fix="Use 'none', 'loopback', or a list like ['pypi.org:443', '*.github.com'].",
        ) from None
    if sandbox not in ("bwrap", "none"):
        raise ConfigurationError(
            f"shell_tool(sandbox={sandbox!r}) is not 'bwrap' or 'none'.",
            fix="Leave the default 'bwrap'; 'none' runs commands with no isolation at all.",
        )
    limits = limits if limits is not None else Limits()
    if not isinstance(limits, Limits):
        raise ConfigurationError(f"shell_tool(limits=...) takes a Limits, got {limits!r}.")
    granted = check_secrets(secrets, reserved=BASE_ENV, where="shell_tool")
    version = check_sandbox() if sandbox == "bwrap" else "none"
    if policy.routed and sandbox == "bwrap" and importlib.util.find_spec("proxy") is None:
        raise SandboxUnavailableError(
            f"network={policy.describe()!r} needs the filtering proxy (the proxy.py package), "
            "which is not installed.",
            fix="Install podium's dependencies again (`pip install proxy.py`), or use "
            "network='none'.",
        )
    for path in mounts:
        if not os.path.isdir(path):
            raise ConfigurationError(f"shell_tool(mounts=...): {path!r} is not a directory.")
    where = INSIDE if sandbox == "bwrap" else "the workspace folder"
    net = policy.describe() if sandbox == "bwrap" else "unrestricted (sandbox='none')"
    about = description or (
        f"Run one shell command (/bin/sh) in {where}, where files persist between calls. "
        f"Network: {net}. Each command may run {limits.timeout:g} s; output "
        f"past {limits.output:,} bytes is cut."
    )

    def run(command: str, config: RunnableConfig) -> str:
        directory = workspace.ensure(workspace.for_call(config))
        env = {**BASE_ENV, "HOME": INSIDE, "PODIUM_WORKSPACE": INSIDE}
        if sandbox == "none":
            env.update(HOME=str(directory), PODIUM_WORKSPACE=str(directory))
        env.update({s.name: s.value() for s in granted})
        started = time.time()
        attempts: list[dict[str, Any]] = []
        with ExitStack() as stack:
            fd = os.open(directory, os.O_PATH | os.O_DIRECTORY)
            stack.callback(os.close, fd)
            fds, binds, prefix = [fd], [], []
            if policy.routed and sandbox == "bwrap":
                uid = owner_ids()
                route = stack.enter_context(Route(policy, uid[0] if uid else None))
                bind = route.bind()
                fds.append(bind[0])
                binds.append(bind)
                prefix = route.prefix()
                env.update(route.env())
            pipe = os.pipe() if sandbox == "bwrap" else None  # bwrap names the sandbox's PID 1
            if pipe is not None:
                stack.callback(os.close, pipe[0])
            argv = launch_line(
                command,
                fd,
                limits,
                sandbox=sandbox,
                mounts=mounts,
                binds=binds,
                prefix=prefix,
                info_fd=pipe[1] if pipe else None,
            )
            outcome = run_command(
                argv,
                limits=limits,
                env=env,
                pass_fds=fds,
                cwd=str(directory) if sandbox == "none" else None,
                sandbox=version,
                info=pipe,
            )
            if policy.routed and sandbox == "bwrap":
                attempts = route.attempts()
        refused = [a for a in attempts if not a.get("allowed")]
        emit(
            "command",
            {
                "name": name,
                "started_at": started,
                "status": "ok" if outcome.exit_code == 0 else "error",
                "exit_code": outcome.exit_code,
                "duration": round(outcome.duration, 4),
                "bytes_out": outcome.bytes_out,
                "truncated": outcome.truncated,
                "timed_out": outcome.timed_out,
                "sandbox": outcome.sandbox,
                "network": net,
                "connections": len(attempts),
                "refused": len(refused),
            },
            config,
        )
        for attempt in refused:
            emit(
                "network_refused",
                {
                    "name": name,
                    "status": "error",
                    "host": attempt.get("host"),
                    "port": attempt.get("port"),
                    "network": policy.describe(),
                },
                config,
            )
        return _format(outcome, [f"{a.get('host')}:{a.get('port')}" for a in refused])

    @tool(name=name, description=about, risk="high", idempotent=False)
    def shell(
        command: Annotated[
            str, Field(min_length=1, max_length=8000, description="The shell command line.")
        ],
        config: RunnableConfig,
    ) -> str:
        """Run one shell command in the workspace."""
        return run(command, config)

    return shell
