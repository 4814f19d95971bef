//! Two broker instances on one store (SQLite: one data directory; PostgreSQL:
//! one database) behave as one service: a change made through one of them,
//! or through the CLI's registry, is enforced by the other on its very next
//! request (no waiting, no timing bound to tune).

use certbound_broker::store::testing::current;
use certbound_coap::ResponseType;
use certbound_e2e::{Fixture, GRANTED_SCOPE};
use certbound_proto::ace::AceErrorCode;

use certbound_broker::store::DeviceStatus;

async fn a_change_through_one_instance_is_enforced_by_the_other() {
    let store = current().fresh_url().await;
    let fx = Fixture::on_store(store, &[]).await.unwrap();
    let b = fx.another_instance().await.unwrap();
    let params = fx.params(Some(GRANTED_SCOPE));

    // A device provisioned after both started gets tokens from either.
    let device = fx.device("inst-1").await.unwrap();
    let other = fx.device("inst-2").await.unwrap();
    fx.obtain(&device, &params).await.unwrap();
    b.post_token(fx.agent_request(&device, &params).unwrap())
        .await
        .unwrap()
        .token()
        .unwrap();

    // Revoked through the registry (the CLI's path, as instance A's admin
    // API does): instance B refuses the very next request.
    fx.registry
        .set_device_status("inst-1", DeviceStatus::Revoked, "key compromise")
        .await
        .unwrap();
    let answer = b
        .post_token(fx.agent_request(&device, &params).unwrap())
        .await
        .unwrap();
    answer
        .expect_refused(AceErrorCode::InvalidClient, ResponseType::Unauthorized)
        .or_else(|_| {
            answer.expect_refused(AceErrorCode::UnauthorizedClient, ResponseType::Forbidden)
        })
        .unwrap_or_else(|e| panic!("instance B still serves a revoked device: {e}"));

    // Suspension and resumption travel the same way.
    fx.registry
        .set_device_status("inst-2", DeviceStatus::Suspended, "maintenance")
        .await
        .unwrap();
    let answer = b
        .post_token(fx.agent_request(&other, &params).unwrap())
        .await
        .unwrap();
    answer
        .expect_refused(AceErrorCode::UnauthorizedClient, ResponseType::Forbidden)
        .unwrap();
    fx.registry
        .set_device_status("inst-2", DeviceStatus::Active, "back")
        .await
        .unwrap();
    b.post_token(fx.agent_request(&other, &params).unwrap())
        .await
        .unwrap()
        .token()
        .unwrap();
    // And both instances keep serving.
    fx.assert_serves(&other).await.unwrap();
    b.shutdown().await;
    fx.shutdown().await;
}

/// Replays across instances, as decided in docs/security.md: each instance
/// has its own replay cache, so a signed request replayed to another
/// instance within its lifetime (at most 5 minutes) is answered with a
/// second token — bound (cnf) to the key of the device that signed the
/// request, so worth nothing to whoever replayed it: only that key can prove
/// possession. The same instance refuses the replay.
async fn a_request_replayed_to_another_instance_yields_only_a_token_bound_to_the_device() {
    let store = current().fresh_url().await;
    let fx = Fixture::on_store(store, &[]).await.unwrap();
    let b = fx.another_instance().await.unwrap();
    let device = fx.device("replayed-1").await.unwrap();
    let bystander = fx.device("replayed-2").await.unwrap();
    let request = fx
        .agent_request(&device, &fx.params(Some(GRANTED_SCOPE)))
        .unwrap();
    fx.post_token(request.clone())
        .await
        .unwrap()
        .token()
        .unwrap();
    // The same instance: refused as a replay.
    let again = fx.post_token(request.clone()).await.unwrap();
    let text = again
        .expect_refused(AceErrorCode::InvalidClient, ResponseType::Unauthorized)
        .unwrap();
    assert!(text.contains("replay"), "{text}");
    // Another instance: a token, bound to the device's own certificate key.
    let replayed = b.post_token(request).await.unwrap();
    let token = replayed.token().unwrap();
    let verified = fx
        .verifier
        .verify(
            &token.access_token,
            &[GRANTED_SCOPE],
            certbound_e2e::unix_now(),
        )
        .unwrap();
    verified
        .check_certificate_binding(device.leaf_der())
        .unwrap();
    assert!(
        verified
            .check_certificate_binding(bystander.leaf_der())
            .is_err(),
        "the replayed token is bound to another key than the device's"
    );
    b.shutdown().await;
    fx.shutdown().await;
}

certbound_broker::store::on_every_backend!(
    a_change_through_one_instance_is_enforced_by_the_other,
    a_request_replayed_to_another_instance_yields_only_a_token_bound_to_the_device
);
