//! Plugins: immutable versions, first-party ones shared, uploads private.

use super::backends::on_both_backends;
use super::fixtures::{NOW, tenant};
use crate::model::TenantId;
use crate::store::{StoreError, StoredPlugin};
use serde_json::json;

fn plugin(owner: Option<&TenantId>, name: &str, version: &str, bytes: &[u8]) -> StoredPlugin {
    StoredPlugin {
        tenant: owner.cloned(),
        name: name.into(),
        version: version.into(),
        world: "transformer".into(),
        digest: format!("sha256:{}", hex::encode(bytes)),
        bytes: bytes.to_vec(),
        info: json!({ "config_schema": { "type": "object" } }),
        created_at: NOW,
    }
}

fn without_bytes(plugin: &StoredPlugin) -> StoredPlugin {
    StoredPlugin {
        bytes: Vec::new(),
        ..plugin.clone()
    }
}

#[tokio::test]
async fn a_version_is_stored_once_and_never_changes() {
    on_both_backends(|store| async move {
        let acme = tenant("acme");
        let original = plugin(Some(&acme), "redact-pii", "1.0.0", b"\0asm one");
        store.put_plugin(&original).await.unwrap();
        store.put_plugin(&original).await.unwrap();

        let changed = plugin(Some(&acme), "redact-pii", "1.0.0", b"\0asm two");
        let Err(StoreError::Conflict(message)) = store.put_plugin(&changed).await else {
            panic!("expected a conflict");
        };
        assert!(message.contains("redact-pii 1.0.0"), "{message}");
        assert!(message.contains(&original.digest), "{message}");

        let stored = store
            .get_plugin(&acme, "redact-pii", "1.0.0")
            .await
            .unwrap();
        assert_eq!(stored, Some(original));
    })
    .await;
}

#[tokio::test]
async fn first_party_plugins_are_shared_and_uploads_are_private() {
    on_both_backends(|store| async move {
        let acme = tenant("acme");
        let globex = tenant("globex");
        let slack = plugin(None, "slack", "1.0.0", b"\0asm slack");
        let acme_slack = plugin(Some(&acme), "slack", "1.0.0", b"\0asm acme's slack");
        let private = plugin(Some(&acme), "erp-bridge", "0.3.0", b"\0asm bridge");
        for stored in [&slack, &acme_slack, &private] {
            store.put_plugin(stored).await.unwrap();
        }
        // First-party versions are immutable too.
        let changed = plugin(None, "slack", "1.0.0", b"\0asm other");
        assert!(matches!(
            store.put_plugin(&changed).await,
            Err(StoreError::Conflict(_))
        ));

        let get = |tenant, name| {
            store.get_plugin(
                tenant,
                name,
                match name {
                    "slack" => "1.0.0",
                    _ => "0.3.0",
                },
            )
        };
        assert_eq!(get(&globex, "slack").await.unwrap(), Some(slack.clone()));
        assert_eq!(get(&acme, "slack").await.unwrap(), Some(acme_slack.clone()));
        assert_eq!(
            get(&acme, "erp-bridge").await.unwrap(),
            Some(private.clone())
        );
        assert_eq!(get(&globex, "erp-bridge").await.unwrap(), None);

        assert_eq!(
            store.list_plugins(&acme).await.unwrap(),
            vec![
                without_bytes(&private),
                without_bytes(&slack),
                without_bytes(&acme_slack)
            ]
        );
        assert_eq!(
            store.list_plugins(&globex).await.unwrap(),
            vec![without_bytes(&slack)]
        );
    })
    .await;
}
