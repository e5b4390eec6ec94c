"""The public path of the provisioning hooks, which merchants name in configuration
(``PROVISIONER = "isvapp.provisioning:WebhookProvisioner"``) and import from in their own code
(``isvapp.provisioning.Provisioner``, ``verify_webhook``). The code lives in
isvapp.background.provisioning; this path stays so that no deployed configuration breaks.
"""

from .background.provisioning import (
    HookEvent,
    Provisioner,
    TemplateProvisioner,
    WebhookProvisioner,
    verify_webhook,
    webhook_signature,
)

__all__ = [
    "HookEvent",
    "Provisioner",
    "TemplateProvisioner",
    "WebhookProvisioner",
    "verify_webhook",
    "webhook_signature",
]
