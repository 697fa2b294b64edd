//! Endpoints' secrets at rest: sealed in every column that holds one, opened
//! only with the right master key, re-sealed under a new one, and sealed when
//! an earlier release left them in clear.

use super::backends::on_both_databases;
use super::fixtures::{endpoint, tenant};
use crate::model::{EndpointAuth, EndpointTls, PreviousSecret};
use crate::secrets::{Keyring, MasterKey};
use crate::store::database::Statement;
use crate::store::{Store, StoreError};
use std::sync::Arc;

fn keyring(current: &str, previous: &[&str]) -> Arc<Keyring> {
    let key = |text: &str| MasterKey::from_base64(text).unwrap();
    Arc::new(Keyring::new(
        key(current),
        previous.iter().map(|text| key(text)).collect(),
    ))
}

/// The raw text of the secret columns of endpoint `id`.
async fn stored_columns(store: &Store, id: &str) -> Vec<Option<String>> {
    let statement = Statement::new(
        "SELECT url, secret, previous_secret, headers, auth, tls FROM endpoints WHERE id = $1",
    )
    .bind(id);
    let row = store
        .backend
        .fetch_optional(statement)
        .await
        .unwrap()
        .unwrap();
    ["url", "secret", "previous_secret", "headers", "auth", "tls"]
        .into_iter()
        .map(|column| row.get::<Option<String>>(column).unwrap())
        .collect()
}

#[tokio::test]
async fn secrets_are_sealed_and_reopen_only_with_their_key() {
    on_both_databases(|url| async move {
        let (old, new) = (MasterKey::generate(), MasterKey::generate());
        let plain = Store::connect(&url).await.unwrap();
        let store = plain.clone().with_keyring(keyring(&old, &[]));
        let acme = tenant("acme");
        let mut stored = endpoint(&acme);
        stored
            .headers
            .insert("x-api-key".into(), "header-secret-1234".into());
        stored.auth = Some(EndpointAuth::Bearer {
            token: "bearer-secret-5678".into(),
        });
        stored.tls = Some(EndpointTls {
            client_key: Some("-----BEGIN PRIVATE KEY-----tls-key-secret".into()),
            ..EndpointTls::default()
        });
        stored.previous_secret = Some(PreviousSecret {
            secret: "whsec_cHJldmlvdXMgc2VjcmV0IGF0IHJlc3Q=".into(),
            expires_at: i64::MAX,
        });
        store.create_endpoint(&stored).await.unwrap();

        let columns = stored_columns(&store, stored.id.as_str()).await;
        for column in &columns {
            let text = column.as_deref().unwrap();
            assert!(text.starts_with("weft-sealed:v1:"), "{text}");
            for secret in [
                "header-secret",
                "bearer-secret",
                "whsec_",
                "x-source",
                "tls-key",
            ] {
                assert!(!text.contains(secret), "{secret} in {text}");
            }
        }
        assert_eq!(
            store.get_endpoint(&acme, &stored.id).await.unwrap(),
            Some(stored.clone())
        );

        // Without the key, or with another one, nothing opens.
        let error = plain.get_endpoint(&acme, &stored.id).await.unwrap_err();
        assert!(
            matches!(&error, StoreError::Sealed(m) if m.contains("no master key")),
            "{error}"
        );
        let stranger = plain.clone().with_keyring(keyring(&new, &[]));
        let error = stranger
            .get_endpoint(&acme, &stored.id)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("which this process does not have"),
            "{error}"
        );

        // Rotation: the new key with the old one as previous re-seals all six
        // columns, after which the new key alone is enough.
        let rotating = plain.clone().with_keyring(keyring(&new, &[&old]));
        assert_eq!(rotating.reseal_endpoint_secrets().await.unwrap(), 6);
        assert_eq!(
            rotating.reseal_endpoint_secrets().await.unwrap(),
            0,
            "nothing left"
        );
        let rotated = plain.clone().with_keyring(keyring(&new, &[]));
        assert_eq!(
            rotated.get_endpoint(&acme, &stored.id).await.unwrap(),
            Some(stored.clone())
        );
        let error = store
            .get_endpoint(&acme, &stored.id)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("which this process does not have"),
            "{error}"
        );

        // A sealed value moved to another endpoint does not open there.
        let other = endpoint(&acme);
        rotated.create_endpoint(&other).await.unwrap();
        let moved = Statement::new("UPDATE endpoints SET secret = $1 WHERE id = $2")
            .bind(columns[0].clone())
            .bind(other.id.as_str());
        plain.backend.write(moved).await.unwrap();
        let rotated_store = plain.clone().with_keyring(keyring(&new, &[&old]));
        let error = rotated_store
            .get_endpoint(&acme, &other.id)
            .await
            .unwrap_err()
            .to_string();
        assert!(error.contains("altered or moved"), "{error}");
        plain.close().await;
    })
    .await;
}

#[tokio::test]
async fn secrets_an_earlier_release_wrote_in_clear_are_read_then_sealed() {
    on_both_databases(|url| async move {
        let key = MasterKey::generate();
        let plain = Store::connect(&url).await.unwrap();
        let store = plain.clone().with_keyring(keyring(&key, &[]));
        let acme = tenant("acme");
        let stored = endpoint(&acme);
        store.create_endpoint(&stored).await.unwrap();
        let in_clear = Statement::new(
            "UPDATE endpoints SET url = $1, secret = $2, headers = $3 WHERE id = $4",
        )
        .bind(stored.url.clone())
        .bind(stored.secret.clone())
        .bind(r#"{"x-source":"weft"}"#)
        .bind(stored.id.as_str());
        plain.backend.write(in_clear).await.unwrap();

        assert_eq!(
            store.get_endpoint(&acme, &stored.id).await.unwrap(),
            Some(stored.clone())
        );
        assert_eq!(store.reseal_endpoint_secrets().await.unwrap(), 3);
        let columns = stored_columns(&store, stored.id.as_str()).await;
        for column in columns.iter().flatten() {
            assert!(column.starts_with("weft-sealed:v1:"), "{column}");
        }
        assert_eq!(
            store.get_endpoint(&acme, &stored.id).await.unwrap(),
            Some(stored)
        );
        plain.close().await;
    })
    .await;
}
