"""boto3, unmodified, against aliasd's AWS JSON endpoint (tests/api/aws.rs).

usage: aws_boto3.py URL anonymous
       aws_boto3.py URL signed ACCESS_KEY_ID SECRET

Each check asserts what boto3 returns or raises (by exception class); the
Rust test then checks the server's state through gRPC. Prints one JSON
object with what the Rust side needs.
"""

import json
import sys

import boto3
from botocore.config import Config

URL = sys.argv[1]
MODE = sys.argv[2]
SEED_KEY = "1234abcd-12ab-34cd-56ef-1234567890ab"


def client(access_key="AKIAIOSFODNN7EXAMPLE", secret="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"):
    return boto3.client(
        "kms",
        endpoint_url=URL,
        region_name="us-east-1",
        aws_access_key_id=access_key,
        aws_secret_access_key=secret,
        config=Config(retries={"max_attempts": 1, "mode": "standard"}),
    )


def raises(exception_class, call, **kwargs):
    try:
        call(**kwargs)
    except exception_class as error:
        return error
    except Exception as error:  # noqa: BLE001 - report what came instead
        raise AssertionError(f"expected {exception_class.__name__}, got {error!r}") from error
    raise AssertionError(f"expected {exception_class.__name__}, the call succeeded")


def raises_code(kms, code, call, **kwargs):
    """For exceptions boto3's KMS model has no class for (ValidationException,
    NotAuthorizedException): the ClientError's code."""
    error = raises(kms.exceptions.ClientError, call, **kwargs)
    assert error.response["Error"]["Code"] == code, error.response
    return error


