//! The OData 4 client: one instance, one OAuth client, every request.
//!
//! Each request takes a token from the [`TokenSource`] (cached, single
//! flight) and, when Creatio answers 401 — the token expired early, or was
//! revoked — drops that token and retries **once** with a fresh one. Any
//! other failure is returned as a classified [`Error`]; retrying transient
//! failures with backoff is the caller's policy, not this crate's, because
//! only the caller knows how long its work may wait.

use std::fmt;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, CONTENT_TYPE};
use reqwest::Method;
use serde_json::Value;
use tracing::Instrument;
use uuid::Uuid;

use crate::error::{from_status, transport_reason, Error, Result};
use crate::instance::InstanceUrl;
use crate::models::Entity;
use crate::query::{col, Filter, Order, Query};
use crate::token::TokenSource;

/// The `User-Agent` of [`http_client_builder`].
pub const USER_AGENT: &str = concat!(
    "creatio-rs/",
    env!("CARGO_PKG_VERSION"),
    " (+https://github.com/casebridge/casebridge)"
);

/// Records fetched per request by [`Client::list`] (Creatio's cap is 20,000
/// per response, but large pages are slow and memory-hungry on the server).
pub const DEFAULT_PAGE_SIZE: u32 = 1000;

/// GUID comparisons per filter when reading many records by id: Creatio
/// refuses filters of more than 100 nodes; 15 `Id eq …` terms are known to pass.
const IDS_PER_FILTER: usize = 15;

/// A `reqwest` builder with the timeouts, keep-alive pool and `User-Agent`
/// this crate expects. Build **one** client per process and share it.
///
/// Redirects are never followed: a token request carries the client secret
/// and every other request a bearer token, and an address guard that checks
/// the configured URL (by name or by resolver) does not see where a redirect
/// points. A redirect answer becomes [`Error::Redirected`] or
/// [`crate::TokenError::Redirected`], which name the target.
pub fn http_client_builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(60))
        .pool_idle_timeout(Duration::from_secs(90))
        .tcp_keepalive(Duration::from_secs(60))
}

/// A Creatio instance seen through one OAuth client. Cloning is cheap;
/// clones share the connection pool and the token.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    instance: InstanceUrl,
    odata_root: String,
    tokens: TokenSource,
    page_size: u32,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("instance", &self.instance.as_str())
            .field("tokens", &self.tokens)
            .finish_non_exhaustive()
    }
}

