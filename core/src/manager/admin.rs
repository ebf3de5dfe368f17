//! Administration at run time, each command access-checked (Admin) and
//! audited: rules with delegation, backends, policies, reloads, the audit log.
//!
//! Delegation: a principal holding Admin on a resource may add or remove
//! rules inside that resource, granting at most what it holds there
//! itself. Anything beyond is refused as an escalation and audited.

use std::sync::Arc;

use super::authorize::{denial, Security};
use super::session::Session;
use crate::access::{
    AccessEvaluator, AccessPolicy, AccessRule, AdminCommand, Resource, StorageOperationType as Op, Target,
};
use crate::audit::{AuditQuery, AuditRecord};
use crate::config::{BackendConfig, Config, PolicyConfig};
use crate::error::{Error, ErrorKind, Result};

impl Session {
    fn resource_target<'a>(&self, resource: &'a Resource, backends: &'a [String]) -> Target<'a> {
        match resource {
            Resource::Key(key) => Target::Key { key, backends },
            Resource::Prefix(prefix) => Target::Prefix { prefix, backends },
            Resource::Backend(name) => Target::Backend(name),
            Resource::All => Target::All,
        }
    }

    /// Checks Admin on `resource` (and, for rule changes, that the rule
    /// stays within the caller's own rights); audits the command.
    fn authorize_admin(&self, command: &AdminCommand, resource: &Resource) -> Result<Arc<Security>> {
        let security = self.security();
        let state = self.state();
        let path = resource.to_string();
        let backends = match resource {
            Resource::Key(k) | Resource::Prefix(k) => state.router.route(k).backends.clone(),
            _ => Vec::new(),
        };
        let target = self.resource_target(resource, &backends);
        let access = &security.access;
        let mut refused = None;
        let admin = access.decide(self.principal(), Op::Admin, target);
        if !admin.allowed {
            refused = Some(denial(self.principal().id(), Op::Admin, &path, &admin));
        } else if let AdminCommand::AddRule(rule) | AdminCommand::RemoveRule(rule) = command {
            refused = self.escalation(access, rule, target);
        }
        let detail = refused.as_ref().map_or_else(|| command.to_string(), |e| e.message().to_owned());
        self.record(&security, command.label(), &[&path], refused.is_none(), Some(&detail))?;
        match refused {
            Some(e) => Err(e.with_operation("admin")),
            None => Ok(security),
        }
    }

    /// The refusal if `rule` grants something the caller does not hold on
    /// its resource.
    fn escalation(&self, access: &AccessEvaluator, rule: &AccessRule, target: Target<'_>) -> Option<Error> {
        let ops = Op::ALL
            .into_iter()
            .filter(|op| rule.operation.is_none_or(|o| o == *op) && rule.level.covers(*op));
        for op in ops {
            if !access.decide(self.principal(), op, target).allowed {
                return Some(Error::new(
                    ErrorKind::PermissionDenied,
                    format!(
                        "`{}` may not grant `{}`: it does not hold {op} on `{}` itself; delegation cannot go beyond one's own rights",
                        self.principal(),
                        rule,
                        rule.resource
                    ),
                ));
            }
        }
        None
    }

    fn replace_rules(&self, policy: AccessPolicy) {
        let security = self.security();
        let next =
            Security { access: Arc::new(AccessEvaluator::new(&policy)), audit: security.audit.clone() };
        self.shared().set_security(next);
    }

    /// The access rules in force (Admin on `*`).
    pub fn access_policy(&self) -> Result<AccessPolicy> {
        let security = self.authorize_admin(&AdminCommand::ReadAccessPolicy, &Resource::All)?;
        Ok(security.access.policy())
    }

    /// Replaces every rule (Admin on `*`, and every rule within the caller's rights).
    pub async fn set_access_policy(&self, policy: AccessPolicy) -> Result<()> {
        let _serial = self.shared().reconfigure.lock().await;
        self.authorize_admin(&AdminCommand::SetAccessPolicy, &Resource::All)?;
        for rule in &policy.rules {
            self.authorize_admin(&AdminCommand::AddRule(rule.clone()), &rule.resource)?;
        }
        self.replace_rules(policy);
        Ok(())
    }

    /// Adds one rule (Admin on its resource, granting no more than the caller holds there).
    pub async fn add_access_rule(&self, rule: AccessRule) -> Result<()> {
        let _serial = self.shared().reconfigure.lock().await;
        let security = self.authorize_admin(&AdminCommand::AddRule(rule.clone()), &rule.resource)?;
        let mut policy = security.access.policy();
        if !policy.rules.contains(&rule) {
            policy.rules.push(rule);
        }
        self.replace_rules(policy);
        Ok(())
    }

