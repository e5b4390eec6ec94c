# Every setting isvapp reads, with its default. Copy what you change into instance/config.py,
# or set it as an environment variable ISVAPP_<KEY> (e.g. ISVAPP_KOO_ACCESS_KEY).
# Made from isvapp/settings by `.venv/bin/python -m isvapp.settings --write`: edit them there.

# --- The marketplace's calls ---

# signs the pages' sessions and seals stored secrets; `init-config` writes one. gunicorn refuses to
# start with a missing, placeholder (`change-me`) or short (< 32 characters) one
SECRET_KEY = "change-me"

# the Key the Seller Console shows for the product's basic interfaces: verifies G2 `signature` and
# G1 `authToken`, signs `Body-Sign`, encrypts appInfo credentials. Several (`"k1, k2"` or a list)
# for several products on one server or while rotating a key: a request verifies with any of them,
# and its answer is signed with the one that verified it
KOO_ACCESS_KEY = "..."

# the Kit sync key or keys (unset: `KOO_ACCESS_KEY`)
KOO_KIT_ACCESS_KEY = None

# `false`: an instance, license or Kit tenant belongs to the key that created it, and a request
# another key verified is answered as if it did not exist (`000003`). `true`: every key acts on
# every row, for a key rotation (docs/protocol.md, "Key ownership")
KOO_SHARE_INSTANCES_ACROSS_KEYS = False

# appInfo userName/password encryption: `1` AES-256 or `2` AES-128
KOO_ENCRYPT_TYPE = "1"

# allowed clock difference, in seconds, for G2 and Kit timestamps, both directions (at least 1)
KOO_SIGNATURE_WINDOW_S = 60

# allowed age, in seconds, of a G1 (and G1 Kit) `timeStamp`, both directions: G1 has no nonce, the
# marketplace retries for hours, and a G1 clock may be in Beijing time (at least 1)
KOO_G1_WINDOW_S = 86400

# `true`: G2 and License-2.0 return appInfo `userName`/`password` in plain text with no
# `encryptType`, as the current queryInstance page defines; `false` encrypts them as G1 does
KOO_V2_PLAINTEXT_APPINFO = True

# G1 `chargingMode` values meaning pay-per-use (one instance per order *and* product); a G1 order
# with no `expireTime` that is not one-time (`3`/`ONE_TIME`) counts as pay-per-use too
KOO_G1_PAY_PER_USE_MODES = "ON_DEMAND,ON_DEMAND_PKG"

# the field of each queryInstance `info` element that holds a pay-per-use or package instance's
# usage (`""` leaves it out)
KOO_QUERY_USAGE_FIELD = "usageInfo"

# the RSA private key (a PEM file's path) for applicationSync's clientSecret; unset:
# `instance/kit_rsa_private.pem` (`kit-keygen`)
KOO_KIT_RSA_PRIVATE_KEY = None

# the buyer's front-end address returned in appInfo; `{instance_id}` and `{order_id}` are filled in
APP_FRONTEND_URL_TEMPLATE = "https://app.example.com/t/{instance_id}"

# the buyer's admin address returned in appInfo, filled in the same way
APP_ADMIN_URL_TEMPLATE = "https://app.example.com/t/{instance_id}/admin"

# the buyer's admin user name returned in appInfo, filled in the same way
APP_ADMIN_USER_TEMPLATE = "admin"

# appInfo's memo, filled in the same way
APP_MEMO = ""

# --- The marketplace's open API ---

# the marketplace open API (order query, usage push, license codes, license upload)
KOO_API_BASE_URL = "https://mkt.myhuaweicloud.com"

# where every open-API call is sent again when the main domain gives no answer of the marketplace's
# (no connection, a timeout, an answer without a result code); unset: `https://mkt.myhuaweicloud.cn`
# beside `https://mkt.myhuaweicloud.com` and `https://mkt-intl.myhuaweicloud.com`, as their pages
# say, none beside any other; `""` turns it off
KOO_API_BACKUP_URL = None

# your seller AK for the open API
KOO_AK = None

# your seller SK for the open API
KOO_SK = None

# one open-API call (order query, usage push) takes at most this many seconds; at most 3, as the
# reference asks (more than 0)
KOO_API_TIMEOUT_S = 3

