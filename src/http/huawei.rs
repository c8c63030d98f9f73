//! Huawei Cloud KMS v1.0 (`/v1.0/{project_id}/kms/...`), as
//! `huaweicloudsdkkms` speaks it: Huawei's field names and codes in, the
//! application layer's calls, Huawei's shapes and `error_code`s out. With an
//! auth file a request carries a principal's token (`X-Auth-Token`) or an
//! AK/SK signature (`huawei/sdk_hmac.rs`).
//!
//! Names: Huawei's `key_alias` X is the alias `alias/X` (one already
//! beginning `alias/` is taken as is), and answers give it back without the
//! prefix; the alias API (`aliases`, `alias/associate`) uses full names.

mod crypto;
mod sdk_hmac;

use std::sync::Arc;

use http::{HeaderMap, Method, StatusCode, Uri};
use serde_json::{json, Map, Value};

use super::{json_object, json_response, HttpRequest, HttpResponse};
use crate::app::admission::auth::{Claim, Credentials, SignedRequest};
use crate::app::{App, Call, NewKeyRequest};
use crate::domain::policy::actions;
use crate::domain::{
    Alias, AliasName, Error, Key, KeyManager, KeySpec, KeyState, KeyUsage, Reason, Scope,
};
use crate::door::Door;

/// The content type of Huawei's JSON bodies.
pub const CONTENT_TYPE: &str = "application/json;charset=UTF-8";

/// The operations served: (method, path after `/kms/`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operation {
    CreateKey,
    DescribeKey,
    ListKeys,
    EnableKey,
    DisableKey,
    ScheduleKeyDeletion,
    CancelKeyDeletion,
    UpdateKeyAlias,
    CreateAlias,
    DeleteAliases,
    ListAliases,
    AssociateAlias,
    EncryptData,
    DecryptData,
    CreateDatakey,
    CreateDatakeyWithoutPlaintext,
    EncryptDatakey,
    DecryptDatakey,
    Sign,
    Verify,
    GetPublicKey,
    GenRandom,
    GenerateMac,
    VerifyMac,
    EnableKeyRotation,
    DisableKeyRotation,
    GetKeyRotationStatus,
    UpdateKeyRotationInterval,
    RotateOnDemand,
    /// `POST {key_id}/tags`
    CreateKmsTag,
    /// `POST {key_id}/tags/action` (`action` create or delete)
    BatchKmsTags,
    /// `DELETE {key_id}/tags/{key}`
    DeleteTag,
    /// `GET {key_id}/tags`
    ShowKmsTags,
}

/// Huawei's limits on a key's tags (stricter than AWS's, which the rules
/// apply besides): keys of 1..36 characters, values of 0..43.
const HUAWEI_MAX_TAG_KEY_CHARS: usize = 36;
const HUAWEI_MAX_TAG_VALUE_CHARS: usize = 43;

/// The cryptographic and rotation operations: (path, operation, action).
const CRYPTO: &[(&str, Operation, &str)] = &[
    ("encrypt-data", Operation::EncryptData, actions::ENCRYPT),
    ("decrypt-data", Operation::DecryptData, actions::DECRYPT),
    (
        "create-datakey",
        Operation::CreateDatakey,
        actions::GENERATE_DATA_KEY,
    ),
    (
        "create-datakey-without-plaintext",
        Operation::CreateDatakeyWithoutPlaintext,
        actions::GENERATE_DATA_KEY_WITHOUT_PLAINTEXT,
    ),
    (
        "encrypt-datakey",
        Operation::EncryptDatakey,
        actions::ENCRYPT,
    ),
    (
        "decrypt-datakey",
        Operation::DecryptDatakey,
        actions::DECRYPT,
    ),
    ("sign", Operation::Sign, actions::SIGN),
    ("verify", Operation::Verify, actions::VERIFY),
    (
        "get-publickey",
        Operation::GetPublicKey,
        actions::GET_PUBLIC_KEY,
    ),
    ("gen-random", Operation::GenRandom, actions::GENERATE_RANDOM),
    (
        "generate-mac",
        Operation::GenerateMac,
        actions::GENERATE_MAC,
    ),
    ("verify-mac", Operation::VerifyMac, actions::VERIFY_MAC),
    (
        "enable-key-rotation",
        Operation::EnableKeyRotation,
        actions::ENABLE_KEY_ROTATION,
    ),
    (
        "disable-key-rotation",
        Operation::DisableKeyRotation,
        actions::DISABLE_KEY_ROTATION,
    ),
    (
        "get-key-rotation-status",
        Operation::GetKeyRotationStatus,
        actions::GET_KEY_ROTATION_STATUS,
    ),
    (
        "update-key-rotation-interval",
        Operation::UpdateKeyRotationInterval,
        actions::ENABLE_KEY_ROTATION,
    ),
    (
        "rotate-on-demand",
        Operation::RotateOnDemand,
        actions::ROTATE_KEY_ON_DEMAND,
    ),
];

