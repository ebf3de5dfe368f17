//! Delegation: who may add and remove rules at run time.
//!
//! A principal's *authority* over a resource is the broadest resource
//! enclosing it (`*`, then each enclosing directory, then the resource
//! itself) on which it holds admin. An administrator of `*` may do
//! anything, and can always recover: its admin on `*` is decided by rules
//! on `*` alone, which nobody below it may write. Below it, a *delegate*
//! (admin on, say, `team/`):
//!
//! 1. needs admin on the rule's resource;
//! 2. grants no more than it holds there itself (for every operation the
//!    rule covers, the delegate must be allowed it on the resource, and on
//!    every resource inside it that a rule names: a grant on `team/`
//!    reaches `team/secret.txt` too), nor on the routes inside it, nor,
//!    for a grant on a backend, anywhere routed to it;
//! 3. names no principal that holds admin on an enclosing resource: not
//!    another administrator (by its id, with the roles it is known to
//!    hold: see [`Delegation::with_known`]), not a role holding admin
//!    there or one an administrator is known to hold, and not `*` while
//!    anyone else holds admin there;
//! 4. lifts no denial (`none` rule) made with more authority than its
//!    own: a grant that is more specific than a `none` rule set from
//!    above, for a principal that rule may cover, is refused;
//! 5. removes only rules inside what it administers whose authority its
//!    own encloses (rules of the configuration have the authority of `*`).
//!
//! So no sequence of delegated operations gives anyone a right the
//! delegate does not hold, or removes a denial it could not have made.

use super::evaluator::{AccessEvaluator, Target};
use super::principal::Principal;
use super::types::{
    AccessLevel, AccessRule, PrincipalPattern, Provenance, Resource, StorageOperationType as Op,
};

/// The delegation rules over the rules in force.
///
/// ```
/// use tierfs_core::access::{AccessEvaluator, AccessLevel, AccessPolicy, AccessRule, Delegation, Principal};
///
/// let policy = AccessPolicy {
///     rules: vec![
///         AccessRule::parse("root", "*", "*", "full").unwrap(),
///         AccessRule::parse("lead", "team/", "*", "full").unwrap(),
///         AccessRule::parse("lead", "team/secret.txt", "read", "none").unwrap(),
///     ],
///     default: AccessLevel::None,
/// };
/// let eval = AccessEvaluator::new(&policy);
/// let no_backends = |_: &str| Vec::new();
/// let d = Delegation::new(&eval, &no_backends);
/// let lead = Principal::new("lead");
/// // lead may let bob read team/doc ...
/// assert!(d.may_add(&lead, &AccessRule::parse("bob", "team/doc", "*", "read").unwrap()).is_ok());
/// // ... but not lift root's deny on itself, nor lock root out of team/.
/// assert!(d.may_remove(&lead, &policy.rules[2]).is_err());
/// assert!(d.may_add(&lead, &AccessRule::parse("root", "team/", "*", "none").unwrap()).is_err());
/// // root can always recover.
/// assert!(d.may_remove(&Principal::new("root"), &policy.rules[2]).is_ok());
/// ```
pub struct Delegation<'a> {
    eval: &'a AccessEvaluator,
    backends: &'a dyn Fn(&str) -> Vec<String>,
    known: Option<&'a KnownRoles<'a>>,
    members: Option<&'a RoleMembers<'a>>,
    routes: &'a [String],
}

/// Gives a user id with the roles it is known to hold.
pub type KnownRoles<'a> = dyn Fn(&str) -> Option<Principal> + 'a;

/// Gives the principals known to hold a role.
pub type RoleMembers<'a> = dyn Fn(&str) -> Vec<Principal> + 'a;

impl<'a> Delegation<'a> {
    /// Delegation over `eval`; `backends` gives the backends a key or
    /// prefix routes to.
    pub fn new(eval: &'a AccessEvaluator, backends: &'a dyn Fn(&str) -> Vec<String>) -> Self {
        Delegation { eval, backends, known: None, members: None, routes: &[] }
    }

