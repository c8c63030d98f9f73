//! Admission: who is calling (authentication of the credentials a door
//! extracted), and whether the account may call now (throttling). Refused
//! unauthenticated calls are audited, within a budget per peer address so
//! that nobody can fill the disk without credentials.

pub mod auth;
pub mod slots;
pub mod throttle;
pub mod watches;

use std::sync::Arc;

use self::slots::{CallBounds, CallSlots};
use crate::app::admission::auth::Credentials;
use crate::app::admission::throttle::{ThrottleConfig, Throttler};
use crate::app::App;
use crate::domain::audit::{AuditEntry, Origin};
use crate::domain::error::Code;
use crate::domain::policy::Caller;
use crate::domain::{Error, Reason};

/// The action an unauthenticated call to a method that does not exist is
/// audited under.
const UNKNOWN_ACTION: &str = "unknown";

/// The throttle, the budget of audited unauthenticated calls, and the
/// shares of the calls in progress.
pub struct Admission {
    pub throttler: Arc<Throttler>,
    /// Limits how many unauthenticated calls per peer address are audited.
    pub denial_budget: Arc<Throttler>,
    /// Calls in progress per principal, and requests not yet authenticated.
    pub calls: CallSlots,
}

impl Admission {
    /// Calls per second per account and action (`rate` 0: unlimited), at
    /// most 20 unauthenticated calls at once, then 5 a second, recorded per
    /// peer address, and calls in progress within `bounds`.
    pub fn new(rate: f64, burst: f64, bounds: CallBounds) -> Admission {
        Admission {
            throttler: Arc::new(Throttler::new(ThrottleConfig { rate, burst })),
            denial_budget: Arc::new(Throttler::new(ThrottleConfig {
                rate: 5.0,
                burst: 20.0,
            })),
            calls: CallSlots::new(bounds),
        }
    }
}

impl App {
    /// Admits a call to `action` (None for a method that is not an API
    /// action: it is neither throttled nor recorded under a name): with an
    /// auth file its credentials must name a principal, and the account must
    /// be within its throttle. `peer` (the client's IP address, or "") keys
    /// the budget of audited refusals; `x_request_id` goes into their
    /// records.
    pub fn admit(
        &self,
        credentials: &Credentials,
        action: Option<&'static str>,
        origin: &Origin,
        x_request_id: &str,
    ) -> Result<Caller, Error> {
        let recorded_as = action.unwrap_or(UNKNOWN_ACTION);
        self.admit_recorded_as(credentials, action, recorded_as, origin, x_request_id)
    }

    /// [`App::admit`] for a door's login (the console's): the credentials
    /// must name a principal; nothing is throttled, and a refusal is
    /// audited under the action `recorded_as` (say, "console:Login").
    pub fn admit_login(
        &self,
        credentials: &Credentials,
        recorded_as: &'static str,
        origin: &Origin,
        x_request_id: &str,
    ) -> Result<Caller, Error> {
        self.admit_recorded_as(credentials, None, recorded_as, origin, x_request_id)
    }

    /// [`App::admit`], recording a refusal for want of credentials under
    /// `recorded_as`.
    fn admit_recorded_as(
        &self,
        credentials: &Credentials,
        action: Option<&'static str>,
        recorded_as: &'static str,
        origin: &Origin,
        x_request_id: &str,
    ) -> Result<Caller, Error> {
        // One snapshot of the auth file for both checks of this call.
        let config = self.authenticator.as_ref().map(|auth| auth.current());
        let (caller, account) = match &config {
            None => (Caller::Anonymous, self.scope.account.clone()),
            Some(config) => match config.authenticate(credentials) {
                Ok(principal) => {
                    let account = principal.account.clone();
                    (Caller::Principal(principal), account)
                }
                Err(error) => {
                    self.record_unauthenticated(&error, recorded_as, origin, x_request_id);
                    return Err(error);
                }
            },
        };
        // The call's log lines name who made it.
        tracing::Span::current().record("principal", caller.name());
        if let Some(action) = action {
            let throttle = config.as_ref().and_then(|c| c.throttle.as_ref());
            // Throttled calls are not audited: they would flood the log.
            self.admission.throttler.admit(&account, action, throttle)?;
        }
        Ok(caller)
    }

