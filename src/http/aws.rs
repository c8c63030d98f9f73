//! AWS KMS JSON 1.1 (`POST /`, `X-Amz-Target: TrentService.<Operation>`),
//! as boto3, the aws CLI and every AWS SDK speak it: AWS's field names and
//! shapes in, the application layer's calls, AWS's shapes and exception
//! names out. With an auth file every request must be signed (SigV4, see
//! `aws/sigv4.rs`) by an access key of a principal.

mod crypto;
pub(crate) mod sigv4;

use std::sync::Arc;

use http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use serde_json::{json, Map, Value};

use super::{json_object, json_response, HttpRequest, HttpResponse};
use crate::app::admission::auth::{Claim, Credentials, SignedRequest};
use crate::app::{App, Call, NewKeyRequest};
use crate::domain::policy::actions;
use crate::domain::{
    Alias, Error, Key, KeyManager, KeySpec, KeyState, KeyUsage, Millis, Reason, Scope,
};
use crate::door::Door;

/// The content type of every AWS JSON 1.1 body.
pub const CONTENT_TYPE: &str = "application/x-amz-json-1.1";

/// The operations served, as `X-Amz-Target` names them, with the policy
/// action admission throttles each under (ReEncrypt: kms:ReEncryptFrom;
/// the application also authorizes kms:ReEncryptTo on its destination).
macro_rules! operations {
    ($($name:ident => $action:ident,)*) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Operation { $($name,)* }

        impl Operation {
            const ALL: &'static [Operation] = &[$(Operation::$name,)*];

            /// Its name, as `X-Amz-Target` gives it.
            fn name(self) -> &'static str {
                match self { $(Operation::$name => stringify!($name),)* }
            }

            /// The policy action admission throttles it under.
            fn action(self) -> &'static str {
                match self { $(Operation::$name => actions::$action,)* }
            }
        }
    };
}

operations! {
    CreateKey => CREATE_KEY,
    DescribeKey => DESCRIBE_KEY,
    ListKeys => LIST_KEYS,
    EnableKey => ENABLE_KEY,
    DisableKey => DISABLE_KEY,
    ScheduleKeyDeletion => SCHEDULE_KEY_DELETION,
    CancelKeyDeletion => CANCEL_KEY_DELETION,
    CreateAlias => CREATE_ALIAS,
    UpdateAlias => UPDATE_ALIAS,
    DeleteAlias => DELETE_ALIAS,
    ListAliases => LIST_ALIASES,
    Encrypt => ENCRYPT,
    Decrypt => DECRYPT,
    ReEncrypt => RE_ENCRYPT_FROM,
    GenerateDataKey => GENERATE_DATA_KEY,
    GenerateDataKeyWithoutPlaintext => GENERATE_DATA_KEY_WITHOUT_PLAINTEXT,
    GenerateDataKeyPair => GENERATE_DATA_KEY_PAIR,
    GenerateDataKeyPairWithoutPlaintext => GENERATE_DATA_KEY_PAIR_WITHOUT_PLAINTEXT,
    Sign => SIGN,
    Verify => VERIFY,
    GetPublicKey => GET_PUBLIC_KEY,
    GenerateMac => GENERATE_MAC,
    VerifyMac => VERIFY_MAC,
    GenerateRandom => GENERATE_RANDOM,
    EnableKeyRotation => ENABLE_KEY_ROTATION,
    DisableKeyRotation => DISABLE_KEY_ROTATION,
    GetKeyRotationStatus => GET_KEY_ROTATION_STATUS,
    RotateKeyOnDemand => ROTATE_KEY_ON_DEMAND,
    ListKeyRotations => LIST_KEY_ROTATIONS,
    TagResource => TAG_RESOURCE,
    UntagResource => UNTAG_RESOURCE,
    ListResourceTags => LIST_RESOURCE_TAGS,
    GetKeyPolicy => GET_KEY_POLICY,
    PutKeyPolicy => PUT_KEY_POLICY,
    ListKeyPolicies => LIST_KEY_POLICIES,
    UpdateKeyDescription => UPDATE_KEY_DESCRIPTION,
}