    /// Also asks `members` for the principals known to hold a role, so
    /// that a rule for a role some administrator holds is refused.
    pub fn with_members(mut self, members: &'a RoleMembers<'a>) -> Self {
        self.members = Some(members);
        self
    }

    /// The route prefixes of the configuration: a grant on a directory
    /// reaches the routes inside it, whose backends may differ.
    pub fn with_routes(mut self, routes: &'a [String]) -> Self {
        self.routes = routes;
        self
    }

    /// Also asks `known` for the roles a user id is known to hold, so that
    /// a rule naming an administrator who holds admin through a role is
    /// refused too (rules cannot tell role membership by themselves).
    pub fn with_known(mut self, known: &'a KnownRoles<'a>) -> Self {
        self.known = Some(known);
        self
    }

    /// User `id` with the roles it is known to hold.
    fn user(&self, id: &str) -> Principal {
        self.known.and_then(|known| known(id)).unwrap_or_else(|| Principal::new(id))
    }

    fn allowed(&self, who: &Principal, op: Op, resource: &Resource) -> bool {
        let routed = match resource {
            Resource::Key(k) | Resource::Prefix(k) => (self.backends)(k),
            _ => Vec::new(),
        };
        let target = match resource {
            Resource::Key(key) => Target::Key { key, backends: &routed },
            Resource::Prefix(prefix) => Target::Prefix { prefix, backends: &routed },
            Resource::Backend(name) => Target::Backend(name),
            Resource::All => Target::All,
        };
        self.eval.decide(who, op, target).allowed
    }

    /// Whether `who` may do `op` on `path`: a key, or a directory prefix
    /// (ending in `/`, `""` for the root).
    fn allowed_path(&self, who: &Principal, op: Op, path: &str) -> bool {
        let routed = (self.backends)(path);
        let target = if path.is_empty() || path.ends_with('/') {
            Target::Prefix { prefix: path, backends: &routed }
        } else {
            Target::Key { key: path, backends: &routed }
        };
        self.eval.decide(who, op, target).allowed
    }

    /// Where a grant on `resource` may reach whose rights can differ from
    /// the resource's own: the keys and prefixes rules name inside it, the
    /// route prefixes inside it, and for a backend every such path (and
    /// the root) routed to it.
    fn reach(&self, resource: &Resource) -> Vec<String> {
        let named = self.eval.rules().filter_map(|r| match &r.resource {
            Resource::Key(p) | Resource::Prefix(p) => Some(p.clone()),
            _ => None,
        });
        let mut paths: Vec<String> = named.chain(self.routes.iter().cloned()).collect();
        match resource {
            Resource::Key(_) => paths.clear(),
            Resource::Prefix(prefix) => paths.retain(|p| p.starts_with(prefix.as_str()) && p != prefix),
            Resource::Backend(b) => {
                paths.push(String::new());
                paths.retain(|p| (self.backends)(p).contains(b));
            }
            Resource::All => {}
        }
        paths.sort();
        paths.dedup();
        paths
    }

    /// Whether `who` administers everything (admin on `*`).
    pub fn is_superadmin(&self, who: &Principal) -> bool {
        self.allowed(who, Op::Admin, &Resource::All)
    }

    /// Whether `who` may administer `resource`: admin there, or on `*`.
    pub fn may_administer(&self, who: &Principal, resource: &Resource) -> bool {
        self.allowed(who, Op::Admin, resource) || self.is_superadmin(who)
    }

    /// `who`'s authority over `resource`: the broadest enclosing resource
    /// on which it holds admin; `None` when it holds admin on none.
    pub fn authority(&self, who: &Principal, resource: &Resource) -> Option<Resource> {
        enclosing(resource).into_iter().find(|r| self.allowed(who, Op::Admin, r))
    }