/// A raw answer: status, headers and body.
pub(crate) struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Client {
    /// A client for `instance` that authenticates with `tokens`.
    pub fn new(http: reqwest::Client, instance: InstanceUrl, tokens: TokenSource) -> Client {
        let odata_root = instance.odata_root();
        Client {
            http,
            instance,
            odata_root,
            tokens,
            page_size: DEFAULT_PAGE_SIZE,
        }
    }

    /// Records per request in [`Client::list`] (1 to 20,000).
    pub fn with_page_size(mut self, page_size: u32) -> Client {
        self.page_size = page_size.clamp(1, 20_000);
        self
    }

    pub fn instance(&self) -> &InstanceUrl {
        &self.instance
    }

    pub fn tokens(&self) -> &TokenSource {
        &self.tokens
    }

    /// One record by key, with the entity's default columns.
    pub async fn get<E: Entity>(&self, id: Uuid) -> Result<E> {
        let value = self
            .get_value(E::SET, id, &default_select::<E>(Query::new()))
            .await?;
        decode(E::SET, value)
    }

    /// Records matching `query` (default columns when it selects none), all
    /// of them: pages of [`Client::with_page_size`] are fetched until a short
    /// page, at most `query.top` records in total.
    pub async fn list<E: Entity>(&self, query: Query) -> Result<Vec<E>> {
        let values = self
            .list_values(E::SET, &default_select::<E>(query))
            .await?;
        values.into_iter().map(|v| decode(E::SET, v)).collect()
    }

    /// The records with these ids that exist, in no particular order. Reads
    /// in chunks so no filter exceeds Creatio's node limit.
    pub async fn get_many<E: Entity>(&self, ids: &[Uuid]) -> Result<Vec<E>> {
        let mut found = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(IDS_PER_FILTER) {
            let q =
                default_select::<E>(Query::new()).filter(col("Id").is_in(chunk.iter().copied()));
            found.extend(self.list::<E>(q).await?);
        }
        Ok(found)
    }

    /// Creates `record` and returns it as Creatio stored it (defaults
    /// applied, `Number` assigned…). With a caller-chosen `Id`, a record that
    /// already exists is [`Error::AlreadyExists`].
    pub async fn create<E: Entity>(&self, record: &E) -> Result<E> {
        let value = self.create_value(E::SET, &encode(record)?).await?;
        decode(E::SET, value)
    }

    /// Changes the fields set in `patch` (PATCH).
    pub async fn update<E: Entity>(&self, id: Uuid, patch: &E) -> Result<()> {
        self.update_value(E::SET, id, &encode(patch)?).await
    }

    pub async fn delete<E: Entity>(&self, id: Uuid) -> Result<()> {
        self.delete_in(E::SET, id).await
    }

    /// Whether a record with this id exists.
    pub async fn exists(&self, entity_set: &str, id: Uuid) -> Result<bool> {
        let q = Query::new().select(["Id"]).filter(col("Id").eq(id)).top(1);
        Ok(!self.list_page(entity_set, &q).await?.is_empty())
    }

    /// One record of any entity set as JSON.
    pub async fn get_value(&self, entity_set: &str, id: Uuid, query: &Query) -> Result<Value> {
        let url = self.url(&format!("{}({id})", check_set(entity_set)?), query)?;
        let answer = self.send(Method::GET, &url, None).await?;
        parse_json(&answer)
    }

    /// One request's worth of records, exactly as `query` says.
    pub async fn list_page(&self, entity_set: &str, query: &Query) -> Result<Vec<Value>> {
        let url = self.url(check_set(entity_set)?, query)?;
        let answer = self.send(Method::GET, &url, None).await?;
        match parse_json(&answer)? {
            Value::Object(mut o) => match o.remove("value") {
                Some(Value::Array(values)) => Ok(values),
                _ => Err(unexpected(
                    &answer,
                    "a JSON object without a \"value\" list",
                )),
            },
            _ => Err(unexpected(&answer, "JSON that is not an object")),
        }
    }

    /// All records matching `query`, paged past the page size (Creatio emits
    /// no `@odata.nextLink`; a short page is the end). Pages are ordered by
    /// `query`'s order and then by `Id`, so paging is stable.
    pub async fn list_values(&self, entity_set: &str, query: &Query) -> Result<Vec<Value>> {
        let mut base = query.clone();
        if !base.order_by.iter().any(|(p, _)| p == "Id") {
            base = base.order_by("Id", Order::Asc);
        }
        let first_skip = base.skip.unwrap_or(0);
        let limit = base.top;
        let mut all: Vec<Value> = Vec::new();
        loop {
            let wanted = match limit {
                Some(l) => (l as usize).saturating_sub(all.len()),
                None => usize::MAX,
            };
            if wanted == 0 {
                break;
            }
            let page_top = (self.page_size as usize).min(wanted) as u32;
            let skip = first_skip.saturating_add(all.len() as u32);
            let mut page_query = base.clone().top(page_top);
            page_query.skip = (skip > 0).then_some(skip);
            let page = self.list_page(entity_set, &page_query).await?;
            let short = page.len() < page_top as usize;
            all.extend(page);
            if short {
                break;
            }
        }
        Ok(all)
    }

    /// How many records match `filter` (`/$count`).
    pub async fn count(&self, entity_set: &str, filter: Option<Filter>) -> Result<u64> {
        let mut q = Query::new();
        if let Some(f) = filter {
            q = q.filter(f);
        }
        let url = self.url(&format!("{}/$count", check_set(entity_set)?), &q)?;
        let answer = self.send(Method::GET, &url, None).await?;
        let text = String::from_utf8_lossy(&answer.body);
        text.trim()
            .trim_start_matches('\u{feff}')
            .parse()
            .map_err(|_| unexpected(&answer, "a body that is not a number"))
    }

    /// Creates a record of any entity set from JSON and returns the stored
    /// record. A body with an `Id` that fails because that record already
    /// exists is [`Error::AlreadyExists`], whatever status Creatio used: the
    /// record is read back to tell.
    pub async fn create_value(&self, entity_set: &str, body: &Value) -> Result<Value> {
        let set = check_set(entity_set)?;
        if !body.is_object() {
            return Err(Error::InvalidRequest(format!(
                "a {set} record must be a JSON object"
            )));
        }
        let url = format!("{}/{set}", self.odata_root);
        match self.send(Method::POST, &url, Some(body)).await {
            Ok(answer) if answer.body.is_empty() => Ok(body.clone()),
            Ok(answer) => parse_json(&answer),
            Err(e) => match chosen_id(body) {
                Some(id) if may_have_been_a_duplicate(&e) => {
                    Err(self.confirm_duplicate(set, id, e).await)
                }
                _ => Err(e),
            },
        }
    }

    /// Changes a record of any entity set (PATCH with `body`).
    pub async fn update_value(&self, entity_set: &str, id: Uuid, body: &Value) -> Result<()> {
        let url = format!("{}/{}({id})", self.odata_root, check_set(entity_set)?);
        self.send(Method::PATCH, &url, Some(body)).await.map(drop)
    }

    /// Deletes a record of any entity set.
    pub async fn delete_in(&self, entity_set: &str, id: Uuid) -> Result<()> {
        let url = format!("{}/{}({id})", self.odata_root, check_set(entity_set)?);
        self.send(Method::DELETE, &url, None).await.map(drop)
    }

    /// The service's CSDL (`$metadata`), as XML text.
    pub async fn metadata(&self) -> Result<String> {
        let url = format!("{}/$metadata", self.odata_root);
        let answer = self.send(Method::GET, &url, None).await?;
        let text = String::from_utf8_lossy(&answer.body).into_owned();
        if !text.contains("edmx:Edmx") {
            return Err(unexpected(&answer, "a body that is not CSDL"));
        }
        Ok(text)
    }

    /// When a create with a chosen id failed, reads the record back: if it is
    /// there, the failure was a duplicate (or the create succeeded before the
    /// answer was lost). Otherwise the original error stands.
    pub(crate) async fn confirm_duplicate(&self, set: &str, id: Uuid, original: Error) -> Error {
        match self.exists(set, id).await {
            Ok(true) => Error::AlreadyExists {
                entity_set: set.to_string(),
                id,
            },
            Ok(false) => original,
            Err(read) => {
                tracing::debug!(entity_set = set, %id, error = %read,
                    "Could not read a record back after its create failed; keeping the create's error.");
                original
            }
        }
    }

    fn url(&self, path: &str, query: &Query) -> Result<String> {
        let qs = query.to_query_string()?;
        Ok(if qs.is_empty() {
            format!("{}/{path}", self.odata_root)
        } else {
            format!("{}/{path}?{qs}", self.odata_root)
        })
    }

    /// Sends one request with a bearer token, retrying once with a fresh
    /// token on 401. Non-2xx answers become classified errors.
    pub(crate) async fn send(
        &self,
        method: Method,
        url: &str,
        body: Option<&Value>,
    ) -> Result<Answer> {
        self.send_with(method, url, body, &[]).await
    }

    pub(crate) async fn send_with(
        &self,
        method: Method,
        url: &str,
        body: Option<&Value>,
        headers: &[(&'static str, &'static str)],
    ) -> Result<Answer> {
        let mut retried = false;
        loop {
            let token = self.tokens.token().await?;
            let mut request = self
                .http
                .request(method.clone(), url)
                .bearer_auth(token.secret())
                .header(ACCEPT, "application/json");
            for (k, v) in headers {
                request = request.header(*k, *v);
            }
            if let Some(b) = body {
                let bytes = serde_json::to_vec(b)
                    .map_err(|e| Error::InvalidRequest(format!("body is not JSON: {e}")))?;
                request = request
                    .header(
                        CONTENT_TYPE,
                        HeaderValue::from_static("application/json; charset=utf-8"),
                    )
                    .body(bytes);
            }
            // One span per request to Creatio (a child of the job's, with
            // traces on), named by the path: the query may hold a
            // customer's e-mail address.
            let path = reqwest::Url::parse(url)
                .map(|u| span_path(u.path()))
                .unwrap_or_default();
            let span = tracing::info_span!(
                "creatio",
                otel.name = %format!("{method} {path}"),
                otel.kind = "client",
                http.request.method = %method,
                url.path = %path,
                http.response.status_code = tracing::field::Empty,
            );
            let (status, headers, bytes) = async {
                let response = request.send().await.map_err(|e| unreachable(url, &e))?;
                let status = response.status().as_u16();
                tracing::Span::current().record("http.response.status_code", status);
                let headers = response.headers().clone();
                let bytes = response.bytes().await.map_err(|e| unreachable(url, &e))?;
                Ok::<_, Error>((status, headers, bytes))
            }
            .instrument(span)
            .await?;
            if (200..300).contains(&status) {
                return Ok(Answer {
                    status,
                    headers,
                    body: bytes.to_vec(),
                });
            }
            if status == 401 && !retried {
                tracing::debug!(%method, url, "Creatio refused the access token (401); fetching a fresh one and retrying once.");
                self.tokens.invalidate(&token);
                retried = true;
                continue;
            }
            if status == 401 && self.token_reads_metadata(token.secret()).await {
                // A fresh token refused here but accepted for $metadata:
                // not a token from the wrong Identity Service, but this
                // request. A live tenant answers 401 for an entity set it
                // does not have (reference/creatio-evidence.md §6).
                return Err(Error::UnknownEntitySet {
                    message: format!(
                        "Creatio answered 401 (Unauthorized) for {url}, although the same access \
                         token reads $metadata: the object does not exist on this instance (or is \
                         not compiled), or the integration user may not read it."
                    ),
                });
            }
            return Err(from_status(status, &headers, &bytes));
        }
    }
}

