//! A subscription's chain, run on one event: CEL filter → filter plugins →
//! payload template → transform plugins → integration template → the requests
//! to deliver. Built once per subscription version and reused.

use super::filter::Filter;
use super::off_the_runtime;
use super::template::{PayloadTemplate, TextTemplate};
use crate::model::{Event, Subscription};
use crate::runtime::{
    self, AttachedPlugin, Disposition, InvokeError, Output, PluginRuntime, World,
};
use crate::store::Store;
use serde_json::{Value, json};
use std::sync::Arc;

/// Why a subscription's chain cannot be built: a 422 at the API, naming the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainBuildError {
    pub field: String,
    pub code: &'static str,
    pub message: String,
}

/// What running the chain on an event decided.
#[derive(Debug)]
pub enum ChainOutcome {
    /// Send these requests.
    Deliver(Vec<runtime::Request>),
    /// The event does not go to this subscription's endpoint, and why.
    Dropped(String),
    /// A step failed; the disposition says whether retrying can help.
    Failed {
        disposition: Disposition,
        reason: String,
    },
}

/// Each step's output, for `POST /v1/subscriptions/{id}/preview`.
#[derive(Debug, Default)]
pub struct PreviewReport {
    pub steps: Vec<Value>,
    pub outcome: Value,
}

pub struct SubscriptionChain {
    filter: Option<(String, Arc<Filter>)>,
    template: Option<Arc<PayloadTemplate>>,
    plugins: Vec<(String, AttachedPlugin)>,
}

impl SubscriptionChain {
    /// Compiles the filter, template and ordering key and attaches each plugin
    /// (loading it and validating its config against the schema it declares).
    pub async fn build(
        subscription: &Subscription,
        store: &Store,
        runtime: &Arc<PluginRuntime>,
    ) -> Result<Self, ChainBuildError> {
        let fail = |field: String, code: &'static str, message: String| ChainBuildError {
            field,
            code,
            message,
        };
        let filter = match &subscription.filter {
            Some(expression) => Some((
                expression.clone(),
                Filter::compile(expression)
                    .map(Arc::new)
                    .map_err(|e| fail("filter".into(), "invalid_filter", e.to_string()))?,
            )),
            None => None,
        };
        let template = match &subscription.template {
            Some(spec) => Some(
                PayloadTemplate::compile(spec)
                    .map(Arc::new)
                    .map_err(|e| fail("template".into(), "invalid_template", e.to_string()))?,
            ),
            None => None,
        };
        if let Some(key) = &subscription.ordering_key {
            TextTemplate::compile(key)
                .map_err(|e| fail("ordering_key".into(), "invalid_template", e.to_string()))?;
        }
        let mut plugins = Vec::with_capacity(subscription.plugins.len());
        let mut last_world = World::Filter;
        for (index, reference) in subscription.plugins.iter().enumerate() {
            let field = format!("plugins[{index}]");
            let stored = store
                .get_plugin(&subscription.tenant, &reference.plugin, &reference.version)
                .await
                .map_err(|e| fail(field.clone(), "store", e.to_string()))?
                .ok_or_else(|| {
                    fail(
                        format!("{field}.plugin"),
                        "unknown_plugin",
                        format!(
                            "no plugin {} version {} (see GET /v1/plugins)",
                            reference.plugin, reference.version
                        ),
                    )
                })?;
            let loader = Arc::clone(runtime);
            let plugin = tokio::task::spawn_blocking(move || loader.load(&stored.bytes))
                .await
                .map_err(|e| fail(field.clone(), "internal", e.to_string()))?
                .map_err(|e| fail(format!("{field}.plugin"), "invalid_plugin", e.to_string()))?;
            check_order(last_world, plugin.world())
                .map_err(|message| fail(field.clone(), "invalid_chain", message))?;
            last_world = plugin.world();
            let limits = runtime
                .default_limits()
                .overridden(&reference.limits)
                .map_err(|e| {
                    fail(
                        format!("{field}.limits.{}", e.field),
                        "invalid_field",
                        e.reason,
                    )
                })?;
            let attached = plugin.attach(&reference.config, limits).map_err(|e| {
                fail(
                    format!("{field}.config"),
                    "invalid_plugin_config",
                    e.to_string(),
                )
            })?;
            plugins.push((
                format!("{}@{}", reference.plugin, reference.version),
                attached,
            ));
        }
        Ok(Self {
            filter,
            template,
            plugins,
        })
    }

    /// Runs the chain on `event`.
    pub async fn run(&self, runtime: &PluginRuntime, event: &Event) -> ChainOutcome {
        self.execute(runtime, event, None).await
    }

    /// Runs the chain on `event`, recording each step's output.
    pub async fn preview(&self, runtime: &PluginRuntime, event: &Event) -> PreviewReport {
        let mut steps = Vec::new();
        let outcome = self.execute(runtime, event, Some(&mut steps)).await;
        let outcome = match outcome {
            ChainOutcome::Deliver(requests) => {
                json!({ "deliver": requests.iter().map(request_json).collect::<Vec<_>>() })
            }
            ChainOutcome::Dropped(reason) => json!({ "dropped": reason }),
            ChainOutcome::Failed {
                disposition,
                reason,
            } => json!({ "failed": reason, "disposition": format!("{disposition:?}") }),
        };
        PreviewReport { steps, outcome }
    }

    async fn execute(
        &self,
        runtime: &PluginRuntime,
        event: &Event,
        steps: Option<&mut Vec<Value>>,
    ) -> ChainOutcome {
        // Step reports are built only for a preview: delivery does not pay for them.
        let mut steps = StepLog(steps);
        let mut record = |step: &dyn Fn() -> Value| steps.record(step);
        if let Some((expression, filter)) = &self.filter {
            match filter.evaluate_async(event).await {
                Ok(true) => record(
                    &|| json!({ "step": "filter", "expression": expression, "result": true }),
                ),
                Ok(false) => {
                    record(
                        &|| json!({ "step": "filter", "expression": expression, "result": false }),
                    );
                    return ChainOutcome::Dropped(format!("filter `{expression}` is false"));
                }
                Err(error) => {
                    record(
                        &|| json!({ "step": "filter", "expression": expression, "error": error.to_string() }),
                    );
                    return ChainOutcome::Dropped(format!(
                        "filter `{expression}` could not be evaluated: {error}"
                    ));
                }
            }
        }
        let (filters, producers): (Vec<_>, Vec<_>) = self
            .plugins
            .iter()
            .partition(|(_, p)| p.plugin().world() == World::Filter);
        let data = if filters.is_empty() {
            Vec::new()
        } else {
            event.payload.json().as_bytes().to_vec()
        };
        for (label, plugin) in filters {
            let invocation = runtime
                .invoke(plugin, plugin_event(event, data.clone()))
                .await;
            match invocation.outcome {
                Ok(Output::Filter(keep)) => {
                    record(
                        &|| json!({ "step": "plugin", "plugin": label, "keep": keep, "ms": invocation.elapsed.as_secs_f64() * 1e3 }),
                    );
                    if !keep {
                        return ChainOutcome::Dropped(format!(
                            "plugin {label} filtered the event out"
                        ));
                    }
                }
                Ok(Output::Requests(_)) => unreachable!("filter plugins return verdicts"),
                Err(error) => return failed(&mut record, label, &error),
            }
        }
        let body = match &self.template {
            Some(template) => match render_off_the_runtime(template, event).await {
                Ok(rendered) => {
                    record(&|| json!({ "step": "template", "output": rendered }));
                    serde_json::to_vec(&rendered).unwrap_or_default()
                }
                Err(error) => {
                    record(&|| json!({ "step": "template", "error": error.to_string() }));
                    return ChainOutcome::Failed {
                        disposition: Disposition::DeadLetter,
                        reason: format!("template: {error}"),
                    };
                }
            },
            None => event.payload.json().as_bytes().to_vec(),
        };
        let mut requests = vec![runtime::Request {
            method: None,
            url: None,
            headers: vec![("content-type".into(), "application/json".into())],
            body,
        }];
        for (label, plugin) in producers {
            let mut produced = Vec::new();
            for input in requests {
                let invocation = runtime
                    .invoke(plugin, plugin_event(event, input.body))
                    .await;
                match invocation.outcome {
                    Ok(Output::Requests(output)) => {
                        record(&|| {
                            json!({
                                "step": "plugin", "plugin": label, "ms": invocation.elapsed.as_secs_f64() * 1e3,
                                "requests": output.iter().map(request_json).collect::<Vec<_>>()
                            })
                        });
                        produced.extend(output);
                    }
                    Ok(Output::Filter(_)) => unreachable!("transforms return requests"),
                    Err(error) => return failed(&mut record, label, &error),
                }
            }
            if produced.is_empty() {
                return ChainOutcome::Dropped(format!("plugin {label} returned no request"));
            }
            requests = produced;
        }
        ChainOutcome::Deliver(requests)
    }
}

