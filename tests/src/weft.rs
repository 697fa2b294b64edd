//! Weft itself, started in the test process on a loopback port: the real API,
//! the real workers and the real database (a SQLite file, or a PostgreSQL schema
//! of its own), so each test reads as "publish, then look at the receiver".

use serde_json::Value;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Notify, watch};
use weft_engine::api::{AppState, NewApiKey, new_api_key, router};
use weft_engine::auth::TokenIssuer;
use weft_engine::delivery::{
    DEFAULT_ENDPOINT_CONCURRENCY, DEFAULT_MAX_IN_FLIGHT, NetworkPolicy, Outbound, Throttle,
};
use weft_engine::ingest::Ingest;
use weft_engine::runtime::{PluginRuntime, RuntimeConfig};
use weft_engine::secrets::Keyring;
use weft_engine::store::Store;
use weft_engine::worker::{Worker, WorkerConfig};

/// The database a test runs against. Every pipeline test runs on both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub const BACKENDS: [Backend; 2] = [Backend::Sqlite, Backend::Postgres];

/// PostgreSQL runs on this machine and in CI; set WEFT_TEST_POSTGRES_URL to use another.
pub fn postgres_url() -> String {
    std::env::var("WEFT_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A fresh, empty database for one test: a SQLite file in a temporary folder, or
/// a new PostgreSQL schema (dropped by [`TestDatabase::drop`]).
pub struct TestDatabase {
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    schema: Option<String>,
}

impl TestDatabase {
    pub async fn create(backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let url = format!("sqlite://{}", dir.path().join("weft.db").display());
                Self {
                    url,
                    _dir: Some(dir),
                    schema: None,
                }
            }
            Backend::Postgres => {
                let schema = format!("weft_e2e_{}", ulid::Ulid::new().to_string().to_lowercase());
                let pool = sqlx::PgPool::connect(&postgres_url())
                    .await
                    .unwrap_or_else(|e| {
                        panic!(
                            "PostgreSQL at {} is required by the tests: {e}",
                            postgres_url()
                        )
                    });
                // The name is ours: a fixed prefix and a ULID.
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
                    .execute(&pool)
                    .await
                    .unwrap();
                pool.close().await;
                let url = format!("{}?options=-c%20search_path%3D{schema}", postgres_url());
                Self {
                    url,
                    _dir: None,
                    schema: Some(schema),
                }
            }
        }
    }

    pub async fn drop(self) {
        if let Some(schema) = &self.schema {
            let pool = sqlx::PgPool::connect(&postgres_url()).await.unwrap();
            sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
                .execute(&pool)
                .await
                .unwrap();
            pool.close().await;
        }
    }
}

/// Weft running in this process. Derefs to its [`Api`].
pub struct TestWeft {
    pub store: Store,
    api: Api,
    runtime: Arc<PluginRuntime>,
    outbound: Outbound,
    ingest: Ingest,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    database: TestDatabase,
}

impl std::ops::Deref for TestWeft {
    type Target = Api;

    fn deref(&self) -> &Api {
        &self.api
    }
}

/// A client of a running Weft's API, with helpers that read as one statement.
/// It calls with its API key, if it has one.
pub struct Api {
    pub url: String,
    pub key: Option<String>,
    client: hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        http_body_util::Full<bytes::Bytes>,
    >,
}

impl TestWeft {
    /// Starts the API and two workers, with the first-party plugins registered.
    pub async fn start(backend: Backend) -> Self {
        let mut weft = Self::start_without_workers(backend).await;
        weft.start_workers(2);
        weft
    }

    /// Starts the API alone: events are captured, nothing is delivered until
    /// [`TestWeft::start_workers`].
    pub async fn start_without_workers(backend: Backend) -> Self {
        Self::start_serving(backend, None, loopback_allowed()).await
    }

    /// Starts the API alone, accepting the bearer tokens of `issuer` too.
    pub async fn start_trusting(backend: Backend, issuer: TokenIssuer) -> Self {
        Self::start_serving(backend, Some(issuer), loopback_allowed()).await
    }

