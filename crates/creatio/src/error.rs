//! Everything that can go wrong talking to Creatio, classified the way a
//! caller must act on it: retry later ([`Error::is_retryable`], with
//! [`Error::retry_after`]), stop and ask a person
//! ([`Error::is_dead_credentials`]), or treat as done
//! ([`Error::AlreadyExists`]). [`Error::diagnosis`] says what to do in words
//! an admin understands.
//!
//! Creatio answers errors in three shapes (reference §2.7): the ASP.NET OData
//! envelope `{"error":{"code":"","message":…,"innererror":…}}`, the ASP.NET
//! Web API shapes `{"Message","ExceptionMessage"}` and, for an unknown entity
//! set, `{"Message","MessageDetail"}`; the Identity Service answers OAuth
//! errors `{"error":"invalid_client"}`. All are decoded here.

use std::time::Duration;

use reqwest::header::{HeaderMap, LOCATION, RETRY_AFTER};
use serde_json::Value;
use uuid::Uuid;

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The error a DNS resolver (or any layer under the HTTP client) returns to
/// refuse an address by policy — an internal network, say. The client
/// reports it as [`Error::AddressRefused`] or [`TokenError::AddressRefused`]:
/// not a transient failure, so never retried, and a person must act.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct AddressRefused(pub String);

/// The policy refusal somewhere in a transport error's causes, if any.
pub(crate) fn refused_address(e: &reqwest::Error) -> Option<String> {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(r) = s.downcast_ref::<AddressRefused>() {
            return Some(r.0.clone());
        }
        source = s.source();
    }
    None
}

/// A failure to obtain an access token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Unknown client id, wrong secret, or a deactivated OAuth app.
    #[error("the token endpoint rejected the client credentials (invalid_client)")]
    InvalidClient,
    /// The OAuth app exists but may not use the client-credentials grant.
    #[error("the OAuth app may not use the client-credentials grant (unauthorized_client)")]
    UnauthorizedClient,
    /// The endpoint does not do client credentials at all.
    #[error(
        "the token endpoint does not support the client-credentials grant (unsupported_grant_type)"
    )]
    UnsupportedGrantType,
    /// The configured scope is not one the app may request.
    #[error("the token endpoint refused the requested scope (invalid_scope)")]
    InvalidScope,
    /// Another OAuth error code (e.g. `invalid_request`).
    #[error("the token endpoint refused the request ({code}{})", description.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    Refused {
        code: String,
        description: Option<String>,
    },
    /// The answer was not an OAuth token response: typically an HTML login
    /// page because the URL is the Creatio site, not its Identity Service.
    #[error("{url} answered HTTP {status} with {content_type}, not an OAuth token response")]
    TokenEndpointNotJson {
        url: String,
        status: u16,
        content_type: String,
    },
    /// No HTTP answer at all: DNS, connection or timeout.
    #[error("could not reach the token endpoint {url}: {reason}")]
    Unreachable {
        url: String,
        reason: String,
        timed_out: bool,
    },
    /// The token URL's address was refused by the caller's policy.
    #[error("the token endpoint {url} was not contacted: {reason}")]
    AddressRefused { url: String, reason: String },
    /// The token URL answered with a redirect. Redirects are never
    /// followed: the client credentials would be posted to wherever the
    /// answer points, including an internal address the URL guard refuses.
    #[error("the token endpoint {url} answered HTTP {status} with a redirect to {location}")]
    Redirected {
        url: String,
        status: u16,
        /// The `Location` header, as a short sanitised excerpt.
        location: String,
    },
    /// The endpoint answered 408, 429 or a 5xx: try again later.
    #[error("the token endpoint {url} {} (HTTP {status})", busy_or_unavailable(*.status))]
    Unavailable {
        url: String,
        status: u16,
        retry_after: Option<Duration>,
    },
}

/// How a 408, 429 or 5xx reads: a 429 is Creatio limiting the rate, not
/// Creatio down.
fn busy_or_unavailable(status: u16) -> &'static str {
    match status {
        429 => "is limiting the request rate",
        408 => "timed out the request",
        _ => "is unavailable",
    }
}

