//! A plugin that loops, hogs memory, panics or returns garbage fails its own
//! invocation within its limit; the next invocation of a healthy plugin succeeds.

use serde_json::json;
use std::time::Duration;
use weft_engine::runtime::{Disposition, InvokeError, Limits, Output};
use weft_tests::{attach, attach_with_limits, sample_event};

fn misbehave(mode: &str, limits: Limits) -> weft_engine::runtime::Invocation {
    attach_with_limits("misbehave", json!({ "mode": mode }), limits)
        .invoke(&sample_event("sales_order.created"))
}

/// After every failure the same component, healthy, still works.
fn assert_healthy_call_succeeds() {
    let event = sample_event("sales_order.created");
    let invocation = attach("misbehave", json!({ "mode": "ok" })).invoke(&event);
    let Ok(Output::Requests(requests)) = invocation.outcome else {
        panic!("healthy call failed: {:?}", invocation.outcome)
    };
    assert_eq!(requests[0].body, event.data);
}

#[test]
fn an_endless_loop_is_stopped_at_the_deadline() {
    let deadline = Duration::from_millis(50);
    let invocation = misbehave(
        "loop",
        Limits {
            deadline,
            ..Limits::default()
        },
    );
    assert_eq!(
        invocation.outcome,
        Err(InvokeError::DeadlineExceeded(deadline))
    );
    assert!(
        invocation.elapsed >= deadline,
        "stopped early: {:?}",
        invocation.elapsed
    );
    assert!(
        invocation.elapsed < deadline * 4,
        "stopped late: {:?}",
        invocation.elapsed
    );
    assert_healthy_call_succeeds();
}

#[test]
fn unbounded_allocation_hits_the_memory_cap() {
    let limits = Limits {
        memory_bytes: 16 << 20,
        ..Limits::default()
    };
    let invocation = misbehave("hog", limits);
    match invocation.outcome {
        Err(InvokeError::MemoryLimitExceeded { limit, requested }) => {
            assert_eq!(limit, 16 << 20);
            assert!(requested > limit);
        }
        other => panic!("expected the memory limit, got {other:?}"),
    }
    assert_healthy_call_succeeds();
}

#[test]
fn a_panic_is_a_trap_that_quotes_the_panic_message() {
    let invocation = misbehave("panic", Limits::default());
    let Err(InvokeError::Trap(message)) = &invocation.outcome else {
        panic!("expected a trap, got {:?}", invocation.outcome)
    };
    assert!(
        message.contains("the order total was negative"),
        "{message}"
    );
    assert!(
        invocation.stderr.contains("panicked"),
        "{}",
        invocation.stderr
    );
    assert_healthy_call_succeeds();
}

#[test]
fn a_body_declared_json_that_is_not_is_malformed_output() {
    let invocation = misbehave("bad-json", Limits::default());
    let Err(error @ InvokeError::MalformedOutput { index: 0, reason }) = &invocation.outcome else {
        panic!("expected malformed output, got {:?}", invocation.outcome)
    };
    assert!(reason.contains("declared as JSON but is not"), "{reason}");
    assert_eq!(error.disposition(), Disposition::DeadLetter);
    assert_healthy_call_succeeds();
}

#[test]
fn oversized_output_is_refused() {
    let invocation = misbehave("flood", Limits::default());
    assert_eq!(
        invocation.outcome,
        Err(InvokeError::OutputTooLarge {
            size: 12 << 20,
            limit: 10 << 20
        })
    );
    assert_healthy_call_succeeds();
}

#[test]
fn a_plugin_reaches_no_file_no_environment_and_no_network() {
    let invocation = misbehave("escape", Limits::default());
    let Ok(Output::Requests(requests)) = &invocation.outcome else {
        panic!("{:?}", invocation.outcome);
    };
    let report: serde_json::Value = serde_json::from_slice(&requests[0].body).unwrap();
    for attempt in [
        "read_dir_root",
        "read_file",
        "read_dir_cwd",
        "tcp_connect",
        "dns_lookup",
    ] {
        let outcome = report[attempt].as_str().unwrap();
        assert!(outcome.starts_with("denied: "), "{attempt}: {report}");
    }
    assert_eq!(report["environment"], 0, "{report}");
    assert_eq!(report["arguments"], 0, "{report}");
    assert_healthy_call_succeeds();
}