# the usage push's signature key (unset: the first `KOO_ACCESS_KEY`)
KOO_USAGE_KEY = None

# usage records per push (1 to 1000: the push pages allow 1,000, the error page's MKT.9003 says 100)
KOO_USAGE_PUSH_BATCH = 100

# how many days old a usage's `beginTime` may be when it is recorded (the marketplace's MKT.9004; at
# least 1)
USAGE_MAX_AGE_DAYS = 21

# the v2 license-code query's field for its list of codes (no stored page shows it)
KOO_LICENSE_QUERY_V2_FIELD = "licenses"

# the upload of getLicenseAsync's licenses: `file` (the document as a file part) or `string` (as a
# text part)
KOO_LICENSE_UPLOAD_MODE = "file"

# the multipart part's name in a license upload
KOO_LICENSE_UPLOAD_FIELD = "file"

# the largest license document uploaded, in bytes (0: none is)
KOO_LICENSE_UPLOAD_MAX_BYTES = 5 * 1024 * 1024

# --- Licenses and the License relay ---

# the Ed25519 key (a PEM file's path) that signs license documents; unset:
# `instance/license_ed25519.pem`, made on first use (mode 600)
LICENSE_SIGNING_KEY = None

# `"module:function"`: your own license format; the function gets the payload dict and returns the
# license text
LICENSE_GENERATOR = None

# hours the License relay serves the last verified state while the marketplace is unreachable or
# answers that it cannot now (0: none)
LICENSE_RELAY_GRACE_H = 72

# relay calls a minute per license code, every worker and host together; a verify or usage call
# counts once its installation token is checked (0: every call is refused)
LICENSE_RELAY_PER_MINUTE = 30

# relay calls a minute per client address (an IPv6 address: its /64), counted first (0: every call
# is refused)
LICENSE_RELAY_PER_ADDRESS_MINUTE = 120

# --- Request bodies, in bytes (0: any body is refused) ---

# Flask's own: the largest body of any route not named below
MAX_CONTENT_LENGTH = 16 * 1024 * 1024

# the largest body of `/produce` and `/license` (a basic interface's is a few hundred bytes)
KOO_MAX_BODY_BYTES = 1024 * 1024

# the largest body of Kit sync (unset: `MAX_CONTENT_LENGTH`; an allOrgSync of 50,000 departments is
# about 5 MiB)
KOO_KIT_MAX_BODY_BYTES = None

# the largest body of the License relay, `/relay/v1`
LICENSE_RELAY_MAX_BODY_BYTES = 4096

# the largest body of the entitlement and usage API, `/api/v1`
API_MAX_BODY_BYTES = 64 * 1024

# the largest body of the merchant's pages' forms, `/admin`
ADMIN_MAX_BODY_BYTES = 64 * 1024

# the largest body of the buyer's login, `/login` and `/logout`
LOGIN_MAX_BODY_BYTES = 16 * 1024

# --- The database ---

# the database (unset: `instance/isvapp.sqlite`; or `postgresql+psycopg://...`)
SQLALCHEMY_DATABASE_URI = None

# how long a write waits for another's lock, in seconds (also PostgreSQL's lock_timeout); then it
# answers `000005` (0: no wait)
SQLITE_BUSY_TIMEOUT_S = 3

# pages the SQLite write-ahead log holds before a commit copies it into the database file (about 40
# MB; SQLite's own 1000 copies the same pages again and again and took about 12% of the throughput;
# 0: never, SQLite's meaning)
SQLITE_WAL_AUTOCHECKPOINT = 10000

# each SQLite connection's page cache in MiB (SQLite's own 2 MiB no longer holds the inner pages of
# the indexes on the marketplace's random ids once a million orders are stored; 0: SQLite's own)
SQLITE_CACHE_MIB = 64

# --- The callback log ---

# `isvapp prune` (and the worker's prune job) deletes callback log rows older than this many days
# (0: keeps them all)
CALLBACK_LOG_RETENTION_DAYS = 90

# requests that fail verification are logged (metadata, the first 256 bytes of the query string and
# 512 of the body) at most this often a minute per client address (an IPv6 address: its /64) and
# worker; the rest are counted on the next row (0: none is logged, all are counted)
CALLBACK_REFUSED_PER_MINUTE = 20

