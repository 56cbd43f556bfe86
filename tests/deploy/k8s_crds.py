"""Schemas of the custom resources deploy/k8s uses, for what kubernetes-validate cannot check.

kubernetes-validate knows the built-in kinds only: for a ServiceMonitor or an Istio
resource it prints ``Couldn't find schema`` and passes. These JSON schemas hold the
fields of those CRDs (Prometheus Operator monitoring.coreos.com/v1, Istio
networking.istio.io/v1 and security.istio.io/v1) that our manifests may use, with their
types, enums and required fields; an unknown field (a typo the API server would drop or
refuse) fails, like kubernetes-validate --strict does for built-in kinds.
"""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]

# Istio and the Prometheus Operator write durations as Go/protobuf durations: "10s", "1.5s", "2m".
_DURATION: Schema = {"type": "string", "pattern": r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"}
_LABELS: Schema = {"type": "object", "additionalProperties": {"type": "string"}}


def _closed(properties: dict[str, Schema], required: tuple[str, ...] = ()) -> Schema:
    """An object with exactly these properties (some required), nothing else."""
    return {
        "type": "object",
        "properties": properties,
        "required": list(required),
        "additionalProperties": False,
    }


_METADATA = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"},
        "namespace": {"type": "string"},
        "labels": _LABELS,
        "annotations": _LABELS,
    },
}

_LABEL_SELECTOR = _closed(
    {
        "matchLabels": _LABELS,
        "matchExpressions": {
            "type": "array",
            "items": _closed(
                {
                    "key": {"type": "string"},
                    "operator": {"enum": ["In", "NotIn", "Exists", "DoesNotExist"]},
                    "values": {"type": "array", "items": {"type": "string"}},
                },
                ("key", "operator"),
            ),
        },
    }
)

_SERVICE_MONITOR_ENDPOINT = _closed(
    {
        "port": {"type": "string"},
        "targetPort": {"type": ["string", "integer"]},
        "path": {"type": "string", "pattern": "^/"},
        "scheme": {"enum": ["http", "https"]},
        "interval": _DURATION,
        "scrapeTimeout": _DURATION,
        "honorLabels": {"type": "boolean"},
        "honorTimestamps": {"type": "boolean"},
        "relabelings": {"type": "array", "items": {"type": "object"}},
        "metricRelabelings": {"type": "array", "items": {"type": "object"}},
    }
)

_SERVICE_MONITOR_SPEC = _closed(
    {
        "jobLabel": {"type": "string"},
        "targetLabels": {"type": "array", "items": {"type": "string"}},
        "podTargetLabels": {"type": "array", "items": {"type": "string"}},
        "selector": _LABEL_SELECTOR,
        "namespaceSelector": _closed(
            {
                "any": {"type": "boolean"},
                "matchNames": {"type": "array", "items": {"type": "string"}},
            }
        ),
        "endpoints": {"type": "array", "minItems": 1, "items": _SERVICE_MONITOR_ENDPOINT},
        "sampleLimit": {"type": "integer", "minimum": 0},
    },
    ("selector", "endpoints"),
)

_STRING_MATCH = {
    "type": "object",
    "minProperties": 1,
    "maxProperties": 1,
    "properties": {
        "exact": {"type": "string"},
        "prefix": {"type": "string"},
        "regex": {"type": "string"},
    },
    "additionalProperties": False,
}

_HTTP_ROUTE = _closed(
    {
        "name": {"type": "string"},
        "match": {
            "type": "array",
            "items": _closed(
                {
                    "name": {"type": "string"},
                    "uri": _STRING_MATCH,
                    "method": _STRING_MATCH,
                    "headers": {"type": "object", "additionalProperties": _STRING_MATCH},
                }
            ),
        },
        "route": {
            "type": "array",
            "minItems": 1,
            "items": _closed(
                {
                    "destination": _closed(
                        {
                            "host": {"type": "string"},
                            "subset": {"type": "string"},
                            "port": _closed({"number": {"type": "integer"}}, ("number",)),
                        },
                        ("host",),
                    ),
                    "weight": {"type": "integer", "minimum": 0, "maximum": 100},
                },
                ("destination",),
            ),
        },
        "timeout": _DURATION,
        "retries": _closed(
            {
                "attempts": {"type": "integer", "minimum": 0},
                "perTryTimeout": _DURATION,
                "retryOn": {"type": "string", "pattern": r"^[a-z0-9-]+(,[a-z0-9-]+)*$"},
                "retryRemoteLocalities": {"type": "boolean"},
            },
            ("attempts",),
        ),
    },
    ("route",),
)

