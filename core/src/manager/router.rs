//! Prefix routes: the longest configured prefix that starts a key decides
//! which policy stack serves it; keys no route claims go to the default.

use std::sync::Arc;

use bytes::Bytes;

use crate::config::PolicyConfig;
use crate::error::Result;
use crate::key::Key;
use crate::layers::ManagedStorage;
use crate::storage::{
    merge_list, KeyFilter, ListOptions, ListPage, MergeSource, ObjectMeta, PutOptions, Storage,
};

/// One route: a prefix (empty for the default) and the stack behind it.
#[derive(Debug, Clone)]
pub struct Route {
    /// The prefix, ending in `/`; empty for the default route.
    pub prefix: String,
    /// The policy as configured.
    pub policy: PolicyConfig,
    /// Backends the policy uses, in order.
    pub backends: Vec<String>,
    /// The policy stack.
    pub stack: Arc<dyn Storage>,
    /// What the policy asked of the manager (`explain` asks a cache).
    pub hooks: Vec<Arc<dyn crate::policies::PolicyHooks>>,
    /// The stack when it is one managed backend (`always_local`): called
    /// directly rather than through `dyn Storage` on the fast path.
    pub(crate) direct: Option<Arc<ManagedStorage>>,
}

impl Route {
    /// The stack's [`Storage::get_now`].
    #[inline(always)]
    pub(crate) fn get_now(&self, key: &Key) -> Option<Result<Bytes>> {
        match &self.direct {
            Some(direct) => direct.get_now(key),
            None => self.stack.get_now(key),
        }
    }

    /// The stack's [`Storage::put_now`].
    #[inline]
    pub(crate) fn put_now(
        &self,
        key: &Key,
        value: &Bytes,
        options: &PutOptions,
    ) -> Option<Result<ObjectMeta>> {
        match &self.direct {
            Some(direct) => direct.put_now(key, value, options),
            None => self.stack.put_now(key, value, options),
        }
    }
}

/// Routes, longest prefix first, then the default.
#[derive(Debug)]
pub struct Router {
    routes: Vec<Route>,
    default: Route,
}

impl Router {
    /// A router over `routes` and the `default` route.
    pub fn new(mut routes: Vec<Route>, default: Route) -> Self {
        routes.sort_by(|a, b| b.prefix.len().cmp(&a.prefix.len()).then(a.prefix.cmp(&b.prefix)));
        Router { routes, default }
    }

    /// The route serving `key`.
    pub fn route(&self, key: &str) -> &Route {
        self.routes.iter().find(|r| key.starts_with(r.prefix.as_str())).unwrap_or(&self.default)
    }

    /// The default route.
    pub fn default_route(&self) -> &Route {
        &self.default
    }

    /// Every route, the default last.
    pub fn routes(&self) -> impl Iterator<Item = &Route> {
        self.routes.iter().chain(std::iter::once(&self.default))
    }

    /// Lists across routes: a prefix inside one route goes to that route
    /// alone; otherwise the default route and every route inside the prefix
    /// are merged, each contributing only the keys it serves.
    pub async fn list(&self, options: &ListOptions) -> Result<ListPage> {
        if let Some(route) = self.routes.iter().find(|r| options.prefix.starts_with(r.prefix.as_str())) {
            return route.stack.list(options).await;
        }
        let inner: Vec<&Route> =
            self.routes.iter().filter(|r| r.prefix.starts_with(options.prefix.as_str())).collect();
        if inner.is_empty() {
            return self.default.stack.list(options).await;
        }
        let keeps: Vec<Box<KeyFilter>> = std::iter::once(&self.default)
            .chain(inner.iter().copied())
            .map(|route| {
                let prefix = route.prefix.clone();
                let others: Vec<String> = inner
                    .iter()
                    .filter(|r| r.prefix.len() > prefix.len() && r.prefix.starts_with(prefix.as_str()))
                    .map(|r| r.prefix.clone())
                    .collect();
                Box::new(move |key: &str| !others.iter().any(|p| key.starts_with(p.as_str())))
                    as Box<KeyFilter>
            })
            .collect();
        let sources: Vec<MergeSource<'_>> = std::iter::once(&self.default)
            .chain(inner.iter().copied())
            .zip(&keeps)
            .map(|(route, keep)| MergeSource { storage: route.stack.clone(), keep: Some(keep.as_ref()) })
            .collect();
        merge_list(&sources, options).await
    }
}
