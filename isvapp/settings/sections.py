"""Every setting isvapp reads, declared once: its name, kind, default and what it does (English and
Chinese), in the section the code reads it from (``settings.alerts.worker_silent_s``).

The root, :class:`Settings`, holds what the marketplace's calls read on every request (its keys,
windows and answers, the open API, licenses) as its own fields, and the rest in sections. The
documents (README's configuration table, instance/config.example.py) are made from these
declarations (``python -m isvapp.settings --write``), in this order.

What 0 means, where it could mean two things, is said in the setting's line: a limit of 0 allows
nothing (a relay budget refuses every call, a body limit every body), a threshold of 0 never
trips (ALERT_DISK_FREE_PCT), and where 0 could only break isvapp (a window, a timeout, a lease) it
is refused when the app is made.
"""

import dataclasses
from dataclasses import dataclass

from .registry import (
    FLAG,
    NUMBER,
    OPTIONAL_TEXT,
    SECONDS,
    TEXT,
    WHOLE,
    WORD,
    WORDS,
    Setting,
    choice,
    declared_in,
    setting,
)

MIB = 1024 * 1024


def _url(value):
    return value.rstrip("/") if value is not None else None


@dataclass(frozen=True, eq=False)
class Marketplace:
    secret_key: str | None = setting(
        "SECRET_KEY",
        OPTIONAL_TEXT,
        None,
        "signs the pages' sessions and seals stored secrets; `init-config` writes one. gunicorn refuses to start "
        "with a missing, placeholder (`change-me`) or short (< 32 characters) one",
        "用于签名管理页面的会话、加密保存敏感数据；由 `init-config` 生成。缺失、为占位值（`change-me`）或过短"
        "（少于 32 个字符）时，gunicorn 拒绝启动",
        example='"change-me"',
    )
    access_keys: tuple[str, ...] = setting(
        "KOO_ACCESS_KEY",
        WORDS,
        None,
        "the Key the Seller Console shows for the product's basic interfaces: verifies G2 `signature` and G1 "
        '`authToken`, signs `Body-Sign`, encrypts appInfo credentials. Several (`"k1, k2"` or a list) for several '
        "products on one server or while rotating a key: a request verifies with any of them, and its answer is "
        "signed with the one that verified it",
        "卖家中心为该商品的基础接口显示的 Key：用于校验 G2 的 `signature` 和 G1 的 `authToken`、生成应答的 "
        "`Body-Sign` 签名、加密 appInfo 中的账号密码。一台服务器承载多个商品，或正在轮换 Key 时，可以配置多个"
        '（`"k1, k2"` 或列表）：请求只要能被其中任意一个校验通过即可，应答用校验通过的那个 Key 签名',
        example='"..."',
    )
    kit_access_keys: tuple[str, ...] = setting(
        "KOO_KIT_ACCESS_KEY",
        WORDS,
        None,
        "the Kit sync key or keys (unset: `KOO_ACCESS_KEY`)",
        "联营 Kit 同步接口的 Key（一个或多个），不填时使用 `KOO_ACCESS_KEY`",
    )
    share_instances_across_keys: bool = setting(
        "KOO_SHARE_INSTANCES_ACROSS_KEYS",
        FLAG,
        False,
        "`false`: an instance, license or Kit tenant belongs to the key that created it, and a request another "
        "key verified is answered as if it did not exist (`000003`). `true`: every key acts on every row, for a "
        'key rotation (docs/protocol.md, "Key ownership")',
        "`false`：实例、License 和 Kit 租户属于创建它的 Key，由另一个 Key 验证的请求按该对象不存在应答"
        '（`000003`）。`true`：所有 Key 都可操作所有记录，用于轮换 Key（见 docs/protocol.md 的 "Key ownership"）',
    )
    encrypt_type: str = setting(
        "KOO_ENCRYPT_TYPE",
        choice("1", "2"),
        "1",
        "appInfo userName/password encryption: `1` AES-256 or `2` AES-128",
        "appInfo 中 userName/password 的加密方式：`1` AES-256 或 `2` AES-128",
    )
    signature_window_s: int = setting(
        "KOO_SIGNATURE_WINDOW_S",
        WHOLE,
        60,
        "allowed clock difference, in seconds, for G2 and Kit timestamps, both directions (at least 1)",
        "G2 和 Kit 请求时间戳允许的时钟偏差（秒），正负两个方向（至少 1）",
        minimum=1,
    )
    g1_window_s: int = setting(
        "KOO_G1_WINDOW_S",
        WHOLE,
        86400,
        "allowed age, in seconds, of a G1 (and G1 Kit) `timeStamp`, both directions: G1 has no nonce, the "
        "marketplace retries for hours, and a G1 clock may be in Beijing time (at least 1)",
        "G1（及 G1 Kit）请求 `timeStamp` 允许的时间差（秒），正负两个方向：G1 没有 nonce，云商店会重试数小时，"
        "而且 G1 的时间可能是北京时间（至少 1）",
        minimum=1,
    )
    v2_plaintext_appinfo: bool = setting(
        "KOO_V2_PLAINTEXT_APPINFO",
        FLAG,
        True,
        "`true`: G2 and License-2.0 return appInfo `userName`/`password` in plain text with no `encryptType`, as "
        "the current queryInstance page defines; `false` encrypts them as G1 does",
        "`true`：G2 和 License-2.0 按当前 queryInstance 文档，以明文返回 appInfo 的 `userName`/`password`，"
        "不带 `encryptType`；`false` 则像 G1 一样加密",
    )
    g1_pay_per_use_modes: frozenset[str] = setting(
        "KOO_G1_PAY_PER_USE_MODES",
        WORDS,
        "ON_DEMAND,ON_DEMAND_PKG",
        "G1 `chargingMode` values meaning pay-per-use (one instance per order *and* product); a G1 order with "
        "no `expireTime` that is not one-time (`3`/`ONE_TIME`) counts as pay-per-use too",
        "表示按需计费的 G1 `chargingMode` 取值（同一订单中的每个商品各开通一个实例）；没有 `expireTime` "
        "且不是一次性计费（`3`/`ONE_TIME`）的 G1 订单也按按需计费处理",
        convert=frozenset,
    )
    query_usage_field: str = setting(
        "KOO_QUERY_USAGE_FIELD",
        TEXT,
        "usageInfo",
        "the field of each queryInstance `info` element that holds a pay-per-use or package instance's usage "
        '(`""` leaves it out)',
        'queryInstance 每个 `info` 元素中放按需或套餐包实例用量的字段（`""` 不返回）',
    )
    kit_rsa_private_key: str = setting(  # a path: isvapp.config fills the instance folder's when unset
        "KOO_KIT_RSA_PRIVATE_KEY",
        OPTIONAL_TEXT,
        None,
        "the RSA private key (a PEM file's path) for applicationSync's clientSecret; unset: "
        "`instance/kit_rsa_private.pem` (`kit-keygen`)",
        "解密 applicationSync 中 clientSecret 的 RSA 私钥（PEM 文件路径），未设置时为 "
        "`instance/kit_rsa_private.pem`（由 `kit-keygen` 生成）",
    )
    frontend_url_template: str = setting(
        "APP_FRONTEND_URL_TEMPLATE",
        TEXT,
        "https://app.example.com/t/{instance_id}",
        "the buyer's front-end address returned in appInfo; `{instance_id}` and `{order_id}` are filled in",
        "在 appInfo 中返回给买家的前台地址；其中的 `{instance_id}` 和 `{order_id}` 会被替换",
    )
    admin_url_template: str = setting(
        "APP_ADMIN_URL_TEMPLATE",
        TEXT,
        "https://app.example.com/t/{instance_id}/admin",
        "the buyer's admin address returned in appInfo, filled in the same way",
        "在 appInfo 中返回给买家的管理地址，替换方式同上",
    )
    admin_user_template: str = setting(
        "APP_ADMIN_USER_TEMPLATE",
        TEXT,
        "admin",
        "the buyer's admin user name returned in appInfo, filled in the same way",
        "在 appInfo 中返回给买家的管理员用户名，替换方式同上",
    )
    app_memo: str = setting(
        "APP_MEMO",
        TEXT,
        "",
        "appInfo's memo, filled in the same way",
        "appInfo 中的备注（memo），替换方式同上",
    )