impl Operation {
    /// `TrentService.CreateAlias` -> CreateAlias.
    fn of_target(target: &str) -> Result<Operation, Error> {
        target
            .strip_prefix("TrentService.")
            .and_then(|name| Operation::ALL.iter().copied().find(|op| op.name() == name))
            .ok_or_else(|| {
                Error::new(
                    Reason::UNKNOWN_OPERATION,
                    match target {
                        "" => "The request has no X-Amz-Target header (TrentService.<Operation>)."
                            .to_owned(),
                        target => format!(
                            "Unknown operation {target:?}: aliasd serves TrentService.{}.",
                            Operation::ALL
                                .iter()
                                .map(|op| op.name())
                                .collect::<Vec<_>>()
                                .join(", TrentService.")
                        ),
                    },
                )
            })
    }
}

/// The AWS KMS JSON 1.1 dialect.
pub struct Aws;

impl super::Dialect for Aws {
    type Operation = Operation;
    const DOOR: Door = Door::Aws;

    fn operation(_: &Method, _: &Uri, headers: &HeaderMap) -> Result<Operation, Error> {
        let target = headers
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        Operation::of_target(target)
    }

    fn label(operation: &Operation) -> &'static str {
        operation.name()
    }

    fn action(operation: &Operation) -> &'static str {
        operation.action()
    }

    fn claim(headers: &HeaderMap) -> Claim {
        claim(headers)
    }

    fn credentials(app: &App, request: &HttpRequest) -> Credentials {
        credentials(app, request)
    }

    async fn run(
        app: &Arc<App>,
        call: &Call,
        operation: &Operation,
        request: &HttpRequest,
    ) -> Result<HttpResponse, Error> {
        Ok(match run(app, call, *operation, request).await? {
            Some(body) => json_response(StatusCode::OK, CONTENT_TYPE, &body),
            // CreateAlias, UpdateAlias, DeleteAlias, EnableKey, DisableKey:
            // an empty body, as AWS answers.
            None => json_response(StatusCode::OK, CONTENT_TYPE, &Value::Null)
                .map(|_| axum::body::Body::empty()),
        })
    }

    fn render_error(error: &Error) -> HttpResponse {
        error_response(error)
    }

    fn finish(response: &mut HttpResponse, request_id: &str) {
        if let Ok(id) = HeaderValue::from_str(request_id) {
            response.headers_mut().insert("x-amzn-requestid", id);
        }
    }
}

