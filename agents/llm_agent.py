"""LLM agents: any zoo model or fine-tuned checkpoint as buyer or seller.

The prompt holds the role, the item, the agent's OWN private limits (never the counterpart's),
a personality sentence, and the message format. The dialogue is rendered from the agent's
point of view: its own turns are ``assistant`` messages, the counterpart's are ``user``
messages, both as public text (utterance + action line). Hidden reasoning is never rendered.
Turns are decoded by :class:`~negolens.agents.decoding.TurnDecoder`, so every turn yields an act.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from negolens.agents.decoding import Request, TurnDecoder
from negolens.agents.personas import check_persona, check_personality
from negolens.agents.prompts import system_prompt, view_ids, view_messages, view_texts
from negolens.agents.protocol import Move, Negotiation
from negolens.chat import Turn


@dataclass
class LLMAgent:
    """A buyer or seller played by a language model.

    Parameters
    ----------
    model
        A loaded :class:`negolens.hooked.NegoModel` (zoo model or checkpoint).
    role
        ``"buyer"`` or ``"seller"``.
    personality
        ``"aggressive"``, ``"fair"`` or ``"passive"`` (one prompt sentence).
    cot
        Think privately on a ``THOUGHT:`` line before the message (never shown to the other side).
    persona
        A seller persona (``"begging"``, ``"insulting"``, ``"unyielding"``, ``"injection"``) or ``None``.
    max_utterance_tokens
        Most tokens one message may have.
    temperature, top_p
        Sampling; ``temperature=0`` decodes greedily.
    name
        Label in records (default: the model's name).
    reuse_kv
        Keep each dialogue's KV cache between turns (same output, less prefill).

    Examples
    --------
    >>> import negolens
    >>> from negolens.agents.rule_agent import RuleAgent
    >>> model = negolens.load("smollm2-135m-instruct")  # doctest: +SKIP
    >>> buyer = LLMAgent(model, "buyer", personality="aggressive")  # doctest: +SKIP
    >>> seller = RuleAgent("seller")
    """

    model: object  # a negolens NegoModel
    role: str
    personality: str = "fair"
    cot: bool = False
    persona: str | None = None
    max_utterance_tokens: int = 40
    temperature: float = 0.0
    top_p: float = 1.0
    name: str | None = None
    reuse_kv: bool = True
    decoder: TurnDecoder = field(init=False, repr=False)

    def __post_init__(self) -> None:
        check_personality(self.personality)
        check_persona(self.persona)
        self.name = self.name or str(self.model.name)
        self.decoder = TurnDecoder(
            self.model, max_utterance_tokens=self.max_utterance_tokens,
            temperature=self.temperature, top_p=self.top_p, reuse_kv=self.reuse_kv,
        )

    def config(self) -> dict:
        """The agent's settings as a JSON-ready dict (stored with every record)."""
        return {
            "kind": "llm", "model": self.name, "role": self.role, "personality": self.personality,
            "cot": self.cot, "persona": self.persona, "temperature": self.temperature,
            "top_p": self.top_p, "max_utterance_tokens": self.max_utterance_tokens,
        }

    def system_prompt(self, neg: Negotiation) -> str:
        """This agent's system prompt for ``neg``'s scenario (see :func:`~negolens.agents.prompts.system_prompt`)."""
        return system_prompt(neg.scenario, self.role, self.personality, self.persona, self.cot)

    def messages(self, neg: Negotiation) -> list[Turn]:
        """The chat the model reads next: system prompt plus the dialogue from this agent's side."""
        return view_messages(self.system_prompt(neg), self.role, view_texts(neg.turns, self.role))

    def act_batch(self, negs: list[Negotiation], seeds: list[int]) -> list[Move]:
        """Decode this agent's next move in every dialogue of ``negs`` at once (one seed each)."""
        requests = [
            Request(self.prompt_ids(n), n.legal_acts(self.role), seed=seed, cot=self.cot, key=f"{id(n)}")
            for n, seed in zip(negs, seeds)
        ]
        return [
            Move(d.utterance, d.act, d.price, d.reasoning, d.failure, d.prompt_tokens, d.new_tokens, d.token_ids,
                 d.sampled)
            for d in self.decoder.decode(requests)
        ]

    def prompt_ids(self, neg: Negotiation) -> list[int]:
        """The ids the model reads next: :meth:`messages` rendered with its own earlier turns as
        the tokens it generated (:func:`~negolens.agents.prompts.view_ids`)."""
        return view_ids(self.model, self.system_prompt(neg), self.role, neg.turns)[0]
