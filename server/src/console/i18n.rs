//! The console's words in Chinese (the default) and English: one table, looked up by key.
//! A key missing from the table shows itself (the key), which a browser test would catch.

pub const LANG_COOKIE: &str = "onsite_lang";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Zh,
    En,
}

impl Lang {
    pub fn from_cookie(v: Option<&str>) -> Lang {
        if v == Some("en") {
            Lang::En
        } else {
            Lang::Zh
        }
    }

    /// The `lang` attribute of the page.
    pub fn code(self) -> &'static str {
        match self {
            Lang::Zh => "zh-CN",
            Lang::En => "en",
        }
    }

    /// The other language: (cookie value, its name in itself).
    pub fn other(self) -> (&'static str, &'static str) {
        match self {
            Lang::Zh => ("en", "English"),
            Lang::En => ("zh", "中文"),
        }
    }

    pub fn t(self, key: &str) -> &str {
        match WORDS.iter().find(|(k, _, _)| *k == key) {
            Some((_, zh, en)) => match self {
                Lang::Zh => zh,
                Lang::En => en,
            },
            None => key,
        }
    }
}

/// (key, zh-CN, en)
const WORDS: &[(&str, &str, &str)] = &[
    ("app", "Onsite 调度台", "Onsite console"),
    ("board", "工单看板", "Board"),
    ("new_order", "新建工单", "New order"),
    ("devices", "设备", "Devices"),
    ("experts", "专家", "Experts"),
    ("inbox", "求助收件箱", "Help inbox"),
    ("verify", "证据核验", "Verify evidence"),
    ("verify_hint", "仲裁包在本浏览器中核验,不会上传。", "Bundles are verified in this browser and never uploaded."),
    ("verify_offline", "下载离线核验页", "Download the offline verifier"),
    ("sign_in", "登录", "Sign in"),
    ("sign_out", "退出", "Sign out"),
    ("token", "令牌", "Token"),
    ("token_hint", "调度员或专家令牌", "Dispatcher or expert token"),
    ("order", "工单", "Order"),
    ("status", "状态", "Status"),
    ("priority", "优先级", "Priority"),
    ("engineer", "工程师", "Engineer"),
    ("customer", "客户", "Customer"),
    ("site", "现场地址", "Site"),
    ("equipment", "设备型号", "Equipment"),
    ("serial", "序列号", "Serial"),
    ("appointment", "预约时段", "Appointment"),
    ("sla", "SLA 时限", "SLA clock"),
    ("breached", "已超时", "Breached"),
    ("stopped", "已停止", "Stopped"),
    ("all", "全部", "All"),
    ("filter", "筛选", "Filter"),
    ("search", "搜索(编号/客户/序列号)", "Search (id / customer / serial)"),
    ("only_breached", "只看超时", "Breached only"),
    ("orders_count", "张工单", "orders"),
    ("live", "实时更新", "Live"),
    ("timeline", "时间线", "Timeline"),
    ("checklist", "检查清单", "Checklist"),
    ("photos", "照片", "Photos"),
    ("consents", "客户同意", "Consents"),
    ("receipts", "签收单", "Receipts"),
    ("notes", "备注", "Notes"),
    ("help", "专家求助", "Expert help"),
    ("parts", "备件", "Parts"),
    ("actions", "操作", "Actions"),
    ("assign", "派工", "Assign"),
    ("engineer_id", "工程师编号", "Engineer id"),
    ("engineer_name", "工程师姓名", "Engineer name"),
    ("cancel", "取消工单", "Cancel order"),
    ("reason", "原因", "Reason"),
    ("set_priority", "设置优先级", "Set priority"),
    ("close_out", "结单", "Close out"),
    ("closed_at", "已结单", "Closed"),
    ("when", "时间", "When"),
    ("event", "事件", "Event"),
    ("device", "设备", "Device"),
    ("gps", "定位", "GPS fix"),
    ("mock", "模拟定位!", "mock location!"),
    ("from_site", "距现场", "from the site"),
    ("step", "步骤", "Step"),
    ("answer", "回答", "Answer"),
    ("corrected", "已更正", "corrected"),
    ("consent_yes", "同意", "accepted"),
    ("consent_no", "拒绝", "refused"),
    ("signer", "签字人", "Signer"),
    ("hash", "哈希", "Hash"),
    ("question", "问题", "Question"),
    ("expert_answer", "专家回答", "Expert answer"),
    ("no_answer", "尚未回答", "not answered yet"),
    ("create", "创建", "Create"),
    ("or_json", "或上传调度 JSON", "or upload dispatcher JSON"),
    ("json", "调度 JSON", "Dispatcher JSON"),
    ("created", "已创建", "Created"),
    ("fault", "故障描述", "Fault"),
    ("contact", "联系人", "Contact"),
    ("phone", "电话", "Phone"),
    ("category", "类别", "Category"),
    ("brand", "品牌", "Brand"),
    ("model", "型号", "Model"),
    ("order_id", "工单编号", "Order id"),
    ("enrol_code", "注册码", "Enrolment code"),
    ("new_code", "生成注册码", "New enrolment code"),
    ("scan_hint", "用工程师手机扫描此二维码完成注册", "Scan this code with the engineer's phone to enrol it"),
    ("expires", "有效期至", "Expires"),
    ("revoke", "吊销", "Revoke"),
    ("revoked", "已吊销", "Revoked"),
    ("active", "有效", "Active"),
    ("journal", "日志条数", "Journal entries"),
    ("last_sync", "最近同步", "Last sync"),
    ("engineers", "工程师状态", "Engineers"),
    ("open_orders", "未完成工单", "Open orders"),
    ("under_way", "进行中", "Under way"),
    ("never", "从未", "never"),
    ("attested", "密钥证明", "Key attestation"),
    ("none", "无", "none"),
    ("submit", "提交", "Submit"),
    ("text", "内容", "Text"),
    ("suggested_steps", "建议步骤(每行一条)", "Suggested steps (one per line)"),
    ("send_answer", "发送回答", "Send answer"),
    ("reference_photos", "参考照片(最多 4 张)", "Reference photos (up to 4)"),
    ("shared", "工程师共享的内容", "What the engineer shared"),
    ("error", "出错了", "Something went wrong"),
    ("back", "返回", "Back"),
    ("add_expert", "登记专家", "Register an expert"),
    ("name", "姓名", "Name"),
    ("categories", "类别(逗号分隔)", "Categories (comma separated)"),
    ("brands", "品牌(逗号分隔)", "Brands (comma separated)"),
    ("fee", "每次回答费用(分)", "Fee per answer (cents)"),
    ("expert_token", "专家令牌(只显示一次)", "Expert token (shown once)"),
    ("clerk", "备件收发", "Parts desk"),
    ("issue", "发出", "Issue"),
    ("receive", "收回", "Receive"),
    ("part_number", "备件编号", "Part number"),
    ("quantity", "数量", "Quantity"),
    ("held", "在手", "Held"),
    ("owed", "待归还", "Owed"),
    ("conflicts", "并发冲突", "Conflicts"),
    ("no_conflicts", "没有并发修改的字段", "No field was changed concurrently"),
    ("ingested", "入库时间", "Ingested"),
    ("exif_time", "EXIF 拍摄时间", "EXIF time"),
    ("reused", "疑似复用照片,见工单", "Possibly reused; seen on"),
    ("customer_copy", "客户联", "Customer copy"),
    ("verified", "已核验", "verified"),
    ("nothing_owed", "没有待归还的备件", "No parts owed"),
    ("u_urgent", "紧急", "urgent"),
    ("u_normal", "普通", "normal"),
    ("u_low", "低", "low"),
    ("assigned", "已派工", "assigned"),
    ("accepted", "已接单", "accepted"),
    ("customer_contacted", "已联系客户", "customer contacted"),
    ("en_route", "在途", "en route"),
    ("on_site", "已到场", "on site"),
    ("in_progress", "维修中", "in progress"),
    ("awaiting_signature", "待签收", "awaiting signature"),
    ("completed", "已完成", "completed"),
    ("rescheduled", "已改约", "rescheduled"),
    ("carried_to_workshop", "已带回维修", "carried to workshop"),
    ("cancelled", "已取消", "cancelled"),
    ("unresolved", "未解决", "unresolved"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_is_once_in_the_table_and_both_languages_say_something() {
        let mut keys: Vec<&str> = WORDS.iter().map(|(k, _, _)| *k).collect();
        keys.sort_unstable();
        let n = keys.len();
        keys.dedup();
        assert_eq!(keys.len(), n, "a key is in the table twice");
        assert!(WORDS.iter().all(|(_, zh, en)| !zh.is_empty() && !en.is_empty()));
        assert_eq!(Lang::Zh.t("board"), "工单看板");
        assert_eq!(Lang::En.t("board"), "Board");
        assert_eq!(Lang::from_cookie(Some("fr")), Lang::Zh, "zh-CN is the default");
    }
}
