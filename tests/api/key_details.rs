//! Tags, key policies and descriptions through the generated gRPC client
//! (SPEC §12): what the rules refuse changes nothing.

use aliasd::pb;
use tonic::Code;

use crate::common::*;

fn tag(key: &str, value: &str) -> pb::Tag {
    pb::Tag {
        key: key.into(),
        value: value.into(),
    }
}

#[tokio::test]
async fn keys_carry_tags_a_policy_and_a_description() {
    let server = TestServer::start().await;
    let mut keys = server.keys.clone();
    let key = keys
        .create_key(pb::CreateKeyRequest {
            tags: vec![tag("team", "payments"), tag("cost", "")],
            policy: "{\"Version\": \"2012-10-17\"}".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .key
        .unwrap();
    let tags = |keys: &mut pb::key_service_client::KeyServiceClient<_>, page_size| {
        let request = pb::ListResourceTagsRequest {
            key_id: key.key_id.clone(),
            page_size,
            page_token: String::new(),
        };
        let mut keys = keys.clone();
        async move { keys.list_resource_tags(request).await.unwrap().into_inner() }
    };
    let listed = tags(&mut keys, 0).await;
    assert_eq!(listed.tags, vec![tag("cost", ""), tag("team", "payments")]);
    assert!(listed.next_page_token.is_empty());
    let first = tags(&mut keys, 1).await;
    assert_eq!(first.tags, vec![tag("cost", "")]);
    assert!(!first.next_page_token.is_empty());

    // Refused: nothing changes.
    for (bad, reason) in [
        (vec![tag("aws:x", "y")], "TAG_REFUSED"),
        (vec![tag("a", "1"), tag("a", "2")], "TAG_REFUSED"),
        (vec![tag(&"k".repeat(129), "v")], "INVALID_PARAMETER"),
    ] {
        assert_error(
            keys.tag_resource(pb::TagResourceRequest {
                key_id: key.key_id.clone(),
                tags: bad,
            })
            .await,
            Code::InvalidArgument,
            reason,
        );
    }
    assert_eq!(tags(&mut keys, 0).await.tags.len(), 2);
    keys.tag_resource(pb::TagResourceRequest {
        key_id: key.key_id.clone(),
        tags: vec![tag("team", "billing"), tag("env", "prod")],
    })
    .await
    .unwrap();
    keys.untag_resource(pb::UntagResourceRequest {
        key_id: key.key_id.clone(),
        tag_keys: vec!["cost".into(), "absent".into()],
    })
    .await
    .unwrap();
    assert_eq!(
        tags(&mut keys, 0).await.tags,
        vec![tag("env", "prod"), tag("team", "billing")]
    );

    let policy = keys
        .get_key_policy(pb::GetKeyPolicyRequest {
            key_id: key.key_id.clone(),
            policy_name: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(policy.policy, "{\"Version\": \"2012-10-17\"}");
    assert_eq!(policy.policy_name, "default");
    assert_error(
        keys.put_key_policy(pb::PutKeyPolicyRequest {
            key_id: key.key_id.clone(),
            policy_name: "default".into(),
            policy: "not json".into(),
        })
        .await,
        Code::InvalidArgument,
        "MALFORMED_POLICY",
    );
    assert_error(
        keys.get_key_policy(pb::GetKeyPolicyRequest {
            key_id: key.key_id.clone(),
            policy_name: "other".into(),
        })
        .await,
        Code::NotFound,
        "POLICY_NOT_FOUND",
    );
    // A key made without a policy has AWS's default one.
    let plain = server.create_key().await;
    let default = keys
        .get_key_policy(pb::GetKeyPolicyRequest {
            key_id: plain.key_id.clone(),
            policy_name: "default".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .policy;
    assert!(
        default.contains("arn:aws:iam::000000000000:root"),
        "{default}"
    );

    keys.update_key_description(pb::UpdateKeyDescriptionRequest {
        key_id: key.key_id.clone(),
        description: "payments, v2".into(),
    })
    .await
    .unwrap();
    assert_eq!(
        server.describe(&key.key_id).await.unwrap().description,
        "payments, v2"
    );
    // By alias: these take a key id or key ARN only.
    server
        .create_alias("alias/tagged", &key.key_id)
        .await
        .unwrap();
    assert_error(
        keys.tag_resource(pb::TagResourceRequest {
            key_id: "alias/tagged".into(),
            tags: vec![tag("x", "y")],
        })
        .await,
        Code::InvalidArgument,
        "TARGET_NOT_A_KEY",
    );
    // A CreateKey with tags the rules refuse makes no key.
    let before = server.list_keys().await.len();
    assert_error(
        keys.create_key(pb::CreateKeyRequest {
            tags: (0..51).map(|i| tag(&format!("k{i}"), "")).collect(),
            ..Default::default()
        })
        .await,
        Code::InvalidArgument,
        "TAG_REFUSED",
    );
    assert_eq!(server.list_keys().await.len(), before);
}
