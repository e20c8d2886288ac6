//! `attributes` processor settings: a list of actions and optional include/exclude filters.

use serde::Deserialize;

use crate::component::FieldError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActionKind {
    Insert,
    Update,
    Upsert,
    Delete,
    Hash,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Action {
    pub key: String,
    pub action: ActionKind,
    /// A literal value (string, number or bool) for insert/update/upsert.
    #[serde(default)]
    pub value: Option<serde_json::Value>,
    /// Copy the value of another attribute instead of a literal.
    #[serde(default)]
    pub from_attribute: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MatchType {
    #[default]
    Strict,
}

/// Which items an `include`/`exclude` filter selects, by the resource's `service.name`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MatchProperties {
    pub match_type: MatchType,
    pub services: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AttributesConfig {
    pub actions: Vec<Action>,
    pub include: Option<MatchProperties>,
    pub exclude: Option<MatchProperties>,
}

impl AttributesConfig {
    pub fn validate(&self) -> Result<(), FieldError> {
        if self.actions.is_empty() {
            return Err(FieldError::new(
                "actions",
                "at least one action is required",
            ));
        }
        for (i, a) in self.actions.iter().enumerate() {
            let p = |f: &str| format!("actions[{i}].{f}");
            if a.key.is_empty() {
                return Err(FieldError::new(p("key"), "must not be empty"));
            }
            match a.action {
                ActionKind::Insert | ActionKind::Update | ActionKind::Upsert => {
                    match (&a.value, &a.from_attribute) {
                        (None, None) => {
                            return Err(FieldError::new(
                                p("value"),
                                format!("action {:?} needs `value` or `from_attribute`", a.action)
                                    .to_lowercase(),
                            ));
                        }
                        (Some(_), Some(_)) => {
                            return Err(FieldError::new(
                                p("from_attribute"),
                                "give either `value` or `from_attribute`, not both",
                            ));
                        }
                        (Some(v), None) if !(v.is_string() || v.is_number() || v.is_boolean()) => {
                            return Err(FieldError::new(
                                p("value"),
                                "expected a string, number or boolean",
                            ));
                        }
                        _ => {}
                    }
                }
                ActionKind::Delete | ActionKind::Hash => {
                    if a.value.is_some() || a.from_attribute.is_some() {
                        return Err(FieldError::new(
                            p("value"),
                            "delete and hash take only `key`",
                        ));
                    }
                }
            }
        }
        for (name, m) in [("include", &self.include), ("exclude", &self.exclude)] {
            if let Some(m) = m
                && m.services.is_empty()
            {
                return Err(FieldError::new(
                    format!("{name}.services"),
                    "at least one service name is required",
                ));
            }
        }
        Ok(())
    }
}
