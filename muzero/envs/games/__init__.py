"""Built-in games, one module per game.

Each module registers its game with :func:`muzero.envs.registry.register_game`;
the registry imports every module here on its first lookup, so adding a game
is adding one file (see docs/new-environment.md).
"""
