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
from negolens.agents.personas import PERSONA_PROMPTS, PERSONALITIES, check_persona, check_personality
from negolens.agents.protocol import Move, Negotiation, format_price, other
from negolens.chat import Turn

FORMAT = (
    "Write one short message to the {other}. Then, on a new line, your move: "
    "ACTION: offer $PRICE, ACTION: counter $PRICE, ACTION: accept, ACTION: reject, ACTION: quit, "
    "or ACTION: greet / inquire / inform."
)
COT = " First think privately on one line that starts with THOUGHT: — the {other} never sees it."


@dataclass
class LLMAgent:
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
        return {
            "kind": "llm", "model": self.name, "role": self.role, "personality": self.personality,
            "cot": self.cot, "persona": self.persona, "temperature": self.temperature,
            "top_p": self.top_p, "max_utterance_tokens": self.max_utterance_tokens,
        }

    def system_prompt(self, neg: Negotiation) -> str:
        """Fixed instructions first, then the scenario: dialogues of one run share a long prompt
        prefix, which the decoder prefills once for the whole batch."""
        s, them = neg.scenario, other(self.role)
        if self.role == "buyer":
            private = (f"Your budget is {format_price(s.buyer_budget)}: never pay more. "
                       f"Aim for {format_price(s.buyer_target)} or less.")
        else:
            private = (f"Your minimum is {format_price(s.seller_cost)}: never sell for less. "
                       f"Aim for {format_price(s.seller_target)}.")
        lines = [f"You are the {self.role} in a negotiation on a second-hand marketplace.", PERSONALITIES[self.personality]]
        if self.persona:
            lines.append(PERSONA_PROMPTS[self.persona])
        lines += [
            FORMAT.format(other=them) + (COT.format(other=them) if self.cot else ""),
            f"Item: {s.title} ({s.category}). {s.description[:200]}",
            f"Listed price: {format_price(s.list_price)}.",
            f"Private (the {them} does not know this): {private}",
        ]
        return "\n".join(lines)

    def messages(self, neg: Negotiation) -> list[Turn]:
        turns = [Turn("system", self.system_prompt(neg))]
        if not neg.turns or neg.turns[0].role == self.role:
            turns.append(Turn("user", f"Write your first message to the {other(self.role)}."))
        for t in neg.turns:
            turns.append(Turn("assistant" if t.role == self.role else "user", t.public_text()))
        return turns

    def act_batch(self, negs: list[Negotiation], seeds: list[int]) -> list[Move]:
        requests = [
            Request(self.model.render(self.messages(n), add_generation_prompt=True).input_ids,
                    n.legal_acts(self.role), seed=seed, cot=self.cot, key=f"{id(n)}")
            for n, seed in zip(negs, seeds)
        ]
        return [
            Move(d.utterance, d.act, d.price, d.reasoning, d.failure, d.prompt_tokens, d.new_tokens)
            for d in self.decoder.decode(requests)
        ]