_VIRTUAL_SERVICE_SPEC = _closed(
    {
        "hosts": {"type": "array", "minItems": 1, "items": {"type": "string"}},
        "gateways": {"type": "array", "items": {"type": "string"}},
        "exportTo": {"type": "array", "items": {"type": "string"}},
        "http": {"type": "array", "minItems": 1, "items": _HTTP_ROUTE},
    },
    ("hosts",),
)

_DESTINATION_RULE_SPEC = _closed(
    {
        "host": {"type": "string"},
        "exportTo": {"type": "array", "items": {"type": "string"}},
        "trafficPolicy": _closed(
            {
                "tls": _closed(
                    {"mode": {"enum": ["DISABLE", "SIMPLE", "MUTUAL", "ISTIO_MUTUAL"]}}, ("mode",)
                ),
                "loadBalancer": _closed(
                    {
                        "simple": {
                            "enum": [
                                "UNSPECIFIED",
                                "RANDOM",
                                "PASSTHROUGH",
                                "ROUND_ROBIN",
                                "LEAST_REQUEST",
                            ]
                        }
                    }
                ),
                "connectionPool": _closed(
                    {
                        "tcp": _closed(
                            {
                                "maxConnections": {"type": "integer", "minimum": 1},
                                "connectTimeout": _DURATION,
                                "maxConnectionDuration": _DURATION,
                                "idleTimeout": _DURATION,
                            }
                        ),
                        "http": _closed(
                            {
                                "http1MaxPendingRequests": {"type": "integer", "minimum": 0},
                                "http2MaxRequests": {"type": "integer", "minimum": 1},
                                "maxRequestsPerConnection": {"type": "integer", "minimum": 0},
                                "maxRetries": {"type": "integer", "minimum": 0},
                                "idleTimeout": _DURATION,
                                "maxConcurrentStreams": {"type": "integer", "minimum": 1},
                            }
                        ),
                    }
                ),
                "outlierDetection": _closed(
                    {
                        "consecutiveGatewayErrors": {"type": "integer", "minimum": 0},
                        "consecutive5xxErrors": {"type": "integer", "minimum": 0},
                        "interval": _DURATION,
                        "baseEjectionTime": _DURATION,
                        "maxEjectionPercent": {"type": "integer", "minimum": 0, "maximum": 100},
                        "minHealthPercent": {"type": "integer", "minimum": 0, "maximum": 100},
                    }
                ),
            }
        ),
    },
    ("host",),
)

_MTLS = _closed({"mode": {"enum": ["UNSET", "DISABLE", "PERMISSIVE", "STRICT"]}}, ("mode",))

_PEER_AUTHENTICATION_SPEC = _closed(
    {
        "selector": _closed({"matchLabels": _LABELS}, ("matchLabels",)),
        "mtls": _MTLS,
        # Keys are port numbers; as strings, since YAML-to-JSON tools need string keys.
        "portLevelMtls": {
            "type": "object",
            "propertyNames": {"pattern": "^[1-9][0-9]{0,4}$"},
            "additionalProperties": _MTLS,
        },
    }
)


def _resource(api_version: str, kind: str, spec: Schema) -> Schema:
    return {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": api_version},
            "kind": {"const": kind},
            "metadata": _METADATA,
            "spec": spec,
        },
        "additionalProperties": False,
    }


SCHEMAS: dict[tuple[str, str], Schema] = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): _resource(
        "monitoring.coreos.com/v1", "ServiceMonitor", _SERVICE_MONITOR_SPEC
    ),
    ("networking.istio.io/v1", "VirtualService"): _resource(
        "networking.istio.io/v1", "VirtualService", _VIRTUAL_SERVICE_SPEC
    ),
    ("networking.istio.io/v1", "DestinationRule"): _resource(
        "networking.istio.io/v1", "DestinationRule", _DESTINATION_RULE_SPEC
    ),
    ("security.istio.io/v1", "PeerAuthentication"): _resource(
        "security.istio.io/v1", "PeerAuthentication", _PEER_AUTHENTICATION_SPEC
    ),
}
"""The custom resources the manifests may contain, by (apiVersion, kind)."""
