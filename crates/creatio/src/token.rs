//! OAuth 2.0 client-credentials tokens from Creatio's Identity Service.
//!
//! A [`TokenSource`] holds one client's token and hands it to every caller.
//! It refreshes a little before expiry so that a long job never meets an
//! expired token, and refreshes **single-flight**: however many callers find
//! the token missing at once, one request goes to the token endpoint and the
//! others wait for its answer — including when that answer is an error, so
//! dead credentials cost one request, not one per waiting worker. A caller
//! that got a 401 with a token calls [`TokenSource::invalidate`] with it;
//! only the first such call drops the cached token.

use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use reqwest::header::{ACCEPT, CONTENT_TYPE};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::error::{parse_retry_after, TokenError};

/// Default time before expiry at which a token is refreshed (peers use 30–60 s).
pub const DEFAULT_REFRESH_MARGIN: Duration = Duration::from_secs(60);

/// Lifetime assumed when the token endpoint omits `expires_in`.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);

/// What a client-credentials token request needs. The secret never appears
/// in `Debug` output.
#[derive(Clone)]
pub struct Credentials {
    token_url: String,
    client_id: String,
    client_secret: SecretString,
    scope: Option<String>,
}

impl Credentials {
    /// Credentials for the token endpoint at `token_url` (see
    /// [`InstanceUrl::token_url`](crate::InstanceUrl::token_url)).
    pub fn new(
        token_url: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: impl Into<SecretString>,
    ) -> Self {
        Credentials {
            token_url: token_url.into(),
            client_id: client_id.into().trim().to_string(),
            client_secret: client_secret.into(),
            scope: None,
        }
    }

    /// Requests a specific scope. Creatio needs none: without one it grants
    /// the app's `ApplicationAccess_…` scope.
    pub fn with_scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = Some(scope.into());
        self
    }

    pub fn token_url(&self) -> &str {
        &self.token_url
    }

    pub fn client_id(&self) -> &str {
        &self.client_id
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("token_url", &self.token_url)
            .field("client_id", &self.client_id)
            .field("client_secret", &"[redacted]")
            .field("scope", &self.scope)
            .finish()
    }
}

/// An access token, to be sent as `Authorization: Bearer …`. Its `Debug`
/// output is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken(Arc<str>);

impl AccessToken {
    /// The raw token, for the `Authorization` header only.
    pub fn secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessToken([redacted])")
    }
}

struct Cached {
    token: AccessToken,
    refresh_at: Instant,
    expires_at: Instant,
}

#[derive(Default)]
struct Cache {
    token: Option<Cached>,
    /// Bumped by every fetch, so a caller that waited for one can tell that
    /// it is over and use its outcome.
    generation: u64,
    last_error: Option<TokenError>,
}

impl Cache {
    /// The cached token while it is not yet due for refresh.
    fn fresh(&self) -> Option<AccessToken> {
        self.token
            .as_ref()
            .filter(|t| Instant::now() < t.refresh_at)
            .map(|t| t.token.clone())
    }
}

struct Inner {
    http: reqwest::Client,
    credentials: RwLock<Arc<Credentials>>,
    margin: Duration,
    cache: RwLock<Cache>,
    /// Held while a token request is in flight: the single flight.
    fetching: tokio::sync::Mutex<()>,
}

/// A cached, self-refreshing access token for one OAuth client. Cloning is
/// cheap and clones share the token.
#[derive(Clone)]
pub struct TokenSource {
    inner: Arc<Inner>,
}

impl fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSource")
            .field("credentials", &*self.credentials())
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

#[derive(Deserialize)]
struct OAuthError {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

impl TokenSource {
    /// A token source refreshing [`DEFAULT_REFRESH_MARGIN`] before expiry.
    pub fn new(http: reqwest::Client, credentials: Credentials) -> Self {
        Self::with_margin(http, credentials, DEFAULT_REFRESH_MARGIN)
    }

    /// A token source refreshing `margin` before expiry (at most a quarter
    /// of the token's lifetime, so short-lived tokens are still used).
    pub fn with_margin(http: reqwest::Client, credentials: Credentials, margin: Duration) -> Self {
        TokenSource {
            inner: Arc::new(Inner {
                http,
                credentials: RwLock::new(Arc::new(credentials)),
                margin,
                cache: RwLock::default(),
                fetching: tokio::sync::Mutex::new(()),
            }),
        }
    }

