"""A human agent for ``negolens chat``: you type, the environment applies the same protocol.

End a message with a command to make the act explicit:

=====================  =================================================================
``/offer PRICE``       propose a price: ``/offer 250``, ``Would that work? /offer $1,250.50``
``/counter PRICE``     answer the other side's standing offer with your own price
``/accept``            take the other side's standing offer (the deal is at its price)
``/reject``            turn the standing offer down (it leaves the table)
``/quit``              leave the negotiation
``/help``              list the commands (does not use your turn)
=====================  =================================================================

Without a command the act is inferred (:func:`~negolens.agents.parsing.infer_act`): a proposed
price makes an offer (or a counter when one stands), a question an ``inquire``, a greeting
``greet``, anything else ``inform``; accepting always takes an explicit ``/accept``.

:func:`parse_command` turns one typed line into a :class:`Command` (the move and the line that
echoes it back: "you offer $250") or a :class:`Problem` (why the line is not a legal move now, and
what to type instead): an unknown command, accepting when nothing stands, a price that is
missing, negative, not a number, absurd (over ``MAX_PRICE_FACTOR`` × list) or ambiguous
(``1.200,50``, ``1 200``), or one the environment's guards would block. A problem never uses the
turn: :class:`HumanAgent` shows it and asks again. End of input (Ctrl-D) or Ctrl-C at the prompt
leaves the chat with a ``quit``.
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass
from typing import Callable

from negolens.agents.parsing import infer_act
from negolens.agents.protocol import MAX_PRICE_FACTOR, PRICE_ACTS, ROLES, Act, Move, Negotiation, format_price, other
from negolens.errors import NegolensError

COMMANDS = {"offer": Act.OFFER, "counter": Act.COUNTER, "accept": Act.ACCEPT, "reject": Act.REJECT,
            "quit": Act.QUIT, "help": None}
COMMAND_LIST = "/offer PRICE, /counter PRICE, /accept, /reject, /quit, /help"
PRICE_FORMATS = "prices look like 250, 250.50, $1,250 or 1,250.50 (comma between thousands, dot before cents)"
HELP = (f"commands (end your message with one): {COMMAND_LIST}. Without a command your message is read "
        f"as an offer if it names a price, else as talk; {PRICE_FORMATS}. Ctrl-D leaves the chat.")

_COMMAND = re.compile(r"(?:^|(?<=\s))/([A-Za-z]\w*)(.*)$", re.DOTALL)
_PRICE = re.compile(r"\$?(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d{1,2}))?")
_NUMBERISH = re.compile(r"\$?[\d.,]*\d[\d.,]*")
# numbers a reader could take two ways: European 1.200,50 / 12,50, or digit groups split by a space
_AMBIGUOUS = re.compile(r"\d(?:\.\d{3})*,\d{1,2}(?![\d,])|\d \d{3}(?!\d)")


@dataclass(frozen=True)
class Problem:
    """Why a typed line is not a legal move now, and what to type instead (the turn is not used)."""

    message: str


@dataclass(frozen=True)
class Command:
    """A typed line read as a move, with the line that echoes it back (``"you offer $250"``)."""

    move: Move
    echo: str


def check_role(role: str) -> str:
    """``role`` as the protocol spells it (``"buyer"`` or ``"seller"``), or a :class:`NegolensError`.

    Examples
    --------
    >>> check_role("Seller")
    'seller'
    >>> check_role("buyr")
    Traceback (most recent call last):
    ...
    negolens.errors.NegolensError: unknown role 'buyr' (did you mean buyer?); use buyer or seller
    """
    if role.lower() in ROLES:
        return role.lower()
    close = difflib.get_close_matches(role.lower(), ROLES, n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    raise NegolensError(f"unknown role {role!r}{hint}; use {' or '.join(ROLES)}")


def parse_price(text: str, list_price: float) -> float | Problem:
    """A typed price in dollars, or the :class:`Problem` that says why ``text`` is not one.

    Accepted: digits with an optional ``$``, commas between thousands and a dot before at most
    two digits of cents. Refused with an explanation: nothing, a negative number, words or
    ``1e12``, ambiguous separators (``1.200,50``, ``12,50``, ``1.200``), several numbers
    (``1 200``), zero, and more than ``MAX_PRICE_FACTOR`` × ``list_price``.

    Examples
    --------
    >>> parse_price("$1,250.50", list_price=1500)
    1250.5
    >>> parse_price("1.200,50", list_price=1500).message
    "'1.200,50' is ambiguous: prices look like 250, 250.50, $1,250 or 1,250.50 (comma between thousands, dot before cents)"
    >>> parse_price("-5", list_price=350).message
    'a price must be more than $0, not -5'
    """
    s = text.strip()
    if not s:
        return Problem(f"missing price: type it after the command, e.g. /offer {format_price(round(0.8 * list_price))}")
    if s.lstrip("$").startswith("-"):
        return Problem(f"a price must be more than $0, not {s}")
    if re.fullmatch(r"\$?[\d.,]+(?:\s+\$?[\d.,]+)+", s):
        return Problem(f"'{s}' is ambiguous: type one number without spaces; {PRICE_FORMATS}")
    if re.search(r"\s", s):
        return Problem(f"only the price goes after the command, your message before it "
                       f"(e.g. 'Would that work? /offer {format_price(round(0.8 * list_price))}'); got '{s}'")
    m = _PRICE.fullmatch(s)
    if m is None:
        if _NUMBERISH.fullmatch(s):
            return Problem(f"'{s}' is ambiguous: {PRICE_FORMATS}")
        return Problem(f"'{s}' is not a price: {PRICE_FORMATS}")
    value = float(m.group(1).replace(",", "") + "." + (m.group(2) or "0"))
    return _range_problem(value, list_price) or value


def _range_problem(price: float, list_price: float) -> Problem | None:
    """The protocol's price range (``Negotiation`` ends the dialogue outside it)."""
    if not math.isfinite(price) or price <= 0:
        return Problem(f"a price must be more than $0, not {format_price(price)}")
    if price > MAX_PRICE_FACTOR * list_price:
        return Problem(f"{format_price(price)} is more than {MAX_PRICE_FACTOR:g} × the list price "
                       f"({format_price(list_price)}); type the price in dollars: {PRICE_FORMATS}")
    return None


