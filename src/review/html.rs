//! The review as one self-contained HTML page (inline CSS, the chart as inline SVG, nothing
//! fetched), readable on screen and printed to PDF, in English or Chinese.

use std::fmt::Write;

use super::report::Report;
use super::rows::{self, date};

/// The page's words, per language.
pub struct Words {
    pub lang: &'static str,
    pub title: &'static str,
    pub period: &'static str,
    pub generated: &'static str,
    pub records: &'static str,
    pub activity: &'static str,
    pub allowed: &'static str,
    pub denied: &'static str,
    pub policy: &'static str,
    pub policy_versions: &'static str,
    pub current: &'static str,
    pub loaded: &'static str,
    pub role: &'static str,
    pub inherits: &'static str,
    pub may: &'static str,
    pub subjects: &'static str,
    pub subject: &'static str,
    pub roles: &'static str,
    pub departments: &'static str,
    pub first: &'static str,
    pub last: &'static str,
    pub requests: &'static str,
    pub grants_used: &'static str,
    pub grant: &'static str,
    pub uses: &'static str,
    pub candidates: &'static str,
    pub none: &'static str,
    pub dormant: &'static str,
    pub ungranted: &'static str,
    pub break_glass: &'static str,
    pub time: &'static str,
    pub patient: &'static str,
    pub route: &'static str,
    pub reason: &'static str,
    pub denials: &'static str,
    pub resource: &'static str,
    pub count: &'static str,
    pub enumeration: &'static str,
    pub erasures: &'static str,
    pub state: &'static str,
    pub received: &'static str,
    pub due: &'static str,
    pub finished: &'static str,
    pub on_time: &'static str,
    pub yes: &'static str,
    pub no: &'static str,
    pub previous: &'static str,
    pub reviewer: &'static str,
    pub decision: &'static str,
    pub applied: &'static str,
    pub no_previous: &'static str,
    pub days: &'static str,
}

pub const EN: Words = Words {
    lang: "en",
    title: "Permission review",
    period: "Period",
    generated: "Generated",
    records: "audit records",
    activity: "Requests per day",
    allowed: "allowed",
    denied: "denied",
    policy: "The policy in plain words",
    policy_versions: "Policy versions loaded",
    current: "in force now",
    loaded: "loaded",
    role: "Role",
    inherits: "inherits",
    may: "may",
    subjects: "Subjects seen",
    subject: "Subject",
    roles: "Roles",
    departments: "Departments",
    first: "First activity",
    last: "Last activity",
    requests: "Requests",
    grants_used: "Grants: granted versus used",
    grant: "Grant",
    uses: "Uses",
    candidates: "Revocation candidates (never used in the period)",
    none: "None.",
    dormant: "Dormant subjects (no activity for",
    ungranted: "Roles in tokens that no policy grants",
    break_glass: "Break-glass uses",
    time: "Time",
    patient: "Patient (pseudonym)",
    route: "Route",
    reason: "Reason",
    denials: "Denied attempts, by subject and resource",
    resource: "Resource",
    count: "Count",
    enumeration: "Enumeration alerts",
    erasures: "Erasure requests",
    state: "State",
    received: "Received",
    due: "Due",
    finished: "Finished",
    on_time: "On time",
    yes: "yes",
    no: "no",
    previous: "The previous review's decisions",
    reviewer: "Reviewer",
    decision: "Decision",
    applied: "Carried out",
    no_previous: "No earlier signed review.",
    days: "days)",
};

pub const ZH: Words = Words {
    lang: "zh-CN",
    title: "权限审查报告",
    period: "审查期间",
    generated: "生成时间",
    records: "条审计记录",
    activity: "每日请求",
    allowed: "允许",
    denied: "拒绝",
    policy: "策略说明",
    policy_versions: "已加载的策略版本",
    current: "当前生效",
    loaded: "加载时间",
    role: "角色",
    inherits: "继承",
    may: "可以",
    subjects: "期间内出现的主体",
    subject: "主体",
    roles: "角色",
    departments: "科室",
    first: "首次活动",
    last: "最近活动",
    requests: "请求数",
    grants_used: "授权与实际使用",
    grant: "授权",
    uses: "使用次数",
    candidates: "建议撤销（期间内从未使用）",
    none: "无。",
    dormant: "休眠主体（无活动超过",
    ungranted: "令牌中出现但策略未授权的角色",
    break_glass: "紧急访问（破窗）记录",
    time: "时间",
    patient: "患者（假名）",
    route: "路由",
    reason: "理由",
    denials: "被拒绝的访问（按主体和资源）",
    resource: "资源",
    count: "次数",
    enumeration: "批量访问告警",
    erasures: "删除请求",
    state: "状态",
    received: "受理时间",
    due: "截止时间",
    finished: "完成时间",
    on_time: "按时",
    yes: "是",
    no: "否",
    previous: "上次审查的决定",
    reviewer: "审查人",
    decision: "决定",
    applied: "已执行",
    no_previous: "此前没有已签署的审查。",
    days: "天）",
};

