"""Tags, key policies and descriptions (SPEC §12) through boto3, and the
calls Terraform's aws_kms_key and aws_kms_alias make on create, read,
update and delete, in their order (tests/api/aws.rs).

usage: aws_key_details.py URL

Prints one JSON object with what the Rust side checks in the store.
"""

import json
import sys

import kms_client

URL = sys.argv[1]
ACCOUNT = "000000000000"

kms = kms_client.client(URL)


def raises(code, call, **kwargs):
    return kms_client.raises(kms, code, call, **kwargs)


def tags_of(key_id, **kwargs):
    return {t["TagKey"]: t["TagValue"] for t in kms.list_resource_tags(KeyId=key_id, **kwargs)["Tags"]}


POLICY = json.dumps({
    "Version": "2012-10-17",
    "Id": "terraform",
    "Statement": [{
        "Sid": "Enable IAM User Permissions",
        "Effect": "Allow",
        "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
        "Action": "kms:*",
        "Resource": "*",
    }],
})


def terraform():
    """aws_kms_key and aws_kms_alias: create, refresh, update, destroy."""
    # Create: CreateKey with Policy and Tags, then the reads the provider
    # makes to fill its state.
    created = kms.create_key(
        Description="terraform key",
        KeyUsage="ENCRYPT_DECRYPT",
        KeySpec="SYMMETRIC_DEFAULT",
        Policy=POLICY,
        BypassPolicyLockoutSafetyCheck=False,
        Tags=[{"TagKey": "Name", "TagValue": "tf"}, {"TagKey": "env", "TagValue": "test"}],
    )["KeyMetadata"]
    key_id = created["KeyId"]
    described = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    assert described["Description"] == "terraform key", described
    policy = kms.get_key_policy(KeyId=key_id, PolicyName="default")
    assert json.loads(policy["Policy"]) == json.loads(POLICY), policy
    assert policy["PolicyName"] == "default"
    assert kms.get_key_rotation_status(KeyId=key_id)["KeyRotationEnabled"] is False
    assert tags_of(key_id) == {"Name": "tf", "env": "test"}
    # aws_kms_alias create and refresh.
    kms.create_alias(AliasName="alias/terraform", TargetKeyId=key_id)
    aliases = kms.list_aliases(KeyId=key_id)["Aliases"]
    assert [a["AliasName"] for a in aliases] == ["alias/terraform"], aliases
    # Update: description, policy, tags (add one, change one, remove one),
    # rotation; the alias moves to a second key.
    kms.update_key_description(KeyId=key_id, Description="terraform key, v2")
    new_policy = json.loads(POLICY)
    new_policy["Id"] = "terraform-v2"
    kms.put_key_policy(KeyId=key_id, PolicyName="default", Policy=json.dumps(new_policy))
    kms.tag_resource(KeyId=key_id, Tags=[{"TagKey": "owner", "TagValue": "ops"}, {"TagKey": "env", "TagValue": "prod"}])
    kms.untag_resource(KeyId=key_id, TagKeys=["Name", "never-there"])
    kms.enable_key_rotation(KeyId=key_id)
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["Description"] == "terraform key, v2"
    assert json.loads(kms.get_key_policy(KeyId=key_id, PolicyName="default")["Policy"])["Id"] == "terraform-v2"
    assert tags_of(key_id) == {"env": "prod", "owner": "ops"}
    assert kms.get_key_rotation_status(KeyId=key_id)["KeyRotationEnabled"] is True
    second = kms.create_key(Description="terraform key 2")["KeyMetadata"]["KeyId"]
    kms.update_alias(AliasName="alias/terraform", TargetKeyId=second)
    assert kms.describe_key(KeyId="alias/terraform")["KeyMetadata"]["KeyId"] == second
    # Destroy: the alias, then the keys (7 days).
    kms.delete_alias(AliasName="alias/terraform")
    for doomed in [second]:
        scheduled = kms.schedule_key_deletion(KeyId=doomed, PendingWindowInDays=7)
        assert scheduled["KeyState"] == "PendingDeletion"
    return key_id, second


