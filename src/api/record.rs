//! The request metrics of the TLS listener's API (`tlsward_http_requests_total`,
//! `tlsward_http_request_duration_seconds`): a tower layer around the whole router, so that a
//! request pays for no boxed future or cloned service of its own (a `Router::layer` boxes one
//! per route and per request), and each route's latency histogram is looked up once, not per
//! request.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::Request;
use axum::response::Response;
use prometheus_client::metrics::histogram::Histogram;

use crate::metrics::{HttpLabels, Metrics, RouteLabel, StatusLabel};

/// The route templates of the TLS listener: the only values of the `route` label besides
/// [`UNMATCHED`].
pub(super) const ROUTES: [&str; 3] = ["/", "/users", "/users/{id}"];
/// The `route` label of a path no route matches.
const UNMATCHED: &str = "unmatched";

/// The template of [`ROUTES`] that `path` matches (as the router matches it: `{id}` is one
/// non-empty segment), or [`UNMATCHED`].
pub(super) fn route_of(path: &str) -> &'static str {
    let [root, users, user] = ROUTES;
    match path {
        "/" => root,
        "/users" => users,
        p if p
            .strip_prefix("/users/")
            .is_some_and(|id| !id.is_empty() && !id.contains('/')) =>
        {
            user
        }
        _ => UNMATCHED,
    }
}

/// The histograms of every route label, registered once.
#[derive(Clone)]
struct Latencies {
    routes: [Histogram; 3],
    unmatched: Histogram,
}

impl Latencies {
    fn new(metrics: &Metrics) -> Self {
        let of = |route| metrics.http_duration.get_or_create(&RouteLabel { route }).clone();
        Self {
            routes: ROUTES.map(of),
            unmatched: of(UNMATCHED),
        }
    }

    fn of(&self, route: &'static str) -> &Histogram {
        ROUTES
            .iter()
            .position(|r| *r == route)
            .map_or(&self.unmatched, |i| &self.routes[i])
    }
}

/// `inner` with every request counted by route, method and status, and timed by route.
#[derive(Clone)]
pub struct Recorded<S> {
    inner: S,
    metrics: Arc<Metrics>,
    latencies: Latencies,
}

impl<S> Recorded<S> {
    pub(super) fn new(inner: S, metrics: Arc<Metrics>) -> Self {
        let latencies = Latencies::new(&metrics);
        Self {
            inner,
            metrics,
            latencies,
        }
    }
}

impl<S> tower::Service<Request> for Recorded<S>
where
    S: tower::Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Recording<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let route = route_of(req.uri().path());
        let method = crate::metrics::method_label(req.method());
        Recording {
            inner: self.inner.call(req),
            route,
            method,
            start: Instant::now(),
            metrics: self.metrics.clone(),
            latency: self.latencies.of(route).clone(),
        }
    }
}

pin_project_lite::pin_project! {
    /// A request's response future, recorded when it is ready.
    pub struct Recording<F> {
        #[pin]
        inner: F,
        route: &'static str,
        method: &'static str,
        start: Instant,
        metrics: Arc<Metrics>,
        latency: Histogram,
    }
}

impl<F, E> Future for Recording<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let out = std::task::ready!(this.inner.poll(cx));
        if let Ok(resp) = &out {
            let labels = HttpLabels {
                route: this.route,
                method: this.method,
                status: StatusLabel::of(resp.status()),
            };
            this.metrics.http_requests.get_or_create(&labels).inc();
            this.latency.observe(this.start.elapsed().as_secs_f64());
        }
        Poll::Ready(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_get_the_template_the_router_matches() {
        for (path, want) in [
            ("/", "/"),
            ("/users", "/users"),
            ("/users/42", "/users/{id}"),
            ("/users/not-a-number", "/users/{id}"),
            ("/users/", UNMATCHED),
            ("/users/1/2", UNMATCHED),
            ("/usersx", UNMATCHED),
            ("//", UNMATCHED),
            ("/metrics", UNMATCHED),
        ] {
            assert_eq!(route_of(path), want, "{path}");
        }
    }

    #[test]
    fn each_route_has_its_own_histogram() {
        let m = Metrics::new();
        let l = Latencies::new(&m);
        l.of("/users/{id}").observe(0.5);
        l.of(UNMATCHED).observe(0.25);
        let text = m.render();
        assert!(
            text.contains(r#"tlsward_http_request_duration_seconds_sum{route="/users/{id}"} 0.5"#),
            "{text}"
        );
        assert!(
            text.contains(r#"tlsward_http_request_duration_seconds_sum{route="unmatched"} 0.25"#),
            "{text}"
        );
        assert!(
            text.contains(r#"tlsward_http_request_duration_seconds_count{route="/"} 0"#),
            "{text}"
        );
    }
}
