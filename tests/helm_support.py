"""What the chart and Dockerfile tests share: finding the tools, rendering the chart, and
reading from the code what the services expect (environment variables, options, metrics).

The tools are installed by scripts/install_tools.sh (`make test` runs it); the tests install
nothing and fail with that hint when one is missing.
"""

from __future__ import annotations

import argparse
import ast
import base64
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "helm" / "muzero"
RELEASE = "t"
NAMESPACE = "muzero-test"
INSTALL_HINT = "run `bash scripts/install_tools.sh` (make test runs it)"
CRD_KINDS = {"ServiceMonitor", "PrometheusRule", "Certificate"}
SERVICES = ("replay", "learner", "actor", "reanalyze")


def tool(name: str) -> str:
    """The path of a tool install_tools.sh puts in .tools/bin, the venv, or on PATH."""
    for candidate in (ROOT / ".tools" / "bin" / name, ROOT / ".venv" / "bin" / name):
        if candidate.exists():
            return str(candidate)
    found = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else None)
    if found is None:
        pytest.fail(f"{name} is not installed: {INSTALL_HINT}")
    return found


def helm_template(
    *args: str, values: dict | None = None, tmp_path: Path | None = None, check: bool = True
) -> subprocess.CompletedProcess:
    """`helm template` of the chart; ``values`` become a values file, ``args`` are passed on
    (e.g. "--set", "actor.replicas=3")."""
    command = [tool("helm"), "template", RELEASE, str(CHART), "--namespace", NAMESPACE, *args]
    if values is not None:
        assert tmp_path is not None, "a values file needs tmp_path"
        path = tmp_path / f"values-{len(list(tmp_path.glob('values-*.yaml')))}.yaml"
        path.write_text(yaml.safe_dump(values))
        command += ["--values", str(path)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    if check and result.returncode != 0:
        pytest.fail(f"helm template {' '.join(args)} failed:\n{result.stderr}")
    return result


def render(*args: str, values: dict | None = None, tmp_path: Path | None = None) -> list[dict]:
    """The chart's objects for these values."""
    text = helm_template(*args, values=values, tmp_path=tmp_path).stdout
    return [doc for doc in yaml.safe_load_all(text) if doc]


@dataclass
class Rendered:
    docs: list[dict]

    def all(self, kind: str) -> list[dict]:
        return [d for d in self.docs if d["kind"] == kind]

    def get(self, kind: str, name: str) -> dict:
        for doc in self.all(kind):
            if doc["metadata"]["name"] == name:
                return doc
        have = ", ".join(d["metadata"]["name"] for d in self.all(kind))
        raise AssertionError(f"no {kind} {name!r} rendered (have: {have or 'none'})")

    def has(self, kind: str, name: str) -> bool:
        return any(d["metadata"]["name"] == name for d in self.all(kind))

    def component(self, kind: str, component: str) -> dict:
        return self.get(kind, name_of(component))

    def container(self, component: str) -> dict:
        kind = "StatefulSet" if component == "redis" else "Deployment"
        (container,) = self.component(kind, component)["spec"]["template"]["spec"]["containers"]
        return container

    def secret_value(self, name: str, key: str) -> str:
        return base64.b64decode(self.get("Secret", name)["data"][key]).decode()

    def config_map_value(self, name: str, key: str) -> str:
        return self.get("ConfigMap", name)["data"][key]


def name_of(component: str) -> str:
    """The chart's name for a component's objects under the test release."""
    return f"{RELEASE}-muzero-{component}"


def pod_templates(rendered: Rendered) -> list[tuple[str, dict]]:
    """(object name, pod spec metadata+spec) of every workload and bare pod."""
    pods = []
    for doc in rendered.docs:
        if doc["kind"] in ("Deployment", "StatefulSet"):
            pods.append((doc["metadata"]["name"], doc["spec"]["template"]))
        elif doc["kind"] == "Pod":
            pods.append((doc["metadata"]["name"], doc))
    return pods


def env_values(container: dict, rendered: Rendered, pod_name: str = "pod-0", namespace: str = NAMESPACE) -> dict:
    """A container's environment as the kubelet would resolve it (Secrets, ConfigMaps, fieldRefs)."""
    env = {}
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = str(item["value"])
            continue
        source = item["valueFrom"]
        if "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            env[item["name"]] = rendered.secret_value(ref["name"], ref["key"])
        elif "configMapKeyRef" in source:
            ref = source["configMapKeyRef"]
            env[item["name"]] = rendered.config_map_value(ref["name"], ref["key"])
        elif "fieldRef" in source:
            field = source["fieldRef"]["fieldPath"]
            env[item["name"]] = {"metadata.name": pod_name, "metadata.namespace": namespace}[field]
        else:
            raise AssertionError(f"{item['name']}: unexpected valueFrom {source}")
    return env


# --- what the code reads and exports -------------------------------------------------------------


def python_files(*relative: str) -> list[Path]:
    files = []
    for rel in relative:
        path = ROOT / rel
        files += sorted(path.rglob("*.py")) if path.is_dir() else [path]
    return files


def service_sources(service: str) -> list[Path]:
    """The code a service process runs: its package and the library (the Kubernetes tooling
    excepted; it is the autoscaler's)."""
    library = [p for p in python_files("muzero") if "k8s" not in p.relative_to(ROOT).parts]
    return [*python_files(f"services/{service}"), *library]


def autoscaler_sources() -> list[Path]:
    k8s = ROOT / "muzero" / "operations" / "k8s"
    return python_files("muzero/operations/k8s") if k8s.is_dir() else []


def _env_name(node: ast.AST) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith("MUZERO_"):
        return node.value
    return None


def env_reads(files: list[Path]) -> dict[str, object]:
    """Every MUZERO_* variable these files read, with its default when the code gives a literal
    one: ``x.get("MUZERO_A", 3)``, ``os.getenv("MUZERO_B")``, ``environ["MUZERO_C"]``."""
    reads: dict[str, object] = {}
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("get", "getenv", "pop", "setdefault")
                and node.args
            ):
                name = _env_name(node.args[0])
                if name:
                    default = node.args[1] if len(node.args) > 1 else None
                    reads[name] = default.value if isinstance(default, ast.Constant) else None
            elif isinstance(node, ast.Subscript):
                name = _env_name(node.slice)
                if name:
                    reads.setdefault(name, None)
    return reads