impl Operation {
    fn of(method: &Method, path: &str) -> Option<Operation> {
        use Operation::*;
        Some(match (method.as_str(), path) {
            ("POST", "create-key") => CreateKey,
            ("POST", "describe-key") => DescribeKey,
            ("POST", "list-keys") => ListKeys,
            ("POST", "enable-key") => EnableKey,
            ("POST", "disable-key") => DisableKey,
            ("POST", "schedule-key-deletion") => ScheduleKeyDeletion,
            ("POST", "cancel-key-deletion") => CancelKeyDeletion,
            ("POST", "update-key-alias") => UpdateKeyAlias,
            ("POST", "aliases") => CreateAlias,
            ("DELETE", "aliases") => DeleteAliases,
            ("GET", "aliases") => ListAliases,
            ("POST", "alias/associate") => AssociateAlias,
            ("POST", path) => return CRYPTO.iter().find(|(p, ..)| *p == path).map(|c| c.1),
            _ => return None,
        })
    }

    /// Its name as a metric label.
    fn label(self) -> &'static str {
        use Operation::*;
        match self {
            CreateKey => "create-key",
            DescribeKey => "describe-key",
            ListKeys => "list-keys",
            EnableKey => "enable-key",
            DisableKey => "disable-key",
            ScheduleKeyDeletion => "schedule-key-deletion",
            CancelKeyDeletion => "cancel-key-deletion",
            UpdateKeyAlias => "update-key-alias",
            CreateAlias => "create-alias",
            DeleteAliases => "delete-aliases",
            ListAliases => "list-aliases",
            AssociateAlias => "associate-alias",
            CreateKmsTag => "create-kms-tag",
            BatchKmsTags => "batch-kms-tags",
            DeleteTag => "delete-tag",
            ShowKmsTags => "show-kms-tags",
            crypto => CRYPTO
                .iter()
                .find(|c| c.1 == crypto)
                .map_or("unknown", |c| c.0),
        }
    }

    /// The action admission throttles it under (each operation authorizes
    /// its own resources inside).
    fn action(self) -> &'static str {
        use Operation::*;
        match self {
            CreateKey => actions::CREATE_KEY,
            DescribeKey => actions::DESCRIBE_KEY,
            ListKeys => actions::LIST_KEYS,
            EnableKey => actions::ENABLE_KEY,
            DisableKey => actions::DISABLE_KEY,
            ScheduleKeyDeletion => actions::SCHEDULE_KEY_DELETION,
            CancelKeyDeletion => actions::CANCEL_KEY_DELETION,
            UpdateKeyAlias => actions::RENAME_ALIAS,
            CreateAlias => actions::CREATE_ALIAS,
            DeleteAliases => actions::DELETE_ALIAS,
            ListAliases => actions::LIST_ALIASES,
            AssociateAlias => actions::UPDATE_ALIAS,
            CreateKmsTag | BatchKmsTags => actions::TAG_RESOURCE,
            DeleteTag => actions::UNTAG_RESOURCE,
            ShowKmsTags => actions::LIST_RESOURCE_TAGS,
            crypto => CRYPTO
                .iter()
                .find(|c| c.1 == crypto)
                .map_or(actions::DESCRIBE_KEY, |c| c.2),
        }
    }
}

/// The routes of the dialect: `/v1.0/{project_id}/kms/` and an operation.
pub const PATH: &str = "/v1.0/{project_id}/kms/{*operation}";

/// Huawei Cloud KMS v1.0.
pub struct Huawei;

/// An operation, and the project the request names (and for a key's tag
/// calls, the key id and tag key of the path).
pub struct ProjectOperation {
    operation: Operation,
    project_id: String,
    key_id: String,
    tag_key: String,
}

