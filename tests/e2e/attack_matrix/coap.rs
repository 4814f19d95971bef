//! Attack-matrix cases: see [`super`]. CoAP over real UDP against the real
//! broker: reflection and amplification (RFC 7252 §11.3, answered with the
//! Echo option of RFC 9175), the deduplication cache, block-wise floods,
//! malformed datagrams and the in-flight cap.
//!
//! A "spoofed" source is played by a socket on 127.0.0.2 (Linux routes all
//! of 127/8 to loopback): to the broker it is an address that never proved
//! it receives datagrams, which is exactly what a forged source looks like.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context as _, bail, ensure};
use certbound_e2e::https::HttpsClient;
use certbound_e2e::{Fixture, GRANTED_SCOPE};
use coap_lite::{CoapOption, MessageClass, MessageType, Packet, RequestType, ResponseType};
use tokio::net::UdpSocket;

/// The Echo option (RFC 9175).
const ECHO: u16 = 252;
/// Generous bound for one answer on a busy machine (not a timing assert).
const WAIT: Duration = Duration::from_secs(10);

async fn socket_on(ip: [u8; 4]) -> anyhow::Result<UdpSocket> {
    UdpSocket::bind(SocketAddr::from((ip, 0)))
        .await
        .with_context(|| format!("binding {ip:?}:0 (Linux loopback takes all of 127/8)"))
}

fn request(method: RequestType, mid: u16, path: &str, options: &[(u16, Vec<u8>)]) -> Packet {
    let mut p = Packet::new();
    p.header.set_type(MessageType::Confirmable);
    p.header.code = MessageClass::Request(method);
    p.header.message_id = mid;
    p.set_token(mid.to_be_bytes().to_vec());
    for s in path.split('/').filter(|s| !s.is_empty()) {
        p.add_option(CoapOption::UriPath, s.as_bytes().to_vec());
    }
    for (n, v) in options {
        p.add_option(CoapOption::from(*n), v.clone());
    }
    p
}

fn encode(p: &Packet) -> anyhow::Result<Vec<u8>> {
    p.to_bytes_unlimited()
        .map_err(|e| anyhow::anyhow!("encoding: {e:?}"))
}

/// Sends `datagram` and returns the next datagram received (raw bytes).
async fn exchange(socket: &UdpSocket, to: SocketAddr, datagram: &[u8]) -> anyhow::Result<Vec<u8>> {
    socket.send_to(datagram, to).await?;
    let mut buf = vec![0u8; 65_536];
    let (n, _) = tokio::time::timeout(WAIT, socket.recv_from(&mut buf))
        .await
        .context("no answer")??;
    buf.truncate(n);
    Ok(buf)
}

fn parse(bytes: &[u8]) -> anyhow::Result<Packet> {
    Packet::from_bytes(bytes).map_err(|e| anyhow::anyhow!("decoding the answer: {e:?}"))
}

fn code(p: &Packet) -> MessageClass {
    p.header.code
}

fn echo_of(p: &Packet) -> Option<Vec<u8>> {
    p.get_first_option(CoapOption::from(ECHO)).cloned()
}

/// The answer must be 4.01 with an Echo, no payload, at most 3x the request.
fn expect_challenge(request: &[u8], answer: &[u8]) -> anyhow::Result<Vec<u8>> {
    let p = parse(answer)?;
    ensure!(
        code(&p) == MessageClass::Response(ResponseType::Unauthorized),
        "expected 4.01 with an Echo, got {} ({} bytes)",
        p.header.code,
        answer.len()
    );
    ensure!(p.payload.is_empty(), "a challenge carries no payload");
    ensure!(
        answer.len() <= 3 * request.len(),
        "{} bytes answered to a {}-byte request from an unverified address",
        answer.len(),
        request.len()
    );
    echo_of(&p).context("4.01 without an Echo option")
}

/// A GET from an unverified address gets a small 4.01 + Echo; the same
/// address repeating it with the Echo gets the full answer (2.05).
async fn amplification_refused(fx: &Fixture, path: &str) -> anyhow::Result<()> {
    let spoofed = socket_on([127, 0, 0, 2]).await?;
    let req = encode(&request(RequestType::Get, 0x100, path, &[]))?;
    let answer = exchange(&spoofed, fx.coap_addr, &req).await?;
    let echo = expect_challenge(&req, &answer)?;
    // The address proves it receives our datagrams: the full answer.
    let again = encode(&request(RequestType::Get, 0x101, path, &[(ECHO, echo)]))?;
    let full = parse(&exchange(&spoofed, fx.coap_addr, &again).await?)?;
    ensure!(
        code(&full) == MessageClass::Response(ResponseType::Content),
        "with the Echo: {}",
        full.header.code
    );
    ensure!(
        full.payload.len() > 3 * again.len(),
        "the resource is large"
    );
    Ok(())
}

