//! Several `weft serve` processes on one PostgreSQL database, as an operator
//! runs them: under a load spread over three nodes, `kill -9` of one loses no
//! accepted event, repeats only what that node had in flight, and keeps every
//! ordering key in order; an endpoint's rate and concurrency limits hold for
//! the three nodes together.

use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use weft_tests::process::{BOOTSTRAP_KEY, WeftProcess, scrape};
use weft_tests::receiver::{Receiver, Reply, most_within};
use weft_tests::weft::{Api, Backend, TestDatabase};

const NODES: usize = 3;

/// Deliveries leased by a killed node come due again after the lease: a short
/// one keeps the test short.
const NODE_ARGS: &[&str] = &["--lease-seconds", "2", "--metrics-listen", "127.0.0.1:0"];

/// Customers the orders are spread over: each is an ordering key.
const CUSTOMERS: usize = 25;

struct Node {
    process: WeftProcess,
    api: Arc<Api>,
    metrics_url: String,
}

/// Starts `count` nodes on `database`, one after the other (the first
/// migrates the schema), each in a folder of its own.
async fn start_nodes(
    database: &TestDatabase,
    workdir: &std::path::Path,
    count: usize,
) -> Vec<Node> {
    let mut nodes = Vec::with_capacity(count);
    for index in 0..count {
        let (url, dir) = (database.url.clone(), workdir.join(format!("node-{index}")));
        std::fs::create_dir_all(&dir).unwrap();
        let process = tokio::task::spawn_blocking(move || {
            WeftProcess::start_with(Some(&url), &dir, NODE_ARGS)
        })
        .await
        .unwrap();
        let metrics_url = process
            .printed
            .iter()
            .find_map(|line| line.strip_prefix("weft metrics on "))
            .unwrap_or_else(|| panic!("no metrics address in {:?}", process.printed))
            .to_owned();
        let api = Arc::new(Api::new(process.url.clone()).with_key(BOOTSTRAP_KEY));
        nodes.push(Node {
            process,
            api,
            metrics_url,
        });
    }
    nodes
}

/// The value of the sample `name` (labels included) in a node's `/metrics`.
fn sample_on(node: &Node, name: &str) -> u64 {
    let (_, text) = scrape(&node.metrics_url);
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .map_or(0, |value| value.trim().parse().unwrap())
}

/// The deliveries a node recorded as succeeded.
fn succeeded_on(node: &Node) -> u64 {
    sample_on(node, "weft_deliveries_total{outcome=\"succeeded\"}")
}

/// The order `batch`/`n` of the load: its position in the publication order,
/// and its customer (the ordering key).
fn order(batch: usize, n: usize) -> Value {
    let mut data = weft_tests::sample_event_json("sales_order.created")["data"].clone();
    data["order"]["id"] = json!(format!("SO-{:06}", batch * 50 + n));
    data["order"]["customer_id"] = json!(format!("CUST-{:02}", n % CUSTOMERS));
    json!({ "type": "sales_order.created", "data": data })
}

/// Publishes batches of 50 orders, one request after the other so that
/// publication order is capture order, to each node in turn, until `stop`;
/// a node that stops answering is left out from then on. Returns the orders
/// accepted (answered 202) into `accepted`.
async fn publish_round_robin(
    apis: Vec<Arc<Api>>,
    accepted: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
) {
    let mut alive = vec![true; apis.len()];
    let mut batch = 0;
    while !stop.load(Ordering::Relaxed) {
        let Some(node) = (0..apis.len())
            .map(|offset| (batch + offset) % apis.len())
            .find(|&node| alive[node])
        else {
            panic!("no node answers");
        };
        let events: Vec<Value> = (0..50).map(|n| order(batch, n)).collect();
        match apis[node]
            .try_post("/v1/events/batch", &json!({ "events": events }))
            .await
        {
            Ok((202, _)) => accepted
                .lock()
                .unwrap()
                .extend((0..50).map(|n| format!("SO-{:06}", batch * 50 + n))),
            Ok((status, body)) => panic!("node {node} answered {status}: {body}"),
            Err(_) => alive[node] = false,
        }
        batch += 1;
    }
}

async fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "{what}: still not done after {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_lose_nothing_to_a_kill_9_and_keep_each_key_in_order() {
    let database = TestDatabase::create(Backend::Postgres).await;
    let workdir = tempfile::tempdir().unwrap();
    let mut nodes = start_nodes(&database, workdir.path(), NODES).await;
    // Each request takes a moment, so that the killed node has some in flight.
    let receiver = Receiver::start().await;
    receiver.answer_all(Reply::status(200).after(Duration::from_millis(100)));
    let admin = Arc::clone(&nodes[1].api);
    let (endpoint, _) = admin.endpoint(&receiver.url, 50).await;
    admin
        .subscription(
            &endpoint,
            json!({ "event_types": ["sales_order.created"], "ordering_key": "{{ order.customer_id }}" }),
        )
        .await;

    let accepted = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let apis = nodes.iter().map(|node| Arc::clone(&node.api)).collect();
    let publisher = tokio::spawn(publish_round_robin(
        apis,
        Arc::clone(&accepted),
        Arc::clone(&stop),
    ));
    let accepted_count = || accepted.lock().unwrap().len();
    wait_until("the load getting going", Duration::from_secs(60), || {
        accepted_count() >= 1_500
    })
    .await;
    // The node that delivered most so far: a key's next delivery is mostly
    // claimed by the node that finished its last, so this one holds the most
    // keys in flight, and what it holds is what may arrive twice.
    let (busiest, delivered_by_busiest) = nodes
        .iter()
        .map(succeeded_on)
        .enumerate()
        .max_by_key(|&(_, delivered)| delivered)
        .unwrap();
    let killed = nodes.remove(busiest);
    tokio::task::spawn_blocking(move || killed.process.kill_9())
        .await
        .unwrap();
    // From here on, the API of a node that is still up.
    let admin = Arc::clone(&nodes[0].api);
    let at_kill = accepted_count();
    wait_until(
        "the load going on without the killed node",
        Duration::from_secs(60),
        || accepted_count() >= at_kill + 1_500,
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    publisher.await.unwrap();
    let accepted: BTreeSet<String> = accepted.lock().unwrap().iter().cloned().collect();

    let orders_received = || -> BTreeSet<String> {
        receiver
            .received()
            .iter()
            .map(|r| r.json()["order"]["id"].as_str().unwrap().to_owned())
            .collect()
    };
    wait_until(
        "every accepted order delivered",
        Duration::from_secs(120),
        || accepted.is_subset(&orders_received()),
    )
    .await;

    // Each key's orders arrived in publication order; a repeat may come
    // again only before the next of its key.
    let mut received = receiver.received();
    received.sort_by_key(|r| r.at);
    let mut by_customer: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut times_received: HashMap<String, usize> = HashMap::new();
    for request in &received {
        let body = request.json();
        let customer = body["order"]["customer_id"].as_str().unwrap().to_owned();
        let order = body["order"]["id"].as_str().unwrap().to_owned();
        let orders = by_customer.entry(customer.clone()).or_default();
        if let Some(last) = orders.last() {
            assert!(*last <= order, "{customer}: {order} arrived after {last}");
        }
        orders.push(order);
        *times_received
            .entry(request.header("webhook-id").unwrap().to_owned())
            .or_default() += 1;
    }
    assert_eq!(by_customer.len(), CUSTOMERS);

    // What arrived twice was in flight on the killed node: its history shows
    // that attempt as of unknown outcome, before the one that went.
    let twice: Vec<&String> = times_received
        .iter()
        .filter(|(_, times)| **times > 1)
        .map(|(id, _)| id)
        .collect();
    for id in &twice {
        let (outcomes, shown) = admin.delivery_outcomes(id).await;
        assert_eq!(
            outcomes.last().map(String::as_str),
            Some("succeeded"),
            "{shown:#}"
        );
        assert!(
            outcomes.iter().any(|outcome| outcome == "unknown"),
            "{id} repeated without a cause: {shown:#}"
        );
    }
    let survivors: Vec<u64> = nodes.iter().map(succeeded_on).collect();
    eprintln!(
        "{} orders accepted by {NODES} nodes ({at_kill} before node {busiest} was killed, \
         having delivered {delivered_by_busiest}), all delivered; {} received twice, each in flight at the \
         kill; deliveries recorded by the survivors: {survivors:?}",
        accepted.len(),
        twice.len(),
    );
    drop(nodes);
    database.drop().await;
}