/// A key's tag call: `{key_id}/tags`, `{key_id}/tags/action`,
/// `{key_id}/tags/{key}` (the tag key percent-decoded).
fn tag_route(method: &Method, path: &str) -> Option<(Operation, String, String)> {
    let (key_id, rest) = path.split_once('/')?;
    if !crate::domain::names::is_lowercase_uuid(key_id) {
        return None;
    }
    let operation = match (method.as_str(), rest) {
        ("POST", "tags") => Operation::CreateKmsTag,
        ("GET", "tags") => Operation::ShowKmsTags,
        ("POST", "tags/action") => Operation::BatchKmsTags,
        ("DELETE", rest) if rest.starts_with("tags/") && rest.len() > "tags/".len() => {
            let tag = percent_encoding::percent_decode_str(&rest["tags/".len()..])
                .decode_utf8()
                .ok()?;
            return Some((Operation::DeleteTag, key_id.to_owned(), tag.into_owned()));
        }
        _ => return None,
    };
    Some((operation, key_id.to_owned(), String::new()))
}

impl super::Dialect for Huawei {
    type Operation = ProjectOperation;
    const DOOR: Door = Door::Huawei;

    fn operation(method: &Method, uri: &Uri, _: &HeaderMap) -> Result<ProjectOperation, Error> {
        let (project_id, path) = uri
            .path()
            .strip_prefix("/v1.0/")
            .and_then(|rest| rest.split_once("/kms/"))
            .unwrap_or_default();
        let routed = match Operation::of(method, path) {
            Some(operation) => Some((operation, String::new(), String::new())),
            None => tag_route(method, path),
        };
        routed
            .map(|(operation, key_id, tag_key)| ProjectOperation {
                operation,
                project_id: project_id.to_owned(),
                key_id,
                tag_key,
            })
            .ok_or_else(|| {
                Error::new(
                    Reason::UNKNOWN_OPERATION,
                    format!("No KMS operation {method} /v1.0/{{project_id}}/kms/{path}."),
                )
            })
    }

    fn label(operation: &ProjectOperation) -> &'static str {
        operation.operation.label()
    }

    fn action(operation: &ProjectOperation) -> &'static str {
        operation.operation.action()
    }

    fn project(operation: &ProjectOperation) -> Option<&str> {
        Some(&operation.project_id)
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
        operation: &ProjectOperation,
        request: &HttpRequest,
    ) -> Result<HttpResponse, Error> {
        if matches!(
            operation.operation,
            Operation::CreateKmsTag
                | Operation::BatchKmsTags
                | Operation::DeleteTag
                | Operation::ShowKmsTags
        ) {
            return run_tags(app, call, operation, request).await;
        }
        let (status, body) = run(app, call, operation.operation, request).await?;
        Ok(json_response(status, CONTENT_TYPE, &body))
    }

    fn render_error(error: &Error) -> HttpResponse {
        error_response(error)
    }
}

