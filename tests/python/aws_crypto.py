"""Keys that work, through boto3 unmodified (tests/api/crypto_clients.rs).

usage: aws_crypto.py URL

Every operation by all four KeyId forms (key id, key ARN, alias name, alias
ARN) for every key spec; the alias rotation story; each state and usage
refusal with AWS's exception; independent checks with pyca `cryptography`
(signatures verified from GetPublicKey's DER, RSA-OAEP ciphertexts made by
pyca decrypted by the server). Prints one JSON object for the Rust side.
"""

import base64
import hashlib
import json
import sys

import boto3
from botocore.config import Config
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

URL = sys.argv[1]

kms = boto3.client(
    "kms",
    endpoint_url=URL,
    region_name="us-east-1",
    aws_access_key_id="AKIAIOSFODNN7EXAMPLE",
    aws_secret_access_key="not-checked-without-an-auth-file",
    config=Config(retries={"max_attempts": 1, "mode": "standard"}),
)
# The same, without botocore's own checks of minimums: what the server
# answers to values boto3 would refuse before sending.
unchecked = boto3.client(
    "kms",
    endpoint_url=URL,
    region_name="us-east-1",
    aws_access_key_id="AKIAIOSFODNN7EXAMPLE",
    aws_secret_access_key="not-checked-without-an-auth-file",
    config=Config(retries={"max_attempts": 1}, parameter_validation=False),
)


def raises(code, call, **kwargs):
    """The ClientError of a call that must fail with `code`."""
    try:
        call(**kwargs)
    except kms.exceptions.ClientError as error:
        got = error.response["Error"]["Code"]
        assert got == code, (code, error.response)
        return error
    raise AssertionError(f"expected {code}, the call succeeded")


def message_of(error):
    return error.response["Error"].get("Message", "")


def forms(key_id, alias_name):
    """The four ways of naming a key."""
    meta = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    alias_arn = meta["Arn"].split(":key/")[0] + ":" + alias_name
    return [key_id, meta["Arn"], alias_name, alias_arn]


def new_key(spec, usage, alias_name):
    kwargs = {"KeySpec": spec}
    if usage:
        kwargs["KeyUsage"] = usage
    meta = kms.create_key(**kwargs)["KeyMetadata"]
    kms.create_alias(AliasName=alias_name, TargetKeyId=meta["KeyId"])
    return meta


HASHES = {"256": hashes.SHA256, "384": hashes.SHA384, "512": hashes.SHA512}


def pyca_verify(public_der, algorithm, message, signature):
    """Verifies a signature with pyca alone, from the DER public key."""
    public = serialization.load_der_public_key(public_der)
    digest = HASHES[algorithm[-3:]]()
    if algorithm.startswith("ECDSA"):
        public.verify(signature, message, ec.ECDSA(digest))
    elif algorithm.startswith("RSASSA_PSS"):
        # AWS KMS's PSS salt is as long as the hash.
        public.verify(
            signature,
            message,
            padding.PSS(mgf=padding.MGF1(digest), salt_length=digest.digest_size),
            digest,
        )
    else:
        public.verify(signature, message, padding.PKCS1v15(), digest)


