//! casebridge's HTTP API as an admin and a chat platform use it: the real
//! service on 127.0.0.1:0 with a fresh database (SQLite and PostgreSQL, each
//! scenario on both) and a fresh Creatio emulator.

mod helpers;

mod access;
mod admin_page;
mod ai_fields;
mod chatwoot;
mod concurrency;
mod connection;
mod conversations;
mod erasure;
mod hardening;
mod openapi;
mod orgs;
mod recovery;
mod retention;
mod storage;
mod sync;
mod two_way;
mod upgrade;
