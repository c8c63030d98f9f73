"""Drives aliasd through Python stubs generated from proto/ by grpcio-tools.

Usage: generated_client.py HOST:PORT  (the stubs must be on PYTHONPATH).
Exits non-zero with a message on the first check that fails.
"""

import sys
import uuid

import grpc
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from aliasd.v1 import (
    algorithms_pb2,
    aliases_pb2,
    aliases_pb2_grpc,
    crypto_pb2,
    crypto_pb2_grpc,
    errors_pb2,
    keys_pb2,
    keys_pb2_grpc,
)


def error_info(error):
    """The google.rpc.ErrorInfo of a failed call, from its
    grpc-status-details-bin trailer (a serialized google.rpc.Status)."""
    details = [v for k, v in error.trailing_metadata() or () if k == "grpc-status-details-bin"]
    assert len(details) == 1, "the error carries google.rpc.Status details"
    for detail in status_pb2.Status.FromString(details[0]).details:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            return info
    raise AssertionError("no ErrorInfo in the error details")


def error_reason(error):
    """The aliasd.v1.ErrorReason of a failed call (a grpc.RpcError):
    ERROR_REASON_UNSPECIFIED for a reason these stubs do not know."""
    status = rpc_status.from_call(error)  # None: the error has no details
    for detail in status.details if status else ():
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info) and info.domain == "aliasd":
            if info.reason in errors_pb2.ErrorReason.keys():
                return errors_pb2.ErrorReason.Value(info.reason)
    return errors_pb2.ERROR_REASON_UNSPECIFIED


def expect_error(call, code, reason):
    """Runs a call that must fail with the gRPC `code` and the
    errors_pb2.ErrorReason `reason`."""
    try:
        call()
    except grpc.RpcError as error:
        assert error.code() == code, (error.code(), error.details())
        info = error_info(error)
        assert info.domain == "aliasd", info
        assert info.reason == errors_pb2.ErrorReason.Name(reason), (info.reason, reason)
        assert info.metadata["kms_exception"].endswith("Exception"), info
        got = error_reason(error)
        assert got == reason, (errors_pb2.ErrorReason.Name(got), info.reason)
        return error
    raise AssertionError(f"expected {code} {errors_pb2.ErrorReason.Name(reason)}, the call succeeded")


def main(address):
    channel = grpc.insecure_channel(address)
    keys = keys_pb2_grpc.KeyServiceStub(channel)
    aliases = aliases_pb2_grpc.AliasServiceStub(channel)

    first = keys.CreateKey(keys_pb2.CreateKeyRequest(description="python")).key
    second = keys.CreateKey(
        keys_pb2.CreateKeyRequest(key_spec=keys_pb2.KEY_SPEC_SYMMETRIC_DEFAULT)
    ).key
    assert first.key_state == keys_pb2.KEY_STATE_ENABLED
    assert first.key_usage == keys_pb2.KEY_USAGE_ENCRYPT_DECRYPT

    request_id = str(uuid.uuid4())
    created = aliases.CreateAlias(
        aliases_pb2.CreateAliasRequest(
            alias_name="alias/py", target_key_id=first.arn, request_id=request_id
        )
    ).alias
    assert created.target_key_id == first.key_id
    replay = aliases.CreateAlias(
        aliases_pb2.CreateAliasRequest(
            alias_name="alias/py", target_key_id=first.arn, request_id=request_id
        )
    ).alias
    assert replay == created

    listed = aliases.ListAliases(aliases_pb2.ListAliasesRequest())
    updated = aliases.UpdateAlias(
        aliases_pb2.UpdateAliasRequest(
            alias_name="alias/py", target_key_id=second.key_id, etag=created.etag
        )
    ).alias
    assert updated.target_key_id == second.key_id and updated.etag != created.etag

    described = keys.DescribeKey(keys_pb2.DescribeKeyRequest(key_id="alias/py")).key
    assert described.key_id == second.key_id

    expect_error(
        lambda: aliases.CreateAlias(
            aliases_pb2.CreateAliasRequest(alias_name="alias/py", target_key_id=first.key_id)
        ),
        grpc.StatusCode.ALREADY_EXISTS,
        errors_pb2.ALIAS_ALREADY_EXISTS,
    )
    expect_error(
        lambda: aliases.DeleteAlias(
            aliases_pb2.DeleteAliasRequest(alias_name="alias/py", etag=created.etag)
        ),
        grpc.StatusCode.ABORTED,
        errors_pb2.ETAG_MISMATCH,
    )
    expect_error(
        lambda: aliases.CreateAlias(
            aliases_pb2.CreateAliasRequest(alias_name="alias/aws/x", target_key_id=first.key_id)
        ),
        grpc.StatusCode.PERMISSION_DENIED,
        errors_pb2.RESERVED_ALIAS,
    )

    expect_error(
        lambda: aliases.GetAlias(aliases_pb2.GetAliasRequest(alias_name="alias/py-missing")),
        grpc.StatusCode.NOT_FOUND,
        errors_pb2.ALIAS_NOT_FOUND,
    )
    expect_error(
        lambda: keys.DescribeKey(keys_pb2.DescribeKeyRequest(key_id=str(uuid.uuid4()))),
        grpc.StatusCode.NOT_FOUND,
        errors_pb2.KEY_NOT_FOUND,
    )

    # List-then-watch: the update made after the listing arrives first.
    stream = aliases.WatchAliases(
        aliases_pb2.WatchAliasesRequest(start_revision=listed.revision), timeout=10
    )
    event = next(stream).event
    assert event.type == aliases_pb2.ALIAS_EVENT_TYPE_UPDATED, event
    assert event.previous_target_key_id == first.key_id
    stream.cancel()

    aliases.DeleteAlias(aliases_pb2.DeleteAliasRequest(alias_name="alias/py"))
    assert not aliases.ListAliases(aliases_pb2.ListAliasesRequest()).aliases
    check_crypto(channel, keys, aliases)
    print("python generated client: all checks passed")


