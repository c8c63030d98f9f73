//! Keys that work (SPEC §11), through the generated gRPC client: encryption
//! by alias across an UpdateAlias, data keys, signatures and MACs, each
//! refusal with its reason, rotation, and what the store keeps of the
//! material.

use aliasd::pb::crypto_service_client::CryptoServiceClient;
use aliasd::pb::{
    self, DataKeySpec, EncryptionAlgorithm, KeyPairSpec, KeySpec, KeyUsage, MacAlgorithm,
    MessageType, SigningAlgorithm,
};
use tonic::transport::Channel;
use tonic::Code;

use crate::common::{assert_error, TestServer};

fn crypto(server: &TestServer) -> CryptoServiceClient<Channel> {
    CryptoServiceClient::new(server.channel.clone())
}

async fn encrypt(
    server: &TestServer,
    key_id: &str,
    plaintext: &[u8],
    context: &[(&str, &str)],
) -> Result<pb::EncryptResponse, tonic::Status> {
    crypto(server)
        .encrypt(pb::EncryptRequest {
            key_id: key_id.into(),
            plaintext: plaintext.to_vec().into(),
            encryption_context: context
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        })
        .await
        .map(|r| r.into_inner())
}

async fn decrypt(
    server: &TestServer,
    blob: &[u8],
    context: &[(&str, &str)],
) -> Result<pb::DecryptResponse, tonic::Status> {
    crypto(server)
        .decrypt(pb::DecryptRequest {
            ciphertext_blob: blob.to_vec().into(),
            encryption_context: context
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        })
        .await
        .map(|r| r.into_inner())
}

#[tokio::test]
async fn a_ciphertext_made_through_an_alias_decrypts_with_its_own_key_after_the_alias_moves() {
    let server = TestServer::start().await;
    let first = server.create_key().await;
    let second = server.create_key().await;
    server
        .create_alias("alias/app", &first.key_id)
        .await
        .unwrap();
    let context = [("tenant", "acme")];

    let before = encrypt(&server, "alias/app", b"made before", &context)
        .await
        .unwrap();
    assert_eq!(before.key_id, first.arn);
    assert_eq!(before.key_material_id, first.current_key_material_id);
    server
        .update_alias("alias/app", &second.key_id)
        .await
        .unwrap();
    let after = encrypt(&server, "alias/app", b"made after", &context)
        .await
        .unwrap();
    assert_eq!(after.key_id, second.arn);

    let opened = decrypt(&server, &before.ciphertext_blob, &context)
        .await
        .unwrap();
    assert_eq!(
        (opened.plaintext.as_slice(), opened.key_id.as_str()),
        (&b"made before"[..], first.arn.as_str())
    );
    let opened = decrypt(&server, &after.ciphertext_blob, &context)
        .await
        .unwrap();
    assert_eq!(
        (opened.plaintext.as_slice(), opened.key_id.as_str()),
        (&b"made after"[..], second.arn.as_str())
    );

    // The context is authenticated: another one (or none) does not open it.
    for other in [&[("tenant", "other")][..], &[]] {
        assert_error(
            decrypt(&server, &before.ciphertext_blob, other).await,
            Code::InvalidArgument,
            "INVALID_CIPHERTEXT",
        );
    }
    // A changed byte does not either.
    let mut changed = before.ciphertext_blob.to_vec();
    let last = changed.len() - 1;
    changed[last] ^= 1;
    assert_error(
        decrypt(&server, &changed, &context).await,
        Code::InvalidArgument,
        "INVALID_CIPHERTEXT",
    );

    // Naming the other key is INCORRECT_KEY; naming the right one by alias
    // of another key is too.
    assert_error(
        crypto(&server)
            .decrypt(pb::DecryptRequest {
                ciphertext_blob: before.ciphertext_blob.clone(),
                encryption_context: [("tenant".into(), "acme".into())].into(),
                key_id: "alias/app".into(),
                ..Default::default()
            })
            .await,
        Code::InvalidArgument,
        "INCORRECT_KEY",
    );
}

