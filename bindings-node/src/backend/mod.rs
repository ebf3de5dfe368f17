//! Backends written in JavaScript: `registerBackend(name, impl)`.
//!
//! A [`JsBackendType`] is a core [`StoragePlugin`] registered in the
//! process-wide registry under the user's type name, so configurations name
//! it (`type = "name"`) like any built-in type, and it sits under the same
//! policies, access control, audit and metrics. Each backend it creates is
//! a [`JsStorage`] whose calls travel to the JavaScript thread through one
//! weak thread-safe function (it does not keep the process alive) and await
//! the promise the user's method returns. The message protocol is in
//! [`protocol`]; the user-facing contract is `BackendImpl` in `index.d.ts`.

pub mod protocol;
mod storage;

use std::sync::Arc;
use std::thread::ThreadId;

use async_trait::async_trait;
use napi::bindgen_prelude::{Function, Promise};
use napi::threadsafe_function::ThreadsafeFunction;
use napi::{Env, Status};
use napi_derive::napi;
use tierfs_core::config::BackendSettings;
use tierfs_core::{Capabilities, Error, ErrorKind, Result, Storage, StoragePlugin};

use crate::convert::toml_to_json;
use crate::error::kind_of_code;
use crate::task;
pub use protocol::{BackendRequest, BackendResponse};
pub use storage::JsStorage;

/// The thread-safe function that reaches the dispatcher: weak, and errors
/// are not passed as a first argument.
type Dispatch =
    ThreadsafeFunction<BackendRequest, Promise<BackendResponse>, BackendRequest, Status, false, true>;

/// The way to one JavaScript dispatcher, shared by every backend of a type.
pub struct Remote {
    dispatch: Dispatch,
    /// The JavaScript thread the dispatcher lives on.
    home: ThreadId,
    type_name: String,
}

impl Remote {
    /// Sends `request` and waits for the answer; `backend` and the request's
    /// key give errors their context.
    pub async fn call(
        &self,
        backend: &str,
        op: &'static str,
        request: BackendRequest,
    ) -> Result<BackendResponse> {
        let key = request.key.clone();
        let context = |e: Error| {
            let e = e.with_backend(backend).with_operation(op);
            match &key {
                Some(k) => e.or_key(k),
                None => e,
            }
        };
        if task::is_blocked(self.home) {
            return Err(context(Error::new(
                ErrorKind::Unsupported,
                format!(
                    "backend type `{}` is written in JavaScript and its thread is blocked in a sync call; \
                     use the async method instead",
                    self.type_name
                ),
            )));
        }
        let unreachable = |e: napi::Error| {
            context(Error::new(
                ErrorKind::Unavailable,
                format!("the JavaScript backend could not be reached ({e}); is the process exiting?"),
            ))
        };
        let pending = self.dispatch.call_async_catch(request).await.map_err(unreachable)?;
        let response = pending.await.map_err(unreachable)?;
        match response.error {
            None => Ok(response),
            Some(err) => {
                let kind = kind_of_code(err.code.as_deref());
                Err(context(Error::new(kind, format!("backend type `{}`: {}", self.type_name, err.message))))
            }
        }
    }
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote").field("type_name", &self.type_name).finish_non_exhaustive()
    }
}

/// A backend type implemented in JavaScript.
#[derive(Debug)]
pub struct JsBackendType {
    remote: Arc<Remote>,
}

#[async_trait]
impl StoragePlugin for JsBackendType {
    fn type_name(&self) -> &str {
        &self.remote.type_name
    }

    async fn create(&self, settings: BackendSettings<'_>) -> Result<Arc<dyn Storage>> {
        let mut request = BackendRequest::new("create", 0);
        request.name = Some(settings.name.to_owned());
        request.settings = Some(toml_to_json(&toml::Value::Table(settings.table.clone())));
        let response = self
            .remote
            .call(settings.name, "create", request)
            .await
            .map_err(|e| settings.error("type", e.message()))?;
        let instance = response
            .instance
            .ok_or_else(|| settings.error("type", "the JavaScript factory returned no backend"))?;
        let caps = response.capabilities.map_or_else(Capabilities::default, |c| Capabilities {
            atomic_batch: c.atomic_batch,
            range_read: c.range_read,
            rename: false,
            persistent: c.persistent,
            shared: c.shared,
            conditional_put: c.conditional_put,
            streaming: false,
            partial_write: false,
        });
        Ok(Arc::new(JsStorage::new(settings.name.to_owned(), instance, caps, self.remote.clone())))
    }
}

/// Registers backend type `name`, served by `dispatch` (built by
/// `registerBackend` in `index.js`), in the process-wide registry.
#[napi]
pub fn register_backend(
    env: Env,
    name: String,
    dispatch: Function<'_, BackendRequest, Promise<BackendResponse>>,
) -> napi::Result<()> {
    let dispatch: Dispatch =
        dispatch.build_threadsafe_function().weak::<true>().callee_handled::<false>().build()?;
    let remote = Arc::new(Remote { dispatch, home: std::thread::current().id(), type_name: name });
    crate::registry::shared()
        .register(Arc::new(JsBackendType { remote }))
        .map_err(|e| crate::error::to_js(&env, &e))
}

/// The registered backend type names, sorted.
#[napi]
pub fn backend_types() -> Vec<String> {
    crate::registry::shared().types()
}