/// An error as Huawei renders it:
/// `{"error": {"error_code": "KMS.xxxx", "error_msg": ...}}`.
pub fn error_response(error: &Error) -> HttpResponse {
    let spec = crate::door::reasons::rendering(error.reason);
    let status =
        StatusCode::from_u16(spec.huawei_http_status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = json_response(
        status,
        CONTENT_TYPE,
        &json!({"error": {
            "error_code": spec.huawei_error_code,
            "error_msg": in_huaweis_words(error),
        }}),
    );
    // For the metrics: why it was refused.
    response.extensions_mut().insert(error.reason);
    response
}

/// An error's message as Huawei's clients read it: without AWS ARNs, and
/// pointing at Huawei's own operations where it says what to do instead.
fn in_huaweis_words(error: &Error) -> String {
    let message = without_arns(&error.message);
    match error.reason {
        Reason::KEY_HAS_SEVERAL_ALIASES => format!(
            "{message} The alias API: POST /v1.0/{{project_id}}/kms/aliases, DELETE \
             /v1.0/{{project_id}}/kms/aliases, POST /v1.0/{{project_id}}/kms/alias/associate."
        ),
        _ => message,
    }
}

/// A message as Huawei's clients read it: Huawei names a key by its id and
/// an alias by its name, never by an AWS ARN. Each ARN in `message`
/// (`arn:aws:kms:REGION:ACCOUNT:key/ID`, `...:alias/NAME`) becomes the id or
/// the name it ends with.
fn without_arns(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(at) = rest.find("arn:") {
        out.push_str(&rest[..at]);
        let arn = &rest[at..];
        // arn:PARTITION:kms:REGION:ACCOUNT:RESOURCE: the resource follows
        // the fifth colon.
        let resource = arn
            .match_indices(':')
            .nth(4)
            .map(|(colon, _)| &arn[colon + 1..])
            .filter(|_| arn.split(':').nth(2) == Some("kms"));
        match resource {
            Some(resource) if resource.starts_with("key/") => rest = &resource["key/".len()..],
            Some(resource) if resource.starts_with("alias/") => rest = resource,
            _ => {
                out.push_str("arn:");
                rest = &arn["arn:".len()..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// A key's tag calls: writes answer 204 with no body, as Huawei's do.
async fn run_tags(
    app: &Arc<App>,
    call: &Call,
    operation: &ProjectOperation,
    request: &HttpRequest,
) -> Result<HttpResponse, Error> {
    let no_content = || {
        let mut response = HttpResponse::new(Default::default());
        *response.status_mut() = StatusCode::NO_CONTENT;
        response
    };
    let key_id = operation.key_id.as_str();
    match operation.operation {
        Operation::ShowKmsTags => {
            let mut tags = Vec::new();
            let mut token = String::new();
            loop {
                let page = app.list_resource_tags(call, key_id, 0, &token).await?;
                tags.extend(page.items);
                if page.next_page_token.is_empty() {
                    break;
                }
                token = page.next_page_token;
            }
            let body = json!({
                "tags": tags
                    .iter()
                    .map(|(key, value)| json!({ "key": key, "value": value }))
                    .collect::<Vec<_>>(),
                "existTagsNum": tags.len(),
            });
            Ok(json_response(StatusCode::OK, CONTENT_TYPE, &body))
        }
        Operation::DeleteTag => {
            app.untag_resource(call, key_id, vec![operation.tag_key.clone()])
                .await?;
            Ok(no_content())
        }
        Operation::CreateKmsTag => {
            let body = json_object(&request.body)?;
            let tag = match body.get("tag") {
                Some(Value::Object(tag)) => huawei_tag(tag)?,
                _ => {
                    return Err(Error::invalid(
                        Reason::MISSING_PARAMETER,
                        "tag",
                        "The parameter tag is missing.",
                    ))
                }
            };
            app.tag_resource(call, key_id, vec![tag]).await?;
            Ok(no_content())
        }
        _ => {
            let body = json_object(&request.body)?;
            let input = Input(&body);
            let tags = match body.get("tags") {
                Some(Value::Array(items)) if !items.is_empty() => items
                    .iter()
                    .map(|item| match item {
                        Value::Object(tag) => huawei_tag(tag),
                        _ => Err(Error::new(
                            Reason::MALFORMED_BODY,
                            "tags must hold objects {\"key\", \"value\"}.",
                        )),
                    })
                    .collect::<Result<Vec<_>, _>>()?,
                _ => {
                    return Err(Error::invalid(
                        Reason::MISSING_PARAMETER,
                        "tags",
                        "The parameter tags is missing or empty.",
                    ))
                }
            };
            match input.required("action")? {
                "create" => app.tag_resource(call, key_id, tags).await?,
                "delete" => {
                    let keys = tags.into_iter().map(|(key, _)| key).collect();
                    app.untag_resource(call, key_id, keys).await?
                }
                other => {
                    return Err(Error::invalid(
                        Reason::INVALID_PARAMETER,
                        "action",
                        format!("action must be \"create\" or \"delete\"; got {other:?}."),
                    ))
                }
            }
            Ok(no_content())
        }
    }
}

/// A tag as Huawei sends it, `{"key", "value"}`, within Huawei's limits.
fn huawei_tag(tag: &Map<String, Value>) -> Result<(String, String), Error> {
    let input = Input(tag);
    let key = input.required("key")?.to_owned();
    let value = input.string("value")?.unwrap_or_default().to_owned();
    if key.chars().count() > HUAWEI_MAX_TAG_KEY_CHARS {
        return Err(Error::invalid(
            Reason::INVALID_PARAMETER,
            "tag",
            format!("A tag key is at most {HUAWEI_MAX_TAG_KEY_CHARS} characters: {key:?}."),
        ));
    }
    if value.chars().count() > HUAWEI_MAX_TAG_VALUE_CHARS {
        return Err(Error::invalid(
            Reason::INVALID_PARAMETER,
            "tag",
            format!("A tag value is at most {HUAWEI_MAX_TAG_VALUE_CHARS} characters."),
        ));
    }
    Ok((key, value))
}

/// Runs an admitted operation: its answer's status and body.
async fn run(
    app: &Arc<App>,
    call: &Call,
    operation: Operation,
    request: &HttpRequest,
) -> Result<(StatusCode, Value), Error> {
    let call = call.clone();
    let scope = app.scope_of(&call);
    let body = match operation {
        Operation::ListAliases => Map::new(),
        _ => json_object(&request.body)?,
    };
    let input = Input(&body);
    let ok = |value: Value| Ok((StatusCode::OK, value));
    match operation {
        Operation::CreateKey => {
            let new = NewKeyRequest {
                description: input
                    .string("key_description")?
                    .unwrap_or_default()
                    .to_owned(),
                key_spec: input.string("key_spec")?.map(key_spec).transpose()?,
                key_usage: input.string("key_usage")?.map(key_usage).transpose()?,
                request_id: input.string("sequence")?.unwrap_or_default().to_owned(),
                alias_name: input
                    .string("key_alias")?
                    .filter(|a| !a.is_empty())
                    .map(full_alias_name),
                ..NewKeyRequest::default()
            };
            if let Some(origin) = input.string("origin")? {
                if origin != "kms" {
                    return Err(Error::invalid(
                        Reason::INVALID_KEY_SPEC,
                        "origin",
                        format!("origin {origin:?} is not supported: aliasd keys are \"kms\"."),
                    ));
                }
            }
            let key = app.create_key(&call, new).await?;
            ok(json!({ "key_info": {
                "key_id": key.key_id.as_str(),
                "domain_id": scope.account,
                "region_id": scope.region,
            }}))
        }
        Operation::DescribeKey => {
            let (key, aliases) = app
                .describe_key_with_aliases(&call, input.required("key_id")?)
                .await?;
            ok(json!({ "key_info": key_details(&scope, &key, &aliases) }))
        }
        Operation::ListKeys => {
            if input.string("key_state")?.is_some_and(|s| !s.is_empty())
                || input.string("key_spec")?.is_some_and(|s| !s.is_empty())
            {
                return Err(Error::invalid(
                    Reason::MISSING_PARAMETER,
                    "key_state",
                    "list-keys filters (key_state, key_spec) are not supported; list all keys.",
                ));
            }
            let (page, aliases) = app
                .list_keys_with_aliases(
                    &call,
                    input.limit()?,
                    input.string("marker")?.unwrap_or_default(),
                )
                .await?;
            let details: Vec<Value> = page
                .items
                .iter()
                .zip(&aliases)
                .map(|(key, aliases)| key_details(&scope, key, aliases))
                .collect();
            let truncated = !page.next_page_token.is_empty();
            ok(json!({
                "keys": page.items.iter().map(|k| k.key_id.as_str()).collect::<Vec<_>>(),
                "key_details": details,
                "next_marker": page.next_page_token,
                "truncated": if truncated { "true" } else { "false" },
            }))
        }
        Operation::EnableKey | Operation::DisableKey => {
            let (key_id, sequence) = (input.required("key_id")?, input.sequence()?);
            let key = match operation {
                Operation::EnableKey => app.enable_key(&call, key_id, sequence).await?,
                _ => app.disable_key(&call, key_id, sequence).await?,
            };
            ok(json!({ "key_info": {
                "key_id": key.key_id.as_str(),
                "key_state": key_state(key.key_state),
            }}))
        }
        Operation::ScheduleKeyDeletion => {
            let days = input.required("pending_days")?;
            let days: i32 = days.trim().parse().map_err(|_| {
                Error::invalid(
                    Reason::INVALID_PENDING_WINDOW,
                    "pending_days",
                    format!("pending_days must be a number of days, 7 to 30; got {days:?}."),
                )
            })?;
            let key = app
                .schedule_key_deletion(&call, input.required("key_id")?, days, input.sequence()?)
                .await?;
            ok(json!({ "key_id": key.key_id.as_str(), "key_state": key_state(key.key_state) }))
        }
        Operation::CancelKeyDeletion => {
            let key = app
                .cancel_key_deletion(&call, input.required("key_id")?, input.sequence()?)
                .await?;
            ok(json!({ "key_id": key.key_id.as_str(), "key_state": key_state(key.key_state) }))
        }
        Operation::UpdateKeyAlias => {
            let key_alias = input.required("key_alias")?;
            let alias = app
                .set_key_alias(
                    &call,
                    input.required("key_id")?,
                    &full_alias_name(key_alias),
                    input.sequence()?,
                )
                .await?;
            ok(json!({ "key_info": {
                "key_id": alias.target.as_str(),
                "key_alias": short_alias_name(&alias.name),
            }}))
        }
        Operation::CreateAlias => {
            let alias = app
                .create_alias(
                    &call,
                    &full_alias_name(input.required("alias")?),
                    input.required("key_id")?,
                    "",
                )
                .await?;
            Ok((StatusCode::CREATED, alias_entity(&scope, &alias)))
        }
        Operation::AssociateAlias => {
            let alias = app
                .update_alias(
                    &call,
                    &full_alias_name(input.required("alias")?),
                    input.required("target_key_id")?,
                    "",
                    "",
                )
                .await?;
            ok(alias_entity(&scope, &alias))
        }
        Operation::DeleteAliases => {
            let names: Vec<String> = input
                .strings("aliases")?
                .into_iter()
                .map(full_alias_name)
                .collect();
            app.delete_aliases_of_key(&call, input.required("key_id")?, &names)
                .await?;
            ok(json!({}))
        }
        Operation::ListAliases => {
            let query = query_pairs(request.uri.query().unwrap_or_default());
            let get = |name: &str| {
                query
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| v.as_str())
                    .unwrap_or_default()
            };
            let limit = match get("limit") {
                "" => 0,
                text => parse_limit(text)?,
            };
            let page = app
                .list_aliases(&call, get("key_id"), limit, get("marker"))
                .await?;
            let aliases: Vec<Value> = page
                .page
                .items
                .iter()
                .map(|alias| alias_entity(&scope, alias))
                .collect();
            ok(json!([{
                "aliases": aliases,
                "page_info": {
                    "next_marker": page.page.next_page_token,
                    "current_count": page.page.items.len(),
                },
            }]))
        }
        crypto_operation => crypto::run(app, &call, crypto_operation, &input).await,
    }
}

/// What the request presents: nothing without an auth file (every project
/// maps to --account), else `X-Auth-Token` or an AK/SK signature. A missing,
/// malformed or stale signature is handed on as refused, so that admission
/// audits it.
fn credentials(app: &App, request: &HttpRequest) -> Credentials {
    if app.authenticator.is_none() {
        return Credentials::default();
    }
    let refused = |error: Error| Credentials {
        refused: Some(error),
        ..Credentials::default()
    };
    if let Some(token) = request.headers.get("x-auth-token") {
        let token = token
            .to_str()
            .ok()
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| {
                Error::new(
                    Reason::UNAUTHENTICATED,
                    "X-Auth-Token is empty or not ASCII.",
                )
            });
        return Credentials {
            bearer: Some(token),
            ..Credentials::default()
        };
    }
    let Some(authorization) = request.headers.get(http::header::AUTHORIZATION) else {
        return refused(Error::new(
            Reason::MISSING_AUTHENTICATION_TOKEN,
            "The request has no X-Auth-Token and no AK/SK signature.",
        ));
    };
    let signed = authorization
        .to_str()
        .map_err(|_| Error::new(Reason::INCOMPLETE_SIGNATURE, "Authorization is not ASCII."))
        .and_then(|value| {
            sdk_hmac::Signed::new(
                value,
                &request.method,
                &request.uri,
                &request.headers,
                &request.body,
                app.clock.now(),
            )
        });
    match signed {
        Ok(signed) => Credentials {
            signature: Some(SignedRequest {
                access_key_id: signed.access_key_id.clone(),
                verify: Box::new(move |secret| signed.verify(secret.expose())),
            }),
            ..Credentials::default()
        },
        Err(error) => refused(error),
    }
}

/// Who the headers say sent the request, before its body arrives: the
/// `X-Auth-Token`, or the AK of an SDK-HMAC-SHA256 signature.
pub fn claim(headers: &http::HeaderMap) -> crate::app::admission::auth::Claim {
    use crate::app::admission::auth::Claim;
    if let Some(token) = headers.get("x-auth-token").and_then(|v| v.to_str().ok()) {
        return Claim::Bearer(token.trim().to_owned());
    }
    super::authorization_part(headers, "SDK-HMAC-SHA256", "Access")
        .map_or(Claim::Nothing, |ak| Claim::AccessKey(ak.to_owned()))
}

/// `X` -> `alias/X`; a name already beginning `alias/` as is.
fn full_alias_name(name: &str) -> String {
    match name.starts_with("alias/") {
        true => name.to_owned(),
        false => format!("alias/{name}"),
    }
}

fn short_alias_name(name: &AliasName) -> &str {
    name.as_str()
        .strip_prefix("alias/")
        .unwrap_or(name.as_str())
}

/// The request's fields with Huawei's errors: the wrong JSON type is
/// KMS.0202, a missing required field KMS.0204; unknown fields are ignored.
pub(super) struct Input<'a>(pub(super) &'a Map<String, Value>);

impl<'a> Input<'a> {
    pub(super) fn string(&self, name: &'static str) -> Result<Option<&'a str>, Error> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(text)) => Ok(Some(text)),
            Some(_) => Err(Error::new(
                Reason::MALFORMED_BODY,
                format!("{name} must be a string."),
            )),
        }
    }

    pub(super) fn required(&self, name: &'static str) -> Result<&'a str, Error> {
        match self.string(name)? {
            Some(value) if !value.is_empty() => Ok(value),
            _ => Err(Error::invalid(
                Reason::MISSING_PARAMETER,
                name,
                format!("The parameter {name} is missing."),
            )),
        }
    }

    fn strings(&self, name: &'static str) -> Result<Vec<&'a str>, Error> {
        match self.0.get(name) {
            Some(Value::Array(items)) if !items.is_empty() => items
                .iter()
                .map(|item| {
                    item.as_str().ok_or_else(|| {
                        Error::new(Reason::MALFORMED_BODY, format!("{name} must hold strings."))
                    })
                })
                .collect(),
            None | Some(Value::Null) | Some(Value::Array(_)) => Err(Error::invalid(
                Reason::MISSING_PARAMETER,
                name,
                format!("The parameter {name} is missing or empty."),
            )),
            Some(_) => Err(Error::new(
                Reason::MALFORMED_BODY,
                format!("{name} must be an array of strings."),
            )),
        }
    }

    /// `sequence`: Huawei's request serial number, aliasd's request_id.
    pub(super) fn sequence(&self) -> Result<&'a str, Error> {
        Ok(self.string("sequence")?.unwrap_or_default())
    }

    /// `limit` (a string of digits, as the SDK sends it; a number is taken
    /// too): 1..100.
    fn limit(&self) -> Result<i32, Error> {
        match self.0.get("limit") {
            None | Some(Value::Null) => Ok(0),
            Some(Value::String(text)) if text.is_empty() => Ok(0),
            Some(Value::String(text)) => parse_limit(text),
            Some(Value::Number(n)) => parse_limit(&n.to_string()),
            Some(_) => Err(Error::new(
                Reason::MALFORMED_BODY,
                "limit must be a string.",
            )),
        }
    }
}

fn parse_limit(text: &str) -> Result<i32, Error> {
    text.parse::<i64>()
        .ok()
        .and_then(super::page_limit)
        .ok_or_else(|| {
            Error::invalid(
                Reason::INVALID_PAGE_SIZE,
                "limit",
                format!(
                    "limit must be 1 to {}; got {text:?}.",
                    super::MAX_PAGE_LIMIT
                ),
            )
        })
}

/// The query's `name=value` pairs, percent-decoded.
fn query_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let decode = |s: &str| {
                percent_encoding::percent_decode_str(&s.replace('+', " "))
                    .decode_utf8_lossy()
                    .into_owned()
            };
            (decode(name), decode(value))
        })
        .collect()
}