#[tokio::test]
async fn a_disabled_or_deleting_key_refuses_use_and_a_wrong_usage_is_named() {
    let server = TestServer::start().await;
    let key = server.create_key().await;
    let blob = encrypt(&server, &key.key_id, b"x", &[])
        .await
        .unwrap()
        .ciphertext_blob;
    server.disable_key(&key.key_id).await.unwrap();
    let status = assert_error(
        encrypt(&server, &key.key_id, b"x", &[]).await,
        Code::FailedPrecondition,
        "KEY_DISABLED",
    );
    assert_eq!(status.message(), format!("{} is disabled.", key.arn));
    assert_error(
        decrypt(&server, &blob, &[]).await,
        Code::FailedPrecondition,
        "KEY_DISABLED",
    );
    server.enable_key(&key.key_id).await.unwrap();
    server.schedule_deletion(&key.key_id, 7).await.unwrap();
    let status = assert_error(
        decrypt(&server, &blob, &[]).await,
        Code::FailedPrecondition,
        "KEY_INVALID_STATE",
    );
    assert_eq!(
        status.message(),
        format!("{} is pending deletion.", key.arn)
    );

    let signing = server
        .create_key_of(KeySpec::EccNistP256, KeyUsage::SignVerify)
        .await;
    let status = assert_error(
        encrypt(&server, &signing.key_id, b"x", &[]).await,
        Code::FailedPrecondition,
        "KEY_USAGE_NOT_ALLOWED",
    );
    assert_eq!(
        status.message(),
        format!(
            "{} key usage is SIGN_VERIFY which is not valid for Encrypt.",
            signing.arn
        )
    );
    assert_error(
        encrypt(&server, &signing.key_id, &[0; 4097], &[]).await,
        Code::InvalidArgument,
        "INVALID_PARAMETER",
    );
    assert_error(
        encrypt(&server, "alias/missing", b"x", &[]).await,
        Code::NotFound,
        "ALIAS_NOT_FOUND",
    );
}

