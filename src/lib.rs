//! The EcomMesh node: configuration, HTTP API, operability and wiring of the entity
//! runtime (`ecommesh-actors`) onto the journal (`ecommesh-persistence`).
//!
//! `main.rs` only parses the command line; everything a test needs to boot the same node
//! lives here.

pub mod app;
pub mod auth;
pub mod checkouts;
pub mod cluster;
pub mod config;
pub mod demo;
pub mod http;
pub mod live;
pub mod server;
pub mod telemetry;
pub mod views;

pub use config::Config;
pub use server::run;
