//! CryptoService: proto <-> application calls.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::convert::{self, required};
use super::Door;
use crate::app::App;
use crate::crypto::ops::Context;
use crate::pb::{self, crypto_service_server::CryptoService};

pub struct CryptoApi(Door);

impl CryptoApi {
    pub fn new(app: Arc<App>) -> Self {
        CryptoApi(Door { app })
    }
}

/// An encryption context as the application takes it (sorted pairs).
fn context(pairs: std::collections::HashMap<String, String>) -> Context {
    pairs.into_iter().collect()
}

/// A key ARN for a response.
fn arn(door: &Door, call: &crate::app::Call, key_id: &crate::domain::KeyId) -> String {
    door.app.scope_of(call).key_arn(key_id)
}

#[tonic::async_trait]
impl CryptoService for CryptoApi {
    async fn encrypt(
        &self,
        request: Request<pb::EncryptRequest>,
    ) -> Result<Response<pb::EncryptResponse>, Status> {
        let call = self.0.call(&request)?;
        let r = request.into_inner();
        let algorithm = convert::encryption_algorithm(r.encryption_algorithm)?;
        let done = self
            .0
            .app
            .encrypt(
                &call,
                &r.key_id,
                &r.plaintext,
                &context(r.encryption_context),
                algorithm,
            )
            .await?;
        Ok(Response::new(pb::EncryptResponse {
            key_id: arn(&self.0, &call, &done.key_id),
            ciphertext_blob: done.ciphertext.into(),
            encryption_algorithm: convert::encryption_algorithm_wire(done.algorithm),
            key_material_id: done.material_id,
        }))
    }

    async fn decrypt(
        &self,
        request: Request<pb::DecryptRequest>,
    ) -> Result<Response<pb::DecryptResponse>, Status> {
        let call = self.0.call(&request)?;
        let r = request.into_inner();
        let algorithm = convert::encryption_algorithm(r.encryption_algorithm)?;
        let key = Some(r.key_id.as_str()).filter(|k| !k.is_empty());
        let done = self
            .0
            .app
            .decrypt(
                &call,
                &r.ciphertext_blob,
                &context(r.encryption_context),
                key,
                algorithm,
            )
            .await?;
        Ok(Response::new(pb::DecryptResponse {
            key_id: arn(&self.0, &call, &done.key_id),
            plaintext: done.plaintext.to_vec(),
            encryption_algorithm: convert::encryption_algorithm_wire(done.algorithm),
            key_material_id: done.material_id,
        }))
    }

    async fn re_encrypt(
        &self,
        request: Request<pb::ReEncryptRequest>,
    ) -> Result<Response<pb::ReEncryptResponse>, Status> {
        let call = self.0.call(&request)?;
        let r = request.into_inner();
        let source_algorithm = convert::encryption_algorithm(r.source_encryption_algorithm)?;
        let destination_algorithm =
            convert::encryption_algorithm(r.destination_encryption_algorithm)?;
        let source_key = Some(r.source_key_id.as_str()).filter(|k| !k.is_empty());
        let done = self
            .0
            .app
            .re_encrypt(
                &call,
                &r.ciphertext_blob,
                &context(r.source_encryption_context),
                source_key,
                source_algorithm,
                &r.destination_key_id,
                &context(r.destination_encryption_context),
                destination_algorithm,
            )
            .await?;
        Ok(Response::new(pb::ReEncryptResponse {
            ciphertext_blob: done.encrypted.ciphertext,
            source_key_id: arn(&self.0, &call, &done.source_key_id),
            key_id: arn(&self.0, &call, &done.encrypted.key_id),
            source_encryption_algorithm: convert::encryption_algorithm_wire(done.source_algorithm),
            destination_encryption_algorithm: convert::encryption_algorithm_wire(
                done.encrypted.algorithm,
            ),
            source_key_material_id: done.source_material_id,
            destination_key_material_id: done.encrypted.material_id,
        }))
    }

