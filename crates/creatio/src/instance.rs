//! The address of a Creatio instance and of its token endpoint.
//!
//! Admins paste URLs from their browser's address bar: with a trailing slash,
//! with the `/0` of .NET Framework hosts, sometimes with `/0/Shell/#Section…`
//! behind it. [`InstanceUrl::parse`] accepts all of that, keeps the site root,
//! and records each adjustment so the caller can tell the person what was
//! changed. The token URL follows DESIGN.md §3: an explicit Identity Service
//! URL wins; `<name>.creatio.com` uses `https://<name>-is.creatio.com`;
//! anything else the instance's own `/0/connect/token`.

use std::fmt;
use std::net::IpAddr;

use reqwest::Url;

/// Why a URL was refused; the message says how to write it instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("the URL is empty; enter your Creatio address, e.g. https://mycompany.creatio.com")]
    Empty,
    #[error(
        "'{input}' is not a valid URL ({reason}); write it like https://mycompany.creatio.com"
    )]
    Malformed { input: String, reason: String },
    #[error(
        "'{input}' uses {scheme}://; Creatio must be reached over https:// (plain http:// is \
         accepted only for a loopback address such as 127.0.0.1)"
    )]
    NotHttps { input: String, scheme: String },
    #[error("'{input}' contains a user name or password; remove it, credentials go in the Client ID and Client Secret fields")]
    HasCredentials { input: String },
}

/// What [`InstanceUrl::parse`] changed in the input, to be shown to the person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Adjustment {
    AddedHttps,
    RemovedPath(String),
    RemovedQueryOrFragment,
    RemovedTrailingSlash,
}

impl fmt::Display for Adjustment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Adjustment::AddedHttps => write!(f, "added https:// in front of the address"),
            Adjustment::RemovedPath(p) => write!(
                f,
                "removed '{p}' from the end: casebridge needs the site address, it adds /0/odata itself"
            ),
            Adjustment::RemovedQueryOrFragment => {
                write!(f, "removed the part after '?' or '#'")
            }
            Adjustment::RemovedTrailingSlash => write!(f, "removed the trailing slash"),
        }
    }
}

/// The root of a Creatio site, e.g. `https://mycompany.creatio.com`, without
/// a trailing slash or the `/0` application path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceUrl {
    root: String,
    adjustments: Vec<Adjustment>,
}

/// Path segments that belong to pages or services inside a site, never to
/// the site root: whatever starts with one of them was pasted from a browser.
const APP_SEGMENTS: [&str; 5] = ["0", "Shell", "odata", "ServiceModel", "Navigation"];

impl InstanceUrl {
    /// Normalises and validates an instance URL as an admin typed it.
    pub fn parse(input: &str) -> Result<InstanceUrl, UrlError> {
        let mut adjustments = Vec::new();
        let url = parse_web_url(input, &mut adjustments)?;
        let mut segments: Vec<&str> = url.path().split('/').filter(|s| !s.is_empty()).collect();
        if let Some(at) = segments.iter().position(|s| APP_SEGMENTS.contains(s)) {
            let removed = format!("/{}", segments[at..].join("/"));
            segments.truncate(at);
            adjustments.push(Adjustment::RemovedPath(removed));
        } else if (url.path().len() > 1 && url.path().ends_with('/'))
            || (url.path() == "/" && input.trim().ends_with('/'))
        {
            adjustments.push(Adjustment::RemovedTrailingSlash);
        }
        let mut root = format!("{}://{}", url.scheme(), authority(&url));
        for s in segments {
            root.push('/');
            root.push_str(s);
        }
        Ok(InstanceUrl { root, adjustments })
    }

    /// The site root, without a trailing slash.
    pub fn as_str(&self) -> &str {
        &self.root
    }

    /// What was changed in the input to get here.
    pub fn adjustments(&self) -> &[Adjustment] {
        &self.adjustments
    }