/// A failed call to Creatio.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Token(#[from] TokenError),
    /// 401 although the token was freshly issued.
    #[error("Creatio refused a freshly issued access token (HTTP 401): {message}")]
    Unauthorized { message: String },
    /// 403: the technical user lacks a permission.
    #[error("Creatio denied access (HTTP 403): {message}")]
    Forbidden { message: String },
    /// 404 for a record.
    #[error("not found (HTTP 404): {message}")]
    NotFound { message: String },
    /// 404 from routing: the entity set does not exist on this instance.
    #[error("Creatio has no such entity set (HTTP 404): {message}")]
    UnknownEntitySet { message: String },
    /// A create with a caller-chosen `Id` found the record already there
    /// (confirmed by reading it back). For idempotent writers this is success.
    #[error("the {entity_set} record {id} already exists")]
    AlreadyExists { entity_set: String, id: Uuid },
    /// A text value longer than its column: the database refused it
    /// ("String or binary data would be truncated", "value too long for
    /// type character varying(50)"). Creatio answers it as a 500, but it
    /// fails the same way every time: shorten the value or leave it out.
    /// `$metadata` has no `MaxLength` to avoid it beforehand
    /// (reference/creatio-evidence.md §2).
    #[error("Creatio refused a value as too long for its column (HTTP {status}): {message}")]
    ValueTooLong { status: u16, message: String },
    /// A 4xx (or 501) that will fail the same way every time.
    #[error("Creatio rejected the request (HTTP {status}): {message}")]
    Rejected { status: u16, message: String },
    /// 408, 429 or a 5xx other than 501: retry, after `retry_after` if given.
    #[error("Creatio {} (HTTP {status}): {message}", busy_or_unavailable(*.status))]
    Unavailable {
        status: u16,
        message: String,
        retry_after: Option<Duration>,
    },
    /// No HTTP answer at all: DNS, connection or timeout.
    #[error("could not reach Creatio at {url}: {reason}")]
    Unreachable {
        url: String,
        reason: String,
        timed_out: bool,
    },
    /// The instance's address was refused by the caller's policy.
    #[error("Creatio at {url} was not contacted: {reason}")]
    AddressRefused { url: String, reason: String },
    /// The instance answered with a redirect, which is never followed (a
    /// bearer token and record data would go wherever it points).
    #[error("Creatio answered HTTP {status} with a redirect to {location}")]
    Redirected {
        status: u16,
        /// The `Location` header, as a short sanitised excerpt.
        location: String,
    },
    /// A success status with a body that is not the expected OData JSON.
    #[error("Creatio answered HTTP {status} with {detail} instead of OData JSON")]
    UnexpectedResponse { status: u16, detail: String },
    /// A `$batch` operation the server did not run because an earlier one
    /// failed (without `Prefer: continue-on-error`). Send it again.
    #[error("not executed: an earlier operation of the same $batch failed")]
    NotExecuted,
    /// The caller asked for something this client cannot send.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
}

