//! The `creatio` client against the emulator over real HTTP: one test binary
//! (one link step) with a module per area.

mod helpers;

mod batch;
mod errors;
mod odata;
mod tokens;
mod well_known_ids;
