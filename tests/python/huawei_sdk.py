"""Huawei Cloud's KMS SDK (huaweicloudsdkkms), unmodified, against aliasd's
Huawei endpoint (tests/api/huawei.rs), with AK/SK credentials.

usage: huawei_sdk.py URL PROJECT_ID AK SK [wrong-sk]

Asserts what the SDK returns or raises (ClientRequestException's
status_code and error_code); prints one JSON object for the Rust side,
which checks the state through gRPC.
"""

import json
import sys

from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.exceptions import exceptions
from huaweicloudsdkkms.v2 import (
    AssociateAliasRequest, AssociateAliasRequestBody, CreateAliasRequest,
    CreateAliasRequestBody, CreateKeyRequest, CreateKeyRequestBody,
    DeleteAliasRequest, DeleteAliasRequestBody, KmsClient, ListAliasesRequest,
    ListKeysRequest, ListKeysRequestBody,
    ListKeyDetailRequest, OperateKeyRequestBody, ScheduleKeyDeletionRequestBody,
    DeleteKeyRequest, UpdateKeyAliasRequest, UpdateKeyAliasRequestBody,
)

URL, PROJECT, AK, SK = sys.argv[1:5]
# The seed page's example key (made by the test's seed file).
EXAMPLE_KEY = "bb6a3d22-dc93-47ac-b5bd-88df7ad35f1e"
DEFAULT_KEY = "bb6a3d22-0000-4000-8000-00000000d0d0"


def client(sk=SK):
    credentials = BasicCredentials(AK, sk, PROJECT)
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
    if len(sys.argv) > 5:
        # A wrong SK: refused, nothing created.
        refused(401, "KMS.0302", client(sys.argv[5]).create_key,
                CreateKeyRequest(body=CreateKeyRequestBody(key_alias="forged")))
        return {}
    kms = client()

    # The seed page's example request, as printed.
    response = kms.update_key_alias(UpdateKeyAliasRequest(body=UpdateKeyAliasRequestBody(
        key_alias="test", key_id="bb6a3d22-dc93-47ac-b5bd-88df7ad35f1e")))
    assert response.key_info.key_id == EXAMPLE_KEY, response
    assert response.key_info.key_alias == "test", response
    # Again, to another name: the one alias is renamed.
    response = kms.update_key_alias(UpdateKeyAliasRequest(body=UpdateKeyAliasRequestBody(
        key_alias="test-renamed", key_id=EXAMPLE_KEY,
        sequence="919c82d4-8046-4722-9094-35c3c6524cff")))
    assert response.key_info.key_alias == "test-renamed", response

    # create_key with an alias, then the alias API.
    created = kms.create_key(CreateKeyRequest(body=CreateKeyRequestBody(
        key_alias="sdk-key", key_description="made by the SDK")))
    key = created.key_info.key_id
    assert created.key_info.domain_id, created
    other = kms.create_key(CreateKeyRequest(body=CreateKeyRequestBody(
        key_alias="sdk-other"))).key_info.key_id
    detail = kms.list_key_detail(ListKeyDetailRequest(body=OperateKeyRequestBody(key_id=key)))
    info = detail.key_info
    assert (info.key_alias, info.key_state, info.key_description) == (
        "sdk-key", "2", "made by the SDK"), info
    assert info.key_spec == "AES_256" and info.default_key_flag == "0", info
    assert int(info.creation_date) > 1_700_000_000_000, info

    alias = kms.create_alias(CreateAliasRequest(body=CreateAliasRequestBody(
        key_id=key, alias="alias/sdk-extra")))
    assert alias.alias == "alias/sdk-extra" and alias.key_id == key, alias
    associated = kms.associate_alias(AssociateAliasRequest(body=AssociateAliasRequestBody(
        alias="alias/sdk-extra", target_key_id=other)))
    assert associated.key_id == other, associated

    # Paging through one key's aliases, three at a time.
    for i in range(7):
        kms.create_alias(CreateAliasRequest(body=CreateAliasRequestBody(
            key_id=other, alias=f"alias/sdk-page-{i}")))
    names, marker, pages = [], None, 0
    while True:
        page = kms.list_aliases(ListAliasesRequest(key_id=other, limit="3", marker=marker))
        body = page.body[0]
        names += [a.alias for a in body.aliases]
        pages += 1
        marker = body.page_info.next_marker
        if not marker:
            break
    assert pages == 3, pages
    assert names == sorted(["alias/sdk-extra", "alias/sdk-other"]
                           + [f"alias/sdk-page-{i}" for i in range(7)]), names

    kms.delete_alias(DeleteAliasRequest(body=DeleteAliasRequestBody(
        key_id=other, aliases=["alias/sdk-page-0", "alias/sdk-page-1"])))

    # The seed page's two constraints.
    refused(400, "KMS.0211", kms.update_key_alias, UpdateKeyAliasRequest(
        body=UpdateKeyAliasRequestBody(key_alias="team/default", key_id=key)))
    refused(400, "KMS.0211", kms.update_key_alias, UpdateKeyAliasRequest(
        body=UpdateKeyAliasRequestBody(key_alias="renamed", key_id=DEFAULT_KEY)))
    kms.delete_key(DeleteKeyRequest(body=ScheduleKeyDeletionRequestBody(
        key_id=EXAMPLE_KEY, pending_days="7")))
    refused(400, "KMS.0210", kms.update_key_alias, UpdateKeyAliasRequest(
        body=UpdateKeyAliasRequestBody(key_alias="too-late", key_id=EXAMPLE_KEY)))
    # And the others update-key-alias can meet.
    refused(404, "KMS.0207", kms.update_key_alias, UpdateKeyAliasRequest(
        body=UpdateKeyAliasRequestBody(key_alias="x", key_id="00000000-0000-4000-8000-000000000000")))
    refused(400, "KMS.0205", kms.update_key_alias, UpdateKeyAliasRequest(
        body=UpdateKeyAliasRequestBody(key_alias="x", key_id="not-a-key")))
    refused(400, "KMS.1101", kms.update_key_alias, UpdateKeyAliasRequest(
        body=UpdateKeyAliasRequestBody(key_alias="has:colon", key_id=key)))
    refused(400, "KMS.1104", kms.update_key_alias, UpdateKeyAliasRequest(
        body=UpdateKeyAliasRequestBody(key_alias="sdk-other", key_id=key)))
    refused(400, "KMS.1101", kms.update_key_alias, UpdateKeyAliasRequest(
        body=UpdateKeyAliasRequestBody(key_alias="one-of-many", key_id=other)))
    refused(400, "KMS.0206", kms.update_key_alias, UpdateKeyAliasRequest(
        body=UpdateKeyAliasRequestBody(key_alias="another", key_id=key,
                                       sequence="919c82d4-8046-4722-9094-35c3c6524cff")))
    # list_keys, two keys a page: every key of the account once, each with
    # its first alias.
    seen, marker = {}, None
    while True:
        page = kms.list_keys(ListKeysRequest(body=ListKeysRequestBody(limit="2", marker=marker)))
        assert len(page.keys) <= 2, page
        seen.update({d.key_id: d.key_alias for d in page.key_details})
        if page.truncated != "true":
            break
        marker = page.next_marker
    assert seen == {EXAMPLE_KEY: "test-renamed", DEFAULT_KEY: "kms/default",
                    key: "sdk-key", other: "sdk-extra"}, seen
    return {"key": key, "other": other}


print(json.dumps(main()))