impl TokenError {
    /// Whether trying again later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            TokenError::Unreachable { .. } | TokenError::Unavailable { .. }
        )
    }

    /// What a person should do about it.
    pub fn diagnosis(&self) -> String {
        match self {
            TokenError::InvalidClient => "Creatio rejected the Client ID or Client Secret (invalid_client). \
                Check that the OAuth app is active, regenerate the secret in System Designer → \
                OAuth 2.0 integrated applications, and Test & Save again."
                .into(),
            TokenError::UnauthorizedClient => "The OAuth app may not use the client-credentials grant \
                (unauthorized_client). In System Designer → OAuth 2.0 integrated applications, create \
                the app as \"Server-to-server (client credentials)\" and use its Client ID and secret."
                .into(),
            TokenError::UnsupportedGrantType => "The token endpoint does not accept the \
                client-credentials grant (unsupported_grant_type): it is probably not Creatio's \
                Identity Service. Set the Identity Service URL to the value of the Creatio system \
                setting OAuth20IdentityServerUrl."
                .into(),
            TokenError::InvalidScope => "The token endpoint refused the requested scope \
                (invalid_scope). Leave the scope empty: Creatio grants the app's ApplicationAccess \
                scope by default."
                .into(),
            TokenError::Refused { code, description } => format!(
                "The token endpoint refused the request ({code}{}). Check the Identity Service URL \
                 and the OAuth app in System Designer → OAuth 2.0 integrated applications.",
                description.as_deref().map(|d| format!(": {d}")).unwrap_or_default()
            ),
            TokenError::TokenEndpointNotJson { url, status, content_type } => format!(
                "{url} answered HTTP {status} with {content_type} instead of an OAuth token, so it is \
                 not Creatio's token endpoint (a login page usually means the URL is the Creatio \
                 site itself). For cloud sites the token URL is \
                 https://<name>-is.creatio.com/connect/token; otherwise set the Identity Service URL \
                 to the value of the system setting OAuth20IdentityServerUrl."
            ),
            TokenError::Unreachable { url, reason, .. } => format!(
                "Could not connect to the token endpoint {url} ({reason}). Check the Identity Service \
                 URL and that this machine can reach it (DNS, firewall, proxy); requests are retried."
            ),
            TokenError::AddressRefused { url, reason } => format!(
                "casebridge did not contact the token endpoint {url}: {reason}. Use the \
                 Identity Service's public address, or ask the operator to allow that network."
            ),
            TokenError::Redirected { url, status, location } => format!(
                "The token endpoint {url} answered with a redirect (HTTP {status}) to {location}; \
                 casebridge does not follow redirects, so the client secret is never sent to \
                 another address. Use the final address as the Instance URL (or as the Identity \
                 Service URL) and Test & Save again."
            ),
            TokenError::Unavailable { url, status, .. } => format!(
                "Creatio's Identity Service at {url} is temporarily unavailable (HTTP {status}); \
                 requests are retried. If it persists, check the Identity Service's health \
                 (GET /0/api/OAuthHealthCheck on the Creatio site)."
            ),
        }
    }
}

