"""A resolved config as MLflow params: dotted keys, string values, credentials redacted."""

import re
from collections.abc import Mapping
from typing import Any

# user:password@ in a URI, and values of keys that name a secret.
_URI_CREDENTIALS = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]+@")
_SECRET_KEY = re.compile(r"(password|passwd|secret|token|api_key|apikey)", re.IGNORECASE)
REDACTED = "***"


def redact(text: str) -> str:
    """Hide `user:pass@` credentials in any URI inside `text`."""
    return _URI_CREDENTIALS.sub(rf"\g<scheme>{REDACTED}@", text)


def redact_config(node: Any, key: str = "") -> Any:
    """A copy of a plain (container) config with credentials in URIs and secret-named keys redacted."""
    if isinstance(node, Mapping):
        return {k: redact_config(v, str(k)) for k, v in node.items()}
    if isinstance(node, list):
        return [redact_config(v, key) for v in node]
    if isinstance(node, str):
        return REDACTED if _SECRET_KEY.search(key) else redact(node)
    return node


def leaves(node: Any, prefix: str = "") -> dict[str, Any]:
    """{"model": {"hidden_size": 64}} -> {"model.hidden_size": 64}; lists stay one value."""
    if isinstance(node, Mapping):
        flat: dict[str, Any] = {}
        for k, v in node.items():
            flat.update(leaves(v, f"{prefix}{k}."))
        return flat
    return {prefix.rstrip("."): node}


def flatten(node: Any) -> dict[str, str]:
    """The leaves as MLflow params: {"model": {"hidden_size": 64}} -> {"model.hidden_size": "64"}."""
    return {key: str(value) for key, value in leaves(node).items()}