async fn limited_endpoint(api: &Api, url: &str, event_type: &str, limits: Value) {
    let mut spec = json!({ "name": "limited", "url": url, "timeout_ms": 5000 });
    spec.as_object_mut()
        .unwrap()
        .extend(limits.as_object().unwrap().clone());
    let (status, endpoint) = api.post("/v1/endpoints", &spec).await;
    assert_eq!(status, 201, "{endpoint}");
    api.subscription(
        endpoint["id"].as_str().unwrap(),
        json!({ "event_types": [event_type] }),
    )
    .await;
}

/// Publishes `count` samples of `event_type` on each node, every node at once.
async fn publish_on_every_node(nodes: &[Node], event_type: &str, count: usize) {
    let mut publishing = tokio::task::JoinSet::new();
    for node in nodes {
        let api = Arc::clone(&node.api);
        let event_type = event_type.to_owned();
        publishing.spawn(async move {
            let sample = weft_tests::sample_event_json(&event_type);
            let events: Vec<Value> = (0..count)
                .map(|_| json!({ "type": event_type, "data": sample["data"] }))
                .collect();
            let (status, body) = api
                .post("/v1/events/batch", &json!({ "events": events }))
                .await;
            assert_eq!(status, 202, "{body}");
        });
    }
    while let Some(published) = publishing.join_next().await {
        published.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoints_rate_and_concurrency_limits_hold_for_the_whole_cluster() {
    const HANDLING: Duration = Duration::from_millis(300);
    let database = TestDatabase::create(Backend::Postgres).await;
    let workdir = tempfile::tempdir().unwrap();
    let nodes = start_nodes(&database, workdir.path(), NODES).await;
    let (paced, slow) = (Receiver::start().await, Receiver::start().await);
    slow.answer_all(Reply::status(200).after(HANDLING));
    let api = &nodes[0].api;
    // Five a second, in a burst of at most five; two at a time.
    let rate = json!({ "rate_limit": { "requests": 5, "per_seconds": 1 } });
    limited_endpoint(api, &paced.url, "stock.updated", rate).await;
    limited_endpoint(
        api,
        &slow.url,
        "payment.received",
        json!({ "max_concurrency": 2 }),
    )
    .await;

    // Each node captures its share and starts on it at once: limits held by
    // each node would let three bursts go.
    let started = Instant::now();
    tokio::join!(
        publish_on_every_node(&nodes, "stock.updated", 10),
        publish_on_every_node(&nodes, "payment.received", 6),
    );
    let (paced_total, slow_total) = (10 * NODES, 6 * NODES);
    let wait = Duration::from_secs(90);
    wait_until("the paced deliveries", wait, || {
        paced.count() >= paced_total
    })
    .await;
    wait_until("the slow deliveries", wait, || slow.count() >= slow_total).await;

    for (receiver, total) in [(&paced, paced_total), (&slow, slow_total)] {
        let received = receiver.received();
        let ids: BTreeSet<&str> = received
            .iter()
            .map(|r| r.header("webhook-id").unwrap())
            .collect();
        assert_eq!(
            (received.len(), ids.len()),
            (total, total),
            "each delivered once"
        );
    }
    let mut arrivals: Vec<Instant> = paced.received().iter().map(|r| r.at).collect();
    arrivals.sort();
    // A burst of 5, then one every 200 ms, for the three nodes together: 30
    // take at least 5 s (less the time the first took to arrive), and no
    // second holds more than 5 + 5 (and one for the time a request takes from
    // its admission to its arrival).
    let spread = arrivals[paced_total - 1] - arrivals[0];
    assert!(spread >= Duration::from_millis(4_800), "{spread:?}");
    let busiest = most_within(&arrivals, Duration::from_secs(1));
    assert!(busiest <= 11, "{busiest} requests within one second");
    assert_eq!(
        slow.most_in_flight(),
        2,
        "at most two at once, and two used"
    );
    // A delivery is recorded a moment after its request arrived.
    let total = (paced_total + slow_total) as u64;
    wait_until("the outcomes recorded", wait, || {
        nodes.iter().map(succeeded_on).sum::<u64>() >= total
    })
    .await;
    let delivered: Vec<u64> = nodes.iter().map(succeeded_on).collect();
    assert_eq!(delivered.iter().sum::<u64>(), total, "{delivered:?}");
    eprintln!(
        "{paced_total} paced deliveries over {spread:?}, at most {busiest} in a second; \
         {slow_total} slow ones, at most {} at once; by node: {delivered:?}; {:?} in all",
        slow.most_in_flight(),
        started.elapsed()
    );
    drop(nodes);
    database.drop().await;
}