impl Client {
    /// Whether `token` is accepted for `$metadata`: tells "this request is
    /// refused" from "the token is not this instance's" after a 401.
    async fn token_reads_metadata(&self, token: &str) -> bool {
        let url = format!("{}/$metadata", self.odata_root);
        match self.http.get(&url).bearer_auth(token).send().await {
            Ok(r) => r.status().is_success(),
            Err(_) => false,
        }
    }
}

/// A request's path as a span names it: a record's key in parentheses
/// becomes `({id})`, so that spans of one kind share one name.
fn span_path(path: &str) -> String {
    match (path.find('('), path.rfind(')')) {
        (Some(open), Some(close)) if open < close => {
            format!("{}({{id}}){}", &path[..open], &path[close + 1..])
        }
        _ => path.to_string(),
    }
}

fn unreachable(url: &str, e: &reqwest::Error) -> Error {
    if let Some(reason) = crate::error::refused_address(e) {
        return Error::AddressRefused {
            url: url.to_string(),
            reason,
        };
    }
    Error::Unreachable {
        url: url.to_string(),
        reason: transport_reason(e),
        timed_out: e.is_timeout(),
    }
}

/// Entity-set names go into the URL path: letters, digits and `_` only.
fn check_set(entity_set: &str) -> Result<&str> {
    if !entity_set.is_empty()
        && entity_set
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        Ok(entity_set)
    } else {
        Err(Error::InvalidRequest(format!(
            "'{entity_set}' is not an entity set name (letters, digits and '_')"
        )))
    }
}