def symmetric():
    meta = new_key("SYMMETRIC_DEFAULT", None, "alias/sym")
    assert meta["EncryptionAlgorithms"] == ["SYMMETRIC_DEFAULT"], meta
    assert len(meta["CurrentKeyMaterialId"]) == 64, meta
    other = kms.create_key()["KeyMetadata"]
    for form in forms(meta["KeyId"], "alias/sym"):
        context = {"purpose": "test", "form": form}
        sealed = kms.encrypt(KeyId=form, Plaintext=b"secret", EncryptionContext=context)
        assert sealed["KeyId"] == meta["Arn"] and sealed["EncryptionAlgorithm"] == "SYMMETRIC_DEFAULT"
        opened = kms.decrypt(CiphertextBlob=sealed["CiphertextBlob"], EncryptionContext=context)
        assert opened["Plaintext"] == b"secret" and opened["KeyId"] == meta["Arn"], opened
        assert opened["KeyMaterialId"] == meta["CurrentKeyMaterialId"]
        # Decrypt naming the key in this form too.
        named = kms.decrypt(
            CiphertextBlob=sealed["CiphertextBlob"], EncryptionContext=context, KeyId=form
        )
        assert named["Plaintext"] == b"secret"
        moved = kms.re_encrypt(
            CiphertextBlob=sealed["CiphertextBlob"],
            SourceEncryptionContext=context,
            SourceKeyId=form,
            DestinationKeyId=other["KeyId"],
        )
        assert moved["SourceKeyId"] == meta["Arn"] and moved["KeyId"] == other["Arn"], moved
        assert kms.decrypt(CiphertextBlob=moved["CiphertextBlob"])["Plaintext"] == b"secret"
        back = kms.re_encrypt(CiphertextBlob=moved["CiphertextBlob"], DestinationKeyId=form)
        assert back["KeyId"] == meta["Arn"]

        data_key = kms.generate_data_key(KeyId=form, KeySpec="AES_256", EncryptionContext=context)
        assert len(data_key["Plaintext"]) == 32 and data_key["KeyId"] == meta["Arn"]
        opened = kms.decrypt(CiphertextBlob=data_key["CiphertextBlob"], EncryptionContext=context)
        assert opened["Plaintext"] == data_key["Plaintext"]
        short = kms.generate_data_key(KeyId=form, NumberOfBytes=7)
        assert len(short["Plaintext"]) == 7
        blind = kms.generate_data_key_without_plaintext(KeyId=form, KeySpec="AES_128")
        assert "Plaintext" not in blind
        assert len(kms.decrypt(CiphertextBlob=blind["CiphertextBlob"])["Plaintext"]) == 16

        pair = kms.generate_data_key_pair(KeyId=form, KeyPairSpec="ECC_NIST_P256")
        assert pair["KeyPairSpec"] == "ECC_NIST_P256" and pair["KeyId"] == meta["Arn"]
        private = kms.decrypt(CiphertextBlob=pair["PrivateKeyCiphertextBlob"])["Plaintext"]
        assert private == pair["PrivateKeyPlaintext"]
        # The pair is a real pair: its private key signs what its public
        # key verifies.
        key = serialization.load_der_private_key(private, password=None)
        signature = key.sign(b"pair", ec.ECDSA(hashes.SHA256()))
        serialization.load_der_public_key(pair["PublicKey"]).verify(
            signature, b"pair", ec.ECDSA(hashes.SHA256())
        )
        blind_pair = kms.generate_data_key_pair_without_plaintext(
            KeyId=form, KeyPairSpec="RSA_2048"
        )
        assert "PrivateKeyPlaintext" not in blind_pair
        private = kms.decrypt(CiphertextBlob=blind_pair["PrivateKeyCiphertextBlob"])["Plaintext"]
        assert serialization.load_der_private_key(private, password=None).key_size == 2048

    # Refusals, with AWS's exceptions and words.
    error = raises(
        "InvalidCiphertextException",
        kms.decrypt,
        CiphertextBlob=kms.encrypt(KeyId="alias/sym", Plaintext=b"x", EncryptionContext={"a": "b"})[
            "CiphertextBlob"
        ],
    )
    assert message_of(error) == "", error.response
    blob = kms.encrypt(KeyId="alias/sym", Plaintext=b"x")["CiphertextBlob"]
    error = raises("IncorrectKeyException", kms.decrypt, CiphertextBlob=blob, KeyId=other["KeyId"])
    assert message_of(error) == (
        "The key ID in the request does not identify a CMK that can perform this operation."
    )
    error = raises("ValidationException", kms.encrypt, KeyId="alias/sym", Plaintext=b"x" * 4097)
    assert message_of(error) == (
        "1 validation error detected: Value at 'plaintext' failed to satisfy constraint: "
        "Member must have length less than or equal to 4096"
    ), error.response
    error = raises("ValidationException", kms.generate_data_key, KeyId="alias/sym")
    assert message_of(error) == "Please specify either number of bytes or key spec."
    error = raises("ValidationException", kms.generate_random, NumberOfBytes=1025)
    assert message_of(error) == (
        "1 validation error detected: Value '1025' at 'numberOfBytes' failed to satisfy "
        "constraint: Member must have value less than or equal to 1024"
    )
    error = raises("NotFoundException", kms.encrypt, KeyId="alias/none", Plaintext=b"x")
    assert message_of(error) == "Alias arn:aws:kms:us-east-1:000000000000:alias/none is not found."
    error = raises("UnsupportedOperationException", kms.get_public_key, KeyId="alias/sym")
    assert message_of(error) == ""

    # DryRun: the checks run, and a call that would succeed says so.
    error = raises("DryRunOperationException", kms.encrypt, KeyId="alias/sym", Plaintext=b"x", DryRun=True)
    assert message_of(error) == "The request would have succeeded, but the DryRun option is set."
    assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 412
    raises("DryRunOperationException", kms.decrypt, CiphertextBlob=blob, DryRun=True)
    raises("InvalidCiphertextException", kms.decrypt, CiphertextBlob=blob[:-1] + bytes([blob[-1] ^ 1]), DryRun=True)
    raises("NotFoundException", kms.encrypt, KeyId="alias/none", Plaintext=b"x", DryRun=True)
    kms.disable_key(KeyId=meta["KeyId"])
    raises("DisabledException", kms.encrypt, KeyId="alias/sym", Plaintext=b"x", DryRun=True)
    error = raises("DisabledException", kms.encrypt, KeyId="alias/sym", Plaintext=b"x")
    assert message_of(error) == f"{meta['Arn']} is disabled.", error.response
    raises("DisabledException", kms.decrypt, CiphertextBlob=blob)
    raises("DisabledException", kms.generate_data_key, KeyId="alias/sym", NumberOfBytes=8)
    kms.enable_key(KeyId=meta["KeyId"])
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"x"
    doomed = new_key("SYMMETRIC_DEFAULT", None, "alias/doomed")
    doomed_blob = kms.encrypt(KeyId="alias/doomed", Plaintext=b"y")["CiphertextBlob"]
    kms.schedule_key_deletion(KeyId=doomed["KeyId"], PendingWindowInDays=7)
    error = raises("KMSInvalidStateException", kms.decrypt, CiphertextBlob=doomed_blob)
    assert message_of(error) == f"{doomed['Arn']} is pending deletion."
    raises("KMSInvalidStateException", kms.encrypt, KeyId=doomed["KeyId"], Plaintext=b"y")
    return meta