    /// Removes one rule (same rights as adding it); `NotFound` if absent.
    pub async fn remove_access_rule(&self, rule: &AccessRule) -> Result<()> {
        let _serial = self.shared().reconfigure.lock().await;
        let security = self.authorize_admin(&AdminCommand::RemoveRule(rule.clone()), &rule.resource)?;
        let mut policy = security.access.policy();
        let before = policy.rules.len();
        policy.rules.retain(|r| r != rule);
        if policy.rules.len() == before {
            return Err(Error::new(ErrorKind::NotFound, format!("no rule `{rule}` is in force")));
        }
        self.replace_rules(policy);
        Ok(())
    }

    /// Records matching `query` (Admin on `*`).
    pub fn audit_log(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>> {
        let security = self.authorize_admin(&AdminCommand::QueryAudit, &Resource::All)?;
        let audit = security.audit.as_ref().ok_or_else(|| {
            Error::new(ErrorKind::NotFound, "no audit log is configured; add an `[audit]` section")
        })?;
        audit.query(query)
    }

    /// The configuration in force, with the rules as they are now.
    fn current_config(&self) -> Config {
        let mut config = self.state().config.clone();
        let policy = self.security().access.policy();
        if config.access.is_some() || !policy.rules.is_empty() {
            config.access = Some(policy.to_config());
        }
        config
    }

    async fn apply(&self, config: Config) -> Result<()> {
        self.shared().reconfigure(config).await
    }

    /// Adds a backend (Admin on `@name`); `AlreadyExists` if the name is taken.
    pub async fn add_backend(&self, name: &str, backend: BackendConfig) -> Result<()> {
        self.authorize_admin(
            &AdminCommand::AddBackend { name: name.to_owned() },
            &Resource::Backend(name.to_owned()),
        )?;
        let mut config = self.current_config();
        if config.backends.contains_key(name) {
            return Err(Error::new(ErrorKind::AlreadyExists, format!("a backend named `{name}` exists")));
        }
        config.backends.insert(name.to_owned(), backend);
        self.apply(config).await
    }

    /// Removes a backend no route or policy uses (Admin on `@name`).
    pub async fn remove_backend(&self, name: &str) -> Result<()> {
        self.authorize_admin(
            &AdminCommand::RemoveBackend { name: name.to_owned() },
            &Resource::Backend(name.to_owned()),
        )?;
        let mut config = self.current_config();
        if config.backends.remove(name).is_none() {
            return Err(Error::new(ErrorKind::NotFound, format!("no backend named `{name}`")));
        }
        self.apply(config).await
    }

    /// Sets the default policy (`route = None`, Admin on `*`) or a route's
    /// (Admin on the route prefix), creating the route if needed.
    pub async fn set_policy(&self, route: Option<&str>, policy: PolicyConfig) -> Result<()> {
        let command = AdminCommand::SetPolicy { route: route.map(str::to_owned) };
        let resource = match route {
            Some(prefix) => Resource::parse(prefix)?,
            None => Resource::All,
        };
        self.authorize_admin(&command, &resource)?;
        let mut config = self.current_config();
        match route {
            None => config.policy = Some(policy),
            Some(prefix) => match config.routes.iter_mut().find(|r| r.prefix == prefix) {
                Some(r) => {
                    r.backend = None;
                    r.policy = Some(policy);
                }
                None => config.routes.push(crate::config::RouteConfig {
                    prefix: prefix.to_owned(),
                    backend: None,
                    policy: Some(policy),
                }),
            },
        }
        self.apply(config).await
    }

    /// Replaces the whole configuration (Admin on `*`): validated and built
    /// first, swapped in at once; a configuration that fails changes nothing.
    pub async fn reload_config(&self, config: Config) -> Result<()> {
        self.authorize_admin(&AdminCommand::ReloadConfig, &Resource::All)?;
        self.apply(config).await
    }

    /// Loads plugin libraries the configuration names that are not loaded yet (Admin on `*`).
    pub async fn reload_plugins(&self) -> Result<()> {
        self.authorize_admin(&AdminCommand::ReloadPlugins, &Resource::All)?;
        let config = self.current_config();
        self.shared().registry.load_libraries(&config)
    }
}
