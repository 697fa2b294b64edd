//! Every expression a user writes runs under a budget. Random filters that
//! favour nested comprehensions, string growth and large literals each end
//! within what their cost bound promised, measured in time and in memory; and
//! a tenant whose filters are as costly as the budget allows does not delay
//! `/health` or another tenant's deliveries.

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRunner};
use serde_json::json;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use weft_engine::pipeline::{Filter, FilterError};
use weft_tests::receiver::Receiver;
use weft_tests::weft::{Backend, TestWeft};

/// The system allocator, counting what each thread holds, so that a test can
/// see the most an evaluation held at once.
struct Counting;

thread_local! {
    static HELD: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn count(change: isize) {
    let _ = HELD.try_with(|held| {
        let now = held.get() + change;
        held.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

// SAFETY: every call goes to `System` unchanged; the counting beside it
// touches only this thread's counters, which never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let pointer = unsafe { System.alloc(layout) };
        if !pointer.is_null() {
            count(layout.size() as isize);
        }
        pointer
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        unsafe { System.dealloc(pointer, layout) };
        count(-(layout.size() as isize));
    }

    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, size: usize) -> *mut u8 {
        let moved = unsafe { System.realloc(pointer, layout, size) };
        if !moved.is_null() {
            count(size as isize - layout.size() as isize);
        }
        moved
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

/// Runs `work` and returns what it returned, the most memory it held at
/// once beyond what the thread held before, and how long it took.
fn measured<T>(work: impl FnOnce() -> T) -> (T, u64, Duration) {
    let before = HELD.with(Cell::get);
    PEAK.with(|peak| peak.set(before));
    let started = Instant::now();
    let value = work();
    let elapsed = started.elapsed();
    let peak = PEAK.with(Cell::get);
    (value, (peak - before).max(0) as u64, elapsed)
}

/// Lists: ranges up to the largest `lists.range` makes, the event's items,
/// and lists built from other lists and strings.
fn list(string: BoxedStrategy<String>) -> BoxedStrategy<String> {
    let counts = prop_oneof![
        0u64..20,
        Just(1_000),
        Just(10_000),
        Just(100_000),
        Just(1_000_000)
    ];
    let leaf = prop_oneof![
        counts.prop_map(|n| format!("lists.range({n})")),
        Just("order.items".to_owned()),
        Just("order.items.map(i, i.sku)".to_owned()),
        Just("[1, 2, 3]".to_owned()),
    ];
    leaf.prop_recursive(3, 24, 3, move |inner| {
        prop_oneof![
            (inner.clone(), string.clone()).prop_map(|(l, s)| format!("{l}.map(x, {s})")),
            (inner.clone(), inner.clone()).prop_map(|(l, m)| format!("{l}.map(x, {m})")),
            (inner.clone(), inner.clone()).prop_map(|(l, m)| format!("({l} + {m})")),
            inner.clone().prop_map(|l| format!("{l}.filter(x, x != 0)")),
            inner.clone().prop_map(|l| format!("{l}.distinct()")),
            inner.clone().prop_map(|l| format!("{l}.sort()")),
            string.clone().prop_map(|s| format!("{s}.split('')")),
        ]
        .boxed()
    })
    .boxed()
}

/// Strings: large literals, the event's text, and strings grown by `+`,
/// `replace`, `join` and `format`.
fn string() -> BoxedStrategy<String> {
    let leaf = prop_oneof![
        (1usize..1_500).prop_map(|n| format!("'{}'", "a".repeat(n))),
        Just("'ab'".to_owned()),
        Just("order.id".to_owned()),
        Just("order.customer.name".to_owned()),
        Just("string(order.total)".to_owned()),
    ];
    leaf.prop_recursive(4, 32, 3, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} + {b})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a}.replace('a', {b})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a}.replace('', {b})")),
            inner.clone().prop_map(|a| format!("{a}.upperAscii()")),
            inner
                .clone()
                .prop_map(|a| format!("['%s%s%.100f', {a}].join({a})")),
            inner
                .clone()
                .prop_map(|a| format!("'%s%s'.format([{a}, {a}])")),
        ]
        .boxed()
    })
    .boxed()
}

/// Filters: comprehensions over those lists, nested, and tests on strings.
fn filter() -> impl Strategy<Value = String> {
    let strings = string();
    let lists = list(strings.clone());
    let leaf = prop_oneof![
        (strings.clone(), 0u64..100).prop_map(|(s, n)| format!("size({s}) > {n}")),
        (lists.clone(), 0u64..100).prop_map(|(l, n)| format!("size({l}) >= {n}")),
        (strings.clone(), strings.clone()).prop_map(|(a, b)| format!("{a}.contains({b})")),
        strings.clone().prop_map(|s| format!("{s}.matches('a+b*')")),
    ];
    leaf.prop_recursive(3, 16, 2, move |inner| {
        prop_oneof![
            (lists.clone(), inner.clone()).prop_map(|(l, b)| format!("{l}.all(x, {b})")),
            (lists.clone(), inner.clone()).prop_map(|(l, b)| format!("{l}.exists(y, {b})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} && {b})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} || !{b})")),
        ]
        .boxed()
    })
}