def alias_rotation_story():
    """Encrypt via alias/app, point it at a second key, encrypt again: both
    ciphertexts decrypt, each with its own key."""
    first = new_key("SYMMETRIC_DEFAULT", None, "alias/app")
    second = kms.create_key()["KeyMetadata"]
    before = kms.encrypt(KeyId="alias/app", Plaintext=b"before")
    kms.update_alias(AliasName="alias/app", TargetKeyId=second["KeyId"])
    after = kms.encrypt(KeyId="alias/app", Plaintext=b"after")
    assert before["KeyId"] == first["Arn"] and after["KeyId"] == second["Arn"]
    opened = kms.decrypt(CiphertextBlob=before["CiphertextBlob"])
    assert (opened["Plaintext"], opened["KeyId"]) == (b"before", first["Arn"])
    opened = kms.decrypt(CiphertextBlob=after["CiphertextBlob"])
    assert (opened["Plaintext"], opened["KeyId"]) == (b"after", second["Arn"])
    # The alias now names the second key: naming it for the first
    # ciphertext is the wrong key.
    raises(
        "IncorrectKeyException",
        kms.decrypt,
        CiphertextBlob=before["CiphertextBlob"],
        KeyId="alias/app",
    )


def rsa_encryption(spec):
    alias = f"alias/{spec.lower()}-enc"
    meta = new_key(spec, "ENCRYPT_DECRYPT", alias)
    assert meta["EncryptionAlgorithms"] == ["RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256"], meta
    for form in forms(meta["KeyId"], alias):
        public_der = kms.get_public_key(KeyId=form)["PublicKey"]
        public = serialization.load_der_public_key(public_der)
        for algorithm, digest in (("RSAES_OAEP_SHA_1", hashes.SHA1), ("RSAES_OAEP_SHA_256", hashes.SHA256)):
            sealed = kms.encrypt(KeyId=form, Plaintext=b"rsa", EncryptionAlgorithm=algorithm)
            opened = kms.decrypt(
                CiphertextBlob=sealed["CiphertextBlob"], KeyId=form, EncryptionAlgorithm=algorithm
            )
            assert opened["Plaintext"] == b"rsa" and "KeyMaterialId" not in opened
            # A ciphertext pyca made with the public key decrypts through
            # the server.
            made = public.encrypt(
                b"made by pyca",
                padding.OAEP(mgf=padding.MGF1(digest()), algorithm=digest(), label=None),
            )
            opened = kms.decrypt(CiphertextBlob=made, KeyId=form, EncryptionAlgorithm=algorithm)
            assert opened["Plaintext"] == b"made by pyca"
    error = raises("InvalidKeyUsageException", kms.encrypt, KeyId=alias, Plaintext=b"x")
    assert message_of(error) == f"Algorithm SYMMETRIC_DEFAULT is incompatible with key spec {spec}."
    limit = {"RSA_2048": 214, "RSA_3072": 342, "RSA_4096": 470}[spec]
    error = raises(
        "ValidationException",
        kms.encrypt,
        KeyId=alias,
        Plaintext=b"x" * (limit + 1),
        EncryptionAlgorithm="RSAES_OAEP_SHA_1",
    )
    assert message_of(error) == (
        f"Algorithm RSAES_OAEP_SHA_1 and key spec {spec} cannot encrypt data larger than {limit} bytes."
    )
    raises("InvalidKeyUsageException", kms.generate_data_key, KeyId=alias, NumberOfBytes=8)