def check_crypto(channel, keys, aliases):
    """CryptoService by alias: encryption, and a signature pyca verifies."""
    crypto = crypto_pb2_grpc.CryptoServiceStub(channel)
    key = keys.CreateKey(keys_pb2.CreateKeyRequest()).key
    alias = aliases.CreateAlias(
        aliases_pb2.CreateAliasRequest(alias_name="alias/py-data", target_key_id=key.key_id)
    ).alias
    sealed = crypto.Encrypt(
        crypto_pb2.EncryptRequest(
            key_id=alias.alias_arn, plaintext=b"from python", encryption_context={"app": "py"}
        )
    )
    assert sealed.key_id == key.arn, sealed
    opened = crypto.Decrypt(
        crypto_pb2.DecryptRequest(
            ciphertext_blob=sealed.ciphertext_blob, encryption_context={"app": "py"}
        )
    )
    assert opened.plaintext == b"from python" and opened.key_id == key.arn
    expect_error(
        lambda: crypto.Decrypt(crypto_pb2.DecryptRequest(ciphertext_blob=sealed.ciphertext_blob)),
        grpc.StatusCode.INVALID_ARGUMENT,
        errors_pb2.INVALID_CIPHERTEXT,
    )

    signer = keys.CreateKey(
        keys_pb2.CreateKeyRequest(
            key_spec=keys_pb2.KEY_SPEC_ECC_NIST_P256, key_usage=keys_pb2.KEY_USAGE_SIGN_VERIFY
        )
    ).key
    assert list(signer.signing_algorithms) == [algorithms_pb2.SIGNING_ALGORITHM_ECDSA_SHA_256]
    aliases.CreateAlias(
        aliases_pb2.CreateAliasRequest(alias_name="alias/py-signer", target_key_id=signer.key_id)
    )
    signed = crypto.Sign(
        crypto_pb2.SignRequest(
            key_id="alias/py-signer",
            message=b"signed in python",
            signing_algorithm=algorithms_pb2.SIGNING_ALGORITHM_ECDSA_SHA_256,
        )
    )
    public = crypto.GetPublicKey(crypto_pb2.GetPublicKeyRequest(key_id="alias/py-signer"))
    verifier = serialization.load_der_public_key(public.public_key)
    verifier.verify(signed.signature, b"signed in python", ec.ECDSA(hashes.SHA256()))


if __name__ == "__main__":
    main(sys.argv[1])