    async fn generate_data_key(
        &self,
        request: Request<pb::GenerateDataKeyRequest>,
    ) -> Result<Response<pb::GenerateDataKeyResponse>, Status> {
        let call = self.0.call(&request)?;
        let r = request.into_inner();
        let spec = convert::data_key_spec(r.key_spec)?;
        let done = self
            .0
            .app
            .generate_data_key(
                &call,
                &r.key_id,
                r.number_of_bytes.map(i64::from),
                spec,
                &context(r.encryption_context),
                true,
            )
            .await?;
        Ok(Response::new(pb::GenerateDataKeyResponse {
            ciphertext_blob: done.ciphertext,
            plaintext: done.plaintext.map(|p| p.to_vec()).unwrap_or_default(),
            key_id: arn(&self.0, &call, &done.key_id),
            key_material_id: done.material_id,
        }))
    }

    async fn generate_data_key_without_plaintext(
        &self,
        request: Request<pb::GenerateDataKeyWithoutPlaintextRequest>,
    ) -> Result<Response<pb::GenerateDataKeyWithoutPlaintextResponse>, Status> {
        let call = self.0.call(&request)?;
        let r = request.into_inner();
        let spec = convert::data_key_spec(r.key_spec)?;
        let done = self
            .0
            .app
            .generate_data_key(
                &call,
                &r.key_id,
                r.number_of_bytes.map(i64::from),
                spec,
                &context(r.encryption_context),
                false,
            )
            .await?;
        Ok(Response::new(pb::GenerateDataKeyWithoutPlaintextResponse {
            ciphertext_blob: done.ciphertext,
            key_id: arn(&self.0, &call, &done.key_id),
            key_material_id: done.material_id,
        }))
    }

    async fn generate_data_key_pair(
        &self,
        request: Request<pb::GenerateDataKeyPairRequest>,
    ) -> Result<Response<pb::GenerateDataKeyPairResponse>, Status> {
        let call = self.0.call(&request)?;
        let r = request.into_inner();
        let spec = required("key_pair_spec", convert::key_pair_spec(r.key_pair_spec)?)?;
        let done = self
            .0
            .app
            .generate_data_key_pair(&call, &r.key_id, spec, &context(r.encryption_context), true)
            .await?;
        Ok(Response::new(pb::GenerateDataKeyPairResponse {
            private_key_ciphertext_blob: done.private_ciphertext,
            private_key_plaintext: done
                .private_plaintext
                .map(|p| p.to_vec())
                .unwrap_or_default(),
            public_key: done.public_key,
            key_id: arn(&self.0, &call, &done.key_id),
            key_pair_spec: convert::key_pair_spec_wire(done.pair_spec),
            key_material_id: done.material_id,
        }))
    }

    async fn generate_data_key_pair_without_plaintext(
        &self,
        request: Request<pb::GenerateDataKeyPairWithoutPlaintextRequest>,
    ) -> Result<Response<pb::GenerateDataKeyPairWithoutPlaintextResponse>, Status> {
        let call = self.0.call(&request)?;
        let r = request.into_inner();
        let spec = required("key_pair_spec", convert::key_pair_spec(r.key_pair_spec)?)?;
        let done = self
            .0
            .app
            .generate_data_key_pair(
                &call,
                &r.key_id,
                spec,
                &context(r.encryption_context),
                false,
            )
            .await?;
        Ok(Response::new(
            pb::GenerateDataKeyPairWithoutPlaintextResponse {
                private_key_ciphertext_blob: done.private_ciphertext,
                public_key: done.public_key,
                key_id: arn(&self.0, &call, &done.key_id),
                key_pair_spec: convert::key_pair_spec_wire(done.pair_spec),
                key_material_id: done.material_id,
            },
        ))
    }

