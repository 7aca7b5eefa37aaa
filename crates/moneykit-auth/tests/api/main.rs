//! Integration tests: each test starts the real server on `127.0.0.1:0` with its own
//! fresh database (SQLite, or PostgreSQL with `MONEYKIT_TEST_BACKEND=postgres`) and talks
//! HTTP to it; admin changes go through the real CLI binary
//! or the same admin functions the CLI uses. One binary, one module per surface.

#![allow(missing_docs)]

mod helpers;
#[path = "../support/mod.rs"]
mod support;

mod abuse;
mod admin;
mod admin_scopes;
mod audience;
mod audit;
mod cli;
mod connections;
mod console;
mod contract;
mod database;
mod dpop;
mod federation;
mod introspect;
mod journal;
mod jwks;
mod keys;
mod lifecycle;
mod limits;
mod logs;
mod mtls;
mod oauth2;
mod sdk;
mod sdk_sender;
mod secretless;
mod security;
mod tls;
mod token;
mod webhooks;
