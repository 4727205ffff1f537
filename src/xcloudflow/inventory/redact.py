"""Redaction of sensitive values before anything reaches the inventory tables. Pure functions.

Replaced by a marker `(sensitive:<hmac>)`: values Terraform lists in `sensitive_attributes`, Pulumi
secret objects (the 4dabf18193072939515e22adb298388d signature) and values under keys that look
secret. The marker carries a keyed HMAC (per-organization salt) of the value, so a changed secret
still shows as a changed field, and the same secret is recognisable, without the value being
recoverable from the database.

Terraform marks where a secret went in, not every place it comes out: `terraform_data.output` copies a
sensitive `input` unmarked, a provider echoes a password into a connection string. So every secret
found that way (in the instance, and the marked values and sensitive outputs of the whole state:
`KnownSecrets`) is also looked for in the other values, as the agent's log masking does: a value equal
to a secret, or a string containing one, is redacted whole. Short secrets are only matched by
equality (at least `MIN_EQUAL_CHARS`), and only long ones inside text (`MIN_CONTAINED_CHARS`), so a
sensitive "true" or "1" does not blank every flag of the state.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Iterable, Iterator
from typing import Any

from xcloudflow.formats import PULUMI_SECRET_SIG

MARKER_PREFIX = "(sensitive:"
SECRET_KEY = re.compile(
    r"(password|passwd|passphrase|secret|token|private_?key|api_?key|access_?key|client_?secret|"
    r"credential|connection_?string|auth_?key|sas_?key|certificate_?key|kubeconfig|ssh_?key)",
    re.IGNORECASE,
)
# Keys that contain a secret word but hold no secret.
_NOT_SECRET = re.compile(r"(_arn|_id|_name|_version|_length|_enabled|_policy|_type|_expires?|_at)$", re.I)


def canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str).encode()


def marker(value: Any, *, salt: bytes) -> str:
    return MARKER_PREFIX + hmac.new(salt, canonical(value), hashlib.sha256).hexdigest()[:16] + ")"


MIN_EQUAL_CHARS = 4  # as the agent's masker: shorter secrets ("1", "no") are not looked for elsewhere
MIN_CONTAINED_CHARS = 8  # a secret this long is also looked for inside other strings


def _text(value: Any) -> str | None:
    """The text a scalar is compared by (numbers too: a sensitive port 5432); None for what never is."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return json.dumps(value)
    return None


def scalars(value: Any) -> Iterator[str]:
    """The comparable texts of every scalar in a JSON value; of a dynamic value as Terraform stores it
    (`{"value": ..., "type": ...}`, e.g. terraform_data's input) only the value, not its type name."""
    if isinstance(value, dict):
        if value.keys() == {"value", "type"}:
            yield from scalars(value["value"])
            return
        for v in value.values():
            yield from scalars(v)
    elif isinstance(value, list):
        for v in value:
            yield from scalars(v)
    else:
        text = _text(value)
        if text is not None and len(text) >= MIN_EQUAL_CHARS and not text.startswith(MARKER_PREFIX):
            yield text


class KnownSecrets:
    """Secret values already found, to be redacted wherever else they appear (see the module doc)."""

    def __init__(self, values: Iterable[str] = ()) -> None:
        self.values = frozenset(v for v in values if len(v) >= MIN_EQUAL_CHARS)
        long = sorted((v for v in self.values if len(v) >= MIN_CONTAINED_CHARS), key=len, reverse=True)
        self._inside = re.compile("|".join(map(re.escape, long))) if long else None

    def __bool__(self) -> bool:
        return bool(self.values)

    def matches(self, value: Any) -> bool:
        text = _text(value)
        if text is None or text.startswith(MARKER_PREFIX):
            return False
        if text in self.values:
            return True
        return isinstance(value, str) and self._inside is not None and self._inside.search(value) is not None

    def digest(self, *, salt: bytes) -> bytes:
        """A keyed digest of the set (empty for no secret): folded into the unchanged-resource check, so
        a secret appearing elsewhere in the state re-redacts resources that carry it."""
        if not self.values:
            return b""
        return hmac.new(salt, canonical(sorted(self.values)), hashlib.sha256).digest()