    /// Starts the API and two workers, both under `policy` instead of the
    /// harness's (loopback and plain http allowed).
    pub async fn start_under(backend: Backend, policy: NetworkPolicy) -> Self {
        let mut weft = Self::start_serving(backend, None, policy).await;
        weft.start_workers(2);
        weft
    }

    async fn start_serving(
        backend: Backend,
        issuer: Option<TokenIssuer>,
        policy: NetworkPolicy,
    ) -> Self {
        let database = TestDatabase::create(backend).await;
        let store = Store::connect(&database.url)
            .await
            .unwrap()
            .with_keyring(Arc::new(Keyring::ephemeral()));
        let runtime = Arc::new(PluginRuntime::new(RuntimeConfig::default()).unwrap());
        register_first_party(&store, &runtime).await;
        let ingest = Ingest::new(store.clone(), Arc::new(Notify::new()));
        let (stop, _) = watch::channel(false);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let mut state = AppState::new(store.clone(), Arc::clone(&runtime), ingest.clone())
            .delivering_under(policy.clone());
        if let Some(issuer) = issuer {
            state = state.trusting(issuer);
        }
        let app = router(state);
        let server = tokio::spawn(weft_engine::api::serve(
            listener,
            app,
            weft_engine::api::ConnectionLimits::default(),
            std::future::pending(),
        ));
        // The harness's own key publishes as fast as a test or benchmark asks.
        let admin_key = make_key(&store, "default", "admin", &[], Some(1_000_000)).await;
        Self {
            store,
            api: Api::new(url).with_key(admin_key),
            runtime,
            outbound: Outbound::new(policy, default_throttle()).unwrap(),
            ingest,
            stop,
            tasks: vec![server],
            database,
        }
    }

    /// Workers started from now on send under `policy` instead of the
    /// harness's, which allows loopback.
    pub fn set_network_policy(&mut self, policy: NetworkPolicy) {
        self.outbound = Outbound::new(policy, default_throttle()).unwrap();
    }

    /// Workers started from now on keep at most `max` deliveries in flight
    /// together, as `weft serve --max-in-flight` does.
    pub fn set_max_in_flight(&mut self, max: usize) {
        self.outbound.throttle = Arc::new(Throttle::new(max, DEFAULT_ENDPOINT_CONCURRENCY));
    }

    /// Starts `count` delivery workers, as `weft serve --workers` does.
    pub fn start_workers(&mut self, count: usize) {
        let config = WorkerConfig {
            idle_poll: Duration::from_millis(20),
            ..WorkerConfig::default()
        };
        for _ in 0..count {
            let worker = Arc::new(Worker::new(
                self.store.clone(),
                Arc::clone(&self.runtime),
                self.outbound.clone(),
                self.ingest.clone(),
                config,
            ));
            self.tasks
                .push(tokio::spawn(worker.run(self.stop.subscribe())));
        }
    }

    /// A new API key of `tenant` in `role`, usable from `networks` (CIDRs;
    /// none: anywhere).
    pub async fn key(&self, tenant: &str, role: &str, networks: &[&str]) -> String {
        make_key(&self.store, tenant, role, networks, None).await
    }

    /// A new API key of `tenant` in `role` that may publish `per_second`
    /// requests a second.
    pub async fn key_limited(&self, tenant: &str, role: &str, per_second: u32) -> String {
        make_key(&self.store, tenant, role, &[], Some(per_second)).await
    }

    /// A client calling as a new key of `tenant` in `role`.
    pub async fn api_as(&self, tenant: &str, role: &str) -> Api {
        Api::new(self.url.clone()).with_key(self.key(tenant, role, &[]).await)
    }

    /// Stops the workers and the server, and drops the test database.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            task.abort();
        }
        self.store.close().await;
        self.database.drop().await;
    }
}

/// The places `weft serve` gives deliveries by default.
fn default_throttle() -> Throttle {
    Throttle::new(DEFAULT_MAX_IN_FLIGHT, DEFAULT_ENDPOINT_CONCURRENCY)
}

/// The receivers of tests are on loopback, mostly over plain http, which
/// deliveries may reach only when an operator allows it.
pub fn loopback_allowed() -> NetworkPolicy {
    NetworkPolicy::allowing(&["127.0.0.0/8".into(), "::1".into()])
        .unwrap()
        .with_plain_http(true)
}

