//! Storage classes: a write may name a class (`persistent`, `distributed`,
//! `cache_only` or one of `[classes.NAME]`), a requirement over the
//! backends' properties plus the policy that provides it.
//!
//! - [`ClassSet`] (one per applied configuration) says where a class puts a
//!   key: on the class's own stack when it has a policy, else on the key's
//!   route when that meets the requirement, else on the first backend that
//!   does.
//! - [`ClassIndex`] (one per manager, durable) remembers the class of each
//!   key given one and of each prefix given one (a directory's class in the
//!   mount), so every operation finds a key without probing.
//! - [`moves`] moves keys whose class changed, in the background, with
//!   readers finding them throughout.
//!
//! Keys no class was given to stay on their route, as before classes.

mod index;
pub(crate) mod moves;
mod slots;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

pub(crate) use index::{ClassIndex, Entry, Origin, Via};

use crate::config::{Config, PolicyConfig, Requirement, DEFAULT_CLASSES};
use crate::error::{Error, ErrorKind, Result};
use crate::manager::Route;
use crate::storage::Storage;

/// Prefix of the reserved keys that hold the class index; never a user's key.
pub const CLASS_INDEX_PREFIX: &str = ".tierfs-classes/";

/// Whether `key` is one of the manager's own (refused to callers, hidden in listings).
pub(crate) fn is_reserved(key: &str) -> bool {
    key.starts_with(CLASS_INDEX_PREFIX)
}

/// One storage class as applied.
#[derive(Debug)]
pub(crate) struct Class {
    pub requires: Vec<Requirement>,
    /// Its configured policy's stack: every key of the class goes there.
    pub own: Option<Route>,
    /// Without a policy: where keys go whose route does not meet the
    /// requirement (the first backend that does).
    pub fallback: Option<Route>,
    /// Prefixes of the routes whose stack meets the requirement.
    pub met_by: BTreeSet<String>,
}

/// The classes of one configuration; see the module documentation.
#[derive(Debug, Default)]
pub(crate) struct ClassSet {
    classes: BTreeMap<String, Class>,
    /// Default classes no backend can provide, with what to configure.
    unavailable: BTreeMap<String, String>,
}

/// What a stack offers, in the terms of [`Requirement`].
pub(crate) fn meets(stack: &dyn Storage, members: &[Arc<dyn Storage>], requires: &[Requirement]) -> bool {
    let caps = stack.capabilities();
    requires.iter().all(|r| match r {
        Requirement::Durable => caps.persistent,
        Requirement::Shared => caps.shared,
        Requirement::Ephemeral => members.iter().all(|m| !m.capabilities().persistent),
    })
}

/// How to provide `requires`, for messages.
fn advice(requires: &[Requirement]) -> &'static str {
    if requires.contains(&Requirement::Shared) {
        "a backend that is durable and shared with other hosts (type `s3`)"
    } else if requires.contains(&Requirement::Ephemeral) {
        "a backend that is not durable (type `memory`)"
    } else if requires.contains(&Requirement::Durable) {
        "a durable backend (type `local` or `s3`)"
    } else {
        "any backend"
    }
}

fn describe(requires: &[Requirement]) -> String {
    if requires.is_empty() {
        "nothing".to_owned()
    } else {
        requires.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(" and ")
    }
}

/// What a class needs built: its policy, or the fallback backend's.
#[derive(Debug)]
pub(crate) struct Plan {
    pub name: String,
    pub requires: Vec<Requirement>,
    /// The field to name in errors and the policy to build, if any.
    pub build: Option<(String, PolicyConfig)>,
    /// Whether `build` is the class's own policy (else a fallback).
    pub own: bool,
    /// Why no backend can provide the class, when none can alone.
    pub missing: Option<String>,
}

impl ClassSet {
    /// What to build for the classes of `config`: each class's policy, or
    /// for a class without one the first backend meeting its requirement
    /// (`default_backends`, the default route's, first).
    pub fn plan(
        config: &Config,
        routes: &[&Route],
        backends: &BTreeMap<String, Arc<dyn Storage>>,
    ) -> Vec<Plan> {
        let default_backends: &[String] = routes.first().map(|r| r.backends.as_slice()).unwrap_or_default();
        // A fallback backend is nobody else's, or exactly a route's: a key
        // moving between two stacks that share a backend would be deleted
        // by the move (see `assemble`).
        let free = |b: &str| {
            routes.iter().all(|r| !r.backends.iter().any(|x| x == b) || is_plain(r, b))
                && config.classes.values().filter_map(|c| c.policy()).all(|p| {
                    let used = p.backends(config);
                    !used.iter().any(|x| x == b) || (p.kind() == "always_local" && used == [b])
                })
        };
        let mut names: Vec<(String, Vec<Requirement>, Option<PolicyConfig>)> = Vec::new();
        for (name, requires) in DEFAULT_CLASSES {
            if !config.classes.contains_key(name) {
                names.push((name.to_owned(), requires.to_vec(), None));
            }
        }
        for (name, class) in &config.classes {
            names.push((name.clone(), class.requirements(name), class.policy()));
        }
        names
            .into_iter()
            .map(|(name, requires, policy)| {
                let field = format!("classes.{name}");
                if let Some(policy) = policy {
                    return Plan { name, requires, build: Some((format!("{field}.policy"), policy)), own: true, missing: None };
                }
                let chosen = default_backends
                    .iter()
                    .chain(backends.keys())
                    .find(|b| {
                        free(b)
                            && backends.get(*b).is_some_and(|s| meets(&**s, std::slice::from_ref(s), &requires))
                    })
                    .cloned();
                let missing = chosen.is_none().then(|| {
                    format!(
                        "storage class `{name}` requires {}, and no configured backend provides it: add {}, or give [classes.{name}] a policy",
                        describe(&requires),
                        advice(&requires)
                    )
                });
                let build = chosen.map(|b| (field, PolicyConfig::always_local(&b)));
                Plan { name, requires, build, own: false, missing }
            })
            .collect()
    }

