//! The users API end to end: real TLS, real tokens, real PostgreSQL with client-cert auth.

use tlsward_testkit as support;

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{TestServer, postgres, serve_args, start};

async fn create(s: &TestServer, username: &str, email: &str) -> reqwest::Response {
    s.client
        .post(format!("{}/users", s.base))
        .bearer_auth(s.token())
        .json(&json!({"username": username, "email": email}))
        .send()
        .await
        .unwrap()
}

/// Status and error code of an authenticated `GET url`.
async fn authed_error(s: &TestServer, url: &str) -> (StatusCode, String) {
    error_code(s.client.get(url).bearer_auth(s.token()).send().await.unwrap()).await
}

/// The JSON body of an authenticated `GET url`.
async fn authed_json(s: &TestServer, url: &str) -> Value {
    s.client
        .get(url)
        .bearer_auth(s.token())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn error_code(resp: reqwest::Response) -> (StatusCode, String) {
    let status = resp.status();
    let body: Value = resp.json().await.unwrap();
    (status, body["error"]["code"].as_str().unwrap_or_default().to_string())
}

#[tokio::test]
async fn users_crud_over_tls_with_token() {
    let s = start(serve_args(&[])).await;
    let resp = create(&s, "alice", "alice@example.com").await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let location = resp.headers()["location"].to_str().unwrap().to_string();
    let created: Value = resp.json().await.unwrap();
    let id = created["id"].as_i64().unwrap();
    assert_eq!(location, format!("/users/{id}"));

    let got: Value = authed_json(&s, &format!("{}{location}", s.base)).await;
    assert_eq!(got["username"], "alice");
    assert_eq!(got["email"], "alice@example.com");
    assert!(got["created_at"].as_str().unwrap().ends_with('Z'));

    let delete = || {
        s.client
            .delete(format!("{}{location}", s.base))
            .bearer_auth(s.token())
            .send()
    };
    assert_eq!(delete().await.unwrap().status(), StatusCode::NO_CONTENT);
    let (status, code) = authed_error(&s, &format!("{}{location}", s.base)).await;
    assert_eq!((status, code.as_str()), (StatusCode::NOT_FOUND, "not_found"));
    assert_eq!(delete().await.unwrap().status(), StatusCode::NOT_FOUND);
    s.running.shutdown().await;
}

#[tokio::test]
async fn lists_users_with_keyset_pagination() {
    let s = start(serve_args(&[])).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let u: Value = create(&s, &format!("page{i}"), &format!("p{i}@example.com"))
            .await
            .json()
            .await
            .unwrap();
        ids.push(u["id"].as_i64().unwrap());
    }
    ids.sort();
    let mut seen = Vec::new();
    let mut after = 0i64;
    loop {
        let page: Value = authed_json(&s, &format!("{}/users?limit=2&after={after}", s.base)).await;
        seen.extend(
            page["users"]
                .as_array()
                .unwrap()
                .iter()
                .map(|u| u["id"].as_i64().unwrap()),
        );
        match page["next_after"].as_i64() {
            Some(n) => after = n,
            None => break,
        }
    }
    assert_eq!(seen, ids);
    for bad in ["limit=0", "limit=1001", "limit=x", "after=-1", "offset=3"] {
        let (status, code) = authed_error(&s, &format!("{}/users?{bad}", s.base)).await;
        assert_eq!((status, code.as_str()), (StatusCode::BAD_REQUEST, "bad_query"), "{bad}");
    }
    s.running.shutdown().await;
}

#[tokio::test]
async fn duplicate_username_is_409() {
    let s = start(serve_args(&[])).await;
    assert_eq!(create(&s, "bob", "bob@example.com").await.status(), StatusCode::CREATED);
    let (status, code) = error_code(create(&s, "bob", "other@example.com").await).await;
    assert_eq!((status, code.as_str()), (StatusCode::CONFLICT, "conflict"));
    s.running.shutdown().await;
}

