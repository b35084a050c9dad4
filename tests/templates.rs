//! Message templates and route mentions through `logward run`, against local servers that
//! check each chat provider's wire format: a receiver's `template` makes the message body,
//! values from log lines stay escaped for the provider's markup whatever the template says
//! (`|safe`, `{% autoescape false %}`), a route's `mention` reaches every chat receiver in its
//! provider's own form and a log line adds none, and `logward check` locates template mistakes.

#[path = "common/chat_server.rs"]
mod chat_server;
mod common;

use chat_server::{ChatServer, Provider, Received, hostile_lines};
use common::{Config, Env, run_to_exit};
use serde_json::{Value, json};

/// The four chat servers, in the order of [`RECEIVERS`].
struct Chats {
    slack: ChatServer,
    feishu: ChatServer,
    dingtalk: ChatServer,
    wecom: ChatServer,
}

impl Chats {
    fn start() -> Chats {
        Chats {
            slack: ChatServer::start(Provider::Slack),
            feishu: ChatServer::start(Provider::Feishu { secret: None }),
            dingtalk: ChatServer::start(Provider::DingTalk { secret: None }),
            wecom: ChatServer::start(Provider::WeCom),
        }
    }

    /// A route `errors` over every event, grouped by file, to the four receivers, mentioning
    /// `route01`; each receiver mentions an id of its own and has `template`.
    fn tables(&self, template: &str) -> String {
        let receiver = |name: &str, kind: &str, url: String, mention: &str| {
            format!(
                "[receiver.{name}]\ntype = \"{kind}\"\nurl = \"{url}\"\nmention = [\"{mention}\"]\nrate = \"1000/s\"\ntemplate = '''\n{template}'''\n\n"
            )
        };
        let mut t = String::from(
            "[[route]]\nname = \"errors\"\nreceivers = [\"slack\", \"feishu\", \"ding\", \"wecom\"]\ngroup_by = [\"path\"]\nmention = [\"route01\"]\n\n",
        );
        t += &receiver("slack", "slack", self.slack.url(), "U0RECV");
        t += &receiver("feishu", "feishu", self.feishu.url(), "ou_recv");
        t += &receiver("ding", "dingtalk", self.dingtalk.url(), "13800001111");
        t += &receiver("wecom", "wecom", self.wecom.url(), "recv01");
        t
    }
}

/// Runs the agent on the log files `lines` (one file each) until every chat server accepted
/// one message per file; the messages, in the order of [`Chats`].
fn run(chats: &Chats, template: &str, lines: &[String]) -> [Vec<Received>; 4] {
    let env = Env::new();
    for (i, line) in lines.iter().enumerate() {
        env.append(&format!("h{i:03}.log"), &format!("{line}\n"));
    }
    let tables = chats.tables(template);
    let config = env.config_with(Config {
        top_extra: &tables,
        ..Config::default()
    });
    let agent = env.start(&config);
    let n = lines.len();
    let got = [
        chats.slack.wait_accepted(n),
        chats.feishu.wait_accepted(n),
        chats.dingtalk.wait_accepted(n),
        chats.wecom.wait_accepted(n),
    ];
    let (status, stderr) = agent.stop();
    assert!(status.success(), "{stderr}");
    for server in [&chats.slack, &chats.feishu, &chats.dingtalk, &chats.wecom] {
        assert!(
            server.received().iter().all(|r| r.refused.is_none()),
            "a request was refused: {:#?}",
            server.received()
        );
    }
    got
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}"))
}

/// The `lark_md` texts of a Feishu card.
fn lark_md(body: &Value) -> Vec<&str> {
    body["card"]["elements"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["text"]["tag"] == "lark_md")
        .map(|e| text(&e["text"]["content"]))
        .collect()
}

#[test]
fn each_chat_receiver_sends_its_template_body_with_the_route_mention_in_its_own_form() {
    let chats = Chats::start();
    let line = "2026-11-22T10:00:00Z ERROR db timeout after 30s".to_string();
    let [slack, feishu, ding, wecom] = run(
        &chats,
        "*{{ route }}* {{ kind }} x{{ count }}\n{{ sample.line }}",
        &[line],
    );
    let body = "*errors* first x1\n2026-11-22T10:00:00Z ERROR db timeout after 30s";

    let b = &slack[0].body;
    let blocks = b["blocks"].as_array().unwrap();
    let kinds: Vec<&str> = blocks.iter().map(|b| text(&b["type"])).collect();
    assert_eq!(kinds, ["header", "section", "context"], "{b:#}");
    assert_eq!(blocks[1]["text"], json!({"type": "mrkdwn", "text": body}));
    assert_eq!(blocks[2]["elements"][0]["text"], "<@U0RECV> <@route01>");
    assert!(
        text(&b["text"]).starts_with("<@U0RECV> <@route01> 🔴 ERROR"),
        "{b:#}"
    );

    let card = &feishu[0].body["card"];
    assert_eq!(card["header"]["template"], "red", "{card:#}");
    assert_eq!(
        lark_md(&feishu[0].body),
        [body, "<at id=ou_recv></at> <at id=route01></at>"]
    );

    let d = &ding[0].body;
    assert_eq!(
        d["at"],
        json!({"atMobiles": ["13800001111"], "atUserIds": ["route01"], "isAtAll": false})
    );
    let t = text(&d["markdown"]["text"]);
    assert!(t.starts_with("#### 🔴 ERROR · "), "{t}");
    assert!(
        t.ends_with(&format!("\n\n{body}\n\n@13800001111 @route01 ")),
        "{t}"
    );

    let c = text(&wecom[0].body["markdown"]["content"]);
    assert!(
        c.starts_with("### 🔴 <font color=\"warning\">ERROR</font> · "),
        "{c}"
    );
    assert!(
        c.ends_with(&format!("\n{body}\n<@recv01><@route01>")),
        "{c}"
    );
}