@dataclass(frozen=True, eq=False)
class OpenApi:
    api_base_url: str = setting(
        "KOO_API_BASE_URL",
        TEXT,
        "https://mkt.myhuaweicloud.com",
        "the marketplace open API (order query, usage push, license codes, license upload)",
        "云商店开放 API 的地址（订单查询、使用量推送、授权码、License 上传）",
        convert=_url,
    )
    api_backup_url: str | None = setting(
        "KOO_API_BACKUP_URL",
        TEXT,
        None,
        "where every open-API call is sent again when the main domain gives no answer of the marketplace's "
        "(no connection, a timeout, an answer without a result code); unset: `https://mkt.myhuaweicloud.cn` "
        "beside `https://mkt.myhuaweicloud.com` and `https://mkt-intl.myhuaweicloud.com`, as their pages say, "
        'none beside any other; `""` turns it off',
        "主域名没有给出云商店的应答时（无法连接、超时、应答中没有结果码），每个开放 API 调用重发的地址；"
        "未设置时，主地址为 `https://mkt.myhuaweicloud.com` 或 `https://mkt-intl.myhuaweicloud.com` 则为 "
        '`https://mkt.myhuaweicloud.cn`（两者的页面都这样写），其他主地址没有备用；`""` 关闭',
    )
    api_ak: str | None = setting(
        "KOO_AK",
        OPTIONAL_TEXT,
        None,
        "your seller AK for the open API",
        "调用开放 API 的卖家 AK",
    )
    api_sk: str | None = setting(
        "KOO_SK",
        OPTIONAL_TEXT,
        None,
        "your seller SK for the open API",
        "调用开放 API 的卖家 SK",
    )
    api_timeout_s: float = setting(
        "KOO_API_TIMEOUT_S",
        NUMBER,
        3,
        "one open-API call (order query, usage push) takes at most this many seconds; at most 3, as the "
        "reference asks (more than 0)",
        "每次调用开放 API（订单查询、使用量推送）最多等待的秒数；不超过 3，与接口规范一致（须大于 0）",
        positive=True,
        convert=lambda value: min(value, 3.0),
    )
    usage_key: str | None = setting(
        "KOO_USAGE_KEY",
        OPTIONAL_TEXT,
        None,
        "the usage push's signature key (unset: the first `KOO_ACCESS_KEY`)",
        "使用量推送的签名密钥（未设置时使用第一个 `KOO_ACCESS_KEY`）",
    )
    usage_push_batch: int = setting(
        "KOO_USAGE_PUSH_BATCH",
        WHOLE,
        100,
        "usage records per push (1 to 1000: the push pages allow 1,000, the error page's MKT.9003 says 100)",
        "每次推送的使用量记录数（1 到 1000：推送页面允许 1000 条，错误码页面的 MKT.9003 写的是 100 条）",
        minimum=1,
        convert=lambda value: min(value, 1000),
    )
    usage_max_age_days: int = setting(
        "USAGE_MAX_AGE_DAYS",
        WHOLE,
        21,
        "how many days old a usage's `beginTime` may be when it is recorded (the marketplace's MKT.9004; at least 1)",
        "记录使用量时 `beginTime` 最早可以是多少天前（即云商店的 MKT.9004；至少 1）",
        minimum=1,
    )
    license_query_v2_field: str = setting(
        "KOO_LICENSE_QUERY_V2_FIELD",
        TEXT,
        "licenses",
        "the v2 license-code query's field for its list of codes (no stored page shows it)",
        "v2 查询授权码接口中授权码列表的字段名（已存页面未给出）",
    )
    license_upload_mode: str = setting(
        "KOO_LICENSE_UPLOAD_MODE",
        choice("file", "string"),
        "file",
        "the upload of getLicenseAsync's licenses: `file` (the document as a file part) or `string` (as a text part)",
        "getLicenseAsync 的 License 上传方式：`file`（以文件分段上传）或 `string`（以文本分段上传）",
    )
    license_upload_field: str = setting(
        "KOO_LICENSE_UPLOAD_FIELD",
        TEXT,
        "file",
        "the multipart part's name in a license upload",
        "License 上传中 multipart 分段的名称",
    )
    license_upload_max_bytes: int = setting(
        "KOO_LICENSE_UPLOAD_MAX_BYTES",
        WHOLE,
        5 * MIB,
        "the largest license document uploaded, in bytes (0: none is)",
        "上传的 License 文件的最大字节数（0：一律不上传）",
        example="5 * 1024 * 1024",
    )