def main():
    out = {}
    out["terraform"], out["destroyed"] = terraform()

    key = kms.create_key(Description="details")["KeyMetadata"]
    key_id = key["KeyId"]
    # A key made without a policy has AWS's default one.
    default = kms.get_key_policy(KeyId=key_id, PolicyName="default")["Policy"]
    statement = json.loads(default)["Statement"][0]
    assert statement["Principal"] == {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, default
    assert statement["Action"] == "kms:*" and json.loads(default)["Id"] == "key-default-1"
    assert kms.list_key_policies(KeyId=key_id)["PolicyNames"] == ["default"]
    message = raises("NotFoundException", kms.get_key_policy, KeyId=key_id, PolicyName="other")
    assert message == "No such policy exists", message
    raises("MalformedPolicyDocumentException", kms.put_key_policy, KeyId=key_id, PolicyName="default", Policy="{not json")
    raises("LimitExceededException", kms.put_key_policy, KeyId=key_id, PolicyName="default",
           Policy=json.dumps({"Id": "x" * 33000}))
    raises("MalformedPolicyDocumentException", kms.create_key, Policy="[]")

    # Tags: AWS's exceptions and messages, nothing applied when refused.
    many = [{"TagKey": f"k{i}", "TagValue": "v"} for i in range(51)]
    assert raises("TagException", kms.create_key, Tags=many) == "Too many tags"
    assert raises("TagException", kms.tag_resource, KeyId=key_id, Tags=many) == "Too many tags"
    for reserved in ["aws:team", "AWS:team"]:
        message = raises("TagException", kms.tag_resource, KeyId=key_id, Tags=[{"TagKey": reserved, "TagValue": "x"}])
        assert message == "Tags beginning with aws: are reserved", message
    message = raises("TagException", kms.tag_resource, KeyId=key_id,
                     Tags=[{"TagKey": "a", "TagValue": "1"}, {"TagKey": "a", "TagValue": "2"}])
    assert message == "Duplicate tag keys", message
    long_key = "k" * 129
    message = raises("ValidationException", kms.create_key, Tags=[{"TagKey": long_key, "TagValue": "v"}])
    assert message == (
        f"1 validation error detected: Value '{long_key}' at 'tags.1.member.tagKey' failed to "
        "satisfy constraint: Member must have length less than or equal to 128"
    ), message
    message = raises("ValidationException", kms.tag_resource, KeyId=key_id,
                     Tags=[{"TagKey": "ok", "TagValue": "v"}, {"TagKey": "long", "TagValue": "v" * 257}])
    assert "'tags.2.member.tagValue'" in message, message
    assert tags_of(key_id) == {}
    # 50 tags fit; the 51st does not; paging with Limit.
    kms.tag_resource(KeyId=key_id, Tags=many[:50])
    assert raises("TagException", kms.tag_resource, KeyId=key_id, Tags=[{"TagKey": "one-more", "TagValue": ""}]) == "Too many tags"
    seen, marker = [], None
    while True:
        page = kms.list_resource_tags(KeyId=key_id, Limit=7, **({"Marker": marker} if marker else {}))
        seen.extend(t["TagKey"] for t in page["Tags"])
        if not page["Truncated"]:
            break
        marker = page["NextMarker"]
    assert sorted(seen) == sorted(f"k{i}" for i in range(50)) and len(seen) == 50, seen
    raises("ValidationException", kms.list_resource_tags, KeyId=key_id, Limit=51)
    # By alias: these operations take a key id or key ARN only.
    kms.create_alias(AliasName="alias/details", TargetKeyId=key_id)
    raises("ValidationException", kms.tag_resource, KeyId="alias/details", Tags=[{"TagKey": "x", "TagValue": "y"}])
    assert len(tags_of(key["Arn"])) == 50
    # Descriptions: up to 8192 characters.
    kms.update_key_description(KeyId=key["Arn"], Description="")
    raises("ValidationException", kms.update_key_description, KeyId=key_id, Description="d" * 8193)
    # Pending deletion: no changes to tags, policy or description.
    doomed = kms.create_key()["KeyMetadata"]["KeyId"]
    kms.schedule_key_deletion(KeyId=doomed, PendingWindowInDays=7)
    raises("KMSInvalidStateException", kms.tag_resource, KeyId=doomed, Tags=[{"TagKey": "x", "TagValue": "y"}])
    raises("KMSInvalidStateException", kms.update_key_description, KeyId=doomed, Description="x")
    raises("NotFoundException", kms.list_resource_tags, KeyId="11111111-2222-4333-8444-555555555555")
    out["tagged"] = key_id
    print(json.dumps(out))


main()
