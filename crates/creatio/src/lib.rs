//! Client library for Creatio CRM.
//!
//! Everything casebridge sends to a customer's Creatio goes through this
//! crate. Today it holds the well-known lookup GUIDs Creatio ships
//! ([`ids`]); the token source, the OData 4 query builder and CRUD, JSON
//! `$batch` and error diagnosis follow (issue "The `creatio` client
//! library"). The crate never knows casebridge exists.

pub mod ids;