    /// The classes from their plans and what was built for each.
    /// `routes` are the configuration's routes.
    pub fn assemble(
        config: &Config,
        plans: Vec<(Plan, Option<Route>)>,
        routes: &[&Route],
        backends: &BTreeMap<String, Arc<dyn Storage>>,
    ) -> Result<ClassSet> {
        let members = |route: &Route| -> Vec<Arc<dyn Storage>> {
            route.backends.iter().filter_map(|b| backends.get(b).cloned()).collect()
        };
        let mut set = ClassSet::default();
        for (plan, built) in plans {
            let Plan { name, requires, own, missing, .. } = plan;
            let field = format!("classes.{name}");
            let configured = config.classes.contains_key(&name);
            if let (true, Some(route)) = (own, &built) {
                if !meets(&*route.stack, &members(route), &requires) {
                    return Err(config.error(
                        &field,
                        &format!(
                            "requires {}, which its backends ({}) do not all provide; use {} or change `requires`",
                            describe(&requires),
                            route.backends.join(", "),
                            advice(&requires)
                        ),
                    ));
                }
            }
            if let (true, Some(route)) = (own, &built) {
                let others = routes.iter().copied().chain(set.stacks());
                if let Some(other) =
                    others.filter(|o| !same_place(o, route)).find(|o| overlap(o, route).is_some())
                {
                    let shared = overlap(other, route).unwrap_or_default();
                    let whose = if other.prefix.is_empty() {
                        "the default route".to_owned()
                    } else {
                        format!("route `{}`", other.prefix)
                    };
                    return Err(config.error(
                        &field,
                        &format!(
                            "uses backend `{shared}`, which {whose} or another class also uses under another policy; \
                             a move between the two would delete what it copies: give the class backends of its own, \
                             or `backend = \"{shared}\"` when that route is exactly that backend"
                        ),
                    ));
                }
            }
            let met_by: BTreeSet<String> = routes
                .iter()
                .filter(|r| meets(&*r.stack, &members(r), &requires))
                .map(|r| r.prefix.clone())
                .collect();
            if let (None, Some(why)) = (&built, missing) {
                if met_by.is_empty() {
                    if configured {
                        return Err(config.error(&field, &why));
                    }
                    set.unavailable.insert(name, why);
                    continue;
                }
            }
            let (own, fallback) = if own { (built, None) } else { (None, built) };
            set.classes.insert(name, Class { requires, own, fallback, met_by });
        }
        Ok(set)
    }

    /// Class `name`, or why it cannot be used.
    pub fn class(&self, name: &str) -> Result<&Class> {
        if let Some(class) = self.classes.get(name) {
            return Ok(class);
        }
        if let Some(why) = self.unavailable.get(name) {
            return Err(Error::new(ErrorKind::Unsupported, why.clone()));
        }
        Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "unknown storage class `{name}`; configured: {} (define others as [classes.NAME])",
                self.names().join(", ")
            ),
        ))
    }

    /// The usable classes, by name.
    pub fn names(&self) -> Vec<String> {
        self.classes.keys().cloned().collect()
    }

    /// Every class stack (policies and fallbacks).
    pub fn stacks(&self) -> impl Iterator<Item = &Route> {
        self.classes.values().flat_map(|c| c.own.iter().chain(c.fallback.iter()))
    }

    /// The stacks of classes `names` (those the index names).
    pub fn stacks_of(&self, names: &[String]) -> Vec<&Route> {
        names
            .iter()
            .filter_map(|n| self.classes.get(n))
            .flat_map(|c| c.own.iter().chain(c.fallback.iter()))
            .collect()
    }

    /// Where class `name` puts a key whose route is `route`.
    pub fn place<'a>(&'a self, route: &'a Route, name: Option<&str>) -> Result<&'a Route> {
        let Some(name) = name else { return Ok(route) };
        let class = self.class(name)?;
        if let Some(own) = &class.own {
            return Ok(own);
        }
        if class.met_by.contains(&route.prefix) {
            return Ok(route);
        }
        class.fallback.as_ref().ok_or_else(|| {
            Error::new(
                ErrorKind::Unsupported,
                format!(
                    "storage class `{name}` requires {}, which route `{}` does not provide and no other backend does; add {}",
                    describe(&class.requires),
                    route.prefix,
                    advice(&class.requires)
                ),
            )
        })
    }
}

/// Whether `route` is exactly backend `b` (`always_local`).
fn is_plain(route: &Route, b: &str) -> bool {
    route.policy.kind() == "always_local" && route.backends == [b]
}

/// A backend both use.
fn overlap(a: &Route, b: &Route) -> Option<String> {
    a.backends.iter().find(|x| b.backends.contains(x)).cloned()
}

/// Whether two routes are the same place (the same stack).
pub(crate) fn same_place(a: &Route, b: &Route) -> bool {
    std::ptr::addr_eq(Arc::as_ptr(&a.stack), Arc::as_ptr(&b.stack))
}
