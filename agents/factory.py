"""Build agents from command-line specs.

``MODEL[:personality][+cot]`` — an LLM agent (zoo name, checkpoint directory or hub id), e.g.
``smollm2-135m-instruct:aggressive+cot``. ``rule[:personality|persona]`` — a rule agent, e.g.
``rule``, ``rule:passive``, ``rule:injection``. Models are loaded once and shared between roles.
"""

from __future__ import annotations

from negolens.agents.personas import PERSONALITIES, SELLER_PERSONAS
from negolens.errors import NegolensError


def parse_spec(spec: str) -> tuple[str, str, str | None, bool]:
    """``spec`` → (model or 'rule', personality, persona, cot)."""
    cot = spec.endswith("+cot")
    base = spec[: -len("+cot")] if cot else spec
    personality, persona = "fair", None
    head, _, tail = base.rpartition(":")
    if head and (tail in PERSONALITIES or tail in SELLER_PERSONAS):
        base = head
        if tail in PERSONALITIES:
            personality = tail
        else:
            persona = tail
    return base, personality, persona, cot


def make_agent(spec: str, role: str, *, models: dict, dtype: str = "float32", temperature: float = 0.0,
               max_utterance_tokens: int = 40, fetch: bool = True):
    """An agent for ``role`` from a spec string.

    Parameters
    ----------
    spec
        ``MODEL[:personality][+cot]`` or ``rule[:personality|persona]`` (see the module docstring).
    role
        ``"buyer"`` or ``"seller"``.
    models
        Cache of loaded models by name, shared between the two roles of a run.
    dtype, temperature, max_utterance_tokens
        Passed to the model load / the :class:`~negolens.agents.llm_agent.LLMAgent`.
    fetch
        Fetch a zoo model that is not cached yet.

    Examples
    --------
    >>> make_agent("rule:passive", "seller", models={}).config()["personality"]
    'passive'
    """
    from negolens.agents.llm_agent import LLMAgent
    from negolens.agents.rule_agent import RuleAgent

    name, personality, persona, cot = parse_spec(spec)
    if name == "rule":
        if cot:
            raise NegolensError("rule agents have no chain of thought; drop +cot")
        return RuleAgent(role, personality, persona)
    if name not in models:
        from negolens.hooked import load

        models[name] = load(name, dtype=dtype, fetch=None if fetch else False, attn_implementation="sdpa")
    return LLMAgent(models[name], role, personality, cot, persona, max_utterance_tokens=max_utterance_tokens,
                    temperature=temperature)


def as_agent(agent, role: str, *, models: dict, dtype: str = "float32", temperature: float = 0.0):
    """An agent for ``role`` from a loaded model, a spec string, or an agent (returned as is).

    Examples
    --------
    >>> as_agent("rule", "buyer", models={}).role
    'buyer'
    """
    from negolens.agents.llm_agent import LLMAgent
    from negolens.hooked import NegoModel

    if isinstance(agent, NegoModel):
        return LLMAgent(agent, role, temperature=temperature)
    if isinstance(agent, str):
        return make_agent(agent, role, models=models, dtype=dtype, temperature=temperature)
    if not (hasattr(agent, "act") or hasattr(agent, "act_batch")):
        raise NegolensError(f"cannot use {agent!r} as the {role}: pass a NegoModel, a spec such as 'rule' "
                            "or 'smollm2-135m-instruct:aggressive', or an agent with act()/act_batch()")
    return agent