@dataclass(frozen=True, eq=False)
class Licenses:
    license_signing_key: str = setting(  # a path, filled the same way
        "LICENSE_SIGNING_KEY",
        OPTIONAL_TEXT,
        None,
        "the Ed25519 key (a PEM file's path) that signs license documents; unset: `instance/license_ed25519.pem`, "
        "made on first use (mode 600)",
        "签发 License 文件的 Ed25519 私钥（PEM 文件路径），未设置时为 `instance/license_ed25519.pem`，首次使用时生成"
        "（权限 600）",
    )
    license_generator: str | None = setting(
        "LICENSE_GENERATOR",
        OPTIONAL_TEXT,
        None,
        '`"module:function"`: your own license format; the function gets the payload dict and returns the license text',
        '`"module:function"`：使用您自己的 License 格式；该函数接收载荷 dict，返回 License 文本',
    )
    relay_grace_s: int = setting(
        "LICENSE_RELAY_GRACE_H",
        NUMBER,
        72,
        "hours the License relay serves the last verified state while the marketplace is unreachable or answers "
        "that it cannot now (0: none)",
        "云商店无法访问或答复暂时无法处理时，License 中继继续返回最后确认状态的小时数（0：不返回）",
        convert=lambda hours: int(hours * 3600),
    )
    relay_per_minute: int = setting(
        "LICENSE_RELAY_PER_MINUTE",
        WHOLE,
        30,
        "relay calls a minute per license code, every worker and host together; a verify or usage call counts "
        "once its installation token is checked (0: every call is refused)",
        "每个授权码每分钟的中继调用次数（所有 worker 和主机合计）；verify 和 usage 调用在安装令牌核对通过后才计入"
        "（0：一律拒绝）",
    )
    relay_per_address_minute: int = setting(
        "LICENSE_RELAY_PER_ADDRESS_MINUTE",
        WHOLE,
        120,
        "relay calls a minute per client address (an IPv6 address: its /64), counted first (0: every call is refused)",
        "每个客户端地址（IPv6 地址按其 /64 计）每分钟的中继调用次数，最先计入（0：一律拒绝）",
    )


@dataclass(frozen=True)
class BodyLimits:
    """The largest body each kind of route reads, in bytes, chunked bodies included (isvapp/inbound.py):
    a larger one is refused when it passes the limit, never read whole. 0: any body is refused."""

    other: int = setting(
        "MAX_CONTENT_LENGTH",
        WHOLE,
        16 * MIB,
        "Flask's own: the largest body of any route not named below",
        "Flask 自带的配置：下面未列出的接口的最大请求体",
        example="16 * 1024 * 1024",
    )
    produce: int = setting(
        "KOO_MAX_BODY_BYTES",
        WHOLE,
        MIB,
        "the largest body of `/produce` and `/license` (a basic interface's is a few hundred bytes)",
        "`/produce` 和 `/license` 的最大请求体（基础接口的请求只有几百字节）",
        example="1024 * 1024",
    )
    kit: int | None = setting(
        "KOO_KIT_MAX_BODY_BYTES",
        WHOLE,
        None,
        "the largest body of Kit sync (unset: `MAX_CONTENT_LENGTH`; an allOrgSync of 50,000 departments is about "
        "5 MiB)",
        "Kit 同步的最大请求体（未设置时按 `MAX_CONTENT_LENGTH`；5 万个部门的 allOrgSync 约 5 MiB）",
    )
    relay: int = setting(
        "LICENSE_RELAY_MAX_BODY_BYTES",
        WHOLE,
        4096,
        "the largest body of the License relay, `/relay/v1`",
        "License 中继 `/relay/v1` 的最大请求体",
    )
    productapi: int = setting(
        "API_MAX_BODY_BYTES",
        WHOLE,
        64 * 1024,
        "the largest body of the entitlement and usage API, `/api/v1`",
        "授权查询与使用量 API `/api/v1` 的最大请求体",
        example="64 * 1024",
    )
    dashboard: int = setting(
        "ADMIN_MAX_BODY_BYTES",
        WHOLE,
        64 * 1024,
        "the largest body of the merchant's pages' forms, `/admin`",
        "商家管理页面 `/admin` 表单的最大请求体",
        example="64 * 1024",
    )
    login: int = setting(
        "LOGIN_MAX_BODY_BYTES",
        WHOLE,
        16 * 1024,
        "the largest body of the buyer's login, `/login` and `/logout`",
        "买家登录 `/login` 和 `/logout` 的最大请求体",
        example="16 * 1024",
    )