    /// The credentials in use.
    pub fn credentials(&self) -> Arc<Credentials> {
        self.inner
            .credentials
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Replaces the credentials (secret rotation). The cached token is
    /// dropped; requests already sent with it still complete, since Creatio
    /// honours an issued token until it expires.
    pub fn set_credentials(&self, credentials: Credentials) {
        *self
            .inner
            .credentials
            .write()
            .unwrap_or_else(|p| p.into_inner()) = Arc::new(credentials);
        let mut cache = self.cache_mut();
        cache.token = None;
        cache.last_error = None;
        cache.generation += 1;
    }

    /// A valid access token: the cached one, or a freshly fetched one.
    pub async fn token(&self) -> Result<AccessToken, TokenError> {
        let seen = {
            let cache = self.cache();
            if let Some(t) = cache.fresh() {
                return Ok(t);
            }
            cache.generation
        };
        let _flight = self.inner.fetching.lock().await;
        {
            let cache = self.cache();
            if let Some(t) = cache.fresh() {
                return Ok(t);
            }
            // Another caller fetched while this one waited, and failed:
            // share its error instead of asking again (single flight).
            if cache.generation != seen {
                if let Some(e) = &cache.last_error {
                    return Err(e.clone());
                }
            }
        }
        let credentials = self.credentials();
        let outcome = self.fetch(&credentials).await;
        let mut cache = self.cache_mut();
        cache.generation += 1;
        match outcome {
            Ok(fresh) => {
                let token = fresh.token.clone();
                cache.token = Some(fresh);
                cache.last_error = None;
                Ok(token)
            }
            Err(e) => {
                cache.last_error = Some(e.clone());
                // Inside the refresh margin the old token still works: an
                // Identity Service hiccup must not fail requests that it
                // can still serve.
                match cache.token.as_ref() {
                    Some(old) if e.is_retryable() && Instant::now() < old.expires_at => {
                        tracing::warn!(
                            client_id = credentials.client_id(),
                            error = %e,
                            "Could not refresh the Creatio access token; using the current one until it expires."
                        );
                        Ok(old.token.clone())
                    }
                    _ => Err(e),
                }
            }
        }
    }

    /// Forgets `token` after Creatio refused it (401), unless a newer one has
    /// already replaced it.
    pub fn invalidate(&self, token: &AccessToken) {
        let mut cache = self.cache_mut();
        if cache.token.as_ref().is_some_and(|t| &t.token == token) {
            cache.token = None;
        }
    }

    /// Requests a token now, bypassing the cache and storing nothing: for
    /// testing credentials before they are saved.
    pub async fn probe(
        http: &reqwest::Client,
        credentials: &Credentials,
    ) -> Result<(), TokenError> {
        let source = TokenSource::new(http.clone(), credentials.clone());
        source.fetch(credentials).await.map(drop)
    }

    fn cache(&self) -> std::sync::RwLockReadGuard<'_, Cache> {
        self.inner.cache.read().unwrap_or_else(|p| p.into_inner())
    }

    fn cache_mut(&self) -> std::sync::RwLockWriteGuard<'_, Cache> {
        self.inner.cache.write().unwrap_or_else(|p| p.into_inner())
    }

    async fn fetch(&self, credentials: &Credentials) -> Result<Cached, TokenError> {
        let url = credentials.token_url();
        let mut form = vec![
            ("grant_type", "client_credentials"),
            ("client_id", credentials.client_id()),
            ("client_secret", credentials.client_secret.expose_secret()),
        ];
        if let Some(scope) = &credentials.scope {
            form.push(("scope", scope));
        }
        let sent = Instant::now();
        let unreachable = |e: reqwest::Error| match crate::error::refused_address(&e) {
            Some(reason) => TokenError::AddressRefused {
                url: url.to_string(),
                reason,
            },
            None => TokenError::Unreachable {
                url: url.to_string(),
                reason: crate::error::transport_reason(&e),
                timed_out: e.is_timeout(),
            },
        };
        let response = self
            .inner
            .http
            .post(url)
            .header(ACCEPT, "application/json")
            .form(&form)
            .send()
            .await
            .map_err(unreachable)?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let content_type = headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("no content type")
            .to_string();
        let body = response.bytes().await.map_err(unreachable)?;
        if (200..300).contains(&status) {
            if let Ok(t) = serde_json::from_slice::<TokenResponse>(&body) {
                let lifetime = t
                    .expires_in
                    .filter(|s| *s > 0)
                    .map(Duration::from_secs)
                    .unwrap_or(DEFAULT_LIFETIME);
                let margin = self.inner.margin.min(lifetime / 4);
                tracing::debug!(
                    client_id = credentials.client_id(),
                    lifetime_secs = lifetime.as_secs(),
                    "Obtained a Creatio access token."
                );
                return Ok(Cached {
                    token: AccessToken(t.access_token.into()),
                    refresh_at: sent + lifetime - margin,
                    expires_at: sent + lifetime,
                });
            }
        }
        Err(refusal(url, status, &headers, content_type, &body))
    }
}

/// Why the token endpoint gave no token: a redirect, an outage, an OAuth
/// error in words, or an answer that is not the endpoint's.
fn refusal(
    url: &str,
    status: u16,
    headers: &reqwest::header::HeaderMap,
    content_type: String,
    body: &[u8],
) -> TokenError {
    if (300..400).contains(&status) {
        return TokenError::Redirected {
            url: url.to_string(),
            status,
            location: crate::error::redirect_target(headers),
        };
    }
    if matches!(status, 408 | 429 | 500 | 502..=599) {
        return TokenError::Unavailable {
            url: url.to_string(),
            status,
            retry_after: parse_retry_after(headers),
        };
    }
    if let Ok(e) = serde_json::from_slice::<OAuthError>(body) {
        return match e.error.as_str() {
            "invalid_client" => TokenError::InvalidClient,
            "unauthorized_client" => TokenError::UnauthorizedClient,
            "unsupported_grant_type" => TokenError::UnsupportedGrantType,
            "invalid_scope" => TokenError::InvalidScope,
            // Whatever answered may not be Creatio: its words reach the
            // admin only as a short excerpt.
            _ => TokenError::Refused {
                code: crate::error::truncate(&e.error, 60),
                description: e.error_description.map(|d| crate::error::truncate(&d, 200)),
            },
        };
    }
    TokenError::TokenEndpointNotJson {
        url: url.to_string(),
        status,
        content_type,
    }
}
