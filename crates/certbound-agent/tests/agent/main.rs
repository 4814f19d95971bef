//! The agent daemon against a real broker with its embedded MQTT server
//! (mutual TLS), verified by a backend subscriber with a service identity.

mod common;
mod gate;
mod offline;
mod renewal;
mod restarts;
mod session_token;
mod telemetry;
