//! Administration at run time, each command access-checked (Admin) and
//! audited: rules with delegation, backends, policies, reloads, the audit log.
//!
//! Delegation (see [`Delegation`]): an administrator of `*` may do
//! anything; a principal holding admin on a resource may add and remove
//! rules inside it, granting at most what it holds there, binding no
//! administrator above or beside it, lifting no denial made with more
//! authority, and removing only rules whose authority its own encloses.
//! Anything beyond is refused as an escalation and audited.

use std::sync::Arc;

use super::security::{denial, Security};
use super::session::Session;
use crate::access::{
    AccessEvaluator, AccessPolicy, AccessRule, AdminCommand, Delegation, Resource,
    StorageOperationType as Op, Target,
};
use crate::audit::{AuditQuery, AuditRecord};
use crate::config::{BackendConfig, Config, PolicyConfig};
use crate::error::{Error, ErrorKind, Result};

/// What an admin command is checked against.
enum Scope<'a> {
    /// Admin on the resource (or on `*`).
    Resource(&'a Resource),
    /// Adding this rule, by the delegation rules.
    Add(&'a AccessRule),
    /// Removing this rule (as in force), by the delegation rules.
    Remove(&'a AccessRule),
}

impl Session {
    /// Checks an admin command and audits it; returns the security it was
    /// decided under, and the provenance for a rule being added.
    fn authorize_admin(
        &self,
        command: &AdminCommand,
        scope: Scope<'_>,
    ) -> Result<(Arc<Security>, Option<crate::access::Provenance>)> {
        let security = self.security();
        let state = self.state();
        let backends = |path: &str| state.router.route(path).backends.clone();
        let known = |id: &str| self.shared().known(id);
        let members = |role: &str| self.shared().members(role);
        let routes: Vec<String> =
            state.router.routes().map(|r| r.prefix.clone()).filter(|p| !p.is_empty()).collect();
        let delegation = Delegation::new(&security.access, &backends)
            .with_known(&known)
            .with_members(&members)
            .with_routes(&routes);
        let resource = match &scope {
            Scope::Resource(r) => (*r).clone(),
            Scope::Add(rule) | Scope::Remove(rule) => rule.resource.clone(),
        };
        let path = resource.to_string();
        let who = self.principal();
        let escalation = |why: String| {
            Error::new(ErrorKind::PermissionDenied, format!("`{who}` may not {command}: {why}"))
                .with_key(path.clone())
        };
        let mut provenance = None;
        let refused = if !delegation.may_administer(who, &resource) {
            let routed = backends(&path);
            let target = match &resource {
                Resource::Key(key) => Target::Key { key, backends: &routed },
                Resource::Prefix(prefix) => Target::Prefix { prefix, backends: &routed },
                Resource::Backend(name) => Target::Backend(name),
                Resource::All => Target::All,
            };
            let decision = security.access.decide(who, Op::Admin, target);
            Some(denial(who.id(), Op::Admin, &path, &decision))
        } else {
            match scope {
                Scope::Resource(_) => None,
                Scope::Add(rule) => match delegation.may_add(who, rule) {
                    Ok(p) => {
                        provenance = Some(p);
                        None
                    }
                    Err(why) => Some(escalation(why)),
                },
                Scope::Remove(rule) => delegation.may_remove(who, rule).err().map(escalation),
            }
        };
        let detail = refused.as_ref().map_or_else(|| command.to_string(), |e| e.message().to_owned());
        self.record(&security, command.label(), &[&path], refused.is_none(), Some(&detail))?;
        match refused {
            Some(e) => Err(e.with_operation("admin")),
            None => Ok((security, provenance)),
        }
    }

    fn replace_rules(&self, policy: AccessPolicy) {
        let security = self.security();
        let next =
            Security { access: Arc::new(AccessEvaluator::new(&policy)), audit: security.audit.clone() };
        self.shared().set_security(next);
    }

    /// The access rules in force, each with who added it (Admin on `*`).
    pub fn access_policy(&self) -> Result<AccessPolicy> {
        let (security, _) =
            self.authorize_admin(&AdminCommand::ReadAccessPolicy, Scope::Resource(&Resource::All))?;
        Ok(security.access.policy())
    }

    /// Replaces every rule (Admin on `*`: an administrator of everything
    /// may set any rule, so the rules keep the provenance they are given).
    pub async fn set_access_policy(&self, policy: AccessPolicy) -> Result<()> {
        let _serial = self.shared().reconfigure.lock().await;
        self.authorize_admin(&AdminCommand::SetAccessPolicy, Scope::Resource(&Resource::All))?;
        self.replace_rules(policy);
        Ok(())
    }

    /// Adds one rule, recording who added it and with what authority
    /// (Admin on its resource, within the delegation rules: see the
    /// module documentation).
    pub async fn add_access_rule(&self, rule: AccessRule) -> Result<()> {
        let _serial = self.shared().reconfigure.lock().await;
        let (security, provenance) =
            self.authorize_admin(&AdminCommand::AddRule(rule.clone()), Scope::Add(&rule))?;
        let mut policy = security.access.policy();
        if !policy.rules.contains(&rule) {
            policy.rules.push(AccessRule { added_by: provenance, ..rule });
        }
        self.replace_rules(policy);
        Ok(())
    }

    /// Removes one rule: the caller must be able to add it, and its
    /// authority must enclose the rule's (only an administrator of `*`
    /// removes rules of the configuration); `NotFound` if absent.
    pub async fn remove_access_rule(&self, rule: &AccessRule) -> Result<()> {
        let _serial = self.shared().reconfigure.lock().await;
        // Of duplicates, the one the caller may remove, if any.
        let security = self.security();
        let state = self.state();
        let backends = |path: &str| state.router.route(path).backends.clone();
        let candidates: Vec<AccessRule> = security.access.rules().filter(|r| *r == rule).cloned().collect();
        let delegation = Delegation::new(&security.access, &backends);
        let in_force = candidates
            .iter()
            .find(|r| delegation.may_remove(self.principal(), r).is_ok())
            .or(candidates.first())
            .cloned();
        let Some(in_force) = in_force else {
            // Audited like any refusal, as a command on the rule's resource.
            self.authorize_admin(&AdminCommand::RemoveRule(rule.clone()), Scope::Resource(&rule.resource))?;
            return Err(Error::new(ErrorKind::NotFound, format!("no rule `{rule}` is in force")));
        };
        let (security, _) =
            self.authorize_admin(&AdminCommand::RemoveRule(rule.clone()), Scope::Remove(&in_force))?;
        let mut policy = security.access.policy();
        // Only the copy that was checked: a duplicate with another
        // provenance stays for whoever may remove it.
        let checked = policy.rules.iter().position(|r| r == rule && r.added_by == in_force.added_by);
        if let Some(i) = checked {
            policy.rules.remove(i);
        }
        self.replace_rules(policy);
        Ok(())
    }

    /// Records matching `query` (Admin on `*`).
    pub fn audit_log(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>> {
        let (security, _) =
            self.authorize_admin(&AdminCommand::QueryAudit, Scope::Resource(&Resource::All))?;
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
        let resource = Resource::Backend(name.to_owned());
        self.authorize_admin(
            &AdminCommand::AddBackend { name: name.to_owned() },
            Scope::Resource(&resource),
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
        let resource = Resource::Backend(name.to_owned());
        self.authorize_admin(
            &AdminCommand::RemoveBackend { name: name.to_owned() },
            Scope::Resource(&resource),
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
        self.authorize_admin(&command, Scope::Resource(&resource))?;
        let mut config = self.current_config();
        let field = match route {
            None => {
                config.policy = Some(policy);
                "policy".to_owned()
            }
            Some(prefix) => {
                let index = match config.routes.iter().position(|r| r.prefix == prefix) {
                    Some(i) => i,
                    None => {
                        config.routes.push(crate::config::RouteConfig {
                            prefix: prefix.to_owned(),
                            backend: None,
                            policy: None,
                        });
                        config.routes.len() - 1
                    }
                };
                let r = &mut config.routes[index];
                r.backend = None;
                r.policy = Some(policy);
                format!("routes[{index}]")
            }
        };
        // Errors name the policy given here, not the file and a route it may not hold.
        let source = format!("{}: ", config.describe_source());
        let given = match route {
            None => "the default policy given to set_policy".to_owned(),
            Some(prefix) => format!("the policy given to set_policy for route `{prefix}`"),
        };
        self.apply(config).await.map_err(|e| {
            let message = e.message().strip_prefix(&source).unwrap_or(e.message());
            let message = message.replacen(&format!("`{field}"), &format!("{given} (`{field}"), 1);
            let message = if message.contains(&given) {
                message.replacen("`: ", "`): ", 1)
            } else {
                format!("{given}: {message}")
            };
            Error::new(e.kind(), format!("{message}; nothing changed"))
        })
    }

    /// Replaces the whole configuration (Admin on `*`): validated and built
    /// first, swapped in at once; a configuration that fails changes nothing.
    pub async fn reload_config(&self, config: Config) -> Result<()> {
        self.authorize_admin(&AdminCommand::ReloadConfig, Scope::Resource(&Resource::All))?;
        self.apply(config).await
    }

    /// Loads plugin libraries the configuration names that are not loaded yet (Admin on `*`).
    pub async fn reload_plugins(&self) -> Result<()> {
        self.authorize_admin(&AdminCommand::ReloadPlugins, Scope::Resource(&Resource::All))?;
        let config = self.current_config();
        self.shared().registry.load_libraries(&config)
    }
}
