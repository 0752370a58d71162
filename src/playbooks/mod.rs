//! Playbooks: definitions in `playbooks/*.yaml`, their validation, and the library of
//! playbooks and integrations loaded at start.

pub mod builtins;
pub mod definition;
pub mod library;
pub mod validate;