async fn serves_after(fx: &Fixture, id: &str) -> anyhow::Result<()> {
    let device = fx.device(id).await?;
    fx.assert_serves(&device).await?;
    Ok(())
}

/// Spoofed-source GET of the CA certificates (~100x amplification before): 4.01 + Echo.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_coap_amplification_crts() -> anyhow::Result<()> {
    let fx = Fixture::new().await?;
    amplification_refused(&fx, ".well-known/est/crts").await?;
    // Our own client follows the Echo transparently.
    let crts = fx.client.get(".well-known/est/crts").await?;
    ensure!(crts.code == ResponseType::Content && crts.payload.len() > 500);
    serves_after(&fx, "amp-crts").await?;
    fx.shutdown().await;
    Ok(())
}

/// Spoofed-source GET of the CRL: 4.01 + Echo instead of the CRL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_coap_amplification_crl() -> anyhow::Result<()> {
    let fx = Fixture::new().await?;
    amplification_refused(&fx, "crl").await?;
    serves_after(&fx, "amp-crl").await?;
    fx.shutdown().await;
    Ok(())
}

/// Spoofed-source GET of /.well-known/core: 4.01 + Echo instead of the link list.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_coap_amplification_well_known_core() -> anyhow::Result<()> {
    let fx = Fixture::new().await?;
    amplification_refused(&fx, ".well-known/core").await?;
    serves_after(&fx, "amp-core").await?;
    fx.shutdown().await;
    Ok(())
}

/// Spoofed-source GET of a token status list: 4.01 + Echo instead of the signed list.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_coap_amplification_status_list() -> anyhow::Result<()> {
    let fx = Fixture::new().await?;
    let device = fx.device("amp-status").await?;
    fx.assert_serves(&device).await?;
    let mut path = None;
    for id in 0..8 {
        let candidate = format!("status/{id}");
        if fx.client.get(&candidate).await?.code == ResponseType::Content {
            path = Some(candidate);
            break;
        }
    }
    let path = path.context("no status list served after a token was issued")?;
    amplification_refused(&fx, &path).await?;
    fx.assert_serves(&device).await?;
    fx.shutdown().await;
    Ok(())
}

/// An Echo earned by one address, replayed from another: refused (a new 4.01 + Echo).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_coap_echo_replayed_from_another_address() -> anyhow::Result<()> {
    let fx = Fixture::new().await?;
    let attacker = socket_on([127, 0, 0, 2]).await?;
    let req = encode(&request(RequestType::Get, 1, ".well-known/est/crts", &[]))?;
    let echo = expect_challenge(&req, &exchange(&attacker, fx.coap_addr, &req).await?)?;
    let victim = socket_on([127, 0, 0, 3]).await?;
    let replay = encode(&request(
        RequestType::Get,
        2,
        ".well-known/est/crts",
        &[(ECHO, echo.clone())],
    ))?;
    let fresh = expect_challenge(&replay, &exchange(&victim, fx.coap_addr, &replay).await?)?;
    ensure!(fresh != echo, "a new Echo is issued for the other address");
    serves_after(&fx, "echo-replay").await?;
    fx.shutdown().await;
    Ok(())
}

/// An altered Echo value (one bit flipped in its MAC): refused with a new 4.01 + Echo.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_coap_forged_echo() -> anyhow::Result<()> {
    let fx = Fixture::new().await?;
    let s = socket_on([127, 0, 0, 2]).await?;
    let req = encode(&request(RequestType::Get, 1, "crl", &[]))?;
    let mut echo = expect_challenge(&req, &exchange(&s, fx.coap_addr, &req).await?)?;
    let last = echo.len() - 1;
    echo[last] ^= 0x01;
    let forged = encode(&request(RequestType::Get, 2, "crl", &[(ECHO, echo)]))?;
    expect_challenge(&forged, &exchange(&s, fx.coap_addr, &forged).await?)?;
    serves_after(&fx, "echo-forged").await?;
    fx.shutdown().await;
    Ok(())
}

