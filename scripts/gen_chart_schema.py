"""Write helm/muzero/values.schema.json: the JSON schema Helm checks values against at install.

The experiment section is derived from the typed config (muzero/config.py), so a wrong key
or type in `experiment.config` fails at `helm install` with its path, as it would at a
service's start. The rest describes the chart's own values. tests/test_helm.py fails when the
file and this script disagree:  .venv/bin/python scripts/gen_chart_schema.py
"""

from __future__ import annotations

import dataclasses
import json
import sys
import typing
from pathlib import Path
from typing import Any, Literal

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from muzero.config import ExperimentConfig, preset_names  # noqa: E402

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "helm" / "muzero" / "values.schema.json"


# --- the experiment config, from the dataclasses --------------------------------------------


def _type_schema(annotation: Any) -> dict:
    origin = typing.get_origin(annotation)
    if origin is Literal:
        return {"enum": list(typing.get_args(annotation))}
    if origin is list:
        (item,) = typing.get_args(annotation)
        return {"type": "array", "items": _type_schema(item)}
    if dataclasses.is_dataclass(annotation):
        return config_section_schema(annotation)
    simple = {int: "integer", float: "number", str: "string", bool: "boolean"}
    if annotation in simple:
        return {"type": simple[annotation]}
    raise TypeError(f"no JSON schema for config annotation {annotation!r}")


def config_section_schema(cls: type) -> dict:
    hints = typing.get_type_hints(cls)
    return {
        "type": "object",
        "additionalProperties": False,
        "properties": {f.name: _type_schema(hints[f.name]) for f in dataclasses.fields(cls)},
    }


def experiment_config_schema() -> dict:
    schema = config_section_schema(ExperimentConfig)
    schema["description"] = "The experiment config (muzero/config.py); keys left out take the code's defaults."
    return schema


def config_keys(cls: type = ExperimentConfig, prefix: str = "") -> list[str]:
    """Every key path of the config: name, env.id, env.num_envs, ..."""
    keys = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            keys += config_keys(hints[f.name], f"{prefix}{f.name}.")
        else:
            keys.append(prefix + f.name)
    return keys


def override_schema() -> dict:
    """A `key.path=value` override of a key the config has; no ';' (MUZERO_SET's separator)."""
    keys = "|".join(key.replace(".", "\\.") for key in config_keys())
    return {
        "type": "string",
        "pattern": f"^({keys})=[^;]+$",
        "description": "key.path=value with a key of muzero/config.py and a TOML value, e.g. search.num_simulations=50",
    }


# --- the chart's own values -----------------------------------------------------------------

STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
OBJECTS = {"type": "array", "items": {"type": "object"}}
PORT = {"type": "integer", "minimum": 1, "maximum": 65535}
DURATION = {
    "type": "string",
    "pattern": "^([0-9]+(ms|s|m|h|d|w|y))+$",
    "description": "a Prometheus duration, e.g. 30s, 5m, 1h30m",
}
QUANTITY = {
    "anyOf": [
        {"type": "string", "pattern": "^[0-9]+(\\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$"},
        {"type": "number", "minimum": 0},
    ]
}
RESOURCES = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "requests": {"type": "object", "additionalProperties": QUANTITY},
        "limits": {"type": "object", "additionalProperties": QUANTITY},
    },
}
PROBE = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        key: {"type": "integer", "minimum": 0 if key == "initialDelaySeconds" else 1}
        for key in ("initialDelaySeconds", "periodSeconds", "timeoutSeconds", "failureThreshold")
    },
}
ENV_LIST = {
    "type": "array",
    "items": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string", "minLength": 1}}},
}
VOLUMES = {"type": "array", "items": {"type": "object", "required": ["name"]}}
VOLUME_MOUNTS = {"type": "array", "items": {"type": "object", "required": ["name", "mountPath"]}}
GPU = {
    "type": "object",
    "additionalProperties": False,
    "required": ["enabled"],
    "properties": {
        "enabled": {"type": "boolean"},
        "count": {"type": "integer", "minimum": 1},
        "resourceName": {"type": "string", "minLength": 1},
    },
}
IMAGE_OVERRIDE = {
    "type": "object",
    "additionalProperties": False,
    "properties": {"repository": {"type": "string"}, "tag": {"type": "string"}},
}
SERVICE = {
    "type": "object",
    "additionalProperties": False,
    "properties": {"type": {"enum": ["ClusterIP", "NodePort", "LoadBalancer"]}, "annotations": STRING_MAP},
}
PERSISTENCE = {
    "enabled": {"type": "boolean"},
    "size": {"type": "string", "pattern": "^[0-9]+(\\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$"},
    "storageClass": {"type": "string"},
    "accessModes": {
        "type": "array",
        "minItems": 1,
        "items": {"enum": ["ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod"]},
    },
}
POSITIVE = {"type": "number", "exclusiveMinimum": 0}