@dataclass(frozen=True)
class DatabaseSettings:
    uri: str = setting(  # isvapp.config fills the instance folder's SQLite file when unset
        "SQLALCHEMY_DATABASE_URI",
        OPTIONAL_TEXT,
        None,
        "the database (unset: `instance/isvapp.sqlite`; or `postgresql+psycopg://...`)",
        "数据库地址（未设置时为 `instance/isvapp.sqlite`；或 `postgresql+psycopg://...`）",
    )
    busy_timeout_s: float = setting(
        "SQLITE_BUSY_TIMEOUT_S",
        NUMBER,
        3,
        "how long a write waits for another's lock, in seconds (also PostgreSQL's lock_timeout); then it answers "
        "`000005` (0: no wait)",
        "写入等待其他写入释放锁的秒数（也是 PostgreSQL 的 lock_timeout），超时后应答 `000005`（0：不等待）",
    )
    wal_autocheckpoint: int = setting(
        "SQLITE_WAL_AUTOCHECKPOINT",
        WHOLE,
        10_000,
        "pages the SQLite write-ahead log holds before a commit copies it into the database file (about 40 MB; "
        "SQLite's own 1000 copies the same pages again and again and took about 12% of the throughput; 0: never, "
        "SQLite's meaning)",
        "SQLite 预写日志累积多少页后，由某次提交把它写回数据库文件（约 40 MB；SQLite 默认的 1000 会反复写回同样的页，"
        "吞吐量因此少约 12%；0：从不，即 SQLite 的含义）",
    )
    cache_mib: int = setting(
        "SQLITE_CACHE_MIB",
        WHOLE,
        64,
        "each SQLite connection's page cache in MiB (SQLite's own 2 MiB no longer holds the inner pages of the "
        "indexes on the marketplace's random ids once a million orders are stored; 0: SQLite's own)",
        "每个 SQLite 连接的页缓存，单位 MiB（存有一百万笔订单后，SQLite 自带的 2 MiB 已放不下按云商店随机 ID "
        "建的索引的内部页；0：用 SQLite 自带的）",
    )


@dataclass(frozen=True)
class CallbackLogSettings:
    retention_days: int = setting(
        "CALLBACK_LOG_RETENTION_DAYS",
        WHOLE,
        90,
        "`isvapp prune` (and the worker's prune job) deletes callback log rows older than this many days (0: "
        "keeps them all)",
        "`isvapp prune`（以及后台的清理任务）删除早于这么多天的回调日志（0：全部保留）",
    )
    refused_per_minute: int = setting(
        "CALLBACK_REFUSED_PER_MINUTE",
        WHOLE,
        20,
        "requests that fail verification are logged (metadata, the first 256 bytes of the query string and 512 "
        "of the body) at most this often a minute per client address (an IPv6 address: its /64) and worker; "
        "the rest are counted on the next row (0: none is logged, all are counted)",
        "未通过校验的请求会被记录（元数据、查询字符串的前 256 字节和请求体的前 512 字节），但每个客户端地址"
        "（IPv6 地址按其 /64 计）、每个 worker 每分钟最多记录这么多条，其余的计数记在下一条记录上（0：只计数，不记录）",
    )
    refused_global_per_minute: int = setting(
        "CALLBACK_REFUSED_GLOBAL_PER_MINUTE",
        WHOLE,
        120,
        "...and at most this often a minute for all addresses together, across every worker and host sharing "
        "the database (about 120 KB a minute at most; docs/protocol.md section 2.5; 0: none is logged)",
        "……并且所有地址合计、共用同一数据库的所有 worker 和主机合计，每分钟最多记录这么多条（每分钟最多约 120 KB；"
        "见 docs/protocol.md 第 2.5 节；0：不记录）",
    )
    prune_every_h: float = setting(
        "PRUNE_EVERY_H",
        NUMBER,
        24,
        "the worker enqueues a prune job once per this many hours (0: never; run `isvapp prune` from cron)",
        "后台进程每隔这么多小时排入一次清理任务（0：从不，改由 cron 运行 `isvapp prune`）",
    )


@dataclass(frozen=True)
class JobSettings:
    max_attempts: int = setting(
        "JOB_MAX_ATTEMPTS",
        WHOLE,
        12,
        "attempts before a background job is dead (0 or 1: dead at its first failure)",
        "后台任务的最大尝试次数，之后标记为失败（dead）（0 或 1：第一次失败即 dead）",
    )
    retry_base_s: float = setting(
        "JOB_RETRY_BASE_S",
        NUMBER,
        5,
        "the first retry's backoff in seconds, doubled at each attempt (0: retried at once)",
        "第一次重试前的退避秒数，每次尝试后加倍（0：立即重试）",
    )
    retry_max_s: float = setting(
        "JOB_RETRY_MAX_S",
        NUMBER,
        3600,
        "the longest backoff between two attempts, in seconds",
        "两次尝试之间最长的退避秒数",
    )
    lease_s: float = setting(
        "JOB_LEASE_S",
        NUMBER,
        60,
        "how long a worker holds a job it took, in seconds, before another may take it again (more than 0)",
        "后台进程领取任务后持有租约的秒数，过期后其他进程可重新领取（须大于 0）",
        positive=True,
    )
    periodic_s: float = setting(
        "JOB_PERIODIC_S",
        NUMBER,
        30,
        "how often, in seconds, the worker runs its periodic tasks (the usage to push, the notices, the "
        "disk check, pruning old rows) (more than 0)",
        "后台进程每隔这么多秒运行一次周期任务（待推送的使用量、通知、磁盘检查、清理旧记录）（须大于 0）",
        positive=True,
    )