def signing(spec, algorithms):
    alias = f"alias/{spec.lower()}-sign"
    meta = new_key(spec, "SIGN_VERIFY", alias)
    assert sorted(meta["SigningAlgorithms"]) == sorted(algorithms), meta
    for form in forms(meta["KeyId"], alias):
        public = kms.get_public_key(KeyId=form)
        assert public["KeySpec"] == spec and public["KeyUsage"] == "SIGN_VERIFY", public
        for algorithm in algorithms:
            message = f"signed with {algorithm} via {form}".encode()
            signed = kms.sign(KeyId=form, Message=message, SigningAlgorithm=algorithm)
            assert signed["KeyId"] == meta["Arn"]
            pyca_verify(public["PublicKey"], algorithm, message, signed["Signature"])
            verified = kms.verify(
                KeyId=form,
                Message=message,
                Signature=signed["Signature"],
                SigningAlgorithm=algorithm,
            )
            assert verified["SignatureValid"] is True
            digest = hashlib.new("sha" + algorithm[-3:], message).digest()
            by_digest = kms.sign(
                KeyId=form, Message=digest, MessageType="DIGEST", SigningAlgorithm=algorithm
            )
            pyca_verify(public["PublicKey"], algorithm, message, by_digest["Signature"])
            error = raises(
                "KMSInvalidSignatureException",
                kms.verify,
                KeyId=form,
                Message=message + b"!",
                Signature=signed["Signature"],
                SigningAlgorithm=algorithm,
            )
            assert message_of(error) == ""
    error = raises(
        "ValidationException",
        kms.sign,
        KeyId=alias,
        Message=b"short",
        MessageType="DIGEST",
        SigningAlgorithm=algorithms[0],
    )
    assert message_of(error) == f"Digest is invalid length for algorithm {algorithms[0]}."
    error = raises("InvalidKeyUsageException", kms.encrypt, KeyId=alias, Plaintext=b"x")
    assert message_of(error) == (
        f"{meta['Arn']} key usage is SIGN_VERIFY which is not valid for Encrypt."
    )


def macs(spec, algorithm):
    alias = f"alias/{spec.lower()}"
    meta = new_key(spec, "GENERATE_VERIFY_MAC", alias)
    assert meta["MacAlgorithms"] == [algorithm] and "CurrentKeyMaterialId" not in meta, meta
    for form in forms(meta["KeyId"], alias):
        mac = kms.generate_mac(KeyId=form, Message=b"m", MacAlgorithm=algorithm)
        assert mac["KeyId"] == meta["Arn"]
        assert len(mac["Mac"]) == int(algorithm[-3:]) // 8
        valid = kms.verify_mac(KeyId=form, Message=b"m", Mac=mac["Mac"], MacAlgorithm=algorithm)
        assert valid["MacValid"] is True
        error = raises(
            "KMSInvalidMacException",
            kms.verify_mac,
            KeyId=form,
            Message=b"n",
            Mac=mac["Mac"],
            MacAlgorithm=algorithm,
        )
        assert message_of(error) == ""
    wrong = "HMAC_SHA_512" if algorithm != "HMAC_SHA_512" else "HMAC_SHA_256"
    error = raises(
        "InvalidKeyUsageException", kms.generate_mac, KeyId=alias, Message=b"m", MacAlgorithm=wrong
    )
    assert message_of(error) == f"Algorithm {wrong} is incompatible with key spec {spec}."
    error = raises(
        "InvalidKeyUsageException",
        kms.sign,
        KeyId=alias,
        Message=b"m",
        SigningAlgorithm="ECDSA_SHA_256",
    )
    assert message_of(error) == (
        f"{meta['Arn']} key usage is GENERATE_VERIFY_MAC which is not valid for Sign."
    )
    raises("UnsupportedOperationException", kms.rotate_key_on_demand, KeyId=meta["KeyId"])


