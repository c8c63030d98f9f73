"""Huawei Cloud's KMS SDK (huaweicloudsdkkms), unmodified: a key's tags on
aliasd's Huawei endpoint (tests/api/huawei.rs), with AK/SK credentials.

usage: huawei_tags.py URL PROJECT_ID AK SK

create_kms_tag, batch_create_kms_tags (create and delete), delete_tag and
show_kms_tags. Prints one JSON object for the Rust side.
"""

import json
import sys

from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.exceptions import exceptions
from huaweicloudsdkkms.v2 import (
    BatchCreateKmsTagsRequest, BatchCreateKmsTagsRequestBody, CreateKeyRequest,
    CreateKeyRequestBody, CreateKmsTagRequest, CreateKmsTagRequestBody, DeleteTagRequest,
    KmsClient, ShowKmsTagsRequest, TagItem,
)

URL, PROJECT, AK, SK = sys.argv[1:5]


def refused(status, code, call, request):
    try:
        call(request)
    except exceptions.ClientRequestException as error:
        assert (error.status_code, error.error_code) == (status, code), (
            error.status_code, error.error_code, error.error_msg)
        return error
    raise AssertionError(f"expected {status} {code}, the call succeeded")


def main():
    credentials = BasicCredentials(AK, SK, PROJECT)
    kms = KmsClient.new_builder().with_credentials(credentials).with_endpoints([URL]).build()
    key = kms.create_key(CreateKeyRequest(body=CreateKeyRequestBody(key_alias="tagged"))).key_info.key_id

    def tags():
        shown = kms.show_kms_tags(ShowKmsTagsRequest(key_id=key))
        assert shown.exist_tags_num == len(shown.tags), shown
        return {t.key: t.value for t in shown.tags}

    assert tags() == {}
    kms.create_kms_tag(CreateKmsTagRequest(key_id=key, body=CreateKmsTagRequestBody(
        tag=TagItem(key="team", value="payments"))))
    kms.batch_create_kms_tags(BatchCreateKmsTagsRequest(key_id=key, body=BatchCreateKmsTagsRequestBody(
        action="create", tags=[TagItem(key="env", value="prod"), TagItem(key="cost", value="42")])))
    assert tags() == {"team": "payments", "env": "prod", "cost": "42"}, tags()
    kms.batch_create_kms_tags(BatchCreateKmsTagsRequest(key_id=key, body=BatchCreateKmsTagsRequestBody(
        action="delete", tags=[TagItem(key="cost", value="42")])))
    kms.delete_tag(DeleteTagRequest(key_id=key, key="team"))
    assert tags() == {"env": "prod"}, tags()
    # Refused, with Huawei's codes, and nothing changes: a key over Huawei's
    # 36 characters, a reserved key, an unknown key.
    refused(400, "KMS.0308", kms.create_kms_tag, CreateKmsTagRequest(
        key_id=key, body=CreateKmsTagRequestBody(tag=TagItem(key="k" * 37, value="v"))))
    refused(400, "KMS.0204", kms.create_kms_tag, CreateKmsTagRequest(
        key_id=key, body=CreateKmsTagRequestBody(tag=TagItem(key="aws:x", value="v"))))
    refused(404, "KMS.0207", kms.show_kms_tags, ShowKmsTagsRequest(key_id="11111111-2222-4333-8444-555555555555"))
    assert tags() == {"env": "prod"}, tags()
    print(json.dumps({"key": key}))


main()
