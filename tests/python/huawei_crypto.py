"""Huawei Cloud's KMS SDK (huaweicloudsdkkms), unmodified, using keys of
aliasd's Huawei endpoint (tests/api/huawei.rs), with AK/SK credentials.

usage: huawei_crypto.py URL PROJECT_ID AK SK

encrypt-data/decrypt-data (by key id and by alias), the data key calls,
sign/verify (checked with pyca from get-publickey's PEM), gen-random and the
rotation calls. Prints one JSON object for the Rust side.
"""

import base64
import hashlib
import json
import os
import sys

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.exceptions import exceptions
from huaweicloudsdkkms.v2 import (
    CreateAliasRequest, CreateAliasRequestBody, CreateDatakeyRequest,
    CreateDatakeyRequestBody, CreateDatakeyWithoutPlaintextRequest, CreateKeyRequest,
    CreateKeyRequestBody, CreateRandomRequest, DecryptDataRequest, DecryptDataRequestBody,
    DecryptDatakeyRequest, DecryptDatakeyRequestBody, DisableKeyRequest,
    DisableKeyRotationRequest, EnableKeyRequest, EnableKeyRotationRequest, EncryptDataRequest,
    EncryptDataRequestBody, EncryptDatakeyRequest, EncryptDatakeyRequestBody,
    GenRandomRequestBody, KmsClient, OperateKeyRequestBody, RotateOnDemandRequest,
    RotateOnDemandRequestBody, ShowKeyRotationStatusRequest, ShowPublicKeyRequest,
    SignRequest, SignRequestBody, UpdateKeyRotationIntervalRequest,
    UpdateKeyRotationIntervalRequestBody, ValidateSignatureRequest, VerifyRequestBody,
)

URL, PROJECT, AK, SK = sys.argv[1:5]


def client():
    credentials = BasicCredentials(AK, SK, PROJECT)
    return KmsClient.new_builder().with_credentials(credentials).with_endpoints([URL]).build()


def refused(status, code, call, request):
    try:
        call(request)
    except exceptions.ClientRequestException as error:
        assert (error.status_code, error.error_code) == (status, code), (
            error.status_code, error.error_code, error.error_msg)
        return error
    raise AssertionError(f"expected {status} {code}, the call succeeded")


