"""What the boto3 scripts of tests/python share: a KMS client of aliasd's
AWS endpoint, and a check that a call fails with AWS's exception."""

import boto3
from botocore.config import Config


def client(url, region="us-east-1", key="AKIAIOSFODNN7EXAMPLE",
           secret="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"):
    """boto3's KMS client, unmodified, pointed at `url`; no retries, and no
    client-side validation (so that the server's own refusals are seen)."""
    return boto3.client(
        "kms",
        endpoint_url=url,
        region_name=region,
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        config=Config(retries={"max_attempts": 1}, parameter_validation=False),
    )


def raises(kms, code, call, **kwargs):
    """The message of the ClientError of a call that must fail with `code`."""
    try:
        call(**kwargs)
    except kms.exceptions.ClientError as error:
        got = error.response["Error"]["Code"]
        assert got == code, (code, error.response)
        return error.response["Error"].get("Message", "")
    raise AssertionError(f"expected {code}, the call succeeded")