def pod_settings() -> dict:
    """What every component's pods take (the KubeRay-style knobs)."""
    return {
        "resources": RESOURCES,
        "nodeSelector": STRING_MAP,
        "tolerations": OBJECTS,
        "affinity": {"type": "object"},
        "topologySpreadConstraints": OBJECTS,
        "priorityClassName": {"type": "string"},
        "podAnnotations": STRING_MAP,
        "podLabels": STRING_MAP,
        "extraEnv": ENV_LIST,
        "extraEnvFrom": OBJECTS,
        "extraVolumes": VOLUMES,
        "extraVolumeMounts": VOLUME_MOUNTS,
    }


def muzero_component(**own: dict) -> dict:
    properties = {
        **pod_settings(),
        "image": IMAGE_OVERRIDE,
        "readinessProbe": PROBE,
        "livenessProbe": PROBE,
        "terminationGracePeriodSeconds": {"type": "integer", "minimum": 0},
        **own,
    }
    return {"type": "object", "additionalProperties": False, "properties": properties}


SERVICE_SETTINGS = {
    "torchThreads": {"type": "integer", "minimum": 0},
    "configOverrides": {"type": "array", "items": override_schema()},
    "startupProbe": PROBE,
}


def chart_schema() -> dict:
    properties = {
        "nameOverride": {"type": "string"},
        "fullnameOverride": {"type": "string"},
        "clusterDomain": {"type": "string", "minLength": 1},
        "image": {
            "type": "object",
            "additionalProperties": False,
            "required": ["repository"],
            "properties": {
                "repository": {"type": "string", "minLength": 1},
                "tag": {"type": "string"},
                "gpuTag": {"type": "string"},
                "pullPolicy": {"enum": ["Always", "IfNotPresent", "Never"]},
            },
        },
        "imagePullSecrets": {"type": "array", "items": {"type": "object", "required": ["name"]}},
        "experiment": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "preset": {"enum": ["", *preset_names()], "description": "a preset bundled in the image"},
                "config": experiment_config_schema(),
                "overrides": {"type": "array", "items": override_schema()},
            },
        },
        "logLevel": {"enum": ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]},
        "metricsPort": PORT,
        "podSecurityContext": {"type": "object"},
        "containerSecurityContext": {"type": "object"},
        "tmpVolume": {"type": "object", "additionalProperties": False, "properties": {"sizeLimit": QUANTITY}},
        "redis": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                **pod_settings(),
                "shards": {"type": "integer", "minimum": 1},
                "image": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "repository": {"type": "string", "minLength": 1},
                        "tag": {"type": "string", "minLength": 1},
                        "pullPolicy": {"enum": ["Always", "IfNotPresent", "Never"]},
                    },
                },
                "port": PORT,
                "maxmemory": {
                    "type": "string",
                    "pattern": "^[0-9]+(b|k|kb|m|mb|g|gb)?$",
                    "description": "Redis maxmemory, e.g. 2gb",
                },
                "auth": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "existingSecret": {"type": "string"},
                        "existingSecretKey": {"type": "string", "minLength": 1},
                        "password": {"type": "string"},
                    },
                },
                "persistence": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {**PERSISTENCE, "appendfsync": {"enum": ["always", "everysec", "no"]}},
                },
                "podSecurityContext": {"type": "object"},
            },
        },
        "replay": muzero_component(
            replicas={"type": "integer", "minimum": 1}, grpcPort=PORT, service=SERVICE, **SERVICE_SETTINGS
        ),
        "learner": muzero_component(
            grpcPort=PORT,
            service=SERVICE,
            gpu=GPU,
            **SERVICE_SETTINGS,
            keepCheckpoints={"type": "integer", "minimum": 1},
            prefetch={"type": "integer", "minimum": 1},
            sampleStreams={"type": "integer", "minimum": 1},
            maxSteps={"type": "integer", "minimum": 0},
            runDir={"type": "string", "pattern": "^/"},
            persistence={
                "type": "object",
                "additionalProperties": False,
                "properties": {**PERSISTENCE, "existingClaim": {"type": "string"}, "keep": {"type": "boolean"}},
            },
        ),
        "actor": muzero_component(
            replicas={"type": "integer", "minimum": 1},
            healthPort=PORT,
            gpu=GPU,
            maxInflight={"type": "integer", "minimum": 1},
            **SERVICE_SETTINGS,
        ),
        "reanalyze": muzero_component(
            replicas={"type": "integer", "minimum": 0}, healthPort=PORT, gpu=GPU, **SERVICE_SETTINGS
        ),
        "autoscaler": muzero_component(
            enabled={"type": "boolean"},
            minActors={"type": "integer", "minimum": 0},
            maxActors={"type": "integer", "minimum": 1},
            samplesPerInsertLow=POSITIVE,
            samplesPerInsertHigh=POSITIVE,
            intervalSeconds={"type": "integer", "minimum": 1},
        ),
        "networkPolicy": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"enabled": {"type": "boolean"}, "metricsFrom": OBJECTS},
        },
        "grpc": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "maxStreams": {"type": "integer", "minimum": 1},
                "unaryWorkers": {"type": "integer", "minimum": 1},
                "streamIdleSeconds": POSITIVE,
                "probePort": PORT,
            },
        },
        "tls": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "enabled": {"type": "boolean"},
                "secretName": {"type": "string"},
                "requireClientCerts": {"type": "boolean"},
                "extraDnsNames": {"type": "array", "items": {"type": "string", "minLength": 1}},
                "certManager": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "enabled": {"type": "boolean"},
                        "issuerRef": {
                            "type": "object",
                            "additionalProperties": False,
                            "properties": {
                                "name": {"type": "string"},
                                "kind": {"enum": ["Issuer", "ClusterIssuer"]},
                                "group": {"type": "string"},
                            },
                        },
                        "duration": {"type": "string", "pattern": "^([0-9]+(h|m|s))+$"},
                        "renewBefore": {"type": "string", "pattern": "^([0-9]+(h|m|s))+$"},
                    },
                },
            },
        },
        "auth": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "enabled": {"type": "boolean"},
                "existingSecret": {"type": "string"},
                "serviceToken": {"type": "string", "pattern": "^$|^[^\\s]{16,}$"},
                "tokens": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["name", "scope", "token"],
                        "properties": {
                            "name": {"type": "string", "pattern": "^[^\\s]+$"},
                            "scope": {"type": "string", "pattern": "^[^\\s]+$"},
                            "token": {"type": "string", "pattern": "^[^\\s]{16,}$"},
                        },
                    },
                },
            },
        },
        "metrics": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "serviceMonitor": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "enabled": {"type": "boolean"},
                        "interval": DURATION,
                        "scrapeTimeout": DURATION,
                        "labels": STRING_MAP,
                    },
                },
                "prometheusRule": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "enabled": {"type": "boolean"},
                        "labels": STRING_MAP,
                        "absentFor": DURATION,
                        "samplesPerInsert": {
                            "type": "object",
                            "additionalProperties": False,
                            "properties": {
                                "low": POSITIVE,
                                "high": POSITIVE,
                                "window": DURATION,
                                "for": DURATION,
                                "minStoredTransitions": {"type": "integer", "minimum": 0},
                            },
                        },
                        "checkpointLagSeconds": {"type": "number", "exclusiveMinimum": 0},
                        "checkpointStaleSeconds": {"type": "number", "exclusiveMinimum": 0},
                    },
                },
            },
        },
        "grafana": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "dashboards": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "enabled": {"type": "boolean"},
                        "labels": STRING_MAP,
                        "annotations": STRING_MAP,
                        "namespace": {"type": "string"},
                    },
                }
            },
        },
        "tests": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"timeoutSeconds": {"type": "integer", "minimum": 1}},
        },
    }
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "muzero chart values",
        "description": "Generated by scripts/gen_chart_schema.py; edit that script, not this file.",
        "type": "object",
        "additionalProperties": False,
        "properties": properties,
    }


def render() -> str:
    return json.dumps(chart_schema(), indent=2) + "\n"


if __name__ == "__main__":
    SCHEMA_PATH.write_text(render())
    print(f"wrote {SCHEMA_PATH}")