impl Error {
    /// Whether the same request may succeed later: 408, 429, 5xx but 501,
    /// timeouts and connection errors are; 4xx and dead credentials are not.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Token(t) => t.is_retryable(),
            Error::Unavailable { .. } | Error::Unreachable { .. } | Error::NotExecuted => true,
            _ => false,
        }
    }

    /// The delay the server asked for with `Retry-After`.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Unavailable { retry_after, .. }
            | Error::Token(TokenError::Unavailable { retry_after, .. }) => *retry_after,
            _ => None,
        }
    }

    /// The credentials or the configured addresses were refused: retrying
    /// cannot help until a person fixes them (DESIGN.md §3 pauses the org).
    pub fn is_dead_credentials(&self) -> bool {
        matches!(
            self,
            Error::Token(
                TokenError::InvalidClient
                    | TokenError::UnauthorizedClient
                    | TokenError::UnsupportedGrantType
                    | TokenError::InvalidScope
                    | TokenError::TokenEndpointNotJson { .. }
                    | TokenError::Redirected { .. }
                    | TokenError::AddressRefused { .. }
            ) | Error::Redirected { .. }
                | Error::AddressRefused { .. }
        )
    }

    /// The HTTP status Creatio answered with, when it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Unauthorized { .. } => Some(401),
            Error::Forbidden { .. } => Some(403),
            Error::NotFound { .. } | Error::UnknownEntitySet { .. } => Some(404),
            Error::Rejected { status, .. }
            | Error::Unavailable { status, .. }
            | Error::ValueTooLong { status, .. }
            | Error::Redirected { status, .. }
            | Error::UnexpectedResponse { status, .. } => Some(*status),
            Error::Token(TokenError::Unavailable { status, .. })
            | Error::Token(TokenError::Redirected { status, .. })
            | Error::Token(TokenError::TokenEndpointNotJson { status, .. }) => Some(*status),
            _ => None,
        }
    }

    /// What a person should do about it.
    pub fn diagnosis(&self) -> String {
        match self {
            Error::Token(t) => t.diagnosis(),
            Error::Unauthorized { .. } => "Creatio refused an access token its token endpoint had just \
                issued (HTTP 401). The token endpoint probably belongs to a different site: check \
                that the Identity Service URL is the one of this Creatio instance."
                .into(),
            Error::Forbidden { message } if mentions_odata_access(message) => format!(
                "The OAuth app's technical user lacks 'Access to OData' (CanUseODataService). Grant \
                 that system operation to the technical user (System Designer → Operation \
                 permissions) and Test & Save again. Creatio said: {message}"
            ),
            Error::Forbidden { message } => format!(
                "The OAuth app's technical user is not allowed to do this. Give it read, create and \
                 edit permissions on Case, Activity and Contact (System Designer → Object \
                 permissions). Creatio said: {message}"
            ),
            Error::NotFound { message } => format!("The record does not exist in Creatio: {message}"),
            Error::UnknownEntitySet { message } => format!(
                "This Creatio instance has no such object: {message} Check the name (object codes \
                 are case-sensitive) and that the object is published."
            ),
            Error::AlreadyExists { entity_set, id } => format!(
                "The {entity_set} record {id} already exists in Creatio; nothing was written twice."
            ),
            Error::Rejected { status, message } => format!(
                "Creatio rejected the request (HTTP {status}): {message} Retrying will not help; the \
                 data or the configuration must change."
            ),
            Error::ValueTooLong { message, .. } => format!(
                "A value is longer than its Creatio column holds ({message}). Retrying will not \
                 help: the value must be shorter. For an AI field, lower its max_length to the \
                 column's size (text columns hold 50, 250 or 500 characters, or are unlimited)."
            ),
            Error::Unavailable {
                status: 429,
                retry_after,
                ..
            } => format!(
                "Creatio is limiting the request rate (HTTP 429); requests resume {}.",
                retry_after
                    .map(|d| format!("after {} s", d.as_secs()))
                    .unwrap_or_else(|| "after a pause".into())
            ),
            Error::Unavailable {
                status, message, ..
            } => format!(
                "Creatio is temporarily unavailable (HTTP {status}: {message}); requests are retried."
            ),
            Error::Unreachable { url, reason, .. } => format!(
                "Could not connect to Creatio at {url} ({reason}). Check the instance URL and that \
                 this machine can reach it; requests are retried."
            ),
            Error::AddressRefused { url, reason } => format!(
                "casebridge did not contact Creatio at {url}: {reason}. Use the instance's public \
                 address as the Instance URL, or ask the operator to allow that network."
            ),
            Error::Redirected { status, location } => format!(
                "The Creatio instance answered with a redirect (HTTP {status}) to {location}; \
                 casebridge does not follow redirects. Use the final address as the Instance URL \
                 and Test & Save again."
            ),
            Error::UnexpectedResponse { status, detail } => format!(
                "The instance answered HTTP {status} with {detail} instead of OData JSON. The \
                 instance URL probably points at a login page or at a site that is not Creatio."
            ),
            Error::NotExecuted => "Creatio did not run this operation because an earlier one in \
                the same $batch failed; it is sent again."
                .into(),
            Error::InvalidRequest(m) => format!("The request could not be sent: {m}."),
        }
    }
}

fn mentions_odata_access(message: &str) -> bool {
    mentions_any(message, &["canuseodataservice", "permissions to use odata"])
}

/// Whether `message` holds any of `needles` (lower case), ignoring case.
fn mentions_any(message: &str, needles: &[&str]) -> bool {
    let m = message.to_ascii_lowercase();
    needles.iter().any(|n| m.contains(n))
}

/// Reads `Retry-After` in seconds or as an HTTP date.
pub(crate) fn parse_retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    let wait = at.signed_duration_since(chrono::Utc::now());
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