/// An error as AWS renders it: `{"__type": ..., "message": ...}`, with the
/// exception's name in `x-amzn-ErrorType` too.
pub fn error_response(error: &Error) -> HttpResponse {
    let spec = crate::door::reasons::rendering(error.reason);
    let status =
        StatusCode::from_u16(spec.aws_http_status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    // AWS answers these without a message: so does this door.
    let silent = matches!(
        error.reason,
        Reason::INVALID_CIPHERTEXT
            | Reason::SIGNATURE_NOT_VALID
            | Reason::MAC_NOT_VALID
            | Reason::UNSUPPORTED_OPERATION
    );
    let body = match silent {
        true => json!({ "__type": spec.kms_exception }),
        // KMS's own wording where it differs from aliasd's.
        false => json!({
            "__type": spec.kms_exception,
            "message": error.kms_message.as_deref().unwrap_or(&error.message),
        }),
    };
    let mut response = json_response(status, CONTENT_TYPE, &body);
    response.headers_mut().insert(
        "x-amzn-errortype",
        HeaderValue::from_static(spec.kms_exception),
    );
    // For the metrics: why it was refused.
    response.extensions_mut().insert(error.reason);
    response
}

/// Who the headers say signed the request: the access key id of its
/// SigV4 `Credential`, read before the body (and the signature) arrive.
pub fn claim(headers: &http::HeaderMap) -> crate::app::admission::auth::Claim {
    super::authorization_part(headers, "AWS4-HMAC-SHA256", "Credential")
        .and_then(|credential| credential.split('/').next())
        .map_or(crate::app::admission::auth::Claim::Nothing, |id| {
            crate::app::admission::auth::Claim::AccessKey(id.to_owned())
        })
}

/// Runs an admitted operation: its answer's body (None: an empty one).
async fn run(
    app: &Arc<App>,
    call: &Call,
    operation: Operation,
    request: &HttpRequest,
) -> Result<Option<Value>, Error> {
    let call = call.clone();
    let scope = app.scope_of(&call);
    signed_for_this_region(&request.headers, &scope)?;
    let body = json_object(&request.body)?;
    let input = Input(&body);
    match operation {
        Operation::CreateKey => {
            let spec = match (
                input.string("KeySpec")?,
                input.string("CustomerMasterKeySpec")?,
            ) {
                (Some(_), Some(_)) => {
                    return Err(Error::invalid(
                        Reason::INVALID_KEY_SPEC,
                        "KeySpec",
                        "You cannot specify KeySpec and CustomerMasterKeySpec in the same \
                         request. CustomerMasterKeySpec is deprecated.",
                    ))
                }
                (spec, deprecated) => spec.or(deprecated),
            };
            if input.boolean("MultiRegion")? == Some(true) {
                return Err(Error::invalid(
                    Reason::INVALID_PARAMETER,
                    "MultiRegion",
                    "MultiRegion keys are not supported: this server's keys are single-Region \
                     keys (create the key without MultiRegion, or with MultiRegion false).",
                ));
            }
            let request = NewKeyRequest {
                description: input.string("Description")?.unwrap_or_default().to_owned(),
                key_spec: spec.map(key_spec).transpose()?,
                key_usage: input.string("KeyUsage")?.map(key_usage).transpose()?,
                request_id: String::new(),
                alias_name: None,
                tags: input.tags("Tags")?,
                policy: input.string("Policy")?.map(str::to_owned),
            };
            if let Some(origin) = input.string("Origin")? {
                if origin != "AWS_KMS" {
                    return Err(Error::invalid(
                        Reason::INVALID_KEY_SPEC,
                        "Origin",
                        format!("Origin {origin:?} is not supported: aliasd keys are AWS_KMS."),
                    ));
                }
            }
            let key = app.create_key(&call, request).await?;
            Ok(Some(json!({ "KeyMetadata": key_metadata(&scope, &key) })))
        }
        Operation::DescribeKey => {
            let key = app.describe_key(&call, input.required("KeyId")?).await?;
            Ok(Some(json!({ "KeyMetadata": key_metadata(&scope, &key) })))
        }
        Operation::ListKeys => {
            let page = app
                .list_keys(
                    &call,
                    // AWS's ListKeys: 1..1000, 100 when absent.
                    input.limit_up_to(1000, 100)?,
                    input.string("Marker")?.unwrap_or_default(),
                )
                .await?;
            let keys: Vec<Value> = page
                .items
                .iter()
                .map(|k| json!({ "KeyId": k.key_id.as_str(), "KeyArn": scope.key_arn(&k.key_id) }))
                .collect();
            Ok(Some(paged("Keys", keys, page.next_page_token)))
        }
        Operation::EnableKey => {
            app.enable_key(&call, input.required("KeyId")?, "").await?;
            Ok(None)
        }
        Operation::DisableKey => {
            app.disable_key(&call, input.required("KeyId")?, "").await?;
            Ok(None)
        }
        Operation::ScheduleKeyDeletion => {
            let days = match input.integer("PendingWindowInDays")? {
                Some(days) => i32::try_from(days).unwrap_or(i32::MAX),
                None => 0,
            };
            let key = app
                .schedule_key_deletion(&call, input.required("KeyId")?, days, "")
                .await?;
            let mut answer = json!({
                "KeyId": scope.key_arn(&key.key_id),
                "KeyState": key_state(key.key_state),
                "PendingWindowInDays": key.pending_window_in_days,
            });
            if let Some(when) = key.deletion_time {
                answer["DeletionDate"] = seconds(when);
            }
            Ok(Some(answer))
        }
        Operation::CancelKeyDeletion => {
            let key = app
                .cancel_key_deletion(&call, input.required("KeyId")?, "")
                .await?;
            Ok(Some(json!({ "KeyId": scope.key_arn(&key.key_id) })))
        }
        Operation::CreateAlias => {
            let (name, target) = (input.required("AliasName")?, input.required("TargetKeyId")?);
            app.create_alias(&call, name, target, "").await?;
            Ok(None)
        }
        Operation::UpdateAlias => {
            let (name, target) = (input.required("AliasName")?, input.required("TargetKeyId")?);
            app.update_alias(&call, name, target, "", "").await?;
            Ok(None)
        }
        Operation::DeleteAlias => {
            app.delete_alias(&call, input.required("AliasName")?, "", "")
                .await?;
            Ok(None)
        }
        Operation::ListAliases => {
            let key_id = input.string("KeyId")?.unwrap_or_default();
            let limit = match input.limit()? {
                0 => crate::domain::paging::DEFAULT_PAGE_SIZE,
                n => n as usize,
            };
            let marker = input.string("Marker")?.unwrap_or_default();
            // After the store's aliases, AWS's predefined ones (a marker of
            // their own; they are the same for everyone, so it needs no
            // protection).
            if let Some(from) = marker.strip_prefix(PREDEFINED_MARKER) {
                let from: usize = from.parse().map_err(|_| invalid_marker())?;
                let held = app.aliases_held(&call, PREDEFINED_ALIASES).await?;
                return Ok(Some(predefined_page(&scope, &held, from, limit)));
            }
            let page = app
                .list_aliases(&call, key_id, limit as i32, marker)
                .await?;
            let mut aliases: Vec<Value> = page
                .page
                .items
                .iter()
                .map(|alias| alias_entry(&scope, alias))
                .collect();
            let mut next = page.page.next_page_token;
            if next.is_empty() && key_id.is_empty() {
                // The last page of the account's own: AWS's predefined
                // aliases follow, as far as the page has room.
                let held = app.aliases_held(&call, PREDEFINED_ALIASES).await?;
                let room = limit - aliases.len();
                let rest = predefined_page(&scope, &held, 0, room);
                aliases.extend(rest["Aliases"].as_array().cloned().unwrap_or_default());
                next = rest["NextMarker"].as_str().unwrap_or_default().to_owned();
            }
            Ok(Some(paged("Aliases", aliases, next)))
        }
        Operation::TagResource => {
            let tags = input.tags("Tags")?;
            app.tag_resource(&call, input.required("KeyId")?, tags)
                .await?;
            Ok(None)
        }
        Operation::UntagResource => {
            let keys = input.strings("TagKeys")?;
            app.untag_resource(&call, input.required("KeyId")?, keys)
                .await?;
            Ok(None)
        }
        Operation::ListResourceTags => {
            let page = app
                .list_resource_tags(
                    &call,
                    input.required("KeyId")?,
                    input.limit_up_to(50, 0)? as usize,
                    input.string("Marker")?.unwrap_or_default(),
                )
                .await?;
            let tags: Vec<Value> = page
                .items
                .iter()
                .map(|(k, v)| json!({ "TagKey": k, "TagValue": v }))
                .collect();
            Ok(Some(paged("Tags", tags, page.next_page_token)))
        }
        Operation::GetKeyPolicy => {
            let name = input.string("PolicyName")?.unwrap_or("default");
            let policy = app
                .get_key_policy(&call, input.required("KeyId")?, name)
                .await?;
            Ok(Some(json!({ "Policy": policy, "PolicyName": name })))
        }
        Operation::PutKeyPolicy => {
            let name = input.string("PolicyName")?.unwrap_or("default");
            let policy = input.required("Policy")?.to_owned();
            app.put_key_policy(&call, input.required("KeyId")?, name, policy)
                .await?;
            Ok(None)
        }
        Operation::ListKeyPolicies => {
            let names = app
                .list_key_policies(&call, input.required("KeyId")?)
                .await?;
            Ok(Some(json!({ "PolicyNames": names, "Truncated": false })))
        }
        Operation::UpdateKeyDescription => {
            let description = input.required("Description")?.to_owned();
            app.update_key_description(&call, input.required("KeyId")?, description)
                .await?;
            Ok(None)
        }
        crypto_operation => crypto::run(app, &call, crypto_operation, &input, &scope).await,
    }
}

/// A request signed (SigV4) for another region than the server's is
/// refused, never answered from the server's region: the client meant
/// another endpoint. Unsigned requests pass (without an auth file,
/// signatures are not required).
fn signed_for_this_region(headers: &http::HeaderMap, scope: &Scope) -> Result<(), Error> {
    let Some(credential) = super::authorization_part(headers, "AWS4-HMAC-SHA256", "Credential")
    else {
        return Ok(());
    };
    // ACCESS_KEY/DATE/REGION/SERVICE/aws4_request
    match credential.split('/').nth(2) {
        Some(region) if region != scope.region => Err(Error::new(
            Reason::INVALID_SIGNATURE,
            format!(
                "Credential should be scoped to a valid region: the request was signed for \
                 {region}, and this server serves {}.",
                scope.region
            ),
        )),
        _ => Ok(()),
    }
}

/// What the request presents: nothing without an auth file (signatures
/// are not checked, as moto and LocalStack do), else its SigV4 signature.
/// A missing, malformed or stale signature is handed on as refused, so
/// that admission audits it like any other unauthenticated call.
fn credentials(app: &App, request: &HttpRequest) -> Credentials {
    if app.authenticator.is_none() {
        return Credentials::default();
    }
    let refused = |error: Error| Credentials {
        refused: Some(error),
        ..Credentials::default()
    };
    let Some(header) = request.headers.get(http::header::AUTHORIZATION) else {
        return refused(Error::new(
            Reason::MISSING_AUTHENTICATION_TOKEN,
            "Missing Authentication Token: with an auth file, requests must be signed \
             (Signature Version 4) by an access key of a principal.",
        ));
    };
    let parsed = header
        .to_str()
        .map_err(|_| {
            Error::new(
                Reason::INCOMPLETE_SIGNATURE,
                "The Authorization header is not ASCII.",
            )
        })
        .and_then(sigv4::Authorization::parse)
        .and_then(|authorization| {
            sigv4::SignedParts::new(
                authorization,
                &request.method,
                &request.uri,
                &request.headers,
                &request.body,
                app.clock.now(),
            )
        });
    match parsed {
        Ok(parts) => Credentials {
            signature: Some(SignedRequest {
                access_key_id: parts.authorization.access_key_id.clone(),
                verify: Box::new(move |secret| parts.verify(secret.expose())),
            }),
            ..Credentials::default()
        },
        Err(error) => refused(error),
    }
}

/// The request's fields, read with AWS's errors: a field of the wrong JSON
/// type is a SerializationException, a missing required one a
/// ValidationException; unknown fields are ignored.
pub(super) struct Input<'a>(pub(super) &'a Map<String, Value>);