def _guard_problem(price: float, neg: Negotiation, role: str, accepting: bool) -> Problem | None:
    """A price the environment's guards would block (the move would be recorded but not count)."""
    s, verb = neg.scenario, "accept" if accepting else "offer"
    if role == "seller" and neg.guards.regulated_seller and price < s.seller_cost:
        return Problem(f"{format_price(price)} is below your minimum {format_price(s.seller_cost)}: "
                       f"a regulated seller may not {verb} it")
    if role == "buyer" and neg.guards.budget_guard == "block" and price > s.buyer_budget:
        return Problem(f"{format_price(price)} is over your budget {format_price(s.buyer_budget)}: "
                       f"the budget guard blocks it")
    return None


def _echo(act: Act, price: float | None, neg: Negotiation, role: str, inferred: bool = False) -> str:
    """The line that shows the person which move their text makes."""
    them = other(role)
    if act in PRICE_ACTS:
        line = f"you {'offer' if act is Act.OFFER else 'counter with'} {format_price(price)}"
        if inferred:
            line += " (read from your message; end a line with /offer PRICE to set it yourself)"
        if role == "buyer" and price > neg.scenario.buyer_budget:
            line += f" — over your budget {format_price(neg.scenario.buyer_budget)} (allowed, counted as an overshoot)"
        return line
    if act in (Act.ACCEPT, Act.REJECT):
        line = f"you {act.value} the {them}'s {format_price(neg.standing[1])}"
        if act is Act.ACCEPT and role == "buyer" and neg.standing[1] > neg.scenario.buyer_budget:
            line += f" — over your budget {format_price(neg.scenario.buyer_budget)} (allowed, counted as an overshoot)"
        return line
    return {
        Act.QUIT: "you quit the negotiation",
        Act.GREET: "you greet the " + them + " (no offer)",
        Act.INQUIRE: "you ask a question (no offer)",
    }.get(act, "you talk (no offer; end a line with /offer PRICE to make one)")