# ...and at most this often a minute for all addresses together, across every worker and host
# sharing the database (about 120 KB a minute at most; docs/protocol.md section 2.5; 0: none is
# logged)
CALLBACK_REFUSED_GLOBAL_PER_MINUTE = 120

# the worker enqueues a prune job once per this many hours (0: never; run `isvapp prune` from cron)
PRUNE_EVERY_H = 24

# --- Background jobs ---

# attempts before a background job is dead (0 or 1: dead at its first failure)
JOB_MAX_ATTEMPTS = 12

# the first retry's backoff in seconds, doubled at each attempt (0: retried at once)
JOB_RETRY_BASE_S = 5

# the longest backoff between two attempts, in seconds
JOB_RETRY_MAX_S = 3600

# how long a worker holds a job it took, in seconds, before another may take it again (more than 0)
JOB_LEASE_S = 60

# how often, in seconds, the worker runs its periodic tasks (the usage to push, the notices, the
# disk check, pruning old rows) (more than 0)
JOB_PERIODIC_S = 30

# --- Provisioning hooks ---

# `"module:Class"`: the provisioning hooks (README, "Background work");
# `isvapp.provisioning:WebhookProvisioner` posts every event to `WEBHOOK_URL`
PROVISIONER = "isvapp.provisioning:TemplateProvisioner"

# the webhook hooks' address: https (plain http only to loopback); redirects are failures
WEBHOOK_URL = None

# the secret that signs each webhook delivery
WEBHOOK_SECRET = None

# one webhook delivery, answer included, takes at most this many seconds (more than 0)
WEBHOOK_TIMEOUT_S = 10

# --- Alerts and the merchant's notices ---

# one alert per kind per this many minutes; repeats in the window are counted (at least 1)
ALERT_WINDOW_MIN = 60

# alerts by e-mail to these addresses (comma-separated); e-mail is off while unset
ALERT_EMAIL_TO = None

# the SMTP server alerts are sent through
ALERT_SMTP_HOST = None

# its port (unset: 587, or 465 with `ALERT_SMTP_TLS` `ssl`)
ALERT_SMTP_PORT = None

# the SMTP login (unset: none)
ALERT_SMTP_USER = None

# the SMTP login's password
ALERT_SMTP_PASSWORD = None

# the sender (unset: `ALERT_SMTP_USER`)
ALERT_SMTP_FROM = None

# `starttls`, `ssl`, or `none` (to a loopback relay only)
ALERT_SMTP_TLS = "starttls"

# alerts to a WeCom (企业微信) group robot: `https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=...`
ALERT_WECOM_URL = None

# alerts to a DingTalk (钉钉) robot: `https://oapi.dingtalk.com/robot/send?access_token=...`
ALERT_DINGTALK_URL = None

# the DingTalk robot's "SEC..." secret when it signs (加签)
ALERT_DINGTALK_SECRET = None

# alerts to a Feishu (飞书) custom bot: `https://open.feishu.cn/open-apis/bot/v2/hook/...`
ALERT_FEISHU_URL = None

# the Feishu bot's signature-check secret (签名校验), if set
ALERT_FEISHU_SECRET = None

# `worker_silent` when the worker's heartbeat is older than this many seconds; the go-live page's
# worker row turns bad at the same age (at least 1)
ALERT_WORKER_SILENT_S = 300

# how often, in seconds, each web process checks the worker and the disk and delivers those alerts
# itself (0: the watch is off)
ALERT_WATCH_EVERY_S = 30

# `disk_low` when the instance folder's disk has less free than this percentage; the go-live page's
# disk row too (0: never)
ALERT_DISK_FREE_PCT = 10

# the merchant's notices to send, by name: `new_order`, `release`, `expiring`, `digest` (comma-
# separated; none by default); the default: a choice made on the Alerts page wins over it, for every
# host
ALERT_NOTICES = ""

# new orders and releases are grouped per this many minutes, one message when the window closes (at
# least 1)
ALERT_NOTICE_GROUP_MIN = 10