/// Huawei's key spec names, and aliasd's where Huawei has none.
const SPECS: &[(&str, KeySpec)] = &[
    ("AES_256", KeySpec::SYMMETRIC_DEFAULT),
    ("EC_P256", KeySpec::ECC_NIST_P256),
    ("EC_P384", KeySpec::ECC_NIST_P384),
    ("EC_P521", KeySpec::ECC_NIST_P521),
    ("SECP256K1", KeySpec::ECC_SECG_P256K1),
];

fn key_spec(name: &str) -> Result<KeySpec, Error> {
    SPECS
        .iter()
        .find(|(huawei, _)| *huawei == name)
        .map(|(_, spec)| *spec)
        .or_else(|| KeySpec::from_name(name))
        .ok_or_else(|| {
            Error::invalid(
                Reason::INVALID_KEY_SPEC,
                "key_spec",
                format!("Unknown key_spec {name:?}."),
            )
        })
}

fn key_spec_name(spec: KeySpec) -> &'static str {
    SPECS
        .iter()
        .find(|(_, s)| *s == spec)
        .map(|(huawei, _)| *huawei)
        .unwrap_or(spec.as_str())
}

fn key_usage(name: &str) -> Result<KeyUsage, Error> {
    KeyUsage::from_name(name).ok_or_else(|| {
        Error::invalid(
            Reason::INVALID_KEY_USAGE,
            "key_usage",
            format!("Unknown key_usage {name:?}."),
        )
    })
}