/// Renders `template` for `event` on the expression pool: a template may take
/// milliseconds of its fuel, which the async threads must not spend.
async fn render_off_the_runtime(
    template: &Arc<PayloadTemplate>,
    event: &Event,
) -> Result<Value, crate::pipeline::TemplateError> {
    let (template, event) = (Arc::clone(template), event.clone());
    off_the_runtime(move || template.render(&event)).await
}

/// Where a preview collects its step reports; a delivery has none.
struct StepLog<'a>(Option<&'a mut Vec<Value>>);

impl StepLog<'_> {
    fn record(&mut self, step: &dyn Fn() -> Value) {
        if let Some(steps) = self.0.as_deref_mut() {
            steps.push(step());
        }
    }
}

fn failed(
    record: &mut impl FnMut(&dyn Fn() -> Value),
    label: &str,
    error: &InvokeError,
) -> ChainOutcome {
    record(&|| json!({ "step": "plugin", "plugin": label, "error": error.to_string() }));
    ChainOutcome::Failed {
        disposition: error.disposition(),
        reason: format!("plugin {label} {error}"),
    }
}

/// Filters come first, an integration template (if any) last.
fn check_order(previous: World, next: World) -> Result<(), String> {
    match (previous, next) {
        (World::Integration, _) => {
            Err("an integration template must be the last plugin of the chain".into())
        }
        (World::Transformer, World::Filter) => Err("filter plugins go before transforms".into()),
        _ => Ok(()),
    }
}

/// The event as a plugin sees it, with `data` as the payload at this step.
fn plugin_event(event: &Event, data: Vec<u8>) -> runtime::Event {
    runtime::Event {
        id: event.id.to_string(),
        event_type: event.event_type.clone(),
        tenant: event.tenant.to_string(),
        occurred_at: u64::try_from(event.occurred_at).unwrap_or_default(),
        content_type: "application/json".into(),
        data,
        metadata: event
            .metadata
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    }
}

fn request_json(request: &runtime::Request) -> Value {
    json!({
        "method": request.method,
        "url": request.url,
        "headers": request.headers,
        "body": serde_json::from_slice::<Value>(&request.body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&request.body).into_owned())),
    })
}