    /// [`App::admit`] for a caller a door authenticated earlier with a
    /// bearer token and remembers by name and token hash (the console's
    /// login session): the principal of that name, if the auth file in
    /// force now still admits that token for it (a principal removed, or
    /// its token rotated, by a reload is UNAUTHENTICATED), throttled as any
    /// call.
    pub fn admit_principal(
        &self,
        name: &str,
        token_sha256: &str,
        action: Option<&'static str>,
    ) -> Result<Caller, Error> {
        let config = self.authenticator.as_ref().map(|auth| auth.current());
        let (caller, throttle) = match &config {
            None => (Caller::Anonymous, None),
            // The token it logged in with must still be the principal's: a
            // rotated token ends its sessions.
            Some(config) => match config
                .by_token_sha256(token_sha256)
                .filter(|principal| principal.name == name)
            {
                Some(principal) => (Caller::Principal(principal), config.throttle.as_ref()),
                None => {
                    return Err(auth::unauthenticated(format!(
                        "The auth file no longer admits the token {name} logged in with; log in \
                         again."
                    )))
                }
            },
        };
        tracing::Span::current().record("principal", caller.name());
        if let Some(action) = action {
            let account = match &caller {
                Caller::Principal(principal) => principal.account.clone(),
                Caller::Anonymous => self.scope.account.clone(),
            };
            self.admission.throttler.admit(&account, action, throttle)?;
        }
        Ok(caller)
    }

    /// [`App::admit`] for a door whose requests name a project (Huawei's
    /// `/v1.0/{project_id}/`): a principal that names its projects may use
    /// only those; another project's resources do not exist for it
    /// (PROJECT_NOT_FOUND, as another account's are NOT_FOUND).
    pub fn admit_in_project(
        &self,
        credentials: &Credentials,
        action: Option<&'static str>,
        project: Option<&str>,
        origin: &Origin,
        x_request_id: &str,
    ) -> Result<Caller, Error> {
        let caller = self.admit(credentials, action, origin, x_request_id)?;
        if let (Some(project), Caller::Principal(principal)) = (project, &caller) {
            if !principal.project_ids.is_empty()
                && !principal.project_ids.iter().any(|p| p == project)
            {
                return Err(Error::new(
                    Reason::PROJECT_NOT_FOUND,
                    format!("Project {project} is not found."),
                ));
            }
        }
        Ok(caller)
    }

    /// Records a call refused for want of credentials (in the default
    /// account: it has no other), unless its peer is over its budget.
    fn record_unauthenticated(
        &self,
        error: &Error,
        action: &str,
        origin: &Origin,
        x_request_id: &str,
    ) {
        if error.reason.spec().code != Code::Unauthenticated {
            return;
        }
        if self
            .admission
            .denial_budget
            .admit(&origin.source_address, "unauthenticated", None)
            .is_err()
        {
            let peer = &origin.source_address;
            tracing::warn!(%peer, "unauthenticated calls over the audit budget are not recorded");
            return;
        }
        let entry = AuditEntry {
            time: self.clock.now(),
            principal: "unauthenticated".to_owned(),
            account: self.scope.account.clone(),
            action: action.to_owned(),
            x_request_id: x_request_id.to_owned(),
            outcome: error.reason.as_str().to_owned(),
            message: error.message.clone(),
            origin: origin.clone(),
            ..AuditEntry::default()
        };
        let store = self.store.clone();
        tokio::spawn(async move {
            if let Err(error) = store.record_audit(entry).await {
                tracing::error!(%error, "cannot record a denied call");
            }
        });
    }
}
