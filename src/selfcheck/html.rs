//! The inspection as one self-contained HTML page, in the review report's style: items grouped
//! by area with their evidence and fix, and what changed since the previous inspection.

use std::fmt::Write;

use super::{Changes, Item, Status};
use crate::review::html::{escape, table, CSS};
use crate::review::rows::date;

struct Words {
    lang: &'static str,
    title: &'static str,
    run_at: &'static str,
    summary: [&'static str; 3],
    columns: [&'static str; 4],
    changes: &'static str,
    fixed: &'static str,
    new: &'static str,
    still_open: &'static str,
    first: &'static str,
    none: &'static str,
}

const EN: Words = Words {
    lang: "en",
    title: "Self-inspection",
    run_at: "Inspected",
    summary: ["pass", "warn", "fail"],
    columns: ["Status", "Item", "Found", "How to fix"],
    changes: "Since the previous inspection",
    fixed: "Fixed",
    new: "New",
    still_open: "Still open",
    first: "This is the first inspection recorded.",
    none: "None.",
};

const ZH: Words = Words {
    lang: "zh-CN",
    title: "合规自查报告",
    run_at: "检查时间",
    summary: ["通过", "警告", "不合格"],
    columns: ["结果", "检查项", "发现", "整改建议"],
    changes: "与上次自查相比",
    fixed: "已整改",
    new: "新出现",
    still_open: "仍未整改",
    first: "这是第一次记录的自查。",
    none: "无。",
};

fn area_name(area: &str, zh: bool) -> &str {
    match (area, zh) {
        ("transport", true) => "传输加密",
        ("access", true) => "访问控制",
        ("fields", true) => "字段加密",
        ("audit", true) => "审计追溯",
        ("reviews", true) => "权限审查",
        ("erasure", true) => "删除请求",
        ("recovery", true) => "备份与恢复",
        ("operations", true) => "运行监控",
        ("transport", false) => "Transport",
        ("access", false) => "Access control",
        ("fields", false) => "Field protection",
        ("audit", false) => "Audit trail",
        ("reviews", false) => "Permission reviews",
        ("erasure", false) => "Erasure",
        ("recovery", false) => "Backup and recovery",
        ("operations", false) => "Operations",
        (other, _) => other,
    }
}

pub fn render(items: &[Item], changes: Option<&Changes>, language: &str, at_ms: i64) -> String {
    let w = if language.eq_ignore_ascii_case("zh-CN") {
        &ZH
    } else {
        &EN
    };
    let zh = w.lang == "zh-CN";
    let mut out = String::with_capacity(32 * 1024);
    let count = |status| items.iter().filter(|i| i.status == status).count();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"{}\"><head><meta charset=\"utf-8\"><title>{}</title>\n<style>{CSS}.PASS{{color:#2f855a}}.WARN{{color:#b7791f}}.FAIL{{color:#c53030;font-weight:bold}}</style></head><body>\n",
        w.lang,
        escape(w.title)
    );
    let _ = writeln!(
        out,
        "<h1>{}</h1><p>{}: {} · <span class=\"PASS\">{} {}</span> · <span class=\"WARN\">{} {}</span> · <span class=\"FAIL\">{} {}</span></p>",
        escape(w.title),
        escape(w.run_at),
        date(at_ms),
        count(Status::Pass),
        w.summary[0],
        count(Status::Warn),
        w.summary[1],
        count(Status::Fail),
        w.summary[2]
    );
    let _ = writeln!(out, "<h2>{}</h2>", escape(w.changes));
    match changes {
        None => {
            let _ = writeln!(out, "<p class=\"none\">{}</p>", escape(w.first));
        }
        Some(changes) => {
            for (label, ids) in [
                (w.fixed, &changes.fixed),
                (w.new, &changes.new),
                (w.still_open, &changes.still_open),
            ] {
                let list = if ids.is_empty() {
                    w.none.to_owned()
                } else {
                    ids.join(", ")
                };
                let _ = writeln!(out, "<p><b>{}</b>: {}</p>", escape(label), escape(&list));
            }
        }
    }
    let mut areas: Vec<&str> = Vec::new();
    for item in items {
        if !areas.contains(&item.area()) {
            areas.push(item.area());
        }
    }
    for area in areas {
        let _ = writeln!(out, "<h2>{}</h2>", escape(area_name(area, zh)));
        let rows = items
            .iter()
            .filter(|item| item.area() == area)
            .map(|item| {
                vec![
                    item.status.to_string(),
                    item.id.clone(),
                    item.found.clone(),
                    item.fix.clone(),
                ]
            })
            .collect();
        table(&mut out, &w.columns, rows, w.none);
    }
    // Colour the status cells: the table helper writes plain cells.
    for status in ["PASS", "WARN", "FAIL"] {
        out = out.replace(
            &format!("<td>{status}</td>"),
            &format!("<td class=\"{status}\">{status}</td>"),
        );
    }
    out.push_str("</body></html>\n");
    out
}
