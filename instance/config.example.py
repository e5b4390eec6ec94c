# Every setting isvapp reads, with its default. Copy what you change into instance/config.py,
# or set it as an environment variable ISVAPP_<KEY> (e.g. ISVAPP_KOO_ACCESS_KEY).
SECRET_KEY = "change-me"                      # signs sessions, seals stored secrets
KOO_ACCESS_KEY = "..."                        # Seller Console key of the basic interfaces; several: "k1, k2" or a list
KOO_KIT_ACCESS_KEY = None                     # Kit sync key(s) (defaults to KOO_ACCESS_KEY)
KOO_SHARE_INSTANCES_ACROSS_KEYS = False       # True: every key acts on every instance (a key rotation)
KOO_KIT_RSA_PRIVATE_KEY = None                # path to the PEM that decrypts applicationSync clientSecret
KOO_ENCRYPT_TYPE = "1"                        # appInfo encryption: "1" AES-256, "2" AES-128
KOO_SIGNATURE_WINDOW_S = 60                   # allowed |now - timestamp|, both directions (G2, Kit)
KOO_G1_WINDOW_S = 86400                       # allowed |now - timeStamp| for G1 and G1 Kit (no nonce there)
KOO_V2_PLAINTEXT_APPINFO = True               # False: G2/License-2.0 appInfo encrypted like G1 (encryptType)
KOO_API_BASE_URL = "https://mkt.myhuaweicloud.com"
KOO_AK = None                                 # seller AK/SK for the open API (order query, usage)
KOO_SK = None
SQLALCHEMY_DATABASE_URI = None                # None: instance/isvapp.sqlite; or postgresql+psycopg://...
SQLITE_BUSY_TIMEOUT_S = 3                     # also PostgreSQL's lock_timeout: a blocked write answers 000005
MAX_CONTENT_LENGTH = 16 * 1024 * 1024
DISPLAY_TIMEZONE = "Asia/Shanghai"
SESSION_IDLE_MIN = 30                         # the pages' session ends after this many idle minutes
PERMANENT_SESSION_LIFETIME = 12 * 3600        # ...and this many seconds after its login, however busy
APP_FRONTEND_URL_TEMPLATE = "https://app.example.com/t/{instance_id}"
APP_ADMIN_URL_TEMPLATE = "https://app.example.com/t/{instance_id}/admin"
APP_ADMIN_USER_TEMPLATE = "admin"
APP_MEMO = ""
CALLBACK_LOG_RETENTION_DAYS = 90              # `flask --app isvapp prune` deletes older callback log rows; 0 keeps all
CALLBACK_REFUSED_PER_MINUTE = 20              # refused requests logged a minute per client address (IPv6: per /64) and worker
CALLBACK_REFUSED_GLOBAL_PER_MINUTE = 120      # ...and for all addresses, workers and hosts together; the rest are counted
