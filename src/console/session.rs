//! Console sessions: a random id in an HttpOnly cookie, mapped here (in
//! memory, lost on restart) to who holds it and its CSRF token, until it
//! expires. The bearer token a principal logged in with is never kept: a
//! session remembers the principal's name, and each request looks the
//! principal up in the auth file in force.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The cookie that carries the session id.
pub const COOKIE: &str = "aliasd_console";
/// How long a login lasts.
pub const LOGIN_TTL: Duration = Duration::from_secs(8 * 3600);
/// How long a login form stays usable.
const PENDING_TTL: Duration = Duration::from_secs(600);
/// Sessions kept at most; the oldest go first when more are made (a
/// client that never sends cookies back makes one per page).
const MAX_SESSIONS: usize = 10_000;

/// Who a session stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holder {
    /// Nobody yet: a login form was served (its CSRF token guards the
    /// login itself).
    Pending,
    /// Anyone: the server has no auth file.
    Open,
    /// The principal of that name, who logged in with a bearer token (its
    /// SHA-256, as the auth file names it: the session stands only while
    /// the file admits that token).
    Login(String, String),
    /// The principal of that name, named by the connection's client
    /// certificate (checked again on every request).
    Certificate(String),
}

/// A live session.
#[derive(Debug, Clone)]
pub struct Session {
    pub id: String,
    pub holder: Holder,
    /// The token every POST of this session must carry.
    pub csrf: String,
    expires: Instant,
}

/// The live sessions.
#[derive(Default)]
pub struct Sessions {
    live: Mutex<HashMap<String, Session>>,
}

/// 32 random bytes, hex.
fn random_token() -> String {
    let mut bytes = [0u8; 32];
    // The OS's generator failing leaves no safe way to make sessions.
    getrandom::getrandom(&mut bytes).expect("the operating system's random generator works");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Sessions {
    /// A new session for `holder`, with fresh id and CSRF token.
    pub fn open(&self, holder: Holder) -> Session {
        let ttl = match holder {
            Holder::Pending => PENDING_TTL,
            _ => LOGIN_TTL,
        };
        let session = Session {
            id: random_token(),
            holder,
            csrf: random_token(),
            expires: Instant::now() + ttl,
        };
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        if live.len() >= MAX_SESSIONS {
            let now = Instant::now();
            live.retain(|_, s| s.expires > now);
        }
        if live.len() >= MAX_SESSIONS {
            if let Some(oldest) = live
                .values()
                .min_by_key(|s| s.expires)
                .map(|s| s.id.clone())
            {
                live.remove(&oldest);
            }
        }
        live.insert(session.id.clone(), session.clone());
        session
    }

    /// The live session of `id`, if it has not expired.
    pub fn get(&self, id: &str) -> Option<Session> {
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        match live.get(id) {
            Some(session) if session.expires > Instant::now() => Some(session.clone()),
            Some(_) => {
                live.remove(id);
                None
            }
            None => None,
        }
    }

    /// Ends the session `id`.
    pub fn close(&self, id: &str) {
        self.live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
    }
}

/// The session id in a request's cookies.
pub fn cookie_id(headers: &http::HeaderMap) -> Option<String> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .find_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == COOKIE).then(|| value.to_owned())
        })
}

/// The `Set-Cookie` value that gives the browser `session` (Secure when
/// the console is served over TLS).
pub fn set_cookie(session: &Session, secure: bool) -> String {
    let max_age = match session.holder {
        Holder::Pending => PENDING_TTL,
        _ => LOGIN_TTL,
    };
    format!(
        "{COOKIE}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        session.id,
        max_age.as_secs(),
        if secure { "; Secure" } else { "" }
    )
}

/// The `Set-Cookie` value that removes the session cookie.
pub fn clear_cookie(secure: bool) -> String {
    format!(
        "{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{}",
        if secure { "; Secure" } else { "" }
    )
}

/// Whether `given` is `expected`, in time that does not depend on where
/// they differ.
pub fn same_token(given: &str, expected: &str) -> bool {
    given.len() == expected.len()
        && given
            .bytes()
            .zip(expected.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_have_distinct_ids_and_csrf_tokens_and_end_when_closed() {
        let sessions = Sessions::default();
        let one = sessions.open(Holder::Login("a".into(), "hash".into()));
        let two = sessions.open(Holder::Login("a".into(), "hash".into()));
        assert_ne!(one.id, two.id);
        assert_ne!(one.csrf, one.id);
        assert_eq!(sessions.get(&one.id).unwrap().holder, one.holder);
        sessions.close(&one.id);
        assert!(sessions.get(&one.id).is_none());
        assert!(sessions.get(&two.id).is_some());
    }

    #[test]
    fn the_cookie_is_http_only_strict_and_secure_over_tls() {
        let session = Sessions::default().open(Holder::Open);
        let cookie = set_cookie(&session, true);
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
        assert!(cookie.ends_with("; Secure"));
        assert!(!set_cookie(&session, false).contains("Secure"));
        let mut headers = http::HeaderMap::new();
        headers.insert(
            http::header::COOKIE,
            format!("other=1; {COOKIE}={}", session.id).parse().unwrap(),
        );
        assert_eq!(cookie_id(&headers), Some(session.id));
    }

    #[test]
    fn tokens_compare_equal_only_when_equal() {
        assert!(same_token("abc", "abc"));
        assert!(!same_token("abd", "abc"));
        assert!(!same_token("ab", "abc"));
    }
}
