//! A bounded fuzz session over everything users type: CEL filters, Jinja
//! templates, webhooks files (YAML) and published events (JSON over HTTP).
//! Inputs are random text, soups of the language's own tokens, and mutations
//! of valid documents; every one must come back as a value or a clear error,
//! never a panic, a hang or a 5xx. Each target prints what its session
//! covered; `WEFT_FUZZ_CASES` scales the number of inputs (default 1).

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Instant;
use weft_engine::config::WebhooksFile;
use weft_engine::pipeline::{Filter, PayloadTemplate, TextTemplate};

/// The sample `sales_order.created` as the pipeline sees it.
fn sample_event() -> weft_engine::model::Event {
    weft_tests::captured_sample("sales_order.created")
}

/// Inputs per target at scale 1.
const CEL_CASES: u32 = 10_000;
const JINJA_CASES: u32 = 20_000;
const YAML_CASES: u32 = 20_000;
const INGEST_CASES: u32 = 2_000;

fn cases(base: u32) -> u32 {
    let scale: u32 = std::env::var("WEFT_FUZZ_CASES")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(1);
    base * scale.max(1)
}

/// A runner with a fixed seed per target, so a failure reproduces.
fn runner(cases: u32) -> TestRunner {
    TestRunner::new_with_rng(
        Config {
            cases,
            failure_persistence: None,
            ..Config::default()
        },
        proptest::test_runner::TestRng::deterministic_rng(
            proptest::test_runner::RngAlgorithm::ChaCha,
        ),
    )
}

/// Strings made of `tokens`, up to `max` of them: closer to real input than
/// random text, so parsers get past their first character.
fn soup(tokens: &'static [&'static str], max: usize) -> impl Strategy<Value = String> {
    proptest::collection::vec(proptest::sample::select(tokens), 0..max)
        .prop_map(|parts| parts.concat())
}