    /// The OData 4 service root: `<root>/0/odata`.
    pub fn odata_root(&self) -> String {
        format!("{}/0/odata", self.root)
    }

    /// The token URL to use when no Identity Service URL is configured.
    pub fn default_token_url(&self) -> String {
        if let Ok(url) = Url::parse(&self.root) {
            if let Some(host) = url.host_str() {
                if let Some(name) = host.strip_suffix(".creatio.com") {
                    if !name.is_empty() && !name.ends_with("-is") && !name.contains('.') {
                        return format!("https://{name}-is.creatio.com/connect/token");
                    }
                }
            }
        }
        format!("{}/0/connect/token", self.root)
    }

    /// The token URL: the Identity Service URL when one is given (its
    /// `/connect/token` added when missing), else [`Self::default_token_url`].
    pub fn token_url(&self, identity_service_url: Option<&str>) -> Result<String, UrlError> {
        let Some(is) = identity_service_url
            .map(str::trim)
            .filter(|s| !s.is_empty())
        else {
            return Ok(self.default_token_url());
        };
        let url = parse_web_url(is, &mut Vec::new())?;
        let path = url.path().trim_end_matches('/');
        let path = if path.ends_with("/connect/token") {
            path.to_string()
        } else {
            format!("{path}/connect/token")
        };
        Ok(format!("{}://{}{}", url.scheme(), authority(&url), path))
    }
}

impl fmt::Display for InstanceUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.root)
    }
}

fn authority(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    }
}

