"""The Helm chart (helm/muzero): lint, offline validation against the Kubernetes schemas for
several value sets, the values schema, and a cross-check of every port, path and environment
variable the templates set against what the services' code reads."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from muzero import config as config_module
from tests.helm_support import (
    CHART,
    CRD_KINDS,
    NAMESPACE,
    RELEASE,
    ROOT,
    SERVICES,
    Rendered,
    autoscaler_sources,
    env_reads,
    env_values,
    exported_metric_names,
    helm_template,
    metric_names_in,
    module_constant,
    name_of,
    option_env,
    parser_env_reads,
    pod_templates,
    render,
    service_sources,
    tool,
)

# Value sets rendered and validated; each is a list of helm arguments or a values dict.
EXTRAS = {
    "nodeSelector": {"pool": "cpu"},
    "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "muzero", "effect": "NoSchedule"}],
    "affinity": {
        "podAntiAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": 50,
                    "podAffinityTerm": {
                        "topologyKey": "kubernetes.io/hostname",
                        "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "muzero"}},
                    },
                }
            ]
        }
    },
    "extraEnv": [{"name": "EXTRA_SETTING", "value": "1"}],
    "extraVolumes": [{"name": "scratch", "emptyDir": {}}],
    "extraVolumeMounts": [{"name": "scratch", "mountPath": "/scratch"}],
    "podAnnotations": {"example.com/team": "rl"},
    "podLabels": {"team": "rl"},
}
VALUE_SETS = {
    "default": [],
    "gpu-actors": ["--set", "actor.gpu.enabled=true", "--set", "reanalyze.gpu.enabled=true"],
    "persistence-off": ["--set", "redis.persistence.enabled=false", "--set", "learner.persistence.enabled=false"],
    "autoscaler-on": ["--set", "autoscaler.enabled=true", "--set", "autoscaler.maxActors=8"],
    "monitoring-on": [
        "--set",
        "metrics.serviceMonitor.enabled=true",
        "--set",
        "metrics.prometheusRule.enabled=true",
        "--set",
        "metrics.serviceMonitor.labels.release=prometheus",
        "--set",
        "autoscaler.enabled=true",
    ],
    "tls-and-tokens": [
        *("--set", "tls.enabled=true", "--set", "tls.certManager.enabled=true"),
        *("--set", "tls.certManager.issuerRef.name=muzero-ca", "--set", "tls.requireClientCerts=true"),
        *("--set", "auth.enabled=true", "--set", "auth.serviceToken=s3rvices-0123456789abcdef"),
        *("--set", "auth.tokens[0].name=ci-puller,auth.tokens[0].scope=read"),
        *("--set", "auth.tokens[0].token=r3ader-0123456789abcdef"),
    ],
    "cpu-only-custom": {
        "learner": {"gpu": {"enabled": False}, "persistence": {"existingClaim": "my-checkpoints"}, **EXTRAS},
        "redis": {"shards": 4, "auth": {"existingSecret": "my-redis", "existingSecretKey": "pw"}, **EXTRAS},
        "replay": {"replicas": 3, "configOverrides": ["replay.zstd_level=5"], **EXTRAS},
        "actor": {"replicas": 6, **EXTRAS},
        "reanalyze": {"replicas": 0},
        "networkPolicy": {"enabled": False},
        "image": {"repository": "registry.example.com/muzero", "tag": "1.2.3"},
    },
}


def render_set(name: str, tmp_path: Path) -> Rendered:
    spec = VALUE_SETS[name]
    if isinstance(spec, dict):
        return Rendered(render(values=spec, tmp_path=tmp_path))
    return Rendered(render(*spec))


def min_kubernetes_version() -> str:
    """The oldest Kubernetes the chart supports, from Chart.yaml's kubeVersion (">=1.27.0-0")."""
    constraint = yaml.safe_load((CHART / "Chart.yaml").read_text())["kubeVersion"]
    return constraint.removeprefix(">=").split("-")[0]


# --- lint, render, validate ---------------------------------------------------------------------