/// An Echo older than [coap] echo_lifetime_secs: refused with a new 4.01 + Echo.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_coap_stale_echo() -> anyhow::Result<()> {
    let fx = Fixture::with_config(&[("echo_lifetime_secs = 60", "echo_lifetime_secs = 1")]).await?;
    let s = socket_on([127, 0, 0, 2]).await?;
    let req = encode(&request(RequestType::Get, 1, "crl", &[]))?;
    let echo = expect_challenge(&req, &exchange(&s, fx.coap_addr, &req).await?)?;
    // Let the Echo age past its lifetime (whole seconds on the broker's clock):
    // this waits for a condition of time itself, not for an event.
    tokio::time::sleep(Duration::from_millis(3100)).await;
    let stale = encode(&request(
        RequestType::Get,
        2,
        "crl",
        &[(ECHO, echo.clone())],
    ))?;
    let fresh = expect_challenge(&stale, &exchange(&s, fx.coap_addr, &stale).await?)?;
    ensure!(fresh != echo);
    // The fresh one works at once.
    let ok = encode(&request(RequestType::Get, 3, "crl", &[(ECHO, fresh)]))?;
    let full = parse(&exchange(&s, fx.coap_addr, &ok).await?)?;
    ensure!(code(&full) == MessageClass::Response(ResponseType::Content));
    serves_after(&fx, "echo-stale").await?;
    fx.shutdown().await;
    Ok(())
}

/// A short datagram reusing the message id of a long request: the cached answer is not replayed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_coap_short_datagram_reuses_message_id() -> anyhow::Result<()> {
    let fx = Fixture::new().await?;
    let s = socket_on([127, 0, 0, 2]).await?;
    // Padded with an elective option so that the link list fits 3x of it.
    let long = encode(&request(
        RequestType::Get,
        7,
        ".well-known/core",
        &[(2048, vec![0; 400])],
    ))?;
    let first = exchange(&s, fx.coap_addr, &long).await?;
    ensure!(code(&parse(&first)?) == MessageClass::Response(ResponseType::Content));
    // The same message id again, from a 12-byte datagram, then a ping: the
    // first thing back must be the ping's RST, not the cached answer.
    let short = encode(&request(RequestType::Get, 7, "x", &[]))?;
    s.send_to(&short, fx.coap_addr).await?;
    let back = parse(&exchange(&s, fx.coap_addr, &[0x40, 0x00, 0x99, 0x99]).await?)?;
    ensure!(
        back.header.get_type() == MessageType::Reset && back.header.message_id == 0x9999,
        "the short datagram earned {:?} {}",
        back.header.get_type(),
        back.header.code
    );
    // The genuine retransmission still gets its answer.
    ensure!(exchange(&s, fx.coap_addr, &long).await? == first);
    serves_after(&fx, "short-mid").await?;
    fx.shutdown().await;
    Ok(())
}

async fn scrape(fx: &Fixture, name: &str) -> anyhow::Result<f64> {
    let https = HttpsClient::new(&fx.https_url(), fx.path(), None)?;
    let scraped = https.get("/metrics", None).await?;
    let text = String::from_utf8_lossy(&scraped.raw.body).into_owned();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .with_context(|| format!("{name} not in /metrics"))
}

/// A verified address floods distinct message ids with large answers: the dedup cache stays within [coap] dedup_bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_coap_dedup_flood_stays_within_bytes() -> anyhow::Result<()> {
    const LIMIT: usize = 256 * 1024;
    let fx = Fixture::with_config(&[("dedup_bytes = 67108864", &format!("dedup_bytes = {LIMIT}"))])
        .await?;
    let s = socket_on([127, 0, 0, 2]).await?;
    let req = encode(&request(RequestType::Get, 1, ".well-known/est/crts", &[]))?;
    let echo = expect_challenge(&req, &exchange(&s, fx.coap_addr, &req).await?)?;
    let req = encode(&request(
        RequestType::Get,
        2,
        ".well-known/est/crts",
        &[(ECHO, echo)],
    ))?;
    let first = exchange(&s, fx.coap_addr, &req).await?;
    let size = first.len();
    let count = 3 * LIMIT / size + 50;
    for mid in 0..count {
        let mid = 1000 + u16::try_from(mid)?;
        let req = encode(&request(RequestType::Get, mid, ".well-known/est/crts", &[]))?;
        let answer = parse(&exchange(&s, fx.coap_addr, &req).await?)?;
        ensure!(code(&answer) == MessageClass::Response(ResponseType::Content));
    }
    let bytes = scrape(&fx, "certbound_coap_dedup_bytes").await?;
    ensure!(
        bytes <= LIMIT as f64,
        "{count} answers of {size} bytes left {bytes} bytes in the dedup cache (bound {LIMIT})"
    );
    ensure!(bytes > 0.0);
    serves_after(&fx, "dedup-flood").await?;
    fx.shutdown().await;
    Ok(())
}