def anonymous():
    kms = client()
    out = {}

    # The seed page's example, literally: alias/ExampleAlias exists (on
    # another key) and the seed file made key 1234abcd-....
    response = kms.update_alias(
        # The alias to update.
        AliasName="alias/ExampleAlias",
        # The identifier of the KMS key that the alias will refer to after this operation succeeds. You can use the key ID or the Amazon Resource Name (ARN) of the KMS key.
        TargetKeyId="1234abcd-12ab-34cd-56ef-1234567890ab",
    )
    print(response, file=sys.stderr)
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 200
    described = kms.describe_key(KeyId="alias/ExampleAlias")["KeyMetadata"]
    assert described["KeyId"] == SEED_KEY, described

    # The whole lifecycle.
    first = kms.create_key(Description="first")["KeyMetadata"]
    assert first["KeyState"] == "Enabled" and first["Enabled"] is True, first
    assert first["Arn"].endswith(":key/" + first["KeyId"]), first
    assert first["KeySpec"] == "SYMMETRIC_DEFAULT" and first["KeyUsage"] == "ENCRYPT_DECRYPT"
    assert first["KeyManager"] == "CUSTOMER" and first["Origin"] == "AWS_KMS"
    assert first["CreationDate"].year >= 2026, first  # botocore parsed epoch seconds
    second = kms.create_key(Description="second")["KeyMetadata"]
    kms.create_alias(AliasName="alias/lifecycle", TargetKeyId=first["KeyId"])
    kms.update_alias(AliasName="alias/lifecycle", TargetKeyId=second["Arn"])
    listed = kms.list_aliases(KeyId=second["KeyId"])["Aliases"]
    assert [a["AliasName"] for a in listed] == ["alias/lifecycle"], listed
    entry = listed[0]
    assert entry["TargetKeyId"] == second["KeyId"], entry
    assert entry["AliasArn"].endswith(":alias/lifecycle"), entry
    assert entry["LastUpdatedDate"] >= entry["CreationDate"], entry
    assert kms.describe_key(KeyId="alias/lifecycle")["KeyMetadata"]["KeyId"] == second["KeyId"]
    kms.delete_alias(AliasName="alias/lifecycle")
    raises(kms.exceptions.NotFoundException, kms.describe_key, KeyId="alias/lifecycle")
    kms.disable_key(KeyId=first["KeyId"])
    assert kms.describe_key(KeyId=first["KeyId"])["KeyMetadata"]["KeyState"] == "Disabled"
    kms.enable_key(KeyId=first["KeyId"])
    scheduled = kms.schedule_key_deletion(KeyId=first["KeyId"], PendingWindowInDays=7)
    assert scheduled["KeyState"] == "PendingDeletion" and scheduled["PendingWindowInDays"] == 7
    assert scheduled["KeyId"] == first["Arn"], scheduled
    pending = kms.describe_key(KeyId=first["KeyId"])["KeyMetadata"]
    assert pending["KeyState"] == "PendingDeletion" and "DeletionDate" in pending, pending

    # Every alias error a KMS user can hit, by exception class.
    kms.create_alias(AliasName="alias/taken", TargetKeyId=second["KeyId"])
    raises(kms.exceptions.AlreadyExistsException, kms.create_alias,
           AliasName="alias/taken", TargetKeyId=second["KeyId"])
    raises(kms.exceptions.NotFoundException, kms.update_alias,
           AliasName="alias/absent", TargetKeyId=second["KeyId"])
    raises(kms.exceptions.NotFoundException, kms.create_alias,
           AliasName="alias/to-nothing", TargetKeyId="00000000-0000-4000-8000-000000000000")
    raises_code(kms, "NotAuthorizedException", kms.create_alias,
                AliasName="alias/aws/mine", TargetKeyId=second["KeyId"])
    bad_charset = raises_code(kms, "ValidationException", kms.create_alias,
                              AliasName="alias/has space", TargetKeyId=second["KeyId"])
    assert "alias/has space" in str(bad_charset), bad_charset
    raises_code(kms, "ValidationException", kms.create_alias,
                AliasName="no-prefix", TargetKeyId=second["KeyId"])
    raises_code(kms, "ValidationException", kms.create_alias,
                AliasName="alias/" + "x" * 251, TargetKeyId=second["KeyId"])
    raises_code(kms, "ValidationException", kms.list_aliases, Limit=101)
    raises(kms.exceptions.KMSInvalidStateException, kms.create_alias,
           AliasName="alias/doomed", TargetKeyId=first["KeyId"])
    raises(kms.exceptions.InvalidMarkerException, kms.list_aliases, Marker="not-a-marker")
    full = kms.create_key()["KeyMetadata"]["KeyId"]
    for i in range(50):
        kms.create_alias(AliasName=f"alias/quota/{i}", TargetKeyId=full)
    raises(kms.exceptions.LimitExceededException, kms.create_alias,
           AliasName="alias/quota/50", TargetKeyId=full)
    kms.cancel_key_deletion(KeyId=first["KeyId"])

    # A paginator walks many pages.
    many = kms.create_key()["KeyMetadata"]["KeyId"]
    for i in range(45):
        kms.create_alias(AliasName=f"alias/page/{i:02}", TargetKeyId=many)
    pages = list(kms.get_paginator("list_aliases").paginate(
        KeyId=many, PaginationConfig={"PageSize": 4}))
    names = [a["AliasName"] for page in pages for a in page["Aliases"]]
    assert len(pages) == 12, len(pages)
    assert names == [f"alias/page/{i:02}" for i in range(45)], names
    everything = [a["AliasName"] for page in kms.get_paginator("list_aliases").paginate(
        PaginationConfig={"PageSize": 7}) for a in page["Aliases"]]
    assert len(everything) == len(set(everything)) and "alias/quota/49" in everything

    out.update(second=second["KeyId"], full=full, many=many)
    return out


def signed():
    access_key, secret = sys.argv[3], sys.argv[4]
    kms = client(access_key, secret)
    key = kms.create_key(Description="signed")["KeyMetadata"]
    kms.create_alias(AliasName="alias/signed", TargetKeyId=key["KeyId"])
    assert key["AWSAccountId"] == "111122223333", key
    wrong = client(access_key, "x" * 40)
    error = raises(wrong.exceptions.ClientError, wrong.create_alias,
                   AliasName="alias/forged", TargetKeyId=key["KeyId"])
    assert error.response["Error"]["Code"] == "InvalidSignatureException", error.response
    unknown = client("AKIAUNKNOWNKEY000000", secret)
    error = raises(unknown.exceptions.ClientError, unknown.list_aliases)
    assert error.response["Error"]["Code"] == "UnrecognizedClientException", error.response
    return {"key": key["KeyId"]}


print(json.dumps({"anonymous": anonymous, "signed": signed}[MODE]()))