impl<'a> Input<'a> {
    pub(super) fn string(&self, name: &'static str) -> Result<Option<&'a str>, Error> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(text)) => Ok(Some(text)),
            Some(other) => Err(wrong_type(name, "a string", other)),
        }
    }

    pub(super) fn required(&self, name: &'static str) -> Result<&'a str, Error> {
        self.string(name)?.ok_or_else(|| {
            Error::invalid(
                Reason::MISSING_PARAMETER,
                name,
                format!(
                    "1 validation error detected: Value null at '{}' failed to satisfy \
                     constraint: Member must not be null",
                    lower_camel(name)
                ),
            )
        })
    }

    pub(super) fn boolean(&self, name: &'static str) -> Result<Option<bool>, Error> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(value)) => Ok(Some(*value)),
            Some(other) => Err(wrong_type(name, "a boolean", other)),
        }
    }

    /// `Tags`: `[{"TagKey", "TagValue"}, ...]`, in the order given (the
    /// rules check them); absent: none.
    pub(super) fn tags(&self, name: &'static str) -> Result<Vec<(String, String)>, Error> {
        let items = match self.0.get(name) {
            None | Some(Value::Null) => return Ok(Vec::new()),
            Some(Value::Array(items)) => items,
            Some(other) => return Err(wrong_type(name, "a list", other)),
        };
        items
            .iter()
            .map(|item| {
                let Value::Object(tag) = item else {
                    return Err(wrong_type(name, "a list of objects", item));
                };
                let tag = Input(tag);
                Ok((
                    tag.required("TagKey")?.to_owned(),
                    tag.required("TagValue")?.to_owned(),
                ))
            })
            .collect()
    }

    /// A list of strings (`TagKeys`); absent: none.
    pub(super) fn strings(&self, name: &'static str) -> Result<Vec<String>, Error> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| match item {
                    Value::String(text) => Ok(text.clone()),
                    other => Err(wrong_type(name, "a list of strings", other)),
                })
                .collect(),
            Some(other) => Err(wrong_type(name, "a list", other)),
        }
    }

    pub(super) fn integer(&self, name: &'static str) -> Result<Option<i64>, Error> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n
                .as_i64()
                .map(Some)
                .ok_or_else(|| wrong_type(name, "an integer", &Value::Number(n.clone()))),
            Some(other) => Err(wrong_type(name, "an integer", other)),
        }
    }

    /// `Limit`: 1..100 (AWS's range for ListAliases and most listings),
    /// absent for the default page.
    fn limit(&self) -> Result<i32, Error> {
        self.limit_up_to(super::MAX_PAGE_LIMIT, 0)
    }

    /// `Limit`: 1..`max`, `default` when absent.
    pub(super) fn limit_up_to(&self, max: i64, default: i32) -> Result<i32, Error> {
        match self.integer("Limit")? {
            None => Ok(default),
            Some(limit) if (1..=max).contains(&limit) => Ok(limit as i32),
            Some(limit) => Err({
                Error::invalid(
                    Reason::INVALID_PAGE_SIZE,
                    "Limit",
                    format!(
                        "1 validation error detected: Value '{limit}' at 'limit' failed to \
                         satisfy constraint: Member must have value {} {}",
                        if limit < 1 {
                            "greater than or equal to 1, and less than or equal to"
                        } else {
                            "less than or equal to"
                        },
                        max
                    ),
                )
            }),
        }
    }
}