/// A readable message from any of Creatio's error bodies.
pub(crate) fn error_message(body: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        if let Some(m) = json_error_message(&v) {
            return truncate(&m, 500);
        }
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        // A missing key is a 404 with an empty body on a live tenant
        // (reference/creatio-evidence.md §6).
        return "(empty body)".into();
    }
    if text.starts_with('<') {
        return match html_heading(text) {
            Some(h) => format!("an HTML page \"{h}\""),
            None => "an HTML page".into(),
        };
    }
    truncate(text, 300)
}

fn json_error_message(v: &Value) -> Option<String> {
    fn text(v: &Value) -> Option<&str> {
        v.as_str().map(str::trim).filter(|s| !s.is_empty())
    }
    if let Some(err) = v.get("error").filter(|e| e.is_object()) {
        let mut parts: Vec<String> = text(&err["message"])
            .map(String::from)
            .into_iter()
            .collect();
        let mut inner = err.get("innererror");
        while let Some(i) = inner {
            if let Some(m) = text(&i["message"]) {
                if !parts.iter().any(|p| p == m) {
                    parts.push(m.to_string());
                }
            }
            inner = i.get("internalexception");
        }
        return (!parts.is_empty()).then(|| parts.join(" — "));
    }
    if let Some(code) = text(&v["error"]) {
        return Some(match text(&v["error_description"]) {
            Some(d) => format!("{code}: {d}"),
            None => code.to_string(),
        });
    }
    let parts: Vec<&str> = ["Message", "ExceptionMessage", "MessageDetail"]
        .iter()
        .filter_map(|k| text(&v[*k]))
        .collect();
    (!parts.is_empty()).then(|| parts.join(" — "))
}

/// Whether a 404 body is ASP.NET's routing answer (no such entity set)
/// rather than OData's "no such record".
pub(crate) fn is_routing_error(body: &[u8]) -> bool {
    serde_json::from_slice::<Value>(body).is_ok_and(|v| v.get("MessageDetail").is_some())
}

fn html_heading(html: &str) -> Option<String> {
    for tag in ["title", "h1"] {
        let open = format!("<{tag}>");
        if let Some(start) = html.find(&open) {
            let rest = &html[start + open.len()..];
            if let Some(end) = rest.find('<') {
                let h = rest[..end].trim();
                if !h.is_empty() {
                    return Some(truncate(h, 80));
                }
            }
        }
    }
    None
}

/// At most `max` characters of `s`, control characters (newlines, escape
/// sequences, NUL) replaced by spaces: text from a server that may not be
/// Creatio is shown to admins only as such an excerpt.
pub(crate) fn truncate(s: &str, max: usize) -> String {
    let clean: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    match clean.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &clean[..i]),
        None => clean,
    }
}

/// Where a redirect answer points, as a short sanitised excerpt.
pub(crate) fn redirect_target(headers: &HeaderMap) -> String {
    match headers
        .get(LOCATION)
        .map(|v| String::from_utf8_lossy(v.as_bytes()))
    {
        Some(l) => truncate(l.trim(), 200),
        None => "(no Location header)".into(),
    }
}

/// Whether an error message is a database's "value too long for its
/// column" (SQL Server, PostgreSQL, Oracle wordings).
fn says_value_too_long(message: &str) -> bool {
    mentions_any(
        message,
        &[
            "would be truncated",
            "value too long for type",
            "value too large for column",
        ],
    )
}

/// Whether an error message says the user lacks a right.
fn says_no_permission(message: &str) -> bool {
    mentions_any(
        message,
        &["insufficient permissions", "sufficient permissions to"],
    )
}

/// Whether a database error is a broken reference (SQL Server, PostgreSQL).
fn says_constraint_violated(message: &str) -> bool {
    mentions_any(
        message,
        &[
            "reference constraint",
            "foreign key constraint",
            "violates foreign key",
        ],
    )
}