#[tokio::test]
async fn data_keys_signatures_and_macs_round_trip() {
    let server = TestServer::start().await;
    let key = server.create_key().await;
    server
        .create_alias("alias/data", &key.key_id)
        .await
        .unwrap();
    let data_key = crypto(&server)
        .generate_data_key(pb::GenerateDataKeyRequest {
            key_id: "alias/data".into(),
            key_spec: DataKeySpec::Aes256 as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(data_key.plaintext.len(), 32);
    let opened = decrypt(&server, &data_key.ciphertext_blob, &[])
        .await
        .unwrap();
    assert_eq!(opened.plaintext, data_key.plaintext);
    assert_error(
        crypto(&server)
            .generate_data_key(pb::GenerateDataKeyRequest {
                key_id: "alias/data".into(),
                key_spec: DataKeySpec::Aes256 as i32,
                number_of_bytes: Some(16),
                ..Default::default()
            })
            .await,
        Code::InvalidArgument,
        "INVALID_PARAMETER",
    );

    let pair = crypto(&server)
        .generate_data_key_pair(pb::GenerateDataKeyPairRequest {
            key_id: key.key_id.clone(),
            key_pair_spec: KeyPairSpec::EccNistP256 as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let opened = decrypt(&server, &pair.private_key_ciphertext_blob, &[])
        .await
        .unwrap();
    assert_eq!(opened.plaintext, pair.private_key_plaintext);

    let signer = server
        .create_key_of(KeySpec::EccNistP256, KeyUsage::SignVerify)
        .await;
    server
        .create_alias("alias/signer", &signer.key_id)
        .await
        .unwrap();
    let signed = crypto(&server)
        .sign(pb::SignRequest {
            key_id: "alias/signer".into(),
            message: b"statement".to_vec(),
            signing_algorithm: SigningAlgorithm::EcdsaSha256 as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let verify = |message: &[u8], algorithm: SigningAlgorithm| pb::VerifyRequest {
        key_id: "alias/signer".into(),
        message: message.to_vec(),
        signature: signed.signature.clone(),
        signing_algorithm: algorithm as i32,
        message_type: MessageType::Raw as i32,
    };
    let verified = crypto(&server)
        .verify(verify(b"statement", SigningAlgorithm::EcdsaSha256))
        .await
        .unwrap()
        .into_inner();
    assert!(verified.signature_valid);
    assert_error(
        crypto(&server)
            .verify(verify(b"statemenT", SigningAlgorithm::EcdsaSha256))
            .await,
        Code::InvalidArgument,
        "SIGNATURE_NOT_VALID",
    );
    let status = assert_error(
        crypto(&server)
            .verify(verify(b"statement", SigningAlgorithm::EcdsaSha384))
            .await,
        Code::FailedPrecondition,
        "KEY_USAGE_NOT_ALLOWED",
    );
    assert_eq!(
        status.message(),
        "Algorithm ECDSA_SHA_384 is incompatible with key spec ECC_NIST_P256."
    );

    let hmac = server
        .create_key_of(KeySpec::Hmac384, KeyUsage::GenerateVerifyMac)
        .await;
    let mac = crypto(&server)
        .generate_mac(pb::GenerateMacRequest {
            key_id: hmac.key_id.clone(),
            message: b"m".to_vec(),
            mac_algorithm: MacAlgorithm::HmacSha384 as i32,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(mac.mac.len(), 48);
    assert_error(
        crypto(&server)
            .verify_mac(pb::VerifyMacRequest {
                key_id: hmac.key_id.clone(),
                message: b"n".to_vec(),
                mac: mac.mac.clone(),
                mac_algorithm: MacAlgorithm::HmacSha384 as i32,
            })
            .await,
        Code::InvalidArgument,
        "MAC_NOT_VALID",
    );

    let random = crypto(&server)
        .generate_random(pb::GenerateRandomRequest {
            number_of_bytes: 1024,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(random.plaintext.len(), 1024);
    assert_error(
        crypto(&server)
            .generate_random(pb::GenerateRandomRequest {
                number_of_bytes: 1025,
            })
            .await,
        Code::InvalidArgument,
        "INVALID_PARAMETER",
    );

    let rsa = server
        .create_key_of(KeySpec::Rsa2048, KeyUsage::EncryptDecrypt)
        .await;
    let sealed = crypto(&server)
        .encrypt(pb::EncryptRequest {
            key_id: rsa.key_id.clone(),
            plaintext: b"for rsa".to_vec().into(),
            encryption_algorithm: EncryptionAlgorithm::RsaesOaepSha256 as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(sealed.ciphertext_blob.len(), 256);
    let opened = crypto(&server)
        .decrypt(pb::DecryptRequest {
            ciphertext_blob: sealed.ciphertext_blob,
            key_id: rsa.key_id.clone(),
            encryption_algorithm: EncryptionAlgorithm::RsaesOaepSha256 as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(opened.plaintext, b"for rsa");
}

#[tokio::test]
async fn rotation_keeps_old_ciphertexts_working_and_lists_each_version() {
    let server = TestServer::start().await;
    let key = server.create_key().await;
    let old = encrypt(&server, &key.key_id, b"old", &[]).await.unwrap();
    let rotated = server
        .keys
        .clone()
        .rotate_key_on_demand(pb::RotateKeyOnDemandRequest {
            key_id: key.key_id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .key
        .unwrap();
    assert_ne!(rotated.current_key_material_id, key.current_key_material_id);
    let new = encrypt(&server, &key.key_id, b"new", &[]).await.unwrap();
    assert_eq!(new.key_material_id, rotated.current_key_material_id);
    let opened = decrypt(&server, &old.ciphertext_blob, &[]).await.unwrap();
    assert_eq!(opened.key_material_id, key.current_key_material_id);
    assert_eq!(opened.plaintext, b"old");
    let rotations = server
        .keys
        .clone()
        .list_key_rotations(pb::ListKeyRotationsRequest {
            key_id: key.key_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .rotations;
    assert_eq!(rotations.len(), 1);
    assert_eq!(
        rotations[0].key_material_id,
        rotated.current_key_material_id
    );
    assert!(rotations[0].current);
    assert_eq!(
        rotations[0].rotation_type,
        pb::RotationType::OnDemand as i32
    );

    assert_error(
        server
            .keys
            .clone()
            .enable_key_rotation(pb::EnableKeyRotationRequest {
                key_id: key.key_id.clone(),
                rotation_period_in_days: 89,
            })
            .await,
        Code::InvalidArgument,
        "INVALID_PARAMETER",
    );
    let status = server
        .keys
        .clone()
        .enable_key_rotation(pb::EnableKeyRotationRequest {
            key_id: key.key_id.clone(),
            rotation_period_in_days: 90,
        })
        .await
        .unwrap()
        .into_inner()
        .status
        .unwrap();
    assert!(status.key_rotation_enabled);
    assert_eq!(status.rotation_period_in_days, 90);
    let hmac = server
        .create_key_of(KeySpec::Hmac256, KeyUsage::GenerateVerifyMac)
        .await;
    assert_error(
        server
            .keys
            .clone()
            .rotate_key_on_demand(pb::RotateKeyOnDemandRequest {
                key_id: hmac.key_id.clone(),
            })
            .await,
        Code::FailedPrecondition,
        "UNSUPPORTED_OPERATION",
    );
}

/// The store keeps material wrapped: the bytes of a key's stored record do
/// not decrypt the key's own ciphertext taken as AES keys, wherever they
/// are cut.
#[tokio::test]
async fn a_keys_stored_record_is_not_its_material() {
    let server = TestServer::start().await;
    let key = server.create_key().await;
    let sealed = encrypt(&server, &key.key_id, b"under the key", &[])
        .await
        .unwrap()
        .ciphertext_blob;
    let dir = server.stop().await;
    let store = crate::common::open_store(dir.path());
    let (keys, _) = store.all_keys(None, 10, |_| true).await.unwrap();
    let (_, stored) = keys
        .into_iter()
        .find(|(_, k)| k.key_id.as_str() == key.key_id)
        .unwrap();
    let record = aliasd::store::records::encode(&aliasd::store::records::KeyRecord::from(&stored));
    let opens_with = |bytes: &[u8]| {
        let aes = aws_lc_rs::aead::LessSafeKey::new(
            aws_lc_rs::aead::UnboundKey::new(&aws_lc_rs::aead::AES_256_GCM, bytes).unwrap(),
        );
        aliasd::crypto::ops::open(&aes, crate::common::ACCOUNT, &sealed, &Default::default())
            .is_ok()
    };
    // No 32 bytes of the record, wherever they are cut, are the key.
    for start in 0..=record.len() - 32 {
        assert!(
            !opens_with(&record[start..start + 32]),
            "the record holds the key at {start}"
        );
    }
    // The check can fail: the material, unwrapped under the root key the
    // server used, does open it.
    let root = aliasd::crypto::RootKey::load(&crate::common::root_key_file(dir.path())).unwrap();
    let material = &stored.materials[0];
    let plain = root
        .unwrap(
            crate::common::ACCOUNT,
            &stored.key_id,
            &material.id,
            &material.wrapped,
        )
        .unwrap();
    assert!(opens_with(&plain));
}

#[tokio::test]
async fn another_root_key_refuses_the_keys_made_under_the_first_and_check_names_them() {
    let server = TestServer::start().await;
    let key = server.create_key().await;
    let sealed = encrypt(&server, &key.key_id, b"x", &[]).await.unwrap();
    let dir = server.stop().await;
    // The right root key, kept aside; another one in its place.
    let path = crate::common::root_key_file(dir.path());
    let original = std::fs::read(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    aliasd::crypto::RootKey::create(&path).unwrap();
    let wrong = TestServer::start_in(
        dir,
        |_| {},
        std::sync::Arc::new(aliasd::domain::SystemClock),
    )
    .await;
    let status = assert_error(
        decrypt(&wrong, &sealed.ciphertext_blob, &[]).await,
        Code::FailedPrecondition,
        "KEY_MATERIAL_UNAVAILABLE",
    );
    assert!(
        status.message().contains("another root key"),
        "{}",
        status.message()
    );
    assert_error(
        encrypt(&wrong, &key.key_id, b"x", &[]).await,
        Code::FailedPrecondition,
        "KEY_MATERIAL_UNAVAILABLE",
    );
    // A key made now works: the server serves what it can, nothing wrong.
    let fresh = wrong.create_key().await;
    let blob = encrypt(&wrong, &fresh.key_id, b"y", &[]).await.unwrap();
    assert_eq!(
        decrypt(&wrong, &blob.ciphertext_blob, &[])
            .await
            .unwrap()
            .plaintext,
        b"y"
    );
    let dir = wrong.stop().await;

    // check names the key whose material does not unwrap.
    let args = crate::common::store_args(dir.path());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let checked = crate::common::run_aliasd(&[&["check"][..], &args].concat(), &[]).await;
    let out = String::from_utf8_lossy(&checked.stdout);
    assert_eq!(checked.status.code(), Some(1), "{out}");
    assert!(
        out.contains(&key.key_id) && out.contains("does not unwrap"),
        "{out}"
    );
    assert!(!out.contains(&fresh.key_id), "{out}");

    // With the right root key again, the old key works (and the new one
    // is the one that does not).
    std::fs::write(&path, original).unwrap();
    let right = TestServer::start_in(
        dir,
        |_| {},
        std::sync::Arc::new(aliasd::domain::SystemClock),
    )
    .await;
    assert_eq!(
        decrypt(&right, &sealed.ciphertext_blob, &[])
            .await
            .unwrap()
            .plaintext,
        b"x"
    );
}

#[tokio::test]
async fn a_backup_restored_with_the_same_root_key_decrypts_old_ciphertexts() {
    let server = TestServer::start().await;
    let key = server.create_key().await;
    server
        .create_alias("alias/kept", &key.key_id)
        .await
        .unwrap();
    let sealed = encrypt(&server, "alias/kept", b"kept", &[("c", "1")])
        .await
        .unwrap();
    let files = tempfile::tempdir().unwrap();
    let backup = files.path().join("b.backup");
    let endpoint = format!("http://{}", server.running.as_ref().unwrap().addr);
    let taken = crate::common::run_aliasd(
        &[
            "backup",
            "--endpoint",
            &endpoint,
            "--file",
            backup.to_str().unwrap(),
        ],
        &[],
    )
    .await;
    assert!(taken.status.success(), "{taken:?}");
    // The backup holds no plain material: not even the wrapped material's
    // root key (it is not in the store), so no 32-byte key of the root key
    // file appears in it.
    let root = std::fs::read_to_string(crate::common::root_key_file(server.dir.path())).unwrap();
    let backup_bytes = std::fs::read(&backup).unwrap();
    assert!(!backup_bytes
        .windows(root.trim().len())
        .any(|w| w == root.trim().as_bytes()));

    let restored = tempfile::tempdir().unwrap();
    crate::common::share_root_key(server.dir.path(), restored.path());
    let args = crate::common::store_args(restored.path());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let done = crate::common::run_aliasd(
        &[&["restore"][..], &args, &[backup.to_str().unwrap()]].concat(),
        &[],
    )
    .await;
    assert!(done.status.success(), "{done:?}");
    let copy = TestServer::start_in(
        restored,
        |_| {},
        std::sync::Arc::new(aliasd::domain::SystemClock),
    )
    .await;
    let opened = decrypt(&copy, &sealed.ciphertext_blob, &[("c", "1")])
        .await
        .unwrap();
    assert_eq!(opened.plaintext, b"kept");
    assert_eq!(opened.key_id, key.arn);
}

/// Keys stored without material (before keys had it; seed-file keys) get
/// it when the server starts, and work at once.
#[tokio::test]
async fn keys_stored_without_material_get_it_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    // A key record as an earlier version wrote it: no material.
    let store = crate::common::open_store(dir.path());
    let old = aliasd::domain::Key {
        key_id: aliasd::domain::KeyId::parse("key_id", "dddddddd-0000-4000-8000-000000000001")
            .unwrap(),
        description: "made before keys had material".into(),
        key_spec: aliasd::domain::KeySpec::SYMMETRIC_DEFAULT,
        key_usage: aliasd::domain::KeyUsage::ENCRYPT_DECRYPT,
        key_state: aliasd::domain::KeyState::ENABLED,
        key_manager: aliasd::domain::KeyManager::CUSTOMER,
        creation_time: 1,
        deletion_time: None,
        pending_window_in_days: 0,
        materials: Vec::new(),
        rotation: None,
        tags: Default::default(),
        policy: None,
    };
    let signing = aliasd::domain::Key {
        key_id: aliasd::domain::KeyId::parse("key_id", "dddddddd-0000-4000-8000-000000000002")
            .unwrap(),
        key_spec: aliasd::domain::KeySpec::ECC_NIST_P256,
        key_usage: aliasd::domain::KeyUsage::SIGN_VERIFY,
        ..old.clone()
    };
    let keys = vec![old.clone(), signing.clone()];
    store
        .write_accounts(vec![crate::common::ACCOUNT.to_owned()], move |txns| {
            for key in &keys {
                aliasd::domain::ops::seed_key(&txns[0], key)?;
            }
            Ok(())
        })
        .await
        .unwrap();
    drop(store);
    let server = TestServer::start_in(
        dir,
        |_| {},
        std::sync::Arc::new(aliasd::domain::SystemClock),
    )
    .await;
    let described = server.describe(old.key_id.as_str()).await.unwrap();
    assert_eq!(described.current_key_material_id.len(), 64);
    let sealed = encrypt(&server, old.key_id.as_str(), b"now it works", &[])
        .await
        .unwrap();
    assert_eq!(
        decrypt(&server, &sealed.ciphertext_blob, &[])
            .await
            .unwrap()
            .plaintext,
        b"now it works"
    );
    crypto(&server)
        .sign(pb::SignRequest {
            key_id: signing.key_id.to_string(),
            message: b"m".to_vec(),
            signing_algorithm: SigningAlgorithm::EcdsaSha256 as i32,
            ..Default::default()
        })
        .await
        .unwrap();
    // A second start changes nothing: the material stays the same.
    let dir = server.stop().await;
    let again = TestServer::start_in(
        dir,
        |_| {},
        std::sync::Arc::new(aliasd::domain::SystemClock),
    )
    .await;
    assert_eq!(
        again
            .describe(old.key_id.as_str())
            .await
            .unwrap()
            .current_key_material_id,
        described.current_key_material_id
    );
}