pub(super) fn wrong_type(name: &str, wanted: &str, got: &Value) -> Error {
    let kind = match got {
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
        Value::Null => "null",
    };
    Error::new(
        Reason::MALFORMED_BODY,
        format!("{name} must be {wanted}, not {kind}."),
    )
}

/// `AliasName` -> `aliasName`, as AWS's validation messages name fields.
pub(super) fn lower_camel(name: &str) -> String {
    let mut chars = name.chars();
    chars
        .next()
        .map(|first| first.to_ascii_lowercase().to_string() + chars.as_str())
        .unwrap_or_default()
}

fn key_spec(name: &str) -> Result<KeySpec, Error> {
    enum_value(
        name,
        "KeySpec",
        Reason::INVALID_KEY_SPEC,
        KeySpec::from_name,
        || KeySpec::ALL.iter().map(|s| s.as_str()).collect(),
    )
}

fn key_usage(name: &str) -> Result<KeyUsage, Error> {
    enum_value(
        name,
        "KeyUsage",
        Reason::INVALID_KEY_USAGE,
        KeyUsage::from_name,
        || KeyUsage::ALL.iter().map(|s| s.as_str()).collect(),
    )
}

/// An enum field by its AWS name, or AWS's ValidationException listing the
/// names it takes.
pub(super) fn enum_value<T>(
    name: &str,
    field: &'static str,
    reason: Reason,
    parse: impl Fn(&str) -> Option<T>,
    names: impl Fn() -> Vec<&'static str>,
) -> Result<T, Error> {
    parse(name).ok_or_else(|| {
        Error::invalid(
            reason,
            field,
            format!(
                "1 validation error detected: Value '{name}' at '{}' failed to satisfy \
                 constraint: Member must satisfy enum value set: [{}]",
                lower_camel(field),
                names().join(", ")
            ),
        )
    })
}

