//! Creatio → casebridge: the calls Creatio's business processes make to
//! `POST /webhooks/creatio/{token}` (DESIGN.md §2).
//!
//! - [`parse`]: the body, parsed tolerantly and checked strictly;
//! - [`limit`]: the per-org rate limit on those calls;
//! - [`accept`]: the org a token names, and a look at the case queued once
//!   (debounced) with its timeline line, as a domain outcome that only
//!   `api/webhooks.rs` turns into an HTTP answer;
//! - [`templates`]: how to set the processes up, ready to paste.

pub mod accept;
pub mod limit;
pub mod parse;
pub mod templates;