pub fn words(language: &str) -> &'static Words {
    if language.eq_ignore_ascii_case("zh-CN") {
        &ZH
    } else {
        &EN
    }
}

pub(crate) fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

pub(crate) fn table(out: &mut String, headers: &[&str], rows: Vec<Vec<String>>, empty: &str) {
    if rows.is_empty() {
        let _ = writeln!(out, "<p class=\"none\">{}</p>", escape(empty));
        return;
    }
    out.push_str("<table><thead><tr>");
    for header in headers {
        let _ = write!(out, "<th>{}</th>", escape(header));
    }
    out.push_str("</tr></thead><tbody>\n");
    for row in rows {
        out.push_str("<tr>");
        for cell in row {
            let _ = write!(out, "<td>{}</td>", escape(&cell));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody></table>\n");
}

/// Bars per day (allowed above, denied stacked), as inline SVG.
fn chart(report: &Report, w: &Words) -> String {
    let days = &report.daily;
    if days.is_empty() {
        return format!("<p class=\"none\">{}</p>", escape(w.none));
    }
    let max = days.iter().map(|(_, a, d)| a + d).max().unwrap_or(1).max(1) as f64;
    let (width, height) = (720.0, 160.0);
    let bar = width / days.len() as f64;
    let mut svg = format!(
        "<svg role=\"img\" aria-label=\"{}\" viewBox=\"0 0 {width} {}\" width=\"100%\" xmlns=\"http://www.w3.org/2000/svg\">",
        escape(w.activity),
        height + 20.0
    );
    for (i, (_, allowed, denied)) in days.iter().enumerate() {
        let x = i as f64 * bar;
        let h_allowed = *allowed as f64 / max * height;
        let h_denied = *denied as f64 / max * height;
        let _ = write!(
            svg,
            "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{h_allowed:.1}\" fill=\"#2b6cb0\"/><rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{h_denied:.1}\" fill=\"#c53030\"/>",
            height - h_allowed - h_denied,
            (bar * 0.85).max(0.5),
            height - h_denied,
            (bar * 0.85).max(0.5),
        );
    }
    let _ = write!(
        svg,
        "<text x=\"0\" y=\"{}\" font-size=\"11\">{} – {}</text></svg>",
        height + 15.0,
        escape(&date(report.since_ms)[..10]),
        escape(&date(report.until_ms)[..10])
    );
    let _ = write!(
        svg,
        "<p class=\"legend\"><span class=\"a\">■</span> {} <span class=\"d\">■</span> {}</p>",
        escape(w.allowed),
        escape(w.denied)
    );
    svg
}

pub fn render(report: &Report, w: &Words) -> String {
    let mut out = String::with_capacity(64 * 1024);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"{}\"><head><meta charset=\"utf-8\"><title>{} {} – {}</title>\n<meta name=\"wardgate-period\" content=\"{},{}\">\n<style>{}</style></head><body>\n",
        w.lang,
        escape(w.title),
        &date(report.since_ms)[..10],
        &date(report.until_ms)[..10],
        report.since_ms,
        report.until_ms,
        CSS
    );
    let _ = writeln!(
        out,
        "<h1>{}</h1><p>{}: {} – {} · {}: {} · {} {}</p>",
        escape(w.title),
        escape(w.period),
        date(report.since_ms),
        date(report.until_ms),
        escape(w.generated),
        date(report.generated_ms),
        report.records,
        escape(w.records)
    );
    let _ = writeln!(out, "<h2>{}</h2>{}", escape(w.activity), chart(report, w));

    let _ = writeln!(out, "<h2>{}</h2>", escape(w.policy));
    for role in &report.policy.roles {
        let inherits = if role.inherits.is_empty() {
            String::new()
        } else {
            format!(" ({} {})", w.inherits, role.inherits.join(", "))
        };
        let _ = writeln!(
            out,
            "<h3>{}{}</h3><ul>",
            escape(&role.role),
            escape(&inherits)
        );
        for grant in &role.grants {
            let _ = writeln!(
                out,
                "<li>{} {} <b>{}</b> {} <code>{}</code></li>",
                escape(w.may),
                escape(&grant.action),
                escape(&grant.resource),
                escape(&relation_words(&grant.relation, w)),
                escape(&grant.line)
            );
        }
        out.push_str("</ul>\n");
    }
    let _ = writeln!(out, "<h3>{}</h3>", escape(w.policy_versions));
    let mut loads: Vec<Vec<String>> = report
        .policy
        .loads
        .iter()
        .map(|(hash, at)| vec![hash[..16.min(hash.len())].to_owned(), date(*at)])
        .collect();
    loads.push(vec![
        format!(
            "{} ({})",
            &report.policy.current_hash[..16.min(report.policy.current_hash.len())],
            w.current
        ),
        String::new(),
    ]);
    table(&mut out, &["SHA-256", w.loaded], loads, w.none);

    let _ = writeln!(out, "<h2>{}</h2>", escape(w.subjects));
    let subject_headers = [
        w.subject,
        w.roles,
        w.departments,
        w.first,
        w.last,
        w.requests,
        w.denied,
    ];
    table(
        &mut out,
        &subject_headers,
        rows::subjects(&report.subjects),
        w.none,
    );

    let _ = writeln!(out, "<h2>{}</h2>", escape(w.grants_used));
    let grants = rows::grants(report);
    let candidates = grants
        .iter()
        .filter(|row| row[2] == "0")
        .map(|row| row[..2].to_vec())
        .collect();
    table(&mut out, &[w.role, w.grant, w.uses], grants, w.none);
    let _ = writeln!(out, "<h3 class=\"warn\">{}</h3>", escape(w.candidates));
    table(&mut out, &[w.role, w.grant], candidates, w.none);
    let _ = writeln!(
        out,
        "<h2>{} {} {}</h2>",
        escape(w.dormant),
        report.dormant_after_days,
        escape(w.days)
    );
    table(
        &mut out,
        &subject_headers,
        rows::subjects(&report.dormant),
        w.none,
    );
    let _ = writeln!(out, "<h2>{}</h2>", escape(w.ungranted));
    table(
        &mut out,
        &[w.subject, w.role],
        rows::ungranted(report),
        w.none,
    );
    let _ = writeln!(out, "<h2>{}</h2>", escape(w.break_glass));
    table(
        &mut out,
        &[w.time, w.subject, w.patient, w.route, w.reason],
        rows::break_glass(report),
        w.none,
    );
    let _ = writeln!(out, "<h2>{}</h2>", escape(w.denials));
    table(
        &mut out,
        &[w.subject, w.resource, w.count],
        rows::denials(report),
        w.none,
    );
    let _ = writeln!(out, "<h3>{}</h3>", escape(w.enumeration));
    table(
        &mut out,
        &[w.time, w.subject, w.patient],
        rows::enumeration(report),
        w.none,
    );
    let _ = writeln!(out, "<h2>{}</h2>", escape(w.erasures));
    table(
        &mut out,
        &["ID", w.state, w.received, w.due, w.finished, w.on_time],
        rows::erasures(report, w.yes, w.no),
        w.none,
    );
    let _ = writeln!(out, "<h2>{}</h2>", escape(w.previous));
    match &report.previous {
        None => {
            let _ = writeln!(out, "<p class=\"none\">{}</p>", escape(w.no_previous));
        }
        Some(previous) => {
            let _ = writeln!(
                out,
                "<p>{}: {} · {}</p>",
                escape(w.reviewer),
                escape(&previous.reviewer),
                date(previous.signed_ms)
            );
            table(
                &mut out,
                &[w.grant, w.decision, w.reason, w.applied],
                previous
                    .decisions
                    .iter()
                    .map(|d| {
                        vec![
                            d.decision.grant.clone(),
                            d.decision.decision.clone(),
                            d.decision.note.clone().unwrap_or_default(),
                            match d.applied {
                                Some(true) => w.yes.to_owned(),
                                Some(false) => w.no.to_owned(),
                                None => "–".to_owned(),
                            },
                        ]
                    })
                    .collect(),
                w.none,
            );
        }
    }
    out.push_str("</body></html>\n");
    out
}

fn relation_words(relation: &str, w: &Words) -> String {
    let zh = w.lang == "zh-CN";
    match (relation, zh) {
        ("self", false) => "of their own (self)".to_owned(),
        ("same_department", false) => "of patients in their own department".to_owned(),
        ("break_glass", false) => "in an emergency, with a reason (break-glass)".to_owned(),
        ("other", false) => "of patients outside their department".to_owned(),
        ("none", false) => "not tied to a patient".to_owned(),
        ("*", false) => "of any patient".to_owned(),
        ("self", true) => "（本人数据）".to_owned(),
        ("same_department", true) => "（本科室患者）".to_owned(),
        ("break_glass", true) => "（紧急情况，须说明理由）".to_owned(),
        ("other", true) => "（外科室患者）".to_owned(),
        ("none", true) => "（与患者无关）".to_owned(),
        ("*", true) => "（任何患者）".to_owned(),
        (other, _) => format!("({other})"),
    }
}

pub(crate) const CSS: &str = "body{font-family:system-ui,'Noto Sans CJK SC','PingFang SC',sans-serif;margin:2rem auto;max-width:60rem;color:#1a202c;line-height:1.45}\
h1{border-bottom:2px solid #2b6cb0;padding-bottom:.3rem}h2{margin-top:2rem;color:#2b6cb0}h3.warn{color:#c53030}\
table{border-collapse:collapse;width:100%;margin:.5rem 0;font-size:.9rem}th,td{border:1px solid #cbd5e0;padding:.25rem .5rem;text-align:left;vertical-align:top}\
th{background:#edf2f7}code{font-size:.8rem;color:#4a5568}.none{color:#718096;font-style:italic}.legend .a{color:#2b6cb0}.legend .d{color:#c53030}\
@media print{body{margin:0;max-width:none}h2{page-break-after:avoid}table{page-break-inside:auto}tr{page-break-inside:avoid}}";
