//! Connectors to outside products, declared in `integrations/*.yaml`.

pub mod definition;
pub mod executor;
pub mod render;
pub mod secrets;
