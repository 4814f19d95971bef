//! The agent authenticates its MQTT 5 session with an access token (RFC
//! 9431, `[mqtt] session_audience`) and renews it in-session with AUTH: the
//! connection outlives several tokens, and the status counts the reconnects
//! avoided.

use super::common::*;

const MQTT_API: &str = "urn:certbound:mqtt";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_renews_its_session_token_in_place_without_reconnecting() {
    let world = World::new(3600).await;
    // Session tokens live 10 s: renewed at about 2/3 of that.
    let reg = certbound_registry::registry::Registry::open(&world.dir)
        .await
        .expect("registry");
    reg.create_api(MQTT_API, "pub:plant/+/alerts", 10)
        .await
        .expect("mqtt api");
    reg.set_grant("sensors", MQTT_API, "pub:plant/+/alerts")
        .await
        .expect("grant");
    reg.close().await;
    let (path, _) = world.agent_config(
        "session",
        "udp:127.0.0.1:0",
        &format!(
            "audience = \"{API}\"\n\n[[token]]\naudience = \"{MQTT_API}\"\nscope = \"pub:plant/+/alerts\"\n"
        ),
    );
    let text = std::fs::read_to_string(&path).expect("config");
    let text = text.replace(
        "timeout_secs = 5\n",
        &format!("timeout_secs = 5\nsession_audience = \"{MQTT_API}\"\n"),
    );
    std::fs::write(&path, text).expect("config");
    let config = certbound_agent::AgentConfig::load(&path).expect("valid config");
    let agent = world.agent_now(&config).await;
    let mut status = agent.status();
    // Connects (first without a token, once more with it), then renews it
    // in place at least twice: about 14 s.
    within(
        "two in-session renewals",
        status.wait_for(|s| s.reconnects_avoided >= 2),
    )
    .await
    .expect("agent running");
    let s = status.borrow().clone();
    assert!(s.mqtt_session_token, "{s:?}");
    assert!(s.connected, "{s:?}");
    assert_eq!(s.reauth_failures, 0, "{s:?}");
    let stats = world
        .broker
        .as_ref()
        .and_then(|b| b.mqtt_server())
        .expect("embedded server")
        .stats();
    // The bootstrap connection, the authenticated one, and no more: every
    // later token went over AUTH.
    assert!(stats.tokens_accepted >= 3, "{stats:?}");
    assert_eq!(stats.expired_tokens, 0, "{stats:?}");
    assert_eq!(
        world.gate.connections(),
        2,
        "one bootstrap connection, then one session"
    );
    agent.stop();
    agent.wait().await.expect("clean stop");
}
