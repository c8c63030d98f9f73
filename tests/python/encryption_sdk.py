"""The AWS Encryption SDK for Python, unmodified, encrypting with a key
named by alias ARN through aliasd (tests/api/crypto_clients.rs).

usage: encryption_sdk.py ALIAS_ARN KEY_ARN   (with AWS_ENDPOINT_URL_KMS set)

The SDK reaches KMS through botocore, which AWS_ENDPOINT_URL_KMS points at
aliasd. It encrypts by alias ARN (GenerateDataKey), then decrypts with the
key ARN (strict mode compares key ARNs, so an alias ARN cannot decrypt) and
in discovery mode.
"""

import sys

import aws_encryption_sdk
from aws_encryption_sdk import CommitmentPolicy
from aws_encryption_sdk.key_providers.kms import (
    DiscoveryAwsKmsMasterKeyProvider,
    StrictAwsKmsMasterKeyProvider,
)

ALIAS_ARN, KEY_ARN = sys.argv[1], sys.argv[2]


def main():
    client = aws_encryption_sdk.EncryptionSDKClient(
        commitment_policy=CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT
    )
    by_alias = StrictAwsKmsMasterKeyProvider(key_ids=[ALIAS_ARN])
    message = b"an envelope-encrypted message, made through aliasd" * 50
    ciphertext, header = client.encrypt(
        source=message, key_provider=by_alias, encryption_context={"app": "esdk"}
    )
    assert ciphertext != message
    assert header.encryption_context["app"] == "esdk"

    by_key = StrictAwsKmsMasterKeyProvider(key_ids=[KEY_ARN])
    plaintext, decrypted = client.decrypt(source=ciphertext, key_provider=by_key)
    assert plaintext == message
    assert decrypted.encryption_context["app"] == "esdk"

    discovery = DiscoveryAwsKmsMasterKeyProvider()
    plaintext, _ = client.decrypt(source=ciphertext, key_provider=discovery)
    assert plaintext == message
    print("encryption sdk: all checks passed")


if __name__ == "__main__":
    main()
