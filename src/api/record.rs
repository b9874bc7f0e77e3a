//! The request metrics of the TLS listener's API (`tlsward_http_requests_total`,
//! `tlsward_http_request_duration_seconds`): a tower layer around the whole router, so that a
//! request pays for no boxed future or cloned service of its own (a `Router::layer` boxes one
//! per route and per request), and each route's latency histogram is looked up once, not per
//! request.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::Request;
use axum::response::Response;
use prometheus_client::metrics::histogram::Histogram;

use crate::metrics::{HttpLabels, Metrics, RouteLabel, StatusLabel};

/// The route templates of the TLS listener: the only values of the `route` label besides
/// [`UNMATCHED`].
pub(super) const ROUTES: [&str; 3] = ["/", "/users", "/users/{id}"];
/// The `route` label of a path no route matches.
const UNMATCHED: &str = "unmatched";

/// The routes as the router matches them (axum's own matcher, built from [`ROUTES`]), the
/// metrics, and each route's latency histogram registered once: what every request shares.
struct Recorder {
    routes: matchit::Router<usize>,
    metrics: Arc<Metrics>,
    latencies: [Histogram; 3],
    unmatched: Histogram,
}

impl Recorder {
    fn new(metrics: Arc<Metrics>) -> Self {
        let mut routes = matchit::Router::new();
        for (i, route) in ROUTES.into_iter().enumerate() {
            routes
                .insert(route, i)
                .expect("the route templates are distinct and valid");
        }
        let histogram = |route| metrics.http_duration.get_or_create(&RouteLabel { route }).clone();
        Self {
            routes,
            latencies: ROUTES.map(histogram),
            unmatched: histogram(UNMATCHED),
            metrics,
        }
    }

    /// The index in [`ROUTES`] of the template `path` matches, if any.
    fn route_of(&self, path: &str) -> Option<usize> {
        self.routes.at(path).ok().map(|m| *m.value)
    }

    fn record(&self, route: Option<usize>, method: &'static str, status: http::StatusCode, took: Duration) {
        let labels = HttpLabels {
            route: route.map_or(UNMATCHED, |i| ROUTES[i]),
            method,
            status: StatusLabel::of(status),
        };
        self.metrics.http_requests.get_or_create(&labels).inc();
        let latency = route.map_or(&self.unmatched, |i| &self.latencies[i]);
        latency.observe(took.as_secs_f64());
    }
}

/// `inner` with every request counted by route, method and status, and timed by route.
#[derive(Clone)]
pub struct Recorded<S> {
    inner: S,
    recorder: Arc<Recorder>,
}

impl<S> Recorded<S> {
    pub(super) fn new(inner: S, metrics: Arc<Metrics>) -> Self {
        Self {
            inner,
            recorder: Arc::new(Recorder::new(metrics)),
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
        let route = self.recorder.route_of(req.uri().path());
        let method = crate::metrics::method_label(req.method());
        Recording {
            inner: self.inner.call(req),
            route,
            method,
            start: Instant::now(),
            recorder: self.recorder.clone(),
        }
    }
}

pin_project_lite::pin_project! {
    /// A request's response future, recorded when it is ready.
    pub struct Recording<F> {
        #[pin]
        inner: F,
        route: Option<usize>,
        method: &'static str,
        start: Instant,
        recorder: Arc<Recorder>,
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
            this.recorder
                .record(*this.route, this.method, resp.status(), this.start.elapsed());
        }
        Poll::Ready(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn label_of(r: &Recorder, path: &str) -> &'static str {
        r.route_of(path).map_or(UNMATCHED, |i| ROUTES[i])
    }

    #[test]
    fn paths_get_the_template_the_router_matches() {
        let r = Recorder::new(Arc::new(Metrics::new()));
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
            assert_eq!(label_of(&r, path), want, "{path}");
        }
    }

    #[test]
    fn each_route_has_its_own_histogram() {
        let m = Arc::new(Metrics::new());
        let r = Recorder::new(m.clone());
        let ok = http::StatusCode::OK;
        r.record(r.route_of("/users/7"), "GET", ok, Duration::from_millis(500));
        r.record(
            r.route_of("/nope"),
            "GET",
            http::StatusCode::NOT_FOUND,
            Duration::from_millis(250),
        );
        let text = m.render();
        for want in [
            r#"tlsward_http_request_duration_seconds_sum{route="/users/{id}"} 0.5"#,
            r#"tlsward_http_request_duration_seconds_sum{route="unmatched"} 0.25"#,
            r#"tlsward_http_request_duration_seconds_count{route="/"} 0"#,
            r#"tlsward_http_requests_total{route="/users/{id}",method="GET",status="200"} 1"#,
            r#"tlsward_http_requests_total{route="unmatched",method="GET",status="404"} 1"#,
        ] {
            assert!(text.contains(want), "{want} missing in {text}");
        }
    }
}
