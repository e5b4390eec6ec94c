"""English and Simplified Chinese for the pages: the browser's language, or the one chosen."""
from flask import g, request

LANGUAGES = ("en", "zh")
COOKIE = "lang"

ZH = {
    "Overview": "概览", "Instances": "实例", "Licenses": "License", "Tenants": "租户", "Callbacks": "回调日志",
    "Log out": "退出", "Log in": "登录", "Name": "用户名", "Password": "密码",
    "Wrong name or password, or too many attempts. Try again later.": "用户名或密码错误，或尝试次数过多，请稍后再试。",
    "State": "状态", "Product": "商品", "Data": "数据", "Real": "真实", "Test": "测试", "All": "全部",
    "Expiring within days": "几天内到期", "Search": "搜索", "Order, instance or customer": "订单、实例或客户", "Order or instance": "订单或实例",
    "Sort": "排序", "Newest": "最新", "Expiry": "到期时间", "Filter": "筛选", "Export CSV": "导出 CSV",
    "Previous": "上一页", "Next": "下一页", "Instance": "实例", "Order": "订单", "Customer": "客户",
    "Expires": "到期", "Created": "创建", "Generation": "协议", "Details": "订单详情",
    "Instances by state": "各状态实例数", "Callbacks today": "今日回调", "Failures in the last 24 h": "24 小时内失败",
    "Expiring in the next 7 days": "7 天内到期", "Dead jobs": "失败任务", "Conflicts": "冲突",
    "Show credentials": "显示凭据", "Admin user": "管理员账号", "Admin password": "管理员密码",
    "Timeline": "时间线", "Time": "时间", "What": "事件", "Result": "结果", "Activity": "接口",
    "Result code": "结果码", "From": "从", "To": "到", "Failures only": "仅失败", "Request": "请求",
    "Answer": "应答", "Duration": "耗时", "Apps": "应用", "Users": "用户", "Departments": "部门",
    "License": "License", "Fingerprint": "设备指纹", "Issued": "签发", "Document": "License 文本",
    "Nothing here yet.": "暂无数据。", "Tenant": "租户", "Domain": "域名", "Role": "角色",
    "shown": "已显示", "of": "共", "Jobs": "任务", "Events": "事件", "Login": "登录信息",
    "Front-end URL": "前台地址", "Admin URL": "管理地址", "Order details": "订单详情", "Language": "语言",
    "Warnings": "警告", "With warnings only": "仅含警告", "Accepted with warnings in the last 24 h": "24 小时内带警告受理",
    "Key": "密钥", "Note": "备注",
    "The request was signed correctly and processed; these parts of it were not as documented.":
        "该请求签名正确并已处理；以下内容与文档不一致。",
}


def choose():
    chosen = request.args.get("lang") or request.cookies.get(COOKIE)
    if chosen not in LANGUAGES:
        chosen = request.accept_languages.best_match(["en", "zh", "zh-CN", "zh-Hans"], default="en")[:2]
    g.lang = chosen
    return chosen


def gettext(text):
    return ZH.get(text, text) if g.get("lang") == "zh" else text


def remember(response):
    """Keep a language picked with ?lang= for the next pages."""
    picked = request.args.get("lang")
    if picked in LANGUAGES:
        response.set_cookie(COOKIE, picked, max_age=365 * 86400, httponly=True, samesite="Lax")
    return response
