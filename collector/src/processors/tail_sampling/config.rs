//! The `tail_sampling` processor's configuration, in the OpenTelemetry Collector contrib schema
//! (`decision_wait`, `num_traces`, `expected_new_traces_per_sec`, `decision_cache`, `policies`), plus
//! tracelab's additions (`max_spans_per_trace`, `record_policy_attribute`), and its validation with
//! key paths such as `policies[1].latency.threshold_ms`.

use std::time::Duration;

use serde::Deserialize;

use crate::component::FieldError;

/// `processors.tail_sampling`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TailSamplingConfig {
    /// How long after a trace's first span it is decided (Go duration, e.g. `10s`).
    #[serde(deserialize_with = "crate::component::duration::deserialize")]
    pub decision_wait: Duration,
    /// Most undecided traces held; when reached, the oldest undecided trace is decided early.
    pub num_traces: u64,
    /// A sizing hint for the pending-trace map (as in contrib).
    pub expected_new_traces_per_sec: u64,
    pub decision_cache: DecisionCacheConfig,
    /// tracelab: a trace reaching this many buffered spans is decided at once; its later spans
    /// follow the decision, so one huge trace cannot hold memory hostage.
    pub max_spans_per_trace: u64,
    /// Add `tailsampling.policy = <policy>` (and `tailsampling.composite_policy`) to kept traces:
    /// contrib's `processor.tailsamplingprocessor.recordpolicy` feature gate as a key; off by default
    /// as there.
    pub record_policy_attribute: bool,
    pub policies: Vec<PolicyConfig>,
}

impl Default for TailSamplingConfig {
    fn default() -> Self {
        Self {
            decision_wait: Duration::from_secs(30),
            num_traces: 50_000,
            expected_new_traces_per_sec: 0,
            decision_cache: DecisionCacheConfig::default(),
            max_spans_per_trace: 20_000,
            record_policy_attribute: false,
            policies: Vec::new(),
        }
    }
}

/// Remembers decided trace ids so late spans get the trace's decision.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DecisionCacheConfig {
    pub sampled_cache_size: usize,
    pub non_sampled_cache_size: usize,
}

impl Default for DecisionCacheConfig {
    fn default() -> Self {
        // contrib defaults to 0 (disabled), which is how late spans get decided twice; on by default here.
        Self {
            sampled_cache_size: 100_000,
            non_sampled_cache_size: 100_000,
        }
    }
}

/// The policy types (the `type` key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyType {
    AlwaysSample,
    StatusCode,
    Latency,
    Probabilistic,
    RateLimiting,
    StringAttribute,
    NumericAttribute,
    BooleanAttribute,
    SpanCount,
    TraceState,
    And,
    Drop,
    Composite,
}

impl PolicyType {
    /// The YAML spelling (also the name of the type's settings block).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AlwaysSample => "always_sample",
            Self::StatusCode => "status_code",
            Self::Latency => "latency",
            Self::Probabilistic => "probabilistic",
            Self::RateLimiting => "rate_limiting",
            Self::StringAttribute => "string_attribute",
            Self::NumericAttribute => "numeric_attribute",
            Self::BooleanAttribute => "boolean_attribute",
            Self::SpanCount => "span_count",
            Self::TraceState => "trace_state",
            Self::And => "and",
            Self::Drop => "drop",
            Self::Composite => "composite",
        }
    }

    fn is_leaf(self) -> bool {
        !matches!(self, Self::And | Self::Drop | Self::Composite)
    }
}

/// One policy: `{name, type, <type>: {...}}`. Also the shape of `and`/`drop`/`composite` sub-policies.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    pub name: String,
    #[serde(rename = "type")]
    pub policy_type: PolicyType,
    #[serde(default)]
    pub status_code: Option<StatusCodeConfig>,
    #[serde(default)]
    pub latency: Option<LatencyConfig>,
    #[serde(default)]
    pub probabilistic: Option<ProbabilisticConfig>,
    #[serde(default)]
    pub rate_limiting: Option<RateLimitingConfig>,
    #[serde(default)]
    pub string_attribute: Option<StringAttributeConfig>,
    #[serde(default)]
    pub numeric_attribute: Option<NumericAttributeConfig>,
    #[serde(default)]
    pub boolean_attribute: Option<BooleanAttributeConfig>,
    #[serde(default)]
    pub span_count: Option<SpanCountConfig>,
    #[serde(default)]
    pub trace_state: Option<TraceStateConfig>,
    #[serde(default)]
    pub and: Option<AndConfig>,
    #[serde(default)]
    pub drop: Option<DropConfig>,
    #[serde(default)]
    pub composite: Option<CompositeConfig>,
}