#[test]
fn hostile_lines_through_a_template_that_says_safe_cannot_mention_link_or_style() {
    let chats = Chats::start();
    let lines = hostile_lines();
    let template = "tmpl: {{ sample.line|safe }}\n{% autoescape false %}{{ message|safe }} {{ context|join(' ')|safe }}{% endautoescape %}\n{% set s %}{{ sample.line }}{% endset %}{{ s|safe }}";
    let [slack, feishu, ding, wecom] = run(&chats, template, &lines);

    for r in &slack {
        let blocks = r.body["blocks"].as_array().unwrap();
        let section = text(&blocks[1]["text"]["text"]);
        assert!(section.starts_with("tmpl: "), "{section}");
        assert!(
            !section.contains(['<', '>', '`']),
            "markup from a log line: {section:?}"
        );
        let footer = text(&blocks[2]["elements"][0]["text"]);
        assert_eq!(footer, "<@U0RECV> <@route01>");
        let fallback = text(&r.body["text"]);
        let rest = fallback.strip_prefix("<@U0RECV> <@route01> ").unwrap();
        assert!(
            !rest.contains('<'),
            "a mention from a log line: {fallback:?}"
        );
    }
    for r in &feishu {
        let md = lark_md(&r.body);
        assert_eq!(md.len(), 2, "{md:?}");
        assert!(md[0].starts_with("tmpl: "), "{}", md[0]);
        for bad in ["<", "](", "![", "://", "@all", "`", "**", "~~"] {
            assert!(
                !md[0].contains(bad),
                "`{bad}` from a log line in {:?}",
                md[0]
            );
        }
        assert_eq!(md[1], "<at id=ou_recv></at> <at id=route01></at>");
    }
    for r in &ding {
        assert_eq!(
            r.body["at"],
            json!({"atMobiles": ["13800001111"], "atUserIds": ["route01"], "isAtAll": false})
        );
        let t = text(&r.body["markdown"]["text"]);
        let body = t.split_once("\n\n").unwrap().1;
        let body = body.strip_suffix("\n\n@13800001111 @route01 ").unwrap();
        assert!(body.starts_with("tmpl: "), "{body}");
        for bad in ["@", "<", "](", "![", "://", "`", "**"] {
            assert!(!body.contains(bad), "`{bad}` from a log line in {body:?}");
        }
    }
    for r in &wecom {
        let c = text(&r.body["markdown"]["content"]);
        assert!(c.len() <= 4096);
        let body = c.split_once('\n').unwrap().1;
        let body = body.strip_suffix("<@recv01><@route01>").unwrap();
        assert!(body.starts_with("tmpl: "), "{body}");
        for bad in ["<", "](", "![", "://", "`", "**"] {
            assert!(!body.contains(bad), "`{bad}` from a log line in {body:?}");
        }
    }
    let cut = slack
        .iter()
        .map(|r| text(&r.body["blocks"][1]["text"]["text"]))
        .find(|s| s.contains("AAAAAAAAAA"))
        .expect("the 10 KB line");
    assert!(
        cut.ends_with("\n…cut") && cut.chars().count() <= 3000,
        "{cut}"
    );
}

#[test]
fn check_reports_a_template_syntax_error_and_an_unknown_variable_at_their_lines() {
    let env = Env::new();
    let tables = "[receiver.team]\ntype = \"slack\"\nurl = \"https://hooks.example/x\"\ntemplate = '''\n*{{ route }}*\n{% if ci_run_id %}run {{ ci_run_id }}\n'''\n\n[receiver.oncall]\ntype = \"dingtalk\"\nurl = \"https://hooks.example/y\"\ntemplate_file = \"TEMPLATE\"\n";
    let file = env.write("oncall.j2", "**{{ route }}**\n{{ sample.lines }}\n");
    let tables = tables.replace("TEMPLATE", &file.display().to_string());
    let config = env.config_with(Config {
        top_extra: &tables,
        ..Config::default()
    });
    let out = run_to_exit(&["check", "-c", config.to_str().unwrap()], &[], b"");
    assert_eq!(out.status.code(), Some(1), "{}", out.all_output());
    let text = std::fs::read_to_string(&config).unwrap();
    let line_of = |needle: &str| text.lines().position(|l| l.starts_with(needle)).unwrap() + 1;
    let c = config.display();
    let syntax = format!(
        "{c}:{}:12: `template` line 2: syntax error: unexpected end of input",
        line_of("template = ")
    );
    let unknown = format!(
        "{c}:{}:17: `template_file` {} line 2: unknown variable `sample.lines` — use one of route, receiver, kind, ",
        line_of("template_file = "),
        file.display()
    );
    for expected in [syntax, unknown] {
        assert!(
            out.stdout.lines().any(|l| l.starts_with(&expected)),
            "`check` does not say `{expected}`:\n{}",
            out.stdout
        );
    }
    assert!(out.stdout.ends_with("2 problems found\n"), "{}", out.stdout);
}