def parse_command(text: str, neg: Negotiation, role: str) -> Command | Problem:
    """Read one typed line as ``role``'s move in ``neg`` (which it does not change).

    Parameters
    ----------
    text
        The line: a message, optionally ending with a command (see the module docstring).
    neg
        The negotiation, for the standing offer, the list price and the guards.
    role
        ``"buyer"`` or ``"seller"``: who is typing.

    Returns
    -------
    Command or Problem
        The move with its echo, or why the line is not a legal move now (``/help`` answers
        with a problem too: the commands, and the turn is not used).

    Examples
    --------
    >>> from negolens.agents.builtin import builtin_scenarios
    >>> neg = Negotiation(builtin_scenarios()[0])   # a bike listed at $350
    >>> cmd = parse_command("Hi, would you do $250? /offer 250", neg, "buyer")
    >>> cmd.move.act, cmd.move.price, cmd.echo
    (<Act.OFFER: 'offer'>, 250.0, 'you offer $250')
    >>> parse_command("/accept", neg, "buyer").message
    'nothing to accept: the seller has no offer on the table'
    >>> parse_command("Is it still available?", neg, "buyer").move.act
    <Act.INQUIRE: 'inquire'>
    """
    text = text.strip()
    if not text:
        return Problem("type a message, a command such as /offer 250, or /help")
    standing = neg.standing
    facing = standing[1] if standing is not None and standing[0] != role else None
    m = _COMMAND.search(text)
    if m is None:
        return _inferred(text, neg, role, facing)
    name, arg, message = m.group(1).lower(), m.group(2).strip(), text[: m.start()].strip()
    if name not in COMMANDS:
        close = difflib.get_close_matches(name, list(COMMANDS), n=1)
        hint = f" (did you mean /{close[0]}?)" if close else ""
        return Problem(f"unknown command /{name}{hint}; the commands are {COMMAND_LIST}")
    act = COMMANDS[name]
    if act is None:
        return Problem(HELP)
    them = other(role)
    if act in PRICE_ACTS:
        if act is Act.COUNTER and facing is None:
            return Problem(f"nothing to counter: the {them} has no offer on the table; use /offer {arg or 'PRICE'}")
        price = parse_price(arg, neg.scenario.list_price)
        if isinstance(price, Problem):
            return price
        problem = _guard_problem(price, neg, role, accepting=False)
        return problem or Command(Move(message, act, price), _echo(act, price, neg, role))
    if act in (Act.ACCEPT, Act.REJECT) and facing is None:
        own = f" (the {format_price(standing[1])} on the table is yours)" if standing is not None else ""
        return Problem(f"nothing to {name}: the {them} has no offer on the table{own}")
    if arg:
        same = act is Act.ACCEPT and parse_price(arg, neg.scenario.list_price) == facing
        if not same:
            what = (f"it takes the {them}'s {format_price(facing)} as it stands; to propose another price "
                    f"use /counter PRICE") if act is Act.ACCEPT else f"put your message before it, e.g. 'No thanks. /{name}'"
            return Problem(f"/{name} takes no price: {what}")
    if act is Act.ACCEPT:
        problem = _guard_problem(facing, neg, role, accepting=True)
        if problem:
            return problem
    return Command(Move(message, act), _echo(act, None, neg, role))


def _inferred(text: str, neg: Negotiation, role: str, facing: float | None) -> Command | Problem:
    """A line without a command: the act :func:`infer_act` reads, checked like a typed price."""
    act, price = infer_act(text, facing, first=not neg.turns)
    if act is Act.ACCEPT:  # a person accepts explicitly, with /accept
        act, price = Act.INFORM, None
    if act in PRICE_ACTS:
        ambiguous = _AMBIGUOUS.search(text)
        problem = (Problem(f"'{ambiguous.group(0)}' is ambiguous: {PRICE_FORMATS}") if ambiguous else None) \
            or _range_problem(price, neg.scenario.list_price) or _guard_problem(price, neg, role, accepting=False)
        if problem:
            return Problem(f"your message reads as {act.value} {format_price(price)}, but {problem.message}. "
                           f"Rephrase it, or end it with /{act.value} PRICE")
    return Command(Move(text, act, price), _echo(act, price, neg, role, inferred=True))


@dataclass
class HumanAgent:
    """A person at the keyboard, asked once per turn until the line is a legal move.

    Parameters
    ----------
    role
        ``"buyer"`` or ``"seller"``.
    ask
        Prompts for a line (default :func:`input`); ``EOFError`` or ``KeyboardInterrupt`` from it
        means the person left: the move is ``quit`` and :attr:`left` says why.
    tell
        Shows a line to the person (default :func:`print`): the echo of each move, or the problem
        with a line before asking again.

    Examples
    --------
    >>> from negolens.agents.builtin import builtin_scenarios
    >>> lines = iter(["/offer 1.200,50", "/offer 250"])
    >>> person = HumanAgent("buyer", ask=lambda prompt: next(lines))
    >>> person.act(Negotiation(builtin_scenarios()[0])).price
    '1.200,50' is ambiguous: prices look like 250, 250.50, $1,250 or 1,250.50 (comma between thousands, dot before cents)
    you offer $250
    250.0
    """

    role: str
    ask: Callable[[str], str] = input
    tell: Callable[[str], None] = print
    left: str | None = None  # "end of input" or "interrupted" once the person left early

    def config(self) -> dict:
        """The agent's settings as a JSON-ready dict (stored with every record)."""
        return {"kind": "human", "role": self.role, "left": self.left}

    def act(self, neg: Negotiation) -> Move:
        """Ask for this turn's line until it is a legal move; echo the move and return it."""
        prompt = f"you ({self.role}, turn {len(neg.turns) + 1}/{neg.max_turns}) > "
        while True:
            try:
                line = self.ask(prompt)
            except (EOFError, KeyboardInterrupt) as err:
                self.left = "end of input" if isinstance(err, EOFError) else "interrupted"
                self.tell(f"\nyou leave the chat ({self.left})")
                return Move("", Act.QUIT)
            parsed = parse_command(line, neg, self.role)
            if isinstance(parsed, Command):
                self.tell(parsed.echo)
                return parsed.move
            self.tell(parsed.message)