# `expiring`: live instances that expire within this many days, once a day (0: none is found)
ALERT_EXPIRING_DAYS = 7

# `digest`: sent once a day from this hour, in `DISPLAY_TIMEZONE` (0: from midnight)
ALERT_DIGEST_HOUR = 9

# the language of every alert a channel receives: `zh` or `en` (the pages show each alert in their
# reader's language)
ALERT_LANGUAGE = "zh"

# --- The merchant's pages ---

# the pages' time zone: every time on every page is in it, and the header names it; an alert's times
# too
DISPLAY_TIMEZONE = "Asia/Shanghai"

# a session of the pages ends after this many minutes without a page opened (more than 0)
SESSION_IDLE_MIN = 30

# Flask's own: ...and this many seconds after its login, however busy
PERMANENT_SESSION_LIFETIME = 12 * 3600

# Flask's own: `true` marks the pages' cookie Secure even on a request over plain http (it is marked
# whenever the request came over https)
SESSION_COOKIE_SECURE = False

# Flask's own: the pages' cookie's SameSite, `lax` (isvapp's default), `strict` or `none`
SESSION_COOKIE_SAMESITE = "lax"

# the go-live page's checklists: `period`, `onetime`, `payperuse`, `license`, `kit` (kinds the
# marketplace debugs are added by themselves)
GO_LIVE_PRODUCTS = "period"

# the go-live page's clock row is fine below this many seconds of skew, a warning up to half
# `KOO_SIGNATURE_WINDOW_S`, bad beyond (0: a warning at least)
GO_LIVE_CLOCK_SKEW_S = 5

# the go-live page's backup row warns when the last backup is older than this many hours (0: always)
GO_LIVE_BACKUP_MAX_AGE_H = 48

# --- The buyer's login ---

# the buyer's login (joint-operation products): the exact `redirect_uri` registered with the app's
# credentials (unset: this server's `/login/callback`, as the request reached it)
LOGIN_REDIRECT_URI = None

# the hand-off assertion's issuer, where its key set is served (unset: this server's base URL)
LOGIN_ISSUER = None

# where the signed-in buyer is handed over, unless the app has its own on the tenant's page
LOGIN_HANDOFF_URL = None

# PKCE (S256) on the authorize request (Huawei's pages neither require nor forbid it)
LOGIN_PKCE = True

# the Ed25519 key (a PEM file's path) that signs the assertions; unset:
# `instance/login_ed25519.pem`, made on first use
LOGIN_SIGNING_KEY = None

# one call to the tenant's IdP (token, user info) takes at most this many seconds; at most 10 (more
# than 0)
LOGIN_IDP_TIMEOUT_S = 5

# how long a login may take at the IdP, in seconds (at least 1)
LOGIN_STATE_TTL_S = 600

# `true`: accept logins the aPaaS enterprise workbench begins (a callback with `code` and
# `tenant_id` and no state of isvapp's); off by default, since such a login cannot be bound to the
# browser that arrives
LOGIN_WORKBENCH = False

# development only: a tenant's IdP may be on this host over plain http (the fake IdP); off, an IdP
# must be a public https host name, never an IP address, this host or a private address
LOGIN_ALLOW_LOOPBACK_IDP = False

# how long a buyer's session lasts for `/login/refresh`, in seconds; logout ends it sooner, on the
# server (at least 1)
LOGIN_SESSION_TTL_S = 12 * 3600

# --- Operating it ---

# `1` behind nginx or a load balancer on this host: trust its `X-Forwarded-*` headers (https, the
# client's address); 0 without a proxy (the headers could be forged)
PROXY_FIX_HOPS = 0

# `GET /metrics` (Prometheus): counted unless `false` (then the page is empty)
METRICS_ENABLED = True

# the token another host, or anyone through a proxy, must send as `Authorization: Bearer ...` to
# read `/metrics` (unset: this host only)
METRICS_TOKEN = None

# `text` or `json`: one JSON object per log line; `ISVAPP_LOG_FORMAT=json` in the environment makes
# gunicorn's own lines JSON too
LOG_FORMAT = "text"

# errors also go to Sentry (the `sentry` extra), secrets scrubbed first; unset: nothing is sent
SENTRY_DSN = None
