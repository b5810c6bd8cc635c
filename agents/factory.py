"""Build agents from command-line specs.

``MODEL[:personality][+cot]`` — an LLM agent (zoo name, checkpoint directory or hub id), e.g.
``smollm2-135m-instruct:aggressive+cot``. ``rule[:personality|persona]`` — a rule agent, e.g.
``rule``, ``rule:passive``, ``rule:injection``. Models are loaded once and shared between roles.
"""

from __future__ import annotations

from negolens.agents.personas import PERSONALITIES, SELLER_PERSONAS


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
    """An agent for ``role`` from ``spec``; ``models`` caches loaded models by name."""
    from negolens.agents.llm_agent import LLMAgent
    from negolens.agents.rule_agent import RuleAgent

    name, personality, persona, cot = parse_spec(spec)
    if name == "rule":
        if cot:
            raise ValueError("rule agents have no chain of thought; drop +cot")
        return RuleAgent(role, personality, persona)
    if name not in models:
        from negolens.hooked import load
        from negolens.zoo import ZOO

        models[name] = load(name, dtype=dtype, fetch=fetch and name in ZOO, attn_implementation="sdpa")
    return LLMAgent(models[name], role, personality, cot, persona, max_utterance_tokens=max_utterance_tokens,
                    temperature=temperature)
