//! Alert ingestion: sources, request bodies, signatures, per-vendor normalizers, and the
//! group-commit writer.

pub mod vendors;
