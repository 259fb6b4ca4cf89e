"""Chinese names for what the report shows: sources, directions, severities, families, rules,
evidence keys. Anything not listed here is shown by its identifier, so a new rule or evidence
column appears in the report without a code change."""

from __future__ import annotations

SOURCES = {
    "tax_platform": "电子发票服务平台(全量发票查询)",
    "einvoice_xml": "数电票 XML",
    "einvoice_ofd": "数电票 OFD",
    "erp": "ERP 发票登记簿",
}

DIRECTIONS = {"issued": "销项", "received": "进项"}

SEVERITIES = {"error": "错误", "warning": "警告", "info": "提示"}
SEVERITY_ORDER = ("error", "warning", "info")

# Sheet names: at most 31 characters, none of []:*?/\ (Excel's rules).
FAMILIES = {
    "completeness": "完整性",
    "agreement": "账实一致",
    "status": "发票状态",
    "duplicates": "重复入账报销",
    "claims": "报销",
    "identity": "税号与抬头",
    "arithmetic": "计算与税率",
    "red_letter": "红字发票",
    "files": "导出文件",
    "sync": "数据同步",
}

RULES = {
    "missing_in_erp": "ERP 未入账",
    "missing_in_tax_platform": "税务平台无此发票",
    "amount_mismatch": "入账金额与发票不符",
    "counterparty_mismatch": "往来单位税号不符",
    "date_mismatch": "开票日期不符",
    "cross_period_booking": "跨期入账",
    "voided_but_booked": "已作废仍入账",
    "duplicate_erp_entry": "ERP 重复入账",
    "duplicate_claim": "重复报销",
    "claim_without_invoice": "报销发票查无此票",
    "claim_exceeds_invoice": "报销金额超过发票金额",
    "sequence_gap": "发票号码断号",
    "invalid_tin": "纳税人识别号无效",
    "wrong_title": "抬头与税号不符",
    "arithmetic_error": "金额计算错误",
    "invalid_tax_rate": "税率无效",
    "tax_calc_mismatch": "税额计算偏差",
    "red_without_blue": "红字发票无对应蓝字发票",
    "red_over_reversal": "红冲金额超过原发票",
    "risky_invoice": "异常/风险发票",
    "source_disagreement": "各来源数据不一致",
    "control_total_mismatch": "导出文件合计行不符",
    "sync_failed": "同步任务失败",
    "sync_stale": "同步长时间未成功",
}

SCOPES = {
    "month": "本期",
    "undated": "本主体·无所属期间",
    "unassigned": "未归属主体",
}

# audit.finding_status.state of a listed finding, and what people did (audit.finding_actions).
STATES = {"open": "未结", "accepted": "已接受风险"}
ACTIONS = {
    "reissue_requested": "已要求重开发票",
    "entered_in_erp": "已在 ERP 入账",
    "claim_corrected": "已更正报销单",
    "accepted_risk": "已接受风险",
    "note": "备注",
}

AGE_BUCKETS = ("0-7", "8-30", "31-90", ">90")
AGE_BUCKET_LABELS = {"0-7": "0–7 天", "8-30": "8–30 天", "31-90": "31–90 天", ">90": "90 天以上"}

# Evidence keys of audit.findings.details (the rules' extra columns).
DETAILS = {
    "actual": "实际合计",
    "amount_excl_tax": "发票不含税金额",
    "amount_incl_tax": "发票价税合计",
    "blue_amount_incl_tax": "蓝字发票价税合计",
    "blue_invoice_uid": "蓝字发票号码",
    "buyer_name": "购方名称",
    "buyer_tin": "购方税号",
    "claimed_amount": "报销金额",
    "claims": "报销单号",
    "counterparty_name": "往来单位名称",
    "counterparty_tin": "往来单位税号",
    "erp_amount_incl_tax": "ERP 价税合计",
    "erp_counterparty_name": "ERP 往来单位名称",
    "erp_counterparty_tin": "ERP 往来单位税号",
    "erp_documents": "ERP 单据",
    "erp_excl_tax": "ERP 不含税金额",
    "erp_incl_tax": "ERP 价税合计",
    "erp_issue_date": "ERP 开票日期",
    "erp_period": "ERP 会计期间",
    "erp_tax": "ERP 税额",
    "error": "错误信息",
    "expected": "合计行",
    "expected_tax_amounts": "应有税额",
    "fields": "不一致字段",
    "finished_at": "结束时间",
    "hours_since_success": "距上次成功(小时)",
    "invalid_rates": "无效税率",
    "invoice_amount_incl_tax": "发票价税合计",
    "invoice_code_as_claimed": "报销填写的发票代码",
    "invoice_counterparty_tins": "发票往来单位税号",
    "invoice_excl_tax": "发票不含税金额",
    "invoice_incl_tax": "发票价税合计",
    "invoice_issue_dates": "发票开票日期",
    "invoice_no_as_claimed": "报销填写的发票号码",
    "invoice_no_as_keyed": "ERP 填写的发票号码",
    "invoice_periods": "发票所属期间",
    "invoice_status": "发票状态",
    "invoice_tax": "发票税额",
    "invoice_uids": "关联发票",
    "invoices": "涉及发票",
    "is_live": "ERP 有效",
    "issue_date": "开票日期",
    "issued_after": "断号后开票日期",
    "issued_before": "断号前开票日期",
    "last_run_at": "最近运行时间",
    "last_success_at": "最近成功时间",
    "line_numbers": "明细行号",
    "lines_excl_tax": "明细合计金额",
    "lines_tax": "明细合计税额",
    "live_erp_documents": "有效 ERP 单据",
    "missing_count": "缺失张数",
    "posting_date": "记账日期",
    "problem": "问题",
    "rates": "税率",
    "records_failed": "失败记录数",
    "records_read": "读取记录数",
    "records_written": "写入记录数",
    "red_invoices": "红字发票",
    "referenced_numbers": "引用的发票号码",
    "remark": "备注",
    "reversed": "已红冲金额",
    "risk_level": "风险等级",
    "source": "来源",
    "source_pairs": "比较的来源",
    "sources": "来源",
    "started_at": "开始时间",
    "status": "状态",
    "system": "同步系统",
    "tax_amount": "税额",
    "tax_amounts": "税额",
}


def rule_title(rule_id: str) -> str:
    return RULES.get(rule_id, rule_id)


def family_sheet(family: str) -> str:
    name = FAMILIES.get(family, family)
    for bad in "[]:*?/\\":
        name = name.replace(bad, "_")
    return name[:31]


def detail_label(key: str) -> str:
    """`expected.tax_amount` → `合计行·税额`."""
    return "·".join(DETAILS.get(part, part) for part in key.split("."))
