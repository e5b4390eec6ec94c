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
    "Callbacks per day, by result": "每日回调（按结果）", "New orders per day": "每日新订单",
    "Instances expiring per day, next 30 days": "未来 30 天每日到期实例", "succeeded": "成功",
    "refused (signature, fields)": "拒绝（签名、字段）", "new orders (real)": "新订单（真实）",
    "instances expiring": "到期实例",
    "Protocol generation": "协议版本", "Product type": "商品类型", "Order line": "订单行",
    "Specification (SKU)": "规格（SKU）", "Customer ID": "客户 ID", "IAM user ID": "IAM 用户 ID", "IAM user": "IAM 用户",
    "Charging mode": "计费模式", "Period": "周期", "Number of periods": "周期数", "Trial": "试用",
    "Released": "释放时间", "Yes": "是", "No": "否", "details pending": "待获取", "details fetched": "已获取",
    "details inline": "请求中已携带", "details failed": "获取失败", "Event": "事件", "Effective from": "生效时间",
    "Tenant code": "租户标识", "ACTIVE": "正常", "FROZEN": "已冻结", "EXPIRED": "已过期", "RELEASED": "已释放",
    "SUPERSEDED": "已被替代", "DELETED": "已删除", "REVOKED": "已取消授权", "never seen": "从未出现", "not called yet": "尚未调用", "never": "从未",
    "sound": "可靠", "none": "无", "no signed request seen yet": "尚未收到签名请求",
    'Go live':
        '上线检查',
    'The Seller Console publishes a product once its scenarios were debugged successfully (calls with testFlag=1). Each row below turns green when such a call succeeded here.':
        '卖家中心要求商品的各场景调试成功后才能发布（testFlag=1 的调试请求）。某场景的调试请求在这里成功后，该行即变为绿色。',
    'Production URL to paste into the Seller Console':
        '填入卖家中心的生产接口地址',
    'SaaS products':
        'SaaS 类商品',
    'License products':
        'License 类商品',
    'The marketplace needs https with a trusted certificate and a domain name: serve isvapp behind nginx (docs/deploy.md).':
        '云商店要求使用域名和受信任证书的 HTTPS：请通过 nginx 对外提供 isvapp（见 docs/deploy.md）。',
    'ready':
        '就绪',
    'not yet':
        '未完成',
    'Scenario':
        '场景',
    'Last success':
        '最近成功',
    'Why it failed':
        '失败原因',
    'passed':
        '通过',
    'failed':
        '失败',
    'not debugged yet':
        '尚未调试',
    'the callback':
        '查看该回调',
    'Configuration':
        '配置',
    'Item':
        '项目',
    'Detail':
        '详情',
    'What to do':
        '处理办法',
    'ok':
        '正常',
    'warn':
        '注意',
    'bad':
        '异常',
    'SaaS yearly/monthly':
        'SaaS 包年/包月',
    'One-time':
        '按次',
    'Pay-per-use':
        '按需',
    'Kit (joint operation)':
        '联营 Kit',
    'New purchase':
        '新购',
    'Instance query':
        '查询实例',
    'Renewal':
        '续费',
    'Expiry (freeze)':
        '到期（冻结）',
    'Release':
        '释放',
    'Status change':
        '状态变更',
    'Usage push':
        '使用量推送',
    'Tenant sync':
        '租户同步',
    'Application sync':
        '应用同步',
    'User authorisation sync':
        '用户授权同步',
    'Department sync':
        '部门同步',
    'Keys configured':
        '已配置的密钥',
    'SECRET_KEY':
        'SECRET_KEY',
    'Clock skew':
        '时钟偏差',
    'HTTPS':
        'HTTPS',
    'Background worker':
        '后台任务进程',
    'Order-query API':
        '订单查询接口',
    'Last backup':
        '最近备份',
    'Free disk and database size':
        '剩余磁盘与数据库大小',
    'Set KOO_ACCESS_KEY to the Key the Seller Console shows for this product.':
        '将卖家中心为该商品显示的 Key 填入 KOO_ACCESS_KEY。',
    'Turn on time synchronisation (NTP, e.g. chrony).':
        '开启时间同步（NTP，例如 chrony）。',
    'Serve https through nginx and set PROXY_FIX_HOPS = 1 so isvapp sees X-Forwarded-Proto (docs/deploy.md).':
        '通过 nginx 提供 HTTPS，并设置 PROXY_FIX_HOPS = 1，使 isvapp 能识别 X-Forwarded-Proto（见 docs/deploy.md）。',
    'Start `flask --app isvapp worker` (scripts/run.sh and the systemd unit do).':
        '启动 `flask --app isvapp worker`（scripts/run.sh 与 systemd 单元会启动它）。',
    "Set KOO_API_BASE_URL, KOO_AK and KOO_SK; G2 orders' details come from it.":
        '设置 KOO_API_BASE_URL、KOO_AK 和 KOO_SK；G2 订单详情由此接口获取。',
    'Check KOO_AK/KOO_SK and that this server reaches the marketplace API.':
        '检查 KOO_AK/KOO_SK，以及本服务器能否访问云商店接口。',
    'Run `flask --app isvapp backup PATH` daily (docs/deploy.md).':
        '每天运行 `flask --app isvapp backup PATH`（见 docs/deploy.md）。',
    'Free disk space: a full disk answers 000005 to the marketplace.':
        '请释放磁盘空间：磁盘写满时会向云商店返回 000005。',
    'What most likely went wrong':
        '最可能的原因',
    "The Key in isvapp does not match the Seller Console's Key for this product: copy the Key shown in the Seller Console into KOO_ACCESS_KEY (KOO_KIT_ACCESS_KEY for Kit sync) and restart.":
        'isvapp 中的 Key 与卖家中心该商品的 Key 不一致：请把卖家中心显示的 Key 复制到 KOO_ACCESS_KEY（联营 Kit 同步为 KOO_KIT_ACCESS_KEY）并重启。',
    "The request carried no signature: it did not come from the marketplace, or a proxy dropped the query string or headers on the way (check nginx's proxy_pass).":
        '请求没有签名：它不是云商店发来的，或代理在转发时丢掉了查询串或请求头（检查 nginx 的 proxy_pass）。',
    'A different request reused an earlier nonce: a replay, not the marketplace. Nothing was changed.':
        '另一个请求重复使用了之前的 nonce：这是重放，而非云商店的重试。未做任何更改。',
    "A G1 parameter held '&name=', so the signature could be read as other parameters: refused as an attack.":
        "G1 参数中含有 '&name='，签名可被解读为其他参数：已作为攻击拒绝。",
    "The request's time is too far from this server's clock: turn on time synchronisation (NTP, e.g. chrony) on this server.":
        '请求时间与本服务器时钟相差过大：请在本服务器开启时间同步（NTP，例如 chrony）。',
    "The timestamp was not in the marketplace's form: the request did not come from the marketplace.":
        '时间戳格式不是云商店的格式：该请求不是云商店发来的。',
    'The body was larger than this interface takes (KOO_MAX_BODY_BYTES, or MAX_CONTENT_LENGTH for Kit).':
        '请求体超过了该接口的上限（KOO_MAX_BODY_BYTES，Kit 为 MAX_CONTENT_LENGTH）。',
    'The address or activity is not one isvapp serves: check the production URL registered in the Seller Console (https://<your domain>/produce, or /license for License products).':
        '该地址或接口不是 isvapp 提供的：请检查卖家中心登记的生产接口地址（https://<域名>/produce，License 商品为 /license）。',
    'A field the activity needs was missing or unusable; the message names it. If the marketplace really sent this, keep the callback and report it: isvapp should accept it.':
        '接口所需的字段缺失或无法使用，返回信息中写明了字段名。如果确实是云商店发送的，请保留该回调并反馈：isvapp 应当接受它。',
    'The instance is not known to this server (never created here, or released): check that the Seller Console points at this server and that the database was not replaced.':
        '本服务器不认识该实例（从未在此创建或已释放）：请确认卖家中心指向本服务器，且数据库没有被替换。',
    "Your provisioner's change_allowed refused this change; the message is its reason.":
        '您的 change_allowed 钩子拒绝了此次变更，返回信息即其原因。',
    'The Kit clientSecret could not be decrypted: the public key in the Seller Console is not the one isvapp holds. Run `flask --app isvapp kit-keygen` and paste the public key it prints.':
        '无法解密联营 Kit 的 clientSecret：卖家中心中的公钥不是 isvapp 持有的那一把。请运行 `flask --app isvapp kit-keygen` 并粘贴其输出的公钥。',
    'The database was busy or could not be written (disk full, read-only, locked by another program): check free disk space and that nothing else holds the database.':
        '数据库繁忙或无法写入（磁盘已满、只读、被其他程序锁定）：请检查剩余磁盘空间，并确认没有其他程序占用数据库。',
    'A key is not configured on this server: set KOO_ACCESS_KEY (and KOO_KIT_ACCESS_KEY for Kit).':
        '本服务器未配置密钥：请设置 KOO_ACCESS_KEY（联营 Kit 还需 KOO_KIT_ACCESS_KEY）。',
    "isvapp failed while answering: the server's log at this time has the details.":
        'isvapp 在应答时出错：请查看该时间点的服务器日志。',
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
