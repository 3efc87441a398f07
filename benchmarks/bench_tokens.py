# ruff: noqa: RUF001
"""7. Token efficiency: one three-specialist task, podium's manager vs langgraph-supervisor.

The task: plan a trip; the coordinator asks ``flights``, then ``hotels``, then
``weather`` (one at a time on both sides: langgraph-supervisor's default is
``parallel_tool_calls=False``), each specialist calls its one tool and answers,
then the coordinator answers. Every model reply is the same text on both sides;
only the orchestration differs (what each model call is sent).

Counted with the scripted model's own rule, ``ceil(characters / 4)``: (a) the
messages of every model call (its ``usage_metadata.input_tokens``), and (b) the
same plus the JSON of the tool definitions bound to the call (what an API bills).
``create_supervisor`` runs with its default options; specialists are
``create_react_agent`` agents, as its documentation builds them.
"""

from __future__ import annotations

import json
import math
from typing import Any

from langchain_core.messages import AIMessage
from langchain_core.tools import BaseTool
from langchain_core.tools import tool as lc_tool

from benchmarks import _scenarios as S
from benchmarks._harness import Row
from podium import Agent
from podium.graphs import create_manager_graph
from podium.testing import ScriptedChatModel
from podium.tools import tool as podium_tool

SPECIALISTS = {
    "flights": (
        "Finds flights between cities.",
        "search_flights",
        "Flights BER→LIS May 4: TP 531 07:10 240 EUR; FR 1412 13:25 95 EUR. Return May "
        "7: TP 536 18:40 210 EUR; FR 1413 17:55 89 EUR.",
    ),
    "hotels": (
        "Finds hotels.",
        "search_hotels",
        "Hotels in Lisbon May 4-7, 2 guests: Alfama Nest 3* 120 EUR/night 4.6; Baixa "
        "House 4* 180 EUR/night 4.8; Chiado Loft 4* 210 EUR/night 4.7.",
    ),
    "weather": (
        "Gives weather forecasts.",
        "forecast",
        "Lisbon May 4-7: 22/15 °C sunny; 23/16 °C sunny; 21/15 °C light rain; "
        "24/16 °C sunny. UV index 7.",
    ),
}
BOSS_PROMPT = (
    "You are a travel planning coordinator. Delegate each part of the request to the right "
    "specialist, one at a time, then write the final plan for the customer from their answers."
)
SPEC_PROMPT = "You are the {name} specialist. Use your tool, then answer in two sentences."
USER = (
    "Plan a 3-day trip to Lisbon for two people, May 4 to May 7, from Berlin. I need flights, a "
    "hotel in the old town under 200 EUR a night, and to know what weather to pack for."
)
TASKS = {
    "flights": "Find flights Berlin to Lisbon on May 4 and back on May 7 for two people.",
    "hotels": "Find a hotel in Lisbon's old town, May 4-7, two guests, under 200 EUR a night.",
    "weather": "What is the weather forecast in Lisbon for May 4 to May 7?",
}
ANSWERS = {
    "flights": "Best value: FR 1412 out (13:25, 95 EUR) and FR 1413 back (17:55, 89 EUR). "
    "TP 531/536 are faster options at 450 EUR together.",
    "hotels": "Alfama Nest (3*, 120 EUR/night, rated 4.6) is in the old town and within "
    "budget; Baixa House (4*, 180 EUR) is the upgrade.",
    "weather": "Mostly sunny, 21-24 °C by day and 15-16 °C at night, light rain on May 6: "
    "pack light layers and a rain jacket.",
}
FINAL = (
    "Your Lisbon plan: fly FR 1412 on May 4 and FR 1413 on May 7 (184 EUR each), stay at Alfama "
    "Nest in the old town (120 EUR a night), and pack light layers with a rain jacket for May 6."
)


def _tool(name: str, result: str, podium: bool) -> BaseTool:
    def search(query: str) -> str:
        return result

    search.__name__ = name
    search.__doc__ = f"{name.replace('_', ' ').capitalize()}."
    return podium_tool(read_only=True)(search) if podium else lc_tool(search)


def _specialist_script(name: str) -> list[AIMessage]:
    tool_name = SPECIALISTS[name][1]
    return [S.reply("", [(tool_name, {"query": TASKS[name]})]), S.reply(ANSWERS[name])]