impl PolicyConfig {
    /// A policy of `policy_type` with no settings block (fill in the one you need).
    pub fn new(name: impl Into<String>, policy_type: PolicyType) -> Self {
        Self {
            name: name.into(),
            policy_type,
            status_code: None,
            latency: None,
            probabilistic: None,
            rate_limiting: None,
            string_attribute: None,
            numeric_attribute: None,
            boolean_attribute: None,
            span_count: None,
            trace_state: None,
            and: None,
            drop: None,
            composite: None,
        }
    }

    /// Which settings blocks are present, by YAML name.
    fn blocks(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        let mut add = |present: bool, name| {
            if present {
                v.push(name)
            }
        };
        add(self.status_code.is_some(), "status_code");
        add(self.latency.is_some(), "latency");
        add(self.probabilistic.is_some(), "probabilistic");
        add(self.rate_limiting.is_some(), "rate_limiting");
        add(self.string_attribute.is_some(), "string_attribute");
        add(self.numeric_attribute.is_some(), "numeric_attribute");
        add(self.boolean_attribute.is_some(), "boolean_attribute");
        add(self.span_count.is_some(), "span_count");
        add(self.trace_state.is_some(), "trace_state");
        add(self.and.is_some(), "and");
        add(self.drop.is_some(), "drop");
        add(self.composite.is_some(), "composite");
        v
    }
}

/// OTel span status codes as contrib spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum StatusCodeName {
    #[serde(rename = "UNSET")]
    Unset,
    #[serde(rename = "OK")]
    Ok,
    #[serde(rename = "ERROR")]
    Error,
}

