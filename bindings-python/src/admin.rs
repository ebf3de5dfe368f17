//! Arguments and answers of the administration methods, shared by `Store`
//! and `AsyncStore`.

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use tierfs_core::access::{AccessLevel, AccessPolicy, AccessRule};
use tierfs_core::audit::AuditQuery;
use tierfs_core::config::{BackendConfig, PolicyConfig};
use tierfs_core::manager::{CacheVerdict, Explanation};
use tierfs_core::{Error, ErrorKind};

use crate::convert::{audit_result, time, toml_table};
use crate::errors::{to_py, IntoPy};

/// A rule from its four written parts.
pub fn rule(principal: &str, resource: &str, operation: &str, level: &str) -> PyResult<AccessRule> {
    AccessRule::parse(principal, resource, operation, level).py_err()
}

/// A policy from `{"default": "none", "rules": [{"principal": ..., ...}]}`.
pub fn access_policy_from(obj: &Bound<'_, PyAny>) -> PyResult<AccessPolicy> {
    let bad = |why: String| to_py(Error::new(ErrorKind::InvalidInput, why));
    let dict = obj.cast::<PyDict>().map_err(|_| bad("an access policy is a dict".into()))?;
    let default = match dict.get_item("default")? {
        Some(d) => d.extract::<String>()?.parse::<AccessLevel>().py_err()?,
        None => AccessLevel::None,
    };
    let mut rules = Vec::new();
    if let Some(list) = dict.get_item("rules")? {
        for (i, r) in list.try_iter()?.enumerate() {
            let r = r?;
            let r = r.cast::<PyDict>().map_err(|_| bad(format!("rule {i} is not a dict")))?;
            let get = |name: &str, default: Option<&str>| -> PyResult<String> {
                match (r.get_item(name)?, default) {
                    (Some(v), _) => v.extract(),
                    (None, Some(d)) => Ok(d.to_owned()),
                    (None, None) => Err(bad(format!("rule {i} has no `{name}`"))),
                }
            };
            let mut parsed = rule(
                &get("principal", None)?,
                &get("resource", None)?,
                &get("operation", Some("*"))?,
                &get("level", None)?,
            )?;
            // Provenance as `access_policy()` gives it is kept.
            if let (Some(by), Some(authority)) = (r.get_item("added_by")?, r.get_item("authority")?) {
                let authority =
                    tierfs_core::access::Resource::parse(&authority.extract::<String>()?).py_err()?;
                parsed.added_by =
                    Some(tierfs_core::access::Provenance { principal: by.extract()?, authority });
            }
            rules.push(parsed);
        }
    }
    Ok(AccessPolicy { rules, default })
}

/// A rule as a dict.
pub fn rule_dict<'py>(py: Python<'py>, r: &AccessRule) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("principal", r.principal.to_string())?;
    d.set_item("resource", r.resource.to_string())?;
    d.set_item("operation", r.operation.map_or("*", |o| o.as_str()))?;
    d.set_item("level", r.level.as_str())?;
    if let Some(p) = &r.added_by {
        d.set_item("added_by", &p.principal)?;
        d.set_item("authority", p.authority.to_string())?;
    }
    Ok(d)
}

/// A policy as `{"default": ..., "rules": [...]}`.
pub fn access_policy_dict<'py>(py: Python<'py>, p: &AccessPolicy) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("default", p.default.as_str())?;
    let rules = PyList::empty(py);
    for r in &p.rules {
        rules.append(rule_dict(py, r)?)?;
    }
    d.set_item("rules", rules)?;
    Ok(d)
}

/// A policy configuration from a dict written like the `[policy]` table.
pub fn policy_config(obj: &Bound<'_, PyDict>) -> PyResult<PolicyConfig> {
    toml::Value::Table(toml_table(obj)?).try_into::<PolicyConfig>().map_err(|e| {
        to_py(Error::new(
            ErrorKind::Config,
            format!(
                "policy: {}; write it like the [policy] table of the configuration file",
                e.to_string().trim_end()
            ),
        ))
    })
}

/// A backend configuration from its type and settings.
pub fn backend_config(kind: &str, settings: Option<&Bound<'_, PyDict>>) -> PyResult<BackendConfig> {
    let settings = match settings {
        Some(s) => toml_table(s)?,
        None => toml::Table::new(),
    };
    Ok(BackendConfig { kind: kind.to_owned(), settings })
}

/// An audit query from the keyword arguments of `audit_log`.
pub fn audit_query(
    principal: Option<String>,
    since: Option<&Bound<'_, PyAny>>,
    until: Option<&Bound<'_, PyAny>>,
    key_prefix: Option<String>,
    result: Option<String>,
    limit: Option<usize>,
) -> PyResult<AuditQuery> {
    Ok(AuditQuery {
        principal,
        since: since.map(time).transpose()?,
        until: until.map(time).transpose()?,
        key_prefix,
        result: result.as_deref().map(audit_result).transpose()?,
        limit,
    })
}

/// An explanation as a dict.
pub fn explanation<'py>(py: Python<'py>, e: &Explanation) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("principal", &e.principal)?;
    d.set_item("operation", e.operation.as_str())?;
    d.set_item("key", &e.key)?;
    d.set_item("allowed", e.allowed)?;
    d.set_item("level", e.level.as_str())?;
    d.set_item("rule", e.rule.as_ref().map(|r| rule_dict(py, r)).transpose()?)?;
    let route = PyDict::new(py);
    route.set_item("prefix", &e.route.prefix)?;
    route.set_item("policy", &e.route.policy)?;
    route.set_item("backends", &e.route.backends)?;
    d.set_item("route", route)?;
    let cache = e.cache.map(|c| match c {
        CacheVerdict::NoCache => "none",
        CacheVerdict::Hit => "hit",
        CacheVerdict::Miss => "miss",
        CacheVerdict::Unknown => "unknown",
    });
    d.set_item("cache", cache)?;
    d.set_item("placement", &e.placement)?;
    d.set_item("storage_class", &e.storage_class)?;
    let quota = match &e.quota {
        Some(q) => {
            let q_dict = PyDict::new(py);
            q_dict.set_item("prefix", &q.prefix)?;
            q_dict.set_item("max_bytes", q.max_bytes)?;
            q_dict.set_item("max_keys", q.max_keys)?;
            q_dict.set_item("used_bytes", q.used.bytes)?;
            q_dict.set_item("used_keys", q.used.keys)?;
            Some(q_dict)
        }
        None => None,
    };
    d.set_item("quota", quota)?;
    d.set_item("text", e.to_string())?;
    Ok(d)
}

/// Capabilities as a dict of flags.
pub fn capabilities<'py>(py: Python<'py>, c: &tierfs_core::Capabilities) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("atomic_batch", c.atomic_batch)?;
    d.set_item("range_read", c.range_read)?;
    d.set_item("rename", c.rename)?;
    d.set_item("persistent", c.persistent)?;
    d.set_item("shared", c.shared)?;
    d.set_item("conditional_put", c.conditional_put)?;
    d.set_item("streaming", c.streaming)?;
    Ok(d)
}
