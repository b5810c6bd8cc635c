"""Supervised examples for role specialists, from Craigslist Bargains dialogues.

One example per turn of the target role: the context is that role's own view — its system
prompt (item, list price, its OWN private target only) and the dialogue so far in the model's
chat format — and the target is the turn in the protocol's format, ``utterance\\nACTION: act
[$price]`` plus the end-of-turn token. The act is read from the text
(:func:`~negolens.agents.parsing.infer_act`; Craigslist test dialogues carry no act labels).
Labels are -100 everywhere but the target, so the loss only trains the role's own tokens.

What AgreeMate got wrong and this does not: the answer is never in the prompt (the prompt
stops before the turn), roles come from the data's own ``Role`` field, and evaluation
dialogues (``validation_dev``) are a different file from training dialogues (``test``).

With ``announce_turns`` every message of the context is followed by the environment's deadline
note (``[turns left: N]``, as a negotiation with ``announce_turns`` shows it), N counted in
hindsight: the turns the human dialogue actually had after that message. The humans had no
deadline; the note teaches what it means in the environment — few turns left, the dialogue is
about to end, so close now — from the dialogues' own endings.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from negolens.agents.parsing import infer_act
from negolens.agents.prompts import system_prompt, view_messages
from negolens.agents.protocol import Act, TurnRecord, format_action

IGNORE = -100


__all__ = ["IGNORE", "LIMIT_RULES", "Example", "protocol_turns", "human_limits", "human_openings", "match_limits",
           "build_examples", "first_examples", "mask_digits", "collate"]

LIMIT_RULES = ("target", "cover", "drop", "hindsight", "aim")
AIM_SHARE = 0.8  # an AmazonHistoryPrice buyer aims at 0.8 x its budget (agents/scenarios.py)


@dataclass
class Example:
    """One supervised example: token ids, labels (``IGNORE`` outside the target turn), its
    dialogue id and the role whose turn is the target."""

    input_ids: list[int]
    labels: list[int]
    dialogue: str
    role: str


def _acts(transcript) -> list[tuple[str, str, Act | None, float | None]]:
    """(role, text, act, price) per turn of a human transcript, acts read from the text."""
    out, standing = [], None  # standing: (role, price) on the table
    for i, u in enumerate(transcript.turns):
        facing = standing[1] if standing and standing[0] != u.role else None
        act, price = infer_act(u.text, facing, first=i == 0)
        if act in (Act.OFFER, Act.COUNTER):
            standing = (u.role, price)
        elif act is Act.ACCEPT:
            price = facing
        out.append((u.role, u.text, act, price))
    return out


def protocol_turns(transcript, announce_turns: bool = False) -> list[tuple[str, str]]:
    """(role, public text with action line) for every turn of a human transcript; with
    ``announce_turns`` each action line ends with the turns the dialogue had after it."""
    turns = [(role, f"{text}\n{format_action(act, price)}") for role, text, act, price in _acts(transcript)]
    return _with_deadline(turns) if announce_turns else turns


def _with_deadline(turns: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """``turns`` with each message followed by the environment's note of the turns left after it."""
    return [(role, text + TurnRecord(i, role, "", None, None, turns_left=len(turns) - i - 1).note())
            for i, (role, text) in enumerate(turns)]


def human_limits(transcript) -> tuple[float | None, float | None]:
    """(the highest price the buyer offered or accepted, the lowest the seller offered or accepted).

    Read from the acts in the text (:func:`~negolens.agents.parsing.infer_act`) and the
    recorded deal price; ``None`` for a side that named no price.

    Examples
    --------
    >>> from negolens.agents import example_transcripts
    >>> human_limits(example_transcripts(1)[0])   # the buyer offered $245 and $280, the seller $315
    (280.0, 315.0)
    """
    return _limits(_named(transcript), transcript.deal_price)


def _named(transcript) -> dict[str, list[float]]:
    """The prices each role offered, countered or accepted, in the order named."""
    named: dict[str, list[float]] = {"buyer": [], "seller": []}
    for role, _text, act, price in _acts(transcript):
        if act in (Act.OFFER, Act.COUNTER, Act.ACCEPT) and price is not None:
            named[role].append(price)
    return named


def _limits(named: dict[str, list[float]], deal_price: float | None) -> tuple[float | None, float | None]:
    """:func:`human_limits` from the prices named (:func:`_named`) and the recorded deal price."""
    deal = [] if deal_price is None else [deal_price]
    return max(named["buyer"] + deal, default=None), min(named["seller"] + deal, default=None)


def human_openings(transcript) -> tuple[float | None, float | None]:
    """(the first price the buyer named, the first price the seller named); ``None`` for a side
    that named none.

    Examples
    --------
    >>> from negolens.agents import example_transcripts
    >>> human_openings(example_transcripts(1)[0])   # the buyer opened at $245, the seller at $315
    (245.0, 315.0)
    """
    named = _named(transcript)
    return _first(named["buyer"]), _first(named["seller"])