    /// The provenance `who` gives `rule` by adding it, or why it may not.
    pub fn may_add(&self, who: &Principal, rule: &AccessRule) -> Result<Provenance, String> {
        let Some(authority) = self.authority(who, &rule.resource) else {
            return Err(format!(
                "`{who}` holds admin neither on `{}` nor on anything enclosing it",
                rule.resource
            ));
        };
        let provenance = Provenance { principal: who.id().to_owned(), authority: authority.clone() };
        if authority == Resource::All {
            return Ok(provenance);
        }
        if !self.allowed(who, Op::Admin, &rule.resource) {
            return Err(format!("`{who}` does not hold admin on `{}` itself", rule.resource));
        }
        // 2. No more than the delegate holds there, nor anywhere inside
        //    (a grant on `team/` reaches `team/secret` too, unless a rule
        //    for the grantee says otherwise there).
        let covered: Vec<Op> = Op::ALL
            .into_iter()
            .filter(|op| rule.operation.is_none_or(|o| o == *op) && rule.level.covers(*op))
            .collect();
        if !covered.is_empty() {
            if let Some(op) = covered.iter().find(|op| !self.allowed(who, **op, &rule.resource)) {
                return Err(format!(
                    "it does not hold {op} on `{}` itself; delegation cannot go beyond one's own rights",
                    rule.resource
                ));
            }
            for path in self.reach(&rule.resource) {
                if let Some(op) = covered.iter().find(|op| !self.allowed_path(who, **op, &path)) {
                    let shown = if path.is_empty() { "the root" } else { path.as_str() };
                    return Err(format!(
                        "it does not hold {op} on `{shown}`, which the rule reaches; delegation cannot go beyond one's own rights"
                    ));
                }
            }
        }
        // 3. No rule over an administrator above or beside the delegate.
        if let Some(admin) = self.administrator_named(who, rule) {
            return Err(format!(
                "the rule would bind {admin}, who holds admin on a resource enclosing `{}`; only an administrator above it may",
                rule.resource
            ));
        }
        // 4. No grant over a denial made with more authority.
        if rule.level != AccessLevel::None {
            if let Some(deny) = self.denial_lifted(rule, &authority) {
                return Err(format!(
                    "the rule would lift the denial `{deny}`, set with authority over `{}`",
                    deny.authority()
                ));
            }
        }
        Ok(provenance)
    }

    /// Whether `who` may remove `rule` (as in force, with its provenance):
    /// it administers the rule's resource, and its authority encloses the
    /// rule's. (A delegate may always revoke what it granted, even after
    /// its own rights were narrowed.)
    pub fn may_remove(&self, who: &Principal, rule: &AccessRule) -> Result<(), String> {
        let Some(authority) = self.authority(who, &rule.resource) else {
            return Err(format!(
                "`{who}` holds admin neither on `{}` nor on anything enclosing it",
                rule.resource
            ));
        };
        if authority != Resource::All && !self.allowed(who, Op::Admin, &rule.resource) {
            return Err(format!("`{who}` does not hold admin on `{}` itself", rule.resource));
        }
        let provenance = Provenance { principal: who.id().to_owned(), authority };
        if !rule.authority().is_within(&provenance.authority) {
            let by = match &rule.added_by {
                Some(p) => format!("added by `{}` with authority over `{}`", p.principal, p.authority),
                None => "a rule of the configuration (authority over `*`)".to_owned(),
            };
            return Err(format!(
                "it is {by}, above `{who}`'s authority over `{}`; only an administrator of that may remove it",
                provenance.authority
            ));
        }
        Ok(())
    }