/// `expression`, cut for a message.
fn shortened(expression: &str) -> String {
    if expression.len() <= 400 {
        return expression.to_owned();
    }
    let cut = (0..=400)
        .rev()
        .find(|&at| expression.is_char_boundary(at))
        .unwrap_or(0);
    format!("{}… ({} bytes)", &expression[..cut], expression.len())
}

/// How long an evaluation bounded to `steps` may take here: a hundred times
/// what a step takes on a quiet machine, so that a busy one passes too, and
/// far less than an unbounded evaluation would take.
fn allowed_time(steps: u64) -> Duration {
    Duration::from_micros(steps.saturating_add(10_000).saturating_mul(20))
}

/// What an evaluation may hold beyond its bound: the event's values as CEL
/// values, and the interpreter's own bookkeeping.
const MEMORY_SLACK: u64 = 8 << 20;

#[test]
fn random_costly_filters_end_within_their_bounds() {
    let cases: u32 = std::env::var("WEFT_FUZZ_CASES")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(1u32)
        .max(1)
        * 400;
    let mut runner = TestRunner::new_with_rng(
        Config {
            cases,
            failure_persistence: None,
            ..Config::default()
        },
        proptest::test_runner::TestRng::deterministic_rng(
            proptest::test_runner::RngAlgorithm::ChaCha,
        ),
    );
    let event = weft_tests::captured_sample("sales_order.created");
    let strategy = filter();
    let mut outcomes: BTreeMap<&str, u32> = BTreeMap::new();
    let (mut slowest, mut largest) = ((Duration::ZERO, 0), (0, 0));
    let started = Instant::now();
    for _ in 0..cases {
        let expression = strategy.new_tree(&mut runner).unwrap().current();
        let filter = match Filter::compile(&expression) {
            Ok(filter) => filter,
            Err(FilterError::TooCostly { .. }) => {
                *outcomes.entry("refused when saved").or_default() += 1;
                continue;
            }
            Err(FilterError::TooLong { .. }) => {
                *outcomes.entry("too long").or_default() += 1;
                continue;
            }
            Err(other) => panic!("{}: {other}", shortened(&expression)),
        };
        let expression = shortened(&expression);
        let cost = match filter.cost_on(&event) {
            Ok(cost) => cost,
            Err(FilterError::OverBudget { .. }) => {
                *outcomes.entry("refused on the event").or_default() += 1;
                continue;
            }
            Err(other) => panic!("{expression}: {other}"),
        };
        let (verdict, held, took) = measured(|| filter.evaluate(&event));
        *outcomes
            .entry(match verdict {
                Ok(true) => "passed",
                Ok(false) => "filtered out",
                Err(FilterError::OverBudget { .. }) => panic!("{expression}: costed twice"),
                Err(_) => "failed",
            })
            .or_default() += 1;
        assert!(
            took <= allowed_time(cost.steps),
            "{expression}: took {took:?} for a bound of {} steps",
            cost.steps
        );
        assert!(
            held <= cost.bytes.saturating_mul(4).saturating_add(MEMORY_SLACK),
            "{expression}: held {held} bytes for a bound of {}",
            cost.bytes
        );
        if took > slowest.0 {
            slowest = (took, cost.steps);
        }
        if held > largest.0 {
            largest = (held, cost.bytes);
        }
    }
    eprintln!(
        "{cases} random filters in {:.1} s: {outcomes:?}; the slowest took {:?} (bound {} steps), \
         the largest held {} bytes (bound {})",
        started.elapsed().as_secs_f64(),
        slowest.0,
        slowest.1,
        largest.0,
        largest.1
    );
    for outcome in [
        "refused when saved",
        "refused on the event",
        "passed",
        "filtered out",
    ] {
        assert!(outcomes.contains_key(outcome), "no filter was {outcome}");
    }
}

/// The two expressions of the isolation report, and a filter that fits any
/// event but costs as much as the budget allows on large ones.
const RANGES: &str = "lists.range(10000).all(x, lists.range(10000).all(y, true))";
const GROWTH: &str = "'aaaaaaaaaa'.replace('a','aaaaaaaaaa').replace('a','aaaaaaaaaa')\
                      .replace('a','aaaaaaaaaa').replace('a','aaaaaaaaaa').replace('a','aaaaaaaaaa')\
                      .replace('a','aaaaaaaaaa').replace('a','aaaaaaaaaa').replace('a','aaaaaaaaaa') != ''";