def parser_env_reads(build_parser, candidates: list[str]) -> set[str]:
    """Which of ``candidates`` an argparse parser takes its defaults from, for parsers that read
    the environment when built: build it with each candidate set to a sentinel and look."""
    saved = {name: os.environ.get(name) for name in candidates}
    try:
        for name in candidates:
            os.environ[name] = f"sentinel:{name}"
        parser: argparse.ArgumentParser = build_parser()
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    defaults = {str(action.default) for action in parser._actions}  # the raw defaults, before type conversion
    return {name for name in candidates if f"sentinel:{name}" in defaults}


def option_env(files: list[Path]) -> dict[str, str]:
    """Which environment variable supplies each command-line option's default, from the
    ``add_argument("--port", default=int(env.get("MUZERO_X", ...)))`` calls in these files."""
    options: dict[str, str] = {}
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "add_argument"
                and node.args
            ):
                continue
            flag = node.args[0]
            default = next((k.value for k in node.keywords if k.arg == "default"), None)
            if not (isinstance(flag, ast.Constant) and isinstance(flag.value, str) and default is not None):
                continue
            for inner in ast.walk(default):
                if isinstance(inner, ast.Call) and inner.args and _env_name(inner.args[0]):
                    options[flag.value] = inner.args[0].value
    return options


def module_constant(path: Path, name: str) -> str:
    """A module-level string constant, read without importing the module."""
    for node in ast.parse(path.read_text(), str(path)).body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            return node.value.value
    raise AssertionError(f"{path.relative_to(ROOT)} defines no {name}")


_METRIC = re.compile(r"^muzero_[a-z0-9_]+$")


def exported_metric_names() -> set[str]:
    """The muzero_* metric names the code defines, with the suffixes Prometheus exposes them under
    (counters get _total; histograms _bucket, _sum, _count)."""
    names = set()
    for path in python_files("muzero", "services"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and _METRIC.match(node.value):
                names.add(node.value)
    suffixes = ("", "_total", "_created", "_bucket", "_sum", "_count")
    return {base.removesuffix("_total") + suffix for base in names for suffix in suffixes} | names


def metric_names_in(expr: str) -> set[str]:
    return set(re.findall(r"\b(muzero_[a-z0-9_]+)\b", expr))