/// Block1 upload announcing a huge Size1: 4.13 with Size1 = the limit, nothing buffered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_coap_block1_huge_size1() -> anyhow::Result<()> {
    let fx = Fixture::new().await?;
    let s = socket_on([127, 0, 0, 2]).await?;
    let mut p = request(
        RequestType::Post,
        1,
        "token",
        &[(27, vec![0x0e]), (60, vec![0xff, 0xff, 0xff, 0xff])],
    );
    p.payload = vec![0x42; 1024];
    let answer = parse(&exchange(&s, fx.coap_addr, &encode(&p)?).await?)?;
    ensure!(
        code(&answer) == MessageClass::Response(ResponseType::RequestEntityTooLarge),
        "got {}",
        answer.header.code
    );
    let size1 = answer
        .get_first_option(CoapOption::Size1)
        .context("4.13 names the limit in Size1")?;
    ensure!(size1.iter().fold(0u64, |a, b| a << 8 | u64::from(*b)) == 8192);
    serves_after(&fx, "size1").await?;
    fx.shutdown().await;
    Ok(())
}

/// Hundreds of concurrent Block1 transfers (distinct URIs) and Block2 requests beyond the end: bounded, refused, and others still served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_coap_blockwise_flood() -> anyhow::Result<()> {
    let fx = Fixture::new().await?;
    let s = socket_on([127, 0, 0, 2]).await?;
    for i in 0..400u16 {
        let query = format!("q={i}").into_bytes();
        let mut p = request(
            RequestType::Post,
            i,
            "token",
            &[(15, query), (27, vec![0x0e])],
        );
        p.payload = vec![0x42; 1024];
        let answer = parse(&exchange(&s, fx.coap_addr, &encode(&p)?).await?)?;
        ensure!(
            code(&answer) == MessageClass::Response(ResponseType::Continue),
            "block 0 of transfer {i}: {}",
            answer.header.code
        );
    }
    // The first transfers were evicted (at most 256 are kept): their next block is 4.08.
    let mut p = request(
        RequestType::Post,
        500,
        "token",
        &[(15, b"q=0".to_vec()), (27, vec![0x1e])],
    );
    p.payload = vec![0x42; 1024];
    let answer = parse(&exchange(&s, fx.coap_addr, &encode(&p)?).await?)?;
    ensure!(
        code(&answer) == MessageClass::Response(ResponseType::RequestEntityIncomplete),
        "got {}",
        answer.header.code
    );
    // A Block2 request far beyond the end of a resource: 4.02, not a crash or a loop.
    let beyond = request(
        RequestType::Get,
        501,
        "crl",
        &[(23, vec![0xff, 0xff, 0xf6])],
    );
    let answer = parse(&exchange(&s, fx.coap_addr, &encode(&beyond)?).await?)?;
    ensure!(
        matches!(
            code(&answer),
            MessageClass::Response(ResponseType::BadOption | ResponseType::Unauthorized)
        ),
        "got {}",
        answer.header.code
    );
    serves_after(&fx, "block-flood").await?;
    fx.shutdown().await;
    Ok(())
}

/// A 30 KB datagram to POST /token (limit 8 KiB): 4.13 Request Entity Too Large.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_coap_oversized_datagram() -> anyhow::Result<()> {
    let fx = Fixture::new().await?;
    let s = socket_on([127, 0, 0, 2]).await?;
    let mut p = request(RequestType::Post, 1, "token", &[(12, vec![18])]);
    p.payload = vec![0xa0; 30_000];
    let req = encode(&p)?;
    let answer = exchange(&s, fx.coap_addr, &req).await?;
    ensure!(code(&parse(&answer)?) == MessageClass::Response(ResponseType::RequestEntityTooLarge));
    ensure!(answer.len() < 200, "the refusal is small");
    serves_after(&fx, "oversized").await?;
    fx.shutdown().await;
    Ok(())
}

