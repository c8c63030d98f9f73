"""Access by alias (ABAC) through boto3, signed (tests/api/aws.rs): an
admin moves aliases; a finance principal may Encrypt only with keys whose
aliases begin alias/finance-, and never through alias/finance-blocked.

usage: aws_abac.py URL ADMIN_KEY ADMIN_SECRET FINANCE_KEY FINANCE_SECRET
"""

import json
import sys

import boto3
from botocore.config import Config

URL = sys.argv[1]


def client(key, secret):
    return boto3.client(
        "kms", endpoint_url=URL, region_name="us-east-1",
        aws_access_key_id=key, aws_secret_access_key=secret,
        config=Config(retries={"max_attempts": 1}),
    )


admin = client(sys.argv[2], sys.argv[3])
finance = client(sys.argv[4], sys.argv[5])


def denied(call, **kwargs):
    try:
        call(**kwargs)
    except finance.exceptions.ClientError as error:
        assert error.response["Error"]["Code"] == "AccessDeniedException", error.response
        return
    raise AssertionError("expected AccessDeniedException, the call succeeded")


def main():
    one = admin.create_key()["KeyMetadata"]["KeyId"]
    two = admin.create_key()["KeyMetadata"]["KeyId"]
    denied(finance.encrypt, KeyId=one, Plaintext=b"x")
    admin.create_alias(AliasName="alias/finance-app", TargetKeyId=one)
    finance.encrypt(KeyId=one, Plaintext=b"x")
    finance.encrypt(KeyId="alias/finance-app", Plaintext=b"x")
    denied(finance.encrypt, KeyId=two, Plaintext=b"x")
    admin.update_alias(AliasName="alias/finance-app", TargetKeyId=two)
    finance.encrypt(KeyId=two, Plaintext=b"x")
    denied(finance.encrypt, KeyId=one, Plaintext=b"x")
    admin.create_alias(AliasName="alias/finance-blocked", TargetKeyId=two)
    denied(finance.encrypt, KeyId="alias/finance-blocked", Plaintext=b"x")
    finance.encrypt(KeyId="alias/finance-app", Plaintext=b"x")
    admin.delete_alias(AliasName="alias/finance-app")
    admin.delete_alias(AliasName="alias/finance-blocked")
    denied(finance.encrypt, KeyId=two, Plaintext=b"x")
    print(json.dumps({"one": one, "two": two}))


main()