    /// An administrator other than `who` that `rule` would bind, described.
    fn administrator_named(&self, who: &Principal, rule: &AccessRule) -> Option<String> {
        let chain = enclosing(&rule.resource);
        let holds_admin = |p: &Principal| chain.iter().any(|r| self.allowed(p, Op::Admin, r));
        match &rule.principal {
            PrincipalPattern::User(u) if u == who.id() => None,
            PrincipalPattern::User(u) => holds_admin(&self.user(u)).then(|| format!("`{u}`")),
            PrincipalPattern::Role(r) => {
                if holds_admin(&Principal::new("\u{0}member").with_role(r.clone())) {
                    return Some(format!("role `{r}`"));
                }
                // A member known to hold admin on its own account.
                let members = self.members.map(|m| m(r)).unwrap_or_default();
                members
                    .iter()
                    .find(|m| m.id() != who.id() && holds_admin(m))
                    .map(|m| format!("`{}`, a member of role `{r}`", m.id()))
            }
            PrincipalPattern::Any => {
                let default_admin = self.eval.default_level().covers(Op::Admin);
                let other = self.eval.rules().find(|a| {
                    a.level.covers(Op::Admin)
                        && a.operation.is_none_or(|o| o == Op::Admin)
                        && chain.contains(&a.resource)
                        && a.principal != PrincipalPattern::User(who.id().to_owned())
                });
                match (other, default_admin) {
                    (Some(a), _) => Some(format!("everyone, including `{}` (rule `{a}`)", a.principal)),
                    (None, true) => Some("everyone, and everyone holds admin by default".to_owned()),
                    (None, false) => None,
                }
            }
        }
    }

    /// A `none` rule with authority beyond `authority` that `rule` (a
    /// grant) would overrule for someone it may cover.
    fn denial_lifted(&self, rule: &AccessRule, authority: &Resource) -> Option<AccessRule> {
        let specificity = rule.resource.specificity();
        self.eval
            .rules()
            .find(|d| {
                d.level == AccessLevel::None
                    && !d.authority().is_within(authority)
                    && d.resource.specificity() < specificity
                    && encloses(&d.resource, &rule.resource)
                    && (d.operation.is_none() || rule.operation.is_none() || d.operation == rule.operation)
                    && may_overlap(&d.principal, &rule.principal)
            })
            .cloned()
    }
}

/// `resource` and what encloses it, broadest first: `*`, each enclosing
/// directory, the resource.
fn enclosing(resource: &Resource) -> Vec<Resource> {
    let mut chain = vec![Resource::All];
    match resource {
        Resource::All => return chain,
        Resource::Backend(_) => {}
        Resource::Key(path) | Resource::Prefix(path) => {
            let body = path.strip_suffix('/').unwrap_or(path);
            for (i, _) in body.match_indices('/') {
                chain.push(Resource::Prefix(format!("{}/", &body[..i])));
            }
        }
    }
    chain.push(resource.clone());
    chain
}

/// Whether `outer` covers everything `inner` does (a backend covers the
/// keys routed to it, which is not known here: a backend rule is taken to
/// cover every key and prefix).
fn encloses(outer: &Resource, inner: &Resource) -> bool {
    matches!(outer, Resource::Backend(_)) && !matches!(inner, Resource::All) || inner.is_within(outer)
}

/// Whether some principal may match both patterns. Role membership is not
/// known to the rules, so a user may be in any role.
fn may_overlap(a: &PrincipalPattern, b: &PrincipalPattern) -> bool {
    match (a, b) {
        (PrincipalPattern::Any, _) | (_, PrincipalPattern::Any) => true,
        (PrincipalPattern::User(x), PrincipalPattern::User(y)) => x == y,
        (PrincipalPattern::Role(x), PrincipalPattern::Role(y)) => x == y,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chains_run_from_everything_to_the_resource() {
        let chain = enclosing(&Resource::parse("a/b/c.txt").unwrap());
        let names: Vec<String> = chain.iter().map(ToString::to_string).collect();
        assert_eq!(names, ["*", "a/", "a/b/", "a/b/c.txt"]);
        let chain = enclosing(&Resource::parse("a/b/").unwrap());
        let names: Vec<String> = chain.iter().map(ToString::to_string).collect();
        assert_eq!(names, ["*", "a/", "a/b/"]);
        assert_eq!(enclosing(&Resource::All), [Resource::All]);
    }
}
