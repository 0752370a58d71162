//! Connectors to outside products, declared in `integrations/*.yaml`.

pub mod definition;