    async fn sign(
        &self,
        request: Request<pb::SignRequest>,
    ) -> Result<Response<pb::SignResponse>, Status> {
        let call = self.0.call(&request)?;
        let r = request.into_inner();
        let algorithm = required(
            "signing_algorithm",
            convert::signing_algorithm(r.signing_algorithm)?,
        )?;
        let message_type = convert::message_type(r.message_type)?;
        let done = self
            .0
            .app
            .sign(&call, &r.key_id, &r.message, message_type, algorithm)
            .await?;
        Ok(Response::new(pb::SignResponse {
            key_id: arn(&self.0, &call, &done.key_id),
            signature: done.signature,
            signing_algorithm: convert::signing_algorithm_wire(done.algorithm),
        }))
    }

    async fn verify(
        &self,
        request: Request<pb::VerifyRequest>,
    ) -> Result<Response<pb::VerifyResponse>, Status> {
        let call = self.0.call(&request)?;
        let r = request.into_inner();
        let algorithm = required(
            "signing_algorithm",
            convert::signing_algorithm(r.signing_algorithm)?,
        )?;
        let message_type = convert::message_type(r.message_type)?;
        let key_id = self
            .0
            .app
            .verify(
                &call,
                &r.key_id,
                &r.message,
                message_type,
                &r.signature,
                algorithm,
            )
            .await?;
        Ok(Response::new(pb::VerifyResponse {
            key_id: arn(&self.0, &call, &key_id),
            signature_valid: true,
            signing_algorithm: convert::signing_algorithm_wire(algorithm),
        }))
    }

    async fn get_public_key(
        &self,
        request: Request<pb::GetPublicKeyRequest>,
    ) -> Result<Response<pb::GetPublicKeyResponse>, Status> {
        let call = self.0.call(&request)?;
        let done = self
            .0
            .app
            .get_public_key(&call, &request.get_ref().key_id)
            .await?;
        let key = convert::key(&self.0.app.scope_of(&call), &done.key);
        Ok(Response::new(pb::GetPublicKeyResponse {
            key_id: key.arn,
            public_key: done.der,
            key_spec: key.key_spec,
            key_usage: key.key_usage,
            encryption_algorithms: key.encryption_algorithms,
            signing_algorithms: key.signing_algorithms,
        }))
    }

    async fn generate_mac(
        &self,
        request: Request<pb::GenerateMacRequest>,
    ) -> Result<Response<pb::GenerateMacResponse>, Status> {
        let call = self.0.call(&request)?;
        let r = request.into_inner();
        let algorithm = required("mac_algorithm", convert::mac_algorithm(r.mac_algorithm)?)?;
        let done = self
            .0
            .app
            .generate_mac(&call, &r.key_id, &r.message, algorithm)
            .await?;
        Ok(Response::new(pb::GenerateMacResponse {
            key_id: arn(&self.0, &call, &done.key_id),
            mac: done.mac,
            mac_algorithm: convert::mac_algorithm_wire(done.algorithm),
        }))
    }

    async fn verify_mac(
        &self,
        request: Request<pb::VerifyMacRequest>,
    ) -> Result<Response<pb::VerifyMacResponse>, Status> {
        let call = self.0.call(&request)?;
        let r = request.into_inner();
        let algorithm = required("mac_algorithm", convert::mac_algorithm(r.mac_algorithm)?)?;
        let key_id = self
            .0
            .app
            .verify_mac(&call, &r.key_id, &r.message, &r.mac, algorithm)
            .await?;
        Ok(Response::new(pb::VerifyMacResponse {
            key_id: arn(&self.0, &call, &key_id),
            mac_valid: true,
            mac_algorithm: convert::mac_algorithm_wire(algorithm),
        }))
    }

    async fn generate_random(
        &self,
        request: Request<pb::GenerateRandomRequest>,
    ) -> Result<Response<pb::GenerateRandomResponse>, Status> {
        let call = self.0.call(&request)?;
        let count = request.get_ref().number_of_bytes;
        let bytes = self
            .0
            .app
            .generate_random(&call, Some(i64::from(count)))
            .await?;
        Ok(Response::new(pb::GenerateRandomResponse {
            plaintext: bytes.to_vec(),
        }))
    }
}