#[test]
fn logs_and_stdout_are_bounded() {
    let invocation = misbehave("chatty", Limits::default());
    assert_eq!(invocation.outcome, Ok(Output::Requests(vec![])));
    assert_eq!(invocation.logs.len(), 64);
    assert_eq!(invocation.logs[0].message, "line 0");
    assert_eq!(invocation.dropped_logs, 1000 - 64);
    assert!(
        invocation.stdout.starts_with("stdout line 0 "),
        "{}",
        &invocation.stdout[..40]
    );
    assert!(invocation.stdout.ends_with("more bytes not kept)"));
    assert!(invocation.stdout.len() < 17 << 10);
}

#[test]
fn plugin_errors_keep_their_variant_and_decide_the_disposition() {
    let cases = [
        (
            "invalid-event",
            InvokeError::InvalidEvent("order.total is missing".into()),
            Disposition::DeadLetter,
        ),
        (
            "transient",
            InvokeError::Transient("the rate card service is down".into()),
            Disposition::Retry,
        ),
    ];
    for (mode, expected, disposition) in cases {
        let outcome = misbehave(mode, Limits::default()).outcome;
        assert_eq!(outcome, Err(expected.clone()), "{mode}");
        assert_eq!(expected.disposition(), disposition);
    }
    let bad_config = attach("misbehave", json!({ "mode": "no-such-mode" }))
        .invoke(&sample_event("stock.updated"));
    let Err(InvokeError::InvalidConfig(message)) = bad_config.outcome else {
        panic!("expected invalid config, got {:?}", bad_config.outcome)
    };
    assert!(message.contains("no-such-mode"), "{message}");
}

/// 18 threads call at once, more than the pool has places for (two per core
/// plus eight): each waits for a place instead of failing to instantiate.
#[test]
fn failures_on_many_threads_leave_every_healthy_call_working() {
    let modes = ["loop", "hog", "panic", "bad-json", "flood", "ok"];
    let limits = Limits {
        deadline: Duration::from_millis(30),
        memory_bytes: 16 << 20,
        ..Limits::default()
    };
    std::thread::scope(|scope| {
        for round in 0..3 {
            for mode in modes {
                // 18 threads share the cores with loops that run to their
                // deadline: a healthy call gets a deadline it cannot miss by
                // waiting for a core, so only the failures' limits are tested.
                let limits = if mode == "ok" {
                    Limits {
                        deadline: Duration::from_secs(5),
                        ..limits
                    }
                } else {
                    limits
                };
                scope.spawn(move || {
                    let outcome = misbehave(mode, limits).outcome;
                    assert_eq!(
                        outcome.is_ok(),
                        mode == "ok",
                        "round {round}, {mode}: {outcome:?}"
                    );
                });
            }
        }
    });
    assert_healthy_call_succeeds();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_pool_queues_callers_instead_of_failing() {
    use weft_engine::runtime::{PluginRuntime, RuntimeConfig};
    let runtime = std::sync::Arc::new(
        PluginRuntime::new(RuntimeConfig {
            max_concurrent_invocations: 2,
            ..RuntimeConfig::default()
        })
        .unwrap(),
    );
    let slow = runtime
        .load(&weft_tests::guest_bytes("misbehave"))
        .unwrap()
        .attach(
            &json!({ "mode": "loop" }),
            Limits {
                deadline: Duration::from_millis(40),
                ..Limits::default()
            },
        )
        .unwrap();
    let started = std::time::Instant::now();
    let calls: Vec<_> = (0..6)
        .map(|_| {
            let (runtime, slow) = (runtime.clone(), slow.clone());
            tokio::spawn(async move { runtime.invoke(&slow, sample_event("stock.updated")).await })
        })
        .collect();
    for call in calls {
        let invocation = call.await.unwrap();
        assert!(matches!(
            invocation.outcome,
            Err(InvokeError::DeadlineExceeded(_))
        ));
    }
    // Six 40 ms calls through two permits take at least three rounds.
    assert!(
        started.elapsed() >= Duration::from_millis(120),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(runtime.available_permits(), 2);
}
