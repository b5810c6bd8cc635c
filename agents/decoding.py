"""Turn decoding that always yields an act: free utterance, then a constrained action trailer.

Untuned small models chat but never name a price, so a prompt alone cannot make every turn an
action. Each agent message therefore has a fixed shape, decoded for a whole batch of dialogues
in ONE incremental pass over a shared KV cache (one forward per step for all rows)::

    [THOUGHT: <free text — hidden chain of thought>\\n]   (only with CoT)
    <utterance — free text, ends at a newline, end-of-turn or the token cap>
    \\nACTION: <act — constrained to the acts legal now>[ $<price — digits only>]

Per row a small state machine decides each step's token: sampled freely (thought, utterance),
forced (``\\nACTION:``, the rest of an act's tokens, `` $``), or constrained to an allowed set
(the act trie, digits). Rows that finish feed padding with attention mask 0. Sampling uses one
seeded generator per row, so a dialogue's transcript does not depend on the batch it ran in
(up to float rounding of batched matmuls). The generator lives on the device of the logits it
samples from (CUDA for a model on a GPU): the same seed gives the same transcripts on the same
device, not across devices (CPU and CUDA draw different random streams and round differently). Prompt logits are computed for the last position
only (``logits_to_keep`` as an index, :func:`negolens.batching.last_position`: a contiguous
gather, which keeps PyTorch's CPU matmul from copying the unembedding per row) — the 49k-vocabulary
head at every prompt position is most of the work otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from negolens.agents import kvmemory
from negolens.agents.protocol import PRICE_ACTS, Act
from negolens.batching import left_pad, last_position

MAX_PRICE_TOKENS = 10


def token_pieces(tokenizer) -> list[str]:
    """The text of every token id of ``tokenizer``, decoded one at a time (index = id)."""
    return tokenizer.batch_decode([[i] for i in range(len(tokenizer))])


def digit_tokens(tokenizer, pieces: list[str] | None = None) -> torch.Tensor:
    """Ids of the tokens that decode to digits only — the allowed set of digit-constrained decoding.

    Shared by the turn decoder (prices after ``ACTION: offer $``) and the analysis layer's
    greedy next-offer metric. Pass ``pieces`` from :func:`token_pieces` to avoid decoding twice.

    >>> import tempfile
    >>> from negolens.testing import tiny_tokenizer
    >>> tok = tiny_tokenizer()
    >>> sorted(tok.decode([i]) for i in digit_tokens(tok).tolist())[:3]
    ['0', '1', '2']
    """
    pieces = token_pieces(tokenizer) if pieces is None else pieces
    ids = [i for i, p in enumerate(pieces) if p.isdigit()]
    if not ids:
        raise ValueError("tokenizer has no pure-digit tokens: cannot constrain prices")
    return torch.tensor(ids)


@dataclass
class Request:
    """One turn to decode: the prompt ids, the acts legal now, the row's seed, CoT, and the
    dialogue id whose previous turn's KV cache may be reused."""

    prompt_ids: list[int]
    legal_acts: list[Act]
    seed: int = 0
    cot: bool = False
    key: str | None = None  # dialogue id: enables KV reuse from this dialogue's previous turn


@dataclass
class Decoded:
    """A decoded turn: utterance, act and price (or the failure), hidden reasoning, token counts, and
    the public message's token ids exactly as fed to the model (``token_ids``) with, per token,
    whether the policy chose it (``sampled``: 1 for free, act and digit choices; 0 for forced
    scaffolding such as ``\\nACTION:``). The hidden thought's tokens are not in ``token_ids``."""

    utterance: str
    act: Act | None
    price: float | None
    reasoning: str | None
    failure: str | None
    prompt_tokens: int
    new_tokens: int
    token_ids: list[int] = field(default_factory=list)
    sampled: list[int] = field(default_factory=list)


@dataclass
class _Row:
    req: Request
    gen: torch.Generator | None  # created on the logits' device at the first sampled token
    phase: str
    forced: list[int] = field(default_factory=list)
    after: str = "done"
    thought: list[int] = field(default_factory=list)
    utter: list[int] = field(default_factory=list)
    price: list[int] = field(default_factory=list)
    candidates: list[Act] = field(default_factory=list)
    depth: int = 0
    act: Act | None = None
    n_new: int = 0
    fed: list[int] = field(default_factory=list)
    chosen: list[int] = field(default_factory=list)  # per fed token: 1 if the policy chose it, 0 if forced
    public: int = 0  # index in ``fed`` where the public message starts (after a hidden thought)


