"""Result codes the merchant returns (reference §4.1) and the one exception that carries them.

Protocol and domain code raise :class:`KooError`; exactly one place (the marketplace blueprint)
turns it into an envelope, so a code can never be answered with the wrong HTTP status or shape.
"""

SUCCESS = "000000"
AUTH_FAILED = "000001"
INVALID_PARAM = "000002"
INSTANCE_NOT_FOUND = "000003"
PROCESSING = "000004"
INTERNAL_ERROR = "000005"
NO_RESOURCES = "000100"
APP_SECRET_ERROR = "000101"

MESSAGES = {
    SUCCESS: "success.",
    AUTH_FAILED: "authentication failed",
    INVALID_PARAM: "invalid request parameter",
    INSTANCE_NOT_FOUND: "instance does not exist",
    PROCESSING: "request is being processed",
    INTERNAL_ERROR: "internal error",
    NO_RESOURCES: "no instance resources available",
    APP_SECRET_ERROR: "app secret cannot be decrypted",
}

RESULT_MSG_MAX = 255


class KooError(Exception):
    """A refusal with a result code and a message that names the problem."""

    def __init__(self, code, message=None):
        self.code = code
        self.message = (message or MESSAGES.get(code, "error"))[:RESULT_MSG_MAX]
        super().__init__(f"{code}: {self.message}")