/// Epoch seconds, as AWS's JSON timestamps are.
pub(super) fn seconds(millis: Millis) -> Value {
    json!(millis as f64 / 1000.0)
}

fn key_state(state: KeyState) -> &'static str {
    match state {
        KeyState::ENABLED => "Enabled",
        KeyState::DISABLED => "Disabled",
        KeyState::PENDING_DELETION => "PendingDeletion",
    }
}

fn key_metadata(scope: &Scope, key: &Key) -> Value {
    let mut metadata = json!({
        "AWSAccountId": scope.account,
        "KeyId": key.key_id.as_str(),
        "Arn": scope.key_arn(&key.key_id),
        "CreationDate": seconds(key.creation_time),
        "Enabled": key.key_state == KeyState::ENABLED,
        "Description": key.description,
        "KeyUsage": key.key_usage.as_str(),
        "KeyState": key_state(key.key_state),
        "Origin": "AWS_KMS",
        "KeyManager": match key.key_manager {
            KeyManager::CUSTOMER => "CUSTOMER",
            KeyManager::PROVIDER => "AWS",
        },
        "KeySpec": key.key_spec.as_str(),
        "CustomerMasterKeySpec": key.key_spec.as_str(),
        "MultiRegion": false,
    });
    // AWS shows PendingDeletionWindowInDays only for multi-Region keys.
    if let Some(when) = key.deletion_time {
        metadata["DeletionDate"] = seconds(when);
    }
    let fields = metadata.as_object_mut().expect("an object");
    crypto::add_algorithms(fields, key);
    // Symmetric keys only: they are the ones that rotate.
    if let Some(material) = key.current_material().filter(|_| key.can_rotate()) {
        fields.insert("CurrentKeyMaterialId".into(), json!(material.id));
    }
    metadata
}

