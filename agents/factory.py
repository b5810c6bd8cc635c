"""Build agents from command-line specs.

``MODEL[:personality][+cot]`` — an LLM agent (zoo name, checkpoint directory or hub id), e.g.
``smollm2-135m-instruct:aggressive+cot``. ``rule[:personality|persona]`` — a rule agent, e.g.
``rule``, ``rule:passive``, ``rule:injection``. Models are loaded once and shared between roles.
"""

from __future__ import annotations

from pathlib import Path

from negolens.agents.personas import PERSONALITIES, SELLER_PERSONAS
from negolens.errors import NegolensError, at_least, choice

ROLES = ("buyer", "seller")


def parse_spec(spec: str) -> tuple[str, str, str | None, bool]:
    """``spec`` → (model or 'rule', personality, persona, cot).

    A suffix after the last ``:`` that is neither a personality nor a seller persona raises
    :class:`NegolensError` with the closest name (unless the whole spec is an existing path).

    Examples
    --------
    >>> parse_spec("rule:passive"), parse_spec("smollm2-135m-instruct:injection+cot")
    (('rule', 'passive', None, False), ('smollm2-135m-instruct', 'fair', 'injection', True))
    >>> parse_spec("rule:agressive")
    Traceback (most recent call last):
    ...
    negolens.errors.NegolensError: unknown personality or persona 'agressive' (did you mean 'aggressive'?); use one of aggressive, fair, passive, begging, insulting, unyielding, injection
    """
    if not isinstance(spec, str) or not spec.strip():
        raise NegolensError(f"empty agent spec {spec!r}: use 'rule', 'rule:aggressive' or a model name")
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
    elif head and not Path(base).expanduser().exists():
        choice(tail, [*PERSONALITIES, *SELLER_PERSONAS], "personality or persona")
    return base, personality, persona, cot


def _check_settings(role: str, dtype, temperature: float) -> None:
    """Fail fast on a bad role, dtype or temperature, before any model is loaded."""
    from negolens.loading import DTYPES

    choice(role, ROLES, "role")
    if isinstance(dtype, str):
        choice(dtype, ("auto", *DTYPES), "dtype")
    at_least(temperature, 0, "temperature")


def make_agent(spec: str, role: str, *, models: dict, dtype: str = "float32", temperature: float = 0.0,
               max_utterance_tokens: int = 40, fetch: bool = True, device: str = "auto"):
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
    device
        Where a model is loaded: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda:1"`` …
        (a model already in ``models`` stays where it is).

    Examples
    --------
    >>> make_agent("rule:passive", "seller", models={}).config()["personality"]
    'passive'
    """
    from negolens.agents.llm_agent import LLMAgent
    from negolens.agents.rule_agent import RuleAgent

    _check_settings(role, dtype, temperature)
    name, personality, persona, cot = parse_spec(spec)
    if persona is not None and role == "buyer":
        raise NegolensError(f"{spec!r}: {persona!r} is a seller persona, only valid for sellers (use it with "
                            f"--seller); a buyer takes a personality: {', '.join(PERSONALITIES)}")
    if name == "rule":
        if cot:
            raise NegolensError("rule agents have no chain of thought; drop +cot")
        return RuleAgent(role, personality, persona)
    if name not in models:
        from negolens.hooked import load

        models[name] = load(name, dtype=dtype, fetch=None if fetch else False, attn_implementation="sdpa",
                            device=device)
    return LLMAgent(models[name], role, personality, cot, persona, max_utterance_tokens=max_utterance_tokens,
                    temperature=temperature)


def as_agent(agent, role: str, *, models: dict, dtype: str = "float32", temperature: float = 0.0,
             device: str = "auto", max_utterance_tokens: int = 40):
    """An agent for ``role`` from a loaded model, a spec string, or an agent (returned as is).

    ``dtype`` and ``device`` apply to agents built from spec strings, ``temperature`` and
    ``max_utterance_tokens`` to every LLM agent built here (see :func:`make_agent`).

    Examples
    --------
    >>> as_agent("rule", "buyer", models={}).role
    'buyer'
    """
    from negolens.agents.llm_agent import LLMAgent
    from negolens.hooked import NegoModel

    _check_settings(role, dtype, temperature)
    if isinstance(agent, NegoModel):
        return LLMAgent(agent, role, temperature=temperature, max_utterance_tokens=max_utterance_tokens)
    if isinstance(agent, str):
        return make_agent(agent, role, models=models, dtype=dtype, temperature=temperature, device=device,
                          max_utterance_tokens=max_utterance_tokens)
    if not (hasattr(agent, "act") or hasattr(agent, "act_batch")):
        raise NegolensError(f"cannot use {agent!r} as the {role}: pass a NegoModel, a spec such as 'rule' "
                            "or 'smollm2-135m-instruct:aggressive', or an agent with act()/act_batch()")
    return agent