const PAIRS: &str = "rows.all(x, rows.all(y, y >= 0))";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn costly_filters_do_not_delay_health_or_another_tenant() {
    let weft = TestWeft::start(Backend::Sqlite).await;
    let heavy = weft.api_as("heavy", "admin").await;
    let light = weft.api_as("light", "admin").await;
    let (heavy_receiver, light_receiver) = (Receiver::start().await, Receiver::start().await);
    let (heavy_endpoint, _) = heavy.endpoint(&heavy_receiver.url, 1).await;
    let (light_endpoint, _) = light.endpoint(&light_receiver.url, 1).await;

    // Refused when saved, naming the expression.
    for expression in [RANGES, GROWTH] {
        let (status, problem) = heavy
            .post(
                "/v1/subscriptions",
                &json!({ "name": "costly", "endpoint_id": heavy_endpoint, "event_types": ["*"], "filter": expression }),
            )
            .await;
        assert_eq!(status, 422, "{problem}");
        assert_eq!(problem["field"], "filter", "{problem}");
        let detail = problem["detail"].as_str().unwrap();
        assert!(
            detail.contains(&expression[..40]) && detail.contains("the budget is"),
            "{detail}"
        );
    }

    let (status, _) = heavy
        .post(
            "/v1/event-types",
            &json!({ "name": "report.exported", "description": "rows", "schema": { "type": "object" } }),
        )
        .await;
    assert_eq!(status, 201);
    heavy
        .subscription(
            &heavy_endpoint,
            json!({ "event_types": ["report.exported"], "filter": PAIRS }),
        )
        .await;
    light
        .subscription(
            &light_endpoint,
            json!({ "event_types": ["customer.created"] }),
        )
        .await;

    // Rows of 250 fit the budget (250 × 250 comparisons, some 630,000 steps
    // at most); rows of 3,000 would take millions and are refused unrun.
    let rows = |count: usize| json!({ "rows": (0..count).collect::<Vec<_>>() });
    let mut costly = Vec::new();
    for index in 0..24 {
        let size = if index % 3 == 0 { 3_000 } else { 250 };
        let (status, body) = heavy
            .post(
                "/v1/events",
                &json!({ "type": "report.exported", "data": rows(size) }),
            )
            .await;
        assert_eq!(status, 202, "{body}");
        costly.push((body["id"].as_str().unwrap().to_owned(), size));
    }

    // Meanwhile: /health, and the light tenant's events, each timed.
    let mut health = Vec::new();
    let mut published = BTreeMap::new();
    for sequence in 0..30u64 {
        let started = Instant::now();
        assert_eq!(weft.get("/health").await.0, 200);
        health.push(started.elapsed());
        let at = Instant::now();
        light
            .publish_sample("customer.created", |event| {
                event["data"]["customer"]["sequence"] = json!(sequence);
            })
            .await;
        published.insert(sequence, at);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let arrived = light_receiver.wait_for(30, Duration::from_secs(30)).await;
    let mut delays: Vec<Duration> = arrived
        .iter()
        .map(|request| {
            let sequence = request.json()["customer"]["sequence"].as_u64().unwrap();
            request.at - published[&sequence]
        })
        .collect();
    delays.sort();
    health.sort();
    let p90 = |sorted: &[Duration]| sorted[sorted.len() * 9 / 10];
    eprintln!(
        "beside costly filters: /health p90 {:?} max {:?}; another tenant's deliveries p90 {:?} max {:?}",
        p90(&health),
        health.last().unwrap(),
        p90(&delays),
        delays.last().unwrap()
    );
    assert!(p90(&health) < Duration::from_millis(250), "{health:?}");
    assert!(p90(&delays) <= Duration::from_secs(1), "{delays:?}");

    // The costly tenant's evaluations ran or were refused, each recorded.
    for (event, size) in costly {
        let deliveries = heavy
            .wait_for_deliveries(&event, Duration::from_secs(60), |d| {
                d.len() == 1 && d[0]["status"] != "pending"
            })
            .await;
        let delivery = &deliveries[0];
        if size > 250 {
            assert_eq!(delivery["status"], "dropped", "{delivery}");
            let reason = delivery["last_error"].as_str().unwrap();
            assert!(reason.contains("was not run on event"), "{reason}");
            assert!(reason.contains("steps (the budget is 1000000)"), "{reason}");
        } else {
            assert_eq!(delivery["status"], "succeeded", "{delivery}");
        }
    }
    assert_eq!(heavy_receiver.count(), 16);
    weft.stop().await;
}
