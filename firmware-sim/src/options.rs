//! What a simulation run does: fleet size, transports, timing, faults and
//! scripted events. Pure parsing, unit-tested; the CLI and `certbound demo`
//! fill a [`SimOptions`].

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::fleet::Endpoints;

/// How a device talks to the broker and to the telemetry backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Transport {
    /// Tokens and renewals over MQTT (mTLS to the MQTT server), telemetry published on
    /// `cb/v1/{device}/telemetry`.
    Mqtt,
    /// Tokens over CoAP `POST /token`, renewals over `/.well-known/est/sren`, telemetry
    /// as CoAP `POST /telemetry/{device}` to the backend.
    Coap,
    /// Tokens over HTTPS `POST /ace/token`, renewals over EST `simplereenroll` (mTLS),
    /// telemetry as HTTPS `POST /telemetry/{device}` to the backend.
    Https,
}

impl Transport {
    /// Lower-case name (`mqtt`, `coap`, `https`).
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Mqtt => "mqtt",
            Transport::Coap => "coap",
            Transport::Https => "https",
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The transports of a fleet: device `i` uses `transports[i % len]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransportMix(Vec<Transport>);

impl TransportMix {
    /// A fleet on one transport.
    pub fn single(t: Transport) -> Self {
        Self(vec![t])
    }

    /// Parses `mqtt`, `coap`, `https`, `mixed` (all three) or a comma list (`mqtt,coap`).
    ///
    /// # Errors
    /// A message naming the unknown transport.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut out = Vec::new();
        for part in text.split(',').map(str::trim) {
            match part.to_ascii_lowercase().as_str() {
                "mqtt" => out.push(Transport::Mqtt),
                "coap" => out.push(Transport::Coap),
                "https" | "http" => out.push(Transport::Https),
                "mixed" | "all" => {
                    out.extend([Transport::Mqtt, Transport::Coap, Transport::Https]);
                }
                other => {
                    return Err(format!(
                        "unknown transport {other:?}: use mqtt, coap, https, mixed or a comma list such as mqtt,coap"
                    ));
                }
            }
        }
        out.dedup();
        if out.is_empty() {
            return Err("no transport given".into());
        }
        Ok(Self(out))
    }

    /// The transport of device number `index` (0-based).
    pub fn for_device(&self, index: usize) -> Transport {
        self.0[index % self.0.len()]
    }

    /// The distinct transports, in order.
    pub fn transports(&self) -> &[Transport] {
        &self.0
    }

    /// True when some device uses `t`.
    pub fn uses(&self, t: Transport) -> bool {
        self.0.contains(&t)
    }
}

impl fmt::Display for TransportMix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<_> = self.0.iter().map(|t| t.as_str()).collect();
        f.write_str(&names.join(","))
    }
}

/// Parses a duration: `500ms`, `30s`, `5m`, `1h`, or a bare number of seconds.
///
/// # Errors
/// A message showing the accepted forms.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let bad = || format!("invalid duration {text:?}: use e.g. 500ms, 30s, 5m or 1h");
    let (number, unit_ms) = if let Some(n) = t.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1000.0)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60_000.0)
    } else if let Some(n) = t.strip_suffix('h') {
        (n, 3_600_000.0)
    } else {
        (t, 1000.0)
    };
    let value: f64 = number.trim().parse().map_err(|_| bad())?;
    if !value.is_finite() || value < 0.0 || value * unit_ms > 1e12 {
        return Err(bad());
    }
    Ok(Duration::from_micros(
        (value * unit_ms * 1000.0).round() as u64
    ))
}

/// Faults injected during a run (`--faults loss=5%,skew=90s,broker-restart-at=30s`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Faults {
    /// Fraction (0..1) of UDP datagrams dropped in each direction between CoAP
    /// devices and the broker/backend (a lossy relay; CoAP retransmits).
    pub loss: f64,
    /// Each device's clock is off by a random amount in `[-skew, +skew]`.
    pub skew: Duration,
    /// Restart the embedded broker at this time into the run (same ports).
    pub broker_restart_at: Option<Duration>,
}

impl Faults {
    /// Parses `key=value` pairs separated by commas: `loss=5%` (or `0.05`),
    /// `skew=90s`, `broker-restart-at=30s`. An empty string means no faults.
    ///
    /// # Errors
    /// A message naming the bad pair.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut faults = Faults::default();
        for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) = pair
                .split_once('=')
                .ok_or_else(|| format!("fault {pair:?} is not key=value"))?;
            match key.trim() {
                "loss" => faults.loss = parse_fraction(value)?,
                "skew" => faults.skew = parse_duration(value)?,
                "broker-restart-at" | "restart-at" => {
                    faults.broker_restart_at = Some(parse_duration(value)?);
                }
                other => {
                    return Err(format!(
                        "unknown fault {other:?}: use loss=5%, skew=90s, broker-restart-at=30s"
                    ));
                }
            }
        }
        Ok(faults)
    }

    /// True when nothing is injected.
    pub fn is_empty(&self) -> bool {
        self.loss == 0.0 && self.skew.is_zero() && self.broker_restart_at.is_none()
    }
}

impl fmt::Display for Faults {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if self.loss > 0.0 {
            parts.push(format!("loss={}%", self.loss * 100.0));
        }
        if !self.skew.is_zero() {
            parts.push(format!("skew={}s", self.skew.as_secs()));
        }
        if let Some(at) = self.broker_restart_at {
            parts.push(format!("broker-restart-at={}s", at.as_secs_f64()));
        }
        if parts.is_empty() {
            f.write_str("none")
        } else {
            f.write_str(&parts.join(","))
        }
    }
}

fn parse_fraction(text: &str) -> Result<f64, String> {
    let t = text.trim();
    let bad =
        || format!("invalid loss {text:?}: use a percentage such as 5% or a fraction such as 0.05");
    let value = match t.strip_suffix('%') {
        Some(p) => p.trim().parse::<f64>().map_err(|_| bad())? / 100.0,
        None => t.parse::<f64>().map_err(|_| bad())?,
    };
    if !(0.0..0.9).contains(&value) {
        return Err(format!(
            "loss {text:?} is out of range: 0% to 90% (more leaves nothing to measure)"
        ));
    }
    Ok(value)
}

/// A scripted revocation: `count` devices revoked at `at` into the run
/// (`--revoke 1@20s`). Their tokens then fail at the backend (status list) and
/// their requests at the broker; both count as expected rejections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RevokePlan {
    /// How many devices.
    pub count: usize,
    /// When.
    pub at: Duration,
}

impl RevokePlan {
    /// Parses `COUNT@TIME`, e.g. `1@20s`.
    ///
    /// # Errors
    /// A message showing the form.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (count, at) = text
            .split_once('@')
            .ok_or_else(|| format!("invalid --revoke {text:?}: use COUNT@TIME, e.g. 1@20s"))?;
        let count = count
            .trim()
            .parse()
            .map_err(|_| format!("invalid count in --revoke {text:?}"))?;
        Ok(Self {
            count,
            at: parse_duration(at)?,
        })
    }
}

/// Where the broker is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BrokerTarget {
    /// Start one in this process on free loopback ports, in a fresh data
    /// directory (`keep`: that directory instead of a temporary one).
    Embedded {
        /// Keep the data directory here.
        keep: Option<std::path::PathBuf>,
    },
    /// A broker running elsewhere — one instance or several sharing one
    /// store — reached through the URLs of its data directories'
    /// configurations or the addresses given (see [`crate::fleet::RemoteFleet`]).
    Remote(crate::fleet::RemoteFleet),
}

/// Parses one broker instance's addresses (`--instance`):
/// `coap=HOST:PORT,https=URL,mqtt=HOST:PORT`, each part optional but at
/// least one given. `https` takes `https://host:port` or `host:port`;
/// `mqtt` takes `mqtts://host:port` or `host:port`.
///
/// # Errors
/// A message naming the bad part and showing the form.
pub fn parse_instance(text: &str) -> Result<Endpoints, String> {
    let form = "use coap=HOST:PORT,https=HOST:PORT,mqtt=HOST:PORT (each part optional)";
    let mut out = Endpoints {
        coap: None,
        mqtt: None,
        https: None,
    };
    for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| format!("instance part {pair:?} is not key=value: {form}"))?;
        let value = value.trim();
        let twice = |k: &str| format!("instance {text:?} names {k} twice");
        match key.trim() {
            "coap" => {
                let v = value.strip_prefix("coap://").unwrap_or(value);
                let addr = v.parse().map_err(|_| {
                    format!("invalid CoAP address {value:?}: use e.g. 127.0.0.1:5683")
                })?;
                if out.coap.replace(addr).is_some() {
                    return Err(twice("coap"));
                }
            }
            "https" => {
                let v = value.strip_prefix("https://").unwrap_or(value);
                let v = v.trim_end_matches('/');
                if v.is_empty() || v.contains('/') || v.starts_with("http://") {
                    return Err(format!(
                        "invalid HTTPS address {value:?}: use e.g. 127.0.0.1:8443 or https://auth.example.com:8443"
                    ));
                }
                if out.https.replace(format!("https://{v}")).is_some() {
                    return Err(twice("https"));
                }
            }
            "mqtt" | "mqtts" => {
                let url = if value.starts_with("mqtts://") {
                    value.to_string()
                } else {
                    format!("mqtts://{value}")
                };
                let hp = certbound_registry::config::parse_mqtt_url(&url)
                    .map_err(|e| format!("invalid MQTT address: {e}"))?;
                if out.mqtt.replace(hp).is_some() {
                    return Err(twice("mqtt"));
                }
            }
            other => return Err(format!("unknown instance part {other:?}: {form}")),
        }
    }
    if out.coap.is_none() && out.https.is_none() && out.mqtt.is_none() {
        return Err(format!("instance {text:?} gives no address: {form}"));
    }
    Ok(out)
}