/// Truncated options (a length past the end) and other garbage: RST for a CON, silence otherwise.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_coap_truncated_and_garbage_options() -> anyhow::Result<()> {
    let fx = Fixture::new().await?;
    let s = socket_on([127, 0, 0, 2]).await?;
    // CON GET, mid 0x0101, option delta 11 (Uri-Path) with length 13+200 and 2 bytes of it.
    let truncated = [0x40, 0x01, 0x01, 0x01, 0xbd, 200, b'a', b'b'];
    let back = parse(&exchange(&s, fx.coap_addr, &truncated).await?)?;
    ensure!(back.header.get_type() == MessageType::Reset && back.header.message_id == 0x0101);
    // Reserved option nibble 15 in a CON: RST too.
    let reserved = [0x40, 0x01, 0x01, 0x02, 0xf1, 0x00];
    let back = parse(&exchange(&s, fx.coap_addr, &reserved).await?)?;
    ensure!(back.header.get_type() == MessageType::Reset && back.header.message_id == 0x0102);
    // NON garbage gets nothing: the next thing back is the ping's RST.
    s.send_to(&[0x50, 0x01, 0x01, 0x03, 0xbd, 0xff], fx.coap_addr)
        .await?;
    let back = parse(&exchange(&s, fx.coap_addr, &[0x40, 0x00, 0x01, 0x04]).await?)?;
    ensure!(back.header.message_id == 0x0104, "NON garbage was answered");
    serves_after(&fx, "garbage").await?;
    fx.shutdown().await;
    Ok(())
}

/// An unknown critical option (number 9): 4.02 Bad Option, the handler never runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_coap_unknown_critical_option() -> anyhow::Result<()> {
    let fx = Fixture::new().await?;
    let s = socket_on([127, 0, 0, 2]).await?;
    let req = encode(&request(RequestType::Post, 1, "token", &[(9, vec![1])]))?;
    let answer = exchange(&s, fx.coap_addr, &req).await?;
    ensure!(code(&parse(&answer)?) == MessageClass::Response(ResponseType::BadOption));
    ensure!(
        answer.len() <= 3 * req.len(),
        "even a diagnostic respects the bound"
    );
    serves_after(&fx, "critical").await?;
    fx.shutdown().await;
    Ok(())
}

/// A burst of token requests beyond [coap] max_in_flight: 5.03 with Max-Age, counted in certbound_coap_datagrams_total{outcome="overloaded"}.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_coap_in_flight_cap() -> anyhow::Result<()> {
    let fx = Fixture::with_config(&[("max_in_flight = 512", "max_in_flight = 1")]).await?;
    let device = fx.device("inflight").await?;
    let s = socket_on([127, 0, 0, 2]).await?;
    const N: u16 = 200;
    let mut datagrams = Vec::new();
    for mid in 0..N {
        let body = fx.agent_request(&device, &fx.params(Some(GRANTED_SCOPE)))?;
        let mut p = request(RequestType::Post, mid, "token", &[(12, vec![18])]);
        p.payload = body;
        datagrams.push(encode(&p)?);
    }
    for d in &datagrams {
        s.send_to(d, fx.coap_addr).await?;
    }
    let mut busy = 0;
    let mut answered = 0;
    let mut buf = vec![0u8; 65_536];
    while answered < N {
        let Ok(received) = tokio::time::timeout(WAIT, s.recv_from(&mut buf)).await else {
            break; // a datagram lost on a busy machine: count what came
        };
        let (n, _) = received?;
        let p = parse(&buf[..n])?;
        answered += 1;
        if code(&p) == MessageClass::Response(ResponseType::ServiceUnavailable) {
            let max_age = p
                .get_first_option(CoapOption::MaxAge)
                .context("5.03 with Max-Age")?;
            ensure!(max_age.as_slice() == [2], "Max-Age {max_age:?}");
            busy += 1;
        }
    }
    if busy == 0 {
        bail!("{answered} answers to a burst of {N} with max_in_flight = 1, none 5.03");
    }
    let overloaded = scrape(
        &fx,
        "certbound_coap_datagrams_total{outcome=\"overloaded\"}",
    )
    .await?;
    ensure!(
        overloaded >= f64::from(busy),
        "metric {overloaded} < {busy}"
    );
    fx.assert_serves(&device).await?;
    fx.shutdown().await;
    Ok(())
}