/// What a fuzz session saw: how many inputs ended in each outcome.
#[derive(Default)]
struct Tally(BTreeMap<&'static str, u32>);

impl Tally {
    fn count(&mut self, outcome: &'static str) {
        *self.0.entry(outcome).or_default() += 1;
    }

    /// Prints the session's coverage and checks that the inputs reached
    /// every outcome in `expected` (a generator that only ever produces
    /// syntax errors tests nothing past the parser).
    fn report(&self, target: &str, started: Instant, expected: &[&str]) {
        let total: u32 = self.0.values().sum();
        eprintln!(
            "fuzz {target}: {total} inputs in {:.1} s: {:?}",
            started.elapsed().as_secs_f64(),
            self.0
        );
        for outcome in expected {
            assert!(
                self.0.contains_key(outcome),
                "{target}: no input reached {outcome:?}"
            );
        }
    }
}

const CEL_TOKENS: &[&str] = &[
    "order",
    ".",
    "total",
    "status",
    "items",
    "customer",
    "data",
    "event",
    "type",
    " > ",
    " < ",
    " == ",
    " != ",
    " && ",
    " || ",
    "!",
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    "\"draft\"",
    "'x'",
    "100",
    "0",
    "-1",
    "1.5",
    "1e308",
    "true",
    "null",
    " in ",
    " + ",
    " - ",
    " * ",
    " / ",
    " % ",
    " ? ",
    " : ",
    ",",
    "size(",
    "has(",
    "matches(",
    "int(",
    "string(",
    ".all(x, ",
    ".exists(x, ",
    "x",
    ".map(x, ",
    "timestamp(",
    "duration(",
    "\\",
    "\"",
    " ",
];

#[test]
fn cel_filters_compile_or_explain_and_never_panic() {
    let event = sample_event();
    let tally = std::cell::RefCell::new(Tally::default());
    let started = Instant::now();
    let inputs = prop_oneof![
        3 => soup(CEL_TOKENS, 24),
        1 => any::<String>(),
        1 => (1usize..3_000).prop_map(|depth| format!("{}order.total{}", "(".repeat(depth), ")".repeat(depth))),
        1 => (1usize..3_000).prop_map(|depth| format!("{}true", "!".repeat(depth))),
    ];
    runner(cases(CEL_CASES))
        .run(&inputs, |expression| {
            match Filter::compile(&expression) {
                Err(error) => {
                    prop_assert!(!error.to_string().is_empty());
                    tally.borrow_mut().count("refused");
                }
                Ok(filter) => match filter.evaluate(&event) {
                    Ok(_) => tally.borrow_mut().count("evaluated"),
                    Err(error) => {
                        prop_assert!(!error.to_string().is_empty());
                        tally.borrow_mut().count("evaluation error");
                    }
                },
            }
            Ok(())
        })
        .unwrap();
    tally.borrow().report(
        "CEL",
        started,
        &["refused", "evaluated", "evaluation error"],
    );
}

const JINJA_TOKENS: &[&str] = &[
    "{{ ",
    " }}",
    "{% ",
    " %}",
    "{# ",
    " #}",
    "order.total",
    "order.items",
    "customer.name",
    "event.id",
    "data",
    "x",
    "loop.index",
    " | ",
    "upper",
    "join(', ')",
    "length",
    "tojson",
    "default('n/a')",
    "round(2)",
    "for x in ",
    "range(100000)",
    "order.items",
    "endfor",
    "if ",
    "else",
    "endif",
    "set y = ",
    "macro m()",
    "endmacro",
    "m()",
    "include 'x'",
    "raw",
    "endraw",
    " ~ ",
    " + ",
    " * ",
    "(",
    ")",
    "[",
    "]",
    "'",
    "\"",
    "1",
    "0",
    " ",
    "text ",
];

#[test]
fn jinja_templates_render_or_explain_and_never_panic() {
    let event = sample_event();
    let tally = std::cell::RefCell::new(Tally::default());
    let started = Instant::now();
    let sources = prop_oneof![
        3 => soup(JINJA_TOKENS, 24),
        1 => any::<String>(),
        1 => (1usize..2_000).prop_map(|depth| format!("{{{{ {}1{} }}}}", "(".repeat(depth), ")".repeat(depth))),
    ];
    runner(cases(JINJA_CASES))
        .run(&sources, |source| {
            match TextTemplate::compile(&source) {
                Err(error) => {
                    prop_assert!(!error.to_string().is_empty());
                    tally.borrow_mut().count("refused");
                }
                Ok(template) => match template.render(&event) {
                    Ok(_) => tally.borrow_mut().count("rendered"),
                    Err(error) => {
                        prop_assert!(!error.to_string().is_empty());
                        tally.borrow_mut().count("render error");
                    }
                },
            }
            // The same source as a payload template's field.
            if let Ok(template) = PayloadTemplate::compile(&json!({ "field": source })) {
                let _ = template.render(&event);
            }
            Ok(())
        })
        .unwrap();
    tally
        .borrow()
        .report("Jinja", started, &["refused", "rendered", "render error"]);
}

/// Edits that break YAML in the ways people (and tools) do.
#[derive(Debug, Clone)]
enum Edit {
    Delete { at: usize, length: usize },
    Insert { at: usize, text: &'static str },
    DuplicateLine { line: usize },
}

const YAML_INSERTS: &[&str] = &[
    ":",
    "- ",
    "  ",
    "\n",
    "\t",
    "${",
    "}",
    "[",
    "]",
    "{",
    "&a ",
    "*a",
    "!!binary ",
    "~",
    "'",
    "\"",
    "#",
    "? ",
    "|\n",
    ">\n",
    "null",
    "0x",
    "1e9",
    "webhooks:",
    "event_triggers: []",
    "${UNSET}",
    "$$",
    "<<: *a\n",
    "---\n",
    "...\n",
];

fn apply(text: &str, edits: &[Edit]) -> String {
    let mut text = text.to_owned();
    for edit in edits {
        let boundary = |at: usize, text: &str| {
            let mut at = at % (text.len() + 1);
            while !text.is_char_boundary(at) {
                at -= 1;
            }
            at
        };
        match edit {
            Edit::Delete { at, length } => {
                let start = boundary(*at, &text);
                let end = boundary(start + length, &text).max(start);
                text.replace_range(start..end, "");
            }
            Edit::Insert { at, text: inserted } => {
                let at = boundary(*at, &text);
                text.insert_str(at, inserted);
            }
            Edit::DuplicateLine { line } => {
                let lines: Vec<&str> = text.lines().collect();
                if !lines.is_empty() {
                    let line = lines[line % lines.len()].to_owned();
                    text.push('\n');
                    text.push_str(&line);
                }
            }
        }
    }
    text
}

fn edits() -> impl Strategy<Value = Vec<Edit>> {
    let edit = prop_oneof![
        (any::<usize>(), 1usize..40).prop_map(|(at, length)| Edit::Delete { at, length }),
        (any::<usize>(), proptest::sample::select(YAML_INSERTS))
            .prop_map(|(at, text)| Edit::Insert { at, text }),
        any::<usize>().prop_map(|line| Edit::DuplicateLine { line }),
    ];
    proptest::collection::vec(edit, 0..6)
}

#[test]
fn webhooks_files_parse_or_say_where_and_never_panic() {
    let example =
        std::fs::read_to_string(weft_tests::repo_root().join("examples/subscriptions.yaml"))
            .unwrap();
    let tally = std::cell::RefCell::new(Tally::default());
    let started = Instant::now();
    let texts = prop_oneof![
        4 => edits().prop_map(move |edits| apply(&example, &edits)),
        1 => any::<String>(),
        1 => soup(YAML_INSERTS, 30),
    ];
    let env = |name: &str| (name != "UNSET").then(|| format!("value-of-{name}"));
    runner(cases(YAML_CASES))
        .run(&texts, |text| {
            match WebhooksFile::parse(&text, env) {
                Ok(file) => {
                    for webhook in &file.webhooks {
                        let _ = webhook.endpoint_body();
                        let _ = webhook.subscription_body("ep_x");
                    }
                    tally.borrow_mut().count("parsed");
                }
                Err(error) => {
                    prop_assert!(!error.to_string().is_empty());
                    tally.borrow_mut().count("refused");
                }
            }
            Ok(())
        })
        .unwrap();
    tally
        .borrow()
        .report("YAML", started, &["parsed", "refused"]);
}

#[test]
fn a_yaml_alias_bomb_is_refused_quickly() {
    let mut text = String::from(
        "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    for level in 1..12 {
        let previous = level - 1;
        let aliases = vec![format!("*a{previous}"); 9].join(",");
        text.push_str(&format!("a{level}: &a{level} [{aliases}]\n"));
    }
    let text = text.replacen("&a [", "&a0 [", 1);
    let started = Instant::now();
    let outcome = WebhooksFile::parse(&text, |_| None);
    assert!(outcome.is_err());
    assert!(started.elapsed().as_secs() < 5, "{:?}", started.elapsed());
}

/// Any JSON value, up to a few levels deep.
fn json_values() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        ".{0,20}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            proptest::collection::btree_map("[a-z_]{1,8}", inner, 0..8)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

/// A published body: a sample event with random data, random keys, or bytes
/// flipped in a valid body.
fn ingest_bodies() -> impl Strategy<Value = Vec<u8>> {
    let valid = serde_json::to_vec(&json!({
        "type": "sales_order.created",
        "data": weft_tests::sample_event_json("sales_order.created")["data"],
    }))
    .unwrap();
    let mutated = valid.clone();
    prop_oneof![
        json_values().prop_map(|data| serde_json::to_vec(
            &json!({ "type": "sales_order.created", "data": data })
        )
        .unwrap()),
        json_values().prop_map(|document| serde_json::to_vec(&document).unwrap()),
        proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8).prop_map(move |flips| {
            let mut body = mutated.clone();
            for (at, byte) in flips {
                let at = at % body.len();
                body[at] = byte;
            }
            body
        }),
        Just(valid),
    ]
}

#[test]
fn published_events_are_accepted_or_refused_with_a_problem_never_a_5xx() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let weft = runtime.block_on(weft_tests::weft::TestWeft::start_without_workers(
        weft_tests::weft::Backend::Sqlite,
    ));
    let tally = std::cell::RefCell::new(Tally::default());
    let started = Instant::now();
    runner(cases(INGEST_CASES))
        .run(&ingest_bodies(), |body| {
            let (status, answer) = runtime.block_on(weft.call_raw("POST", "/v1/events", body, &[]));
            prop_assert!(status < 500, "{status}: {answer}");
            if status == 202 {
                prop_assert!(answer["id"].is_string(), "{answer}");
                tally.borrow_mut().count("accepted");
            } else {
                prop_assert!(
                    answer["type"].is_string() && answer["detail"].is_string(),
                    "{status} without a problem document: {answer}"
                );
                tally.borrow_mut().count(match status {
                    400 => "400",
                    422 => "422",
                    _ => "other 4xx",
                });
            }
            Ok(())
        })
        .unwrap();
    tally
        .borrow()
        .report("ingest", started, &["accepted", "400", "422"]);
    runtime.block_on(weft.stop());
}