/// Everything a run needs.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// Number of devices.
    pub devices: usize,
    /// Transports, round-robin over devices.
    pub transports: TransportMix,
    /// How long the fleet runs (after provisioning and start-up).
    pub duration: Duration,
    /// Each device sends one telemetry message per period.
    pub telemetry_every: Duration,
    /// Injected faults.
    pub faults: Faults,
    /// Scripted revocations.
    pub revoke: Option<RevokePlan>,
    /// Device certificate lifetime (embedded broker): devices renew at about
    /// 2/3 of it. `None`: the broker's default (days; no renewal in a short run).
    pub cert_lifetime: Option<Duration>,
    /// Access token lifetime of the telemetry API (embedded broker); devices
    /// renew tokens at about 2/3 of it.
    pub token_lifetime: Duration,
    /// Where the broker is.
    pub broker: BrokerTarget,
    /// Device id prefix (embedded broker).
    pub prefix: String,
    /// At this time into the run, a backend service gets a JWT by OAuth client
    /// credentials over HTTPS with its TLS certificate (a failure is an
    /// unexpected rejection).
    pub service_jwt_at: Option<Duration>,
    /// With several broker instances: a CoAP or HTTPS request that has no
    /// answer after this long counts as unanswered, and the device moves to
    /// the next instance (its next attempt, one telemetry period later, goes
    /// there). Unused with one instance.
    pub failover_after: Duration,
    /// Write a JSON line here for every answer a broker acknowledged: each
    /// token received and each certificate received at renewal (see
    /// [`crate::ledger`]).
    pub ledger: Option<PathBuf>,
}