@dataclass(frozen=True)
class ProvisioningSettings:
    provisioner: str = setting(
        "PROVISIONER",
        TEXT,
        "isvapp.provisioning:TemplateProvisioner",
        '`"module:Class"`: the provisioning hooks (README, "Background work"); '
        "`isvapp.provisioning:WebhookProvisioner` posts every event to `WEBHOOK_URL`",
        '`"module:Class"`：开通钩子（见 README 的“后台任务”）；`isvapp.provisioning:WebhookProvisioner` '
        "把每个事件发往 `WEBHOOK_URL`",
    )
    webhook_url: str | None = setting(
        "WEBHOOK_URL",
        OPTIONAL_TEXT,
        None,
        "the webhook hooks' address: https (plain http only to loopback); redirects are failures",
        "webhook 钩子的地址：必须是 https（仅本机回环地址可用 http）；重定向视为失败",
    )
    webhook_secret: str | None = setting(
        "WEBHOOK_SECRET",
        OPTIONAL_TEXT,
        None,
        "the secret that signs each webhook delivery",
        "签名每次 webhook 投递的密钥",
    )
    webhook_timeout_s: float = setting(
        "WEBHOOK_TIMEOUT_S",
        NUMBER,
        10,
        "one webhook delivery, answer included, takes at most this many seconds (more than 0)",
        "每次 webhook 投递（含应答）最多用时的秒数（须大于 0）",
        positive=True,
    )


@dataclass(frozen=True)
class AlertSettings:
    window_min: int = setting(
        "ALERT_WINDOW_MIN",
        WHOLE,
        60,
        "one alert per kind per this many minutes; repeats in the window are counted (at least 1)",
        "同类告警每这么多分钟只发一次，期间的重复只计数（至少 1）",
        minimum=1,
    )
    email_to: tuple[str, ...] = setting(
        "ALERT_EMAIL_TO",
        WORDS,
        None,
        "alerts by e-mail to these addresses (comma-separated); e-mail is off while unset",
        "邮件告警的收件地址（逗号分隔）；未设置时不发邮件",
    )
    smtp_host: str | None = setting(
        "ALERT_SMTP_HOST", OPTIONAL_TEXT, None, "the SMTP server alerts are sent through", "发送邮件告警的 SMTP 服务器"
    )
    smtp_port: int | None = setting(
        "ALERT_SMTP_PORT",
        WHOLE,
        None,
        "its port (unset: 587, or 465 with `ALERT_SMTP_TLS` `ssl`)",
        "其端口（未设置时为 587，`ALERT_SMTP_TLS` 为 `ssl` 时为 465）",
        minimum=1,
    )
    smtp_user: str | None = setting(
        "ALERT_SMTP_USER", OPTIONAL_TEXT, None, "the SMTP login (unset: none)", "SMTP 登录用户名（未设置时不登录）"
    )
    smtp_password: str | None = setting(
        "ALERT_SMTP_PASSWORD", OPTIONAL_TEXT, None, "the SMTP login's password", "SMTP 登录密码"
    )
    smtp_from: str | None = setting(
        "ALERT_SMTP_FROM",
        OPTIONAL_TEXT,
        None,
        "the sender (unset: `ALERT_SMTP_USER`)",
        "发件人（未设置时为 `ALERT_SMTP_USER`）",
    )
    smtp_tls: str = setting(
        "ALERT_SMTP_TLS",
        WORD,
        "starttls",
        "`starttls`, `ssl`, or `none` (to a loopback relay only)",
        "`starttls`、`ssl`，或 `none`（仅限本机中继）",
    )
    wecom_url: str | None = setting(
        "ALERT_WECOM_URL",
        OPTIONAL_TEXT,
        None,
        "alerts to a WeCom (企业微信) group robot: `https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=...`",
        "企业微信群机器人告警：`https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=...`",
    )
    dingtalk_url: str | None = setting(
        "ALERT_DINGTALK_URL",
        OPTIONAL_TEXT,
        None,
        "alerts to a DingTalk (钉钉) robot: `https://oapi.dingtalk.com/robot/send?access_token=...`",
        "钉钉机器人告警：`https://oapi.dingtalk.com/robot/send?access_token=...`",
    )
    dingtalk_secret: str | None = setting(
        "ALERT_DINGTALK_SECRET",
        OPTIONAL_TEXT,
        None,
        'the DingTalk robot\'s "SEC..." secret when it signs (加签)',
        '钉钉机器人加签时的 "SEC..." 密钥',
    )
    feishu_url: str | None = setting(
        "ALERT_FEISHU_URL",
        OPTIONAL_TEXT,
        None,
        "alerts to a Feishu (飞书) custom bot: `https://open.feishu.cn/open-apis/bot/v2/hook/...`",
        "飞书自定义机器人告警：`https://open.feishu.cn/open-apis/bot/v2/hook/...`",
    )
    feishu_secret: str | None = setting(
        "ALERT_FEISHU_SECRET",
        OPTIONAL_TEXT,
        None,
        "the Feishu bot's signature-check secret (签名校验), if set",
        "飞书机器人的签名校验密钥（如已设置）",
    )
    worker_silent_s: float = setting(
        "ALERT_WORKER_SILENT_S",
        NUMBER,
        300,
        "`worker_silent` when the worker's heartbeat is older than this many seconds; the go-live page's worker "
        "row turns bad at the same age (at least 1)",
        "后台进程心跳超过这么多秒即告警 `worker_silent`；上线检查页的后台进程一行也按此判断（至少 1）",
        minimum=1,
    )
    watch_every_s: float = setting(
        "ALERT_WATCH_EVERY_S",
        NUMBER,
        30,
        "how often, in seconds, each web process checks the worker and the disk and delivers those alerts itself "
        "(0: the watch is off)",
        "每个 Web 进程每隔这么多秒检查一次后台进程和磁盘，并自行发送这些告警（0：关闭）",
    )
    disk_free_pct: float = setting(
        "ALERT_DISK_FREE_PCT",
        NUMBER,
        10,
        "`disk_low` when the instance folder's disk has less free than this percentage; the go-live page's disk "
        "row too (0: never)",
        "instance 目录所在磁盘的剩余空间低于此百分比即告警 `disk_low`；上线检查页的磁盘一行也按此判断（0：从不）",
    )
    notices: tuple[str, ...] = setting(
        "ALERT_NOTICES",
        WORDS,
        "",
        "the merchant's notices to send, by name: `new_order`, `release`, `expiring`, `digest` (comma-separated; "
        "none by default); the default: a choice made on the Alerts page wins over it, for every host",
        "要发送的商家通知，按名称：`new_order`、`release`、`expiring`、`digest`（逗号分隔；默认不发）；"
        "这是默认值：在“告警”页面所做的选择优先于它，对所有主机生效",
    )
    notice_group_min: int = setting(
        "ALERT_NOTICE_GROUP_MIN",
        WHOLE,
        10,
        "new orders and releases are grouped per this many minutes, one message when the window closes (at least 1)",
        "新订单和释放按此分钟数合并，窗口结束时发一条（至少 1）",
        minimum=1,
    )
    expiring_days: int = setting(
        "ALERT_EXPIRING_DAYS",
        WHOLE,
        7,
        "`expiring`: live instances that expire within this many days, once a day (0: none is found)",
        "`expiring`：此天数内到期的使用中实例，每天一次（0：不会找到任何实例）",
    )
    digest_hour: int = setting(
        "ALERT_DIGEST_HOUR",
        WHOLE,
        9,
        "`digest`: sent once a day from this hour, in `DISPLAY_TIMEZONE` (0: from midnight)",
        "`digest`：每天从这个钟点起发送一次，按 `DISPLAY_TIMEZONE`（0：从午夜起）",
    )
    language: str = setting(
        "ALERT_LANGUAGE",
        WORD,
        "zh",
        "the language of every alert a channel receives: `zh` or `en` (the pages show each alert in their "
        "reader's language)",
        "发往各渠道的所有告警的语言：`zh` 或 `en`（管理页面按读者的语言显示告警）",
        convert=lambda value: "zh" if value.startswith("zh") else "en",
    )


