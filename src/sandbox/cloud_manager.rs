//! Cloud Manager (`cloudmanager.adobe.io/api/...`) in the HAL shapes `@adobe/aio-lib-cloudmanager`
//! walks: `/api/programs` → `_embedded.programs[]._links.self` → the program's
//! `.../rel/pipelines` link → `_embedded.pipelines[]` with `execution`, `executions` and the
//! templated `execution/id` links. Hrefs are root-relative, so they resolve against whatever
//! base URL (sandbox or proxy) the client uses. An execution started with `PUT .../execution`
//! runs for [`RUN_TIME`], during which another start gets 412, as on Adobe.

use super::gateway::{self, typed, Reply};
use super::ims::FakeIms;
use crate::adobe::Api;
use http::{HeaderMap, Method};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

const REL: &str = "http://ns.adobe.com/adobecloud/rel";
const HAL: &str = "application/hal+json";
const RUN_TIME: Duration = Duration::from_secs(20);
const PROGRAM: &str = "4";
const PIPELINES: &[(&str, &str, &str)] = &[
    ("10", "Sandbox production pipeline", "CI_CD"),
    ("11", "Sandbox code quality", "CODE_QUALITY"),
];

struct Execution {
    id: u64,
    pipeline: &'static str,
    created: SystemTime,
    started: Instant,
    trigger: &'static str,
    user: String,
    /// Seeded history, finished before the sandbox started.
    done: bool,
}

impl Execution {
    fn status(&self) -> &'static str {
        if self.done || self.started.elapsed() >= RUN_TIME {
            "FINISHED"
        } else {
            "RUNNING"
        }
    }
}

pub struct CloudManager {
    org_id: String,
    executions: Mutex<Vec<Execution>>,
}

impl CloudManager {
    pub fn new(org_id: &str) -> CloudManager {
        let day = Duration::from_secs(86_400);
        let executions = PIPELINES
            .iter()
            .enumerate()
            .map(|(i, (id, _, _))| Execution {
                id: 1000 + i as u64,
                pipeline: id,
                created: SystemTime::now() - day,
                started: Instant::now(),
                trigger: "ON_COMMIT",
                user: "sandbox".into(),
                done: true,
            })
            .collect();
        CloudManager {
            org_id: org_id.to_string(),
            executions: Mutex::new(executions),
        }
    }

    /// `None` when the path is not Cloud Manager's.
    pub fn handle(
        &self,
        ims: &FakeIms,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
    ) -> Option<Reply> {
        let rest = path.strip_prefix("/api/")?.trim_end_matches('/');
        let segs: Vec<&str> = rest.split('/').collect();
        if !matches!(segs.first(), Some(&"programs") | Some(&"program")) {
            return None;
        }
        let token = match gateway::admit(ims, headers, Api::CloudManager) {
            Ok(t) => t,
            Err(refusal) => return Some(refusal.reply()),
        };
        let get = method == Method::GET;
        Some(match segs.as_slice() {
            ["programs"] if get => self.programs(),
            ["program", p] if get => self.with_program(p, |s| s.program()),
            ["program", p, "pipelines"] if get => self.with_program(p, |s| s.pipelines()),
            ["program", p, "pipeline", pl] if get => {
                self.with_pipeline(p, pl, |s, pl| typed(200, HAL, &s.pipeline(pl)))
            }
            ["program", p, "pipeline", pl, "execution"] if get => {
                self.with_pipeline(p, pl, |s, pl| s.current(pl))
            }
            ["program", p, "pipeline", pl, "execution"] if method == Method::PUT => {
                self.with_pipeline(p, pl, |s, pl| s.start(pl, &token.client_id))
            }
            ["program", p, "pipeline", pl, "executions"] if get => {
                self.with_pipeline(p, pl, |s, pl| s.executions(pl))
            }
            ["program", p, "pipeline", pl, "execution", e] if get => {
                self.with_pipeline(p, pl, |s, pl| s.execution(pl, e))
            }
            _ => problem(404, "Not Found", &format!("no resource at {path}")),
        })
    }

    fn with_program(&self, p: &str, f: impl FnOnce(&Self) -> Reply) -> Reply {
        if p == PROGRAM {
            f(self)
        } else {
            problem(404, "Not Found", &format!("Program {p} not found"))
        }
    }

