"""Artifact signing (`ml_batch.model.signing`): what the HMAC covers, and which check refuses which bytes."""

from __future__ import annotations

import hashlib
import secrets

import pytest

from ml_batch.errors import ArtifactIntegrityError
from ml_batch.model.signing import key_id, sign, verify_artifact

ARTIFACT = b"joblib bytes of a pipeline"


@pytest.fixture()
def key(monkeypatch: pytest.MonkeyPatch) -> bytes:
    value = secrets.token_hex(32)
    monkeypatch.setenv("ML_BATCH_ARTIFACT_KEY", value)
    return value.encode()


def _verify(key: bytes, artifact: bytes = ARTIFACT, *, version: int = 3, signed_as: int = 3,
            signed_with: bytes | None = None) -> None:
    signer = signed_with or key
    return verify_artifact("toy", version, artifact, hashlib.sha256(artifact).hexdigest(),
                           sign(signer, "toy", signed_as, artifact), key_id(signer))


def test_a_signed_artifact_verifies(key: bytes) -> None:
    assert _verify(key) is None  # verified: no ArtifactIntegrityError


def test_the_signature_covers_the_model_and_version_not_only_the_bytes(key: bytes) -> None:
    assert sign(key, "toy", 3, ARTIFACT) != sign(key, "toy", 2, ARTIFACT) != sign(key, "other", 3, ARTIFACT)
    with pytest.raises(ArtifactIntegrityError, match=r"model 'toy' version 2: artifact HMAC-SHA256 is [0-9a-f]{64}, "
                                                     r"expected [0-9a-f]{64} as signed at registration"):
        _verify(key, version=2, signed_as=3)  # version 3's signed bytes moved to version 2


def test_changed_bytes_fail_the_sha256_first(key: bytes) -> None:
    with pytest.raises(ArtifactIntegrityError, match=r"artifact sha256 is [0-9a-f]{64}, expected [0-9a-f]{64} as "
                                                     "registered"):
        verify_artifact("toy", 3, ARTIFACT + b"\0", hashlib.sha256(ARTIFACT).hexdigest(),
                        sign(key, "toy", 3, ARTIFACT), key_id(key))


def test_an_unsigned_version_is_refused(key: bytes) -> None:
    with pytest.raises(ArtifactIntegrityError, match="model 'toy' version 3 has no HMAC"):
        verify_artifact("toy", 3, ARTIFACT, hashlib.sha256(ARTIFACT).hexdigest(), None, None)


def test_another_key_is_named_as_a_key_mismatch_not_a_substitution(key: bytes) -> None:
    other = secrets.token_hex(32).encode()
    with pytest.raises(ArtifactIntegrityError, match=rf"signed with key {key_id(other)}, but this process has key "
                                                     rf"{key_id(key)} \(ML_BATCH_ARTIFACT_KEY"):
        _verify(key, signed_with=other)


def test_the_key_id_names_a_key_without_revealing_it(key: bytes) -> None:
    assert len(key_id(key)) == 16 and key_id(key) == key_id(key) != key_id(key + b"x")
    assert key_id(key) not in key.hex() and key_id(key) not in key.decode()
