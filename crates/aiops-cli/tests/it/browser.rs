//! The bookmark manager's real page in headless Chromium, instrumented by the core's
//! `browser.js`: what the browser sees reaches the core, a failing call is joined with the
//! back end's record of it by trace id, and a front end deployed against another API version
//! is diagnosed from the browser's side (contract drift) and rolled back.

use std::time::Duration;

use aiops_app::{App, Config};
use aiops_cli::browser::{ChromeDriver, Session};
use serde_json::{json, Value};

/// One browser test at a time: each runs a Chromium, a core and a bookmark manager, and on two
/// cores several at once starve each other's timers and reports.
static ONE_BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The core's events of `event_type`, newest first.
async fn events(http: &reqwest::Client, core: &str, event_type: &str) -> Vec<Value> {
    let url = format!("{core}/v1/events?stream=telemetry&type={event_type}&order=desc&limit=100");
    let answer: Value = http.get(url).send().await.unwrap().json().await.unwrap();
    answer["events"]
        .as_array()
        .map(|events| events.iter().map(|stored| stored["event"].clone()).collect())
        .unwrap_or_default()
}

/// Waits for a control event of `event_type` that `matches`.
async fn wait_for_event(
    http: &reqwest::Client,
    core: &str,
    event_type: &str,
    matches: impl Fn(&Value) -> bool,
) -> Value {
    for _ in 0..150 {
        let url = format!("{core}/v1/events?stream=control&type={event_type}&order=desc&limit=50");
        let answer: Value = http.get(url).send().await.unwrap().json().await.unwrap();
        let found = answer["events"].as_array().into_iter().flatten().map(|s| s["event"].clone()).find(|e| matches(e));
        if let Some(event) = found {
            return event;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let all: Value = http
        .get(format!("{core}/v1/events?stream=control&order=desc&limit=30"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let seen: Vec<String> = all["events"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            format!("{} {}", s["event"]["type"], s["event"]["data"].to_string().chars().take(300).collect::<String>())
        })
        .collect();
    let browser: Value = http
        .get(format!("{core}/v1/events?stream=telemetry&type=browser.request&order=desc&limit=10"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    panic!("no {event_type} came; control: {seen:#?}\nbrowser: {browser}");
}

#[tokio::test]
async fn the_page_in_a_real_browser_reports_failed_calls_joined_with_the_back_end_by_trace() {
    let _one_browser = ONE_BROWSER.lock().await;
    let stack = Stack::start(None, None).await;
    let (browser, http, app) = (&stack.browser, &stack.http, &stack.app);
    // The page the API serves itself, on the API's origin.
    let page_origin = stack.api_origin.clone();
    browser.goto(&format!("{page_origin}/")).await.unwrap();
    browser
        .wait_for("return window.__aiops && document.getElementById('status').textContent", "the page")
        .await
        .unwrap();

    // A user saves a bookmark through the form.
    browser.type_into("#url", "https://example.org/rust-book").await.unwrap();
    browser.type_into("#tags", "rust, books").await.unwrap();
    browser.click("#save").await.unwrap();
    let shown = browser
        .wait_for("return document.querySelectorAll('#list li').length === 1 && document.querySelector('#list li a').textContent", "the saved bookmark")
        .await.unwrap();
    assert_eq!(shown, "https://example.org/rust-book");

    // The back end breaks searches; the user searches; the page shows the error.
    let injected =
        http.post(format!("{page_origin}/admin/faults")).json(&json!({ "fault": "bad_release" })).send().await.unwrap();
    assert!(injected.status().is_success());
    browser.type_into("#q", "rust").await.unwrap();
    let status = browser
        .wait_for(
            "const s = document.getElementById('status'); return s.classList.contains('error') && s.textContent",
            "the error",
        )
        .await
        .unwrap();
    assert!(status.as_str().unwrap().starts_with("Could not load bookmarks"), "{status}");
    // An uncaught error in one of the page's own scripts, too (a script WebDriver runs counts
    // as foreign: the browser hides its errors as "Script error.").
    browser
        .run(
            "const s = document.createElement('script'); \
             s.textContent = \"setTimeout(() => { throw new Error('boom from the test'); }, 0);\"; \
             document.head.append(s); return true;",
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    browser.run("window.__aiops.flush(false); return true;").await.unwrap();

    let mut failed = None;
    for _ in 0..100 {
        failed = events(http, &app.url(), "browser.request")
            .await
            .into_iter()
            .find(|e| e["data"]["status"] == 500 && e["data"]["path"] == "/api/bookmarks");
        if failed.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let failed = failed.expect("the browser's failed search reached the core");
    assert_eq!(failed["subject"], "bookmarks-web");
    assert_eq!(failed["data"]["method"], "GET");
    assert!(failed["data"]["error"].as_str().unwrap().contains("\"error\""), "{failed}");
    let trace_id = failed["data"]["trace_id"].as_str().unwrap().to_owned();

    // The same request, as the back end handled it, shares the trace id.
    let mut joined = Value::Null;
    for _ in 0..100 {
        let answer = http.get(format!("{}/v1/traces/{trace_id}", app.url())).send().await.unwrap();
        joined = answer.json().await.unwrap();
        if joined["server"].as_array().is_some_and(|s| !s.is_empty()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(joined["browser"].as_array().map(Vec::len), Some(1), "{joined}");
    let server_side = &joined["server"][0];
    assert_eq!(server_side["type"], "http.request", "{joined}");
    assert_eq!(server_side["data"]["status"], 500);
    assert_eq!(server_side["data"]["route"], "/api/bookmarks");

    let errors = events(http, &app.url(), "browser.error").await;
    assert!(
        errors.iter().any(|e| e["data"]["message"].as_str().is_some_and(|m| m.contains("boom from the test"))),
        "{errors:?}"
    );
    let loads = events(http, &app.url(), "browser.page_load").await;
    assert!(!loads.is_empty(), "the page load is reported");

    // Front end 2.0.0 goes out, built against another API version: saving fails in the
    // browser. The core names the drift from the browser's side and rolls the front end back.
    let reset = http.post(format!("{page_origin}/admin/deploy/rollback")).send().await.unwrap();
    assert!(reset.status().is_success());
    let skewed = http
        .post(format!("{page_origin}/admin/faults"))
        .json(&json!({ "fault": "frontend_skew" }))
        .send()
        .await
        .unwrap();
    assert!(skewed.status().is_success());
    browser.goto(&format!("{page_origin}/")).await.unwrap();
    browser
        .wait_for("return window.__aiops && document.querySelectorAll('#list li').length === 1", "the page, again")
        .await
        .unwrap();
    stack.fail_saves(3).await;
    let problem =
        wait_for_event(http, &app.url(), "problem.detected", |e| e["data"]["kind"] == "integration_failure").await;
    let evidence: Vec<&str> =
        problem["data"]["evidence"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert_eq!(problem["data"]["service"], "bookmarks", "{problem}");
    assert!(
        evidence.iter().any(|e| e.starts_with(
            "contract drift: the page sends `link`, which POST /api/bookmarks does not know; the API requires `url`"
        )),
        "{evidence:?}"
    );
    assert!(
        evidence.iter().any(|e| e.starts_with("back end bookmarks: POST /api/bookmarks answered 422")
            && e.contains(
                "it refused it: Failed to deserialize the JSON body into the target type: link: unknown field `link`"
            )),
        "{evidence:?}"
    );
    let healed = stack.resolved(&problem).await;
    assert_eq!(healed["data"]["tool"], "rollback_frontend");
    // The user reloads and saving works again.
    browser.goto(&format!("{page_origin}/")).await.unwrap();
    browser
        .wait_for(
            "return window.__aiops && document.querySelectorAll('#list li').length === 1",
            "the page, rolled back",
        )
        .await
        .unwrap();
    browser.type_into("#url", "https://example.org/after-rollback").await.unwrap();
    browser.click("#save").await.unwrap();
    browser.wait_for("return document.querySelectorAll('#list li').length === 2", "the save to work").await.unwrap();

    // The same release again; this time the user deletes, at a route the API renamed.
    let skewed = http
        .post(format!("{page_origin}/admin/faults"))
        .json(&json!({ "fault": "frontend_skew" }))
        .send()
        .await
        .unwrap();
    assert!(skewed.status().is_success());
    browser.goto(&format!("{page_origin}/")).await.unwrap();
    browser
        .wait_for(
            "return window.__aiops && document.querySelectorAll('#list li').length === 2",
            "the page, skewed again",
        )
        .await
        .unwrap();
    for _ in 0..3 {
        browser.click("#list li button.delete").await.unwrap();
        browser
            .wait_for(
                "const s = document.getElementById('status'); return s.classList.contains('error') && s.textContent",
                "the delete to fail",
            )
            .await
            .unwrap();
        browser.run("document.getElementById('status').className = ''; return true;").await.unwrap();
    }
    browser.run("window.__aiops.flush(false); return true;").await.unwrap();
    let renamed = wait_for_event(http, &app.url(), "problem.detected", |e| {
        e["data"]["kind"] == "integration_failure" && e["data"]["id"] != problem["data"]["id"]
    })
    .await;
    let evidence: Vec<&str> =
        renamed["data"]["evidence"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert!(
        evidence.iter().any(|e| e.starts_with(
            "contract drift: the page calls DELETE /api/bookmark/:id, the API serves DELETE /api/bookmarks/{id}"
        )),
        "{evidence:?}"
    );
    let healed = stack.resolved(&renamed).await;
    assert_eq!(healed["data"]["tool"], "rollback_frontend", "the fix that healed the field drift, first try");

    stack.stop().await;
}

/// The core, the bookmark manager's API, and its page served from an origin of its own (the
/// API lists it in `cors_origins`), with a headless browser on the page.
struct Stack {
    app: App,
    api_origin: String,
    web_origin: String,
    http: reqwest::Client,
    browser: Session,
    driver: ChromeDriver,
    api: Api,
    web: tokio::task::JoinHandle<std::io::Result<()>>,
    _dir: tempfile::TempDir,
}

/// How the API runs: in this process, or as its own `aiops bookmarks serve` process (which a
/// test can kill for real).
enum Api {
    InProcess(tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<bookmarks::BookmarksResult<()>>),
    Process(std::process::Child),
}

impl Stack {
    async fn start(timeout_ms: Option<u64>, api_token: Option<&str>) -> Self {
        Self::start_with(timeout_ms, api_token, false).await
    }

    async fn start_with(timeout_ms: Option<u64>, api_token: Option<&str>, api_as_process: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let api_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let api_origin = format!("http://{}", api_listener.local_addr().unwrap());
        let web_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let web_origin = format!("http://{}", web_listener.local_addr().unwrap());

        let mut config = Config { data_dir: dir.path().join("core"), ..Config::default() };
        config.server.listen = "127.0.0.1:0".into();
        // Both pages report: the one on its own origin, and the one the API serves.
        config.server.browser.allowed_origins = vec![web_origin.clone(), api_origin.clone()];
        // Health checks every 5 s: what these tests look at is the browser's side, which must
        // not race the registry's own view of a dead back end.
        config.registry.interval_ms = 5000;
        let app = App::start(config).await.unwrap();

        let db = dir.path().join("bookmarks.db");
        let api = if api_as_process {
            let listen = api_listener.local_addr().unwrap().to_string();
            drop(api_listener);
            let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_aiops"));
            command
                .args([
                    "bookmarks",
                    "serve",
                    "--listen",
                    &listen,
                    "--aiops-url",
                    &app.url(),
                    "--cors-origin",
                    &web_origin,
                    "--db",
                ])
                .arg(&db)
                .env("AIOPS_LOG", "error")
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::null());
            if let Some(token) = api_token {
                command.args(["--api-token", token]);
            }
            let mut child = command.spawn().unwrap();
            let mut line = String::new();
            std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut line).unwrap();
            assert!(line.starts_with("listening on "), "{line}");
            Api::Process(child)
        } else {
            let mut bookmarks = bookmarks::BookmarksConfig::new(db);
            bookmarks.aiops_url = Some(app.url());
            bookmarks.cors_origins = vec![web_origin.clone()];
            bookmarks.api_token = api_token.map(str::to_owned);
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let task = tokio::spawn(bookmarks::serve(bookmarks, api_listener, async {
                let _ = stopped.await;
            }));
            Api::InProcess(stop, task)
        };
        let page = bookmarks::web_router(&bookmarks::PageSettings {
            aiops_url: Some(app.url()),
            api_base: Some(api_origin.clone()),
            timeout_ms,
            api_token: api_token.map(str::to_owned),
        });
        let web = tokio::spawn(async move { axum::serve(web_listener, page).await });

        let driver = tokio::task::spawn_blocking(ChromeDriver::start).await.unwrap().expect("start chromedriver");
        let browser = Session::start(&driver).await.unwrap();
        browser.goto(&format!("{web_origin}/")).await.unwrap();
        browser
            .wait_for(
                "return window.__aiops && document.getElementById('status').textContent === '0 bookmarks'",
                "the page",
            )
            .await
            .unwrap();
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        Self { app, api_origin, web_origin, http, browser, driver, api, web, _dir: dir }
    }

    async fn inject(&self, fault: Value) {
        let injected = self.http.post(format!("{}/admin/faults", self.api_origin)).json(&fault).send().await.unwrap();
        assert!(injected.status().is_success(), "{fault}");
    }

    /// Saves through the form `times` times, each failing in the page; then ships the reports.
    async fn fail_saves(&self, times: usize) {
        for n in 0..times {
            self.browser.type_into("#url", &format!("https://example.org/failing-{n}")).await.unwrap();
            self.browser.click("#save").await.unwrap();
            self.browser
                .wait_for(
                    "const s = document.getElementById('status'); return s.classList.contains('error') && s.textContent",
                    "the save to fail",
                )
                .await.unwrap();
            self.browser
                .run("document.getElementById('status').className = ''; document.getElementById('add').reset(); return true;")
                .await.unwrap();
        }
        self.browser.run("window.__aiops.flush(false); return true;").await.unwrap();
    }

    /// The newest integration problem other than `seen`, with its evidence.
    async fn integration_problem(&self, seen: Option<&Value>) -> (Value, Vec<String>) {
        let seen = seen.map(|p| p["data"]["id"].clone());
        let problem = wait_for_event(&self.http, &self.app.url(), "problem.detected", |e| {
            e["data"]["kind"] == "integration_failure" && Some(&e["data"]["id"]) != seen.as_ref()
        })
        .await;
        let evidence = problem["data"]["evidence"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect();
        (problem, evidence)
    }

    /// The resolution of `problem`, once it comes.
    async fn resolved(&self, problem: &Value) -> Value {
        wait_for_event(&self.http, &self.app.url(), "problem.resolved", |e| {
            e["data"]["problem_id"] == problem["data"]["id"]
        })
        .await
    }

    /// Kills the API process with SIGKILL: it neither answers nor deregisters.
    fn kill_api(&mut self) {
        let Api::Process(child) = &mut self.api else { panic!("the API runs in this process") };
        child.kill().unwrap();
        child.wait().unwrap();
    }

    async fn stop(self) {
        self.browser.quit().await;
        drop(self.driver);
        self.web.abort();
        match self.api {
            Api::InProcess(stop, task) => {
                let _ = stop.send(());
                let _ = task.await;
            }
            Api::Process(mut child) => {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        self.app.shutdown().await.unwrap();
    }
}

/// The page served from its own origin calls the API across origins; configuration v4 loses
/// the CORS origins, the browser blocks every call, and the core puts the two sides together:
/// the browser got no answer, the back end answered anyway (its answers were withheld from the
/// page), and the back end's own account of the refusals. The fix changes who may call the
/// API, so a human approves it.
#[tokio::test]
async fn a_page_blocked_by_cors_is_diagnosed_from_both_sides_and_fixed_after_approval() {
    let _one_browser = ONE_BROWSER.lock().await;
    let stack = Stack::start(None, None).await;
    let (browser, http, app) = (&stack.browser, &stack.http, &stack.app);
    browser.type_into("#url", "https://example.org/across-origins").await.unwrap();
    browser.click("#save").await.unwrap();
    browser
        .wait_for("return document.querySelectorAll('#list li').length === 1", "a save across origins")
        .await
        .unwrap();

    stack.inject(json!({ "fault": "cors_blocked" })).await;
    stack.fail_saves(3).await;
    let (problem, evidence) = stack.integration_problem(None).await;
    assert!(
        evidence.iter().any(|e| e.starts_with("browser bookmarks-web: POST /api/bookmarks got no answer 3 times")),
        "{evidence:?}"
    );
    assert!(evidence.iter().any(|e| e.starts_with("no answer in the browser")), "{evidence:?}");
    // The browser cached the preflight from before the change, so the calls ran: the back end
    // answered, and the browser withheld the answers from the page.
    assert!(
        evidence.iter().any(|e| e.starts_with("back end bookmarks: POST /api/bookmarks answered 201")
            && e.ends_with("the response was withheld from the page (CORS headers missing)")),
        "{evidence:?}"
    );
    let refused = format!("CORS preflight refused: origin {} is not allowed", stack.web_origin);
    assert!(evidence.iter().any(|e| e.contains(&refused)), "the back end's own account: {evidence:?}");
    let request =
        wait_for_event(http, &app.url(), "approval.requested", |e| e["data"]["problem"]["id"] == problem["data"]["id"])
            .await;
    assert_eq!(request["data"]["candidate"]["tool"], "rollback_config", "{request}");
    let id = request["data"]["approval_id"].as_str().unwrap();
    let approved = http
        .post(format!("{}/v1/approvals/{id}/approve", app.url()))
        .json(&json!({ "reason": "the origin was dropped by mistake" }))
        .send()
        .await
        .unwrap();
    assert!(approved.status().is_success());
    let healed = stack.resolved(&problem).await;
    assert_eq!(healed["data"]["tool"], "rollback_config");
    browser.type_into("#url", "https://example.org/allowed-again").await.unwrap();
    browser.click("#save").await.unwrap();
    // The blocked saves ran at the back end (the page never heard), so the list has them too.
    browser
        .wait_for(
            "return [...document.querySelectorAll('#list li a')].some(a => a.textContent.endsWith('allowed-again'))",
            "saves across origins again",
        )
        .await
        .unwrap();
    stack.stop().await;
}

/// Two failures that look alike in the page, told apart by the back end's side: a body over a
/// lowered limit (413, healed by rolling the configuration back) and calls the page gives up
/// on while the back end still answers (a timeout seen only by the browser).
#[tokio::test]
async fn a_lowered_body_limit_and_a_browser_only_timeout_are_told_apart() {
    let _one_browser = ONE_BROWSER.lock().await;
    let stack = Stack::start(Some(700), None).await;
    stack.inject(json!({ "fault": "body_limit_lowered" })).await;
    stack.fail_saves(3).await;
    let (first, evidence) = stack.integration_problem(None).await;
    assert!(
        evidence.iter().any(|e| e.starts_with("browser bookmarks-web: POST /api/bookmarks answered 413 3 times")),
        "{evidence:?}"
    );
    assert!(evidence.iter().any(|e| e.contains("request body is larger than 32 bytes")), "{evidence:?}");
    assert!(evidence.iter().any(|e| e.starts_with("payload too large")), "{evidence:?}");
    let healed = stack.resolved(&first).await;
    assert_eq!(healed["data"]["tool"], "rollback_config");

    // The back end now answers in a second; the page waits 700 ms.
    stack.inject(json!({ "fault": "slow_responses", "delay_ms": 1000 })).await;
    stack.fail_saves(3).await;
    let (problem, evidence) = stack.integration_problem(Some(&first)).await;
    assert!(evidence.iter().any(|e| e.contains("got no answer 3 times: no answer within 700 ms")), "{evidence:?}");
    assert!(
        evidence.iter().any(|e| e.starts_with(
            "back end bookmarks: POST /api/bookmarks was still working on it when the browser closed the request"
        ) && e.contains("a timeout seen only by the browser")),
        "{evidence:?}"
    );
    let diagnosis = wait_for_event(&stack.http, &stack.app.url(), "diagnosis.completed", |e| {
        e["data"]["problem"]["id"] == problem["data"]["id"]
    })
    .await;
    assert_eq!(diagnosis["data"]["hypotheses"][0]["title"], "Timeouts seen only by the browser", "{diagnosis}");
    stack.stop().await;
}

/// The API has a token, which the page sends. Front end 2.0.1 stops sending it: every call is
/// refused with 401. The core says so from the browser's side and rolls the front end back.
#[tokio::test]
async fn a_front_end_that_stops_sending_its_token_is_rolled_back() {
    let _one_browser = ONE_BROWSER.lock().await;
    let stack = Stack::start(None, Some("page-token-0123")).await;
    stack.browser.type_into("#url", "https://example.org/with-token").await.unwrap();
    stack.browser.click("#save").await.unwrap();
    stack
        .browser
        .wait_for("return document.querySelectorAll('#list li').length === 1", "a save with the token")
        .await
        .unwrap();

    stack.inject(json!({ "fault": "frontend_auth_dropped" })).await;
    // The new release is what the API serves at /app.js (the page on its own origin keeps
    // the old script), so the user here loads the page the API serves.
    let api_page = format!("{}/", stack.api_origin);
    stack.browser.goto(&api_page).await.unwrap();
    stack
        .browser
        .wait_for(
            "return window.__aiops !== undefined && document.getElementById('status').textContent",
            "the new release",
        )
        .await
        .unwrap();
    stack.fail_saves(3).await;
    let (problem, evidence) = stack.integration_problem(None).await;
    assert!(
        evidence.iter().any(|e| e.starts_with("browser bookmarks-web: POST /api/bookmarks answered 401 3 times")),
        "{evidence:?}"
    );
    assert!(
        evidence.iter().any(|e| e.starts_with("auth: the back end wants credentials the page did not send")),
        "{evidence:?}"
    );
    let healed = stack.resolved(&problem).await;
    assert_eq!(healed["data"]["tool"], "rollback_frontend");
    stack.browser.goto(&api_page).await.unwrap();
    stack
        .browser
        .wait_for("return document.querySelectorAll('#list li').length >= 1", "the list, with the token again")
        .await
        .unwrap();
    stack.stop().await;
}

/// The back end dies; the page keeps trying to load the list. The core says, from the
/// browser's side, that the page calls a back end that is down, and proposes starting it.
#[tokio::test]
async fn a_page_retrying_a_dead_back_end_is_diagnosed_as_such() {
    let _one_browser = ONE_BROWSER.lock().await;
    let mut stack = Stack::start_with(None, None, true).await;
    stack.kill_api();
    // The user keeps the page open; it retries, and so do they, until the core has heard.
    for _ in 0..10 {
        stack.browser.run("document.getElementById('q').value = 'x'; refresh(); return true;").await.unwrap();
        stack
            .browser
            .wait_for("return document.getElementById('status').textContent.includes('3 of 5')", "the page's retries")
            .await
            .unwrap();
        stack.browser.run("window.__aiops.flush(false); return true;").await.unwrap();
        if !events(&stack.http, &stack.app.url(), "browser.request").await.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let (problem, evidence) = stack.integration_problem(None).await;
    assert!(
        evidence.iter().any(|e| e.starts_with("browser bookmarks-web: GET /api/bookmarks got no answer")),
        "{evidence:?}"
    );
    assert!(
        evidence.iter().any(|e| e.starts_with("back end bookmarks instance") && e.contains("connection refused")),
        "{evidence:?}"
    );
    let diagnosis = wait_for_event(&stack.http, &stack.app.url(), "diagnosis.completed", |e| {
        e["data"]["problem"]["id"] == problem["data"]["id"]
    })
    .await;
    assert_eq!(
        diagnosis["data"]["hypotheses"][0]["title"], "The page keeps calling a back end that is down",
        "{diagnosis}"
    );
    assert_eq!(diagnosis["data"]["candidates"][0]["tool"], "start_service", "{diagnosis}");
    stack.stop().await;
}
