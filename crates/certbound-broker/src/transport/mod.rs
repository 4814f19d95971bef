//! Transports: each moves bytes between the network and the token service.

pub mod coap;
pub mod https;
pub mod mqtt;
mod mqtt_v5;