def rotation(meta):
    key_id = meta["KeyId"]
    old = kms.encrypt(KeyId=key_id, Plaintext=b"old")["CiphertextBlob"]
    status = kms.get_key_rotation_status(KeyId=key_id)
    assert status["KeyRotationEnabled"] is False and "NextRotationDate" not in status, status
    kms.enable_key_rotation(KeyId=key_id, RotationPeriodInDays=90)
    status = kms.get_key_rotation_status(KeyId=key_id)
    assert status["KeyRotationEnabled"] is True and status["RotationPeriodInDays"] == 90, status
    assert status["NextRotationDate"], status
    error = raises(
        "ValidationException", unchecked.enable_key_rotation, KeyId=key_id, RotationPeriodInDays=89
    )
    assert message_of(error) == (
        "1 validation error detected: Value '89' at 'rotationPeriodInDays' failed to satisfy "
        "constraint: Member must have value greater than or equal to 90"
    )
    error = raises("ValidationException", unchecked.encrypt, KeyId=key_id, Plaintext=b"")
    assert message_of(error) == (
        "1 validation error detected: Value at 'plaintext' failed to satisfy constraint: "
        "Member must have length greater than or equal to 1"
    ), error.response
    rotated = kms.rotate_key_on_demand(KeyId=key_id)
    assert rotated["KeyId"] == meta["Arn"]
    current = kms.describe_key(KeyId=key_id)["KeyMetadata"]["CurrentKeyMaterialId"]
    assert current != meta["CurrentKeyMaterialId"]
    new = kms.encrypt(KeyId=key_id, Plaintext=b"new")["CiphertextBlob"]
    opened = kms.decrypt(CiphertextBlob=old)
    assert opened["Plaintext"] == b"old" and opened["KeyMaterialId"] == meta["CurrentKeyMaterialId"]
    opened = kms.decrypt(CiphertextBlob=new)
    assert opened["KeyMaterialId"] == current
    listed = kms.list_key_rotations(KeyId=key_id)
    assert [r["KeyMaterialId"] for r in listed["Rotations"]] == [current], listed
    assert listed["Rotations"][0]["RotationType"] == "ON_DEMAND"
    assert listed["Rotations"][0]["KeyMaterialState"] == "CURRENT"
    everything = kms.list_key_rotations(KeyId=key_id, IncludeKeyMaterial="ALL_KEY_MATERIAL")
    assert len(everything["Rotations"]) == 2, everything
    kms.disable_key_rotation(KeyId=key_id)
    assert kms.get_key_rotation_status(KeyId=key_id)["KeyRotationEnabled"] is False
    return current


def main():
    out = {}
    meta = symmetric()
    alias_rotation_story()
    for spec in ("RSA_2048", "RSA_3072", "RSA_4096"):
        rsa_encryption(spec)
    rsa_algorithms = [
        "RSASSA_PSS_SHA_256",
        "RSASSA_PSS_SHA_384",
        "RSASSA_PSS_SHA_512",
        "RSASSA_PKCS1_V1_5_SHA_256",
        "RSASSA_PKCS1_V1_5_SHA_384",
        "RSASSA_PKCS1_V1_5_SHA_512",
    ]
    signing("RSA_2048", rsa_algorithms)
    signing("ECC_NIST_P256", ["ECDSA_SHA_256"])
    signing("ECC_NIST_P384", ["ECDSA_SHA_384"])
    signing("ECC_NIST_P521", ["ECDSA_SHA_512"])
    signing("ECC_SECG_P256K1", ["ECDSA_SHA_256"])
    for bits in ("224", "256", "384", "512"):
        macs(f"HMAC_{bits}", f"HMAC_SHA_{bits}")
    sm2 = new_key("SM2", "SIGN_VERIFY", "alias/sm2")
    error = raises(
        "UnsupportedOperationException",
        kms.sign,
        KeyId="alias/sm2",
        Message=b"m",
        SigningAlgorithm="SM2DSA",
    )
    assert "SM2" in message_of(error), error.response
    assert len(kms.generate_random(NumberOfBytes=1024)["Plaintext"]) == 1024
    out["rotated_material"] = rotation(meta)
    out["symmetric_key"] = meta["KeyId"]
    out["sm2_key"] = sm2["KeyId"]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