def _first(prices: list[float]) -> float | None:
    return prices[0] if prices else None


def match_limits(transcripts, rule: str = "target") -> list:
    """Make the private numbers in human dialogues mean what the environment means: hard limits.

    Craigslist buyers were given a *target*, a wish they often paid beyond; the environment's
    budget is a hard limit (an overshoot costs the whole reward), and its seller's cost a hard
    floor. Training a buyer on "budget $X" followed by a human paying more than X teaches it
    to overshoot.

    Parameters
    ----------
    transcripts : list of Transcript
    rule : str
        ``target`` — as the data says (the budget is the buyer's target; AgreeMate's
        convention). ``cover`` — raise each buyer's budget to the highest price that buyer
        offered or accepted, and lower each seller's cost to the lowest price that seller
        offered or accepted (:func:`human_limits`), so no human turn breaks its stated limit;
        the aim (target) stays. ``drop`` — keep only dialogues where neither side broke its
        stated limit. ``hindsight`` — relabel each side's private numbers with the prices it
        actually bargained between: the buyer's budget becomes the highest price it offered or
        accepted and its aim its first price; the seller's cost the lowest price it offered or
        accepted and its aim its first price (:func:`human_openings`). Every limit then binds, as
        the environment's hard budget does, and opening at the aim is what the data show. A side
        with no price at all keeps its stated numbers; one whose only price is the recorded deal
        price (no turn named a price the parser reads) gets it as both limit and aim. ``aim`` —
        the environment's proportions: the human's target stays the aim (Craigslist buyers often
        open at it) and the budget the aim / :data:`AIM_SHARE` (the AmazonHistoryPrice buyer
        aims 20% under its budget), or the highest price the buyer offered or accepted where
        that is more; the seller's cost as ``cover``.

    Returns
    -------
    list of Transcript
        New transcripts (the input is not changed).

    Examples
    --------
    >>> from dataclasses import replace
    >>> from negolens.agents import example_transcripts
    >>> tr = replace(example_transcripts(1)[0], deal_price=330.0)   # the buyer paid $330, budget $315
    >>> tr.scenario.buyer_budget, match_limits([tr], "cover")[0].scenario.buyer_budget
    (315.0, 330.0)
    >>> match_limits([tr], "drop"), len(match_limits([tr], "target"))
    ([], 1)
    >>> s = match_limits([tr], "hindsight")[0].scenario   # opened at $245, paid $330
    >>> s.buyer_target, s.buyer_budget, s.seller_cost, s.seller_target
    (245.0, 330.0, 315.0, 315.0)
    >>> s = match_limits(example_transcripts(1), "aim")[0].scenario   # aim $262.50, offered at most $280
    >>> s.buyer_target, s.buyer_budget, s.seller_cost
    (262.5, 328.12, 227.5)
    """
    from negolens.errors import choice

    choice(rule, LIMIT_RULES, "limit rule")
    if rule == "target":
        return list(transcripts)
    out = []
    for tr in transcripts:
        s = tr.scenario
        named = _named(tr)  # the turns are parsed once per dialogue
        top, bottom = _limits(named, tr.deal_price)
        if rule == "hindsight":
            opened, asked = _first(named["buyer"]), _first(named["seller"])
            out.append(replace(tr, scenario=_relabelled(s, top, bottom, opened, asked)))
            continue
        broke = (top is not None and top > s.buyer_budget) or (bottom is not None and bottom < s.seller_cost)
        if rule == "drop":
            if not broke:
                out.append(tr)
            continue
        budget = round(s.buyer_target / AIM_SHARE, 2) if rule == "aim" else s.buyer_budget
        scenario = replace(s, buyer_budget=max(budget, top or 0.0),
                           seller_cost=min(s.seller_cost, bottom if bottom is not None else s.seller_cost))
        out.append(replace(tr, scenario=scenario))
    return out


def _relabelled(s, top, bottom, opened, asked):
    """Scenario ``s`` with the private numbers a human pair bargained between (``hindsight``)."""
    if top is not None:  # opened, asked: among the prices top, bottom are taken over (or None: the deal only)
        s = replace(s, buyer_budget=top, buyer_target=top if opened is None else opened)
    if bottom is not None:
        s = replace(s, seller_cost=bottom, seller_target=bottom if asked is None else asked)
    return s