/// Whether plain http is acceptable: the host is a loopback address.
fn is_loopback(url: &Url) -> bool {
    let host = url.host_str().unwrap_or_default();
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Parses an absolute http(s) URL, adding `https://` when no scheme was typed
/// and dropping a query or fragment.
fn parse_web_url(input: &str, adjustments: &mut Vec<Adjustment>) -> Result<Url, UrlError> {
    let trimmed = input.trim();
    if trimmed.is_empty() {
        return Err(UrlError::Empty);
    }
    let with_scheme = if trimmed.contains("://") {
        trimmed.to_string()
    } else {
        adjustments.push(Adjustment::AddedHttps);
        format!("https://{trimmed}")
    };
    let mut url = Url::parse(&with_scheme).map_err(|e| UrlError::Malformed {
        input: trimmed.to_string(),
        reason: e.to_string(),
    })?;
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(&url) => {}
        other => {
            return Err(UrlError::NotHttps {
                input: trimmed.to_string(),
                scheme: other.to_string(),
            })
        }
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(UrlError::Malformed {
            input: trimmed.to_string(),
            reason: "it has no host name".into(),
        });
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(UrlError::HasCredentials {
            input: trimmed.to_string(),
        });
    }
    if url.query().is_some() || url.fragment().is_some() {
        url.set_query(None);
        url.set_fragment(None);
        adjustments.push(Adjustment::RemovedQueryOrFragment);
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root(input: &str) -> String {
        InstanceUrl::parse(input).unwrap().as_str().to_string()
    }

    #[test]
    fn keeps_a_clean_root() {
        let u = InstanceUrl::parse("https://acme.creatio.com").unwrap();
        assert_eq!(u.as_str(), "https://acme.creatio.com");
        assert!(u.adjustments().is_empty());
        assert_eq!(u.odata_root(), "https://acme.creatio.com/0/odata");
    }

    #[test]
    fn strips_what_admins_paste() {
        for input in [
            "https://acme.creatio.com/",
            "https://acme.creatio.com/0",
            "https://acme.creatio.com/0/",
            "https://acme.creatio.com/0/odata/Case",
            "https://acme.creatio.com/0/Shell/#Section/Case_ListPage",
            "  https://acme.creatio.com/Shell/?x=1 ",
            "acme.creatio.com",
        ] {
            assert_eq!(root(input), "https://acme.creatio.com", "{input}");
        }
        let u = InstanceUrl::parse("https://acme.creatio.com/0/").unwrap();
        assert_eq!(u.adjustments(), &[Adjustment::RemovedPath("/0".into())]);
        let u = InstanceUrl::parse("https://acme.creatio.com/").unwrap();
        assert_eq!(u.adjustments(), &[Adjustment::RemovedTrailingSlash]);
        let u = InstanceUrl::parse("acme.creatio.com").unwrap();
        assert_eq!(u.adjustments(), &[Adjustment::AddedHttps]);
    }

    #[test]
    fn keeps_an_on_site_virtual_directory_and_port() {
        assert_eq!(
            root("https://crm.example.org:8443/creatio/0/"),
            "https://crm.example.org:8443/creatio"
        );
    }

    #[test]
    fn refuses_plain_http_except_loopback() {
        assert!(matches!(
            InstanceUrl::parse("http://acme.creatio.com"),
            Err(UrlError::NotHttps { .. })
        ));
        assert_eq!(root("http://127.0.0.1:8088/0"), "http://127.0.0.1:8088");
        assert_eq!(root("http://localhost:5000"), "http://localhost:5000");
        assert_eq!(root("http://[::1]:5000"), "http://[::1]:5000");
        assert!(InstanceUrl::parse("ftp://acme.creatio.com").is_err());
    }

    #[test]
    fn refuses_garbage_with_a_readable_reason() {
        assert_eq!(InstanceUrl::parse("  "), Err(UrlError::Empty));
        assert!(matches!(
            InstanceUrl::parse("https://"),
            Err(UrlError::Malformed { .. })
        ));
        assert!(matches!(
            InstanceUrl::parse("https://bob:pw@acme.creatio.com"),
            Err(UrlError::HasCredentials { .. })
        ));
        let e = InstanceUrl::parse("http://acme.creatio.com").unwrap_err();
        assert!(e.to_string().contains("https://"), "{e}");
    }

    #[test]
    fn token_url_for_cloud_uses_the_identity_service_host() {
        let u = InstanceUrl::parse("https://acme.creatio.com/0/").unwrap();
        assert_eq!(
            u.default_token_url(),
            "https://acme-is.creatio.com/connect/token"
        );
        let u = InstanceUrl::parse("https://186843-crm-bundle.creatio.com").unwrap();
        assert_eq!(
            u.token_url(None).unwrap(),
            "https://186843-crm-bundle-is.creatio.com/connect/token"
        );
    }

    #[test]
    fn token_url_elsewhere_is_the_instance_connect_token() {
        let u = InstanceUrl::parse("https://crm.example.org/creatio").unwrap();
        assert_eq!(
            u.default_token_url(),
            "https://crm.example.org/creatio/0/connect/token"
        );
        let u = InstanceUrl::parse("http://127.0.0.1:8088").unwrap();
        assert_eq!(
            u.default_token_url(),
            "http://127.0.0.1:8088/0/connect/token"
        );
        // Sub-domains of a customer's own domain that merely contain
        // "creatio.com" are not Creatio cloud hosts.
        let u = InstanceUrl::parse("https://crm.notcreatio.com").unwrap();
        assert_eq!(
            u.default_token_url(),
            "https://crm.notcreatio.com/0/connect/token"
        );
    }

    #[test]
    fn an_explicit_identity_service_url_wins() {
        let u = InstanceUrl::parse("https://acme.creatio.com").unwrap();
        assert_eq!(
            u.token_url(Some("https://is.example.org/")).unwrap(),
            "https://is.example.org/connect/token"
        );
        assert_eq!(
            u.token_url(Some("https://is.example.org/connect/token"))
                .unwrap(),
            "https://is.example.org/connect/token"
        );
        assert_eq!(
            u.token_url(Some("  ")).unwrap(),
            "https://acme-is.creatio.com/connect/token"
        );
        assert!(u.token_url(Some("http://is.example.org")).is_err());
    }
}