def _pulumi_plaintext(value: dict[str, Any]) -> Any:
    plain = value.get("plaintext")
    if isinstance(plain, str):
        try:
            return json.loads(plain)  # Pulumi stores the secret's JSON text
        except ValueError:
            return plain
    return plain


def _walk(value: Any, salt: bytes, found: list[str], secret: bool = False) -> Any:
    """Redact secret scalars; inside a container under a secret-looking key, every scalar is secret
    except those whose own key says it is an id, name, ARN, flag or similar. What is redacted goes to
    `found` (to be looked for elsewhere)."""
    if isinstance(value, dict):
        if PULUMI_SECRET_SIG in value:
            found.extend(scalars(_pulumi_plaintext(value)))
            return marker(value.get("plaintext", value.get("ciphertext", value)), salt=salt)
        out = {}
        for k, v in value.items():
            key = str(k)
            if _NOT_SECRET.search(key):
                out[k] = _walk(v, salt, found, False)
            else:
                out[k] = _walk(v, salt, found, secret or bool(SECRET_KEY.search(key)))
        return out
    if isinstance(value, list):
        return [_walk(v, salt, found, secret) for v in value]
    if secret and value not in (None, "") and not isinstance(value, bool):
        found.extend(scalars(value))
        return marker(value, salt=salt)
    return value


def value_at(doc: Any, path: list[str | int]) -> Any:
    """The value at a Terraform sensitive path (None where the path leads nowhere)."""
    for step in path:
        try:
            doc = doc[step]
        except (KeyError, IndexError, TypeError):
            return None
    return doc


def _redact_equal(value: Any, known: KnownSecrets, salt: bytes) -> Any:
    if isinstance(value, dict):
        return {k: _redact_equal(v, known, salt) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact_equal(v, known, salt) for v in value]
    return marker(value, salt=salt) if known.matches(value) else value


def _redact_path(doc: Any, path: list[str | int], salt: bytes) -> None:
    parent = doc
    for step in path[:-1]:
        try:
            parent = parent[step]
        except (KeyError, IndexError, TypeError):
            return
    last = path[-1]
    try:
        current = parent[last]
    except (KeyError, IndexError, TypeError):
        return
    if current is not None and not (isinstance(current, str) and current.startswith(MARKER_PREFIX)):
        parent[last] = marker(current, salt=salt)


def redact(
    attrs: dict[str, Any],
    *,
    salt: bytes,
    sensitive_paths: list[list[str | int]] | None = None,
    known: KnownSecrets | None = None,
) -> dict[str, Any]:
    """A redacted copy of `attrs` (the walk builds new containers; the input is left alone): what is
    marked or looks secret, then every value equal to (or containing) a secret of this instance or one
    of `known` (the state's)."""
    found: list[str] = []
    for path in sensitive_paths or []:
        found.extend(scalars(value_at(attrs, path)))
    result = _walk(attrs, salt, found)
    assert isinstance(result, dict)
    for path in sensitive_paths or []:
        _redact_path(result, path, salt)
    # The state's set is reused as is when the instance adds nothing to it (the usual case: its marked
    # values are the state's), so its pattern is compiled once per version, not once per resource.
    own = {v for v in found if len(v) >= MIN_EQUAL_CHARS}
    if known is not None and own <= known.values:
        secrets = known
    else:
        secrets = KnownSecrets(own | (known.values if known is not None else frozenset()))
    if secrets:
        equal = _redact_equal(result, secrets, salt)
        assert isinstance(equal, dict)
        return equal
    return result


def attrs_hash(redacted: Any, *, salt: bytes) -> str:
    return hmac.new(salt, canonical(redacted), hashlib.sha256).hexdigest()


def keyed_hash(data: bytes, *, salt: bytes) -> str:
    """A keyed digest (BLAKE2b in keyed mode is a MAC, computed in one C call: this runs once per
    resource per version)."""
    return hashlib.blake2b(data, key=salt[:64], digest_size=32).hexdigest()