/// Stores a new API key, as `weft keys create` does, and returns it.
async fn make_key(
    store: &Store,
    tenant: &str,
    role: &str,
    networks: &[&str],
    ingest_per_second: Option<u32>,
) -> String {
    let tenant = weft_engine::model::TenantId::parse(tenant).unwrap();
    let request = NewApiKey {
        allowed_networks: networks.iter().map(|n| n.to_string()).collect(),
        ingest_per_second,
        ..NewApiKey::new("test", role)
    };
    let (key, issued) = new_api_key(&tenant, request).unwrap();
    store.create_api_key(&key).await.unwrap();
    issued.secret
}

impl Api {
    /// A client that calls without a credential.
    pub fn new(url: String) -> Self {
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http();
        Self {
            url,
            key: None,
            client,
        }
    }

    /// The same API, called with `key`.
    pub fn with_key(self, key: impl Into<String>) -> Self {
        Self {
            key: Some(key.into()),
            ..self
        }
    }

    fn authorization(&self) -> Option<String> {
        self.key.as_ref().map(|key| format!("Bearer {key}"))
    }

    /// Calls the API; returns the status and the JSON body (Null when empty).
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> (u16, Value) {
        let bytes = body
            .map(|b| serde_json::to_vec(b).unwrap())
            .unwrap_or_default();
        self.call_raw(method, path, bytes, headers).await
    }

    pub async fn call_raw(
        &self,
        method: &str,
        path: &str,
        body: Vec<u8>,
        headers: &[(&str, &str)],
    ) -> (u16, Value) {
        let (status, _, value) = self.exchange(method, path, body, headers).await;
        (status, value)
    }

    /// Like [`Api::post`], with the response's headers too.
    pub async fn post_with_headers(
        &self,
        path: &str,
        body: &Value,
    ) -> (u16, hyper::HeaderMap, Value) {
        self.exchange("POST", path, serde_json::to_vec(body).unwrap(), &[])
            .await
    }

