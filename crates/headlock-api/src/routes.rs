//! The route table: every route is mounted through [`Routes`], which builds the axum
//! [`Router`] and records each `(method, path template)` it mounts. The OpenAPI
//! document ([`crate::openapi`]) must describe exactly the recorded set; a test compares
//! the two, so a route mounted without a description fails it. Resource modules mount
//! their routes only through [`Routes`], never with `Router::route` directly.

use axum::Router;
use axum::handler::Handler;
use axum::http::Method;
use axum::routing::{MethodFilter, MethodRouter, on};

use crate::AppState;

/// A router under construction and the `(method, path template)` pairs mounted on it.
#[derive(Default)]
pub struct Routes {
    router: Router<AppState>,
    table: Vec<(Method, String)>,
}

impl Routes {
    /// No routes yet.
    pub fn new() -> Routes {
        Routes::default()
    }

    /// Mounts `handler` for `method` on `path`, with `wrap` applied to its method router
    /// (e.g. a per-route body limit).
    pub fn with<H, T>(
        mut self,
        method: Method,
        path: &str,
        handler: H,
        wrap: impl FnOnce(MethodRouter<AppState>) -> MethodRouter<AppState>,
    ) -> Routes
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        let filter = MethodFilter::try_from(method.clone()).expect("a standard method");
        self.router = self.router.route(path, wrap(on(filter, handler)));
        self.table.push((method, path.to_string()));
        self
    }

    /// Mounts `handler` for `method` on `path`.
    pub fn on<H, T>(self, method: Method, path: &str, handler: H) -> Routes
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        self.with(method, path, handler, |m| m)
    }

    /// `GET path`.
    pub fn get<H: Handler<T, AppState>, T: 'static>(self, path: &str, handler: H) -> Routes {
        self.on(Method::GET, path, handler)
    }

    /// `POST path`.
    pub fn post<H: Handler<T, AppState>, T: 'static>(self, path: &str, handler: H) -> Routes {
        self.on(Method::POST, path, handler)
    }

    /// `PUT path`.
    pub fn put<H: Handler<T, AppState>, T: 'static>(self, path: &str, handler: H) -> Routes {
        self.on(Method::PUT, path, handler)
    }

    /// `PATCH path`.
    pub fn patch<H: Handler<T, AppState>, T: 'static>(self, path: &str, handler: H) -> Routes {
        self.on(Method::PATCH, path, handler)
    }

    /// `DELETE path`.
    pub fn delete<H: Handler<T, AppState>, T: 'static>(self, path: &str, handler: H) -> Routes {
        self.on(Method::DELETE, path, handler)
    }

    /// `HEAD path`.
    pub fn head<H: Handler<T, AppState>, T: 'static>(self, path: &str, handler: H) -> Routes {
        self.on(Method::HEAD, path, handler)
    }

    /// Both route sets.
    pub fn merge(mut self, other: Routes) -> Routes {
        self.router = self.router.merge(other.router);
        self.table.extend(other.table);
        self
    }

    /// `other` under `prefix`.
    pub fn nest(mut self, prefix: &str, other: Routes) -> Routes {
        self.router = self.router.nest(prefix, other.router);
        self.table.extend(
            other
                .table
                .into_iter()
                .map(|(m, p)| (m, format!("{prefix}{p}"))),
        );
        self
    }

    /// Applies `f` to the router (layers); the table is unchanged.
    pub fn map(mut self, f: impl FnOnce(Router<AppState>) -> Router<AppState>) -> Routes {
        self.router = f(self.router);
        self
    }

    /// The router and the table, sorted by path then method.
    pub fn into_parts(mut self) -> (Router<AppState>, Vec<(Method, String)>) {
        self.table
            .sort_by(|a, b| (&a.1, a.0.as_str()).cmp(&(&b.1, b.0.as_str())));
        (self.router, self.table)
    }
}