def main():
    kms = client()
    out = {}
    key = kms.create_key(CreateKeyRequest(body=CreateKeyRequestBody(
        key_alias="crypto-app"))).key_info.key_id
    out["key"] = key

    # encrypt-data / decrypt-data, by key id and by alias, with AAD.
    for key_ref in (key, "alias/crypto-app"):
        sealed = kms.encrypt_data(EncryptDataRequest(body=EncryptDataRequestBody(
            key_id=key_ref, plain_text="12345678", additional_authenticated_data="ctx-1")))
        assert sealed.key_id == key, sealed
        base64.b64decode(sealed.cipher_text, validate=True)
        opened = kms.decrypt_data(DecryptDataRequest(body=DecryptDataRequestBody(
            cipher_text=sealed.cipher_text, additional_authenticated_data="ctx-1")))
        assert (opened.key_id, opened.plain_text) == (key, "12345678"), opened
        assert base64.b64decode(opened.plain_text_base64) == b"12345678"
    refused(400, "KMS.2201", kms.decrypt_data, DecryptDataRequest(body=DecryptDataRequestBody(
        cipher_text=sealed.cipher_text, additional_authenticated_data="ctx-2")))

    # Data keys: made by the server, or given to it with their digest.
    made = kms.create_datakey(CreateDatakeyRequest(body=CreateDatakeyRequestBody(
        key_id=key, datakey_length="512")))
    dek = bytes.fromhex(made.plain_text)
    assert len(dek) == 64
    back = kms.decrypt_datakey(DecryptDatakeyRequest(body=DecryptDatakeyRequestBody(
        key_id=key, cipher_text=made.cipher_text, datakey_cipher_length="64")))
    assert bytes.fromhex(back.data_key) == dek
    assert back.datakey_dgst.lower() == hashlib.sha256(dek).hexdigest()
    blind = kms.create_datakey_without_plaintext(CreateDatakeyWithoutPlaintextRequest(
        body=CreateDatakeyRequestBody(key_id=key, key_spec="AES_128")))
    assert not hasattr(blind, "plain_text") and blind.cipher_text
    back = kms.decrypt_datakey(DecryptDatakeyRequest(body=DecryptDatakeyRequestBody(
        key_id=key, cipher_text=blind.cipher_text, datakey_cipher_length="16")))
    assert len(bytes.fromhex(back.data_key)) == 16
    mine = os.urandom(48)
    wrapped = kms.encrypt_datakey(EncryptDatakeyRequest(body=EncryptDatakeyRequestBody(
        key_id=key, plain_text=(mine + hashlib.sha256(mine).digest()).hex(),
        datakey_plain_length="48")))
    assert wrapped.datakey_length == "48"
    back = kms.decrypt_datakey(DecryptDatakeyRequest(body=DecryptDatakeyRequestBody(
        key_id=key, cipher_text=wrapped.cipher_text, datakey_cipher_length="48")))
    assert bytes.fromhex(back.data_key) == mine
    refused(400, "KMS.0308", kms.encrypt_datakey, EncryptDatakeyRequest(
        body=EncryptDatakeyRequestBody(key_id=key, plain_text=(mine + bytes(32)).hex(),
                                       datakey_plain_length="48")))

    # sign / validate-signature (DIGEST by default, as Huawei does), and a
    # signature pyca verifies from get-publickey's PEM.
    signer = kms.create_key(CreateKeyRequest(body=CreateKeyRequestBody(
        key_alias="crypto-signer", key_spec="EC_P256", key_usage="SIGN_VERIFY"))).key_info.key_id
    digest = hashlib.sha256(b"signed through huawei").digest()
    signed = kms.sign(SignRequest(body=SignRequestBody(
        key_id="alias/crypto-signer", message=base64.b64encode(digest).decode(),
        signing_algorithm="ECDSA_SHA_256")))
    assert signed.key_id == signer
    signature = base64.b64decode(signed.signature)
    valid = kms.validate_signature(ValidateSignatureRequest(body=VerifyRequestBody(
        key_id=signer, message=base64.b64encode(digest).decode(),
        signature=signed.signature, signing_algorithm="ECDSA_SHA_256")))
    assert valid.signature_valid == "true", valid
    invalid = kms.validate_signature(ValidateSignatureRequest(body=VerifyRequestBody(
        key_id=signer, message=base64.b64encode(bytes(32)).decode(),
        signature=signed.signature, signing_algorithm="ECDSA_SHA_256")))
    assert invalid.signature_valid == "false", invalid
    public = kms.show_public_key(ShowPublicKeyRequest(body=OperateKeyRequestBody(key_id=signer)))
    assert public.public_key.startswith("-----BEGIN PUBLIC KEY-----\r\n")
    serialization.load_pem_public_key(public.public_key.encode()).verify(
        signature, b"signed through huawei", ec.ECDSA(hashes.SHA256()))
    refused(400, "KMS.0308", kms.sign, SignRequest(body=SignRequestBody(
        key_id=signer, message=base64.b64encode(b"short").decode(),
        signing_algorithm="ECDSA_SHA_256")))
    refused(400, "KMS.0331", kms.show_public_key,
            ShowPublicKeyRequest(body=OperateKeyRequestBody(key_id=key)))

    rnd = kms.create_random(CreateRandomRequest(body=GenRandomRequestBody(
        random_data_length="512")))
    assert len(bytes.fromhex(rnd.random_data)) == 64

    # A disabled key refuses use with KMS.0209.
    kms.disable_key(DisableKeyRequest(body=OperateKeyRequestBody(key_id=key)))
    refused(400, "KMS.0209", kms.encrypt_data, EncryptDataRequest(body=EncryptDataRequestBody(
        key_id=key, plain_text="x")))
    kms.enable_key(EnableKeyRequest(body=OperateKeyRequestBody(key_id=key)))

    # Rotation.
    status = kms.show_key_rotation_status(ShowKeyRotationStatusRequest(
        body=OperateKeyRequestBody(key_id=key)))
    assert status.key_rotation_enabled is False, status
    kms.enable_key_rotation(EnableKeyRotationRequest(body=OperateKeyRequestBody(key_id=key)))
    kms.update_key_rotation_interval(UpdateKeyRotationIntervalRequest(
        body=UpdateKeyRotationIntervalRequestBody(key_id=key, rotation_interval=180)))
    kms.rotate_on_demand(RotateOnDemandRequest(body=RotateOnDemandRequestBody(key_id=key)))
    status = kms.show_key_rotation_status(ShowKeyRotationStatusRequest(
        body=OperateKeyRequestBody(key_id=key)))
    assert status.key_rotation_enabled is True and status.rotation_interval == 180, status
    assert status.number_of_rotations == 1, status
    # What was sealed before the rotation still opens.
    opened = kms.decrypt_data(DecryptDataRequest(body=DecryptDataRequestBody(
        cipher_text=sealed.cipher_text, additional_authenticated_data="ctx-1")))
    assert opened.plain_text == "12345678"
    kms.disable_key_rotation(DisableKeyRotationRequest(body=OperateKeyRequestBody(key_id=key)))
    out["alias_ciphertext"] = sealed.cipher_text
    print(json.dumps(out))


if __name__ == "__main__":
    main()
