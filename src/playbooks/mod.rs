//! Playbooks: definitions in `playbooks/*.yaml`, the template and condition language,
//! validation, and the library of playbooks and integrations loaded at start.

pub mod builtins;
pub mod definition;
pub mod engine;
pub mod expr;
pub mod library;
pub mod validate;
