//! Console sessions: the `__Host-certbound_session` cookie (32 random
//! bytes, base64url), kept in the store as its SHA-256, with an idle
//! (sliding) and an absolute timeout from `[ui]`, and the CSRF rules of
//! cookie-authenticated requests (docs/console.md).

use std::collections::HashMap;
use std::sync::Mutex;

use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use base64::Engine as _;
use certbound_proto::rate_limit::RateLimiter;
use certbound_registry::credentials::{hash_secret, same_hash};
use rand::RngCore;

use crate::store::{Store, StoreError, UiSession};
use crate::transport::https::admin::AdminError;

/// The session cookie's name (`__Host-`: Secure, Path=/, no Domain).
pub const COOKIE: &str = "__Host-certbound_session";
/// The header carrying the CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// Scopes a console session can hold.
pub const ADMIN_SCOPES: [&str; 2] = ["admin:read", "admin:write"];
/// A session's last use is written at most this often (seconds): the idle
/// timeout is exact to within this.
const TOUCH_EVERY: u64 = 30;

/// Per-process console state: the login rate limiter and the open audit
/// streams per session.
#[derive(Debug)]
pub struct UiState {
    logins: Mutex<RateLimiter>,
    started: std::time::Instant,
    streams: Mutex<HashMap<String, u32>>,
}

impl Default for UiState {
    fn default() -> Self {
        Self::new(10.0, 20)
    }
}

impl UiState {
    /// Logins per client IP: `per_sec` sustained, `burst` at once.
    pub fn new(per_sec: f64, burst: u32) -> Self {
        Self {
            logins: Mutex::new(RateLimiter::new(burst.max(1), per_sec, 100_000)),
            started: std::time::Instant::now(),
            streams: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one login attempt from `ip`'s bucket; `Err(retry_after)` when empty.
    pub fn check_login(&self, ip: &str) -> Result<(), u64> {
        let now_ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let mut guard = match self.logins.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        guard.check(ip, now_ms).map_err(|r| r.secs)
    }

    /// Opens a stream for `session` unless it holds `max` already.
    pub fn open_stream(self: &std::sync::Arc<Self>, session: &str, max: u32) -> Option<StreamSlot> {
        let mut map = match self.streams.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let n = map.entry(session.to_string()).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(StreamSlot {
            state: self.clone(),
            session: session.to_string(),
        })
    }
}

/// One open audit stream of a session; dropping it frees the slot.
#[derive(Debug)]
pub struct StreamSlot {
    state: std::sync::Arc<UiState>,
    session: String,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut map = match self.state.streams.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if let Some(n) = map.get_mut(&self.session) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&self.session);
            }
        }
    }
}

fn random_token() -> String {
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// Starts a session for `actor` with `scopes`: records it and returns the
/// cookie value (shown only in `Set-Cookie`) and the session.
pub async fn start(
    store: &Store,
    actor: &str,
    scopes: &str,
    now: u64,
    max_secs: u64,
) -> Result<(String, UiSession), StoreError> {
    let cookie = random_token();
    let session = UiSession {
        id_hash: hash_secret(&cookie),
        actor: actor.to_string(),
        scopes: scopes.to_string(),
        csrf_token: random_token(),
        created_at: now,
        last_seen: now,
        expires_at: now.saturating_add(max_secs),
    };
    store.create_ui_session(&session).await?;
    Ok((cookie, session))
}

/// The `Set-Cookie` value of a new session.
pub fn set_cookie(value: &str, max_secs: u64) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{COOKIE}={value}; HttpOnly; Secure; SameSite=Strict; Path=/; Max-Age={max_secs}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("__Host-certbound_session=; Path=/"))
}

/// The `Set-Cookie` value that removes the cookie.
pub fn clear_cookie() -> HeaderValue {
    HeaderValue::from_static(
        "__Host-certbound_session=; HttpOnly; Secure; SameSite=Strict; Path=/; Max-Age=0",
    )
}

/// The session cookie's value in `headers`, if sent.
pub fn cookie_value(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim())
        .filter(|v| !v.is_empty())
}

/// Why a session was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionRefusal {
    /// No such session (never, signed out, or pruned).
    Unknown,
    /// Idle longer than `[ui] session_idle_secs`.
    Idle,
    /// Past `[ui] session_max_secs` since sign-in.
    Expired,
}

impl SessionRefusal {
    /// For the 401 message.
    pub fn message(self) -> &'static str {
        match self {
            SessionRefusal::Unknown => {
                "no console session: sign in at /ui/login, or send Authorization: Bearer <token>"
            }
            SessionRefusal::Idle => {
                "the console session ended after inactivity: sign in again at /ui/login"
            }
            SessionRefusal::Expired => {
                "the console session reached its maximum age: sign in again at /ui/login"
            }
        }
    }
}

/// The live session named by `cookie` at `now`; moves its last use.
pub async fn lookup(
    store: &Store,
    cookie: &str,
    now: u64,
    idle_secs: u64,
) -> Result<Result<UiSession, SessionRefusal>, StoreError> {
    let hash = hash_secret(cookie);
    let Some(session) = store.ui_session(&hash).await? else {
        return Ok(Err(SessionRefusal::Unknown));
    };
    if now >= session.expires_at {
        store.delete_ui_session(&hash).await?;
        return Ok(Err(SessionRefusal::Expired));
    }
    if now >= session.last_seen.saturating_add(idle_secs) {
        store.delete_ui_session(&hash).await?;
        return Ok(Err(SessionRefusal::Idle));
    }
    if now
        >= session
            .last_seen
            .saturating_add(TOUCH_EVERY.min(idle_secs / 2))
    {
        store.touch_ui_session(&hash, now).await?;
    }
    Ok(Ok(session))
}

/// The origin of this server as the request names it (`https://` + Host).
fn own_origin(headers: &HeaderMap) -> Option<String> {
    let host = headers.get(header::HOST)?.to_str().ok()?;
    Some(format!("https://{}", host.trim()))
}

/// Login CSRF and request CSRF: an `Origin` header, when present, must be
/// this server's own origin.
pub fn origin_ok(headers: &HeaderMap) -> bool {
    match headers.get(header::ORIGIN) {
        None => true,
        Some(o) => match (o.to_str().ok(), own_origin(headers)) {
            (Some(o), Some(own)) => o.trim().eq_ignore_ascii_case(&own),
            _ => false,
        },
    }
}

/// The CSRF rules for a cookie-authenticated request: methods other than
/// GET and HEAD carry `X-CSRF-Token` equal to the session's (or `form_token`,
/// a logout form's field), and a same-origin `Origin` when one is sent.
pub fn check_csrf(
    method: &Method,
    headers: &HeaderMap,
    session: &UiSession,
    form_token: Option<&str>,
) -> Result<(), AdminError> {
    if method == Method::GET || method == Method::HEAD {
        return Ok(());
    }
    let refuse = |m: &str| AdminError(StatusCode::FORBIDDEN, "csrf", m.to_string());
    if !origin_ok(headers) {
        return Err(refuse(
            "the request's Origin is not this server: cross-site requests are refused",
        ));
    }
    let sent = headers
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .or(form_token);
    match sent {
        Some(t) if same_hash(t.trim(), &session.csrf_token) => Ok(()),
        Some(_) => Err(refuse(
            "X-CSRF-Token does not match this session's: read it from GET /ui/session",
        )),
        None => Err(refuse(
            "a console request that changes something needs the X-CSRF-Token header (from GET /ui/session)",
        )),
    }
}