def _count(models: list[ScriptedChatModel]) -> tuple[int, int, int]:
    messages = schemas = calls = 0
    for m in models:
        for call in m.calls:
            usage = call.response.usage_metadata or {}
            messages += int(usage.get("input_tokens", 0))
            tools = call.kwargs.get("tools") or []
            schemas += math.ceil(len(json.dumps(tools)) / 4) if tools else 0
            calls += 1
        m.assert_consumed()
    return messages, messages + schemas, calls


def podium_run(history: list[Any] | None = None) -> tuple[int, int, int]:
    boss = S.model(
        [
            *(S.reply("", [(n, {"task": TASKS[n]})]) for n in SPECIALISTS),
            S.reply(FINAL),
        ]
    )
    models = [boss]
    specialists = []
    for name, (description, tool_name, result) in SPECIALISTS.items():
        m = S.model(_specialist_script(name))
        models.append(m)
        specialists.append(
            Agent(
                name=name,
                description=description,
                instructions=SPEC_PROMPT.format(name=name),
                model=m,
                tools=[_tool(tool_name, result, podium=True)],
            )
        )
    manager = Agent(name="coordinator", instructions=BOSS_PROMPT, model=boss)
    app = create_manager_graph(manager, specialists).compile()
    out = app.invoke({"messages": [*(history or []), ("user", USER)]})
    assert out["messages"][-1].content == FINAL
    return _count(models)


def supervisor_run(history: list[Any] | None = None) -> tuple[int, int, int]:
    S.quiet_deprecations()
    from langgraph.prebuilt import create_react_agent
    from langgraph_supervisor import create_supervisor

    boss = S.model(
        [
            *(S.reply("", [(f"transfer_to_{n}", {})]) for n in SPECIALISTS),
            S.reply(FINAL),
        ]
    )
    models = [boss]
    agents: list[Any] = []
    for name, (_description, tool_name, result) in SPECIALISTS.items():
        m = S.model(_specialist_script(name))
        models.append(m)
        agents.append(
            create_react_agent(
                m,
                [_tool(tool_name, result, podium=False)],
                name=name,
                prompt=SPEC_PROMPT.format(name=name),
            )
        )
    app = create_supervisor(agents, model=boss, prompt=BOSS_PROMPT).compile()
    out = app.invoke({"messages": [*(history or []), ("user", USER)]})
    assert out["messages"][-1].content == FINAL
    return _count(models)


HISTORY = [
    (
        "user",
        "Hi! We are two adults thinking about a long weekend somewhere warm in Europe in "
        "May, ideally with good food, a walkable old town and a beach within an hour.",
    ),
    (
        "assistant",
        "Lisbon fits well: mild May weather, the Alfama and Baixa old towns, great "
        "seafood, and Cascais or Costa da Caparica beaches 30-40 minutes away by train or bus.",
    ),
    ("user", "Sounds great. What should we not miss there on a first visit, in short?"),
    (
        "assistant",
        "Tram 28 through Alfama, the Belém tower and pastéis de Belém, sunset at a "
        "miradouro such as Senhora do Monte, LX Factory, and a fado evening in Alfama.",
    ),
]
"""Two earlier turns, for the third-turn variant (row 7c)."""


def run(quick: bool) -> list[Row]:
    p_msgs, p_all, p_calls = podium_run()
    s_msgs, s_all, s_calls = supervisor_run()
    _, p_later, _ = podium_run(list(HISTORY))
    _, s_later, _ = supervisor_run(list(HISTORY))
    rows = []
    for letter, what, p, s in (
        ("a", "messages", p_msgs, s_msgs),
        ("b", "messages + tool definitions", p_all, s_all),
        ("c", "messages + tool definitions, as the 3rd turn of a chat", p_later, s_later),
    ):
        rows.append(
            Row(
                f"7{letter}",
                f"Prompt tokens, three-specialist task ({what})",
                f"{p:,} tokens",
                f"{s:,} tokens",
                p / s,
                "≤ 0.5×",
                p / s <= 0.5,
                note=f"baseline: langgraph-supervisor `create_supervisor` (defaults); model calls: "
                f"podium {p_calls}, supervisor {s_calls}",
            )
        )
    return rows