fn default_select<E: Entity>(query: Query) -> Query {
    if query.select.is_empty() {
        query.select(E::COLUMNS.iter().copied())
    } else {
        query
    }
}

pub(crate) fn chosen_id(body: &Value) -> Option<Uuid> {
    body.get("Id")
        .and_then(Value::as_str)
        .and_then(|s| Uuid::try_parse(s).ok())
        .filter(|id| !id.is_nil())
}

/// Whether a failed create may have met an existing record. Refusals of the
/// credentials or the request itself cannot.
pub(crate) fn may_have_been_a_duplicate(e: &Error) -> bool {
    !matches!(
        e,
        Error::Token(_)
            | Error::Unauthorized { .. }
            | Error::Forbidden { .. }
            | Error::UnknownEntitySet { .. }
            | Error::InvalidRequest(_)
            | Error::AlreadyExists { .. }
    )
}

fn encode<E: Entity>(record: &E) -> Result<Value> {
    serde_json::to_value(record)
        .map_err(|e| Error::InvalidRequest(format!("cannot encode a {} record: {e}", E::SET)))
}

fn decode<E: Entity>(set: &str, value: Value) -> Result<E> {
    serde_json::from_value(value).map_err(|e| Error::UnexpectedResponse {
        status: 200,
        detail: format!("a {set} record this client cannot read ({e})"),
    })
}

fn parse_json(answer: &Answer) -> Result<Value> {
    serde_json::from_slice(&answer.body).map_err(|_| {
        let detail = crate::error::error_message(&answer.body);
        unexpected(answer, &detail)
    })
}

fn unexpected(answer: &Answer, detail: &str) -> Error {
    let content_type = answer
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("no content type");
    Error::UnexpectedResponse {
        status: answer.status,
        detail: format!("{detail} ({content_type})"),
    }
}

#[cfg(test)]
mod tests {
    use super::span_path;

    #[test]
    fn span_names_hide_record_keys() {
        assert_eq!(
            span_path("/0/odata/Case(82760f65-067e-501e-b153-bd58f0186717)"),
            "/0/odata/Case({id})"
        );
        assert_eq!(span_path("/0/odata/$batch"), "/0/odata/$batch");
        assert_eq!(
            span_path("/0/odata/Activity(1)/CaseId"),
            "/0/odata/Activity({id})/CaseId"
        );
    }
}