def build_examples(model, transcripts, role: str = "buyer", max_tokens: int = 512,
                   announce_turns: bool = False) -> list[Example]:
    """Supervised examples of one role's turns, each with the dialogue so far as context.

    Parameters
    ----------
    model : NegoModel
        Supplies the tokenizer and chat format.
    transcripts : list of Transcript
        Dialogues (see :func:`negolens.agents.transcripts.load_transcripts`).
    role : str
        ``buyer``, ``seller`` or ``generalist`` (both roles, each with its own view).
    max_tokens : int
        Examples longer than this are dropped, never cut.
    announce_turns : bool
        Follow every context message with the turns the dialogue had left after it (counted in
        hindsight; the module docstring); the targets stay the turns as written.

    Returns
    -------
    list of Example
        In transcript order, then role, then turn.

    Examples
    --------
    >>> from negolens.testing import tiny_model
    >>> from negolens.agents import example_transcripts
    >>> model = tiny_model()
    >>> [e.role for e in build_examples(model, example_transcripts(1), "buyer")]
    ['buyer', 'buyer']

    With real dialogues (needs the data directory):

    >>> from negolens.agents.transcripts import load_transcripts
    >>> examples = build_examples(model, load_transcripts("craigslist-dev", 2), "buyer")  # doctest: +SKIP
    """
    roles = ("buyer", "seller") if role == "generalist" else (role,)
    tok, out = model.tokenizer, []
    end = model.stop_ids()[0] if model.tokenizer.eos_token_id is None else model.tokenizer.eos_token_id
    for tr in transcripts:
        turns = protocol_turns(tr)
        shown = _with_deadline(turns) if announce_turns else turns
        for r in roles:
            for t, (speaker, text) in enumerate(turns):
                if speaker != r:
                    continue
                msgs = view_messages(system_prompt(tr.scenario, r), r, shown[:t])
                prompt = model.render(msgs, add_generation_prompt=True).input_ids
                target = tok.encode(text, add_special_tokens=False) + [end]
                if len(prompt) + len(target) > max_tokens:
                    continue
                out.append(Example(prompt + target, [IGNORE] * len(prompt) + target, tr.id, r))
    return out


def first_examples(model, transcripts, role: str, max_tokens: int, n: int,
                   announce_turns: bool = False) -> list[Example]:
    """The first ``n`` examples of ``transcripts``, building only as many dialogues as needed."""
    out: list[Example] = []
    for tr in transcripts:
        if len(out) >= n:
            break
        out += build_examples(model, [tr], role, max_tokens, announce_turns)
    return out[:n]


def mask_digits(tokenizer, examples: list[Example]) -> list[Example]:
    """The same examples with no loss on any target token whose text holds a digit.

    For SFT on dialogues whose numbers mean something other than the environment's: a
    Craigslist buyer's price is a wish it often pays beyond, an AmazonHistoryPrice budget is a
    hard limit. The model still reads every number in its context and learns the humans' words
    and moves, but the numbers they named get no direct loss (``negolens train sft
    --no-digit-loss``; run 25 in the README). The digits of every price of an action line
    (``$1250``) are masked; the ``$``, a price in words ("fifty bucks") or a "k" after digits
    keep their loss.

    Parameters
    ----------
    tokenizer
        The model's tokenizer (decodes each target token once).
    examples : list of Example
        From :func:`build_examples`; not changed.

    Returns
    -------
    list of Example
        New examples: the same ids, and ``IGNORE`` labels where a target token holds a digit.

    Examples
    --------
    >>> from negolens.testing import tiny_model
    >>> from negolens.agents import example_transcripts
    >>> model = tiny_model()
    >>> examples = build_examples(model, example_transcripts(1), "buyer")
    >>> masked = mask_digits(model.tokenizer, examples)
    >>> text = model.tokenizer.decode([t for t, l in zip(masked[0].input_ids, masked[0].labels) if l != IGNORE])
    >>> any(ch.isdigit() for ch in text), masked[0].input_ids == examples[0].input_ids
    (False, True)
    """
    digit: dict[int, bool] = {}
    out = []
    for e in examples:
        labels = list(e.labels)
        for i, (token, label) in enumerate(zip(e.input_ids, e.labels)):
            if label == IGNORE:
                continue
            if token not in digit:
                digit[token] = any(ch.isdigit() for ch in tokenizer.decode([token]))
            if digit[token]:
                labels[i] = IGNORE
        out.append(replace(e, labels=labels))
    return out


PAD_MULTIPLE = 64  # few distinct shapes: oneDNN's bf16 kernels are built per shape, and memory fragments


def collate(batch: list[Example], pad_id: int):
    """Right-padded ``(ids, labels, mask)`` of ``batch``, widths rounded up to :data:`PAD_MULTIPLE`."""
    width = -(-max(len(e.input_ids) for e in batch) // PAD_MULTIPLE) * PAD_MULTIPLE
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for r, e in enumerate(batch):  # right padding: training needs no generation alignment
        ids[r, : len(e.input_ids)] = torch.tensor(e.input_ids)
        labels[r, : len(e.labels)] = torch.tensor(e.labels)
        mask[r, : len(e.input_ids)] = 1
    return ids, labels, mask
