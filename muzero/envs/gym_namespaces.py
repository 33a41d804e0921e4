"""Which package registers a gymnasium id: the hint an unknown-id error gives.

Ids such as ``ALE/Pong-v5`` exist only once a package has registered them with
gymnasium (``import ale_py``); ``env.plugins`` names the modules to import at
start, so the fix for an unknown id is usually "install X, add its module there".
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class NamespacePackage:
    distribution: str
    """What to ``pip install``."""
    module: str | None
    """What to import (list it in ``env.plugins``); None when installing is enough (the package
    registers its ids through gymnasium's ``gymnasium.envs`` entry point)."""


KNOWN_NAMESPACES: dict[str, NamespacePackage] = {
    "ALE": NamespacePackage("ale-py", "ale_py"),
    "MinAtar": NamespacePackage("minatar", None),
}
"""gymnasium id namespaces (the part before ``/``) and the package that registers them."""


def namespace_of(env_id: str) -> str | None:
    """``"ALE/Pong-v5"`` -> ``"ALE"``; None for an id without a namespace."""
    namespace, slash, _ = env_id.partition("/")
    return namespace if slash else None


def missing_env_hint(env_id: str) -> str:
    """One sentence on how to make ``env_id`` exist, for an unknown-id error."""
    namespace = namespace_of(env_id)
    package = KNOWN_NAMESPACES.get(namespace) if namespace else None
    if package is not None and package.module is not None:
        return (
            f"{namespace}/ ids are registered by {package.distribution}: pip install {package.distribution} "
            f'and set env.plugins = ["{package.module}"]'
        )
    if package is not None:
        return f"{namespace}/ ids are registered by {package.distribution}: pip install {package.distribution}"
    return "if a package registers this id when imported, install it and list its module in env.plugins"
