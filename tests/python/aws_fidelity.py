"""AWS's own answers (SPEC §12): the exceptions and messages AWS's recorded
responses and API reference show, through boto3 (tests/api/aws.rs).

usage: aws_fidelity.py URL

Prints one JSON object with what the Rust side checks through gRPC.
"""

import json
import sys

import kms_client

URL = sys.argv[1]
ACCOUNT = "000000000000"


def client(region="us-east-1"):
    return kms_client.client(URL, region)


kms = client()


def raises(code, call, **kwargs):
    return kms_client.raises(kms, code, call, **kwargs)


def main():
    out = {}
    key = kms.create_key(Description="fidelity")["KeyMetadata"]
    key_id, arn = key["KeyId"], key["Arn"]
    assert key["EncryptionAlgorithms"] == ["SYMMETRIC_DEFAULT"], key

    # Alias names: AWS's sentence for a missing prefix, its validation form
    # for the pattern.
    message = raises("ValidationException", kms.create_alias, AliasName="no-prefix", TargetKeyId=key_id)
    assert message == (
        'Alias must start with the prefix "alias/". Please see '
        "https://docs.aws.amazon.com/kms/latest/developerguide/kms-alias.html"
    ), message
    message = raises("ValidationException", kms.create_alias, AliasName="alias/has space", TargetKeyId=key_id)
    assert message == (
        "1 validation error detected: Value 'alias/has space' at 'aliasName' failed to satisfy "
        "constraint: Member must satisfy regular expression pattern: ^[a-zA-Z0-9:/_-]+$"
    ), message

    # Key ids: a malformed one is NotFoundException "Invalid keyId"; an
    # unknown well-formed one (and an mrk- id) "Key '<arn>' does not exist".
    for bad in ["fake-key-id", "1234abcd12ab34cd56ef1234567890ab", "mrk-fake-key-id"]:
        message = raises("NotFoundException", kms.describe_key, KeyId=bad)
        assert message == f"Invalid keyId '{bad}'", message
    unknown = "11111111-2222-4333-8444-555555555555"
    message = raises("NotFoundException", kms.describe_key, KeyId=unknown)
    assert message == f"Key 'arn:aws:kms:us-east-1:{ACCOUNT}:key/{unknown}' does not exist", message
    mrk = "mrk-1234abcd12ab34cd56ef1234567890ab"
    message = raises("NotFoundException", kms.describe_key, KeyId=mrk)
    assert message == f"Key 'arn:aws:kms:us-east-1:{ACCOUNT}:key/{mrk}' does not exist", message
    # A key ARN of another region.
    message = raises(
        "NotFoundException", kms.describe_key, KeyId=arn.replace(":us-east-1:", ":eu-west-1:")
    )
    assert message == "Invalid arn eu-west-1", message

    # CreateKey: AWS's sentences for usage, its enum form; refusals of
    # what aliasd cannot honour.
    message = raises("ValidationException", kms.create_key, KeySpec="RSA_2048")
    assert message == (
        "You must specify a KeyUsage value for all KMS keys except for symmetric encryption keys."
    ), message
    message = raises("ValidationException", kms.create_key, KeySpec="RSA_2048", KeyUsage="GENERATE_VERIFY_MAC")
    assert message == "KeyUsage GENERATE_VERIFY_MAC is not compatible with KeySpec RSA_2048", message
    message = raises("ValidationException", kms.create_key, KeySpec="RSA_1024")
    assert message.startswith(
        "1 validation error detected: Value 'RSA_1024' at 'keySpec' failed to satisfy "
        "constraint: Member must satisfy enum value set: ["
    ), message
    message = raises(
        "ValidationException", kms.create_key, KeySpec="SYMMETRIC_DEFAULT",
        CustomerMasterKeySpec="SYMMETRIC_DEFAULT",
    )
    assert "KeySpec and CustomerMasterKeySpec" in message, message
    message = raises("ValidationException", kms.create_key, MultiRegion=True)
    assert "MultiRegion" in message, message
    assert kms.create_key(MultiRegion=False)["KeyMetadata"]["MultiRegion"] is False

    # ScheduleKeyDeletion: AWS's validation form, naming the member as AWS
    # does (no gRPC field name).
    message = raises("ValidationException", kms.schedule_key_deletion, KeyId=key_id, PendingWindowInDays=6)
    assert message == (
        "1 validation error detected: Value '6' at 'pendingWindowInDays' failed to satisfy "
        "constraint: Member must have value greater than or equal to 7"
    ), message
    doomed = kms.create_key()["KeyMetadata"]
    kms.schedule_key_deletion(KeyId=doomed["KeyId"], PendingWindowInDays=7)
    pending = kms.describe_key(KeyId=doomed["KeyId"])["KeyMetadata"]
    assert "DeletionDate" in pending and "PendingDeletionWindowInDays" not in pending, pending
    out["doomed"] = doomed["KeyId"]

    # ListKeys takes a Limit up to 1000 (ListAliases only up to 100).
    for _ in range(3):
        kms.create_key()
    listed = kms.list_keys(Limit=1000)
    assert len(listed["Keys"]) >= 5 and listed["Truncated"] is False, listed
    message = raises("ValidationException", kms.list_keys, Limit=1001)
    assert message.endswith("less than or equal to 1000"), message
    raises("ValidationException", kms.list_aliases, Limit=101)
    message = raises("InvalidMarkerException", kms.list_keys, Marker="forged")
    assert "page_token" not in message, message

    # ListAliases lists AWS's predefined aliases after the account's own,
    # without a target, across pages, each once; a KeyId filter leaves them
    # out.
    kms.create_alias(AliasName="alias/zz-mine", TargetKeyId=key_id)
    seen, marker = [], None
    while True:
        page = kms.list_aliases(Limit=4, **({"Marker": marker} if marker else {}))
        seen.extend(page["Aliases"])
        assert len(page["Aliases"]) <= 4, page
        if not page["Truncated"]:
            break
        marker = page["NextMarker"]
    names = [a["AliasName"] for a in seen]
    assert len(names) == len(set(names)), names
    assert "alias/zz-mine" in names and "alias/aws/s3" in names and "alias/aws/ebs" in names, names
    s3 = next(a for a in seen if a["AliasName"] == "alias/aws/s3")
    assert "TargetKeyId" not in s3 and s3["AliasArn"] == f"arn:aws:kms:us-east-1:{ACCOUNT}:alias/aws/s3", s3
    assert [a["AliasName"] for a in kms.list_aliases(KeyId=key_id)["Aliases"]] == ["alias/zz-mine"]
    kms.delete_alias(AliasName="alias/zz-mine")

    # A request signed for another region is refused, naming both.
    message = raises("InvalidSignatureException", client("eu-west-1").list_keys)
    assert "eu-west-1" in message and "us-east-1" in message, message

    out["key"] = key_id
    print(json.dumps(out))


main()