/// Classifies an HTTP failure from its status, headers and body.
pub(crate) fn from_status(status: u16, headers: &HeaderMap, body: &[u8]) -> Error {
    if (300..400).contains(&status) {
        return Error::Redirected {
            status,
            location: redirect_target(headers),
        };
    }
    let message = error_message(body);
    if matches!(status, 400 | 500) && says_value_too_long(&message) {
        return Error::ValueTooLong { status, message };
    }
    // A record another one references (SLM's CaseLifecycle row makes every
    // saved Case one: reference/creatio-evidence.md §4), or a lookup to a
    // missing row: the same answer every time.
    if status == 500 && says_constraint_violated(&message) {
        return Error::Rejected { status, message };
    }
    // Whether Creatio answers a missing object right 403 or 500 is unknown
    // (reference/creatio-evidence.md §7); a 500 that says so is a refusal,
    // which retrying cannot change.
    if status == 500 && says_no_permission(&message) {
        return Error::Forbidden { message };
    }
    match status {
        401 => Error::Unauthorized { message },
        403 => Error::Forbidden { message },
        404 if is_routing_error(body) => Error::UnknownEntitySet { message },
        404 => Error::NotFound { message },
        408 | 429 | 500 | 502..=599 => Error::Unavailable {
            status,
            message,
            retry_after: parse_retry_after(headers),
        },
        _ => Error::Rejected { status, message },
    }
}