@dataclass(frozen=True)
class PageSettings:
    timezone: str = setting(
        "DISPLAY_TIMEZONE",
        TEXT,
        "Asia/Shanghai",
        "the pages' time zone: every time on every page is in it, and the header names it; an alert's times too",
        "管理页面显示时间所用的时区：所有页面上的所有时间都用它，页头注明；告警中的时间也是",
    )
    session_idle_min: float = setting(
        "SESSION_IDLE_MIN",
        NUMBER,
        30,
        "a session of the pages ends after this many minutes without a page opened (more than 0)",
        "管理页面的会话在这么多分钟内没有打开页面即结束（须大于 0）",
        positive=True,
    )
    session_lifetime_s: float = setting(
        "PERMANENT_SESSION_LIFETIME",
        SECONDS,
        12 * 3600,
        "Flask's own: ...and this many seconds after its login, however busy",
        "Flask 自带的配置：……并且无论多忙，登录这么多秒后也会结束",
        example="12 * 3600",
    )
    cookie_secure: bool = setting(
        "SESSION_COOKIE_SECURE",
        FLAG,
        False,
        "Flask's own: `true` marks the pages' cookie Secure even on a request over plain http (it is marked "
        "whenever the request came over https)",
        "Flask 自带的配置：`true` 时即使请求经明文 http 到达，页面的 Cookie 也带 Secure 标记（经 https 到达时总会带）",
    )
    cookie_samesite: str = setting(
        "SESSION_COOKIE_SAMESITE",
        choice("lax", "strict", "none"),
        "lax",
        "Flask's own: the pages' cookie's SameSite, `lax` (isvapp's default), `strict` or `none`",
        "Flask 自带的配置：页面 Cookie 的 SameSite，`lax`（isvapp 的默认值）、`strict` 或 `none`",
        convert=str.title,
    )
    go_live_products: tuple[str, ...] = setting(
        "GO_LIVE_PRODUCTS",
        WORDS,
        "period",
        "the go-live page's checklists: `period`, `onetime`, `payperuse`, `license`, `kit` (kinds the "
        "marketplace debugs are added by themselves)",
        "上线检查页面显示哪些清单：`period`（包年/包月）、`onetime`（按次）、`payperuse`（按需）、`license`、`kit`"
        "（云商店调测过的类型会自动加入）",
    )
    clock_skew_ok_s: float = setting(
        "GO_LIVE_CLOCK_SKEW_S",
        NUMBER,
        5,
        "the go-live page's clock row is fine below this many seconds of skew, a warning up to half "
        "`KOO_SIGNATURE_WINDOW_S`, bad beyond (0: a warning at least)",
        "上线检查页的时钟一行：偏差低于这么多秒为正常，不超过 `KOO_SIGNATURE_WINDOW_S` 的一半为警告，再多为异常"
        "（0：至少为警告）",
    )
    backup_max_age_h: float = setting(
        "GO_LIVE_BACKUP_MAX_AGE_H",
        NUMBER,
        48,
        "the go-live page's backup row warns when the last backup is older than this many hours (0: always)",
        "上线检查页的备份一行：最近一次备份早于这么多小时即警告（0：总是警告）",
    )