#[tokio::test]
async fn refuses_missing_expired_unknown_kid_and_forged_tokens() {
    let s = start(serve_args(&[])).await;
    let url = format!("{}/users/1", s.base);
    let resp = s.client.get(&url).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(resp.headers()["www-authenticate"], r#"Bearer realm="tlsward""#);

    let keys = tlsward::token::TokenKeys::load_dir(&postgres().token_dir).unwrap();
    let expired = keys.issue("x", Duration::from_secs(60), tlsward::util::now_unix() - 3600);
    let other_dir = postgres().scratch();
    std::fs::write(other_dir.join("zz-unknown"), tlsward::token::generate_key_text()).unwrap();
    let unknown = tlsward::token::TokenKeys::load_dir(&other_dir).unwrap().issue(
        "x",
        Duration::from_secs(60),
        tlsward::util::now_unix(),
    );
    let mut forged = s.token();
    forged.truncate(forged.len() - 4);
    forged.push_str("AAAA");
    for (token, why) in [
        (expired, "token expired"),
        (unknown, "unknown key id"),
        (forged, "bad token signature"),
        ("x.y".to_string(), "malformed"),
    ] {
        let resp = s.client.get(&url).bearer_auth(&token).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{why}");
        let challenge = resp.headers()["www-authenticate"].to_str().unwrap().to_string();
        assert!(
            challenge.contains(r#"error="invalid_token""#) && challenge.contains(why),
            "{challenge}"
        );
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unauthorized");
    }
    let basic = s.client.get(&url).basic_auth("a", Some("b")).send().await.unwrap();
    assert_eq!(basic.status(), StatusCode::UNAUTHORIZED);
    s.running.shutdown().await;
}

#[tokio::test]
async fn bad_input_gets_400_and_writes_nothing() {
    let s = start(serve_args(&["--max-body-bytes", "1024"])).await;
    let post = |body: Vec<u8>, ctype: &'static str| {
        s.client
            .post(format!("{}/users", s.base))
            .bearer_auth(s.token())
            .header("content-type", ctype)
            .body(body)
            .send()
    };
    let cases: Vec<(Vec<u8>, &str, StatusCode, &str)> = vec![
        (
            b"{not json".to_vec(),
            "application/json",
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            b"{\"username\":\"a\xff\",\"email\":\"a@example.com\"}".to_vec(),
            "application/json",
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            br#"{"username":"a","email":"a@example.com","admin":true}"#.to_vec(),
            "application/json",
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            br#"{"username":"Robert'); DROP TABLE users;--","email":"a@example.com"}"#.to_vec(),
            "application/json",
            StatusCode::BAD_REQUEST,
            "validation_failed",
        ),
        (
            br#"{"username":"ok","email":"not-an-email"}"#.to_vec(),
            "application/json",
            StatusCode::BAD_REQUEST,
            "validation_failed",
        ),
        (
            format!(r#"{{"username":"big","email":"{}@example.com"}}"#, "a".repeat(2000)).into_bytes(),
            "application/json",
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
        (
            br#"{"username":"ok","email":"a@example.com"}"#.to_vec(),
            "text/plain",
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
    ];
    for (body, ctype, want_status, want_code) in cases {
        let (status, code) = error_code(post(body.clone(), ctype).await.unwrap()).await;
        assert_eq!(
            (status, code.as_str()),
            (want_status, want_code),
            "{}",
            String::from_utf8_lossy(&body)
        );
    }
    for bad_id in ["abc", "0", "-5", "99999999999999999999", "1%20OR%201=1"] {
        let (status, code) = authed_error(&s, &format!("{}/users/{bad_id}", s.base)).await;
        assert_eq!((status, code.as_str()), (StatusCode::BAD_REQUEST, "bad_id"), "{bad_id}");
    }
    let page: Value = authed_json(&s, &format!("{}/users", s.base)).await;
    assert_eq!(page["users"].as_array().unwrap().len(), 0, "nothing was written");
    let (status, code) = error_code(s.client.get(format!("{}/nope", s.base)).send().await.unwrap()).await;
    assert_eq!((status, code.as_str()), (StatusCode::NOT_FOUND, "not_found"));
    let (status, code) = error_code(
        s.client
            .put(format!("{}/users", s.base))
            .bearer_auth(s.token())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed")
    );
    s.running.shutdown().await;
}

#[tokio::test]
async fn sql_metacharacters_are_stored_verbatim() {
    let s = start(serve_args(&[])).await;
    let email = "x'or'1'='1--|drop@example.com";
    let resp = create(&s, "bobby.tables", email).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let id = resp.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    let got: Value = authed_json(&s, &format!("{}/users/{id}", s.base)).await;
    assert_eq!(got["email"], email);
    let page: Value = authed_json(&s, &format!("{}/users", s.base)).await;
    assert_eq!(page["users"].as_array().unwrap().len(), 1, "the table is intact");
    s.running.shutdown().await;
}

#[tokio::test]
async fn every_tls_response_has_security_headers() {
    let s = start(serve_args(&[])).await;
    for (path, auth) in [
        ("/", false),
        ("/users/1", false),
        ("/users/1", true),
        ("/missing", false),
    ] {
        let mut req = s.client.get(format!("{}{path}", s.base));
        if auth {
            req = req.bearer_auth(s.token());
        }
        let resp = req.send().await.unwrap();
        for (name, value) in tlsward::web::SECURITY_HEADERS {
            assert_eq!(
                resp.headers().get(name).map(|v| v.to_str().unwrap()),
                Some(value),
                "{path} {name}"
            );
        }
        assert!(
            resp.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/json"),
            "{path}"
        );
    }
    s.running.shutdown().await;
}

#[tokio::test]
async fn serves_http2_and_http1() {
    let s = start(serve_args(&[])).await;
    let h2 = s.client.get(format!("{}/", s.base)).send().await.unwrap();
    assert_eq!(h2.version(), reqwest::Version::HTTP_2);
    let h1_client = reqwest::Client::builder()
        .use_rustls_tls()
        .add_root_certificate(reqwest::Certificate::from_pem(postgres().ca.cert_pem.as_bytes()).unwrap())
        .resolve("localhost", s.running.tls_addr)
        .http1_only()
        .build()
        .unwrap();
    let h1 = h1_client.get(format!("{}/", s.base)).send().await.unwrap();
    assert_eq!(h1.version(), reqwest::Version::HTTP_11);
    assert_eq!(h1.status(), StatusCode::OK);
    s.running.shutdown().await;
}

#[tokio::test]
async fn redirect_listener_answers_308_to_https() {
    let s = start(serve_args(&["--http-redirect-listen", "127.0.0.1:0"])).await;
    let addr = s.running.redirect_addr.unwrap();
    let plain = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let resp = plain
        .get(format!("http://{addr}/users/7?x=1"))
        .header("host", "api.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PERMANENT_REDIRECT);
    assert_eq!(
        resp.headers()["location"],
        format!("https://api.example.com:{}/users/7?x=1", s.port())
    );
    s.running.shutdown().await;
}

#[tokio::test]
async fn metrics_count_requests_by_route() {
    let s = start(serve_args(&[])).await;
    for _ in 0..3 {
        s.client
            .get(format!("{}/users/424242", s.base))
            .bearer_auth(s.token())
            .send()
            .await
            .unwrap();
    }
    let text = s.metrics().await;
    assert_eq!(
        support::metric(
            &text,
            r#"tlsward_http_requests_total{route="/users/{id}",method="GET",status="404"}"#
        ),
        3.0,
        "{text}"
    );
    assert!(text.contains("tlsward_http_request_duration_seconds_bucket{"), "{text}");
    assert!(support::metric(&text, "tlsward_db_pool_connections") >= 1.0, "{text}");
    assert!(
        text.contains(r#"tlsward_cert_not_after_seconds{material="server"}"#),
        "{text}"
    );
    assert!(
        text.contains(r#"tlsward_tls_handshakes_total{version="TLSv1_3",suite="TLS_"#),
        "{text}"
    );
    s.running.shutdown().await;
}