/// Why a request got no answer, in a few words: "the request timed out",
/// or the innermost cause (e.g. "Connection refused (os error 111)").
pub fn transport_reason(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return "the request timed out".into();
    }
    let mut reason = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        reason = s.to_string();
        source = s.source();
    }
    reason
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn decodes_the_odata_envelope_with_inner_errors() {
        let body = br#"{"error":{"code":"","message":"An error has occurred.","innererror":{"message":"Violation of PRIMARY KEY constraint","type":"","stacktrace":"","internalexception":{"message":"RAM limit"}}}}"#;
        assert_eq!(
            error_message(body),
            "An error has occurred. — Violation of PRIMARY KEY constraint — RAM limit"
        );
    }

    #[test]
    fn decodes_aspnet_and_oauth_shapes() {
        let routing = br#"{"Message":"No HTTP resource was found.","MessageDetail":"No type was found that matches the controller named 'Cse'."}"#;
        assert_eq!(
            error_message(routing),
            "No HTTP resource was found. — No type was found that matches the controller named 'Cse'."
        );
        assert!(is_routing_error(routing));
        assert!(!is_routing_error(br#"{"error":{"message":"x"}}"#));
        assert_eq!(
            error_message(br#"{"error":"invalid_client"}"#),
            "invalid_client"
        );
        assert_eq!(
            error_message(br#"{"Message":"Authorization has been denied for this request."}"#),
            "Authorization has been denied for this request."
        );
    }

    #[test]
    fn describes_html_and_text_bodies() {
        assert_eq!(
            error_message(b"<html><head><title>Creatio</title></head></html>"),
            "an HTML page \"Creatio\""
        );
        assert_eq!(error_message(b"  "), "(empty body)");
        assert_eq!(error_message(b"Bad gateway"), "Bad gateway");
    }

    #[test]
    fn a_429_reads_as_a_rate_limit_not_an_outage() {
        let h = HeaderMap::new();
        assert_eq!(
            from_status(429, &h, b"Too many requests").to_string(),
            "Creatio is limiting the request rate (HTTP 429): Too many requests"
        );
        assert_eq!(
            from_status(503, &h, b"Down").to_string(),
            "Creatio is unavailable (HTTP 503): Down"
        );
    }

    #[test]
    fn classifies_statuses() {
        let h = HeaderMap::new();
        for s in [408, 429, 500, 502, 503, 504] {
            assert!(from_status(s, &h, b"").is_retryable(), "{s}");
        }
        for s in [400, 401, 403, 404, 405, 409, 415, 501] {
            assert!(!from_status(s, &h, b"").is_retryable(), "{s}");
        }
        assert!(matches!(
            from_status(404, &h, br#"{"Message":"m","MessageDetail":"d"}"#),
            Error::UnknownEntitySet { .. }
        ));
    }

    #[test]
    fn a_value_too_long_is_permanent_whatever_the_database() {
        let h = HeaderMap::new();
        for body in [
            &br#"{"error":{"code":"","message":"An error has occurred.","innererror":{"message":"String or binary data would be truncated in table 'dbo.Case', column 'UsrOrderNumber'."}}}"#[..],
            br#"{"error":{"message":"22001: value too long for type character varying(50)"}}"#,
        ] {
            let e = from_status(500, &h, body);
            assert!(matches!(e, Error::ValueTooLong { status: 500, .. }), "{e:?}");
            assert!(!e.is_retryable());
            assert!(e.diagnosis().contains("max_length"));
        }
        assert!(from_status(500, &h, br#"{"error":{"message":"deadlock"}}"#).is_retryable());
    }

    #[test]
    fn a_missing_right_answered_500_is_forbidden() {
        let e = from_status(
            500,
            &HeaderMap::new(),
            br#"{"error":{"message":"An error has occurred.","innererror":{"message":"Insufficient permissions to add records of the "Contact" object."}}}"#,
        );
        assert!(matches!(e, Error::Forbidden { .. }), "{e:?}");
        assert!(!e.is_retryable());
        assert!(e.diagnosis().contains("Object permissions"));
    }

    #[test]
    fn a_broken_reference_is_permanent() {
        let h = HeaderMap::new();
        for body in [
            &br#"{"error":{"message":"The DELETE statement conflicted with the REFERENCE constraint "FKCaseLifecycleCase"."}}"#[..],
            br#"{"error":{"message":"update or delete on table "Case" violates foreign key constraint"}}"#,
        ] {
            let e = from_status(500, &h, body);
            assert!(matches!(e, Error::Rejected { status: 500, .. }), "{e:?}");
            assert!(!e.is_retryable());
        }
    }

    #[test]
    fn redirects_are_errors_that_name_a_clean_target() {
        let mut h = HeaderMap::new();
        h.insert(
            LOCATION,
            HeaderValue::from_static("http://127.0.0.1:9/internal\tsecret"),
        );
        let e = from_status(307, &h, b"{\"error\":\"from the internal service\"}");
        assert_eq!(
            e,
            Error::Redirected {
                status: 307,
                location: "http://127.0.0.1:9/internal secret".into()
            }
        );
        assert!(!e.is_retryable());
        assert!(e.is_dead_credentials());
        assert!(e
            .diagnosis()
            .contains("Use the final address as the Instance URL"));
        assert!(!e.diagnosis().contains("internal service"));
        let long = "x".repeat(5000);
        h.insert(LOCATION, HeaderValue::from_str(&long).unwrap());
        assert!(redirect_target(&h).chars().count() <= 201);
        assert_eq!(redirect_target(&HeaderMap::new()), "(no Location header)");
    }

    #[test]
    fn reads_retry_after_as_seconds_or_date() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(parse_retry_after(&h), Some(Duration::from_secs(7)));
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(parse_retry_after(&h), Some(Duration::ZERO));
        let later = (chrono::Utc::now() + chrono::Duration::seconds(120)).to_rfc2822();
        h.insert(RETRY_AFTER, HeaderValue::from_str(&later).unwrap());
        let d = parse_retry_after(&h).unwrap();
        assert!(d > Duration::from_secs(100) && d <= Duration::from_secs(120));
        h.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(parse_retry_after(&h), None);
    }

    #[test]
    fn diagnoses_missing_odata_access() {
        let e = Error::Forbidden {
            message: "The current user does not have sufficient permissions to use OData.".into(),
        };
        assert!(e.diagnosis().contains("CanUseODataService"));
        assert!(Error::Token(TokenError::InvalidClient)
            .diagnosis()
            .contains("System Designer → OAuth 2.0 integrated applications"));
    }
}