@dataclass(frozen=True)
class LoginSettings:
    redirect_uri: str | None = setting(
        "LOGIN_REDIRECT_URI",
        OPTIONAL_TEXT,
        None,
        "the buyer's login (joint-operation products): the exact `redirect_uri` registered with the app's "
        "credentials (unset: this server's `/login/callback`, as the request reached it)",
        "买家登录（联营商品）：与应用凭证一同登记的 `redirect_uri`，须完全一致（未设置时为本服务的 `/login/callback`，"
        "按请求到达的地址）",
    )
    issuer: str | None = setting(
        "LOGIN_ISSUER",
        OPTIONAL_TEXT,
        None,
        "the hand-off assertion's issuer, where its key set is served (unset: this server's base URL)",
        "移交断言的签发者，也是其密钥集的地址（未设置时为本服务的根地址）",
        convert=lambda value: _url(value) or None,
    )
    handoff_url: str | None = setting(
        "LOGIN_HANDOFF_URL",
        OPTIONAL_TEXT,
        None,
        "where the signed-in buyer is handed over, unless the app has its own on the tenant's page",
        "登录后把买家送往何处（除非该应用在租户页面上设置了自己的地址）",
    )
    pkce: bool = setting(
        "LOGIN_PKCE",
        FLAG,
        True,
        "PKCE (S256) on the authorize request (Huawei's pages neither require nor forbid it)",
        "授权请求带 PKCE（S256）（华为的文档既不要求也不禁止）",
    )
    signing_key: str = setting(  # a path, filled the same way
        "LOGIN_SIGNING_KEY",
        OPTIONAL_TEXT,
        None,
        "the Ed25519 key (a PEM file's path) that signs the assertions; unset: `instance/login_ed25519.pem`, made "
        "on first use",
        "签署断言的 Ed25519 密钥（PEM 文件路径），未设置时为 `instance/login_ed25519.pem`，首次使用时生成",
    )
    idp_timeout_s: float = setting(
        "LOGIN_IDP_TIMEOUT_S",
        NUMBER,
        5,
        "one call to the tenant's IdP (token, user info) takes at most this many seconds; at most 10 (more than 0)",
        "每次调用租户 IdP（令牌、用户信息）最多用时的秒数；不超过 10（须大于 0）",
        positive=True,
        convert=lambda value: min(value, 10.0),
    )
    state_ttl_s: int = setting(
        "LOGIN_STATE_TTL_S",
        WHOLE,
        600,
        "how long a login may take at the IdP, in seconds (at least 1)",
        "在 IdP 处登录的最长秒数（至少 1）",
        minimum=1,
    )
    workbench: bool = setting(
        "LOGIN_WORKBENCH",
        FLAG,
        False,
        "`true`: accept logins the aPaaS enterprise workbench begins (a callback with `code` and `tenant_id` and "
        "no state of isvapp's); off by default, since such a login cannot be bound to the browser that arrives",
        "`true`：接受由开天 aPaaS 企业工作台发起的登录（回调带 `code` 和 `tenant_id`，没有 isvapp 的 state）；"
        "默认关闭，因为这种登录无法绑定到到达的浏览器",
    )
    allow_loopback_idp: bool = setting(
        "LOGIN_ALLOW_LOOPBACK_IDP",
        FLAG,
        False,
        "development only: a tenant's IdP may be on this host over plain http (the fake IdP); off, an IdP must be "
        "a public https host name, never an IP address, this host or a private address",
        "仅用于开发：租户的 IdP 可以位于本机并使用明文 http（模拟 IdP）；关闭时，IdP 必须是公网 https 主机名，"
        "不能是 IP 地址、本机或私有地址",
    )
    session_ttl_s: int = setting(
        "LOGIN_SESSION_TTL_S",
        WHOLE,
        12 * 3600,
        "how long a buyer's session lasts for `/login/refresh`, in seconds; logout ends it sooner, on the server "
        "(at least 1)",
        "买家会话可用于 `/login/refresh` 的秒数；退出登录会在服务器上提前结束它（至少 1）",
        minimum=1,
        example="12 * 3600",
    )


@dataclass(frozen=True)
class OperationSettings:
    proxy_fix_hops: int = setting(
        "PROXY_FIX_HOPS",
        WHOLE,
        0,
        "`1` behind nginx or a load balancer on this host: trust its `X-Forwarded-*` headers (https, the "
        "client's address); 0 without a proxy (the headers could be forged)",
        "部署在本机的 nginx 或负载均衡之后时设为 `1`：信任其 `X-Forwarded-*` 请求头（https、客户端地址）；"
        "没有代理时为 0（这些请求头可被伪造）",
    )
    metrics_enabled: bool = setting(
        "METRICS_ENABLED",
        FLAG,
        True,
        "`GET /metrics` (Prometheus): counted unless `false` (then the page is empty)",
        "`GET /metrics`（Prometheus）：除非设为 `false`，否则计数（关闭时页面为空）",
    )
    metrics_token: str | None = setting(
        "METRICS_TOKEN",
        OPTIONAL_TEXT,
        None,
        "the token another host, or anyone through a proxy, must send as `Authorization: Bearer ...` to read "
        "`/metrics` (unset: this host only)",
        "其他主机（或经代理到达的任何请求）读取 `/metrics` 时必须以 `Authorization: Bearer ...` 发送的令牌"
        "（未设置时只有本机可读）",
    )
    log_format: str = setting(
        "LOG_FORMAT",
        choice("text", "json"),
        "text",
        "`text` or `json`: one JSON object per log line; `ISVAPP_LOG_FORMAT=json` in the environment makes "
        "gunicorn's own lines JSON too",
        "`text` 或 `json`：每行日志一个 JSON 对象；在环境变量中设置 `ISVAPP_LOG_FORMAT=json`，gunicorn 自己的日志"
        "也会是 JSON",
    )
    sentry_dsn: str | None = setting(
        "SENTRY_DSN",
        OPTIONAL_TEXT,
        None,
        "errors also go to Sentry (the `sentry` extra), secrets scrubbed first; unset: nothing is sent",
        "错误同时发送到 Sentry（需安装 `sentry` 扩展），发送前先清除机密；未设置时不发送任何内容",
    )


