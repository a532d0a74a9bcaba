"""Artifact signing: an HMAC-SHA256 of (model, version, bytes) with a key the database does not hold.

Each registered artifact is signed with a secret that is not in the database (`ml_batch.config.artifact_key`).
Whoever can write the registry tables can replace the bytes and their sha256 together, but cannot compute the
HMAC, so a substituted pickle is refused before it is unpickled (unpickling is what would run its code).

`verify_artifact` checks, in this order and before anything is unpickled: the sha256 (corruption), that the
version is signed at all (versions registered before migration 0004 are not: nothing can vouch for their
bytes), then the HMAC, telling a key mismatch (another process's key) apart from substituted bytes by the
non-secret `key_id` recorded with each signature.

A version's compiled library (`ml_batch.model.compiled`) is executable code, signed with the same key and key id
under its own context string (`sign_library`), so neither signature can stand for the other: `verify_library`
runs the same checks on its bytes before they are loaded (`dlopen` is what would run its code).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable

from ml_batch.config import ARTIFACT_KEY_ENV, artifact_key, default_artifact_key_file
from ml_batch.errors import ArtifactIntegrityError

_HMAC_CONTEXT = "ml-batch artifact v1"
_LIBRARY_CONTEXT = "ml-batch compiled library v1"


def sign(key: bytes, model_name: str, version: int, artifact: bytes) -> str:
    """HMAC-SHA256 (hex) of an artifact as version `version` of `model_name`.

    The model and version are part of the signed message, so a signed artifact cannot be moved to another
    version (e.g. an old, worse one put in place of the champion's bytes) without failing the check.

    Args:
        key: The artifact key (`ml_batch.config.artifact_key`).
        model_name: The model the artifact is registered under.
        version: The version number it is registered as.
        artifact: The artifact bytes.

    Returns:
        The hex digest.
    """
    return _mac(_HMAC_CONTEXT, key, model_name, version, artifact)


def sign_library(key: bytes, model_name: str, version: int, library: bytes) -> str:
    """HMAC-SHA256 (hex) of a compiled shared library as version `version` of `model_name`: `sign` under the
    library's own context string, so an artifact's signature never vouches for a library and vice versa."""
    return _mac(_LIBRARY_CONTEXT, key, model_name, version, library)


def _mac(context: str, key: bytes, model_name: str, version: int, payload: bytes) -> str:
    mac = hmac.new(key, digestmod=hashlib.sha256)
    mac.update(json.dumps([context, model_name, version]).encode() + b"\n")
    mac.update(payload)
    return mac.hexdigest()


def key_id(key: bytes) -> str:
    """A short, non-secret name of a key, recorded with each signature so a key mismatch can be told
    apart from a substituted artifact in the error message.

    Args:
        key: The artifact key.

    Returns:
        16 hex characters.
    """
    return hashlib.sha256(b"ml-batch artifact key id\n" + key).hexdigest()[:16]


def verify_artifact(
    model_name: str, version: int, artifact: bytes, sha256: str, signature: str | None, signed_with: str | None
) -> None:
    """Refuse bytes that are not exactly what was registered and signed.

    Args:
        model_name: The model of the version.
        version: Its number.
        artifact: The stored bytes.
        sha256: The sha256 recorded at registration.
        signature: The HMAC recorded at registration (None for versions registered before signing).
        signed_with: The `key_id` of the key that signed it.

    Raises:
        ArtifactIntegrityError: The sha256 or the HMAC does not match, or the version is unsigned.
    """
    what = f"model {model_name!r} version {version}"
    _check_sha256(what, artifact, sha256)
    if signature is None:
        raise ArtifactIntegrityError(
            f"{what} has no HMAC: it was registered before artifacts were signed (migration 0004), so nothing "
            "vouches that its bytes are the ones registered, and unpickling them could run any code; refusing "
            "to load it. Retrain the model ('ml-batch train') or re-register its pipeline from a skops file "
            "('ml-batch models register'), then promote the new version"
        )
    _check_hmac(what, model_name, version, artifact, signature, signed_with)


def verify_library(model_name: str, version: int, library: bytes, sha256: str, signature: str,
                   signed_with: str | None) -> None:
    """Refuse a compiled library that is not exactly what was compiled and signed at registration: its sha256
    (corruption), then its HMAC (`sign_library`; substitution), before anything loads it.

    Raises:
        ArtifactIntegrityError: The sha256 or the HMAC does not match (the library is never loaded).
    """
    what = f"model {model_name!r} version {version} compiled library"
    _check_sha256(what, library, sha256, noun="library", act="load")
    _check_hmac(what, model_name, version, library, signature, signed_with, sign=sign_library, noun="library",
                act="load")


def _check_sha256(what: str, artifact: bytes, sha256: str, *, noun: str = "artifact", act: str = "unpickle") -> None:
    actual = hashlib.sha256(artifact).hexdigest()
    if actual != sha256:
        raise ArtifactIntegrityError(
            f"{what}: {noun} sha256 is {actual}, expected {sha256} as registered; refusing to {act} it "
            "(the stored bytes were changed or corrupted)"
        )


def _check_hmac(what: str, model_name: str, version: int, artifact: bytes, signature: str,
                signed_with: str | None, *, sign: Callable[[bytes, str, int, bytes], str] = sign,
                noun: str = "artifact", act: str = "unpickle") -> None:
    key = artifact_key()
    actual_mac = sign(key, model_name, version, artifact)
    if hmac.compare_digest(actual_mac, signature):
        return
    current = key_id(key)
    if signed_with != current:
        raise ArtifactIntegrityError(
            f"{what} was signed with key {signed_with}, but this process has key {current} ({ARTIFACT_KEY_ENV}, "
            f"or {default_artifact_key_file()} when it is unset); refusing to {act} it. Give every process "
            f"that trains, registers or scores the same {ARTIFACT_KEY_ENV}"
        )
    raise ArtifactIntegrityError(
        f"{what}: {noun} HMAC-SHA256 is {actual_mac}, expected {signature} as signed at registration; refusing "
        f"to {act} it (the {noun} bytes were replaced after registration and their sha256 updated to "
        "match: someone with write access to the registry tables changed them)"
    )