impl StatusCodeName {
    /// The OTLP `Status.code` value.
    pub fn otlp_code(self) -> i32 {
        match self {
            Self::Unset => 0,
            Self::Ok => 1,
            Self::Error => 2,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusCodeConfig {
    pub status_codes: Vec<StatusCodeName>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LatencyConfig {
    pub threshold_ms: i64,
    #[serde(default)]
    pub upper_threshold_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbabilisticConfig {
    pub sampling_percentage: f64,
    #[serde(default)]
    pub hash_salt: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitingConfig {
    /// Token-bucket refill rate.
    pub spans_per_second: i64,
    /// Bucket size; 0 (default) = 2 × `spans_per_second`, as contrib.
    #[serde(default)]
    pub burst_capacity: i64,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StringAttributeConfig {
    pub key: String,
    pub values: Vec<String>,
    #[serde(default)]
    pub enabled_regex_matching: bool,
    /// Contrib's LRU of regex match results. Refused when set (see `validate_policy`): the
    /// compiled regexes are matched directly, so a size would change nothing.
    #[serde(default)]
    pub cache_max_size: Option<u64>,
    #[serde(default)]
    pub invert_match: bool,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NumericAttributeConfig {
    pub key: String,
    #[serde(default)]
    pub min_value: Option<f64>,
    #[serde(default)]
    pub max_value: Option<f64>,
    #[serde(default)]
    pub invert_match: bool,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BooleanAttributeConfig {
    pub key: String,
    pub value: bool,
    #[serde(default)]
    pub invert_match: bool,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpanCountConfig {
    pub min_spans: i64,
    /// 0 = no upper bound.
    #[serde(default)]
    pub max_spans: i64,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TraceStateConfig {
    pub key: String,
    pub values: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AndConfig {
    pub and_sub_policy: Vec<PolicyConfig>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DropConfig {
    pub drop_sub_policy: Vec<PolicyConfig>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompositeConfig {
    pub max_total_spans_per_second: i64,
    #[serde(default)]
    pub policy_order: Vec<String>,
    pub composite_sub_policy: Vec<PolicyConfig>,
    #[serde(default)]
    pub rate_allocation: Vec<RateAllocationConfig>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateAllocationConfig {
    pub policy: String,
    pub percent: i64,
}

impl TailSamplingConfig {
    pub fn validate(&self) -> Result<(), FieldError> {
        if self.decision_wait.is_zero() {
            return Err(FieldError::new(
                "decision_wait",
                "must be greater than 0 (e.g. 10s)",
            ));
        }
        if self.num_traces == 0 {
            return Err(FieldError::new("num_traces", "must be at least 1"));
        }
        if self.max_spans_per_trace == 0 {
            return Err(FieldError::new("max_spans_per_trace", "must be at least 1"));
        }
        if self.policies.is_empty() {
            return Err(FieldError::new(
                "policies",
                "at least one policy is required (with none, every trace would be dropped)",
            ));
        }
        validate_policies(&self.policies, "policies", Nesting::Top)
    }
}

/// Where a policy list sits: top level, inside `composite` (leaf policies and `and`, as contrib),
/// or inside `and` / `drop` (leaf policies only).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Nesting {
    Top,
    Composite,
    Leaf,
}

fn validate_policies(
    policies: &[PolicyConfig],
    path: &str,
    nesting: Nesting,
) -> Result<(), FieldError> {
    for (i, p) in policies.iter().enumerate() {
        let at = format!("{path}[{i}]");
        if p.name.trim().is_empty() {
            return Err(FieldError::new(format!("{at}.name"), "must not be empty"));
        }
        if let Some(j) = policies[..i].iter().position(|q| q.name == p.name) {
            return Err(FieldError::new(
                format!("{at}.name"),
                format!("duplicate policy name {:?} (also {path}[{j}])", p.name),
            ));
        }
        let allowed = match nesting {
            Nesting::Top => true,
            Nesting::Composite => p.policy_type.is_leaf() || p.policy_type == PolicyType::And,
            Nesting::Leaf => p.policy_type.is_leaf(),
        };
        if !allowed {
            let inside = if nesting == Nesting::Composite {
                "composite (only leaf policies and `and`)"
            } else {
                "and/drop"
            };
            return Err(FieldError::new(
                format!("{at}.type"),
                format!(
                    "`{}` cannot be nested inside {inside}",
                    p.policy_type.as_str()
                ),
            ));
        }
        validate_policy(p, &at)?;
    }
    Ok(())
}

fn validate_policy(p: &PolicyConfig, at: &str) -> Result<(), FieldError> {
    let ty = p.policy_type.as_str();
    for block in p.blocks() {
        if block != ty {
            return Err(FieldError::new(
                format!("{at}.{block}"),
                format!("settings for `{block}` given, but the policy's type is `{ty}`"),
            ));
        }
    }
    let missing = || {
        FieldError::new(
            format!("{at}.{ty}"),
            format!("required for a policy of type `{ty}`"),
        )
    };
    let field = |f: &str| format!("{at}.{ty}.{f}");
    match p.policy_type {
        PolicyType::AlwaysSample => {}
        PolicyType::StatusCode => {
            let c = p.status_code.as_ref().ok_or_else(missing)?;
            if c.status_codes.is_empty() {
                return Err(FieldError::new(
                    field("status_codes"),
                    "must list at least one of OK, ERROR, UNSET",
                ));
            }
        }
        PolicyType::Latency => {
            let c = p.latency.as_ref().ok_or_else(missing)?;
            if c.threshold_ms < 0 {
                return Err(FieldError::new(
                    field("threshold_ms"),
                    "must be >= 0 (milliseconds)",
                ));
            }
            if c.upper_threshold_ms != 0 && c.upper_threshold_ms <= c.threshold_ms {
                return Err(FieldError::new(
                    field("upper_threshold_ms"),
                    format!(
                        "must be 0 (no upper bound) or greater than threshold_ms ({})",
                        c.threshold_ms
                    ),
                ));
            }
        }
        PolicyType::Probabilistic => {
            let c = p.probabilistic.as_ref().ok_or_else(missing)?;
            if !(0.0..=100.0).contains(&c.sampling_percentage) {
                return Err(FieldError::new(
                    field("sampling_percentage"),
                    "must be between 0 and 100",
                ));
            }
        }
        PolicyType::RateLimiting => {
            let c = p.rate_limiting.as_ref().ok_or_else(missing)?;
            if c.spans_per_second <= 0 {
                return Err(FieldError::new(
                    field("spans_per_second"),
                    "must be greater than 0",
                ));
            }
            if c.burst_capacity < 0 {
                return Err(FieldError::new(
                    field("burst_capacity"),
                    "must be >= 0 (0 = 2 × spans_per_second)",
                ));
            }
        }
        PolicyType::StringAttribute => {
            let c = p.string_attribute.as_ref().ok_or_else(missing)?;
            if c.cache_max_size.is_some() {
                return Err(FieldError::new(
                    field("cache_max_size"),
                    "`cache_max_size` is not supported: contrib uses it to size an LRU cache of \
                     regex match results; tracelab matches its compiled regexes directly and keeps \
                     no such cache, so the size would change nothing; remove the key",
                ));
            }
            if c.key.is_empty() {
                return Err(FieldError::new(field("key"), "must not be empty"));
            }
            if c.values.is_empty() {
                return Err(FieldError::new(
                    field("values"),
                    "must list at least one value",
                ));
            }
            if c.enabled_regex_matching {
                for (k, v) in c.values.iter().enumerate() {
                    if let Err(e) = regex::Regex::new(v) {
                        return Err(FieldError::new(
                            format!("{}[{k}]", field("values")),
                            format!("invalid regex: {e}"),
                        ));
                    }
                }
            }
        }
        PolicyType::NumericAttribute => {
            let c = p.numeric_attribute.as_ref().ok_or_else(missing)?;
            if c.key.is_empty() {
                return Err(FieldError::new(field("key"), "must not be empty"));
            }
            match (c.min_value, c.max_value) {
                (None, None) => {
                    return Err(FieldError::new(
                        field("min_value"),
                        "set min_value, max_value or both",
                    ));
                }
                (Some(lo), Some(hi)) if lo > hi => {
                    return Err(FieldError::new(
                        field("max_value"),
                        format!("must be >= min_value ({lo})"),
                    ));
                }
                _ => {}
            }
        }
        PolicyType::BooleanAttribute => {
            let c = p.boolean_attribute.as_ref().ok_or_else(missing)?;
            if c.key.is_empty() {
                return Err(FieldError::new(field("key"), "must not be empty"));
            }
        }
        PolicyType::SpanCount => {
            let c = p.span_count.as_ref().ok_or_else(missing)?;
            if c.min_spans < 0 {
                return Err(FieldError::new(field("min_spans"), "must be >= 0"));
            }
            if c.max_spans != 0 && c.max_spans < c.min_spans {
                return Err(FieldError::new(
                    field("max_spans"),
                    format!(
                        "must be 0 (no upper bound) or >= min_spans ({})",
                        c.min_spans
                    ),
                ));
            }
        }
        PolicyType::TraceState => {
            let c = p.trace_state.as_ref().ok_or_else(missing)?;
            if c.key.is_empty() {
                return Err(FieldError::new(field("key"), "must not be empty"));
            }
            if c.values.is_empty() {
                return Err(FieldError::new(
                    field("values"),
                    "must list at least one value",
                ));
            }
        }
        PolicyType::And => {
            let c = p.and.as_ref().ok_or_else(missing)?;
            if c.and_sub_policy.is_empty() {
                return Err(FieldError::new(
                    field("and_sub_policy"),
                    "must list at least one policy",
                ));
            }
            validate_policies(&c.and_sub_policy, &field("and_sub_policy"), Nesting::Leaf)?;
        }
        PolicyType::Drop => {
            let c = p.drop.as_ref().ok_or_else(missing)?;
            if c.drop_sub_policy.is_empty() {
                return Err(FieldError::new(
                    field("drop_sub_policy"),
                    "must list at least one policy",
                ));
            }
            validate_policies(&c.drop_sub_policy, &field("drop_sub_policy"), Nesting::Leaf)?;
        }
        PolicyType::Composite => {
            let c = p.composite.as_ref().ok_or_else(missing)?;
            if c.max_total_spans_per_second <= 0 {
                return Err(FieldError::new(
                    field("max_total_spans_per_second"),
                    "must be greater than 0",
                ));
            }
            if c.composite_sub_policy.is_empty() {
                return Err(FieldError::new(
                    field("composite_sub_policy"),
                    "must list at least one policy",
                ));
            }
            validate_policies(
                &c.composite_sub_policy,
                &field("composite_sub_policy"),
                Nesting::Composite,
            )?;
            let known = |n: &str| c.composite_sub_policy.iter().any(|s| s.name == n);
            for (k, name) in c.policy_order.iter().enumerate() {
                if !known(name) {
                    return Err(FieldError::new(
                        format!("{}[{k}]", field("policy_order")),
                        format!("{name:?} is not the name of a composite_sub_policy"),
                    ));
                }
            }
            let mut total = 0;
            for (k, a) in c.rate_allocation.iter().enumerate() {
                let at = format!("{}[{k}]", field("rate_allocation"));
                if !known(&a.policy) {
                    return Err(FieldError::new(
                        format!("{at}.policy"),
                        format!("{:?} is not the name of a composite_sub_policy", a.policy),
                    ));
                }
                if !(0..=100).contains(&a.percent) {
                    return Err(FieldError::new(
                        format!("{at}.percent"),
                        "must be between 0 and 100",
                    ));
                }
                total += a.percent;
            }
            if total > 100 {
                return Err(FieldError::new(
                    field("rate_allocation"),
                    format!("percentages add up to {total}, at most 100 allowed"),
                ));
            }
        }
    }
    Ok(())
}
