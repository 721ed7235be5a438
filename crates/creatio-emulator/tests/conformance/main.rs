//! Conformance of the Creatio emulator with `shared/reference/creatio-api.md`,
//! checked over real HTTP: each module covers one part of the API.

mod helpers;

mod batch;
mod faults;
mod identity;
mod odata_read;
mod odata_write;
mod operator;
mod processes;