    /// Calls the API; returns the status, the response's headers and the
    /// JSON body (Null when empty).
    pub async fn exchange(
        &self,
        method: &str,
        path: &str,
        body: Vec<u8>,
        headers: &[(&str, &str)],
    ) -> (u16, hyper::HeaderMap, Value) {
        use http_body_util::BodyExt;
        let mut request = hyper::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.url))
            .header("content-type", "application/json");
        if let Some(authorization) = self.authorization() {
            request = request.header("authorization", authorization);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = self
            .client
            .request(
                request
                    .body(http_body_util::Full::new(bytes::Bytes::from(body)))
                    .unwrap(),
            )
            .await
            .unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or(Value::Null)
        };
        (status, headers, value)
    }

    /// Like [`Api::post`], but a connection failure is an error instead of a panic.
    pub async fn try_post(&self, path: &str, body: &Value) -> Result<(u16, Value), String> {
        use http_body_util::BodyExt;
        let mut request = hyper::Request::builder()
            .method("POST")
            .uri(format!("{}{path}", self.url))
            .header("content-type", "application/json");
        if let Some(authorization) = self.authorization() {
            request = request.header("authorization", authorization);
        }
        let request = request
            .body(http_body_util::Full::new(bytes::Bytes::from(
                serde_json::to_vec(body).unwrap(),
            )))
            .unwrap();
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok((
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        ))
    }

    /// Announces a `content_length`-byte POST the way careful clients announce a
    /// large upload (`Expect: 100-continue`), sends no body, and returns the status
    /// and problem document the server answers with at once.
    pub async fn post_announcing(&self, path: &str, content_length: usize) -> (u16, Value) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let authority = self.url.trim_start_matches("http://");
        let mut stream = tokio::net::TcpStream::connect(authority).await.unwrap();
        let authorization = self
            .authorization()
            .map(|value| format!("authorization: {value}\r\n"))
            .unwrap_or_default();
        let head = format!(
            "POST {path} HTTP/1.1\r\nhost: {authority}\r\ncontent-type: application/json\r\n\
             {authorization}content-length: {content_length}\r\nexpect: 100-continue\r\nconnection: close\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        let mut response = Vec::new();
        tokio::time::timeout(
            std::time::Duration::from_secs(10),
            stream.read_to_end(&mut response),
        )
        .await
        .expect("the server answers an announced body without waiting for it")
        .unwrap();
        let response = String::from_utf8_lossy(&response);
        let status = response
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("not an HTTP response: {response}"));
        let body = response.split("\r\n\r\n").nth(1).unwrap_or_default();
        (status, serde_json::from_str(body).unwrap_or(Value::Null))
    }

    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.call("POST", path, Some(body), &[]).await
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.call("GET", path, None, &[]).await
    }

    /// Delivery `id` as `GET /v1/deliveries/{id}` shows it, and the outcomes
    /// of its attempts in order (`succeeded`, `failed`, `unknown`).
    pub async fn delivery_outcomes(&self, id: &str) -> (Vec<String>, Value) {
        let (status, shown) = self.get(&format!("/v1/deliveries/{id}")).await;
        assert_eq!(status, 200, "{shown}");
        let outcomes = shown["attempts"]
            .as_array()
            .unwrap_or_else(|| panic!("no attempts in {shown:#}"))
            .iter()
            .map(|attempt| attempt["outcome"].as_str().unwrap().to_owned())
            .collect();
        (outcomes, shown)
    }

    /// Creates an endpoint for `url`, retrying quickly so tests stay short.
    /// Returns its id and signing secret.
    pub async fn endpoint(&self, url: &str, max_attempts: u32) -> (String, String) {
        let (status, endpoint) = self
            .post(
                "/v1/endpoints",
                &serde_json::json!({
                    "name": "receiver",
                    "url": url,
                    "timeout_ms": 2000,
                    "retry": { "max_attempts": max_attempts, "backoff": { "type": "fixed", "delay_ms": 50 } }
                }),
            )
            .await;
        assert_eq!(status, 201, "{endpoint}");
        (
            endpoint["id"].as_str().unwrap().to_owned(),
            endpoint["secret"].as_str().unwrap().to_owned(),
        )
    }

    /// Creates a subscription from `spec` (`endpoint_id` and `name` added).
    pub async fn subscription(&self, endpoint_id: &str, mut spec: Value) -> String {
        spec["endpoint_id"] = Value::String(endpoint_id.to_owned());
        if spec.get("name").is_none() {
            spec["name"] = Value::String("test subscription".into());
        }
        let (status, subscription) = self.post("/v1/subscriptions", &spec).await;
        assert_eq!(status, 201, "{subscription}");
        subscription["id"].as_str().unwrap().to_owned()
    }

    /// Publishes a sample event from `examples/events`, with its id replaced by a
    /// fresh one so tests do not deduplicate each other.
    pub async fn publish_sample(
        &self,
        event_type: &str,
        change: impl FnOnce(&mut Value),
    ) -> String {
        let mut event = crate::sample_event_json(event_type);
        event.as_object_mut().unwrap().remove("id");
        event.as_object_mut().unwrap().remove("tenant");
        change(&mut event);
        let (status, body) = self.post("/v1/events", &event).await;
        assert_eq!(status, 202, "{body}");
        body["id"].as_str().unwrap().to_owned()
    }

    /// Waits until `check` holds for the deliveries of `event_id`.
    pub async fn wait_for_deliveries(
        &self,
        event_id: &str,
        timeout: Duration,
        check: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let (_, body) = self
                .get(&format!("/v1/deliveries?event_id={event_id}"))
                .await;
            let deliveries = body["deliveries"].as_array().cloned().unwrap_or_default();
            if check(&deliveries) {
                return deliveries;
            }
            assert!(
                Instant::now() < deadline,
                "deliveries of {event_id} never got there: {deliveries:#?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn register_first_party(store: &Store, runtime: &Arc<PluginRuntime>) {
    for name in [
        "high-value-orders",
        "redact-pii",
        "noop",
        "slack",
        "shopify",
        "salesforce",
        "misbehave",
    ] {
        let bytes = crate::guest_bytes(name);
        let plugin = runtime.load(&bytes).unwrap();
        store
            .put_plugin(&weft_engine::api::stored_plugin(None, &plugin, bytes))
            .await
            .unwrap();
    }
}
