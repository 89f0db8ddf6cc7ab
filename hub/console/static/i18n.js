// UI strings in Chinese and English. Tibetan: the catalogue's reason texts; labels fall back to Chinese.
// Reason texts come from the gates' own catalogue (gate/messages.toml), via /api/v1/catalogue.
"use strict";
window.LUNGTA_TEXT = {
  en: {
    login_title: "Lungta hub console", name: "Name", password: "Password", login: "Log in", logout: "Log out",
    gates: "Gates", alerts: "Alerts", quotas: "Today's quotas", actions: "Actions", revoke: "Revoke tickets",
    ticket_ids: "Ticket ids (hex), one per line", reason: "Reason", set_quota: "Set a quota", date: "Date", slot: "Slot", cap: "Cap",
    save: "Save", emergency: "Emergency open", target: "Gates", open_all: "Open", close_again: "Close again",
    per_min: "/min", admitted: "Admitted", refused: "Refused", lag: "Lag", backlog: "Backlog",
    online: "online", offline: "offline", stale: "silent", unknown: "unknown",
    whole_site: "Whole site", connected: "live", connecting: "connecting…", broker_down: "hub cannot reach broker",
    persons_today: "Persons admitted today", per_minute: "per minute", refusals_today: "Refusals", flagged_today: "Flagged",
    gates_online: "Gates online", no_alerts: "No alerts", no_quotas: "No quota today", ack: "Acknowledge", acked_by: "acknowledged by",
    seen: "seen", ago: "ago", emergency_on: "EMERGENCY OPEN", confirm_emergency: "Open these gates for everyone?", done: "Done",
    alert_broker_unreachable: "Hub cannot reach the broker: gate states unknown (gates keep deciding)",
    alert_gate_offline: "{gate} is offline", alert_gate_stale: "{gate} has gone silent", alert_scanner_down: "{gate}: scanner down",
    alert_relay_error: "{gate}: relay or sensor fault", alert_emergency_on: "{gate}: emergency open", alert_clock_offset: "{gate}: clock off",
    alert_revocation_lag: "{gate}: behind on revocations", alert_used_lag: "{gate}: behind on used tickets", alert_backlog_growing: "{gate}: events piling up",
    alert_disk_low: "{gate}: disk low", alert_gate_state_reset: "{gate}: state was reset", alert_flagged_admissions: "{gate}: flagged admissions today",
    wrong_login: "Wrong name or password", no_gates: "No gate has reported yet", of: "of", scanner: "scanner", relay: "relay",
  },
  zh: {
    login_title: "风马闸机中控台", name: "用户名", password: "密码", login: "登录", logout: "退出",
    gates: "闸机", alerts: "告警", quotas: "今日限流", actions: "操作", revoke: "作废门票",
    ticket_ids: "票号（十六进制），每行一个", reason: "原因", set_quota: "设置时段限额", date: "日期", slot: "时段", cap: "限额",
    save: "保存", emergency: "紧急开闸", target: "闸机", open_all: "开闸", close_again: "恢复",
    per_min: "人/分", admitted: "入园", refused: "拒绝", lag: "同步滞后", backlog: "待传",
    online: "在线", offline: "离线", stale: "无响应", unknown: "未知",
    whole_site: "全景区", connected: "实时", connecting: "连接中…", broker_down: "中心无法连接消息服务器",
    persons_today: "今日入园人数", per_minute: "每分钟", refusals_today: "拒绝", flagged_today: "存疑放行",
    gates_online: "在线闸机", no_alerts: "无告警", no_quotas: "今日无限额", ack: "确认", acked_by: "已确认：",
    seen: "最后通信", ago: "前", emergency_on: "紧急开闸中", confirm_emergency: "确定对所选闸机紧急开闸？", done: "已完成",
    alert_broker_unreachable: "中心无法连接消息服务器：闸机状态未知（闸机仍可离线验票）",
    alert_gate_offline: "{gate} 离线", alert_gate_stale: "{gate} 无响应", alert_scanner_down: "{gate} 扫码器故障",
    alert_relay_error: "{gate} 闸门或传感器故障", alert_emergency_on: "{gate} 紧急开闸中", alert_clock_offset: "{gate} 时钟偏差过大",
    alert_revocation_lag: "{gate} 作废名单未同步", alert_used_lag: "{gate} 已用票记录未同步", alert_backlog_growing: "{gate} 待传记录积压",
    alert_disk_low: "{gate} 磁盘空间不足", alert_gate_state_reset: "{gate} 本地数据已重置", alert_flagged_admissions: "{gate} 今日有存疑放行",
    wrong_login: "用户名或密码错误", no_gates: "尚无闸机上报", of: "/", scanner: "扫码器", relay: "闸门",
  },
  bo: {},  // UI labels fall back to Chinese; reason texts are the catalogue's Tibetan
};
