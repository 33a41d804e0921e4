"""The game registry: an id (and its aliases) -> the game's rules, opponents and move names.

A game registers itself where it is defined, on its class or on a factory:

    @register_game("connect4", move_names=tuple("abcdefg"))
    class ConnectFour: ...

Where games come from:

- built-in games: every module of ``muzero/envs/games/``, imported on the first
  lookup, so a new game is one new file there;
- ``env.plugins`` in the config: module names :func:`load_plugins` imports;
- installed packages: every entry point of the group ``muzero.envs``
  (``[project.entry-points."muzero.envs"] mygame = "mypackage.mygame"``), also
  loaded on the first lookup.

Every game gets the opponents "random" and "uct" (plain UCT, 200 simulations)
for free; a game adds its own (tic-tac-toe: "minimax").
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import pkgutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import TypeVar

from muzero.config import import_plugins
from muzero.envs.base import BoardGame
from muzero.envs.players import Player, RandomPlayer, UCTPlayer

ENTRY_POINT_GROUP = "muzero.envs"
PASS = "pass"
"""The move name of a pass, for games that have one."""

OpponentFactory = Callable[[BoardGame], Player]
RulesFactory = TypeVar("RulesFactory", bound=Callable[[], BoardGame])


class PluginError(ImportError):
    """An entry point of the group ``muzero.envs`` failed to import."""


def _uct(game: BoardGame) -> Player:
    return UCTPlayer(game, num_simulations=200)


FREE_OPPONENTS: Mapping[str, OpponentFactory] = MappingProxyType({"uct": _uct, "random": RandomPlayer})
"""Opponents every game gets: network-free, so they work on any rules."""


@dataclass(frozen=True)
class GameSpec:
    """Everything the rest of the system needs to know about one board game."""

    id: str
    rules: Callable[[], BoardGame]
    """Makes the vectorised rules (muzero/envs/base.py BoardGame)."""
    opponents: Mapping[str, OpponentFactory]
    """name -> player factory; "random" and "uct" always, plus the game's own."""
    eval_opponent: str
    """The opponent local mode's periodic evaluation plays."""
    move_names: tuple[str, ...] | None = None
    """One name per action (a pass is named "pass"); None names moves by their action number."""
    aliases: tuple[str, ...] = ()

    def make(self) -> BoardGame:
        return self.rules()

    @functools.cached_property
    def names(self) -> tuple[str, ...]:
        """The name of every action, in action order."""
        num_actions = int(self.make().num_actions)
        if self.move_names is None:
            return tuple(str(action) for action in range(num_actions))
        if len(self.move_names) != num_actions:
            raise ValueError(f"{self.id}: move_names has {len(self.move_names)} names for {num_actions} actions")
        return self.move_names

    @functools.cached_property
    def _actions_by_name(self) -> dict[str, int]:
        return {name.lower(): action for action, name in enumerate(self.names)}

    @property
    def pass_action(self) -> int | None:
        """The action that passes, or None when the game has no pass."""
        return self._actions_by_name.get(PASS)

    def format_move(self, action: int) -> str:
        """The name a player types for ``action`` (and the board shows)."""
        if isinstance(action, bool) or not 0 <= int(action) < len(self.names):
            raise ValueError(f"{self.id}: action must be in [0, {len(self.names)}), got {action!r}")
        return self.names[int(action)]

    def parse_move(self, text: str) -> int:
        """The action named ``text`` (case and surrounding spaces ignored); ValueError if none is."""
        key = str(text).strip().lower()
        if key in self._actions_by_name:
            return self._actions_by_name[key]
        if key == PASS:
            raise ValueError(f"{self.id} has no pass")
        raise ValueError(f"{self.id} has no move named {text!r} (moves: {summarize(self.names)})")

    def opponent(self, name: str, game: BoardGame | None = None) -> Player:
        """The opponent called ``name`` playing ``game`` (default: fresh rules). Besides the
        game's own names, ``uct:N`` is plain UCT with N random playouts per move."""
        game = self.make() if game is None else game
        if name.startswith("uct:"):
            count = name.removeprefix("uct:")
            if not count.isdigit() or int(count) < 1:
                raise ValueError(f"opponent {name!r}: uct:N needs N >= 1 random playouts per move, e.g. uct:1000")
            return UCTPlayer(game, num_simulations=int(count))
        if name not in self.opponents:
            raise ValueError(
                f"unknown opponent {name!r} for {self.id} (its opponents: {', '.join(sorted(self.opponents))})"
            )
        return self.opponents[name](game)