def test_helm_lint_passes_for_every_value_set(tmp_path):
    for name, spec in VALUE_SETS.items():
        args = list(spec) if isinstance(spec, list) else []
        if isinstance(spec, dict):
            path = tmp_path / f"{name}.yaml"
            path.write_text(yaml.safe_dump(spec))
            args = ["--values", str(path)]
        result = subprocess.run(
            [tool("helm"), "lint", "--strict", str(CHART), *args], capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, f"helm lint ({name}):\n{result.stdout}\n{result.stderr}"


@pytest.mark.parametrize("value_set", list(VALUE_SETS))
def test_rendered_objects_validate_against_kubernetes_schemas(value_set, tmp_path):
    rendered = render_set(value_set, tmp_path)
    core = [doc for doc in rendered.docs if doc["kind"] not in CRD_KINDS]
    path = tmp_path / "objects.yaml"
    path.write_text(yaml.safe_dump_all(core))
    for version in (min_kubernetes_version(), None):
        version_args = ["--kubernetes-version", version] if version else []
        result = subprocess.run(
            [tool("kubernetes-validate"), "--strict", "--quiet", *version_args, str(path)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, f"{value_set} against {version or 'latest'}:\n{result.stdout}{result.stderr}"
    kinds = {doc["kind"] for doc in rendered.docs}
    assert {"StatefulSet", "Deployment", "Service", "ConfigMap"} <= kinds


def test_value_sets_change_what_they_should(tmp_path):
    default = render_set("default", tmp_path)
    assert default.component("Deployment", "actor")["spec"]["replicas"] == 2
    assert not default.has("Deployment", name_of("autoscaler"))
    assert not default.all("ServiceMonitor") and not default.all("PrometheusRule")
    assert default.all("NetworkPolicy")

    gpu_set = render_set("gpu-actors", tmp_path)
    gpu = gpu_set.container("actor")
    assert gpu["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert gpu["image"].endswith(":0.1.0-cuda")
    assert "training.device=cuda" in env_values(gpu, gpu_set)["MUZERO_SET"].split(";")
    assert "training.device=cuda" not in env_values(default.container("actor"), default)["MUZERO_SET"]
    assert "nvidia.com/gpu" not in default.container("actor")["resources"].get("limits", {})
    assert default.container("actor")["image"].endswith(":0.1.0")

    off = render_set("persistence-off", tmp_path)
    assert "volumeClaimTemplates" not in off.component("StatefulSet", "redis")["spec"]
    assert not off.all("PersistentVolumeClaim")
    redis_args = off.container("redis")["args"][0]
    assert "--appendonly no" in redis_args and "--appendonly yes" in default.container("redis")["args"][0]

    autoscaled = render_set("autoscaler-on", tmp_path)
    assert "replicas" not in autoscaled.component("Deployment", "actor")["spec"], (
        "with the autoscaler on, helm upgrade must not reset the actor count"
    )

    custom = render_set("cpu-only-custom", tmp_path)
    learner = custom.component("Deployment", "learner")["spec"]["template"]["spec"]
    assert {"name": "checkpoints", "persistentVolumeClaim": {"claimName": "my-checkpoints"}} in learner["volumes"]
    assert not custom.all("Secret"), "an existing Secret is used, none made"
    assert not custom.has("Deployment", name_of("reanalyze"))
    assert custom.component("StatefulSet", "redis")["spec"]["replicas"] == 4
    for component in ("replay", "learner", "actor", "redis"):
        pod = custom.component("StatefulSet" if component == "redis" else "Deployment", component)["spec"]["template"]
        container = pod["spec"]["containers"][0]
        assert pod["spec"]["nodeSelector"] == EXTRAS["nodeSelector"]
        assert pod["spec"]["tolerations"] == EXTRAS["tolerations"]
        assert pod["spec"]["affinity"] == EXTRAS["affinity"]
        assert pod["metadata"]["labels"]["team"] == "rl"
        assert pod["metadata"]["annotations"]["example.com/team"] == "rl"
        assert {"name": "EXTRA_SETTING", "value": "1"} in container["env"]
        assert {"name": "scratch", "mountPath": "/scratch"} in container["volumeMounts"]
        if component != "redis":
            assert container["image"] == "registry.example.com/muzero:1.2.3"


def test_learner_is_one_replica_with_a_gpu_and_a_claim_by_default():
    rendered = Rendered(render())
    learner = rendered.component("Deployment", "learner")
    assert learner["spec"]["replicas"] == 1
    assert learner["spec"]["strategy"] == {"type": "Recreate"}, "two learners must never share the checkpoints"
    container = rendered.container("learner")
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    claim = rendered.get("PersistentVolumeClaim", name_of("learner-checkpoints"))
    assert claim["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    volumes = {v["name"]: v for v in learner["spec"]["template"]["spec"]["volumes"]}
    assert volumes["checkpoints"]["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]


# --- the values schema ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "setting, named",
    [
        ("replay.replicas=two", "/replay/replicas"),
        ("actor.replicsa=3", "replicsa"),
        ("redis.persistence.appendfsync=sometimes", "/redis/persistence/appendfsync"),
        ("experiment.config.search.num_simulatons=3", "num_simulatons"),
        ("experiment.config.search.algorithm=alphazero", "/experiment/config/search/algorithm"),
        ("metrics.serviceMonitor.interval=often", "/metrics/serviceMonitor/interval"),
        ("learner.gpu.count=0", "/learner/gpu/count"),
        ("experiment.preset=pong", "/experiment/preset"),
        ("experiment.overrides={search.num_simulatons=3}", "search.num_simulatons=3"),
    ],
)
def test_schema_rejects_a_wrong_value_naming_it(setting, named):
    result = helm_template("--set", setting, check=False)
    assert result.returncode != 0, f"{setting} was accepted"
    assert named in result.stderr, result.stderr


def test_schema_is_the_one_generated_from_the_config_code():
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import gen_chart_schema
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    assert (CHART / "values.schema.json").read_text() == gen_chart_schema.render(), (
        "values.schema.json is stale: run .venv/bin/python scripts/gen_chart_schema.py"
    )


@pytest.mark.parametrize(
    "setting, message",
    [
        (
            ["--set", "autoscaler.enabled=true", "--set", "autoscaler.minActors=9", "--set", "autoscaler.maxActors=4"],
            "autoscaler.minActors (9) must not exceed autoscaler.maxActors (4)",
        ),
        (["--set", "experiment.config.search.model=simulator"], "reanalyze.replicas: reanalyze needs"),
        (["--set", 'experiment.overrides={search.model="simulator"}'], "reanalyze.replicas: reanalyze needs"),
        (
            ["--set", "metrics.prometheusRule.enabled=true", "--set", "metrics.prometheusRule.samplesPerInsert.low=40"],
            "metrics.prometheusRule.samplesPerInsert.low (40) must be below .high (32)",
        ),
        (["--set", "tls.enabled=true"], "tls.enabled: set tls.secretName"),
        (
            ["--set", "tls.enabled=true", "--set", "tls.certManager.enabled=true"],
            "tls.certManager.enabled: set tls.certManager.issuerRef.name",
        ),
    ],
)
def test_impossible_combinations_fail_with_a_message(setting, message):
    result = helm_template(*setting, check=False)
    assert result.returncode != 0 and message in result.stderr, result.stderr


# --- the experiment config ----------------------------------------------------------------------------


@pytest.mark.parametrize("preset", config_module.preset_names())
def test_every_preset_renders_to_a_config_file_the_services_load_identically(preset, tmp_path):
    """Each bundled preset, given as values, renders to a TOML file that loads into exactly the preset's config."""
    data = tomllib.loads((config_module.PRESET_DIR / f"{preset}.toml").read_text())
    values = {"experiment": {"config": data}}
    if data.get("search", {}).get("model") == "simulator":
        values["reanalyze"] = {"replicas": 0}
    rendered = Rendered(render(values=values, tmp_path=tmp_path))
    path = tmp_path / "experiment.toml"
    path.write_text(rendered.config_map_value(name_of("experiment"), "experiment.toml"))
    assert config_module.load(str(path)).to_dict() == config_module.load(preset).to_dict()


def _service_config(rendered: Rendered, component: str, tmp_path: Path) -> config_module.ExperimentConfig:
    """The config a service loads from the environment the chart gives it (the file as mounted)."""
    env = env_values(rendered.container(component), rendered)
    source = env["MUZERO_CONFIG"]
    if source.startswith("/"):
        path = tmp_path / Path(source).name
        path.write_text(rendered.config_map_value(name_of("experiment"), Path(source).name))
        source = str(path)
    return config_module.load(source, [s for s in env["MUZERO_SET"].split(";") if s])


def test_default_values_run_the_cartpole_preset_and_the_learner_on_cuda(tmp_path):
    rendered = Rendered(render())
    cartpole = config_module.load("cartpole")
    for component in ("replay", "actor", "reanalyze"):
        assert _service_config(rendered, component, tmp_path) == cartpole
    assert _service_config(rendered, "learner", tmp_path) == config_module.replace(cartpole, ["training.device=cuda"])


def test_overrides_apply_to_every_component_and_component_overrides_to_one(tmp_path):
    rendered = Rendered(
        render(
            values={
                "experiment": {
                    "preset": "tictactoe-learned",
                    "overrides": ["search.num_simulations=8", 'name="ttt-8"'],
                },
                "actor": {"configOverrides": ["env.num_envs=4"]},
                "learner": {"gpu": {"enabled": False}},
            },
            tmp_path=tmp_path,
        )
    )
    base = config_module.load("tictactoe-learned", ["search.num_simulations=8", 'name="ttt-8"'])
    for component in ("replay", "learner", "reanalyze"):
        assert _service_config(rendered, component, tmp_path) == base
    assert _service_config(rendered, "actor", tmp_path) == config_module.replace(base, ["env.num_envs=4"])


def test_a_config_change_rolls_every_service_pod():
    def checksums(*args):
        rendered = Rendered(render(*args))
        return {
            c: rendered.component("Deployment", c)["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
            for c in SERVICES
        }

    before, after = checksums(), checksums("--set", "experiment.overrides={search.num_simulations=32}")
    assert len(set(before.values())) == 1 and len(set(after.values())) == 1
    assert set(before.values()) != set(after.values())
    assert checksums("--set", "actor.replicas=5") == before, "a change outside the config rolls nothing"


# --- labels, security ---------------------------------------------------------------------------------


@pytest.mark.parametrize("value_set", ["default", "autoscaler-on"])
def test_every_pod_carries_the_labels_muzero_status_relies_on(value_set, tmp_path):
    rendered = render_set(value_set, tmp_path)
    components = set()
    for name, pod in pod_templates(rendered):
        labels = pod["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == "muzero", name
        assert labels["app.kubernetes.io/instance"] == RELEASE, name
        components.add(labels["app.kubernetes.io/component"])
        for container in pod["spec"]["containers"]:
            ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
            if labels["app.kubernetes.io/component"] in (*SERVICES, "autoscaler"):
                assert "metrics" in ports, name
            if labels["app.kubernetes.io/component"] in SERVICES:
                assert "grpc" in ports, name
    expected = {"redis", *SERVICES, "test"} | ({"autoscaler"} if value_set == "autoscaler-on" else set())
    assert components == expected


def test_pods_run_as_non_root_with_a_read_only_root_filesystem():
    rendered = Rendered(render("--set", "autoscaler.enabled=true"))
    for name, pod in pod_templates(rendered):
        spec = pod["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        for container in spec["containers"]:
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True, name
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["capabilities"]["drop"] == ["ALL"], name
            mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
            assert "emptyDir" in volumes[mounts["/tmp"]], f"{name}: /tmp must be writable"
        wants_api = pod["metadata"]["labels"]["app.kubernetes.io/component"] == "autoscaler"
        assert spec.get("automountServiceAccountToken", True) is wants_api, name


# --- the cross-check: what the templates set against what the code reads ------------------------------


def _services_by_name(rendered: Rendered) -> dict[str, dict]:
    return {s["metadata"]["name"]: s for s in rendered.all("Service")}


def _service_port(service: dict, name: str) -> int:
    return next(p["port"] for p in service["spec"]["ports"] if p["name"] == name)


def _check_address(address: str, component: str, rendered: Rendered) -> None:
    """``host:port`` names the component's Service and its grpc port, which targets the pods' grpc port."""
    host, port = address.rsplit(":", 1)
    service = _services_by_name(rendered)[host]
    assert service["spec"]["selector"]["app.kubernetes.io/component"] == component
    assert _service_port(service, "grpc") == int(port)
    container_port = next(p["containerPort"] for p in rendered.container(component)["ports"] if p["name"] == "grpc")
    assert int(port) == container_port, f"{address}: the Service port and the container port differ"


@pytest.mark.parametrize("component", SERVICES)
def test_every_env_var_port_and_path_matches_what_the_service_reads(component):
    rendered = Rendered(render("--set", "autoscaler.enabled=true"))
    container = rendered.container(component)
    pod = rendered.component("Deployment", component)["spec"]["template"]["spec"]
    sources = service_sources(component)
    reads = env_reads(sources)
    options = option_env(sources)
    env = env_values(container, rendered, pod_name=f"{name_of(component)}-5d9c7b-xk2lp")

    unread = sorted(set(n for n in env if n.startswith("MUZERO_")) - set(reads))
    assert not unread, f"{component}: the chart sets {unread}, which the service never reads"

    # The gRPC port: the option --port reads it from an environment variable; the chart sets
    # that variable to the container port named grpc, which the probes check and the Service targets.
    port_var = options["--port"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert int(env[port_var]) == ports["grpc"], f"{component}: {port_var} is not the grpc container port"
    health_name = module_constant(
        ROOT / "services" / component / "main.py",
        "SERVICE_NAME" if component in ("replay", "learner") else "HEALTH_NAME",
    )
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["grpc"] == {"port": ports["grpc"], "service": health_name}, f"{component} {probe}"

    # Metrics: --metrics-port's variable, the container port named metrics, the Service's metrics port.
    metrics_var = options["--metrics-port"]
    assert int(env[metrics_var]) == ports["metrics"]
    service = rendered.component("Service", component)
    assert _service_port(service, "metrics") == ports["metrics"]
    assert service["spec"]["selector"]["app.kubernetes.io/component"] == component

    # The experiment: --config's variable names a bundled preset, or (with experiment.config)
    # the path of the file the mounted ConfigMap holds; --set's variable is read too.
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert env[options["--config"]] in config_module.preset_names()
    with_file = Rendered(render("--set", "experiment.config.name=from-values"))
    config_path = env_values(with_file.container(component), with_file)[options["--config"]]
    folder, key = config_path.rsplit("/", 1)
    config_map = volumes[mounts[folder]]["configMap"]["name"]
    assert key in with_file.get("ConfigMap", config_map)["data"]

    # Whom it talks to: the Services and ports of replay and the learner.
    if "--replay" in options:
        _check_address(env[options["--replay"]], "replay", rendered)
    if "--learner" in options:
        _check_address(env[options["--learner"]], "learner", rendered)
    if component == "learner":
        assert mounts[env[options["--run-dir"]]] == "checkpoints", "checkpoints must go to the checkpoints volume"
    if component == "replay":
        _check_redis_urls(env[options["--redis-urls"]], rendered)
        assert "MUZERO_REDIS_PASSWORD" in reads
        assert env["MUZERO_REDIS_PASSWORD"] == rendered.secret_value(name_of("redis"), "redis-password")
    if component in ("actor", "reanalyze"):
        id_option = "--actor-id" if component == "actor" else "--worker-id"
        assert env[options[id_option]] == f"{name_of(component)}-5d9c7b-xk2lp", "ids come from the pod name"


def _check_redis_urls(text: str, rendered: Rendered) -> None:
    statefulset = rendered.component("StatefulSet", "redis")
    headless = rendered.get("Service", statefulset["spec"]["serviceName"])
    assert headless["spec"]["clusterIP"] == "None"
    port = next(p["containerPort"] for p in rendered.container("redis")["ports"] if p["name"] == "redis")
    hosts = []
    for url in text.split(","):
        parts = urlsplit(url)
        assert parts.scheme == "redis" and parts.port == port and not parts.password, url
        hosts.append(parts.hostname)
    name = statefulset["metadata"]["name"]
    assert hosts == [
        f"{name}-{i}.{headless['metadata']['name']}.{NAMESPACE}.svc.cluster.local"
        for i in range(statefulset["spec"]["replicas"])
    ]


def test_the_autoscaler_gets_the_contract_environment_and_only_its_rbac():
    rendered = Rendered(render("--set", "autoscaler.enabled=true"))
    container = rendered.container("autoscaler")
    env = env_values(container, rendered)
    actors = rendered.component("Deployment", "actor")["metadata"]["name"]
    assert container["args"] == ["autoscale"]
    assert env["MUZERO_NAMESPACE"] == NAMESPACE
    assert env["MUZERO_ACTOR_DEPLOYMENT"] == actors
    for variable, component in (("MUZERO_LEARNER_METRICS_URL", "learner"), ("MUZERO_REPLAY_METRICS_URL", "replay")):
        url = urlsplit(env[variable])
        assert url.path == "/metrics"
        assert url.port == _service_port(rendered.component("Service", component), "metrics")
        assert url.hostname == name_of(component)
    assert float(env["MUZERO_AUTOSCALER_SPI_LOW"]) < float(env["MUZERO_AUTOSCALER_SPI_HIGH"])
    assert 1 <= int(env["MUZERO_AUTOSCALER_MIN_ACTORS"]) <= int(env["MUZERO_AUTOSCALER_MAX_ACTORS"])
    assert int(env["MUZERO_AUTOSCALER_INTERVAL_S"]) > 0
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert int(env["MUZERO_METRICS_PORT"]) == ports["metrics"]
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/metrics", "port": "metrics"}

    role = rendered.component("Role", "autoscaler")
    assert role["rules"] == [
        {"apiGroups": ["apps"], "resources": ["deployments"], "resourceNames": [actors], "verbs": ["get"]},
        {
            "apiGroups": ["apps"],
            "resources": ["deployments/scale"],
            "resourceNames": [actors],
            "verbs": ["get", "patch", "update"],
        },
    ]
    binding = rendered.component("RoleBinding", "autoscaler")
    pod = rendered.component("Deployment", "autoscaler")["spec"]["template"]["spec"]
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": pod["serviceAccountName"], "namespace": NAMESPACE}
    ]

    if not autoscaler_sources():
        pytest.skip("muzero/k8s (the autoscaler) is not in this checkout yet: its environment is not cross-checked")
    from muzero.operations.k8s import autoscaler

    wanted = sorted(n for n in env if n.startswith("MUZERO_"))
    reads = set(env_reads(autoscaler_sources())) | parser_env_reads(autoscaler.build_parser, wanted)
    unread = sorted(set(wanted) - reads)
    assert not unread, f"the chart sets {unread} for the autoscaler, which muzero/k8s never reads"


def test_the_helm_test_pod_checks_every_service_and_reads_only_what_its_script_reads(tmp_path):
    rendered = Rendered(render())
    pod = rendered.get("Pod", name_of("test"))
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    (container,) = pod["spec"]["containers"]
    env = env_values(container, rendered)
    script = tmp_path / "helm_test.py"
    script.write_text(rendered.config_map_value(name_of("test"), "helm_test.py"))
    assert script.read_text().strip() == (CHART / "files" / "helm_test.py").read_text().strip()
    assert set(env) <= set(env_reads([script]))
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert container["command"] == ["python", f"{mounts['script']}/helm_test.py"]
    checked = {}
    for item in env["MUZERO_TEST_HEALTH"].split(","):
        address, service_name = item.split("/")
        service = _services_by_name(rendered)[address.split(":")[0]]
        component = service["spec"]["selector"]["app.kubernetes.io/component"]
        _check_address(address, component, rendered)
        checked[component] = service_name
    assert checked == {
        "replay": module_constant(ROOT / "services/replay/main.py", "SERVICE_NAME"),
        "learner": module_constant(ROOT / "services/learner/main.py", "SERVICE_NAME"),
        "actor": module_constant(ROOT / "services/actor/main.py", "HEALTH_NAME"),
        "reanalyze": module_constant(ROOT / "services/reanalyze/main.py", "HEALTH_NAME"),
    }
    _check_address(env["MUZERO_LEARNER_ADDR"], "learner", rendered)


# --- network policy ---------------------------------------------------------------------------------


def test_network_policy_lets_only_replay_reach_redis_and_only_the_release_reach_replay():
    rendered = Rendered(render())
    redis = rendered.component("NetworkPolicy", "redis")
    assert redis["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "redis"
    (rule,) = redis["spec"]["ingress"]
    (peer,) = rule["from"]
    assert peer == {
        "podSelector": {
            "matchLabels": {
                "app.kubernetes.io/name": "muzero",
                "app.kubernetes.io/instance": RELEASE,
                "app.kubernetes.io/component": "replay",
            }
        }
    }
    assert rule["ports"] == [{"port": 6379, "protocol": "TCP"}]

    replay = rendered.component("NetworkPolicy", "replay")
    grpc_rule, metrics_rule = replay["spec"]["ingress"]
    assert grpc_rule["from"] == [
        {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "muzero", "app.kubernetes.io/instance": RELEASE}}}
    ]
    assert grpc_rule["ports"] == [{"port": 50051, "protocol": "TCP"}]
    assert metrics_rule == {"ports": [{"port": 9100, "protocol": "TCP"}]}, "metrics stay scrapable"
    # Every client of replay carries the release labels the policy admits.
    for name, pod in pod_templates(rendered):
        labels = pod["metadata"]["labels"]
        if labels["app.kubernetes.io/component"] in ("learner", "actor", "reanalyze", "test"):
            assert all(labels[k] == v for k, v in grpc_rule["from"][0]["podSelector"]["matchLabels"].items()), name


# --- monitoring: ServiceMonitor, PrometheusRule, dashboards -------------------------------------------


def test_service_monitor_scrapes_every_metrics_port_with_the_extra_labels():
    rendered = Rendered(render(*VALUE_SETS["monitoring-on"]))
    (monitor,) = rendered.all("ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint == {
        "port": "metrics",
        "path": "/metrics",
        "scheme": "http",
        "interval": "30s",
        "scrapeTimeout": "10s",
    }
    selector = monitor["spec"]["selector"]["matchLabels"]
    selected = {
        s["metadata"]["labels"]["app.kubernetes.io/component"]
        for s in rendered.all("Service")
        if all(s["metadata"]["labels"].get(k) == v for k, v in selector.items())
        and any(p["name"] == "metrics" for p in s["spec"]["ports"])
    }
    assert selected == {*SERVICES, "autoscaler"}


def _rule_groups(rendered: Rendered) -> list[dict]:
    (rule,) = rendered.all("PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    groups = rule["spec"]["groups"]
    for group in groups:
        assert set(group) == {"name", "rules"}
        for item in group["rules"]:
            assert set(item) <= {"alert", "expr", "for", "labels", "annotations"} and "alert" in item
    return groups


def test_prometheus_rules_pass_promtool_and_use_only_exported_metrics(tmp_path):
    rendered = Rendered(render(*VALUE_SETS["monitoring-on"]))
    groups = _rule_groups(rendered)
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": groups}))
    result = subprocess.run([tool("promtool"), "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    alerts = {item["alert"] for group in groups for item in group["rules"]}
    assert alerts == {
        "MuzeroMetricsAbsent",
        "MuzeroSamplesPerInsertLow",
        "MuzeroSamplesPerInsertHigh",
        "MuzeroCheckpointLag",
        "MuzeroCheckpointStale",
        "MuzeroStreamSlotsNearlyFull",
        "MuzeroStreamsRefused",
    }
    absent = [item for group in groups for item in group["rules"] if item["alert"] == "MuzeroMetricsAbsent"]
    assert {item["labels"]["component"] for item in absent} == {*SERVICES, "autoscaler"}
    assert all(item["for"] == "5m" for item in absent)
    exported = exported_metric_names()
    for group in groups:
        for item in group["rules"]:
            unknown = metric_names_in(item["expr"]) - exported
            assert not unknown, f"{item['alert']} queries {unknown}, which no service exports"


def test_prometheus_rules_fire_when_they_should(tmp_path):
    """promtool's rule unit tests: the expressions against synthetic series."""
    rendered = Rendered(render(*VALUE_SETS["monitoring-on"]))
    groups = _rule_groups(rendered)
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": groups}))
    expr = {
        item["alert"]: item["expr"] for g in groups for item in g["rules"] if item["alert"] != "MuzeroMetricsAbsent"
    }
    absent = {
        item["labels"]["component"]: item["expr"]
        for g in groups
        for item in g["rules"]
        if item["alert"] == "MuzeroMetricsAbsent"
    }

    def labels(component):
        return f'namespace="{NAMESPACE}", service="{name_of(component)}"'

    def replay_series(sampled_per_minute, inserted_per_minute, stored):
        """A learner sampling at one rate; two replay replicas reporting the same store-wide counters."""
        series = [
            {
                "series": f'muzero_learner_samples_total{{{labels("learner")}, pod="l"}}',
                "values": f"0+{sampled_per_minute}x60",
            }
        ]
        for pod in ("a", "b"):
            series += [
                {
                    "series": f'muzero_replay_inserted_transitions_total{{{labels("replay")}, pod="{pod}"}}',
                    "values": f"0+{inserted_per_minute}x60",
                },
                {"series": f'muzero_replay_transitions{{{labels("replay")}, pod="{pod}"}}', "values": f"{stored}x60"},
                {
                    "series": f'muzero_replay_appended_segments_total{{{labels("replay")}, pod="{pod}"}}',
                    "values": "0+1x60",
                },
            ]
        return series

    def case(series, expected: dict[str, list]):
        return {
            "interval": "1m",
            "input_series": series,
            "promql_expr_test": [{"expr": e, "eval_time": "40m", "exp_samples": s} for e, s in expected.items()],
        }

    tests = [
        # in band (16 sampled per insert, the cartpole target): neither bound fires
        case(
            replay_series(1600, 100, 5000),
            {expr["MuzeroSamplesPerInsertLow"]: [], expr["MuzeroSamplesPerInsertHigh"]: []},
        ),
        # 1 per insert: below the band
        case(replay_series(100, 100, 5000), {expr["MuzeroSamplesPerInsertLow"]: [{"labels": "{}", "value": 1}]}),
        # 64 per insert: above it
        case(replay_series(6400, 100, 5000), {expr["MuzeroSamplesPerInsertHigh"]: [{"labels": "{}", "value": 64}]}),
        # below the band, but replay is still filling up to replay.min_size: quiet
        case(replay_series(100, 100, 10), {expr["MuzeroSamplesPerInsertLow"]: []}),
        # the learner's metrics are gone; replay's are there
        case(
            replay_series(100, 100, 10),
            {absent["learner"]: [{"labels": f"{{{labels('learner')}}}", "value": 1}], absent["replay"]: []},
        ),
        # the newest checkpoint was published at t=0; at 40 min it is 2400 s old
        case(
            [
                {
                    "series": f"muzero_learner_checkpoint_published_timestamp_seconds{{{labels('learner')}}}",
                    "values": "0x60",
                }
            ],
            {expr["MuzeroCheckpointStale"]: [{"labels": "{}", "value": 2400}]},
        ),
        # replay holds 240 of 256 stream slots and refuses one stream a minute; the learner 10
        case(
            [
                {"series": f'muzero_grpc_open_streams{{{labels("replay")}, pod="r"}}', "values": "240x60"},
                {"series": f'muzero_grpc_stream_limit{{{labels("replay")}, pod="r"}}', "values": "256x60"},
                {"series": f'muzero_grpc_open_streams{{{labels("learner")}, pod="l"}}', "values": "10x60"},
                {"series": f'muzero_grpc_stream_limit{{{labels("learner")}, pod="l"}}', "values": "256x60"},
                {"series": f'muzero_grpc_refused_streams_total{{{labels("replay")}, pod="r"}}', "values": "0+1x60"},
            ],
            {
                expr["MuzeroStreamSlotsNearlyFull"]: [
                    {"labels": f'{{pod="r", service="{name_of("replay")}"}}', "value": 0.9375}
                ],
                expr["MuzeroStreamsRefused"]: [{"labels": f'{{service="{name_of("replay")}"}}', "value": 1 / 60}],
            },
        ),
    ]
    (tmp_path / "tests.yaml").write_text(
        yaml.safe_dump({"rule_files": ["rules.yaml"], "evaluation_interval": "1m", "tests": tests})
    )
    result = subprocess.run(
        [tool("promtool"), "test", "rules", "tests.yaml"], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_one_dashboard_config_map_per_json_file():
    files = sorted((CHART / "dashboards").glob("*.json"))
    rendered = Rendered(render())
    maps = [m for m in rendered.all("ConfigMap") if m["metadata"]["labels"].get("grafana_dashboard") == "1"]
    assert len(maps) == len(files)
    contents = {key: value for m in maps for key, value in m["data"].items()}
    assert all(len(m["data"]) == 1 for m in maps), "one dashboard per ConfigMap"
    for path in files:
        assert json.loads(contents[path.name]) == json.loads(path.read_text()), path.name
    off = Rendered(render("--set", "grafana.dashboards.enabled=false"))
    assert not [m for m in off.all("ConfigMap") if "grafana_dashboard" in m["metadata"]["labels"]]


def test_notes_tell_how_to_port_forward_and_pull_a_checkpoint():
    result = subprocess.run(
        [tool("helm"), "install", RELEASE, str(CHART), "--dry-run=client", "--namespace", NAMESPACE],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    notes = result.stdout.split("NOTES:", 1)[1]
    assert f"kubectl port-forward -n {NAMESPACE} svc/{name_of('learner')} 50052:50052" in notes
    assert "muzero checkpoint pull --server 127.0.0.1:50052 --out ./checkpoints" in notes
    assert f"helm test {RELEASE}" in notes


# --- TLS and tokens -------------------------------------------------------------------------------


def test_tls_and_tokens_reach_every_service_and_the_probes_the_plaintext_health_port():
    from muzero.transport.security import parse_tokens

    rendered = Rendered(render(*VALUE_SETS["tls-and-tokens"]))
    plain = Rendered(render())
    certificate = rendered.get("Certificate", f"{RELEASE}-muzero-tls")
    dns_names = set(certificate["spec"]["dnsNames"])
    assert {"server auth", "client auth"} <= set(certificate["spec"]["usages"])
    tokens_secret = f"{RELEASE}-muzero-tokens"
    tokens = parse_tokens(rendered.secret_value(tokens_secret, "tokens"))
    assert {t.name for t in tokens} == {"services", "ci-puller"}
    services_token = next(t for t in tokens if t.name == "services")
    assert services_token.methods is None and services_token.secret.decode() == "s3rvices-0123456789abcdef"
    assert rendered.secret_value(tokens_secret, "token") == "s3rvices-0123456789abcdef"
    for component in SERVICES:
        container = rendered.container(component)
        pod = rendered.component("Deployment", component)["spec"]["template"]["spec"]
        env = env_values(container, rendered)
        mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert volumes["tls"]["secret"]["secretName"] == certificate["spec"]["secretName"]
        for var in ("MUZERO_TLS_CERT", "MUZERO_TLS_KEY", "MUZERO_TLS_CA", "MUZERO_TLS_CLIENT_CA"):
            assert env[var].startswith(mounts["tls"] + "/"), (component, var)
        assert env["MUZERO_TOKENS_FILE"] == mounts["auth"] + "/tokens"
        assert volumes["auth"]["secret"]["secretName"] == tokens_secret
        assert env["MUZERO_TOKEN"] == services_token.secret.decode()
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert int(env["MUZERO_PROBE_PORT"]) == ports["probe"]
        plain_probe = plain.container(component)["readinessProbe"]["grpc"]
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            if probe in container:
                assert container[probe]["grpc"] == {"port": ports["probe"], "service": plain_probe["service"]}
        for name, value in env.items():  # every address a service dials is a name on the certificate
            if name.endswith("_ADDR"):
                assert value.rsplit(":", 1)[0] in dns_names, (component, name, value)
    assert plain.all("NetworkPolicy") == rendered.all("NetworkPolicy")
    assert not plain.all("Certificate") and not any(s["metadata"]["name"] == tokens_secret for s in plain.all("Secret"))