@dataclass(frozen=True, eq=False)
class Settings(Licenses, OpenApi, Marketplace):
    """Every setting, typed: the marketplace's own as fields (a callback reads them), the rest in
    sections. Compared and hashed by identity: one per app, a cache key on every request (pipeline)."""

    # The key that verified this request (pipeline.signed_by), else the first configured one.
    access_key: str | None = None
    kit_access_key: str | None = None
    bodies: BodyLimits = dataclasses.field(default_factory=BodyLimits)
    database: DatabaseSettings = dataclasses.field(default_factory=DatabaseSettings)
    callbacks: CallbackLogSettings = dataclasses.field(default_factory=CallbackLogSettings)
    jobs: JobSettings = dataclasses.field(default_factory=JobSettings)
    provisioning: ProvisioningSettings = dataclasses.field(default_factory=ProvisioningSettings)
    alerts: AlertSettings = dataclasses.field(default_factory=AlertSettings)
    pages: PageSettings = dataclasses.field(default_factory=PageSettings)
    login: LoginSettings = dataclasses.field(default_factory=LoginSettings)
    ops: OperationSettings = dataclasses.field(default_factory=OperationSettings)

    def key_files(self):
        """{setting: path} of the private keys kept in files (configure() fills the paths)."""
        return {
            "LICENSE_SIGNING_KEY": self.license_signing_key,
            "KOO_KIT_RSA_PRIVATE_KEY": self.kit_rsa_private_key,
            "LOGIN_SIGNING_KEY": self.login.signing_key,
        }


# The documents' order: each group's settings under its title, in English and in Chinese.
GROUPS = [
    (Marketplace, "The marketplace's calls", "云商店的调用"),
    (OpenApi, "The marketplace's open API", "云商店开放 API"),
    (Licenses, "Licenses and the License relay", "License 与 License 中继"),
    (BodyLimits, "Request bodies, in bytes (0: any body is refused)", "请求体大小，单位字节（0：拒绝任何请求体）"),
    (DatabaseSettings, "The database", "数据库"),
    (CallbackLogSettings, "The callback log", "回调日志"),
    (JobSettings, "Background jobs", "后台任务"),
    (ProvisioningSettings, "Provisioning hooks", "开通钩子"),
    (AlertSettings, "Alerts and the merchant's notices", "告警与商家通知"),
    (PageSettings, "The merchant's pages", "商家管理页面"),
    (LoginSettings, "The buyer's login", "买家登录"),
    (OperationSettings, "Operating it", "运维"),
]
SECTIONS = {
    field.name: field.type
    for field in dataclasses.fields(Settings)
    if isinstance(field.type, type) and dataclasses.is_dataclass(field.type)
}


def every_setting() -> list[Setting]:
    return [declared for group, _, _ in GROUPS for declared in declared_in(group)]


@dataclass(frozen=True)
class Variable:
    """A variable read from the environment only, before any app exists (gunicorn.conf.py, the
    instance folder's place)."""

    name: str
    default: str | None
    doc: str
    zh: str


ENVIRONMENT_ONLY = [
    Variable(
        "ISVAPP_INSTANCE_PATH",
        None,
        "where the instance folder is; set it for a non-editable install",
        "instance 目录的位置；非 editable 方式安装时需要设置",
    ),
    Variable("ISVAPP_BIND", "127.0.0.1:8000", "where gunicorn listens", "gunicorn 监听的地址"),
    Variable("ISVAPP_WORKERS", "2", "gunicorn's worker processes", "gunicorn 的 worker 进程数"),
    Variable(
        "ISVAPP_WORKER_TIMEOUT",
        "30",
        "seconds before gunicorn restarts a worker that hangs",
        "worker 卡住多少秒后由 gunicorn 重启",
    ),
    Variable(
        "ISVAPP_ACCESS_LOG", "-", "gunicorn's access log (`-`: standard output)", "gunicorn 的访问日志（`-`：标准输出）"
    ),
    Variable(
        "ISVAPP_LOG_LEVEL",
        "info",
        "the log level of gunicorn and of the worker's isvapp lines",
        "gunicorn 以及后台进程中 isvapp 日志的级别",
    ),
    Variable(
        "ISVAPP_FORWARDED_ALLOW_IPS",
        "127.0.0.1",
        "the proxies whose `X-Forwarded-*` headers gunicorn trusts",
        "gunicorn 信任其 `X-Forwarded-*` 请求头的代理地址",
    ),
]
# Read by the project's own scripts and tests, never by the app (scripts/venv.sh, scripts/test.sh,
# tests/): known, so never reported as misspelt settings, but not documented as settings.
TOOL_VARIABLES = ("ISVAPP_PYTHON", "ISVAPP_TEST_", "ISVAPP_HYPOTHESIS_PROFILE", "ISVAPP_PODMAN_CACHE")
