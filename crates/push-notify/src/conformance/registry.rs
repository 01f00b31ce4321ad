//! Checks for [`DeviceRegistry`] backends.

use crate::conformance::fresh_user;
use crate::{Device, DeviceRegistry, DeviceType, PushError, TOKEN_MAX};

fn device(user: i64, token: &str, device_type: DeviceType) -> Device {
    Device {
        user,
        token: token.to_owned(),
        device_type,
    }
}

/// Every check below.
pub async fn run_all(registry: &dyn DeviceRegistry) {
    devices_are_listed_per_user(registry).await;
    deactivation_is_per_owner_and_reactivation_works(registry).await;
    a_token_belongs_to_one_user(registry).await;
    forgotten_tokens_are_off_for_everyone(registry).await;
    bad_tokens_are_refused(registry).await;
    a_user_keeps_at_most_the_cap_of_devices(registry).await;
}

/// Activating device after device never gives a user more than [`MAX_DEVICES_PER_USER`]: the
/// newest stays, older ones go (a caller cannot grow the registry through one account).
///
/// [`MAX_DEVICES_PER_USER`]: crate::MAX_DEVICES_PER_USER
pub async fn a_user_keeps_at_most_the_cap_of_devices(registry: &dyn DeviceRegistry) {
    let user = fresh_user();
    let cap = crate::MAX_DEVICES_PER_USER;
    for i in 0..cap + 5 {
        let token = format!("browser-{i}-{user}");
        registry
            .activate(device(user, &token, DeviceType::Web))
            .await
            .unwrap();
        let mine = registry.devices(&[user]).await.unwrap();
        assert_eq!(mine.len(), (i + 1).min(cap), "after {} activations", i + 1);
        assert!(
            mine.iter().any(|d| d.token == token),
            "the newest device is kept"
        );
    }
}

/// A user may have several devices; each user sees only their own.
pub async fn devices_are_listed_per_user(registry: &dyn DeviceRegistry) {
    let (a, b) = (fresh_user(), fresh_user());
    let web = format!("web-{a}");
    let phone = format!("phone-{a}");
    let other = format!("phone-{b}");
    registry
        .activate(device(a, &web, DeviceType::Web))
        .await
        .unwrap();
    registry
        .activate(device(a, &phone, DeviceType::Mobile))
        .await
        .unwrap();
    registry
        .activate(device(b, &other, DeviceType::Mobile))
        .await
        .unwrap();
    // Activating twice changes nothing.
    registry
        .activate(device(a, &web, DeviceType::Web))
        .await
        .unwrap();
    let mut mine = registry.devices(&[a]).await.unwrap();
    mine.sort_by(|x, y| x.token.cmp(&y.token));
    assert_eq!(
        mine,
        vec![
            device(a, &phone, DeviceType::Mobile),
            device(a, &web, DeviceType::Web)
        ]
    );
    let both = registry.devices(&[a, b]).await.unwrap();
    assert_eq!(both.len(), 3);
    assert!(registry.devices(&[fresh_user()]).await.unwrap().is_empty());
    assert!(registry.devices(&[]).await.unwrap().is_empty());
}

/// Only the owner deactivates; a deactivated device comes back when activated again.
pub async fn deactivation_is_per_owner_and_reactivation_works(registry: &dyn DeviceRegistry) {
    let (a, b) = (fresh_user(), fresh_user());
    let token = format!("tok-{a}");
    registry
        .activate(device(a, &token, DeviceType::Web))
        .await
        .unwrap();
    assert!(
        !registry.deactivate(b, &token).await.unwrap(),
        "not b's device"
    );
    assert_eq!(registry.devices(&[a]).await.unwrap().len(), 1);
    assert!(registry.deactivate(a, &token).await.unwrap());
    assert!(
        !registry.deactivate(a, &token).await.unwrap(),
        "already off"
    );
    assert!(!registry.deactivate(a, "never-registered").await.unwrap());
    assert!(registry.devices(&[a]).await.unwrap().is_empty());
    registry
        .activate(device(a, &token, DeviceType::Mobile))
        .await
        .unwrap();
    assert_eq!(
        registry.devices(&[a]).await.unwrap(),
        vec![device(a, &token, DeviceType::Mobile)],
        "active again, with the new type"
    );
}

/// A token activated by a second user (a shared browser) is theirs from then on.
pub async fn a_token_belongs_to_one_user(registry: &dyn DeviceRegistry) {
    let (a, b) = (fresh_user(), fresh_user());
    let token = format!("shared-{a}");
    registry
        .activate(device(a, &token, DeviceType::Web))
        .await
        .unwrap();
    registry
        .activate(device(b, &token, DeviceType::Web))
        .await
        .unwrap();
    assert!(registry.devices(&[a]).await.unwrap().is_empty());
    assert_eq!(registry.devices(&[b]).await.unwrap().len(), 1);
    assert!(!registry.deactivate(a, &token).await.unwrap());
}

/// `forget` switches a token off whoever holds it.
pub async fn forgotten_tokens_are_off_for_everyone(registry: &dyn DeviceRegistry) {
    let a = fresh_user();
    let gone = format!("gone-{a}");
    let kept = format!("kept-{a}");
    registry
        .activate(device(a, &gone, DeviceType::Mobile))
        .await
        .unwrap();
    registry
        .activate(device(a, &kept, DeviceType::Mobile))
        .await
        .unwrap();
    registry.forget(&gone).await.unwrap();
    registry.forget("unknown-token").await.unwrap();
    let left: Vec<_> = registry
        .devices(&[a])
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.token)
        .collect();
    assert_eq!(left, vec![kept]);
}

/// Empty, over-long and control-character tokens are refused as invalid.
pub async fn bad_tokens_are_refused(registry: &dyn DeviceRegistry) {
    let a = fresh_user();
    for token in [
        String::new(),
        "   ".to_owned(),
        "x".repeat(TOKEN_MAX + 1),
        "a\nb".to_owned(),
    ] {
        let err = registry
            .activate(device(a, &token, DeviceType::Web))
            .await
            .unwrap_err();
        assert!(
            matches!(err, PushError::Invalid { field: "token", .. }),
            "{err:?}"
        );
    }
    // The longest allowed token is kept whole.
    let long = "y".repeat(TOKEN_MAX);
    registry
        .activate(device(a, &long, DeviceType::Web))
        .await
        .unwrap();
    assert_eq!(registry.devices(&[a]).await.unwrap()[0].token, long);
}