/// Huawei's key states: "2" enabled, "3" disabled, "4" scheduled deletion.
fn key_state(state: KeyState) -> &'static str {
    match state {
        KeyState::ENABLED => "2",
        KeyState::DISABLED => "3",
        KeyState::PENDING_DELETION => "4",
    }
}

fn key_details(scope: &Scope, key: &Key, aliases: &[AliasName]) -> Value {
    json!({
        "key_id": key.key_id.as_str(),
        "domain_id": scope.account,
        "key_alias": aliases.first().map(short_alias_name).unwrap_or_default(),
        "realm": scope.region,
        "key_spec": key_spec_name(key.key_spec),
        "key_usage": key.key_usage.as_str(),
        "key_description": key.description,
        "creation_date": key.creation_time.to_string(),
        "scheduled_deletion_date": key.deletion_time.map(|t| t.to_string()).unwrap_or_default(),
        "key_state": key_state(key.key_state),
        "default_key_flag": if key.key_manager == KeyManager::PROVIDER { "1" } else { "0" },
        "key_type": "1",
        "origin": "kms",
    })
}

fn alias_entity(scope: &Scope, alias: &Alias) -> Value {
    json!({
        "domain_id": scope.account,
        "key_id": alias.target.as_str(),
        "alias": alias.name.as_str(),
        "alias_urn": format!("kms:{}:{}:{}", scope.region, scope.account, alias.name),
        "create_time": alias.creation_time.to_string(),
        "update_time": alias.last_updated_time.to_string(),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn messages_name_key_ids_and_alias_names_not_arns() {
        assert_eq!(
            without_arns(
                "Key 'arn:aws:kms:us-east-1:000000000000:key/0d0466b0-e727-4d9c-b35d-f84bb474a37f' \
                 does not exist."
            ),
            "Key '0d0466b0-e727-4d9c-b35d-f84bb474a37f' does not exist."
        );
        assert_eq!(
            without_arns("Alias arn:aws-cn:kms:cn-north-1:1:alias/a/b is not found."),
            "Alias alias/a/b is not found."
        );
        for untouched in ["no ARN here", "arn:aws:s3:::bucket", "ends with arn:"] {
            assert_eq!(without_arns(untouched), untouched);
        }
    }

    use super::*;

    #[test]
    fn routes_name_the_operations_and_nothing_else() {
        assert_eq!(
            Operation::of(&Method::POST, "update-key-alias"),
            Some(Operation::UpdateKeyAlias)
        );
        assert_eq!(
            Operation::of(&Method::DELETE, "aliases"),
            Some(Operation::DeleteAliases)
        );
        assert_eq!(Operation::of(&Method::GET, "update-key-alias"), None);
        assert_eq!(
            Operation::of(&Method::POST, "encrypt-data"),
            Some(Operation::EncryptData)
        );
        assert_eq!(Operation::of(&Method::GET, "encrypt-data"), None);
        assert_eq!(Operation::of(&Method::POST, "re-encrypt"), None);
    }

    #[test]
    fn huawei_names_map_to_aliases_and_back() {
        assert_eq!(full_alias_name("test"), "alias/test");
        assert_eq!(full_alias_name("alias/test"), "alias/test");
        let name = AliasName::parse("alias_name", "alias/a/b").unwrap();
        assert_eq!(short_alias_name(&name), "a/b");
        assert_eq!(key_spec("AES_256").unwrap(), KeySpec::SYMMETRIC_DEFAULT);
        assert_eq!(key_spec("RSA_2048").unwrap(), KeySpec::RSA_2048);
        assert_eq!(key_spec_name(KeySpec::ECC_NIST_P256), "EC_P256");
        assert_eq!(
            key_spec("DES").unwrap_err().reason,
            Reason::INVALID_KEY_SPEC
        );
        assert_eq!(
            query_pairs("key_id=a%2Fb&limit=5"),
            vec![
                ("key_id".into(), "a/b".into()),
                ("limit".into(), "5".into())
            ]
        );
    }
}