    fn with_pipeline(
        &self,
        p: &str,
        pl: &str,
        f: impl FnOnce(&Self, &'static str) -> Reply,
    ) -> Reply {
        self.with_program(p, |s| match PIPELINES.iter().find(|(id, _, _)| *id == pl) {
            Some((id, _, _)) => f(s, id),
            None => problem(404, "Not Found", &format!("Pipeline {pl} not found")),
        })
    }

    fn program_json(&self) -> serde_json::Value {
        let base = format!("/api/program/{PROGRAM}");
        serde_json::json!({
            "id": PROGRAM,
            "name": "Sandbox program",
            "enabled": true,
            "tenantId": "sandbox",
            "imsOrgId": self.org_id,
            "status": "ready",
            "_links": {
                "self": {"href": base},
                format!("{REL}/pipelines"): {"href": format!("{base}/pipelines")},
                format!("{REL}/environments"): {"href": format!("{base}/environments")},
            },
        })
    }

    fn programs(&self) -> Reply {
        typed(
            200,
            HAL,
            &serde_json::json!({
                "_totalNumberOfItems": 1,
                "_embedded": {"programs": [self.program_json()]},
                "_links": {"self": {"href": "/api/programs"}},
            }),
        )
    }

    fn program(&self) -> Reply {
        typed(200, HAL, &self.program_json())
    }

    fn pipeline(&self, id: &'static str) -> serde_json::Value {
        let (name, kind) = PIPELINES
            .iter()
            .find(|(p, _, _)| *p == id)
            .map(|(_, n, k)| (*n, *k))
            .unwrap_or(("", ""));
        let base = format!("/api/program/{PROGRAM}/pipeline/{id}");
        let busy = gateway::lock(&self.executions)
            .iter()
            .any(|e| e.pipeline == id && e.status() == "RUNNING");
        serde_json::json!({
            "id": id,
            "programId": PROGRAM,
            "name": name,
            "type": kind,
            "trigger": "MANUAL",
            "status": if busy { "BUSY" } else { "IDLE" },
            "_links": {
                "self": {"href": base},
                format!("{REL}/program"): {"href": format!("/api/program/{PROGRAM}")},
                format!("{REL}/execution"): {"href": format!("{base}/execution")},
                format!("{REL}/executions"): {"href": format!("{base}/executions")},
                format!("{REL}/execution/id"): {
                    "href": format!("{base}/execution/{{executionId}}"),
                    "templated": true,
                },
            },
        })
    }

    fn pipelines(&self) -> Reply {
        let list: Vec<_> = PIPELINES
            .iter()
            .map(|(id, _, _)| self.pipeline(id))
            .collect();
        typed(
            200,
            HAL,
            &serde_json::json!({
                "_totalNumberOfItems": list.len(),
                "_embedded": {"pipelines": list},
                "_links": {"self": {"href": format!("/api/program/{PROGRAM}/pipelines")}},
            }),
        )
    }

    fn execution_json(e: &Execution) -> serde_json::Value {
        let base = format!("/api/program/{PROGRAM}/pipeline/{}", e.pipeline);
        let status = e.status();
        let step = |action: &str, step_status: &str| {
            serde_json::json!({
                "action": action,
                "status": step_status,
                "pipelineId": e.pipeline,
                "executionId": e.id.to_string(),
                "programId": PROGRAM,
            })
        };
        let steps = if status == "FINISHED" {
            vec![
                step("validate", "FINISHED"),
                step("build", "FINISHED"),
                step("deploy", "FINISHED"),
            ]
        } else {
            vec![
                step("validate", "FINISHED"),
                step("build", "RUNNING"),
                step("deploy", "NOT_STARTED"),
            ]
        };
        serde_json::json!({
            "id": e.id.to_string(),
            "programId": PROGRAM,
            "pipelineId": e.pipeline,
            "status": status,
            "trigger": e.trigger,
            "user": e.user,
            "createdAt": gateway::timestamp(e.created),
            "_embedded": {"stepStates": steps},
            "_links": {
                "self": {"href": format!("{base}/execution/{}", e.id)},
                format!("{REL}/pipeline"): {"href": base},
                format!("{REL}/program"): {"href": format!("/api/program/{PROGRAM}")},
            },
        })
    }

    fn current(&self, pipeline: &str) -> Reply {
        let execs = gateway::lock(&self.executions);
        match execs.iter().rev().find(|e| e.pipeline == pipeline) {
            Some(e) => typed(200, HAL, &Self::execution_json(e)),
            None => problem(404, "Not Found", "the pipeline has no execution"),
        }
    }

    fn start(&self, pipeline: &'static str, client_id: &str) -> Reply {
        let mut execs = gateway::lock(&self.executions);
        if execs
            .iter()
            .any(|e| e.pipeline == pipeline && e.status() == "RUNNING")
        {
            return problem(
                412,
                "Precondition Failed",
                &format!("Cannot start execution. Pipeline {pipeline} is already running."),
            );
        }
        let id = execs.iter().map(|e| e.id).max().unwrap_or(999) + 1;
        execs.push(Execution {
            id,
            pipeline,
            created: SystemTime::now(),
            started: Instant::now(),
            trigger: "MANUAL",
            user: client_id.to_string(),
            done: false,
        });
        let body = execs.last().map(Self::execution_json).unwrap_or_default();
        typed(201, HAL, &body)
    }

    fn executions(&self, pipeline: &str) -> Reply {
        let execs = gateway::lock(&self.executions);
        let list: Vec<_> = execs
            .iter()
            .rev()
            .filter(|e| e.pipeline == pipeline)
            .map(Self::execution_json)
            .collect();
        typed(
            200,
            HAL,
            &serde_json::json!({
                "_totalNumberOfItems": list.len(),
                "_embedded": {"executions": list},
                "_links": {"self": {"href": format!("/api/program/{PROGRAM}/pipeline/{pipeline}/executions")}},
            }),
        )
    }

    fn execution(&self, pipeline: &str, id: &str) -> Reply {
        let execs = gateway::lock(&self.executions);
        match execs
            .iter()
            .find(|e| e.pipeline == pipeline && e.id.to_string() == id)
        {
            Some(e) => typed(200, HAL, &Self::execution_json(e)),
            None => problem(404, "Not Found", &format!("Execution {id} not found")),
        }
    }
}

/// Cloud Manager's own errors are `application/problem+json`, which aio-lib-cloudmanager
/// turns into "<title>(s): <errors joined>".
fn problem(status: u16, title: &str, message: &str) -> Reply {
    typed(
        status,
        "application/problem+json",
        &serde_json::json!({
            "type": "http://ns.adobe.com/adobecloud/problem/generic",
            "status": status,
            "title": title,
            "errors": [message],
        }),
    )
}