/// The aliases AWS lists in every account for its own services' keys,
/// without a TargetKeyId until a service uses them.
const PREDEFINED_ALIASES: &[&str] = &[
    "alias/aws/dynamodb",
    "alias/aws/ebs",
    "alias/aws/elasticfilesystem",
    "alias/aws/es",
    "alias/aws/glue",
    "alias/aws/kinesisvideo",
    "alias/aws/rds",
    "alias/aws/redshift",
    "alias/aws/s3",
    "alias/aws/ssm",
    "alias/aws/xray",
];

/// A ListAliases marker into [`PREDEFINED_ALIASES`].
const PREDEFINED_MARKER: &str = "predefined:";

fn invalid_marker() -> Error {
    Error::invalid(
        Reason::INVALID_PAGE_TOKEN,
        "Marker",
        "Invalid marker: it was not issued by this server for this listing.",
    )
}

/// Up to `room` of the predefined aliases from index `from`, leaving out
/// those the account holds itself (`held`, seeded for PROVIDER keys), with
/// a marker for the rest.
fn predefined_page(scope: &Scope, held: &[String], from: usize, room: usize) -> Value {
    let missing: Vec<(usize, &str)> = PREDEFINED_ALIASES
        .iter()
        .copied()
        .enumerate()
        .skip(from)
        .filter(|(_, name)| !held.iter().any(|h| h == name))
        .collect();
    let shown: Vec<Value> = missing
        .iter()
        .take(room)
        .map(|(_, name)| {
            json!({
                "AliasName": name,
                "AliasArn": format!(
                    "arn:{}:kms:{}:{}:{name}",
                    scope.partition, scope.region, scope.account
                ),
            })
        })
        .collect();
    let next = match missing.get(room) {
        Some((index, _)) => format!("{PREDEFINED_MARKER}{index}"),
        None => String::new(),
    };
    paged("Aliases", shown, next)
}

fn alias_entry(scope: &Scope, alias: &Alias) -> Value {
    json!({
        "AliasName": alias.name.as_str(),
        "AliasArn": scope.alias_arn(&alias.name),
        "TargetKeyId": alias.target.as_str(),
        "CreationDate": seconds(alias.creation_time),
        "LastUpdatedDate": seconds(alias.last_updated_time),
    })
}

/// A page as AWS lists: the items, `Truncated`, and `NextMarker` when
/// there is more.
pub(super) fn paged(field: &str, items: Vec<Value>, next: String) -> Value {
    let mut page = json!({ field: items, "Truncated": !next.is_empty() });
    if !next.is_empty() {
        page["NextMarker"] = json!(next);
    }
    page
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_name_the_operations_and_nothing_else() {
        assert_eq!(
            Operation::of_target("TrentService.UpdateAlias").unwrap(),
            Operation::UpdateAlias
        );
        for bad in [
            "",
            "TrentService.ImportKeyMaterial",
            "KMS.CreateAlias",
            "TrentService.",
        ] {
            let error = Operation::of_target(bad).unwrap_err();
            assert_eq!(error.reason, Reason::UNKNOWN_OPERATION, "{bad}");
        }
    }

    #[test]
    fn fields_of_the_wrong_type_are_serialization_errors() {
        let body = json_object(br#"{"AliasName": 7, "Limit": "5", "Extra": [1]}"#).unwrap();
        let input = Input(&body);
        assert_eq!(
            input.required("AliasName").unwrap_err().reason,
            Reason::MALFORMED_BODY
        );
        assert_eq!(input.limit().unwrap_err().reason, Reason::MALFORMED_BODY);
        let missing = input.required("TargetKeyId").unwrap_err();
        assert_eq!(missing.reason, Reason::MISSING_PARAMETER);
        assert!(
            missing.message.contains("'targetKeyId'"),
            "{}",
            missing.message
        );
    }

    #[test]
    fn limits_outside_1_to_100_are_validation_errors() {
        for (limit, ok) in [
            (0, false),
            (1, true),
            (100, true),
            (101, false),
            (-3, false),
        ] {
            let body = json_object(format!(r#"{{"Limit": {limit}}}"#).as_bytes()).unwrap();
            let result = Input(&body).limit();
            assert_eq!(result.is_ok(), ok, "{limit}");
            if !ok {
                let error = result.unwrap_err();
                assert_eq!(
                    crate::door::reasons::rendering(error.reason).kms_exception,
                    "ValidationException"
                );
            }
        }
    }
}