class TurnDecoder:
    """Batched, KV-cached decoder of agent turns for one model (see module docstring)."""

    def __init__(self, model, max_utterance_tokens: int = 40, max_thought_tokens: int = 40,
                 temperature: float = 0.0, top_p: float = 1.0, reuse_kv: bool = True):
        self.model = model
        self.reuse_kv = reuse_kv
        self.memory: dict[str, kvmemory.Memory] = {}
        self.last_reuse: list[int] = []
        self.max_utter, self.max_thought = max_utterance_tokens, max_thought_tokens
        self.temperature, self.top_p = temperature, top_p
        tok = model.tokenizer
        enc = lambda s: tok.encode(s, add_special_tokens=False)  # noqa: E731
        self.thought_prefix = enc("THOUGHT:")
        self.action_prefix = enc("\nACTION:")
        self.price_prefix = enc(" $")
        self.act_ids = {act: enc(" " + act.value) for act in Act}
        self.stops = set(model.stop_ids())
        self.end_id = tok.eos_token_id
        n = len(tok)
        pieces = token_pieces(tok)
        self.newline = torch.tensor(["\n" in p for p in pieces])  # a CPU lookup table (indexed by int)
        self.newline_id = enc("\n")[-1]
        device = model.device  # allowed-token sets index the logits: keep them on the model's device
        self.digits = digit_tokens(tok, pieces).to(device)
        self.dots = torch.tensor([i for i, p in enumerate(pieces) if p == "."], dtype=torch.long, device=device)
        self.dot_ids = set(self.dots.tolist())
        self.vocab = n

    # -- public ---------------------------------------------------------------------------
    @torch.inference_mode()
    def decode(self, requests: list[Request]) -> list[Decoded]:
        """Decode one turn for every request in one batched, KV-cached pass (order kept)."""
        if not requests:
            return []
        rows = [self._start(r) for r in requests]
        prompts = [r.prompt_ids + (self.thought_prefix if r.cot else []) for r in requests]
        past, mask, pos, logits = self._prefill(requests, prompts)
        live, memory = list(range(len(rows))), {}
        while live:
            steps = [self._step(rows[i], logits[j]) for j, i in enumerate(live)]
            nxt = torch.tensor([tok for tok, _ in steps], dtype=torch.long, device=mask.device)
            for i, (tok, chose) in zip(live, steps):
                row = rows[i]
                row.fed.append(tok)
                row.chosen.append(int(chose))
                row.n_new += 1
            mask = torch.cat([mask, torch.ones((len(live), 1), dtype=mask.dtype, device=mask.device)], dim=1)
            pos = pos + 1
            out = self.model.hf(input_ids=nxt[:, None], attention_mask=mask, position_ids=pos[:, None],
                                past_key_values=past, use_cache=True)
            past, logits = out.past_key_values, out.logits[:, -1, :]
            done = [j for j, i in enumerate(live) if rows[i].phase == "done"]
            if done:  # finished rows leave the batch: later steps only pay for live rows
                self._remember(memory, [live[j] for j in done], done, requests, rows, prompts, past, mask)
                keep = [j for j in range(len(live)) if rows[live[j]].phase != "done"]
                if keep:
                    index = torch.tensor(keep, device=mask.device)
                    past.batch_select_indices(index)
                    mask, pos, logits = mask[index], pos[index], logits[index]
                live = [live[j] for j in keep]
        self.memory = memory
        return [self._result(r, len(p)) for r, p in zip(rows, prompts)]

    def replay(self, utterance: list[int], act: Act, price: list[int], legal_acts) -> tuple[list[int], list[int]]:
        """The ``(token_ids, sampled)`` this decoder emits when its policy picks ``utterance``, ``act`` and ``price``.

        Teacher forcing through the same state machine :meth:`decode` runs (no model call): the
        words end with the newline that opens the action line (or at the token cap), the act is
        chosen among ``legal_acts`` token by token, the price digits end with end-of-text. The
        result is a turn as :class:`Decoded` would record it, so a scripted teacher's move can be
        trained on exactly as a sampled one (:func:`negolens.training.imitation.imitate`).

        Raises
        ------
        NegolensError
            When the decoder could not have produced the move: the words are longer than the
            cap or hold a newline or end-of-turn token, the act is not legal, a price token
            is not a digit or the price is longer than the decoder reads.
        """
        from negolens.errors import NegolensError

        if len(utterance) > self.max_utter:
            raise NegolensError(f"the message has {len(utterance)} tokens, more than the decoder's cap of "
                                f"{self.max_utter}: shorten it or raise max_utterance_tokens")
        if any(t in self.stops or bool(self.newline[t]) for t in utterance):
            raise NegolensError("the message holds a newline or end-of-turn token, which ends a message early")
        row, logits = self._start(Request([], list(legal_acts))), torch.full((self.vocab,), -1e4)
        queue, fed, chosen = {"utter": list(utterance), "price": list(price)}, [], []
        while row.phase != "done":
            forced, phase = bool(row.forced), row.phase
            want = (0 if forced else self.act_ids[act][row.depth] if phase == "act" else
                    queue[phase][0] if queue[phase] else self.newline_id if phase == "utter" else self.end_id)
            logits[want] = 0.0
            tok, chose = self._step(row, logits)
            logits[want] = -1e4
            fed.append(tok)
            chosen.append(int(chose))
            if forced or (phase == "utter" and not queue["utter"]):  # forced, or the newline that ends the words
                continue
            if tok != want:
                what = f"the act {act.value!r} (legal: {', '.join(a.value for a in legal_acts)})" if phase == "act" \
                    else f"price token {want!r} (digits, one point, then end-of-text)"
                raise NegolensError(f"the decoder cannot emit {what}")
            if phase != "act" and queue[phase]:
                queue[phase].pop(0)
        if queue["price"] or (act not in PRICE_ACTS and price):
            raise NegolensError(f"the decoder reads at most {MAX_PRICE_TOKENS - 1} price digits and one after the "
                                f"point; {len(price)} price tokens given")
        return fed, chosen

    def _prefill(self, requests: list[Request], prompts: list[list[int]]):
        """First forward of a turn: reuse each dialogue's cached prefix, prefill the rest."""
        device = self.model.device
        mems = [self.memory.get(r.key) if (self.reuse_kv and r.key) else None for r in requests]
        if self.reuse_kv and len(prompts) > 1 and all(m is None for m in mems):
            shared = self._shared_prefix(prompts)
            mems = [shared] * len(prompts) if shared is not None else mems
        reuse = [min(kvmemory.common_prefix(m.ids, p), len(p) - 1) if m else 0 for m, p in zip(mems, prompts)]
        if kvmemory.full_attention_only(self.model.hf.config):
            cache, cache_mask = kvmemory.stack(mems, reuse, device, self.model.shape.n_layers)
        else:  # sliding-window layers: let HF build its own cache, no reuse
            reuse = [0] * len(prompts)
            cache, cache_mask = None, torch.zeros((len(prompts), 0), dtype=torch.long, device=device)
        self.last_reuse = reuse
        new = left_pad([p[c:] for p, c in zip(prompts, reuse)], self.model.pad_id).to(device)
        mask = torch.cat([cache_mask, new.attention_mask], dim=1)
        positions = (new.attention_mask.cumsum(-1) - 1).clamp(min=0) + torch.tensor(reuse, device=device)[:, None]
        out = self.model.hf(input_ids=new.input_ids, attention_mask=mask, position_ids=positions,
                            past_key_values=cache, use_cache=True, logits_to_keep=last_position(device))
        return out.past_key_values, mask, positions[:, -1].clone(), out.logits[:, -1, :]

    def _shared_prefix(self, prompts: list[list[int]], minimum: int = 16) -> kvmemory.Memory | None:
        """Prefill the prefix common to every prompt once (batch of one) and share its KV."""
        n = min(min(len(p) for p in prompts) - 1, *(kvmemory.common_prefix(prompts[0], p) for p in prompts[1:]))
        if n < minimum or not kvmemory.full_attention_only(self.model.hf.config):
            return None
        ids = prompts[0][:n]
        device = self.model.device
        out = self.model.hf(input_ids=torch.tensor([ids], device=device), use_cache=True,
                            logits_to_keep=last_position(device),
                            past_key_values=kvmemory.BufferedCache(self.model.shape.n_layers))
        if not kvmemory.reusable(out.past_key_values):
            return None
        mask = torch.ones((1, n), dtype=torch.long, device=self.model.device)
        return kvmemory.split(out.past_key_values, mask, [ids])[0]

    def _remember(self, memory, finished, positions, requests, rows, prompts, past, mask) -> None:
        """Keep finished dialogues' KV for their next turn (dialogues absent from a call are forgotten)."""
        if not (self.reuse_kv and kvmemory.reusable(past)):
            return
        ids = [prompts[i] + rows[i].fed for i in finished]
        for i, mem in zip(finished, kvmemory.split(past, mask, ids, positions)):
            if requests[i].key:
                memory[requests[i].key] = mem

    # -- the state machine ------------------------------------------------------------------
    def _start(self, req: Request) -> _Row:
        return _Row(req=req, gen=None, phase="thought" if req.cot else "utter", candidates=list(req.legal_acts))

    @staticmethod
    def generator(row: _Row, device: torch.device) -> torch.Generator:
        """The row's seeded generator on ``device`` (the device of the logits sampled from).

        Created at the row's first sampled token; ``torch.multinomial`` refuses a generator on
        another device than its probabilities (a CPU generator with CUDA logits fails).
        """
        if row.gen is None or row.gen.device != device:
            row.gen = torch.Generator(device=device).manual_seed(int(row.req.seed))
        return row.gen

    def _step(self, row: _Row, logits: torch.Tensor) -> tuple[int, bool]:
        """The row's next token and whether the policy chose it (sampled or constrained) or it was forced."""
        if row.forced:
            tok = row.forced.pop(0)
            if not row.forced:
                row.phase = row.after
                if row.phase == "utter":  # a capped thought's newline: the message starts after it
                    row.public = len(row.fed) + 1
            return tok, False
        if row.phase in ("thought", "utter"):
            tok = self._choose(row, logits, None)
            own = row.thought if row.phase == "thought" else row.utter
            if tok in self.stops or bool(self.newline[tok]):  # the policy ended its text
                if row.phase == "thought":
                    row.phase, row.public = "utter", len(row.fed) + 1
                    return (tok, True) if bool(self.newline[tok]) else (self.newline_id, False)
                first = self._force(row, self.action_prefix, "act")
                return first, first == tok
            own.append(tok)
            cap = self.max_thought if row.phase == "thought" else self.max_utter
            if len(own) >= cap:  # the cap ends the text after this token (which the model reads too)
                row.forced, row.after = ([self.newline_id], "utter") if row.phase == "thought" else \
                    (list(self.action_prefix), "act")
            return tok, True
        if row.phase == "act":
            return self._act_step(row, logits), True
        if row.phase == "price":
            allowed = self.digits
            if row.price:
                extra = [self.end_id] + ([] if self._has_dot(row) else self.dots.tolist())
                allowed = torch.cat([allowed, torch.tensor(extra, dtype=torch.long, device=allowed.device)])
            tok = self._choose(row, logits, allowed)
            cents = self._has_dot(row) and len(self.model.tokenizer.decode(row.price).split(".")[-1]) >= 1
            if tok == self.end_id or len(row.price) + 1 >= MAX_PRICE_TOKENS or cents:
                if tok != self.end_id:
                    row.price.append(tok)
                row.phase = "done"
                return tok, True
            row.price.append(tok)
            return tok, True
        raise RuntimeError(f"bad phase {row.phase}")

    def _act_step(self, row: _Row, logits: torch.Tensor) -> int:
        d = row.depth
        allowed = sorted({self.act_ids[a][d] for a in row.candidates if len(self.act_ids[a]) > d})
        tok = self._choose(row, logits, torch.tensor(allowed, dtype=torch.long, device=logits.device))
        row.candidates = [a for a in row.candidates if len(self.act_ids[a]) > d and self.act_ids[a][d] == tok]
        row.depth += 1
        if len(row.candidates) == 1:
            act = row.act = row.candidates[0]
            rest = self.act_ids[act][row.depth:]
            tail = self.price_prefix if act in PRICE_ACTS else []
            if rest or tail:
                row.forced, row.after = rest + tail, "price" if act in PRICE_ACTS else "done"
            else:
                row.phase = "done"
        return tok

    def _force(self, row: _Row, seq: list[int], after: str) -> int:
        if len(seq) > 1:
            row.forced, row.after = list(seq[1:]), after
        else:
            row.phase = after
        return seq[0]

    def _choose(self, row: _Row, logits: torch.Tensor, allowed: torch.Tensor | None) -> int:
        logits = logits.float()[: self.vocab]
        if allowed is not None:
            allowed = allowed.to(logits.device)
            masked = torch.full_like(logits, float("-inf"))
            masked[allowed] = logits[allowed]
            logits = masked
        if self.temperature <= 0:
            return int(logits.argmax())
        probs = torch.softmax(logits / self.temperature, dim=-1)
        if self.top_p < 1.0:
            sorted_p, order = probs.sort(descending=True)
            keep = sorted_p.cumsum(0) - sorted_p < self.top_p
            probs = torch.zeros_like(probs).scatter(0, order[keep], sorted_p[keep])
        return int(torch.multinomial(probs, 1, generator=self.generator(row, probs.device)))

    def _has_dot(self, row: _Row) -> bool:
        return bool(self.dot_ids.intersection(row.price))

    def _result(self, row: _Row, prompt_len: int) -> Decoded:
        tok = self.model.tokenizer
        price, failure = None, None
        if row.act in PRICE_ACTS:
            text = tok.decode(row.price).strip().rstrip(".")
            try:
                price = float(text)
            except ValueError:
                failure = "missing_price"
        return Decoded(
            utterance=tok.decode(row.utter, skip_special_tokens=True).strip(),
            act=row.act,
            price=price,
            reasoning=tok.decode(row.thought, skip_special_tokens=True).strip() if row.req.cot else None,
            failure=failure if row.act is not None else "no_action",
            prompt_tokens=prompt_len,
            new_tokens=row.n_new,
            token_ids=row.fed[row.public:],
            sampled=row.chosen[row.public:],
        )
