//! `attributes` processor: insert / update / upsert / delete / hash attributes of spans, log
//! records and metric data points, optionally only for (`include`) or except for (`exclude`)
//! some services.

mod config;

use std::sync::Arc;

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use sha2::{Digest, Sha256};

pub use config::{Action, ActionKind, AttributesConfig, MatchProperties};

use crate::pipeline::signal::{Signal, service_name};
use crate::pipeline::{ConsumeError, Consumer};

pub struct AttributesProcessor<T> {
    cfg: AttributesConfig,
    next: Arc<dyn Consumer<T>>,
}

impl<T: Signal> AttributesProcessor<T> {
    pub fn new(cfg: AttributesConfig, next: Arc<dyn Consumer<T>>) -> Self {
        Self { cfg, next }
    }

    fn selected(&self, item: &T) -> bool {
        let svc = service_name(item.resource()).unwrap_or("");
        let matches = |m: &MatchProperties| m.services.iter().any(|s| s == svc);
        if let Some(inc) = &self.cfg.include
            && !matches(inc)
        {
            return false;
        }
        if let Some(exc) = &self.cfg.exclude
            && matches(exc)
        {
            return false;
        }
        true
    }
}

fn literal(v: &serde_json::Value) -> AnyValue {
    let value = match v {
        serde_json::Value::Bool(b) => any_value::Value::BoolValue(*b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => any_value::Value::IntValue(i),
            None => any_value::Value::DoubleValue(n.as_f64().unwrap_or_default()),
        },
        serde_json::Value::String(s) => any_value::Value::StringValue(s.clone()),
        other => any_value::Value::StringValue(other.to_string()),
    };
    AnyValue { value: Some(value) }
}

fn hash_value(v: &Option<AnyValue>) -> AnyValue {
    let bytes: Vec<u8> = match v.as_ref().and_then(|a| a.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.as_bytes().to_vec(),
        Some(any_value::Value::IntValue(i)) => i.to_be_bytes().to_vec(),
        Some(any_value::Value::DoubleValue(d)) => d.to_be_bytes().to_vec(),
        Some(any_value::Value::BoolValue(b)) => vec![u8::from(*b)],
        Some(any_value::Value::BytesValue(b)) => b.clone(),
        Some(other) => format!("{other:?}").into_bytes(),
        None => Vec::new(),
    };
    let digest = Sha256::digest(&bytes);
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    AnyValue {
        value: Some(any_value::Value::StringValue(hex)),
    }
}

/// Applies the actions, in order, to one attribute list.
pub fn apply(actions: &[Action], attrs: &mut Vec<KeyValue>) {
    for a in actions {
        let pos = attrs.iter().position(|kv| kv.key == a.key);
        let new_value = || -> Option<AnyValue> {
            match (&a.value, &a.from_attribute) {
                (Some(v), _) => Some(literal(v)),
                (None, Some(from)) => attrs
                    .iter()
                    .find(|kv| &kv.key == from)
                    .and_then(|kv| kv.value.clone()),
                (None, None) => None,
            }
        };
        match (a.action, pos) {
            (ActionKind::Insert, None) | (ActionKind::Upsert, None) => {
                if let Some(v) = new_value() {
                    attrs.push(KeyValue {
                        key: a.key.clone(),
                        value: Some(v),
                        ..Default::default()
                    });
                }
            }
            (ActionKind::Update, Some(i)) | (ActionKind::Upsert, Some(i)) => {
                if let Some(v) = new_value() {
                    attrs[i].value = Some(v);
                }
            }
            (ActionKind::Delete, Some(i)) => {
                attrs.remove(i);
            }
            (ActionKind::Hash, Some(i)) => {
                attrs[i].value = Some(hash_value(&attrs[i].value));
            }
            _ => {}
        }
    }
}

#[async_trait::async_trait]
impl<T: Signal> Consumer<T> for AttributesProcessor<T> {
    async fn consume(&self, mut batch: Vec<T>) -> Result<(), ConsumeError> {
        for item in &mut batch {
            if self.selected(item) {
                item.for_each_item_attributes(&mut |attrs| apply(&self.cfg.actions, attrs));
            }
        }
        self.next.consume(batch).await
    }
}