impl SimOptions {
    /// Defaults: 100 devices over mixed transports for 60 s, telemetry every
    /// 5 s, no faults, 5-minute tokens, an embedded broker.
    pub fn new(devices: usize) -> Self {
        Self {
            devices,
            transports: TransportMix::parse("mixed")
                .unwrap_or(TransportMix::single(Transport::Coap)),
            duration: Duration::from_secs(60),
            telemetry_every: Duration::from_secs(5),
            faults: Faults::default(),
            revoke: None,
            cert_lifetime: None,
            token_lifetime: Duration::from_secs(300),
            broker: BrokerTarget::Embedded { keep: None },
            prefix: "sim-".into(),
            service_jwt_at: None,
            failover_after: Duration::from_secs(5),
            ledger: None,
        }
    }

    /// Checks the combination.
    ///
    /// # Errors
    /// What is wrong and what to use instead.
    pub fn validate(&self) -> Result<(), String> {
        if self.devices == 0 || self.devices > 200_000 {
            return Err("--devices must be between 1 and 200000".into());
        }
        if self.duration < Duration::from_secs(1) {
            return Err("--duration must be at least 1s".into());
        }
        if self.telemetry_every < Duration::from_millis(100) {
            return Err("--telemetry-every must be at least 100ms".into());
        }
        if !(5..=86_400).contains(&self.token_lifetime.as_secs()) {
            return Err("--token-lifetime must be between 5s and 24h".into());
        }
        if let Some(c) = self.cert_lifetime
            && c < Duration::from_secs(60)
        {
            return Err("--cert-lifetime must be at least 60s (the broker's minimum)".into());
        }
        if let Some(r) = self.revoke {
            if r.count >= self.devices {
                return Err("--revoke must leave at least one device unrevoked".into());
            }
            if r.at >= self.duration {
                return Err("--revoke time must fall within --duration".into());
            }
        }
        if self.service_jwt_at.is_some_and(|at| at >= self.duration) {
            return Err("--service-jwt-at must fall within --duration".into());
        }
        if !(Duration::from_millis(500)..=Duration::from_secs(120)).contains(&self.failover_after) {
            return Err("--failover-after must be between 500ms and 120s".into());
        }
        if let BrokerTarget::Remote(r) = &self.broker {
            if r.data_dirs.is_empty() {
                return Err("--broker DIR is needed: the data directory of a running broker (its store, CA and issuer)".into());
            }
            if r.data_dirs.len() > 1
                && !r.instances.is_empty()
                && r.instances.len() != r.data_dirs.len()
            {
                return Err(format!(
                    "{} --broker DIR and {} --instance: with several data directories, give one \
                     --instance per --broker DIR (same order) or none",
                    r.data_dirs.len(),
                    r.instances.len()
                ));
            }
        }
        if let Some(at) = self.faults.broker_restart_at {
            if matches!(self.broker, BrokerTarget::Remote(_)) {
                return Err(
                    "broker-restart-at needs the embedded broker (the simulator cannot restart a remote one)"
                        .into(),
                );
            }
            if at >= self.duration {
                return Err("broker-restart-at must fall within --duration".into());
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("2.5s"), Ok(Duration::from_millis(2500)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        for bad in ["", "s", "-1s", "1d", "abc", "NaNs", "1e30h"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn transports() {
        let mix = TransportMix::parse("mixed").unwrap();
        assert_eq!(mix.for_device(0), Transport::Mqtt);
        assert_eq!(mix.for_device(1), Transport::Coap);
        assert_eq!(mix.for_device(2), Transport::Https);
        assert_eq!(mix.for_device(3), Transport::Mqtt);
        let two = TransportMix::parse("coap, mqtt").unwrap();
        assert_eq!(two.to_string(), "coap,mqtt");
        assert!(!two.uses(Transport::Https));
        assert!(
            TransportMix::parse("zigbee")
                .unwrap_err()
                .contains("zigbee")
        );
        assert!(TransportMix::parse("").is_err());
    }

    #[test]
    fn faults() {
        let f = Faults::parse("loss=5%,skew=90s,broker-restart-at=30s").unwrap();
        assert!((f.loss - 0.05).abs() < 1e-9);
        assert_eq!(f.skew, Duration::from_secs(90));
        assert_eq!(f.broker_restart_at, Some(Duration::from_secs(30)));
        assert!(Faults::parse("").unwrap().is_empty());
        assert!((Faults::parse("loss=0.1").unwrap().loss - 0.1).abs() < 1e-9);
        assert!(
            Faults::parse("loss=95%")
                .unwrap_err()
                .contains("out of range")
        );
        assert!(
            Faults::parse("jitter=1s")
                .unwrap_err()
                .contains("unknown fault")
        );
        assert!(Faults::parse("loss").unwrap_err().contains("key=value"));
        assert_eq!(f.to_string(), "loss=5%,skew=90s,broker-restart-at=30s");
    }

    #[test]
    fn revoke_plan() {
        assert_eq!(
            RevokePlan::parse("2@15s"),
            Ok(RevokePlan {
                count: 2,
                at: Duration::from_secs(15)
            })
        );
        assert!(RevokePlan::parse("2").is_err());
        assert!(RevokePlan::parse("x@1s").is_err());
    }

    #[test]
    fn validation() {
        let mut o = SimOptions::new(10);
        assert_eq!(o.validate(), Ok(()));
        o.revoke = Some(RevokePlan {
            count: 10,
            at: Duration::from_secs(1),
        });
        assert!(o.validate().unwrap_err().contains("unrevoked"));
        o.revoke = None;
        o.cert_lifetime = Some(Duration::from_secs(30));
        assert!(o.validate().unwrap_err().contains("60s"));
        o.cert_lifetime = None;
        o.faults.broker_restart_at = Some(Duration::from_secs(90));
        assert!(o.validate().unwrap_err().contains("within"));
        o.faults.broker_restart_at = None;
        o.devices = 0;
        assert!(o.validate().is_err());
    }

    #[test]
    fn instances() {
        let i = parse_instance("coap=127.0.0.1:5683, https=127.0.0.1:8443,mqtt=localhost:8883")
            .unwrap();
        assert_eq!(i.coap, Some("127.0.0.1:5683".parse().unwrap()));
        assert_eq!(i.https.as_deref(), Some("https://127.0.0.1:8443"));
        assert_eq!(i.mqtt, Some(("localhost".to_string(), 8883)));
        let i =
            parse_instance("https=https://auth.example.com:8443/,mqtt=mqtts://mq:1883").unwrap();
        assert_eq!(i.coap, None);
        assert_eq!(i.https.as_deref(), Some("https://auth.example.com:8443"));
        assert_eq!(i.mqtt, Some(("mq".to_string(), 1883)));
        assert_eq!(
            parse_instance("coap=coap://[::1]:5683").unwrap().coap,
            Some("[::1]:5683".parse().unwrap())
        );
        for (bad, needle) in [
            ("", "gives no address"),
            ("coap", "key=value"),
            ("coap=localhost", "invalid CoAP address"),
            ("coap=127.0.0.1:1,coap=127.0.0.1:2", "twice"),
            ("https=http://x:1", "invalid HTTPS address"),
            ("https=x:1/path", "invalid HTTPS address"),
            ("mqtt=x:port", "invalid MQTT address"),
            ("dtls=1.2.3.4:5", "unknown instance part"),
        ] {
            let e = parse_instance(bad).unwrap_err();
            assert!(e.contains(needle), "{bad:?}: {e}");
        }
    }

    #[test]
    fn remote_validation() {
        use crate::fleet::RemoteFleet;
        let mut o = SimOptions::new(10);
        o.broker = BrokerTarget::Remote(RemoteFleet {
            data_dirs: vec![],
            instances: vec![],
        });
        assert!(o.validate().unwrap_err().contains("--broker DIR"));
        let instance = parse_instance("coap=127.0.0.1:5683").unwrap();
        o.broker = BrokerTarget::Remote(RemoteFleet {
            data_dirs: vec!["a".into(), "b".into()],
            instances: vec![instance.clone()],
        });
        assert!(
            o.validate()
                .unwrap_err()
                .contains("one --instance per --broker DIR")
        );
        o.broker = BrokerTarget::Remote(RemoteFleet {
            data_dirs: vec!["a".into(), "b".into()],
            instances: vec![instance.clone(), instance.clone()],
        });
        assert_eq!(o.validate(), Ok(()));
        o.broker = BrokerTarget::Remote(RemoteFleet {
            data_dirs: vec!["a".into()],
            instances: vec![instance.clone(), instance],
        });
        assert_eq!(o.validate(), Ok(()));
        o.faults.broker_restart_at = Some(Duration::from_secs(1));
        assert!(o.validate().unwrap_err().contains("embedded"));
        o.faults.broker_restart_at = None;
        o.failover_after = Duration::from_millis(10);
        assert!(o.validate().unwrap_err().contains("--failover-after"));
    }
}