def summarize(names: Sequence[str], limit: int = 24) -> str:
    """``names`` joined by commas, elided in the middle when there are more than ``limit``."""
    if len(names) <= limit:
        return ", ".join(names)
    return ", ".join([*names[: limit // 2], "...", *names[-2:]])


_GAMES: dict[str, GameSpec] = {}
"""Every id and alias -> its spec."""


def _source(target: object) -> str:
    return f"{getattr(target, '__module__', '?')}.{getattr(target, '__qualname__', repr(target))}"


def register_game(
    game_id: str,
    *,
    aliases: Sequence[str] = (),
    opponents: Mapping[str, OpponentFactory] | None = None,
    eval_opponent: str | None = None,
    move_names: Sequence[str] | None = None,
) -> Callable[[RulesFactory], RulesFactory]:
    """Register the decorated rules class (or factory) under ``game_id`` and ``aliases``.

    ``opponents`` adds to (or replaces) the free "random" and "uct";
    ``eval_opponent`` defaults to "uct". Registering an id again from the same
    class or function (a module reloaded) replaces it; from anything else it is
    a ValueError naming both.
    """
    ids = (game_id, *aliases)
    for name in ids:
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"game ids must be non-empty strings, got {name!r}")
    all_opponents = dict(opponents or {})  # the game's own first: the strongest, in listings and `muzero eval`
    for name, factory in FREE_OPPONENTS.items():
        all_opponents.setdefault(name, factory)
    eval_opponent = "uct" if eval_opponent is None else eval_opponent
    if eval_opponent not in all_opponents:
        raise ValueError(
            f"{game_id}: eval_opponent {eval_opponent!r} is not one of its opponents "
            f"({', '.join(sorted(all_opponents))})"
        )
    names = None if move_names is None else tuple(str(name) for name in move_names)
    if names is not None and len({name.strip().lower() for name in names}) != len(names):
        raise ValueError(f"{game_id}: move names must be distinct (ignoring case), got {names}")

    def register(target: RulesFactory) -> RulesFactory:
        if not callable(target):
            raise TypeError(f"register_game({game_id!r}) decorates a rules class or factory, got {target!r}")
        for name in ids:
            existing = _GAMES.get(name)
            if existing is not None and _source(existing.rules) != _source(target):
                raise ValueError(
                    f"game id {name!r} is already registered by {_source(existing.rules)}; "
                    f"{_source(target)} cannot take it"
                )
        spec = GameSpec(
            id=game_id,
            rules=target,
            opponents=MappingProxyType(all_opponents),
            eval_opponent=eval_opponent,
            move_names=names,
            aliases=tuple(aliases),
        )
        for name in ids:
            _GAMES[name] = spec
        return target

    return register


def add_opponent(game_id: str, name: str, factory: OpponentFactory, *, evaluate_with: bool = False) -> None:
    """Give the game registered as ``game_id`` (and its aliases) one more opponent, from a
    layer that may do what the games' own files may not (an external engine's process).
    ``evaluate_with`` makes it the opponent local training evaluates against."""
    spec = get_game(game_id)
    if not callable(factory):
        raise TypeError(f"add_opponent({game_id!r}, {name!r}): the factory must be callable")
    opponents = dict(spec.opponents)
    opponents[name] = factory
    updated = replace(
        spec, opponents=MappingProxyType(opponents), eval_opponent=name if evaluate_with else spec.eval_opponent
    )
    for key in (spec.id, *spec.aliases):
        _GAMES[key] = updated


# --- where games come from -------------------------------------------------------------


def _import_builtin_games() -> None:
    from muzero.envs import games

    for module in pkgutil.iter_modules(games.__path__):
        importlib.import_module(f"{games.__name__}.{module.name}")


def _load_entry_points() -> None:
    for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            entry_point.load()
        except ImportError as error:
            raise PluginError(
                f"entry point {entry_point.name!r} = {entry_point.value!r} of group "
                f"{ENTRY_POINT_GROUP!r} cannot be imported ({error})"
            ) from error


@functools.cache
def _load_once() -> None:
    """Before the first lookup: the built-in games and the installed packages' entry points."""
    _import_builtin_games()
    _load_entry_points()


def load_plugins(modules: Sequence[str] = ()) -> None:
    """Import each module of ``modules`` (the config's ``env.plugins``), the built-in
    games and every ``muzero.envs`` entry point, so that the games they define
    register themselves. Safe to call again: modules are imported once."""
    if isinstance(modules, str):
        raise TypeError(f"env.plugins must be a list of module names, got the string {modules!r}")
    import_plugins(list(modules))  # a module that fails to import: ConfigError naming env.plugins[i]
    _import_builtin_games()
    _load_entry_points()  # again: packages installed (or put on sys.path) since the first lookup


def game_ids() -> list[str]:
    """Every registered id and alias, sorted."""
    _load_once()
    return sorted(_GAMES)


def is_game(game_id: str) -> bool:
    _load_once()
    return game_id in _GAMES


def get_game(game_id: str) -> GameSpec:
    """The spec registered under ``game_id`` (an id or an alias); ValueError listing the known ids."""
    _load_once()
    if game_id not in _GAMES:
        raise ValueError(
            f"{game_id!r} is not a board game (board games: {', '.join(sorted(_GAMES))}; "
            f"register one with muzero.envs.registry.register_game, see docs/new-environment.md)"
        )
    return _GAMES[game_id]


__all__ = [
    "ENTRY_POINT_GROUP",
    "add_opponent",
    "FREE_OPPONENTS",
    "GameSpec",
    "PASS",
    "PluginError",
    "game_ids",
    "get_game",
    "is_game",
    "load_plugins",
    "register_game",
    "summarize",
]
